//! The shared suite instantiated for the CPU backend (`CpuKernels`) × f32, f16, bf16, plus CPU-only checks.

use crate::suite::*;
use joule::cpu::CpuKernels;
use joule::cpu::fast::GemmStrategy;
use joule::{AttnShape, DwConvShape, GemmShape};

crate::suite::backend_suite!(backend: CpuKernels, proptest_cases: 64);

#[test]
fn the_cpu_backend_is_named_cpu() {
    use joule::Kernels;
    assert_eq!(CpuKernels.name(), "cpu");
}

/// `CpuKernels` with GEMM forced to one strategy, so each implementation behind `fast::gemm` meets the suite.
struct CpuWithGemm(GemmStrategy);

impl joule::Kernels for CpuWithGemm {
    fn name(&self) -> String {
        format!("cpu-{:?}", self.0)
    }
    fn gemm<T: joule::Element>(&self, s: &GemmShape, a: &[T], b: &[T], c: &mut [T]) -> joule::Result<()> {
        joule::cpu::fast::gemm_with(self.0, s, a, b, c)
    }
    fn depthwise<T: joule::Element>(&self, s: &DwConvShape, x: &[T], w: &[T], o: &mut [T]) -> joule::Result<()> {
        CpuKernels.depthwise(s, x, w, o)
    }
    fn pointwise<T: joule::Element>(&self, s: &DwConvShape, x: &[T], w: &[T], o: &mut [T]) -> joule::Result<()> {
        CpuKernels.pointwise(s, x, w, o)
    }
    fn dwsep_fused<T: joule::Element>(
        &self,
        s: &DwConvShape,
        x: &[T],
        dw: &[T],
        pw: &[T],
        o: &mut [T],
    ) -> joule::Result<()> {
        CpuKernels.dwsep_fused(s, x, dw, pw, o)
    }
    fn attention<T: joule::Element>(
        &self,
        s: &AttnShape,
        q: &[T],
        k: &[T],
        v: &[T],
        m: Option<joule::AttnMask<'_>>,
        o: &mut [T],
    ) -> joule::Result<()> {
        CpuKernels.attention(s, q, k, v, m, o)
    }
}

#[test]
fn both_cpu_gemm_strategies_match_the_oracle_in_f32() {
    for strategy in [GemmStrategy::Engine, GemmStrategy::GemmCrate] {
        let k = CpuWithGemm(strategy);
        for s in gemm_awkward_shapes() {
            gemm_matches_oracle::<_, f32>(&k, s);
        }
        gemm_beta_zero_ignores_nan_and_inf_in_c::<_, f32>(&k, 37, 45, 29);
        gemm_rejects_invalid_input::<_, f32>(&k);
    }
}

#[test]
fn the_gemm_crate_strategy_refuses_half_precision_with_a_typed_error() {
    let s = GemmShape::new(2, 2, 2);
    let x = [half::f16::ONE; 4];
    let mut c = [half::f16::ZERO; 4];
    let r = joule::cpu::fast::gemm_with(GemmStrategy::GemmCrate, &s, &x, &x, &mut c);
    assert!(matches!(r, Err(joule::Error::Unsupported(_))), "{r:?}");
}
