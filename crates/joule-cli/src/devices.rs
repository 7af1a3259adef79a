//! `joule devices`: the devices here, the energy meter chosen for each and its method, and why other meters are
//! absent.

use anyhow::Result;
use joule_energy::carbon::{self, CarbonIntensity, IntensityQuery};
use joule_energy::{AbsentMeter, EstimateModel, MeterConfig, MeterInfo, Method, select_meters};
use serde::Serialize;
use std::path::PathBuf;

/// `println!` that ignores a closed stdout (e.g. piped into `head`) instead of panicking.
macro_rules! out {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}

/// Arguments of `joule devices`.
#[derive(clap::Args)]
pub struct Args {
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// CPU power at full load (W) for the estimate, instead of the CodeCarbon table.
    #[arg(long, value_name = "WATTS", value_parser = crate::positive_watts)]
    cpu_tdp: Option<f64>,
    /// Country (ISO 3166-1 code such as FRA or FR, or English name): shows the intensity `joule track` would use.
    #[arg(long, value_name = "CODE")]
    country: Option<String>,
    /// Sub-national region (US state, Canadian or Chinese province, Nordic zone) for the carbon intensity.
    #[arg(long)]
    region: Option<String>,
    /// Powercap root to read RAPL from.
    #[arg(long, value_name = "DIR", default_value = "/sys/class/powercap", hide = true)]
    powercap_root: PathBuf,
}

#[derive(Serialize)]
struct DevicesReport {
    meters: Vec<MeterInfo>,
    absent: Vec<AbsentMeter>,
    estimate: Option<EstimateModel>,
    carbon_intensity: CarbonIntensity,
}

/// Runs `joule devices`.
pub fn main(args: Args) -> Result<()> {
    let config = MeterConfig { cpu_tdp_w: args.cpu_tdp, powercap_root: args.powercap_root, ..Default::default() };
    let selection = select_meters(&config);
    let meters = selection.infos();
    let estimate =
        (meters[0].method == Method::Estimated).then(|| EstimateModel::detect(&config.proc_root, config.cpu_tdp_w));
    let intensity = carbon::lookup(&IntensityQuery {
        country: args.country.clone(),
        region: args.region.clone(),
        ..Default::default()
    });
    let report = DevicesReport { meters, absent: selection.absent.clone(), estimate, carbon_intensity: intensity };
    if args.json {
        out!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    print_text(&report, &config);
    Ok(())
}

fn print_meter(m: &MeterInfo) {
    let kind = if m.method.is_measurement() { "measured" } else { "a model, not a measurement" };
    out!("  meter    {} [{}: {kind}]", m.name, m.method);
    out!("  scope    {}", m.scope);
    out!(
        "  limits   resolution {} J, updates every {} s, windows under {} s are imprecise",
        fmt_num(m.resolution_j),
        fmt_num(m.update_period_s),
        fmt_num(m.min_window_s())
    );
}

fn print_text(r: &DevicesReport, config: &MeterConfig) {
    let cpu = &r.meters[0];
    match &r.estimate {
        Some(e) => {
            out!("CPU      {} ({} logical CPUs, {:.1} GiB RAM)", e.cpu_model, e.logical_cpus, e.ram_total_gb)
        }
        None => {
            out!("CPU      {}", joule_energy::cpu_model_name(&config.proc_root).unwrap_or_else(|| "unknown CPU".into()))
        }
    }
    print_meter(cpu);
    if let Some(e) = &r.estimate {
        out!("  model    {}", e.describe());
    }
    let gpus = &r.meters[1..];
    if gpus.is_empty() {
        out!("GPU      none metered");
    }
    for g in gpus {
        out!("GPU {}    {}", g.device_index, g.name.trim_start_matches("NVML "));
        print_meter(g);
    }
    if !r.absent.is_empty() {
        out!("Not used");
        for a in &r.absent {
            out!("  {:<6} ({}) {}", a.meter, a.device, a.reason);
        }
    }
    let c = &r.carbon_intensity;
    let place = match (&c.region, &c.country_name) {
        (Some(reg), Some(country)) => format!("{reg}, {country}"),
        (None, Some(country)) => country.clone(),
        _ => "world average".into(),
    };
    out!(
        "Carbon   {} g CO2e/kWh ({place}; {}{})",
        fmt_num(c.g_per_kwh),
        c.source,
        c.year.map(|y| format!(", {y}")).unwrap_or_default(),
    );
    for n in c.notes.iter().filter(|n| !n.starts_with("no country given")) {
        out!("         {n}");
    }
    if c.country_iso.is_none() {
        out!("         pass --country (e.g. FR, USA, Germany) to `joule track` for a local figure");
    }
}

/// A number with up to 4 significant digits, without trailing zeros.
pub(crate) fn fmt_num(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return format!("{x}");
    }
    let digits = (3 - x.abs().log10().floor() as i32).clamp(0, 12) as usize;
    let s = format!("{x:.digits$}");
    if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_owned() } else { s }
}
