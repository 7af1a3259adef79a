//! `joule track -- <command…>`: runs a command under the energy/carbon tracker (like `codecarbon monitor`), prints
//! the report, appends `emissions.csv`, writes the JSON report, and exits with the command's status.

use crate::devices::fmt_num;
use anyhow::{Context, Result};
use joule_energy::carbon::{IntensityLevel, IntensityQuery};
use joule_energy::{
    EmissionsReport, MeterConfig, Method, Tracker, TrackerConfig, write_emissions_csv, write_json_atomic,
};
use std::path::PathBuf;
use std::process::Command;

/// `eprintln!` that ignores a closed stderr (e.g. piped into `head`) instead of panicking.
macro_rules! say {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($t)*);
    }};
}

/// Arguments of `joule track`.
#[derive(clap::Args)]
#[command(trailing_var_arg = true)]
pub struct Args {
    /// Project name written to emissions.csv.
    #[arg(long, default_value = "joule")]
    project: String,
    /// Experiment id written to emissions.csv (CodeCarbon's default id unless given).
    #[arg(long)]
    experiment_id: Option<String>,
    /// Country where the electricity is used: ISO 3166-1 code (FRA or FR, USA or US…) or English name.
    #[arg(long, value_name = "CODE")]
    country: Option<String>,
    /// Sub-national region: US state (name or code), Canadian or Chinese province, Nordic bidding zone (SE3…).
    #[arg(long)]
    region: Option<String>,
    /// Cloud provider (e.g. gcp), with --cloud-region.
    #[arg(long)]
    cloud_provider: Option<String>,
    /// Cloud region (e.g. europe-west1); its published figure wins over --country.
    #[arg(long)]
    cloud_region: Option<String>,
    /// Carbon intensity to use, g CO2e/kWh, overriding every table.
    #[arg(long, value_name = "G_PER_KWH")]
    intensity: Option<f64>,
    /// Power usage effectiveness of the data centre (1.0 = facility overhead not counted).
    #[arg(long, default_value_t = 1.0)]
    pue: f64,
    /// CPU power at full load (W) for the estimate, instead of the CodeCarbon table.
    #[arg(long, value_name = "WATTS", value_parser = crate::positive_watts)]
    cpu_tdp: Option<f64>,
    /// Folder for emissions.csv (appended) and the JSON report (created if missing).
    #[arg(long, short = 'o', default_value = ".")]
    output_dir: PathBuf,
    /// The command to run, after `--`.
    #[arg(required = true, value_name = "COMMAND")]
    command: Vec<String>,
}

/// Runs `joule track`. Exits the process with the command's status once the report is written.
pub fn main(args: Args) -> Result<()> {
    // Ctrl-C goes to the whole foreground process group: the command gets it and decides; joule stays alive to
    // write the report of what ran.
    ctrlc::set_handler(|| {}).context("cannot install the Ctrl-C handler")?;
    let code = run(&args)?;
    std::process::exit(code);
}

/// Tracks the command, writes the outputs, prints the report; returns the exit status to give.
fn run(args: &Args) -> Result<i32> {
    if !(args.pue.is_finite() && args.pue >= 1.0) {
        anyhow::bail!("--pue must be a number ≥ 1 (got {})", args.pue);
    }
    if let Some(g) = args.intensity.filter(|g| !(g.is_finite() && *g >= 0.0)) {
        anyhow::bail!("--intensity must be a non-negative number of g CO2e/kWh (got {g})");
    }
    let config = TrackerConfig {
        project_name: args.project.clone(),
        experiment_id: args.experiment_id.clone().unwrap_or_else(|| TrackerConfig::default().experiment_id),
        location: IntensityQuery {
            country: args.country.clone(),
            region: args.region.clone(),
            cloud_provider: args.cloud_provider.clone(),
            cloud_region: args.cloud_region.clone(),
            override_g_per_kwh: args.intensity,
        },
        pue: args.pue,
        wue: 0.0,
        meters: MeterConfig { cpu_tdp_w: args.cpu_tdp, ..Default::default() },
    };
    std::fs::create_dir_all(&args.output_dir)
        .with_context(|| format!("cannot create the output folder {}", args.output_dir.display()))?;

    let mut tracker = Tracker::new(config);
    tracker.start()?;
    let shown = args.command.iter().map(|a| shell_quote(a)).collect::<Vec<_>>().join(" ");
    let status = Command::new(&args.command[0]).args(&args.command[1..]).status();
    let stopped = tracker.stop();
    let code = match status {
        Ok(s) => exit_code(s),
        Err(e) => {
            say!("joule track: cannot run `{shown}`: {e} (nothing written)");
            return Ok(if e.kind() == std::io::ErrorKind::NotFound { 127 } else { 126 });
        }
    };
    let report = match stopped {
        Ok(r) => r,
        Err(e) => {
            say!("joule track: `{shown}` exited with status {code}, but no report could be made: {e}");
            return Ok(code);
        }
    };
    let csv = args.output_dir.join("emissions.csv");
    let json = args.output_dir.join(format!("joule-track-{}.json", report.run_id));
    // The command has run: its exit status is what we return, whatever happens to our own files.
    print_report(&report, &shown, code);
    match write_emissions_csv(&csv, &[report.to_csv_row()]).and_then(|()| write_json_atomic(&json, &report)) {
        Ok(()) => say!("  written  {} (row appended), {}", csv.display(), json.display()),
        Err(e) => say!("joule track: warning: the report above could not be saved: {e}"),
    }
    Ok(code)
}

