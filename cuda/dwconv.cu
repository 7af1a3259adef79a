// Depthwise-separable convolution, NHWC (see joule_core::DwConvShape).
//
// dwconv_dw_{f32,f16,bf16} — depthwise only. One thread computes one group of V = 16/sizeof(T) consecutive
//   depthwise output channels (4 for f32, 8 for f16/bf16) of one output pixel; consecutive threads take consecutive
//   groups, so a warp reads and writes contiguous channel runs. When dw_channels is a multiple of V the weights and
//   the output move as 128-bit vectors, and so does the input when multiplier = 1 (input channel = o / multiplier);
//   otherwise every element is loaded and stored on its own, with a predicate on the channel. Taps falling in the
//   padding (any of the four sides, with stride and dilation) are skipped, i.e. read as zero. f32 accumulation, one
//   rounding to T. Grid-stride loop over (pixel, group); pixel and group counts fit in int (the plan checks),
//   element offsets are 64-bit.
// The pointwise step is a GEMM ([pixels, dw_channels] · [dw_channels, out_channels]) run by gemm.cu's kernels.
// dwconv_fused_{f32,f16,bf16} — depthwise + pointwise in one kernel; the depthwise output never leaves the chip.
//   A block owns FM = 64 output pixels. For each chunk of KC depthwise channels (KC chosen by the launch plan to fit
//   shared memory; chunks loop when dw_channels > KC) it computes the 64×KC depthwise tile exactly as dwconv_dw does,
//   rounds it to T (so the fused and two-step paths multiply identical values) and stores it in shared memory, while
//   cp.async brings the matching KC×64 slice of the pointwise weights; then it multiplies the two tiles into
//   register accumulators (f16/bf16: 4 warps of 32×32 mma m16n8k16 tiles fed by ldmatrix from XOR-swizzled tiles,
//   chunk c of row r at c ^ (r & 7); f32: 256 threads with 4×4 register blocks over a k-major depthwise tile). A block
//   walks `n_per_block` tiles of 64 output channels; with a single chunk the depthwise tile is computed once and
//   reused for all of them. Pixels, channels and output channels past the edges are zero in the tiles (never
//   poison × 0) and are not written. Contract: base pointers 16-byte aligned (true of every device allocation).
#include "common.cuh"

