// Fused scaled dot-product attention, forward: O = softmax(scale·Q·Kᵀ + mask)·V per (batch, head).
//
// Layout: Q, O [batch, heads, lq, d]; K, V [batch, heads, lk, d], contiguous; mask [batch, lq, lk] broadcast over
// heads (u8: nonzero = keep; or f32 added to the scaled score). Launch plans: crates/joule-launch/src/attention.rs.
//
// attention_fa2d{64,128,256}_{f16,bf16} — FlashAttention-2 on tensor cores (head dim d a multiple of 8, ≤ 256; the
// template's D is d rounded up to 64, 128 or 256 and loads beyond d are predicated off or zero-filled):
//   * Tiling: one block of 4 warps per (batch·head, tile of Br = 64 query rows); warp w owns rows 16w..16w+15.
//     Keys go by tiles of Bc = 64 (Bc = 32 when D = 256, to bound registers). Only ceil16(d) columns are computed.
//   * Pipeline: Q is copied once with cp.async into shared memory, then ldmatrix_x4 moves it into A fragments that
//     stay in registers (except at D = 256, where the registers go to O: Q is re-read from shared memory per key
//     tile). K/V tiles stream through a 2-stage cp.async pipeline: tile t+1 is in flight while tile t is used.
//     Shared rows are XOR-swizzled by 16-byte chunk (chunk ^ (row & 7)), so the 8 row addresses of every ldmatrix
//     hit 8 different bank groups.
//   * Fragment flow: S = Q·Kᵀ with mma m16n8k16 (K is [lk, d] row-major, i.e. "col" for the B operand: plain
//     ldmatrix). The S accumulators (c0,c1 = row g, c2,c3 = row g+8; keys 2t, 2t+1) are the A operand of P·V once
//     rounded to T and packed: for keys 16kc.., a0/a1 come from n-block 2kc and a2/a3 from n-block 2kc+1. V is read
//     with ldmatrix .trans. O accumulates in f32 registers; at the end it is divided by the row sum, rounded to T,
//     staged through shared memory and written with 16-byte stores.
//   * Online softmax in f32, in the log2 domain (scale·log2(e) folded into one multiply, exp2): a row's max and sum
//     are shared by the 4 lanes of a quad (shfl_xor 1, 2); the sum stays lane-partial until the end.
//   * Split-KV (flash-decoding) when batch·heads·query tiles is too small to fill the GPU (decode, Lq = 1): the key
//     tiles are cut into `splits` ranges, one block each; a block writes its unnormalised O, row max and row sum in
//     f32 to scratch and attention_combine_{f16,bf16} merges them (rescaling each split by 2^(m_s − max)).
// attention_simt_{f32,f16,bf16} — the same online softmax without tensor cores (f32, and head dims that are not a
//   multiple of 8; d ≤ 256): 4 warps × 4 query rows per block; K/V tiles of 32 keys converted to f32 in shared
//   memory; lane j scores key j of the tile, lanes own output columns lane + 32c.
//
// Masking rules (both kernels): key j is visible to query i iff j < lk, causal ⇒ j ≤ i + lk − lq (bottom-right
// alignment), and the boolean mask is nonzero; an additive mask is added to the scaled score (−inf drops the key;
// finite entries below −1e38 count as −1e38, so −FLT_MAX · log2(e) cannot overflow into an empty row).
// Invisible keys get the score −inf, never 0 (zero-filled K rows beyond lk included). While a row has seen no
// visible key its running max is −inf: exponentials then use 0 as the max (so −inf − −inf never makes NaN), and a
// row that ends with sum 0 writes exactly 0. Causal key tiles entirely above the block's last row are skipped.
#include "common.cuh"

