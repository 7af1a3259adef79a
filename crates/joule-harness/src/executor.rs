//! Backends as the measuring loop sees them.
//!
//! An [`Executor`] turns a case and its inputs into a [`PreparedCase`]: buffers where the backend wants them (host
//! memory for the CPU; device memory for CUDA, uploaded once in `prepare`), so the timed loop only launches work.
//! A CUDA executor implements the same two traits in a `cuda` module (behind the root crate's `cuda` feature): it
//! uploads in `prepare`, launches `iters` times in `run` and synchronises its stream before returning, and copies
//! back only in `output_f64`. The loop itself never changes.

use crate::catalog::ShapeSpec;
use crate::inputs::CaseInputs;
use crate::plan::{BackendStatus, Case, KernelKind};
use half::{bf16, f16};
use joule_core::{AttnMask, AttnShape, DType, DwConvShape, Element, Error, GemmShape, Kernels, Result};
use std::sync::Arc;

/// The device a backend runs on, which decides the energy meter a case is measured with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceRef {
    /// The host CPU.
    Cpu,
    /// A GPU, by CUDA ordinal.
    Gpu(usize),
}

/// A backend the harness can measure.
pub trait Executor {
    /// Backend name as it appears in results (`cpu`, `cuda`, `cublas`, ...).
    fn name(&self) -> String;
    /// `None` when the backend can run here, else why not (a normal, reported state).
    fn unavailable_reason(&self) -> Option<String>;
    /// The device whose meter measures this backend.
    fn device(&self) -> DeviceRef;
    /// One line describing the implementation (shown in results and the report).
    fn description(&self) -> String;
    /// Whether this backend runs `kernel` at `dtype` (a GEMM-only baseline answers false for the rest, and the plan
    /// leaves those cases out).
    fn supports(&self, _kernel: KernelKind, _dtype: DType) -> bool {
        true
    }
    /// Copies the inputs where the backend wants them and returns a case ready to run.
    fn prepare(&self, case: &Case, inputs: &CaseInputs) -> Result<Box<dyn PreparedCase>>;

    /// The name and availability, as the plan needs them.
    fn status(&self) -> BackendStatus {
        let supported = KernelKind::ALL
            .iter()
            .flat_map(|&k| DType::ALL.iter().filter(move |&&d| self.supports(k, d)).map(move |&d| (k, d)))
            .collect::<Vec<_>>();
        let all = supported.len() == KernelKind::ALL.len() * DType::ALL.len();
        BackendStatus {
            name: self.name(),
            unavailable: self.unavailable_reason(),
            supports: (!all).then_some(supported),
        }
    }
}

/// A case ready to run: inputs and outputs in place.
pub trait PreparedCase {
    /// Runs the kernel `iters` times back to back. Returns only when the work is finished (a GPU backend
    /// synchronises its stream before returning), so a meter window opened before and closed after contains exactly
    /// these calls.
    fn run(&mut self, iters: usize) -> Result<()>;
    /// Runs the kernel once on a fresh output poisoned with NaN (where the output is write-only) and returns the
    /// whole output widened to f64, for the oracle check. Not timed.
    fn output_f64(&mut self) -> Result<Vec<f64>>;
}

/// An executor for any [`Kernels`] implementation working on host slices (the CPU kernels; a CUDA `Kernels` that
/// copies per call could use it too, but would time the copies).
pub struct HostExecutor<K> {
    kernels: Arc<K>,
    description: String,
}

impl<K: Kernels + 'static> HostExecutor<K> {
    /// Wraps `kernels`; `description` says what they are.
    pub fn new(kernels: K, description: impl Into<String>) -> Self {
        HostExecutor { kernels: Arc::new(kernels), description: description.into() }
    }
}

impl<K: Kernels + 'static> Executor for HostExecutor<K> {
    fn name(&self) -> String {
        self.kernels.name()
    }
    fn unavailable_reason(&self) -> Option<String> {
        None
    }
    fn device(&self) -> DeviceRef {
        DeviceRef::Cpu
    }
    fn description(&self) -> String {
        self.description.clone()
    }
    fn prepare(&self, case: &Case, inputs: &CaseInputs) -> Result<Box<dyn PreparedCase>> {
        match case.dtype {
            DType::F32 => Ok(Box::new(HostCase::<K, f32>::new(self.kernels.clone(), case, inputs)?)),
            DType::F16 => Ok(Box::new(HostCase::<K, f16>::new(self.kernels.clone(), case, inputs)?)),
            DType::BF16 => Ok(Box::new(HostCase::<K, bf16>::new(self.kernels.clone(), case, inputs)?)),
        }
    }
}

