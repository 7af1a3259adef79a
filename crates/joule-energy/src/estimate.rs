//! The `estimated` CPU + RAM meter, for machines with neither RAPL nor NVML (VMs, most laptops in containers).
//!
//! The model is CodeCarbon 3.3.2's, so figures are comparable with it; it is a model, not a measurement, and every
//! window it produces says `estimated`:
//!
//! * **CPU power** = TDP × (0.1 + 0.9 × u³), where u is the *whole machine's* CPU utilisation (all processes, from
//!   `/proc/stat`, busy = total − idle − iowait) over each sampling interval; CodeCarbon's "machine" cpu_load mode.
//!   TDP comes from, in order: a user value; the CodeCarbon CPU table (`data/cpu_tdp.tsv`, 4,914 models) matched
//!   against `/proc/cpuinfo`'s model name; otherwise 4 W per logical CPU (CodeCarbon's `DEFAULT_POWER_PER_CORE`,
//!   which it applies per thread). [`CpuPowerSource`] records which was used.
//! * **RAM power**: CodeCarbon's DIMM model: a DIMM count guessed from the total size (2 up to 16 GB, 4 up to 64 GB,
//!   8 up to 128 GB, more above), 5 W per x86 DIMM (1.5 W on ARM) with decreasing marginal power past 4 DIMMs, at
//!   least 2 DIMMs' worth; constant, whatever the load.

use crate::meter::{ComponentKind, DeviceKind, EnergyComponent, EnergyWindow, Meter, MeterInfo, Method, not_started};
use joule_core::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// CodeCarbon's power per logical CPU when the model is not in its table, W.
pub const DEFAULT_POWER_PER_THREAD_W: f64 = 4.0;
/// CodeCarbon's power per x86 DIMM, W.
pub const RAM_SLOT_POWER_X86_W: f64 = 5.0;
/// CodeCarbon's power per ARM DIMM, W.
pub const RAM_SLOT_POWER_ARM_W: f64 = 1.5;
/// `/proc/stat` counts in clock ticks of 10 ms (USER_HZ = 100): the utilisation's granularity.
const PROC_STAT_TICK_S: f64 = 0.01;

static CPU_TDP_TABLE: &str = include_str!("../data/cpu_tdp.tsv");

/// Where the CPU power figure came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum CpuPowerSource {
    /// Given by the user (`MeterConfig::cpu_tdp_w`).
    UserValue,
    /// Found in CodeCarbon's CPU table under this name.
    Table {
        /// The table's model name that matched.
        entry: String,
    },
    /// Not in the table: [`DEFAULT_POWER_PER_THREAD_W`] × logical CPUs.
    PerThreadFallback {
        /// Logical CPUs counted.
        threads: usize,
        /// Watts per logical CPU.
        watts_per_thread: f64,
    },
}

/// The estimate's parameters for this machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EstimateModel {
    /// CPU model name from `/proc/cpuinfo` ("unknown CPU" when absent).
    pub cpu_model: String,
    /// Logical CPUs in the machine.
    pub logical_cpus: usize,
    /// CPU power at full load, W.
    pub cpu_tdp_w: f64,
    /// Where `cpu_tdp_w` came from.
    pub cpu_power_source: CpuPowerSource,
    /// Total RAM, GiB (0 when unknown).
    pub ram_total_gb: f64,
    /// DIMMs assumed by the RAM model.
    pub ram_dimms_assumed: u32,
    /// Constant RAM power, W.
    pub ram_power_w: f64,
}

