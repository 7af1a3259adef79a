//! GEMM `C = A·B` (beta = 0): f32 vs f16 vs bf16 on every backend present (cpu; cuda and the cuBLAS baseline when a
//! GPU is present), timed (`gemm/time`) and metered (`gemm/energy-cpu`, `gemm/energy-gpu`), with
//! `Throughput::Elements(2·m·n·k)` so criterion prints FLOP/s (as "elem/s") and FLOP/J.
//!
//! `cargo bench --bench gemm` (default sizes, for a 2-core machine) or `JOULE_BENCH_QUICK=1 cargo bench --bench gemm`.

mod common;

use common::{BenchEnv, Case, Device, inputs};
use half::{bf16, f16};
use joule::cpu::CpuKernels;
use joule::{Element, GemmShape, Kernels};

/// (m, n, k, runs in quick mode, runs on the CPU)
const SHAPES: [(usize, usize, usize, bool, bool); 6] = [
    (256, 256, 256, true, true),
    (512, 512, 512, false, true),
    // A small-batch linear layer: 128 tokens through a 1024×1024 weight.
    (128, 1024, 1024, false, true),
    // GPU-only sizes: far too slow for a 2-core CPU, the size where a GPU reaches its steady state.
    (1024, 1024, 1024, true, false),
    (4096, 4096, 4096, true, false),
    (8192, 8192, 8192, false, false),
];

fn cases<T: Element>(env: &BenchEnv, out: &mut Vec<Case>) {
    for &(m, n, k, quick, on_cpu) in &SHAPES {
        if !env.wants(quick) || (!on_cpu && env.gpu().is_none()) {
            continue;
        }
        let shape = GemmShape::new(m, n, k);
        let label = format!("{m}x{n}x{k}");
        let (a, b) = (inputs::<T>(1, shape.a_len()), inputs::<T>(2, shape.b_len()));
        if let Some(rt) = env.gpu() {
            for backend in ["cuda", "cublas"] {
                let buffers = || Ok::<_, joule::Error>((rt.upload(&a)?, rt.upload(&b)?, rt.alloc::<T>(shape.c_len())?));
                let (da, db, mut dc) = match buffers() {
                    Ok(bufs) => bufs,
                    Err(e) => {
                        println!("[gemm] skip {backend}/{}/{label}: {e}", T::DTYPE);
                        continue;
                    }
                };
                let rt = rt.clone();
                let run: Box<dyn FnMut() -> joule::Result<()>> = if backend == "cuda" {
                    Box::new(move || rt.run_gemm(&shape, &da, &db, &mut dc))
                } else {
                    // True f32 for f32 inputs (not TF32), f32 accumulation for f16/bf16.
                    Box::new(move || rt.cublas_gemm(&shape, &da, &db, &mut dc, false))
                };
                let (dtype, flops) = (T::DTYPE, shape.flops());
                out.push(Case { backend, dtype, shape: label.clone(), flops, device: Device::Gpu, run });
            }
        }
        if on_cpu {
            let mut c = vec![T::default(); shape.c_len()];
            out.push(Case {
                backend: "cpu",
                dtype: T::DTYPE,
                shape: label,
                flops: shape.flops(),
                device: Device::Cpu,
                run: Box::new(move || CpuKernels.gemm(&shape, &a, &b, &mut c)),
            });
        }
    }
}

fn main() {
    let env = BenchEnv::new("gemm");
    let mut all = Vec::new();
    cases::<f32>(&env, &mut all);
    cases::<f16>(&env, &mut all);
    cases::<bf16>(&env, &mut all);
    env.run(all);
}
