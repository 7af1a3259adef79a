//! The results schema (versioned JSON), its CSV projection, and atomic file writing.

use crate::catalog::NamedShape;
use crate::machine::MachineInfo;
use crate::measure::{IdleBaseline, LoopConfig};
use crate::plan::{BackendStatus, KernelKind, ShapeSet};
use crate::stats::Spread;
use joule_core::{DType, Error, ErrorStats, Result, Tolerance};
use joule_energy::{MeterInfo, Method};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The schema version this build writes and reads. Bump it when a field changes meaning or disappears.
pub const SCHEMA_VERSION: u32 = 1;

/// One `joule run`: machine, settings, meters and one row per measured case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultsFile {
    /// [`SCHEMA_VERSION`] of the writer.
    pub schema_version: u32,
    /// Version of Joule that wrote the file.
    pub joule_version: String,
    /// When the run started, UTC (`YYYY-MM-DDTHH:MM:SSZ`).
    pub created_utc: String,
    /// The command line, for reproduction.
    pub command: String,
    /// Shape sets measured.
    pub sets: Vec<ShapeSet>,
    /// The machine.
    pub machine: MachineInfo,
    /// How the run measured.
    pub settings: RunSettings,
    /// The meters used (one per device measured).
    pub meters: Vec<MeterInfo>,
    /// Meters that could not be used here, and why.
    pub absent_meters: Vec<AbsentMeterNote>,
    /// Idle baselines, when measured (`--idle-baseline`): reported separately, subtracted only when
    /// `settings.subtract_idle` is set.
    pub idle_baselines: Vec<IdleBaseline>,
    /// Backends that exist in this build but could not run here, with the reason.
    pub skipped_backends: Vec<BackendStatus>,
    /// Backends that ran, with what they are.
    pub backends: Vec<BackendNote>,
    /// Cases that failed (error from the kernel or the oracle) and why; they have no row.
    pub failures: Vec<CaseFailure>,
    /// One row per measured case.
    pub rows: Vec<ResultRow>,
}

/// Settings of the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSettings {
    /// The measuring loop's settings.
    pub loop_config: LoopConfig,
    /// `--quick`: CI-sized shapes and shortened windows (energy less precise; every row says so).
    pub quick: bool,
    /// Pause between cases, seconds.
    pub cooldown_s: f64,
    /// Multiply-add budget of the float64 oracle per case.
    pub oracle_budget_macs: u64,
    /// Base seed of the inputs.
    pub seed: u64,
    /// Whether idle power was subtracted from the energy figures.
    pub subtract_idle: bool,
}

/// A meter that could not be used, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AbsentMeterNote {
    /// Meter name.
    pub meter: String,
    /// Why it is absent.
    pub reason: String,
}

/// A backend that ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackendNote {
    /// Name.
    pub name: String,
    /// What it is.
    pub description: String,
}

/// A case that could not be measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseFailure {
    /// Case id.
    pub id: String,
    /// The error.
    pub error: String,
}

/// How the energy of a row was obtained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnergyLabel {
    /// `nvml-counter`, `nvml-power`, `rapl` or `estimated`.
    pub method: Method,
    /// The meter's name.
    pub meter: String,
    /// What the meter covers.
    pub scope: String,
    /// The meter's resolution, joules.
    pub resolution_j: f64,
    /// Idle power subtracted, W (`None` when nothing was subtracted).
    pub idle_subtracted_w: Option<f64>,
    /// Trials whose window the meter flagged as too short.
    pub too_short_trials: usize,
}

/// Numerical error against the float64 oracle, with the pass rule's verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Accuracy {
    /// `full`, or the sub-problem the oracle covered.
    pub oracle_scope: String,
    /// Whether the whole output was checked.
    pub oracle_full: bool,
    /// Reduction length the tolerance was computed for.
    pub reduction_len: usize,
    /// Elements compared.
    pub n: usize,
    /// `‖out − ref‖₂ / ‖ref‖₂` (`None` when not finite).
    pub rel_l2: Option<f64>,
    /// `max|out − ref| / max|ref|` (`None` when not finite).
    pub max_abs_normalized: Option<f64>,
    /// Largest relative error over elements not dominated by cancellation (`None` when not finite).
    pub max_rel: Option<f64>,
    /// NaN/Inf where the reference is finite (or the reverse).
    pub nonfinite_mismatch: usize,
    /// The tolerance of [`Tolerance::for_dtype`].
    pub tolerance: Tolerance,
    /// Whether the pass rule holds.
    pub pass: bool,
    /// Which bound failed, when it did.
    pub failure: Option<String>,
}

fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

