//! Storage precisions and the element trait the kernels are generic over.

use half::{bf16, f16};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A storage precision. Every kernel accumulates in f32 whatever the storage type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    /// IEEE binary32.
    F32,
    /// IEEE binary16 (5-bit exponent, 10-bit mantissa).
    F16,
    /// bfloat16 (8-bit exponent, 7-bit mantissa).
    BF16,
}

impl DType {
    /// All precisions, in the order reports show them (baseline first).
    pub const ALL: [DType; 3] = [DType::F32, DType::F16, DType::BF16];

    /// Lower-case name used in kernel symbols, files and the CLI (`f32`, `f16`, `bf16`).
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::BF16 => "bf16",
        }
    }

    /// Bytes per element.
    pub fn size_bytes(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F16 | DType::BF16 => 2,
        }
    }

    /// Unit roundoff u = 2^-p of round-to-nearest (p = significand bits incl. the implicit one):
    /// 2^-24 for f32, 2^-11 for f16, 2^-8 for bf16.
    pub fn unit_roundoff(self) -> f64 {
        match self {
            DType::F32 => 2f64.powi(-24),
            DType::F16 => 2f64.powi(-11),
            DType::BF16 => 2f64.powi(-8),
        }
    }

    /// Largest finite value.
    pub fn max_finite(self) -> f64 {
        match self {
            DType::F32 => f32::MAX as f64,
            DType::F16 => f16::MAX.to_f64(),
            DType::BF16 => bf16::MAX.to_f64(),
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DType {
    type Err = crate::Error;
    fn from_str(s: &str) -> crate::Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "f32" | "fp32" | "float32" => Ok(DType::F32),
            "f16" | "fp16" | "half" | "float16" => Ok(DType::F16),
            "bf16" | "bfloat16" => Ok(DType::BF16),
            _ => Err(crate::Error::InvalidArgument(format!("unknown dtype `{s}` (expected f32, f16 or bf16)"))),
        }
    }
}

/// A storage element: `f32`, [`half::f16`] or [`half::bf16`].
///
/// Conversions go through `half`, which rounds to nearest even, keeps NaN as NaN and turns overflow into ±Inf.
pub trait Element:
    bytemuck::Pod + Copy + Default + Send + Sync + PartialEq + fmt::Debug + fmt::Display + 'static
{
    /// The runtime tag of this type.
    const DTYPE: DType;
    /// Rounds an f32 to this type (round to nearest even).
    fn from_f32(x: f32) -> Self;
    /// Widens to f32 (exact).
    fn to_f32(self) -> f32;
    /// Rounds an f64 to this type. For f16/bf16 this rounds once, directly from f64 (no double rounding).
    fn from_f64(x: f64) -> Self;
    /// Widens to f64 (exact).
    fn to_f64(self) -> f64 {
        self.to_f32() as f64
    }
    /// Converts a slice of f32 values.
    fn vec_from_f32(xs: &[f32]) -> Vec<Self> {
        xs.iter().map(|&x| Self::from_f32(x)).collect()
    }
    /// Widens a slice to f64.
    fn vec_to_f64(xs: &[Self]) -> Vec<f64> {
        xs.iter().map(|x| x.to_f64()).collect()
    }
}

impl Element for f32 {
    const DTYPE: DType = DType::F32;
    fn from_f32(x: f32) -> Self {
        x
    }
    fn to_f32(self) -> f32 {
        self
    }
    fn from_f64(x: f64) -> Self {
        x as f32
    }
}

impl Element for f16 {
    const DTYPE: DType = DType::F16;
    fn from_f32(x: f32) -> Self {
        f16::from_f32(x)
    }
    fn to_f32(self) -> f32 {
        f16::to_f32(self)
    }
    fn from_f64(x: f64) -> Self {
        f16::from_f64(x)
    }
}

impl Element for bf16 {
    const DTYPE: DType = DType::BF16;
    fn from_f32(x: f32) -> Self {
        bf16::from_f32(x)
    }
    fn to_f32(self) -> f32 {
        bf16::to_f32(self)
    }
    fn from_f64(x: f64) -> Self {
        bf16::from_f64(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_round_to_nearest_even_and_keep_specials() {
        // 1 + 2^-11 is exactly half-way between two f16 values: ties go to the even one (1.0).
        assert_eq!(f16::from_f32(1.0 + 2f32.powi(-11)).to_f32(), 1.0);
        // 1 + 3*2^-11 is half-way between 1+2^-10 and 1+2^-9: the even one is 1+2^-9.
        assert_eq!(<f16 as Element>::from_f32(1.0 + 3.0 * 2f32.powi(-11)).to_f32(), 1.0 + 2f32.powi(-9));
        assert_eq!(<bf16 as Element>::from_f32(1.0 + 2f32.powi(-8)).to_f32(), 1.0);
        assert!(<f16 as Element>::from_f32(f32::NAN).to_f32().is_nan());
        assert!(<bf16 as Element>::from_f32(f32::NAN).to_f32().is_nan());
        assert_eq!(<f16 as Element>::from_f32(1e6).to_f32(), f32::INFINITY);
        assert_eq!(<f16 as Element>::from_f32(-1e6).to_f32(), f32::NEG_INFINITY);
        assert_eq!(<bf16 as Element>::from_f64(1e300).to_f32(), f32::INFINITY);
    }

    #[test]
    fn dtype_names_round_trip() {
        for d in DType::ALL {
            assert_eq!(d.name().parse::<DType>().unwrap(), d);
        }
        assert!("f8".parse::<DType>().is_err());
    }
}
