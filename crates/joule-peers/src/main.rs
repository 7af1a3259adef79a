//! Joule's CPU kernels against their peers, on the same shapes in one run.
//!
//! ```text
//! cargo run -p joule-peers --release            # writes results/cpu-peers/peers.json and peers.md
//! cargo run -p joule-peers --release -- --quick # fewer runs, for a smoke test (results are still written)
//! ```
//!
//! For each real shape (BERT-base FFN GEMM 128×3072×768, BERT-base attention 12 heads × 128 × 64, a MobileNetV2
//! depthwise-separable block 56×56×144, 3×3 stride 1 → 24) and each storage type f32/f16/bf16 it times:
//! - `joule-fast`: `joule_cpu::fast` (the fused kernel; for the conv block also the two-step depthwise + pointwise);
//! - `oracle`: `joule_cpu::reference` (float64, written for clarity, timed once);
//! - `candle`: `candle-core` 0.11 on CPU: `matmul`; `conv2d` with groups = channels then a 1×1 `conv2d` (NCHW, its
//!   native layout: inputs are permuted once, outside the timing); `matmul` + softmax (max, sub, exp, sum, div) +
//!   `matmul` for attention, materialising the scores;
//! - `gemm-crate`: `gemm` 0.19 (sarah-ek) with its `x86-v4` feature (AVX-512 chosen at run time); f32 and f16 only
//!   (it has no bf16).
//!
//! Each implementation runs once to warm up, then `RUNS` times; the median wall time is reported, with GFLOP/s from
//! the shape's FLOP count and the relative L2 error of its output against the oracle (the same metric as the test
//! suite), so a fast but wrong peer shows. Every implementation uses rayon's global pool (all logical cores).
//! No energy is measured here: times only. Files are written to a temporary name and renamed.

use candle_core::{D, Device, Tensor, WithDType};
use half::{bf16, f16};
use joule_core::{AttnShape, DType, DwConvShape, Element, ErrorStats, GemmShape, InputGen};
use joule_cpu::fast::GemmStrategy;
use joule_cpu::{fast, reference};
use joule_harness::machine::{MachineInfo, utc_now_iso};
use serde::Serialize;
use std::path::Path;
use std::time::Instant;

#[derive(Serialize, Clone)]
struct Row {
    kernel: &'static str,
    shape: String,
    dtype: &'static str,
    implementation: &'static str,
    /// Median wall time over `runs`, milliseconds; `None` when the implementation does not support the case.
    median_ms: Option<f64>,
    runs: usize,
    gflops_per_s: Option<f64>,
    /// `‖out − oracle‖₂ / ‖oracle‖₂`.
    rel_l2_vs_oracle: Option<f64>,
    note: String,
}

#[derive(Serialize)]
struct Machine {
    /// CPU, cores, RAM, OS, rustc, git commit: the same metadata `joule run` records.
    #[serde(flatten)]
    info: MachineInfo,
    rayon_threads: usize,
    date_utc: String,
    /// `/proc/loadavg` (1, 5, 15 min) when the run started and ended: other work on a shared machine skews times.
    load_average_start: String,
    load_average_end: String,
}

#[derive(Serialize)]
struct Report {
    schema: &'static str,
    machine: Machine,
    method: &'static str,
    rows: Vec<Row>,
}

fn median_ms(runs: usize, mut f: impl FnMut()) -> f64 {
    f(); // warm-up
    let mut t: Vec<f64> = (0..runs)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}

struct Case<'a> {
    kernel: &'static str,
    shape: String,
    dtype: DType,
    flops: u64,
    oracle: &'a [f64],
    runs: usize,
}

impl Case<'_> {
    fn row(&self, implementation: &'static str, ms: Option<f64>, out: Option<&[f64]>, note: impl Into<String>) -> Row {
        let rel = out.map(|o| ErrorStats::compute_f64(o, self.oracle, self.dtype).rel_l2);
        Row {
            kernel: self.kernel,
            shape: self.shape.clone(),
            dtype: self.dtype.name(),
            implementation,
            median_ms: ms,
            runs: if ms.is_some() { self.runs } else { 0 },
            gflops_per_s: ms.map(|ms| self.flops as f64 / (ms * 1e6)),
            rel_l2_vs_oracle: rel,
            note: note.into(),
        }
    }

    /// The oracle's own row: timed once, compared with itself.
    fn oracle_row(&self, ms: f64, note: &str) -> Row {
        Row { runs: 1, ..self.row("oracle", Some(ms), Some(self.oracle), note) }
    }
}

fn widen<T: Element>(xs: &[T]) -> Vec<f64> {
    xs.iter().map(|x| x.to_f64()).collect()
}

fn tensor<T: Element + WithDType>(data: &[T], dims: &[usize]) -> candle_core::Result<Tensor> {
    Tensor::from_slice(data, dims, &Device::Cpu)
}

