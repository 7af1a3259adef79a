//! [`Joules`]: criterion's `Measurement` whose value is energy, read from a `joule-energy` meter.

use crate::batch::{BatchPolicy, BatchedEnergy, measure_batched};
use crate::format::JoulesFormatter;
use criterion::measurement::{Measurement, ValueFormatter};
use joule_core::{Error, Result};
use joule_energy::{AbsentMeter, DeviceKind, Meter, MeterConfig, MeterInfo, Method, select_meters};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Once};

/// Environment variable overriding the minimum energy window, seconds (default: the meter's own minimum).
pub const MIN_WINDOW_ENV: &str = "JOULE_BENCH_MIN_WINDOW_S";

/// A device synchronisation run at both edges of every energy window (e.g. a CUDA stream's `synchronize`).
pub type SyncFn = Box<dyn Fn() -> Result<()> + Send + Sync>;

/// criterion's [`Measurement`] in joules per iteration, from one `joule-energy` [`Meter`].
///
/// Cheap to clone (the meter is shared): give one clone to criterion (`Criterion::default().with_measurement(..)`)
/// and keep one for the benchmark closures, which should measure through [`Joules::measure`] inside
/// `Bencher::iter_custom`, so that short calls are batched into windows long enough for the meter (see
/// [`measure_batched`]). Plain `Bencher::iter` also works ([`Measurement::start`]/[`Measurement::end`] open and close
/// a window), but criterion's small samples then give windows far below the meter's resolution: a warning is printed
/// the first time that happens.
///
/// The method (`nvml-counter`, `nvml-power`, `rapl`, `estimated`) is printed once, on first use ([`Joules::banner`]),
/// and is part of every unit criterion prints (`3.2 mJ (estimated)`, `4.1 GFLOP/J (estimated)`).
///
/// # Panics
///
/// criterion's measurement hooks cannot return errors. If a meter that opened fine later fails to start or stop, or
/// no window is ever accepted (a meter that reads 0 J), [`Measurement::end`] and [`Joules::measure`] panic with the
/// meter's error rather than hand criterion an invented number. [`Joules::try_measure`] returns the error instead.
#[derive(Clone)]
pub struct Joules {
    inner: Arc<Inner>,
}

struct Inner {
    meter: Mutex<Box<dyn Meter>>,
    info: MeterInfo,
    sync: Option<SyncFn>,
    policy: BatchPolicy,
    formatter: JoulesFormatter,
    announced: Once,
    warned_short: Once,
    batches: AtomicU64,
    repeated: AtomicU64,
    windows: AtomicU64,
    short_windows: AtomicU64,
}

/// Builds a [`Joules`] from a meter: an optional synchronisation and batching policy.
pub struct JoulesBuilder {
    meter: Box<dyn Meter>,
    sync: Option<SyncFn>,
    policy: Option<BatchPolicy>,
}

impl JoulesBuilder {
    /// Synchronises the device right before each window opens and right before it closes (GPU meters need this:
    /// see `joule_energy::Meter`).
    pub fn sync(mut self, sync: impl Fn() -> Result<()> + Send + Sync + 'static) -> Self {
        self.sync = Some(Box::new(sync));
        self
    }

    /// Uses `policy` instead of [`BatchPolicy::for_meter`].
    pub fn policy(mut self, policy: BatchPolicy) -> Self {
        self.policy = Some(policy);
        self
    }

    /// The measurement; fails when the policy is invalid.
    pub fn build(self) -> Result<Joules> {
        let info = self.meter.info().clone();
        let policy = self.policy.unwrap_or_else(|| BatchPolicy::for_meter(&info));
        policy.validate()?;
        Ok(Joules {
            inner: Arc::new(Inner {
                formatter: JoulesFormatter::new(info.method),
                meter: Mutex::new(self.meter),
                info,
                sync: self.sync,
                policy,
                announced: Once::new(),
                warned_short: Once::new(),
                batches: AtomicU64::new(0),
                repeated: AtomicU64::new(0),
                windows: AtomicU64::new(0),
                short_windows: AtomicU64::new(0),
            }),
        })
    }
}