impl EstimateModel {
    /// Reads the model name, CPU count and RAM size under `proc_root` (normally `/proc`). `user_tdp_w` overrides the
    /// table. Never fails: unknown values fall back as documented and the fallback is recorded.
    pub fn detect(proc_root: &Path, user_tdp_w: Option<f64>) -> Self {
        let cpuinfo = std::fs::read_to_string(proc_root.join("cpuinfo")).unwrap_or_default();
        let cpu_model = model_name_from_cpuinfo(&cpuinfo).unwrap_or_else(|| "unknown CPU".to_owned());
        let counted = cpuinfo.lines().filter(|l| l.starts_with("processor")).count();
        let logical_cpus =
            if counted > 0 { counted } else { std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) };
        let (cpu_tdp_w, cpu_power_source) = match user_tdp_w.filter(|w| w.is_finite() && *w > 0.0) {
            Some(w) => (w, CpuPowerSource::UserValue),
            None => match lookup_cpu_tdp(&cpu_model) {
                Some((entry, w)) => (w, CpuPowerSource::Table { entry }),
                None => (
                    DEFAULT_POWER_PER_THREAD_W * logical_cpus as f64,
                    CpuPowerSource::PerThreadFallback {
                        threads: logical_cpus,
                        watts_per_thread: DEFAULT_POWER_PER_THREAD_W,
                    },
                ),
            },
        };
        let meminfo = std::fs::read_to_string(proc_root.join("meminfo")).unwrap_or_default();
        let ram_total_gb = mem_total_gb(&meminfo).unwrap_or(0.0);
        let arm = cfg!(any(target_arch = "arm", target_arch = "aarch64"));
        let ram_dimms_assumed = estimate_dimm_count(ram_total_gb);
        let ram_power_w = ram_power_w(ram_total_gb, arm);
        Self { cpu_model, logical_cpus, cpu_tdp_w, cpu_power_source, ram_total_gb, ram_dimms_assumed, ram_power_w }
    }

    /// One line describing the model, for notes and `joule devices`.
    pub fn describe(&self) -> String {
        let src = match &self.cpu_power_source {
            CpuPowerSource::UserValue => "user value".to_owned(),
            CpuPowerSource::Table { entry } => format!("CodeCarbon table entry {entry:?}"),
            CpuPowerSource::PerThreadFallback { threads, watts_per_thread } => {
                format!("not in CodeCarbon's table: fallback {watts_per_thread} W × {threads} logical CPUs")
            }
        };
        format!(
            "estimated: CPU {:?} {:.1} W ({src}) × (0.1 + 0.9·u³), u = whole-machine utilisation from /proc/stat; \
             RAM {:.1} GiB → {} DIMMs assumed → {:.1} W (CodeCarbon 3.3.2 model)",
            self.cpu_model, self.cpu_tdp_w, self.ram_total_gb, self.ram_dimms_assumed, self.ram_power_w
        )
    }
}

/// The `model name` line of a `/proc/cpuinfo` text.
fn model_name_from_cpuinfo(cpuinfo: &str) -> Option<String> {
    cpuinfo.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim() == "model name" && !v.trim().is_empty()).then(|| v.trim().to_owned())
    })
}

/// This machine's CPU model name from `<proc_root>/cpuinfo`, if it has one.
pub fn cpu_model_name(proc_root: &Path) -> Option<String> {
    model_name_from_cpuinfo(&std::fs::read_to_string(proc_root.join("cpuinfo")).ok()?)
}

fn mem_total_gb(meminfo: &str) -> Option<f64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024.0 / (1024.0 * 1024.0 * 1024.0))
}

fn normalize_cpu_name(s: &str) -> Vec<String> {
    let lower = s.to_lowercase().replace("(r)", " ").replace("(tm)", " ").replace(['®', '™', ','], " ");
    // Drop the frequency suffix ("@ 2.50GHz") and words that carry no model information.
    let lower = lower.split('@').next().unwrap_or("").to_owned();
    lower
        .split_whitespace()
        .filter(|t| !matches!(*t, "cpu" | "processor" | "with" | "radeon" | "graphics"))
        .map(str::to_owned)
        .collect()
}

