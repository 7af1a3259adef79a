//! CPU versions of Joule's kernels: [`reference`](mod@reference) float64 oracles (simple, obviously right) and [`fast`] parallel
//! kernels (rayon, f32 accumulation).
#![deny(missing_docs)]

pub mod fast;
pub mod reference;

pub use fast::CpuKernels;
