//! GPU energy through NVML (`libnvidia-ml`, loaded at run time by nvml-wrapper: without it, an error, not a panic).
//!
//! * **`nvml-counter`**: `nvmlDeviceGetTotalEnergyConsumption` (mJ since driver load; Volta and newer). The counter
//!   only moves every few milliseconds; its update period is measured once per GPU (the counter is polled for up to
//!   0.5 s and the median time between changes taken) and windows shorter than it are flagged `too_short`, with
//!   their energy taken from an instant power reading × duration (method `nvml-power` for that window) instead of a
//!   misleading 0 J.
//! * **`nvml-power`** (GPUs without the counter): a thread samples power every `sample_period` (≤ 20 ms) and the
//!   samples are integrated by the trapezoid rule. It prefers the instant power field (`NVML_FI_DEV_POWER_INSTANT`),
//!   because `nvmlDeviceGetPowerUsage` is a 1 s moving average on Ampere and newer; when only the average exists,
//!   windows shorter than 1 s are flagged.
//! * **Contract**: the caller synchronises the GPU right before `start` and right before `stop`.
//! * **Device order**: meters follow `CUDA_VISIBLE_DEVICES` (indices or `GPU-` UUID prefixes), so meter *i* is CUDA
//!   device *i*. NVML numbers GPUs in PCI bus order; CUDA does the same only with `CUDA_DEVICE_ORDER=PCI_BUS_ID`
//!   (or when all GPUs are alike), which the harness should set.

use crate::integrate::integrate_trapezoid;
use crate::meter::{
    ComponentKind, DeviceKind, EnergyComponent, EnergyWindow, GpuState, Meter, MeterInfo, Method, not_started,
};
use joule_core::{Error, Result};
use nvml_wrapper::Nvml;
use nvml_wrapper::enum_wrappers::device::{Clock, TemperatureSensor};
use nvml_wrapper::enums::device::SampleValue;
use nvml_wrapper::structs::device::FieldId;
use std::collections::HashMap;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// `NVML_FI_DEV_POWER_INSTANT` from nvml.h (CUDA 12+ drivers): current board power, mW.
pub const NVML_FI_DEV_POWER_INSTANT: u32 = 186;
/// The longest power sampling period allowed.
pub const MAX_SAMPLE_PERIOD: Duration = Duration::from_millis(20);
/// `nvmlDeviceGetPowerUsage` averages over about a second on Ampere and newer.
const AVERAGED_POWER_PERIOD_S: f64 = 1.0;
/// Used when the counter's update period could not be measured (it did not move within the probe).
const FALLBACK_COUNTER_PERIOD_S: f64 = 0.1;
/// NVML energy is in mJ and power in mW.
const NVML_RESOLUTION_J: f64 = 1e-3;

/// NVML indices of the GPUs CUDA sees, in CUDA ordinal order.
///
/// `cuda_visible` is `CUDA_VISIBLE_DEVICES` (`None`: unset, all GPUs in NVML order); `uuids` the NVML UUIDs in NVML
/// index order. Entries are indices or UUID prefixes (`GPU-8a…`); like CUDA, parsing stops at the first entry that
/// is invalid or names no GPU, and a repeated GPU is ignored. An empty string hides every GPU. MIG instances
/// (`MIG-…`) are not measured per instance: they stop parsing too.
pub fn visible_gpu_indices(cuda_visible: Option<&str>, uuids: &[String]) -> Vec<usize> {
    let Some(list) = cuda_visible else { return (0..uuids.len()).collect() };
    let mut out = Vec::new();
    for entry in list.split(',').map(str::trim) {
        let found = if let Ok(i) = entry.parse::<usize>() {
            (i < uuids.len()).then_some(i)
        } else if entry.len() > 4 && entry.starts_with("GPU-") {
            let matches: Vec<usize> = (0..uuids.len()).filter(|&i| uuids[i].starts_with(entry)).collect();
            (matches.len() == 1).then(|| matches[0])
        } else {
            None
        };
        match found {
            Some(i) if !out.contains(&i) => out.push(i),
            Some(_) => {}
            None => break,
        }
    }
    out
}

