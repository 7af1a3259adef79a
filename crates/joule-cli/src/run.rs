//! `joule run`: measure kernels × precisions × shapes × backends, write results and the report, print a table.

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use joule_energy::{MeterConfig, select_meters};
use joule_harness::plan::{KernelKind, PlanFilter, ShapeSet};
use joule_harness::results::AbsentMeterNote;
use joule_harness::{
    Case, Executor, LoopConfig, MachineInfo, Meters, Plan, Progress, ResultRow, RunConfig, SystemClock, run_plan,
};
use std::path::PathBuf;

/// Arguments of `joule run`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Shape set(s), comma-separated: quick, default, full, bert, cnn, decoder-7b [default: default, or quick with
    /// --quick].
    #[arg(long)]
    pub shapes: Option<String>,
    /// Kernels, comma-separated: gemm, depthwise, pointwise, dwsep-fused, attention, or dwconv for the three
    /// depthwise-separable kernels [default: all].
    #[arg(long)]
    pub kernel: Option<String>,
    /// Precisions, comma-separated: f32, f16, bf16 [default: all].
    #[arg(long)]
    pub dtype: Option<String>,
    /// Backends, comma-separated (cpu, cuda, cublas, cublas-tf32) [default: every backend available here].
    #[arg(long)]
    pub backend: Option<String>,
    /// Only shapes whose name contains one of these comma-separated substrings (e.g. `mobilenetv2,s512`).
    #[arg(long)]
    pub name: Option<String>,
    /// CI-sized run: the quick shape set (unless --shapes is given), 2 trials of 0.05 s windows. Energy figures are
    /// less precise and every row says so.
    #[arg(long)]
    pub quick: bool,
    /// Trials (energy windows) per case [default: 3, or 2 with --quick].
    #[arg(long)]
    pub trials: Option<usize>,
    /// Energy window per trial, seconds [default: the meter's minimum, max(1 s, 50 × update period)]. Shorter than
    /// the meter's minimum is allowed and noted in the results.
    #[arg(long)]
    pub window: Option<f64>,
    /// Warm-up per case, seconds [default: 0.25, or 0.02 with --quick].
    #[arg(long)]
    pub warmup: Option<f64>,
    /// Pause between cases, seconds (lets clocks and temperature settle).
    #[arg(long, default_value_t = 0.0)]
    pub cooldown: f64,
    /// Measure idle power for SECONDS before the run (default 5 when given without a value); reported separately.
    #[arg(long, value_name = "SECONDS", num_args = 0..=1, default_missing_value = "5")]
    pub idle_baseline: Option<f64>,
    /// Subtract the idle baseline from every energy figure (needs --idle-baseline).
    #[arg(long)]
    pub subtract_idle: bool,
    /// CPU power at full load in W for the estimate, instead of the TDP table.
    #[arg(long, value_name = "WATTS", value_parser = crate::positive_watts)]
    pub cpu_tdp: Option<f64>,
    /// Directory for results (`<date>-<host>-<set>.json|csv` and the report folder `<date>-<host>-<set>/`).
    #[arg(long, default_value = "results")]
    pub out_dir: PathBuf,
    /// Do not write the markdown/SVG report.
    #[arg(long)]
    pub no_report: bool,
    /// Country (ISO 3166 alpha-3, e.g. FRA) for the report's CO2e figures [default: world average].
    #[arg(long)]
    pub country: Option<String>,
    /// Base seed of the inputs.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Print the plan (one case per line) and exit without measuring.
    #[arg(long)]
    pub list: bool,
    /// Print the results as JSON on stdout instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// The executors this build knows, available or not (the plan skips unavailable ones and says why).
pub fn executors() -> Vec<Box<dyn Executor>> {
    let mut out: Vec<Box<dyn Executor>> = vec![Box::new(joule_harness::cpu_executor())];
    out.extend(joule_harness::cuda::cuda_executors());
    out
}

struct Bar {
    bar: ProgressBar,
}

impl Progress for Bar {
    fn begin(&mut self, total: usize) {
        self.bar.set_length(total as u64);
        self.bar.set_position(0);
    }
    fn case_started(&mut self, _index: usize, case: &Case) {
        self.bar.set_message(case.id());
    }
    fn case_finished(&mut self, _index: usize, outcome: std::result::Result<&ResultRow, &str>) {
        if let Err(e) = outcome {
            self.bar.println(format!("case failed: {e}"));
        }
        self.bar.inc(1);
    }
    fn message(&mut self, text: &str) {
        self.bar.set_message(text.to_string());
    }
    fn end(&mut self) {
        self.bar.finish_and_clear();
    }
}

fn parse_sets(list: &str) -> Result<Vec<ShapeSet>> {
    let sets: Vec<ShapeSet> =
        list.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::parse).collect::<joule_core::Result<_>>()?;
    if sets.is_empty() {
        bail!("--shapes needs at least one set name");
    }
    Ok(sets)
}

