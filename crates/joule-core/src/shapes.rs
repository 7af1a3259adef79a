//! Kernel shapes: what each kernel computes, its memory layout, validation, FLOP and byte counts.
//!
//! Every `*_len()` method returns the number of elements a buffer must hold. They never panic: on overflow they
//! return `usize::MAX` (which no buffer matches), and `validate()` reports the overflow as [`Error::SizeOverflow`].

use crate::DType;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

fn mul(xs: &[usize]) -> Option<usize> {
    xs.iter().try_fold(1usize, |acc, &x| acc.checked_mul(x))
}

fn mul_u64(xs: &[usize]) -> Option<u64> {
    xs.iter().try_fold(1u64, |acc, &x| acc.checked_mul(x as u64))
}

/// Elements spanned by `rows` rows of `cols` used columns with leading dimension `ld` (0 when empty).
fn strided_len(rows: usize, cols: usize, ld: usize) -> Option<usize> {
    if rows == 0 || cols == 0 { Some(0) } else { (rows - 1).checked_mul(ld)?.checked_add(cols) }
}

/// Checks a buffer holds at least `needed` elements.
pub(crate) fn check_buffer(buffer: &'static str, needed: usize, got: usize) -> Result<()> {
    if got >= needed { Ok(()) } else { Err(Error::BufferLength { buffer, expected: needed, got }) }
}

fn overflow(kernel: &'static str, what: &'static str) -> Error {
    Error::SizeOverflow { kernel, what }
}

/// `C = alpha·A·B + beta·C` with row-major A (m×k, leading dimension `lda`), B (k×n, `ldb`) and C (m×n, `ldc`).
///
/// `beta == 0` means C is write-only: it is never read, so NaN or Inf already in C cannot leak into the result.
/// Elements of C between `n` and `ldc` in each row are left untouched.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GemmShape {
    /// Rows of A and C.
    pub m: usize,
    /// Columns of B and C.
    pub n: usize,
    /// Columns of A, rows of B (the reduction length). May be 0: then C = beta·C.
    pub k: usize,
    /// Leading dimension (row stride, in elements) of A; at least `k`.
    pub lda: usize,
    /// Leading dimension of B; at least `n`.
    pub ldb: usize,
    /// Leading dimension of C; at least `n`.
    pub ldc: usize,
    /// Scale of the product.
    pub alpha: f32,
    /// Scale of the existing C; 0 means C is not read.
    pub beta: f32,
}

impl GemmShape {
    /// A dense `m×k · k×n` product with tight leading dimensions, alpha = 1 and beta = 0.
    pub fn new(m: usize, n: usize, k: usize) -> Self {
        GemmShape { m, n, k, lda: k, ldb: n, ldc: n, alpha: 1.0, beta: 0.0 }
    }

    /// Sets alpha and beta.
    pub fn with_scalars(mut self, alpha: f32, beta: f32) -> Self {
        self.alpha = alpha;
        self.beta = beta;
        self
    }

    /// Sets the leading dimensions.
    pub fn with_leading_dims(mut self, lda: usize, ldb: usize, ldc: usize) -> Self {
        self.lda = lda;
        self.ldb = ldb;
        self.ldc = ldc;
        self
    }

    /// Elements A must hold.
    pub fn a_len(&self) -> usize {
        strided_len(self.m, self.k, self.lda).unwrap_or(usize::MAX)
    }
    /// Elements B must hold.
    pub fn b_len(&self) -> usize {
        strided_len(self.k, self.n, self.ldb).unwrap_or(usize::MAX)
    }
    /// Elements C must hold.
    pub fn c_len(&self) -> usize {
        strided_len(self.m, self.n, self.ldc).unwrap_or(usize::MAX)
    }

