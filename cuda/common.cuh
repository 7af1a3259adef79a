// Joule device primitives.
//
// Every kernel in cuda/ uses these wrappers for anything beyond plain C++ arithmetic: memory views, tensor-core mma,
// ldmatrix, cp.async, warp shuffles and votes, f16/bf16 conversions. Kernels never write inline PTX themselves.
// That is what lets the same kernel sources run in two places:
//   * on a GPU, compiled by NVRTC (this file's CUDA branch: inline PTX), and
//   * on the CPU under emulation (JOULE_EMULATE defined; cuda/emu/emu.h implements every item below with the PTX
//     ISA's documented semantics and fragment layouts, and bounds-checks every global and shared access).
//
// Conventions every kernel follows:
//   * Kernels are `extern "C" __global__`, named `{op}_{variant}_{dtype}` (gemm_tc_f16, attention_fa2_bf16, ...),
//     and each is followed by `JOULE_EXPORT(name)` (registers it with the emulator; nothing on a GPU).
//   * Global buffers are passed as `joule::gptr<T>` (const T for inputs) with `JOULE_RESTRICT`; scalars as int/float.
//   * Shared memory is dynamic only, reached through `joule::dyn_smem<T>(byte_offset)` (an `sptr<T>`); no static
//     `__shared__` arrays, so every shared access is bounds-checked under emulation.
//   * Warp-collective wrappers (shuffles, votes, ldmatrix, mma) must be called by all 32 lanes of the warp.
#pragma once

#if defined(JOULE_EMULATE)
#include "emu/emu.h"
#else

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#define JOULE_RESTRICT __restrict__
#define JOULE_EXPORT(name)
#define JOULE_DEVICE __device__ __forceinline__

extern "C" __shared__ __align__(128) unsigned char joule_dyn_smem[];

