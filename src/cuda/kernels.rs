//! Joule's operations on the device: device-resident `run_*` methods of [`CudaRuntime`] (no copies; for the
//! harness) and [`CudaKernels`], the [`Kernels`] implementation on host slices (copies in, runs, copies out).

use super::runtime::{CudaRuntime, DeviceBuffer, DeviceMask};
use crate::{AttnMask, AttnShape, DwConvShape, Element, Error, GemmShape, Kernels, Result};
use std::sync::Arc;

impl CudaRuntime {
    /// `C = alpha·A·B + beta·C` on device buffers (see [`GemmShape`]); queued, not waited for.
    pub fn run_gemm<T: Element>(
        &self,
        shape: &GemmShape,
        a: &DeviceBuffer<T>,
        b: &DeviceBuffer<T>,
        c: &mut DeviceBuffer<T>,
    ) -> Result<()> {
        shape.check_buffers(a.len(), b.len(), c.len())?;
        let plan = joule_launch::gemm::plan(shape, T::DTYPE)?;
        let bufs = [self.ptr(a), self.ptr(b), self.ptr_mut(c)];
        // SAFETY: the lengths were checked against the shape the plan was made from; `c` is borrowed mutably.
        unsafe { self.execute("gemm", &plan, &bufs) }
    }

    /// The depthwise step on device buffers; queued, not waited for.
    pub fn run_depthwise<T: Element>(
        &self,
        shape: &DwConvShape,
        input: &DeviceBuffer<T>,
        weight: &DeviceBuffer<T>,
        out: &mut DeviceBuffer<T>,
    ) -> Result<()> {
        shape.check_dw_buffers(input.len(), weight.len(), out.len())?;
        let plan = joule_launch::dwconv::depthwise_plan(shape, T::DTYPE)?;
        let bufs = [self.ptr(input), self.ptr(weight), self.ptr_mut(out)];
        // SAFETY: as in run_gemm.
        unsafe { self.execute("depthwise", &plan, &bufs) }
    }

    /// The pointwise step on device buffers; queued, not waited for.
    pub fn run_pointwise<T: Element>(
        &self,
        shape: &DwConvShape,
        dw_out: &DeviceBuffer<T>,
        weight: &DeviceBuffer<T>,
        out: &mut DeviceBuffer<T>,
    ) -> Result<()> {
        shape.check_pw_buffers(dw_out.len(), weight.len(), out.len())?;
        let plan = joule_launch::dwconv::pointwise_plan(shape, T::DTYPE)?;
        let bufs = [self.ptr(dw_out), self.ptr(weight), self.ptr_mut(out)];
        // SAFETY: as in run_gemm.
        unsafe { self.execute("pointwise", &plan, &bufs) }
    }

    /// The fused depthwise + pointwise block on device buffers; queued, not waited for.
    pub fn run_dwsep_fused<T: Element>(
        &self,
        shape: &DwConvShape,
        input: &DeviceBuffer<T>,
        dw_weight: &DeviceBuffer<T>,
        pw_weight: &DeviceBuffer<T>,
        out: &mut DeviceBuffer<T>,
    ) -> Result<()> {
        shape.check_fused_buffers(input.len(), dw_weight.len(), pw_weight.len(), out.len())?;
        let plan = joule_launch::dwconv::fused_plan(shape, T::DTYPE)?;
        let bufs = [self.ptr(input), self.ptr(dw_weight), self.ptr(pw_weight), self.ptr_mut(out)];
        // SAFETY: as in run_gemm.
        unsafe { self.execute("dwsep_fused", &plan, &bufs) }
    }

    /// Attention on device buffers; `mask` must match `shape.mask`. Queued, not waited for.
    pub fn run_attention<T: Element>(
        &self,
        shape: &AttnShape,
        q: &DeviceBuffer<T>,
        k: &DeviceBuffer<T>,
        v: &DeviceBuffer<T>,
        mask: Option<&DeviceMask>,
        out: &mut DeviceBuffer<T>,
    ) -> Result<()> {
        shape.validate()?;
        let given = mask.map(|m| m.kind()).unwrap_or(crate::MaskKind::None);
        if given != shape.mask {
            return Err(Error::InvalidArgument(format!(
                "shape declares mask {:?} but the call passes {given:?}",
                shape.mask
            )));
        }
        for (name, need, got) in [
            ("q", shape.q_len(), q.len()),
            ("k", shape.kv_len(), k.len()),
            ("v", shape.kv_len(), v.len()),
            ("out", shape.out_len(), out.len()),
            ("mask", shape.mask_len(), mask.map_or(0, |m| m.len())),
        ] {
            if got < need {
                return Err(Error::BufferLength { buffer: name, expected: need, got });
            }
        }
        let plan = joule_launch::attention::plan(shape, T::DTYPE)?;
        let mut bufs = vec![self.ptr(q), self.ptr(k), self.ptr(v), self.ptr_mut(out)];
        if let Some(m) = mask {
            bufs.push(m.ptr(&self.stream));
        }
        // SAFETY: as in run_gemm.
        unsafe { self.execute("attention", &plan, &bufs) }
    }
}

