//! The CUDA runtime: one device context and stream, lazily compiled modules, device buffers and plan execution.

use super::common::arch_for;
use super::nvrtc;
use crate::{Error, Result};
use cudarc::driver::sys::{CUdevice_attribute, CUfunction_attribute};
use cudarc::driver::{CudaContext, CudaFunction, CudaModule, CudaSlice, CudaStream, DevicePtr, DevicePtrMut};
use joule_launch::{Arg, OpPlan};
use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};

/// What [`probe`] found: the device and the libraries that will run Joule's kernels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// Device ordinal.
    pub ordinal: usize,
    /// Device name as the driver reports it (e.g. "NVIDIA H200").
    pub name: String,
    /// Compute capability `(major, minor)`.
    pub compute_capability: (i32, i32),
    /// The target kernels are compiled for (`sm_90a` on Hopper).
    pub arch: String,
    /// Streaming multiprocessors.
    pub multiprocessors: i32,
    /// Device memory in bytes.
    pub total_memory: usize,
    /// Largest dynamic shared memory a block may opt into, in bytes.
    pub max_shared_per_block_optin: i32,
    /// CUDA version the driver supports, as the driver encodes it (13000 = 13.0).
    pub driver_version: i32,
    /// NVRTC version `(major, minor)`, when libnvrtc loads.
    pub nvrtc_version: Option<(i32, i32)>,
}

fn driver_err(context: impl Into<String>) -> impl FnOnce(cudarc::driver::DriverError) -> Error {
    let context = context.into();
    move |e| Error::Cuda { context, message: e.to_string() }
}

fn lock<T>(m: &Mutex<T>) -> Result<std::sync::MutexGuard<'_, T>> {
    m.lock().map_err(|_| Error::Cuda {
        context: "CUDA runtime".into(),
        message: "a thread panicked while holding a runtime lock".into(),
    })
}

/// Checks that libcuda loads and a device exists, without panicking; `Error::CudaUnavailable` says why not.
fn probe_driver(ordinal: usize) -> Result<i32> {
    // SAFETY: only tries to dlopen the candidate library names.
    if !unsafe { cudarc::driver::sys::is_culib_present() } {
        return Err(Error::CudaUnavailable("libcuda not found (no NVIDIA driver on this machine)".into()));
    }
    cudarc::driver::result::init().map_err(|e| Error::CudaUnavailable(format!("cuInit failed: {e}")))?;
    let count = cudarc::driver::result::device::get_count()
        .map_err(|e| Error::CudaUnavailable(format!("cuDeviceGetCount failed: {e}")))?;
    if count <= 0 {
        return Err(Error::CudaUnavailable("the driver sees no CUDA device".into()));
    }
    if ordinal >= count as usize {
        return Err(Error::CudaUnavailable(format!("no CUDA device {ordinal} (the driver sees {count})")));
    }
    let mut version = 0;
    // SAFETY: the library is loaded; cuDriverGetVersion only writes the int.
    unsafe { cudarc::driver::sys::cuDriverGetVersion(&mut version) }
        .result()
        .map_err(|e| Error::CudaUnavailable(format!("cuDriverGetVersion failed: {e}")))?;
    Ok(version)
}

/// Probes device 0: driver, device and NVRTC. Creates (and keeps) the shared [`CudaRuntime`].
pub fn probe() -> Result<DeviceInfo> {
    Ok(CudaRuntime::shared()?.info().clone())
}

/// A device buffer of `len` elements of `T` (an [`Element`](crate::Element), or `u8`/`f32` for masks). Zero-length
/// buffers are allowed (they hold a small allocation so kernels always get a valid pointer).
pub struct DeviceBuffer<T: bytemuck::Pod> {
    raw: CudaSlice<u8>,
    len: usize,
    _t: PhantomData<T>,
}

impl<T: bytemuck::Pod> std::fmt::Debug for DeviceBuffer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DeviceBuffer<{}>[{}]", std::any::type_name::<T>(), self.len)
    }
}