/// Runs `joule run`.
pub fn main(args: Args) -> Result<()> {
    let sets = parse_sets(args.shapes.as_deref().unwrap_or(if args.quick { "quick" } else { "default" }))?;
    let filter = PlanFilter {
        kernels: args.kernel.as_deref().map(KernelKind::parse_list).transpose()?,
        dtypes: args.dtype.as_deref().map(PlanFilter::parse_dtypes).transpose()?,
        backends: args.backend.as_deref().map(PlanFilter::parse_names),
        name_contains: args.name.as_deref().map(PlanFilter::parse_names),
    };
    for (what, v) in [("--window", args.window), ("--warmup", args.warmup), ("--idle-baseline", args.idle_baseline)] {
        let ok = |x: f64| x.is_finite() && (x > 0.0 || (what == "--warmup" && x == 0.0));
        if let Some(x) = v
            && !ok(x)
        {
            bail!("{what} must be a positive number of seconds, got {x}");
        }
    }
    if !(args.cooldown.is_finite() && args.cooldown >= 0.0) {
        bail!("--cooldown must be a non-negative number of seconds");
    }
    if args.subtract_idle && args.idle_baseline.is_none() {
        bail!("--subtract-idle needs an idle baseline: add --idle-baseline [SECONDS]");
    }
    let executors = executors();
    let statuses: Vec<_> = executors.iter().map(|e| e.status()).collect();
    let plan = Plan::build(&sets, &filter, &statuses)?;
    if args.list {
        for c in &plan.cases {
            println!("{}", c.id());
        }
        for b in &plan.skipped_backends {
            eprintln!("backend {} skipped: {}", b.name, b.unavailable.as_deref().unwrap_or(""));
        }
        return Ok(());
    }

    let defaults = LoopConfig::default();
    let loop_config = LoopConfig {
        warmup_s: args.warmup.unwrap_or(if args.quick { 0.02 } else { defaults.warmup_s }),
        window_s: args.window.or(if args.quick { Some(0.05) } else { None }),
        trials: args.trials.unwrap_or(if args.quick { 2 } else { defaults.trials }),
        ..defaults
    };
    if loop_config.trials == 0 {
        bail!("--trials must be at least 1");
    }
    let cfg = RunConfig {
        loop_config,
        quick: args.quick,
        cooldown_s: args.cooldown,
        idle_baseline_s: args.idle_baseline,
        subtract_idle: args.subtract_idle,
        seed: args.seed.unwrap_or(RunConfig::default().seed),
        ..RunConfig::default()
    };

    // A results folder that cannot be written should fail now, not after minutes of measuring.
    check_writable(&args.out_dir)
        .with_context(|| format!("results folder {} is not writable", args.out_dir.display()))?;

    let selection = select_meters(&MeterConfig { cpu_tdp_w: args.cpu_tdp, ..MeterConfig::default() });
    let mut meters = Meters {
        cpu: selection.cpu,
        gpus: selection.gpus,
        absent: selection
            .absent
            .into_iter()
            .map(|a| AbsentMeterNote { meter: format!("{} ({})", a.meter, a.device), reason: a.reason })
            .collect(),
    };
    let bar = ProgressBar::with_draw_target(Some(plan.cases.len() as u64), indicatif::ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let command = std::iter::once("joule".to_string()).chain(std::env::args().skip(1)).collect::<Vec<_>>().join(" ");
    let machine = MachineInfo::collect();
    eprintln!(
        "joule run: {} case(s) from shape set(s) {}; energy meter {} (`{}`)",
        plan.cases.len(),
        sets.iter().map(|s| s.name()).collect::<Vec<_>>().join("+"),
        meters.cpu.info().name,
        meters.cpu.info().method
    );
    let clock = SystemClock::new();
    let res = run_plan(&plan, &executors, &mut meters, &clock, &cfg, &command, machine, &mut Bar { bar })?;

    // Never overwrite an earlier run (e.g. the committed results) that has the same date, host and shape set.
    let mut stem = res.file_stem();
    if args.out_dir.join(format!("{stem}.json")).exists() || args.out_dir.join(format!("{stem}.csv")).exists() {
        let time: String = res.created_utc.get(11..19).unwrap_or("").chars().filter(char::is_ascii_digit).collect();
        stem = format!("{stem}-{time}");
    }
    let (json_path, csv_path) = res.write(&args.out_dir, &stem).context("writing the results files")?;
    eprintln!("wrote {} and {}", json_path.display(), csv_path.display());
    if !args.no_report {
        let carbon = crate::report::carbon_intensity(args.country.as_deref());
        for n in &carbon.notes {
            eprintln!("carbon intensity: {n}");
        }
        let dir = args.out_dir.join(&stem);
        let name = json_path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let files = joule_harness::report::write_report(&res, &dir, &carbon, &format!("../{name}"))
            .context("writing the report")?;
        eprintln!("wrote {} (+ {} SVG charts)", files.markdown.display(), files.charts.len());
    }
    if args.json {
        println!("{}", res.to_json()?);
    } else {
        print!("{}", joule_harness::table::results_table(&res));
    }
    let failed = res.rows.iter().filter(|r| !r.accuracy.pass).count();
    if failed > 0 || !res.failures.is_empty() {
        bail!("{failed} case(s) failed the accuracy check and {} case(s) could not run", res.failures.len());
    }
    Ok(())
}

/// Creates `dir` if needed and proves a file can be created in it (then removes the probe).
fn check_writable(dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let probe = dir.join(format!(".joule-write-check-{}", std::process::id()));
    std::fs::write(&probe, b"")?;
    std::fs::remove_file(&probe)
}
