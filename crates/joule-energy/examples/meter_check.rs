//! Checks the meters chosen on this machine: prints each meter's description, why others are absent, and the
//! windows it measures over idle periods of 1 ms, 100 ms and 2 s (a 1 ms window should come back `too_short`).
//! Run on a machine with a GPU or RAPL to see the real meters at work:
//!
//! ```text
//! cargo run -p joule-energy --example meter_check > meter-check.json
//! ```

use joule_energy::{MeterConfig, select_meters};
use std::time::Duration;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut sel = select_meters(&MeterConfig::default());
    let mut windows = Vec::new();
    for secs in [0.001, 0.1, 2.0] {
        for m in sel.all_mut() {
            m.start()?;
        }
        std::thread::sleep(Duration::from_secs_f64(secs));
        for m in sel.all_mut() {
            windows.push(serde_json::json!({ "requested_s": secs, "window": m.stop()? }));
        }
    }
    let out = serde_json::json!({ "meters": sel.infos(), "absent": sel.absent, "windows": windows });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}
