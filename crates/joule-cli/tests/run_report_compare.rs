//! The `joule run`, `joule report` and `joule compare` commands as a user meets them.

use std::path::PathBuf;
use std::process::{Command, Output};

fn joule(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_joule")).args(args).output().expect("the joule binary runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("joule-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn an_unknown_kernel_dtype_or_shape_set_is_a_clear_error() {
    let o = joule(&["run", "--kernel", "conv3d", "--list"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("unknown kernel `conv3d`"), "{}", stderr(&o));
    let o = joule(&["run", "--dtype", "fp8", "--list"]);
    assert!(!o.status.success() && stderr(&o).contains("unknown dtype `fp8`"), "{}", stderr(&o));
    let o = joule(&["run", "--shapes", "resnet", "--list"]);
    assert!(!o.status.success() && stderr(&o).contains("unknown shape set `resnet`"), "{}", stderr(&o));
    let o = joule(&["run", "--subtract-idle", "--list"]);
    assert!(!o.status.success() && stderr(&o).contains("--idle-baseline"), "{}", stderr(&o));
}

#[test]
fn the_plan_lists_cases_without_measuring() {
    let o = joule(&["run", "--list", "--kernel", "attention", "--dtype", "bf16"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.lines().count() >= 2 && out.lines().all(|l| l.starts_with("attention/bf16/")), "{out}");
}

#[test]
fn missing_and_corrupt_results_files_are_clear_errors() {
    let d = scratch("bad");
    let o = joule(&["report", d.join("missing.json").to_str().unwrap()]);
    assert!(!o.status.success() && stderr(&o).contains("missing.json"), "{}", stderr(&o));
    let corrupt = d.join("corrupt.json");
    std::fs::write(&corrupt, "{ not json").unwrap();
    let o = joule(&["compare", corrupt.to_str().unwrap(), corrupt.to_str().unwrap()]);
    assert!(!o.status.success() && stderr(&o).contains("cannot parse"), "{}", stderr(&o));
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_quick_run_writes_results_and_a_report_that_report_and_compare_read_back() {
    let d = scratch("quick");
    let o = joule(&[
        "run",
        "--quick",
        "--kernel",
        "gemm,attention",
        "--dtype",
        "f32",
        "--out-dir",
        d.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("--json prints the results");
    assert_eq!(v["schema_version"], 1);
    assert_eq!(v["rows"].as_array().unwrap().len(), 2);
    assert!(v["rows"].as_array().unwrap().iter().all(|r| r["energy"]["method"].is_string()));
    let json = std::fs::read_dir(&d)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "json"))
        .expect("a results file");
    assert!(json.with_extension("csv").exists());
    assert!(json.with_extension("").join("report.md").exists(), "run writes the report next to the results");

    let out = d.join("again");
    let o = joule(&["report", json.to_str().unwrap(), "--out", out.to_str().unwrap(), "--country", "FRA"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("France"), "the chosen country is named in the report");
    for svg in ["gflop-per-joule.svg", "roofline.svg", "error-by-dtype.svg"] {
        assert!(out.join(svg).exists(), "{svg}");
    }

    let o = joule(&["compare", json.to_str().unwrap(), json.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("0 better, 0 worse, 2 within noise"));
    let _ = std::fs::remove_dir_all(&d);
}
