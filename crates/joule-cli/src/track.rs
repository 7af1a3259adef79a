//! `joule track` (to be written).

/// Arguments of `joule track`.
#[derive(clap::Args)]
pub struct Args {}

/// Runs `joule track`.
pub fn main(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`joule track` is not implemented yet")
}
