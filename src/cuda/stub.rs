//! The CUDA backend when the crate is built without the `cuda` feature: the same names, and every entry point
//! answers `Error::CudaUnavailable("not compiled with CUDA ...")` (no value of these types can exist).

use crate::{AttnMask, AttnShape, DwConvShape, Element, Error, GemmShape, Kernels, Result};
use std::convert::Infallible;
use std::marker::PhantomData;
use std::sync::Arc;

fn unavailable() -> Error {
    Error::CudaUnavailable("not compiled with CUDA (build joule with the `cuda` feature)".into())
}

/// Always `Error::CudaUnavailable` in this build.
pub fn probe() -> Result<DeviceInfo> {
    Err(unavailable())
}

/// What a probe finds (never produced in this build).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// Device ordinal.
    pub ordinal: usize,
    /// Device name.
    pub name: String,
    /// Compute capability.
    pub compute_capability: (i32, i32),
    /// Compile target.
    pub arch: String,
    /// Streaming multiprocessors.
    pub multiprocessors: i32,
    /// Device memory in bytes.
    pub total_memory: usize,
    /// Largest opt-in dynamic shared memory per block.
    pub max_shared_per_block_optin: i32,
    /// Driver CUDA version.
    pub driver_version: i32,
    /// NVRTC version.
    pub nvrtc_version: Option<(i32, i32)>,
}

/// A device buffer (cannot exist in this build).
#[derive(Debug)]
pub struct DeviceBuffer<T: bytemuck::Pod> {
    never: Infallible,
    _t: PhantomData<T>,
}

impl<T: bytemuck::Pod> DeviceBuffer<T> {
    /// Elements.
    pub fn len(&self) -> usize {
        match self.never {}
    }
    /// Whether it holds no element.
    pub fn is_empty(&self) -> bool {
        match self.never {}
    }
}

/// A device attention mask (cannot exist in this build).
#[derive(Debug)]
pub enum DeviceMask {
    /// `u8` per (batch, query, key).
    Boolean(DeviceBuffer<u8>),
    /// `f32` added to the scores.
    Additive(DeviceBuffer<f32>),
}

/// The CUDA runtime (cannot exist in this build).
#[derive(Debug)]
pub struct CudaRuntime {
    never: Infallible,
}

impl CudaRuntime {
    /// Always `Error::CudaUnavailable` in this build.
    pub fn new(_ordinal: usize) -> Result<Arc<Self>> {
        Err(unavailable())
    }
    /// Always `Error::CudaUnavailable` in this build.
    pub fn shared() -> Result<Arc<Self>> {
        Err(unavailable())
    }
    /// The device.
    pub fn info(&self) -> &DeviceInfo {
        match self.never {}
    }
    /// Waits for queued work.
    pub fn synchronize(&self) -> Result<()> {
        match self.never {}
    }
    /// Allocates a buffer.
    pub fn alloc<T: bytemuck::Pod>(&self, _len: usize) -> Result<DeviceBuffer<T>> {
        match self.never {}
    }
    /// Copies to a new device buffer.
    pub fn upload<T: bytemuck::Pod>(&self, _data: &[T]) -> Result<DeviceBuffer<T>> {
        match self.never {}
    }
    /// Copies into a device buffer.
    pub fn write<T: bytemuck::Pod>(&self, _buf: &mut DeviceBuffer<T>, _data: &[T]) -> Result<()> {
        match self.never {}
    }
    /// Copies out of a device buffer.
    pub fn read<T: bytemuck::Pod>(&self, _buf: &DeviceBuffer<T>, _out: &mut [T]) -> Result<()> {
        match self.never {}
    }
    /// Copies a device buffer to a vector.
    pub fn download<T: bytemuck::Pod>(&self, _buf: &DeviceBuffer<T>) -> Result<Vec<T>> {
        match self.never {}
    }
    /// GEMM on device buffers.
    pub fn run_gemm<T: Element>(
        &self,
        _: &GemmShape,
        _: &DeviceBuffer<T>,
        _: &DeviceBuffer<T>,
        _: &mut DeviceBuffer<T>,
    ) -> Result<()> {
        match self.never {}
    }
    /// Depthwise on device buffers.
    pub fn run_depthwise<T: Element>(
        &self,
        _: &DwConvShape,
        _: &DeviceBuffer<T>,
        _: &DeviceBuffer<T>,
        _: &mut DeviceBuffer<T>,
    ) -> Result<()> {
        match self.never {}
    }
    /// Pointwise on device buffers.
    pub fn run_pointwise<T: Element>(
        &self,
        _: &DwConvShape,
        _: &DeviceBuffer<T>,
        _: &DeviceBuffer<T>,
        _: &mut DeviceBuffer<T>,
    ) -> Result<()> {
        match self.never {}
    }
    /// Fused depthwise-separable block on device buffers.
    pub fn run_dwsep_fused<T: Element>(
        &self,
        _: &DwConvShape,
        _: &DeviceBuffer<T>,
        _: &DeviceBuffer<T>,
        _: &DeviceBuffer<T>,
        _: &mut DeviceBuffer<T>,
    ) -> Result<()> {
        match self.never {}
    }
    /// Attention on device buffers.
    pub fn run_attention<T: Element>(
        &self,
        _: &AttnShape,
        _: &DeviceBuffer<T>,
        _: &DeviceBuffer<T>,
        _: &DeviceBuffer<T>,
        _: Option<&DeviceMask>,
        _: &mut DeviceBuffer<T>,
    ) -> Result<()> {
        match self.never {}
    }
    /// The cuBLAS baseline on device buffers.
    pub fn cublas_gemm<T: Element>(
        &self,
        _: &GemmShape,
        _: &DeviceBuffer<T>,
        _: &DeviceBuffer<T>,
        _: &mut DeviceBuffer<T>,
        _tf32: bool,
    ) -> Result<()> {
        match self.never {}
    }
}