fn tensor_to_f64(t: &Tensor) -> candle_core::Result<Vec<f64>> {
    t.flatten_all()?.to_dtype(candle_core::DType::F64)?.to_vec1::<f64>()
}

/// Runs a candle closure, turning an unsupported operation into a row with the error as its note.
fn candle_row(
    case: &Case<'_>,
    f: impl Fn() -> candle_core::Result<Tensor>,
    to_ours: impl Fn(&Tensor) -> candle_core::Result<Vec<f64>>,
) -> Row {
    match f().and_then(|t| to_ours(&t)) {
        Ok(out) => {
            let ms = median_ms(case.runs, || {
                std::hint::black_box(f().expect("worked once"));
            });
            case.row("candle", Some(ms), Some(&out), "")
        }
        Err(e) => {
            // candle appends a backtrace when RUST_BACKTRACE is set: keep the message line.
            let msg = e.to_string();
            case.row("candle", None, None, format!("fails: {}", msg.lines().next().unwrap_or("").trim()))
        }
    }
}

type GemmFn<T> = fn(&GemmShape, &[T], &[T], &mut [T]);

fn bench_gemm<T: Element + WithDType>(runs: usize, rows: &mut Vec<Row>, gemm_crate: Option<GemmFn<T>>) {
    let s = GemmShape::new(128, 3072, 768);
    let mut g = InputGen::new(11);
    let (a, b): (Vec<T>, Vec<T>) = (g.vec(s.a_len()), g.vec(s.b_len()));
    let t0 = Instant::now();
    let oracle = reference::gemm(&s, &a, &b, &vec![T::default(); s.c_len()]).expect("valid shape");
    let oracle_ms = t0.elapsed().as_secs_f64() * 1e3;
    let case = Case {
        kernel: "gemm",
        shape: format!("{}x{}x{} (m x n x k, BERT-base FFN)", s.m, s.n, s.k),
        dtype: <T as Element>::DTYPE,
        flops: s.flops(),
        oracle: &oracle,
        runs,
    };
    rows.push(case.oracle_row(oracle_ms, "float64, timed once"));
    let mut c = vec![T::default(); s.c_len()];
    let ms = median_ms(runs, || fast::gemm(&s, &a, &b, &mut c).expect("valid"));
    let note = if <T as Element>::DTYPE == DType::F32 {
        "fast::gemm: f32 runs the gemm crate (GemmStrategy::Auto)"
    } else {
        "fast::gemm: joule's engine (f32 panels, AVX-512 micro-kernel)"
    };
    rows.push(case.row("joule-fast", Some(ms), Some(&widen(&c)), note));
    if <T as Element>::DTYPE == DType::F32 {
        let mut c = vec![T::default(); s.c_len()];
        let ms = median_ms(runs, || fast::gemm_with(GemmStrategy::Engine, &s, &a, &b, &mut c).expect("valid"));
        rows.push(case.row("joule-engine", Some(ms), Some(&widen(&c)), "GemmStrategy::Engine: joule's own f32 engine"));
    }
    rows.push(candle_row(&case, || tensor(&a, &[s.m, s.k])?.matmul(&tensor(&b, &[s.k, s.n])?), tensor_to_f64));
    match gemm_crate {
        Some(f) => {
            let mut c = vec![T::default(); s.c_len()];
            let ms = median_ms(runs, || f(&s, &a, &b, &mut c));
            rows.push(case.row("gemm-crate", Some(ms), Some(&widen(&c)), ""));
        }
        None => rows.push(case.row("gemm-crate", None, None, "unsupported: the gemm crate has no bf16")),
    }
}

/// `C = A·B` with the gemm crate (row-major: column stride 1, row stride ld). Its convention is
/// `dst = alpha·dst + beta·lhs·rhs`, so our alpha is its beta; `read_dst = false` never reads C.
fn gemm_crate_call<T: Element>(s: &GemmShape, a: &[T], b: &[T], c: &mut [T], one: T, zero: T) {
    // SAFETY: the buffers hold a_len/b_len/c_len elements (checked by the caller's shape), the strides describe
    // row-major matrices inside them, and dst does not alias lhs or rhs.
    unsafe {
        gemm::gemm(
            s.m,
            s.n,
            s.k,
            c.as_mut_ptr(),
            1,
            s.ldc as isize,
            false,
            a.as_ptr(),
            1,
            s.lda as isize,
            b.as_ptr(),
            1,
            s.ldb as isize,
            zero,
            one,
            false,
            false,
            false,
            gemm::Parallelism::Rayon(0),
        )
    }
}

