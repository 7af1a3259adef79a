//! Test bodies written once, generic over the backend (`K: Kernels`) and the storage type (`T: Element`), checked
//! against the float64 oracles in `joule::cpu::reference` with the documented pass rule
//! (`ErrorStats` / `Tolerance::for_dtype`).
//!
//! Every body takes the shapes from its caller, so a slow backend (the CUDA emulator) can pass small ones; the
//! shape lists below are the ones the CPU backend uses. Conventions every body follows:
//! - inputs come from `InputGen` (seeded, never exactly zero);
//! - outputs are poisoned with NaN before each call, so an element the kernel forgets to write fails the check;
//! - GEMM's leading-dimension padding holds random values that must come back bit for bit.
#![allow(dead_code)] // each backend module uses a different subset

use joule::cpu::reference;
use joule::{
    AttnMask, AttnShape, DType, DwConvShape, Element, Error, ErrorStats, GemmShape, InputGen, Kernels, MaskKind,
    Outliers, Tolerance,
};
use proptest::prelude::*;

/// The NaN every output is filled with before a call.
pub fn poison<T: Element>() -> T {
    T::from_f32(f32::NAN)
}

/// Bit patterns, so NaN payloads and signed zeros compare exactly.
pub fn bits<T: Element>(xs: &[T]) -> Vec<u8> {
    bytemuck::cast_slice(xs).to_vec()
}

/// Asserts the pass rule for `out` against `reference` with reduction length `k`; `what` names the case.
pub fn assert_close<T: Element>(what: &str, out: &[T], reference: &[f64], k: usize) {
    let stats = ErrorStats::compute(out, reference);
    let tol = Tolerance::for_dtype(T::DTYPE, k);
    if let Err(why) = stats.check(&tol) {
        panic!("{what} [{}]: {why}\n  stats: {stats:?}\n  tolerance: {tol:?}", T::DTYPE);
    }
}

/// Asserts `result` is an error of the kind `is_expected` accepts.
pub fn assert_error<R: std::fmt::Debug>(what: &str, result: joule::Result<R>, is_expected: impl Fn(&Error) -> bool) {
    match result {
        Err(e) if is_expected(&e) => {}
        other => panic!("{what}: expected a typed error, got {other:?}"),
    }
}

fn seed_of(parts: &[usize]) -> u64 {
    parts.iter().fold(0x5EED_u64, |h, &x| h.wrapping_mul(0x100_0000_01B3).wrapping_add(x as u64 + 1))
}

// ---------------------------------------------------------------------------------------------------------------
// GEMM

/// C = alpha·A·B + beta·C on random data matches the oracle; every element of the m×n region is written (NaN
/// poison when beta = 0, random C otherwise) and the padding between n and ldc comes back bit for bit.
pub fn gemm_matches_oracle<K: Kernels, T: Element>(kern: &K, shape: GemmShape) {
    gemm_case::<K, T>(kern, shape, InputGen::new(seed_of(&[shape.m, shape.n, shape.k, shape.ldc])));
}

/// As [`gemm_matches_oracle`], with 1% of the inputs replaced by ±`magnitude` outliers.
pub fn gemm_with_outliers_matches_oracle<K: Kernels, T: Element>(kern: &K, shape: GemmShape, magnitude: f32) {
    let g =
        InputGen::new(seed_of(&[shape.m, shape.n, shape.k, 7])).with_outliers(Outliers { fraction: 0.01, magnitude });
    gemm_case::<K, T>(kern, shape, g);
}

fn gemm_case<K: Kernels, T: Element>(kern: &K, s: GemmShape, mut g: InputGen) {
    let what = format!("gemm {s:?}");
    let a: Vec<T> = g.vec(s.a_len());
    let b: Vec<T> = g.vec(s.b_len());
    let mut c: Vec<T> = g.vec(s.c_len());
    // With n = 0 (or m = 0) C is empty: there is no region and no padding.
    let rows = if s.n == 0 { 0 } else { s.m };
    if s.beta == 0.0 {
        for i in 0..rows {
            c[i * s.ldc..i * s.ldc + s.n].fill(poison());
        }
    }
    let want = reference::gemm(&s, &a, &b, &c).unwrap();
    let before = c.clone();
    kern.gemm(&s, &a, &b, &mut c).unwrap_or_else(|e| panic!("{what}: {e}"));
    let (mut got_region, mut want_region) = (Vec::new(), Vec::new());
    for i in 0..rows {
        let row = i * s.ldc;
        got_region.extend_from_slice(&c[row..row + s.n]);
        want_region.extend_from_slice(&want[row..row + s.n]);
        if i + 1 < rows {
            assert_eq!(bits(&c[row + s.n..row + s.ldc]), bits(&before[row + s.n..row + s.ldc]), "{what}: padding");
        }
    }
    assert_close(&what, &got_region, &want_region, s.k);
}

