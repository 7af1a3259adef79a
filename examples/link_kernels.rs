//! How another crate uses Joule's kernels: one GEMM and one attention call on the best backend here (CUDA when a
//! GPU is present, else the fast CPU kernels), checked against the float64 oracle with the documented pass rule.
//!
//! ```sh
//! cargo run --release --example link_kernels
//! ```
//!
//! In your own crate: `joule = { git = "…" }` (or a path), then the same calls. Every backend implements
//! [`joule::Kernels`], so code written against the trait runs on any of them.

use half::bf16;
use joule::{AttnShape, ErrorStats, GemmShape, InputGen, Kernels, Tolerance};

fn demo<K: Kernels>(backend: &K) -> joule::Result<()> {
    let mut inputs = InputGen::new(42);

    // C = A·B in bf16 storage with f32 accumulation: a BERT-base QKV projection for 64 tokens.
    let shape = GemmShape::new(64, 2304, 768);
    let (a, b) = (inputs.vec::<bf16>(shape.a_len()), inputs.vec::<bf16>(shape.b_len()));
    let mut c = vec![bf16::ZERO; shape.c_len()];
    backend.gemm(&shape, &a, &b, &mut c)?;
    let oracle = joule::cpu::reference::gemm(&shape, &a, &b, &c)?;
    let stats = ErrorStats::compute(&c, &oracle);
    let verdict = stats.check(&Tolerance::for_dtype(joule::DType::BF16, shape.k));
    println!("{}: gemm bf16 {shape:?}\n  rel L2 {:.2e}, {:?}", backend.name(), stats.rel_l2, verdict);

    // Causal attention, 12 heads of 64, 128 tokens (FlashAttention-style: no 128×128 matrix is ever stored).
    let shape = AttnShape::new(1, 12, 128, 128, 64).with_causal(true);
    let (q, k, v) =
        (inputs.vec::<bf16>(shape.q_len()), inputs.vec::<bf16>(shape.kv_len()), inputs.vec::<bf16>(shape.kv_len()));
    let mut out = vec![bf16::ZERO; shape.out_len()];
    backend.attention(&shape, &q, &k, &v, None, &mut out)?;
    let oracle = joule::cpu::reference::attention(&shape, &q, &k, &v, None)?;
    let stats = ErrorStats::compute(&out, &oracle);
    let verdict = stats.check(&Tolerance::for_dtype(joule::DType::BF16, shape.lk));
    println!("{}: causal attention bf16\n  rel L2 {:.2e}, {:?}", backend.name(), stats.rel_l2, verdict);

    // Bad input is a typed error, never a panic.
    let err = backend.gemm(&GemmShape::new(4, 4, 4), &a[..3], &b, &mut c).unwrap_err();
    println!("  a short buffer gives: {err}");
    Ok(())
}

fn main() -> joule::Result<()> {
    match joule::cuda::CudaKernels::new() {
        Ok(gpu) => demo(&gpu),
        Err(why) => {
            println!("CUDA backend not used ({why}); running the CPU kernels");
            demo(&joule::cpu::CpuKernels)
        }
    }
}
