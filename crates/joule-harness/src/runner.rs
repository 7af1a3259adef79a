//! Runs a plan: for each case, seeded inputs → oracle → prepare → error check → measuring loop → one row.

use crate::executor::{DeviceRef, Executor};
use crate::inputs::{CaseInputs, case_seed};
use crate::machine::{MachineInfo, utc_now_iso};
use crate::measure::{Clock, IdleBaseline, LoopConfig, Measurement, measure, measure_idle};
use crate::oracle::oracle;
use crate::plan::{Case, Plan};
use crate::results::{
    AbsentMeterNote, Accuracy, BackendNote, CaseFailure, EnergyLabel, ResultRow, ResultsFile, RunSettings,
    SCHEMA_VERSION,
};
use crate::stats::Spread;
use joule_core::{ErrorStats, Result, Tolerance};
use joule_energy::{Meter, MeterInfo};

/// Settings of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunConfig {
    /// The measuring loop.
    pub loop_config: LoopConfig,
    /// CI-sized run with shortened windows (recorded in the results).
    pub quick: bool,
    /// Pause between cases, seconds (0 = none).
    pub cooldown_s: f64,
    /// Multiply-add budget of the float64 oracle per case.
    pub oracle_budget_macs: u64,
    /// Base seed of the inputs.
    pub seed: u64,
    /// Measure this many seconds of idleness per meter before the cases (`None` = no baseline).
    pub idle_baseline_s: Option<f64>,
    /// Subtract the idle baseline from the energy figures (requires `idle_baseline_s`).
    pub subtract_idle: bool,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            loop_config: LoopConfig::default(),
            quick: false,
            cooldown_s: 0.0,
            oracle_budget_macs: crate::oracle::DEFAULT_ORACLE_BUDGET_MACS,
            seed: 0x004a_6f75_6c65,
            idle_baseline_s: None,
            subtract_idle: false,
        }
    }
}

/// The energy meters of the devices a run may use.
pub struct Meters {
    /// The host CPU's meter.
    pub cpu: Box<dyn Meter>,
    /// One meter per GPU, by CUDA ordinal.
    pub gpus: Vec<Box<dyn Meter>>,
    /// Meters that could not be used, and why.
    pub absent: Vec<AbsentMeterNote>,
}

impl Meters {
    /// The meter measuring `device`.
    pub fn for_device(&mut self, device: DeviceRef) -> Result<&mut dyn Meter> {
        match device {
            DeviceRef::Cpu => Ok(self.cpu.as_mut()),
            DeviceRef::Gpu(i) => {
                let n = self.gpus.len();
                self.gpus.get_mut(i).map(|m| m.as_mut() as &mut dyn Meter).ok_or_else(|| {
                    joule_core::Error::MeterUnavailable {
                        meter: "nvml",
                        reason: format!("no energy meter for GPU {i} ({n} GPU meter(s) found)"),
                        hint: Some("check `joule devices`".into()),
                    }
                })
            }
        }
    }
}

/// What a run reports while it goes (a progress bar in the CLI). Every method has an empty default.
pub trait Progress {
    /// The run starts with `total` cases.
    fn begin(&mut self, _total: usize) {}
    /// Case `index` (0-based) starts.
    fn case_started(&mut self, _index: usize, _case: &Case) {}
    /// Case `index` ended with a row or an error message.
    fn case_finished(&mut self, _index: usize, _outcome: std::result::Result<&ResultRow, &str>) {}
    /// A status line (idle baseline, cooldown).
    fn message(&mut self, _text: &str) {}
    /// The run is over.
    fn end(&mut self) {}
}

/// Reports nothing.
pub struct NoProgress;
impl Progress for NoProgress {}

fn idle_for<'a>(baselines: &'a [IdleBaseline], info: &MeterInfo) -> Option<&'a IdleBaseline> {
    baselines.iter().find(|b| b.meter == info.name && b.scope == info.scope)
}

