//! `joule report`: markdown + SVG charts from a results file.

use anyhow::{Context, Result};
use joule_energy::carbon::{CarbonIntensity, IntensityQuery, lookup};
use joule_harness::ResultsFile;
use std::path::PathBuf;

/// Arguments of `joule report`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// A results file written by `joule run`.
    pub results: PathBuf,
    /// Output directory [default: next to the results file, named after it without `.json`].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Country (ISO 3166 alpha-3, e.g. FRA, or English name) for the CO2e figures [default: world average].
    #[arg(long)]
    pub country: Option<String>,
    /// Carbon intensity in g CO2e/kWh, overriding the table.
    #[arg(long, value_name = "G_PER_KWH")]
    pub carbon_intensity: Option<f64>,
}

/// The carbon intensity for `country` (world average when `None`), from joule-energy's table.
pub fn carbon_intensity(country: Option<&str>) -> CarbonIntensity {
    lookup(&IntensityQuery { country: country.map(str::to_string), ..Default::default() })
}

/// Runs `joule report`.
pub fn main(args: Args) -> Result<()> {
    let res = ResultsFile::load(&args.results)?;
    let out = match args.out {
        Some(o) => o,
        None => args.results.with_extension(""),
    };
    if out == args.results {
        anyhow::bail!("the output directory would overwrite the results file; pass --out DIR");
    }
    let carbon = lookup(&IntensityQuery {
        country: args.country.clone(),
        override_g_per_kwh: args.carbon_intensity,
        ..Default::default()
    });
    for n in &carbon.notes {
        eprintln!("carbon intensity: {n}");
    }
    // The markdown links back to the results file relative to the report folder when it is the sibling one.
    let name = match (args.results.parent(), out.parent()) {
        (Some(a), Some(b)) if a == b => {
            format!("../{}", args.results.file_name().unwrap_or_default().to_string_lossy())
        }
        _ => args.results.display().to_string(),
    };
    let files = joule_harness::report::write_report(&res, &out, &carbon, &name)
        .with_context(|| format!("writing the report into {}", out.display()))?;
    println!("{}", files.markdown.display());
    for c in &files.charts {
        println!("{}", c.display());
    }
    Ok(())
}
