//! The shared suite on a real GPU: `CudaKernels` (the kernels of `cuda/`) and the cuBLAS GEMM baseline, each ×
//! f32/f16/bf16. Every test is `#[ignore]`d, so a GPU-less `cargo test` lists them as ignored; on a GPU run
//! `cargo test --test tests gpu:: -- --ignored` (or `scripts/gpu-check.sh` on the lent H200). Without a usable GPU
//! an ignored test run fails loudly with the reason (`Error::CudaUnavailable`), never a silent pass.

use crate::suite::*;
use joule::cuda::{CublasGemm, CudaKernels, CudaRuntime};
use joule::{AttnShape, DwConvShape, Element, GemmShape, InputGen, Kernels};

fn cuda() -> CudaKernels {
    CudaKernels::new().unwrap_or_else(|e| panic!("the GPU tests need a CUDA GPU: {e}"))
}

fn cublas() -> CublasGemm {
    CublasGemm::new().unwrap_or_else(|e| panic!("the cuBLAS tests need a CUDA GPU and libcublas: {e}"))
}

crate::suite::backend_suite!(backend: cuda(), proptest_cases: 32, #[ignore = "needs a CUDA GPU"]);

/// GPU-only sizes and the cuBLAS baseline, beyond the shared suite.
macro_rules! gpu_extras {
    ($($module:ident: $t:ty),* $(,)?) => {$(
        mod $module {
            use super::*;
            type T = $t;

            #[test]
            #[ignore = "needs a CUDA GPU"]
            fn gemm_matches_the_oracle_on_bert_and_7b_sized_products() {
                let k = cuda();
                gemm_matches_oracle::<_, T>(&k, GemmShape::new(512, 768, 3072));
                gemm_matches_oracle::<_, T>(&k, GemmShape::new(128, 4096, 4096));
            }

            #[test]
            #[ignore = "needs a CUDA GPU"]
            fn depthwise_separable_matches_the_oracle_on_mobilenet_and_efficientnet_blocks() {
                let k = cuda();
                for s in [DwConvShape::new(2, 112, 112, 32, 3, 1, 16), DwConvShape::new(1, 14, 14, 576, 3, 1, 96),
                          DwConvShape::new(1, 56, 56, 144, 5, 2, 40)] {
                    depthwise_matches_oracle::<_, T>(&k, s);
                    pointwise_matches_oracle::<_, T>(&k, s);
                    dwsep_fused_matches_oracle::<_, T>(&k, s);
                }
            }

            #[test]
            #[ignore = "needs a CUDA GPU"]
            fn attention_matches_the_oracle_on_bert_base_and_long_causal_shapes() {
                let k = cuda();
                attention_matches_oracle::<_, T>(&k, AttnShape::new(2, 12, 128, 128, 64));
                attention_matches_oracle::<_, T>(&k, AttnShape::new(1, 4, 257, 300, 128).with_causal(true));
            }

            #[test]
            #[ignore = "needs a CUDA GPU and libcublas"]
            fn cublas_gemm_matches_the_oracle_on_awkward_shapes_and_beta_zero() {
                let k = cublas();
                for s in gemm_awkward_shapes() {
                    gemm_matches_oracle::<_, T>(&k, s);
                }
                gemm_matches_oracle::<_, T>(&k, GemmShape::new(512, 768, 3072));
                gemm_beta_zero_ignores_nan_and_inf_in_c::<_, T>(&k, 37, 45, 29);
                gemm_beta_zero_ignores_nan_and_inf_in_c::<_, T>(&k, 3, 2, 0);
                gemm_rejects_invalid_input::<_, T>(&k);
            }
        }
    )*};
}

gpu_extras!(f32_gpu_only: f32, f16_gpu_only: half::f16, bf16_gpu_only: half::bf16);

#[test]
#[ignore = "needs a CUDA GPU"]
fn the_probe_names_a_device_and_hopper_compiles_for_sm90a() {
    let info = joule::cuda::probe().unwrap_or_else(|e| panic!("no CUDA here: {e}"));
    println!("{info:?}");
    assert!(!info.name.is_empty() && info.multiprocessors > 0 && info.total_memory > 0);
    if info.compute_capability == (9, 0) {
        assert_eq!(info.arch, "sm_90a");
    }
    assert_eq!(cuda().name(), "cuda");
    assert_eq!(cublas().name(), "cublas");
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn device_resident_gemm_equals_the_host_slice_path_bit_for_bit() {
    let rt = CudaRuntime::shared().unwrap();
    let s = GemmShape::new(200, 136, 520).with_scalars(0.75, 0.5);
    let mut inputs = InputGen::new(11);
    let (a, b, c0) = (inputs.vec::<half::f16>(s.a_len()), inputs.vec::<half::f16>(s.b_len()), inputs.vec(s.c_len()));
    let mut host = c0.clone();
    cuda().gemm(&s, &a, &b, &mut host).unwrap();
    let (da, db, mut dc) = (rt.upload(&a).unwrap(), rt.upload(&b).unwrap(), rt.upload(&c0).unwrap());
    rt.run_gemm(&s, &da, &db, &mut dc).unwrap();
    rt.synchronize().unwrap();
    assert_eq!(bits(&rt.download(&dc).unwrap()), bits(&host));
    // A short device buffer is a typed error, not a fault.
    let short = rt.alloc::<half::f16>(s.a_len() - 1).unwrap();
    assert!(matches!(rt.run_gemm(&s, &short, &db, &mut dc), Err(joule::Error::BufferLength { .. })));
}

#[test]
#[ignore = "needs a CUDA GPU and libcublas"]
fn cublas_tf32_is_close_to_f32_but_labelled_apart() {
    let tf32 = CublasGemm::tf32().unwrap();
    assert_eq!(tf32.name(), "cublas-tf32");
    let s = GemmShape::new(128, 128, 512);
    let mut inputs = InputGen::new(5);
    let (a, b) = (inputs.vec::<f32>(s.a_len()), inputs.vec::<f32>(s.b_len()));
    let reference = joule::cpu::reference::gemm(&s, &a, &b, &vec![0.0; s.c_len()]).unwrap();
    let mut c = vec![f32::NAN; s.c_len()];
    tf32.gemm(&s, &a, &b, &mut c).unwrap();
    let num: f64 = c.iter().zip(&reference).map(|(x, r)| (x.to_f64() - r).powi(2)).sum();
    let den: f64 = reference.iter().map(|r| r * r).sum();
    let rel = (num / den).sqrt();
    // TF32 keeps 10 explicit mantissa bits: well under 1% on unit-normal data, far above f32 rounding.
    assert!(rel < 1e-2, "relative error {rel}");
    let dw = DwConvShape::new(1, 4, 4, 1, 3, 1, 1);
    let err = tf32.depthwise::<f32>(&dw, &[0.0; 16], &[0.0; 9], &mut [0.0; 16]).unwrap_err();
    assert!(matches!(err, joule::Error::Unsupported(_)), "{err}");
}

#[test]
fn probing_without_a_gpu_reports_cuda_unavailable_instead_of_panicking() {
    // Runs everywhere: on a GPU machine the probe succeeds; elsewhere every entry point gives the typed error.
    match joule::cuda::probe() {
        Ok(info) => assert!(!info.name.is_empty() && info.arch.starts_with("sm_"), "{info:?}"),
        Err(joule::Error::CudaUnavailable(reason)) => {
            assert!(!reason.is_empty());
            assert!(matches!(CudaKernels::new(), Err(joule::Error::CudaUnavailable(_))));
            assert!(matches!(CublasGemm::new(), Err(joule::Error::CudaUnavailable(_))));
            assert!(matches!(CudaRuntime::shared(), Err(joule::Error::CudaUnavailable(_))));
        }
        Err(other) => panic!("expected Ok or CudaUnavailable, got {other:?}"),
    }
}
