//! End-to-end tests of the harness on a tiny real run: results round trip, report, compare, bad input.

use joule_core::{DType, Error};
use joule_energy::{ComponentKind, DeviceKind, EnergyComponent, EnergyWindow, Meter, MeterInfo, Method};
use joule_harness::compare::{Verdict, compare};
use joule_harness::plan::{KernelKind, PlanFilter, ShapeSet};
use joule_harness::results::read_csv;
use joule_harness::{
    Executor, LoopConfig, MachineInfo, Meters, NoProgress, Plan, ResultsFile, RunConfig, Spread, SystemClock,
    cpu_executor, run_plan,
};
use std::time::Instant;

/// A meter that reports a constant power over real time (labelled `estimated`, as it is a model).
struct ConstantPower {
    info: MeterInfo,
    watts: f64,
    started: Option<Instant>,
}

impl ConstantPower {
    fn new(watts: f64) -> Self {
        let info = MeterInfo {
            name: "constant 20 W test meter".into(),
            method: Method::Estimated,
            device: DeviceKind::Cpu,
            device_index: 0,
            scope: "test".into(),
            resolution_j: 1e-6,
            update_period_s: 0.0,
        };
        ConstantPower { info, watts, started: None }
    }
}

impl Meter for ConstantPower {
    fn info(&self) -> &MeterInfo {
        &self.info
    }
    fn start(&mut self) -> joule_core::Result<()> {
        self.started = Some(Instant::now());
        Ok(())
    }
    fn stop(&mut self) -> joule_core::Result<EnergyWindow> {
        let seconds = self.started.take().ok_or(Error::InvalidArgument("not started".into()))?.elapsed().as_secs_f64();
        let joules = self.watts * seconds;
        Ok(EnergyWindow {
            joules,
            seconds,
            method: self.info.method,
            scope: self.info.scope.clone(),
            resolution_j: self.info.resolution_j,
            too_short: false,
            components: vec![EnergyComponent { name: "cpu".into(), kind: ComponentKind::Cpu, joules }],
            gpu_state: None,
            notes: vec![],
        })
    }
}

fn tiny_run() -> ResultsFile {
    let execs: Vec<Box<dyn Executor>> = vec![Box::new(cpu_executor())];
    let statuses: Vec<_> = execs.iter().map(|e| e.status()).collect();
    let filter = PlanFilter {
        kernels: Some(vec![KernelKind::Gemm, KernelKind::Attention]),
        dtypes: Some(vec![DType::F32, DType::BF16]),
        ..Default::default()
    };
    let plan = Plan::build(&[ShapeSet::Quick], &filter, &statuses).unwrap();
    let mut meters = Meters { cpu: Box::new(ConstantPower::new(20.0)), gpus: vec![], absent: vec![] };
    let cfg = RunConfig {
        loop_config: LoopConfig { warmup_s: 0.0, window_s: Some(0.02), trials: 3, ..Default::default() },
        idle_baseline_s: Some(0.01),
        ..Default::default()
    };
    let mut machine = MachineInfo::collect();
    machine.hostname = "test, \"host\"".into();
    run_plan(&plan, &execs, &mut meters, &SystemClock::new(), &cfg, "joule run (test)", machine, &mut NoProgress)
        .unwrap()
}

#[test]
fn a_tiny_run_has_energy_figures_consistent_with_the_meter_power() {
    let res = tiny_run();
    assert_eq!(res.rows.len(), 4);
    assert_eq!(res.idle_baselines.len(), 1, "the idle baseline is measured and reported");
    assert!(!res.settings.subtract_idle);
    for r in &res.rows {
        assert!(r.accuracy.pass, "{}: {:?}", r.id, r.accuracy.failure);
        let w = r.avg_power_w.unwrap();
        // The meter and the harness time the same window from slightly different instants.
        assert!((w.p50 - 20.0).abs() < 2.0, "{}: {w:?}", r.id);
        let j = r.joules_per_call.unwrap().p50;
        let expect = 20.0 * r.time_per_call_s.p50;
        assert!((j / expect - 1.0).abs() < 0.1, "{}: {j} J vs {expect} J", r.id);
        let gpj = r.gflop_per_j.unwrap().p50;
        assert!((gpj * r.pj_per_flop.unwrap().p50 - 1e3).abs() < 1e3 * 0.05, "GFLOP/J · pJ/FLOP = 1000");
        assert!(r.trial_seconds.iter().all(|&s| s >= 0.02));
        assert_eq!(r.energy.method, Method::Estimated);
    }
}

