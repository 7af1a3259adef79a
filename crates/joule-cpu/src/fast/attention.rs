//! Fused attention with an online softmax over key blocks (the FlashAttention recurrence), f32 throughout.
//!
//! Each task owns one block of [`BQ`] query rows of one (batch, head). It walks the keys in blocks of [`BK`]: widens
//! the K and V block to f32, computes the block of scores `scale·q·kᵀ (+ additive mask)`, and folds it into running
//! row maxima `m`, denominators `l` and unnormalised outputs `o` (rescaled by `exp(m_old − m_new)` when the maximum
//! grows). Memory per task is `O((BQ + 2·BK)·head_dim + BQ·BK)`; no Lq×Lk matrix is ever formed. A row whose scores
//! are all masked keeps `l = 0` and is written as exactly 0.

use super::convert::{narrow_into, widen_into};
use joule_core::{AttnMask, AttnShape, Element, Result};
use rayon::prelude::*;

/// Query rows per task.
pub(crate) const BQ: usize = 32;
/// Keys per block of the online softmax.
pub(crate) const BK: usize = 64;

/// `exp(x)` in f32 for the softmax (arguments are ≤ 0 there): Cody–Waite range reduction `x = n·ln2 + r`,
/// `|r| ≤ ln2/2`, and the Cephes `expf` polynomial, about 1 ulp; written without branches so a loop over it
/// vectorises (libm's `expf` is a call per element and dominated the kernel). Below −87 the result is 0 (f32's
/// normal range ends at e^−87.3), so `exp(−inf) = 0`; NaN stays NaN.
#[inline(always)]
fn exp_f32(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const C1: f32 = 0.693_359_4; // ln 2, high part (exact in f32)
    const C2: f32 = -2.121_944_4e-4; // ln 2 − C1
    const ROUND: f32 = 12_582_912.0; // 1.5·2^23: adding it rounds to an integer (round to nearest even)
    let xc = x.clamp(-87.0, 88.0);
    let n = (xc * LOG2E + ROUND) - ROUND;
    let r = (xc - n * C1) - n * C2;
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let e = p * r * r + r + 1.0;
    let scale = f32::from_bits(((n as i32 + 127) as u32) << 23);
    let y = e * scale;
    if x.is_nan() {
        x
    } else if x < -87.0 {
        0.0
    } else {
        y
    }
}

struct Scratch {
    q: Vec<f32>,
    krow: Vec<f32>,
    kt: Vec<f32>,
    v: Vec<f32>,
    s: Vec<f32>,
    o: Vec<f32>,
    m: Vec<f32>,
    l: Vec<f32>,
}

impl Scratch {
    fn new(d: usize) -> Self {
        Scratch {
            q: vec![0.0; BQ * d],
            krow: vec![0.0; BK * d],
            kt: vec![0.0; BK * d],
            v: vec![0.0; BK * d],
            s: vec![0.0; BQ * BK],
            o: vec![0.0; BQ * d],
            m: vec![0.0; BQ],
            l: vec![0.0; BQ],
        }
    }
}

