//! What the three benches share: the mode (default or `JOULE_BENCH_QUICK=1`), the backends present, the energy
//! meters, and one loop that runs every prepared case in a time group (criterion's `WallTime`) and an energy group
//! (`joule_criterion::Joules`), each with `Throughput::Elements(flops)`.
//!
//! Groups: `<op>/time` (every backend), `<op>/energy-cpu` (CPU backend, CPU meter: RAPL or the estimate) and
//! `<op>/energy-gpu` (CUDA backends, the GPU's NVML meter, stream synchronised at the window edges). Benchmark ids are
//! `<backend>/<dtype>/<shape>`. GPU work is timed with the stream synchronised at both ends of each sample.

#![allow(dead_code)] // each bench uses its own subset

use criterion::measurement::Measurement;
use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use joule::cuda::CudaRuntime;
use joule::{DType, Element, InputGen, Result};
use joule_criterion::Joules;
use joule_criterion::joule_energy::MeterConfig;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where a case runs, which decides how it is timed and which meter sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Device {
    /// Host threads: timed directly, energy from the CPU meter.
    Cpu,
    /// The CUDA stream: timed and metered with the stream synchronised at the edges.
    Gpu,
}

/// One prepared benchmark: a call that queues or runs the kernel once on buffers made beforehand.
pub struct Case {
    /// `cpu`, `cuda`, `cublas`.
    pub backend: &'static str,
    /// The storage precision.
    pub dtype: DType,
    /// Shape label, e.g. `256x256x256`.
    pub shape: String,
    /// FLOPs per call (the throughput criterion divides by time and by joules).
    pub flops: u64,
    /// Where it runs.
    pub device: Device,
    /// One call.
    pub run: Box<dyn FnMut() -> Result<()>>,
}

impl Case {
    fn id(&self) -> BenchmarkId {
        BenchmarkId::new(format!("{}/{}", self.backend, self.dtype), &self.shape)
    }
}

/// The environment of one bench binary.
pub struct BenchEnv {
    /// Which bench (`gemm`, `dwconv`, `attention`).
    pub op: &'static str,
    /// `JOULE_BENCH_QUICK=1`: shorter warm-up and measurement, fewer shapes.
    pub quick: bool,
    /// The CUDA runtime, or why there is none.
    pub cuda: std::result::Result<Arc<CudaRuntime>, String>,
    cpu_joules: std::result::Result<Joules, String>,
    gpu_joules: std::result::Result<Joules, String>,
    started: Instant,
}

