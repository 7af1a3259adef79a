//! Printing joules and work per joule, every unit labelled with the meter's method.

use criterion::Throughput;
use criterion::measurement::ValueFormatter;
use joule_energy::Method;

/// Four labels for one unit, one per [`Method`], in the order of [`method_index`].
type Labels = [&'static str; 4];

/// `"<unit> (<method>)"` for the four methods. criterion wants `&'static str` units, so every combination is spelled
/// out at compile time; a test checks the suffixes against [`Method::as_str`].
macro_rules! labelled {
    ($unit:literal) => {
        [
            concat!($unit, " (nvml-counter)"),
            concat!($unit, " (nvml-power)"),
            concat!($unit, " (rapl)"),
            concat!($unit, " (estimated)"),
        ]
    };
}

/// Position of a method in a [`Labels`] array.
fn method_index(method: Method) -> usize {
    match method {
        Method::NvmlCounter => 0,
        Method::NvmlPower => 1,
        Method::Rapl => 2,
        Method::Estimated => 3,
    }
}

/// One step of a unit ladder: used when the typical value is at least `min`; values are multiplied by `factor`.
struct Step {
    min: f64,
    factor: f64,
    labels: Labels,
}

/// Energy per iteration (values in joules), largest unit first.
const ENERGY: [Step; 5] = [
    Step { min: 1e3, factor: 1e-3, labels: labelled!("kJ") },
    Step { min: 1.0, factor: 1.0, labels: labelled!("J") },
    Step { min: 1e-3, factor: 1e3, labels: labelled!("mJ") },
    Step { min: 1e-6, factor: 1e6, labels: labelled!("µJ") },
    Step { min: 0.0, factor: 1e9, labels: labelled!("nJ") },
];

/// FLOPs per joule (Joule's benches pass FLOPs as `Throughput::Elements`).
const FLOP_PER_J: [Step; 5] = [
    Step { min: 1e12, factor: 1e-12, labels: labelled!("TFLOP/J") },
    Step { min: 1e9, factor: 1e-9, labels: labelled!("GFLOP/J") },
    Step { min: 1e6, factor: 1e-6, labels: labelled!("MFLOP/J") },
    Step { min: 1e3, factor: 1e-3, labels: labelled!("KFLOP/J") },
    Step { min: 0.0, factor: 1.0, labels: labelled!("FLOP/J") },
];

/// Bytes per joule, binary prefixes (`Throughput::Bytes`, as criterion's B/s).
const BYTES_PER_J: [Step; 4] = [
    Step { min: 1_073_741_824.0, factor: 1.0 / 1_073_741_824.0, labels: labelled!("GiB/J") },
    Step { min: 1_048_576.0, factor: 1.0 / 1_048_576.0, labels: labelled!("MiB/J") },
    Step { min: 1024.0, factor: 1.0 / 1024.0, labels: labelled!("KiB/J") },
    Step { min: 0.0, factor: 1.0, labels: labelled!("B/J") },
];

/// Bytes per joule, decimal prefixes (`Throughput::BytesDecimal`).
const BYTES_DECIMAL_PER_J: [Step; 4] = [
    Step { min: 1e9, factor: 1e-9, labels: labelled!("GB/J") },
    Step { min: 1e6, factor: 1e-6, labels: labelled!("MB/J") },
    Step { min: 1e3, factor: 1e-3, labels: labelled!("KB/J") },
    Step { min: 0.0, factor: 1.0, labels: labelled!("B/J") },
];

/// Bits per joule, decimal prefixes (`Throughput::Bits`).
const BITS_PER_J: [Step; 4] = [
    Step { min: 1e9, factor: 1e-9, labels: labelled!("Gb/J") },
    Step { min: 1e6, factor: 1e-6, labels: labelled!("Mb/J") },
    Step { min: 1e3, factor: 1e-3, labels: labelled!("Kb/J") },
    Step { min: 0.0, factor: 1.0, labels: labelled!("b/J") },
];

/// The unit for raw values written for machines (criterion's CSV output): joules, unscaled.
const MACHINE: Labels = labelled!("J");

/// The first step whose threshold the typical value reaches (the last step when none does, e.g. for 0).
fn pick(ladder: &[Step], typical: f64) -> &Step {
    ladder.iter().find(|s| typical >= s.min).unwrap_or(&ladder[ladder.len() - 1])
}

/// Work per joule: `work / joules`, or 0 when the energy is not positive and finite (a rate over no energy has no
/// meaning; the batching in [`crate::measure_batched`] never produces such a value, so 0 only shows up for data that
/// did not come from it). Never NaN or infinite.
pub fn per_joule(work: f64, joules: f64) -> f64 {
    if joules > 0.0 && joules.is_finite() && work.is_finite() {
        let r = work / joules;
        if r.is_finite() { r } else { 0.0 }
    } else {
        0.0
    }
}

/// criterion's [`ValueFormatter`] for [`crate::Joules`]: values are joules per iteration.
///
/// * Values: `kJ`, `J`, `mJ`, `µJ` or `nJ`, chosen from the typical value, e.g. `3.21 mJ (estimated)`.
/// * Throughput, as work per joule: `Elements(n)` → FLOP/J … TFLOP/J (Joule's benches pass the FLOP count as
///   elements; never as bytes), `Bytes(n)` → B/J … GiB/J, `BytesDecimal(n)` → B/J … GB/J, `Bits(n)` → b/J … Gb/J,
///   `ElementsAndBytes { elements, .. }` → FLOP/J of the elements (criterion's command-line report already splits
///   this variant and asks for the elements and the bytes separately).
/// * Every unit carries the method in parentheses: `nvml-counter`, `nvml-power`, `rapl` or `estimated`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JoulesFormatter {
    method: Method,
}

