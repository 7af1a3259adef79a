//! Pieces of the CUDA backend that need no CUDA library: target names, header and cache locations, source
//! preparation for NVRTC, atomic file writes. Compiled with and without the `cuda` feature.

use crate::{Error, Result};
use std::path::{Path, PathBuf};

/// The NVRTC/ptxas target for a compute capability: `sm_90a` on Hopper (9.0), so the arch-specific (wgmma-era)
/// features are allowed; `sm_{major}{minor}` otherwise.
pub fn arch_for(major: i32, minor: i32) -> String {
    if (major, minor) == (9, 0) { "sm_90a".to_string() } else { format!("sm_{major}{minor}") }
}

/// The NVRTC virtual architecture (`compute_90a`) for a real one (`sm_90a`).
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
pub(crate) fn virtual_arch(arch: &str) -> Result<String> {
    match arch.strip_prefix("sm_") {
        Some(rest) if !rest.is_empty() && rest.chars().all(|c| c.is_ascii_alphanumeric()) => {
            Ok(format!("compute_{rest}"))
        }
        _ => Err(Error::InvalidArgument(format!("CUDA architecture `{arch}` is not of the form sm_XY"))),
    }
}

/// The folder holding `cuda_fp16.h` and `cuda_bf16.h` for NVRTC: `$JOULE_CUDA_INCLUDE`, else `$CUDA_HOME/include`,
/// `$CUDA_PATH/include`, `/usr/local/cuda/include`, the first that holds `cuda_fp16.h`.
pub fn include_dir() -> Result<PathBuf> {
    let mut tried = Vec::new();
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(dir) = std::env::var_os("JOULE_CUDA_INCLUDE") {
        candidates.push(dir.into());
    }
    for var in ["CUDA_HOME", "CUDA_PATH"] {
        if let Some(root) = std::env::var_os(var) {
            candidates.push(Path::new(&root).join("include"));
        }
    }
    candidates.push("/usr/local/cuda/include".into());
    for dir in candidates {
        if dir.join("cuda_fp16.h").is_file() {
            return Ok(dir);
        }
        tried.push(dir.display().to_string());
    }
    Err(Error::CudaUnavailable(format!(
        "cuda_fp16.h not found for NVRTC (tried {}); set JOULE_CUDA_INCLUDE to the CUDA include folder",
        tried.join(", ")
    )))
}

/// The on-disk PTX cache: `$JOULE_PTX_CACHE` (`off` disables it), else `$XDG_CACHE_HOME/joule/ptx`, else
/// `$HOME/.cache/joule/ptx`. `None` when disabled or no location is known.
pub fn ptx_cache_dir() -> Option<PathBuf> {
    match std::env::var_os("JOULE_PTX_CACHE") {
        Some(v) if v == "off" || v.is_empty() => return None,
        Some(v) => return Some(v.into()),
        None => {}
    }
    if let Some(xdg) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        return Some(Path::new(&xdg).join("joule").join("ptx"));
    }
    std::env::var_os("HOME").filter(|v| !v.is_empty()).map(|h| Path::new(&h).join(".cache").join("joule").join("ptx"))
}

/// FNV-1a 64 of the given parts (with a separator between them): a hash that is stable across Rust versions and
/// platforms, for cache keys.
pub fn source_hash(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &b in part.as_bytes().iter().chain(std::iter::once(&0xffu8)) {
            h ^= b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// The text NVRTC compiles for an embedded source file: `#include "common.cuh"` (NVRTC gets no header list from
/// cudarc) is replaced by the header's text, between `#line` directives so messages still name the right file and
/// line. Other includes (`cuda_fp16.h`, ...) are left to the include path.
pub fn prepare_source(file: &str) -> Result<String> {
    let text = joule_launch::source(file)
        .ok_or_else(|| Error::InvalidArgument(format!("no embedded CUDA source named `{file}`")))?;
    prepare_text(file, text)
}

/// [`prepare_source`] for any text (used by tests that compile kernels of their own against `common.cuh`).
pub fn prepare_text(name: &str, text: &str) -> Result<String> {
    let common = joule_launch::source("common.cuh")
        .ok_or_else(|| Error::InvalidArgument("no embedded common.cuh".to_string()))?;
    let mut out = String::with_capacity(text.len() + common.len() + 256);
    for (i, line) in text.lines().enumerate() {
        if line.trim() == "#include \"common.cuh\"" {
            out.push_str("#line 1 \"common.cuh\"\n");
            for c in common.lines() {
                // A `#pragma once` in what NVRTC sees as the main file only draws a warning; drop it.
                if c.trim() != "#pragma once" {
                    out.push_str(c);
                }
                out.push('\n');
            }
            out.push_str(&format!("#line {} \"{name}\"\n", i + 2));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    Ok(out)
}

/// Writes `bytes` to `path` through a temporary name in the same folder and a rename, so a reader never sees a
/// half-written file (creating the folder first).
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    std::fs::write(&tmp, bytes).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hopper_gets_the_arch_specific_target() {
        assert_eq!(arch_for(9, 0), "sm_90a");
        assert_eq!(arch_for(8, 0), "sm_80");
        assert_eq!(arch_for(8, 9), "sm_89");
        assert_eq!(virtual_arch("sm_90a").unwrap(), "compute_90a");
        assert!(virtual_arch("90").is_err());
        assert!(virtual_arch("sm_9-0").is_err());
    }

    #[test]
    fn hash_separates_parts_and_is_stable() {
        assert_ne!(source_hash(&["ab", "c"]), source_hash(&["a", "bc"]));
        // FNV-1a 64 of "a" followed by the 0xff separator, computed by hand from the published constants.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in [b'a', 0xff] {
            h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
        assert_eq!(source_hash(&["a"]), h);
    }

    #[test]
    fn common_header_is_inlined_with_line_directives() {
        let text = "// k\n#include \"common.cuh\"\nextern \"C\" __global__ void k() {}\n";
        let out = prepare_text("k.cu", text).unwrap();
        assert!(!out.contains("#include \"common.cuh\""));
        assert!(out.contains("#line 1 \"common.cuh\""));
        assert!(out.contains("#line 3 \"k.cu\"\nextern \"C\""));
        assert!(out.contains("namespace joule"));
        assert!(prepare_source("nope.cu").is_err());
        for (file, _) in joule_launch::SOURCES.iter().filter(|(f, _)| f.ends_with(".cu")) {
            assert!(!prepare_source(file).unwrap().contains("#include \"common.cuh\""), "{file}");
        }
    }

    #[test]
    fn atomic_write_replaces_the_file_and_leaves_no_temporary() {
        let dir = std::env::temp_dir().join(format!("joule-atomic-{}", std::process::id()));
        let path = dir.join("x.ptx");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
