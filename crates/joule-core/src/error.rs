//! The error type every Joule library returns.

use std::path::PathBuf;

/// Result alias used across Joule's libraries.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in a Joule library call. User input never panics: it gives one of these.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A shape that cannot describe a valid computation (zero stride, leading dimension too small, ...).
    #[error("invalid {kernel} shape: {reason}")]
    InvalidShape {
        /// Which kernel's shape ("gemm", "dwconv", "attention").
        kernel: &'static str,
        /// What is wrong, in words.
        reason: String,
    },
    /// A shape whose element or byte count does not fit in `usize`.
    #[error("{kernel} shape too large: {what} overflows usize")]
    SizeOverflow {
        /// Which kernel's shape.
        kernel: &'static str,
        /// Which quantity overflowed.
        what: &'static str,
    },
    /// A buffer shorter than the shape needs.
    #[error("buffer `{buffer}` has {got} elements, the shape needs at least {expected}")]
    BufferLength {
        /// Buffer name (e.g. "a", "q", "out").
        buffer: &'static str,
        /// Elements the shape needs (at least).
        expected: usize,
        /// Elements given.
        got: usize,
    },
    /// A valid request this backend or build does not support (the message says what would).
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// An invalid argument that is not a shape (a bad option value, an unknown name).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// No CUDA device, driver or library here; a normal, reported state.
    #[error("CUDA not available: {0}")]
    CudaUnavailable(String),
    /// A CUDA driver, NVRTC or cuBLAS call failed.
    #[error("CUDA error in {context}: {message}")]
    Cuda {
        /// What was being done (e.g. "launch gemm_tc_f16").
        context: String,
        /// The driver's message.
        message: String,
    },
    /// An energy meter that cannot be used here, with a hint on how to make it usable.
    #[error("{meter} unavailable: {reason}{}", hint.as_ref().map(|h| format!(" (hint: {h})")).unwrap_or_default())]
    MeterUnavailable {
        /// Meter name ("rapl", "nvml", ...).
        meter: &'static str,
        /// Why it cannot be used.
        reason: String,
        /// What the user could do about it.
        hint: Option<String>,
    },
    /// A file could not be read or written.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A file or value could not be parsed.
    #[error("cannot parse {what}: {reason}")]
    Parse {
        /// What was being parsed.
        what: String,
        /// Why it failed.
        reason: String,
    },
}

impl Error {
    /// Shorthand for [`Error::InvalidShape`].
    pub fn shape(kernel: &'static str, reason: impl Into<String>) -> Self {
        Error::InvalidShape { kernel, reason: reason.into() }
    }

    /// Shorthand for [`Error::Io`].
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
}
