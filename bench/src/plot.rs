//! The SVG plots of a report (plotters, SVG backend only):
//! - `latency.svg`: median (bar) and p99 (tick) per operation, Wasm and
//!   native side by side for every latency workload, log scale;
//! - `cross_core.svg`: round trip from core 0 to each core k, idle (IPI)
//!   and busy (polling) targets, both paths: the topology as seen by IPC;
//! - `throughput.svg`: messages per second against cores, for producers
//!   into one consumer and for independent pairs, both paths.

use std::path::Path as FsPath;

use plotters::prelude::*;

use crate::protocol::Path;
use crate::report::{Results, Workload};

const WASM: RGBColor = RGBColor(0x1f, 0x77, 0xb4);
const NATIVE: RGBColor = RGBColor(0xd6, 0x27, 0x28);

type Error = Box<dyn std::error::Error>;

/// A line of a line chart: label, colour, dashed, points.
pub(crate) type Series = (String, RGBColor, bool, Vec<(f64, f64)>);

fn find<'a>(r: &'a Results, name: &str, path: Path) -> Option<&'a Workload> {
    r.workloads.iter().find(|w| w.name == name && w.path == path)
}

/// Writes the three plots into `dir`.
pub fn write_all(r: &Results, dir: &FsPath) -> Result<(), Error> {
    latency(r, &dir.join("latency.svg"))?;
    cross_core(r, &dir.join("cross_core.svg"))?;
    throughput(r, &dir.join("throughput.svg"))?;
    Ok(())
}

fn latency(r: &Results, file: &FsPath) -> Result<(), Error> {
    let names: Vec<&str> =
        r.comparisons.iter().map(|c| c.workload.as_str()).filter(|n| !n.starts_with("throughput/")).collect();
    let rows = names.len().max(1);
    let height = 120 + 34 * rows as u32;
    let root = SVGBackend::new(file, (1000, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let values = r.workloads.iter().filter(|w| names.contains(&w.name.as_str()));
    let hi = values.clone().map(|w| w.ns.p99).fold(10.0, f64::max) * 2.0;
    let lo = values.map(|w| w.ns.median).fold(hi, f64::min).max(1.0) / 2.0;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "Per-operation latency, median (bar) and p99 (tick), {} -smp {}",
                r.qemu.accel.to_uppercase(),
                r.qemu.smp
            ),
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(190)
        .build_cartesian_2d((lo..hi).log_scale(), 0f64..rows as f64)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .x_desc("ns per operation (log scale)")
        .y_labels(rows * 2 + 1)
        .y_label_formatter(&|y| {
            let i = y.floor() as usize;
            if (y - y.floor() - 0.5).abs() < 1e-6 {
                names.get(rows - 1 - i).map(|s| s.to_string()).unwrap_or_default()
            } else {
                String::new()
            }
        })
        .draw()?;
    for (i, name) in names.iter().enumerate() {
        let row = (rows - 1 - i) as f64;
        for (path, color, offset) in [(Path::Wasm, WASM, 0.52), (Path::Native, NATIVE, 0.12)] {
            let Some(w) = find(r, name, path) else { continue };
            let (y0, y1) = (row + offset, row + offset + 0.34);
            chart.draw_series(std::iter::once(Rectangle::new(
                [(lo, y0), (w.ns.median.max(lo), y1)],
                color.mix(0.8).filled(),
            )))?;
            chart.draw_series(std::iter::once(PathElement::new(
                vec![(w.ns.p99.max(lo), y0 - 0.04), (w.ns.p99.max(lo), y1 + 0.04)],
                color.stroke_width(2),
            )))?;
        }
    }
    chart
        .draw_series(std::iter::empty::<Rectangle<(f64, f64)>>())?
        .label("Wasm (ring 0, wasmi)")
        .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], WASM.filled()));
    chart
        .draw_series(std::iter::empty::<Rectangle<(f64, f64)>>())?
        .label("native (ring 3, SYSCALL + CR3)")
        .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], NATIVE.filled()));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

/// The `i`-th colour of the line charts with many series.
pub(crate) fn palette(i: usize) -> RGBColor {
    const COLORS: [RGBColor; 6] = [
        WASM,
        NATIVE,
        RGBColor(0x2c, 0xa0, 0x2c),
        RGBColor(0xff, 0x7f, 0x0e),
        RGBColor(0x94, 0x67, 0xbd),
        RGBColor(0x8c, 0x56, 0x4b),
    ];
    COLORS[i % COLORS.len()]
}

