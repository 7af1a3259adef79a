// CPU emulation of the CUDA execution model for the kernels in cuda/ (selected by JOULE_EMULATE in common.cuh).
//
// The same kernel sources are compiled by g++ and run on the CPU: blocks one after another, the threads of a block
// as fibers (cuda/emu/runtime.cpp) that switch only at __syncthreads and warp-collective operations (shuffles, votes,
// ldmatrix, mma), which complete when every lane of the warp has deposited its operands. Everything common.cuh
// defines for CUDA is defined here with the same names and the PTX ISA's semantics:
//   * gptr<T>/sptr<T> are checked fat pointers (buffer, extent, byte offset): an out-of-bounds or misaligned access
//     is recorded with kernel, block, thread, buffer and offset, redirected to a scratch sink, and the launch returns
//     an error once the block finishes (never a crash, never silent);
//   * dynamic shared memory is filled with 0xFF bytes (NaN for f32/f16/bf16) at each block start;
//   * cp.async copies are queued per thread and performed only when a cp_async_wait<N>/wait_all requires their
//     group (or when the thread exits), so a kernel that reads shared memory before waiting sees the poison;
//   * mma m16n8k16 and ldmatrix follow the fragment layouts of the PTX ISA (see runtime.cpp);
//   * f16/bf16 are classes with round-to-nearest-even conversions (NaN stays NaN, overflow gives ±Inf).
#pragma once

#include <cfloat>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <type_traits>
#include <utility>

// ---- CUDA keywords ----
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__
#define __launch_bounds__(...)
#define __restrict__ __restrict
#define __align__(n) alignas(n)
#define JOULE_RESTRICT
#define JOULE_DEVICE inline

// ---- CUDA vector types (global namespace, as in CUDA) ----
struct uint3 {
    unsigned x, y, z;
};
struct dim3 {
    unsigned x = 1, y = 1, z = 1;
};
struct alignas(16) uint4 {
    unsigned x, y, z, w;
};
struct alignas(16) int4 {
    int x, y, z, w;
};
struct alignas(16) float4 {
    float x, y, z, w;
};
struct alignas(8) uint2 {
    unsigned x, y;
};
struct alignas(8) int2 {
    int x, y;
};
struct alignas(8) float2 {
    float x, y;
};
inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return uint4{x, y, z, w}; }
inline int4 make_int4(int x, int y, int z, int w) { return int4{x, y, z, w}; }
inline float4 make_float4(float x, float y, float z, float w) { return float4{x, y, z, w}; }
inline uint2 make_uint2(unsigned x, unsigned y) { return uint2{x, y}; }
inline int2 make_int2(int x, int y) { return int2{x, y}; }
inline float2 make_float2(float x, float y) { return float2{x, y}; }

namespace joule_emu {

// ---- f16 / bf16 bit conversions (round to nearest even; NaN stays NaN; overflow gives ±Inf) ----
inline unsigned f32_bits(float f) {
    unsigned u;
    std::memcpy(&u, &f, 4);
    return u;
}
inline float bits_f32(unsigned u) {
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}
inline unsigned short f32_to_f16_bits(float f) {
    const unsigned x = f32_bits(f);
    const unsigned sign = (x >> 16) & 0x8000u;
    const unsigned exp = x & 0x7F800000u;
    const unsigned man = x & 0x007FFFFFu;
    if (exp == 0x7F800000u) {  // Inf or NaN (a NaN keeps a set mantissa bit)
        return (unsigned short)(sign | 0x7C00u | (man ? 0x0200u : 0u) | (man >> 13));
    }
    const int half_exp = int(exp >> 23) - 127 + 15;
    if (half_exp >= 0x1F) return (unsigned short)(sign | 0x7C00u);  // overflow → ±Inf
    if (half_exp <= 0) {                                            // subnormal or zero
        if (14 - half_exp > 24) return (unsigned short)sign;
        const unsigned m = man | 0x00800000u;
        unsigned half_man = m >> (14 - half_exp);
        const unsigned round_bit = 1u << (13 - half_exp);
        if ((m & round_bit) && (m & (3u * round_bit - 1u))) half_man += 1;
        return (unsigned short)(sign | half_man);
    }
    unsigned h = sign | (unsigned(half_exp) << 10) | (man >> 13);
    const unsigned round_bit = 0x1000u;
    if ((man & round_bit) && (man & (3u * round_bit - 1u))) h += 1;  // a carry into the exponent rounds up to Inf
    return (unsigned short)h;
}
inline float f16_bits_to_f32(unsigned short h) {
    const unsigned sign = unsigned(h & 0x8000u) << 16;
    const unsigned exp = (h >> 10) & 0x1Fu;
    unsigned man = h & 0x3FFu;
    if (exp == 0x1F) return bits_f32(sign | 0x7F800000u | (man ? 0x00400000u : 0u) | (man << 13));  // NaN: quiet
    if (exp == 0) {
        if (man == 0) return bits_f32(sign);
        int e = -1;  // normalise the subnormal
        do {
            man <<= 1;
            ++e;
        } while (!(man & 0x400u));
        return bits_f32(sign | (unsigned(127 - 15 - e) << 23) | ((man & 0x3FFu) << 13));
    }
    return bits_f32(sign | ((exp + 127 - 15) << 23) | (man << 13));
}
inline unsigned short f32_to_bf16_bits(float f) {
    const unsigned x = f32_bits(f);
    if ((x & 0x7FFFFFFFu) > 0x7F800000u) return (unsigned short)((x >> 16) | 0x0040u);  // NaN stays (quiet) NaN
    const unsigned round_bit = 0x8000u;
    if ((x & round_bit) && (x & (3u * round_bit - 1u))) return (unsigned short)((x >> 16) + 1);
    return (unsigned short)(x >> 16);
}
inline float bf16_bits_to_f32(unsigned short b) {
    const unsigned x = unsigned(b) << 16;
    return bits_f32((x & 0x7FFFFFFFu) > 0x7F800000u ? (x | 0x00400000u) : x);  // NaN: quiet, as `half` does
}

}  // namespace joule_emu

