//! RAPL through Linux powercap (`/sys/class/powercap/intel-rapl:*`).
//!
//! * **Domains, without double counting.** psys (the platform) contains the packages; a package contains its core
//!   and uncore (graphics) sub-domains; DRAM is separate from the package. So the meter sums every `package-N` and
//!   every `dram` sub-domain, and uses `psys` alone only when there is no package domain. `intel-rapl-mmio:*` zones
//!   repeat a package domain through MMIO and are skipped. [`RaplDiscovery::skipped`] says why each other zone is
//!   left out.
//! * **Wraparound.** `energy_uj` wraps at `max_energy_range_uj` (about 262 kJ for a package: minutes at full load).
//!   A poller thread reads every counter often enough that at most one wrap happens between reads (the period is
//!   derived from the smallest range at an assumed 1 kW, capped at 1 s), so a long window may contain many wraps.
//!   A decrease without a known `max_energy_range_uj` is dropped (and noted), never added as a negative delta.
//! * **Permission.** Since CVE-2020-8694 (PLATYPUS) `energy_uj` is readable by root only. An unreadable counter makes
//!   [`RaplMeter::open`] fail with [`joule_core::Error::MeterUnavailable`] (reason "permission denied", and a hint),
//!   once for the meter, not once per domain.
//! * **Testing.** All file access goes through [`PowercapFs`], and the root is a parameter, so tests run on fake trees
//!   and inject read errors (a mode-000 file does not stop root).

use crate::integrate::counter_delta;
use crate::meter::{ComponentKind, DeviceKind, EnergyComponent, EnergyWindow, Meter, MeterInfo, Method, not_started};
use joule_core::{Error, Result};
use serde::{Deserialize, Serialize};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The default powercap root.
pub const DEFAULT_POWERCAP_ROOT: &str = "/sys/class/powercap";

/// Typical RAPL energy status unit, 2⁻¹⁴ J (61 µJ). sysfs reports µJ and does not expose the hardware unit.
pub const RAPL_RESOLUTION_J: f64 = 1.0 / 16384.0;

/// RAPL counters update about every millisecond (Intel SDM, "RAPL interfaces").
pub const RAPL_UPDATE_PERIOD_S: f64 = 0.001;

/// The power assumed when deriving the poll period from the counter ranges (generous for one socket).
const ASSUMED_MAX_POWER_W: f64 = 1000.0;

const PERMISSION_HINT: &str = "RAPL counters are root-only since CVE-2020-8694: run as root, or grant read access, \
     e.g. `sudo chmod a+r /sys/class/powercap/intel-rapl:*/energy_uj` (until reboot) or a udev rule";

/// File access for the RAPL reader, so tests can use fake trees and inject errors.
pub trait PowercapFs: Send + Sync {
    /// Reads a whole file as text.
    fn read_to_string(&self, path: &Path) -> io::Result<String>;
    /// Lists the entries of a directory (full paths).
    fn read_dir(&self, path: &Path) -> io::Result<Vec<PathBuf>>;
}

/// The real file system.
#[derive(Debug, Clone, Copy, Default)]
pub struct RealFs;

impl PowercapFs for RealFs {
    fn read_to_string(&self, path: &Path) -> io::Result<String> {
        std::fs::read_to_string(path)
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<PathBuf>> {
        std::fs::read_dir(path)?.map(|e| e.map(|e| e.path())).collect()
    }
}

/// One RAPL domain the meter sums.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RaplDomain {
    /// Label used in scopes and components: "package-0", "dram-0", "psys".
    pub label: String,
    /// The powercap zone, e.g. "intel-rapl:0:2".
    pub zone: String,
    /// The zone's directory.
    pub path: PathBuf,
    /// CPU (package, psys) or RAM (dram).
    pub kind: ComponentKind,
    /// The counter's range in µJ; `None` when `max_energy_range_uj` is missing or unreadable.
    pub max_energy_range_uj: Option<u64>,
}

/// The result of scanning a powercap tree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RaplDiscovery {
    /// The domains to sum (no overlaps).
    pub selected: Vec<RaplDomain>,
    /// `(zone and name, why it is not summed)` for every other zone found.
    pub skipped: Vec<(String, String)>,
}

