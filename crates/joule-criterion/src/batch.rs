//! Batching calls into energy windows long enough for the meter.
//!
//! A meter resolves energy in steps (`MeterInfo::resolution_j`) and updates at a finite rate
//! (`MeterInfo::update_period_s`): a window of a few microseconds reads 0 J or one whole step, whatever the work.
//! [`measure_batched`] therefore runs the closure `iters` times inside one window and, when that window is shorter
//! than the policy's minimum (or its energy is below the policy's multiple of the resolution, or the meter flags it
//! too short), runs the whole batch `repeats` times inside a new, longer window and divides that window's energy by
//! `repeats`. A batch never reads as 0 J: if even the longest window allowed reads 0 J, the result is an error.

use joule_core::{Error, Result};
use joule_energy::{EnergyWindow, Meter, MeterInfo};

/// When a window is long enough, and how far [`measure_batched`] may stretch one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchPolicy {
    /// Shortest window accepted, seconds.
    pub min_window_s: f64,
    /// Smallest energy accepted, as a multiple of the meter's resolution (100 keeps quantisation within 1 %).
    pub min_resolution_multiple: f64,
    /// Most repeats of one batch inside one window.
    pub max_repeats: u64,
    /// Most retries with a longer window after the first repeated window is still too short.
    pub max_retries: u32,
}

impl BatchPolicy {
    /// The default for a meter: its own minimum window ([`MeterInfo::min_window_s`]: at least 1 s and 50 update
    /// periods), at least 100 resolution steps, up to 10⁹ repeats and 4 retries.
    pub fn for_meter(info: &MeterInfo) -> Self {
        BatchPolicy {
            min_window_s: info.min_window_s(),
            min_resolution_multiple: 100.0,
            max_repeats: 1_000_000_000,
            max_retries: 4,
        }
    }

    /// The same policy with another minimum window (e.g. from `JOULE_BENCH_MIN_WINDOW_S`). A shorter window than the
    /// meter's own minimum makes the quantisation of its edges a larger share of the reading.
    pub fn with_min_window_s(mut self, seconds: f64) -> Self {
        self.min_window_s = seconds;
        self
    }

    /// Rejects a policy that cannot work (negative or non-finite limits, zero repeats).
    pub fn validate(&self) -> Result<()> {
        if !(self.min_window_s.is_finite() && self.min_window_s >= 0.0) {
            return Err(Error::InvalidArgument(format!("min_window_s = {} must be finite and ≥ 0", self.min_window_s)));
        }
        if !(self.min_resolution_multiple.is_finite() && self.min_resolution_multiple >= 0.0) {
            return Err(Error::InvalidArgument(format!(
                "min_resolution_multiple = {} must be finite and ≥ 0",
                self.min_resolution_multiple
            )));
        }
        if self.max_repeats == 0 {
            return Err(Error::InvalidArgument("max_repeats must be at least 1".into()));
        }
        Ok(())
    }

    /// Whether a window satisfies the policy: long enough, enough resolution steps, not flagged too short, and a
    /// positive, finite energy.
    pub fn accepts(&self, w: &EnergyWindow) -> bool {
        w.joules > 0.0
            && w.joules.is_finite()
            && !w.too_short
            && w.seconds >= self.min_window_s
            && w.joules >= self.min_resolution_multiple * w.resolution_j
    }

    /// Repeats that should bring a window like `w` (of `current` repeats) up to the policy, with 20 % margin: at
    /// least twice `current` (a window can be too short for a reason the duration does not show), at most
    /// `max_repeats`.
    fn next_repeats(&self, w: &EnergyWindow, current: u64) -> u64 {
        let mut factor: f64 = 2.0;
        if w.seconds > 0.0 && w.seconds.is_finite() {
            factor = factor.max(1.2 * self.min_window_s / w.seconds);
        }
        if w.joules > 0.0 && w.joules.is_finite() && w.resolution_j > 0.0 {
            factor = factor.max(1.2 * self.min_resolution_multiple * w.resolution_j / w.joules);
        }
        let next = (current as f64 * factor).ceil();
        if next >= self.max_repeats as f64 { self.max_repeats } else { next as u64 }
    }
}

/// The energy of one batch of `iters` calls, as [`measure_batched`] obtained it.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchedEnergy {
    /// Energy of `iters` calls, joules: the accepted window's energy divided by `repeats`. Positive and finite.
    pub joules: f64,
    /// Wall-clock seconds of `iters` calls (the accepted window's length divided by `repeats`).
    pub seconds: f64,
    /// How many times the batch ran inside the accepted window (1 when the first window was long enough).
    pub repeats: u64,
    /// Windows opened in all, including the ones rejected as too short.
    pub windows: u32,
    /// The accepted window itself (method, scope, resolution, notes), for `repeats` batches.
    pub window: EnergyWindow,
}

/// Runs `f` `iters` times inside one energy window of `meter`, calling `sync` right before the window opens and right
/// before it closes (a GPU stream synchronisation, so the window holds exactly the work launched inside it; a no-op
/// on the CPU).
///
/// When the window does not satisfy `policy` ([`BatchPolicy::accepts`]: too short for the meter, too few resolution
/// steps, flagged `too_short` or 0 J), the batch of `iters` calls is repeated `repeats` times inside one new window
/// and the result is that window's energy divided by `repeats`; `repeats` grows (from the measured window length)
/// until a window is accepted. So a short call never reads as 0 J: it is measured over enough repetitions and
/// divided. Fails with [`Error::MeterUnavailable`] when no window within `policy.max_repeats` / `max_retries` is
/// accepted (e.g. a meter that always reads 0 J), and with the meter's or `sync`'s error when they fail.
pub fn measure_batched<M, S, F>(
    meter: &mut M,
    policy: &BatchPolicy,
    mut sync: S,
    iters: u64,
    mut f: F,
) -> Result<BatchedEnergy>
where
    M: Meter + ?Sized,
    S: FnMut() -> Result<()>,
    F: FnMut(),
{
    policy.validate()?;
    let iters = iters.max(1);
    let mut window = |repeats: u64| -> Result<EnergyWindow> {
        sync()?;
        meter.start()?;
        for _ in 0..repeats {
            for _ in 0..iters {
                f();
            }
        }
        sync()?;
        meter.stop()
    };
    let mut repeats = 1u64;
    let mut windows = 0u32;
    let mut last = None;
    for _ in 0..policy.max_retries.saturating_add(2) {
        let w = window(repeats)?;
        windows += 1;
        if policy.accepts(&w) {
            let r = repeats as f64;
            return Ok(BatchedEnergy { joules: w.joules / r, seconds: w.seconds / r, repeats, windows, window: w });
        }
        if repeats >= policy.max_repeats {
            last = Some(w);
            break;
        }
        repeats = policy.next_repeats(&w, repeats);
        last = Some(w);
    }
    let (method, last) = match last {
        Some(w) => (w.method.as_str(), format!("{:.3e} J in {:.3e} s", w.joules, w.seconds)),
        None => (meter.info().method.as_str(), "none".to_owned()),
    };
    Err(Error::MeterUnavailable {
        meter: method,
        reason: format!(
            "no energy window accepted after {windows} windows (last: {repeats} × {iters} calls, {last}; wanted \
             ≥ {} s, ≥ {} × the resolution, > 0 J)",
            policy.min_window_s, policy.min_resolution_multiple
        ),
        hint: Some(format!(
            "a meter that reads 0 J over {} repeats is not counting; JOULE_BENCH_MIN_WINDOW_S changes the minimum window",
            policy.max_repeats
        )),
    })
}