/// Looks `model` up in CodeCarbon's CPU table. Returns the table's name and TDP (W).
///
/// Matching: names are lower-cased, "(R)", "(TM)", "CPU", "Processor" and the "@ x GHz" suffix removed. An exact
/// match wins; otherwise the longest table name whose words appear consecutively in the model's words, provided it
/// contains a word with a digit (so "Intel Xeon" alone never matches a model number). `None` when nothing matches.
pub fn lookup_cpu_tdp(model: &str) -> Option<(String, f64)> {
    let want = normalize_cpu_name(model);
    if want.is_empty() {
        return None;
    }
    let mut best: Option<(usize, usize, &str, f64)> = None;
    for line in CPU_TDP_TABLE.lines() {
        if line.starts_with('#') {
            continue;
        }
        let Some((name, tdp)) = line.split_once('\t') else { continue };
        let Ok(tdp) = tdp.trim().parse::<f64>() else { continue };
        let cand = normalize_cpu_name(name);
        if cand.is_empty() {
            continue;
        }
        if cand == want {
            return Some((name.to_owned(), tdp));
        }
        let has_digit = cand.iter().any(|t| t.chars().any(|c| c.is_ascii_digit()));
        if has_digit && cand.len() <= want.len() && want.windows(cand.len()).any(|w| w == cand.as_slice()) {
            let key = (cand.len(), name.len());
            if best.is_none_or(|(l, n, _, _)| key > (l, n)) {
                best = Some((key.0, key.1, name, tdp));
            }
        }
    }
    best.map(|(_, _, name, tdp)| (name.to_owned(), tdp))
}

/// CodeCarbon 3.3.2's guess of the DIMM count for `total_gb` of RAM.
pub fn estimate_dimm_count(total_gb: f64) -> u32 {
    if total_gb.is_nan() || total_gb <= 2.0 {
        return 1;
    }
    if total_gb <= 16.0 {
        return 2;
    }
    if total_gb <= 32.0 {
        return 4;
    }
    if total_gb <= 64.0 {
        return 4;
    }
    if total_gb <= 128.0 {
        return 8;
    }
    for dimm in [128.0, 64.0, 32.0, 16.0, 8.0, 4.0] {
        if dimm <= total_gb / 8.0 {
            return ((total_gb / dimm).ceil() as u32).min(32);
        }
    }
    8
}

/// CodeCarbon 3.3.2's RAM power for `total_gb` of RAM, W.
pub fn ram_power_w(total_gb: f64, arm: bool) -> f64 {
    let n = f64::from(estimate_dimm_count(total_gb));
    let (per, min) = if arm { (RAM_SLOT_POWER_ARM_W, 3.0) } else { (RAM_SLOT_POWER_X86_W, 2.0 * RAM_SLOT_POWER_X86_W) };
    let total = if n <= 4.0 {
        per * n
    } else if n <= 8.0 {
        per * 4.0 + per * 0.9 * (n - 4.0)
    } else if n <= 16.0 {
        per * 4.0 + per * 0.9 * 4.0 + per * 0.8 * (n - 8.0)
    } else {
        per * 4.0 + per * 0.9 * 4.0 + per * 0.8 * 8.0 + per * 0.7 * (n - 16.0)
    };
    total.max(min)
}

/// CPU power at utilisation `u` (0..=1, clamped): `tdp × (0.1 + 0.9 u³)` (CodeCarbon's machine cpu_load mode).
pub fn cpu_power_at_load(tdp_w: f64, u: f64) -> f64 {
    let u = if u.is_finite() { u.clamp(0.0, 1.0) } else { 0.0 };
    tdp_w * (0.1 + 0.9 * u * u * u)
}

/// Aggregate CPU time counters from `/proc/stat`'s first line: (busy ticks, total ticks).
pub fn read_proc_stat(proc_root: &Path) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(proc_root.join("stat")).ok()?;
    parse_proc_stat(&text)
}

fn parse_proc_stat(text: &str) -> Option<(u64, u64)> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    if v.len() < 4 {
        return None;
    }
    // user nice system idle iowait irq softirq steal (guest and guest_nice are already in user and nice).
    let total: u64 = v.iter().take(8).sum();
    let idle = v[3] + v.get(4).copied().unwrap_or(0);
    Some((total.saturating_sub(idle), total))
}

#[derive(Default)]
struct EstimateState {
    last: Option<(Instant, Option<(u64, u64)>)>,
    cpu_j: f64,
    ram_j: f64,
    busy_ticks: u64,
    total_ticks: u64,
    unreadable: bool,
}