/// Runs every case of `plan` and collects the results. A failing case is recorded in `failures` and the run goes
/// on; only bad settings (subtracting a baseline that was not measured) or a failing idle measurement stop it.
#[allow(clippy::too_many_arguments)]
pub fn run_plan(
    plan: &Plan,
    executors: &[Box<dyn Executor>],
    meters: &mut Meters,
    clock: &dyn Clock,
    cfg: &RunConfig,
    command: &str,
    machine: MachineInfo,
    progress: &mut dyn Progress,
) -> Result<ResultsFile> {
    if cfg.subtract_idle && cfg.idle_baseline_s.is_none() {
        return Err(joule_core::Error::InvalidArgument(
            "--subtract-idle needs an idle baseline: add --idle-baseline".into(),
        ));
    }
    let created_utc = utc_now_iso();
    let mut used_devices: Vec<DeviceRef> = Vec::new();
    let mut backends = Vec::new();
    for case in &plan.cases {
        if let Some(e) = executors.iter().find(|e| e.name() == case.backend) {
            if !used_devices.contains(&e.device()) {
                used_devices.push(e.device());
            }
            if !backends.iter().any(|b: &BackendNote| b.name == e.name()) {
                backends.push(BackendNote { name: e.name(), description: e.description() });
            }
        }
    }
    // A device without a meter is not fatal: its cases fail one by one with the reason.
    let mut meter_infos = Vec::new();
    for &d in &used_devices {
        if let Ok(m) = meters.for_device(d) {
            meter_infos.push(m.info().clone());
        }
    }

    let mut idle_baselines = Vec::new();
    if let Some(secs) = cfg.idle_baseline_s {
        for &d in &used_devices {
            let Ok(meter) = meters.for_device(d) else { continue };
            progress.message(&format!("measuring {secs} s of idle power with {}", meter.info().name));
            idle_baselines.push(measure_idle(meter, clock, secs)?);
        }
    }
    // An estimate's "idle" power is the model evaluated at whatever load the machine had during the idle window
    // (on a busy machine, nearly all of it): subtracting it would present a model artefact as the kernels' energy.
    if cfg.subtract_idle
        && let Some(b) = idle_baselines.iter().find(|b| b.method == joule_energy::Method::Estimated)
    {
        return Err(joule_core::Error::InvalidArgument(format!(
            "--subtract-idle needs a measured baseline, but {} gives an estimate (`estimated`): its idle figure \
             ({:.2} W) is the model at the load seen during the idle window; keep --idle-baseline to report it alone",
            b.meter, b.watts
        )));
    }

    progress.begin(plan.cases.len());
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    for (i, case) in plan.cases.iter().enumerate() {
        progress.case_started(i, case);
        let outcome = run_case(case, executors, meters, clock, cfg, &idle_baselines);
        match outcome {
            Ok(row) => {
                progress.case_finished(i, Ok(&row));
                rows.push(row);
            }
            Err(e) => {
                let msg = e.to_string();
                progress.case_finished(i, Err(&msg));
                failures.push(CaseFailure { id: case.id(), error: msg });
            }
        }
        if cfg.cooldown_s > 0.0 && i + 1 < plan.cases.len() {
            clock.sleep_s(cfg.cooldown_s);
        }
    }
    progress.end();

    Ok(ResultsFile {
        schema_version: SCHEMA_VERSION,
        joule_version: env!("CARGO_PKG_VERSION").to_string(),
        created_utc,
        command: command.to_string(),
        sets: plan.sets.clone(),
        machine,
        settings: RunSettings {
            loop_config: cfg.loop_config.clone(),
            quick: cfg.quick,
            cooldown_s: cfg.cooldown_s,
            oracle_budget_macs: cfg.oracle_budget_macs,
            seed: cfg.seed,
            subtract_idle: cfg.subtract_idle,
        },
        meters: meter_infos,
        absent_meters: meters.absent.clone(),
        idle_baselines,
        skipped_backends: plan.skipped_backends.clone(),
        backends,
        failures,
        rows,
    })
}