fn bench_dwsep<T: Element + WithDType>(runs: usize, rows: &mut Vec<Row>) {
    let s = DwConvShape::new(1, 56, 56, 144, 3, 1, 24);
    let mut g = InputGen::new(12);
    let (x, dw, pw): (Vec<T>, Vec<T>, Vec<T>) =
        (g.vec(s.input_len()), g.vec(s.dw_weight_len()), g.vec(s.pw_weight_len()));
    let t0 = Instant::now();
    let oracle = reference::dwsep(&s, &x, &dw, &pw).expect("valid");
    let oracle_ms = t0.elapsed().as_secs_f64() * 1e3;
    let case = Case {
        kernel: "dwsep",
        shape: format!(
            "{}x{}x{} 3x3 s1 -> {} (MobileNetV2 block, NHWC)",
            s.height, s.width, s.channels, s.out_channels
        ),
        dtype: <T as Element>::DTYPE,
        flops: s.flops(),
        oracle: &oracle,
        runs,
    };
    rows.push(case.oracle_row(oracle_ms, "float64, timed once"));
    let mut out = vec![T::default(); s.out_len()];
    let ms = median_ms(runs, || fast::dwsep_fused(&s, &x, &dw, &pw, &mut out).expect("valid"));
    rows.push(case.row(
        "joule-fast",
        Some(ms),
        Some(&widen(&out)),
        "fused: depthwise tile -> pointwise, never the whole depthwise output",
    ));
    let mut mid = vec![T::default(); s.dw_out_len()];
    let ms = median_ms(runs, || {
        fast::depthwise(&s, &x, &dw, &mut mid).expect("valid");
        fast::pointwise(&s, &mid, &pw, &mut out).expect("valid");
    });
    rows.push(case.row("joule-two-step", Some(ms), Some(&widen(&out)), "depthwise then pointwise (1x1 GEMM)"));
    // candle: NCHW input, depthwise kernel [C, 1, kh, kw], pointwise kernel [oc, C, 1, 1].
    let (c, oc, kk) = (s.channels, s.out_channels, s.kernel_h * s.kernel_w);
    let x_nchw: Vec<T> = (0..c * s.height * s.width)
        .map(|i| {
            let (ch, p) = (i / (s.height * s.width), i % (s.height * s.width));
            x[p * c + ch]
        })
        .collect();
    let dw_k: Vec<T> = (0..c * kk).map(|i| dw[(i % kk) * c + i / kk]).collect();
    let pw_k: Vec<T> = (0..oc * c).map(|i| pw[(i % c) * oc + i / c]).collect();
    rows.push(candle_row(
        &case,
        || {
            let xt = tensor(&x_nchw, &[1, c, s.height, s.width])?;
            let y = xt.conv2d(&tensor(&dw_k, &[c, 1, s.kernel_h, s.kernel_w])?, s.pad_top, s.stride_h, 1, c)?;
            y.conv2d(&tensor(&pw_k, &[oc, c, 1, 1])?, 0, 1, 1, 1)
        },
        |t| tensor_to_f64(&t.permute((0, 2, 3, 1))?.contiguous()?),
    ));
}

fn bench_attention<T: Element + WithDType>(runs: usize, rows: &mut Vec<Row>) {
    let s = AttnShape::new(1, 12, 128, 128, 64);
    let mut g = InputGen::new(13);
    let (q, k, v): (Vec<T>, Vec<T>, Vec<T>) = (g.vec(s.q_len()), g.vec(s.kv_len()), g.vec(s.kv_len()));
    let t0 = Instant::now();
    let oracle = reference::attention(&s, &q, &k, &v, None).expect("valid");
    let oracle_ms = t0.elapsed().as_secs_f64() * 1e3;
    let case = Case {
        kernel: "attention",
        shape: format!("{} heads x {} x {} (BERT-base), d = {}", s.heads, s.lq, s.lk, s.head_dim),
        dtype: <T as Element>::DTYPE,
        flops: s.flops(),
        oracle: &oracle,
        runs,
    };
    rows.push(case.oracle_row(oracle_ms, "float64 two-pass softmax, timed once"));
    let mut out = vec![T::default(); s.out_len()];
    let ms = median_ms(runs, || fast::attention(&s, &q, &k, &v, None, &mut out).expect("valid"));
    rows.push(case.row("joule-fast", Some(ms), Some(&widen(&out)), "online softmax, no Lq x Lk matrix"));
    let dims = [s.batch, s.heads, s.lq, s.head_dim];
    let scale = s.scale() as f64;
    rows.push(candle_row(
        &case,
        || {
            let (qt, kt, vt) = (tensor(&q, &dims)?, tensor(&k, &dims)?, tensor(&v, &dims)?);
            let scores = qt.matmul(&kt.t()?.contiguous()?)?.affine(scale, 0.0)?;
            let e = scores.broadcast_sub(&scores.max_keepdim(D::Minus1)?)?.exp()?;
            let p = e.broadcast_div(&e.sum_keepdim(D::Minus1)?)?;
            p.matmul(&vt)
        },
        tensor_to_f64,
    ));
}