namespace joule_attention {

using namespace joule;

constexpr float kLog2e = 1.4426950408889634f;
constexpr int kMaskNone = 0;
constexpr int kMaskBool = 1;
constexpr int kMaskAdd = 2;
constexpr int kThreads = 128;

/// −inf (NVRTC has no <cmath> and so no INFINITY; union punning is defined in CUDA C++ and GNU C++ alike).
JOULE_DEVICE float neg_inf() {
    union {
        unsigned u;
        float f;
    } x = {0xff800000u};
    return x.f;
}

/// The number of key tiles of `bc` keys a block whose query rows are [q0, q_end) must visit (causal skip).
JOULE_DEVICE int key_tiles(int q0, int q_end, int lq, int lk, int causal, int bc) {
    int keys = lk;
    if (causal) {
        // The block's last row sees keys j ≤ (q_end − 1) + lk − lq.
        int last = (q_end - 1) + lk - lq + 1;
        keys = last < keys ? last : keys;
    }
    return keys <= 0 ? 0 : (keys + bc - 1) / bc;
}

/// Whether key j is visible to query i, ignoring the mask buffer (i < lq is checked by the caller before a mask read).
JOULE_DEVICE bool key_visible(int i, int j, int lq, int lk, int causal) {
    return j < lk && (!causal || j <= i + lk - lq);
}

/// The score in the log2 domain after masking: `raw` is q·k already multiplied by scale·log2(e).
JOULE_DEVICE float masked_score(float raw, int i, int j, int lq, int lk, int causal, int mask_kind,
                                gptr<const unsigned char> mask, long long mask_row) {
    if (!key_visible(i, j, lq, lk, causal)) return neg_inf();
    if (i >= lq) return raw;  // padding row beyond lq: never stored, and the mask has no entry for it
    if (mask_kind == kMaskBool) return mask[mask_row + j] != 0 ? raw : neg_inf();
    if (mask_kind == kMaskAdd) {
        // Finite entries are clamped at −1e38 so that ×log2(e) cannot overflow to −inf: a row masked with
        // −FLT_MAX (a common "masked" value) still averages V as the float64 oracle does, instead of reading as empty.
        const float a = gcast<const float>(mask)[mask_row + j];
        return raw + (a >= -1e38f || a == neg_inf() ? a : -1e38f) * kLog2e;
    }
    return raw;
}

// ------------------------------------------------------------------------------------------------------------------
// FlashAttention-2 on tensor cores.

/// Element offset of (row, 16-byte chunk) in a swizzled shared tile whose rows hold D 16-bit elements.
template <int D>
JOULE_DEVICE int swz(int row, int chunk) {
    return row * D + ((chunk ^ (row & 7)) << 3);
}

template <class T, int D, int BC>
JOULE_DEVICE void fa2_body(gptr<const T> q, gptr<const T> k, gptr<const T> v, gptr<T> out,
                           gptr<const unsigned char> mask, int heads, int lq, int lk, int d, float scale, int causal,
                           int mask_kind, gptr<float> part_o, gptr<float> part_ml, int splits) {
    constexpr int BR = 64;
    constexpr int CH = D / 8;  // 16-byte chunks per shared row
    static_assert(D % 64 == 0 && BC % 16 == 0, "tile shape");

    const int tid = threadIdx.x;
    const int lane = lane_id();
    const int warp = warp_id();
    const int g = lane >> 2;
    const int t4 = lane & 3;

    const int q_tiles = (lq + BR - 1) / BR;
    const int split = blockIdx.x % splits;
    const int tile_id = blockIdx.x / splits;
    const int bh = tile_id / q_tiles;
    // Query tiles in reverse order: under causal masking the last tiles have the most keys, so they start first.
    const int q0 = (q_tiles - 1 - tile_id % q_tiles) * BR;
    const int batch = bh / heads;
    const int q_end = q0 + BR < lq ? q0 + BR : lq;

    const gptr<const T> qg = q + (long long)bh * lq * d;
    const gptr<const T> kg = k + (long long)bh * lk * d;
    const gptr<const T> vg = v + (long long)bh * lk * d;
    const gptr<T> og = out + (long long)bh * lq * d;

    const int d16 = (d + 15) & ~15;   // columns that take part in the mma (zero-filled between d and d16)
    const int used_chunks = d16 / 8;  // chunks loaded per row; the rest of the row is never read

    sptr<T> sq = dyn_smem<T>(0);
    sptr<T> sk = dyn_smem<T>(BR * D * 2);
    sptr<T> sv = dyn_smem<T>(BR * D * 2 + 2 * BC * D * 2);

    // Q tile → shared (one commit group).
#pragma unroll 4
    for (int c = tid; c < BR * CH; c += kThreads) {
        const int r = c / CH, ch = c % CH;
        if (ch < used_chunks) {
            const bool pred = q0 + r < lq && ch * 8 < d;
            cp_async_16<T>(sq + swz<D>(r, ch), pred ? qg + (long long)(q0 + r) * d + ch * 8 : qg, pred);
        }
    }
    cp_async_commit();

    // This block's key tiles: split `split` of `splits` equal ranges of the unclipped tile count, cut at the causal
    // limit (a range can be empty; the block then still writes its empty partial result).
    const int per_split = ((lk + BC - 1) / BC + splits - 1) / splits;
    const int all_tiles = key_tiles(q0, q_end, lq, lk, causal, BC);
    const int t_begin = split * per_split;
    const int t_end = t_begin + per_split < all_tiles ? t_begin + per_split : all_tiles;
    auto load_kv = [&](int tile, int stage) {
        const int k0 = tile * BC;
        sptr<T> skt = sk + stage * BC * D;
        sptr<T> svt = sv + stage * BC * D;
#pragma unroll 4
        for (int c = tid; c < BC * CH; c += kThreads) {
            const int r = c / CH, ch = c % CH;
            if (ch < used_chunks) {
                const bool pred = k0 + r < lk && ch * 8 < d;
                const long long off = pred ? (long long)(k0 + r) * d + ch * 8 : 0;
                cp_async_16<T>(skt + swz<D>(r, ch), kg + off, pred);
                cp_async_16<T>(svt + swz<D>(r, ch), vg + off, pred);
            }
        }
    };
    if (t_begin < t_end) load_kv(t_begin, 0);
    cp_async_commit();

    cp_async_wait<1>();  // Q has landed (K/V tile 0 may still be in flight)
    __syncthreads();

    // Q fragments: A operand, rows 16·warp.., columns 16kk..; they stay in registers. At D = 256 they would take 64
    // of the 255 registers next to the 128 of O, so there Q stays in shared memory and is re-read per key tile.
    constexpr bool kQInRegs = D <= 128;
    const int q_row = warp * 16 + (lane & 7) + (((lane >> 3) & 1) << 3);  // this lane's ldmatrix row of Q
    const int q_chunk_hi = lane >> 4;                                       // and its column half
    unsigned qf[kQInRegs ? D / 16 : 1][4];
    if (kQInRegs) {
#pragma unroll
        for (int kk = 0; kk < (kQInRegs ? D / 16 : 1); ++kk) {
            if (kk * 16 < d16) {
                ldmatrix_x4<T>(qf[kk][0], qf[kk][1], qf[kk][2], qf[kk][3], sq + swz<D>(q_row, kk * 2 + q_chunk_hi));
            } else {
                qf[kk][0] = qf[kk][1] = qf[kk][2] = qf[kk][3] = 0u;
            }
        }
    }

    float o[D / 8][4];
#pragma unroll
    for (int nb = 0; nb < D / 8; ++nb) o[nb][0] = o[nb][1] = o[nb][2] = o[nb][3] = 0.f;
    float row_max[2] = {neg_inf(), neg_inf()};
    float row_sum[2] = {0.f, 0.f};  // lane-partial: summed over the quad at the end

    const float scale_log2 = scale * kLog2e;
    const int row_lo = q0 + warp * 16 + g;  // this lane's rows: row_lo and row_lo + 8
    const long long mask_row_lo = ((long long)batch * lq + row_lo) * lk;
    const long long mask_row_hi = mask_row_lo + 8LL * lk;

    for (int tile = t_begin; tile < t_end; ++tile) {
        const int stage = (tile - t_begin) & 1;
        if (tile + 1 < t_end) load_kv(tile + 1, stage ^ 1);
        cp_async_commit();
        cp_async_wait<1>();  // tile `tile` has landed
        __syncthreads();

        const sptr<T> skt = sk + stage * BC * D;
        const sptr<T> svt = sv + stage * BC * D;
        const int k0 = tile * BC;

        // S = Q·Kᵀ for this warp's 16 rows × BC keys.
        float s[BC / 8][4];
#pragma unroll
        for (int nb = 0; nb < BC / 8; ++nb) s[nb][0] = s[nb][1] = s[nb][2] = s[nb][3] = 0.f;
        {
            const int mi = lane >> 3, r = lane & 7;
#pragma unroll
            for (int kk = 0; kk < D / 16; ++kk) {
                if (kk * 16 < d16) {
                    unsigned qs[4] = {0u, 0u, 0u, 0u};
                    if (!kQInRegs) ldmatrix_x4<T>(qs[0], qs[1], qs[2], qs[3], sq + swz<D>(q_row, kk * 2 + q_chunk_hi));
                    const unsigned(&qa)[4] = kQInRegs ? qf[kQInRegs ? kk : 0] : qs;
#pragma unroll
                    for (int nb2 = 0; nb2 < BC / 16; ++nb2) {
                        const int key = nb2 * 16 + r + ((mi >> 1) << 3);
                        unsigned b0[2], b1[2];
                        ldmatrix_x4<T>(b0[0], b0[1], b1[0], b1[1], skt + swz<D>(key, kk * 2 + (mi & 1)));
                        mma<T>(s[2 * nb2], qa, b0);
                        mma<T>(s[2 * nb2 + 1], qa, b1);
                    }
                }
            }
        }

        // Scale and mask. Tiles inside the causal triangle, without a tail and without a mask take the fast path.
        const bool needs_mask = mask_kind != kMaskNone || k0 + BC > lk || (causal && k0 + BC - 1 > q0 + lk - lq);
        if (needs_mask) {
#pragma unroll
            for (int nb = 0; nb < BC / 8; ++nb) {
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                    const int i = row_lo + ((e >> 1) << 3);
                    const int j = k0 + nb * 8 + 2 * t4 + (e & 1);
                    s[nb][e] = masked_score(s[nb][e] * scale_log2, i, j, lq, lk, causal, mask_kind, mask,
                                            (e >> 1) ? mask_row_hi : mask_row_lo);
                }
            }
        } else {
#pragma unroll
            for (int nb = 0; nb < BC / 8; ++nb) {
#pragma unroll
                for (int e = 0; e < 4; ++e) s[nb][e] *= scale_log2;
            }
        }

        // Online softmax: new row max (quad-wide), rescale O and the sum, P = exp2(S − max).
        float mx[2] = {row_max[0], row_max[1]};
#pragma unroll
        for (int nb = 0; nb < BC / 8; ++nb) {
            mx[0] = fmaxf(mx[0], fmaxf(s[nb][0], s[nb][1]));
            mx[1] = fmaxf(mx[1], fmaxf(s[nb][2], s[nb][3]));
        }
        float base[2], alpha[2];
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            mx[h] = fmaxf(mx[h], shfl_xor(mx[h], 1));
            mx[h] = fmaxf(mx[h], shfl_xor(mx[h], 2));
            base[h] = mx[h] == neg_inf() ? 0.f : mx[h];  // no visible key yet: exp2(−inf − 0) = 0, not NaN
            alpha[h] = exp2_approx(row_max[h] - base[h]);  // row_max = −inf → 0 (O and the sum are 0 anyway)
            row_max[h] = mx[h];
            row_sum[h] *= alpha[h];
        }
#pragma unroll
        for (int nb = 0; nb < D / 8; ++nb) {
            o[nb][0] *= alpha[0];
            o[nb][1] *= alpha[0];
            o[nb][2] *= alpha[1];
            o[nb][3] *= alpha[1];
        }
#pragma unroll
        for (int nb = 0; nb < BC / 8; ++nb) {
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                s[nb][e] = exp2_approx(s[nb][e] - base[e >> 1]);
                row_sum[e >> 1] += s[nb][e];
            }
        }

        // O += P·V: P's A fragments come straight from the S accumulators; V through ldmatrix .trans.
        {
            const int mi = lane >> 3, r = lane & 7;
#pragma unroll
            for (int kc = 0; kc < BC / 16; ++kc) {
                unsigned pa[4];
                pa[0] = pack2<T>(s[2 * kc][0], s[2 * kc][1]);
                pa[1] = pack2<T>(s[2 * kc][2], s[2 * kc][3]);
                pa[2] = pack2<T>(s[2 * kc + 1][0], s[2 * kc + 1][1]);
                pa[3] = pack2<T>(s[2 * kc + 1][2], s[2 * kc + 1][3]);
                const int key = kc * 16 + r + ((mi & 1) << 3);
#pragma unroll
                for (int nb2 = 0; nb2 < D / 16; ++nb2) {
                    if (nb2 * 16 < d16) {
                        unsigned b0[2], b1[2];
                        ldmatrix_x4_trans<T>(b0[0], b0[1], b1[0], b1[1], svt + swz<D>(key, nb2 * 2 + (mi >> 1)));
                        mma<T>(o[2 * nb2], pa, b0);
                        mma<T>(o[2 * nb2 + 1], pa, b1);
                    }
                }
            }
        }
        __syncthreads();  // every warp is done with this stage before it is refilled
    }
    cp_async_wait_all();  // nothing may still target shared memory (an empty group when there were no tiles)

    float l_row[2], inv[2];
