//! Cache-blocked, parallel GEMM with f32 accumulation for every storage type.
//!
//! # Design
//!
//! f16 and bf16 have no portable fast arithmetic on CPUs, so every storage type can go through one f32 engine (converting
//! f16/bf16 panels to f32 and running an f32 micro-kernel):
//!
//! 1. B is converted to f32 once and packed into panels of [`NR`] columns (`[k][NR]`, zero-padded at the right
//!    edge), so the micro-kernel streams it with unit stride;
//! 2. C is split into blocks of rows processed in parallel (rayon); each worker converts and packs its rows of A into
//!    panels of [`MR`] rows (`[k][MR]`, zero-padded at the bottom edge);
//! 3. for each k-block of `KC` = 256, each B panel (its `KC×NR` slice, 32 KiB, stays in L1 while the block's A
//!    panels stream by) and each A panel, an `MR×NR` register-blocked micro-kernel adds the block's products to an
//!    f32 tile, in order of increasing k;
//! 4. the epilogue computes `alpha·acc + beta·C` in f32 (C is not read when beta = 0), rounds once to `T` and
//!    writes only the `m×n` region (the padding between `n` and `ldc` is never touched).
//!
//! The micro-kernel exists three times — AVX-512F+FMA (8×32 tile in 16 zmm registers, explicit intrinsics: the
//! auto-vectorised version spilled the tile and ran at 2.8 GFLOP/s), AVX2+FMA and portable — chosen at run time, so
//! the committed build needs no `target-cpu=native`. Every output element is a sequential f32 chain over k (k-blocks
//! continue the same chain from the stored tile), whose value does not depend on where its tile starts: that is what
//! lets [`super::dwsep_fused`] equal the two-step path bitwise.
//!
//! Extra memory: `k·round_up(n, NR)` f32 for packed B; per worker `k·round_up(rows, MR)` f32 for packed A and the
//! f32 tiles of its rows of C.
//!
//! # The `gemm` crate
//!
//! [`GemmStrategy::Auto`] (what [`gemm()`] uses) runs f32 through the `gemm` crate (sarah-ek, 0.19, `x86-v4`
//! feature), which meets our contract in f32 (`read_dst = false` when beta = 0, leading dimensions as strides,
//! f32 sums) and is faster: on BERT-base FFN 128×3072×768, 2 shared cores, `results/cpu-peers/peers.md` (commit
//! 3666dfa) measured 113.9 GFLOP/s for the crate against 70.6 for this engine (and 114.5 for `fast::gemm`, which is
//! the same crate call). f16 and bf16 stay on this engine: the crate's f16 path converts panels to f32 but rounds the
//! partial sums to f16 between its k-blocks (it writes dst in f16 after each block, then reads it back), which is not
//! the f32 accumulation we promise — it was a little faster in that run (80.1 against 71.2 GFLOP/s) and less
//! accurate (relative L2 2.55e-4 against 2.08e-4) — and it has no bf16. The pointwise convolution and the fused
//! block use this engine for every type, so that they agree bit for bit.

use super::convert::{narrow_into, widen_into};
use joule_core::{DType, Element, Error, GemmShape, Result};
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
                    widen_into(&b[p * ldb + j0..p * ldb + j0 + w], &mut dst[..w]);
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
    let mut row = vec![0.0f32; k];
    for ip in 0..panels {
        let panel = &mut buf[ip * k * MR..(ip + 1) * k * MR];
        for r in 0..MR.min(rows - ip * MR) {
            widen_into(&a[(ip * MR + r) * lda..(ip * MR + r) * lda + k], &mut row);
            for (p, &x) in row.iter().enumerate() {
                panel[p * MR + r] = x;
            }
        }
    }
}

/// One register tile of f32 sums. Every micro-kernel adds `Σ_p a[p]·b[p]` to the tile it is given, in order of
/// increasing p, so a sum split over k-blocks is the same chain of operations as an unsplit one.
type Tile = [[f32; NR]; MR];

