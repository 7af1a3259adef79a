//! The interface every backend implements, so tests and the harness are written once.

use crate::{AttnMask, AttnShape, DwConvShape, Element, GemmShape, Result};

/// One backend's implementations of Joule's kernels on host slices (a CUDA backend copies to and from the device).
///
/// Every method validates the shape and the buffer lengths first and returns a typed error instead of panicking.
/// Outputs are written completely (every element of the output region); inputs are never modified.
pub trait Kernels {
    /// Backend name as it appears in results: `cpu`, `cuda`, `cuda-emulated`, ...
    fn name(&self) -> String;

    /// `C = alpha·A·B + beta·C` (see [`GemmShape`]); beta = 0 never reads C.
    fn gemm<T: Element>(&self, shape: &GemmShape, a: &[T], b: &[T], c: &mut [T]) -> Result<()>;

    /// Depthwise step of [`DwConvShape`]: `input`, `weight` → `out` (`dw_out_len()` elements).
    fn depthwise<T: Element>(&self, shape: &DwConvShape, input: &[T], weight: &[T], out: &mut [T]) -> Result<()>;

    /// Pointwise step of [`DwConvShape`]: `dw_out`, `weight` → `out` (`out_len()` elements).
    fn pointwise<T: Element>(&self, shape: &DwConvShape, dw_out: &[T], weight: &[T], out: &mut [T]) -> Result<()>;

    /// Depthwise then pointwise without materialising the whole depthwise output. The depthwise values are rounded
    /// to `T` before the pointwise product, exactly as the two-step path stores them, so both paths agree.
    fn dwsep_fused<T: Element>(
        &self,
        shape: &DwConvShape,
        input: &[T],
        dw_weight: &[T],
        pw_weight: &[T],
        out: &mut [T],
    ) -> Result<()>;

    /// Scaled dot-product attention (see [`AttnShape`]); `mask` must match `shape.mask`.
    fn attention<T: Element>(
        &self,
        shape: &AttnShape,
        q: &[T],
        k: &[T],
        v: &[T],
        mask: Option<AttnMask<'_>>,
        out: &mut [T],
    ) -> Result<()>;
}
