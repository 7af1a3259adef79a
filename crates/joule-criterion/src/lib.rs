//! Energy for criterion: `cargo bench` reports joules per iteration and FLOP/J, labelled with how the joules were
//! obtained.
//!
//! * [`Joules`]: a `criterion::measurement::Measurement` whose value is joules, read from a `joule-energy` meter
//!   (NVML on a GPU with the stream synchronised at the window edges, RAPL on the CPU, else the labelled estimate).
//! * [`JoulesFormatter`]: J / mJ / µJ per iteration and, with `Throughput::Elements(flops)`, FLOP/J (up to
//!   TFLOP/J); every `Throughput` variant of criterion 0.8 is handled, and every unit carries the method:
//!   `2.41 mJ (estimated)`, `3.05 GFLOP/J (nvml-counter)`.
//! * [`measure_batched`]: runs a closure `iters` times inside one energy window and, when the window is shorter than
//!   the meter's minimum, repeats the batch inside a longer window and divides, so short calls never read as 0 J.
//!
//! ```no_run
//! use criterion::{Criterion, Throughput};
//! use joule_criterion::Joules;
//!
//! let (joules, _absent) = Joules::cpu(&Default::default()).unwrap();
//! let mut c = Criterion::default().with_measurement(joules.clone());
//! let mut group = c.benchmark_group("energy/work");
//! group.throughput(Throughput::Elements(2_000_000)); // FLOPs per call
//! group.bench_function("f32", |b| b.iter_custom(|iters| joules.measure(iters, || { /* one call */ })));
//! group.finish();
//! ```
#![deny(missing_docs)]

mod batch;
mod format;
mod measurement;

pub use batch::{BatchPolicy, BatchedEnergy, measure_batched};
pub use format::{JoulesFormatter, per_joule};
pub use measurement::{Joules, JoulesBuilder, MIN_WINDOW_ENV, SyncFn, parse_min_window, policy_from_env};

/// Re-exported so users name the same criterion this crate implements the traits of.
pub use criterion;
/// Re-exported for its meter configuration (`MeterConfig`) and labels (`Method`).
pub use joule_energy;
