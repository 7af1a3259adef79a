//! Seeded, reproducible input generation. Values are never exactly zero (after rounding to the storage type), so a
//! kernel that skips work or writes zeros cannot pass by accident.

use crate::Element;
use serde::{Deserialize, Serialize};

/// The distribution values are drawn from.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Distribution {
    /// Normal with the given mean and standard deviation.
    Normal {
        /// Mean.
        mean: f32,
        /// Standard deviation.
        std: f32,
    },
    /// Uniform on `[lo, hi)`.
    Uniform {
        /// Lower bound.
        lo: f32,
        /// Upper bound.
        hi: f32,
    },
}

/// Large-magnitude outliers mixed into the data (as in LLM activations), to stress range and accumulation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Outliers {
    /// Fraction of values replaced by an outlier (0..1).
    pub fraction: f32,
    /// Outlier magnitude (sign random).
    pub magnitude: f32,
}

/// A seeded generator (xoshiro256** seeded through SplitMix64; the same seed gives the same values on every
/// platform and version of Joule).
#[derive(Debug, Clone)]
pub struct InputGen {
    state: [u64; 4],
    dist: Distribution,
    outliers: Option<Outliers>,
}

impl InputGen {
    /// A generator drawing from the standard normal distribution.
    pub fn new(seed: u64) -> Self {
        let mut sm = seed;
        let mut next = || {
            sm = sm.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = sm;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        InputGen {
            state: [next(), next(), next(), next()],
            dist: Distribution::Normal { mean: 0.0, std: 1.0 },
            outliers: None,
        }
    }

    /// Draws from `dist` instead.
    pub fn with_distribution(mut self, dist: Distribution) -> Self {
        self.dist = dist;
        self
    }

    /// Mixes in outliers.
    pub fn with_outliers(mut self, outliers: Outliers) -> Self {
        self.outliers = Some(outliers);
        self
    }

    fn next_u64(&mut self) -> u64 {
        let s = &mut self.state;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform on (0, 1): never 0, so `ln` is safe.
    fn open01(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) * (1.0 / (1u64 << 53) as f64)
    }

    /// One value from the configured distribution (may be zero before the resampling in [`InputGen::vec`]).
    fn draw(&mut self) -> f32 {
        if let Some(o) = self.outliers
            && self.open01() < o.fraction as f64
        {
            return if self.next_u64() & 1 == 0 { o.magnitude } else { -o.magnitude };
        }
        match self.dist {
            Distribution::Normal { mean, std } => {
                // Box–Muller; one of the pair is enough.
                let (u1, u2) = (self.open01(), self.open01());
                let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
                (mean as f64 + std as f64 * z) as f32
            }
            Distribution::Uniform { lo, hi } => (lo as f64 + (hi as f64 - lo as f64) * self.open01()) as f32,
        }
    }

    /// `n` values rounded to `T`, none exactly zero (a draw that rounds to zero is drawn again; a distribution that
    /// can only give zero falls back to the smallest normal number of `T`'s sign pattern after 64 tries).
    pub fn vec<T: Element>(&mut self, n: usize) -> Vec<T> {
        (0..n)
            .map(|_| {
                for _ in 0..64 {
                    let x = T::from_f32(self.draw());
                    if x.to_f32() != 0.0 {
                        return x;
                    }
                }
                T::from_f32(1.0)
            })
            .collect()
    }

    /// A boolean attention mask (`1` = attend) with each entry kept with probability `keep`.
    pub fn mask(&mut self, n: usize, keep: f64) -> Vec<u8> {
        (0..n).map(|_| u8::from(self.open01() < keep)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use half::bf16;

    #[test]
    fn seeded_and_never_zero() {
        let a: Vec<f32> = InputGen::new(7).vec(1000);
        let b: Vec<f32> = InputGen::new(7).vec(1000);
        assert_eq!(a, b);
        assert_ne!(a, InputGen::new(8).vec::<f32>(1000));
        let tiny = InputGen::new(1).with_distribution(Distribution::Uniform { lo: -1e-30, hi: 1e-30 }).vec::<bf16>(100);
        assert!(tiny.iter().all(|x| x.to_f32() != 0.0));
        let mean = a.iter().map(|&x| x as f64).sum::<f64>() / 1000.0;
        let var = a.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / 1000.0;
        assert!(mean.abs() < 0.1 && (var - 1.0).abs() < 0.15, "mean {mean} var {var}");
    }

    #[test]
    fn outliers_appear() {
        let v: Vec<f32> = InputGen::new(3).with_outliers(Outliers { fraction: 0.01, magnitude: 1000.0 }).vec(10_000);
        let n = v.iter().filter(|x| x.abs() == 1000.0).count();
        assert!((50..200).contains(&n), "{n}");
    }
}
