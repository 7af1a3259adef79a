//! Launch plans for `cuda/dwconv.cu` (being written).

use crate::KernelInfo;

/// The kernels of `dwconv.cu`.
pub const KERNELS: &[KernelInfo] = &[];