pub(crate) fn line_chart(
    file: &FsPath,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    series: &[Series],
) -> Result<(), Error> {
    let root = SVGBackend::new(file, (900, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let xs = series.iter().flat_map(|s| s.3.iter().map(|p| p.0));
    let x_max = xs.clone().fold(1.0, f64::max) + 0.5;
    let x_min = xs.fold(x_max, f64::min).min(1.0) - 0.5;
    // Headroom above the data for the legend.
    let y_max = series.iter().flat_map(|s| s.3.iter().map(|p| p.1)).fold(1e-9, f64::max) * 1.45;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(x_min..x_max, 0f64..y_max)?;
    chart.configure_mesh().x_desc(x_desc).y_desc(y_desc).x_label_formatter(&|x| format!("{x:.0}")).draw()?;
    for (label, color, dashed, points) in series {
        if points.is_empty() {
            continue;
        }
        let style = color.stroke_width(2);
        let drawn = if *dashed {
            chart.draw_series(DashedLineSeries::new(points.iter().copied(), 6, 4, style))?
        } else {
            chart.draw_series(LineSeries::new(points.iter().copied(), style))?
        };
        let c = *color;
        drawn.label(label).legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2)));
        chart.draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

fn points(r: &Results, path: Path, prefix: &str, value: impl Fn(&Workload) -> Option<f64>) -> Vec<(f64, f64)> {
    let mut pts: Vec<(f64, f64)> = r
        .workloads
        .iter()
        .filter(|w| w.path == path && w.name.starts_with(prefix))
        .filter_map(|w| {
            let x = w.name.rsplit(['/', '-']).next()?.parse::<f64>().ok()?;
            Some((x, value(w)?))
        })
        .collect();
    pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    pts
}

fn cross_core(r: &Results, file: &FsPath) -> Result<(), Error> {
    let median_us = |w: &Workload| Some(w.ns.median / 1e3);
    let series = vec![
        ("Wasm, idle target (IPI)".to_owned(), WASM, false, points(r, Path::Wasm, "ipc_rt/cross_idle/", median_us)),
        (
            "Wasm, busy target (polling; dashed)".to_owned(),
            WASM,
            true,
            points(r, Path::Wasm, "ipc_rt/cross_busy/", median_us),
        ),
        (
            "native, idle target (IPI)".to_owned(),
            NATIVE,
            false,
            points(r, Path::Native, "ipc_rt/cross_idle/", median_us),
        ),
        (
            "native, busy target (polling; dashed)".to_owned(),
            NATIVE,
            true,
            points(r, Path::Native, "ipc_rt/cross_busy/", median_us),
        ),
    ];
    line_chart(
        file,
        &format!("IPC round trip, core 0 <-> core k (median), {} -smp {}", r.qemu.accel.to_uppercase(), r.qemu.smp),
        "target core k",
        "round trip (µs)",
        &series,
    )
}

fn throughput(r: &Results, file: &FsPath) -> Result<(), Error> {
    let rate = |w: &Workload| w.msgs_per_s.map(|m| m / 1e6);
    let series = vec![
        (
            "Wasm, n producers -> 1 consumer".to_owned(),
            WASM,
            false,
            points(r, Path::Wasm, "throughput/producers/", rate),
        ),
        ("Wasm, n independent pairs (dashed)".to_owned(), WASM, true, points(r, Path::Wasm, "throughput/pairs/", rate)),
        (
            "native, n producers -> 1 consumer".to_owned(),
            NATIVE,
            false,
            points(r, Path::Native, "throughput/producers/", rate),
        ),
        (
            "native, n independent pairs (dashed)".to_owned(),
            NATIVE,
            true,
            points(r, Path::Native, "throughput/pairs/", rate),
        ),
    ];
    line_chart(
        file,
        &format!(
            "One-way message throughput, {} -smp {} on {} host CPUs",
            r.qemu.accel.to_uppercase(),
            r.qemu.smp,
            r.machine.host_cpus
        ),
        "n (producer cores, or pairs)",
        "million messages / s",
        &series,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Unit;
    use crate::report::{Git, Guest, Machine, Qemu, SCHEMA};
    use crate::stats::Summary;

    #[test]
    fn plots_are_written() {
        let s = |m: u64| Summary { iterations: 10, min: m / 2, median: m, p99: m * 2, max: m * 3, mean: m };
        let mut workloads = Vec::new();
        for (path, unit) in [(Path::Wasm, Unit::Ns), (Path::Native, Unit::Cycles)] {
            workloads.push(Workload::new("null_syscall", path, 1, unit, 100, &s(20_000), 1_000_000_000, None));
            for k in 1..4 {
                workloads.push(Workload::new(
                    &crate::workloads::rt_cross(false, k),
                    path,
                    2,
                    unit,
                    1,
                    &s(9000 + k as u64),
                    1_000_000_000,
                    None,
                ));
                workloads.push(Workload::new(
                    &crate::workloads::pairs(k),
                    path,
                    k as u32,
                    unit,
                    10,
                    &s(5000),
                    1_000_000_000,
                    Some((1000 * k as u64, 1_000_000)),
                ));
            }
        }
        let r = Results {
            schema: SCHEMA,
            created: String::new(),
            quick: true,
            duration_s: 0.0,
            git: Git::default(),
            machine: Machine::default(),
            qemu: Qemu { accel: "tcg".into(), smp: 4, ..Qemu::default() },
            guest: Guest::default(),
            comparisons: Results::compare(&workloads),
            workloads,
        };
        let dir = std::env::temp_dir().join(format!("wasmos-bench-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        write_all(&r, &dir).unwrap();
        for f in ["latency.svg", "cross_core.svg", "throughput.svg"] {
            let text = std::fs::read_to_string(dir.join(f)).unwrap();
            assert!(text.starts_with("<svg") && text.contains("Wasm"), "{f}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
