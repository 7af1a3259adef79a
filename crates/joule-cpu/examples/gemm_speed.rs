//! Quick GEMM throughput check: `cargo run -p joule-cpu --release --example gemm_speed [m n k]`.
use joule_core::{GemmShape, InputGen};
use std::time::Instant;

fn main() {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let (m, n, k) = if args.len() == 3 { (args[0], args[1], args[2]) } else { (128, 3072, 768) };
    let s = GemmShape::new(m, n, k);
    let mut g = InputGen::new(1);
    let (a, b): (Vec<f32>, Vec<f32>) = (g.vec(s.a_len()), g.vec(s.b_len()));
    let mut c = vec![0.0f32; s.c_len()];
    let mut best = f64::MAX;
    for _ in 0..7 {
        let t = Instant::now();
        joule_cpu::fast::gemm(&s, &a, &b, &mut c).expect("valid shape");
        best = best.min(t.elapsed().as_secs_f64());
    }
    println!("{m}x{n}x{k} f32: best {:.3} ms, {:.1} GFLOP/s", best * 1e3, s.flops() as f64 / best / 1e9);
}