/// `a` as a shell word, for display only.
fn shell_quote(a: &str) -> String {
    if !a.is_empty() && a.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c)) {
        a.to_owned()
    } else {
        format!("'{}'", a.replace('\'', "'\\''"))
    }
}

#[cfg(unix)]
fn exit_code(s: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    s.code().or_else(|| s.signal().map(|sig| 128 + sig)).unwrap_or(1)
}

#[cfg(not(unix))]
fn exit_code(s: std::process::ExitStatus) -> i32 {
    s.code().unwrap_or(1)
}

fn method_label(m: Option<Method>) -> String {
    m.map_or_else(|| "not measured".to_owned(), |m| m.to_string())
}

/// Energy with a readable unit: J below 3.6 kJ, then Wh, then kWh.
fn fmt_energy_kwh(kwh: f64) -> String {
    let j = kwh * 3.6e6;
    if j < 3600.0 {
        format!("{} J", fmt_num(j))
    } else if kwh < 1.0 {
        format!("{} Wh", fmt_num(kwh * 1000.0))
    } else {
        format!("{} kWh", fmt_num(kwh))
    }
}

fn fmt_mass_kg(kg: f64) -> String {
    if kg >= 1.0 {
        format!("{} kg", fmt_num(kg))
    } else if kg >= 1e-3 {
        format!("{} g", fmt_num(kg * 1e3))
    } else {
        format!("{} mg", fmt_num(kg * 1e6))
    }
}

fn print_report(r: &EmissionsReport, shown: &str, code: i32) {
    let e = &r.energy_kwh;
    let gpu_method = if r.methods.gpu.is_empty() {
        "no GPU metered".to_owned()
    } else {
        r.methods.gpu.iter().map(|m| m.to_string()).collect::<Vec<_>>().join("+")
    };
    say!();
    say!("joule track: `{shown}` exited with status {code} after {} s", fmt_num(r.duration_s));
    say!(
        "  energy   {} = cpu {} [{}] + ram {} [{}] + gpu {} [{gpu_method}]",
        fmt_energy_kwh(e.total),
        fmt_energy_kwh(e.cpu),
        method_label(r.methods.cpu),
        fmt_energy_kwh(e.ram),
        method_label(r.methods.ram),
        fmt_energy_kwh(e.gpu),
    );
    say!(
        "  power    cpu {} W, ram {} W, gpu {} W (averages)",
        fmt_num(r.power_w.cpu),
        fmt_num(r.power_w.ram),
        fmt_num(r.power_w.gpu)
    );
    say!(
        "  load     CPU {} % busy (whole machine, all processes), RAM {} % in use",
        fmt_num(r.cpu_utilization_percent),
        fmt_num(r.ram_utilization_percent)
    );
    let c = &r.intensity;
    let place = match c.level {
        IntensityLevel::Override => "user override".to_owned(),
        IntensityLevel::World => "world average".to_owned(),
        _ => [c.region.clone(), c.country_name.clone()].into_iter().flatten().collect::<Vec<_>>().join(", "),
    };
    say!(
        "  carbon   {} CO2e at {} g/kWh ({place}{}), PUE {}",
        fmt_mass_kg(r.emissions_kg),
        fmt_num(c.g_per_kwh),
        c.year.map(|y| format!(", {y}")).unwrap_or_default(),
        fmt_num(r.pue)
    );
    for n in &c.notes {
        say!("  note     {n}");
    }
    if [r.methods.cpu, r.methods.ram].contains(&Some(Method::Estimated)) {
        say!("  note     `estimated` is a model (CPU TDP × utilisation, RAM per DIMM), not a measurement:");
        say!("           `joule devices` shows the model and why RAPL/NVML are not used here");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        track: Args,
    }

    fn args(extra: &[&str]) -> Args {
        Cli::parse_from(std::iter::once("track").chain(extra.iter().copied())).track
    }

    #[test]
    fn returns_the_command_status_and_appends_one_row_per_run() {
        let dir = std::env::temp_dir().join(format!("joule-track-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let out = dir.to_str().unwrap();
        let a = args(&["-o", out, "--project", "p, \"q\"", "--country", "FRA", "--", "sh", "-c", "exit 3"]);
        assert_eq!(run(&a).unwrap(), 3);
        assert_eq!(run(&args(&["-o", out, "--", "true"])).unwrap(), 0);
        assert_eq!(run(&args(&["-o", out, "--", "/nonexistent/joule-test-cmd"])).unwrap(), 127);
        let rows = joule_energy::read_emissions_csv(&dir.join("emissions.csv")).unwrap();
        assert_eq!(rows.len(), 2, "the failed spawn writes nothing");
        assert_eq!(rows[0].project_name, "p, \"q\"");
        assert_eq!(rows[0].country_iso_code, "FRA");
        assert_eq!(rows[1].country_iso_code, "");
        let jsons = std::fs::read_dir(&dir)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".json"));
        assert_eq!(jsons.count(), 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_options_are_errors_not_panics() {
        assert!(run(&args(&["--pue", "0.5", "--", "true"])).is_err());
        assert!(run(&args(&["--intensity=-3", "--", "true"])).is_err());
    }

    #[test]
    fn formatting_helpers() {
        assert_eq!(shell_quote("exit 3"), "'exit 3'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote("sleep"), "sleep");
        assert_eq!(fmt_energy_kwh(1.0 / 3.6e6), "1 J");
        assert_eq!(fmt_energy_kwh(0.002), "2 Wh");
        assert_eq!(fmt_mass_kg(0.0025), "2.5 g");
    }
}