impl BenchEnv {
    /// Detects the mode, the CUDA device and the meters, and prints what will run and what is skipped and why.
    pub fn new(op: &'static str) -> BenchEnv {
        // criterion runs each benchmark once, untimed, when the binary is started without `--bench` (`cargo test
        // --benches`) or with `--test`; the quick sizes keep that short too.
        let args: Vec<String> = std::env::args().collect();
        let has = |flag: &str| args.iter().any(|a| a == flag);
        let test_mode = !has("--bench") || has("--test") || has("--list");
        let quick = test_mode || std::env::var("JOULE_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
        let cuda = CudaRuntime::shared().map_err(|e| e.to_string());
        let meters = joule_energy_config();
        let cpu_joules = match Joules::cpu(&meters) {
            Ok((j, absent)) => {
                for a in absent {
                    println!("[{op}] CPU meter `{}` not used: {}", a.meter, a.reason);
                }
                Ok(j)
            }
            Err(e) => Err(e.to_string()),
        };
        let gpu_joules = match &cuda {
            Err(_) => Err("no CUDA device".to_owned()),
            Ok(rt) => {
                let rt = rt.clone();
                let ordinal = rt.info().ordinal;
                Joules::gpu(&meters, ordinal, move || rt.synchronize()).map_err(|e| e.to_string())
            }
        };
        println!(
            "[{op}] mode: {} | threads: {} | CPU energy: {} | GPU: {}",
            match (test_mode, quick) {
                (true, _) => "test (each benchmark once, quick sizes)",
                (false, true) => "quick (JOULE_BENCH_QUICK=1)",
                (false, false) => "default (JOULE_BENCH_QUICK=1 for a quick run)",
            },
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            match &cpu_joules {
                Ok(j) => j.method().to_string(),
                Err(e) => format!("none ({e})"),
            },
            match &cuda {
                Ok(rt) => format!("{} ({})", rt.info().name, rt.info().arch),
                Err(e) => format!("skipping the cuda and cublas backends: {e}"),
            },
        );
        for j in [&cpu_joules, &gpu_joules].into_iter().flatten() {
            j.announce();
        }
        if let (Ok(_), Err(e)) = (&cuda, &gpu_joules) {
            println!("[{op}] GPU energy group skipped: {e}");
        }
        BenchEnv { op, quick, cuda, cpu_joules, gpu_joules, started: Instant::now() }
    }

    /// The CUDA runtime when there is one.
    pub fn gpu(&self) -> Option<&Arc<CudaRuntime>> {
        self.cuda.as_ref().ok()
    }

    /// Whether a size runs in this mode: sizes marked for quick mode always, the others in the default mode only.
    pub fn wants(&self, quick_too: bool) -> bool {
        quick_too || !self.quick
    }

    fn configure<M: Measurement>(&self, c: Criterion<M>, energy: Option<&Joules>) -> Criterion<M> {
        let c = match (self.quick, energy) {
            // Energy: each sample is one window of at least the meter's minimum (Joules::measure repeats a short batch
            // until it is, with 20 % margin, after one probe window), so the measurement time is sized from it: 10
            // samples of about one window each. criterion's warm-up sees a whole window per call, so it then asks
            // for one or two calls per sample: the run time is ~10 windows whatever this says.
            (_, Some(j)) => {
                let window = j.policy().min_window_s.max(0.05);
                c.sample_size(10)
                    .warm_up_time(Duration::from_millis(if self.quick { 100 } else { 500 }))
                    .measurement_time(Duration::from_secs_f64(10.0 * window * 2.0))
            }
            (true, None) => {
                c.sample_size(10).warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(1))
            }
            (false, None) => {
                c.sample_size(20).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3))
            }
        };
        let c = if self.quick { c.without_plots() } else { c };
        c.configure_from_args()
    }

    /// Checks every case once (a failing case is printed and dropped), then runs the time group and the energy
    /// groups, and prints the meters' summaries and the elapsed time.
    pub fn run(&self, cases: Vec<Case>) {
        let mut ok = Vec::new();
        for mut case in cases {
            let checked = (case.run)().and_then(|()| match (case.device, self.gpu()) {
                (Device::Gpu, Some(rt)) => rt.synchronize(),
                _ => Ok(()),
            });
            match checked {
                Ok(()) => ok.push(case),
                Err(e) => println!("[{}] skip {}/{}/{}: {e}", self.op, case.backend, case.dtype, case.shape),
            }
        }
        let mut cases = ok;

        let mut c = self.configure(Criterion::default(), None);
        {
            let mut group = c.benchmark_group(format!("{}/time", self.op));
            for case in cases.iter_mut() {
                group.throughput(Throughput::Elements(case.flops));
                let id = case.id();
                let run = &mut case.run;
                match (case.device, self.gpu()) {
                    (Device::Gpu, Some(rt)) => group.bench_function(id, |b| {
                        b.iter_custom(|iters| {
                            must(rt.synchronize());
                            let t0 = Instant::now();
                            for _ in 0..iters {
                                must(run());
                            }
                            must(rt.synchronize());
                            t0.elapsed()
                        })
                    }),
                    _ => group.bench_function(id, |b| b.iter(|| must(run()))),
                };
            }
            group.finish();
        }
        c.final_summary();

        for (device, joules) in [(Device::Cpu, &self.cpu_joules), (Device::Gpu, &self.gpu_joules)] {
            let mine: Vec<&mut Case> = cases.iter_mut().filter(|c| c.device == device).collect();
            if mine.is_empty() {
                continue;
            }
            let Ok(joules) = joules else { continue };
            let suffix = if device == Device::Cpu { "cpu" } else { "gpu" };
            let mut c = self.configure(Criterion::default().with_measurement(joules.clone()), Some(joules));
            let mut group = c.benchmark_group(format!("{}/energy-{suffix}", self.op));
            group.sampling_mode(SamplingMode::Flat);
            for case in mine {
                group.throughput(Throughput::Elements(case.flops));
                let id = case.id();
                let run = &mut case.run;
                group.bench_function(id, |b| b.iter_custom(|iters| joules.measure(iters, || must(run()))));
            }
            group.finish();
            c.final_summary();
            println!("[{}] {}", self.op, joules.summary());
        }
        println!("[{}] bench finished in {:.0} s", self.op, self.started.elapsed().as_secs_f64());
    }
}

/// The meters' configuration (the real system; `CUDA_VISIBLE_DEVICES` honoured).
fn joule_energy_config() -> MeterConfig {
    MeterConfig::default()
}

/// A kernel call inside a timed loop: every case ran once successfully before timing started, so a failure here is a
/// fault of the machine (device lost, driver error) and stops the bench with the error.
fn must(r: Result<()>) {
    if let Err(e) = r {
        panic!("a kernel call that succeeded before timing failed during it: {e}");
    }
}

/// Seeded inputs of `n` elements in `T` (never exactly zero).
pub fn inputs<T: Element>(seed: u64, n: usize) -> Vec<T> {
    InputGen::new(seed).vec(n)
}
