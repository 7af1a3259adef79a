//! Cache-blocked, parallel GEMM with f32 accumulation for every storage type.
//!
//! # Design
//!
//! f16 and bf16 have no portable fast arithmetic on CPUs, so every storage type goes through one f32 engine:
//!
//! 1. B is converted to f32 once and packed into panels of [`NR`] columns (`[k][NR]`, zero-padded at the right
//!    edge), so the micro-kernel streams it with unit stride;
//! 2. C is split into blocks of rows processed in parallel (rayon); each worker converts and packs its rows of A into
//!    panels of [`MR`] rows (`[k][MR]`, zero-padded at the bottom edge);
//! 3. for each B panel (kept hot in L2 across the block's A panels) and each A panel, an `MR×NR` register-blocked
//!    micro-kernel accumulates the full length-k dot products in f32, in order of increasing k;
//! 4. the epilogue computes `alpha·acc + beta·C` in f32 (C is not read when beta = 0), rounds once to `T` and
//!    writes only the `m×n` region (the padding between `n` and `ldc` is never touched).
//!
//! The micro-kernel is compiled three times — AVX-512F+FMA, AVX2+FMA and portable — and chosen at run time, so the
//! committed build needs no `target-cpu=native`. Every output element is a sequential f32 sum over k whose value does
//! not depend on where its tile starts, which is what lets [`super::dwsep_fused`] equal the two-step path bitwise.
//!
//! Extra memory: `k·round_up(n, NR)` f32 for packed B and `k·round_up(rows, MR)` f32 per worker for packed A.
//!
//! The `gemm` crate (sarah-ek, 0.19) was measured as a peer in `results/cpu-peers/` (see `joule-peers`); it is not
//! used here: its f16 path is not the f32-accumulating contract we document everywhere and it has no bf16, and one
//! engine for all three types keeps the fused depthwise-separable path bitwise equal to the two-step one.

use joule_core::{Element, GemmShape, Result};
use rayon::prelude::*;

/// Rows of the register tile.
pub(crate) const MR: usize = 8;
/// Columns of the register tile (two AVX-512 vectors).
pub(crate) const NR: usize = 32;

/// B converted to f32 and packed into `[panel][k][NR]`.
pub(crate) struct PackedB {
    k: usize,
    n: usize,
    data: Vec<f32>,
}

impl PackedB {
    /// Packs the `k×n` matrix `b` (row stride `ldb`).
    pub(crate) fn new<T: Element>(k: usize, n: usize, b: &[T], ldb: usize) -> Self {
        let panels = n.div_ceil(NR);
        let mut data = vec![0.0f32; panels * k * NR];
        if k > 0 {
            data.par_chunks_mut(k * NR).enumerate().for_each(|(jp, panel)| {
                let j0 = jp * NR;
                let w = NR.min(n - j0);
                for (p, dst) in panel.chunks_exact_mut(NR).enumerate() {
                    let src = &b[p * ldb + j0..p * ldb + j0 + w];
                    for (d, s) in dst.iter_mut().zip(src) {
                        *d = s.to_f32();
                    }
                }
            });
        }
        PackedB { k, n, data }
    }

    fn panel(&self, jp: usize) -> &[f32] {
        &self.data[jp * self.k * NR..(jp + 1) * self.k * NR]
    }
}

/// Converts and packs `rows` rows of A (row stride `lda`, `k` columns) into `[panel][k][MR]` in `buf`.
fn pack_a<A: Element>(rows: usize, k: usize, a: &[A], lda: usize, buf: &mut Vec<f32>) {
    let panels = rows.div_ceil(MR);
    buf.clear();
    buf.resize(panels * k * MR, 0.0);
    if k == 0 {
        return;
    }
    for ip in 0..panels {
        let panel = &mut buf[ip * k * MR..(ip + 1) * k * MR];
        for r in 0..MR.min(rows - ip * MR) {
            let src = &a[(ip * MR + r) * lda..(ip * MR + r) * lda + k];
            for (p, s) in src.iter().enumerate() {
                panel[p * MR + r] = s.to_f32();
            }
        }
    }
}

type Tile = [[f32; NR]; MR];