namespace joule {

/// IEEE binary16, emulated: conversions as CUDA's __half (implicit from/to float, round to nearest even).
struct f16 {
    unsigned short bits;
    f16() = default;
    f16(float f) : bits(joule_emu::f32_to_f16_bits(f)) {}
    f16(double d) : bits(joule_emu::f32_to_f16_bits(float(d))) {}
    f16(int i) : bits(joule_emu::f32_to_f16_bits(float(i))) {}
    operator float() const { return joule_emu::f16_bits_to_f32(bits); }
};
/// bfloat16, emulated: conversions as CUDA's __nv_bfloat16.
struct bf16 {
    unsigned short bits;
    bf16() = default;
    bf16(float f) : bits(joule_emu::f32_to_bf16_bits(f)) {}
    bf16(double d) : bits(joule_emu::f32_to_bf16_bits(float(d))) {}
    bf16(int i) : bits(joule_emu::f32_to_bf16_bits(float(i))) {}
    operator float() const { return joule_emu::bf16_bits_to_f32(bits); }
};
// Arithmetic as cuda_fp16.hpp / cuda_bf16.hpp define it: the result is rounded to the 16-bit type.
#define JOULE_EMU_HALF_OPS(H)                                                  \
    inline H operator+(H a, H b) { return H(float(a) + float(b)); }           \
    inline H operator-(H a, H b) { return H(float(a) - float(b)); }           \
    inline H operator*(H a, H b) { return H(float(a) * float(b)); }           \
    inline H operator/(H a, H b) { return H(float(a) / float(b)); }           \
    inline H operator-(H a) {                                                 \
        H r;                                                                  \
        r.bits = (unsigned short)(a.bits ^ 0x8000u);                          \
        return r;                                                             \
    }                                                                         \
    inline H& operator+=(H& a, H b) { return a = a + b; }                     \
    inline H& operator-=(H& a, H b) { return a = a - b; }                     \
    inline H& operator*=(H& a, H b) { return a = a * b; }                     \
    inline H& operator/=(H& a, H b) { return a = a / b; }
JOULE_EMU_HALF_OPS(f16)
JOULE_EMU_HALF_OPS(bf16)
#undef JOULE_EMU_HALF_OPS

}  // namespace joule