    /// Rejects impossible shapes: leading dimensions too small, non-finite scalars, sizes that overflow.
    pub fn validate(&self) -> Result<()> {
        const K: &str = "gemm";
        if self.lda < self.k {
            return Err(Error::shape(K, format!("lda = {} < k = {}", self.lda, self.k)));
        }
        if self.ldb < self.n {
            return Err(Error::shape(K, format!("ldb = {} < n = {}", self.ldb, self.n)));
        }
        if self.ldc < self.n {
            return Err(Error::shape(K, format!("ldc = {} < n = {}", self.ldc, self.n)));
        }
        if !self.alpha.is_finite() || !self.beta.is_finite() {
            return Err(Error::shape(K, format!("alpha = {} and beta = {} must be finite", self.alpha, self.beta)));
        }
        strided_len(self.m, self.k, self.lda).ok_or(overflow(K, "A elements"))?;
        strided_len(self.k, self.n, self.ldb).ok_or(overflow(K, "B elements"))?;
        strided_len(self.m, self.n, self.ldc).ok_or(overflow(K, "C elements"))?;
        mul_u64(&[2, self.m, self.n, self.k]).ok_or(overflow(K, "flops"))?;
        Ok(())
    }

    /// Validates the shape and the buffer lengths together.
    pub fn check_buffers(&self, a: usize, b: usize, c: usize) -> Result<()> {
        self.validate()?;
        check_buffer("a", self.a_len(), a)?;
        check_buffer("b", self.b_len(), b)?;
        check_buffer("c", self.c_len(), c)
    }

    /// Floating-point operations: 2·m·n·k (one multiply and one add per term; the alpha/beta epilogue is not counted).
    pub fn flops(&self) -> u64 {
        mul_u64(&[2, self.m, self.n, self.k]).unwrap_or(u64::MAX)
    }

    /// Bytes moved if every input is read once and every output written once: A, B, C written, plus C read when
    /// beta ≠ 0.
    pub fn min_bytes(&self, dtype: DType) -> u64 {
        let c_reads = if self.beta != 0.0 { 2 } else { 1 };
        let elems = (self.m * self.k) as u64 + (self.k * self.n) as u64 + c_reads * (self.m * self.n) as u64;
        elems * dtype.size_bytes() as u64
    }
}

/// A depthwise-separable convolution (the MobileNet block without its normalisation and activation), NHWC:
///
/// 1. depthwise `kernel_h×kernel_w`: input `[batch, height, width, channels]`, weights
///    `[kernel_h, kernel_w, channels·multiplier]`, output `[batch, out_h, out_w, channels·multiplier]`, where output
///    channel `o` reads input channel `o / multiplier`; taps that fall in the padding read zero;
/// 2. pointwise 1×1: a GEMM of the depthwise output `[batch·out_h·out_w, channels·multiplier]` with weights
///    `[channels·multiplier, out_channels]` into `[batch, out_h, out_w, out_channels]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DwConvShape {
    /// Images in the batch (N).
    pub batch: usize,
    /// Input height (H).
    pub height: usize,
    /// Input width (W).
    pub width: usize,
    /// Input channels (C).
    pub channels: usize,
    /// Depthwise kernel height.
    pub kernel_h: usize,
    /// Depthwise kernel width.
    pub kernel_w: usize,
    /// Vertical stride.
    pub stride_h: usize,
    /// Horizontal stride.
    pub stride_w: usize,
    /// Zero rows added above.
    pub pad_top: usize,
    /// Zero rows added below.
    pub pad_bottom: usize,
    /// Zero columns added left.
    pub pad_left: usize,
    /// Zero columns added right.
    pub pad_right: usize,
    /// Vertical dilation (1 = dense).
    pub dilation_h: usize,
    /// Horizontal dilation.
    pub dilation_w: usize,
    /// Depthwise outputs per input channel.
    pub multiplier: usize,
    /// Pointwise output channels.
    pub out_channels: usize,
}

impl DwConvShape {
    /// A square `k×k` depthwise conv with the given stride, "same" padding, no dilation, multiplier 1, followed by a
    /// pointwise conv to `out_channels`.
    pub fn new(
        batch: usize,
        height: usize,
        width: usize,
        channels: usize,
        k: usize,
        stride: usize,
        out_channels: usize,
    ) -> Self {
        DwConvShape {
            batch,
            height,
            width,
            channels,
            kernel_h: k,
            kernel_w: k,
            stride_h: stride,
            stride_w: stride,
            pad_top: 0,
            pad_bottom: 0,
            pad_left: 0,
            pad_right: 0,
            dilation_h: 1,
            dilation_w: 1,
            multiplier: 1,
            out_channels,
        }
        .with_same_padding()
    }

