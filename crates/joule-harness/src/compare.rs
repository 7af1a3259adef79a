//! `joule compare`: what changed between two results files, with the noise band.
//!
//! The noise rule: a metric changed only when the p10–p90 bands of the two runs do not overlap; otherwise the
//! change is reported as "within noise", whatever the medians say. Energy is compared only when both rows were
//! measured with the same method (an estimate against a RAPL reading says nothing about the kernel).

use crate::results::{ResultRow, ResultsFile};
use crate::stats::Spread;
use crate::table::{TextTable, sig3};
use serde::{Deserialize, Serialize};

/// The verdict on one metric (lower is better for both time and energy).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// B's band lies entirely below A's.
    Better,
    /// B's band lies entirely above A's.
    Worse,
    /// The bands overlap.
    WithinNoise,
}

impl Verdict {
    /// Compares two spreads of a lower-is-better metric.
    pub fn of(a: &Spread, b: &Spread) -> Verdict {
        if a.overlaps(b) {
            Verdict::WithinNoise
        } else if b.p50 < a.p50 {
            Verdict::Better
        } else {
            Verdict::Worse
        }
    }

    /// Words for tables.
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Better => "better",
            Verdict::Worse => "worse",
            Verdict::WithinNoise => "within noise",
        }
    }
}

/// One metric of one case in both runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricChange {
    /// Run A.
    pub a: Spread,
    /// Run B.
    pub b: Spread,
    /// `b.p50 / a.p50 − 1` (−0.2 = 20 % lower in B).
    pub change: f64,
    /// The noise rule's verdict.
    pub verdict: Verdict,
}

impl MetricChange {
    fn new(a: Spread, b: Spread) -> MetricChange {
        let change = if a.p50 != 0.0 { b.p50 / a.p50 - 1.0 } else { 0.0 };
        MetricChange { a, b, change, verdict: Verdict::of(&a, &b) }
    }
}

/// One case present in both runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseChange {
    /// Case id.
    pub id: String,
    /// Seconds per call.
    pub time_per_call_s: MetricChange,
    /// Joules per call, when both runs have it with the same method.
    pub joules_per_call: Option<MetricChange>,
    /// Energy method in A and B.
    pub methods: (String, String),
    /// Relative L2 error in A and B.
    pub rel_l2: (Option<f64>, Option<f64>),
    /// Pass rule verdict in A and B.
    pub pass: (bool, bool),
}

/// The comparison of two runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// Cases in both runs, in A's order.
    pub cases: Vec<CaseChange>,
    /// Case ids only in A.
    pub only_in_a: Vec<String>,
    /// Case ids only in B.
    pub only_in_b: Vec<String>,
    /// Things that make the runs less comparable (different machines, methods, quick runs).
    pub notes: Vec<String>,
}

fn energy_change(a: &ResultRow, b: &ResultRow) -> Option<MetricChange> {
    if a.energy.method != b.energy.method
        || a.energy.idle_subtracted_w.is_some() != b.energy.idle_subtracted_w.is_some()
    {
        return None;
    }
    Some(MetricChange::new(a.joules_per_call?, b.joules_per_call?))
}

/// Compares run `a` (before) with run `b` (after), case by case.
pub fn compare(a: &ResultsFile, b: &ResultsFile) -> Comparison {
    let mut notes = Vec::new();
    if a.machine.cpu_model != b.machine.cpu_model || a.machine.hostname != b.machine.hostname {
        notes.push(format!(
            "different machines: A ran on {} ({}), B on {} ({})",
            a.machine.hostname, a.machine.cpu_model, b.machine.hostname, b.machine.cpu_model
        ));
    }
    if a.settings.quick || b.settings.quick {
        notes.push("at least one run used --quick (shortened windows): bands are wide".into());
    }
    let mut cases = Vec::new();
    let mut only_in_a = Vec::new();
    for ra in &a.rows {
        let Some(rb) = b.rows.iter().find(|r| r.id == ra.id) else {
            only_in_a.push(ra.id.clone());
            continue;
        };
        let energy = energy_change(ra, rb);
        if energy.is_none() && ra.energy.method != rb.energy.method {
            let n =
                format!("energy not compared where methods differ (A {}, B {})", ra.energy.method, rb.energy.method);
            if !notes.contains(&n) {
                notes.push(n);
            }
        }
        cases.push(CaseChange {
            id: ra.id.clone(),
            time_per_call_s: MetricChange::new(ra.time_per_call_s, rb.time_per_call_s),
            joules_per_call: energy,
            methods: (ra.energy.method.as_str().into(), rb.energy.method.as_str().into()),
            rel_l2: (ra.accuracy.rel_l2, rb.accuracy.rel_l2),
            pass: (ra.accuracy.pass, rb.accuracy.pass),
        });
    }
    let only_in_b = b.rows.iter().filter(|r| !a.rows.iter().any(|x| x.id == r.id)).map(|r| r.id.clone()).collect();
    Comparison { cases, only_in_a, only_in_b, notes }
}