#pragma unroll
    for (int h = 0; h < 2; ++h) {
        float l = row_sum[h];
        l += shfl_xor(l, 1);
        l += shfl_xor(l, 2);
        l_row[h] = l;
        inv[h] = l > 0.f ? 1.f / l : 0.f;  // a row that saw no key writes exactly 0
    }

    if (splits > 1) {
        // Split-KV: write this split's unnormalised O, its row max (log2 domain) and row sum in f32;
        // attention_combine_* merges the splits.
        const long long bh_count = (long long)(gridDim.x / splits) / q_tiles;
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            const int i = row_lo + 8 * h;
            if (i < lq) {
                const long long row = ((long long)split * bh_count + bh) * lq + i;
#pragma unroll
                for (int nb = 0; nb < D / 8; ++nb) {
                    if (nb * 8 < d) {
                        part_o[row * d + nb * 8 + 2 * t4] = o[nb][2 * h];
                        part_o[row * d + nb * 8 + 2 * t4 + 1] = o[nb][2 * h + 1];
                    }
                }
                if (t4 == 0) {
                    part_ml[2 * row] = row_max[h];
                    part_ml[2 * row + 1] = l_row[h];
                }
            }
        }
        return;
    }

    // Normalise, round to T and stage the tile in the (now unused) Q area, each warp its own 16 rows.
    {
        const int r_lo = warp * 16 + g;
#pragma unroll
        for (int nb = 0; nb < D / 8; ++nb) {
            if (nb * 8 < d16) {
                *scast<unsigned>(sq + swz<D>(r_lo, nb) + 2 * t4) = pack2<T>(o[nb][0] * inv[0], o[nb][1] * inv[0]);
                *scast<unsigned>(sq + swz<D>(r_lo + 8, nb) + 2 * t4) =
                    pack2<T>(o[nb][2] * inv[1], o[nb][3] * inv[1]);
            }
        }
    }
    __syncthreads();