/// beta = 0 never reads C: C full of NaN, +Inf and −Inf gives the same finite result as the oracle.
pub fn gemm_beta_zero_ignores_nan_and_inf_in_c<K: Kernels, T: Element>(kern: &K, m: usize, n: usize, k: usize) {
    let s = GemmShape::new(m, n, k).with_scalars(1.5, 0.0);
    let mut g = InputGen::new(seed_of(&[m, n, k, 0xBE7A]));
    let (a, b): (Vec<T>, Vec<T>) = (g.vec(s.a_len()), g.vec(s.b_len()));
    let specials = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY];
    let mut c: Vec<T> = (0..s.c_len()).map(|i| T::from_f32(specials[i % 3])).collect();
    let want = reference::gemm(&s, &a, &b, &c).unwrap();
    kern.gemm(&s, &a, &b, &mut c).unwrap();
    assert!(c.iter().all(|x| x.to_f32().is_finite()), "beta = 0 leaked a NaN/Inf from C");
    assert_close("gemm beta=0 with NaN/Inf in C", &c, &want, k);
}

// ---------------------------------------------------------------------------------------------------------------
// Depthwise-separable convolution

struct DwData<T> {
    input: Vec<T>,
    dw_w: Vec<T>,
    pw_w: Vec<T>,
}

fn dw_data<T: Element>(s: &DwConvShape) -> DwData<T> {
    dw_data_with(s, None)
}

fn dw_data_with<T: Element>(s: &DwConvShape, outliers: Option<Outliers>) -> DwData<T> {
    let mut g = InputGen::new(seed_of(&[s.batch, s.height, s.width, s.channels, s.kernel_h, s.stride_h]));
    if let Some(o) = outliers {
        g = g.with_outliers(o);
    }
    DwData { input: g.vec(s.input_len()), dw_w: g.vec(s.dw_weight_len()), pw_w: g.vec(s.pw_weight_len()) }
}

/// The depthwise step matches the oracle and writes every element.
pub fn depthwise_matches_oracle<K: Kernels, T: Element>(kern: &K, s: DwConvShape) {
    let d = dw_data::<T>(&s);
    let mut out = vec![poison::<T>(); s.dw_out_len()];
    kern.depthwise(&s, &d.input, &d.dw_w, &mut out).unwrap_or_else(|e| panic!("depthwise {s:?}: {e}"));
    let want = reference::depthwise(&s, &d.input, &d.dw_w).unwrap();
    assert_close(&format!("depthwise {s:?}"), &out, &want, s.kernel_h * s.kernel_w);
}

/// The pointwise step matches the oracle on a random depthwise output.
pub fn pointwise_matches_oracle<K: Kernels, T: Element>(kern: &K, s: DwConvShape) {
    let d = dw_data::<T>(&s);
    let dw_out: Vec<T> = InputGen::new(seed_of(&[s.out_channels, 0x9E])).vec(s.dw_out_len());
    let mut out = vec![poison::<T>(); s.out_len()];
    kern.pointwise(&s, &dw_out, &d.pw_w, &mut out).unwrap_or_else(|e| panic!("pointwise {s:?}: {e}"));
    let want = reference::pointwise(&s, &dw_out, &d.pw_w).unwrap();
    assert_close(&format!("pointwise {s:?}"), &out, &want, s.dw_channels());
}

/// The fused block matches the f64 oracle of the whole block (which does not round the depthwise output).
pub fn dwsep_fused_matches_oracle<K: Kernels, T: Element>(kern: &K, s: DwConvShape) {
    let d = dw_data::<T>(&s);
    let mut out = vec![poison::<T>(); s.out_len()];
    kern.dwsep_fused(&s, &d.input, &d.dw_w, &d.pw_w, &mut out).unwrap_or_else(|e| panic!("dwsep {s:?}: {e}"));
    let want = reference::dwsep(&s, &d.input, &d.dw_w, &d.pw_w).unwrap();
    assert_close(&format!("dwsep_fused {s:?}"), &out, &want, s.kernel_h * s.kernel_w + s.dw_channels());
}

/// The fused block matches the oracle when 1% of the inputs and weights are ±`magnitude` outliers.
pub fn dwsep_with_outliers_matches_oracle<K: Kernels, T: Element>(kern: &K, s: DwConvShape, magnitude: f32) {
    let d = dw_data_with::<T>(&s, Some(Outliers { fraction: 0.01, magnitude }));
    let mut out = vec![poison::<T>(); s.out_len()];
    kern.dwsep_fused(&s, &d.input, &d.dw_w, &d.pw_w, &mut out).unwrap_or_else(|e| panic!("dwsep {s:?}: {e}"));
    let want = reference::dwsep(&s, &d.input, &d.dw_w, &d.pw_w).unwrap();
    assert_close(&format!("dwsep_fused with outliers {s:?}"), &out, &want, s.kernel_h * s.kernel_w + s.dw_channels());
}

