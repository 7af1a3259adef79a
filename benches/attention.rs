//! Fused scaled dot-product attention, f32 vs f16 vs bf16 on every backend present (cpu; cuda when a GPU is present),
//! timed (`attention/time`) and metered (`attention/energy-cpu`, `attention/energy-gpu`), with
//! `Throughput::Elements(flops)` (4·batch·heads·lq·lk·d, halved when causal: `AttnShape::flops`).
//!
//! `cargo bench --bench attention` (default sizes, for a 2-core machine) or
//! `JOULE_BENCH_QUICK=1 cargo bench --bench attention`.

mod common;

use common::{BenchEnv, Case, Device, inputs};
use half::{bf16, f16};
use joule::cpu::CpuKernels;
use joule::{AttnShape, Element, Kernels};

/// (batch, heads, lq, lk, head_dim, causal, runs in quick mode, runs on the CPU)
const SHAPES: [(usize, usize, usize, usize, usize, bool, bool, bool); 7] = [
    (1, 4, 256, 256, 64, false, true, true),
    (1, 8, 512, 512, 64, true, false, true),
    // One decoding step against a 2048-token cache.
    (1, 8, 1, 2048, 64, false, false, true),
    // GPU-only sizes.
    (4, 16, 2048, 2048, 64, false, true, false),
    (4, 16, 4096, 4096, 128, true, false, false),
    (4, 16, 2048, 2048, 128, true, false, false),
    (32, 32, 1, 8192, 128, false, false, false),
];

fn cases<T: Element>(env: &BenchEnv, out: &mut Vec<Case>) {
    for &(batch, heads, lq, lk, d, causal, quick, on_cpu) in &SHAPES {
        if !env.wants(quick) || (!on_cpu && env.gpu().is_none()) {
            continue;
        }
        let shape = AttnShape::new(batch, heads, lq, lk, d).with_causal(causal);
        let label = format!("b{batch}h{heads}-{lq}x{lk}-d{d}{}", if causal { "-causal" } else { "" });
        let q = inputs::<T>(1, shape.q_len());
        let k = inputs::<T>(2, shape.kv_len());
        let v = inputs::<T>(3, shape.kv_len());
        let (dtype, flops) = (T::DTYPE, shape.flops());
        if let Some(rt) = env.gpu() {
            let buffers = || {
                Ok::<_, joule::Error>((rt.upload(&q)?, rt.upload(&k)?, rt.upload(&v)?, rt.alloc::<T>(shape.out_len())?))
            };
            match buffers() {
                Ok((dq, dk, dv, mut dout)) => {
                    let rt = rt.clone();
                    out.push(Case {
                        backend: "cuda",
                        dtype,
                        shape: label.clone(),
                        flops,
                        device: Device::Gpu,
                        run: Box::new(move || rt.run_attention(&shape, &dq, &dk, &dv, None, &mut dout)),
                    });
                }
                Err(e) => println!("[attention] skip cuda/{dtype}/{label}: {e}"),
            }
        }
        if on_cpu {
            let mut o = vec![T::default(); shape.out_len()];
            out.push(Case {
                backend: "cpu",
                dtype,
                shape: label,
                flops,
                device: Device::Cpu,
                run: Box::new(move || CpuKernels.attention(&shape, &q, &k, &v, None, &mut o)),
            });
        }
    }
}

fn main() {
    let env = BenchEnv::new("attention");
    let mut all = Vec::new();
    cases::<f32>(&env, &mut all);
    cases::<f16>(&env, &mut all);
    cases::<bf16>(&env, &mut all);
    env.run(all);
}
