//! The shared suite instantiated for the CPU backend (`CpuKernels`) × f32, f16, bf16, plus CPU-only checks.

use crate::suite::*;
use joule::cpu::CpuKernels;
use joule::cpu::fast::GemmStrategy;
use joule::{AttnShape, DwConvShape, GemmShape, MaskKind};
use proptest::prelude::*;

macro_rules! cpu_suite {
    ($($module:ident: $t:ty),* $(,)?) => {$(
        mod $module {
            use super::*;
            type T = $t;
            const K: CpuKernels = CpuKernels;

            #[test]
            fn gemm_matches_the_oracle_on_awkward_shapes_with_padding_alpha_and_beta() {
                for s in gemm_awkward_shapes() {
                    gemm_matches_oracle::<_, T>(&K, s);
                }
            }

            #[test]
            fn gemm_matches_the_oracle_on_a_bert_sized_product() {
                gemm_matches_oracle::<_, T>(&K, GemmShape::new(96, 300, 768));
            }

            #[test]
            fn gemm_with_beta_zero_never_reads_nan_or_inf_from_c() {
                gemm_beta_zero_ignores_nan_and_inf_in_c::<_, T>(&K, 37, 45, 29);
                gemm_beta_zero_ignores_nan_and_inf_in_c::<_, T>(&K, 3, 2, 0);
            }

            #[test]
            fn gemm_matches_the_oracle_on_inputs_with_outliers() {
                gemm_with_outliers_matches_oracle::<_, T>(&K, GemmShape::new(40, 50, 200), 60.0);
                gemm_with_outliers_matches_oracle::<_, T>(&K, GemmShape::new(9, 17, 64).with_scalars(1.0, 0.5), 300.0);
            }

            #[test]
            fn depthwise_pointwise_and_fused_match_the_oracle_on_awkward_shapes() {
                for s in dwconv_awkward_shapes() {
                    depthwise_matches_oracle::<_, T>(&K, s);
                    pointwise_matches_oracle::<_, T>(&K, s);
                    dwsep_fused_matches_oracle::<_, T>(&K, s);
                }
            }

            #[test]
            fn fused_depthwise_separable_equals_the_two_step_path_bit_for_bit() {
                for s in dwconv_awkward_shapes() {
                    dwsep_fused_equals_two_step_bitwise::<_, T>(&K, s);
                }
                dwsep_fused_equals_two_step_bitwise::<_, T>(&K, DwConvShape::new(2, 28, 28, 32, 3, 2, 24));
            }

            #[test]
            fn depthwise_separable_matches_the_oracle_on_a_mobilenet_block() {
                let s = DwConvShape::new(1, 28, 28, 144, 3, 1, 24);
                depthwise_matches_oracle::<_, T>(&K, s);
                dwsep_fused_matches_oracle::<_, T>(&K, s);
            }

            #[test]
            fn attention_matches_the_oracle_on_awkward_shapes_causal_and_masked() {
                for s in attention_awkward_shapes() {
                    attention_matches_oracle::<_, T>(&K, s);
                }
            }

            #[test]
            fn depthwise_separable_and_attention_match_the_oracle_on_inputs_with_outliers() {
                dwsep_with_outliers_matches_oracle::<_, T>(&K, DwConvShape::new(1, 13, 11, 24, 3, 1, 16), 50.0);
                dwsep_with_outliers_matches_oracle::<_, T>(&K, DwConvShape::new(2, 9, 9, 8, 3, 2, 12).with_multiplier(2), 200.0);
                attention_with_outliers_matches_oracle::<_, T>(&K, AttnShape::new(1, 2, 70, 150, 64), 6.0);
                let causal = AttnShape::new(1, 2, 40, 130, 80).with_causal(true).with_mask(MaskKind::Additive);
                attention_with_outliers_matches_oracle::<_, T>(&K, causal, 8.0);
            }

            #[test]
            fn attention_rows_with_every_key_masked_are_exactly_zero() {
                for mask in [MaskKind::Boolean, MaskKind::Additive] {
                    attention_fully_masked_rows_are_zero::<_, T>(&K, AttnShape::new(2, 2, 10, 75, 40).with_mask(mask));
                    let causal = AttnShape::new(1, 2, 9, 4, 59).with_mask(mask).with_causal(true);
                    attention_fully_masked_rows_are_zero::<_, T>(&K, causal);
                }
            }

            #[test]
            fn causal_attention_with_more_queries_than_keys_gives_zero_rows() {
                attention_causal_more_queries_than_keys_gives_zero_rows::<_, T>(
                    &K,
                    AttnShape::new(2, 3, 70, 20, 64).with_causal(true),
                );
                attention_causal_more_queries_than_keys_gives_zero_rows::<_, T>(
                    &K,
                    AttnShape::new(1, 1, 5, 1, 8).with_causal(true),
                );
            }

            #[test]
            fn invalid_shapes_and_short_buffers_give_typed_errors() {
                gemm_rejects_invalid_input::<_, T>(&K);
                dwconv_rejects_invalid_input::<_, T>(&K);
                attention_rejects_invalid_input::<_, T>(&K);
            }

            proptest! {
                #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

                #[test]
                fn gemm_matches_the_oracle_on_random_valid_shapes(s in gemm_shape_strategy()) {
                    gemm_matches_oracle::<_, T>(&K, s);
                }

                #[test]
                fn depthwise_separable_matches_the_oracle_on_random_valid_shapes(s in dwconv_shape_strategy()) {
                    depthwise_matches_oracle::<_, T>(&K, s);
                    dwsep_fused_matches_oracle::<_, T>(&K, s);
                    dwsep_fused_equals_two_step_bitwise::<_, T>(&K, s);
                }

                #[test]
                fn attention_matches_the_oracle_on_random_valid_shapes(s in attention_shape_strategy()) {
                    attention_matches_oracle::<_, T>(&K, s);
                }
            }
        }
    )*};
}

cpu_suite!(f32_storage: f32, f16_storage: half::f16, bf16_storage: half::bf16);

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