impl<T: bytemuck::Pod> DeviceBuffer<T> {
    /// Elements.
    pub fn len(&self) -> usize {
        self.len
    }
    /// Whether it holds no element.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// An attention mask on the device (see [`AttnMask`](crate::AttnMask)).
#[derive(Debug)]
pub enum DeviceMask {
    /// `u8` per (batch, query, key): nonzero = attend.
    Boolean(DeviceBuffer<u8>),
    /// `f32` added to the scaled scores.
    Additive(DeviceBuffer<f32>),
}

impl DeviceMask {
    pub(crate) fn kind(&self) -> crate::MaskKind {
        match self {
            DeviceMask::Boolean(_) => crate::MaskKind::Boolean,
            DeviceMask::Additive(_) => crate::MaskKind::Additive,
        }
    }
    pub(crate) fn len(&self) -> usize {
        match self {
            DeviceMask::Boolean(b) => b.len(),
            DeviceMask::Additive(b) => b.len(),
        }
    }
    pub(crate) fn ptr(&self, stream: &CudaStream) -> u64 {
        match self {
            DeviceMask::Boolean(b) => b.raw.device_ptr(stream).0,
            DeviceMask::Additive(b) => b.raw.device_ptr(stream).0,
        }
    }
}

/// A kernel argument's value, as cuLaunchKernel reads it (through a pointer to it).
#[derive(Debug, Clone, Copy, PartialEq)]
enum ArgValue {
    /// A device address (a `gptr<T>` parameter).
    Ptr(u64),
    /// An `int` parameter.
    I32(i32),
    /// A `float` parameter.
    F32(f32),
}

impl ArgValue {
    fn as_param(&mut self) -> *mut std::ffi::c_void {
        match self {
            ArgValue::Ptr(p) => p as *mut u64 as *mut std::ffi::c_void,
            ArgValue::I32(i) => i as *mut i32 as *mut std::ffi::c_void,
            ArgValue::F32(x) => x as *mut f32 as *mut std::ffi::c_void,
        }
    }
}

/// The values of a launch's arguments: buffer indices resolved against the call's buffer addresses.
fn marshal(args: &[Arg], buffers: &[u64]) -> std::result::Result<Vec<ArgValue>, String> {
    args.iter()
        .map(|arg| match *arg {
            Arg::Buf(i) => buffers
                .get(i)
                .map(|&p| ArgValue::Ptr(p))
                .ok_or_else(|| format!("the plan names buffer {i}, the call has {}", buffers.len())),
            Arg::I32(v) => Ok(ArgValue::I32(v)),
            Arg::F32(v) => Ok(ArgValue::F32(v)),
        })
        .collect()
}

/// One CUDA device with its stream, its loaded modules and a scratch pool. All work goes to one stream, in order;
/// the `run_*` methods are asynchronous (call [`CudaRuntime::synchronize`] before reading a clock), the upload and
/// download methods are not.
pub struct CudaRuntime {
    pub(crate) ctx: Arc<CudaContext>,
    pub(crate) stream: Arc<CudaStream>,
    info: DeviceInfo,
    modules: Mutex<HashMap<&'static str, Arc<CudaModule>>>,
    /// Loaded functions and the dynamic shared memory limit already set on each (0 = the default 48 KiB).
    functions: Mutex<HashMap<&'static str, (CudaFunction, u32)>>,
    scratch: Mutex<Vec<CudaSlice<u8>>>,
    pub(crate) blas: Mutex<Option<cudarc::cublas::CudaBlas>>,
    sync_each_launch: bool,
}

impl std::fmt::Debug for CudaRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaRuntime").field("info", &self.info).finish_non_exhaustive()
    }
}