namespace joule {

typedef __half f16;
typedef __nv_bfloat16 bf16;

/// A pointer into global memory (checked under emulation).
template <class T>
using gptr = T*;
/// A pointer into shared memory (checked under emulation).
template <class T>
using sptr = T*;

/// The block's dynamic shared memory, viewed as T from `byte_offset` (a multiple of 16 for 128-bit access).
template <class T>
JOULE_DEVICE sptr<T> dyn_smem(unsigned byte_offset) {
    return reinterpret_cast<T*>(joule_dyn_smem + byte_offset);
}

/// Reinterprets a global pointer as another element type (for 128-bit vector access).
template <class U, class T>
JOULE_DEVICE gptr<U> gcast(gptr<T> p) {
    return reinterpret_cast<U*>(p);
}
/// Reinterprets a shared pointer as another element type.
template <class U, class T>
JOULE_DEVICE sptr<U> scast(sptr<T> p) {
    return reinterpret_cast<U*>(p);
}

// ---- conversions (round to nearest even; NaN stays NaN; overflow gives ±Inf) ----
JOULE_DEVICE float to_f32(float x) { return x; }
JOULE_DEVICE float to_f32(f16 x) { return __half2float(x); }
JOULE_DEVICE float to_f32(bf16 x) { return __bfloat162float(x); }

template <class T>
JOULE_DEVICE T from_f32(float x);
template <>
JOULE_DEVICE float from_f32<float>(float x) { return x; }
template <>
JOULE_DEVICE f16 from_f32<f16>(float x) { return __float2half_rn(x); }
template <>
JOULE_DEVICE bf16 from_f32<bf16>(float x) { return __float2bfloat16_rn(x); }

/// Two values rounded to T (16-bit) packed into 32 bits, `lo` in the low half: the element order of mma fragments.
template <class T>
JOULE_DEVICE unsigned pack2(float lo, float hi);
template <>
JOULE_DEVICE unsigned pack2<f16>(float lo, float hi) {
    __half2 h = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<unsigned*>(&h);
}
template <>
JOULE_DEVICE unsigned pack2<bf16>(float lo, float hi) {
    __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<unsigned*>(&h);
}

// ---- 128-bit vector access (16-byte aligned addresses) ----
template <class T>
JOULE_DEVICE uint4 ld128(gptr<const T> p) { return *reinterpret_cast<const uint4*>(p); }
template <class T>
JOULE_DEVICE void st128(gptr<T> p, uint4 v) { *reinterpret_cast<uint4*>(p) = v; }
template <class T>
JOULE_DEVICE uint4 lds128(sptr<const T> p) { return *reinterpret_cast<const uint4*>(p); }
template <class T>
JOULE_DEVICE void sts128(sptr<T> p, uint4 v) { *reinterpret_cast<uint4*>(p) = v; }

// ---- thread geometry ----
JOULE_DEVICE int lane_id() { return threadIdx.x & 31; }
JOULE_DEVICE int warp_id() { return threadIdx.x >> 5; }

// ---- warp shuffles, reductions and votes (all 32 lanes must call) ----
JOULE_DEVICE float shfl(float v, int src_lane) { return __shfl_sync(0xffffffffu, v, src_lane); }
JOULE_DEVICE float shfl_xor(float v, int lane_mask) { return __shfl_xor_sync(0xffffffffu, v, lane_mask); }
JOULE_DEVICE float shfl_down(float v, int delta) { return __shfl_down_sync(0xffffffffu, v, delta); }
JOULE_DEVICE unsigned ballot(bool p) { return __ballot_sync(0xffffffffu, p); }
JOULE_DEVICE bool any(bool p) { return __any_sync(0xffffffffu, p); }
JOULE_DEVICE bool all(bool p) { return __all_sync(0xffffffffu, p); }
/// Sum over the whole warp, returned to every lane.
JOULE_DEVICE float warp_sum(float v) {
    for (int m = 16; m > 0; m >>= 1) v += shfl_xor(v, m);
    return v;
}
/// Max over the whole warp, returned to every lane.
JOULE_DEVICE float warp_max(float v) {
    for (int m = 16; m > 0; m >>= 1) v = fmaxf(v, shfl_xor(v, m));
    return v;
}
/// Sum over aligned groups of `width` lanes (width a power of two ≤ 32), returned to every lane of the group.
JOULE_DEVICE float group_sum(float v, int width) {
    for (int m = width >> 1; m > 0; m >>= 1) v += shfl_xor(v, m);
    return v;
}
/// Max over aligned groups of `width` lanes.
JOULE_DEVICE float group_max(float v, int width) {
    for (int m = width >> 1; m > 0; m >>= 1) v = fmaxf(v, shfl_xor(v, m));
    return v;
}

// ---- cp.async: global → shared copies that bypass registers (sm_80+) ----
JOULE_DEVICE unsigned smem_u32(const void* p) { return static_cast<unsigned>(__cvta_generic_to_shared(p)); }

/// Copies 16 bytes from `src` to `dst` asynchronously; when `pred` is false, writes 16 zero bytes and reads nothing
/// (the tail predicate: `src` need not be a valid address then).
template <class T>
JOULE_DEVICE void cp_async_16(sptr<T> dst, gptr<const T> src, bool pred) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_u32(dst)), "l"(src),
                 "r"(pred ? 16 : 0));
}
/// As cp_async_16 for 4 bytes (one f32 or two 16-bit values).
template <class T>
JOULE_DEVICE void cp_async_4(sptr<T> dst, gptr<const T> src, bool pred) {
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(smem_u32(dst)), "l"(src), "r"(pred ? 4 : 0));
}
/// Closes the current group of cp.async copies.
JOULE_DEVICE void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
/// Waits until at most N most recent groups are still pending (this thread's copies only: follow with
/// __syncthreads() before reading other threads' data).
template <int N>
JOULE_DEVICE void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }
/// Waits for every pending group.
JOULE_DEVICE void cp_async_wait_all() { asm volatile("cp.async.wait_all;\n" ::); }