namespace {
using namespace joule;

/// The geometry of one call, as passed to every kernel.
struct DwGeom {
    int batch, H, W, C, KH, KW, sh, sw, pt, pl, dh, dw, mult, OH, OW;
    JOULE_DEVICE int dwc() const { return C * mult; }
    JOULE_DEVICE int pixels() const { return batch * OH * OW; }  // the plan checks it fits in int
};

/// Depthwise outputs of channels o0 .. o0+V-1 (V = 16/sizeof(T)) of output pixel `gp`, f32-accumulated. `vec`: the
/// group is 16-byte aligned and whole (dw_channels % V == 0). Channels ≥ dw_channels give 0.
template <class T>
JOULE_DEVICE void dw_group(gptr<const T> in, gptr<const T> w, const DwGeom& g, int gp, int o0, bool vec,
                           float (&acc)[16 / sizeof(T)]) {
    constexpr int V = 16 / sizeof(T);
    const int dwc = g.dwc();
#pragma unroll
    for (int i = 0; i < V; ++i) acc[i] = 0.f;
    const int ow = gp % g.OW;
    const int t = gp / g.OW;
    const int oh = t % g.OH;
    const long long n = t / g.OH;
    for (int kh = 0; kh < g.KH; ++kh) {
        const int ih = oh * g.sh - g.pt + kh * g.dh;
        if (ih < 0 || ih >= g.H) continue;
        for (int kw = 0; kw < g.KW; ++kw) {
            const int iw = ow * g.sw - g.pl + kw * g.dw;
            if (iw < 0 || iw >= g.W) continue;
            gptr<const T> x = in + ((n * g.H + ih) * g.W + iw) * g.C;
            gptr<const T> wt = w + ((long long)(kh * g.KW + kw) * dwc + o0);
            float xv[V], wv[V];
            if (vec) {
                unpack128<T>(ld128<T>(wt), wv);
                if (g.mult == 1) {
                    unpack128<T>(ld128<T>(x + o0), xv);
                } else {
#pragma unroll
                    for (int i = 0; i < V; ++i) xv[i] = to_f32(x[(o0 + i) / g.mult]);
                }
            } else {
#pragma unroll
                for (int i = 0; i < V; ++i) {
                    const bool ok = o0 + i < dwc;
                    xv[i] = ok ? to_f32(x[(o0 + i) / g.mult]) : 0.f;
                    wv[i] = ok ? to_f32(wt[i]) : 0.f;
                }
            }
#pragma unroll
            for (int i = 0; i < V; ++i) acc[i] = fmaf(xv[i], wv[i], acc[i]);
        }
    }
}

template <class T>
JOULE_DEVICE void dw_kernel(gptr<const T> in, gptr<const T> w, gptr<T> out, const DwGeom& g) {
    constexpr int V = 16 / sizeof(T);
    const int dwc = g.dwc();
    const bool vec = dwc % V == 0;
    const int groups = (dwc + V - 1) / V;
    const long long total = (long long)g.pixels() * groups;  // the plan checks it fits in int
    const long long step = (long long)gridDim.x * blockDim.x;
    for (long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += step) {
        const int o0 = int(idx) % groups * V;
        const int gp = int(idx) / groups;
        float acc[V];
        dw_group<T>(in, w, g, gp, o0, vec, acc);
        gptr<T> dst = out + ((long long)gp * dwc + o0);
        if (vec) {
            st128<T>(dst, pack128<T>(acc));
        } else {
#pragma unroll
            for (int i = 0; i < V; ++i)
                if (o0 + i < dwc) dst[i] = from_f32<T>(acc[i]);
        }
    }
}

// ---- fused ----
constexpr int FM = 64, FN = 64;
constexpr int TC_THREADS = 128, TC_WM = 32, TC_WN = 32, TC_MI = TC_WM / 16, TC_NI = TC_WN / 8;
constexpr int S_THREADS = 256, S_TM = 4, S_TN = 4, S_AS = FM + 4;

JOULE_DEVICE int sw_off(int r, int c, int row_elems) { return r * row_elems + ((c ^ (r & 7)) << 3); }

/// Tensor-core fused kernel (T = f16 or bf16). KC: multiple of 64.
template <class T>
JOULE_DEVICE void fused_tc(gptr<const T> in, gptr<const T> dw_w, gptr<const T> pw_w, gptr<T> out, const DwGeom& g,
                           int OC, int KC, int n_per_block) {
    constexpr int V = 8;
    const int tid = threadIdx.x, lane = lane_id(), warp = warp_id();
    const int wm = warp % (FM / TC_WM), wn = warp / (FM / TC_WM);
    const int dwc = g.dwc();
    const bool vec = dwc % V == 0, pw_vec = (OC & 7) == 0;
    const int pixels = g.pixels();
    const int m0 = blockIdx.x * FM;
    const int chunks = (dwc + KC - 1) / KC;
    const int n_begin = blockIdx.y * n_per_block * FN;
    const int n_end = min(OC, n_begin + n_per_block * FN);
    sptr<T> dws = dyn_smem<T>(0);
    sptr<T> pws = dyn_smem<T>(FM * KC * 2);
    const T zero = from_f32<T>(0.f);

    for (int nb = n_begin; nb < n_end; nb += FN) {
        float acc[TC_MI][TC_NI][4];
#pragma unroll
        for (int i = 0; i < TC_MI; ++i)
#pragma unroll
            for (int j = 0; j < TC_NI; ++j)
#pragma unroll
                for (int q = 0; q < 4; ++q) acc[i][j][q] = 0.f;

        for (int ch = 0; ch < chunks; ++ch) {
            const int c0 = ch * KC;
            __syncthreads();  // everyone is done reading the tiles about to be overwritten
            // Pointwise weights rows c0.. c0+KC, columns nb .. nb+FN: in flight while the depthwise tile is computed.
            for (int e = tid; e < KC * (FN / 8); e += TC_THREADS) {
                const int k = e / (FN / 8), c = e % (FN / 8);
                const int gk = c0 + k, gn = nb + c * 8;
                sptr<T> dst = pws + sw_off(k, c, FN);
                if (gk >= dwc || gn >= OC) {
                    cp_async_16<T>(dst, pw_w, false);
                } else {
                    gptr<const T> src = pw_w + ((long long)gk * OC + gn);
                    if (pw_vec && gn + 8 <= OC) {
                        cp_async_16<T>(dst, src, true);
                    } else {
#pragma unroll
                        for (int j = 0; j < 8; ++j) dst[j] = gn + j < OC ? src[j] : zero;
                    }
                }
            }
            cp_async_commit();
            if (chunks > 1 || nb == n_begin) {
                for (int e = tid; e < FM * (KC / V); e += TC_THREADS) {
                    const int p = e / (KC / V), c = e % (KC / V);
                    const int gp = m0 + p;
                    const int o0 = c0 + c * V;
                    float v[V];
                    if (gp < pixels && o0 < dwc) {
                        dw_group<T>(in, dw_w, g, gp, o0, vec, v);
                    } else {
#pragma unroll
                        for (int i = 0; i < V; ++i) v[i] = 0.f;
                    }
                    sts128<T>(dws + sw_off(p, c, KC), pack128<T>(v));
                }
            }
            cp_async_wait_all();
            __syncthreads();
            for (int ks = 0; ks < KC / 16; ++ks) {
                unsigned af[TC_MI][4], bf[TC_NI][2];
#pragma unroll
                for (int mi = 0; mi < TC_MI; ++mi) {
                    const int r = wm * TC_WM + mi * 16 + (lane & 15);
                    ldmatrix_x4<T>(af[mi][0], af[mi][1], af[mi][2], af[mi][3],
                                   dws + sw_off(r, ks * 2 + (lane >> 4), KC));
                }
#pragma unroll
                for (int nj = 0; nj < TC_NI / 2; ++nj) {
                    const int k = ks * 16 + (lane & 15);
                    const int c = (wn * TC_WN + nj * 16) / 8 + (lane >> 4);
                    ldmatrix_x4_trans<T>(bf[2 * nj][0], bf[2 * nj][1], bf[2 * nj + 1][0], bf[2 * nj + 1][1],
                                         pws + sw_off(k, c, FN));
                }
#pragma unroll
                for (int mi = 0; mi < TC_MI; ++mi)
#pragma unroll
                    for (int ni = 0; ni < TC_NI; ++ni) mma<T>(acc[mi][ni], af[mi], bf[ni]);
            }
        }

        const int gq = lane >> 2, t = lane & 3;
#pragma unroll
        for (int mi = 0; mi < TC_MI; ++mi) {
#pragma unroll
            for (int h = 0; h < 2; ++h) {
                const int row = m0 + wm * TC_WM + mi * 16 + gq + h * 8;
                if (row >= pixels) continue;
#pragma unroll
                for (int ni = 0; ni < TC_NI; ++ni) {
                    const int col = nb + wn * TC_WN + ni * 8 + 2 * t;  // even
                    if (col >= OC) continue;
                    const long long off = (long long)row * OC + col;
                    const float v0 = acc[mi][ni][2 * h], v1 = acc[mi][ni][2 * h + 1];
                    if (col + 1 < OC && (OC & 1) == 0) {
                        *gcast<unsigned>(out + off) = pack2<T>(v0, v1);  // 4-byte aligned: OC and col even
                    } else {
                        out[off] = from_f32<T>(v0);
                        if (col + 1 < OC) out[off + 1] = from_f32<T>(v1);
                    }
                }
            }
        }
    }
}

}  // namespace