impl CudaRuntime {
    /// Opens device `ordinal` (its primary context) and a stream. `Error::CudaUnavailable` when there is no driver,
    /// no such device or no NVRTC.
    pub fn new(ordinal: usize) -> Result<Arc<Self>> {
        let driver_version = probe_driver(ordinal)?;
        let nvrtc_version = nvrtc::version()?;
        let ctx = CudaContext::new(ordinal).map_err(|e| Error::CudaUnavailable(format!("cannot open device: {e}")))?;
        // One stream, so cudarc's per-buffer event tracking (for multi-stream use) is not needed.
        // SAFETY: every buffer of this runtime is used on `stream` only.
        unsafe { ctx.disable_event_tracking() };
        let cc = ctx.compute_capability().map_err(driver_err("compute capability"))?;
        let attr = |a| ctx.attribute(a).map_err(driver_err("device attribute"));
        let info = DeviceInfo {
            ordinal,
            name: ctx.name().map_err(driver_err("device name"))?,
            compute_capability: cc,
            arch: arch_for(cc.0, cc.1),
            multiprocessors: attr(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)?,
            total_memory: ctx.total_mem().map_err(driver_err("device memory"))?,
            max_shared_per_block_optin: attr(
                CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN,
            )?,
            driver_version,
            nvrtc_version: Some(nvrtc_version),
        };
        let stream = ctx.default_stream();
        Ok(Arc::new(CudaRuntime {
            ctx,
            stream,
            info,
            modules: Mutex::default(),
            functions: Mutex::default(),
            scratch: Mutex::default(),
            blas: Mutex::default(),
            sync_each_launch: std::env::var_os("JOULE_CUDA_SYNC").is_some_and(|v| v == "1"),
        }))
    }

    /// The process-wide runtime on device 0, created at first use (later calls share its module cache).
    pub fn shared() -> Result<Arc<Self>> {
        static SHARED: Mutex<Option<Arc<CudaRuntime>>> = Mutex::new(None);
        let mut guard = lock(&SHARED)?;
        if let Some(rt) = guard.as_ref() {
            return Ok(rt.clone());
        }
        let rt = CudaRuntime::new(0)?;
        *guard = Some(rt.clone());
        Ok(rt)
    }

    /// The device this runtime drives.
    pub fn info(&self) -> &DeviceInfo {
        &self.info
    }

    /// Waits until all queued work is done, and reports any asynchronous error it raised.
    pub fn synchronize(&self) -> Result<()> {
        self.stream.synchronize().map_err(driver_err("stream synchronize"))
    }

    /// Allocates `len` elements (contents undefined).
    pub fn alloc<T: bytemuck::Pod>(&self, len: usize) -> Result<DeviceBuffer<T>> {
        let bytes = len.checked_mul(size_of::<T>()).ok_or(Error::SizeOverflow { kernel: "cuda", what: "buffer" })?;
        // SAFETY: u8 has no invalid bit patterns; the contents are documented as undefined.
        let raw = unsafe { self.stream.alloc::<u8>(bytes.max(16)) }.map_err(driver_err("device alloc"))?;
        Ok(DeviceBuffer { raw, len, _t: PhantomData })
    }

    /// Copies a host slice to a new device buffer.
    pub fn upload<T: bytemuck::Pod>(&self, data: &[T]) -> Result<DeviceBuffer<T>> {
        let mut buf = self.alloc::<T>(data.len())?;
        self.write(&mut buf, data)?;
        Ok(buf)
    }

    /// Copies a host slice into the start of a device buffer.
    pub fn write<T: bytemuck::Pod>(&self, buf: &mut DeviceBuffer<T>, data: &[T]) -> Result<()> {
        if data.len() > buf.len {
            return Err(Error::BufferLength { buffer: "device", expected: buf.len, got: data.len() });
        }
        if data.is_empty() {
            return Ok(());
        }
        let bytes: &[u8] = bytemuck::cast_slice(data);
        let mut view = buf.raw.slice_mut(..bytes.len());
        self.stream.memcpy_htod(bytes, &mut view).map_err(driver_err("copy to device"))
    }

    /// Copies the start of a device buffer into a host slice (waits for the queued work first).
    pub fn read<T: bytemuck::Pod>(&self, buf: &DeviceBuffer<T>, out: &mut [T]) -> Result<()> {
        if out.len() > buf.len {
            return Err(Error::BufferLength { buffer: "host", expected: buf.len, got: out.len() });
        }
        if !out.is_empty() {
            let bytes: &mut [u8] = bytemuck::cast_slice_mut(out);
            let view = buf.raw.slice(..bytes.len());
            self.stream.memcpy_dtoh(&view, bytes).map_err(driver_err("copy to host"))?;
        }
        self.synchronize()
    }

