//! Core types shared by every Joule crate: precisions ([`DType`], [`Element`]), kernel shapes ([`GemmShape`],
//! [`DwConvShape`], [`AttnShape`]) with validation, FLOP and byte counts, numerical error metrics with a documented
//! pass rule ([`ErrorStats`], [`Tolerance`]), seeded input generation ([`InputGen`]) and the shared [`Error`] type.
#![deny(missing_docs)]

mod dtype;
mod error;
mod inputs;
mod kernels;
mod metrics;
mod shapes;

pub use dtype::{DType, Element};
pub use error::{Error, Result};
pub use inputs::{Distribution, InputGen, Outliers};
pub use kernels::Kernels;
pub use metrics::{ErrorStats, Tolerance};
pub use shapes::{AttnMask, AttnShape, DwConvShape, GemmShape, MaskKind};
