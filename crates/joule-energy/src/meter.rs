//! The meter trait and the data every reading carries.

use serde::{Deserialize, Serialize};
use std::fmt;

/// How an energy figure was obtained. Shown next to every number; an estimate is never shown as a measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// NVML's total-energy counter (millijoules since driver load; Volta and newer).
    NvmlCounter,
    /// NVML power readings (instant power where the driver offers it) sampled by a thread and integrated (trapezoid).
    NvmlPower,
    /// Linux powercap RAPL counters (package and DRAM domains).
    Rapl,
    /// A model, not a measurement: CPU TDP × measured utilisation, plus RAM power per GB.
    Estimated,
}

impl Method {
    /// The label used in output files and on screen: `nvml-counter`, `nvml-power`, `rapl`, `estimated`.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::NvmlCounter => "nvml-counter",
            Method::NvmlPower => "nvml-power",
            Method::Rapl => "rapl",
            Method::Estimated => "estimated",
        }
    }

    /// True for the methods that read a hardware energy or power sensor.
    pub fn is_measurement(self) -> bool {
        !matches!(self, Method::Estimated)
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The kind of device a meter covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeviceKind {
    /// The host CPU(s) (and, for RAPL DRAM or the estimate, host memory).
    Cpu,
    /// One GPU.
    Gpu,
}

impl fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DeviceKind::Cpu => "cpu",
            DeviceKind::Gpu => "gpu",
        })
    }
}

/// What a meter is and how precise it can be.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeterInfo {
    /// Human-readable name, e.g. "RAPL (powercap)", "NVML NVIDIA H200", "estimate (TDP × utilisation)".
    pub name: String,
    /// How this meter obtains energy.
    pub method: Method,
    /// The device kind it covers.
    pub device: DeviceKind,
    /// The device's index: the CUDA ordinal for GPUs (position in `CUDA_VISIBLE_DEVICES`), 0 for the CPU meter.
    pub device_index: usize,
    /// What is covered, e.g. "package-0+dram-0", "GPU 0 board", "whole machine CPU (TDP 125 W) + 16 GB RAM".
    pub scope: String,
    /// The smallest energy step the meter can resolve, in joules.
    pub resolution_j: f64,
    /// How often the underlying counter or sensor updates, in seconds. Windows shorter than this are flagged.
    pub update_period_s: f64,
}

impl MeterInfo {
    /// The shortest window worth measuring with this meter: `max(1 s, 50 × update_period_s)`, so that the
    /// quantisation of the window edges (at most one update period each) stays within about 2 % of the window.
    pub fn min_window_s(&self) -> f64 {
        let p = finite_or_zero(self.update_period_s).max(0.0);
        (50.0 * p).max(1.0)
    }
}

/// Which part of the machine an [`EnergyComponent`] belongs to (CodeCarbon's cpu / gpu / ram split).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ComponentKind {
    /// CPU package(s) (RAPL package / psys domain, or the CPU part of the estimate).
    Cpu,
    /// Host memory (RAPL DRAM domain, or the RAM part of the estimate).
    Ram,
    /// A GPU board.
    Gpu,
}

/// The energy of one domain inside a window (a RAPL domain, the estimate's CPU or RAM part, one GPU).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnergyComponent {
    /// Domain name, e.g. "package-0", "dram-0", "cpu", "ram", "gpu-0".
    pub name: String,
    /// Which part of the machine it belongs to.
    pub kind: ComponentKind,
    /// Energy in joules (finite, ≥ 0).
    pub joules: f64,
}

/// Clocks, temperature and power limit of a GPU, read at the end of a window.
/// Each field is `None` when the driver does not report it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GpuState {
    /// Device name as NVML reports it.
    pub name: Option<String>,
    /// SM clock, MHz.
    pub sm_clock_mhz: Option<u32>,
    /// Memory clock, MHz.
    pub mem_clock_mhz: Option<u32>,
    /// GPU temperature, °C.
    pub temperature_c: Option<u32>,
    /// Enforced power limit, W.
    pub power_limit_w: Option<f64>,
    /// GPU utilisation over the driver's last sample period, percent.
    pub utilization_percent: Option<u32>,
}

