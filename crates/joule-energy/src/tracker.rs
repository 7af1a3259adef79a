//! A CodeCarbon-style emissions tracker: project, start/stop, named nested tasks, an [`EmissionsReport`], and an
//! `emissions.csv` that CodeCarbon's tooling reads.
//!
//! The CSV has CodeCarbon v3's 38 columns, in its order and units (duration s, emissions kg CO2e, emissions_rate
//! kg/s, power W, energy kWh, water L, RAM GB), followed by three columns CodeCarbon does not have:
//! `cpu_energy_method`, `gpu_energy_method`, `ram_energy_method` (`rapl`, `nvml-counter`, `nvml-power`, `estimated`,
//! or empty when not measured), so an estimate is never read as a measurement. `timestamp` is UTC
//! (`YYYY-MM-DDTHH:MM:SS`); `python_version` and `codecarbon_version` are empty (this is not CodeCarbon).
//! Appending keeps one header and every earlier row: the existing file is read, its rows mapped by column name onto
//! this header, and the whole file rewritten to a temporary name and renamed.

use crate::carbon::{self, CarbonIntensity, IntensityLevel, IntensityQuery};
use crate::estimate::{EstimateModel, read_proc_stat};
use crate::meter::{ComponentKind, DeviceKind, EnergyWindow, Method};
use crate::select::{AbsentMeter, MeterConfig, MeterSelection, select_meters};
use joule_core::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

const J_PER_KWH: f64 = 3.6e6;

/// The columns of `emissions.csv`, in order: CodeCarbon v3's 38, then the three method columns.
pub const CSV_COLUMNS: [&str; 41] = [
    "timestamp",
    "project_name",
    "run_id",
    "experiment_id",
    "duration",
    "emissions",
    "emissions_rate",
    "cpu_power",
    "gpu_power",
    "ram_power",
    "cpu_energy",
    "gpu_energy",
    "ram_energy",
    "energy_consumed",
    "water_consumed",
    "country_name",
    "country_iso_code",
    "region",
    "cloud_provider",
    "cloud_region",
    "os",
    "python_version",
    "codecarbon_version",
    "cpu_count",
    "cpu_model",
    "gpu_count",
    "gpu_model",
    "longitude",
    "latitude",
    "ram_total_size",
    "tracking_mode",
    "cpu_utilization_percent",
    "gpu_utilization_percent",
    "ram_utilization_percent",
    "ram_used_gb",
    "on_cloud",
    "pue",
    "wue",
    "cpu_energy_method",
    "gpu_energy_method",
    "ram_energy_method",
];

/// What the tracker measures and how it attributes carbon.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrackerConfig {
    /// Project name (CSV `project_name`).
    pub project_name: String,
    /// Experiment id (CSV `experiment_id`; CodeCarbon's default id unless set).
    pub experiment_id: String,
    /// Where the electricity comes from (country, region, cloud region, or an override).
    pub location: IntensityQuery,
    /// Power usage effectiveness of the facility (≥ 1; default 1.0: overhead not counted).
    pub pue: f64,
    /// Water usage effectiveness, L/kWh (default 0: water not counted).
    pub wue: f64,
    /// Meter selection.
    pub meters: MeterConfig,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        Self {
            project_name: "joule".into(),
            experiment_id: "5b0fa12a-3dd7-45bb-9766-cc326314d9f1".into(),
            location: IntensityQuery::default(),
            pue: 1.0,
            wue: 0.0,
            meters: MeterConfig::default(),
        }
    }
}

/// Energy per component, kWh.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct EnergyKwh {
    /// CPU package(s).
    pub cpu: f64,
    /// GPU boards.
    pub gpu: f64,
    /// Host memory.
    pub ram: f64,
    /// Sum of the three.
    pub total: f64,
}

/// Average power per component over the window, W (0 for a window without duration).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct PowerW {
    /// CPU package(s).
    pub cpu: f64,
    /// GPU boards.
    pub gpu: f64,
    /// Host memory.
    pub ram: f64,
}

/// How each component's energy was obtained (`None`: not measured, counted as 0).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ComponentMethods {
    /// CPU method.
    pub cpu: Option<Method>,
    /// GPU methods (one per distinct method among the GPUs).
    pub gpu: Vec<Method>,
    /// RAM method.
    pub ram: Option<Method>,
}

impl ComponentMethods {
    fn label(m: &[Method]) -> String {
        m.iter().map(|m| m.as_str()).collect::<Vec<_>>().join("+")
    }
}