fn pct(x: f64) -> String {
    format!("{:+.1}%", 100.0 * x)
}

impl Comparison {
    /// A terminal table of the comparison.
    pub fn render(&self) -> String {
        let mut t = TextTable::new(
            &[
                "case",
                "ms/call A",
                "ms/call B",
                "time",
                "verdict",
                "mJ/call A",
                "mJ/call B",
                "energy",
                "verdict",
                "err A",
                "err B",
            ],
            1,
        );
        for c in &self.cases {
            let (ea, eb, ec, ev) = match &c.joules_per_call {
                Some(m) => (sig3(m.a.p50 * 1e3), sig3(m.b.p50 * 1e3), pct(m.change), m.verdict.label().to_string()),
                None => ("-".into(), "-".into(), "-".into(), "not compared".into()),
            };
            let err = |e: Option<f64>, pass: bool| {
                format!(
                    "{}{}",
                    e.map(|x| format!("{x:.1e}")).unwrap_or_else(|| "-".into()),
                    if pass { "" } else { " FAIL" }
                )
            };
            t.row(vec![
                c.id.clone(),
                sig3(c.time_per_call_s.a.p50 * 1e3),
                sig3(c.time_per_call_s.b.p50 * 1e3),
                pct(c.time_per_call_s.change),
                c.time_per_call_s.verdict.label().into(),
                ea,
                eb,
                ec,
                ev,
                err(c.rel_l2.0, c.pass.0),
                err(c.rel_l2.1, c.pass.1),
            ]);
        }
        let mut out = t.render();
        let mut methods: Vec<String> =
            self.cases.iter().map(|c| format!("A {}, B {}", c.methods.0, c.methods.1)).collect();
        methods.sort();
        methods.dedup();
        if !methods.is_empty() {
            out.push_str(&format!("energy method: {}\n", methods.join("; ")));
        }
        out.push_str("A change counts only when the p10–p90 bands of A and B do not overlap (else: within noise).\n");
        let count = |v: Verdict| self.cases.iter().filter(|c| c.time_per_call_s.verdict == v).count();
        out.push_str(&format!(
            "time per call: {} better, {} worse, {} within noise\n",
            count(Verdict::Better),
            count(Verdict::Worse),
            count(Verdict::WithinNoise)
        ));
        for id in &self.only_in_a {
            out.push_str(&format!("only in A: {id}\n"));
        }
        for id in &self.only_in_b {
            out.push_str(&format!("only in B: {id}\n"));
        }
        for n in &self.notes {
            out.push_str(&format!("note: {n}\n"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(p10: f64, p50: f64, p90: f64) -> Spread {
        Spread { p10, p50, p90 }
    }

    #[test]
    fn overlapping_bands_are_within_noise_whatever_the_medians_say() {
        assert_eq!(Verdict::of(&s(1.0, 1.1, 1.3), &s(1.25, 1.4, 1.5)), Verdict::WithinNoise);
        assert_eq!(Verdict::of(&s(1.0, 1.1, 1.2), &s(0.5, 0.6, 0.7)), Verdict::Better);
        assert_eq!(Verdict::of(&s(1.0, 1.1, 1.2), &s(1.3, 1.4, 1.5)), Verdict::Worse);
        let m = MetricChange::new(s(1.0, 2.0, 3.0), s(0.5, 1.5, 1.9));
        assert!((m.change + 0.25).abs() < 1e-12);
        assert_eq!(m.verdict, Verdict::WithinNoise);
    }
}
