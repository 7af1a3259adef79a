//! Runs the CUDA kernels of `cuda/` on the CPU.
//!
//! The kernel sources are compiled by the host C++ compiler against an emulation of the CUDA execution model
//! (`cuda/emu/emu.h` and `cuda/emu/runtime.cpp`, selected by `JOULE_EMULATE` in `cuda/common.cuh`): blocks run one
//! after another, the threads of a block run as fibers that switch at `__syncthreads` and at warp-collective
//! operations (shuffles, votes, `ldmatrix`, `mma`), which complete once all 32 lanes have arrived. `mma.m16n8k16`
//! and `ldmatrix` follow the fragment layouts of the PTX ISA; `cp.async` copies land only when a wait requires their
//! group; dynamic shared memory starts every block filled with `0xFF` bytes (NaN in every float type); and every
//! global and shared access goes through a bounds-checked pointer, so an out-of-bounds or misaligned access, a
//! barrier or warp collective that not every thread reaches, or a launch configuration a GPU would reject returns
//! an [`Error`] naming the kernel, block and thread — never a crash, a hang or silence.
//!
//! Three levels:
//! - [`EmuKernels`] implements [`joule_core::Kernels`] (backend name `cuda-emulated`) by executing the
//!   [`joule_launch`] plans, so the generic test bodies run the CUDA sources against the CPU oracle;
//! - [`run_plan`] executes one [`OpPlan`] on [`EmuBuffer`]s (scratch buffers are allocated and poisoned);
//! - [`launch`] launches one kernel by name (used by the emulator's own tests with `cuda/emu/tests/*.cu`).
#![deny(missing_docs)]

use joule_core::{AttnMask, AttnShape, DwConvShape, Element, Error, GemmShape, Kernels, Result};
use joule_launch::{Arg, OpPlan};
use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::ptr::NonNull;

include!(concat!(env!("OUT_DIR"), "/compile_failures.rs"));

mod ffi {
    use std::ffi::{c_char, c_int, c_void};

    /// One buffer of a launch (mirrors `JouleEmuBuffer` in runtime.cpp).
    #[repr(C)]
    pub struct JouleEmuBuffer {
        pub ptr: *mut c_void,
        pub bytes: u64,
        pub name: *const c_char,
    }

    unsafe extern "C" {
        pub fn joule_emu_launch(
            name: *const c_char,
            grid: *const u32,
            block: *const u32,
            smem_bytes: u32,
            args: *mut *mut c_void,
            arg_kinds: *const c_char,
            nargs: c_int,
            bufs: *const JouleEmuBuffer,
            nbufs: c_int,
            err: *mut c_char,
            err_len: u64,
        ) -> c_int;
        pub fn joule_emu_kernel_count() -> c_int;
        pub fn joule_emu_kernel_name(i: c_int) -> *const c_char;
        pub fn joule_emu_kernel_signature(i: c_int) -> *const c_char;
        pub fn joule_emu_convert(kind: c_int, input: *const c_void, out: *mut c_void, n: u64);
    }
}

/// Alignment of emulated device buffers (as `cudaMalloc` gives at least 256 bytes).
const BUFFER_ALIGN: usize = 256;

/// A host allocation standing in for a device buffer: 256-byte aligned, with a name used in error messages.
pub struct EmuBuffer {
    ptr: NonNull<u8>,
    bytes: usize,
    name: CString,
}

impl EmuBuffer {
    fn layout(bytes: usize) -> Result<Layout> {
        Layout::from_size_align(bytes.max(1), BUFFER_ALIGN)
            .map_err(|_| Error::Unsupported(format!("an emulated buffer of {bytes} bytes")))
    }

    /// A zero-filled buffer of `bytes` bytes.
    pub fn zeroed(name: &str, bytes: usize) -> Result<Self> {
        let layout = Self::layout(bytes)?;
        // SAFETY: the layout has a non-zero size.
        let raw = unsafe { alloc_zeroed(layout) };
        let ptr = NonNull::new(raw).ok_or_else(|| Error::Unsupported(format!("allocating {bytes} bytes failed")))?;
        let name = CString::new(name.replace('\0', "?")).unwrap_or_default();
        Ok(EmuBuffer { ptr, bytes, name })
    }

    /// A buffer filled with `0xFF` bytes (NaN as f32, f16 and bf16): scratch whose contents are undefined.
    pub fn poisoned(name: &str, bytes: usize) -> Result<Self> {
        let mut b = Self::zeroed(name, bytes)?;
        b.as_bytes_mut().fill(0xFF);
        Ok(b)
    }

    /// A buffer holding a copy of `data`.
    pub fn from_slice<T: bytemuck::Pod>(name: &str, data: &[T]) -> Result<Self> {
        let bytes: &[u8] = bytemuck::cast_slice(data);
        let mut b = Self::zeroed(name, bytes.len())?;
        b.as_bytes_mut().copy_from_slice(bytes);
        Ok(b)
    }