struct Zone {
    zone: String,
    path: PathBuf,
    name: String,
    /// `intel-rapl:N` → (N, None); `intel-rapl:N:M` → (N, Some(M)).
    index: (u32, Option<u32>),
}

fn parse_zone_index(zone: &str) -> Option<(u32, Option<u32>)> {
    let rest = zone.strip_prefix("intel-rapl:")?;
    let mut parts = rest.split(':');
    let a = parts.next()?.parse().ok()?;
    let b = match parts.next() {
        Some(s) => Some(s.parse().ok()?),
        None => None,
    };
    if parts.next().is_some() {
        return None;
    }
    Some((a, b))
}

fn unavailable(reason: impl Into<String>, hint: Option<&str>) -> Error {
    Error::MeterUnavailable { meter: "rapl", reason: reason.into(), hint: hint.map(str::to_owned) }
}

fn read_u64(fs: &dyn PowercapFs, path: &Path) -> io::Result<u64> {
    let text = fs.read_to_string(path)?;
    text.trim()
        .parse::<u64>()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", path.display())))
}

/// Scans `root` for RAPL zones and picks the domains to sum (see the module documentation).
pub fn discover(fs: &dyn PowercapFs, root: &Path) -> Result<RaplDiscovery> {
    let entries = fs.read_dir(root).map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            unavailable(
                format!("no powercap directory at {}", root.display()),
                Some("RAPL needs Linux on bare-metal Intel or AMD x86; virtual machines rarely expose it"),
            )
        } else {
            unavailable(format!("cannot list {}: {e}", root.display()), None)
        }
    })?;
    let mut zones = Vec::new();
    let mut skipped = Vec::new();
    for path in entries {
        let Some(file) = path.file_name().and_then(|f| f.to_str()).map(str::to_owned) else { continue };
        if file.starts_with("intel-rapl-mmio") {
            skipped.push((file, "MMIO view of a package domain already read through MSRs (double counting)".into()));
            continue;
        }
        let Some(index) = parse_zone_index(&file) else { continue };
        let name = match fs.read_to_string(&path.join("name")) {
            Ok(n) => n.trim().to_owned(),
            Err(e) => {
                skipped.push((file, format!("cannot read its name: {e}")));
                continue;
            }
        };
        zones.push(Zone { zone: file, path, name, index });
    }
    zones.sort_by_key(|z| z.index);
    let has_package = zones.iter().any(|z| z.index.1.is_none() && z.name.starts_with("package"));
    let mut selected = Vec::new();
    for z in &zones {
        let what = format!("{} ({})", z.zone, z.name);
        let (label, kind) = match (z.index.1, z.name.as_str()) {
            (None, n) if n.starts_with("package") => (n.to_owned(), ComponentKind::Cpu),
            (None, "psys") if has_package => {
                skipped.push((what, "psys (platform) contains the packages: summing both would double count".into()));
                continue;
            }
            (None, "psys") => ("psys".to_owned(), ComponentKind::Cpu),
            (None, "dram") if has_package => ("dram".to_owned(), ComponentKind::Ram),
            (Some(_), "dram") if has_package => (format!("dram-{}", z.index.0), ComponentKind::Ram),
            (_, "dram") => {
                skipped.push((what, "psys (platform) already contains DRAM".into()));
                continue;
            }
            (Some(_), n) => {
                skipped.push((what, format!("{n} is inside package-{} (double counting)", z.index.0)));
                continue;
            }
            (None, n) => {
                skipped.push((what, format!("unknown top-level domain {n:?}: not summed")));
                continue;
            }
        };
        let max_energy_range_uj = read_u64(fs, &z.path.join("max_energy_range_uj")).ok();
        selected.push(RaplDomain { label, zone: z.zone.clone(), path: z.path.clone(), kind, max_energy_range_uj });
    }
    if selected.is_empty() {
        return Err(unavailable(format!("no RAPL package, dram or psys domain under {}", root.display()), None));
    }
    Ok(RaplDiscovery { selected, skipped })
}