    /// Sets TensorFlow-style "same" padding: `out = ceil(in / stride)`, the total padding split with the extra row or
    /// column at the bottom/right. Call after changing kernel, stride or dilation.
    pub fn with_same_padding(mut self) -> Self {
        fn same(input: usize, k: usize, stride: usize, dilation: usize) -> (usize, usize) {
            let reach = dilation.saturating_mul(k.saturating_sub(1)).saturating_add(1);
            let stride = stride.max(1);
            let out = input.div_ceil(stride);
            let total = (out.saturating_sub(1).saturating_mul(stride) + reach).saturating_sub(input);
            (total / 2, total - total / 2)
        }
        (self.pad_top, self.pad_bottom) = same(self.height, self.kernel_h, self.stride_h, self.dilation_h);
        (self.pad_left, self.pad_right) = same(self.width, self.kernel_w, self.stride_w, self.dilation_w);
        self
    }

    /// Sets the same padding on every side.
    pub fn with_padding(mut self, pad: usize) -> Self {
        (self.pad_top, self.pad_bottom, self.pad_left, self.pad_right) = (pad, pad, pad, pad);
        self
    }

    /// Sets the dilation in both directions (padding is not changed).
    pub fn with_dilation(mut self, dilation: usize) -> Self {
        (self.dilation_h, self.dilation_w) = (dilation, dilation);
        self
    }

    /// Sets the channel multiplier.
    pub fn with_multiplier(mut self, multiplier: usize) -> Self {
        self.multiplier = multiplier;
        self
    }

    /// Rows spanned by one dilated kernel window: `dilation_h·(kernel_h − 1) + 1`.
    pub fn reach_h(&self) -> usize {
        self.dilation_h.saturating_mul(self.kernel_h.saturating_sub(1)).saturating_add(1)
    }
    /// Columns spanned by one dilated kernel window.
    pub fn reach_w(&self) -> usize {
        self.dilation_w.saturating_mul(self.kernel_w.saturating_sub(1)).saturating_add(1)
    }

    fn out_dim(input: usize, pad_a: usize, pad_b: usize, reach: usize, stride: usize) -> usize {
        let padded = input.saturating_add(pad_a).saturating_add(pad_b);
        if padded < reach || stride == 0 { 0 } else { (padded - reach) / stride + 1 }
    }

    /// Output height.
    pub fn out_h(&self) -> usize {
        Self::out_dim(self.height, self.pad_top, self.pad_bottom, self.reach_h(), self.stride_h)
    }
    /// Output width.
    pub fn out_w(&self) -> usize {
        Self::out_dim(self.width, self.pad_left, self.pad_right, self.reach_w(), self.stride_w)
    }
    /// Depthwise output channels: `channels·multiplier` (the pointwise reduction length).
    pub fn dw_channels(&self) -> usize {
        self.channels.saturating_mul(self.multiplier)
    }
    /// Output pixels: `batch·out_h·out_w` (the pointwise GEMM's m).
    pub fn out_pixels(&self) -> usize {
        mul(&[self.batch, self.out_h(), self.out_w()]).unwrap_or(usize::MAX)
    }

    /// Elements of the input.
    pub fn input_len(&self) -> usize {
        mul(&[self.batch, self.height, self.width, self.channels]).unwrap_or(usize::MAX)
    }
    /// Elements of the depthwise weights.
    pub fn dw_weight_len(&self) -> usize {
        mul(&[self.kernel_h, self.kernel_w, self.channels, self.multiplier]).unwrap_or(usize::MAX)
    }
    /// Elements of the depthwise output.
    pub fn dw_out_len(&self) -> usize {
        mul(&[self.out_pixels(), self.channels, self.multiplier]).unwrap_or(usize::MAX)
    }
    /// Elements of the pointwise weights.
    pub fn pw_weight_len(&self) -> usize {
        mul(&[self.channels, self.multiplier, self.out_channels]).unwrap_or(usize::MAX)
    }
    /// Elements of the final output.
    pub fn out_len(&self) -> usize {
        mul(&[self.out_pixels(), self.out_channels]).unwrap_or(usize::MAX)
    }

    /// The pointwise step as a GEMM: `[out_pixels, dw_channels] · [dw_channels, out_channels]`.
    pub fn pointwise_gemm(&self) -> GemmShape {
        GemmShape::new(self.out_pixels(), self.out_channels, self.dw_channels())
    }

