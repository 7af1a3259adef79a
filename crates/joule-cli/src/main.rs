//! The `joule` command.

use anyhow::Result;
use clap::{Parser, Subcommand};

mod devices;
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
    /// List devices, the energy meter chosen for each, and why others are absent.
    Devices(devices::Args),
    /// Run a command under the energy/carbon tracker (like `codecarbon monitor`) and return its exit status.
    Track(track::Args),
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Devices(args) => devices::main(args),
        Command::Track(args) => track::main(args),
    }
}