typedef joule::f16 __half;
typedef joule::bf16 __nv_bfloat16;
inline float __half2float(__half h) { return float(h); }
inline __half __float2half_rn(float f) { return __half(f); }
inline __half __float2half(float f) { return __half(f); }
inline float __bfloat162float(__nv_bfloat16 h) { return float(h); }
inline __nv_bfloat16 __float2bfloat16_rn(float f) { return __nv_bfloat16(f); }
inline __nv_bfloat16 __float2bfloat16(float f) { return __nv_bfloat16(f); }
struct alignas(4) __half2 {
    __half x, y;
};
struct alignas(4) __nv_bfloat162 {
    __nv_bfloat16 x, y;
};
inline __half2 __floats2half2_rn(float lo, float hi) { return __half2{__half(lo), __half(hi)}; }
inline __nv_bfloat162 __floats2bfloat162_rn(float lo, float hi) {
    return __nv_bfloat162{__nv_bfloat16(lo), __nv_bfloat16(hi)};
}
inline float2 __half22float2(__half2 h) { return float2{float(h.x), float(h.y)}; }
inline float2 __bfloat1622float2(__nv_bfloat162 h) { return float2{float(h.x), float(h.y)}; }

namespace joule_emu {

// ---------------------------------------------------------------------------------------------------------------
// Runtime interface (runtime.cpp)
// ---------------------------------------------------------------------------------------------------------------

/// Memory spaces of checked pointers.
enum Space { kGlobal = 0, kShared = 1 };

/// Records an invalid access (out of bounds, misaligned, null) by the current thread and returns a 256-byte sink
/// that absorbs it (reads from it give 0xFF bytes).
void* bad_access(int space, int buffer, const void* base, long long bytes, long long offset, long long size,
                 long long align, const char* what);
/// The current thread's index, the block's index, dimensions of block and grid.
const uint3& thread_idx();
const uint3& block_idx();
const uint3& block_dim();
const uint3& grid_dim();
/// The block's dynamic shared memory and its size in bytes.
unsigned char* smem_base();
long long smem_bytes();
/// __syncthreads(): waits until every live thread of the block arrives (a barrier reached by only some threads
/// while the others wait elsewhere is reported, not hung).
void syncthreads(const char* file, int line);
/// Resolves a kernel's pointer argument (the address of a buffer passed to the launch) to its buffer.
bool find_buffer(const void* p, int* index, char** base, long long* bytes);

/// Warp-collective operations, completed when all 32 lanes have called the same one.
enum WarpOp {
    kOpShflIdx = 1,
    kOpShflXor,
    kOpShflDown,
    kOpShflUp,
    kOpBallot,
    kOpSyncWarp,
    kOpLdm1,
    kOpLdm2,
    kOpLdm4,
    kOpLdm1T,
    kOpLdm2T,
    kOpLdm4T,
    kOpMmaF16,
    kOpMmaBF16,
};
/// One lane's operands of a warp collective (`in`) and result (`out`).
struct LaneIn {
    unsigned u[12];
    float f[4];
    // ldmatrix: the lane's row address as a checked shared pointer
    const unsigned char* base;
    long long bytes;
    long long off;
};
struct LaneOut {
    unsigned u[4];
    float f[4];
};
/// Deposits this lane's operands, waits for the whole warp, and returns this lane's result.
void warp_collective(int op, const LaneIn& in, LaneOut& out);

/// cp.async: queues a copy of `n` bytes (zero-fill when !pred) into the current thread's open group.
void cp_async(void* dst, const void* src, int n, bool pred);
void cp_async_commit();
/// Performs every queued copy except those of the `n` most recently committed groups (n < 0: all, open included).
void cp_async_wait(int n);

/// A kernel's entry for the launch table: unpacks `args` (each args[i] points at the argument value) and runs.
typedef void (*Trampoline)(void** args);
struct Registrar {
    Registrar(const char* name, Trampoline fn, const char* signature);
};

// ---------------------------------------------------------------------------------------------------------------
// Checked pointers
// ---------------------------------------------------------------------------------------------------------------

/// A checked pointer into global (S = kGlobal) or shared (S = kShared) memory: the buffer's base and extent, a byte
/// offset into it, and the buffer's index (for messages). Arithmetic moves the offset; every access is checked.
template <class T, int S>
struct ptr {
    static_assert(!std::is_void<T>::value, "checked pointers need a complete element type");
    unsigned char* base_ = nullptr;
    long long bytes_ = 0;
    long long off_ = 0;
    int buf_ = -1;

    ptr() = default;
    ptr(std::nullptr_t) {}
    ptr(unsigned char* base, long long bytes, long long off, int buf) : base_(base), bytes_(bytes), off_(off), buf_(buf) {}
    /// Non-const → const, as T* converts to const T*.
    template <class U, class = typename std::enable_if<std::is_same<const U, T>::value && !std::is_same<U, T>::value>::type>
    ptr(const ptr<U, S>& o) : base_(o.base_), bytes_(o.bytes_), off_(o.off_), buf_(o.buf_) {}

