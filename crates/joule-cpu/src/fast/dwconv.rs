//! Depthwise k×k, pointwise 1×1 and the fused depthwise-separable block, NHWC, f32 accumulation.

use super::convert::{narrow_into, widen_into};
use super::gemm::{Epilogue, GemmScratch, PackedB, detect_isa, gemm_block, gemm_engine};
use joule_core::{DwConvShape, Element, Result};
use rayon::prelude::*;

/// Scratch space of one worker: an input row widened to f32 (channels repeated `multiplier` times).
#[derive(Default)]
struct RowScratch {
    row: Vec<f32>,
    expanded: Vec<f32>,
}

/// Computes depthwise output row `oy` of image `n` in f32 into `out` (`out_w·dw_channels` values). `wf` holds the
/// depthwise weights widened to f32. Taps are summed in (ky, kx) order, skipping those in the padding, each as a
/// separate f32 multiply and add.
#[inline(always)]
fn dw_row_body<T: Element>(
    s: &DwConvShape,
    input: &[T],
    wf: &[f32],
    n: usize,
    oy: usize,
    out: &mut [f32],
    scratch: &mut RowScratch,
) {
    let (ow, dwc, c, mult) = (s.out_w(), s.dw_channels(), s.channels, s.multiplier);
    out.fill(0.0);
    scratch.row.resize(s.width * c, 0.0);
    for ky in 0..s.kernel_h {
        let py = oy * s.stride_h + ky * s.dilation_h;
        let Some(iy) = py.checked_sub(s.pad_top).filter(|&iy| iy < s.height) else { continue };
        widen_into(&input[(n * s.height + iy) * s.width * c..(n * s.height + iy + 1) * s.width * c], &mut scratch.row);
        // Output channel o reads input channel o / mult: repeat each value mult times, so taps are plain vectors.
        let xrow: &[f32] = if mult == 1 {
            &scratch.row
        } else {
            scratch.expanded.clear();
            scratch.expanded.extend(scratch.row.iter().flat_map(|&x| std::iter::repeat_n(x, mult)));
            &scratch.expanded
        };
        for ox in 0..ow {
            let acc = &mut out[ox * dwc..(ox + 1) * dwc];
            for kx in 0..s.kernel_w {
                let px = ox * s.stride_w + kx * s.dilation_w;
                let Some(ix) = px.checked_sub(s.pad_left).filter(|&ix| ix < s.width) else { continue };
                let x = &xrow[ix * dwc..(ix + 1) * dwc];
                let w = &wf[(ky * s.kernel_w + kx) * dwc..(ky * s.kernel_w + kx + 1) * dwc];
                for ((a, &x), &w) in acc.iter_mut().zip(x).zip(w) {
                    *a += x * w;
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn dw_row_avx512<T: Element>(
    s: &DwConvShape,
    input: &[T],
    wf: &[f32],
    n: usize,
    oy: usize,
    out: &mut [f32],
    scratch: &mut RowScratch,
) {
    dw_row_body(s, input, wf, n, oy, out, scratch)
}

/// One depthwise output row. The vector width changes with the CPU but not the arithmetic: every tap is a separate
/// multiply then add in f32 (no fused multiply-add), so the result is the same on every x86-64 CPU.
fn dw_row<T: Element>(
    s: &DwConvShape,
    input: &[T],
    wf: &[f32],
    n: usize,
    oy: usize,
    out: &mut [f32],
    scratch: &mut RowScratch,
) {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU reported AVX-512F, the only feature this function enables.
        return unsafe { dw_row_avx512(s, input, wf, n, oy, out, scratch) };
    }
    dw_row_body(s, input, wf, n, oy, out, scratch)
}

fn widen<T: Element>(xs: &[T]) -> Vec<f32> {
    let mut out = vec![0.0f32; xs.len()];
    widen_into(xs, &mut out);
    out
}

/// Depthwise step (see [`DwConvShape`]): `input`, `weight` → `out` (`dw_out_len()` elements), rounded once to `T`.
/// Parallel over output rows.
pub fn depthwise<T: Element>(shape: &DwConvShape, input: &[T], weight: &[T], out: &mut [T]) -> Result<()> {
    shape.check_dw_buffers(input.len(), weight.len(), out.len())?;
    let s = *shape;
    let (oh, row_len) = (s.out_h(), s.out_w() * s.dw_channels());
    let wf = widen(&weight[..s.dw_weight_len()]);
    out[..s.dw_out_len()].par_chunks_mut(row_len).enumerate().for_each_init(
        || (vec![0.0f32; row_len], RowScratch::default()),
        |(buf, scratch), (r, orow)| {
            dw_row(&s, input, &wf, r / oh, r % oh, buf, scratch);
            narrow_into(buf, orow);
        },
    );
    Ok(())
}

/// Pointwise step: `dw_out [pixels, dw_channels] · weight [dw_channels, out_channels]` with the GEMM engine.
pub fn pointwise<T: Element>(shape: &DwConvShape, dw_out: &[T], weight: &[T], out: &mut [T]) -> Result<()> {
    shape.check_pw_buffers(dw_out.len(), weight.len(), out.len())?;
    // Joule's own engine for every type (not the `gemm` crate that `fast::gemm` uses for f32): the fused block runs
    // the same engine tile by tile, and only the same engine gives bitwise the same sums.
    gemm_engine(&shape.pointwise_gemm(), dw_out, weight, out);
    Ok(())
}

/// Output rows per fused tile: about 32 pixels or more, so the pointwise product has enough rows to block well.
fn tile_rows(s: &DwConvShape) -> usize {
    64usize.div_ceil(s.out_w()).clamp(1, s.out_h())
}

/// Depthwise then pointwise, tile by tile: each task computes the depthwise output of a few output rows into a small
/// buffer (rounded to `T`, exactly as [`depthwise`] stores it) and multiplies that tile by the pointwise weights with
/// the same GEMM engine as [`pointwise`]. The whole depthwise output never exists, and the result is bitwise equal to
/// [`depthwise`] followed by [`pointwise`] (same f32 operations in the same order on the same rounded values).
pub fn dwsep_fused<T: Element>(
    shape: &DwConvShape,
    input: &[T],
    dw_weight: &[T],
    pw_weight: &[T],
    out: &mut [T],
) -> Result<()> {
    shape.check_fused_buffers(input.len(), dw_weight.len(), pw_weight.len(), out.len())?;
    let s = *shape;
    let (oh, ow, dwc, oc) = (s.out_h(), s.out_w(), s.dw_channels(), s.out_channels);
    let wf = widen(&dw_weight[..s.dw_weight_len()]);
    let pb = PackedB::new(dwc, oc, pw_weight, oc);
    let isa = detect_isa();
    let ep = Epilogue { alpha: 1.0, beta: 0.0, ldc: oc };
    // Tiles never straddle two images, so a tile is `rows` consecutive output rows of one image.
    let tr = tile_rows(&s);
    let per_image = oh * ow * oc;
    out[..s.out_len()].par_chunks_mut(per_image).enumerate().for_each(|(n, img_out)| {
        img_out.par_chunks_mut(tr * ow * oc).enumerate().for_each_init(
            || {
                (
                    vec![0.0f32; ow * dwc],
                    vec![T::default(); tr * ow * dwc],
                    GemmScratch::default(),
                    RowScratch::default(),
                )
            },
            |(row_f32, tile, gemm_scratch, scratch), (t, tile_out)| {
                let oy0 = t * tr;
                let rows = tr.min(oh - oy0);
                for (r, oy) in (oy0..oy0 + rows).enumerate() {
                    dw_row(&s, input, &wf, n, oy, row_f32, scratch);
                    // Rounded to T exactly as `depthwise` stores it.
                    narrow_into(row_f32, &mut tile[r * ow * dwc..(r + 1) * ow * dwc]);
                }
                gemm_block(isa, rows * ow, &tile[..rows * ow * dwc], dwc, &pb, ep, tile_out, gemm_scratch);
            },
        );
    });
    Ok(())
}
