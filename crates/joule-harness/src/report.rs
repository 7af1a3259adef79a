//! `joule report`: a markdown report and SVG charts, built from a results file alone.
//!
//! Charts are drawn with plotters' SVG backend without any font feature: text goes into the SVG as `<text>`
//! elements (sized by plotters' built-in estimate), so no system font or fontconfig is needed to write them.

use crate::plan::KernelKind;
use crate::results::{ResultRow, ResultsFile, write_atomic};
use crate::table::sig3;
use joule_core::{DType, Error, Result};
use joule_energy::carbon::CarbonIntensity;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The files a report consists of.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportFiles {
    /// The markdown report.
    pub markdown: PathBuf,
    /// The SVG charts.
    pub charts: Vec<PathBuf>,
}

const DTYPE_COLORS: [RGBColor; 3] = [RGBColor(55, 110, 180), RGBColor(230, 130, 30), RGBColor(60, 160, 80)];
const KERNEL_COLORS: [RGBColor; 5] = [
    RGBColor(55, 110, 180),
    RGBColor(200, 60, 60),
    RGBColor(140, 90, 190),
    RGBColor(230, 130, 30),
    RGBColor(60, 160, 80),
];

fn kernel_color(k: KernelKind) -> RGBColor {
    KERNEL_COLORS[KernelKind::ALL.iter().position(|x| *x == k).unwrap_or(0)]
}

fn plot_err<E: std::fmt::Debug>(path: &Path) -> impl Fn(E) -> Error + '_ {
    move |e| Error::Parse { what: format!("chart {}", path.display()), reason: format!("{e:?}") }
}

/// Draws `svg` into a string, then writes it atomically.
fn write_svg(
    path: &Path,
    w: u32,
    h: u32,
    draw: impl FnOnce(&DrawingArea<SVGBackend, plotters::coord::Shift>) -> Result<()>,
) -> Result<()> {
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err(path))?;
        draw(&root)?;
        root.present().map_err(plot_err(path))?;
    }
    write_atomic(path, buf.as_bytes())
}

/// The label of a case group (kernel + shape + backend) in charts and tables.
fn group_label(r: &ResultRow) -> String {
    if r.backend == "cpu" {
        format!("{} · {}", r.kernel, r.shape.name)
    } else {
        format!("{} · {} · {}", r.kernel, r.shape.name, r.backend)
    }
}

/// Rows grouped by (kernel, shape, backend) in results order, with one slot per dtype.
fn groups(res: &ResultsFile) -> Vec<(String, [Option<&ResultRow>; 3])> {
    let mut out: Vec<(String, [Option<&ResultRow>; 3])> = Vec::new();
    for r in &res.rows {
        let label = group_label(r);
        let slot = DType::ALL.iter().position(|d| *d == r.dtype).unwrap_or(0);
        match out.iter_mut().find(|(l, _)| *l == label) {
            Some((_, g)) => g[slot] = Some(r),
            None => {
                let mut g = [None; 3];
                g[slot] = Some(r);
                out.push((label, g));
            }
        }
    }
    out.sort_by_key(|(_, g)| g.iter().flatten().next().map(|r| r.kernel));
    out
}