    /// The address of element `i`, checked (bounds, alignment of T); an invalid access returns the sink.
    T* at(long long i, const char* what = "access") const {
        const long long o = off_ + i * (long long)sizeof(T);
        if (base_ == nullptr || o < 0 || o + (long long)sizeof(T) > bytes_ ||
            (reinterpret_cast<unsigned long long>(base_ + o) % alignof(T)) != 0) {
            return static_cast<T*>(bad_access(S, buf_, base_, bytes_, o, sizeof(T), alignof(T), what));
        }
        return reinterpret_cast<T*>(base_ + o);
    }
    T& operator[](long long i) const { return *at(i); }
    T& operator*() const { return *at(0); }
    T* operator->() const { return at(0); }

    template <class I, class = typename std::enable_if<std::is_integral<I>::value>::type>
    ptr operator+(I i) const {
        return ptr(base_, bytes_, off_ + (long long)i * (long long)sizeof(T), buf_);
    }
    template <class I, class = typename std::enable_if<std::is_integral<I>::value>::type>
    ptr operator-(I i) const {
        return ptr(base_, bytes_, off_ - (long long)i * (long long)sizeof(T), buf_);
    }
    template <class I, class = typename std::enable_if<std::is_integral<I>::value>::type>
    ptr& operator+=(I i) {
        off_ += (long long)i * (long long)sizeof(T);
        return *this;
    }
    template <class I, class = typename std::enable_if<std::is_integral<I>::value>::type>
    ptr& operator-=(I i) {
        off_ -= (long long)i * (long long)sizeof(T);
        return *this;
    }
    ptr& operator++() { return *this += 1; }
    ptr& operator--() { return *this -= 1; }
    ptr operator++(int) {
        ptr r = *this;
        *this += 1;
        return r;
    }
    ptr operator--(int) {
        ptr r = *this;
        *this -= 1;
        return r;
    }
    /// Element distance between two pointers into the same buffer.
    template <class U, class = typename std::enable_if<std::is_same<typename std::remove_const<U>::type,
                                                                    typename std::remove_const<T>::type>::value>::type>
    long long operator-(const ptr<U, S>& o) const {
        return (off_ - o.off_) / (long long)sizeof(T);
    }
    explicit operator bool() const { return base_ != nullptr; }
    /// Address for comparisons.
    const unsigned char* addr() const { return base_ + off_; }
};

template <class T, class U, int S>
inline bool operator==(const ptr<T, S>& a, const ptr<U, S>& b) {
    return a.addr() == b.addr();
}
template <class T, class U, int S>
inline bool operator!=(const ptr<T, S>& a, const ptr<U, S>& b) {
    return a.addr() != b.addr();
}
template <class T, class U, int S>
inline bool operator<(const ptr<T, S>& a, const ptr<U, S>& b) {
    return a.addr() < b.addr();
}
template <class T, class U, int S>
inline bool operator<=(const ptr<T, S>& a, const ptr<U, S>& b) {
    return a.addr() <= b.addr();
}
template <class T, class U, int S>
inline bool operator>(const ptr<T, S>& a, const ptr<U, S>& b) {
    return a.addr() > b.addr();
}
template <class T, class U, int S>
inline bool operator>=(const ptr<T, S>& a, const ptr<U, S>& b) {
    return a.addr() >= b.addr();
}
template <class I, class T, int S, class = typename std::enable_if<std::is_integral<I>::value>::type>
inline ptr<T, S> operator+(I i, const ptr<T, S>& p) {
    return p + i;
}

/// Checks `bytes` bytes at `p` (aligned to `align`) and returns their address, or the sink after recording.
template <class T, int S>
inline unsigned char* span(const ptr<T, S>& p, long long bytes, long long align, const char* what) {
    const long long o = p.off_;
    if (p.base_ == nullptr || o < 0 || o + bytes > p.bytes_ ||
        (reinterpret_cast<unsigned long long>(p.base_ + o) % (unsigned long long)align) != 0) {
        return static_cast<unsigned char*>(bad_access(S, p.buf_, p.base_, p.bytes_, o, bytes, align, what));
    }
    return p.base_ + o;
}

// ---- kernel argument unpacking ----
template <class P>
struct ArgKind {
    static_assert(sizeof(P) == 0, "kernel parameters must be joule::gptr<T>, int, unsigned or float");
};
template <class T>
struct ArgKind<ptr<T, kGlobal>> {
    static constexpr char kind = 'P';
    static ptr<T, kGlobal> get(void* arg) {
        void* raw = *static_cast<void**>(arg);
        int index = -1;
        char* base = nullptr;
        long long bytes = 0;
        if (raw == nullptr || !find_buffer(raw, &index, &base, &bytes)) return ptr<T, kGlobal>();
        typedef unsigned char* B;
        return ptr<T, kGlobal>(reinterpret_cast<B>(base), bytes, static_cast<char*>(raw) - base, index);
    }
};
template <>
struct ArgKind<int> {
    static constexpr char kind = 'i';
    static int get(void* arg) { return *static_cast<int*>(arg); }
};
template <>
struct ArgKind<unsigned> {
    static constexpr char kind = 'u';
    static unsigned get(void* arg) { return *static_cast<unsigned*>(arg); }
};
template <>
struct ArgKind<float> {
    static constexpr char kind = 'f';
    static float get(void* arg) { return *static_cast<float*>(arg); }
};

template <class F>
struct Trampolines;
template <class... P>
struct Trampolines<void (*)(P...)> {
    template <void (*Fn)(P...), std::size_t... I>
    static void call_impl(void** args, std::index_sequence<I...>) {
        Fn(ArgKind<typename std::decay<P>::type>::get(args[I])...);
    }
    template <void (*Fn)(P...)>
    static void call(void** args) {
        call_impl<Fn>(args, std::index_sequence_for<P...>{});
    }
    static const char* signature() {
        static const char sig[] = {ArgKind<typename std::decay<P>::type>::kind..., '\0'};
        return sig;
    }
};

}  // namespace joule_emu

