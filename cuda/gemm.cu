// GEMM kernels: C = alpha·A·B + beta·C, row-major A (M×K, lda), B (K×N, ldb), C (M×N, ldc), f32 accumulation.
//
// gemm_simt_f32 — CUDA cores. Block tile 128×64×16, 256 threads, each thread owns an 8×4 register block. A is stored
//   in shared memory k-major (transposed while it is copied, row padded to 132 floats) so a thread reads its 8 rows
//   as two 128-bit loads; B is stored as is (16×64). Two stages: 4-byte cp.async copies of tile k+1 run while tile k
//   is multiplied. Every copy is predicated (row < M, col < N, k < K) with zero fill, so any shape works.
// gemm_tc_{f16,bf16} — tensor cores. Block tile 128×128×32, 8 warps in a 2×4 grid, warp tile 64×32 = 4×4 mma
//   m16n8k16 (64 f32 accumulators per thread). Three-stage cp.async pipeline (16-byte copies): tile k+2 is in flight
//   while tile k is multiplied. A fragments come from ldmatrix.x4, B fragments (B is row-major k×n) from
//   ldmatrix.x4.trans, two n8 tiles per instruction. Shared layout: 16-byte chunks XOR-swizzled so the 8 row
//   addresses of each ldmatrix phase hit 8 different bank groups: A rows hold 4 chunks, chunk c of row r is stored at
//   c ^ ((r >> 1) & 3); B rows hold 16 chunks, chunk c of row k at c ^ (k & 7).
//   Tails: a chunk wholly outside M/N/K is zero-filled by cp.async (src-size 0); a chunk that straddles the K or N
//   edge, or any chunk when lda/ldb is not a multiple of 8 (16-byte copies need 16-byte aligned rows), is loaded
//   element by element with predicates and stored with plain shared stores (made visible by the same barrier).
//   Contract: the A, B, C base pointers are 16-byte aligned (every cuMemAlloc allocation is 256-byte aligned).
// Epilogue (both): v = alpha·acc (+ beta·C only when beta != 0, so NaN in C never leaks), rounded to T once,
// written only where row < M and col < N (the tensor-core kernels store column pairs as one 32-bit word when ldc is
// even); K = 0 gives beta·C (or 0). Offsets are computed in 64 bits.
#include "common.cuh"

namespace {
using namespace joule;

// ---- SIMT f32 ----
constexpr int SIMT_BM = 128, SIMT_BN = 64, SIMT_BK = 16;
constexpr int SIMT_TM = 8, SIMT_TN = 4, SIMT_THREADS = 256;
constexpr int SIMT_AS = SIMT_BM + 4;  // k-major A row stride (floats); the pad spreads the transposing stores
constexpr int SIMT_STAGE = SIMT_BK * SIMT_AS + SIMT_BK * SIMT_BN;  // floats per stage

// ---- tensor cores ----
constexpr int TC_BM = 128, TC_BN = 128, TC_BK = 32, TC_STAGES = 3, TC_THREADS = 256;
constexpr int TC_WM = 64, TC_WN = 32;                       // warp tile
constexpr int TC_MI = TC_WM / 16, TC_NI = TC_WN / 8;        // mma tiles per warp: 4 × 4
constexpr int TC_STAGE = TC_BM * TC_BK + TC_BK * TC_BN;     // elements per stage

// Swizzled element offsets of 16-byte chunk `c` (8 elements) of a row.
JOULE_DEVICE int tc_a_off(int r, int c) { return r * TC_BK + ((c ^ ((r >> 1) & 3)) << 3); }
JOULE_DEVICE int tc_b_off(int k, int c) { return k * TC_BN + ((c ^ (k & 7)) << 3); }

}  // namespace