/// The energy of a counter window, with the too-short rule applied. Pure, so synthetic counters test it.
///
/// Returns `(joules, method, too_short, notes)`. A counter that went backwards (driver reload) is not trusted: the
/// power fallback is used and noted.
pub(crate) fn counter_window(
    start_mj: u64,
    end_mj: u64,
    seconds: f64,
    update_period_s: f64,
    power_now_w: Option<f64>,
) -> (f64, Method, bool, Vec<String>) {
    let seconds = if seconds.is_finite() { seconds.max(0.0) } else { 0.0 };
    let too_short = seconds < update_period_s;
    let mut notes = Vec::new();
    let fallback = |why: String, notes: &mut Vec<String>| match power_now_w.filter(|p| p.is_finite() && *p >= 0.0) {
        Some(p) => {
            notes.push(format!("{why}: energy = instant power {p:.1} W × {seconds:.6} s"));
            (p * seconds, Method::NvmlPower)
        }
        None => {
            notes.push(format!("{why}: no power reading either, energy unknown (reported as counter delta)"));
            (end_mj.saturating_sub(start_mj) as f64 * 1e-3, Method::NvmlCounter)
        }
    };
    let (joules, method) = if end_mj < start_mj {
        fallback("energy counter went backwards (driver reload?)".into(), &mut notes)
    } else if too_short {
        fallback(
            format!("window {seconds:.6} s shorter than the energy counter's update period {update_period_s:.4} s"),
            &mut notes,
        )
    } else {
        ((end_mj - start_mj) as f64 * 1e-3, Method::NvmlCounter)
    };
    (joules, method, too_short, notes)
}

fn nvml_err(context: &str, e: impl std::fmt::Display) -> Error {
    Error::MeterUnavailable { meter: "nvml", reason: format!("{context}: {e}"), hint: None }
}

/// Loads NVML once per process (a failure is remembered and reported each time).
pub(crate) fn nvml() -> Result<Arc<Nvml>> {
    static NVML: OnceLock<std::result::Result<Arc<Nvml>, String>> = OnceLock::new();
    NVML.get_or_init(|| Nvml::init().map(Arc::new).map_err(|e| e.to_string())).clone().map_err(|reason| {
        Error::MeterUnavailable {
            meter: "nvml",
            reason,
            hint: Some("needs an NVIDIA driver (libnvidia-ml.so.1 on the library path)".into()),
        }
    })
}

fn read_power_w(nvml: &Nvml, index: u32, instant: bool) -> Option<f64> {
    let dev = nvml.device_by_index(index).ok()?;
    if instant {
        let values = dev.field_values_for(&[FieldId(NVML_FI_DEV_POWER_INSTANT)]).ok()?;
        let sample = values.into_iter().next()?.ok()?;
        let mw = match sample.value.ok()? {
            SampleValue::F64(v) => v,
            SampleValue::U32(v) => f64::from(v),
            SampleValue::U64(v) => v as f64,
            SampleValue::I64(v) => v as f64,
        };
        Some(mw * 1e-3)
    } else {
        dev.power_usage().ok().map(|mw| f64::from(mw) * 1e-3)
    }
}

fn read_state(nvml: &Nvml, index: u32) -> GpuState {
    let Ok(dev) = nvml.device_by_index(index) else { return GpuState::default() };
    GpuState {
        name: dev.name().ok(),
        sm_clock_mhz: dev.clock_info(Clock::SM).ok(),
        mem_clock_mhz: dev.clock_info(Clock::Memory).ok(),
        temperature_c: dev.temperature(TemperatureSensor::Gpu).ok(),
        power_limit_w: dev.enforced_power_limit().ok().map(|mw| f64::from(mw) * 1e-3),
        utilization_percent: dev.utilization_rates().ok().map(|u| u.gpu),
    }
}

