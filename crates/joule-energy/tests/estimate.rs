//! The `estimated` meter on a fake /proc: TDP table match, user override, fallback, utilisation scaling.

use joule_energy::{
    ComponentKind, CpuPowerSource, EstimateMeter, EstimateModel, Meter, Method, cpu_power_at_load, lookup_cpu_tdp,
};
use std::path::{Path, PathBuf};
use std::time::Duration;

struct FakeProc {
    root: PathBuf,
}

impl FakeProc {
    fn new(tag: &str, model: Option<&str>, cpus: usize, mem_kb: u64) -> Self {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let root = std::env::temp_dir().join(format!("joule-proc-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&root).unwrap();
        let mut cpuinfo = String::new();
        for i in 0..cpus {
            cpuinfo.push_str(&format!("processor\t: {i}\n"));
            if let Some(m) = model {
                cpuinfo.push_str(&format!("model name\t: {m}\n"));
            }
            cpuinfo.push('\n');
        }
        std::fs::write(root.join("cpuinfo"), cpuinfo).unwrap();
        std::fs::write(
            root.join("meminfo"),
            format!("MemTotal:       {mem_kb} kB\nMemAvailable:   {} kB\n", mem_kb / 2),
        )
        .unwrap();
        let p = Self { root };
        p.stat(0, 0);
        p
    }

    /// Writes /proc/stat with `busy` user ticks and `idle` idle ticks (temp + rename: a reader never sees half).
    fn stat(&self, busy: u64, idle: u64) {
        let tmp = self.root.join("stat.tmp");
        std::fs::write(&tmp, format!("cpu  {busy} 0 0 {idle} 0 0 0 0 0 0\ncpu0 0 0 0 0\n")).unwrap();
        std::fs::rename(tmp, self.root.join("stat")).unwrap();
    }

    fn path(&self) -> &Path {
        &self.root
    }
}

impl Drop for FakeProc {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

#[test]
fn known_cpu_uses_the_table_and_scales_with_utilisation() {
    let p = FakeProc::new("epyc", Some("AMD EPYC 7763 64-Core Processor"), 4, 16 * 1024 * 1024);
    let model = EstimateModel::detect(p.path(), None);
    let (entry, tdp) = lookup_cpu_tdp("AMD EPYC 7763 64-Core Processor").unwrap();
    assert_eq!(model.cpu_power_source, CpuPowerSource::Table { entry });
    assert_eq!(model.cpu_tdp_w, tdp);
    assert_eq!(model.logical_cpus, 4);
    assert_eq!(model.ram_power_w, 10.0); // 16 GiB: 2 DIMMs × 5 W

    let mut m = EstimateMeter::from_model(model, p.path(), Duration::ZERO);
    assert_eq!(m.info().method, Method::Estimated);
    m.start().unwrap();
    p.stat(50, 50); // 50 % busy over the window
    std::thread::sleep(Duration::from_millis(50));
    let w = m.stop().unwrap();
    let cpu_w = w.joules_of(ComponentKind::Cpu) / w.seconds;
    let expected = cpu_power_at_load(tdp, 0.5); // tdp × (0.1 + 0.9 × 0.125)
    assert!((cpu_w - expected).abs() / expected < 0.01, "{cpu_w} W vs {expected} W");
    let ram_w = w.joules_of(ComponentKind::Ram) / w.seconds;
    assert!((ram_w - 10.0).abs() < 0.1, "{ram_w}");
    assert!(w.notes.iter().any(|n| n.contains("50.0 %")), "{:?}", w.notes);
    assert!(w.notes[0].starts_with("estimated"));
}

#[test]
fn unknown_cpu_falls_back_per_thread_and_user_value_wins() {
    let p = FakeProc::new("vm", Some("Intel(R) Xeon(R) Processor"), 2, 8 * 1024 * 1024);
    let model = EstimateModel::detect(p.path(), None);
    assert_eq!(model.cpu_power_source, CpuPowerSource::PerThreadFallback { threads: 2, watts_per_thread: 4.0 });
    assert_eq!(model.cpu_tdp_w, 8.0);
    assert!(model.describe().contains("fallback"));

    let user = EstimateModel::detect(p.path(), Some(65.0));
    assert_eq!((user.cpu_tdp_w, &user.cpu_power_source), (65.0, &CpuPowerSource::UserValue));
    // Nonsense user values are ignored, not trusted.
    assert_eq!(EstimateModel::detect(p.path(), Some(f64::NAN)).cpu_tdp_w, 8.0);
    assert_eq!(EstimateModel::detect(p.path(), Some(-5.0)).cpu_tdp_w, 8.0);

    let none = FakeProc::new("nomodel", None, 1, 0);
    let model = EstimateModel::detect(none.path(), None);
    assert_eq!(model.cpu_model, "unknown CPU");
    assert_eq!(model.ram_total_gb, 0.0);
}

#[test]
fn idle_machine_costs_a_tenth_of_tdp_and_the_sampler_thread_integrates() {
    let p = FakeProc::new("idle", None, 1, 8 * 1024 * 1024);
    let mut m = EstimateMeter::new(p.path(), Some(100.0), Duration::from_millis(5));
    m.start().unwrap();
    for i in 1..=10 {
        p.stat(0, 100 * i); // idle ticks only
        std::thread::sleep(Duration::from_millis(5));
    }
    let w = m.stop().unwrap();
    let cpu_w = w.joules_of(ComponentKind::Cpu) / w.seconds;
    assert!((cpu_w - 10.0).abs() < 0.2, "{cpu_w}");
}

#[test]
fn unreadable_proc_stat_is_charged_at_full_load_and_said() {
    let p = FakeProc::new("nostat", None, 1, 8 * 1024 * 1024);
    std::fs::remove_file(p.path().join("stat")).unwrap();
    let mut m = EstimateMeter::new(p.path(), Some(100.0), Duration::ZERO);
    m.start().unwrap();
    std::thread::sleep(Duration::from_millis(10));
    let w = m.stop().unwrap();
    let cpu_w = w.joules_of(ComponentKind::Cpu) / w.seconds;
    assert!((cpu_w - 100.0).abs() < 1.0, "{cpu_w}");
    assert!(w.notes.iter().any(|n| n.contains("upper bound")), "{:?}", w.notes);
}
