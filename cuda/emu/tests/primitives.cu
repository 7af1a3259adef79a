// Test kernels for the emulator itself (compiled only into crates/joule-emu, never shipped to a GPU): each exposes
// one primitive of common.cuh so crates/joule-emu/tests check it against expectations written out independently in
// Rust (fragment layouts from the PTX ISA, shuffle rules, cp.async group ordering, access checks).
#include "../../common.cuh"

using namespace joule;

// ---- mma: one warp per block; lane l reads its fragments from `frags` (10 words per lane: a0..a3, b0, b1, then
// c0..c3 as f32 bits) and writes its 4 accumulators to out[(block·32 + l)·4 + i]. ----
template <class T>
JOULE_DEVICE void mma_case(gptr<const unsigned> frags, gptr<float> out) {
    const int l = lane_id();
    const gptr<const unsigned> f = frags + (long long)(blockIdx.x * 32 + l) * 10;
    unsigned a[4] = {f[0], f[1], f[2], f[3]};
    unsigned b[2] = {f[4], f[5]};
    float acc[4];
    for (int i = 0; i < 4; ++i) acc[i] = __uint_as_float(f[6 + i]);
    mma<T>(acc, a, b);
    for (int i = 0; i < 4; ++i) out[(blockIdx.x * 32 + l) * 4 + i] = acc[i];
}
extern "C" __global__ void emutest_mma_f16(gptr<const unsigned> frags, gptr<float> out) { mma_case<f16>(frags, out); }
JOULE_EXPORT(emutest_mma_f16)
extern "C" __global__ void emutest_mma_bf16(gptr<const unsigned> frags, gptr<float> out) { mma_case<bf16>(frags, out); }
JOULE_EXPORT(emutest_mma_bf16)

// ---- ldmatrix: `image` (n 16-bit words) is copied to shared memory; lane l passes the address
// dyn_smem + row_offset[l] (in elements); mode 0..5 = x1, x2, x4, x1.trans, x2.trans, x4.trans; out[l·4 + r]. ----
extern "C" __global__ void emutest_ldmatrix(gptr<const unsigned short> image, int n, gptr<const int> row_offset,
                                            gptr<unsigned> out, int mode) {
    sptr<unsigned short> s = dyn_smem<unsigned short>(0);
    for (int i = threadIdx.x; i < n; i += blockDim.x) s[i] = image[i];
    __syncthreads();
    const int l = lane_id();
    sptr<unsigned short> row = s + row_offset[l];
    unsigned r[4] = {0, 0, 0, 0};
    switch (mode) {
        case 0: ldmatrix_x1(r[0], row); break;
        case 1: ldmatrix_x2(r[0], r[1], row); break;
        case 2: ldmatrix_x4(r[0], r[1], r[2], r[3], row); break;
        case 3: ldmatrix_x1_trans(r[0], row); break;
        case 4: ldmatrix_x2_trans(r[0], r[1], row); break;
        default: ldmatrix_x4_trans(r[0], r[1], r[2], r[3], row); break;
    }
    for (int i = 0; i < 4; ++i) out[l * 4 + i] = r[i];
}
JOULE_EXPORT(emutest_ldmatrix)

// ---- shuffles, votes, reductions: lane l of warp w holds v = in[w·32 + l]; 12 results per thread. ----
extern "C" __global__ void emutest_warp_ops(gptr<const float> in, gptr<float> out, int src_mul) {
    const int t = threadIdx.x;
    const int l = lane_id();
    const float v = in[t];
    gptr<float> o = out + (long long)t * 12;
    o[0] = shfl(v, (l * src_mul) % 32);
    o[1] = shfl_xor(v, 5);
    o[2] = shfl_down(v, 3);
    o[3] = __uint_as_float(ballot(v > 0.0f));
    o[4] = any(v > 100.0f) ? 1.0f : 0.0f;
    o[5] = all(v > -100.0f) ? 1.0f : 0.0f;
    o[6] = warp_sum(v);
    o[7] = warp_max(v);
    o[8] = group_sum(v, 8);
    o[9] = group_max(v, 4);
    o[10] = float(warp_id());
    o[11] = float(__shfl_up_sync(0xffffffffu, l, 2));
}
JOULE_EXPORT(emutest_warp_ops)