impl Accuracy {
    /// The verdict of the pass rule for `stats` under `tolerance`.
    pub fn from_stats(stats: &ErrorStats, tolerance: Tolerance, scope: &str, full: bool, k: usize) -> Accuracy {
        let check = stats.check(&tolerance);
        Accuracy {
            oracle_scope: scope.into(),
            oracle_full: full,
            reduction_len: k,
            n: stats.n,
            rel_l2: finite(stats.rel_l2),
            max_abs_normalized: finite(stats.max_abs_normalized()),
            max_rel: finite(stats.max_rel),
            nonfinite_mismatch: stats.nonfinite_mismatch,
            tolerance,
            pass: check.is_ok(),
            failure: check.err(),
        }
    }
}

/// One measured case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultRow {
    /// `kernel/dtype/shape/backend`.
    pub id: String,
    /// Kernel.
    pub kernel: KernelKind,
    /// Storage precision.
    pub dtype: DType,
    /// Backend.
    pub backend: String,
    /// The named shape.
    pub shape: NamedShape,
    /// FLOPs per call.
    pub flops: u64,
    /// Minimum bytes per call.
    pub min_bytes: u64,
    /// `flops / min_bytes`, FLOP per byte.
    pub intensity: f64,
    /// Calls per energy window (last trial).
    pub calls_per_trial: usize,
    /// Energy window aimed for, seconds.
    pub target_window_s: f64,
    /// Length of each trial's window, seconds.
    pub trial_seconds: Vec<f64>,
    /// Seconds per call.
    pub time_per_call_s: Spread,
    /// GFLOP/s.
    pub gflops: Spread,
    /// Achieved GB/s (min_bytes / time).
    pub gbps: Spread,
    /// Joules per call (`None` when the meter saw no energy).
    pub joules_per_call: Option<Spread>,
    /// GFLOP per joule.
    pub gflop_per_j: Option<Spread>,
    /// Picojoules per FLOP.
    pub pj_per_flop: Option<Spread>,
    /// Average power over the windows, W.
    pub avg_power_w: Option<Spread>,
    /// How the energy was obtained.
    pub energy: EnergyLabel,
    /// Error against the oracle.
    pub accuracy: Accuracy,
    /// Anything a reader should know (shortened windows, retries, meter notes).
    pub notes: Vec<String>,
}

impl ResultsFile {
    /// Serialises to pretty JSON.
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string_pretty(self)
            .map_err(|e| Error::Parse { what: "results (serialising)".into(), reason: e.to_string() })
    }

    /// Parses JSON, checking the schema version. `what` names the source in errors.
    pub fn from_json(text: &str, what: &str) -> Result<ResultsFile> {
        let probe: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| Error::Parse { what: format!("{what} as JSON"), reason: e.to_string() })?;
        match probe.get("schema_version").and_then(|v| v.as_u64()) {
            None => {
                return Err(Error::Parse {
                    what: what.into(),
                    reason: "no `schema_version`: not a Joule results file".into(),
                });
            }
            Some(v) if v > SCHEMA_VERSION as u64 => {
                return Err(Error::Unsupported(format!(
                    "{what} has schema version {v}; this build reads up to {SCHEMA_VERSION} (update Joule)"
                )));
            }
            Some(_) => {}
        }
        serde_json::from_value(probe)
            .map_err(|e| Error::Parse { what: format!("{what} as Joule results"), reason: e.to_string() })
    }

    /// Reads a results file.
    pub fn load(path: &Path) -> Result<ResultsFile> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::from_json(&text, &path.display().to_string())
    }

    /// The CSV projection: one line per row, the columns of [`CsvRow`].
    pub fn to_csv(&self) -> Result<String> {
        let mut w = csv::Writer::from_writer(Vec::new());
        for row in &self.rows {
            w.serialize(CsvRow::from(row))
                .map_err(|e| Error::Parse { what: "results (CSV)".into(), reason: e.to_string() })?;
        }
        let bytes = w.into_inner().map_err(|e| Error::Parse { what: "results (CSV)".into(), reason: e.to_string() })?;
        String::from_utf8(bytes).map_err(|e| Error::Parse { what: "results (CSV)".into(), reason: e.to_string() })
    }

    /// A file stem `<date>-<host>-<sets>` for this run.
    pub fn file_stem(&self) -> String {
        let date = self.created_utc.get(..10).unwrap_or("undated");
        let host: String = self
            .machine
            .hostname
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' })
            .collect();
        let sets: Vec<_> = self.sets.iter().map(|s| s.name()).collect();
        format!("{date}-{host}-{}", sets.join("+"))
    }

    /// Writes `<dir>/<stem>.json` and `<dir>/<stem>.csv` atomically and returns their paths.
    pub fn write(&self, dir: &Path, stem: &str) -> Result<(PathBuf, PathBuf)> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let json = dir.join(format!("{stem}.json"));
        let csv = dir.join(format!("{stem}.csv"));
        write_atomic(&json, self.to_json()?.as_bytes())?;
        write_atomic(&csv, self.to_csv()?.as_bytes())?;
        Ok((json, csv))
    }
}