    /// Rejects impossible shapes: zero sizes, strides, dilations or multipliers, a dilated kernel that does not fit
    /// in the padded input, sizes that overflow.
    pub fn validate(&self) -> Result<()> {
        const K: &str = "dwconv";
        for (name, v) in [
            ("batch", self.batch),
            ("height", self.height),
            ("width", self.width),
            ("channels", self.channels),
            ("kernel_h", self.kernel_h),
            ("kernel_w", self.kernel_w),
            ("stride_h", self.stride_h),
            ("stride_w", self.stride_w),
            ("dilation_h", self.dilation_h),
            ("dilation_w", self.dilation_w),
            ("multiplier", self.multiplier),
            ("out_channels", self.out_channels),
        ] {
            if v == 0 {
                return Err(Error::shape(K, format!("{name} must be at least 1")));
            }
        }
        let reach_h = self.dilation_h.checked_mul(self.kernel_h - 1).and_then(|r| r.checked_add(1));
        let reach_w = self.dilation_w.checked_mul(self.kernel_w - 1).and_then(|r| r.checked_add(1));
        let (reach_h, reach_w) =
            (reach_h.ok_or(overflow(K, "kernel reach"))?, reach_w.ok_or(overflow(K, "kernel reach"))?);
        let padded_h = self.height.checked_add(self.pad_top).and_then(|x| x.checked_add(self.pad_bottom));
        let padded_w = self.width.checked_add(self.pad_left).and_then(|x| x.checked_add(self.pad_right));
        let (padded_h, padded_w) =
            (padded_h.ok_or(overflow(K, "padded height"))?, padded_w.ok_or(overflow(K, "padded width"))?);
        if padded_h < reach_h || padded_w < reach_w {
            return Err(Error::shape(
                K,
                format!("dilated kernel {reach_h}×{reach_w} does not fit in the padded input {padded_h}×{padded_w}"),
            ));
        }
        mul(&[self.batch, self.height, self.width, self.channels]).ok_or(overflow(K, "input elements"))?;
        mul(&[self.kernel_h, self.kernel_w, self.channels, self.multiplier]).ok_or(overflow(K, "depthwise weights"))?;
        let pixels = mul(&[self.batch, self.out_h(), self.out_w()]).ok_or(overflow(K, "output pixels"))?;
        mul(&[pixels, self.channels, self.multiplier]).ok_or(overflow(K, "depthwise output"))?;
        mul(&[self.channels, self.multiplier, self.out_channels]).ok_or(overflow(K, "pointwise weights"))?;
        mul(&[pixels, self.out_channels]).ok_or(overflow(K, "output elements"))?;
        mul_u64(&[2, pixels, self.channels, self.multiplier, self.kernel_h, self.kernel_w])
            .and_then(|dw| dw.checked_add(mul_u64(&[2, pixels, self.channels, self.multiplier, self.out_channels])?))
            .ok_or(overflow(K, "flops"))?;
        Ok(())
    }

    /// FLOPs of the depthwise step: 2·pixels·C·multiplier·kh·kw (padding taps counted, as is conventional).
    pub fn dw_flops(&self) -> u64 {
        mul_u64(&[2, self.out_pixels(), self.channels, self.multiplier, self.kernel_h, self.kernel_w])
            .unwrap_or(u64::MAX)
    }
    /// FLOPs of the pointwise step: 2·pixels·C·multiplier·out_channels.
    pub fn pw_flops(&self) -> u64 {
        mul_u64(&[2, self.out_pixels(), self.channels, self.multiplier, self.out_channels]).unwrap_or(u64::MAX)
    }
    /// FLOPs of the whole block (depthwise + pointwise).
    pub fn flops(&self) -> u64 {
        self.dw_flops().saturating_add(self.pw_flops())
    }