    /// Size in bytes.
    pub fn len(&self) -> usize {
        self.bytes
    }

    /// Whether the buffer holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.bytes == 0
    }

    /// The contents.
    pub fn as_bytes(&self) -> &[u8] {
        // SAFETY: `ptr` owns `bytes` initialised bytes (zeroed at allocation).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.bytes) }
    }

    /// The contents, mutable.
    pub fn as_bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `as_bytes`, and `&mut self` makes the access exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.bytes) }
    }

    /// The contents as elements of `T` (the byte length must be a multiple of `size_of::<T>()`).
    pub fn to_vec<T: bytemuck::Pod>(&self) -> Result<Vec<T>> {
        let size = std::mem::size_of::<T>();
        if size == 0 || !self.bytes.is_multiple_of(size) {
            return Err(Error::InvalidArgument(format!(
                "buffer `{}` holds {} bytes, not a whole number of {size}-byte elements",
                self.name.to_string_lossy(),
                self.bytes
            )));
        }
        let mut v = vec![T::zeroed(); self.bytes / size];
        bytemuck::cast_slice_mut::<T, u8>(&mut v).copy_from_slice(self.as_bytes());
        Ok(v)
    }

    /// Copies the first `out.len()` elements of the buffer into `out`.
    pub fn copy_to<T: bytemuck::Pod>(&self, out: &mut [T]) -> Result<()> {
        let dst: &mut [u8] = bytemuck::cast_slice_mut(out);
        let n = dst.len();
        if n > self.bytes {
            return Err(Error::BufferLength {
                buffer: "emulated buffer",
                expected: n / std::mem::size_of::<T>().max(1),
                got: self.bytes / std::mem::size_of::<T>().max(1),
            });
        }
        dst.copy_from_slice(&self.as_bytes()[..n]);
        Ok(())
    }
}

impl Drop for EmuBuffer {
    fn drop(&mut self) {
        if let Ok(layout) = Self::layout(self.bytes) {
            // SAFETY: allocated in `zeroed` with this layout.
            unsafe { dealloc(self.ptr.as_ptr(), layout) };
        }
    }
}

impl std::fmt::Debug for EmuBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmuBuffer").field("name", &self.name).field("bytes", &self.bytes).finish()
    }
}

/// Launches kernel `kernel` once on the CPU with the given grid, block, dynamic shared memory and arguments;
/// `Arg::Buf(i)` refers to `buffers[i]`.
///
/// Returns [`Error::Cuda`] when the kernel is unknown (the message quotes the compiler output if its source did not
/// compile under the emulator), when the arguments do not match its parameters, when the launch configuration is
/// invalid on a GPU, or when the kernel made an invalid access, deadlocked or misused a warp collective.
pub fn launch(
    kernel: &str,
    grid: [u32; 3],
    block: [u32; 3],
    smem_bytes: u32,
    args: &[Arg],
    buffers: &mut [EmuBuffer],
) -> Result<()> {
    let mut table: Vec<&mut EmuBuffer> = buffers.iter_mut().collect();
    launch_on(kernel, grid, block, smem_bytes, args, &mut table)
}

