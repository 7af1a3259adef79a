// GEMM kernels: C = alpha·A·B + beta·C, row-major A (M×K, lda), B (K×N, ldb), C (M×N, ldc), f32 accumulation.
//
// gemm_simt_f32 / gemm_simt64_f32 — CUDA cores. Block tile 128×64×16 (64×64×16), 256 threads, each thread owns an
//   8×4 (4×4) register block. A is stored in shared memory k-major (transposed while it is copied, rows padded by 4
//   floats) so a thread reads its rows as 128-bit loads; B is stored as is. Two stages: 4-byte cp.async copies of
//   tile k+1 run while tile k is multiplied. Every copy is predicated (row < M, col < N, k < K) with zero fill.
// gemm_tc_{f16,bf16} / gemm_tc64_{f16,bf16} — tensor cores. Block tile 128×128×32 with 8 warps (64×64×32 with 4
//   warps), warps in a 2×(BN/32) grid, warp tile (BM/2)×32 of mma m16n8k16. Three-stage cp.async pipeline (16-byte
//   copies): tile k+2 is in flight while tile k is multiplied. A fragments come from ldmatrix.x4, B fragments (B is
//   row-major k×n) from ldmatrix.x4.trans, two n8 tiles per instruction. Shared layout: 16-byte chunks XOR-swizzled
//   so the 8 row addresses of each ldmatrix phase hit 8 different bank groups: A rows hold 4 chunks, chunk c of row
//   r is stored at c ^ ((r >> 1) & 3); B rows hold BN/8 chunks, chunk c of row k at c ^ (k & 7).
//   Tails: a chunk wholly outside M/N/K is zero-filled by cp.async (src-size 0); a chunk that straddles the K or N
//   edge, or any chunk when lda/ldb is not a multiple of 8 (16-byte copies need 16-byte aligned rows), is loaded
//   element by element with predicates and stored with plain shared stores (made visible by the same barrier).
//   Contract: the A, B, C base pointers are 16-byte aligned (every cuMemAlloc allocation is 256-byte aligned).
// Split K: with gridDim.z = S > 1, block z reduces k in [z·k_split, (z+1)·k_split) and stores its raw f32 sums to
//   the workspace W[z][M][N]; gemm_splitk_reduce_{dtype} then adds the S partial sums in order z = 0..S-1 and
//   applies the epilogue, so C is still rounded once. With S = 1 the GEMM kernel applies the epilogue itself and
//   never touches W. For every output element the k order is fixed by the shape and the split alone (k tiles in
//   ascending order, the tile size does not matter), which the fused depthwise-separable kernel relies on.
// Epilogue: v = alpha·acc (+ beta·C only when beta != 0, so NaN in C never leaks), rounded to T once, written only
//   where row < M and col < N (the tensor-core kernels store column pairs as one 32-bit word when ldc is even);
//   K = 0 gives beta·C (or 0). Offsets are computed in 64 bits.
#include "common.cuh"

