//! Error metrics against the float64 oracle and the pass rule.
//!
//! # The pass rule
//!
//! The oracle runs in f64 on the *same* inputs the kernel saw (already rounded to the storage type), so the
//! difference measures only the kernel's own arithmetic. With `u` the unit roundoff of the storage type
//! ([`DType::unit_roundoff`]: 2^-24, 2^-11, 2^-8), `u32 = 2^-24` (accumulation is always f32) and `K` the
//! reduction length, the kernel's error comes from three places:
//!
//! 1. rounding the output to the storage type: at most `u` relative per element;
//! 2. summing `K` products in f32: at most `K·u32` relative to `Σ|aᵢ·bᵢ|` in the worst case, about `sqrt(K)·u32`
//!    for the rounding errors of random data, which behave like a random walk;
//! 3. intermediates kept in the storage type (attention's probabilities before P·V on tensor cores, the depthwise
//!    output before the pointwise GEMM): another `u` relative per term.
//!
//! A result passes when, with `e = out − ref`:
//!
//! * `‖e‖₂ / ‖ref‖₂ ≤ 4·u + 8·sqrt(K)·u32` (relative L2: the typical error, 2–4× above the expected size of
//!   sources 1–3 together), and
//! * `max|e| / max|ref| ≤ 8·u + 16·sqrt(K)·u32` (no single element is far off, measured against the output's scale
//!   so elements near zero after cancellation are not held to a relative bound they cannot meet), and
//! * no NaN or ±Inf appears where the reference is finite and representable; where `|ref|` exceeds the storage
//!   type's largest finite value, a correctly signed ±Inf is expected instead (f16 overflows at 65504).
//!
//! The bounds are deliberately a small constant above the expected error and far below a real bug (a wrong index,
//! a dropped tail, a missed rescale), which gives errors of order 1.

use crate::{DType, Element};
use serde::{Deserialize, Serialize};

/// Tolerances of the pass rule for one dtype and reduction length (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Tolerance {
    /// Bound on `‖out − ref‖₂ / ‖ref‖₂`.
    pub rel_l2: f64,
    /// Bound on `max|out − ref| / max|ref|`.
    pub max_abs_normalized: f64,
}

impl Tolerance {
    /// The documented rule for storage type `dtype` and reduction length `k`.
    pub fn for_dtype(dtype: DType, k: usize) -> Self {
        let u = dtype.unit_roundoff();
        let acc = (k.max(1) as f64).sqrt() * DType::F32.unit_roundoff();
        Tolerance { rel_l2: 4.0 * u + 8.0 * acc, max_abs_normalized: 8.0 * u + 16.0 * acc }
    }
}

/// How far a kernel's output is from the float64 oracle.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct ErrorStats {
    /// Elements compared.
    pub n: usize,
    /// Largest `|out − ref|` over finite, representable reference elements.
    pub max_abs: f64,
    /// Largest `|out − ref| / |ref|` over elements with `|ref| ≥ 1e-3·max|ref|` (smaller ones are dominated by
    /// cancellation).
    pub max_rel: f64,
    /// `‖out − ref‖₂ / ‖ref‖₂` (0 when both are 0).
    pub rel_l2: f64,
    /// `max|ref|`, the scale `max_abs` is normalised by.
    pub ref_max_abs: f64,
    /// NaNs in the output.
    pub nan_count: usize,
    /// ±Infs in the output.
    pub inf_count: usize,
    /// Elements that are NaN/Inf where the reference is finite and representable, or finite where the reference
    /// overflows the storage type, or an Inf of the wrong sign.
    pub nonfinite_mismatch: usize,
}

impl ErrorStats {
    /// Compares `out` with `reference` element by element, for output stored as `T`.
    ///
    /// Lengths must match; extra elements on either side are counted as mismatches.
    pub fn compute<T: Element>(out: &[T], reference: &[f64]) -> Self {
        let values: Vec<f64> = out.iter().map(|x| x.to_f64()).collect();
        Self::compute_f64(&values, reference, T::DTYPE)
    }