    /// Minimum bytes of the depthwise step: input and weights read, depthwise output written.
    pub fn dw_min_bytes(&self, dtype: DType) -> u64 {
        (self.input_len() as u64 + self.dw_weight_len() as u64 + self.dw_out_len() as u64) * dtype.size_bytes() as u64
    }
    /// Minimum bytes of the pointwise step: depthwise output and weights read, output written.
    pub fn pw_min_bytes(&self, dtype: DType) -> u64 {
        (self.dw_out_len() as u64 + self.pw_weight_len() as u64 + self.out_len() as u64) * dtype.size_bytes() as u64
    }
    /// Minimum bytes of the fused block: the depthwise output never leaves the chip.
    pub fn min_bytes(&self, dtype: DType) -> u64 {
        (self.input_len() as u64 + self.dw_weight_len() as u64 + self.pw_weight_len() as u64 + self.out_len() as u64)
            * dtype.size_bytes() as u64
    }

    /// Validates the shape and the buffers of the depthwise step.
    pub fn check_dw_buffers(&self, input: usize, weight: usize, out: usize) -> Result<()> {
        self.validate()?;
        check_buffer("input", self.input_len(), input)?;
        check_buffer("dw_weight", self.dw_weight_len(), weight)?;
        check_buffer("dw_out", self.dw_out_len(), out)
    }
    /// Validates the shape and the buffers of the pointwise step.
    pub fn check_pw_buffers(&self, dw_out: usize, weight: usize, out: usize) -> Result<()> {
        self.validate()?;
        check_buffer("dw_out", self.dw_out_len(), dw_out)?;
        check_buffer("pw_weight", self.pw_weight_len(), weight)?;
        check_buffer("out", self.out_len(), out)
    }
    /// Validates the shape and the buffers of the fused block.
    pub fn check_fused_buffers(&self, input: usize, dw_weight: usize, pw_weight: usize, out: usize) -> Result<()> {
        self.validate()?;
        check_buffer("input", self.input_len(), input)?;
        check_buffer("dw_weight", self.dw_weight_len(), dw_weight)?;
        check_buffer("pw_weight", self.pw_weight_len(), pw_weight)?;
        check_buffer("out", self.out_len(), out)
    }
}

/// Which kind of mask an attention call takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MaskKind {
    /// No mask.
    #[default]
    None,
    /// `u8` per (batch, query, key): nonzero = attend, 0 = masked out.
    Boolean,
    /// `f32` per (batch, query, key) added to the scaled score; `-inf` masks out.
    Additive,
}

/// Mask data for an attention call, shaped `[batch, lq, lk]` and broadcast over heads.
#[derive(Debug, Clone, Copy)]
pub enum AttnMask<'a> {
    /// nonzero = attend, 0 = masked out.
    Boolean(&'a [u8]),
    /// Added to the scaled scores; `f32::NEG_INFINITY` masks out.
    Additive(&'a [f32]),
}

impl AttnMask<'_> {
    /// The kind of this mask.
    pub fn kind(&self) -> MaskKind {
        match self {
            AttnMask::Boolean(_) => MaskKind::Boolean,
            AttnMask::Additive(_) => MaskKind::Additive,
        }
    }
    /// Number of mask elements.
    pub fn len(&self) -> usize {
        match self {
            AttnMask::Boolean(m) => m.len(),
            AttnMask::Additive(m) => m.len(),
        }
    }
    /// Whether the mask has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Scaled dot-product attention, `softmax(scale·Q·Kᵀ + mask)·V` per (batch, head).
///
/// Layout: Q and O are `[batch, heads, lq, head_dim]`, K and V `[batch, heads, lk, head_dim]`, all contiguous.
/// Causal masking aligns bottom-right: query `i` sees keys `j ≤ i + lk − lq`, so when `lq > lk` the first `lq − lk`
/// rows see no key. A query row that sees no key (causal or masked) outputs exactly 0, never NaN.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AttnShape {
    /// Batch size.
    pub batch: usize,
    /// Attention heads.
    pub heads: usize,
    /// Query sequence length.
    pub lq: usize,
    /// Key/value sequence length (may be 0: every row then outputs 0).
    pub lk: usize,
    /// Head dimension.
    pub head_dim: usize,
    /// Score scale; `None` means `1/sqrt(head_dim)`.
    pub scale: Option<f32>,
    /// Causal masking, aligned bottom-right.
    pub causal: bool,
    /// Which mask the call passes, if any.
    pub mask: MaskKind,
}