/// One named task's energy and emissions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskReport {
    /// Task name.
    pub name: String,
    /// Path of names from the outermost open task, joined by `/` (e.g. "train/epoch-1").
    pub path: String,
    /// Wall-clock duration, s.
    pub duration_s: f64,
    /// Energy per component, kWh.
    pub energy_kwh: EnergyKwh,
    /// Emissions, kg CO2e.
    pub emissions_kg: f64,
    /// How each component was obtained.
    pub methods: ComponentMethods,
    /// Every meter's window.
    pub windows: Vec<EnergyWindow>,
    /// Meters that failed to start or stop during the task (their energy is missing).
    pub failed: Vec<AbsentMeter>,
}

/// The machine the report was made on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MachineInfo {
    /// `Linux-<kernel>-<arch>` (or the OS name elsewhere).
    pub os: String,
    /// CPU model name.
    pub cpu_model: String,
    /// Logical CPUs.
    pub cpu_count: usize,
    /// GPUs metered.
    pub gpu_count: usize,
    /// e.g. "2 x NVIDIA H200" (empty without GPUs).
    pub gpu_model: String,
    /// Total RAM, GB (GiB, as CodeCarbon computes it).
    pub ram_total_gb: f64,
}

/// A tracked run: CodeCarbon's EmissionsData, plus the methods, windows and tasks behind it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmissionsReport {
    /// Schema id of this JSON.
    pub schema: String,
    /// When the run stopped, UTC, `YYYY-MM-DDTHH:MM:SS`.
    pub timestamp: String,
    /// Project name.
    pub project_name: String,
    /// A random UUID (v4) per run.
    pub run_id: String,
    /// Experiment id.
    pub experiment_id: String,
    /// Wall-clock duration, s.
    pub duration_s: f64,
    /// Energy per component, kWh.
    pub energy_kwh: EnergyKwh,
    /// Average power per component, W.
    pub power_w: PowerW,
    /// How each component was obtained.
    pub methods: ComponentMethods,
    /// Emissions, kg CO2e (energy × PUE × intensity).
    pub emissions_kg: f64,
    /// Emissions per second, kg/s (0 for a run without duration).
    pub emissions_rate_kg_per_s: f64,
    /// The carbon intensity used and where it came from.
    pub intensity: CarbonIntensity,
    /// PUE applied.
    pub pue: f64,
    /// WUE applied, L/kWh.
    pub wue: f64,
    /// Water, L (energy × WUE).
    pub water_l: f64,
    /// Whole-machine CPU utilisation over the run, percent.
    pub cpu_utilization_percent: f64,
    /// Mean GPU utilisation at the end of the run, percent (0 without GPUs).
    pub gpu_utilization_percent: f64,
    /// RAM in use at the end of the run, percent.
    pub ram_utilization_percent: f64,
    /// RAM in use at the end of the run, GB.
    pub ram_used_gb: f64,
    /// The machine.
    pub machine: MachineInfo,
    /// Meters not used, and why (including meters that failed during the run: their energy is missing).
    pub absent: Vec<AbsentMeter>,
    /// Every meter's window for the whole run.
    pub windows: Vec<EnergyWindow>,
    /// Tasks, in the order they ended.
    pub tasks: Vec<TaskReport>,
}

/// One `emissions.csv` row (see [`CSV_COLUMNS`]); numbers are numbers, empty cells read back as `None`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EmissionsRow {
    #[allow(missing_docs)]
    pub timestamp: String,
    #[allow(missing_docs)]
    pub project_name: String,
    #[allow(missing_docs)]
    pub run_id: String,
    #[allow(missing_docs)]
    pub experiment_id: String,
    /// s
    pub duration: Option<f64>,
    /// kg CO2e
    pub emissions: Option<f64>,
    /// kg/s
    pub emissions_rate: Option<f64>,
    /// W
    pub cpu_power: Option<f64>,
    /// W
    pub gpu_power: Option<f64>,
    /// W
    pub ram_power: Option<f64>,
    /// kWh
    pub cpu_energy: Option<f64>,
    /// kWh
    pub gpu_energy: Option<f64>,
    /// kWh
    pub ram_energy: Option<f64>,
    /// kWh
    pub energy_consumed: Option<f64>,
    /// L
    pub water_consumed: Option<f64>,
    #[allow(missing_docs)]
    pub country_name: String,
    #[allow(missing_docs)]
    pub country_iso_code: String,
    #[allow(missing_docs)]
    pub region: String,
    #[allow(missing_docs)]
    pub cloud_provider: String,
    #[allow(missing_docs)]
    pub cloud_region: String,
    #[allow(missing_docs)]
    pub os: String,
    #[allow(missing_docs)]
    pub python_version: String,
    #[allow(missing_docs)]
    pub codecarbon_version: String,
    #[allow(missing_docs)]
    pub cpu_count: Option<u64>,
    #[allow(missing_docs)]
    pub cpu_model: String,
    #[allow(missing_docs)]
    pub gpu_count: Option<u64>,
    #[allow(missing_docs)]
    pub gpu_model: String,
    #[allow(missing_docs)]
    pub longitude: Option<f64>,
    #[allow(missing_docs)]
    pub latitude: Option<f64>,
    /// GB
    pub ram_total_size: Option<f64>,
    /// "machine" (whole-machine utilisation)
    pub tracking_mode: String,
    #[allow(missing_docs)]
    pub cpu_utilization_percent: Option<f64>,
    #[allow(missing_docs)]
    pub gpu_utilization_percent: Option<f64>,
    #[allow(missing_docs)]
    pub ram_utilization_percent: Option<f64>,
    #[allow(missing_docs)]
    pub ram_used_gb: Option<f64>,
    /// "Y" or "N"
    pub on_cloud: String,
    #[allow(missing_docs)]
    pub pue: Option<f64>,
    #[allow(missing_docs)]
    pub wue: Option<f64>,
    /// `rapl`, `estimated`, … or empty
    pub cpu_energy_method: String,
    /// `nvml-counter`, `nvml-power` (joined by `+` when GPUs differ) or empty
    pub gpu_energy_method: String,
    /// `rapl`, `estimated` or empty
    pub ram_energy_method: String,
}