fn machine() -> Machine {
    Machine {
        info: MachineInfo::collect(),
        rayon_threads: rayon::current_num_threads(),
        date_utc: utc_now_iso(),
        load_average_start: String::new(),
        load_average_end: loadavg(),
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("{}.tmp", path.extension().and_then(|e| e.to_str()).unwrap_or("")));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

fn fmt_opt(x: Option<f64>, prec: usize) -> String {
    x.map(|v| format!("{v:.prec$}")).unwrap_or_else(|| "—".into())
}

fn markdown(r: &Report) -> String {
    let m = &r.machine;
    let mut s = String::new();
    s.push_str("# Joule CPU kernels vs peers\n\n");
    s.push_str(&format!(
        "Machine: {} [{}] — {} logical cores, {} rayon threads. Date: {}. Commit: {}{}. {}. Load average (1/5/15 min) at \
         start {}, at end {}.\n\n",
        m.info.cpu_model,
        m.info.cpu_features.join(" "),
        m.info.logical_cpus,
        m.rayon_threads,
        m.date_utc,
        m.info.git_commit.as_deref().unwrap_or("unknown"),
        if m.info.git_dirty == Some(true) { " (+ uncommitted changes)" } else { "" },
        m.info.rustc,
        m.load_average_start,
        m.load_average_end
    ));
    s.push_str(&format!("Method: {}\n\n", r.method));
    s.push_str("Reproduce: `cargo run -p joule-peers --release` (writes this file and peers.json).\n\n");
    s.push_str("| kernel | dtype | implementation | median ms | GFLOP/s | rel. L2 vs oracle | joule-fast ÷ this (time) | note |\n");
    s.push_str("|---|---|---|---:|---:|---:|---:|---|\n");
    for row in &r.rows {
        let joule = r
            .rows
            .iter()
            .find(|x| x.kernel == row.kernel && x.dtype == row.dtype && x.implementation == "joule-fast")
            .and_then(|x| x.median_ms);
        let ratio = match (joule, row.median_ms) {
            (Some(j), Some(p)) if row.implementation != "joule-fast" => format!("{:.2}", j / p),
            _ => "—".into(),
        };
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
            row.kernel,
            row.dtype,
            row.implementation,
            fmt_opt(row.median_ms, 3),
            fmt_opt(row.gflops_per_s, 1),
            row.rel_l2_vs_oracle.map(|e| format!("{e:.2e}")).unwrap_or_else(|| "—".into()),
            ratio,
            row.note
        ));
    }
    s.push_str("\nShapes: ");
    let mut shapes: Vec<String> = r.rows.iter().map(|x| format!("{}: {}", x.kernel, x.shape)).collect();
    shapes.dedup();
    s.push_str(&shapes.join("; "));
    s.push_str(".\n\nA ratio below 1 means joule-fast took less time than that implementation. ");
    s.push_str(
        "A load average above the core count means other processes shared the CPU during the run, so rows measured \
         seconds apart are noisy: in f32, joule-fast and gemm-crate run the same code, and their difference shows \
         the noise. The rel. L2 column is the test suite's metric against the float64 oracle on the same inputs.\n",
    );
    s
}

fn main() -> std::io::Result<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let runs = if quick { 3 } else { 9 };
    let load_start = loadavg();
    let mut rows = Vec::new();
    bench_gemm::<f32>(runs, &mut rows, Some(|s, a, b, c| gemm_crate_call(s, a, b, c, 1.0, 0.0)));
    bench_gemm::<f16>(runs, &mut rows, Some(|s, a, b, c| gemm_crate_call(s, a, b, c, f16::ONE, f16::ZERO)));
    bench_gemm::<bf16>(runs, &mut rows, None);
    bench_dwsep::<f32>(runs, &mut rows);
    bench_dwsep::<f16>(runs, &mut rows);
    bench_dwsep::<bf16>(runs, &mut rows);
    bench_attention::<f32>(runs, &mut rows);
    bench_attention::<f16>(runs, &mut rows);
    bench_attention::<bf16>(runs, &mut rows);
    let report = Report {
        schema: "joule-cpu-peers/1",
        machine: Machine { load_average_start: load_start, ..machine() },
        method: "wall time (std::time::Instant), one warm-up then the median of `runs`; all implementations share rayon's global pool; times only, no energy",
        rows,
    };
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../results/cpu-peers");
    let dir = dir.as_path();
    std::fs::create_dir_all(dir)?;
    let json = serde_json::to_string_pretty(&report).map_err(std::io::Error::other)?;
    write_atomic(&dir.join("peers.json"), &(json + "\n"))?;
    write_atomic(&dir.join("peers.md"), &markdown(&report))?;
    print!("{}", markdown(&report));
    Ok(())
}
