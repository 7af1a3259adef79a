//! Quick throughput check of the fast kernels (a development aid; the measured comparison is `joule-peers`):
//! `cargo run -p joule-cpu --release --example kernel_speed`.
use half::{bf16, f16};
use joule_core::{AttnShape, DwConvShape, Element, GemmShape, InputGen};
use joule_cpu::fast;
use std::time::Instant;

fn best_ms(mut f: impl FnMut()) -> f64 {
    let runs = std::env::var("RUNS").ok().and_then(|r| r.parse().ok()).unwrap_or(7);
    (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e3
        })
        .fold(f64::MAX, f64::min)
}

fn run<T: Element>() {
    let mut g = InputGen::new(1);
    let s = GemmShape::new(128, 3072, 768);
    let (a, b): (Vec<T>, Vec<T>) = (g.vec(s.a_len()), g.vec(s.b_len()));
    let mut c = vec![T::default(); s.c_len()];
    let ms = best_ms(|| fast::gemm(&s, &a, &b, &mut c).unwrap());
    println!("{} gemm 128x3072x768: {ms:.3} ms, {:.1} GFLOP/s", T::DTYPE, s.flops() as f64 / ms / 1e6);
    let d = DwConvShape::new(1, 56, 56, 144, 3, 1, 24);
    let (x, dw, pw): (Vec<T>, Vec<T>, Vec<T>) =
        (g.vec(d.input_len()), g.vec(d.dw_weight_len()), g.vec(d.pw_weight_len()));
    let mut mid = vec![T::default(); d.dw_out_len()];
    let mut out = vec![T::default(); d.out_len()];
    let dw_ms = best_ms(|| fast::depthwise(&d, &x, &dw, &mut mid).unwrap());
    let pw_ms = best_ms(|| fast::pointwise(&d, &mid, &pw, &mut out).unwrap());
    let fu_ms = best_ms(|| fast::dwsep_fused(&d, &x, &dw, &pw, &mut out).unwrap());
    println!("{} dwsep 56x56x144->24: depthwise {dw_ms:.3} ms, pointwise {pw_ms:.3} ms, fused {fu_ms:.3} ms", T::DTYPE);
    let at = AttnShape::new(1, 12, 128, 128, 64);
    let (q, k, v): (Vec<T>, Vec<T>, Vec<T>) = (g.vec(at.q_len()), g.vec(at.kv_len()), g.vec(at.kv_len()));
    let mut o = vec![T::default(); at.out_len()];
    let ms = best_ms(|| fast::attention(&at, &q, &k, &v, None, &mut o).unwrap());
    println!("{} attention 12x128x128x64: {ms:.3} ms, {:.1} GFLOP/s", T::DTYPE, at.flops() as f64 / ms / 1e6);
}

fn main() {
    // THREADS=1 gives one-core figures, less disturbed by other work on a shared machine (best of RUNS).
    if let Some(t) = std::env::var("THREADS").ok().and_then(|t| t.parse().ok()) {
        rayon::ThreadPoolBuilder::new().num_threads(t).build_global().expect("first pool");
    }
    run::<f32>();
    run::<f16>();
    run::<bf16>();
}