#[derive(Default)]
struct Accumulator {
    last: Vec<Option<u64>>,
    total_uj: Vec<u128>,
    wraps: Vec<u32>,
    dropped: Vec<u32>,
    read_errors: Vec<Option<String>>,
}

struct Shared {
    fs: Arc<dyn PowercapFs>,
    domains: Vec<RaplDomain>,
    acc: Mutex<Accumulator>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Accumulator> {
        // A poisoned lock only means a poll panicked half-way; the counters it holds are still usable.
        self.acc.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn reset(&self) {
        let n = self.domains.len();
        let mut acc = self.lock();
        *acc = Accumulator {
            last: vec![None; n],
            total_uj: vec![0; n],
            wraps: vec![0; n],
            dropped: vec![0; n],
            read_errors: vec![None; n],
        };
    }

    fn poll(&self) {
        let readings: Vec<io::Result<u64>> =
            self.domains.iter().map(|d| read_u64(self.fs.as_ref(), &d.path.join("energy_uj"))).collect();
        let mut acc = self.lock();
        if acc.last.len() != self.domains.len() {
            return; // not started
        }
        for (i, r) in readings.into_iter().enumerate() {
            match r {
                Ok(cur) => {
                    if let Some(prev) = acc.last[i] {
                        match counter_delta(prev, cur, self.domains[i].max_energy_range_uj) {
                            Some(d) => {
                                acc.total_uj[i] += u128::from(d);
                                if cur < prev {
                                    acc.wraps[i] += 1;
                                }
                            }
                            None => acc.dropped[i] += 1,
                        }
                    }
                    acc.last[i] = Some(cur);
                }
                Err(e) => {
                    if acc.read_errors[i].is_none() {
                        acc.read_errors[i] = Some(e.to_string());
                    }
                }
            }
        }
    }
}

/// Energy of the CPU packages and DRAM from RAPL counters. See the module documentation.
pub struct RaplMeter {
    info: MeterInfo,
    shared: Arc<Shared>,
    poll_period: Option<Duration>,
    skipped: Vec<(String, String)>,
    started: Option<Instant>,
    poller: Option<(Sender<()>, JoinHandle<()>)>,
}

impl RaplMeter {
    /// Opens the RAPL meter on the real file system under `root` (normally [`DEFAULT_POWERCAP_ROOT`]), with the
    /// poll period derived from the counter ranges.
    pub fn open(root: &Path) -> Result<Self> {
        Self::with_fs(Arc::new(RealFs), root, None)
    }

    /// Opens the RAPL meter through `fs`. `poll_period`: `None` derives it from the counter ranges (at most 1 s);
    /// `Some(Duration::ZERO)` starts no poller thread (tests then call [`poll_now`](Self::poll_now) themselves).
    ///
    /// Fails with [`Error::MeterUnavailable`] when there is no RAPL domain, or when a selected counter cannot be read
    /// (reason "permission denied: …" with a hint for the root-only case).
    pub fn with_fs(fs: Arc<dyn PowercapFs>, root: &Path, poll_period: Option<Duration>) -> Result<Self> {
        let found = discover(fs.as_ref(), root)?;
        for d in &found.selected {
            let path = d.path.join("energy_uj");
            if let Err(e) = read_u64(fs.as_ref(), &path) {
                return Err(if e.kind() == io::ErrorKind::PermissionDenied {
                    unavailable(format!("permission denied reading {}", path.display()), Some(PERMISSION_HINT))
                } else {
                    unavailable(format!("cannot read {}: {e}", path.display()), None)
                });
            }
        }
        let poll_period = match poll_period {
            Some(p) if p.is_zero() => None,
            Some(p) => Some(p),
            None => Some(derived_poll_period(&found.selected)),
        };
        let scope = found.selected.iter().map(|d| d.label.as_str()).collect::<Vec<_>>().join("+");
        let info = MeterInfo {
            name: "RAPL (Linux powercap)".into(),
            method: Method::Rapl,
            device: DeviceKind::Cpu,
            device_index: 0,
            scope,
            resolution_j: RAPL_RESOLUTION_J,
            update_period_s: RAPL_UPDATE_PERIOD_S,
        };
        let shared = Arc::new(Shared { fs, domains: found.selected, acc: Mutex::new(Accumulator::default()) });
        Ok(Self { info, shared, poll_period, skipped: found.skipped, started: None, poller: None })
    }

