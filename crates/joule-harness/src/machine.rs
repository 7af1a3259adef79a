//! Machine metadata recorded with every results file.

use serde::{Deserialize, Serialize};
use std::process::Command;

/// A GPU as `nvidia-smi` reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuInfo {
    /// Model name.
    pub name: String,
    /// Driver version.
    pub driver: Option<String>,
    /// CUDA version the driver supports.
    pub cuda: Option<String>,
    /// Memory, MiB.
    pub memory_mib: Option<u64>,
}

/// A roofline ceiling: a peak the machine cannot exceed, with where the figure comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ceiling {
    /// What the ceiling is, e.g. "H200 dense BF16/FP16 tensor cores".
    pub label: String,
    /// Peak compute, GFLOP/s (`None` for a bandwidth ceiling).
    pub gflops: Option<f64>,
    /// Peak memory bandwidth, GB/s (`None` for a compute ceiling).
    pub gbps: Option<f64>,
    /// Where the figure comes from.
    pub source: String,
}

/// The machine a run happened on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MachineInfo {
    /// Host name.
    pub hostname: String,
    /// CPU model name (`/proc/cpuinfo`).
    pub cpu_model: String,
    /// Logical CPUs available to this process.
    pub logical_cpus: usize,
    /// CPU feature flags relevant to the kernels (avx2, avx512f, avx512_bf16, avx512_fp16, amx_tile, ...).
    pub cpu_features: Vec<String>,
    /// Physical memory, bytes (`/proc/meminfo`).
    pub ram_bytes: Option<u64>,
    /// Operating system (`/etc/os-release` PRETTY_NAME).
    pub os: String,
    /// Kernel release.
    pub kernel: String,
    /// GPUs (empty when none or no driver).
    pub gpus: Vec<GpuInfo>,
    /// `rustc --version` of the compiler that built this binary.
    pub rustc: String,
    /// Git commit of the working tree, when run from a git checkout.
    pub git_commit: Option<String>,
    /// Whether the working tree had uncommitted changes to tracked files.
    pub git_dirty: Option<bool>,
    /// 1-minute load average when the run started (`/proc/loadavg`): above the CPU count, other work shared the
    /// cores and CPU timings are pessimistic.
    #[serde(default)]
    pub load_avg_1m: Option<f64>,
    /// Roofline ceilings known for this machine (empty when none are known; the report then draws none).
    pub ceilings: Vec<Ceiling>,
}

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

fn run(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

const FEATURES: [&str; 8] =
    ["avx2", "fma", "avx512f", "avx512bw", "avx512_bf16", "avx512_fp16", "amx_bf16", "amx_tile"];

impl MachineInfo {
    /// Reads what this machine says about itself (best effort: a missing source leaves its field empty).
    pub fn collect() -> MachineInfo {
        let cpuinfo = read("/proc/cpuinfo").unwrap_or_default();
        let field = |name: &str| {
            cpuinfo.lines().find(|l| l.starts_with(name)).and_then(|l| l.split_once(':')).map(|(_, v)| v.trim())
        };
        let cpu_model = field("model name").unwrap_or("unknown").to_string();
        let flags: Vec<&str> = field("flags").unwrap_or("").split_whitespace().collect();
        let cpu_features = FEATURES.iter().filter(|f| flags.contains(f)).map(|f| f.to_string()).collect();
        let ram_bytes = read("/proc/meminfo").and_then(|m| {
            let line = m.lines().find(|l| l.starts_with("MemTotal:"))?.to_string();
            let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kb * 1024)
        });
        let os = read("/etc/os-release")
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("PRETTY_NAME="))
                    .map(|l| l.trim_start_matches("PRETTY_NAME=").trim_matches('"').to_string())
            })
            .unwrap_or_else(|| std::env::consts::OS.to_string());
        let kernel = read("/proc/sys/kernel/osrelease").map(|s| s.trim().to_string()).unwrap_or_default();
        let hostname = read("/proc/sys/kernel/hostname")
            .map(|s| s.trim().to_string())
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| "unknown-host".into());
        let git_commit = run("git", &["rev-parse", "HEAD"]);
        let git_dirty = git_commit
            .as_ref()
            .and_then(|_| run("git", &["status", "--porcelain", "--untracked-files=no"]))
            .map(|s| !s.is_empty());
        let gpus = gpus();
        let ceilings = gpus.first().map(|g| known_ceilings(&g.name)).unwrap_or_default();
        MachineInfo {
            hostname,
            cpu_model,
            logical_cpus: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            cpu_features,
            ram_bytes,
            os,
            kernel,
            gpus,
            rustc: env!("JOULE_RUSTC_VERSION").to_string(),
            git_commit,
            git_dirty,
            load_avg_1m: read("/proc/loadavg").and_then(|s| s.split_whitespace().next()?.parse().ok()),
            ceilings,
        }
    }
}