/// Median interval between counter changes over up to 0.5 s, cached per GPU UUID.
fn counter_update_period(nvml: &Nvml, index: u32, uuid: &str) -> (f64, bool) {
    static CACHE: OnceLock<Mutex<HashMap<String, (f64, bool)>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(v) = cache.lock().unwrap_or_else(|p| p.into_inner()).get(uuid) {
        return *v;
    }
    let measured = (|| {
        let dev = nvml.device_by_index(index).ok()?;
        let t0 = Instant::now();
        let mut last = dev.total_energy_consumption().ok()?;
        let mut changes = Vec::new();
        while t0.elapsed() < Duration::from_millis(500) && changes.len() < 12 {
            std::thread::sleep(Duration::from_micros(500));
            let v = dev.total_energy_consumption().ok()?;
            if v != last {
                changes.push(t0.elapsed().as_secs_f64());
                last = v;
            }
        }
        let mut gaps: Vec<f64> = changes.windows(2).map(|w| w[1] - w[0]).collect();
        if gaps.len() < 2 {
            return None;
        }
        gaps.sort_by(f64::total_cmp);
        Some(gaps[gaps.len() / 2])
    })();
    let v = match measured {
        Some(p) => (p, true),
        None => (FALLBACK_COUNTER_PERIOD_S, false),
    };
    cache.lock().unwrap_or_else(|p| p.into_inner()).insert(uuid.to_owned(), v);
    v
}

/// The power sampling thread: a stop channel and the handle returning `(t_s, W)` samples.
type PowerSampler = (Sender<()>, JoinHandle<Vec<(f64, f64)>>);

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Counter,
    Power { instant: bool },
}

/// One GPU's NVML meter (`nvml-counter` where supported, else `nvml-power`). See the module documentation.
pub struct NvmlMeter {
    info: MeterInfo,
    nvml: Arc<Nvml>,
    index: u32,
    mode: Mode,
    sample_period: Duration,
    period_note: Option<String>,
    start: Option<(Instant, u64)>,
    sampler: Option<PowerSampler>,
}

impl NvmlMeter {
    /// The meters for every GPU CUDA sees (honouring `cuda_visible`, normally `CUDA_VISIBLE_DEVICES`), in CUDA
    /// ordinal order, and the reasons any visible GPU could not be metered. `sample_period` is clamped to at most
    /// 20 ms. Errors when NVML cannot be loaded.
    pub fn open_all(cuda_visible: Option<&str>, sample_period: Duration) -> Result<(Vec<Self>, Vec<String>)> {
        let nvml = nvml()?;
        let count = nvml.device_count().map_err(|e| nvml_err("device count", e))?;
        let mut uuids = Vec::with_capacity(count as usize);
        for i in 0..count {
            let dev = nvml.device_by_index(i).map_err(|e| nvml_err("device handle", e))?;
            uuids.push(dev.uuid().unwrap_or_default());
        }
        let sample_period = sample_period.clamp(Duration::from_millis(1), MAX_SAMPLE_PERIOD);
        let (mut meters, mut failed) = (Vec::new(), Vec::new());
        for (ordinal, i) in visible_gpu_indices(cuda_visible, &uuids).into_iter().enumerate() {
            match Self::open(Arc::clone(&nvml), i as u32, ordinal, &uuids[i], sample_period) {
                Ok(m) => meters.push(m),
                Err(e) => failed.push(format!("GPU {ordinal}: {e}")),
            }
        }
        Ok((meters, failed))
    }