impl EmissionsReport {
    /// The report as one `emissions.csv` row.
    pub fn to_csv_row(&self) -> EmissionsRow {
        let on_cloud = self.intensity.level == IntensityLevel::CloudRegion;
        EmissionsRow {
            timestamp: self.timestamp.clone(),
            project_name: self.project_name.clone(),
            run_id: self.run_id.clone(),
            experiment_id: self.experiment_id.clone(),
            duration: Some(self.duration_s),
            emissions: Some(self.emissions_kg),
            emissions_rate: Some(self.emissions_rate_kg_per_s),
            cpu_power: Some(self.power_w.cpu),
            gpu_power: Some(self.power_w.gpu),
            ram_power: Some(self.power_w.ram),
            cpu_energy: Some(self.energy_kwh.cpu),
            gpu_energy: Some(self.energy_kwh.gpu),
            ram_energy: Some(self.energy_kwh.ram),
            energy_consumed: Some(self.energy_kwh.total),
            water_consumed: Some(self.water_l),
            country_name: self.intensity.country_name.clone().unwrap_or_default(),
            country_iso_code: self.intensity.country_iso.clone().unwrap_or_default(),
            region: if self.intensity.level == IntensityLevel::Region {
                self.intensity.region.clone().unwrap_or_default()
            } else {
                String::new()
            },
            cloud_provider: if on_cloud {
                self.intensity.cloud_provider.clone().unwrap_or_default()
            } else {
                String::new()
            },
            cloud_region: if on_cloud { self.intensity.region.clone().unwrap_or_default() } else { String::new() },
            os: self.machine.os.clone(),
            python_version: String::new(),
            codecarbon_version: String::new(),
            cpu_count: Some(self.machine.cpu_count as u64),
            cpu_model: self.machine.cpu_model.clone(),
            gpu_count: Some(self.machine.gpu_count as u64),
            gpu_model: self.machine.gpu_model.clone(),
            longitude: None,
            latitude: None,
            ram_total_size: Some(self.machine.ram_total_gb),
            tracking_mode: "machine".into(),
            cpu_utilization_percent: Some(self.cpu_utilization_percent),
            gpu_utilization_percent: Some(self.gpu_utilization_percent),
            ram_utilization_percent: Some(self.ram_utilization_percent),
            ram_used_gb: Some(self.ram_used_gb),
            on_cloud: if on_cloud { "Y" } else { "N" }.into(),
            pue: Some(self.pue),
            wue: Some(self.wue),
            cpu_energy_method: self.methods.cpu.map(|m| m.to_string()).unwrap_or_default(),
            gpu_energy_method: ComponentMethods::label(&self.methods.gpu),
            ram_energy_method: self.methods.ram.map(|m| m.to_string()).unwrap_or_default(),
        }
    }
}

/// The run's start, meters and `/proc/stat` counters at start.
type OpenRun = (Instant, MeterSelection, Option<(u64, u64)>);

struct OpenTask {
    name: String,
    started: Instant,
    meters: MeterSelection,
}

/// Tracks a run's energy and emissions. Each run and each task has its own meters, so tasks may nest.
pub struct Tracker {
    config: TrackerConfig,
    run: Option<OpenRun>,
    tasks: Vec<OpenTask>,
    done: Vec<TaskReport>,
    intensity: CarbonIntensity,
}