/// The minimum window from [`MIN_WINDOW_ENV`]'s value: `None` when unset or empty, an error when it is not a finite,
/// non-negative number of seconds.
pub fn parse_min_window(value: Option<&str>) -> Result<Option<f64>> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => match v.parse::<f64>() {
            Ok(s) if s.is_finite() && s >= 0.0 => Ok(Some(s)),
            _ => Err(Error::InvalidArgument(format!("{MIN_WINDOW_ENV}={v:?}: expected seconds ≥ 0 (e.g. 0.5)"))),
        },
    }
}

/// The meter's default policy, with the minimum window from [`MIN_WINDOW_ENV`] when it is set.
pub fn policy_from_env(info: &MeterInfo) -> Result<BatchPolicy> {
    let policy = BatchPolicy::for_meter(info);
    Ok(match parse_min_window(std::env::var(MIN_WINDOW_ENV).ok().as_deref())? {
        Some(s) => policy.with_min_window_s(s),
        None => policy,
    })
}

impl Joules {
    /// Starts building a measurement on `meter`.
    pub fn builder(meter: Box<dyn Meter>) -> JoulesBuilder {
        JoulesBuilder { meter, sync: None, policy: None }
    }

    /// The best CPU meter here (RAPL where readable, else the labelled estimate; never NVML), with the policy from
    /// [`policy_from_env`]. Also returns the meters that could not be used, and why.
    pub fn cpu(config: &MeterConfig) -> Result<(Joules, Vec<AbsentMeter>)> {
        let config = MeterConfig { nvml: false, ..config.clone() };
        let selection = select_meters(&config);
        let absent = selection.absent.into_iter().filter(|a| a.device == DeviceKind::Cpu).collect();
        let policy = policy_from_env(selection.cpu.info())?;
        Ok((Joules::builder(selection.cpu).policy(policy).build()?, absent))
    }

    /// The NVML meter of GPU `ordinal` (CUDA ordinal), synchronised by `sync` at the window edges, with the policy from
    /// [`policy_from_env`]. Fails with [`Error::MeterUnavailable`] (saying why NVML is absent) when there is none.
    pub fn gpu(
        config: &MeterConfig,
        ordinal: usize,
        sync: impl Fn() -> Result<()> + Send + Sync + 'static,
    ) -> Result<Joules> {
        let config = MeterConfig { nvml: true, ..config.clone() };
        let selection = select_meters(&config);
        let reasons: Vec<String> =
            selection.absent.iter().filter(|a| a.device == DeviceKind::Gpu).map(|a| a.reason.clone()).collect();
        let count = selection.gpus.len();
        let Some(meter) = selection.gpus.into_iter().nth(ordinal) else {
            let reason = if reasons.is_empty() {
                format!("GPU {ordinal} requested, {count} metered GPU(s) visible")
            } else {
                format!("GPU {ordinal} requested, {count} metered GPU(s) visible: {}", reasons.join("; "))
            };
            return Err(Error::MeterUnavailable { meter: "nvml", reason, hint: None });
        };
        let policy = policy_from_env(meter.info())?;
        Joules::builder(meter).sync(sync).policy(policy).build()
    }

    /// What the meter is.
    pub fn info(&self) -> &MeterInfo {
        &self.inner.info
    }

    /// How the energy is obtained.
    pub fn method(&self) -> Method {
        self.inner.info.method
    }

    /// The batching policy.
    pub fn policy(&self) -> &BatchPolicy {
        &self.inner.policy
    }

    /// The formatter criterion uses (also usable on its own).
    pub fn joules_formatter(&self) -> JoulesFormatter {
        self.inner.formatter
    }

    /// One line saying where the joules come from: meter, method (and whether it is a measurement or a model),
    /// scope, resolution and the minimum window. Printed once on first use.
    pub fn banner(&self) -> String {
        let i = &self.inner.info;
        let kind = if i.method.is_measurement() { "measured" } else { "a model, NOT a measurement" };
        format!(
            "joule-criterion: energy method = {} ({kind}) from {} [{}], scope: {}, resolution {:.3e} J; each sample \
             is one window of ≥ {} s (short batches are repeated inside one window and divided)",
            i.method, i.name, i.device, i.scope, i.resolution_j, self.inner.policy.min_window_s
        )
    }

