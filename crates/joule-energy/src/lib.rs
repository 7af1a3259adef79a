//! Energy and carbon instrumentation for Joule.
//!
//! Every number this crate produces says how it was obtained ([`Method`]): `nvml-counter` (the GPU's total-energy
//! counter), `nvml-power` (GPU power sampled by a thread and integrated), `rapl` (Linux powercap counters) or
//! `estimated` (a documented model: TDP × utilisation plus RAM per GB, for machines with neither).
//!
//! * [`Meter`]: one device's energy between [`Meter::start`] and [`Meter::stop`], as an [`EnergyWindow`].
//! * [`select_meters`]: the best meter per device here, and why the others are absent.
//! * [`carbon`]: grid carbon intensity per country / region / cloud region, offline, with the fallback level used.
//! * [`Tracker`]: CodeCarbon-style start/stop with named nested tasks, giving an [`EmissionsReport`] that
//!   [`write_emissions_csv`] appends to an `emissions.csv` CodeCarbon's tooling reads.
#![deny(missing_docs)]

pub mod carbon;
mod estimate;
mod integrate;
mod meter;
mod nvml;
pub mod rapl;
mod select;
mod tracker;

pub use estimate::{
    CpuPowerSource, DEFAULT_POWER_PER_THREAD_W, EstimateMeter, EstimateModel, cpu_model_name, cpu_power_at_load,
    estimate_dimm_count, lookup_cpu_tdp, ram_power_w, read_proc_stat,
};
pub use integrate::{counter_delta, integrate_trapezoid};
pub use meter::{
    ComponentKind, DeviceKind, EnergyComponent, EnergyWindow, GpuState, Meter, MeterInfo, Method, finite_or_zero,
};
pub use nvml::{MAX_SAMPLE_PERIOD, NVML_FI_DEV_POWER_INSTANT, NvmlMeter, visible_gpu_indices};
pub use rapl::{PowercapFs, RaplDiscovery, RaplDomain, RaplMeter, RealFs};
pub use select::{AbsentMeter, MeterConfig, MeterSelection, select_meters};
pub use tracker::{
    CSV_COLUMNS, ComponentMethods, EmissionsReport, EmissionsRow, EnergyKwh, MachineInfo, PowerW, TaskReport, Tracker,
    TrackerConfig, read_emissions_csv, write_emissions_csv, write_json_atomic,
};
