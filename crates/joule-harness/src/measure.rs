//! The measuring loop: warm up, calibrate, then several trials, each one energy window holding many calls.
//!
//! ```text
//! warm-up: call once at a time until `warmup_s` has passed (at least `min_warmup_calls`); per-call time ≈ the
//!          mean of the calls after the first (the first one pays for page faults, thread start-up, JIT, ...)
//! calls  = ceil(1.1 · target_window / per-call time)   (at least 1, at most `max_calls_per_window`)
//! trial:   [device synchronised] meter.start() · run(calls) [ends synchronised] · meter.stop()
//!          a window that came out shorter than the target is rescaled and measured again (up to `max_retries`)
//! ```
//! The target window is the meter's [`MeterInfo::min_window_s`] — max(1 s, 50 × its update period), so the
//! quantisation at the two edges stays within about 2 % — unless the caller asks for a window (`--window`,
//! `--quick`); a window shorter than the meter's minimum is allowed but recorded in the notes.
//!
//! Time comes from a [`Clock`], so the loop is tested with a fake clock that the fake kernel advances.

use crate::executor::PreparedCase;
use crate::stats::Spread;
use joule_core::{Error, Result};
use joule_energy::{EnergyWindow, Meter, MeterInfo, Method};
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// A source of time.
pub trait Clock {
    /// Seconds since an arbitrary origin (monotonic).
    fn now_s(&self) -> f64;
    /// Waits `seconds`.
    fn sleep_s(&self, seconds: f64);
}

/// The real, monotonic clock.
#[derive(Debug, Clone, Copy)]
pub struct SystemClock {
    origin: Instant,
}

impl SystemClock {
    /// A clock starting now.
    pub fn new() -> Self {
        SystemClock { origin: Instant::now() }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn now_s(&self) -> f64 {
        self.origin.elapsed().as_secs_f64()
    }
    fn sleep_s(&self, seconds: f64) {
        if seconds > 0.0 && seconds.is_finite() {
            std::thread::sleep(Duration::from_secs_f64(seconds));
        }
    }
}

/// Settings of the loop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoopConfig {
    /// Warm-up time before calibration, seconds.
    pub warmup_s: f64,
    /// Warm-up calls at least.
    pub min_warmup_calls: usize,
    /// Energy window per trial, seconds; `None` = the meter's minimum window.
    pub window_s: Option<f64>,
    /// Trials (windows) per case.
    pub trials: usize,
    /// Upper bound on calls in one window.
    pub max_calls_per_window: usize,
    /// How often a too-short window is rescaled and measured again.
    pub max_retries: usize,
}

impl Default for LoopConfig {
    fn default() -> Self {
        LoopConfig {
            warmup_s: 0.25,
            min_warmup_calls: 2,
            window_s: None,
            trials: 3,
            max_calls_per_window: 10_000_000,
            max_retries: 3,
        }
    }
}

impl LoopConfig {
    /// The window to aim for with `meter`, and a note when it is shorter than the meter's minimum.
    pub fn target_window(&self, meter: &MeterInfo) -> (f64, Option<String>) {
        let recommended = meter.min_window_s();
        match self.window_s {
            Some(w) if w < recommended => (
                w,
                Some(format!(
                    "window shortened to {w} s, below the {recommended} s this meter needs for a precise reading \
                     (max(1 s, 50 × update period)): energy figures are less precise"
                )),
            ),
            Some(w) => (w, None),
            None => (recommended, None),
        }
    }
}

/// One energy window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trial {
    /// Calls inside the window.
    pub calls: usize,
    /// Wall time of the calls, seconds (the harness's clock, from just after `start` to just before `stop`).
    pub seconds: f64,
    /// What the meter saw.
    pub window: EnergyWindow,
}

impl Trial {
    /// Seconds per call.
    pub fn time_per_call_s(&self) -> f64 {
        self.seconds / self.calls.max(1) as f64
    }
    /// Joules per call (with `idle_w` watts subtracted over the window when given).
    pub fn joules_per_call(&self, idle_w: Option<f64>) -> f64 {
        let j = self.window.joules - idle_w.unwrap_or(0.0) * self.seconds;
        j / self.calls.max(1) as f64
    }
}

/// Everything the loop measured for one case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    /// The window aimed for, seconds.
    pub target_window_s: f64,
    /// Warm-up calls made.
    pub warmup_calls: usize,
    /// Per-call time estimated by the warm-up, seconds.
    pub warmup_time_per_call_s: f64,
    /// The trials, in order.
    pub trials: Vec<Trial>,
    /// Anything a reader should know (shortened windows, retries, flagged windows).
    pub notes: Vec<String>,
}