    /// Counts since creation: batches measured, batches that needed repeating, windows opened, and windows the policy
    /// rejected as too short (through `Bencher::iter`, which cannot repeat).
    pub fn summary(&self) -> String {
        let s = &self.inner;
        format!(
            "joule-criterion ({}): {} batches in {} windows, {} repeated to reach {} s, {} too-short windows from \
             Bencher::iter",
            s.info.method,
            s.batches.load(Ordering::Relaxed),
            s.windows.load(Ordering::Relaxed),
            s.repeated.load(Ordering::Relaxed),
            s.policy.min_window_s,
            s.short_windows.load(Ordering::Relaxed)
        )
    }

    /// Prints [`Joules::banner`] to stdout, the first time only (measuring calls this too, so the method is always
    /// printed before the first figure; call it earlier to print it at the top of a run).
    pub fn announce(&self) {
        self.inner.announced.call_once(|| println!("{}", self.banner()));
    }

    fn meter(&self) -> MutexGuard<'_, Box<dyn Meter>> {
        // A panic while the lock was held cannot leave the meter half-updated in a way that matters here: the next
        // start() reopens the window.
        self.inner.meter.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn sync(&self) -> Result<()> {
        match &self.inner.sync {
            Some(f) => f(),
            None => Ok(()),
        }
    }

    /// Energy of `iters` calls of `f`, batched as [`measure_batched`] describes (never 0 J).
    pub fn try_measure(&self, iters: u64, f: impl FnMut()) -> Result<BatchedEnergy> {
        self.announce();
        let mut meter = self.meter();
        let r = measure_batched(&mut **meter, &self.inner.policy, || self.sync(), iters, f)?;
        let s = &self.inner;
        s.batches.fetch_add(1, Ordering::Relaxed);
        s.windows.fetch_add(u64::from(r.windows), Ordering::Relaxed);
        if r.repeats > 1 {
            s.repeated.fetch_add(1, Ordering::Relaxed);
        }
        Ok(r)
    }

    /// Joules of `iters` calls of `f`, for `Bencher::iter_custom`: `b.iter_custom(|n| joules.measure(n, || work()))`.
    ///
    /// # Panics
    ///
    /// When the meter or the synchronisation fails, or no window is accepted (see [`Joules`]).
    pub fn measure(&self, iters: u64, f: impl FnMut()) -> f64 {
        match self.try_measure(iters, f) {
            Ok(r) => r.joules,
            Err(e) => panic!("joule-criterion: energy measurement failed: {e}"),
        }
    }
}

impl Measurement for Joules {
    type Intermediate = ();
    type Value = f64;

    fn start(&self) -> Self::Intermediate {
        self.announce();
        let started = self.sync().and_then(|()| self.meter().start());
        if let Err(e) = started {
            panic!("joule-criterion: cannot open an energy window: {e}");
        }
    }

    fn end(&self, _: Self::Intermediate) -> Self::Value {
        let w = match self.sync().and_then(|()| self.meter().stop()) {
            Ok(w) => w,
            Err(e) => panic!("joule-criterion: cannot close an energy window: {e}"),
        };
        self.inner.windows.fetch_add(1, Ordering::Relaxed);
        if !self.inner.policy.accepts(&w) {
            self.inner.short_windows.fetch_add(1, Ordering::Relaxed);
            self.inner.warned_short.call_once(|| {
                println!(
                    "joule-criterion: warning: a Bencher::iter sample lasted {:.3e} s for {:.3e} J ({}), below the \
                     {} s / {} × resolution this meter needs; use iter_custom with Joules::measure to batch",
                    w.seconds,
                    w.joules,
                    w.method,
                    self.inner.policy.min_window_s,
                    self.inner.policy.min_resolution_multiple
                )
            });
        }
        w.joules
    }

    fn add(&self, v1: &Self::Value, v2: &Self::Value) -> Self::Value {
        v1 + v2
    }

    fn zero(&self) -> Self::Value {
        0.0
    }

    fn to_f64(&self, value: &Self::Value) -> f64 {
        *value
    }

    fn formatter(&self) -> &dyn ValueFormatter {
        &self.inner.formatter
    }
}