fn launch_on(
    kernel: &str,
    grid: [u32; 3],
    block: [u32; 3],
    smem_bytes: u32,
    args: &[Arg],
    buffers: &mut [&mut EmuBuffer],
) -> Result<()> {
    let err = |message: String| Error::Cuda { context: format!("emulated launch of {kernel}"), message };
    let name = CString::new(kernel).map_err(|_| err("kernel name contains NUL".into()))?;
    let table: Vec<ffi::JouleEmuBuffer> = buffers
        .iter_mut()
        .map(|b| ffi::JouleEmuBuffer { ptr: b.ptr.as_ptr().cast(), bytes: b.bytes as u64, name: b.name.as_ptr() })
        .collect();
    let mut values: Vec<[u8; 8]> = Vec::with_capacity(args.len());
    let mut kinds: Vec<u8> = Vec::with_capacity(args.len() + 1);
    for (i, a) in args.iter().enumerate() {
        let mut v = [0u8; 8];
        match *a {
            Arg::Buf(b) => {
                let buf = table
                    .get(b)
                    .ok_or_else(|| err(format!("argument {i} refers to buffer {b}, the launch has {}", table.len())))?;
                v = (buf.ptr as usize as u64).to_ne_bytes();
                kinds.push(b'P');
            }
            Arg::I32(x) => {
                v[..4].copy_from_slice(&x.to_ne_bytes());
                kinds.push(b'i');
            }
            Arg::F32(x) => {
                v[..4].copy_from_slice(&x.to_ne_bytes());
                kinds.push(b'f');
            }
        }
        values.push(v);
    }
    kinds.push(0);
    let mut arg_ptrs: Vec<*mut c_void> = values.iter_mut().map(|v| v.as_mut_ptr().cast()).collect();
    let mut msg = vec![0u8; 16 * 1024];
    let nargs = c_int::try_from(args.len()).map_err(|_| err("too many arguments".into()))?;
    let nbufs = c_int::try_from(table.len()).map_err(|_| err("too many buffers".into()))?;
    // SAFETY: every pointer is valid for the duration of the call: `name`, `kinds` and the buffer names are
    // NUL-terminated; `arg_ptrs[i]` points at 8 bytes holding argument i; each table entry describes a live
    // allocation of `bytes` bytes that nothing else accesses during the call (the buffers are borrowed mutably);
    // `msg` has the length passed. The runtime checks the argument kinds against the kernel's parameters.
    let rc = unsafe {
        ffi::joule_emu_launch(
            name.as_ptr(),
            grid.as_ptr(),
            block.as_ptr(),
            smem_bytes,
            arg_ptrs.as_mut_ptr(),
            kinds.as_ptr().cast::<c_char>(),
            nargs,
            table.as_ptr(),
            nbufs,
            msg.as_mut_ptr().cast::<c_char>(),
            msg.len() as u64,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let mut text = CStr::from_bytes_until_nul(&msg).map(|c| c.to_string_lossy().into_owned()).unwrap_or_default();
    if text.contains("not in the emulator's launch table") {
        for (file, output) in COMPILE_FAILURES {
            text.push_str(&format!("\n{file} did not compile under the emulator:\n{output}"));
        }
    }
    Err(err(text))
}

/// Executes every launch of `plan` in order on `buffers` (the operation's own buffers, in the plan's documented
/// order), with the plan's scratch buffers allocated after them and filled with `0xFF` bytes.
pub fn run_plan(plan: &OpPlan, buffers: &mut [EmuBuffer]) -> Result<()> {
    let mut scratch = Vec::with_capacity(plan.scratch_bytes.len());
    for (i, &bytes) in plan.scratch_bytes.iter().enumerate() {
        scratch.push(EmuBuffer::poisoned(&format!("scratch{i}"), bytes)?);
    }
    let mut table: Vec<&mut EmuBuffer> = buffers.iter_mut().chain(scratch.iter_mut()).collect();
    for l in &plan.launches {
        launch_on(l.kernel, l.grid, l.block, l.smem_bytes, &l.args, &mut table)?;
    }
    Ok(())
}

/// The kernels in the emulator's launch table with their parameter kinds (`P` buffer, `i` int, `u` unsigned,
/// `f` float), in registration order.
pub fn kernels() -> Vec<(String, String)> {
    // SAFETY: the runtime returns NUL-terminated static strings for indices below the count.
    unsafe {
        let n = ffi::joule_emu_kernel_count();
        (0..n)
            .filter_map(|i| {
                let name = ffi::joule_emu_kernel_name(i);
                let sig = ffi::joule_emu_kernel_signature(i);
                if name.is_null() || sig.is_null() {
                    return None;
                }
                Some((
                    CStr::from_ptr(name).to_string_lossy().into_owned(),
                    CStr::from_ptr(sig).to_string_lossy().into_owned(),
                ))
            })
            .collect()
    }
}

/// The emulator's own f16/bf16 conversions (the code kernels run under emulation), exposed so tests can compare
/// them with the `half` crate bit for bit.
pub mod convert {
    use super::ffi;
    use std::ffi::c_void;

    fn run<I: Copy, O: Copy + Default>(kind: i32, input: &[I]) -> Vec<O> {
        let mut out = vec![O::default(); input.len()];
        // SAFETY: `input` and `out` hold `len` elements of the sizes the kind reads and writes (f32 ↔ u16).
        unsafe {
            ffi::joule_emu_convert(kind, input.as_ptr().cast::<c_void>(), out.as_mut_ptr().cast(), input.len() as u64)
        };
        out
    }
    /// f32 → f16 bits (round to nearest even).
    pub fn f32_to_f16_bits(xs: &[f32]) -> Vec<u16> {
        run(0, xs)
    }
    /// f32 → bf16 bits (round to nearest even).
    pub fn f32_to_bf16_bits(xs: &[f32]) -> Vec<u16> {
        run(1, xs)
    }
    /// f16 bits → f32 (exact).
    pub fn f16_bits_to_f32(xs: &[u16]) -> Vec<f32> {
        run(2, xs)
    }
    /// bf16 bits → f32 (exact).
    pub fn bf16_bits_to_f32(xs: &[u16]) -> Vec<f32> {
        run(3, xs)
    }
}

/// The CUDA kernels executed on the CPU under emulation, through the same launch plans as the CUDA backend.
#[derive(Debug, Clone, Copy, Default)]
pub struct EmuKernels;

impl EmuKernels {
    /// The emulated backend.
    pub fn new() -> Self {
        EmuKernels
    }
}

/// The first `n` elements of `xs` as an emulated buffer (exactly the extent the shape needs, so any access past it
/// is reported).
fn buf<T: bytemuck::Pod>(name: &str, xs: &[T], n: usize) -> Result<EmuBuffer> {
    EmuBuffer::from_slice(name, &xs[..n.min(xs.len())])
}

impl Kernels for EmuKernels {
    fn name(&self) -> String {
        "cuda-emulated".into()
    }

    fn gemm<T: Element>(&self, shape: &GemmShape, a: &[T], b: &[T], c: &mut [T]) -> Result<()> {
        shape.check_buffers(a.len(), b.len(), c.len())?;
        let c_len = shape.c_len();
        if c_len == 0 {
            return Ok(());
        }
        let plan = joule_launch::gemm::plan(shape, T::DTYPE)?;
        let mut bufs = [buf("a", a, shape.a_len())?, buf("b", b, shape.b_len())?, buf("c", c, c_len)?];
        run_plan(&plan, &mut bufs)?;
        bufs[2].copy_to(&mut c[..c_len])
    }

    fn depthwise<T: Element>(&self, shape: &DwConvShape, input: &[T], weight: &[T], out: &mut [T]) -> Result<()> {
        shape.check_dw_buffers(input.len(), weight.len(), out.len())?;
        let n = shape.dw_out_len();
        if n == 0 {
            return Ok(());
        }
        let plan = joule_launch::dwconv::depthwise_plan(shape, T::DTYPE)?;
        let mut bufs = [
            buf("input", input, shape.input_len())?,
            buf("dw_weight", weight, shape.dw_weight_len())?,
            buf("dw_out", out, n)?,
        ];
        run_plan(&plan, &mut bufs)?;
        bufs[2].copy_to(&mut out[..n])
    }

    fn pointwise<T: Element>(&self, shape: &DwConvShape, dw_out: &[T], weight: &[T], out: &mut [T]) -> Result<()> {
        shape.check_pw_buffers(dw_out.len(), weight.len(), out.len())?;
        let n = shape.out_len();
        if n == 0 {
            return Ok(());
        }
        let plan = joule_launch::dwconv::pointwise_plan(shape, T::DTYPE)?;
        let mut bufs = [
            buf("dw_out", dw_out, shape.dw_out_len())?,
            buf("pw_weight", weight, shape.pw_weight_len())?,
            buf("out", out, n)?,
        ];
        run_plan(&plan, &mut bufs)?;
        bufs[2].copy_to(&mut out[..n])
    }

    fn dwsep_fused<T: Element>(
        &self,
        shape: &DwConvShape,
        input: &[T],
        dw_weight: &[T],
        pw_weight: &[T],
        out: &mut [T],
    ) -> Result<()> {
        shape.check_fused_buffers(input.len(), dw_weight.len(), pw_weight.len(), out.len())?;
        let n = shape.out_len();
        if n == 0 {
            return Ok(());
        }
        let plan = joule_launch::dwconv::fused_plan(shape, T::DTYPE)?;
        let mut bufs = [
            buf("input", input, shape.input_len())?,
            buf("dw_weight", dw_weight, shape.dw_weight_len())?,
            buf("pw_weight", pw_weight, shape.pw_weight_len())?,
            buf("out", out, n)?,
        ];
        run_plan(&plan, &mut bufs)?;
        bufs[3].copy_to(&mut out[..n])
    }

    fn attention<T: Element>(
        &self,
        shape: &AttnShape,
        q: &[T],
        k: &[T],
        v: &[T],
        mask: Option<AttnMask<'_>>,
        out: &mut [T],
    ) -> Result<()> {
        shape.check_buffers(q.len(), k.len(), v.len(), mask.as_ref(), out.len())?;
        let n = shape.out_len();
        if n == 0 {
            return Ok(());
        }
        let plan = joule_launch::attention::plan(shape, T::DTYPE)?;
        let mut bufs = vec![
            buf("q", q, shape.q_len())?,
            buf("k", k, shape.kv_len())?,
            buf("v", v, shape.kv_len())?,
            buf("out", out, n)?,
        ];
        match mask {
            Some(AttnMask::Boolean(m)) => bufs.push(buf("mask", m, shape.mask_len())?),
            Some(AttnMask::Additive(m)) => bufs.push(buf("mask", m, shape.mask_len())?),
            None => {}
        }
        run_plan(&plan, &mut bufs)?;
        bufs[3].copy_to(&mut out[..n])
    }
}