impl AttnShape {
    /// Non-causal, unmasked attention with the default scale.
    pub fn new(batch: usize, heads: usize, lq: usize, lk: usize, head_dim: usize) -> Self {
        AttnShape { batch, heads, lq, lk, head_dim, scale: None, causal: false, mask: MaskKind::None }
    }
    /// Sets causal masking.
    pub fn with_causal(mut self, causal: bool) -> Self {
        self.causal = causal;
        self
    }
    /// Sets the mask kind.
    pub fn with_mask(mut self, mask: MaskKind) -> Self {
        self.mask = mask;
        self
    }
    /// Sets an explicit scale.
    pub fn with_scale(mut self, scale: f32) -> Self {
        self.scale = Some(scale);
        self
    }

    /// The scale applied to Q·Kᵀ.
    pub fn scale(&self) -> f32 {
        self.scale.unwrap_or_else(|| 1.0 / (self.head_dim.max(1) as f32).sqrt())
    }

    /// Whether causal masking lets query `i` see key `j` (bottom-right alignment). Always true when not causal.
    pub fn causal_allows(&self, i: usize, j: usize) -> bool {
        !self.causal || j + self.lq <= i + self.lk
    }

    /// Elements of Q (and of the output).
    pub fn q_len(&self) -> usize {
        mul(&[self.batch, self.heads, self.lq, self.head_dim]).unwrap_or(usize::MAX)
    }
    /// Elements of K (and of V).
    pub fn kv_len(&self) -> usize {
        mul(&[self.batch, self.heads, self.lk, self.head_dim]).unwrap_or(usize::MAX)
    }
    /// Elements of the output.
    pub fn out_len(&self) -> usize {
        self.q_len()
    }
    /// Elements of the mask (`[batch, lq, lk]`), 0 when there is none.
    pub fn mask_len(&self) -> usize {
        match self.mask {
            MaskKind::None => 0,
            _ => mul(&[self.batch, self.lq, self.lk]).unwrap_or(usize::MAX),
        }
    }

    /// Rejects impossible shapes: zero batch, heads or head_dim, a non-finite or non-positive scale, overflow.
    pub fn validate(&self) -> Result<()> {
        const K: &str = "attention";
        for (name, v) in [("batch", self.batch), ("heads", self.heads), ("head_dim", self.head_dim)] {
            if v == 0 {
                return Err(Error::shape(K, format!("{name} must be at least 1")));
            }
        }
        if let Some(s) = self.scale
            && (!s.is_finite() || s <= 0.0)
        {
            return Err(Error::shape(K, format!("scale = {s} must be finite and positive")));
        }
        mul(&[self.batch, self.heads, self.lq, self.head_dim]).ok_or(overflow(K, "Q elements"))?;
        mul(&[self.batch, self.heads, self.lk, self.head_dim]).ok_or(overflow(K, "K/V elements"))?;
        mul(&[self.batch, self.lq, self.lk]).ok_or(overflow(K, "mask elements"))?;
        mul_u64(&[4, self.batch, self.heads, self.lq, self.lk, self.head_dim]).ok_or(overflow(K, "flops"))?;
        Ok(())
    }

    /// Validates the shape, the buffers and that the mask matches [`AttnShape::mask`].
    pub fn check_buffers(&self, q: usize, k: usize, v: usize, mask: Option<&AttnMask<'_>>, out: usize) -> Result<()> {
        self.validate()?;
        check_buffer("q", self.q_len(), q)?;
        check_buffer("k", self.kv_len(), k)?;
        check_buffer("v", self.kv_len(), v)?;
        check_buffer("out", self.out_len(), out)?;
        let given = mask.map(|m| m.kind()).unwrap_or(MaskKind::None);
        if given != self.mask {
            return Err(Error::InvalidArgument(format!(
                "shape declares mask {:?} but the call passes {given:?}",
                self.mask
            )));
        }
        if let Some(m) = mask {
            check_buffer("mask", self.mask_len(), m.len())?;
        }
        Ok(())
    }

    /// FLOPs: 4·batch·heads·lq·lk·head_dim (Q·Kᵀ and P·V), halved when causal (the usual convention).
    pub fn flops(&self) -> u64 {
        let full = mul_u64(&[4, self.batch, self.heads, self.lq, self.lk, self.head_dim]).unwrap_or(u64::MAX);
        if self.causal { full / 2 } else { full }
    }