impl Tracker {
    /// A tracker; nothing is measured until [`start`](Self::start). The carbon intensity is looked up now (offline).
    pub fn new(config: TrackerConfig) -> Self {
        let intensity = carbon::lookup(&config.location);
        Self { config, run: None, tasks: Vec::new(), done: Vec::new(), intensity }
    }

    /// The carbon intensity that will be applied.
    pub fn intensity(&self) -> &CarbonIntensity {
        &self.intensity
    }

    /// Selects the meters and opens the run's window.
    pub fn start(&mut self) -> Result<()> {
        if self.run.is_some() {
            return Err(Error::InvalidArgument("tracker already started".into()));
        }
        let mut meters = select_meters(&self.config.meters);
        let stat = read_proc_stat(&self.config.meters.proc_root);
        start_all(&mut meters)?;
        self.run = Some((Instant::now(), meters, stat));
        Ok(())
    }

    /// Opens a task inside the run (or inside the innermost open task).
    pub fn start_task(&mut self, name: &str) -> Result<()> {
        if self.run.is_none() {
            return Err(Error::InvalidArgument(format!("task {name:?} started before the tracker")));
        }
        let mut meters = select_meters(&self.config.meters);
        meters.absent.clear(); // the run already reported the meters absent here
        start_all(&mut meters)?;
        self.tasks.push(OpenTask { name: name.to_owned(), started: Instant::now(), meters });
        Ok(())
    }

    /// Closes the innermost open task.
    pub fn stop_task(&mut self) -> Result<TaskReport> {
        let path = self.tasks.iter().map(|t| t.name.as_str()).collect::<Vec<_>>().join("/");
        let mut task = self.tasks.pop().ok_or_else(|| Error::InvalidArgument("no open task to stop".into()))?;
        let windows = stop_all(&mut task.meters);
        let duration_s = task.started.elapsed().as_secs_f64();
        let (energy_kwh, _, methods) = summarize(&windows, duration_s);
        let report = TaskReport {
            name: task.name,
            path,
            duration_s,
            energy_kwh,
            emissions_kg: carbon::emissions_kg(energy_kwh.total, self.intensity.g_per_kwh, self.config.pue),
            methods,
            windows,
            failed: task.meters.absent,
        };
        self.done.push(report.clone());
        Ok(report)
    }

    /// Closes any open tasks (innermost first) and the run, and returns the report.
    pub fn stop(&mut self) -> Result<EmissionsReport> {
        while !self.tasks.is_empty() {
            self.stop_task()?;
        }
        let (started, mut meters, stat0) =
            self.run.take().ok_or_else(|| Error::InvalidArgument("tracker stopped before it started".into()))?;
        let windows = stop_all(&mut meters);
        let duration_s = started.elapsed().as_secs_f64();
        let stat1 = read_proc_stat(&self.config.meters.proc_root);
        let (energy_kwh, power_w, methods) = summarize(&windows, duration_s);
        let emissions_kg = carbon::emissions_kg(energy_kwh.total, self.intensity.g_per_kwh, self.config.pue);
        let cpu_utilization_percent = match (stat0, stat1) {
            (Some((b0, t0)), Some((b1, t1))) if t1 > t0 => 100.0 * b1.saturating_sub(b0) as f64 / (t1 - t0) as f64,
            _ => 0.0,
        };
        let gpu_utils: Vec<f64> =
            windows.iter().filter_map(|w| w.gpu_state.as_ref()?.utilization_percent.map(f64::from)).collect();
        let model = EstimateModel::detect(&self.config.meters.proc_root, self.config.meters.cpu_tdp_w);
        let (ram_used_gb, ram_utilization_percent) = ram_used(&self.config.meters.proc_root);
        let wue = if self.config.wue.is_finite() && self.config.wue > 0.0 { self.config.wue } else { 0.0 };
        let pue = if self.config.pue.is_finite() && self.config.pue >= 1.0 { self.config.pue } else { 1.0 };
        Ok(EmissionsReport {
            schema: "joule-emissions/1".into(),
            timestamp: utc_timestamp(SystemTime::now()),
            project_name: self.config.project_name.clone(),
            run_id: uuid_v4(),
            experiment_id: self.config.experiment_id.clone(),
            duration_s,
            energy_kwh,
            power_w,
            methods,
            emissions_rate_kg_per_s: if duration_s > 0.0 { emissions_kg / duration_s } else { 0.0 },
            emissions_kg,
            intensity: self.intensity.clone(),
            pue,
            wue,
            water_l: energy_kwh.total * wue,
            cpu_utilization_percent,
            gpu_utilization_percent: if gpu_utils.is_empty() {
                0.0
            } else {
                gpu_utils.iter().sum::<f64>() / gpu_utils.len() as f64
            },
            ram_utilization_percent,
            ram_used_gb,
            machine: MachineInfo {
                os: os_string(&self.config.meters.proc_root),
                cpu_model: model.cpu_model,
                cpu_count: model.logical_cpus,
                gpu_count: meters.gpus.len(),
                gpu_model: gpu_model(&meters),
                ram_total_gb: model.ram_total_gb,
            },
            absent: meters.absent.clone(),
            windows,
            tasks: std::mem::take(&mut self.done),
        })
    }
}