#pragma unroll 4
    for (int c = tid; c < BR * CH; c += kThreads) {
        const int r = c / CH, ch = c % CH;
        if (q0 + r < lq && ch * 8 < d) {
            st128<T>(og + (long long)(q0 + r) * d + ch * 8, lds128<T>(sq + swz<D>(r, ch)));
        }
    }
}

// ------------------------------------------------------------------------------------------------------------------
// SIMT fallback (f32, and 16-bit types with head dims that are not a multiple of 8).

constexpr int kSimtRowsPerWarp = 4;
constexpr int kSimtRows = 4 * kSimtRowsPerWarp;  // query rows per block
constexpr int kSimtKeys = 32;                    // keys per tile: one per lane
constexpr int kSimtMaxD = 256;
constexpr int kSimtCols = kSimtMaxD / 32;  // output columns per lane

/// Shared-memory layout of the SIMT kernel, in floats (the launch plan computes the same numbers):
/// Q [16][d] (pre-scaled by scale·log2 e), K [32][ks] with ks = d | 1 (odd: lanes reading different keys at the
/// same column hit different banks), V [32][d]; each region starts on a 16-byte boundary.
JOULE_DEVICE int round4(int x) { return (x + 3) & ~3; }

template <class T>
JOULE_DEVICE void simt_body(gptr<const T> q, gptr<const T> k, gptr<const T> v, gptr<T> out,
                            gptr<const unsigned char> mask, int heads, int lq, int lk, int d, float scale, int causal,
                            int mask_kind) {
    const int tid = threadIdx.x;
    const int lane = lane_id();
    const int warp = warp_id();

    const int q_tiles = (lq + kSimtRows - 1) / kSimtRows;
    const int bh = blockIdx.x / q_tiles;
    const int q0 = (q_tiles - 1 - (int)(blockIdx.x % q_tiles)) * kSimtRows;  // longest rows first (causal)
    const int batch = bh / heads;
    const int q_end = q0 + kSimtRows < lq ? q0 + kSimtRows : lq;

    const gptr<const T> qg = q + (long long)bh * lq * d;
    const gptr<const T> kg = k + (long long)bh * lk * d;
    const gptr<const T> vg = v + (long long)bh * lk * d;
    const gptr<T> og = out + (long long)bh * lq * d;

    const int ks = d | 1;
    sptr<float> sq = dyn_smem<float>(0);
    sptr<float> sk = dyn_smem<float>(4 * round4(kSimtRows * d));
    sptr<float> sv = dyn_smem<float>(4 * (round4(kSimtRows * d) + round4(kSimtKeys * ks)));

    const float scale_log2 = scale * kLog2e;
    for (int c = tid; c < kSimtRows * d; c += kThreads) {
        const int r = c / d, col = c % d;
        sq[c] = q0 + r < lq ? to_f32(qg[(long long)(q0 + r) * d + col]) * scale_log2 : 0.f;
    }

    float o[kSimtRowsPerWarp][kSimtCols];
    float row_max[kSimtRowsPerWarp], row_sum[kSimtRowsPerWarp];
#pragma unroll
    for (int rr = 0; rr < kSimtRowsPerWarp; ++rr) {
        row_max[rr] = neg_inf();
        row_sum[rr] = 0.f;
#pragma unroll
        for (int c = 0; c < kSimtCols; ++c) o[rr][c] = 0.f;
    }

    const int n_tiles = key_tiles(q0, q_end, lq, lk, causal, kSimtKeys);
    for (int tile = 0; tile < n_tiles; ++tile) {
        const int k0 = tile * kSimtKeys;
        __syncthreads();  // the previous tile is no longer read (and, on the first pass, Q is in place)
        for (int c = tid; c < kSimtKeys * d; c += kThreads) {
            const int r = c / d, col = c % d;
            const bool in = k0 + r < lk;
            const long long off = (long long)(k0 + r) * d + col;
            sk[r * ks + col] = in ? to_f32(kg[off]) : 0.f;
            sv[c] = in ? to_f32(vg[off]) : 0.f;
        }
        __syncthreads();

        const int keys_here = lk - k0 < kSimtKeys ? lk - k0 : kSimtKeys;
#pragma unroll
        for (int rr = 0; rr < kSimtRowsPerWarp; ++rr) {
            const int row = warp * kSimtRowsPerWarp + rr;
            const int i = q0 + row;
            const int j = k0 + lane;
            float dot = 0.f;
            for (int col = 0; col < d; ++col) dot += sq[row * d + col] * sk[lane * ks + col];
            const float sc =
                masked_score(dot, i, j, lq, lk, causal, mask_kind, mask, ((long long)batch * lq + i) * lk);
            const float mx = fmaxf(row_max[rr], warp_max(sc));
            const float base = mx == neg_inf() ? 0.f : mx;
            const float alpha = exp2_approx(row_max[rr] - base);
            const float p = exp2_approx(sc - base);
            row_max[rr] = mx;
            row_sum[rr] = row_sum[rr] * alpha + warp_sum(p);
#pragma unroll
            for (int c = 0; c < kSimtCols; ++c) o[rr][c] *= alpha;
            for (int jj = 0; jj < keys_here; ++jj) {
                const float pj = shfl(p, jj);
#pragma unroll
                for (int c = 0; c < kSimtCols; ++c) {
                    const int col = lane + 32 * c;
                    if (col < d) o[rr][c] += pj * sv[jj * d + col];
                }
            }
        }
    }

#pragma unroll
    for (int rr = 0; rr < kSimtRowsPerWarp; ++rr) {
        const int i = q0 + warp * kSimtRowsPerWarp + rr;
        const float inv = row_sum[rr] > 0.f ? 1.f / row_sum[rr] : 0.f;  // a row that saw no key writes exactly 0
        if (i < lq) {
#pragma unroll
            for (int c = 0; c < kSimtCols; ++c) {
                const int col = lane + 32 * c;
                if (col < d) og[(long long)i * d + col] = from_f32<T>(o[rr][c] * inv);
            }
        }
    }
}

