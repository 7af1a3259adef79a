//! The float64 oracle, computed once per case on the full case when cheap, else on a documented sub-problem.
//!
//! Every sub-problem is a prefix of the kernel's output, so the check compares the first `reference.len()` output
//! elements:
//! * GEMM: the first `r` rows of A (and all of B), `r` chosen so that `r·n·k` fits the budget;
//! * attention: batch 0, the first `h` heads;
//! * depthwise, pointwise, fused: the first image of the batch (the catalog runs batch 1, so the whole case).

use crate::catalog::ShapeSpec;
use crate::inputs::CaseInputs;
use crate::plan::Case;
use joule_core::{AttnMask, AttnShape, DwConvShape, Error, GemmShape, Result};
use joule_cpu::reference;
use serde::{Deserialize, Serialize};

/// Default budget of the oracle: multiply-adds per case (about a second of the f64 reference on one core).
pub const DEFAULT_ORACLE_BUDGET_MACS: u64 = 1 << 27;

/// The oracle's answer for (a prefix of) one case's output.
#[derive(Debug, Clone, PartialEq)]
pub struct OracleRef {
    /// What was computed: `full` or the sub-problem, in words.
    pub scope: String,
    /// Whether the whole output was checked.
    pub full: bool,
    /// Reference values for the first `reference.len()` output elements.
    pub reference: Vec<f64>,
}

/// How much of the output the oracle covers, as stored in results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OracleScope {
    /// `full` or the sub-problem in words.
    pub scope: String,
    /// Whether the whole output was checked.
    pub full: bool,
}

fn inputs_mismatch(case: &Case) -> Error {
    Error::InvalidArgument(format!("inputs do not match case {}", case.id()))
}

/// Computes the reference for `case` on `inputs` within `budget_macs` multiply-adds (at least one row, head or
/// image is always computed).
pub fn oracle(case: &Case, inputs: &CaseInputs, budget_macs: u64) -> Result<OracleRef> {
    let budget = budget_macs.max(1);
    match (&case.shape.spec, inputs) {
        (ShapeSpec::Gemm(s), CaseInputs::Gemm { a, b, c }) => {
            let per_row = (s.n as u64 * s.k as u64).max(1);
            let rows = ((budget / per_row) as usize).clamp(1, s.m.max(1)).min(s.m);
            let sub = GemmShape { m: rows, ..*s };
            let c_in = if s.beta != 0.0 { c[..sub.c_len().min(c.len())].to_vec() } else { vec![0.0f32; sub.c_len()] };
            let reference = reference::gemm(&sub, &a[..sub.a_len().min(a.len())], b, &c_in)?;
            let full = rows == s.m;
            let scope = if full { "full".into() } else { format!("rows 0..{rows} of {} (all {} columns)", s.m, s.n) };
            Ok(OracleRef { scope, full, reference })
        }
        (ShapeSpec::DwConv(s), _) => {
            let one = DwConvShape { batch: 1, ..*s };
            let full = s.batch == 1;
            let scope = if full { "full".to_string() } else { format!("image 0 of {}", s.batch) };
            let reference = match inputs {
                CaseInputs::Depthwise { input, weight } => {
                    reference::depthwise(&one, &input[..one.input_len().min(input.len())], weight)?
                }
                CaseInputs::Pointwise { dw_out, weight } => {
                    reference::pointwise(&one, &dw_out[..one.dw_out_len().min(dw_out.len())], weight)?
                }
                CaseInputs::DwsepFused { input, dw_weight, pw_weight } => {
                    reference::dwsep(&one, &input[..one.input_len().min(input.len())], dw_weight, pw_weight)?
                }
                _ => return Err(inputs_mismatch(case)),
            };
            Ok(OracleRef { scope, full, reference })
        }
        (ShapeSpec::Attention(s), CaseInputs::Attention { q, k, v, mask }) => {
            let per_head = (2 * s.lq as u64 * s.lk as u64 * s.head_dim as u64).max(1);
            let heads = ((budget / per_head) as usize).clamp(1, s.heads);
            let sub = AttnShape { batch: 1, heads, ..*s };
            let full = s.batch == 1 && heads == s.heads;
            let scope = if full {
                "full".to_string()
            } else {
                format!("batch 0, heads 0..{heads} of {} × {}", s.batch, s.heads)
            };
            let m = mask.as_ref().map(|m| AttnMask::Boolean(&m[..sub.mask_len().min(m.len())]));
            let reference = reference::attention(
                &sub,
                &q[..sub.q_len().min(q.len())],
                &k[..sub.kv_len().min(k.len())],
                &v[..sub.kv_len().min(v.len())],
                m,
            )?;
            Ok(OracleRef { scope, full, reference })
        }
        _ => Err(inputs_mismatch(case)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::NamedShape;
    use crate::plan::KernelKind;
    use joule_core::DType;

    fn case(kernel: KernelKind, spec: ShapeSpec) -> Case {
        let shape = NamedShape { name: "t".into(), model: "t".into(), layer: "t".into(), note: String::new(), spec };
        Case { kernel, dtype: DType::F32, shape, backend: "cpu".into() }
    }

    #[test]
    fn a_small_budget_checks_a_prefix_of_rows_or_heads_and_says_so() {
        let c = case(KernelKind::Gemm, ShapeSpec::Gemm(GemmShape::new(64, 8, 16)));
        let x = CaseInputs::generate(&c, 3).unwrap();
        let full = oracle(&c, &x, 1 << 20).unwrap();
        assert!(full.full && full.scope == "full" && full.reference.len() == 64 * 8);
        let part = oracle(&c, &x, 8 * 16 * 5).unwrap();
        assert_eq!(part.scope, "rows 0..5 of 64 (all 8 columns)");
        assert_eq!(part.reference[..], full.reference[..5 * 8]);

        let c = case(KernelKind::Attention, ShapeSpec::Attention(AttnShape::new(1, 4, 8, 8, 4)));
        let x = CaseInputs::generate(&c, 3).unwrap();
        let full = oracle(&c, &x, u64::MAX).unwrap();
        let part = oracle(&c, &x, 2 * 8 * 8 * 4).unwrap();
        assert!(!part.full && part.scope.contains("heads 0..1 of 1 × 4"));
        assert_eq!(part.reference[..], full.reference[..8 * 4]);
    }
}