/// Starts every meter. A GPU meter that fails to start is moved to `absent` (the run goes on without it); the CPU
/// meter failing is an error.
fn start_all(meters: &mut MeterSelection) -> Result<()> {
    meters.cpu.start()?;
    let mut kept = Vec::with_capacity(meters.gpus.len());
    for mut g in std::mem::take(&mut meters.gpus) {
        match g.start() {
            Ok(()) => kept.push(g),
            Err(e) => meters.absent.push(AbsentMeter {
                meter: g.info().name.clone(),
                device: g.info().device,
                reason: format!("failed to start: {e}"),
            }),
        }
    }
    meters.gpus = kept;
    Ok(())
}

/// Stops every meter; one that fails is recorded in `absent` (its energy is missing, and said to be), the others'
/// windows are kept.
fn stop_all(meters: &mut MeterSelection) -> Vec<EnergyWindow> {
    let mut windows = Vec::new();
    let mut failed = Vec::new();
    for m in meters.all_mut() {
        match m.stop() {
            Ok(w) => windows.push(w),
            Err(e) => failed.push(AbsentMeter {
                meter: m.info().name.clone(),
                device: m.info().device,
                reason: format!("failed during the window: {e}"),
            }),
        }
    }
    meters.absent.extend(failed);
    windows
}

/// Energy (kWh), average power (W) and methods per component from a set of windows.
fn summarize(windows: &[EnergyWindow], duration_s: f64) -> (EnergyKwh, PowerW, ComponentMethods) {
    let mut methods = ComponentMethods::default();
    let mut j = [0.0f64; 3];
    for w in windows {
        for c in &w.components {
            let joules = if c.joules.is_finite() { c.joules.max(0.0) } else { 0.0 };
            match c.kind {
                ComponentKind::Cpu => {
                    j[0] += joules;
                    methods.cpu.get_or_insert(w.method);
                }
                ComponentKind::Gpu => {
                    j[1] += joules;
                    if !methods.gpu.contains(&w.method) {
                        methods.gpu.push(w.method);
                    }
                }
                ComponentKind::Ram => {
                    j[2] += joules;
                    methods.ram.get_or_insert(w.method);
                }
            }
        }
    }
    let energy = EnergyKwh {
        cpu: j[0] / J_PER_KWH,
        gpu: j[1] / J_PER_KWH,
        ram: j[2] / J_PER_KWH,
        total: j.iter().sum::<f64>() / J_PER_KWH,
    };
    // Average power over the span the meters integrated: a meter's window can be a little longer than the tracked
    // duration (an estimate samples at a fixed period), and dividing its joules by the shorter duration would
    // report more power than the model can give for very short commands.
    let window_s = windows.iter().map(|w| w.seconds).filter(|s| s.is_finite()).fold(0.0f64, f64::max);
    let span_s = if window_s > 0.0 { window_s } else { duration_s };
    let p = |x: f64| if span_s > 0.0 && span_s.is_finite() { x / span_s } else { 0.0 };
    (energy, PowerW { cpu: p(j[0]), gpu: p(j[1]), ram: p(j[2]) }, methods)
}

fn gpu_model(meters: &MeterSelection) -> String {
    let mut names: Vec<(String, usize)> = Vec::new();
    for g in &meters.gpus {
        debug_assert_eq!(g.info().device, DeviceKind::Gpu);
        let n = g.info().name.trim_start_matches("NVML ").to_owned();
        match names.iter_mut().find(|(m, _)| *m == n) {
            Some((_, c)) => *c += 1,
            None => names.push((n, 1)),
        }
    }
    names.iter().map(|(n, c)| format!("{c} x {n}")).collect::<Vec<_>>().join(", ")
}

fn ram_used(proc_root: &Path) -> (f64, f64) {
    let text = std::fs::read_to_string(proc_root.join("meminfo")).unwrap_or_default();
    let field = |k: &str| -> Option<f64> {
        text.lines().find(|l| l.starts_with(k))?.split_whitespace().nth(1)?.parse::<f64>().ok()
    };
    match (field("MemTotal:"), field("MemAvailable:")) {
        (Some(t), Some(a)) if t > 0.0 => {
            let used_kb = (t - a).max(0.0);
            (used_kb / (1024.0 * 1024.0), 100.0 * used_kb / t)
        }
        _ => (0.0, 0.0),
    }
}