/// GPUs from `nvidia-smi` (none when it is absent or fails).
fn gpus() -> Vec<GpuInfo> {
    let Some(list) =
        run("nvidia-smi", &["--query-gpu=name,driver_version,memory.total", "--format=csv,noheader,nounits"])
    else {
        return Vec::new();
    };
    let cuda = run("nvidia-smi", &[]).and_then(|s| {
        let i = s.find("CUDA Version:")?;
        s[i + 13..].split_whitespace().next().map(str::to_string)
    });
    list.lines()
        .map(|l| {
            let parts: Vec<&str> = l.split(',').map(str::trim).collect();
            GpuInfo {
                name: parts.first().unwrap_or(&"unknown").to_string(),
                driver: parts.get(1).map(|s| s.to_string()),
                cuda: cuda.clone(),
                memory_mib: parts.get(2).and_then(|s| s.parse().ok()),
            }
        })
        .collect()
}

/// Datasheet peaks for GPUs we know (dense, no sparsity). CPUs get none: their peaks depend on clocks and
/// instruction mix we cannot read reliably from a VM, so the report omits their ceilings and says so.
pub fn known_ceilings(gpu_name: &str) -> Vec<Ceiling> {
    let sheet = |label: &str, gflops: Option<f64>, gbps: Option<f64>, source: &str| Ceiling {
        label: label.into(),
        gflops,
        gbps,
        source: source.into(),
    };
    if gpu_name.contains("H200") {
        let src = "NVIDIA H200 datasheet (SXM, dense)";
        vec![
            sheet("H200 BF16/FP16 tensor cores", Some(989_000.0), None, src),
            sheet("H200 FP32 (CUDA cores)", Some(67_000.0), None, src),
            sheet("H200 HBM3e", None, Some(4_800.0), src),
        ]
    } else if gpu_name.contains("H100") {
        let src = "NVIDIA H100 datasheet (SXM, dense)";
        vec![
            sheet("H100 BF16/FP16 tensor cores", Some(989_000.0), None, src),
            sheet("H100 FP32 (CUDA cores)", Some(67_000.0), None, src),
            sheet("H100 HBM3", None, Some(3_350.0), src),
        ]
    } else if gpu_name.contains("A100") {
        let src = "NVIDIA A100 datasheet (SXM 80 GB, dense)";
        vec![
            sheet("A100 BF16/FP16 tensor cores", Some(312_000.0), None, src),
            sheet("A100 FP32 (CUDA cores)", Some(19_500.0), None, src),
            sheet("A100 HBM2e", None, Some(2_039.0), src),
        ]
    } else {
        Vec::new()
    }
}

/// The current UTC time as `YYYY-MM-DDTHH:MM:SSZ` (civil-from-days, no time-zone database needed).
pub fn utc_now_iso() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    iso_from_unix(secs)
}

/// Formats seconds since the Unix epoch as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn iso_from_unix(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_times_format_as_utc_dates() {
        assert_eq!(iso_from_unix(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso_from_unix(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(iso_from_unix(1_796_310_000), "2026-12-03T15:00:00Z");
    }

    #[test]
    fn this_machine_describes_itself() {
        let m = MachineInfo::collect();
        assert!(m.logical_cpus >= 1);
        assert!(m.rustc.starts_with("rustc "), "{}", m.rustc);
        assert!(known_ceilings("Intel Xeon").is_empty());
        assert_eq!(known_ceilings("NVIDIA H200").len(), 3);
    }
}