struct EstimateShared {
    model: EstimateModel,
    proc_root: PathBuf,
    state: Mutex<EstimateState>,
}

impl EstimateShared {
    fn lock(&self) -> MutexGuard<'_, EstimateState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Closes the current interval: energy = P(u over the interval) × its length. A failed read in the middle of
    /// a window only lengthens the interval (`last` is kept); at the end of the window (`closing`), or when there
    /// was never a reading, the interval is charged at full load, an upper bound, and the window says so.
    fn sample(&self, closing: bool) -> Instant {
        let now = Instant::now();
        let stat = read_proc_stat(&self.proc_root);
        let mut st = self.lock();
        let Some((t0, s0)) = st.last else { return now };
        if stat.is_none() && s0.is_some() && !closing {
            return now;
        }
        let dt = now.saturating_duration_since(t0).as_secs_f64();
        let u = match (s0, stat) {
            (Some((b0, t0)), Some((b1, t1))) if t1 > t0 => {
                let (db, dtot) = (b1.saturating_sub(b0), t1 - t0);
                st.busy_ticks += db;
                st.total_ticks += dtot;
                db as f64 / dtot as f64
            }
            (Some(_), Some(_)) => 0.0, // no tick elapsed: treat the sliver as idle
            _ => {
                st.unreadable = true;
                1.0
            }
        };
        st.cpu_j += cpu_power_at_load(self.model.cpu_tdp_w, u) * dt;
        st.ram_j += self.model.ram_power_w * dt;
        st.last = Some((now, stat));
        now
    }
}

/// The `estimated` meter: CPU (TDP × utilisation model) plus RAM (DIMM model). See the module documentation.
pub struct EstimateMeter {
    info: MeterInfo,
    shared: Arc<EstimateShared>,
    period: Option<Duration>,
    sampler: Option<(Sender<()>, JoinHandle<()>)>,
    started: Option<Instant>,
}

impl EstimateMeter {
    /// A meter reading `<proc_root>/{cpuinfo,meminfo,stat}` (normally `/proc`), sampling utilisation every `period`
    /// (`Duration::ZERO`: once over the whole window). `user_tdp_w` overrides the CPU table.
    pub fn new(proc_root: &Path, user_tdp_w: Option<f64>, period: Duration) -> Self {
        Self::from_model(EstimateModel::detect(proc_root, user_tdp_w), proc_root, period)
    }

    /// A meter with an explicit model (tests, or a user who knows better).
    pub fn from_model(model: EstimateModel, proc_root: &Path, period: Duration) -> Self {
        let info = MeterInfo {
            name: "estimate (TDP × utilisation + RAM model)".into(),
            method: Method::Estimated,
            device: DeviceKind::Cpu,
            device_index: 0,
            scope: format!(
                "whole machine: CPU {} ({:.0} W TDP) + {:.1} GiB RAM",
                model.cpu_model, model.cpu_tdp_w, model.ram_total_gb
            ),
            // One /proc/stat tick at full power: the finest step the utilisation can resolve.
            resolution_j: (model.cpu_tdp_w + model.ram_power_w) * PROC_STAT_TICK_S,
            update_period_s: PROC_STAT_TICK_S,
        };
        let shared = Arc::new(EstimateShared {
            model,
            proc_root: proc_root.to_owned(),
            state: Mutex::new(EstimateState::default()),
        });
        Self { info, shared, period: (!period.is_zero()).then_some(period), sampler: None, started: None }
    }

    /// The model's parameters.
    pub fn model(&self) -> &EstimateModel {
        &self.shared.model
    }

    fn stop_sampler(&mut self) {
        if let Some((tx, handle)) = self.sampler.take() {
            let _ = tx.send(());
            let _ = handle.join();
        }
    }
}

impl Meter for EstimateMeter {
    fn info(&self) -> &MeterInfo {
        &self.info
    }