// ---- thread geometry and barriers ----
#define threadIdx (::joule_emu::thread_idx())
#define blockIdx (::joule_emu::block_idx())
#define blockDim (::joule_emu::block_dim())
#define gridDim (::joule_emu::grid_dim())
#define warpSize 32
#define __syncthreads() ::joule_emu::syncthreads(__FILE__, __LINE__)
#define joule_dyn_smem (::joule_emu::smem_base())

/// Registers kernel `name` (an extern "C" function) with the emulator's launch table.
#define JOULE_EXPORT(name)                                                                                    \
    static ::joule_emu::Registrar joule_emu_registrar_##name(                                                 \
        #name, &::joule_emu::Trampolines<decltype(&name)>::call<&name>,                                       \
        ::joule_emu::Trampolines<decltype(&name)>::signature());

// ---- CUDA intrinsics the kernels may use ----
inline float __int_as_float(int i) {
    float f;
    std::memcpy(&f, &i, 4);
    return f;
}
inline int __float_as_int(float f) {
    int i;
    std::memcpy(&i, &f, 4);
    return i;
}
inline float __uint_as_float(unsigned i) { return joule_emu::bits_f32(i); }
inline unsigned __float_as_uint(float f) { return joule_emu::f32_bits(f); }
inline float __expf(float x) { return expf(x); }
inline float __logf(float x) { return logf(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline float __saturatef(float x) { return x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x); }
inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz((unsigned)x); }
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline float min(float a, float b) { return fminf(a, b); }
inline float max(float a, float b) { return fmaxf(a, b); }
inline void __threadfence() {}
inline void __threadfence_block() {}

namespace joule_emu {
/// A 32-bit shuffle: `op` with argument `arg` (source lane, xor mask or delta) over the warp's `bits`.
inline unsigned shfl_bits(int op, unsigned bits, unsigned arg) {
    LaneIn in{};
    in.u[0] = arg;
    in.u[1] = bits;
    LaneOut out;
    warp_collective(op, in, out);
    return out.u[0];
}
template <class V>
inline V shfl_value(int op, V v, unsigned arg) {
    static_assert(sizeof(V) == 4, "shuffles move 32-bit values");
    unsigned b;
    std::memcpy(&b, &v, 4);
    b = shfl_bits(op, b, arg);
    std::memcpy(&v, &b, 4);
    return v;
}
}  // namespace joule_emu
#define JOULE_EMU_SHFL(V)                                                                                      \
    inline V __shfl_sync(unsigned, V v, int src) { return joule_emu::shfl_value(joule_emu::kOpShflIdx, v, unsigned(src)); } \
    inline V __shfl_xor_sync(unsigned, V v, int m) { return joule_emu::shfl_value(joule_emu::kOpShflXor, v, unsigned(m)); } \
    inline V __shfl_down_sync(unsigned, V v, unsigned d) { return joule_emu::shfl_value(joule_emu::kOpShflDown, v, d); } \
    inline V __shfl_up_sync(unsigned, V v, unsigned d) { return joule_emu::shfl_value(joule_emu::kOpShflUp, v, d); }