/// The CUDA backend on host slices (backend name `cuda`): each call uploads its inputs, runs the kernels of
/// `cuda/` and downloads the output. For timing, use the device-resident `run_*` methods of [`CudaRuntime`].
#[derive(Debug, Clone)]
pub struct CudaKernels {
    rt: Arc<CudaRuntime>,
}

impl CudaKernels {
    /// On the shared runtime (device 0); `Error::CudaUnavailable` when there is no usable CUDA here.
    pub fn new() -> Result<Self> {
        Ok(CudaKernels { rt: CudaRuntime::shared()? })
    }
    /// On a given runtime.
    pub fn with_runtime(rt: Arc<CudaRuntime>) -> Self {
        CudaKernels { rt }
    }
    /// The runtime.
    pub fn runtime(&self) -> &Arc<CudaRuntime> {
        &self.rt
    }
}

impl Kernels for CudaKernels {
    fn name(&self) -> String {
        "cuda".to_string()
    }

    fn gemm<T: Element>(&self, shape: &GemmShape, a: &[T], b: &[T], c: &mut [T]) -> Result<()> {
        shape.check_buffers(a.len(), b.len(), c.len())?;
        let rt = &self.rt;
        let (da, db) = (rt.upload(&a[..shape.a_len()])?, rt.upload(&b[..shape.b_len()])?);
        // C goes up too: beta ≠ 0 reads it, and the elements between n and ldc must come back untouched.
        let c = &mut c[..shape.c_len()];
        let mut dc = rt.upload(c)?;
        rt.run_gemm(shape, &da, &db, &mut dc)?;
        rt.read(&dc, c)
    }

    fn depthwise<T: Element>(&self, shape: &DwConvShape, input: &[T], weight: &[T], out: &mut [T]) -> Result<()> {
        shape.check_dw_buffers(input.len(), weight.len(), out.len())?;
        let rt = &self.rt;
        let (di, dw) = (rt.upload(&input[..shape.input_len()])?, rt.upload(&weight[..shape.dw_weight_len()])?);
        let mut dout = rt.alloc::<T>(shape.dw_out_len())?;
        rt.run_depthwise(shape, &di, &dw, &mut dout)?;
        rt.read(&dout, &mut out[..shape.dw_out_len()])
    }

    fn pointwise<T: Element>(&self, shape: &DwConvShape, dw_out: &[T], weight: &[T], out: &mut [T]) -> Result<()> {
        shape.check_pw_buffers(dw_out.len(), weight.len(), out.len())?;
        let rt = &self.rt;
        let (dd, dw) = (rt.upload(&dw_out[..shape.dw_out_len()])?, rt.upload(&weight[..shape.pw_weight_len()])?);
        let mut dout = rt.alloc::<T>(shape.out_len())?;
        rt.run_pointwise(shape, &dd, &dw, &mut dout)?;
        rt.read(&dout, &mut out[..shape.out_len()])
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
        let rt = &self.rt;
        let di = rt.upload(&input[..shape.input_len()])?;
        let ddw = rt.upload(&dw_weight[..shape.dw_weight_len()])?;
        let dpw = rt.upload(&pw_weight[..shape.pw_weight_len()])?;
        let mut dout = rt.alloc::<T>(shape.out_len())?;
        rt.run_dwsep_fused(shape, &di, &ddw, &dpw, &mut dout)?;
        rt.read(&dout, &mut out[..shape.out_len()])
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
        let rt = &self.rt;
        let dq = rt.upload(&q[..shape.q_len()])?;
        let dk = rt.upload(&k[..shape.kv_len()])?;
        let dv = rt.upload(&v[..shape.kv_len()])?;
        let dmask = match mask {
            None => None,
            Some(AttnMask::Boolean(m)) => Some(DeviceMask::Boolean(rt.upload(&m[..shape.mask_len()])?)),
            Some(AttnMask::Additive(m)) => Some(DeviceMask::Additive(rt.upload(&m[..shape.mask_len()])?)),
        };
        let mut dout = rt.alloc::<T>(shape.out_len())?;
        rt.run_attention(shape, &dq, &dk, &dv, dmask.as_ref(), &mut dout)?;
        rt.read(&dout, &mut out[..shape.out_len()])
    }
}