namespace {
using namespace joule;

constexpr int SIMT_BK = 16, SIMT_THREADS = 256;
constexpr int TC_BK = 32, TC_STAGES = 3;

// The f32 epilogue shared by every kernel; `partial` (split K) stores the raw sum to the workspace instead.
template <class T>
JOULE_DEVICE void store_c(gptr<T> C, int ldc, float alpha, float beta, int row, int col, float acc) {
    const long long off = (long long)row * ldc + col;
    float v = alpha * acc;
    if (beta != 0.f) v += beta * to_f32(C[off]);
    C[off] = from_f32<T>(v);
}

template <int BM, int BN, int TM, int TN>
JOULE_DEVICE void gemm_simt(gptr<const float> A, gptr<const float> B, gptr<float> C, gptr<float> W, int M, int N,
                            int K, int lda, int ldb, int ldc, float alpha, float beta, int k_split) {
    constexpr int AS = BM + 4;  // k-major A row stride (floats), a multiple of 4 for 128-bit loads
    constexpr int STAGE = SIMT_BK * AS + SIMT_BK * BN;
    static_assert((BM / TM) * (BN / TN) == SIMT_THREADS && TM % 4 == 0 && TN == 4, "thread tiling");
    const int tid = threadIdx.x;
    const int m0 = blockIdx.x * BM, n0 = blockIdx.y * BN;
    const int kb = blockIdx.z * k_split, ke = min(K, kb + k_split);
    const int ty = tid / (BN / TN), tx = tid % (BN / TN);
    sptr<float> smem = dyn_smem<float>(0);

    auto load_tile = [&](int kt, int stage) {
        sptr<float> as = smem + stage * STAGE;
        sptr<float> bs = as + SIMT_BK * AS;
        const int k0 = kb + kt * SIMT_BK;
#pragma unroll
        for (int i = 0; i < BM * SIMT_BK / SIMT_THREADS; ++i) {
            // A warp takes 4 rows × 8 consecutive k: 32-byte global segments, and the transposing shared stores
            // (bank = 4·kk + r mod 32, as AS ≡ 4 mod 32) hit 32 different banks.
            const int e = tid + i * SIMT_THREADS;
            const int r = (e >> 6) * 4 + ((e >> 3) & 3), kk = ((e >> 5) & 1) * 8 + (e & 7);
            const int gm = m0 + r, gk = k0 + kk;
            const bool p = gm < M && gk < ke;
            cp_async_4<float>(as + kk * AS + r, p ? A + ((long long)gm * lda + gk) : A, p);
        }
#pragma unroll
        for (int i = 0; i < SIMT_BK * BN / SIMT_THREADS; ++i) {
            const int e = tid + i * SIMT_THREADS;
            const int kk = e / BN, c = e % BN;
            const int gk = k0 + kk, gn = n0 + c;
            const bool p = gk < ke && gn < N;
            cp_async_4<float>(bs + kk * BN + c, p ? B + ((long long)gk * ldb + gn) : B, p);
        }
    };

    float acc[TM][TN];
#pragma unroll
    for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] = 0.f;