/// The CPU backend: `joule_cpu::fast` (rayon, f32 accumulation) on `threads` threads.
pub fn cpu_executor() -> HostExecutor<joule_cpu::CpuKernels> {
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    HostExecutor::new(
        joule_cpu::CpuKernels,
        format!("joule-cpu fast kernels (rayon, f32 accumulation, {threads} hardware threads)"),
    )
}

enum HostOp<T> {
    Gemm { shape: GemmShape, a: Vec<T>, b: Vec<T>, c0: Vec<T> },
    Depthwise { shape: DwConvShape, input: Vec<T>, weight: Vec<T> },
    Pointwise { shape: DwConvShape, dw_out: Vec<T>, weight: Vec<T> },
    Fused { shape: DwConvShape, input: Vec<T>, dw_weight: Vec<T>, pw_weight: Vec<T> },
    Attention { shape: AttnShape, q: Vec<T>, k: Vec<T>, v: Vec<T>, mask: Option<Vec<u8>> },
}

struct HostCase<K, T> {
    kernels: Arc<K>,
    op: HostOp<T>,
    out: Vec<T>,
}

fn to_t<T: Element>(xs: &[f32]) -> Vec<T> {
    T::vec_from_f32(xs)
}

impl<K: Kernels, T: Element> HostCase<K, T> {
    fn new(kernels: Arc<K>, case: &Case, inputs: &CaseInputs) -> Result<Self> {
        let mismatch = || Error::InvalidArgument(format!("inputs do not match case {}", case.id()));
        let (op, out_len) = match (&case.shape.spec, inputs) {
            (ShapeSpec::Gemm(s), CaseInputs::Gemm { a, b, c }) => {
                let c0 = if s.beta != 0.0 { to_t(c) } else { vec![T::default(); s.c_len()] };
                (HostOp::Gemm { shape: *s, a: to_t(a), b: to_t(b), c0 }, s.c_len())
            }
            (ShapeSpec::DwConv(s), CaseInputs::Depthwise { input, weight }) => {
                (HostOp::Depthwise { shape: *s, input: to_t(input), weight: to_t(weight) }, s.dw_out_len())
            }
            (ShapeSpec::DwConv(s), CaseInputs::Pointwise { dw_out, weight }) => {
                (HostOp::Pointwise { shape: *s, dw_out: to_t(dw_out), weight: to_t(weight) }, s.out_len())
            }
            (ShapeSpec::DwConv(s), CaseInputs::DwsepFused { input, dw_weight, pw_weight }) => (
                HostOp::Fused { shape: *s, input: to_t(input), dw_weight: to_t(dw_weight), pw_weight: to_t(pw_weight) },
                s.out_len(),
            ),
            (ShapeSpec::Attention(s), CaseInputs::Attention { q, k, v, mask }) => {
                (HostOp::Attention { shape: *s, q: to_t(q), k: to_t(k), v: to_t(v), mask: mask.clone() }, s.out_len())
            }
            _ => return Err(mismatch()),
        };
        let mut this = HostCase { kernels, op, out: vec![T::default(); out_len] };
        this.reset_output();
        Ok(this)
    }

    /// C starts from its initial value when beta ≠ 0; every write-only output starts as NaN.
    fn reset_output(&mut self) {
        match &self.op {
            HostOp::Gemm { shape, c0, .. } if shape.beta != 0.0 => self.out.copy_from_slice(c0),
            _ => self.out.fill(T::from_f32(f32::NAN)),
        }
    }

    fn call(&mut self) -> Result<()> {
        let k = &*self.kernels;
        match &self.op {
            HostOp::Gemm { shape, a, b, .. } => k.gemm(shape, a, b, &mut self.out),
            HostOp::Depthwise { shape, input, weight } => k.depthwise(shape, input, weight, &mut self.out),
            HostOp::Pointwise { shape, dw_out, weight } => k.pointwise(shape, dw_out, weight, &mut self.out),
            HostOp::Fused { shape, input, dw_weight, pw_weight } => {
                k.dwsep_fused(shape, input, dw_weight, pw_weight, &mut self.out)
            }
            HostOp::Attention { shape, q, k: kk, v, mask } => {
                k.attention(shape, q, kk, v, mask.as_deref().map(AttnMask::Boolean), &mut self.out)
            }
        }
    }
}

impl<K: Kernels, T: Element> PreparedCase for HostCase<K, T> {
    fn run(&mut self, iters: usize) -> Result<()> {
        for _ in 0..iters {
            self.call()?;
        }
        Ok(())
    }

    fn output_f64(&mut self) -> Result<Vec<f64>> {
        self.reset_output();
        self.call()?;
        Ok(T::vec_to_f64(&self.out))
    }
}
