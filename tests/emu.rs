//! The shared suite on the CUDA kernels of `cuda/` executed on the CPU by the emulator (`joule_emu::EmuKernels`:
//! the same launch plans as the GPU backend, bounds-checked memory, PTX fragment layouts) × f32/f16/bf16.
//!
//! Shapes are small but awkward — tails of every tile, K = 0, M = 1, N = 1, Lq ≠ Lk both ways, masked and causal
//! rows, head dims that are not multiples of 8 — so the emulated suite stays within a few minutes on 2 cores.
//! Besides the oracle comparison, any out-of-bounds or misaligned access, deadlock or divergent warp collective in
//! a kernel makes the call return an error, which fails the test with the kernel, block and thread in the message.

use joule::{GemmShape, Kernels};
use joule_emu::EmuKernels;

crate::suite::backend_suite!(backend: EmuKernels, proptest_cases: 24);

#[test]
fn long_reductions_with_few_output_tiles_take_the_split_k_path() {
    // So the shared GEMM test on (33, 70, 1100) exercises the K split and its reduce launch under emulation.
    for dtype in joule::DType::ALL {
        let plan = joule_launch::gemm::plan(&GemmShape::new(33, 70, 1100), dtype).unwrap();
        assert!(plan.launches.len() > 1, "{dtype}: {plan:?}");
    }
}

#[test]
fn the_emulated_backend_is_named_cuda_emulated() {
    assert_eq!(EmuKernels.name(), "cuda-emulated");
}

#[test]
fn every_kernel_source_compiles_under_the_emulator() {
    assert!(joule_emu::COMPILE_FAILURES.is_empty(), "{:?}", joule_emu::COMPILE_FAILURES);
}
