//! Joule's harness: it measures every kernel × precision × shape × backend for time, energy and accuracy.
//!
//! The data flow of `joule run`:
//!
//! 1. [`plan`]: the cases (kernel × dtype × named shape × backend available here), filtered;
//! 2. for each case: seeded inputs rounded to the dtype ([`inputs`]), the float64 oracle on those inputs
//!    ([`oracle`], on a documented sub-problem when the full case is too big), the backend's prepared case
//!    ([`executor`]), the error check against the oracle, then the measuring loop ([`measure`]): warm-up, then
//!    trials, each one energy window long enough for the meter;
//! 3. one [`results::ResultRow`] per case, written as versioned JSON and CSV ([`results`]) with machine metadata
//!    ([`machine`]);
//! 4. the report ([`report`]: markdown + SVG charts, read back from the results file alone) and comparisons
//!    between two results files ([`compare`]).
#![deny(missing_docs)]

pub mod catalog;
pub mod compare;
pub mod cuda;
pub mod executor;
pub mod inputs;
pub mod machine;
pub mod measure;
pub mod oracle;
pub mod plan;
pub mod report;
pub mod results;
pub mod runner;
pub mod stats;
pub mod table;

pub use catalog::{NamedShape, ShapeSpec};
pub use executor::{DeviceRef, Executor, HostExecutor, PreparedCase, cpu_executor};
pub use machine::MachineInfo;
pub use measure::{Clock, LoopConfig, SystemClock};
pub use plan::{BackendStatus, Case, KernelKind, Plan, PlanFilter, ShapeSet};
pub use results::{ResultRow, ResultsFile, SCHEMA_VERSION};
pub use runner::{Meters, NoProgress, Progress, RunConfig, run_plan};
pub use stats::Spread;