fn run_case(
    case: &Case,
    executors: &[Box<dyn Executor>],
    meters: &mut Meters,
    clock: &dyn Clock,
    cfg: &RunConfig,
    idle: &[IdleBaseline],
) -> Result<ResultRow> {
    let exec = executors
        .iter()
        .find(|e| e.name() == case.backend)
        .ok_or_else(|| joule_core::Error::InvalidArgument(format!("no executor for backend `{}`", case.backend)))?;
    let inputs = CaseInputs::generate(case, case_seed(case, cfg.seed))?;
    let reference = oracle(case, &inputs, cfg.oracle_budget_macs)?;
    let mut prepared = exec.prepare(case, &inputs)?;
    drop(inputs);
    let out = prepared.output_f64()?;
    let compared = &out[..reference.reference.len().min(out.len())];
    let stats = ErrorStats::compute_f64(compared, &reference.reference, case.dtype);
    let k = case.reduction_len();
    let accuracy =
        Accuracy::from_stats(&stats, Tolerance::for_dtype(case.dtype, k), &reference.scope, reference.full, k);

    let meter = meters.for_device(exec.device())?;
    let m = measure(prepared.as_mut(), meter, clock, &cfg.loop_config)?;
    let info = meter.info().clone();
    let idle_w = if cfg.subtract_idle { idle_for(idle, &info).map(|b| b.watts) } else { None };
    let mut row = build_row(case, &m, accuracy, &info, idle_w);
    if cfg.quick {
        row.notes.insert(0, "--quick: CI-sized run with a shortened energy window; not for publication".into());
    }
    Ok(row)
}

