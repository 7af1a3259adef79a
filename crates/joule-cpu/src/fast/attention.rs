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

#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    const L: usize = 16;
    let mut acc = [0.0f32; L];
    let (ac, bc) = (a.chunks_exact(L), b.chunks_exact(L));
    let (ar, br) = (ac.remainder(), bc.remainder());
    for (x, y) in ac.zip(bc) {
        for i in 0..L {
            acc[i] += x[i] * y[i];
        }
    }
    for (i, (x, y)) in ar.iter().zip(br).enumerate() {
        acc[i] += x * y;
    }
    // Pairwise tree sum of the lanes.
    let mut w = L;
    while w > 1 {
        w /= 2;
        for i in 0..w {
            acc[i] += acc[i + w];
        }
    }
    acc[0]
}

struct Scratch {
    q: Vec<f32>,
    k: Vec<f32>,
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
            k: vec![0.0; BK * d],
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
        widen_into(&k[j0 * d..(j0 + cols) * d], &mut w.k[..cols * d]);
        widen_into(&v[j0 * d..(j0 + cols) * d], &mut w.v[..cols * d]);
        for r in 0..rows {
            let i = i0 + r;
            let qr = &w.q[r * d..(r + 1) * d];
            let srow = &mut w.s[r * BK..r * BK + cols];
            let mut blk_max = f32::NEG_INFINITY;
            for (c, sc) in srow.iter_mut().enumerate() {
                let j = j0 + c;
                let m_idx = (b * lq + i) * lk + j;
                let visible = s.causal_allows(i, j)
                    && match mask {
                        Some(AttnMask::Boolean(m)) => m[m_idx] != 0,
                        _ => true,
                    };
                *sc = if visible {
                    let x = scale * dot(qr, &w.k[c * d..(c + 1) * d]);
                    match mask {
                        Some(AttnMask::Additive(m)) => x + m[m_idx],
                        _ => x,
                    }
                } else {
                    f32::NEG_INFINITY
                };
                blk_max = blk_max.max(*sc);
            }
            let m_new = w.m[r].max(blk_max);
            if m_new == f32::NEG_INFINITY {
                continue; // nothing visible yet in this row
            }
            let corr = (w.m[r] - m_new).exp(); // exp(-inf) = 0 on the first visible block
            w.m[r] = m_new;
            let orow = &mut w.o[r * d..(r + 1) * d];
            if corr != 1.0 {
                for x in orow.iter_mut() {
                    *x *= corr;
                }
            }
            let mut sum = 0.0f32;
            for (c, &sc) in srow.iter().enumerate() {
                let p = (sc - m_new).exp();
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