    fn open(nvml: Arc<Nvml>, index: u32, ordinal: usize, uuid: &str, sample_period: Duration) -> Result<Self> {
        let dev = nvml.device_by_index(index).map_err(|e| nvml_err("device handle", e))?;
        let name = dev.name().unwrap_or_else(|_| "NVIDIA GPU".into());
        let (mode, update_period_s, period_note) = if dev.total_energy_consumption().is_ok() {
            let (p, measured) = counter_update_period(&nvml, index, uuid);
            let note = (!measured)
                .then(|| format!("counter update period not measurable (no change within 0.5 s): {p} s assumed"));
            (Mode::Counter, p, note)
        } else if read_power_w(&nvml, index, true).is_some() {
            (Mode::Power { instant: true }, sample_period.as_secs_f64(), None)
        } else if read_power_w(&nvml, index, false).is_some() {
            let note = "only the averaged power reading (≈1 s moving average) is available: short windows smear";
            (Mode::Power { instant: false }, AVERAGED_POWER_PERIOD_S, Some(note.to_owned()))
        } else {
            return Err(nvml_err(&format!("GPU {ordinal} ({name})"), "reports neither energy nor power"));
        };
        let method = if mode == Mode::Counter { Method::NvmlCounter } else { Method::NvmlPower };
        let info = MeterInfo {
            name: format!("NVML {name}"),
            method,
            device: DeviceKind::Gpu,
            device_index: ordinal,
            scope: format!("GPU {ordinal} board (NVML index {index})"),
            resolution_j: NVML_RESOLUTION_J,
            update_period_s,
        };
        Ok(Self { info, nvml, index, mode, sample_period, period_note, start: None, sampler: None })
    }

    fn stop_sampler(&mut self) -> Vec<(f64, f64)> {
        match self.sampler.take() {
            Some((tx, handle)) => {
                let _ = tx.send(());
                handle.join().unwrap_or_default()
            }
            None => Vec::new(),
        }
    }
}

impl Meter for NvmlMeter {
    fn info(&self) -> &MeterInfo {
        &self.info
    }

    fn start(&mut self) -> Result<()> {
        self.stop_sampler();
        match self.mode {
            Mode::Counter => {
                let dev = self.nvml.device_by_index(self.index).map_err(|e| nvml_err("device handle", e))?;
                let mj = dev.total_energy_consumption().map_err(|e| nvml_err("energy counter", e))?;
                self.start = Some((Instant::now(), mj));
            }
            Mode::Power { instant } => {
                let t0 = Instant::now();
                let (tx, rx) = mpsc::channel::<()>();
                let nvml = Arc::clone(&self.nvml);
                let (index, period) = (self.index, self.sample_period);
                let handle = std::thread::Builder::new()
                    .name("joule-nvml-power".into())
                    .spawn(move || {
                        let mut samples = Vec::new();
                        loop {
                            if let Some(w) = read_power_w(&nvml, index, instant) {
                                samples.push((t0.elapsed().as_secs_f64(), w));
                            }
                            match rx.recv_timeout(period) {
                                Err(RecvTimeoutError::Timeout) => {}
                                _ => break,
                            }
                        }
                        if let Some(w) = read_power_w(&nvml, index, instant) {
                            samples.push((t0.elapsed().as_secs_f64(), w));
                        }
                        samples
                    })
                    .map_err(|e| nvml_err("power sampling thread", e))?;
                self.sampler = Some((tx, handle));
                self.start = Some((t0, 0));
            }
        }
        Ok(())
    }

    fn stop(&mut self) -> Result<EnergyWindow> {
        let (t0, start_mj) = self.start.take().ok_or_else(|| not_started("nvml"))?;
        let mut notes: Vec<String> = self.period_note.iter().cloned().collect();
        let (joules, method, too_short, seconds) = match self.mode {
            Mode::Counter => {
                let dev = self.nvml.device_by_index(self.index).map_err(|e| nvml_err("device handle", e))?;
                let end_mj = dev.total_energy_consumption().map_err(|e| nvml_err("energy counter", e))?;
                let seconds = t0.elapsed().as_secs_f64();
                let power =
                    read_power_w(&self.nvml, self.index, true).or_else(|| read_power_w(&self.nvml, self.index, false));
                let (j, m, short, n) = counter_window(start_mj, end_mj, seconds, self.info.update_period_s, power);
                notes.extend(n);
                (j, m, short, seconds)
            }
            Mode::Power { .. } => {
                let samples = self.stop_sampler();
                let seconds = t0.elapsed().as_secs_f64();
                let short = seconds < self.info.update_period_s;
                let j = if samples.len() >= 2 {
                    integrate_trapezoid(&samples)
                } else if let Some(&(_, w)) = samples.first() {
                    notes.push(format!("one power sample only: energy = {w:.1} W × {seconds:.6} s"));
                    w * seconds
                } else {
                    notes.push("no power sample could be read during the window: energy unknown".into());
                    0.0
                };
                notes.push(format!("{} power samples, trapezoid rule", samples.len()));
                if short {
                    notes.push(format!(
                        "window {seconds:.6} s shorter than the power reading's period {} s",
                        self.info.update_period_s
                    ));
                }
                (j, Method::NvmlPower, short, seconds)
            }
        };
        let joules = if joules.is_finite() { joules.max(0.0) } else { 0.0 };
        Ok(EnergyWindow {
            joules,
            seconds,
            method,
            scope: self.info.scope.clone(),
            resolution_j: self.info.resolution_j,
            too_short,
            components: vec![EnergyComponent {
                name: format!("gpu-{}", self.info.device_index),
                kind: ComponentKind::Gpu,
                joules,
            }],
            gpu_state: Some(read_state(&self.nvml, self.index)),
            notes,
        })
    }
}

