//! Float64 oracles: written to be obviously right, not fast.
//!
//! Each oracle takes the inputs a kernel saw (already rounded to the storage type `T`), widens them to f64, computes
//! in f64 with plain loops, and returns the whole output as `Vec<f64>`. No intermediate is rounded to `T`, so the
//! difference between a kernel and its oracle measures only the kernel's own arithmetic (see
//! [`joule_core::ErrorStats`] for the pass rule).

use joule_core::{AttnMask, AttnShape, DwConvShape, Element, GemmShape, Result};

/// `C = alpha·A·B + beta·C` in f64. Returns the full `c_len()` buffer: the elements between `n` and `ldc` in each
/// row are copied from `c` unchanged; with `beta = 0` the output region of `c` is never read.
pub fn gemm<T: Element>(shape: &GemmShape, a: &[T], b: &[T], c: &[T]) -> Result<Vec<f64>> {
    shape.check_buffers(a.len(), b.len(), c.len())?;
    let s = shape;
    // Copy C first so the leading-dimension padding comes along; the output region is overwritten below.
    let mut out: Vec<f64> = c[..s.c_len()].iter().map(|x| x.to_f64()).collect();
    let (alpha, beta) = (s.alpha as f64, s.beta as f64);
    for i in 0..s.m {
        for j in 0..s.n {
            let mut acc = 0.0f64;
            for p in 0..s.k {
                acc += a[i * s.lda + p].to_f64() * b[p * s.ldb + j].to_f64();
            }
            let idx = i * s.ldc + j;
            out[idx] = if s.beta == 0.0 { alpha * acc } else { alpha * acc + beta * c[idx].to_f64() };
        }
    }
    Ok(out)
}

/// The depthwise step in f64: `[batch, out_h, out_w, channels·multiplier]`. Output channel `o` reads input channel
/// `o / multiplier`; taps in the padding read zero.
pub fn depthwise<T: Element>(shape: &DwConvShape, input: &[T], weight: &[T]) -> Result<Vec<f64>> {
    shape.check_dw_buffers(input.len(), weight.len(), shape.dw_out_len())?;
    let s = shape;
    let (oh, ow, dwc) = (s.out_h(), s.out_w(), s.dw_channels());
    let mut out = vec![0.0f64; s.dw_out_len()];
    for n in 0..s.batch {
        for oy in 0..oh {
            for ox in 0..ow {
                for o in 0..dwc {
                    let c = o / s.multiplier;
                    let mut acc = 0.0f64;
                    for ky in 0..s.kernel_h {
                        for kx in 0..s.kernel_w {
                            // Position in the padded input, then in the real one (None = padding).
                            let py = oy * s.stride_h + ky * s.dilation_h;
                            let px = ox * s.stride_w + kx * s.dilation_w;
                            let (Some(iy), Some(ix)) = (py.checked_sub(s.pad_top), px.checked_sub(s.pad_left)) else {
                                continue;
                            };
                            if iy >= s.height || ix >= s.width {
                                continue;
                            }
                            let x = input[((n * s.height + iy) * s.width + ix) * s.channels + c].to_f64();
                            let w = weight[(ky * s.kernel_w + kx) * dwc + o].to_f64();
                            acc += x * w;
                        }
                    }
                    out[((n * oh + oy) * ow + ox) * dwc + o] = acc;
                }
            }
        }
    }
    Ok(out)
}

/// The pointwise step in f64: `dw_out [pixels, dw_channels] · weight [dw_channels, out_channels]`.
pub fn pointwise<T: Element>(shape: &DwConvShape, dw_out: &[T], weight: &[T]) -> Result<Vec<f64>> {
    shape.check_pw_buffers(dw_out.len(), weight.len(), shape.out_len())?;
    let x: Vec<f64> = dw_out.iter().map(|v| v.to_f64()).collect();
    Ok(pointwise_f64(shape, &x, weight))
}

fn pointwise_f64<T: Element>(shape: &DwConvShape, dw_out: &[f64], weight: &[T]) -> Vec<f64> {
    let (pixels, kc, oc) = (shape.out_pixels(), shape.dw_channels(), shape.out_channels);
    let mut out = vec![0.0f64; shape.out_len()];
    for p in 0..pixels {
        for j in 0..oc {
            let mut acc = 0.0f64;
            for c in 0..kc {
                acc += dw_out[p * kc + c] * weight[c * oc + j].to_f64();
            }
            out[p * oc + j] = acc;
        }
    }
    out
}

/// The whole depthwise-separable block in f64: depthwise then pointwise, with no rounding in between.
pub fn dwsep<T: Element>(shape: &DwConvShape, input: &[T], dw_weight: &[T], pw_weight: &[T]) -> Result<Vec<f64>> {
    shape.check_fused_buffers(input.len(), dw_weight.len(), pw_weight.len(), shape.out_len())?;
    let dw = depthwise(shape, input, dw_weight)?;
    Ok(pointwise_f64(shape, &dw, pw_weight))
}