    const int ktiles = ke > kb ? (ke - kb + SIMT_BK - 1) / SIMT_BK : 0;
    if (ktiles > 0) load_tile(0, 0);
    cp_async_commit();
    for (int kt = 0; kt < ktiles; ++kt) {
        if (kt + 1 < ktiles) load_tile(kt + 1, (kt + 1) & 1);
        cp_async_commit();
        cp_async_wait<1>();
        __syncthreads();
        sptr<float> as = smem + (kt & 1) * STAGE;
        sptr<float> bs = as + SIMT_BK * AS;
#pragma unroll
        for (int kk = 0; kk < SIMT_BK; ++kk) {
            float a[TM], b[TN];
#pragma unroll
            for (int q = 0; q < TM / 4; ++q) {
                float v[4];
                unpack128<float>(lds128<float>(as + kk * AS + ty * TM + 4 * q), v);
#pragma unroll
                for (int i = 0; i < 4; ++i) a[4 * q + i] = v[i];
            }
            unpack128<float>(lds128<float>(bs + kk * BN + tx * TN), b);
#pragma unroll
            for (int i = 0; i < TM; ++i)
#pragma unroll
                for (int j = 0; j < TN; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
        }
        __syncthreads();
    }
    cp_async_wait_all();

    const bool partial = gridDim.z > 1;
    gptr<float> w = W + (long long)blockIdx.z * M * N;
#pragma unroll
    for (int i = 0; i < TM; ++i) {
        const int row = m0 + ty * TM + i;
        if (row >= M) continue;
#pragma unroll
        for (int j = 0; j < TN; ++j) {
            const int col = n0 + tx * TN + j;
            if (col >= N) continue;
            if (partial) {
                w[(long long)row * N + col] = acc[i][j];
            } else {
                store_c<float>(C, ldc, alpha, beta, row, col, acc[i][j]);
            }
        }
    }
}

template <class T, int BM, int BN>
JOULE_DEVICE void gemm_tc(gptr<const T> A, gptr<const T> B, gptr<T> C, gptr<float> W, int M, int N, int K, int lda,
                          int ldb, int ldc, float alpha, float beta, int k_split) {
    constexpr int WARPS_M = 2, WN = 32, WARPS_N = BN / WN, WM = BM / WARPS_M;
    constexpr int THREADS = 32 * WARPS_M * WARPS_N;
    constexpr int MI = WM / 16, NI = WN / 8;  // mma tiles per warp
    constexpr int STAGE = BM * TC_BK + TC_BK * BN;  // elements per stage
    static_assert(BN / 8 >= 8 && (BM * TC_BK / 8) % THREADS == 0 && (TC_BK * BN / 8) % THREADS == 0, "tiling");
    const int tid = threadIdx.x, lane = lane_id(), warp = warp_id();
    const int wm = warp % WARPS_M, wn = warp / WARPS_M;
    const int m0 = blockIdx.x * BM, n0 = blockIdx.y * BN;
    const int kb = blockIdx.z * k_split, ke = min(K, kb + k_split);
    const bool a_vec = (lda & 7) == 0, b_vec = (ldb & 7) == 0;
    sptr<T> smem = dyn_smem<T>(0);
    const T zero = from_f32<T>(0.f);
    // Swizzled element offsets of 16-byte chunk `c` (8 elements) of a row.
    auto a_off = [](int r, int c) { return r * TC_BK + ((c ^ ((r >> 1) & 3)) << 3); };
    auto b_off = [](int k, int c) { return k * BN + ((c ^ (k & 7)) << 3); };

    auto load_tile = [&](int kt, int stage) {
        sptr<T> as = smem + stage * STAGE;
        sptr<T> bs = as + BM * TC_BK;
        const int k0 = kb + kt * TC_BK;
#pragma unroll
        for (int i = 0; i < BM * TC_BK / 8 / THREADS; ++i) {
            const int e = tid + i * THREADS;
            const int r = e >> 2, c = e & 3;
            const int gm = m0 + r, gk = k0 + c * 8;
            sptr<T> dst = as + a_off(r, c);
            if (gm >= M || gk >= ke) {
                cp_async_16<T>(dst, A, false);
            } else {
                gptr<const T> src = A + ((long long)gm * lda + gk);
                if (a_vec && gk + 8 <= ke) {
                    cp_async_16<T>(dst, src, true);
                } else {
#pragma unroll
                    for (int j = 0; j < 8; ++j) dst[j] = gk + j < ke ? src[j] : zero;
                }
            }
        }
#pragma unroll
        for (int i = 0; i < TC_BK * BN / 8 / THREADS; ++i) {
            const int e = tid + i * THREADS;
            const int k = e / (BN / 8), c = e % (BN / 8);
            const int gk = k0 + k, gn = n0 + c * 8;
            sptr<T> dst = bs + b_off(k, c);
            if (gk >= ke || gn >= N) {
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

    float acc[MI][NI][4];
#pragma unroll
    for (int i = 0; i < MI; ++i)
#pragma unroll
        for (int j = 0; j < NI; ++j)
#pragma unroll
            for (int q = 0; q < 4; ++q) acc[i][j][q] = 0.f;

    const int ktiles = ke > kb ? (ke - kb + TC_BK - 1) / TC_BK : 0;
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

        sptr<T> as = smem + (kt % TC_STAGES) * STAGE;
        sptr<T> bs = as + BM * TC_BK;
#pragma unroll
        for (int ks = 0; ks < TC_BK / 16; ++ks) {
            unsigned af[MI][4], bf[NI][2];
#pragma unroll
            for (int mi = 0; mi < MI; ++mi) {
                const int r = wm * WM + mi * 16 + (lane & 15);
                ldmatrix_x4<T>(af[mi][0], af[mi][1], af[mi][2], af[mi][3], as + a_off(r, ks * 2 + (lane >> 4)));
            }
#pragma unroll
            for (int nj = 0; nj < NI / 2; ++nj) {
                const int k = ks * 16 + (lane & 15);
                const int c = (wn * WN + nj * 16) / 8 + (lane >> 4);
                ldmatrix_x4_trans<T>(bf[2 * nj][0], bf[2 * nj][1], bf[2 * nj + 1][0], bf[2 * nj + 1][1],
                                     bs + b_off(k, c));
            }
#pragma unroll
            for (int mi = 0; mi < MI; ++mi)
#pragma unroll
                for (int ni = 0; ni < NI; ++ni) mma<T>(acc[mi][ni], af[mi], bf[ni]);
        }
    }
    cp_async_wait_all();

    const int g = lane >> 2, t = lane & 3;
    const bool partial = gridDim.z > 1;
    const bool c_pairs = (ldc & 1) == 0;
    gptr<float> w = W + (long long)blockIdx.z * M * N;
#pragma unroll
    for (int mi = 0; mi < MI; ++mi) {
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            const int row = m0 + wm * WM + mi * 16 + g + h * 8;
            if (row >= M) continue;
#pragma unroll
            for (int ni = 0; ni < NI; ++ni) {
                const int col = n0 + wn * WN + ni * 8 + 2 * t;  // even
                if (col >= N) continue;
                const bool pair = col + 1 < N;
                const float a0 = acc[mi][ni][2 * h], a1 = acc[mi][ni][2 * h + 1];
                if (partial) {
                    w[(long long)row * N + col] = a0;
                    if (pair) w[(long long)row * N + col + 1] = a1;
                    continue;
                }
                const long long off = (long long)row * ldc + col;
                float v0 = alpha * a0, v1 = alpha * a1;
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

template <class T>
JOULE_DEVICE void splitk_reduce(gptr<const float> W, gptr<T> C, int M, int N, int ldc, int splits, float alpha,
                                float beta) {
    const long long mn = (long long)M * N;
    const long long step = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < mn; i += step) {
        float s = 0.f;
        for (int z = 0; z < splits; ++z) s += W[z * mn + i];
        store_c<T>(C, ldc, alpha, beta, int(i / N), int(i % N), s);
    }
}

}  // namespace

// Every GEMM kernel: (A, B, C, W, M, N, K, lda, ldb, ldc, alpha, beta, k_split); grid (M tiles, N tiles, splits).
#define JOULE_GEMM_PARAMS(T)                                                                                          \
    gptr<const T> JOULE_RESTRICT A, gptr<const T> JOULE_RESTRICT B, gptr<T> JOULE_RESTRICT C,                       \
        gptr<float> JOULE_RESTRICT W, int M, int N, int K, int lda, int ldb, int ldc, float alpha, float beta,       \
        int k_split
#define JOULE_GEMM_ARGS A, B, C, W, M, N, K, lda, ldb, ldc, alpha, beta, k_split

extern "C" __global__ void __launch_bounds__(256) gemm_simt_f32(JOULE_GEMM_PARAMS(float)) {
    gemm_simt<128, 64, 8, 4>(JOULE_GEMM_ARGS);
}
JOULE_EXPORT(gemm_simt_f32)
extern "C" __global__ void __launch_bounds__(256) gemm_simt64_f32(JOULE_GEMM_PARAMS(float)) {
    gemm_simt<64, 64, 4, 4>(JOULE_GEMM_ARGS);
}
JOULE_EXPORT(gemm_simt64_f32)

extern "C" __global__ void __launch_bounds__(256) gemm_tc_f16(JOULE_GEMM_PARAMS(f16)) {
    gemm_tc<f16, 128, 128>(JOULE_GEMM_ARGS);
}
JOULE_EXPORT(gemm_tc_f16)
extern "C" __global__ void __launch_bounds__(256) gemm_tc_bf16(JOULE_GEMM_PARAMS(bf16)) {
    gemm_tc<bf16, 128, 128>(JOULE_GEMM_ARGS);
}
JOULE_EXPORT(gemm_tc_bf16)
extern "C" __global__ void __launch_bounds__(128) gemm_tc64_f16(JOULE_GEMM_PARAMS(f16)) {
    gemm_tc<f16, 64, 64>(JOULE_GEMM_ARGS);
}
JOULE_EXPORT(gemm_tc64_f16)
extern "C" __global__ void __launch_bounds__(128) gemm_tc64_bf16(JOULE_GEMM_PARAMS(bf16)) {
    gemm_tc<bf16, 64, 64>(JOULE_GEMM_ARGS);
}
JOULE_EXPORT(gemm_tc64_bf16)

// Split-K epilogue: (W, C, M, N, ldc, splits, alpha, beta); any grid (grid-stride over the M·N outputs).
#define JOULE_REDUCE_KERNEL(T, name)                                                                                 \
    extern "C" __global__ void __launch_bounds__(256)                                                               \
        name(gptr<const float> JOULE_RESTRICT W, gptr<T> JOULE_RESTRICT C, int M, int N, int ldc, int splits,        \
             float alpha, float beta) {                                                                              \
        splitk_reduce<T>(W, C, M, N, ldc, splits, alpha, beta);                                                      \
    }                                                                                                                \
    JOULE_EXPORT(name)
JOULE_REDUCE_KERNEL(float, gemm_splitk_reduce_f32)
JOULE_REDUCE_KERNEL(f16, gemm_splitk_reduce_f16)
JOULE_REDUCE_KERNEL(bf16, gemm_splitk_reduce_bf16)