// ---- ldmatrix: 8×8 matrices of 16-bit elements from shared memory into mma fragments ----
// Lane i supplies the address of one 16-byte row: lanes 0-7 the rows of matrix 0, 8-15 of matrix 1, 16-23 of
// matrix 2, 24-31 of matrix 3 (x1 uses lanes 0-7, x2 lanes 0-15; the other lanes' addresses are ignored). Each lane
// receives, per matrix, the 32-bit register holding row (lane/4), columns 2·(lane%4) and 2·(lane%4)+1; the .trans
// forms deliver the transposed matrix.
template <class T>
JOULE_DEVICE void ldmatrix_x1(unsigned& r0, sptr<const T> row) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x1.shared.b16 {%0}, [%1];\n" : "=r"(r0) : "r"(smem_u32(row)));
}
template <class T>
JOULE_DEVICE void ldmatrix_x2(unsigned& r0, unsigned& r1, sptr<const T> row) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0,%1}, [%2];\n"
                 : "=r"(r0), "=r"(r1)
                 : "r"(smem_u32(row)));
}
template <class T>
JOULE_DEVICE void ldmatrix_x4(unsigned& r0, unsigned& r1, unsigned& r2, unsigned& r3, sptr<const T> row) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
                 : "r"(smem_u32(row)));
}
template <class T>
JOULE_DEVICE void ldmatrix_x1_trans(unsigned& r0, sptr<const T> row) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x1.trans.shared.b16 {%0}, [%1];\n" : "=r"(r0) : "r"(smem_u32(row)));
}
template <class T>
JOULE_DEVICE void ldmatrix_x2_trans(unsigned& r0, unsigned& r1, sptr<const T> row) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0,%1}, [%2];\n"
                 : "=r"(r0), "=r"(r1)
                 : "r"(smem_u32(row)));
}
template <class T>
JOULE_DEVICE void ldmatrix_x4_trans(unsigned& r0, unsigned& r1, unsigned& r2, unsigned& r3, sptr<const T> row) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
                 : "r"(smem_u32(row)));
}

// ---- tensor cores: mma.sync.aligned.m16n8k16.row.col, f32 accumulate ----
// Fragments (PTX ISA, "Matrix Fragments for mma.m16n8k16 with floating point type"), with g = lane/4, t = lane%4:
//   A (16×16, row-major), 4 registers of 2 elements: a0 = (g, 2t..2t+1), a1 = (g+8, 2t..), a2 = (g, 2t+8..),
//     a3 = (g+8, 2t+8..)
//   B (16×8, "col": k-major per column), 2 registers: b0 = (k = 2t..2t+1, n = g), b1 = (k = 2t+8.., n = g)
//   C/D (16×8 f32): c0,c1 = (g, 2t..2t+1), c2,c3 = (g+8, 2t..2t+1)
/// acc += A·B with f16 inputs.
JOULE_DEVICE void mma_m16n8k16(float (&acc)[4], const unsigned (&a)[4], const unsigned (&b)[2], f16) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(acc[0]), "+f"(acc[1]), "+f"(acc[2]), "+f"(acc[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
/// acc += A·B with bf16 inputs.
JOULE_DEVICE void mma_m16n8k16(float (&acc)[4], const unsigned (&a)[4], const unsigned (&b)[2], bf16) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(acc[0]), "+f"(acc[1]), "+f"(acc[2]), "+f"(acc[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
/// acc += A·B for element type T (f16 or bf16): `mma<T>(acc, a, b)`.
template <class T>
JOULE_DEVICE void mma(float (&acc)[4], const unsigned (&a)[4], const unsigned (&b)[2]) {
    mma_m16n8k16(acc, a, b, T());
}

// ---- math (the emulator maps these to <cmath>) ----
JOULE_DEVICE float exp2_approx(float x) { return exp2f(x); }

}  // namespace joule

#endif  // JOULE_EMULATE

// ---- shared by both branches: plain C++ over the primitives above ----
namespace joule {

/// Widens the 16 bytes in `v` (16/sizeof(T) elements of T, lowest address first, as ld128/lds128 return them) to f32.
template <class T>
JOULE_DEVICE void unpack128(uint4 v, float (&out)[16 / sizeof(T)]) {
    T e[16 / sizeof(T)];
    memcpy(&e[0], &v, 16);
#pragma unroll
    for (int i = 0; i < int(16 / sizeof(T)); ++i) out[i] = to_f32(e[i]);
}

/// Rounds 16/sizeof(T) floats to T and packs them into 16 bytes (lowest address first), for st128/sts128.
template <class T>
JOULE_DEVICE uint4 pack128(const float (&in)[16 / sizeof(T)]) {
    T e[16 / sizeof(T)];
#pragma unroll
    for (int i = 0; i < int(16 / sizeof(T)); ++i) e[i] = from_f32<T>(in[i]);
    uint4 v;
    memcpy(&v, &e[0], 16);
    return v;
}

}  // namespace joule
