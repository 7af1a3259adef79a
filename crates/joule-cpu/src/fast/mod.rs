//! Parallel CPU kernels (rayon): every kernel for f32, f16 and bf16, generic over [`Element`], accumulating in f32
//! and rounding once to the storage type. Each validates its shape and buffer lengths first and returns a typed
//! [`joule_core::Error`] instead of panicking.
//!
//! Outputs are written completely; inputs are never modified; results do not depend on the number of threads.

mod attention;
mod dwconv;
mod gemm;

pub use attention::attention;
pub use dwconv::{depthwise, dwsep_fused, pointwise};
pub use gemm::gemm;

use joule_core::{AttnMask, AttnShape, DwConvShape, Element, GemmShape, Kernels, Result};

/// The CPU backend: [`Kernels`] implemented by this module's functions. Uses rayon's global thread pool.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuKernels;

impl Kernels for CpuKernels {
    fn name(&self) -> String {
        "cpu".to_string()
    }

    fn gemm<T: Element>(&self, shape: &GemmShape, a: &[T], b: &[T], c: &mut [T]) -> Result<()> {
        gemm(shape, a, b, c)
    }

    fn depthwise<T: Element>(&self, shape: &DwConvShape, input: &[T], weight: &[T], out: &mut [T]) -> Result<()> {
        depthwise(shape, input, weight, out)
    }

    fn pointwise<T: Element>(&self, shape: &DwConvShape, dw_out: &[T], weight: &[T], out: &mut [T]) -> Result<()> {
        pointwise(shape, dw_out, weight, out)
    }

    fn dwsep_fused<T: Element>(
        &self,
        shape: &DwConvShape,
        input: &[T],
        dw_weight: &[T],
        pw_weight: &[T],
        out: &mut [T],
    ) -> Result<()> {
        dwsep_fused(shape, input, dw_weight, pw_weight, out)
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
        attention(shape, q, k, v, mask, out)
    }
}
