//! The CUDA backend: device probing, NVRTC compilation with an on-disk PTX cache, launches of
//! [`joule_launch::OpPlan`]s, a [`Kernels`](crate::Kernels) implementation on host slices ([`CudaKernels`], backend
//! name `cuda`), a device-resident API for the harness ([`CudaRuntime`], [`DeviceBuffer`]) and a cuBLAS baseline for
//! GEMM ([`CublasGemm`], backend names `cublas` and `cublas-tf32`).
//!
//! "No CUDA here" is a normal state: every entry point returns [`Error::CudaUnavailable`](crate::Error) with the
//! reason (not compiled with the `cuda` feature, no libcuda, no device, no libnvrtc) instead of panicking. cudarc
//! panics when it cannot open a library, so every library is probed with `is_culib_present()` before first use.
//!
//! Environment:
//! - `JOULE_CUDA_INCLUDE`: the folder holding `cuda_fp16.h` for NVRTC (else `$CUDA_HOME/include`,
//!   `$CUDA_PATH/include`, `/usr/local/cuda/include`);
//! - `JOULE_PTX_CACHE`: the PTX cache folder (else `$XDG_CACHE_HOME/joule/ptx`, else `~/.cache/joule/ptx`); `off`
//!   disables it;
//! - `JOULE_CUDA_SYNC=1`: synchronise after every launch, so an asynchronous fault is reported with the kernel that
//!   caused it (slower; for debugging);
//! - `JOULE_PTXAS`, `JOULE_CUOBJDUMP`: the tools the resource report runs (else `ptxas` and `cuobjdump` on `PATH`).

mod common;
pub mod resources;

pub use common::{arch_for, include_dir, prepare_source, prepare_text, ptx_cache_dir, source_hash};

#[cfg(feature = "cuda")]
mod cublas;
#[cfg(feature = "cuda")]
mod kernels;
#[cfg(feature = "cuda")]
pub mod nvrtc;
#[cfg(feature = "cuda")]
mod runtime;

#[cfg(feature = "cuda")]
pub use cublas::CublasGemm;
#[cfg(feature = "cuda")]
pub use kernels::CudaKernels;
#[cfg(feature = "cuda")]
pub use runtime::{CudaRuntime, DeviceBuffer, DeviceInfo, DeviceMask, probe};

#[cfg(not(feature = "cuda"))]
mod stub;
#[cfg(not(feature = "cuda"))]
pub use stub::{CublasGemm, CudaKernels, CudaRuntime, DeviceBuffer, DeviceInfo, DeviceMask, nvrtc, probe};