impl Drop for NvmlMeter {
    fn drop(&mut self) {
        self.stop_sampler();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A synthetic NVML counter: 26 W, the counter stepping every 10 ms (260 mJ per step).
    fn counter_at(t: f64) -> u64 {
        (t / 0.01).floor() as u64 * 260
    }

    #[test]
    fn stepping_counter_gives_the_right_energy() {
        let (t0, t1) = (0.005, 1.005);
        let (j, m, short, notes) = counter_window(counter_at(t0), counter_at(t1), t1 - t0, 0.01, Some(26.0));
        assert_eq!(m, Method::NvmlCounter);
        assert!(!short);
        assert!(notes.is_empty());
        assert!((j - 26.0).abs() <= 0.26 + 1e-9, "{j}");
    }

    #[test]
    fn window_shorter_than_one_step_is_flagged_not_zero() {
        let (t0, t1) = (0.001, 0.006);
        assert_eq!(counter_at(t0), counter_at(t1)); // the counter did not move
        let (j, m, short, notes) = counter_window(counter_at(t0), counter_at(t1), t1 - t0, 0.01, Some(26.0));
        assert!(short);
        assert_eq!(m, Method::NvmlPower);
        assert!((j - 26.0 * 0.005).abs() < 1e-9, "{j}");
        assert!(notes.iter().any(|n| n.contains("shorter")), "{notes:?}");
        // Without a power reading it is still flagged, with a note.
        let (_, _, short, notes) = counter_window(counter_at(t0), counter_at(t1), t1 - t0, 0.01, None);
        assert!(short && !notes.is_empty());
    }

    #[test]
    fn zero_negative_and_nan_durations_give_finite_energy() {
        for s in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let (j, _, _, _) = counter_window(1000, 1000, s, 0.01, Some(100.0));
            assert!(j.is_finite() && j >= 0.0, "{s}: {j}");
        }
        let (j, m, _, notes) = counter_window(5000, 1000, 1.0, 0.01, Some(50.0));
        assert_eq!((j, m), (50.0, Method::NvmlPower));
        assert!(notes[0].contains("backwards"));
    }

    #[test]
    fn cuda_visible_devices_mapping() {
        let uuids: Vec<String> = ["GPU-aaaa-1", "GPU-bbbb-2", "GPU-cccc-3"].map(String::from).into();
        assert_eq!(visible_gpu_indices(None, &uuids), vec![0, 1, 2]);
        assert_eq!(visible_gpu_indices(Some(""), &uuids), Vec::<usize>::new());
        assert_eq!(visible_gpu_indices(Some("2,0"), &uuids), vec![2, 0]);
        assert_eq!(visible_gpu_indices(Some("1, 7, 0"), &uuids), vec![1]); // stops at the invalid entry
        assert_eq!(visible_gpu_indices(Some("GPU-cccc,1,1"), &uuids), vec![2, 1]);
        assert_eq!(visible_gpu_indices(Some("GPU-"), &uuids), Vec::<usize>::new());
        assert_eq!(visible_gpu_indices(Some("MIG-xyz"), &uuids), Vec::<usize>::new());
    }
}
