//! Launch plans for `cuda/gemm.cu` (being written).

use crate::KernelInfo;

/// The kernels of `gemm.cu`.
pub const KERNELS: &[KernelInfo] = &[];