impl Measurement {
    /// Time per call over the trials.
    pub fn time_per_call(&self) -> Option<Spread> {
        Spread::of(&self.trials.iter().map(Trial::time_per_call_s).collect::<Vec<_>>())
    }
}

fn calls_for(target_s: f64, per_call_s: f64, max: usize) -> usize {
    if per_call_s <= 0.0 || !per_call_s.is_finite() {
        return max.max(1);
    }
    let n = (1.1 * target_s / per_call_s).ceil();
    if n.is_finite() { (n as usize).clamp(1, max.max(1)) } else { max.max(1) }
}

/// Measures one prepared case with `meter` (see the module docs for the loop).
pub fn measure(
    case: &mut dyn PreparedCase,
    meter: &mut dyn Meter,
    clock: &dyn Clock,
    cfg: &LoopConfig,
) -> Result<Measurement> {
    if cfg.trials == 0 {
        return Err(Error::InvalidArgument("trials must be at least 1".into()));
    }
    let (target, note) = cfg.target_window(meter.info());
    let mut notes: Vec<String> = note.into_iter().collect();

    // Warm-up and calibration.
    let t0 = clock.now_s();
    let mut warmup_calls = 0usize;
    let mut after_first = 0.0;
    loop {
        let s = clock.now_s();
        case.run(1)?;
        let e = clock.now_s();
        if warmup_calls > 0 {
            after_first += e - s;
        }
        warmup_calls += 1;
        if warmup_calls >= cfg.min_warmup_calls.max(1) && e - t0 >= cfg.warmup_s {
            break;
        }
    }
    let per_call = if warmup_calls > 1 { after_first / (warmup_calls - 1) as f64 } else { clock.now_s() - t0 };
    let mut calls = calls_for(target, per_call, cfg.max_calls_per_window);

    let mut trials = Vec::with_capacity(cfg.trials);
    let mut retries = 0usize;
    while trials.len() < cfg.trials {
        meter.start()?;
        let s = clock.now_s();
        case.run(calls)?;
        let seconds = clock.now_s() - s;
        let window = meter.stop()?;
        if seconds.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
            return Err(Error::InvalidArgument(format!(
                "a window of {calls} calls took {seconds} s: the clock did not advance"
            )));
        }
        if seconds < target && calls < cfg.max_calls_per_window && retries < cfg.max_retries {
            // The warm-up estimate was optimistic (turbo, caches): rescale and measure this trial again.
            retries += 1;
            calls = calls_for(target, seconds / calls as f64, cfg.max_calls_per_window).max(calls + 1);
            continue;
        }
        if seconds < target {
            notes.push(format!("trial {}: window {seconds:.3} s shorter than the {target} s target", trials.len()));
        }
        if window.too_short {
            notes.push(format!("trial {}: the meter flagged its window as too short", trials.len()));
        }
        for n in &window.notes {
            if !notes.contains(n) {
                notes.push(n.clone());
            }
        }
        trials.push(Trial { calls, seconds, window });
    }
    if retries > 0 {
        notes.push(format!("{retries} window(s) re-measured with more calls after coming out shorter than the target"));
    }
    Ok(Measurement { target_window_s: target, warmup_calls, warmup_time_per_call_s: per_call, trials, notes })
}

/// Energy the device draws doing nothing, measured explicitly and reported separately.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdleBaseline {
    /// The meter's name.
    pub meter: String,
    /// How the energy was obtained.
    pub method: Method,
    /// What the meter covers.
    pub scope: String,
    /// Length of the idle window, seconds.
    pub seconds: f64,
    /// Energy over the window, joules.
    pub joules: f64,
    /// Average idle power, W.
    pub watts: f64,
    /// The meter's notes.
    pub notes: Vec<String>,
}

/// Measures `seconds` of idleness with `meter` (the caller makes sure nothing of its own runs meanwhile).
pub fn measure_idle(meter: &mut dyn Meter, clock: &dyn Clock, seconds: f64) -> Result<IdleBaseline> {
    if !seconds.is_finite() || seconds <= 0.0 {
        return Err(Error::InvalidArgument(format!("idle baseline length must be positive, got {seconds} s")));
    }
    meter.start()?;
    let s = clock.now_s();
    clock.sleep_s(seconds);
    let elapsed = clock.now_s() - s;
    let w = meter.stop()?;
    let secs = if elapsed > 0.0 { elapsed } else { w.seconds };
    let watts = if secs > 0.0 { w.joules / secs } else { 0.0 };
    Ok(IdleBaseline {
        meter: meter.info().name.clone(),
        method: w.method,
        scope: w.scope,
        seconds: secs,
        joules: w.joules,
        watts,
        notes: w.notes,
    })
}

