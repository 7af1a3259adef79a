//! Joule's one integration-test binary (so tests link once). `suite` holds the test bodies, written once over any
//! backend and element type; each backend module instantiates them.

mod cpu;
mod emu;
mod gpu;
mod nvrtc;
pub mod suite;