/// Horizontal grouped bars: one group per case, one bar per dtype.
fn chart_gflop_per_joule(res: &ResultsFile, path: &Path) -> Result<()> {
    let groups = groups(res);
    let value = |r: &ResultRow| r.gflop_per_j.map(|s| s.p50);
    let max = groups.iter().flat_map(|(_, g)| g.iter().flatten().filter_map(|r| value(r))).fold(0.0f64, f64::max);
    let n = groups.len().max(1);
    let h = (90 + 22 * n) as u32;
    let method = methods_label(res);
    write_svg(path, 1100, h, |root| {
        let e = plot_err(path);
        let mut chart = ChartBuilder::on(root)
            .caption(format!("GFLOP per joule by dtype (median; energy: {method})"), ("sans-serif", 18))
            .margin(10)
            .margin_left(360)
            .margin_right(90)
            .x_label_area_size(40)
            .y_label_area_size(0)
            .build_cartesian_2d(0.0..(max * 1.1).max(1e-9), 0.0..n as f64)
            .map_err(&e)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .disable_y_axis()
            .x_desc("GFLOP/J (higher is better)")
            .draw()
            .map_err(&e)?;
        for (gi, (label, g)) in groups.iter().enumerate() {
            let y0 = (n - 1 - gi) as f64;
            for (di, r) in g.iter().enumerate() {
                let Some(v) = r.and_then(value) else { continue };
                // f32 on top of its group, then f16, then bf16.
                let a = y0 + 0.1 + 0.27 * (2 - di) as f64;
                let b = a + 0.25;
                chart
                    .draw_series(std::iter::once(Rectangle::new([(0.0, a), (v, b)], DTYPE_COLORS[di].filled())))
                    .map_err(&e)?;
            }
            let (px, py) = chart.backend_coord(&(0.0, y0 + 0.5));
            root.draw(&Text::new(
                label.clone(),
                (px - 8, py),
                ("sans-serif", 12).into_font().into_text_style(root).pos(Pos::new(HPos::Right, VPos::Center)),
            ))
            .map_err(&e)?;
        }
        legend_dtypes(root, 1100 - 75, 40).map_err(&e)?;
        Ok(())
    })
}

fn legend_dtypes<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    x: i32,
    y: i32,
) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    for (i, d) in DType::ALL.iter().enumerate() {
        let yy = y + 18 * i as i32;
        root.draw(&Rectangle::new([(x, yy), (x + 14, yy + 12)], DTYPE_COLORS[i].filled()))?;
        root.draw(&Text::new(d.name().to_string(), (x + 20, yy), ("sans-serif", 13)))?;
    }
    Ok(())
}

fn log_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|v| v.is_finite() && *v > 0.0) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return (0.1, 10.0);
    }
    (lo / 3.0, hi * 3.0)
}

/// Throughput against arithmetic intensity, log-log, with the machine's ceilings when known.
fn chart_roofline(res: &ResultsFile, path: &Path) -> Result<()> {
    let ceilings = &res.machine.ceilings;
    let (x0, x1) = log_range(res.rows.iter().map(|r| r.intensity));
    let (mut y0, mut y1) = log_range(res.rows.iter().map(|r| r.gflops.p50));
    for c in ceilings {
        if let Some(g) = c.gflops {
            y1 = y1.max(g * 1.5);
        }
        if let Some(bw) = c.gbps {
            y0 = y0.min(bw * x0);
        }
    }
    write_svg(path, 1000, 680, |full| {
        let e = plot_err(path);
        let (root, footer) = full.split_vertically(650);
        let mut chart = ChartBuilder::on(&root)
            .caption("Throughput vs arithmetic intensity (median GFLOP/s, min_bytes model)", ("sans-serif", 18))
            .margin(15)
            .x_label_area_size(50)
            .y_label_area_size(70)
            .build_cartesian_2d((x0..x1).log_scale(), (y0..y1).log_scale())
            .map_err(&e)?;
        chart
            .configure_mesh()
            .x_desc("arithmetic intensity, FLOP/byte (flops / min_bytes)")
            .y_desc("GFLOP/s")
            .x_label_formatter(&|v| sig3(*v))
            .y_label_formatter(&|v| sig3(*v))
            .draw()
            .map_err(&e)?;
        for c in ceilings {
            let line: Vec<(f64, f64)> = match (c.gflops, c.gbps) {
                (Some(g), _) => vec![(x0, g), (x1, g)],
                (None, Some(bw)) => (0..=40)
                    .map(|i| x0 * (x1 / x0).powf(i as f64 / 40.0))
                    .map(|x| (x, bw * x))
                    .filter(|(_, y)| *y <= y1)
                    .collect(),
                _ => continue,
            };
            chart
                .draw_series(LineSeries::new(line, BLACK.stroke_width(1)))
                .map_err(&e)?
                .label(format!("{} ({})", c.label, c.source))
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLACK));
        }
        for k in KernelKind::ALL {
            let rows: Vec<&ResultRow> = res.rows.iter().filter(|r| r.kernel == k).collect();
            if rows.is_empty() {
                continue;
            }
            let color = kernel_color(k);
            chart
                .draw_series(rows.iter().map(|r| {
                    let p = (r.intensity, r.gflops.p50);
                    match r.dtype {
                        DType::F32 => Circle::new(p, 5, color.filled()).into_dyn(),
                        DType::F16 => TriangleMarker::new(p, 6, color.filled()).into_dyn(),
                        DType::BF16 => Cross::new(p, 5, color.stroke_width(2)).into_dyn(),
                    }
                }))
                .map_err(&e)?
                .label(k.name())
                .legend(move |(x, y)| Circle::new((x + 8, y), 5, color.filled()));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(&e)?;
        let note = if ceilings.is_empty() {
            "markers: ● f32  ▲ f16  × bf16 · no ceilings drawn: no trusted peak figures for this machine".to_string()
        } else {
            "markers: ● f32  ▲ f16  × bf16 · ceilings: datasheet peaks (see legend)".to_string()
        };
        footer.draw(&Text::new(note, (85, 5), ("sans-serif", 12))).map_err(&e)?;
        Ok(())
    })
}

