//! The shared suite on the CUDA kernels of `cuda/` executed on the CPU by the emulator (`joule_emu::EmuKernels`:
//! the same launch plans as the GPU backend, bounds-checked memory, PTX fragment layouts) × f32/f16/bf16.
//!
//! Shapes are small but awkward — tails of every tile, K = 0, M = 1, N = 1, Lq ≠ Lk both ways, masked and causal
//! rows, head dims that are not multiples of 8 — so the emulated suite stays within a few minutes on 2 cores.
//! Besides the oracle comparison, any out-of-bounds or misaligned access, deadlock or divergent warp collective in
//! a kernel makes the call return an error, which fails the test with the kernel, block and thread in the message.

use crate::suite::*;
use joule::{AttnShape, DwConvShape, GemmShape, Kernels, MaskKind};
use joule_emu::EmuKernels;
use proptest::prelude::*;

/// GEMM shapes cut to what the emulator runs quickly: every awkward (m, n, k) of the CPU list, each with tight and
/// padded leading dimensions and alpha/beta variants, plus shapes that cross the tensor-core tile in every dimension.
fn emu_gemm_shapes() -> Vec<GemmShape> {
    let mut v = gemm_awkward_shapes();
    v.push(GemmShape::new(129, 130, 40).with_leading_dims(41, 131, 133).with_scalars(0.5, -1.0));
    v.push(GemmShape::new(16, 8, 16));
    v
}

macro_rules! emu_suite {
    ($($module:ident: $t:ty),* $(,)?) => {$(
        mod $module {
            use super::*;
            type T = $t;
            const K: EmuKernels = EmuKernels;

            #[test]
            fn gemm_matches_the_oracle_on_awkward_shapes_with_padding_alpha_and_beta() {
                for s in emu_gemm_shapes() {
                    gemm_matches_oracle::<_, T>(&K, s);
                }
            }

            #[test]
            fn gemm_matches_the_oracle_on_a_bert_sized_product() {
                gemm_matches_oracle::<_, T>(&K, GemmShape::new(96, 300, 768));
            }

            #[test]
            fn depthwise_separable_matches_the_oracle_on_a_mobilenet_block() {
                let s = DwConvShape::new(1, 28, 28, 144, 3, 1, 24);
                depthwise_matches_oracle::<_, T>(&K, s);
                pointwise_matches_oracle::<_, T>(&K, s);
                dwsep_fused_matches_oracle::<_, T>(&K, s);
                dwsep_fused_equals_two_step_bitwise::<_, T>(&K, DwConvShape::new(2, 28, 28, 32, 3, 2, 24));
            }

            #[test]
            fn attention_matches_the_oracle_on_a_bert_sized_head_block() {
                attention_matches_oracle::<_, T>(&K, AttnShape::new(1, 4, 128, 128, 64));
                attention_matches_oracle::<_, T>(&K, AttnShape::new(1, 2, 100, 130, 128).with_causal(true));
            }

            #[test]
            fn gemm_with_a_split_reduction_matches_the_oracle() {
                // Few output tiles and a long K: the plan splits K across blocks and adds a reduce launch.
                assert!(joule_launch::gemm::plan(&GemmShape::new(33, 70, 1100), <T as joule::Element>::DTYPE).unwrap().launches.len() > 1);
                gemm_matches_oracle::<_, T>(&K, GemmShape::new(33, 70, 1100));
                gemm_matches_oracle::<_, T>(&K, GemmShape::new(5, 9, 2051).with_scalars(-0.5, 2.0));
            }

            #[test]
            fn attention_with_head_dims_up_to_256_and_split_keys_matches_the_oracle() {
                // d = 256 runs the 32-key-tile kernels; d = 136 pads to 256; one head with many keys splits the
                // key range across blocks and adds the combine launch.
                for s in [
                    AttnShape::new(1, 1, 70, 150, 256),
                    AttnShape::new(1, 1, 70, 150, 256).with_causal(true),
                    AttnShape::new(1, 1, 3, 200, 136).with_mask(MaskKind::Boolean),
                    AttnShape::new(1, 1, 20, 700, 64).with_mask(MaskKind::Additive),
                ] {
                    attention_matches_oracle::<_, T>(&K, s);
                }
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
            }

            #[test]
            fn attention_matches_the_oracle_on_awkward_shapes_causal_and_masked() {
                for s in attention_awkward_shapes() {
                    attention_matches_oracle::<_, T>(&K, s);
                }
            }

            #[test]
            fn attention_rows_with_every_key_masked_are_exactly_zero() {
                for mask in [MaskKind::Boolean, MaskKind::Additive] {
                    attention_fully_masked_rows_are_zero::<_, T>(&K, AttnShape::new(1, 2, 10, 75, 40).with_mask(mask));
                    let causal = AttnShape::new(1, 2, 9, 4, 59).with_mask(mask).with_causal(true);
                    attention_fully_masked_rows_are_zero::<_, T>(&K, causal);
                }
            }

            #[test]
            fn causal_attention_with_more_queries_than_keys_gives_zero_rows() {
                attention_causal_more_queries_than_keys_gives_zero_rows::<_, T>(
                    &K,
                    AttnShape::new(1, 2, 70, 20, 64).with_causal(true),
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
                #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() })]

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

emu_suite!(f32_storage: f32, f16_storage: half::f16, bf16_storage: half::bf16);

#[test]
fn the_emulated_backend_is_named_cuda_emulated() {
    assert_eq!(EmuKernels.name(), "cuda-emulated");
}

#[test]
fn every_kernel_source_compiles_under_the_emulator() {
    assert!(joule_emu::COMPILE_FAILURES.is_empty(), "{:?}", joule_emu::COMPILE_FAILURES);
}
