//! Build script of the `joule` library.
//!
//! The kernel sources in `cuda/` are embedded by `joule-launch` (include_str!) and compiled at run time by NVRTC:
//! that is the default path and needs nothing at build time. When `nvcc` is on PATH (and `JOULE_NO_NVCC` is not
//! set), this script also precompiles each `cuda/*.cu` to PTX for sm_80 and sm_90a into OUT_DIR, and the library
//! embeds it (`joule::cuda::nvrtc::precompiled`), so a machine with a matching GPU skips NVRTC. It never fails the
//! build: without nvcc, or when nvcc rejects a file (a kernel being written), it embeds nothing for that file and
//! says so in a cargo warning.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

const ARCHS: &[(&str, &str)] = &[("sm_80", "compute_80"), ("sm_90a", "compute_90a")];

fn main() {
    println!("cargo:rerun-if-changed=cuda");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=JOULE_NO_NVCC");
    println!("cargo:rerun-if-env-changed=NVCC");
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let entries = if std::env::var_os("CARGO_FEATURE_CUDA").is_some() && std::env::var_os("JOULE_NO_NVCC").is_none() {
        precompile(&out_dir)
    } else {
        Vec::new()
    };
    let mut code = String::from(
        "/// `(source file, arch, PTX)` precompiled by build.rs with nvcc (empty when nvcc was not on PATH).\n\
         pub(crate) const PRECOMPILED_PTX: &[(&str, &str, &str)] = &[\n",
    );
    for (file, arch, path) in &entries {
        let _ = writeln!(code, "    ({file:?}, {arch:?}, include_str!({:?})),", path.display().to_string());
    }
    code.push_str("];\n");
    let target = out_dir.join("precompiled_ptx.rs");
    let tmp = out_dir.join("precompiled_ptx.rs.tmp");
    std::fs::write(&tmp, code).expect("write to OUT_DIR");
    std::fs::rename(&tmp, &target).expect("rename in OUT_DIR");
}

/// Compiles every `cuda/*.cu` with nvcc for each of ARCHS; returns what succeeded.
fn precompile(out_dir: &Path) -> Vec<(String, &'static str, PathBuf)> {
    let nvcc = std::env::var_os("NVCC").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("nvcc"));
    match Command::new(&nvcc).arg("--version").output() {
        Ok(o) if o.status.success() => {}
        _ => return Vec::new(), // no nvcc: NVRTC at run time, the default path
    }
    let Ok(dir) = std::fs::read_dir("cuda") else { return Vec::new() };
    let mut files: Vec<String> = dir
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".cu"))
        .collect();
    files.sort();
    let (mut done, mut failed, mut first_error) = (Vec::new(), Vec::new(), None);
    for file in files {
        for &(arch, virt) in ARCHS {
            let out = out_dir.join(format!("{file}.{arch}.ptx"));
            let result = Command::new(&nvcc)
                .args(["--ptx", "-std=c++17", "-lineinfo", "-Icuda"])
                .arg(format!("--gpu-architecture={virt}"))
                .arg(Path::new("cuda").join(&file))
                .arg("-o")
                .arg(&out)
                .output();
            match result {
                Ok(o) if o.status.success() => done.push((file.clone(), arch, out)),
                Ok(o) => {
                    failed.push(format!("{file}/{arch}"));
                    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
                    let line = stderr.lines().find(|l| l.contains("error")).unwrap_or("").trim().to_string();
                    first_error.get_or_insert(line);
                }
                Err(e) => {
                    failed.push(format!("{file}/{arch}"));
                    first_error.get_or_insert(e.to_string());
                }
            }
        }
    }
    if !failed.is_empty() {
        // One line, not one per file: an incomplete nvcc (e.g. the PyPI wheel without the CCCL headers) fails all.
        println!(
            "cargo:warning=nvcc did not precompile {} (NVRTC compiles them at run time; JOULE_NO_NVCC=1 skips \
             this step): {}",
            failed.join(", "),
            first_error.unwrap_or_default()
        );
    }
    done
}
