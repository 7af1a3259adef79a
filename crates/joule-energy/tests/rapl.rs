//! RAPL on fake powercap trees: domain selection, wraparound, permission errors, missing ranges.

use joule_core::Error;
use joule_energy::{ComponentKind, Meter, MeterConfig, Method, PowercapFs, RaplMeter, RealFs, select_meters};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// A fake `/sys/class/powercap` in a temporary directory, removed on drop.
struct FakeTree {
    root: PathBuf,
}

impl FakeTree {
    fn new(tag: &str) -> Self {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let root = std::env::temp_dir().join(format!("joule-rapl-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&root).unwrap();
        Self { root }
    }

    /// Adds a zone; `max` = None leaves `max_energy_range_uj` out.
    fn zone(&self, zone: &str, name: &str, energy_uj: u64, max: Option<u64>) -> &Self {
        let dir = self.root.join(zone);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("name"), format!("{name}\n")).unwrap();
        std::fs::write(dir.join("energy_uj"), format!("{energy_uj}\n")).unwrap();
        if let Some(m) = max {
            std::fs::write(dir.join("max_energy_range_uj"), format!("{m}\n")).unwrap();
        }
        self
    }

    fn set(&self, zone: &str, energy_uj: u64) {
        std::fs::write(self.root.join(zone).join("energy_uj"), format!("{energy_uj}\n")).unwrap();
    }

    /// A typical server socket: psys, package with core/uncore/dram, and the MMIO duplicate.
    fn server(tag: &str, max: Option<u64>) -> Self {
        let t = Self::new(tag);
        t.zone("intel-rapl:0", "package-0", 900, max)
            .zone("intel-rapl:0:0", "core", 10, max)
            .zone("intel-rapl:0:1", "uncore", 10, max)
            .zone("intel-rapl:0:2", "dram", 100, max)
            .zone("intel-rapl:1", "psys", 5000, max)
            .zone("intel-rapl-mmio:0", "package-0", 900, max);
        // The control-type directory itself, which has no counter.
        std::fs::create_dir_all(t.root.join("intel-rapl")).unwrap();
        t
    }

    fn meter(&self) -> RaplMeter {
        RaplMeter::with_fs(Arc::new(RealFs), &self.root, Some(Duration::ZERO)).unwrap()
    }
}

impl Drop for FakeTree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn joules_of(w: &joule_energy::EnergyWindow, name: &str) -> f64 {
    w.components.iter().find(|c| c.name == name).map(|c| c.joules).unwrap()
}

#[test]
fn overlapping_domains_are_not_double_counted() {
    let t = FakeTree::server("overlap", Some(1_000_000));
    let m = t.meter();
    let labels: Vec<&str> = m.domains().iter().map(|d| d.label.as_str()).collect();
    assert_eq!(labels, ["package-0", "dram-0"]);
    assert_eq!(m.domains()[1].kind, ComponentKind::Ram);
    assert_eq!(m.info().scope, "package-0+dram-0");
    assert_eq!(m.info().method, Method::Rapl);
    let skipped: Vec<&str> = m.skipped().iter().map(|(z, _)| z.as_str()).collect();
    for z in ["intel-rapl:0:0 (core)", "intel-rapl:0:1 (uncore)", "intel-rapl:1 (psys)", "intel-rapl-mmio:0"] {
        assert!(skipped.contains(&z), "{z} not in {skipped:?}");
    }
}

#[test]
fn psys_alone_is_used_when_there_is_no_package() {
    let t = FakeTree::new("psys");
    t.zone("intel-rapl:0", "psys", 0, Some(1000)).zone("intel-rapl:0:0", "dram", 0, Some(1000));
    let m = t.meter();
    assert_eq!(m.info().scope, "psys");
    assert!(m.skipped()[0].1.contains("psys"), "{:?}", m.skipped());
}

#[test]
fn one_wrap_is_corrected_with_max_energy_range() {
    let t = FakeTree::server("wrap1", Some(1000));
    let mut m = t.meter();
    m.start().unwrap();
    t.set("intel-rapl:0", 100); // 900 -> 1000 (wrap) -> 100: 200 µJ
    t.set("intel-rapl:0:2", 150); // +50 µJ
    let w = m.stop().unwrap();
    assert!((joules_of(&w, "package-0") - 200e-6).abs() < 1e-12, "{w:?}");
    assert!((joules_of(&w, "dram-0") - 50e-6).abs() < 1e-12);
    assert!((w.joules - 250e-6).abs() < 1e-12);
    assert!(w.notes.iter().any(|n| n.contains("wrapped 1 time")), "{:?}", w.notes);
}

#[test]
fn several_wraps_in_one_long_window() {
    let t = FakeTree::server("wrapN", Some(1000));
    let mut m = t.meter();
    m.start().unwrap(); // package at 900
    // Each poll sees at most one wrap; the window as a whole wraps five times.
    let mut expected = 0u64;
    let mut prev = 900u64;
    for next in [400u64, 900, 300, 800, 200, 700, 100, 600, 0, 500] {
        expected += if next >= prev { next - prev } else { 1000 - prev + next };
        prev = next;
        t.set("intel-rapl:0", next);
        m.poll_now();
    }
    let w = m.stop().unwrap();
    assert_eq!(expected, 4600);
    assert!((joules_of(&w, "package-0") - expected as f64 * 1e-6).abs() < 1e-12, "{w:?}");
    assert!(w.notes.iter().any(|n| n.contains("wrapped 5 time")), "{:?}", w.notes);
}

#[test]
fn missing_max_energy_range_drops_the_delta_instead_of_going_negative() {
    let t = FakeTree::server("nomax", None);
    let mut m = t.meter();
    assert_eq!(m.domains()[0].max_energy_range_uj, None);
    m.start().unwrap();
    t.set("intel-rapl:0", 1000); // +100
    m.poll_now();
    t.set("intel-rapl:0", 50); // decrease: cannot be interpreted, dropped
    m.poll_now();
    t.set("intel-rapl:0", 80); // +30
    let w = m.stop().unwrap();
    assert!((joules_of(&w, "package-0") - 130e-6).abs() < 1e-12, "{w:?}");
    assert!(w.joules >= 0.0);
    assert!(w.notes.iter().any(|n| n.contains("dropped") && n.contains("lower bound")), "{:?}", w.notes);
}

/// Root ignores file modes, so permission errors are injected through the file-system abstraction.
struct DenyEnergy;

impl PowercapFs for DenyEnergy {
    fn read_to_string(&self, path: &Path) -> io::Result<String> {
        if path.ends_with("energy_uj") {
            return Err(io::Error::from(io::ErrorKind::PermissionDenied));
        }
        std::fs::read_to_string(path)
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<PathBuf>> {
        RealFs.read_dir(path)
    }
}

#[test]
fn unreadable_counter_is_a_typed_permission_error_with_a_hint_once() {
    let t = FakeTree::server("eacces", Some(1000));
    let err = RaplMeter::with_fs(Arc::new(DenyEnergy), &t.root, Some(Duration::ZERO)).err().expect("must fail");
    match &err {
        Error::MeterUnavailable { meter, reason, hint } => {
            assert_eq!(*meter, "rapl");
            assert!(reason.starts_with("permission denied"), "{reason}");
            assert!(hint.as_deref().unwrap_or("").contains("CVE-2020-8694"), "{hint:?}");
        }
        other => panic!("unexpected error {other:?}"),
    }
    // One message for the meter, not one per domain.
    assert_eq!(err.to_string().matches("permission denied").count(), 1);
}

#[test]
fn no_tree_falls_back_to_the_estimate_and_says_why_once() {
    let config = MeterConfig {
        powercap_root: PathBuf::from("/nonexistent/powercap"),
        nvml: false,
        estimate_sample_period: Duration::ZERO,
        ..Default::default()
    };
    let mut sel = select_meters(&config);
    assert_eq!(sel.cpu.info().method, Method::Estimated);
    assert_eq!(sel.absent.iter().filter(|a| a.meter == "rapl").count(), 1);
    // An estimate window is labelled as such and is never NaN, even when stopped at once.
    sel.cpu.start().unwrap();
    let w = sel.cpu.stop().unwrap();
    assert_eq!(w.method, Method::Estimated);
    assert!(w.joules.is_finite() && w.joules >= 0.0 && w.seconds >= 0.0);
    assert!(w.notes[0].starts_with("estimated"));
    assert!(sel.cpu.stop().is_err(), "stop without start is an error, not a panic");
}

#[test]
fn zero_length_window_is_finite_and_flagged_by_period() {
    let t = FakeTree::server("zero", Some(1000));
    let mut m = t.meter();
    m.start().unwrap();
    let w = m.stop().unwrap();
    assert!(w.joules.is_finite() && w.joules >= 0.0 && w.seconds.is_finite());
    assert_eq!(w.too_short, w.seconds < m.info().update_period_s);
    assert!(w.average_power_w().is_none_or(f64::is_finite));
}

#[test]
fn poller_thread_accumulates_without_manual_polls() {
    let t = FakeTree::server("poller", Some(1_000_000_000));
    let mut m = RaplMeter::with_fs(Arc::new(RealFs), &t.root, Some(Duration::from_millis(1))).unwrap();
    assert_eq!(m.poll_period(), Some(Duration::from_millis(1)));
    m.start().unwrap();
    t.set("intel-rapl:0", 5900);
    std::thread::sleep(Duration::from_millis(20));
    let w = m.stop().unwrap();
    assert!((joules_of(&w, "package-0") - 5000e-6).abs() < 1e-12, "{w:?}");
}

/// Reads fail while `deny` is set: a counter that becomes unreadable in the middle of a window.
struct Flaky {
    deny: std::sync::atomic::AtomicBool,
}

impl PowercapFs for Flaky {
    fn read_to_string(&self, path: &Path) -> io::Result<String> {
        if self.deny.load(std::sync::atomic::Ordering::SeqCst) && path.ends_with("energy_uj") {
            return Err(io::Error::from(io::ErrorKind::PermissionDenied));
        }
        std::fs::read_to_string(path)
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<PathBuf>> {
        RealFs.read_dir(path)
    }
}

#[test]
fn a_read_failing_mid_window_is_noted_and_the_next_delta_spans_it() {
    let t = FakeTree::server("flaky", Some(1_000_000));
    let fs = Arc::new(Flaky { deny: false.into() });
    let mut m = RaplMeter::with_fs(fs.clone(), &t.root, Some(Duration::ZERO)).unwrap();
    m.start().unwrap(); // package at 900
    fs.deny.store(true, std::sync::atomic::Ordering::SeqCst);
    t.set("intel-rapl:0", 1400);
    m.poll_now(); // fails
    fs.deny.store(false, std::sync::atomic::Ordering::SeqCst);
    t.set("intel-rapl:0", 2900);
    let w = m.stop().unwrap();
    assert!((joules_of(&w, "package-0") - 2000e-6).abs() < 1e-12, "{w:?}");
    assert!(w.notes.iter().any(|n| n.contains("a read failed")), "{:?}", w.notes);
}

#[test]
fn poll_period_follows_the_smallest_counter_range() {
    let t = FakeTree::new("period");
    t.zone("intel-rapl:0", "package-0", 0, Some(262_143_328_850)).zone(
        "intel-rapl:0:0",
        "dram",
        0,
        Some(1_000_000_000),
    );
    let m = RaplMeter::with_fs(Arc::new(RealFs), &t.root, None).unwrap();
    // dram wraps after 1 kJ: 1 s at 1 kW, so poll every 0.25 s.
    assert_eq!(m.poll_period(), Some(Duration::from_millis(250)));
    let t = FakeTree::new("period2");
    t.zone("intel-rapl:0", "package-0", 0, Some(1000));
    let m = RaplMeter::with_fs(Arc::new(RealFs), &t.root, None).unwrap();
    assert_eq!(m.poll_period(), Some(Duration::from_millis(10)), "clamped to 10 ms");
}
