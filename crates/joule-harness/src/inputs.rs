//! Seeded inputs for one case, already rounded to the case's precision.
//!
//! Values are drawn with [`InputGen`] directly in the storage type `T` and then widened to f32, which is exact for
//! f16 and bf16: the f32 vectors here hold exactly the values the kernel sees, so a backend converts them back to
//! `T` without rounding and the oracle widens the same values to f64.

use crate::catalog::ShapeSpec;
use crate::plan::{Case, KernelKind};
use half::{bf16, f16};
use joule_core::{DType, Element, Error, InputGen, MaskKind, Result};

/// The inputs of one case (values exactly representable in the case's dtype).
#[derive(Debug, Clone, PartialEq)]
pub enum CaseInputs {
    /// `a` (m×k) and `b` (k×n); `c` holds the initial C when beta ≠ 0 and is empty otherwise.
    Gemm {
        /// A.
        a: Vec<f32>,
        /// B.
        b: Vec<f32>,
        /// Initial C (empty when beta = 0: C is then write-only).
        c: Vec<f32>,
    },
    /// Depthwise step.
    Depthwise {
        /// NHWC input.
        input: Vec<f32>,
        /// Depthwise weights.
        weight: Vec<f32>,
    },
    /// Pointwise step.
    Pointwise {
        /// Depthwise output (the pointwise input).
        dw_out: Vec<f32>,
        /// Pointwise weights.
        weight: Vec<f32>,
    },
    /// The fused block.
    DwsepFused {
        /// NHWC input.
        input: Vec<f32>,
        /// Depthwise weights.
        dw_weight: Vec<f32>,
        /// Pointwise weights.
        pw_weight: Vec<f32>,
    },
    /// Attention.
    Attention {
        /// Q.
        q: Vec<f32>,
        /// K.
        k: Vec<f32>,
        /// V.
        v: Vec<f32>,
        /// Boolean mask (`[batch, lq, lk]`, 1 = attend), when the shape declares one.
        mask: Option<Vec<u8>>,
    },
}

/// A stable 64-bit seed for a case (FNV-1a of its id, mixed with `base`), so reruns see the same data.
pub fn case_seed(case: &Case, base: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ base;
    for byte in case.id().bytes() {
        h ^= byte as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn draw<T: Element>(rng: &mut InputGen, n: usize) -> Vec<f32> {
    rng.vec::<T>(n).into_iter().map(Element::to_f32).collect()
}

fn draw_dtype(rng: &mut InputGen, dtype: DType, n: usize) -> Vec<f32> {
    match dtype {
        DType::F32 => draw::<f32>(rng, n),
        DType::F16 => draw::<f16>(rng, n),
        DType::BF16 => draw::<bf16>(rng, n),
    }
}

impl CaseInputs {
    /// Generates the inputs of `case` from `seed` (standard normal values, never exactly zero).
    ///
    /// Errors: an invalid shape, a kernel that does not apply to the shape, or an additive mask (the catalog has
    /// none; boolean masks keep 90 % of the keys).
    pub fn generate(case: &Case, seed: u64) -> Result<CaseInputs> {
        let mut rng = InputGen::new(seed);
        let dt = case.dtype;
        Ok(match (&case.shape.spec, case.kernel) {
            (ShapeSpec::Gemm(s), KernelKind::Gemm) => {
                s.validate()?;
                let a = draw_dtype(&mut rng, dt, s.a_len());
                let b = draw_dtype(&mut rng, dt, s.b_len());
                let c = if s.beta != 0.0 { draw_dtype(&mut rng, dt, s.c_len()) } else { Vec::new() };
                CaseInputs::Gemm { a, b, c }
            }
            (ShapeSpec::DwConv(s), KernelKind::Depthwise) => {
                s.validate()?;
                CaseInputs::Depthwise {
                    input: draw_dtype(&mut rng, dt, s.input_len()),
                    weight: draw_dtype(&mut rng, dt, s.dw_weight_len()),
                }
            }
            (ShapeSpec::DwConv(s), KernelKind::Pointwise) => {
                s.validate()?;
                CaseInputs::Pointwise {
                    dw_out: draw_dtype(&mut rng, dt, s.dw_out_len()),
                    weight: draw_dtype(&mut rng, dt, s.pw_weight_len()),
                }
            }
            (ShapeSpec::DwConv(s), KernelKind::DwsepFused) => {
                s.validate()?;
                CaseInputs::DwsepFused {
                    input: draw_dtype(&mut rng, dt, s.input_len()),
                    dw_weight: draw_dtype(&mut rng, dt, s.dw_weight_len()),
                    pw_weight: draw_dtype(&mut rng, dt, s.pw_weight_len()),
                }
            }
            (ShapeSpec::Attention(s), KernelKind::Attention) => {
                s.validate()?;
                let q = draw_dtype(&mut rng, dt, s.q_len());
                let k = draw_dtype(&mut rng, dt, s.kv_len());
                let v = draw_dtype(&mut rng, dt, s.kv_len());
                let mask = match s.mask {
                    MaskKind::None => None,
                    MaskKind::Boolean => Some(rng.mask(s.mask_len(), 0.9)),
                    MaskKind::Additive => {
                        return Err(Error::Unsupported("the harness generates boolean masks only".into()));
                    }
                };
                CaseInputs::Attention { q, k, v, mask }
            }
            (_, kernel) => {
                return Err(Error::InvalidArgument(format!(
                    "kernel {kernel} does not apply to shape {}",
                    case.shape.name
                )));
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog;
    use crate::plan::ShapeSet;

    #[test]
    fn inputs_are_seeded_representable_in_the_dtype_and_never_zero() {
        let shape = catalog::shapes(ShapeSet::Quick).into_iter().find(|s| s.name.contains("dw3x3")).unwrap();
        let case = Case { kernel: KernelKind::DwsepFused, dtype: DType::BF16, shape, backend: "cpu".into() };
        let seed = case_seed(&case, 0);
        let x = CaseInputs::generate(&case, seed).unwrap();
        assert_eq!(x, CaseInputs::generate(&case, seed).unwrap());
        let CaseInputs::DwsepFused { input, pw_weight, .. } = x else { panic!("wrong variant") };
        assert!(input.iter().chain(&pw_weight).all(|&v| v != 0.0 && bf16::from_f32(v).to_f32() == v));
        let other = Case { dtype: DType::F16, ..case.clone() };
        assert_ne!(case_seed(&case, 0), case_seed(&other, 0));
    }

    #[test]
    fn a_kernel_on_the_wrong_shape_is_an_error() {
        let shape = catalog::shapes(ShapeSet::Quick).into_iter().find(|s| s.name.contains("ffn")).unwrap();
        let case = Case { kernel: KernelKind::Attention, dtype: DType::F32, shape, backend: "cpu".into() };
        assert!(matches!(CaseInputs::generate(&case, 1), Err(Error::InvalidArgument(_))));
    }
}
