//! The formatter's units for every criterion `Throughput` variant, the batching helper on a simulated meter, and the
//! method label in everything a user sees.

use criterion::Throughput;
use criterion::measurement::{Measurement, ValueFormatter};
use joule_core::{Error, Result};
use joule_criterion::{BatchPolicy, Joules, JoulesFormatter, measure_batched, parse_min_window};
use joule_energy::{DeviceKind, EnergyWindow, Meter, MeterInfo, Method};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

// ---------------------------------------------------------------------------------------------------------------
// A simulated meter: the benchmarked closure advances a shared work counter; each call "costs" a fixed time and
// energy; the meter quantises energy to its resolution (floor, like a counter) and flags windows shorter than its
// update period. No real time or hardware is involved, so the tests are exact and fast.

struct Sim {
    calls: AtomicU64,
}

impl Sim {
    fn new() -> Arc<Sim> {
        Arc::new(Sim { calls: AtomicU64::new(0) })
    }
    fn call(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
    }
    fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }
}

struct FakeMeter {
    info: MeterInfo,
    sim: Arc<Sim>,
    joules_per_call: f64,
    seconds_per_call: f64,
    started_at: Option<u64>,
    windows: Arc<AtomicU64>,
}

impl FakeMeter {
    fn new(sim: Arc<Sim>, method: Method, joules_per_call: f64, seconds_per_call: f64) -> Self {
        FakeMeter {
            info: MeterInfo {
                name: "fake meter".into(),
                method,
                device: DeviceKind::Cpu,
                device_index: 0,
                scope: "simulated".into(),
                resolution_j: 0.01,
                update_period_s: 0.01,
            },
            sim,
            joules_per_call,
            seconds_per_call,
            started_at: None,
            windows: Arc::new(AtomicU64::new(0)),
        }
    }
}

impl Meter for FakeMeter {
    fn info(&self) -> &MeterInfo {
        &self.info
    }
    fn start(&mut self) -> Result<()> {
        self.started_at = Some(self.sim.calls());
        Ok(())
    }
    fn stop(&mut self) -> Result<EnergyWindow> {
        let start = self.started_at.take().ok_or_else(|| Error::InvalidArgument("stop without start".into()))?;
        self.windows.fetch_add(1, Ordering::Relaxed);
        let calls = (self.sim.calls() - start) as f64;
        let res = self.info.resolution_j;
        let seconds = calls * self.seconds_per_call;
        Ok(EnergyWindow {
            joules: (calls * self.joules_per_call / res).floor() * res,
            seconds,
            method: self.info.method,
            scope: self.info.scope.clone(),
            resolution_j: res,
            too_short: seconds < self.info.update_period_s,
            components: vec![],
            gpu_state: None,
            notes: vec![],
        })
    }
}

fn rel_err(got: f64, want: f64) -> f64 {
    ((got - want) / want).abs()
}

// ---------------------------------------------------------------------------------------------------------------
// Batching

#[test]
fn short_batches_are_repeated_inside_one_window_and_divided() {
    let sim = Sim::new();
    // 2 µJ and 10 µs per call; resolution 10 mJ: 10 calls alone read 0 J.
    let mut meter = FakeMeter::new(sim.clone(), Method::Rapl, 2e-6, 1e-5);
    let policy = BatchPolicy::for_meter(&meter.info);
    assert_eq!(policy.min_window_s, 1.0);
    let syncs = AtomicU64::new(0);
    let s = sim.clone();
    let r = measure_batched(
        &mut meter,
        &policy,
        || {
            syncs.fetch_add(1, Ordering::Relaxed);
            Ok(())
        },
        10,
        || s.call(),
    )
    .unwrap();
    assert!(r.joules > 0.0);
    assert!(r.repeats > 1, "{r:?}");
    assert!(rel_err(r.joules, 10.0 * 2e-6) < 0.01, "{} J for 10 calls", r.joules);
    assert!(rel_err(r.seconds, 10.0 * 1e-5) < 1e-9);
    // The accepted window satisfies the policy; the divided figure is per batch of `iters` calls.
    assert!(r.window.seconds >= 1.0 && r.window.joules >= 100.0 * 0.01 && !r.window.too_short);
    assert_eq!(r.window.joules / r.repeats as f64, r.joules);
    // 10 µs × 10 calls: the first window (100 µs) reads 0 J; the second (grown from its length to 1.2 s) has too few
    // resolution steps (0.24 J < 1 J); the third (5× more) is accepted.
    assert_eq!(r.windows, 3);
    assert_eq!(meter.windows.load(Ordering::Relaxed), 3);
    assert_eq!(syncs.load(Ordering::Relaxed), 2 * 3, "sync at both edges of every window");
    let second = (sim.calls() - 10 - 10 * r.repeats) / 10;
    assert!((11_990..=12_010).contains(&second), "second window: {second} repeats");
    assert!(r.repeats >= 5 * second, "third window ≥ 5× the second: {}", r.repeats);
}

