//! Joule: energy-efficient GEMM, depthwise-separable convolution and fused attention kernels, on CUDA and CPU.
//!
//! The CPU kernels live in [`cpu`] (`cpu::reference` oracles, `cpu::fast` parallel kernels); every backend
//! implements [`Kernels`].
#![deny(missing_docs)]

pub use joule_core::*;

/// CPU kernels: float64 oracles and fast parallel kernels.
pub mod cpu {
    pub use joule_cpu::*;
}

/// The CUDA backend (cudarc): probing, NVRTC, plan execution, [`Kernels`] on the GPU and the cuBLAS baseline.
/// Without the `cuda` feature, a stub whose entry points answer "not compiled with CUDA".
pub mod cuda;