/// Merges the split-KV partial results: out = Σ_s O_s·2^(m_s − M) / Σ_s l_s·2^(m_s − M) with M = max_s m_s; a row
/// whose splits all saw no key (M = −inf) writes exactly 0. One thread per output element.
template <class T>
JOULE_DEVICE void combine_body(gptr<const float> part_o, gptr<const float> part_ml, gptr<T> out, int rows, int d,
                               int splits) {
    const long long idx = (long long)blockIdx.x * kThreads + threadIdx.x;
    if (idx >= (long long)rows * d) return;
    const long long row = idx / d;
    float m = neg_inf();
    for (int s = 0; s < splits; ++s) m = fmaxf(m, part_ml[2 * ((long long)s * rows + row)]);
    float num = 0.f, den = 0.f;
    if (m != neg_inf()) {
        for (int s = 0; s < splits; ++s) {
            const long long r = (long long)s * rows + row;
            const float w = exp2_approx(part_ml[2 * r] - m);  // an empty split: exp2(−inf) = 0
            num += w * part_o[r * d + idx % d];
            den += w * part_ml[2 * r + 1];
        }
    }
    out[idx] = from_f32<T>(den > 0.f ? num / den : 0.f);
}

}  // namespace joule_attention

// ------------------------------------------------------------------------------------------------------------------
// Entry points. Arguments: q, k, v, out, mask (u8 or f32 data; any buffer when mask_kind = 0, never read), heads,
// lq, lk, head_dim, scale, causal (0/1), mask_kind (0 none, 1 boolean u8, 2 additive f32); the fa2 kernels then take
// part_o, part_ml (f32 scratch, only touched when splits > 1; any buffer otherwise) and splits. Grid: one block per
// (batch·head, query tile[, key split]), flattened in x as (bh·q_tiles + (q_tiles − 1 − tile))·splits + split;
// 128 threads.

