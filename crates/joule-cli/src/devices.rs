//! `joule devices` (to be written).

/// Arguments of `joule devices`.
#[derive(clap::Args)]
pub struct Args {}

/// Runs `joule devices`.
pub fn main(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`joule devices` is not implemented yet")
}