/// One (batch, head, query block): rows `i0..i0 + rows` of the head whose Q starts at `q` and K/V at `k`/`v`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn block_body<T: Element>(
    s: &AttnShape,
    b: usize,
    i0: usize,
    rows: usize,
    q: &[T],
    k: &[T],
    v: &[T],
    mask: Option<AttnMask<'_>>,
    out: &mut [T],
    w: &mut Scratch,
) {
    let (lq, lk, d) = (s.lq, s.lk, s.head_dim);
    let scale = s.scale();
    widen_into(&q[i0 * d..(i0 + rows) * d], &mut w.q[..rows * d]);
    w.o[..rows * d].fill(0.0);
    w.m[..rows].fill(f32::NEG_INFINITY);
    w.l[..rows].fill(0.0);
    // Causal: the last row of the block sees keys j < i0 + rows + lk − lq; later key blocks are skipped entirely.
    let key_end = if s.causal { (i0 + rows + lk).saturating_sub(lq).min(lk) } else { lk };
    let mut j0 = 0;
    while j0 < key_end {
        let cols = BK.min(key_end - j0);
        // K block widened into `o`-sized scratch then transposed to [d][BK]: a row of scores is then a sum of
        // axpys over the keys (vectorised across keys, no horizontal reductions). V stays [cols][d].
        widen_into(&v[j0 * d..(j0 + cols) * d], &mut w.v[..cols * d]);
        widen_into(&k[j0 * d..(j0 + cols) * d], &mut w.krow[..cols * d]);
        for c in 0..cols {
            for t in 0..d {
                w.kt[t * BK + c] = w.krow[c * d + t];
            }
        }
        for r in 0..rows {
            let i = i0 + r;
            let qr = &w.q[r * d..(r + 1) * d];
            let srow = &mut w.s[r * BK..r * BK + cols];
            srow.fill(0.0);
            for (t, &qv) in qr.iter().enumerate() {
                for (sc, &kv) in srow.iter_mut().zip(&w.kt[t * BK..t * BK + cols]) {
                    *sc += qv * kv;
                }
            }
            let mut blk_max = f32::NEG_INFINITY;
            let plain = !s.causal && mask.is_none();
            for (c, sc) in srow.iter_mut().enumerate() {
                let x = scale * *sc;
                *sc = if plain {
                    x
                } else {
                    let j = j0 + c;
                    let m_idx = (b * lq + i) * lk + j;
                    match mask {
                        _ if !s.causal_allows(i, j) => f32::NEG_INFINITY,
                        Some(AttnMask::Boolean(m)) if m[m_idx] == 0 => f32::NEG_INFINITY,
                        Some(AttnMask::Additive(m)) => x + m[m_idx],
                        _ => x,
                    }
                };
                blk_max = blk_max.max(*sc);
            }
            let m_new = w.m[r].max(blk_max);
            if m_new == f32::NEG_INFINITY {
                continue; // nothing visible yet in this row
            }
            let corr = exp_f32(w.m[r] - m_new); // exp(-inf) = 0 on the first visible block
            w.m[r] = m_new;
            let orow = &mut w.o[r * d..(r + 1) * d];
            if corr != 1.0 {
                for x in orow.iter_mut() {
                    *x *= corr;
                }
            }
            for sc in srow.iter_mut() {
                *sc = exp_f32(*sc - m_new);
            }
            let mut sum = 0.0f32;
            for (c, &p) in srow.iter().enumerate() {
                if p == 0.0 {
                    continue;
                }
                sum += p;
                for (o, &vv) in orow.iter_mut().zip(&w.v[c * d..(c + 1) * d]) {
                    *o += p * vv;
                }
            }
            w.l[r] = w.l[r] * corr + sum;
        }
        j0 += cols;
    }
    for r in 0..rows {
        let l = w.l[r];
        let orow = &mut w.o[r * d..(r + 1) * d];
        // l = 0: the row saw no key; exactly 0 (o is still all zeros, but say it rather than rely on it).
        let inv = if l > 0.0 { 1.0 / l } else { 0.0 };
        for x in orow.iter_mut() {
            *x = if l > 0.0 { *x * inv } else { 0.0 };
        }
    }
    narrow_into(&w.o[..rows * d], &mut out[..rows * d]);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
fn block_avx512<T: Element>(
    s: &AttnShape,
    b: usize,
    i0: usize,
    rows: usize,
    q: &[T],
    k: &[T],
    v: &[T],
    mask: Option<AttnMask<'_>>,
    out: &mut [T],
    w: &mut Scratch,
) {
    block_body(s, b, i0, rows, q, k, v, mask, out, w)
}

/// Scaled dot-product attention (see [`AttnShape`]): `softmax(scale·Q·Kᵀ + mask)·V` per (batch, head), parallel over
/// (batch, head, block of query rows). Causal masks align bottom-right; a row that sees no key outputs exactly 0.
pub fn attention<T: Element>(
    shape: &AttnShape,
    q: &[T],
    k: &[T],
    v: &[T],
    mask: Option<AttnMask<'_>>,
    out: &mut [T],
) -> Result<()> {
    shape.check_buffers(q.len(), k.len(), v.len(), mask.as_ref(), out.len())?;
    let s = *shape;
    let (lq, lk, d) = (s.lq, s.lk, s.head_dim);
    let out = &mut out[..s.out_len()];
    if out.is_empty() {
        return Ok(());
    }
    #[cfg(target_arch = "x86_64")]
    let avx512 = is_x86_feature_detected!("avx512f");
    out.par_chunks_mut(lq * d).enumerate().for_each(|(bh, head_out)| {
        let b = bh / s.heads;
        let qh = &q[bh * lq * d..(bh + 1) * lq * d];
        let (kh, vh) = (&k[bh * lk * d..(bh + 1) * lk * d], &v[bh * lk * d..(bh + 1) * lk * d]);
        head_out.par_chunks_mut(BQ * d).enumerate().for_each_init(
            || Scratch::new(d),
            |w, (qb, blk_out)| {
                let (i0, rows) = (qb * BQ, blk_out.len() / d);
                #[cfg(target_arch = "x86_64")]
                if avx512 {
                    // SAFETY: the CPU reported AVX-512F, the only feature this function enables.
                    return unsafe { block_avx512(&s, b, i0, rows, qh, kh, vh, mask, blk_out, w) };
                }
                block_body(&s, b, i0, rows, qh, kh, vh, mask, blk_out, w)
            },
        );
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::exp_f32;

    #[test]
    fn exp_f32_is_within_a_few_ulp_of_exp_and_handles_the_softmax_edge_cases() {
        let mut worst = 0.0f64;
        for i in 0..=200_000 {
            let x = -87.0f32 + 87.0 * i as f32 / 200_000.0;
            let want = (x as f64).exp();
            worst = worst.max(((exp_f32(x) as f64) - want).abs() / want);
        }
        assert!(worst < 3.0 * 2f64.powi(-24), "worst relative error {worst:e}");
        assert_eq!(exp_f32(0.0), 1.0);
        assert_eq!(exp_f32(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_f32(-1000.0), 0.0);
        assert!(exp_f32(f32::NAN).is_nan());
    }
}