#define JOULE_ATTN_PARAMS(T)                                                                                         \
    joule::gptr<const T> JOULE_RESTRICT q, joule::gptr<const T> JOULE_RESTRICT k,                                    \
        joule::gptr<const T> JOULE_RESTRICT v, joule::gptr<T> JOULE_RESTRICT out,                                    \
        joule::gptr<const unsigned char> JOULE_RESTRICT mask, int heads, int lq, int lk, int head_dim, float scale, \
        int causal, int mask_kind
#define JOULE_ATTN_ARGS q, k, v, out, mask, heads, lq, lk, head_dim, scale, causal, mask_kind

#define JOULE_ATTN_FA2(name, T, D, BC)                                                                        \
    extern "C" __global__ void __launch_bounds__(128)                                                         \
        name(JOULE_ATTN_PARAMS(T), joule::gptr<float> JOULE_RESTRICT part_o,                                  \
             joule::gptr<float> JOULE_RESTRICT part_ml, int splits) {                                         \
        joule_attention::fa2_body<T, D, BC>(JOULE_ATTN_ARGS, part_o, part_ml, splits);                        \
    }                                                                                                         \
    JOULE_EXPORT(name)

JOULE_ATTN_FA2(attention_fa2d64_f16, joule::f16, 64, 64)
JOULE_ATTN_FA2(attention_fa2d128_f16, joule::f16, 128, 64)
JOULE_ATTN_FA2(attention_fa2d256_f16, joule::f16, 256, 32)
JOULE_ATTN_FA2(attention_fa2d64_bf16, joule::bf16, 64, 64)
JOULE_ATTN_FA2(attention_fa2d128_bf16, joule::bf16, 128, 64)
JOULE_ATTN_FA2(attention_fa2d256_bf16, joule::bf16, 256, 32)

