//! Launch plans for `cuda/attention.cu` (being written).

use crate::KernelInfo;

/// The kernels of `attention.cu`.
pub const KERNELS: &[KernelInfo] = &[];