#[test]
fn results_round_trip_through_json_files_and_csv() {
    let res = tiny_run();
    let dir = tempfile::tempdir().unwrap();
    let (json, csv) = res.write(dir.path(), &res.file_stem()).unwrap();
    assert!(res.file_stem().contains("test___host_"), "{}", res.file_stem());
    let back = ResultsFile::load(&json).unwrap();
    assert_eq!(back, res);
    let rows = read_csv(&std::fs::read_to_string(&csv).unwrap()).unwrap();
    assert_eq!(rows.len(), res.rows.len());
    for (c, r) in rows.iter().zip(&res.rows) {
        assert_eq!(*c, joule_harness::results::CsvRow::from(r));
        assert_eq!(c.energy_method, "estimated");
    }
    // No temporary file is left behind.
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

#[test]
fn the_report_is_built_from_the_results_file_alone() {
    let res = tiny_run();
    let dir = tempfile::tempdir().unwrap();
    let (json, _) = res.write(dir.path(), "r").unwrap();
    let loaded = ResultsFile::load(&json).unwrap();
    let carbon = joule_energy::carbon::lookup(&Default::default());
    let files = joule_harness::report::write_report(&loaded, &dir.path().join("r"), &carbon, "../r.json").unwrap();
    let md = std::fs::read_to_string(&files.markdown).unwrap();
    for r in &res.rows {
        assert!(md.contains(&r.shape.name), "{}", r.shape.name);
    }
    assert!(md.contains("Energy here is `estimated`, not measured"));
    assert!(md.contains("f32 baseline → f16 / bf16"));
    assert!(md.contains("world average"), "the default carbon intensity is labelled");
    assert!(md.contains("Idle baseline") && md.contains("reported only, not subtracted"));
    assert_eq!(files.charts.len(), 3);
    for c in &files.charts {
        let svg = std::fs::read_to_string(c).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("<text") && svg.trim_end().ends_with("</svg>"), "{c:?}");
    }
    let bars = std::fs::read_to_string(&files.charts[0]).unwrap();
    assert!(bars.contains("gemm · bert-base.ffn-up.t16-scaled"));
}

#[test]
fn compare_marks_overlapping_bands_as_noise_and_separated_ones_as_changes() {
    let mut a = tiny_run();
    let same = compare(&a, &a);
    assert!(same.cases.iter().all(|c| c.time_per_call_s.verdict == Verdict::WithinNoise));
    // Pin case 0's bands so the verdicts below do not depend on how noisy this machine was.
    let pinned = Spread { p10: 1.0, p50: 1.1, p90: 1.2 };
    a.rows[0].time_per_call_s = pinned;
    a.rows[0].joules_per_call = Some(pinned);
    let mut b = a.clone();
    let halve = |s: Spread| Spread { p10: s.p10 * 0.5, p50: s.p50 * 0.5, p90: s.p90 * 0.5 };
    b.rows[0].time_per_call_s = halve(pinned);
    b.rows[0].joules_per_call = Some(halve(pinned));
    // Case 2: the median moved 10 % but the bands overlap.
    b.rows[2].time_per_call_s = Spread { p10: a.rows[2].time_per_call_s.p90, ..a.rows[2].time_per_call_s };
    b.rows[2].time_per_call_s.p50 = a.rows[2].time_per_call_s.p50 * 1.1;
    // Case 1 measured with a different method: energy not compared.
    b.rows[1].energy.method = Method::Rapl;
    let removed = b.rows.pop().unwrap();
    let c = compare(&a, &b);
    assert_eq!(c.cases[0].time_per_call_s.verdict, Verdict::Better);
    assert_eq!(c.cases[0].joules_per_call.as_ref().unwrap().verdict, Verdict::Better);
    assert_eq!(c.cases[2].time_per_call_s.verdict, Verdict::WithinNoise);
    assert!((c.cases[0].time_per_call_s.change + 0.5).abs() < 1e-9);
    assert!(c.cases[1].joules_per_call.is_none());
    assert!(c.notes.iter().any(|n| n.contains("methods differ")));
    assert_eq!(c.only_in_a, vec![removed.id]);
    let text = c.render();
    assert!(text.contains("1 better, 0 worse, 2 within noise"), "{text}");
}

#[test]
fn missing_corrupt_foreign_and_future_files_give_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.json");
    let e = ResultsFile::load(&missing).unwrap_err();
    assert!(matches!(e, Error::Io { .. }) && e.to_string().contains("nope.json"), "{e}");

    let corrupt = dir.path().join("corrupt.json");
    std::fs::write(&corrupt, "{\"schema_version\": 1, \"rows\": [").unwrap();
    let e = ResultsFile::load(&corrupt).unwrap_err();
    assert!(matches!(e, Error::Parse { .. }) && e.to_string().contains("corrupt.json"), "{e}");

    let foreign = dir.path().join("foreign.json");
    std::fs::write(&foreign, "{\"hello\": 1}").unwrap();
    assert!(ResultsFile::load(&foreign).unwrap_err().to_string().contains("not a Joule results file"));

    let mut v: serde_json::Value = serde_json::from_str(&tiny_run().to_json().unwrap()).unwrap();
    v["schema_version"] = 99.into();
    let future = dir.path().join("future.json");
    std::fs::write(&future, v.to_string()).unwrap();
    let e = ResultsFile::load(&future).unwrap_err();
    assert!(matches!(e, Error::Unsupported(_)) && e.to_string().contains("schema version 99"), "{e}");

    v["schema_version"] = 1.into();
    v["rows"][0]["kernel"] = "conv3d".into();
    let wrong = dir.path().join("wrong.json");
    std::fs::write(&wrong, v.to_string()).unwrap();
    assert!(ResultsFile::load(&wrong).unwrap_err().to_string().contains("conv3d"));
}