    /// Minimum bytes: Q, K, V and the mask read once, O written once; never an lq×lk matrix.
    pub fn min_bytes(&self, dtype: DType) -> u64 {
        let elems = 2 * self.q_len() as u64 + 2 * self.kv_len() as u64;
        let mask_bytes = match self.mask {
            MaskKind::None => 0,
            MaskKind::Boolean => self.mask_len() as u64,
            MaskKind::Additive => 4 * self.mask_len() as u64,
        };
        elems * dtype.size_bytes() as u64 + mask_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gemm_validation_and_counts() {
        let s = GemmShape::new(3, 5, 7);
        s.validate().unwrap();
        assert_eq!(s.flops(), 2 * 3 * 5 * 7);
        assert_eq!(s.min_bytes(DType::F16), 2 * (21 + 35 + 15));
        assert_eq!(s.with_scalars(1.0, 0.5).min_bytes(DType::F32), 4 * (21 + 35 + 30));
        assert!(matches!(s.with_leading_dims(6, 5, 5).validate(), Err(Error::InvalidShape { .. })));
        assert!(matches!(s.with_scalars(f32::NAN, 0.0).validate(), Err(Error::InvalidShape { .. })));
        let huge = GemmShape::new(usize::MAX / 2, 4, 4);
        assert!(matches!(huge.validate(), Err(Error::SizeOverflow { .. })));
        assert_eq!(huge.a_len(), usize::MAX);
        GemmShape::new(4, 4, 0).validate().unwrap();
        assert_eq!(GemmShape::new(4, 4, 0).a_len(), 0);
        assert_eq!(GemmShape::new(2, 3, 4).with_leading_dims(10, 8, 9).a_len(), 14);
    }

    #[test]
    fn dwconv_same_padding_and_out_dims() {
        let s = DwConvShape::new(1, 112, 112, 32, 3, 1, 64);
        assert_eq!((s.pad_top, s.pad_bottom, s.out_h(), s.out_w()), (1, 1, 112, 112));
        let s = DwConvShape::new(1, 56, 56, 144, 3, 2, 24);
        assert_eq!((s.pad_top, s.pad_bottom, s.out_h()), (0, 1, 28));
        let s = DwConvShape::new(2, 7, 9, 3, 3, 2, 5).with_dilation(2).with_same_padding();
        assert_eq!((s.out_h(), s.out_w()), (4, 5));
        s.validate().unwrap();
        assert_eq!(s.dw_flops(), 2 * 2 * 4 * 5 * 3 * 9);
        let bad = DwConvShape { stride_h: 0, ..s };
        assert!(bad.validate().is_err());
        let too_small = DwConvShape { pad_top: 0, pad_bottom: 0, height: 2, ..DwConvShape::new(1, 2, 8, 1, 5, 1, 1) };
        assert!(too_small.validate().is_err());
    }

    #[test]
    fn attention_causal_bottom_right() {
        let s = AttnShape::new(1, 1, 2, 5, 8).with_causal(true);
        assert!(s.causal_allows(0, 3) && !s.causal_allows(0, 4) && s.causal_allows(1, 4));
        let s = AttnShape::new(1, 1, 5, 2, 8).with_causal(true);
        assert!(!s.causal_allows(2, 0) && s.causal_allows(3, 0) && !s.causal_allows(3, 1));
        assert_eq!(s.flops(), 4 * 5 * 2 * 8 / 2);
        assert!((AttnShape::new(1, 1, 1, 1, 64).scale() - 0.125).abs() < 1e-7);
        assert!(AttnShape::new(1, 1, 1, 1, 64).with_scale(-1.0).validate().is_err());
        assert!(AttnShape::new(1, 0, 1, 1, 64).validate().is_err());
        let s = AttnShape::new(1, 1, 4, 4, 8).with_mask(MaskKind::Boolean);
        let m = vec![1u8; 16];
        s.check_buffers(32, 32, 32, Some(&AttnMask::Boolean(&m)), 32).unwrap();
        assert!(s.check_buffers(32, 32, 32, None, 32).is_err());
        assert!(s.check_buffers(32, 32, 32, Some(&AttnMask::Boolean(&m[..15])), 32).is_err());
    }
}