#[cfg(test)]
pub(crate) mod fake {
    //! A fake clock, a fake kernel that advances it, and a fake meter that reads it.
    use super::*;
    use joule_energy::{ComponentKind, DeviceKind, EnergyComponent};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// A clock that moves only when told to (nanosecond ticks).
    #[derive(Debug, Clone, Default)]
    pub struct FakeClock(pub Arc<AtomicU64>);

    impl FakeClock {
        pub fn advance(&self, s: f64) {
            self.0.fetch_add((s * 1e9).round() as u64, Ordering::SeqCst);
        }
    }

    impl Clock for FakeClock {
        fn now_s(&self) -> f64 {
            self.0.load(Ordering::SeqCst) as f64 * 1e-9
        }
        fn sleep_s(&self, seconds: f64) {
            self.advance(seconds);
        }
    }

    /// A kernel whose first call costs `first_s` and every later call `per_call_s` of fake time.
    pub struct FakeKernel {
        pub clock: FakeClock,
        pub first_s: f64,
        pub per_call_s: f64,
        pub calls: usize,
    }

    impl PreparedCase for FakeKernel {
        fn run(&mut self, iters: usize) -> Result<()> {
            for _ in 0..iters {
                self.clock.advance(if self.calls == 0 { self.first_s } else { self.per_call_s });
                self.calls += 1;
            }
            Ok(())
        }
        fn output_f64(&mut self) -> Result<Vec<f64>> {
            Ok(vec![1.0])
        }
    }

    /// A meter drawing a constant `watts` on the fake clock.
    pub struct FakeMeter {
        pub info: MeterInfo,
        pub clock: FakeClock,
        pub watts: f64,
        pub started: Option<f64>,
        pub windows: usize,
    }

    impl FakeMeter {
        pub fn new(clock: FakeClock, watts: f64, update_period_s: f64) -> Self {
            let info = MeterInfo {
                name: "fake".into(),
                method: Method::Estimated,
                device: DeviceKind::Cpu,
                device_index: 0,
                scope: "fake package".into(),
                resolution_j: 1e-3,
                update_period_s,
            };
            FakeMeter { info, clock, watts, started: None, windows: 0 }
        }
    }

