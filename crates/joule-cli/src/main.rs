//! The `joule` command.

use anyhow::Result;
use clap::{Parser, Subcommand};

mod compare;
mod devices;
mod report;
mod run;
mod track;

/// Joule: energy per FLOP of GEMM, depthwise-separable convolution and attention, on CPU and CUDA.
#[derive(Parser)]
#[command(name = "joule", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Measure kernels × precisions × shapes × backends: time, GFLOP/s, energy per FLOP, error vs a float64 oracle.
    /// Writes results/*.json|csv and a markdown + SVG report.
    Run(run::Args),
    /// Write the markdown report and SVG charts for a results file.
    Report(report::Args),
    /// Compare two results files case by case, with the noise band.
    Compare(compare::Args),
    /// List devices, the energy meter chosen for each, and why others are absent.
    Devices(devices::Args),
    /// Run a command under the energy/carbon tracker (like `codecarbon monitor`) and return its exit status.
    Track(track::Args),
}

/// Parses a power in watts that must be finite and positive (`--cpu-tdp`).
fn positive_watts(s: &str) -> std::result::Result<f64, String> {
    match s.parse::<f64>() {
        Ok(w) if w.is_finite() && w > 0.0 => Ok(w),
        Ok(w) => Err(format!("{w} W is not a usable power: give a finite value above 0")),
        Err(e) => Err(e.to_string()),
    }
}

fn main() -> Result<()> {
    // Like other Unix tools, stop quietly when stdout is a closed pipe (`joule run --json | head`): Rust ignores
    // SIGPIPE by default, which turns every later println! into a "Broken pipe" panic.
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of SIGPIPE at start-up, before any thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => run::main(args),
        Command::Report(args) => report::main(args),
        Command::Compare(args) => compare::main(args),
        Command::Devices(args) => devices::main(args),
        Command::Track(args) => track::main(args),
    }
}