/// Portable micro-kernel: separate multiply and add (no FMA), in order of increasing k.
fn micro_portable(k: usize, a: &[f32], b: &[f32], acc: &mut Tile) {
    let (a, _) = a[..k * MR].as_chunks::<MR>();
    let (b, _) = b[..k * NR].as_chunks::<NR>();
    let mut t = *acc;
    for (ap, bp) in a.iter().zip(b) {
        for (row, &x) in t.iter_mut().zip(ap) {
            for (c, &y) in row.iter_mut().zip(bp) {
                *c += x * y;
            }
        }
    }
    *acc = t;
}

/// AVX-512 micro-kernel: the 8×32 tile lives in 16 zmm registers; each k step loads two B vectors, broadcasts 8 A
/// values and issues 16 FMAs.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
fn micro_avx512(k: usize, a: &[f32], b: &[f32], acc: &mut Tile) {
    use std::arch::x86_64::*;
    let (a, _) = a[..k * MR].as_chunks::<MR>();
    let (b, _) = b[..k * NR].as_chunks::<NR>();
    let mut c = [[_mm512_setzero_ps(); 2]; MR];
    for (ci, row) in c.iter_mut().zip(acc.iter()) {
        // SAFETY: `row` holds NR = 32 floats, so both 16-float unaligned loads stay inside it.
        unsafe {
            ci[0] = _mm512_loadu_ps(row.as_ptr());
            ci[1] = _mm512_loadu_ps(row.as_ptr().add(16));
        }
    }
    for (ap, bp) in a.iter().zip(b) {
        // SAFETY: `bp` holds NR = 32 floats, so both 16-float unaligned loads stay inside it.
        let (b0, b1) = unsafe { (_mm512_loadu_ps(bp.as_ptr()), _mm512_loadu_ps(bp.as_ptr().add(16))) };
        for (ci, &x) in c.iter_mut().zip(ap) {
            let x = _mm512_set1_ps(x);
            ci[0] = _mm512_fmadd_ps(x, b0, ci[0]);
            ci[1] = _mm512_fmadd_ps(x, b1, ci[1]);
        }
    }
    for (row, ci) in acc.iter_mut().zip(&c) {
        // SAFETY: `row` holds NR = 32 floats, so both 16-float unaligned stores stay inside it.
        unsafe {
            _mm512_storeu_ps(row.as_mut_ptr(), ci[0]);
            _mm512_storeu_ps(row.as_mut_ptr().add(16), ci[1]);
        }
    }
}

/// AVX2 micro-kernel: the 8×32 tile in four 4×16 quarters (8 ymm accumulators each, so nothing spills).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn micro_avx2(k: usize, a: &[f32], b: &[f32], acc: &mut Tile) {
    use std::arch::x86_64::*;
    let (a, _) = a[..k * MR].as_chunks::<MR>();
    let (b, _) = b[..k * NR].as_chunks::<NR>();
    for r0 in [0, 4] {
        for c0 in [0, 16] {
            let mut c = [[_mm256_setzero_ps(); 2]; 4];
            for (ci, row) in c.iter_mut().zip(&acc[r0..r0 + 4]) {
                // SAFETY: c0 + 16 <= NR, so both 8-float unaligned loads stay inside `row`.
                unsafe {
                    ci[0] = _mm256_loadu_ps(row.as_ptr().add(c0));
                    ci[1] = _mm256_loadu_ps(row.as_ptr().add(c0 + 8));
                }
            }
            for (ap, bp) in a.iter().zip(b) {
                // SAFETY: c0 + 16 <= NR, so both 8-float unaligned loads stay inside `bp`.
                let (b0, b1) =
                    unsafe { (_mm256_loadu_ps(bp.as_ptr().add(c0)), _mm256_loadu_ps(bp.as_ptr().add(c0 + 8))) };
                for (ci, &x) in c.iter_mut().zip(&ap[r0..r0 + 4]) {
                    let x = _mm256_set1_ps(x);
                    ci[0] = _mm256_fmadd_ps(x, b0, ci[0]);
                    ci[1] = _mm256_fmadd_ps(x, b1, ci[1]);
                }
            }
            for (row, ci) in acc[r0..r0 + 4].iter_mut().zip(&c) {
                // SAFETY: c0 + 16 <= NR, so both 8-float unaligned stores stay inside `row`.
                unsafe {
                    _mm256_storeu_ps(row.as_mut_ptr().add(c0), ci[0]);
                    _mm256_storeu_ps(row.as_mut_ptr().add(c0 + 8), ci[1]);
                }
            }
        }
    }
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