fn os_string(proc_root: &Path) -> String {
    let release = std::fs::read_to_string(proc_root.join("sys/kernel/osrelease")).unwrap_or_default();
    let os = match std::env::consts::OS {
        "linux" => "Linux",
        "macos" => "macOS",
        "windows" => "Windows",
        other => other,
    };
    if release.trim().is_empty() {
        format!("{os}-{}", std::env::consts::ARCH)
    } else {
        format!("{os}-{}-{}", release.trim(), std::env::consts::ARCH)
    }
}

/// `YYYY-MM-DDTHH:MM:SS` in UTC.
pub(crate) fn utc_timestamp(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// A random (v4) UUID from the OS's random source; falls back to time and pid if it is unreadable.
fn uuid_v4() -> String {
    use std::io::Read;
    let mut b = [0u8; 16];
    let ok = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b)).is_ok();
    if !ok {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        let mix = nanos ^ (u128::from(std::process::id()) << 64);
        b = mix.to_le_bytes();
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: Vec<String> = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        h[0..4].concat(),
        h[4..6].concat(),
        h[6..8].concat(),
        h[8..10].concat(),
        h[10..16].concat()
    )
}

fn tmp_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "out".into());
    path.with_file_name(format!(".{name}.tmp.{}", std::process::id()))
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = tmp_path(path);
    std::fs::write(&tmp, bytes).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, e)
    })
}

/// Writes `value` as pretty JSON to `path` (temporary name, then rename).
pub fn write_json_atomic<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut text = serde_json::to_string_pretty(value)
        .map_err(|e| Error::Parse { what: format!("JSON for {}", path.display()), reason: e.to_string() })?;
    text.push('\n');
    write_atomic(path, text.as_bytes())
}

fn csv_err(path: &Path, e: csv::Error) -> Error {
    Error::Parse { what: format!("CSV {}", path.display()), reason: e.to_string() }
}

/// Reads an `emissions.csv` (ours, or CodeCarbon's: columns are matched by name, missing ones left empty).
pub fn read_emissions_csv(path: &Path) -> Result<Vec<EmissionsRow>> {
    let text = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let mut reader = csv::ReaderBuilder::new().flexible(false).from_reader(text.as_slice());
    let headers = reader.headers().map_err(|e| csv_err(path, e))?.clone();
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| csv_err(path, e))?;
        // Re-key the record onto our columns, so files with other column sets (CodeCarbon's own) read too.
        let mut full = csv::StringRecord::new();
        for col in CSV_COLUMNS {
            full.push_field(headers.iter().position(|h| h == col).and_then(|i| record.get(i)).unwrap_or(""));
        }
        let header = csv::StringRecord::from(CSV_COLUMNS.to_vec());
        rows.push(full.deserialize::<EmissionsRow>(Some(&header)).map_err(|e| csv_err(path, e))?);
    }
    Ok(rows)
}

