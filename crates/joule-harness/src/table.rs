//! Plain-text tables for the terminal.

use crate::results::ResultsFile;

/// A table with left-aligned first columns and right-aligned numbers.
#[derive(Debug, Clone, Default)]
pub struct TextTable {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
    left: usize,
}

impl TextTable {
    /// A table with this header; the first `left_aligned` columns are left-aligned, the rest right-aligned.
    pub fn new(header: &[&str], left_aligned: usize) -> Self {
        TextTable { header: header.iter().map(|s| s.to_string()).collect(), rows: Vec::new(), left: left_aligned }
    }

    /// Adds a row.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Renders with two spaces between columns and a rule under the header.
    pub fn render(&self) -> String {
        let ncol = self.header.len();
        let width = |i: usize| {
            std::iter::once(&self.header)
                .chain(&self.rows)
                .map(|r| r.get(i).map(|c| c.chars().count()).unwrap_or(0))
                .max()
                .unwrap_or(0)
        };
        let widths: Vec<usize> = (0..ncol).map(width).collect();
        let line = |cells: &[String]| {
            let mut s = String::new();
            for (i, w) in widths.iter().enumerate() {
                let c = cells.get(i).map(String::as_str).unwrap_or("");
                let pad = w.saturating_sub(c.chars().count());
                if i > 0 {
                    s.push_str("  ");
                }
                if i < self.left {
                    s.push_str(c);
                    s.push_str(&" ".repeat(pad));
                } else {
                    s.push_str(&" ".repeat(pad));
                    s.push_str(c);
                }
            }
            s.trim_end().to_string()
        };
        let mut out = line(&self.header);
        out.push('\n');
        out.push_str(&"-".repeat(widths.iter().sum::<usize>() + 2 * ncol.saturating_sub(1)));
        out.push('\n');
        for r in &self.rows {
            out.push_str(&line(r));
            out.push('\n');
        }
        out
    }
}

/// A number with 3 significant digits, switching to scientific notation outside [1e-3, 1e6).
pub fn sig3(x: f64) -> String {
    if !x.is_finite() {
        return "-".into();
    }
    let a = x.abs();
    if a == 0.0 {
        "0".into()
    } else if !(1e-3..1e6).contains(&a) {
        format!("{x:.2e}")
    } else {
        let digits = (2 - a.log10().floor() as i32).max(0) as usize;
        format!("{x:.digits$}")
    }
}

/// The results as a terminal table (one line per row, failures listed after).
pub fn results_table(res: &ResultsFile) -> String {
    let mut t = TextTable::new(
        &[
            "kernel",
            "dtype",
            "backend",
            "shape",
            "ms/call",
            "±%",
            "GFLOP/s",
            "GB/s",
            "mJ/call",
            "GFLOP/J",
            "pJ/FLOP",
            "W",
            "energy",
            "rel L2 err",
            "check",
        ],
        4,
    );
    for r in &res.rows {
        let opt = |o: Option<f64>| o.map(sig3).unwrap_or_else(|| "-".into());
        t.row(vec![
            r.kernel.name().into(),
            r.dtype.name().into(),
            r.backend.clone(),
            r.shape.name.clone(),
            sig3(r.time_per_call_s.p50 * 1e3),
            format!("{:.0}", 50.0 * r.time_per_call_s.relative_width()),
            sig3(r.gflops.p50),
            sig3(r.gbps.p50),
            opt(r.joules_per_call.map(|s| s.p50 * 1e3)),
            opt(r.gflop_per_j.map(|s| s.p50)),
            opt(r.pj_per_flop.map(|s| s.p50)),
            opt(r.avg_power_w.map(|s| s.p50)),
            r.energy.method.as_str().into(),
            r.accuracy.rel_l2.map(|e| format!("{e:.1e}")).unwrap_or_else(|| "non-finite".into()),
            if r.accuracy.pass { "pass".into() } else { "FAIL".into() },
        ]);
    }
    let mut out = t.render();
    out.push_str("±% is half the p10–p90 band of the time per call, relative to the median.\n");
    let methods: std::collections::BTreeSet<_> = res.rows.iter().map(|r| r.energy.method.as_str()).collect();
    if methods.contains("estimated") {
        out.push_str("energy `estimated`: a model (TDP × utilisation + RAM), not a measurement.\n");
    }
    for f in &res.failures {
        out.push_str(&format!("FAILED {}: {}\n", f.id, f.error));
    }
    for b in &res.skipped_backends {
        out.push_str(&format!("backend {} skipped: {}\n", b.name, b.unavailable.as_deref().unwrap_or("")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up_and_numbers_keep_three_digits() {
        let mut t = TextTable::new(&["name", "value"], 1);
        t.row(vec!["a".into(), "1.5".into()]);
        t.row(vec!["longer".into(), "12.5".into()]);
        let s = t.render();
        let lines: Vec<_> = s.lines().collect();
        assert_eq!(lines[0], "name    value");
        assert_eq!(lines[2], "a         1.5");
        assert_eq!(lines[3], "longer   12.5");
        assert_eq!(
            (sig3(1234.6), sig3(0.012345), sig3(2e-5), sig3(f64::NAN)),
            ("1235".into(), "0.0123".into(), "2.00e-5".into(), "-".into())
        );
    }
}
