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

/// One benchmarked attention call: `AttnShape::new(batch, heads, lq, lk, d).with_causal(causal)`.
struct Call {
    batch: usize,
    heads: usize,
    lq: usize,
    lk: usize,
    d: usize,
    causal: bool,
    /// Runs in quick mode too.
    quick: bool,
    /// Runs on the CPU (the others are GPU-only sizes).
    cpu: bool,
}

const fn call(batch: usize, heads: usize, lq: usize, lk: usize, d: usize) -> Call {
    Call { batch, heads, lq, lk, d, causal: false, quick: false, cpu: true }
}

const CALLS: [Call; 7] = [
    Call { quick: true, ..call(1, 4, 256, 256, 64) },
    Call { causal: true, ..call(1, 8, 512, 512, 64) },
    // One decoding step against a 2048-token cache.
    call(1, 8, 1, 2048, 64),
    // GPU-only sizes.
    Call { quick: true, cpu: false, ..call(4, 16, 2048, 2048, 64) },
    Call { causal: true, cpu: false, ..call(4, 16, 4096, 4096, 128) },
    Call { causal: true, cpu: false, ..call(4, 16, 2048, 2048, 128) },
    Call { cpu: false, ..call(32, 32, 1, 8192, 128) },
];

fn cases<T: Element>(env: &BenchEnv, out: &mut Vec<Case>) {
    for &Call { batch, heads, lq, lk, d, causal, quick, cpu: on_cpu } in &CALLS {
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