#[test]
fn long_batches_are_measured_once() {
    let sim = Sim::new();
    let mut meter = FakeMeter::new(sim.clone(), Method::NvmlCounter, 2e-6, 1e-5);
    let policy = BatchPolicy::for_meter(&meter.info);
    let s = sim.clone();
    let r = measure_batched(&mut meter, &policy, || Ok(()), 600_000, || s.call()).unwrap();
    assert_eq!((r.repeats, r.windows), (1, 1));
    assert_eq!(sim.calls(), 600_000);
    assert!(rel_err(r.joules, 1.2) < 1e-9);
}

#[test]
fn zero_iterations_still_measure_one_call() {
    let sim = Sim::new();
    let mut meter = FakeMeter::new(sim.clone(), Method::Rapl, 1e-3, 1e-3);
    let policy = BatchPolicy::for_meter(&meter.info).with_min_window_s(0.5);
    let s = sim.clone();
    let r = measure_batched(&mut meter, &policy, || Ok(()), 0, || s.call()).unwrap();
    assert!(rel_err(r.joules, 1e-3) < 0.01, "{r:?}");
}

#[test]
fn a_meter_that_reads_nothing_is_an_error_never_zero_joules() {
    let sim = Sim::new();
    let mut meter = FakeMeter::new(sim.clone(), Method::Estimated, 0.0, 1e-5);
    let policy = BatchPolicy { max_repeats: 1_000_000, ..BatchPolicy::for_meter(&meter.info) };
    let s = sim.clone();
    let err = measure_batched(&mut meter, &policy, || Ok(()), 10, || s.call()).unwrap_err();
    assert!(matches!(err, Error::MeterUnavailable { meter: "estimated", .. }), "{err}");
    let windows = meter.windows.load(Ordering::Relaxed);
    assert!((2..=6).contains(&windows), "{windows} windows");
    assert!(sim.calls() <= 10 * (1 + 1_000_000 * 5), "bounded by max_repeats");
}

#[test]
fn errors_from_sync_and_invalid_policies_are_returned() {
    let sim = Sim::new();
    let mut meter = FakeMeter::new(sim.clone(), Method::Rapl, 1.0, 1.0);
    let policy = BatchPolicy::for_meter(&meter.info);
    let err = measure_batched(&mut meter, &policy, || Err(Error::CudaUnavailable("test".into())), 1, || sim.call());
    assert!(matches!(err, Err(Error::CudaUnavailable(_))));
    for bad in [
        policy.with_min_window_s(f64::NAN),
        policy.with_min_window_s(-1.0),
        BatchPolicy { max_repeats: 0, ..policy },
        BatchPolicy { min_resolution_multiple: f64::INFINITY, ..policy },
    ] {
        let r = measure_batched(&mut meter, &bad, || Ok(()), 1, || sim.call());
        assert!(matches!(r, Err(Error::InvalidArgument(_))), "{bad:?}");
    }
}

