//! Percentiles over trials.

use serde::{Deserialize, Serialize};

/// The 10th, 50th and 90th percentiles of a metric over the trials of one case.
///
/// Percentiles interpolate linearly between order statistics (Hyndman & Fan type 7, numpy's default); with three
/// trials p10 and p90 sit close to the minimum and maximum.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    /// 10th percentile.
    pub p10: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
}

impl Spread {
    /// The spread of `values` (non-finite values are ignored); `None` when no finite value is left.
    pub fn of(values: &[f64]) -> Option<Spread> {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        Some(Spread { p10: percentile(&v, 0.1), p50: percentile(&v, 0.5), p90: percentile(&v, 0.9) })
    }

    /// Whether the p10–p90 bands of two spreads overlap (the noise rule of `joule compare`).
    pub fn overlaps(&self, other: &Spread) -> bool {
        self.p10 <= other.p90 && other.p10 <= self.p90
    }

    /// `(p90 − p10) / p50`, the relative width of the band (0 when p50 is 0).
    pub fn relative_width(&self) -> f64 {
        if self.p50 != 0.0 { (self.p90 - self.p10) / self.p50.abs() } else { 0.0 }
    }
}

/// Linear-interpolation percentile of sorted, non-empty `sorted`, `q` in [0, 1].
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    let n = sorted.len();
    if n == 1 {
        return sorted[0];
    }
    let pos = q.clamp(0.0, 1.0) * (n - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = (lo + 1).min(n - 1);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_interpolate_like_numpy() {
        let s = Spread::of(&[3.0, 1.0, 2.0, 4.0, 5.0]).unwrap();
        assert_eq!((s.p10, s.p50, s.p90), (1.4, 3.0, 4.6));
        assert_eq!(Spread::of(&[7.0]).unwrap().p10, 7.0);
        assert!(Spread::of(&[f64::NAN]).is_none());
    }

    #[test]
    fn bands_overlap_only_when_they_share_a_point() {
        let a = Spread { p10: 1.0, p50: 1.1, p90: 1.2 };
        assert!(a.overlaps(&Spread { p10: 1.2, p50: 1.3, p90: 1.4 }));
        assert!(!a.overlaps(&Spread { p10: 1.21, p50: 1.3, p90: 1.4 }));
        assert!(!Spread { p10: 2.0, p50: 2.0, p90: 2.0 }.overlaps(&a));
    }
}