/// The energy one meter saw between `start` and `stop`.
///
/// Invariants: `joules` and `seconds` are finite and ≥ 0 (never NaN or inf, also for zero or negative durations);
/// `joules` is the sum of `components`. A window shorter than the meter's update period has `too_short = true`
/// and a note saying how its energy was obtained; it is never silently reported as 0 J.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnergyWindow {
    /// Energy in joules.
    pub joules: f64,
    /// Wall-clock length of the window, seconds.
    pub seconds: f64,
    /// How the energy was obtained.
    pub method: Method,
    /// What was covered (copied from [`MeterInfo::scope`]).
    pub scope: String,
    /// The meter's resolution, joules.
    pub resolution_j: f64,
    /// The window was shorter than the meter's update period: its energy is unreliable (see `notes`).
    pub too_short: bool,
    /// Energy per domain.
    pub components: Vec<EnergyComponent>,
    /// GPU clocks, temperature and power limit at the end of the window (GPU meters only).
    pub gpu_state: Option<GpuState>,
    /// Anything a reader should know: dropped deltas, wraps, fallbacks, permission problems.
    pub notes: Vec<String>,
}

impl EnergyWindow {
    /// Average power over the window, W; `None` when the window has no positive duration.
    pub fn average_power_w(&self) -> Option<f64> {
        if self.seconds > 0.0 && self.seconds.is_finite() {
            let p = self.joules / self.seconds;
            p.is_finite().then_some(p)
        } else {
            None
        }
    }

    /// Energy of the components of one kind, joules.
    pub fn joules_of(&self, kind: ComponentKind) -> f64 {
        self.components.iter().filter(|c| c.kind == kind).map(|c| c.joules).sum()
    }

    /// Resolution relative to the measured energy (e.g. 0.01 = 1 %); `None` when no energy was measured.
    pub fn relative_resolution(&self) -> Option<f64> {
        (self.joules > 0.0).then(|| self.resolution_j / self.joules)
    }
}

/// One device's energy meter.
///
/// **Contract for GPU meters:** the caller synchronises the GPU (e.g. `stream.synchronize()`) immediately before
/// [`start`](Meter::start) and immediately before [`stop`](Meter::stop), so that the window contains exactly the work
/// launched between them; the meter cannot see queued work. CPU meters need no synchronisation.
///
/// `start` after `start` restarts the window; `stop` without `start` is an error, not a panic.
pub trait Meter: Send {
    /// What this meter is.
    fn info(&self) -> &MeterInfo;
    /// Opens a window (the caller has synchronised the GPU).
    fn start(&mut self) -> joule_core::Result<()>;
    /// Closes the window and returns its energy (the caller has synchronised the GPU).
    fn stop(&mut self) -> joule_core::Result<EnergyWindow>;
}

/// `x` when finite, else 0. Used wherever a division by a zero duration could otherwise produce NaN or inf.
pub fn finite_or_zero(x: f64) -> f64 {
    if x.is_finite() { x } else { 0.0 }
}

/// Error for `stop` without `start`.
pub(crate) fn not_started(meter: &str) -> joule_core::Error {
    joule_core::Error::InvalidArgument(format!("{meter}: stop() called without start()"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_labels_in_json_and_display() {
        for (m, s) in [
            (Method::NvmlCounter, "nvml-counter"),
            (Method::NvmlPower, "nvml-power"),
            (Method::Rapl, "rapl"),
            (Method::Estimated, "estimated"),
        ] {
            assert_eq!(m.to_string(), s);
            assert_eq!(serde_json::to_string(&m).unwrap(), format!("\"{s}\""));
            assert_eq!(serde_json::from_str::<Method>(&format!("\"{s}\"")).unwrap(), m);
        }
    }

    #[test]
    fn min_window_and_power_never_nan() {
        let mut info = MeterInfo {
            name: "x".into(),
            method: Method::Rapl,
            device: DeviceKind::Cpu,
            device_index: 0,
            scope: "s".into(),
            resolution_j: 1e-6,
            update_period_s: 0.1,
        };
        assert_eq!(info.min_window_s(), 5.0);
        info.update_period_s = 0.001;
        assert_eq!(info.min_window_s(), 1.0);
        info.update_period_s = f64::NAN;
        assert_eq!(info.min_window_s(), 1.0);
        let w = EnergyWindow {
            joules: 0.0,
            seconds: 0.0,
            method: Method::Rapl,
            scope: "s".into(),
            resolution_j: 1e-6,
            too_short: true,
            components: vec![],
            gpu_state: None,
            notes: vec![],
        };
        assert_eq!(w.average_power_w(), None);
        assert_eq!(w.relative_resolution(), None);
    }
}
