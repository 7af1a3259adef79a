//! Choosing the best meter for each device, and saying why the others are absent.

use crate::estimate::EstimateMeter;
use crate::meter::{DeviceKind, Meter, MeterInfo};
use crate::nvml::NvmlMeter;
use crate::rapl::{DEFAULT_POWERCAP_ROOT, RaplMeter};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// Where meters read from and how they are tuned. `Default` reads the real system and `CUDA_VISIBLE_DEVICES`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeterConfig {
    /// The powercap root (`/sys/class/powercap`); tests point it at a fake tree.
    pub powercap_root: PathBuf,
    /// The procfs root (`/proc`), for the estimate's `cpuinfo`, `meminfo` and `stat`.
    pub proc_root: PathBuf,
    /// A CPU power (W at full load) for the estimate, overriding the CodeCarbon table.
    pub cpu_tdp_w: Option<f64>,
    /// Use the estimate for the CPU even where RAPL works.
    pub force_estimate: bool,
    /// Try NVML for GPUs.
    pub nvml: bool,
    /// The `CUDA_VISIBLE_DEVICES` to honour (`None`: unset, every GPU).
    pub cuda_visible_devices: Option<String>,
    /// RAPL poll period; `None` derives it from the counter ranges (at most 1 s).
    pub rapl_poll_period: Option<Duration>,
    /// NVML power sampling period (clamped to at most 20 ms).
    pub nvml_sample_period: Duration,
    /// Utilisation sampling period of the estimate (`Duration::ZERO`: once per window).
    pub estimate_sample_period: Duration,
}

impl Default for MeterConfig {
    fn default() -> Self {
        Self {
            powercap_root: PathBuf::from(DEFAULT_POWERCAP_ROOT),
            proc_root: PathBuf::from("/proc"),
            cpu_tdp_w: None,
            force_estimate: false,
            nvml: true,
            cuda_visible_devices: std::env::var("CUDA_VISIBLE_DEVICES").ok(),
            rapl_poll_period: None,
            nvml_sample_period: Duration::from_millis(10),
            estimate_sample_period: Duration::from_secs(1),
        }
    }
}

/// A meter that is not used, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AbsentMeter {
    /// "rapl", "nvml", ...
    pub meter: String,
    /// The device kind it would have covered.
    pub device: DeviceKind,
    /// Why it is not used (with a hint where one helps).
    pub reason: String,
}

/// The meters chosen for this machine: one for the CPU (always: RAPL, else the estimate), one per visible GPU.
pub struct MeterSelection {
    /// The CPU (+ RAM) meter.
    pub cpu: Box<dyn Meter>,
    /// One meter per GPU, in CUDA ordinal order.
    pub gpus: Vec<Box<dyn Meter>>,
    /// Meters that could not be used, each reported once.
    pub absent: Vec<AbsentMeter>,
}

impl MeterSelection {
    /// The chosen meters' descriptions, CPU first.
    pub fn infos(&self) -> Vec<MeterInfo> {
        std::iter::once(self.cpu.info().clone()).chain(self.gpus.iter().map(|m| m.info().clone())).collect()
    }

    /// Every chosen meter, CPU first (to start or stop them together).
    pub fn all_mut(&mut self) -> impl Iterator<Item = &mut Box<dyn Meter>> {
        std::iter::once(&mut self.cpu).chain(self.gpus.iter_mut())
    }
}

/// Picks the best meter per device: RAPL for the CPU where readable, else the labelled estimate; NVML per visible
/// GPU (counter where supported, else power sampling). Never fails: what cannot be used goes to `absent`.
pub fn select_meters(config: &MeterConfig) -> MeterSelection {
    let mut absent = Vec::new();
    let rapl = if config.force_estimate {
        absent.push(AbsentMeter {
            meter: "rapl".into(),
            device: DeviceKind::Cpu,
            reason: "not tried: the estimate was requested".into(),
        });
        None
    } else {
        let opened = match config.rapl_poll_period {
            None => RaplMeter::open(&config.powercap_root),
            Some(p) => RaplMeter::with_fs(std::sync::Arc::new(crate::rapl::RealFs), &config.powercap_root, Some(p)),
        };
        match opened {
            Ok(m) => Some(m),
            Err(e) => {
                absent.push(AbsentMeter { meter: "rapl".into(), device: DeviceKind::Cpu, reason: e.to_string() });
                None
            }
        }
    };
    let cpu: Box<dyn Meter> = match rapl {
        Some(m) => Box::new(m),
        None => Box::new(EstimateMeter::new(&config.proc_root, config.cpu_tdp_w, config.estimate_sample_period)),
    };
    let mut gpus: Vec<Box<dyn Meter>> = Vec::new();
    if config.nvml {
        match NvmlMeter::open_all(config.cuda_visible_devices.as_deref(), config.nvml_sample_period) {
            Ok((meters, failed)) => {
                if meters.is_empty() && failed.is_empty() {
                    let why = match &config.cuda_visible_devices {
                        Some(v) => format!("NVML loaded, but no GPU is visible (CUDA_VISIBLE_DEVICES={v:?})"),
                        None => "NVML loaded, but it reports no GPU".into(),
                    };
                    absent.push(AbsentMeter { meter: "nvml".into(), device: DeviceKind::Gpu, reason: why });
                }
                for reason in failed {
                    absent.push(AbsentMeter { meter: "nvml".into(), device: DeviceKind::Gpu, reason });
                }
                gpus.extend(meters.into_iter().map(|m| Box::new(m) as Box<dyn Meter>));
            }
            Err(e) => absent.push(AbsentMeter { meter: "nvml".into(), device: DeviceKind::Gpu, reason: e.to_string() }),
        }
    } else {
        absent.push(AbsentMeter { meter: "nvml".into(), device: DeviceKind::Gpu, reason: "disabled".into() });
    }
    MeterSelection { cpu, gpus, absent }
}
