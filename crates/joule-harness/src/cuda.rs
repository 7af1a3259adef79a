//! CUDA executors: Joule's own kernels (`cuda`) and the cuBLAS GEMM baseline (`cublas`, `cublas-tf32`), with
//! device-resident buffers.
//!
//! `prepare` uploads the inputs once; `run` queues `iters` launches on the runtime's stream and synchronises before
//! returning, so the energy window (opened and closed around `run`) holds exactly those launches and no copy;
//! `output_f64` downloads. Without the root crate's `cuda` feature, or without a driver or device, every executor
//! reports itself unavailable with the reason (`joule::cuda` probes libraries before touching them; no panic).

use crate::catalog::ShapeSpec;
use crate::executor::{DeviceRef, Executor, PreparedCase};
use crate::inputs::CaseInputs;
use crate::plan::{Case, KernelKind};
use half::{bf16, f16};
use joule::cuda::{CudaRuntime, DeviceBuffer, DeviceMask};
use joule_core::{AttnShape, DType, DwConvShape, Element, Error, GemmShape, Result};
use std::sync::Arc;

/// Which implementation a [`CudaExecutor`] launches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CudaFlavor {
    /// Joule's kernels from `cuda/` (every kernel).
    Joule,
    /// cuBLAS GEMM; `tf32` selects TF32 tensor-core math for f32.
    Cublas {
        /// TF32 math for f32 inputs.
        tf32: bool,
    },
}

/// A CUDA backend on device 0 (the shared [`CudaRuntime`]).
pub struct CudaExecutor {
    rt: std::result::Result<Arc<CudaRuntime>, String>,
    flavor: CudaFlavor,
}

impl CudaExecutor {
    /// The executor for `flavor`; unavailable (with the reason) when CUDA cannot run here.
    pub fn new(flavor: CudaFlavor) -> Self {
        CudaExecutor { rt: CudaRuntime::shared().map_err(|e| e.to_string()), flavor }
    }
}

/// Every CUDA executor this build knows (`cuda`, `cublas`, `cublas-tf32`), available or not.
pub fn cuda_executors() -> Vec<Box<dyn Executor>> {
    vec![
        Box::new(CudaExecutor::new(CudaFlavor::Joule)),
        Box::new(CudaExecutor::new(CudaFlavor::Cublas { tf32: false })),
        Box::new(CudaExecutor::new(CudaFlavor::Cublas { tf32: true })),
    ]
}

impl Executor for CudaExecutor {
    fn name(&self) -> String {
        match self.flavor {
            CudaFlavor::Joule => "cuda".into(),
            CudaFlavor::Cublas { tf32: false } => "cublas".into(),
            CudaFlavor::Cublas { tf32: true } => "cublas-tf32".into(),
        }
    }
    fn unavailable_reason(&self) -> Option<String> {
        self.rt.as_ref().err().cloned()
    }
    fn device(&self) -> DeviceRef {
        DeviceRef::Gpu(self.rt.as_ref().map(|rt| rt.info().ordinal).unwrap_or(0))
    }
    fn supports(&self, kernel: KernelKind, dtype: DType) -> bool {
        match self.flavor {
            CudaFlavor::Joule => true,
            // TF32 only changes f32 math; for f16/bf16 it would duplicate `cublas`.
            CudaFlavor::Cublas { tf32 } => kernel == KernelKind::Gemm && (!tf32 || dtype == DType::F32),
        }
    }
    fn description(&self) -> String {
        let dev = match &self.rt {
            Ok(rt) => format!("{} ({})", rt.info().name, rt.info().arch),
            Err(e) => format!("unavailable: {e}"),
        };
        match self.flavor {
            CudaFlavor::Joule => format!("Joule CUDA kernels (cuda/*.cu via NVRTC) on {dev}, device-resident buffers"),
            CudaFlavor::Cublas { tf32: false } => format!("cuBLAS GEMM baseline (f32 math for f32) on {dev}"),
            CudaFlavor::Cublas { tf32: true } => format!("cuBLAS GEMM baseline with TF32 math for f32 on {dev}"),
        }
    }
    fn prepare(&self, case: &Case, inputs: &CaseInputs) -> Result<Box<dyn PreparedCase>> {
        let rt = self.rt.clone().map_err(Error::CudaUnavailable)?;
        if !self.supports(case.kernel, case.dtype) {
            return Err(Error::Unsupported(format!("backend `{}` does not run {}", self.name(), case.kernel)));
        }
        match case.dtype {
            DType::F32 => Ok(Box::new(DeviceCase::<f32>::new(rt, self.flavor, case, inputs)?)),
            DType::F16 => Ok(Box::new(DeviceCase::<f16>::new(rt, self.flavor, case, inputs)?)),
            DType::BF16 => Ok(Box::new(DeviceCase::<bf16>::new(rt, self.flavor, case, inputs)?)),
        }
    }
}