    /// Copies a whole device buffer to a new vector.
    pub fn download<T: bytemuck::Pod>(&self, buf: &DeviceBuffer<T>) -> Result<Vec<T>> {
        let mut out = vec![T::zeroed(); buf.len];
        self.read(buf, &mut out)?;
        Ok(out)
    }

    /// Raw device address of a buffer on this runtime's stream.
    pub(crate) fn ptr<T: bytemuck::Pod>(&self, buf: &DeviceBuffer<T>) -> u64 {
        buf.raw.device_ptr(&self.stream).0
    }
    /// Raw device address of a buffer the call writes.
    pub(crate) fn ptr_mut<T: bytemuck::Pod>(&self, buf: &mut DeviceBuffer<T>) -> u64 {
        buf.raw.device_ptr_mut(&self.stream).0
    }

    /// The loaded function `kernel` from `source`, compiling and loading the module at first use and raising the
    /// dynamic shared memory limit when a launch needs more than the default 48 KiB.
    fn function(&self, kernel: &'static str, source: &'static str, smem: u32) -> Result<CudaFunction> {
        let known = lock(&self.functions)?.get(kernel).cloned();
        let was_known = known.is_some();
        let (f, limit) = match known {
            Some(entry) => entry,
            None => {
                let module = self.module(source)?;
                let f =
                    module.load_function(kernel).map_err(driver_err(format!("load kernel {kernel} from {source}")))?;
                (f, 0)
            }
        };
        let mut new_limit = limit;
        if smem > 48 * 1024 && smem > limit {
            self.raise_smem(&f, kernel, smem)?;
            new_limit = smem;
        }
        if !was_known || new_limit != limit {
            lock(&self.functions)?.insert(kernel, (f.clone(), new_limit));
        }
        Ok(f)
    }

    fn raise_smem(&self, f: &CudaFunction, kernel: &str, smem: u32) -> Result<()> {
        if smem as i64 > self.info.max_shared_per_block_optin as i64 {
            return Err(Error::Unsupported(format!(
                "{kernel} needs {smem} bytes of shared memory; {} allows {} per block",
                self.info.name, self.info.max_shared_per_block_optin
            )));
        }
        f.set_attribute(CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, smem as i32)
            .map_err(driver_err(format!("raise the shared memory limit of {kernel} to {smem} bytes")))
    }

    fn module(&self, source: &'static str) -> Result<Arc<CudaModule>> {
        let mut modules = lock(&self.modules)?;
        if let Some(m) = modules.get(source) {
            return Ok(m.clone());
        }
        let arch = &self.info.arch;
        let mut loaded = None;
        if let Some(ptx) = nvrtc::precompiled(source, arch) {
            // nvcc's PTX (build.rs) when it was there; on any failure fall back to NVRTC below.
            loaded = self.ctx.load_module(cudarc::nvrtc::Ptx::from_src(ptx)).ok();
        }
        let module = match loaded {
            Some(m) => m,
            None => {
                let ptx = nvrtc::compile_file(source, arch)?;
                self.ctx.load_module(cudarc::nvrtc::Ptx::from_src(ptx.to_string())).map_err(|e| Error::Cuda {
                    context: format!("load module {source} ({arch})"),
                    message: format!(
                        "{e}{}",
                        if e.0 == cudarc::driver::sys::CUresult::CUDA_ERROR_UNSUPPORTED_PTX_VERSION {
                            format!(
                                " (PTX from NVRTC {:?} is newer than the driver's CUDA {}: use an NVRTC no newer \
                                 than the driver)",
                                self.info.nvrtc_version, self.info.driver_version
                            )
                        } else {
                            String::new()
                        }
                    ),
                })?
            }
        };
        modules.insert(source, module.clone());
        Ok(module)
    }