/// Depth of one k-block: a `KC×NR` slice of a B panel (32 KiB) stays in L1 while the block's A panels stream by.
const KC: usize = 256;

/// A worker's scratch for [`gemm_block`]: its packed rows of A and the f32 tiles of its block of C.
#[derive(Default)]
pub(crate) struct GemmScratch {
    a: Vec<f32>,
    tiles: Vec<Tile>,
}

/// `C[rows, n] = alpha·A[rows, k]·B + beta·C` for one block of rows: `a` starts at the block's first row (stride
/// `lda`), `c` at the block's first row (stride `ep.ldc`, at least `(rows − 1)·ldc + n` elements). Serial.
///
/// Loops: k-blocks of [`KC`] → B panels → A panels, accumulating into f32 tiles, then one epilogue per tile that
/// applies alpha and beta, rounds once to `T` and writes the valid `rows×n` part.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_block<A: Element, T: Element>(
    isa: Isa,
    rows: usize,
    a: &[A],
    lda: usize,
    pb: &PackedB,
    ep: Epilogue,
    c: &mut [T],
    scratch: &mut GemmScratch,
) {
    let (k, n) = (pb.k, pb.n);
    if rows == 0 || n == 0 {
        return;
    }
    let (mp, np) = (rows.div_ceil(MR), n.div_ceil(NR));
    pack_a(rows, k, a, lda, &mut scratch.a);
    scratch.tiles.clear();
    scratch.tiles.resize(mp * np, [[0.0; NR]; MR]);
    let mut pc = 0;
    while pc < k {
        let kc = KC.min(k - pc);
        for jp in 0..np {
            let bsub = &pb.panel(jp)[pc * NR..(pc + kc) * NR];
            for ip in 0..mp {
                let asub = &scratch.a[ip * k * MR + pc * MR..ip * k * MR + (pc + kc) * MR];
                micro(isa, kc, asub, bsub, &mut scratch.tiles[ip * np + jp]);
            }
        }
        pc += kc;
    }
    for jp in 0..np {
        let (j0, w) = (jp * NR, NR.min(n - jp * NR));
        for ip in 0..mp {
            let acc = &scratch.tiles[ip * np + jp];
            for (r, acc_row) in acc.iter().enumerate().take(MR.min(rows - ip * MR)) {
                let crow = &mut c[(ip * MR + r) * ep.ldc + j0..(ip * MR + r) * ep.ldc + j0 + w];
                let mut vals = [0.0f32; NR];
                let vals = &mut vals[..w];
                if ep.beta == 0.0 {
                    for (v, &x) in vals.iter_mut().zip(acc_row) {
                        *v = ep.alpha * x;
                    }
                } else {
                    widen_into(crow, vals);
                    for (v, &x) in vals.iter_mut().zip(acc_row) {
                        *v = ep.alpha * x + ep.beta * *v;
                    }
                }
                narrow_into(vals, crow);
            }
        }
    }
}

/// Rows per parallel task: enough tasks to keep every thread busy, few enough that each reuses packed B well.
pub(crate) fn rows_per_task(m: usize) -> usize {
    let threads = rayon::current_num_threads().max(1);
    m.div_ceil(2 * threads).next_multiple_of(MR).clamp(MR, 256)
}

/// Which GEMM implementation [`gemm_with`] runs (one place chooses, as in cubecl's `Strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GemmStrategy {
    /// f32 → [`GemmStrategy::GemmCrate`], f16/bf16 → [`GemmStrategy::Engine`]. What [`gemm()`] uses.
    #[default]
    Auto,
    /// Joule's engine: f32 panels and an AVX-512/AVX2/portable f32 micro-kernel (see the module docs). Any type.
    Engine,
    /// The `gemm` crate (sarah-ek). f32 only: its f16 path rounds partial sums to f16 between k-blocks and it has
    /// no bf16, so other types return [`joule_core::Error::Unsupported`].
    GemmCrate,
}