/// The fused block equals depthwise followed by pointwise bit for bit: both round the depthwise values to `T` and
/// run the same f32 operations in the same order.
pub fn dwsep_fused_equals_two_step_bitwise<K: Kernels, T: Element>(kern: &K, s: DwConvShape) {
    let d = dw_data::<T>(&s);
    let mut dw_out = vec![poison::<T>(); s.dw_out_len()];
    let mut two_step = vec![poison::<T>(); s.out_len()];
    let mut fused = vec![poison::<T>(); s.out_len()];
    kern.depthwise(&s, &d.input, &d.dw_w, &mut dw_out).unwrap();
    kern.pointwise(&s, &dw_out, &d.pw_w, &mut two_step).unwrap();
    kern.dwsep_fused(&s, &d.input, &d.dw_w, &d.pw_w, &mut fused).unwrap();
    if bits(&fused) != bits(&two_step) {
        let first = fused.iter().zip(&two_step).position(|(a, b)| bytemuck::bytes_of(a) != bytemuck::bytes_of(b));
        panic!("dwsep {s:?}: fused differs from two-step at {first:?}");
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Attention

/// Inputs of one attention case; the mask matches `shape.mask` (boolean entries kept with probability `keep`;
/// additive entries random in [−2, 2) with the dropped ones at −inf).
pub struct AttnData<T> {
    /// Queries.
    pub q: Vec<T>,
    /// Keys.
    pub k: Vec<T>,
    /// Values.
    pub v: Vec<T>,
    /// Boolean mask data (when `shape.mask` is boolean).
    pub bool_mask: Vec<u8>,
    /// Additive mask data (when `shape.mask` is additive).
    pub add_mask: Vec<f32>,
}

impl<T: Element> AttnData<T> {
    /// Random inputs for `s`.
    pub fn new(s: &AttnShape, keep: f64) -> Self {
        Self::new_with(s, keep, None)
    }

    /// Random inputs for `s`, with outliers mixed into Q, K and V (and the additive mask's noise).
    pub fn new_with(s: &AttnShape, keep: f64, outliers: Option<Outliers>) -> Self {
        let mut g = InputGen::new(seed_of(&[s.batch, s.heads, s.lq, s.lk, s.head_dim, s.causal as usize]));
        if let Some(o) = outliers {
            g = g.with_outliers(o);
        }
        let (q, k, v) = (g.vec(s.q_len()), g.vec(s.kv_len()), g.vec(s.kv_len()));
        let n = s.batch * s.lq * s.lk;
        let keep_mask = g.mask(n, keep);
        let (bool_mask, add_mask) = match s.mask {
            MaskKind::None => (Vec::new(), Vec::new()),
            MaskKind::Boolean => (keep_mask, Vec::new()),
            MaskKind::Additive => {
                let noise: Vec<f32> = g.vec(n);
                let add = keep_mask
                    .iter()
                    .zip(noise)
                    .map(|(&keep, x)| if keep != 0 { x.clamp(-2.0, 2.0) } else { f32::NEG_INFINITY })
                    .collect();
                (Vec::new(), add)
            }
        };
        AttnData { q, k, v, bool_mask, add_mask }
    }

    /// The mask argument for the call.
    pub fn mask(&self, s: &AttnShape) -> Option<AttnMask<'_>> {
        match s.mask {
            MaskKind::None => None,
            MaskKind::Boolean => Some(AttnMask::Boolean(&self.bool_mask)),
            MaskKind::Additive => Some(AttnMask::Additive(&self.add_mask)),
        }
    }
}

/// Runs one attention case and checks it against the oracle; rows where the oracle is exactly 0 because the row
/// sees no key must be exactly 0 (not merely close).
pub fn attention_case<K: Kernels, T: Element>(kern: &K, s: &AttnShape, data: &AttnData<T>) -> Vec<T> {
    let what = format!("attention {s:?}");
    let mut out = vec![poison::<T>(); s.out_len()];
    kern.attention(s, &data.q, &data.k, &data.v, data.mask(s), &mut out).unwrap_or_else(|e| panic!("{what}: {e}"));
    let want = reference::attention(s, &data.q, &data.k, &data.v, data.mask(s)).unwrap();
    assert_close(&what, &out, &want, s.lk.max(s.head_dim));
    for (r, row) in want.chunks(s.head_dim).enumerate() {
        if row.iter().all(|&x| x == 0.0) {
            let got = &out[r * s.head_dim..(r + 1) * s.head_dim];
            assert!(got.iter().all(|x| x.to_f32() == 0.0), "{what}: row {r} sees no key but is {got:?}");
        }
    }
    out
}

/// Attention matches the oracle; for masked shapes, boolean entries are kept with probability 0.7.
pub fn attention_matches_oracle<K: Kernels, T: Element>(kern: &K, s: AttnShape) {
    attention_case(kern, &s, &AttnData::<T>::new(&s, 0.7));
}

/// Attention matches the oracle when 2% of Q, K and V are ±`magnitude` outliers: a few scores dominate their rows,
/// and the running maximum of the online softmax jumps between key blocks.
pub fn attention_with_outliers_matches_oracle<K: Kernels, T: Element>(kern: &K, s: AttnShape, magnitude: f32) {
    attention_case(kern, &s, &AttnData::<T>::new_with(&s, 0.7, Some(Outliers { fraction: 0.02, magnitude })));
}

/// Rows whose mask entries are all 0 (boolean) or all −inf (additive) output exactly 0, never NaN, and the other
/// rows still match the oracle. Every third query row is masked out completely.
pub fn attention_fully_masked_rows_are_zero<K: Kernels, T: Element>(kern: &K, s: AttnShape) {
    assert!(s.mask != MaskKind::None, "needs a masked shape");
    let mut data = AttnData::<T>::new(&s, 0.8);
    let mut dead_rows = 0;
    for b in 0..s.batch {
        for i in (0..s.lq).step_by(3) {
            let row = (b * s.lq + i) * s.lk..(b * s.lq + i + 1) * s.lk;
            if let Some(m) = data.bool_mask.get_mut(row.clone()) {
                m.fill(0);
            }
            if let Some(m) = data.add_mask.get_mut(row) {
                m.fill(f32::NEG_INFINITY);
            }
            dead_rows += 1;
        }
    }
    let out = attention_case(kern, &s, &data);
    let zero_rows = out.chunks(s.head_dim).filter(|r| r.iter().all(|x| x.to_f32() == 0.0)).count();
    assert!(zero_rows >= dead_rows * s.heads, "{zero_rows} zero rows, expected at least {}", dead_rows * s.heads);
}

/// Causal attention with lq > lk: the first lq − lk rows of every head see no key and are exactly 0.
pub fn attention_causal_more_queries_than_keys_gives_zero_rows<K: Kernels, T: Element>(kern: &K, s: AttnShape) {
    assert!(s.causal && s.lq > s.lk, "needs causal with lq > lk");
    let out = attention_case(kern, &s, &AttnData::<T>::new(&s, 1.0));
    for (r, row) in out.chunks(s.head_dim).enumerate() {
        if r % s.lq < s.lq - s.lk {
            assert!(row.iter().all(|x| x.to_f32() == 0.0), "row {r} should be exactly 0: {row:?}");
        } else {
            assert!(row.iter().any(|x| x.to_f32() != 0.0), "row {r} sees keys but is all zero");
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Invalid input

fn is_shape(e: &Error) -> bool {
    matches!(e, Error::InvalidShape { .. } | Error::SizeOverflow { .. })
}
fn is_len(e: &Error) -> bool {
    matches!(e, Error::BufferLength { .. })
}

/// Invalid GEMM shapes and short buffers give typed errors, never a panic, and leave C untouched.
pub fn gemm_rejects_invalid_input<K: Kernels, T: Element>(kern: &K) {
    let s = GemmShape::new(4, 5, 6);
    let (a, b) = (vec![T::from_f32(1.0); 24], vec![T::from_f32(1.0); 30]);
    let mut c = vec![T::from_f32(3.0); 20];
    assert_error("lda < k", kern.gemm(&s.with_leading_dims(5, 5, 5), &a, &b, &mut c), is_shape);
    assert_error("ldc < n", kern.gemm(&s.with_leading_dims(6, 5, 4), &a, &b, &mut c), is_shape);
    assert_error("NaN alpha", kern.gemm(&s.with_scalars(f32::NAN, 0.0), &a, &b, &mut c), is_shape);
    assert_error("Inf beta", kern.gemm(&s.with_scalars(1.0, f32::INFINITY), &a, &b, &mut c), is_shape);
    assert_error("short a", kern.gemm(&s, &a[..23], &b, &mut c), is_len);
    assert_error("short b", kern.gemm(&s, &a, &b[..29], &mut c), is_len);
    assert_error("short c", kern.gemm(&s, &a, &b, &mut c[..19]), is_len);
    assert_error("short c (ldc)", kern.gemm(&s.with_leading_dims(6, 5, 7), &a, &b, &mut c), is_len);
    assert_error("overflow", kern.gemm(&GemmShape::new(usize::MAX / 2, 4, 4), &a, &b, &mut c), is_shape);
    assert!(c.iter().all(|x| x.to_f32() == 3.0), "a rejected call wrote C");
}

/// Invalid convolution shapes and short buffers give typed errors, never a panic.
pub fn dwconv_rejects_invalid_input<K: Kernels, T: Element>(kern: &K) {
    let s = DwConvShape::new(1, 5, 5, 3, 3, 1, 4);
    let d = dw_data::<T>(&s);
    let mut dw_out = vec![T::default(); s.dw_out_len()];
    let mut out = vec![T::default(); s.out_len()];
    for (name, bad) in [
        ("stride 0", DwConvShape { stride_h: 0, ..s }),
        ("kernel 0", DwConvShape { kernel_w: 0, ..s }),
        ("multiplier 0", s.with_multiplier(0)),
        ("kernel larger than padded input", DwConvShape::new(1, 2, 2, 3, 5, 1, 4).with_padding(0)),
        ("overflow", DwConvShape::new(usize::MAX / 4, 1024, 1024, 64, 3, 1, 4)),
    ] {
        assert_error(name, kern.depthwise(&bad, &d.input, &d.dw_w, &mut dw_out), is_shape);
        assert_error(name, kern.pointwise(&bad, &dw_out, &d.pw_w, &mut out), is_shape);
        assert_error(name, kern.dwsep_fused(&bad, &d.input, &d.dw_w, &d.pw_w, &mut out), is_shape);
    }
    let n = d.input.len();
    assert_error("short input", kern.depthwise(&s, &d.input[..n - 1], &d.dw_w, &mut dw_out), is_len);
    assert_error("short dw weights", kern.depthwise(&s, &d.input, &d.dw_w[..1], &mut dw_out), is_len);
    assert_error("short dw out", kern.depthwise(&s, &d.input, &d.dw_w, &mut dw_out[..3]), is_len);
    assert_error("short pw weights", kern.pointwise(&s, &dw_out, &d.pw_w[..2], &mut out), is_len);
    assert_error("short pw out", kern.pointwise(&s, &dw_out, &d.pw_w, &mut out[..5]), is_len);
    assert_error("short fused out", kern.dwsep_fused(&s, &d.input, &d.dw_w, &d.pw_w, &mut out[..5]), is_len);
    assert_error("short fused input", kern.dwsep_fused(&s, &d.input[..4], &d.dw_w, &d.pw_w, &mut out), is_len);
}

/// Invalid attention shapes, short buffers and masks that do not match the shape give typed errors.
pub fn attention_rejects_invalid_input<K: Kernels, T: Element>(kern: &K) {
    let s = AttnShape::new(1, 2, 3, 4, 8);
    let d = AttnData::<T>::new(&s, 1.0);
    let mut out = vec![T::default(); s.out_len()];
    let m = vec![1u8; 12];
    for (name, bad) in [
        ("heads 0", AttnShape { heads: 0, ..s }),
        ("head_dim 0", AttnShape { head_dim: 0, ..s }),
        ("negative scale", s.with_scale(-1.0)),
        ("NaN scale", s.with_scale(f32::NAN)),
        ("overflow", AttnShape::new(usize::MAX / 2, 2, 3, 4, 8)),
    ] {
        assert_error(name, kern.attention(&bad, &d.q, &d.k, &d.v, None, &mut out), is_shape);
    }
    assert_error("short q", kern.attention(&s, &d.q[..47], &d.k, &d.v, None, &mut out), is_len);
    assert_error("short k", kern.attention(&s, &d.q, &d.k[..1], &d.v, None, &mut out), is_len);
    assert_error("short v", kern.attention(&s, &d.q, &d.k, &d.v[..63], None, &mut out), is_len);
    assert_error("short out", kern.attention(&s, &d.q, &d.k, &d.v, None, &mut out[..1]), is_len);
    let undeclared = kern.attention(&s, &d.q, &d.k, &d.v, Some(AttnMask::Boolean(&m)), &mut out);
    assert_error("mask not declared", undeclared, |e| matches!(e, Error::InvalidArgument(_)));
    let sb = s.with_mask(MaskKind::Boolean);
    assert_error("mask missing", kern.attention(&sb, &d.q, &d.k, &d.v, None, &mut out), |e| {
        matches!(e, Error::InvalidArgument(_))
    });
    let wrong_kind = kern.attention(&sb, &d.q, &d.k, &d.v, Some(AttnMask::Additive(&[0.0; 12])), &mut out);
    assert_error("mask of the wrong kind", wrong_kind, |e| matches!(e, Error::InvalidArgument(_)));
    let short = kern.attention(&sb, &d.q, &d.k, &d.v, Some(AttnMask::Boolean(&m[..11])), &mut out);
    assert_error("short mask", short, is_len);
}

// ---------------------------------------------------------------------------------------------------------------
// Shape lists and proptest strategies (the CPU backend's; a slower backend passes its own)

/// Awkward GEMM shapes: 1, 7, 33, 127, K = 0, M = 1, N = 1, tails of every tile size, padded leading dimensions,
/// alpha/beta variants.
pub fn gemm_awkward_shapes() -> Vec<GemmShape> {
    let mut v = Vec::new();
    for &(m, n, k) in &[
        (1, 1, 1),
        (1, 127, 33),
        (127, 1, 33),
        (7, 7, 7),
        (33, 33, 33),
        (127, 127, 127),
        (7, 33, 0),
        (1, 1, 0),
        (33, 7, 127),
        (64, 96, 128),
        (65, 97, 300),
        (0, 5, 3),
        (5, 0, 3),
    ] {
        v.push(GemmShape::new(m, n, k));
        v.push(GemmShape::new(m, n, k).with_leading_dims(k + 3, n + 5, n + 2).with_scalars(0.75, 0.0));
        v.push(GemmShape::new(m, n, k).with_scalars(-1.25, 0.5));
        v.push(GemmShape::new(m, n, k).with_leading_dims(k + 1, n, n + 9).with_scalars(1.0, 1.0));
    }
    v
}

/// Awkward depthwise-separable shapes: odd H and W, stride 2 with dilation 2, multiplier 2, padding larger than the
/// kernel's reach, 1×1 images, kernels 1 and 5, the MobileNet 3×3 blocks.
pub fn dwconv_awkward_shapes() -> Vec<DwConvShape> {
    vec![
        DwConvShape::new(1, 1, 1, 1, 1, 1, 1),
        DwConvShape::new(1, 7, 9, 3, 3, 1, 5),
        DwConvShape::new(2, 7, 9, 3, 3, 2, 5).with_dilation(2).with_same_padding(),
        DwConvShape::new(1, 9, 7, 4, 3, 2, 6).with_dilation(2).with_padding(2),
        DwConvShape::new(2, 5, 7, 3, 3, 1, 4).with_multiplier(2).with_same_padding(),
        DwConvShape::new(1, 6, 5, 2, 3, 2, 3).with_multiplier(2).with_dilation(2).with_padding(3),
        DwConvShape::new(1, 4, 5, 3, 3, 1, 2).with_padding(5), // padding beyond the kernel's reach
        DwConvShape { pad_top: 4, pad_bottom: 0, pad_left: 0, pad_right: 6, ..DwConvShape::new(1, 5, 3, 2, 3, 1, 3) },
        DwConvShape::new(1, 11, 13, 16, 5, 1, 24),
        DwConvShape::new(1, 3, 3, 5, 1, 1, 7),
        DwConvShape::new(1, 17, 17, 33, 3, 2, 40),
        DwConvShape::new(2, 14, 14, 32, 3, 1, 17),
        DwConvShape::new(1, 1, 127, 7, 3, 1, 33),
    ]
}

/// Attention shapes: Lq = 1, Lq ≠ Lk both ways, Lk = 0, Lq = 0, head dims 40, 59, 80, 111, 128, causal and masked.
pub fn attention_awkward_shapes() -> Vec<AttnShape> {
    let mut v = Vec::new();
    for &(b, h, lq, lk, d) in &[
        (1, 1, 1, 1, 1),
        (1, 2, 1, 33, 40),
        (2, 1, 33, 7, 59),
        (1, 2, 7, 70, 80),
        (1, 1, 65, 129, 111),
        (1, 3, 40, 40, 128),
        (2, 2, 127, 33, 64),
        (1, 1, 5, 0, 16),
        (1, 1, 0, 5, 16),
    ] {
        let s = AttnShape::new(b, h, lq, lk, d);
        v.push(s);
        v.push(s.with_causal(true));
        v.push(s.with_mask(MaskKind::Boolean));
        v.push(s.with_mask(MaskKind::Additive).with_causal(true).with_scale(0.3));
    }
    v
}

/// Small random valid GEMM shapes (padding, alpha and beta included).
pub fn gemm_shape_strategy() -> impl Strategy<Value = GemmShape> {
    (0usize..40, 0usize..40, 0usize..70, 0usize..4, 0usize..4, 0usize..4, prop::sample::select(vec![0.0f32, 0.5, -2.0]))
        .prop_map(|(m, n, k, pa, pb, pc, beta)| {
            GemmShape::new(m, n, k).with_leading_dims(k + pa, n + pb, n + pc).with_scalars(1.5, beta)
        })
}

/// Small random valid depthwise-separable shapes (kernels, strides, dilations, multipliers, asymmetric padding).
pub fn dwconv_shape_strategy() -> impl Strategy<Value = DwConvShape> {
    (
        (1usize..3, 1usize..12, 1usize..12, 1usize..9, 1usize..4, 1usize..4),
        (1usize..3, 1usize..3, 1usize..3, 1usize..3, 1usize..10, 0usize..4, 0usize..4),
    )
        .prop_map(|((batch, height, width, channels, kh, kw), (sh, sw, dil, mult, oc, pad_a, pad_b))| DwConvShape {
            batch,
            height,
            width,
            channels,
            kernel_h: kh,
            kernel_w: kw,
            stride_h: sh,
            stride_w: sw,
            pad_top: pad_a,
            pad_bottom: pad_b,
            pad_left: pad_b,
            pad_right: pad_a,
            dilation_h: dil,
            dilation_w: 1,
            multiplier: mult,
            out_channels: oc,
        })
        .prop_filter("kernel must fit the padded input", |s| s.validate().is_ok())
}

/// Small random valid attention shapes (causal, masks, explicit scales).
pub fn attention_shape_strategy() -> impl Strategy<Value = AttnShape> {
    (1usize..3, 1usize..3, 0usize..40, 0usize..90, 1usize..70, any::<bool>(), 0u8..3).prop_map(
        |(b, h, lq, lk, d, causal, mask)| {
            let mask = [MaskKind::None, MaskKind::Boolean, MaskKind::Additive][mask as usize];
            AttnShape::new(b, h, lq, lk, d).with_causal(causal).with_mask(mask)
        },
    )
}

/// The storage type's name, for messages.
pub fn dtype_of<T: Element>() -> DType {
    T::DTYPE
}

/// Instantiates every shared test for one backend × f32/f16/bf16 (one module per storage type), so each backend
/// meets the same tests on the same shapes. `backend` builds the backend inside each test; `proptest_cases` sizes the
/// random-shape tests to the backend's speed; an optional attribute marks every test (the GPU suite passes
/// `#[ignore = "needs a CUDA GPU"]`). Backend-specific tests live beside the invocation.
macro_rules! backend_suite {
    (backend: $backend:expr, proptest_cases: $cases:expr $(, #[$attr:meta])? $(,)?) => {
        $crate::suite::backend_suite!(@storage f32_storage, f32, $backend, $cases $(, #[$attr])?);
        $crate::suite::backend_suite!(@storage f16_storage, half::f16, $backend, $cases $(, #[$attr])?);
        $crate::suite::backend_suite!(@storage bf16_storage, half::bf16, $backend, $cases $(, #[$attr])?);
    };
    (@storage $module:ident, $t:ty, $backend:expr, $cases:expr $(, #[$attr:meta])?) => {
        mod $module {
            // `super::*` brings the caller's backend constructor; the rest makes the module self-contained
            // whatever the caller imports.
            #[allow(unused_imports)]
            use super::*;
            #[allow(unused_imports)]
            use $crate::suite::*;
            #[allow(unused_imports)]
            use joule::{AttnShape, DwConvShape, GemmShape, Kernels, MaskKind};
            #[allow(unused_imports)]
            use proptest::prelude::*;
            type T = $t;

            fn backend() -> impl Kernels {
                $backend
            }

            #[test]
            $(#[$attr])?
            fn gemm_matches_the_oracle_on_awkward_shapes_with_padding_alpha_and_beta() {
                let k = backend();
                for s in gemm_awkward_shapes() {
                    gemm_matches_oracle::<_, T>(&k, s);
                }
                // Crosses the 128×128 tensor-core tile in every dimension, with padded leading dimensions.
                gemm_matches_oracle::<_, T>(&k, GemmShape::new(129, 130, 40).with_leading_dims(41, 131, 133).with_scalars(0.5, -1.0));
                gemm_matches_oracle::<_, T>(&k, GemmShape::new(16, 8, 16));
            }

            #[test]
            $(#[$attr])?
            fn gemm_matches_the_oracle_on_bert_sized_and_long_reductions() {
                let k = backend();
                gemm_matches_oracle::<_, T>(&k, GemmShape::new(96, 300, 768));
                // Few output tiles and a long K (the CUDA plan splits K across blocks here).
                gemm_matches_oracle::<_, T>(&k, GemmShape::new(33, 70, 1100));
                gemm_matches_oracle::<_, T>(&k, GemmShape::new(5, 9, 2051).with_scalars(-0.5, 2.0));
            }

            #[test]
            $(#[$attr])?
            fn gemm_with_beta_zero_never_reads_nan_or_inf_from_c() {
                let k = backend();
                gemm_beta_zero_ignores_nan_and_inf_in_c::<_, T>(&k, 37, 45, 29);
                gemm_beta_zero_ignores_nan_and_inf_in_c::<_, T>(&k, 3, 2, 0);
                gemm_beta_zero_ignores_nan_and_inf_in_c::<_, T>(&k, 130, 136, 264);
            }

            #[test]
            $(#[$attr])?
            fn gemm_matches_the_oracle_on_inputs_with_outliers() {
                let k = backend();
                gemm_with_outliers_matches_oracle::<_, T>(&k, GemmShape::new(40, 50, 200), 60.0);
                gemm_with_outliers_matches_oracle::<_, T>(&k, GemmShape::new(9, 17, 64).with_scalars(1.0, 0.5), 300.0);
            }

            #[test]
            $(#[$attr])?
            fn depthwise_pointwise_and_fused_match_the_oracle_on_awkward_shapes() {
                let k = backend();
                for s in dwconv_awkward_shapes() {
                    depthwise_matches_oracle::<_, T>(&k, s);
                    pointwise_matches_oracle::<_, T>(&k, s);
                    dwsep_fused_matches_oracle::<_, T>(&k, s);
                }
            }

            #[test]
            $(#[$attr])?
            fn fused_depthwise_separable_equals_the_two_step_path_bit_for_bit() {
                let k = backend();
                for s in dwconv_awkward_shapes() {
                    dwsep_fused_equals_two_step_bitwise::<_, T>(&k, s);
                }
                dwsep_fused_equals_two_step_bitwise::<_, T>(&k, DwConvShape::new(2, 28, 28, 32, 3, 2, 24));
            }

            #[test]
            $(#[$attr])?
            fn depthwise_separable_matches_the_oracle_on_a_mobilenet_block() {
                let k = backend();
                let s = DwConvShape::new(1, 28, 28, 144, 3, 1, 24);
                depthwise_matches_oracle::<_, T>(&k, s);
                pointwise_matches_oracle::<_, T>(&k, s);
                dwsep_fused_matches_oracle::<_, T>(&k, s);
            }

            #[test]
            $(#[$attr])?
            fn depthwise_separable_and_attention_match_the_oracle_on_inputs_with_outliers() {
                let k = backend();
                dwsep_with_outliers_matches_oracle::<_, T>(&k, DwConvShape::new(1, 13, 11, 24, 3, 1, 16), 50.0);
                dwsep_with_outliers_matches_oracle::<_, T>(&k, DwConvShape::new(2, 9, 9, 8, 3, 2, 12).with_multiplier(2), 200.0);
                attention_with_outliers_matches_oracle::<_, T>(&k, AttnShape::new(1, 2, 70, 150, 64), 6.0);
                let causal = AttnShape::new(1, 2, 40, 130, 80).with_causal(true).with_mask(MaskKind::Additive);
                attention_with_outliers_matches_oracle::<_, T>(&k, causal, 8.0);
            }

            #[test]
            $(#[$attr])?
            fn attention_matches_the_oracle_on_awkward_shapes_causal_and_masked() {
                let k = backend();
                for s in attention_awkward_shapes() {
                    attention_matches_oracle::<_, T>(&k, s);
                }
            }

            #[test]
            $(#[$attr])?
            fn attention_matches_the_oracle_on_a_bert_sized_head_block() {
                let k = backend();
                attention_matches_oracle::<_, T>(&k, AttnShape::new(1, 4, 128, 128, 64));
                attention_matches_oracle::<_, T>(&k, AttnShape::new(1, 2, 100, 130, 128).with_causal(true));
            }

            #[test]
            $(#[$attr])?
            fn attention_with_head_dims_up_to_256_and_many_keys_matches_the_oracle() {
                // d = 256 runs the CUDA 32-key-tile kernels; d = 136 pads to 256; one head with many keys makes the
                // CUDA plan split the key range across blocks and combine.
                let k = backend();
                for s in [
                    AttnShape::new(1, 1, 70, 150, 256),
                    AttnShape::new(1, 1, 70, 150, 256).with_causal(true),
                    AttnShape::new(1, 1, 3, 200, 136).with_mask(MaskKind::Boolean),
                    AttnShape::new(1, 1, 20, 700, 64).with_mask(MaskKind::Additive),
                ] {
                    attention_matches_oracle::<_, T>(&k, s);
                }
            }

            #[test]
            $(#[$attr])?
            fn attention_rows_with_every_key_masked_are_exactly_zero() {
                let k = backend();
                for mask in [MaskKind::Boolean, MaskKind::Additive] {
                    attention_fully_masked_rows_are_zero::<_, T>(&k, AttnShape::new(2, 2, 10, 75, 40).with_mask(mask));
                    let causal = AttnShape::new(1, 2, 9, 4, 59).with_mask(mask).with_causal(true);
                    attention_fully_masked_rows_are_zero::<_, T>(&k, causal);
                }
            }

            #[test]
            $(#[$attr])?
            fn causal_attention_with_more_queries_than_keys_gives_zero_rows() {
                let k = backend();
                attention_causal_more_queries_than_keys_gives_zero_rows::<_, T>(&k, AttnShape::new(2, 3, 70, 20, 64).with_causal(true));
                attention_causal_more_queries_than_keys_gives_zero_rows::<_, T>(&k, AttnShape::new(1, 1, 5, 1, 8).with_causal(true));
            }

            #[test]
            $(#[$attr])?
            fn invalid_shapes_and_short_buffers_give_typed_errors() {
                let k = backend();
                gemm_rejects_invalid_input::<_, T>(&k);
                dwconv_rejects_invalid_input::<_, T>(&k);
                attention_rejects_invalid_input::<_, T>(&k);
            }

            proptest! {
                #![proptest_config(ProptestConfig { cases: $cases, failure_persistence: None, ..ProptestConfig::default() })]

                #[test]
                $(#[$attr])?
                fn gemm_matches_the_oracle_on_random_valid_shapes(s in gemm_shape_strategy()) {
                    gemm_matches_oracle::<_, T>(&backend(), s);
                }

                #[test]
                $(#[$attr])?
                fn depthwise_separable_matches_the_oracle_on_random_valid_shapes(s in dwconv_shape_strategy()) {
                    let k = backend();
                    depthwise_matches_oracle::<_, T>(&k, s);
                    dwsep_fused_matches_oracle::<_, T>(&k, s);
                    dwsep_fused_equals_two_step_bitwise::<_, T>(&k, s);
                }

                #[test]
                $(#[$attr])?
                fn attention_matches_the_oracle_on_random_valid_shapes(s in attention_shape_strategy()) {
                    attention_matches_oracle::<_, T>(&backend(), s);
                }
            }
        }
    };
}
pub(crate) use backend_suite;
