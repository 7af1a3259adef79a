//! Pure arithmetic shared by the meters: power integration and counter deltas with wraparound.
//! Kept free of I/O so synthetic streams test it exactly.

/// Integrates power samples `(t_seconds, watts)` by the trapezoid rule, in joules.
///
/// Samples must be in time order; a pair whose time does not increase, or whose values are not finite, contributes
/// nothing (so a clock step backwards or a bad reading never gives a negative or NaN result). Fewer than two samples
/// give 0 J.
pub fn integrate_trapezoid(samples: &[(f64, f64)]) -> f64 {
    let mut joules = 0.0;
    for pair in samples.windows(2) {
        let (t0, p0) = pair[0];
        let (t1, p1) = pair[1];
        let dt = t1 - t0;
        if dt > 0.0 && dt.is_finite() && p0.is_finite() && p1.is_finite() {
            joules += 0.5 * (p0.max(0.0) + p1.max(0.0)) * dt;
        }
    }
    joules
}

/// The increase of a monotonic energy counter from `prev` to `cur`, handling one wraparound.
///
/// `max_range` is the counter's range (RAPL's `max_energy_range_uj`): when `cur < prev` the counter wrapped once and
/// the delta is `max_range - prev + cur`. Without `max_range` a decrease cannot be interpreted, so `None` is returned
/// and the caller drops that delta (and says so) instead of adding a negative one. Several wraps between two reads
/// are indistinguishable from one: callers poll often enough that this cannot happen (see [`crate::RaplMeter`]).
pub fn counter_delta(prev: u64, cur: u64, max_range: Option<u64>) -> Option<u64> {
    if cur >= prev {
        Some(cur - prev)
    } else {
        let max = max_range?;
        if prev > max {
            // A reading above the documented range: the range is wrong, so the wrap cannot be trusted.
            return None;
        }
        Some(max - prev + cur)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_26_watts_for_an_hour_is_93600_joules() {
        // Sampled every 20 ms, as the NVML power thread does: 180,001 samples.
        let samples: Vec<(f64, f64)> = (0..=180_000).map(|i| (i as f64 * 0.02, 26.0)).collect();
        let j = integrate_trapezoid(&samples);
        assert!((j - 93_600.0).abs() < 1e-6, "{j}");
    }

    #[test]
    fn trapezoid_is_exact_for_a_ramp_and_ignores_bad_pairs() {
        // 0 W to 100 W over 10 s: 500 J.
        let ramp: Vec<(f64, f64)> = (0..=10).map(|i| (i as f64, 10.0 * i as f64)).collect();
        assert!((integrate_trapezoid(&ramp) - 500.0).abs() < 1e-9);
        assert_eq!(integrate_trapezoid(&[]), 0.0);
        assert_eq!(integrate_trapezoid(&[(0.0, 5.0)]), 0.0);
        // Time going backwards, NaN power: contribute nothing, never NaN.
        let bad = [(0.0, 10.0), (-1.0, 10.0), (0.0, f64::NAN), (1.0, 10.0)];
        let j = integrate_trapezoid(&bad);
        assert!(j.is_finite() && j >= 0.0);
    }

    #[test]
    fn counter_delta_wraps_once_or_drops() {
        assert_eq!(counter_delta(10, 25, Some(100)), Some(15));
        assert_eq!(counter_delta(90, 5, Some(100)), Some(15));
        assert_eq!(counter_delta(90, 5, None), None);
        assert_eq!(counter_delta(200, 5, Some(100)), None);
        assert_eq!(counter_delta(7, 7, None), Some(0));
    }
}