    impl Meter for FakeMeter {
        fn info(&self) -> &MeterInfo {
            &self.info
        }
        fn start(&mut self) -> Result<()> {
            self.started = Some(self.clock.now_s());
            Ok(())
        }
        fn stop(&mut self) -> Result<EnergyWindow> {
            let s = self.started.take().ok_or_else(|| Error::InvalidArgument("stop without start".into()))?;
            let seconds = self.clock.now_s() - s;
            self.windows += 1;
            let joules = self.watts * seconds;
            Ok(EnergyWindow {
                joules,
                seconds,
                method: self.info.method,
                scope: self.info.scope.clone(),
                resolution_j: self.info.resolution_j,
                too_short: seconds < self.info.update_period_s,
                components: vec![EnergyComponent { name: "cpu".into(), kind: ComponentKind::Cpu, joules }],
                gpu_state: None,
                notes: vec![],
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fake::*;
    use super::*;

    #[test]
    fn windows_reach_the_meter_minimum_and_energy_per_call_follows_the_power() {
        let clock = FakeClock::default();
        let mut k = FakeKernel { clock: clock.clone(), first_s: 0.5, per_call_s: 0.003, calls: 0 };
        // Update period 0.1 s: the minimum window is max(1 s, 50 × 0.1 s) = 5 s.
        let mut meter = FakeMeter::new(clock.clone(), 40.0, 0.1);
        let cfg = LoopConfig { trials: 4, ..Default::default() };
        let m = measure(&mut k, &mut meter, &clock, &cfg).unwrap();
        assert_eq!(m.target_window_s, 5.0);
        assert_eq!(m.trials.len(), 4);
        assert_eq!(meter.windows, 4, "no retries were needed: the warm-up skipped the slow first call");
        assert!((m.warmup_time_per_call_s - 0.003).abs() < 1e-9);
        for t in &m.trials {
            assert!(t.seconds >= 5.0 && t.seconds < 5.6, "{}", t.seconds);
            assert!((t.time_per_call_s() - 0.003).abs() < 1e-9);
            assert!((t.joules_per_call(None) - 0.12).abs() < 1e-9, "40 W × 3 ms");
            assert!((t.joules_per_call(Some(10.0)) - 0.09).abs() < 1e-9, "(40 − 10) W × 3 ms");
        }
        assert!(m.notes.is_empty(), "{:?}", m.notes);
    }

    #[test]
    fn a_too_optimistic_calibration_is_measured_again_with_more_calls() {
        let clock = FakeClock::default();
        // The warm-up calls are 10× slower than the steady state (cold caches, clocks ramping up), so the first
        // calibrated window comes out far too short.
        struct Slowing(FakeKernel);
        impl PreparedCase for Slowing {
            fn run(&mut self, iters: usize) -> Result<()> {
                for _ in 0..iters {
                    let d = if self.0.calls < 3 { 0.01 } else { 0.001 };
                    self.0.clock.advance(d);
                    self.0.calls += 1;
                }
                Ok(())
            }
            fn output_f64(&mut self) -> Result<Vec<f64>> {
                Ok(vec![])
            }
        }
        let mut k = Slowing(FakeKernel { clock: clock.clone(), first_s: 0.0, per_call_s: 0.0, calls: 0 });
        let mut meter = FakeMeter::new(clock.clone(), 10.0, 0.001);
        let cfg = LoopConfig { warmup_s: 0.0, min_warmup_calls: 3, trials: 2, ..Default::default() };
        let m = measure(&mut k, &mut meter, &clock, &cfg).unwrap();
        assert_eq!(m.target_window_s, 1.0);
        assert!(m.trials.iter().all(|t| t.seconds >= 1.0));
        assert_eq!(meter.windows, 3, "one window was too short and measured again");
        assert!(m.notes.iter().any(|n| n.contains("re-measured")));
    }

    #[test]
    fn a_shortened_window_is_allowed_but_noted() {
        let clock = FakeClock::default();
        let mut k = FakeKernel { clock: clock.clone(), first_s: 0.001, per_call_s: 0.001, calls: 0 };
        let mut meter = FakeMeter::new(clock.clone(), 10.0, 0.001);
        let cfg = LoopConfig { window_s: Some(0.05), warmup_s: 0.01, trials: 2, ..Default::default() };
        let m = measure(&mut k, &mut meter, &clock, &cfg).unwrap();
        assert_eq!(m.target_window_s, 0.05);
        assert!(m.trials.iter().all(|t| t.seconds >= 0.05 && t.seconds < 0.07));
        assert!(m.notes[0].contains("window shortened"), "{:?}", m.notes);
    }

    #[test]
    fn one_call_longer_than_the_window_gives_one_call_per_window() {
        let clock = FakeClock::default();
        let mut k = FakeKernel { clock: clock.clone(), first_s: 3.0, per_call_s: 3.0, calls: 0 };
        let mut meter = FakeMeter::new(clock.clone(), 10.0, 0.001);
        let m = measure(&mut k, &mut meter, &clock, &LoopConfig::default()).unwrap();
        assert!(m.trials.iter().all(|t| t.calls == 1 && (t.seconds - 3.0).abs() < 1e-9));
    }

    #[test]
    fn zero_trials_and_a_stopped_clock_are_errors_not_panics() {
        let clock = FakeClock::default();
        let mut k = FakeKernel { clock: clock.clone(), first_s: 0.0, per_call_s: 0.0, calls: 0 };
        let mut meter = FakeMeter::new(clock.clone(), 10.0, 0.001);
        let cfg = LoopConfig { trials: 0, ..Default::default() };
        assert!(measure(&mut k, &mut meter, &clock, &cfg).is_err());
        let cfg = LoopConfig { warmup_s: 0.0, max_calls_per_window: 10, ..Default::default() };
        assert!(measure(&mut k, &mut meter, &clock, &cfg).unwrap_err().to_string().contains("did not advance"));
    }

    #[test]
    fn the_idle_baseline_reads_the_meter_over_a_sleep() {
        let clock = FakeClock::default();
        let mut meter = FakeMeter::new(clock.clone(), 7.5, 0.001);
        let idle = measure_idle(&mut meter, &clock, 2.0).unwrap();
        assert!(
            (idle.seconds - 2.0).abs() < 1e-9 && (idle.joules - 15.0).abs() < 1e-9 && (idle.watts - 7.5).abs() < 1e-9
        );
        assert!(measure_idle(&mut meter, &clock, 0.0).is_err());
    }
}