    /// As [`ErrorStats::compute`], for output already widened to f64 and stored as `dtype`.
    pub fn compute_f64(out: &[f64], reference: &[f64], dtype: DType) -> Self {
        let max_finite = dtype.max_finite();
        let mut s = ErrorStats { n: out.len().min(reference.len()), ..Default::default() };
        s.nonfinite_mismatch = out.len().abs_diff(reference.len());
        s.ref_max_abs = reference.iter().filter(|r| r.abs() <= max_finite).fold(0.0, |m, r| m.max(r.abs()));
        let rel_floor = 1e-3 * s.ref_max_abs;
        let (mut err2, mut ref2) = (0.0f64, 0.0f64);
        for (&o, &r) in out.iter().zip(reference) {
            if o.is_nan() {
                s.nan_count += 1;
            } else if o.is_infinite() {
                s.inf_count += 1;
            }
            if r.is_nan() || r.abs() > max_finite {
                // The reference overflows the storage type (or is NaN): the only right answer is the matching
                // special value.
                let ok = if r.is_nan() { o.is_nan() } else { o.is_infinite() && o.signum() == r.signum() };
                if !ok {
                    s.nonfinite_mismatch += 1;
                }
                continue;
            }
            if !o.is_finite() {
                s.nonfinite_mismatch += 1;
                continue;
            }
            let e = (o - r).abs();
            s.max_abs = s.max_abs.max(e);
            if r.abs() >= rel_floor && r != 0.0 {
                s.max_rel = s.max_rel.max(e / r.abs());
            }
            err2 += e * e;
            ref2 += r * r;
        }
        s.rel_l2 = if ref2 > 0.0 {
            (err2 / ref2).sqrt()
        } else if err2 > 0.0 {
            f64::INFINITY
        } else {
            0.0
        };
        s
    }

    /// `max_abs / max|ref|` (or `max_abs` itself when the reference is all zeros).
    pub fn max_abs_normalized(&self) -> f64 {
        if self.ref_max_abs > 0.0 { self.max_abs / self.ref_max_abs } else { self.max_abs }
    }

    /// Checks the pass rule; the error says which bound failed and by how much.
    pub fn check(&self, tol: &Tolerance) -> Result<(), String> {
        if self.nonfinite_mismatch > 0 {
            return Err(format!(
                "{} of {} elements are NaN/Inf where the reference is not (NaN {}, Inf {})",
                self.nonfinite_mismatch, self.n, self.nan_count, self.inf_count
            ));
        }
        if self.rel_l2 > tol.rel_l2 {
            return Err(format!("relative L2 error {:.3e} > tolerance {:.3e}", self.rel_l2, tol.rel_l2));
        }
        if self.max_abs_normalized() > tol.max_abs_normalized {
            return Err(format!(
                "max abs error {:.3e} (normalised {:.3e}) > tolerance {:.3e}",
                self.max_abs,
                self.max_abs_normalized(),
                tol.max_abs_normalized
            ));
        }
        Ok(())
    }

    /// Whether the pass rule holds.
    pub fn passes(&self, tol: &Tolerance) -> bool {
        self.check(tol).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use half::f16;

    #[test]
    fn exact_output_passes_and_wrong_output_fails() {
        let r = [1.0, -2.0, 3.0, 0.5];
        let out: Vec<f32> = r.iter().map(|&x| x as f32).collect();
        let s = ErrorStats::compute(&out, &r);
        assert_eq!(s.rel_l2, 0.0);
        assert!(s.passes(&Tolerance::for_dtype(DType::F32, 16)));
        let mut bad = out.clone();
        bad[2] = 3.01;
        let s = ErrorStats::compute(&bad, &r);
        assert!(!s.passes(&Tolerance::for_dtype(DType::F32, 16)));
        assert!(s.max_abs > 0.009 && s.max_rel > 0.003);
    }

    #[test]
    fn nan_where_reference_is_finite_fails() {
        let s = ErrorStats::compute(&[1.0f32, f32::NAN], &[1.0, 2.0]);
        assert_eq!((s.nan_count, s.nonfinite_mismatch), (1, 1));
        assert!(s.check(&Tolerance::for_dtype(DType::F32, 1)).is_err());
    }

    #[test]
    fn f16_overflow_expects_matching_infinity() {
        let r = [1e5, -1e5, 1.0];
        let good = [f16::INFINITY, f16::NEG_INFINITY, f16::ONE];
        assert!(ErrorStats::compute(&good, &r).passes(&Tolerance::for_dtype(DType::F16, 1)));
        let bad = [f16::INFINITY, f16::INFINITY, f16::ONE];
        assert_eq!(ErrorStats::compute(&bad, &r).nonfinite_mismatch, 1);
    }

    #[test]
    fn tolerance_grows_with_k_and_roundoff() {
        let a = Tolerance::for_dtype(DType::F32, 16);
        let b = Tolerance::for_dtype(DType::F32, 4096);
        let c = Tolerance::for_dtype(DType::BF16, 16);
        assert!(a.rel_l2 < b.rel_l2 && b.rel_l2 < c.rel_l2);
        assert!(Tolerance::for_dtype(DType::F16, 0).rel_l2 > 0.0);
    }
}