/// Appends `rows` to the `emissions.csv` at `path`, creating it with a header if absent. Earlier rows are kept
/// (read back and rewritten under this header, whatever columns the old file had); the file is written to a
/// temporary name and renamed, so an interruption leaves the old file intact.
pub fn write_emissions_csv(path: &Path, rows: &[EmissionsRow]) -> Result<()> {
    let mut all = if path.exists() { read_emissions_csv(path)? } else { Vec::new() };
    all.extend_from_slice(rows);
    let mut writer = csv::WriterBuilder::new().has_headers(true).from_writer(Vec::new());
    if all.is_empty() {
        writer.write_record(CSV_COLUMNS).map_err(|e| csv_err(path, e))?;
    }
    for row in &all {
        writer.serialize(row).map_err(|e| csv_err(path, e))?;
    }
    let bytes = writer.into_inner().map_err(|e| Error::io(path, e.into_error()))?;
    write_atomic(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meter::EnergyComponent;

    fn tmp_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("joule-energy-{tag}-{}-{}", std::process::id(), uuid_v4()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn window(method: Method, comps: &[(&str, ComponentKind, f64)], seconds: f64) -> EnergyWindow {
        let components: Vec<EnergyComponent> =
            comps.iter().map(|(n, k, j)| EnergyComponent { name: (*n).into(), kind: *k, joules: *j }).collect();
        EnergyWindow {
            joules: components.iter().map(|c| c.joules).sum(),
            seconds,
            method,
            scope: "test".into(),
            resolution_j: 1e-3,
            too_short: false,
            components,
            gpu_state: None,
            notes: vec![],
        }
    }

    #[test]
    fn csv_header_matches_codecarbon_v3_then_methods() {
        let mut w = csv::Writer::from_writer(Vec::new());
        w.serialize(EmissionsRow::default()).unwrap();
        let text = String::from_utf8(w.into_inner().unwrap()).unwrap();
        assert_eq!(text.lines().next().unwrap(), CSV_COLUMNS.join(","));
        assert_eq!(CSV_COLUMNS[37], "wue");
    }

    #[test]
    fn summary_splits_components_and_never_divides_by_zero() {
        let ws = [
            window(Method::Estimated, &[("cpu", ComponentKind::Cpu, 3.6e6), ("ram", ComponentKind::Ram, 1.8e6)], 10.0),
            window(Method::NvmlCounter, &[("gpu-0", ComponentKind::Gpu, 7.2e6)], 10.0),
        ];
        let (e, p, m) = summarize(&ws, 10.0);
        assert_eq!((e.cpu, e.ram, e.gpu, e.total), (1.0, 0.5, 2.0, 3.5));
        assert_eq!((p.cpu, p.ram, p.gpu), (3.6e5, 1.8e5, 7.2e5));
        assert_eq!(
            (m.cpu, m.ram, m.gpu.as_slice()),
            (Some(Method::Estimated), Some(Method::Estimated), &[Method::NvmlCounter][..])
        );
        // Power is over the span the meters integrated, even when the tracked duration is unusable ...
        for d in [0.0, -1.0, f64::NAN] {
            let (e, p, _) = summarize(&ws, d);
            assert!(e.total.is_finite() && p.cpu == 3.6e5 && p.gpu == 7.2e5, "{d}");
        }
        // ... and never divides by zero when neither is usable.
        let empty = [window(Method::Estimated, &[("cpu", ComponentKind::Cpu, 1.0)], 0.0)];
        for d in [0.0, -1.0, f64::NAN] {
            let (e, p, _) = summarize(&empty, d);
            assert!(e.total.is_finite() && p.cpu == 0.0 && p.gpu == 0.0, "{d}");
        }
    }

    #[test]
    fn average_power_uses_the_meter_window_when_it_is_longer_than_the_tracked_duration() {
        // A 7 ms command measured by an estimate that samples every 10 ms: 28 W over the 13 ms window is 28 W, not
        // 52 W over the 7 ms the command ran.
        let ws = [window(Method::Estimated, &[("cpu", ComponentKind::Cpu, 0.364)], 0.013)];
        let (_, p, _) = summarize(&ws, 0.007);
        assert!((p.cpu - 28.0).abs() < 1e-9, "{}", p.cpu);
    }

    #[test]
    fn csv_round_trip_with_commas_quotes_and_append() {
        let dir = tmp_dir("csv");
        let path = dir.join("emissions.csv");
        let mut a = EmissionsRow {
            project_name: "my, \"quoted\"\nproject".into(),
            run_id: "r1".into(),
            duration: Some(2.5),
            emissions: Some(1.25e-7),
            cpu_energy_method: "estimated".into(),
            on_cloud: "N".into(),
            ..Default::default()
        };
        write_emissions_csv(&path, std::slice::from_ref(&a)).unwrap();
        let back = read_emissions_csv(&path).unwrap();
        assert_eq!(back, vec![a.clone()]);
        // Append: one header, both rows, earlier row unchanged.
        a.run_id = "r2".into();
        write_emissions_csv(&path, std::slice::from_ref(&a)).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.matches("timestamp,project_name").count(), 1);
        let back = read_emissions_csv(&path).unwrap();
        assert_eq!(back.iter().map(|r| r.run_id.as_str()).collect::<Vec<_>>(), ["r1", "r2"]);
        assert_eq!(back[0].project_name, "my, \"quoted\"\nproject");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn appending_to_a_codecarbon_file_keeps_its_rows() {
        let dir = tmp_dir("cc");
        let path = dir.join("emissions.csv");
        // A CodeCarbon-written file: its own 38 columns (no method columns), a value in an unusual order is fine.
        let cc_header = &CSV_COLUMNS[..38];
        let mut row = vec![""; 38];
        row[0] = "2025-01-01T00:00:00";
        row[1] = "old";
        row[2] = "cc-run";
        row[4] = "60.0";
        row[5] = "0.001";
        std::fs::write(&path, format!("{}\n{}\n", cc_header.join(","), row.join(","))).unwrap();
        let new = EmissionsRow { run_id: "ours".into(), ..Default::default() };
        write_emissions_csv(&path, &[new]).unwrap();
        let back = read_emissions_csv(&path).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!((back[0].run_id.as_str(), back[0].duration, back[0].emissions), ("cc-run", Some(60.0), Some(0.001)));
        assert_eq!(back[1].run_id, "ours");
        // An existing but empty file gets a header and the row.
        let empty = dir.join("empty.csv");
        std::fs::write(&empty, "").unwrap();
        write_emissions_csv(&empty, &[EmissionsRow { run_id: "e".into(), ..Default::default() }]).unwrap();
        assert_eq!(read_emissions_csv(&empty).unwrap().len(), 1);
        // A file that is not CSV at all is an error, and is left untouched.
        let bad = dir.join("bad.csv");
        std::fs::write(&bad, "a,b\n1,2,3\n").unwrap();
        assert!(write_emissions_csv(&bad, &[EmissionsRow::default()]).is_err());
        assert_eq!(std::fs::read_to_string(&bad).unwrap(), "a,b\n1,2,3\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn timestamps_and_uuids() {
        assert_eq!(utc_timestamp(UNIX_EPOCH), "1970-01-01T00:00:00");
        let t = UNIX_EPOCH + std::time::Duration::from_secs(1_709_210_096); // 2024-02-29T12:34:56Z
        assert_eq!(utc_timestamp(t), "2024-02-29T12:34:56");
        let u = uuid_v4();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert_ne!(u, uuid_v4());
    }

    /// A GPU meter that fails to start (`fail_start`) or to stop.
    struct Broken {
        info: crate::meter::MeterInfo,
        fail_start: bool,
    }

    impl crate::meter::Meter for Broken {
        fn info(&self) -> &crate::meter::MeterInfo {
            &self.info
        }
        fn start(&mut self) -> Result<()> {
            if self.fail_start { Err(Error::Unsupported("start".into())) } else { Ok(()) }
        }
        fn stop(&mut self) -> Result<EnergyWindow> {
            Err(Error::Unsupported("counter vanished".into()))
        }
    }

    #[test]
    fn a_failing_gpu_meter_is_recorded_not_fatal() {
        let info = |i| crate::meter::MeterInfo {
            name: format!("broken {i}"),
            method: Method::NvmlCounter,
            device: DeviceKind::Gpu,
            device_index: i,
            scope: "GPU".into(),
            resolution_j: 1e-3,
            update_period_s: 0.01,
        };
        let cpu = crate::estimate::EstimateMeter::new(Path::new("/proc"), Some(10.0), std::time::Duration::ZERO);
        let mut sel = MeterSelection {
            cpu: Box::new(cpu),
            gpus: vec![
                Box::new(Broken { info: info(0), fail_start: true }),
                Box::new(Broken { info: info(1), fail_start: false }),
            ],
            absent: vec![],
        };
        start_all(&mut sel).unwrap();
        assert_eq!(sel.gpus.len(), 1);
        let windows = stop_all(&mut sel);
        assert_eq!(windows.len(), 1, "the CPU window is kept");
        let reasons: Vec<&str> = sel.absent.iter().map(|a| a.reason.as_str()).collect();
        assert!(reasons[0].starts_with("failed to start") && reasons[1].contains("counter vanished"), "{reasons:?}");
    }

    #[test]
    fn tracker_runs_nested_tasks_on_the_estimate() {
        let config = TrackerConfig {
            project_name: "t".into(),
            location: IntensityQuery { country: Some("atlantis".into()), ..Default::default() },
            meters: MeterConfig {
                powercap_root: PathBuf::from("/nonexistent-powercap"),
                nvml: false,
                estimate_sample_period: std::time::Duration::ZERO,
                ..Default::default()
            },
            ..Default::default()
        };
        let mut t = Tracker::new(config);
        assert!(t.stop().is_err());
        assert!(t.start_task("early").is_err());
        t.start().unwrap();
        t.start_task("outer").unwrap();
        t.start_task("inner").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(30));
        let inner = t.stop_task().unwrap();
        assert_eq!(inner.path, "outer/inner");
        let r = t.stop().unwrap(); // closes "outer" too
        assert_eq!(r.tasks.len(), 2);
        assert_eq!(r.tasks[1].path, "outer");
        assert!(r.tasks[1].duration_s >= inner.duration_s);
        assert_eq!(r.methods.cpu, Some(Method::Estimated));
        assert_eq!(r.intensity.level, IntensityLevel::World);
        assert!(r.energy_kwh.total > 0.0 && r.emissions_kg > 0.0);
        assert!(r.absent.iter().any(|a| a.meter == "rapl"));
        let row = r.to_csv_row();
        assert_eq!(row.cpu_energy_method, "estimated");
        assert_eq!(row.on_cloud, "N");
        // The JSON round-trips.
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<EmissionsReport>(&json).unwrap(), r);
    }
}
