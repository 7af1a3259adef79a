//! Launch plans for the CUDA kernels in `cuda/`.
//!
//! A plan says, for one operation call, which kernels to launch (symbol and source file), with which grid, block,
//! dynamic shared memory and arguments. It is pure data computed from the shape, so the CUDA backend (cudarc) and
//! the CPU emulator (joule-emu) launch every kernel exactly alike, and the compile checks know every kernel.
//!
//! Buffer arguments are indices into the call's buffer list: first the operation's own buffers in the documented
//! order (e.g. GEMM: 0 = A, 1 = B, 2 = C), then the plan's scratch buffers.
#![deny(missing_docs)]

pub mod attention;
pub mod dwconv;
pub mod gemm;

use joule_core::{DType, Error, Result};

/// The kernel sources, embedded: `(file name, text)`. `common.cuh` is included by the others.
pub const SOURCES: &[(&str, &str)] = &[
    ("common.cuh", include_str!("../../../cuda/common.cuh")),
    ("gemm.cu", include_str!("../../../cuda/gemm.cu")),
    ("dwconv.cu", include_str!("../../../cuda/dwconv.cu")),
    ("attention.cu", include_str!("../../../cuda/attention.cu")),
];

/// The text of an embedded source file.
pub fn source(file: &str) -> Option<&'static str> {
    SOURCES.iter().find(|(name, _)| *name == file).map(|(_, text)| *text)
}

/// One kernel argument.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Arg {
    /// A device pointer: index into the call's buffer list.
    Buf(usize),
    /// A 32-bit signed integer (dimensions, strides).
    I32(i32),
    /// A 32-bit float (alpha, beta, scale).
    F32(f32),
}

/// One kernel launch.
#[derive(Debug, Clone, PartialEq)]
pub struct LaunchPlan {
    /// The kernel's symbol, `{op}_{variant}_{dtype}`.
    pub kernel: &'static str,
    /// The source file that defines it.
    pub source: &'static str,
    /// Grid dimensions (blocks).
    pub grid: [u32; 3],
    /// Block dimensions (threads).
    pub block: [u32; 3],
    /// Dynamic shared memory in bytes (above 48 KiB needs the attribute set by the launcher).
    pub smem_bytes: u32,
    /// Arguments, in the kernel's parameter order.
    pub args: Vec<Arg>,
}

/// All launches of one operation call, in order, and the scratch buffers they need.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OpPlan {
    /// Launches in stream order.
    pub launches: Vec<LaunchPlan>,
    /// Sizes in bytes of the scratch buffers (indices follow the operation's own buffers).
    pub scratch_bytes: Vec<usize>,
}

/// What the compile and resource checks need to know about a kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelInfo {
    /// Symbol.
    pub name: &'static str,
    /// Source file.
    pub source: &'static str,
    /// Storage type.
    pub dtype: DType,
    /// Whether the kernel must use tensor cores (HMMA in its SASS).
    pub tensor_cores: bool,
    /// Whether it is a hot kernel, where register spills are not allowed.
    pub hot: bool,
}

/// Every kernel in `cuda/`.
pub fn kernels() -> Vec<KernelInfo> {
    [gemm::KERNELS, dwconv::KERNELS, attention::KERNELS].concat()
}

/// Converts a dimension to the kernels' `int`, or says the shape is too large for the CUDA kernels.
pub fn dim(value: usize, what: &str) -> Result<i32> {
    i32::try_from(value)
        .map_err(|_| Error::Unsupported(format!("{what} = {value} exceeds the CUDA kernels' 32-bit index range")))
}

/// `ceil(a / b)` as a grid dimension.
pub fn blocks(a: usize, b: usize) -> Result<u32> {
    u32::try_from(a.div_ceil(b))
        .map_err(|_| Error::Unsupported(format!("grid of {} blocks is too large", a.div_ceil(b))))
}