    fn start(&mut self) -> Result<()> {
        self.stop_sampler();
        let now = Instant::now();
        *self.shared.lock() =
            EstimateState { last: Some((now, read_proc_stat(&self.shared.proc_root))), ..Default::default() };
        self.started = Some(now);
        if let Some(period) = self.period {
            let (tx, rx) = mpsc::channel::<()>();
            let shared = Arc::clone(&self.shared);
            let handle = std::thread::Builder::new()
                .name("joule-estimate".into())
                .spawn(move || {
                    while let Err(RecvTimeoutError::Timeout) = rx.recv_timeout(period) {
                        let _ = shared.sample(false);
                    }
                })
                .map_err(|e| Error::MeterUnavailable {
                    meter: "estimate",
                    reason: format!("cannot start the sampling thread: {e}"),
                    hint: None,
                })?;
            self.sampler = Some((tx, handle));
        }
        Ok(())
    }

    fn stop(&mut self) -> Result<EnergyWindow> {
        let started = self.started.take().ok_or_else(|| not_started("estimate"))?;
        self.stop_sampler();
        // The window ends where the last interval ends, so energy / seconds is exactly the model's mean power.
        let ended = self.shared.sample(true);
        let seconds = ended.saturating_duration_since(started).as_secs_f64();
        let st = self.shared.lock();
        let mut notes = vec![self.shared.model.describe()];
        if st.total_ticks > 0 {
            notes.push(format!(
                "mean whole-machine CPU utilisation {:.1} %",
                100.0 * st.busy_ticks as f64 / st.total_ticks as f64
            ));
        }
        if st.unreadable {
            notes.push(
                "/proc/stat unreadable for part of the window: that part counted at full load (upper bound)".into(),
            );
        }
        let too_short = seconds < self.info.update_period_s;
        if too_short {
            notes.push(format!(
                "window of {seconds:.6} s is shorter than /proc/stat's tick ({} s): utilisation unknown, idle assumed",
                self.info.update_period_s
            ));
        }
        let components = vec![
            EnergyComponent { name: "cpu".into(), kind: ComponentKind::Cpu, joules: st.cpu_j },
            EnergyComponent { name: "ram".into(), kind: ComponentKind::Ram, joules: st.ram_j },
        ];
        Ok(EnergyWindow {
            joules: st.cpu_j + st.ram_j,
            seconds,
            method: Method::Estimated,
            scope: self.info.scope.clone(),
            resolution_j: self.info.resolution_j,
            too_short,
            components,
            gpu_state: None,
            notes,
        })
    }
}

impl Drop for EstimateMeter {
    fn drop(&mut self) {
        self.stop_sampler();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_lookup_matches_real_model_strings() {
        let (name, tdp) = lookup_cpu_tdp("AMD EPYC 7763 64-Core Processor").expect("EPYC 7763 is in the table");
        assert!(name.contains("7763"), "{name}");
        assert!(tdp > 100.0);
        assert_eq!(lookup_cpu_tdp("Intel(R) Xeon(R) Processor"), None);
        assert_eq!(lookup_cpu_tdp(""), None);
    }

    #[test]
    fn ram_model_follows_codecarbon() {
        assert_eq!(ram_power_w(8.0, false), 10.0); // 2 DIMMs × 5 W
        assert_eq!(ram_power_w(32.0, false), 20.0); // 4 × 5 W
        assert_eq!(ram_power_w(128.0, false), 38.0); // 4 × 5 + 4 × 4.5
        assert_eq!(ram_power_w(1.0, false), 10.0); // 1 DIMM, minimum of 2 DIMMs' worth
        assert_eq!(ram_power_w(f64::NAN, false), 10.0);
    }

    #[test]
    fn cpu_load_curve() {
        assert_eq!(cpu_power_at_load(100.0, 0.0), 10.0);
        assert_eq!(cpu_power_at_load(100.0, 1.0), 100.0);
        assert_eq!(cpu_power_at_load(100.0, f64::NAN), 10.0);
        assert_eq!(cpu_power_at_load(100.0, 7.0), 100.0);
    }

    #[test]
    fn proc_stat_parsing() {
        let s = "cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3 4\n";
        assert_eq!(parse_proc_stat(s), Some((150, 1000)));
        assert_eq!(parse_proc_stat("garbage"), None);
    }
}