    /// The domains summed.
    pub fn domains(&self) -> &[RaplDomain] {
        &self.shared.domains
    }

    /// Zones found but not summed, and why.
    pub fn skipped(&self) -> &[(String, String)] {
        &self.skipped
    }

    /// The poller's period (`None`: no poller thread).
    pub fn poll_period(&self) -> Option<Duration> {
        self.poll_period
    }

    /// Reads every counter now and accumulates the deltas (what the poller thread does each period).
    pub fn poll_now(&self) {
        self.shared.poll();
    }

    fn stop_poller(&mut self) {
        if let Some((tx, handle)) = self.poller.take() {
            let _ = tx.send(());
            let _ = handle.join();
        }
    }
}

/// A quarter of the shortest wrap time at [`ASSUMED_MAX_POWER_W`], between 10 ms and 1 s.
fn derived_poll_period(domains: &[RaplDomain]) -> Duration {
    let min_range_j =
        domains.iter().filter_map(|d| d.max_energy_range_uj).map(|uj| uj as f64 * 1e-6).fold(f64::INFINITY, f64::min);
    let s = (min_range_j / ASSUMED_MAX_POWER_W / 4.0).clamp(0.01, 1.0);
    Duration::from_secs_f64(if s.is_finite() { s } else { 1.0 })
}

impl Meter for RaplMeter {
    fn info(&self) -> &MeterInfo {
        &self.info
    }

    fn start(&mut self) -> Result<()> {
        self.stop_poller();
        self.shared.reset();
        self.shared.poll();
        self.started = Some(Instant::now());
        if let Some(period) = self.poll_period {
            let (tx, rx) = mpsc::channel::<()>();
            let shared = Arc::clone(&self.shared);
            let handle = std::thread::Builder::new()
                .name("joule-rapl-poll".into())
                .spawn(move || {
                    while let Err(RecvTimeoutError::Timeout) = rx.recv_timeout(period) {
                        shared.poll();
                    }
                })
                .map_err(|e| unavailable(format!("cannot start the poller thread: {e}"), None))?;
            self.poller = Some((tx, handle));
        }
        Ok(())
    }

    fn stop(&mut self) -> Result<EnergyWindow> {
        let started = self.started.take().ok_or_else(|| not_started("rapl"))?;
        self.stop_poller();
        self.shared.poll();
        let seconds = started.elapsed().as_secs_f64();
        let acc = self.shared.lock();
        let mut components = Vec::with_capacity(self.shared.domains.len());
        let mut notes = Vec::new();
        for (i, d) in self.shared.domains.iter().enumerate() {
            components.push(EnergyComponent {
                name: d.label.clone(),
                kind: d.kind,
                joules: acc.total_uj[i] as f64 * 1e-6,
            });
            if acc.wraps[i] > 0 {
                notes.push(format!(
                    "{}: counter wrapped {} time(s), corrected with max_energy_range_uj",
                    d.label, acc.wraps[i]
                ));
            }
            if acc.dropped[i] > 0 {
                notes.push(format!(
                    "{}: {} decreasing reading(s) dropped (max_energy_range_uj unknown): energy is a lower bound",
                    d.label, acc.dropped[i]
                ));
            }
            if let Some(e) = &acc.read_errors[i] {
                notes.push(format!(
                    "{}: a read failed during the window ({e}); the next read's delta spans it",
                    d.label
                ));
            }
        }
        let joules = components.iter().map(|c| c.joules).sum();
        let too_short = seconds < self.info.update_period_s;
        if too_short {
            notes.push(format!(
                "window of {seconds:.6} s is shorter than RAPL's update period ({} s): energy unreliable",
                self.info.update_period_s
            ));
        }
        Ok(EnergyWindow {
            joules,
            seconds,
            method: Method::Rapl,
            scope: self.info.scope.clone(),
            resolution_j: self.info.resolution_j,
            too_short,
            components,
            gpu_state: None,
            notes,
        })
    }
}

impl Drop for RaplMeter {
    fn drop(&mut self) {
        self.stop_poller();
    }
}