#define JOULE_DW_GEOM_PARAMS                                                                                        \
    int batch, int H, int W, int C, int KH, int KW, int sh, int sw, int pt, int pl, int dh, int dwl, int mult, int OH, \
        int OW
#define JOULE_DW_GEOM {batch, H, W, C, KH, KW, sh, sw, pt, pl, dh, dwl, mult, OH, OW}

#define JOULE_DW_KERNEL(T, name)                                                                                     \
    extern "C" __global__ void __launch_bounds__(256) name(gptr<const T> JOULE_RESTRICT in,                         \
                                                             gptr<const T> JOULE_RESTRICT w,                          \
                                                             gptr<T> JOULE_RESTRICT out, JOULE_DW_GEOM_PARAMS) {     \
        const DwGeom g = JOULE_DW_GEOM;                                                                              \
        dw_kernel<T>(in, w, out, g);                                                                                 \
    }                                                                                                                \
    JOULE_EXPORT(name)

JOULE_DW_KERNEL(float, dwconv_dw_f32)
JOULE_DW_KERNEL(f16, dwconv_dw_f16)
JOULE_DW_KERNEL(bf16, dwconv_dw_bf16)

extern "C" __global__ void __launch_bounds__(S_THREADS, 1)
    dwconv_fused_f32(gptr<const float> JOULE_RESTRICT in, gptr<const float> JOULE_RESTRICT dw_w,
                     gptr<const float> JOULE_RESTRICT pw_w, gptr<float> JOULE_RESTRICT out, JOULE_DW_GEOM_PARAMS,
                     int OC, int KC, int n_per_block) {
    // SIMT: KC a multiple of 16. Shared: k-major depthwise tile [KC][FM + 4], then pointwise tile [KC][FN].
    constexpr int V = 4;
    const DwGeom g = JOULE_DW_GEOM;
    const int tid = threadIdx.x;
    const int ty = tid / (FN / S_TN), tx = tid % (FN / S_TN);
    const int dwc = g.dwc();
    const bool vec = dwc % V == 0;
    const int pixels = g.pixels();
    const int m0 = blockIdx.x * FM;
    const int chunks = (dwc + KC - 1) / KC;
    const int n_begin = blockIdx.y * n_per_block * FN;
    const int n_end = min(OC, n_begin + n_per_block * FN);
    sptr<float> dws = dyn_smem<float>(0);
    sptr<float> pws = dyn_smem<float>(KC * S_AS * 4);

    for (int nb = n_begin; nb < n_end; nb += FN) {
        float acc[S_TM][S_TN];
#pragma unroll
        for (int i = 0; i < S_TM; ++i)
#pragma unroll
            for (int j = 0; j < S_TN; ++j) acc[i][j] = 0.f;
        for (int ch = 0; ch < chunks; ++ch) {
            const int c0 = ch * KC;
            __syncthreads();
            for (int e = tid; e < KC * FN; e += S_THREADS) {
                const int k = e / FN, c = e % FN;
                const int gk = c0 + k, gn = nb + c;
                const bool p = gk < dwc && gn < OC;
                cp_async_4<float>(pws + e, p ? pw_w + ((long long)gk * OC + gn) : pw_w, p);
            }
            cp_async_commit();
            if (chunks > 1 || nb == n_begin) {
                for (int e = tid; e < FM * (KC / V); e += S_THREADS) {
                    const int p = e / (KC / V), c = e % (KC / V);
                    const int gp = m0 + p;
                    const int o0 = c0 + c * V;
                    float v[V];
                    if (gp < pixels && o0 < dwc) {
                        dw_group<float>(in, dw_w, g, gp, o0, vec, v);
                    } else {
#pragma unroll
                        for (int i = 0; i < V; ++i) v[i] = 0.f;
                    }
#pragma unroll
                    for (int i = 0; i < V; ++i) dws[(c * V + i) * S_AS + p] = v[i];
                }
            }
            cp_async_wait_all();
            __syncthreads();
            for (int k = 0; k < KC; ++k) {
                float a[S_TM], b[S_TN];
                unpack128<float>(lds128<float>(dws + k * S_AS + ty * S_TM), a);
                unpack128<float>(lds128<float>(pws + k * FN + tx * S_TN), b);
#pragma unroll
                for (int i = 0; i < S_TM; ++i)
#pragma unroll
                    for (int j = 0; j < S_TN; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
            }
        }
#pragma unroll
        for (int i = 0; i < S_TM; ++i) {
            const int row = m0 + ty * S_TM + i;
            if (row >= pixels) continue;
#pragma unroll
            for (int j = 0; j < S_TN; ++j) {
                const int col = nb + tx * S_TN + j;
                if (col < OC) out[(long long)row * OC + col] = acc[i][j];
            }
        }
    }
}
JOULE_EXPORT(dwconv_fused_f32)

extern "C" __global__ void __launch_bounds__(TC_THREADS, 1)
    dwconv_fused_f16(gptr<const f16> JOULE_RESTRICT in, gptr<const f16> JOULE_RESTRICT dw_w,
                     gptr<const f16> JOULE_RESTRICT pw_w, gptr<f16> JOULE_RESTRICT out, JOULE_DW_GEOM_PARAMS, int OC,
                     int KC, int n_per_block) {
    const DwGeom g = JOULE_DW_GEOM;
    fused_tc<f16>(in, dw_w, pw_w, out, g, OC, KC, n_per_block);
}
JOULE_EXPORT(dwconv_fused_f16)

extern "C" __global__ void __launch_bounds__(TC_THREADS, 1)
    dwconv_fused_bf16(gptr<const bf16> JOULE_RESTRICT in, gptr<const bf16> JOULE_RESTRICT dw_w,
                      gptr<const bf16> JOULE_RESTRICT pw_w, gptr<bf16> JOULE_RESTRICT out, JOULE_DW_GEOM_PARAMS,
                      int OC, int KC, int n_per_block) {
    const DwGeom g = JOULE_DW_GEOM;
    fused_tc<bf16>(in, dw_w, pw_w, out, g, OC, KC, n_per_block);
}
JOULE_EXPORT(dwconv_fused_bf16)
