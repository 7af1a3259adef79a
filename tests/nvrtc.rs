//! The CUDA sources compiled without a GPU: NVRTC for sm_80 and sm_90a, then `ptxas -v` and the SASS for each
//! kernel `joule_launch::kernels()` lists. Fails on a compile error, a listed kernel missing from the PTX, register
//! spills in a `hot` kernel, or a `tensor_cores` kernel without tensor-core instructions.
//!
//! Without NVRTC (or ptxas/cuobjdump) these tests print a visible "skipped" notice and pass, except under CI (`CI`
//! set), where a missing tool fails them: `eval "$(scripts/install-cuda-tools.sh)"` provides everything.
//! `scripts/cuda-resources.sh` runs them with `--nocapture` to print the per-kernel resource table.

use joule::cuda::nvrtc;
use joule::cuda::resources::{self, KernelResources};

const ARCHS: [&str; 2] = ["sm_80", "sm_90a"];

/// `true` when the tools are here; otherwise a visible notice (or, under CI, a failure).
fn available(what: &str, probe: joule::Result<()>) -> bool {
    match probe {
        Ok(()) => true,
        Err(e) if std::env::var_os("CI").is_some() => panic!("{what} is required under CI: {e}"),
        Err(e) => {
            // Straight to the stderr handle: libtest captures `eprintln!`, and this notice must show in a plain
            // `cargo test`.
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "skipped: {what} not found ({e})");
            false
        }
    }
}

fn nvrtc_here() -> bool {
    available("NVRTC", nvrtc::version().and_then(|_| joule::cuda::include_dir().map(|_| ())))
}

fn toolchain_here() -> bool {
    nvrtc_here() && available("ptxas/cuobjdump", resources::tools_available())
}

fn sources() -> Vec<&'static str> {
    joule_launch::SOURCES.iter().map(|(f, _)| *f).filter(|f| f.ends_with(".cu")).collect()
}