#[test]
fn min_window_override_parses_strictly() {
    assert_eq!(parse_min_window(None).unwrap(), None);
    assert_eq!(parse_min_window(Some("  ")).unwrap(), None);
    assert_eq!(parse_min_window(Some("0.25")).unwrap(), Some(0.25));
    for bad in ["-1", "abc", "inf", "NaN"] {
        assert!(parse_min_window(Some(bad)).is_err(), "{bad}");
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Formatter

fn scale(f: &JoulesFormatter, typical: f64, t: Option<&Throughput>, values: &[f64]) -> (Vec<f64>, &'static str) {
    let mut v = values.to_vec();
    let unit = match t {
        None => f.scale_values(typical, &mut v),
        Some(t) => f.scale_throughputs(typical, t, &mut v),
    };
    (v, unit)
}

fn close(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= 1e-9 * y.abs().max(1e-300))
}

#[test]
fn energy_units_follow_the_typical_value() {
    let f = JoulesFormatter::new(Method::Estimated);
    for (typical, unit, factor) in [
        (2500.0, "kJ (estimated)", 1e-3),
        (2.5, "J (estimated)", 1.0),
        (2.5e-3, "mJ (estimated)", 1e3),
        (2.5e-6, "µJ (estimated)", 1e6),
        (2.5e-9, "nJ (estimated)", 1e9),
        (0.0, "nJ (estimated)", 1e9),
    ] {
        let values = [typical, 2.0 * typical, 0.5 * typical];
        let (got, u) = scale(&f, typical, None, &values);
        assert_eq!(u, unit, "typical {typical}");
        assert!(close(&got, &values.map(|v| v * factor)), "{got:?}");
    }
    assert_eq!(f.format_value(3.21e-3).trim(), "3.2100 mJ (estimated)");
    let mut machine = [0.5, 1.5];
    assert_eq!(f.scale_for_machines(&mut machine), "J (estimated)");
    assert_eq!(machine, [0.5, 1.5], "machine values stay in joules");
}

#[test]
fn flop_per_joule_for_elements() {
    let f = JoulesFormatter::new(Method::Rapl);
    // 4 MFLOP per call at 2 mJ per call = 2 GFLOP/J; at 1 mJ = 4 GFLOP/J; at 4 mJ = 1 GFLOP/J.
    let t = Throughput::Elements(4_000_000);
    let (got, unit) = scale(&f, 2e-3, Some(&t), &[2e-3, 1e-3, 4e-3]);
    assert_eq!(unit, "GFLOP/J (rapl)");
    assert!(close(&got, &[2.0, 4.0, 1.0]), "{got:?}");
    for (j, unit, value) in [
        (1e-6, "TFLOP/J (rapl)", 4.0),
        (4e-3, "GFLOP/J (rapl)", 1.0),
        (1.0, "MFLOP/J (rapl)", 4.0),
        (1e3, "KFLOP/J (rapl)", 4.0),
        (1e6, "FLOP/J (rapl)", 4.0),
    ] {
        let (got, u) = scale(&f, j, Some(&t), &[j]);
        assert_eq!((u, got.len()), (unit, 1), "{j} J");
        assert!(close(&got, &[value]), "{j} J → {got:?} {u}");
    }
    assert_eq!(f.format_throughput(&t, 2e-3).trim(), "2.0000 GFLOP/J (rapl)");
}

#[test]
fn every_throughput_variant_is_work_per_joule() {
    let f = JoulesFormatter::new(Method::NvmlCounter);
    let cases = [
        // (throughput, joules per iteration, unit, scaled value)
        (Throughput::Elements(6_000_000_000), 2.0, "GFLOP/J (nvml-counter)", 3.0),
        (Throughput::ElementsAndBytes { elements: 6_000_000, bytes: 7 }, 2.0, "MFLOP/J (nvml-counter)", 3.0),
        (Throughput::Bytes(3 * 1024 * 1024 * 1024), 0.5, "GiB/J (nvml-counter)", 6.0),
        (Throughput::Bytes(3 * 1024 * 1024), 0.5, "MiB/J (nvml-counter)", 6.0),
        (Throughput::Bytes(3 * 1024), 0.5, "KiB/J (nvml-counter)", 6.0),
        (Throughput::Bytes(3), 0.5, "B/J (nvml-counter)", 6.0),
        (Throughput::BytesDecimal(3_000_000_000), 1.5, "GB/J (nvml-counter)", 2.0),
        (Throughput::BytesDecimal(3_000_000), 1.5, "MB/J (nvml-counter)", 2.0),
        (Throughput::BytesDecimal(3_000), 1.5, "KB/J (nvml-counter)", 2.0),
        (Throughput::BytesDecimal(3), 1.5, "B/J (nvml-counter)", 2.0),
        (Throughput::Bits(8_000_000_000), 4.0, "Gb/J (nvml-counter)", 2.0),
        (Throughput::Bits(8_000_000), 4.0, "Mb/J (nvml-counter)", 2.0),
        (Throughput::Bits(8_000), 4.0, "Kb/J (nvml-counter)", 2.0),
        (Throughput::Bits(8), 4.0, "b/J (nvml-counter)", 2.0),
    ];
    for (t, joules, unit, value) in cases {
        let (got, u) = scale(&f, joules, Some(&t), &[joules, 2.0 * joules]);
        assert_eq!(u, unit, "{t:?}");
        assert!(close(&got, &[value, value / 2.0]), "{t:?}: {got:?}");
    }
    // ElementsAndBytes counts the elements (FLOPs), never the bytes.
    let (a, ua) = scale(&f, 1e-3, Some(&Throughput::ElementsAndBytes { elements: 5_000, bytes: 1 << 40 }), &[1e-3]);
    let (b, ub) = scale(&f, 1e-3, Some(&Throughput::Elements(5_000)), &[1e-3]);
    assert_eq!((a, ua), (b, ub));
}

#[test]
fn zero_or_broken_energy_never_gives_nan_or_infinity() {
    let f = JoulesFormatter::new(Method::Estimated);
    for t in [Throughput::Elements(1 << 40), Throughput::Bytes(1), Throughput::Bits(u64::MAX)] {
        let (got, _) = scale(&f, 0.0, Some(&t), &[0.0, -1.0, 1e-300, 1.0]);
        assert!(got.iter().all(|v| v.is_finite()), "{t:?}: {got:?}");
        assert_eq!(&got[..2], &[0.0, 0.0]);
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The method label and the Measurement

#[test]
fn the_method_is_in_the_banner_and_every_unit() {
    for (method, word) in [
        (Method::Estimated, "NOT a measurement"),
        (Method::Rapl, "(measured)"),
        (Method::NvmlCounter, "(measured)"),
        (Method::NvmlPower, "(measured)"),
    ] {
        let joules = Joules::builder(Box::new(FakeMeter::new(Sim::new(), method, 1e-3, 1e-3))).build().unwrap();
        let banner = joules.banner();
        assert!(banner.contains(&format!("method = {method}")) && banner.contains(word), "{banner}");
        let label = format!("({method})");
        let fmt = Measurement::formatter(&joules);
        assert!(fmt.format_value(1e-3).ends_with(&label));
        assert!(fmt.format_throughput(&Throughput::Elements(1000), 1e-3).ends_with(&label));
        assert!(fmt.format_throughput(&Throughput::Bytes(1000), 1e-3).ends_with(&label));
        assert!(joules.summary().contains(method.as_str()));
    }
}

#[test]
fn measure_batches_through_the_measurement_and_counts() {
    let sim = Sim::new();
    let syncs = Arc::new(AtomicU64::new(0));
    let sc = syncs.clone();
    let joules = Joules::builder(Box::new(FakeMeter::new(sim.clone(), Method::Estimated, 1e-4, 1e-4)))
        .sync(move || {
            sc.fetch_add(1, Ordering::Relaxed);
            Ok(())
        })
        .build()
        .unwrap();
    let clone = joules.clone();
    let j = clone.measure(3, || sim.call());
    assert!(rel_err(j, 3e-4) < 0.01, "{j}");
    assert!(joules.summary().contains("1 batches") && joules.summary().contains("1 repeated"), "{}", joules.summary());
    assert_eq!(syncs.load(Ordering::Relaxed) % 2, 0);

    // Bencher::iter's path: start/end open and close one window without repeating; a short window is counted.
    let before = sim.calls();
    Measurement::start(&joules);
    for _ in 0..5 {
        sim.call();
    }
    let v = Measurement::end(&joules, ());
    assert_eq!(sim.calls() - before, 5);
    assert_eq!(v, 0.0, "5 calls = 0.5 mJ, below the 10 mJ resolution: exactly what a raw window reads");
    assert!(joules.summary().contains("1 too-short"), "{}", joules.summary());
    assert_eq!(Measurement::add(&joules, &1.5, &2.0), 3.5);
    assert_eq!(Measurement::zero(&joules), 0.0);
}

#[test]
fn invalid_policy_is_rejected_when_building() {
    let meter = FakeMeter::new(Sim::new(), Method::Rapl, 1.0, 1.0);
    let policy = BatchPolicy::for_meter(&meter.info).with_min_window_s(-3.0);
    assert!(matches!(Joules::builder(Box::new(meter)).policy(policy).build(), Err(Error::InvalidArgument(_))));
}

#[test]
fn cpu_meter_is_found_here() {
    // Never fails: RAPL where readable, else the estimate, labelled as such.
    let (joules, absent) = Joules::cpu(&Default::default()).unwrap();
    assert_eq!(joules.info().device, DeviceKind::Cpu);
    if joules.method() == Method::Estimated {
        assert!(joules.banner().contains("NOT a measurement"));
        assert!(absent.iter().any(|a| a.meter == "rapl"), "{absent:?}");
    }
}