/// A row of the CSV file (flat; the JSON has everything, the CSV the figures most people plot).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CsvRow {
    /// Case id.
    pub id: String,
    /// Kernel.
    pub kernel: String,
    /// dtype.
    pub dtype: String,
    /// Backend.
    pub backend: String,
    /// Shape name.
    pub shape: String,
    /// FLOPs per call.
    pub flops: u64,
    /// Minimum bytes per call.
    pub min_bytes: u64,
    /// FLOP/byte.
    pub intensity: f64,
    /// Calls per window.
    pub calls_per_trial: usize,
    /// Trials.
    pub trials: usize,
    /// Seconds per call, p10.
    pub time_per_call_s_p10: f64,
    /// Seconds per call, median.
    pub time_per_call_s_p50: f64,
    /// Seconds per call, p90.
    pub time_per_call_s_p90: f64,
    /// GFLOP/s, median.
    pub gflops_p50: f64,
    /// GB/s, median.
    pub gbps_p50: f64,
    /// J per call, p10.
    pub joules_per_call_p10: Option<f64>,
    /// J per call, median.
    pub joules_per_call_p50: Option<f64>,
    /// J per call, p90.
    pub joules_per_call_p90: Option<f64>,
    /// GFLOP/J, median.
    pub gflop_per_j_p50: Option<f64>,
    /// pJ/FLOP, median.
    pub pj_per_flop_p50: Option<f64>,
    /// W, median.
    pub avg_power_w_p50: Option<f64>,
    /// Energy method label.
    pub energy_method: String,
    /// Energy scope.
    pub energy_scope: String,
    /// Idle W subtracted.
    pub idle_subtracted_w: Option<f64>,
    /// Oracle scope.
    pub oracle_scope: String,
    /// Relative L2 error.
    pub rel_l2: Option<f64>,
    /// Normalised max abs error.
    pub max_abs_normalized: Option<f64>,
    /// Tolerance on rel_l2.
    pub tol_rel_l2: f64,
    /// Tolerance on the normalised max abs error.
    pub tol_max_abs_normalized: f64,
    /// Pass rule verdict.
    pub pass: bool,
}

impl From<&ResultRow> for CsvRow {
    fn from(r: &ResultRow) -> Self {
        CsvRow {
            id: r.id.clone(),
            kernel: r.kernel.name().into(),
            dtype: r.dtype.name().into(),
            backend: r.backend.clone(),
            shape: r.shape.name.clone(),
            flops: r.flops,
            min_bytes: r.min_bytes,
            intensity: r.intensity,
            calls_per_trial: r.calls_per_trial,
            trials: r.trial_seconds.len(),
            time_per_call_s_p10: r.time_per_call_s.p10,
            time_per_call_s_p50: r.time_per_call_s.p50,
            time_per_call_s_p90: r.time_per_call_s.p90,
            gflops_p50: r.gflops.p50,
            gbps_p50: r.gbps.p50,
            joules_per_call_p10: r.joules_per_call.map(|s| s.p10),
            joules_per_call_p50: r.joules_per_call.map(|s| s.p50),
            joules_per_call_p90: r.joules_per_call.map(|s| s.p90),
            gflop_per_j_p50: r.gflop_per_j.map(|s| s.p50),
            pj_per_flop_p50: r.pj_per_flop.map(|s| s.p50),
            avg_power_w_p50: r.avg_power_w.map(|s| s.p50),
            energy_method: r.energy.method.as_str().into(),
            energy_scope: r.energy.scope.clone(),
            idle_subtracted_w: r.energy.idle_subtracted_w,
            oracle_scope: r.accuracy.oracle_scope.clone(),
            rel_l2: r.accuracy.rel_l2,
            max_abs_normalized: r.accuracy.max_abs_normalized,
            tol_rel_l2: r.accuracy.tolerance.rel_l2,
            tol_max_abs_normalized: r.accuracy.tolerance.max_abs_normalized,
            pass: r.accuracy.pass,
        }
    }
}

/// Reads a CSV written by [`ResultsFile::to_csv`].
pub fn read_csv(text: &str) -> Result<Vec<CsvRow>> {
    csv::Reader::from_reader(text.as_bytes())
        .deserialize()
        .collect::<std::result::Result<Vec<CsvRow>, _>>()
        .map_err(|e| Error::Parse { what: "results CSV".into(), reason: e.to_string() })
}

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename, so a reader never sees a
/// half-written file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "out".into());
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(path, e));
    }
    Ok(())
}
