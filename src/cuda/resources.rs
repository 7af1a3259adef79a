//! Per-kernel resources from the CUDA toolchain, without a GPU: `ptxas -v` (registers, shared memory, stack frame,
//! spills) and `cuobjdump --dump-sass` (tensor-core and async-copy instruction counts). Used by `tests/nvrtc.rs`
//! (which fails on spills in a hot kernel or a tensor-core kernel without HMMA) and `scripts/cuda-resources.sh`.

use crate::{Error, Result};
use std::path::PathBuf;
use std::process::Command;

/// What ptxas and the SASS say about one kernel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelResources {
    /// Kernel symbol.
    pub name: String,
    /// Target (`sm_80`, `sm_90a`).
    pub arch: String,
    /// Registers per thread.
    pub registers: u32,
    /// Static shared memory in bytes (dynamic shared memory is set at launch and not counted here).
    pub shared_bytes: u32,
    /// Stack frame per thread in bytes (local memory: spills and arrays indexed at run time).
    pub stack_bytes: u32,
    /// Bytes of register spill stores.
    pub spill_store_bytes: u32,
    /// Bytes of register spill loads.
    pub spill_load_bytes: u32,
    /// `HMMA` (mma.sync tensor-core) instructions.
    pub hmma: u32,
    /// `HGMMA` (wgmma, Hopper warpgroup tensor-core) instructions.
    pub hgmma: u32,
    /// `LDSM` (ldmatrix) instructions.
    pub ldsm: u32,
    /// `LDGSTS` (cp.async) instructions.
    pub ldgsts: u32,
    /// `LDL`/`STL` (local memory) instructions.
    pub local_ops: u32,
}

impl KernelResources {
    /// Whether ptxas reported register spills.
    pub fn spills(&self) -> bool {
        self.spill_store_bytes > 0 || self.spill_load_bytes > 0
    }
    /// Whether the SASS has tensor-core instructions.
    pub fn uses_tensor_cores(&self) -> bool {
        self.hmma > 0 || self.hgmma > 0
    }
}

fn tool(env: &str, name: &str) -> PathBuf {
    std::env::var_os(env).map(PathBuf::from).unwrap_or_else(|| PathBuf::from(name))
}

/// Whether `ptxas` and `cuobjdump` run here (`Error::CudaUnavailable` says which does not).
pub fn tools_available() -> Result<()> {
    for (env, name) in [("JOULE_PTXAS", "ptxas"), ("JOULE_CUOBJDUMP", "cuobjdump")] {
        let ok = Command::new(tool(env, name)).arg("--version").output().is_ok_and(|o| o.status.success());
        if !ok {
            return Err(Error::CudaUnavailable(format!(
                "`{name}` not found (run `eval \"$(scripts/install-cuda-tools.sh)\"` or set {env})"
            )));
        }
    }
    Ok(())
}

/// Assembles `ptx` for `arch` with `ptxas -v` and disassembles the result: one row per kernel in the PTX.
pub fn analyze_ptx(ptx: &str, arch: &str) -> Result<Vec<KernelResources>> {
    static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("joule-ptxas-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let result = analyze_in(&dir, ptx, arch);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn analyze_in(dir: &std::path::Path, ptx: &str, arch: &str) -> Result<Vec<KernelResources>> {
    let (ptx_path, cubin) = (dir.join("k.ptx"), dir.join("k.cubin"));
    std::fs::write(&ptx_path, ptx).map_err(|e| Error::io(&ptx_path, e))?;
    let run = |cmd: &mut Command, what: &str| -> Result<std::process::Output> {
        let out = cmd.output().map_err(|e| Error::CudaUnavailable(format!("cannot run {what}: {e}")))?;
        if !out.status.success() {
            return Err(Error::Cuda {
                context: what.to_string(),
                message: format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
            });
        }
        Ok(out)
    };
    let ptxas = run(
        Command::new(tool("JOULE_PTXAS", "ptxas"))
            .arg(format!("-arch={arch}"))
            .arg("-v")
            .arg(&ptx_path)
            .arg("-o")
            .arg(&cubin),
        &format!("ptxas -arch={arch}"),
    )?;
    let mut rows = parse_ptxas(&String::from_utf8_lossy(&ptxas.stderr), arch);
    let sass = run(Command::new(tool("JOULE_CUOBJDUMP", "cuobjdump")).arg("--dump-sass").arg(&cubin), "cuobjdump")?;
    add_sass_counts(&mut rows, &String::from_utf8_lossy(&sass.stdout));
    Ok(rows)
}

/// The number just before `unit` in `text` (`"40 registers"` → 40).
fn number_before(text: &str, unit: &str) -> Option<u32> {
    let i = text.find(unit)?;
    text[..i].split(|c: char| !c.is_ascii_digit()).rev().find(|s| !s.is_empty())?.parse().ok()
}

/// Parses `ptxas -v` output: "Compiling entry function 'k'", "N bytes stack frame, N bytes spill stores, N bytes
/// spill loads", "Used N registers, ..., N bytes smem, ...".
pub fn parse_ptxas(text: &str, arch: &str) -> Vec<KernelResources> {
    let mut rows: Vec<KernelResources> = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.split("Compiling entry function '").nth(1) {
            let name = rest.split('\'').next().unwrap_or("").to_string();
            rows.push(KernelResources { name, arch: arch.to_string(), ..Default::default() });
            continue;
        }
        let Some(row) = rows.last_mut() else { continue };
        if line.contains("stack frame") {
            row.stack_bytes = number_before(line, "bytes stack frame").unwrap_or(0);
            row.spill_store_bytes = number_before(line, "bytes spill stores").unwrap_or(0);
            row.spill_load_bytes = number_before(line, "bytes spill loads").unwrap_or(0);
        } else if line.contains("Used") && line.contains("registers") {
            row.registers = number_before(line, "registers").unwrap_or(0);
            row.shared_bytes = number_before(line, "bytes smem").unwrap_or(0);
        }
    }
    rows
}

