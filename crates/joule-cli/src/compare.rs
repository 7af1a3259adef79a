//! `joule compare`: per-case changes between two results files, with the noise band.

use anyhow::Result;
use joule_harness::ResultsFile;
use joule_harness::compare::compare;
use std::path::PathBuf;

/// Arguments of `joule compare`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The "before" results file.
    pub a: PathBuf,
    /// The "after" results file.
    pub b: PathBuf,
    /// Print the comparison as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `joule compare`.
pub fn main(args: Args) -> Result<()> {
    let a = ResultsFile::load(&args.a)?;
    let b = ResultsFile::load(&args.b)?;
    let c = compare(&a, &b);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&c)?);
    } else {
        println!("A = {}\nB = {}\n", args.a.display(), args.b.display());
        print!("{}", c.render());
    }
    if c.cases.is_empty() {
        anyhow::bail!(
            "the two files have no case in common ({} only in A, {} only in B): nothing was compared",
            c.only_in_a.len(),
            c.only_in_b.len()
        );
    }
    Ok(())
}