#[inline(always)]
fn micro_body<const FMA: bool>(k: usize, a: &[f32], b: &[f32], acc: &mut Tile) {
    let (a, b) = (&a[..k * MR], &b[..k * NR]);
    let mut t = [[0.0f32; NR]; MR];
    for (ap, bp) in a.chunks_exact(MR).zip(b.chunks_exact(NR)) {
        for i in 0..MR {
            for j in 0..NR {
                t[i][j] = if FMA { ap[i].mul_add(bp[j], t[i][j]) } else { t[i][j] + ap[i] * bp[j] };
            }
        }
    }
    *acc = t;
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
fn micro_avx512(k: usize, a: &[f32], b: &[f32], acc: &mut Tile) {
    micro_body::<true>(k, a, b, acc)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn micro_avx2(k: usize, a: &[f32], b: &[f32], acc: &mut Tile) {
    micro_body::<true>(k, a, b, acc)
}

fn micro_portable(k: usize, a: &[f32], b: &[f32], acc: &mut Tile) {
    micro_body::<false>(k, a, b, acc)
}

/// Which micro-kernel this CPU runs (detected once; `is_x86_feature_detected!` caches).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Isa {
    #[cfg(target_arch = "x86_64")]
    Avx512,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    Portable,
}

pub(crate) fn detect_isa() -> Isa {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("fma") {
            return Isa::Avx512;
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            return Isa::Avx2;
        }
    }
    Isa::Portable
}

#[inline]
fn micro(isa: Isa, k: usize, a: &[f32], b: &[f32], acc: &mut Tile) {
    match isa {
        // SAFETY: `detect_isa` returned these variants only after the CPU reported the features they enable.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { micro_avx512(k, a, b, acc) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { micro_avx2(k, a, b, acc) },
        Isa::Portable => micro_portable(k, a, b, acc),
    }
}

/// Scalars and strides of one block product.
#[derive(Clone, Copy)]
pub(crate) struct Epilogue {
    pub alpha: f32,
    pub beta: f32,
    pub ldc: usize,
}

/// `C[rows, n] = alpha·A[rows, k]·B + beta·C` for one block of rows: `a` starts at the block's first row (stride
/// `lda`), `c` at the block's first row (stride `ep.ldc`, at least `(rows − 1)·ldc + n` elements). Serial.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_block<A: Element, T: Element>(
    isa: Isa,
    rows: usize,
    a: &[A],
    lda: usize,
    pb: &PackedB,
    ep: Epilogue,
    c: &mut [T],
    abuf: &mut Vec<f32>,
) {
    let (k, n) = (pb.k, pb.n);
    if rows == 0 || n == 0 {
        return;
    }
    pack_a(rows, k, a, lda, abuf);
    let mut acc: Tile = [[0.0; NR]; MR];
    for jp in 0..n.div_ceil(NR) {
        let bpanel = pb.panel(jp);
        let (j0, w) = (jp * NR, NR.min(n - jp * NR));
        for ip in 0..rows.div_ceil(MR) {
            micro(isa, k, &abuf[ip * k * MR..(ip + 1) * k * MR], bpanel, &mut acc);
            for (r, acc_row) in acc.iter().enumerate().take(MR.min(rows - ip * MR)) {
                let crow = &mut c[(ip * MR + r) * ep.ldc + j0..(ip * MR + r) * ep.ldc + j0 + w];
                if ep.beta == 0.0 {
                    for (cv, &x) in crow.iter_mut().zip(acc_row) {
                        *cv = T::from_f32(ep.alpha * x);
                    }
                } else {
                    for (cv, &x) in crow.iter_mut().zip(acc_row) {
                        *cv = T::from_f32(ep.alpha * x + ep.beta * cv.to_f32());
                    }
                }
            }
        }
    }
}

/// Rows per parallel task: enough tasks to keep every thread busy, few enough that each reuses packed B well.
pub(crate) fn rows_per_task(m: usize) -> usize {
    let threads = rayon::current_num_threads().max(1);
    m.div_ceil(2 * threads).next_multiple_of(MR).clamp(MR, 256)
}

/// `C = alpha·A·B + beta·C` (see [`GemmShape`]) with f32 accumulation; beta = 0 never reads C, and the elements
/// between `n` and `ldc` are never touched.
pub fn gemm<T: Element>(shape: &GemmShape, a: &[T], b: &[T], c: &mut [T]) -> Result<()> {
    shape.check_buffers(a.len(), b.len(), c.len())?;
    let s = *shape;
    if s.m == 0 || s.n == 0 {
        return Ok(());
    }
    let pb = PackedB::new(s.k, s.n, b, s.ldb);
    let isa = detect_isa();
    let mc = rows_per_task(s.m);
    let ep = Epilogue { alpha: s.alpha, beta: s.beta, ldc: s.ldc };
    let c = &mut c[..s.c_len()];
    c.par_chunks_mut(mc * s.ldc).enumerate().for_each_init(Vec::new, |abuf, (blk, cblk)| {
        let r0 = blk * mc;
        let rows = mc.min(s.m - r0);
        let a_blk = if s.k == 0 { &a[..0] } else { &a[r0 * s.lda..] };
        gemm_block(isa, rows, a_blk, s.lda, &pb, ep, cblk, abuf);
    });
    Ok(())
}