/// `C = alpha·A·B + beta·C` (see [`GemmShape`]) with f32 accumulation; beta = 0 never reads C, and the elements
/// between `n` and `ldc` are never touched. Same as [`gemm_with`] with [`GemmStrategy::Auto`].
pub fn gemm<T: Element>(shape: &GemmShape, a: &[T], b: &[T], c: &mut [T]) -> Result<()> {
    gemm_with(GemmStrategy::Auto, shape, a, b, c)
}

/// [`gemm()`] with an explicit implementation.
pub fn gemm_with<T: Element>(strategy: GemmStrategy, shape: &GemmShape, a: &[T], b: &[T], c: &mut [T]) -> Result<()> {
    shape.check_buffers(a.len(), b.len(), c.len())?;
    let use_crate = match strategy {
        GemmStrategy::Auto => T::DTYPE == DType::F32,
        GemmStrategy::Engine => false,
        GemmStrategy::GemmCrate if T::DTYPE == DType::F32 => true,
        GemmStrategy::GemmCrate => {
            return Err(Error::Unsupported(format!(
                "the gemm crate strategy is f32 only (got {}): use GemmStrategy::Engine",
                T::DTYPE
            )));
        }
    };
    if use_crate && shape.k > 0 && shape.m > 0 && shape.n > 0 {
        // T is f32 (DTYPE is tied to the type by the Element impls), so these casts are identities.
        let (a, b) = (bytemuck::cast_slice::<T, f32>(a), bytemuck::cast_slice::<T, f32>(b));
        gemm_crate_f32(shape, a, b, bytemuck::cast_slice_mut::<T, f32>(c));
        return Ok(());
    }
    gemm_engine(shape, a, b, c);
    Ok(())
}

/// f32 `C = alpha·A·B + beta·C` with the `gemm` crate, for a validated shape with m, n, k ≥ 1 and buffers checked.
/// Its convention is `dst = alpha·dst + beta·lhs·rhs`: our alpha is its beta, our beta its alpha, and
/// `read_dst = false` when our beta is 0, which makes it write C without reading it.
fn gemm_crate_f32(s: &GemmShape, a: &[f32], b: &[f32], c: &mut [f32]) {
    let read_c = s.beta != 0.0;
    // SAFETY: `check_buffers` guaranteed a, b and c hold a_len, b_len and c_len elements, which are exactly the
    // elements the row-major strides (column stride 1, row strides lda/ldb/ldc) reach for m×k, k×n and m×n; c is an
    // exclusive borrow, so it aliases neither a nor b.
    unsafe {
        gemm::gemm(
            s.m,
            s.n,
            s.k,
            c.as_mut_ptr(),
            1,
            s.ldc as isize,
            read_c,
            a.as_ptr(),
            1,
            s.lda as isize,
            b.as_ptr(),
            1,
            s.ldb as isize,
            if read_c { s.beta } else { 0.0 },
            s.alpha,
            false,
            false,
            false,
            gemm::Parallelism::Rayon(0),
        )
    }
}

/// This module's engine for any storage type, on a shape whose buffers have been checked: parallel over blocks of
/// rows of C, each packed and multiplied by [`gemm_block`]. The pointwise convolution and the fused block use it
/// for every type, which keeps them bitwise equal.
pub(crate) fn gemm_engine<T: Element>(s: &GemmShape, a: &[T], b: &[T], c: &mut [T]) {
    if s.m == 0 || s.n == 0 {
        return;
    }
    let pb = PackedB::new(s.k, s.n, b, s.ldb);
    let isa = detect_isa();
    let mc = rows_per_task(s.m);
    let ep = Epilogue { alpha: s.alpha, beta: s.beta, ldc: s.ldc };
    let c = &mut c[..s.c_len()];
    c.par_chunks_mut(mc * s.ldc).enumerate().for_each_init(GemmScratch::default, |scratch, (blk, cblk)| {
        let r0 = blk * mc;
        let rows = mc.min(s.m - r0);
        let a_blk = if s.k == 0 { &a[..0] } else { &a[r0 * s.lda..] };
        gemm_block(isa, rows, a_blk, s.lda, &pb, ep, cblk, scratch);
    });
}