    /// Queues every launch of `plan` on the stream. `buffers` are the device addresses of the operation's own
    /// buffers in the documented order; the plan's scratch buffers are appended from the runtime's pool.
    ///
    /// # Safety
    /// Each address must point to a live device allocation of this context large enough for what the plan's
    /// kernels access, and the buffers the plan writes must not be read or written elsewhere until the stream has
    /// passed this work.
    pub(crate) unsafe fn execute(&self, op: &str, plan: &OpPlan, buffers: &[u64]) -> Result<()> {
        self.ctx.bind_to_thread().map_err(driver_err("bind context"))?;
        let mut scratch = lock(&self.scratch)?;
        while scratch.len() < plan.scratch_bytes.len() {
            // SAFETY: u8 has no invalid bit patterns; scratch contents are undefined by contract.
            scratch.push(unsafe { self.stream.alloc::<u8>(16) }.map_err(driver_err("scratch alloc"))?);
        }
        for (slot, &bytes) in scratch.iter_mut().zip(&plan.scratch_bytes) {
            if slot.len() < bytes {
                // SAFETY: as above.
                *slot = unsafe { self.stream.alloc::<u8>(bytes.next_power_of_two()) }
                    .map_err(driver_err("scratch alloc"))?;
            }
        }
        let mut all: Vec<u64> = buffers.to_vec();
        all.extend(scratch.iter().take(plan.scratch_bytes.len()).map(|s| s.device_ptr(&self.stream).0));
        for launch in &plan.launches {
            if launch.grid.contains(&0) || launch.block.contains(&0) {
                continue; // nothing to do (an empty dimension)
            }
            let f = self.function(launch.kernel, launch.source, launch.smem_bytes)?;
            // Argument values first (they must not move), then the pointer array cuLaunchKernel reads.
            let mut vals = marshal(&launch.args, &all)
                .map_err(|message| Error::Cuda { context: format!("{op}: launch {}", launch.kernel), message })?;
            let mut params: Vec<*mut std::ffi::c_void> = vals.iter_mut().map(ArgValue::as_param).collect();
            let g = launch.grid;
            let b = launch.block;
            // SAFETY: the function is loaded in this context; `params` points at one value per kernel parameter,
            // typed as the plan says (the plans and kernels are written together and checked by the emulator);
            // buffer validity is the caller's contract.
            unsafe {
                cudarc::driver::result::launch_kernel(
                    f.cu_function(),
                    (g[0], g[1], g[2]),
                    (b[0], b[1], b[2]),
                    launch.smem_bytes,
                    self.stream.cu_stream(),
                    &mut params,
                )
            }
            .map_err(driver_err(format!(
                "{op}: launch {} grid {g:?} block {b:?} smem {}",
                launch.kernel, launch.smem_bytes
            )))?;
            if self.sync_each_launch {
                self.synchronize().map_err(|e| Error::Cuda {
                    context: format!("{op}: kernel {} (JOULE_CUDA_SYNC)", launch.kernel),
                    message: e.to_string(),
                })?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn launch_arguments_resolve_buffers_and_keep_scalars_bit_exact() {
        let args = [Arg::Buf(2), Arg::I32(-7), Arg::F32(0.1), Arg::Buf(0)];
        let mut vals = marshal(&args, &[0x1000, 0x2000, 0x3000]).unwrap();
        assert_eq!(vals, [ArgValue::Ptr(0x3000), ArgValue::I32(-7), ArgValue::F32(0.1), ArgValue::Ptr(0x1000)]);
        // cuLaunchKernel reads each parameter through its pointer: check what it would read.
        let params: Vec<_> = vals.iter_mut().map(ArgValue::as_param).collect();
        // SAFETY: each pointer points into `vals`, which is alive and not moved, at a value of the read type.
        unsafe {
            assert_eq!(*(params[0] as *const u64), 0x3000);
            assert_eq!(*(params[1] as *const i32), -7);
            assert_eq!((*(params[2] as *const f32)).to_bits(), 0.1f32.to_bits());
        }
        let err = marshal(&[Arg::Buf(3)], &[1, 2, 3]).unwrap_err();
        assert!(err.contains("buffer 3"), "{err}");
    }
}