macro_rules! stub_kernels {
    ($ty:ident, $doc:literal) => {
        #[doc = $doc]
        #[derive(Debug, Clone)]
        pub struct $ty {
            never: Arc<CudaRuntime>,
        }
        impl Kernels for $ty {
            fn name(&self) -> String {
                match self.never.never {}
            }
            fn gemm<T: Element>(&self, _: &GemmShape, _: &[T], _: &[T], _: &mut [T]) -> Result<()> {
                match self.never.never {}
            }
            fn depthwise<T: Element>(&self, _: &DwConvShape, _: &[T], _: &[T], _: &mut [T]) -> Result<()> {
                match self.never.never {}
            }
            fn pointwise<T: Element>(&self, _: &DwConvShape, _: &[T], _: &[T], _: &mut [T]) -> Result<()> {
                match self.never.never {}
            }
            fn dwsep_fused<T: Element>(&self, _: &DwConvShape, _: &[T], _: &[T], _: &[T], _: &mut [T]) -> Result<()> {
                match self.never.never {}
            }
            fn attention<T: Element>(
                &self,
                _: &AttnShape,
                _: &[T],
                _: &[T],
                _: &[T],
                _: Option<AttnMask<'_>>,
                _: &mut [T],
            ) -> Result<()> {
                match self.never.never {}
            }
        }
        impl $ty {
            /// The runtime.
            pub fn runtime(&self) -> &Arc<CudaRuntime> {
                &self.never
            }
        }
    };
}

stub_kernels!(CudaKernels, "The CUDA backend (cannot exist in this build).");
stub_kernels!(CublasGemm, "The cuBLAS GEMM baseline (cannot exist in this build).");

impl CudaKernels {
    /// Always `Error::CudaUnavailable` in this build.
    pub fn new() -> Result<Self> {
        Err(unavailable())
    }
    /// On a given runtime (none can exist in this build).
    pub fn with_runtime(rt: Arc<CudaRuntime>) -> Self {
        CudaKernels { never: rt }
    }
}

impl CublasGemm {
    /// Always `Error::CudaUnavailable` in this build.
    pub fn new() -> Result<Self> {
        Err(unavailable())
    }
    /// Always `Error::CudaUnavailable` in this build.
    pub fn tf32() -> Result<Self> {
        Err(unavailable())
    }
}

/// NVRTC (not in this build).
pub mod nvrtc {
    use super::unavailable;
    use crate::Result;
    use std::sync::Arc;

    /// Nothing is precompiled in this build.
    pub fn precompiled(_file: &str, _arch: &str) -> Option<&'static str> {
        None
    }
    /// Always `Error::CudaUnavailable` in this build.
    pub fn version() -> Result<(i32, i32)> {
        Err(unavailable())
    }
    /// Always `Error::CudaUnavailable` in this build.
    pub fn compile_file(_file: &str, _arch: &str) -> Result<Arc<str>> {
        Err(unavailable())
    }
    /// Always `Error::CudaUnavailable` in this build.
    pub fn compile_text(_name: &str, _text: &str, _arch: &str, _extra_options: &[&str]) -> Result<String> {
        Err(unavailable())
    }
}