/// Scaled dot-product attention in f64 with a plain two-pass softmax per query row.
///
/// A key is visible to a query when causal masking allows it ([`AttnShape::causal_allows`], bottom-right) and the
/// boolean mask (if any) is nonzero; an additive mask is added to the scaled score. A row whose visible scores are
/// all `-inf` (or that sees no key at all) outputs exactly 0.
pub fn attention<T: Element>(
    shape: &AttnShape,
    q: &[T],
    k: &[T],
    v: &[T],
    mask: Option<AttnMask<'_>>,
) -> Result<Vec<f64>> {
    shape.check_buffers(q.len(), k.len(), v.len(), mask.as_ref(), shape.out_len())?;
    let s = shape;
    let (lq, lk, d) = (s.lq, s.lk, s.head_dim);
    let scale = s.scale() as f64;
    let mut out = vec![0.0f64; s.out_len()];
    let mut scores = vec![f64::NEG_INFINITY; lk];
    for b in 0..s.batch {
        for h in 0..s.heads {
            let q_base = (b * s.heads + h) * lq * d;
            let kv_base = (b * s.heads + h) * lk * d;
            for i in 0..lq {
                // Pass 1: scores and their maximum.
                let mut max = f64::NEG_INFINITY;
                for (j, score) in scores.iter_mut().enumerate() {
                    let m_idx = (b * lq + i) * lk + j;
                    let visible = s.causal_allows(i, j)
                        && match mask {
                            Some(AttnMask::Boolean(m)) => m[m_idx] != 0,
                            _ => true,
                        };
                    *score = if visible {
                        let mut dot = 0.0f64;
                        for t in 0..d {
                            dot += q[q_base + i * d + t].to_f64() * k[kv_base + j * d + t].to_f64();
                        }
                        let add = match mask {
                            Some(AttnMask::Additive(m)) => m[m_idx] as f64,
                            _ => 0.0,
                        };
                        scale * dot + add
                    } else {
                        f64::NEG_INFINITY
                    };
                    max = max.max(*score);
                }
                let row = &mut out[q_base + i * d..q_base + (i + 1) * d];
                if max == f64::NEG_INFINITY {
                    continue; // sees no key: exactly 0 (already)
                }
                // Pass 2: normalised weights times V.
                let denom: f64 = scores.iter().map(|&x| (x - max).exp()).sum();
                for (j, &x) in scores.iter().enumerate() {
                    let p = (x - max).exp() / denom;
                    if p == 0.0 {
                        continue;
                    }
                    for t in 0..d {
                        row[t] += p * v[kv_base + j * d + t].to_f64();
                    }
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gemm_oracle_matches_a_hand_computed_product_and_keeps_padding() {
        // [1 2; 3 4] · [5 6; 7 8] = [19 22; 43 50]; ldc = 3 leaves one padding element per row.
        let s = GemmShape::new(2, 2, 2).with_leading_dims(2, 2, 3).with_scalars(2.0, 0.0);
        let c = [f32::NAN, f32::NAN, 9.0, f32::INFINITY, f32::NAN];
        let out = gemm(&s, &[1.0f32, 2.0, 3.0, 4.0], &[5.0, 6.0, 7.0, 8.0], &c).unwrap();
        assert_eq!(out[..3], [38.0, 44.0, 9.0]);
        assert_eq!(out[3..], [86.0, 100.0]);
        let s = s.with_scalars(1.0, 0.5).with_leading_dims(2, 2, 2);
        let out = gemm(&s, &[1.0f32, 2.0, 3.0, 4.0], &[5.0, 6.0, 7.0, 8.0], &[2.0, 2.0, 2.0, 2.0]).unwrap();
        assert_eq!(out, [20.0, 23.0, 44.0, 51.0]);
    }

    #[test]
    fn depthwise_oracle_matches_a_hand_computed_3x3() {
        // One channel 3×3 input 1..9, 3×3 all-ones kernel, same padding: the centre sums everything (45), the corner
        // 1+2+4+5 = 12.
        let s = DwConvShape::new(1, 3, 3, 1, 3, 1, 1);
        let x: Vec<f32> = (1..=9).map(|v| v as f32).collect();
        let out = depthwise(&s, &x, &[1.0f32; 9]).unwrap();
        assert_eq!((out[4], out[0], out[8]), (45.0, 12.0, 28.0));
    }

    #[test]
    fn attention_oracle_averages_values_for_equal_scores_and_zeroes_unseen_rows() {
        // q·k = 0 for every key: uniform weights, output = mean of V rows.
        let s = AttnShape::new(1, 1, 1, 2, 2);
        let out = attention(&s, &[0.0f32, 0.0], &[1.0, 2.0, 3.0, 4.0], &[1.0, 3.0, 5.0, 7.0], None).unwrap();
        assert_eq!(out, [3.0, 5.0]);
        let s = AttnShape::new(1, 1, 3, 1, 2).with_causal(true);
        let out = attention(&s, &[1.0f32; 6], &[1.0, 1.0], &[2.0, 3.0], None).unwrap();
        assert_eq!(out, [0.0, 0.0, 0.0, 0.0, 2.0, 3.0]);
    }
}