/// Adds instruction counts from `cuobjdump --dump-sass` ("Function : name" sections) to the matching rows.
pub fn add_sass_counts(rows: &mut [KernelResources], sass: &str) {
    let mut current: Option<usize> = None;
    for line in sass.lines() {
        if let Some(name) = line.split("Function : ").nth(1) {
            let name = name.trim();
            current = rows.iter().position(|r| r.name == name);
            continue;
        }
        let Some(i) = current else { continue };
        // The opcode is the first word after the `/*addr*/` column, possibly behind a predicate (`@P0`).
        let Some(code) = line.split("*/").nth(1) else { continue };
        let mut words = code.split_whitespace();
        let mut op = words.next().unwrap_or("");
        if op.starts_with('@') {
            op = words.next().unwrap_or("");
        }
        let base = op.split('.').next().unwrap_or("");
        let row = &mut rows[i];
        match base {
            "HMMA" => row.hmma += 1,
            "HGMMA" => row.hgmma += 1,
            "LDSM" => row.ldsm += 1,
            "LDGSTS" => row.ldgsts += 1,
            "LDL" | "STL" => row.local_ops += 1,
            _ => {}
        }
    }
}

/// A fixed-width table of the rows, one kernel per line.
pub fn table(rows: &[KernelResources]) -> String {
    let mut out = format!(
        "{:<34} {:<7} {:>4} {:>6} {:>6} {:>7} {:>5} {:>5} {:>5} {:>6} {:>4}\n",
        "kernel", "arch", "regs", "smem", "stack", "spill", "HMMA", "HGMMA", "LDSM", "LDGSTS", "LDL"
    );
    for r in rows {
        out.push_str(&format!(
            "{:<34} {:<7} {:>4} {:>6} {:>6} {:>7} {:>5} {:>5} {:>5} {:>6} {:>4}\n",
            r.name,
            r.arch,
            r.registers,
            r.shared_bytes,
            r.stack_bytes,
            format!("{}/{}", r.spill_store_bytes, r.spill_load_bytes),
            r.hmma,
            r.hgmma,
            r.ldsm,
            r.ldgsts,
            r.local_ops
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ptxas_and_sass_outputs_are_parsed() {
        let ptxas = "ptxas info    : 0 bytes gmem\n\
            ptxas info    : Compiling entry function 'gemm_tc_f16' for 'sm_90a'\n\
            ptxas info    : Function properties for gemm_tc_f16\n\
            \x20   8 bytes stack frame, 4 bytes spill stores, 12 bytes spill loads\n\
            ptxas info    : Used 168 registers, used 1 barriers, 384 bytes smem, 400 bytes cmem[0]\n\
            ptxas info    : Compiling entry function 'dw_f32' for 'sm_90a'\n\
            ptxas info    : Function properties for dw_f32\n\
            \x20   0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads\n\
            ptxas info    : Used 32 registers, 380 bytes cmem[0]\n";
        let mut rows = parse_ptxas(ptxas, "sm_90a");
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0].registers, rows[0].shared_bytes, rows[0].stack_bytes), (168, 384, 8));
        assert_eq!((rows[0].spill_store_bytes, rows[0].spill_load_bytes), (4, 12));
        assert!(rows[0].spills() && !rows[1].spills());
        assert_eq!((rows[1].name.as_str(), rows[1].registers, rows[1].shared_bytes), ("dw_f32", 32, 0));
        let sass = "\t\tFunction : gemm_tc_f16\n\
            \t/*0100*/                   HMMA.16816.F32 R4, R8, R12, R4 ;\n\
            \t/*0110*/              @!P0 LDGSTS.E.BYPASS.128 [R2], desc[UR4][R6.64] ;\n\
            \t/*0120*/                   LDSM.16.M88.4 R8, [R3] ;\n\
            \t/*0130*/                   STL [R1], R5 ;\n\
            \t\tFunction : dw_f32\n\
            \t/*0100*/                   FFMA R4, R8, R12, R4 ;\n";
        add_sass_counts(&mut rows, sass);
        assert_eq!((rows[0].hmma, rows[0].ldgsts, rows[0].ldsm, rows[0].local_ops), (1, 1, 1, 1));
        assert!(rows[0].uses_tensor_cores() && !rows[1].uses_tensor_cores());
        assert!(table(&rows).contains("gemm_tc_f16"));
    }
}