#define JOULE_ATTN_SIMT(name, T)                                                    \
    extern "C" __global__ void __launch_bounds__(128) name(JOULE_ATTN_PARAMS(T)) {  \
        joule_attention::simt_body<T>(JOULE_ATTN_ARGS);                             \
    }                                                                               \
    JOULE_EXPORT(name)

JOULE_ATTN_SIMT(attention_simt_f32, float)
JOULE_ATTN_SIMT(attention_simt_f16, joule::f16)
JOULE_ATTN_SIMT(attention_simt_bf16, joule::bf16)

// Split-KV merge: (part_o, part_ml, out, rows = batch·heads·lq, head_dim, splits); ceil(rows·head_dim / 128) blocks.
#define JOULE_ATTN_COMBINE(name, T)                                                                             \
    extern "C" __global__ void __launch_bounds__(128)                                                           \
        name(joule::gptr<const float> JOULE_RESTRICT part_o, joule::gptr<const float> JOULE_RESTRICT part_ml, \
             joule::gptr<T> JOULE_RESTRICT out, int rows, int head_dim, int splits) {                           \
        joule_attention::combine_body<T>(part_o, part_ml, out, rows, head_dim, splits);                         \
    }                                                                                                           \
    JOULE_EXPORT(name)

JOULE_ATTN_COMBINE(attention_combine_f16, joule::f16)
JOULE_ATTN_COMBINE(attention_combine_bf16, joule::bf16)