extern "C" __global__ void __launch_bounds__(256)
    gemm_simt_f32(gptr<const float> JOULE_RESTRICT A, gptr<const float> JOULE_RESTRICT B, gptr<float> JOULE_RESTRICT C,
                  int M, int N, int K, int lda, int ldb, int ldc, float alpha, float beta) {
    const int tid = threadIdx.x;
    const int m0 = blockIdx.x * SIMT_BM, n0 = blockIdx.y * SIMT_BN;
    const int ty = tid / (SIMT_BN / SIMT_TN), tx = tid % (SIMT_BN / SIMT_TN);
    sptr<float> smem = dyn_smem<float>(0);

    auto load_tile = [&](int kt, int stage) {
        sptr<float> as = smem + stage * SIMT_STAGE;
        sptr<float> bs = as + SIMT_BK * SIMT_AS;
        const int k0 = kt * SIMT_BK;
#pragma unroll
        for (int i = 0; i < SIMT_BM * SIMT_BK / SIMT_THREADS; ++i) {
            // A warp takes 4 rows × 8 consecutive k: 32-byte global segments, and the transposing shared stores
            // (bank = 4·kk + r mod 32) hit 32 different banks.
            const int e = tid + i * SIMT_THREADS;
            const int r = (e >> 6) * 4 + ((e >> 3) & 3), kk = ((e >> 5) & 1) * 8 + (e & 7);
            const int gm = m0 + r, gk = k0 + kk;
            const bool p = gm < M && gk < K;
            cp_async_4<float>(as + kk * SIMT_AS + r, p ? A + ((long long)gm * lda + gk) : A, p);
        }
#pragma unroll
        for (int i = 0; i < SIMT_BK * SIMT_BN / SIMT_THREADS; ++i) {
            const int e = tid + i * SIMT_THREADS;
            const int kk = e / SIMT_BN, c = e % SIMT_BN;
            const int gk = k0 + kk, gn = n0 + c;
            const bool p = gk < K && gn < N;
            cp_async_4<float>(bs + kk * SIMT_BN + c, p ? B + ((long long)gk * ldb + gn) : B, p);
        }
    };

    float acc[SIMT_TM][SIMT_TN];
#pragma unroll
    for (int i = 0; i < SIMT_TM; ++i)
#pragma unroll
        for (int j = 0; j < SIMT_TN; ++j) acc[i][j] = 0.f;

    const int ktiles = (K + SIMT_BK - 1) / SIMT_BK;
    if (ktiles > 0) load_tile(0, 0);
    cp_async_commit();
    for (int kt = 0; kt < ktiles; ++kt) {
        if (kt + 1 < ktiles) load_tile(kt + 1, (kt + 1) & 1);
        cp_async_commit();
        cp_async_wait<1>();
        __syncthreads();
        sptr<float> as = smem + (kt & 1) * SIMT_STAGE;
        sptr<float> bs = as + SIMT_BK * SIMT_AS;
#pragma unroll
        for (int kk = 0; kk < SIMT_BK; ++kk) {
            float a[SIMT_TM], b[SIMT_TN];
            float lo[4], hi[4];
            unpack128<float>(lds128<float>(as + kk * SIMT_AS + ty * SIMT_TM), lo);
            unpack128<float>(lds128<float>(as + kk * SIMT_AS + ty * SIMT_TM + 4), hi);
            unpack128<float>(lds128<float>(bs + kk * SIMT_BN + tx * SIMT_TN), b);
#pragma unroll
            for (int i = 0; i < 4; ++i) {
                a[i] = lo[i];
                a[i + 4] = hi[i];
            }
#pragma unroll
            for (int i = 0; i < SIMT_TM; ++i)
#pragma unroll
                for (int j = 0; j < SIMT_TN; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
        }
        __syncthreads();
    }
    cp_async_wait_all();

#pragma unroll
    for (int i = 0; i < SIMT_TM; ++i) {
        const int row = m0 + ty * SIMT_TM + i;
        if (row >= M) continue;
#pragma unroll
        for (int j = 0; j < SIMT_TN; ++j) {
            const int col = n0 + tx * SIMT_TN + j;
            if (col >= N) continue;
            const long long off = (long long)row * ldc + col;
            float v = alpha * acc[i][j];
            if (beta != 0.f) v += beta * C[off];
            C[off] = v;
        }
    }
}
JOULE_EXPORT(gemm_simt_f32)

namespace {

template <class T>
JOULE_DEVICE void gemm_tc(gptr<const T> A, gptr<const T> B, gptr<T> C, int M, int N, int K, int lda, int ldb,
                          int ldc, float alpha, float beta) {
    const int tid = threadIdx.x, lane = lane_id(), warp = warp_id();
    const int wm = warp % (TC_BM / TC_WM), wn = warp / (TC_BM / TC_WM);
    const int m0 = blockIdx.x * TC_BM, n0 = blockIdx.y * TC_BN;
    const bool a_vec = (lda & 7) == 0, b_vec = (ldb & 7) == 0;
    sptr<T> smem = dyn_smem<T>(0);
    const T zero = from_f32<T>(0.f);

    auto load_tile = [&](int kt, int stage) {
        sptr<T> as = smem + stage * TC_STAGE;
        sptr<T> bs = as + TC_BM * TC_BK;
        const int k0 = kt * TC_BK;
#pragma unroll
        for (int i = 0; i < TC_BM * TC_BK / 8 / TC_THREADS; ++i) {
            const int e = tid + i * TC_THREADS;
            const int r = e >> 2, c = e & 3;
            const int gm = m0 + r, gk = k0 + c * 8;
            sptr<T> dst = as + tc_a_off(r, c);
            if (gm >= M || gk >= K) {
                cp_async_16<T>(dst, A, false);
            } else {
                gptr<const T> src = A + ((long long)gm * lda + gk);
                if (a_vec && gk + 8 <= K) {
                    cp_async_16<T>(dst, src, true);
                } else {
#pragma unroll
                    for (int j = 0; j < 8; ++j) dst[j] = gk + j < K ? src[j] : zero;
                }
            }
        }
#pragma unroll
        for (int i = 0; i < TC_BK * TC_BN / 8 / TC_THREADS; ++i) {
            const int e = tid + i * TC_THREADS;
            const int k = e >> 4, c = e & 15;
            const int gk = k0 + k, gn = n0 + c * 8;
            sptr<T> dst = bs + tc_b_off(k, c);
            if (gk >= K || gn >= N) {
                cp_async_16<T>(dst, B, false);
            } else {
                gptr<const T> src = B + ((long long)gk * ldb + gn);
                if (b_vec && gn + 8 <= N) {
                    cp_async_16<T>(dst, src, true);
                } else {
#pragma unroll
                    for (int j = 0; j < 8; ++j) dst[j] = gn + j < N ? src[j] : zero;
                }
            }
        }
    };

    float acc[TC_MI][TC_NI][4];
#pragma unroll
    for (int i = 0; i < TC_MI; ++i)
#pragma unroll
        for (int j = 0; j < TC_NI; ++j)
#pragma unroll
            for (int q = 0; q < 4; ++q) acc[i][j][q] = 0.f;

    const int ktiles = (K + TC_BK - 1) / TC_BK;
#pragma unroll
    for (int s = 0; s < TC_STAGES - 1; ++s) {
        if (s < ktiles) load_tile(s, s);
        cp_async_commit();
    }
    for (int kt = 0; kt < ktiles; ++kt) {
        cp_async_wait<TC_STAGES - 2>();
        // Tile kt is in shared memory for every thread, and every warp is done with the buffer refilled below.
        __syncthreads();
        const int next = kt + TC_STAGES - 1;
        if (next < ktiles) load_tile(next, next % TC_STAGES);
        cp_async_commit();

        sptr<T> as = smem + (kt % TC_STAGES) * TC_STAGE;
        sptr<T> bs = as + TC_BM * TC_BK;
#pragma unroll
        for (int ks = 0; ks < TC_BK / 16; ++ks) {
            unsigned af[TC_MI][4], bf[TC_NI][2];
#pragma unroll
            for (int mi = 0; mi < TC_MI; ++mi) {
                const int r = wm * TC_WM + mi * 16 + (lane & 15);
                ldmatrix_x4<T>(af[mi][0], af[mi][1], af[mi][2], af[mi][3], as + tc_a_off(r, ks * 2 + (lane >> 4)));
            }
#pragma unroll
            for (int nj = 0; nj < TC_NI / 2; ++nj) {
                const int k = ks * 16 + (lane & 15);
                const int c = (wn * TC_WN + nj * 16) / 8 + (lane >> 4);
                ldmatrix_x4_trans<T>(bf[2 * nj][0], bf[2 * nj][1], bf[2 * nj + 1][0], bf[2 * nj + 1][1],
                                     bs + tc_b_off(k, c));
            }
#pragma unroll
            for (int mi = 0; mi < TC_MI; ++mi)
#pragma unroll
                for (int ni = 0; ni < TC_NI; ++ni) mma<T>(acc[mi][ni], af[mi], bf[ni]);
        }
    }
    cp_async_wait_all();

    const int g = lane >> 2, t = lane & 3;
    const bool c_pairs = (ldc & 1) == 0;
#pragma unroll
    for (int mi = 0; mi < TC_MI; ++mi) {
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            const int row = m0 + wm * TC_WM + mi * 16 + g + h * 8;
            if (row >= M) continue;
#pragma unroll
            for (int ni = 0; ni < TC_NI; ++ni) {
                const int col = n0 + wn * TC_WN + ni * 8 + 2 * t;  // even
                if (col >= N) continue;
                const long long off = (long long)row * ldc + col;
                float v0 = alpha * acc[mi][ni][2 * h], v1 = alpha * acc[mi][ni][2 * h + 1];
                const bool pair = col + 1 < N;
                if (beta != 0.f) {
                    v0 += beta * to_f32(C[off]);
                    if (pair) v1 += beta * to_f32(C[off + 1]);
                }
                if (pair && c_pairs) {
                    *gcast<unsigned>(C + off) = pack2<T>(v0, v1);  // 4-byte aligned: ldc and col even
                } else {
                    C[off] = from_f32<T>(v0);
                    if (pair) C[off + 1] = from_f32<T>(v1);
                }
            }
        }
    }
}

}  // namespace

extern "C" __global__ void __launch_bounds__(256)
    gemm_tc_f16(gptr<const f16> JOULE_RESTRICT A, gptr<const f16> JOULE_RESTRICT B, gptr<f16> JOULE_RESTRICT C, int M,
                int N, int K, int lda, int ldb, int ldc, float alpha, float beta) {
    gemm_tc<f16>(A, B, C, M, N, K, lda, ldb, ldc, alpha, beta);
}
JOULE_EXPORT(gemm_tc_f16)

extern "C" __global__ void __launch_bounds__(256)
    gemm_tc_bf16(gptr<const bf16> JOULE_RESTRICT A, gptr<const bf16> JOULE_RESTRICT B, gptr<bf16> JOULE_RESTRICT C,
                 int M, int N, int K, int lda, int ldb, int ldc, float alpha, float beta) {
    gemm_tc<bf16>(A, B, C, M, N, K, lda, ldb, ldc, alpha, beta);
}
JOULE_EXPORT(gemm_tc_bf16)