/// Relative L2 error per case, by dtype, with the pass rule's tolerance.
fn chart_error(res: &ResultsFile, path: &Path) -> Result<()> {
    let vals =
        res.rows.iter().filter_map(|r| r.accuracy.rel_l2).chain(res.rows.iter().map(|r| r.accuracy.tolerance.rel_l2));
    let (y0, y1) = log_range(vals.map(|v| v.max(1e-12)));
    write_svg(path, 900, 600, |root| {
        let e = plot_err(path);
        let mut chart = ChartBuilder::on(root)
            .caption("Error vs the float64 oracle by dtype (relative L2; dash = tolerance)", ("sans-serif", 18))
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(-0.5f64..2.5f64, (y0..y1).log_scale())
            .map_err(&e)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(3)
            .x_label_formatter(&|v| {
                let i = v.round();
                if (v - i).abs() < 0.01 && (0.0..3.0).contains(&i) {
                    DType::ALL[i as usize].name().into()
                } else {
                    String::new()
                }
            })
            .y_desc("‖out − ref‖₂ / ‖ref‖₂")
            .y_label_formatter(&|v| format!("{v:.0e}"))
            .draw()
            .map_err(&e)?;
        for k in KernelKind::ALL {
            let ki = KernelKind::ALL.iter().position(|x| *x == k).unwrap_or(0) as f64;
            let rows: Vec<&ResultRow> = res.rows.iter().filter(|r| r.kernel == k).collect();
            if rows.is_empty() {
                continue;
            }
            let color = kernel_color(k);
            let x = |r: &ResultRow| DType::ALL.iter().position(|d| *d == r.dtype).unwrap_or(0) as f64 - 0.3 + 0.15 * ki;
            chart
                .draw_series(rows.iter().map(|r| {
                    let t = r.accuracy.tolerance.rel_l2;
                    PathElement::new(vec![(x(r) - 0.05, t), (x(r) + 0.05, t)], color.stroke_width(2))
                }))
                .map_err(&e)?;
            chart
                .draw_series(rows.iter().filter_map(|r| {
                    let v = r.accuracy.rel_l2?.max(y0 * 1.01);
                    Some(if r.accuracy.pass {
                        Circle::new((x(r), v), 4, color.filled()).into_dyn()
                    } else {
                        Cross::new((x(r), v), 6, RED.stroke_width(3)).into_dyn()
                    })
                }))
                .map_err(&e)?
                .label(k.name())
                .legend(move |(x, y)| Circle::new((x + 8, y), 4, color.filled()));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(&e)?;
        Ok(())
    })
}

fn methods_label(res: &ResultsFile) -> String {
    let mut m: Vec<&str> = res.rows.iter().map(|r| r.energy.method.as_str()).collect();
    m.sort();
    m.dedup();
    if m.is_empty() { "none".into() } else { m.join(", ") }
}

/// Grams CO2e per 10^15 FLOPs at `j_per_flop` joules per FLOP and `g_per_kwh`.
pub fn co2e_g_per_pflop(j_per_flop: f64, g_per_kwh: f64) -> f64 {
    j_per_flop * 1e15 / 3.6e6 * g_per_kwh
}

fn geo_mean(xs: &[f64]) -> Option<f64> {
    let v: Vec<f64> = xs.iter().copied().filter(|x| *x > 0.0 && x.is_finite()).collect();
    (!v.is_empty()).then(|| (v.iter().map(|x| x.ln()).sum::<f64>() / v.len() as f64).exp())
}

fn opt(x: Option<f64>) -> String {
    x.map(sig3).unwrap_or_else(|| "–".into())
}

/// Writes `report.md` and the SVG charts into `out_dir`, from `res` alone, with CO2e at `carbon`.
pub fn write_report(
    res: &ResultsFile,
    out_dir: &Path,
    carbon: &CarbonIntensity,
    results_name: &str,
) -> Result<ReportFiles> {
    std::fs::create_dir_all(out_dir).map_err(|e| Error::io(out_dir, e))?;
    let charts = [
        ("gflop-per-joule.svg", chart_gflop_per_joule as fn(&ResultsFile, &Path) -> Result<()>),
        ("roofline.svg", chart_roofline),
        ("error-by-dtype.svg", chart_error),
    ];
    let mut chart_paths = Vec::new();
    for (name, draw) in charts {
        let p = out_dir.join(name);
        draw(res, &p)?;
        chart_paths.push(p);
    }
    let md = markdown(res, carbon, results_name);
    let markdown_path = out_dir.join("report.md");
    write_atomic(&markdown_path, md.as_bytes())?;
    Ok(ReportFiles { markdown: markdown_path, charts: chart_paths })
}

/// The markdown text of the report.
pub fn markdown(res: &ResultsFile, carbon: &CarbonIntensity, results_name: &str) -> String {
    let mut s = String::new();
    let m = &res.machine;
    let methods = methods_label(res);
    let estimated = res.rows.iter().any(|r| r.energy.method == joule_energy::Method::Estimated);
    let sets: Vec<_> = res.sets.iter().map(|s| s.name()).collect();
    let _ = writeln!(s, "# Joule results — {} ({})\n", sets.join(" + "), res.created_utc);
    let _ = writeln!(
        s,
        "Built from `{results_name}` (schema {}), written by `{}`. Every figure below is read from that file; \
         `joule report {results_name}` rebuilds this report.\n",
        res.schema_version, res.command
    );
    if estimated {
        let _ = writeln!(
            s,
            "> **Energy here is `estimated`, not measured.** No energy counter was readable for these rows (see \
             \"not used\" under Energy measurement), so joules come from a model: CPU power at full load (TDP table) × measured utilisation, plus RAM \
             power per GB. Under such a model energy is nearly proportional to time, so \"energy saved\" below \
             mirrors the time saved; it says nothing about the lower power a narrower datapath may draw. Run on a \
             machine with RAPL or NVML for measured joules.\n"
        );
    }
    if res.settings.quick {
        let _ =
            writeln!(s, "> **`--quick` run**: CI-sized shapes and shortened energy windows. Not for publication.\n");
    }
    let _ = writeln!(s, "## Machine\n");
    let _ = writeln!(s, "| | |\n|---|---|");
    let _ = writeln!(s, "| CPU | {} ({} logical CPUs; {}) |", m.cpu_model, m.logical_cpus, m.cpu_features.join(", "));
    let _ = writeln!(
        s,
        "| RAM | {} |",
        m.ram_bytes.map(|b| format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64)).unwrap_or("unknown".into())
    );
    let _ = writeln!(s, "| OS | {} (kernel {}) |", m.os, m.kernel);
    let gpus = if m.gpus.is_empty() {
        "none".to_string()
    } else {
        m.gpus
            .iter()
            .map(|g| {
                format!(
                    "{} (driver {}, CUDA {})",
                    g.name,
                    g.driver.as_deref().unwrap_or("?"),
                    g.cuda.as_deref().unwrap_or("?")
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    let _ = writeln!(s, "| GPU | {gpus} |");
    let _ = writeln!(s, "| Compiler | {} |", m.rustc);
    let _ = writeln!(
        s,
        "| Commit | {}{} |",
        m.git_commit.as_deref().unwrap_or("unknown"),
        if m.git_dirty == Some(true) { " (with uncommitted changes)" } else { "" }
    );
    let _ = writeln!(s, "| Host | {} |", m.hostname);
    if let Some(l) = m.load_avg_1m {
        let busy = l > 0.5 * m.logical_cpus as f64;
        let _ = writeln!(
            s,
            "| Load average at start | {l:.2}{} |",
            if busy { " — **other work was running**: CPU timings are pessimistic and noisier" } else { "" }
        );
    }
    for b in &res.backends {
        let _ = writeln!(s, "| Backend `{}` | {} |", b.name, b.description);
    }
    for b in &res.skipped_backends {
        let _ = writeln!(s, "| Backend `{}` | not run: {} |", b.name, b.unavailable.as_deref().unwrap_or(""));
    }
    let _ = writeln!(s, "\n## Energy measurement\n");
    let _ = writeln!(s, "Energy method(s) in this file: `{methods}`.\n");
    for mi in &res.meters {
        let _ = writeln!(
            s,
            "- **{}** — method `{}`, scope: {}; resolution {} J, update period {} s, minimum window {} s.",
            mi.name,
            mi.method,
            mi.scope,
            sig3(mi.resolution_j),
            sig3(mi.update_period_s),
            sig3(mi.min_window_s())
        );
    }
    for a in &res.absent_meters {
        let _ = writeln!(s, "- not used: {} — {}", a.meter, a.reason);
    }
    let lc = &res.settings.loop_config;
    let _ = writeln!(
        s,
        "\nEach case: {} s warm-up, then {} trials, each one energy window of at least {} (calls repeated back to \
         back inside the window). Figures are medians with the p10–p90 band over trials. Error: relative L2 \
         against a float64 oracle run on the same (rounded) inputs, pass rule of `joule_core::Tolerance::for_dtype`.",
        lc.warmup_s,
        lc.trials,
        match lc.window_s {
            Some(w) => format!("{w} s (set by hand)"),
            None => "the meter's minimum (max(1 s, 50 × update period))".into(),
        }
    );
    if res.idle_baselines.is_empty() {
        let _ = writeln!(s, "No idle baseline was measured; energy figures include the idle draw of the scope.");
    } else {
        for b in &res.idle_baselines {
            let _ = writeln!(
                s,
                "Idle baseline ({}, `{}`): {:.2} W over {:.1} s — {}.",
                b.meter,
                b.method,
                b.watts,
                b.seconds,
                if res.settings.subtract_idle {
                    "subtracted from every energy figure"
                } else {
                    "reported only, not subtracted"
                }
            );
        }
    }

    let _ = writeln!(s, "\n## Results\n");
    let _ = writeln!(
        s,
        "| kernel | dtype | shape | ms/call (p10–p90) | GFLOP/s | GB/s | mJ/call | GFLOP/J | pJ/FLOP | W | energy | rel L2 error | check | oracle on |"
    );
    let _ = writeln!(s, "|---|---|---|---|---:|---:|---:|---:|---:|---:|---|---:|---|---|");
    for r in &res.rows {
        let t = r.time_per_call_s;
        let _ = writeln!(
            s,
            "| {} | {} | `{}`{} | {} ({}–{}) | {} | {} | {} | {} | {} | {} | `{}` | {} | {} | {} |",
            r.kernel,
            r.dtype,
            r.shape.name,
            if r.backend != "cpu" { format!(" on {}", r.backend) } else { String::new() },
            sig3(t.p50 * 1e3),
            sig3(t.p10 * 1e3),
            sig3(t.p90 * 1e3),
            sig3(r.gflops.p50),
            sig3(r.gbps.p50),
            opt(r.joules_per_call.map(|j| j.p50 * 1e3)),
            opt(r.gflop_per_j.map(|j| j.p50)),
            opt(r.pj_per_flop.map(|j| j.p50)),
            opt(r.avg_power_w.map(|j| j.p50)),
            r.energy.method,
            r.accuracy.rel_l2.map(|e| format!("{e:.2e}")).unwrap_or("non-finite".into()),
            if r.accuracy.pass {
                "pass".to_string()
            } else {
                format!("**FAIL**: {}", r.accuracy.failure.as_deref().unwrap_or(""))
            },
            r.accuracy.oracle_scope
        );
    }
    for f in &res.failures {
        let _ = writeln!(s, "\n**Failed** `{}`: {}", f.id, f.error);
    }
    let _ = writeln!(s, "\n![GFLOP per joule](gflop-per-joule.svg)\n");

    // Per-kernel summary.
    let _ = writeln!(s, "### GFLOP/J per kernel (geometric mean over shapes)\n");
    let _ = writeln!(s, "| kernel | f32 | f16 | bf16 |\n|---|---:|---:|---:|");
    let mut by_kernel: BTreeMap<KernelKind, [Vec<f64>; 3]> = BTreeMap::new();
    for r in &res.rows {
        if let Some(g) = r.gflop_per_j {
            let slot = DType::ALL.iter().position(|d| *d == r.dtype).unwrap_or(0);
            by_kernel.entry(r.kernel).or_default()[slot].push(g.p50);
        }
    }
    for (k, v) in &by_kernel {
        let _ = writeln!(s, "| {k} | {} | {} | {} |", opt(geo_mean(&v[0])), opt(geo_mean(&v[1])), opt(geo_mean(&v[2])));
    }

    // Before/after.
    let _ = writeln!(s, "\n## Before → after: f32 baseline → f16 / bf16\n");
    let _ = writeln!(
        s,
        "Carbon intensity: **{:.0} g CO2e/kWh** ({}{}; source: {}{}). CO2e per 10^15 FLOPs = J/FLOP × 10^15 ÷ \
         3.6·10^6 J/kWh × intensity. Energy saved = 1 − J(low precision) / J(f32), per call (negative: the low \
         precision costs more energy than f32 here); \"within noise\" when the p10–p90 bands of the two overlap.{}\n",
        carbon.g_per_kwh,
        match carbon.level {
            joule_energy::carbon::IntensityLevel::World => "world average".to_string(),
            l => format!("{:?}", l).to_lowercase(),
        },
        carbon.country_name.as_deref().or(carbon.country_iso.as_deref()).map(|c| format!(": {c}")).unwrap_or_default(),
        carbon.source,
        carbon.year.map(|y| format!(", {y}")).unwrap_or_default(),
        if estimated { " Energy method: `estimated` (see the warning above)." } else { "" }
    );
    let _ = writeln!(
        s,
        "| kernel · shape | dtype | mJ/call | energy saved | time saved | rel L2 error (f32 → this) | check | g CO2e / 10^15 FLOP |"
    );
    let _ = writeln!(s, "|---|---|---:|---:|---:|---|---|---:|");
    for (label, g) in groups(res) {
        let Some(base) = g[0] else { continue };
        let base_j = base.joules_per_call;
        for r in g.iter().flatten() {
            let co2 = r.pj_per_flop.map(|p| co2e_g_per_pflop(p.p50 * 1e-12, carbon.g_per_kwh));
            let (saved, time_saved) = if r.dtype == DType::F32 {
                ("baseline".to_string(), "baseline".to_string())
            } else {
                let saved = match (base_j, r.joules_per_call) {
                    (Some(a), Some(b)) => {
                        let pct = 100.0 * (1.0 - b.p50 / a.p50);
                        format!("{pct:+.1}%{}", if a.overlaps(&b) { " (within noise)" } else { "" })
                    }
                    _ => "–".into(),
                };
                let (a, b) = (base.time_per_call_s, r.time_per_call_s);
                let ts = format!(
                    "{:+.1}%{}",
                    100.0 * (1.0 - b.p50 / a.p50),
                    if a.overlaps(&b) { " (within noise)" } else { "" }
                );
                (saved, ts)
            };
            let err = |x: &ResultRow| x.accuracy.rel_l2.map(|e| format!("{e:.1e}")).unwrap_or("non-finite".into());
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                label,
                r.dtype,
                opt(r.joules_per_call.map(|j| j.p50 * 1e3)),
                saved,
                time_saved,
                if r.dtype == DType::F32 { err(r) } else { format!("{} → {}", err(base), err(r)) },
                if r.accuracy.pass { "pass" } else { "**FAIL**" },
                opt(co2),
            );
        }
    }

    let _ = writeln!(s, "\n## Throughput against arithmetic intensity\n");
    let _ = writeln!(s, "![roofline](roofline.svg)\n");
    if m.ceilings.is_empty() {
        let _ = writeln!(
            s,
            "No roofline ceilings are drawn: this machine's peak compute and bandwidth are not known from a \
             trustworthy source (a VM's clocks and AVX-512 frequency licence are not visible), so only the measured \
             points are shown. Intensity uses each kernel's `min_bytes` (every input read once, output written once)."
        );
    } else {
        for c in &m.ceilings {
            let v = c.gflops.map(|g| format!("{} GFLOP/s", sig3(g))).or(c.gbps.map(|b| format!("{} GB/s", sig3(b))));
            let _ = writeln!(s, "- ceiling {}: {} — {}", c.label, v.unwrap_or_default(), c.source);
        }
    }
    let _ = writeln!(s, "\n## Error by dtype\n");
    let _ = writeln!(s, "![error by dtype](error-by-dtype.svg)\n");
    let _ = writeln!(
        s,
        "Dots: relative L2 error of each case (a red × marks a failure); dashes: the pass rule's tolerance for that \
         case (4u + 8·sqrt(K)·2^-24 with u the dtype's unit roundoff and K the reduction length)."
    );
    let mut notes: Vec<(String, Vec<&str>)> = Vec::new();
    for r in &res.rows {
        for n in &r.notes {
            match notes.iter_mut().find(|(t, _)| t == n) {
                Some((_, ids)) => ids.push(&r.id),
                None => notes.push((n.clone(), vec![&r.id])),
            }
        }
    }
    if !notes.is_empty() {
        let _ = writeln!(s, "\n## Notes\n");
        for (n, ids) in &notes {
            let shown: Vec<String> = ids.iter().take(3).map(|i| format!("`{i}`")).collect();
            let more = if ids.len() > 3 { format!(" and {} more", ids.len() - 3) } else { String::new() };
            let _ = writeln!(s, "- {n} — {}{more}", shown.join(", "));
        }
    }
    s
}