/// Turns one case's measurement into a result row (every figure per call, spreads over the trials).
pub fn build_row(
    case: &Case,
    m: &Measurement,
    accuracy: Accuracy,
    meter: &MeterInfo,
    idle_w: Option<f64>,
) -> ResultRow {
    let flops = case.flops();
    let min_bytes = case.min_bytes();
    let times: Vec<f64> = m.trials.iter().map(|t| t.time_per_call_s()).collect();
    let joules: Vec<f64> = m.trials.iter().map(|t| t.joules_per_call(idle_w)).collect();
    let positive = |xs: &[f64]| xs.iter().all(|&j| j > 0.0 && j.is_finite());
    let per_time = |num: f64| times.iter().map(|&t| num / t / 1e9).collect::<Vec<_>>();
    let energy_ok = !joules.is_empty() && positive(&joules);
    let mut notes = m.notes.clone();
    if !energy_ok {
        notes.push(if idle_w.is_some() {
            "energy per call not positive after subtracting idle power: energy figures omitted".into()
        } else {
            "the meter reported no energy: energy figures omitted".into()
        });
    }
    let from_j = |f: &dyn Fn(f64) -> f64| {
        energy_ok.then(|| Spread::of(&joules.iter().map(|&j| f(j)).collect::<Vec<_>>())).flatten()
    };
    let power: Vec<f64> =
        m.trials.iter().map(|t| (t.window.joules - idle_w.unwrap_or(0.0) * t.seconds) / t.seconds).collect();
    let method = m.trials.first().map(|t| t.window.method).unwrap_or(meter.method);
    let zero = Spread { p10: 0.0, p50: 0.0, p90: 0.0 };
    ResultRow {
        id: case.id(),
        kernel: case.kernel,
        dtype: case.dtype,
        backend: case.backend.clone(),
        shape: case.shape.clone(),
        flops,
        min_bytes,
        intensity: if min_bytes > 0 { flops as f64 / min_bytes as f64 } else { 0.0 },
        calls_per_trial: m.trials.last().map(|t| t.calls).unwrap_or(0),
        target_window_s: m.target_window_s,
        trial_seconds: m.trials.iter().map(|t| t.seconds).collect(),
        time_per_call_s: Spread::of(&times).unwrap_or(zero),
        gflops: Spread::of(&per_time(flops as f64)).unwrap_or(zero),
        gbps: Spread::of(&per_time(min_bytes as f64)).unwrap_or(zero),
        joules_per_call: from_j(&|j| j),
        gflop_per_j: from_j(&|j| flops as f64 / 1e9 / j),
        pj_per_flop: if flops > 0 { from_j(&|j| j / flops as f64 * 1e12) } else { None },
        avg_power_w: energy_ok.then(|| Spread::of(&power)).flatten(),
        energy: EnergyLabel {
            method,
            meter: meter.name.clone(),
            scope: m.trials.first().map(|t| t.window.scope.clone()).unwrap_or_else(|| meter.scope.clone()),
            resolution_j: meter.resolution_j,
            idle_subtracted_w: idle_w,
            too_short_trials: m.trials.iter().filter(|t| t.window.too_short).count(),
        },
        accuracy,
        notes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::executor::cpu_executor;
    use crate::inputs::CaseInputs;
    use crate::measure::fake::{FakeClock, FakeMeter};
    use crate::plan::{KernelKind, PlanFilter, ShapeSet};
    use joule_core::DType;

    #[test]
    fn a_tiny_real_run_checks_every_kernel_against_the_oracle_and_labels_the_energy() {
        let execs: Vec<Box<dyn Executor>> = vec![Box::new(cpu_executor())];
        let statuses: Vec<_> = execs.iter().map(|e| e.status()).collect();
        let filter = PlanFilter { dtypes: Some(vec![DType::F32, DType::BF16]), ..Default::default() };
        let plan = Plan::build(&[ShapeSet::Quick], &filter, &statuses).unwrap();
        // The kernels run for real; time and energy come from a fake clock and meter so the test is fast:
        // the fake clock only moves when the meter sleeps, so make every window "long" by a tiny window target.
        let clock = crate::measure::SystemClock::new();
        let fake = FakeClock::default();
        let mut meters = Meters { cpu: Box::new(FakeMeter::new(fake, 0.0, 0.001)), gpus: vec![], absent: vec![] };
        let cfg = RunConfig {
            loop_config: LoopConfig { warmup_s: 0.0, window_s: Some(0.01), trials: 2, ..Default::default() },
            quick: true,
            oracle_budget_macs: 1 << 22,
            ..Default::default()
        };
        let res = run_plan(&plan, &execs, &mut meters, &clock, &cfg, "test", MachineInfo::default(), &mut NoProgress)
            .unwrap();
        assert!(res.failures.is_empty(), "{:?}", res.failures);
        assert_eq!(res.rows.len(), plan.cases.len());
        for r in &res.rows {
            assert!(r.accuracy.pass, "{}: {:?}", r.id, r.accuracy.failure);
            assert!(r.time_per_call_s.p50 > 0.0 && r.gflops.p50 > 0.0);
            assert_eq!(r.energy.method, joule_energy::Method::Estimated);
            // The fake meter's clock never advanced: 0 J, so no energy figure is invented.
            assert!(r.joules_per_call.is_none() && r.gflop_per_j.is_none());
            assert!(r.notes.iter().any(|n| n.contains("--quick")));
        }
        let gemm = res.rows.iter().find(|r| r.kernel == KernelKind::Gemm).unwrap();
        assert!(gemm.accuracy.oracle_scope.starts_with("rows 0.."), "{}", gemm.accuracy.oracle_scope);
    }

    /// The CPU kernels pretending to run on GPU 0.
    struct OnGpu(crate::executor::HostExecutor<joule_cpu::CpuKernels>);
    impl Executor for OnGpu {
        fn name(&self) -> String {
            "fake-gpu".into()
        }
        fn unavailable_reason(&self) -> Option<String> {
            None
        }
        fn device(&self) -> DeviceRef {
            DeviceRef::Gpu(0)
        }
        fn description(&self) -> String {
            "test".into()
        }
        fn prepare(&self, case: &Case, inputs: &CaseInputs) -> Result<Box<dyn crate::executor::PreparedCase>> {
            self.0.prepare(case, inputs)
        }
    }

    #[test]
    fn a_backend_without_an_energy_meter_fails_its_cases_and_the_others_still_run() {
        let execs: Vec<Box<dyn Executor>> = vec![Box::new(cpu_executor()), Box::new(OnGpu(cpu_executor()))];
        let statuses: Vec<_> = execs.iter().map(|e| e.status()).collect();
        let filter = PlanFilter {
            kernels: Some(vec![KernelKind::Attention]),
            dtypes: Some(vec![DType::F32]),
            ..Default::default()
        };
        let plan = Plan::build(&[ShapeSet::Quick], &filter, &statuses).unwrap();
        assert_eq!(plan.cases.len(), 2);
        let clock = FakeClock::default();
        let mut meters =
            Meters { cpu: Box::new(FakeMeter::new(clock.clone(), 1.0, 0.001)), gpus: vec![], absent: vec![] };
        // The fake kernels do not advance the fake clock; a tiny max window keeps the loop short.
        let cfg = RunConfig {
            loop_config: LoopConfig { warmup_s: 0.0, max_calls_per_window: 2, ..Default::default() },
            ..Default::default()
        };
        let res = run_plan(
            &plan,
            &execs,
            &mut meters,
            &crate::measure::SystemClock::new(),
            &cfg,
            "",
            MachineInfo::default(),
            &mut NoProgress,
        )
        .unwrap();
        assert_eq!(res.rows.len(), 1);
        assert_eq!(res.rows[0].backend, "cpu");
        assert_eq!(res.failures.len(), 1);
        assert!(
            res.failures[0].id.ends_with("/fake-gpu") && res.failures[0].error.contains("no energy meter for GPU 0")
        );
        let _ = clock;
    }

    #[test]
    fn subtracting_idle_without_a_baseline_is_refused() {
        let execs: Vec<Box<dyn Executor>> = vec![Box::new(cpu_executor())];
        let statuses: Vec<_> = execs.iter().map(|e| e.status()).collect();
        let plan = Plan::build(&[ShapeSet::Quick], &PlanFilter::default(), &statuses).unwrap();
        let clock = FakeClock::default();
        let mut meters =
            Meters { cpu: Box::new(FakeMeter::new(clock.clone(), 1.0, 0.001)), gpus: vec![], absent: vec![] };
        let cfg = RunConfig { subtract_idle: true, ..Default::default() };
        let e = run_plan(&plan, &execs, &mut meters, &clock, &cfg, "", MachineInfo::default(), &mut NoProgress);
        assert!(e.unwrap_err().to_string().contains("--idle-baseline"));
    }

    #[test]
    fn subtracting_an_idle_baseline_is_refused_for_an_estimate_and_allowed_for_a_measurement() {
        let execs: Vec<Box<dyn Executor>> = vec![Box::new(cpu_executor())];
        let statuses: Vec<_> = execs.iter().map(|e| e.status()).collect();
        let filter = PlanFilter {
            kernels: Some(vec![KernelKind::Attention]),
            dtypes: Some(vec![DType::F32]),
            ..Default::default()
        };
        let plan = Plan::build(&[ShapeSet::Quick], &filter, &statuses).unwrap();
        // The fake kernels do not advance the fake clock; a tiny max window keeps the loop short.
        let cfg = RunConfig {
            loop_config: LoopConfig { warmup_s: 0.0, max_calls_per_window: 2, ..Default::default() },
            subtract_idle: true,
            idle_baseline_s: Some(1.0),
            ..Default::default()
        };
        for method in [joule_energy::Method::Estimated, joule_energy::Method::Rapl] {
            let clock = FakeClock::default();
            let mut meter = FakeMeter::new(clock.clone(), 1.0, 0.001);
            meter.info.method = method;
            let mut meters = Meters { cpu: Box::new(meter), gpus: vec![], absent: vec![] };
            let r = run_plan(&plan, &execs, &mut meters, &clock, &cfg, "", MachineInfo::default(), &mut NoProgress);
            match method {
                joule_energy::Method::Estimated => {
                    assert!(r.unwrap_err().to_string().contains("needs a measured baseline"))
                }
                _ => assert!(r.is_ok(), "{:?}", r.err()),
            }
        }
    }
}
