//! Depthwise-separable convolution (NHWC depthwise k×k, then pointwise 1×1): the fused kernel and the two-step path
//! (depthwise, then pointwise), f32 vs f16 vs bf16 on every backend present (cpu; cuda when a GPU is present), timed
//! (`dwconv/time`) and metered (`dwconv/energy-cpu`, `dwconv/energy-gpu`), with `Throughput::Elements(flops)`
//! (depthwise + pointwise FLOPs, see `DwConvShape::flops`).
//!
//! `cargo bench --bench dwconv` (default sizes, for a 2-core machine) or `JOULE_BENCH_QUICK=1 cargo bench --bench dwconv`.

mod common;

use common::{BenchEnv, Case, Device, inputs};
use half::{bf16, f16};
use joule::cpu::CpuKernels;
use joule::{DwConvShape, Element, Kernels};

/// One benchmarked block: `DwConvShape::new(batch, hw, hw, channels, k, stride, out)`.
struct Block {
    batch: usize,
    hw: usize,
    channels: usize,
    k: usize,
    stride: usize,
    out: usize,
    /// Runs in quick mode too.
    quick: bool,
    /// Runs on the CPU (the others are GPU-only sizes).
    cpu: bool,
}

const fn block(batch: usize, hw: usize, channels: usize, k: usize, stride: usize, out: usize) -> Block {
    Block { batch, hw, channels, k, stride, out, quick: false, cpu: true }
}

/// MobileNetV2-like blocks.
const BLOCKS: [Block; 5] = [
    Block { quick: true, ..block(1, 56, 64, 3, 1, 128) },
    block(1, 112, 32, 3, 1, 64),
    block(1, 28, 256, 3, 2, 256),
    // GPU-only sizes (a training or large-batch inference batch).
    Block { quick: true, cpu: false, ..block(32, 56, 128, 3, 1, 128) },
    Block { cpu: false, ..block(64, 112, 64, 3, 1, 128) },
];

fn cases<T: Element>(env: &BenchEnv, out: &mut Vec<Case>) {
    for &Block { batch, hw, channels: c, k, stride, out: oc, quick, cpu: on_cpu } in &BLOCKS {
        if !env.wants(quick) || (!on_cpu && env.gpu().is_none()) {
            continue;
        }
        let shape = DwConvShape::new(batch, hw, hw, c, k, stride, oc);
        let label = format!("b{batch}-{hw}x{hw}x{c}-k{k}s{stride}-o{oc}");
        let x = inputs::<T>(1, shape.input_len());
        let dw = inputs::<T>(2, shape.dw_weight_len());
        let pw = inputs::<T>(3, shape.pw_weight_len());
        let (dtype, flops) = (T::DTYPE, shape.flops());
        if let Some(rt) = env.gpu() {
            let buffers = || {
                Ok::<_, joule::Error>((
                    rt.upload(&x)?,
                    rt.upload(&dw)?,
                    rt.upload(&pw)?,
                    rt.alloc::<T>(shape.dw_out_len())?,
                    rt.alloc::<T>(shape.out_len())?,
                ))
            };
            match buffers() {
                Ok((dx, ddw, dpw, mut dmid, mut dout)) => {
                    let rt = rt.clone();
                    // Both variants share the read-only inputs; each call rewrites its outputs completely.
                    let shared = std::rc::Rc::new((dx, ddw, dpw));
                    let mut dout2 = match rt.alloc::<T>(shape.out_len()) {
                        Ok(b) => b,
                        Err(e) => {
                            println!("[dwconv] skip cuda/{dtype}/{label}: {e}");
                            continue;
                        }
                    };
                    let (rt1, s1) = (rt.clone(), shared.clone());
                    out.push(Case {
                        backend: "cuda",
                        dtype,
                        shape: format!("fused/{label}"),
                        flops,
                        device: Device::Gpu,
                        run: Box::new(move || rt1.run_dwsep_fused(&shape, &s1.0, &s1.1, &s1.2, &mut dout)),
                    });
                    out.push(Case {
                        backend: "cuda",
                        dtype,
                        shape: format!("two-step/{label}"),
                        flops,
                        device: Device::Gpu,
                        run: Box::new(move || {
                            rt.run_depthwise(&shape, &shared.0, &shared.1, &mut dmid)?;
                            rt.run_pointwise(&shape, &dmid, &shared.2, &mut dout2)
                        }),
                    });
                }
                Err(e) => println!("[dwconv] skip cuda/{dtype}/{label}: {e}"),
            }
        }
        if on_cpu {
            let (x2, dw2, pw2) = (x.clone(), dw.clone(), pw.clone());
            let mut y = vec![T::default(); shape.out_len()];
            out.push(Case {
                backend: "cpu",
                dtype,
                shape: format!("fused/{label}"),
                flops,
                device: Device::Cpu,
                run: Box::new(move || CpuKernels.dwsep_fused(&shape, &x, &dw, &pw, &mut y)),
            });
            let mut mid = vec![T::default(); shape.dw_out_len()];
            let mut y2 = vec![T::default(); shape.out_len()];
            out.push(Case {
                backend: "cpu",
                dtype,
                shape: format!("two-step/{label}"),
                flops,
                device: Device::Cpu,
                run: Box::new(move || {
                    CpuKernels.depthwise(&shape, &x2, &dw2, &mut mid)?;
                    CpuKernels.pointwise(&shape, &mid, &pw2, &mut y2)
                }),
            });
        }
    }
}

fn main() {
    let env = BenchEnv::new("dwconv");
    let mut all = Vec::new();
    cases::<f32>(&env, &mut all);
    cases::<f16>(&env, &mut all);
    cases::<bf16>(&env, &mut all);
    env.run(all);
}