enum DevOp<T: Element> {
    Gemm { shape: GemmShape, a: DeviceBuffer<T>, b: DeviceBuffer<T> },
    Depthwise { shape: DwConvShape, input: DeviceBuffer<T>, weight: DeviceBuffer<T> },
    Pointwise { shape: DwConvShape, dw_out: DeviceBuffer<T>, weight: DeviceBuffer<T> },
    Fused { shape: DwConvShape, input: DeviceBuffer<T>, dw_weight: DeviceBuffer<T>, pw_weight: DeviceBuffer<T> },
    Attention { shape: AttnShape, q: DeviceBuffer<T>, k: DeviceBuffer<T>, v: DeviceBuffer<T>, mask: Option<DeviceMask> },
}

struct DeviceCase<T: Element> {
    rt: Arc<CudaRuntime>,
    flavor: CudaFlavor,
    op: DevOp<T>,
    out: DeviceBuffer<T>,
    /// What the output holds before the check call: C's initial value when beta ≠ 0, else NaN everywhere.
    out_init: Vec<T>,
}

impl<T: Element> DeviceCase<T> {
    fn new(rt: Arc<CudaRuntime>, flavor: CudaFlavor, case: &Case, inputs: &CaseInputs) -> Result<Self> {
        let up = |xs: &[f32]| rt.upload(&T::vec_from_f32(xs));
        let nan = |n: usize| vec![T::from_f32(f32::NAN); n];
        let (op, out_init) = match (&case.shape.spec, inputs) {
            (ShapeSpec::Gemm(s), CaseInputs::Gemm { a, b, c }) => {
                let init = if s.beta != 0.0 { T::vec_from_f32(c) } else { nan(s.c_len()) };
                (DevOp::Gemm { shape: *s, a: up(a)?, b: up(b)? }, init)
            }
            (ShapeSpec::DwConv(s), CaseInputs::Depthwise { input, weight }) => {
                (DevOp::Depthwise { shape: *s, input: up(input)?, weight: up(weight)? }, nan(s.dw_out_len()))
            }
            (ShapeSpec::DwConv(s), CaseInputs::Pointwise { dw_out, weight }) => {
                (DevOp::Pointwise { shape: *s, dw_out: up(dw_out)?, weight: up(weight)? }, nan(s.out_len()))
            }
            (ShapeSpec::DwConv(s), CaseInputs::DwsepFused { input, dw_weight, pw_weight }) => (
                DevOp::Fused { shape: *s, input: up(input)?, dw_weight: up(dw_weight)?, pw_weight: up(pw_weight)? },
                nan(s.out_len()),
            ),
            (ShapeSpec::Attention(s), CaseInputs::Attention { q, k, v, mask }) => {
                let mask = match mask {
                    Some(m) => Some(DeviceMask::Boolean(rt.upload(m)?)),
                    None => None,
                };
                (DevOp::Attention { shape: *s, q: up(q)?, k: up(k)?, v: up(v)?, mask }, nan(s.out_len()))
            }
            _ => return Err(Error::InvalidArgument(format!("inputs do not match case {}", case.id()))),
        };
        let out = rt.upload(&out_init)?;
        Ok(DeviceCase { rt, flavor, op, out, out_init })
    }

    fn launch(&mut self) -> Result<()> {
        let rt = &*self.rt;
        match &self.op {
            DevOp::Gemm { shape, a, b } => match self.flavor {
                CudaFlavor::Joule => rt.run_gemm(shape, a, b, &mut self.out),
                CudaFlavor::Cublas { tf32 } => rt.cublas_gemm(shape, a, b, &mut self.out, tf32),
            },
            DevOp::Depthwise { shape, input, weight } => rt.run_depthwise(shape, input, weight, &mut self.out),
            DevOp::Pointwise { shape, dw_out, weight } => rt.run_pointwise(shape, dw_out, weight, &mut self.out),
            DevOp::Fused { shape, input, dw_weight, pw_weight } => {
                rt.run_dwsep_fused(shape, input, dw_weight, pw_weight, &mut self.out)
            }
            DevOp::Attention { shape, q, k, v, mask } => rt.run_attention(shape, q, k, v, mask.as_ref(), &mut self.out),
        }
    }
}

impl<T: Element> PreparedCase for DeviceCase<T> {
    fn run(&mut self, iters: usize) -> Result<()> {
        for _ in 0..iters {
            self.launch()?;
        }
        self.rt.synchronize()
    }

    fn output_f64(&mut self) -> Result<Vec<f64>> {
        self.rt.write(&mut self.out, &self.out_init)?;
        self.launch()?;
        self.rt.synchronize()?;
        Ok(T::vec_to_f64(&self.rt.download(&self.out)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_gpu_every_cuda_backend_is_unavailable_with_a_reason_and_cublas_runs_gemm_only() {
        for e in cuda_executors() {
            if joule::cuda::probe().is_err() {
                let why = e.unavailable_reason().expect("no GPU here, so unavailable");
                assert!(!why.is_empty());
            }
            let gemm_only = e.name().starts_with("cublas");
            assert_eq!(e.supports(KernelKind::Attention, DType::F16), !gemm_only, "{}", e.name());
        }
    }
}