impl JoulesFormatter {
    /// A formatter labelling every unit with `method`.
    pub fn new(method: Method) -> Self {
        JoulesFormatter { method }
    }

    /// The method shown next to every unit.
    pub fn method(&self) -> Method {
        self.method
    }

    fn label(&self, labels: &Labels) -> &'static str {
        labels[method_index(self.method)]
    }

    /// Converts joules to work per joule scaled on `ladder` (the unit chosen from the typical value).
    fn rate(&self, ladder: &[Step], work: u64, typical_j: f64, values: &mut [f64]) -> &'static str {
        let work = work as f64;
        let step = pick(ladder, per_joule(work, typical_j));
        for v in values.iter_mut() {
            *v = per_joule(work, *v) * step.factor;
        }
        self.label(&step.labels)
    }
}

impl ValueFormatter for JoulesFormatter {
    fn scale_values(&self, typical_value: f64, values: &mut [f64]) -> &'static str {
        let step = pick(&ENERGY, typical_value);
        for v in values.iter_mut() {
            *v *= step.factor;
        }
        self.label(&step.labels)
    }

    fn scale_throughputs(&self, typical_value: f64, throughput: &Throughput, values: &mut [f64]) -> &'static str {
        match *throughput {
            Throughput::Elements(n) => self.rate(&FLOP_PER_J, n, typical_value, values),
            Throughput::ElementsAndBytes { elements, bytes: _ } => {
                self.rate(&FLOP_PER_J, elements, typical_value, values)
            }
            Throughput::Bytes(n) => self.rate(&BYTES_PER_J, n, typical_value, values),
            Throughput::BytesDecimal(n) => self.rate(&BYTES_DECIMAL_PER_J, n, typical_value, values),
            Throughput::Bits(n) => self.rate(&BITS_PER_J, n, typical_value, values),
        }
    }

    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        self.label(&MACHINE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const METHODS: [Method; 4] = [Method::NvmlCounter, Method::NvmlPower, Method::Rapl, Method::Estimated];

    #[test]
    fn every_label_names_its_method() {
        for ladder in [&ENERGY[..], &FLOP_PER_J, &BYTES_PER_J, &BYTES_DECIMAL_PER_J, &BITS_PER_J] {
            for step in ladder {
                for m in METHODS {
                    let label = step.labels[method_index(m)];
                    assert!(label.ends_with(&format!(" ({})", m.as_str())), "{label} vs {m}");
                }
            }
        }
        for m in METHODS {
            assert_eq!(MACHINE[method_index(m)], format!("J ({m})"));
        }
    }

    #[test]
    fn ladders_descend() {
        for ladder in [&ENERGY[..], &FLOP_PER_J, &BYTES_PER_J, &BYTES_DECIMAL_PER_J, &BITS_PER_J] {
            assert!(ladder.windows(2).all(|w| w[0].min > w[1].min));
            assert_eq!(ladder[ladder.len() - 1].min, 0.0);
        }
    }

    #[test]
    fn per_joule_is_never_nan_or_infinite() {
        assert_eq!(per_joule(10.0, 2.0), 5.0);
        for j in [0.0, -1.0, f64::NAN, f64::INFINITY, f64::MIN_POSITIVE / 1e10] {
            let r = per_joule(1e300, j);
            assert!(r.is_finite(), "{j} -> {r}");
        }
    }
}