#[test]
fn every_kernel_source_compiles_with_nvrtc_for_sm80_and_sm90a() {
    if !nvrtc_here() {
        return;
    }
    let kernels = joule_launch::kernels();
    let mut failures = Vec::new();
    for file in sources() {
        for arch in ARCHS {
            match nvrtc::compile_file(file, arch) {
                Ok(ptx) => {
                    for k in kernels.iter().filter(|k| k.source == file) {
                        if !ptx.contains(&format!(".entry {}(", k.name)) {
                            failures.push(format!("{file} for {arch}: kernel {} is listed but not in the PTX", k.name));
                        }
                    }
                }
                Err(e) => failures.push(format!("{file} for {arch}: {e}")),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The compiles above went to the disk cache (when one is configured), keyed by file, arch and NVRTC version.
    if let Some(dir) = joule::cuda::ptx_cache_dir() {
        let (major, minor) = nvrtc::version().unwrap();
        let prefix = format!("gemm-sm_90a-nvrtc{major}.{minor}-");
        let cached = std::fs::read_dir(&dir)
            .map(|d| d.filter_map(|e| e.ok()).any(|e| e.file_name().to_string_lossy().starts_with(&prefix)));
        assert!(cached.unwrap_or(false), "no {prefix}*.ptx in {}", dir.display());
    }
}

/// Rows for every listed kernel, per arch; the report is printed for `scripts/cuda-resources.sh`.
fn resource_rows() -> (Vec<KernelResources>, Vec<String>) {
    let kernels = joule_launch::kernels();
    let (mut rows, mut failures) = (Vec::new(), Vec::new());
    for arch in ARCHS {
        for file in sources() {
            let analysed = nvrtc::compile_file(file, arch).and_then(|ptx| resources::analyze_ptx(&ptx, arch));
            let found = match analysed {
                Ok(found) => found,
                Err(e) => {
                    failures.push(format!("{file} for {arch}: {e}"));
                    continue;
                }
            };
            for k in kernels.iter().filter(|k| k.source == file) {
                match found.iter().find(|r| r.name == k.name) {
                    Some(r) => rows.push(r.clone()),
                    None => failures.push(format!("{} ({arch}): not in ptxas output", k.name)),
                }
            }
        }
    }
    (rows, failures)
}

#[test]
fn hot_kernels_never_spill_and_tensor_core_kernels_use_hmma() {
    if !toolchain_here() {
        return;
    }
    let (rows, mut failures) = resource_rows();
    let kernels = joule_launch::kernels();
    for r in &rows {
        let Some(info) = kernels.iter().find(|k| k.name == r.name) else { continue };
        if info.hot && r.spills() {
            failures.push(format!(
                "{} ({}): hot kernel spills {} bytes stored / {} loaded",
                r.name, r.arch, r.spill_store_bytes, r.spill_load_bytes
            ));
        }
        if info.tensor_cores && !r.uses_tensor_cores() {
            failures.push(format!("{} ({}): tensor-core kernel without HMMA/HGMMA in its SASS", r.name, r.arch));
        }
    }
    println!("CUDA kernel resources (ptxas -v, cuobjdump --dump-sass; dynamic shared memory is set per launch):");
    println!("{}", resources::table(&rows));
    println!("{} kernels listed by joule_launch::kernels(), {} rows", kernels.len(), rows.len());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Kernels of our own that prove the checks above can fail: one with tensor cores, one without, one that spills.
const SELFTEST: &str = r#"
#include "common.cuh"
extern "C" __global__ void selftest_mma_f16(joule::gptr<const unsigned> JOULE_RESTRICT a,
                                            joule::gptr<float> JOULE_RESTRICT c) {
    const int lane = joule::lane_id();
    unsigned ra[4] = {a[lane * 4], a[lane * 4 + 1], a[lane * 4 + 2], a[lane * 4 + 3]};
    unsigned rb[2] = {a[128 + lane], a[160 + lane]};
    float acc[4] = {0.f, 0.f, 0.f, 0.f};
    joule::mma<joule::f16>(acc, ra, rb);
    for (int i = 0; i < 4; ++i) c[lane * 4 + i] = acc[i];
}
JOULE_EXPORT(selftest_mma_f16)
extern "C" __global__ void selftest_simt_f32(joule::gptr<const float> JOULE_RESTRICT x,
                                             joule::gptr<float> JOULE_RESTRICT y, int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = 2.f * x[i] + 1.f;
}
JOULE_EXPORT(selftest_simt_f32)
"#;

const SPILLER: &str = r#"
extern "C" __global__ void BOUNDS selftest_spill(const float* __restrict__ x, float* __restrict__ y, int n) {
    float v[64];
#pragma unroll
    for (int i = 0; i < 64; ++i) v[i] = x[threadIdx.x + i * n];
    float s = 0.f;
#pragma unroll
    for (int i = 0; i < 64; ++i) s += v[i] * v[63 - i] + v[(i * 7) % 64];
#pragma unroll
    for (int i = 0; i < 64; ++i) y[threadIdx.x + i * n] = v[i] * s;
}
"#;

#[test]
fn the_resource_checks_see_hmma_in_an_mma_kernel_and_spills_under_a_register_cap() {
    if !toolchain_here() {
        return;
    }
    for arch in ARCHS {
        let ptx = nvrtc::compile_text("selftest.cu", SELFTEST, arch, &[]).unwrap();
        let rows = resources::analyze_ptx(&ptx, arch).unwrap();
        let get = |name: &str| rows.iter().find(|r| r.name == name).unwrap_or_else(|| panic!("{name} missing"));
        assert!(get("selftest_mma_f16").hmma > 0, "{}", resources::table(&rows));
        assert!(!get("selftest_simt_f32").uses_tensor_cores());
        assert!(!get("selftest_simt_f32").spills() && get("selftest_simt_f32").registers > 0);

        // __launch_bounds__(1024, 2) caps ptxas at 32 registers per thread; 64 live floats cannot fit.
        let capped = SPILLER.replace("BOUNDS", "__launch_bounds__(1024, 2)");
        let rows = resources::analyze_ptx(&nvrtc::compile_text("spill.cu", &capped, arch, &[]).unwrap(), arch).unwrap();
        assert!(rows[0].spills(), "expected spills under a 32-register cap:\n{}", resources::table(&rows));
        let free = SPILLER.replace("BOUNDS", "");
        let rows = resources::analyze_ptx(&nvrtc::compile_text("spill.cu", &free, arch, &[]).unwrap(), arch).unwrap();
        assert!(!rows[0].spills(), "no spills expected without a cap:\n{}", resources::table(&rows));
    }
}

#[test]
fn a_compile_error_is_a_typed_error_with_the_nvrtc_log() {
    if !nvrtc_here() {
        return;
    }
    let err =
        nvrtc::compile_text("bad.cu", "extern \"C\" __global__ void k() { undeclared(); }", "sm_90a", &[]).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, joule::Error::Cuda { .. }) && text.contains("undeclared"), "{text}");
    assert!(matches!(nvrtc::compile_file("missing.cu", "sm_90a"), Err(joule::Error::InvalidArgument(_))));
    assert!(matches!(nvrtc::compile_file("gemm.cu", "90"), Err(joule::Error::InvalidArgument(_))));
}
