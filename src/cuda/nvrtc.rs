//! Run-time compilation of `cuda/*.cu` with NVRTC (through cudarc), cached in memory and on disk.
//!
//! Disk cache entries are keyed by the prepared source text, the options, the target and the NVRTC version, so a
//! changed kernel, a new NVRTC or another GPU never reuses stale PTX. Entries are written atomically.

use super::common::{
    include_dir, prepare_source, prepare_text, ptx_cache_dir, source_hash, virtual_arch, write_atomic,
};
use crate::{Error, Result};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

include!(concat!(env!("OUT_DIR"), "/precompiled_ptx.rs"));

/// PTX that `build.rs` produced with `nvcc` for `(file, arch)`, when nvcc was on the build machine's PATH.
pub fn precompiled(file: &str, arch: &str) -> Option<&'static str> {
    PRECOMPILED_PTX.iter().find(|(f, a, _)| *f == file && *a == arch).map(|(_, _, ptx)| *ptx)
}

/// Whether libnvrtc can be loaded here, and its version `(major, minor)`; `Error::CudaUnavailable` with the reason
/// when it cannot (never a panic).
pub fn version() -> Result<(i32, i32)> {
    static VERSION: OnceLock<std::result::Result<(i32, i32), String>> = OnceLock::new();
    VERSION
        .get_or_init(|| {
            // SAFETY: only tries to dlopen the candidate library names; nothing is called through them.
            if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
                return Err("libnvrtc not found (install the CUDA toolkit or the nvidia-cuda-nvrtc wheel and put \
                     its lib folder on LD_LIBRARY_PATH)"
                    .to_string());
            }
            let (mut major, mut minor) = (0, 0);
            // SAFETY: the library is present (checked above); nvrtcVersion only writes the two ints.
            let rc = unsafe { cudarc::nvrtc::sys::nvrtcVersion(&mut major, &mut minor) };
            if rc != cudarc::nvrtc::sys::nvrtcResult::NVRTC_SUCCESS {
                return Err(format!("nvrtcVersion failed: {rc:?}"));
            }
            Ok((major, minor))
        })
        .clone()
        .map_err(Error::CudaUnavailable)
}

/// The options every kernel is compiled with (besides the target and the include path).
const BASE_OPTIONS: &[&str] = &["--std=c++17", "-lineinfo"];

/// PTX of an embedded source file (`gemm.cu`, ...) for `arch` (`sm_80`, `sm_90a`, ...), compiled by NVRTC at most
/// once per process and read from the disk cache when an identical compile was done before.
pub fn compile_file(file: &str, arch: &str) -> Result<Arc<str>> {
    // One cell per (file, arch): concurrent callers (parallel tests, several streams) wait for a single compile.
    type Compiled = std::result::Result<Arc<str>, (bool, String)>;
    type Cells = HashMap<(String, String), Arc<OnceLock<Compiled>>>;
    static CELLS: OnceLock<Mutex<Cells>> = OnceLock::new();
    version()?;
    virtual_arch(arch)?;
    if joule_launch::source(file).is_none() {
        return Err(Error::InvalidArgument(format!("no embedded CUDA source named `{file}`")));
    }
    let cell = {
        let mut cells = CELLS.get_or_init(Default::default).lock().map_err(|_| poisoned())?;
        cells.entry((file.to_string(), arch.to_string())).or_default().clone()
    };
    let compiled = cell.get_or_init(|| {
        prepare_source(file).and_then(|text| compile_cached(file, &text, arch, &[])).map(Arc::from).map_err(|e| match e
        {
            Error::CudaUnavailable(reason) => (true, reason),
            other => (false, other.to_string()),
        })
    });
    compiled.clone().map_err(|(unavailable, message)| {
        if unavailable {
            Error::CudaUnavailable(message)
        } else {
            Error::Cuda { context: format!("compile {file} for {arch}"), message }
        }
    })
}

/// Compiles any CUDA text (which may `#include "common.cuh"`) for `arch` with extra NVRTC options, bypassing every
/// cache: for tests and experiments.
pub fn compile_text(name: &str, text: &str, arch: &str, extra_options: &[&str]) -> Result<String> {
    let text = prepare_text(name, text)?;
    compile_uncached(name, &text, arch, extra_options)
}

fn poisoned() -> Error {
    Error::Cuda { context: "NVRTC cache".into(), message: "a thread panicked while holding the cache lock".into() }
}

fn compile_cached(name: &str, text: &str, arch: &str, extra: &[&str]) -> Result<String> {
    let (major, minor) = version()?;
    let nvrtc = format!("{major}.{minor}");
    let options: Vec<&str> = BASE_OPTIONS.iter().chain(extra).copied().collect();
    let hash = source_hash(&[text, &options.join(" "), arch, &nvrtc]);
    let stem = name.trim_end_matches(".cu");
    let path = ptx_cache_dir().map(|dir| dir.join(format!("{stem}-{arch}-nvrtc{nvrtc}-{hash:016x}.ptx")));
    let cached = path.as_ref().and_then(|p| std::fs::read_to_string(p).ok());
    if let Some(ptx) = cached.filter(|ptx| ptx.contains(".target")) {
        return Ok(ptx);
    }
    let ptx = compile_uncached(name, text, arch, extra)?;
    if let Some(path) = &path {
        // The cache is an optimisation: a read-only or full disk must not fail the compile.
        let _ = write_atomic(path, ptx.as_bytes());
    }
    Ok(ptx)
}

fn compile_uncached(name: &str, text: &str, arch: &str, extra: &[&str]) -> Result<String> {
    version()?;
    let include = include_dir()?;
    let mut options: Vec<String> = BASE_OPTIONS.iter().chain(extra).map(|s| s.to_string()).collect();
    options.push(format!("--gpu-architecture={}", virtual_arch(arch)?));
    let opts = cudarc::nvrtc::CompileOptions {
        include_paths: vec![include.display().to_string()],
        options,
        name: Some(name.to_string()),
        ..Default::default()
    };
    if text.contains('\0') {
        return Err(Error::InvalidArgument(format!("CUDA source `{name}` contains a NUL byte")));
    }
    let ptx = cudarc::nvrtc::compile_ptx_with_opts(text, opts).map_err(|e| {
        let message = match &e {
            cudarc::nvrtc::CompileError::CompileError { nvrtc, log, .. } => {
                format!("{nvrtc:?}\n{}", log.to_string_lossy())
            }
            other => format!("{other:?}"),
        };
        Error::Cuda { context: format!("NVRTC compile of {name} for {arch}"), message }
    })?;
    Ok(ptx.to_src())
}