JOULE_EMU_SHFL(float)
JOULE_EMU_SHFL(int)
JOULE_EMU_SHFL(unsigned)
#undef JOULE_EMU_SHFL
inline unsigned __ballot_sync(unsigned, bool p) {
    joule_emu::LaneIn in{};
    in.u[0] = p ? 1u : 0u;
    joule_emu::LaneOut out;
    joule_emu::warp_collective(joule_emu::kOpBallot, in, out);
    return out.u[0];
}
inline bool __any_sync(unsigned m, bool p) { return __ballot_sync(m, p) != 0u; }
inline bool __all_sync(unsigned m, bool p) { return __ballot_sync(m, p) == 0xffffffffu; }
inline void __syncwarp(unsigned = 0xffffffffu) {
    joule_emu::LaneIn in{};
    joule_emu::LaneOut out;
    joule_emu::warp_collective(joule_emu::kOpSyncWarp, in, out);
}

namespace joule {

/// A pointer into global memory (checked).
template <class T>
using gptr = joule_emu::ptr<T, joule_emu::kGlobal>;
/// A pointer into shared memory (checked).
template <class T>
using sptr = joule_emu::ptr<T, joule_emu::kShared>;

#define JOULE_EMU_NONCONST(T) class = typename std::enable_if<!std::is_const<T>::value>::type

/// The block's dynamic shared memory, viewed as T from `byte_offset`.
template <class T>
inline sptr<T> dyn_smem(unsigned byte_offset) {
    return sptr<T>(joule_emu::smem_base(), joule_emu::smem_bytes(), (long long)byte_offset, -1);
}
/// Reinterprets a global pointer as another element type.
template <class U, class T>
inline gptr<U> gcast(gptr<T> p) {
    static_assert(!std::is_const<T>::value || std::is_const<U>::value, "gcast cannot cast away const");
    return gptr<U>(p.base_, p.bytes_, p.off_, p.buf_);
}
/// Reinterprets a shared pointer as another element type.
template <class U, class T>
inline sptr<U> scast(sptr<T> p) {
    static_assert(!std::is_const<T>::value || std::is_const<U>::value, "scast cannot cast away const");
    return sptr<U>(p.base_, p.bytes_, p.off_, p.buf_);
}

// ---- conversions ----
inline float to_f32(float x) { return x; }
inline float to_f32(f16 x) { return float(x); }
inline float to_f32(bf16 x) { return float(x); }
template <class T>
inline T from_f32(float x);
template <>
inline float from_f32<float>(float x) {
    return x;
}
template <>
inline f16 from_f32<f16>(float x) {
    return f16(x);
}
template <>
inline bf16 from_f32<bf16>(float x) {
    return bf16(x);
}

template <class T>
inline unsigned pack2(float lo, float hi);
template <>
inline unsigned pack2<f16>(float lo, float hi) {
    return unsigned(joule_emu::f32_to_f16_bits(lo)) | (unsigned(joule_emu::f32_to_f16_bits(hi)) << 16);
}
template <>
inline unsigned pack2<bf16>(float lo, float hi) {
    return unsigned(joule_emu::f32_to_bf16_bits(lo)) | (unsigned(joule_emu::f32_to_bf16_bits(hi)) << 16);
}

// ---- 128-bit vector access ----
template <class T>
inline uint4 ld128(gptr<const T> p) {
    uint4 v;
    std::memcpy(&v, joule_emu::span(p, 16, 16, "ld128"), 16);
    return v;
}
template <class T, JOULE_EMU_NONCONST(T)>
inline uint4 ld128(gptr<T> p) {
    return ld128<T>(gptr<const T>(p));
}
template <class T>
inline void st128(gptr<T> p, uint4 v) {
    std::memcpy(joule_emu::span(p, 16, 16, "st128"), &v, 16);
}
template <class T>
inline uint4 lds128(sptr<const T> p) {
    uint4 v;
    std::memcpy(&v, joule_emu::span(p, 16, 16, "lds128"), 16);
    return v;
}
template <class T, JOULE_EMU_NONCONST(T)>
inline uint4 lds128(sptr<T> p) {
    return lds128<T>(sptr<const T>(p));
}
template <class T>
inline void sts128(sptr<T> p, uint4 v) {
    std::memcpy(joule_emu::span(p, 16, 16, "sts128"), &v, 16);
}

// ---- thread geometry ----
inline int lane_id() { return int(threadIdx.x) & 31; }
inline int warp_id() { return int(threadIdx.x) >> 5; }

// ---- warp shuffles, reductions and votes ----
inline float shfl(float v, int src_lane) { return __shfl_sync(0xffffffffu, v, src_lane); }
inline float shfl_xor(float v, int lane_mask) { return __shfl_xor_sync(0xffffffffu, v, lane_mask); }
inline float shfl_down(float v, int delta) { return __shfl_down_sync(0xffffffffu, v, unsigned(delta)); }
inline unsigned ballot(bool p) { return __ballot_sync(0xffffffffu, p); }
inline bool any(bool p) { return __any_sync(0xffffffffu, p); }
inline bool all(bool p) { return __all_sync(0xffffffffu, p); }
inline float warp_sum(float v) {
    for (int m = 16; m > 0; m >>= 1) v += shfl_xor(v, m);
    return v;
}
inline float warp_max(float v) {
    for (int m = 16; m > 0; m >>= 1) v = fmaxf(v, shfl_xor(v, m));
    return v;
}
inline float group_sum(float v, int width) {
    for (int m = width >> 1; m > 0; m >>= 1) v += shfl_xor(v, m);
    return v;
}
inline float group_max(float v, int width) {
    for (int m = width >> 1; m > 0; m >>= 1) v = fmaxf(v, shfl_xor(v, m));
    return v;
}

// ---- cp.async ----
/// The shared-window address of a shared pointer (its byte offset in the block's shared memory).
template <class T>
inline unsigned smem_u32(sptr<T> p) {
    return unsigned(p.off_);
}
template <class T>
inline void cp_async_16(sptr<T> dst, gptr<const T> src, bool pred) {
    unsigned char* d = joule_emu::span(dst, 16, 16, "cp_async_16 destination");
    const unsigned char* s = pred ? joule_emu::span(src, 16, 16, "cp_async_16 source") : nullptr;
    joule_emu::cp_async(d, s, 16, pred);
}
template <class T, JOULE_EMU_NONCONST(T)>
inline void cp_async_16(sptr<T> dst, gptr<T> src, bool pred) {
    cp_async_16<T>(dst, gptr<const T>(src), pred);
}
template <class T>
inline void cp_async_4(sptr<T> dst, gptr<const T> src, bool pred) {
    unsigned char* d = joule_emu::span(dst, 4, 4, "cp_async_4 destination");
    const unsigned char* s = pred ? joule_emu::span(src, 4, 4, "cp_async_4 source") : nullptr;
    joule_emu::cp_async(d, s, 4, pred);
}
template <class T, JOULE_EMU_NONCONST(T)>
inline void cp_async_4(sptr<T> dst, gptr<T> src, bool pred) {
    cp_async_4<T>(dst, gptr<const T>(src), pred);
}
inline void cp_async_commit() { joule_emu::cp_async_commit(); }
template <int N>
inline void cp_async_wait() {
    static_assert(N >= 0, "cp_async_wait<N> needs N >= 0");
    joule_emu::cp_async_wait(N);
}
inline void cp_async_wait_all() { joule_emu::cp_async_wait(-1); }

// ---- ldmatrix ----
namespace detail {
template <class T>
inline void ldmatrix(int op, unsigned* r, int nregs, sptr<const T> row) {
    static_assert(sizeof(T) == 2, "ldmatrix moves 16-bit elements");
    joule_emu::LaneIn in{};
    in.base = row.base_;
    in.bytes = row.bytes_;
    in.off = row.off_;
    joule_emu::LaneOut out;
    joule_emu::warp_collective(op, in, out);
    for (int i = 0; i < nregs; ++i) r[i] = out.u[i];
}
}  // namespace detail

template <class T>
inline void ldmatrix_x1(unsigned& r0, sptr<const T> row) {
    unsigned r[1];
    detail::ldmatrix<T>(joule_emu::kOpLdm1, r, 1, row);
    r0 = r[0];
}
template <class T>
inline void ldmatrix_x2(unsigned& r0, unsigned& r1, sptr<const T> row) {
    unsigned r[2];
    detail::ldmatrix<T>(joule_emu::kOpLdm2, r, 2, row);
    r0 = r[0];
    r1 = r[1];
}
template <class T>
inline void ldmatrix_x4(unsigned& r0, unsigned& r1, unsigned& r2, unsigned& r3, sptr<const T> row) {
    unsigned r[4];
    detail::ldmatrix<T>(joule_emu::kOpLdm4, r, 4, row);
    r0 = r[0];
    r1 = r[1];
    r2 = r[2];
    r3 = r[3];
}
template <class T>
inline void ldmatrix_x1_trans(unsigned& r0, sptr<const T> row) {
    unsigned r[1];
    detail::ldmatrix<T>(joule_emu::kOpLdm1T, r, 1, row);
    r0 = r[0];
}
template <class T>
inline void ldmatrix_x2_trans(unsigned& r0, unsigned& r1, sptr<const T> row) {
    unsigned r[2];
    detail::ldmatrix<T>(joule_emu::kOpLdm2T, r, 2, row);
    r0 = r[0];
    r1 = r[1];
}
template <class T>
inline void ldmatrix_x4_trans(unsigned& r0, unsigned& r1, unsigned& r2, unsigned& r3, sptr<const T> row) {
    unsigned r[4];
    detail::ldmatrix<T>(joule_emu::kOpLdm4T, r, 4, row);
    r0 = r[0];
    r1 = r[1];
    r2 = r[2];
    r3 = r[3];
}
// Non-const shared pointers (deduced T), as T* converts to const T* on CUDA.
template <class T, JOULE_EMU_NONCONST(T)>
inline void ldmatrix_x1(unsigned& r0, sptr<T> row) {
    ldmatrix_x1<T>(r0, sptr<const T>(row));
}
template <class T, JOULE_EMU_NONCONST(T)>
inline void ldmatrix_x2(unsigned& r0, unsigned& r1, sptr<T> row) {
    ldmatrix_x2<T>(r0, r1, sptr<const T>(row));
}
template <class T, JOULE_EMU_NONCONST(T)>
inline void ldmatrix_x4(unsigned& r0, unsigned& r1, unsigned& r2, unsigned& r3, sptr<T> row) {
    ldmatrix_x4<T>(r0, r1, r2, r3, sptr<const T>(row));
}
template <class T, JOULE_EMU_NONCONST(T)>
inline void ldmatrix_x1_trans(unsigned& r0, sptr<T> row) {
    ldmatrix_x1_trans<T>(r0, sptr<const T>(row));
}
template <class T, JOULE_EMU_NONCONST(T)>
inline void ldmatrix_x2_trans(unsigned& r0, unsigned& r1, sptr<T> row) {
    ldmatrix_x2_trans<T>(r0, r1, sptr<const T>(row));
}
template <class T, JOULE_EMU_NONCONST(T)>
inline void ldmatrix_x4_trans(unsigned& r0, unsigned& r1, unsigned& r2, unsigned& r3, sptr<T> row) {
    ldmatrix_x4_trans<T>(r0, r1, r2, r3, sptr<const T>(row));
}

// ---- tensor cores: mma.sync.aligned.m16n8k16.row.col, f32 accumulate ----
namespace detail {
inline void mma(int op, float (&acc)[4], const unsigned (&a)[4], const unsigned (&b)[2]) {
    joule_emu::LaneIn in{};
    for (int i = 0; i < 4; ++i) in.u[i] = a[i];
    in.u[4] = b[0];
    in.u[5] = b[1];
    for (int i = 0; i < 4; ++i) in.f[i] = acc[i];
    joule_emu::LaneOut out;
    joule_emu::warp_collective(op, in, out);
    for (int i = 0; i < 4; ++i) acc[i] = out.f[i];
}
}  // namespace detail
inline void mma_m16n8k16(float (&acc)[4], const unsigned (&a)[4], const unsigned (&b)[2], f16) {
    detail::mma(joule_emu::kOpMmaF16, acc, a, b);
}
inline void mma_m16n8k16(float (&acc)[4], const unsigned (&a)[4], const unsigned (&b)[2], bf16) {
    detail::mma(joule_emu::kOpMmaBF16, acc, a, b);
}
template <class T>
inline void mma(float (&acc)[4], const unsigned (&a)[4], const unsigned (&b)[2]) {
    mma_m16n8k16(acc, a, b, T());
}

// ---- math ----
inline float exp2_approx(float x) { return exp2f(x); }

#undef JOULE_EMU_NONCONST

}  // namespace joule