// ---- barriers and geometry: block sum through shared memory (tree with __syncthreads), 2-D/3-D indices. ----
extern "C" __global__ void emutest_block_sum(gptr<const float> in, gptr<float> out, gptr<int> ids, int n) {
    const int threads = blockDim.x * blockDim.y * blockDim.z;
    const int t = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
    const int b = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
    sptr<float> s = dyn_smem<float>(0);
    const int i = b * threads + t;
    s[t] = i < n ? in[i] : 0.0f;
    __syncthreads();
    for (int w = threads / 2; w > 0; w /= 2) {  // threads is a power of two in the tests
        if (t < w) s[t] = s[t] + s[t + w];
        __syncthreads();
    }
    if (t == 0) out[b] = s[0];
    ids[i * 2] = t;
    ids[i * 2 + 1] = b;
}
JOULE_EXPORT(emutest_block_sum)

// ---- cp.async: 64 threads, two groups. Group 0 copies src[0..64) (4 bytes each), group 1 src[64..128) with
// 16-byte copies by the first 16 threads; `skip` predicates off copies of index ≥ skip (zero fill). out rows:
// [0] smem 0..64 before any wait, [1] after wait<1> (group 0 landed, group 1 pending), [2] 64..128 after wait<1>,
// [3] 64..128 after wait_all. ----
extern "C" __global__ void emutest_cp_async(gptr<const float> src, gptr<float> out, int skip) {
    const int t = threadIdx.x;
    sptr<float> s = dyn_smem<float>(0);
    cp_async_4(s + t, src + t, t < skip);
    cp_async_commit();
    if (t < 16) cp_async_16(s + 64 + 4 * t, src + 64 + 4 * t, 64 + 4 * t < skip);
    cp_async_commit();
    out[t] = s[t];  // before any wait: the poison
    cp_async_wait<1>();
    __syncthreads();
    out[64 + t] = s[t];
    out[128 + t] = s[64 + t];
    __syncthreads();
    cp_async_wait_all();
    __syncthreads();
    out[192 + t] = s[64 + t];
}
JOULE_EXPORT(emutest_cp_async)

// ---- invalid programs the emulator must report (not crash, not hang). ----
/// Thread t writes out[t]: out-of-bounds when the buffer holds fewer than blockDim elements.
extern "C" __global__ void emutest_oob_global(gptr<float> out) { out[threadIdx.x] = 1.0f; }
JOULE_EXPORT(emutest_oob_global)

/// Thread t reads shared float t: out-of-bounds when the launch gives fewer than 4·blockDim bytes.
extern "C" __global__ void emutest_oob_shared(gptr<float> out) {
    sptr<float> s = dyn_smem<float>(0);
    s[threadIdx.x] = 2.0f;
    out[threadIdx.x] = s[threadIdx.x];
}
JOULE_EXPORT(emutest_oob_shared)

/// mode 0: half a warp waits at __syncthreads while the other half waits in a shuffle (deadlock);
/// mode 1: threads reach two different __syncthreads; mode 2: a 16-byte load at a 4-byte-aligned address;
/// mode 3: a shuffle in a warp with only 16 lanes (blockDim 48).
extern "C" __global__ void emutest_invalid(gptr<float> out, int mode) {
    const int t = threadIdx.x;
    if (mode == 0) {
        if (t < 16) {
            __syncthreads();
        } else {
            out[t] = shfl(1.0f, 0);
        }
    } else if (mode == 1) {
        if (t < 16) {
            __syncthreads();
        } else {
            __syncthreads();
        }
    } else if (mode == 2) {
        uint4 v = ld128<float>(out + 1);
        out[0] = __uint_as_float(v.x);
    } else {
        out[t] = shfl(1.0f, 0);
    }
}
JOULE_EXPORT(emutest_invalid)

// ---- conversions inside a kernel: to_f32/from_f32/pack2 for n values. ----
extern "C" __global__ void emutest_convert(gptr<const float> in, gptr<unsigned> out, int n) {
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        const float x = in[i];
        out[i * 4 + 0] = pack2<f16>(x, -x);
        out[i * 4 + 1] = pack2<bf16>(x, -x);
        out[i * 4 + 2] = __float_as_uint(to_f32(from_f32<f16>(x)));
        out[i * 4 + 3] = __float_as_uint(to_f32(from_f32<bf16>(x)));
    }
}
JOULE_EXPORT(emutest_convert)

// ---- a 16×8×16 product the way kernels do it: A (16×16 row-major) through ldmatrix_x4, B (16×8 row-major, k×n)
// through ldmatrix_x2_trans, one mma, C (16×8 f32) written from the accumulator fragment. One warp. ----
template <class T>
JOULE_DEVICE void mma_tile(gptr<const T> a, gptr<const T> b, gptr<float> c) {
    sptr<T> sa = dyn_smem<T>(0);
    sptr<T> sb = dyn_smem<T>(16 * 16 * sizeof(T));
    const int l = lane_id();
    for (int i = l; i < 256; i += 32) sa[i] = a[i];
    for (int i = l; i < 128; i += 32) sb[i] = b[i];
    __syncthreads();
    unsigned af[4], bf[2];
    ldmatrix_x4(af[0], af[1], af[2], af[3], sa + (l % 16) * 16 + (l / 16) * 8);
    ldmatrix_x2_trans(bf[0], bf[1], sb + (l % 16) * 8);
    float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    mma<T>(acc, af, bf);
    const int g = l / 4, t = l % 4;
    c[g * 8 + 2 * t] = acc[0];
    c[g * 8 + 2 * t + 1] = acc[1];
    c[(g + 8) * 8 + 2 * t] = acc[2];
    c[(g + 8) * 8 + 2 * t + 1] = acc[3];
}
extern "C" __global__ void emutest_mma_tile_f16(gptr<const f16> a, gptr<const f16> b, gptr<float> c) {
    mma_tile<f16>(a, b, c);
}
JOULE_EXPORT(emutest_mma_tile_f16)
extern "C" __global__ void emutest_mma_tile_bf16(gptr<const bf16> a, gptr<const bf16> b, gptr<float> c) {
    mma_tile<bf16>(a, b, c);
}
JOULE_EXPORT(emutest_mma_tile_bf16)

// ---- a missing barrier: thread t writes shared word t, then reads word t + dir without __syncthreads. ----
extern "C" __global__ void emutest_missing_barrier(gptr<float> out, int dir) {
    const int t = threadIdx.x, n = blockDim.x;
    sptr<float> s = dyn_smem<float>(0);
    s[t] = float(t);
    out[blockIdx.x * n + t] = s[(t + dir + n) % n];
}
JOULE_EXPORT(emutest_missing_barrier)

// ---- a kernel that never finishes (for the watchdog test, run in a child process). ----
extern "C" __global__ void emutest_forever(gptr<float> out) {
    for (;;) out[0] = out[0] + 1.0f;
}
JOULE_EXPORT(emutest_forever)

// CUDA's own 16-bit pair types compile under emulation too (kernels should prefer pack2/to_f32).
JOULE_DEVICE float pair_roundtrip(float a, float b) {
    const float2 h = __half22float2(__floats2half2_rn(a, b));
    const float2 g = __bfloat1622float2(__floats2bfloat162_rn(a, b));
    return h.x + h.y + g.x + g.y;
}
extern "C" __global__ void emutest_pairs(gptr<float> out, float a, float b) { out[0] = pair_roundtrip(a, b); }
JOULE_EXPORT(emutest_pairs)
