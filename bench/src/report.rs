//! The report of one `cargo xtask bench` run: the model written as
//! `results.json`, how it is built from the kernel's result channel and
//! the host baselines, the checks `cargo xtask test` applies to it, the
//! Markdown summary and the SVG plots.
//!
//! Every figure is given per operation (a raw sample divided by its
//! batch), both in TSC cycles and in nanoseconds: samples taken in cycles
//! are converted with the calibrated TSC frequency (the guest's for QEMU
//! workloads, the host's for host baselines), samples taken in ns the
//! other way round.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::protocol::{self, Line, Path, ResultLine, Unit};
use crate::stats::Summary;

/// Version of the `results.json` layout.
pub const SCHEMA: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub min: f64,
    pub median: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

impl Stats {
    fn map(s: &Summary, f: impl Fn(u64) -> f64) -> Stats {
        Stats { min: f(s.min), median: f(s.median), p99: f(s.p99), max: f(s.max), mean: f(s.mean) }
    }
}

/// One workload on one path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Workload {
    pub name: String,
    pub path: Path,
    pub description: String,
    /// Cores the workload used.
    pub cores: u32,
    /// Samples kept (after warm-up).
    pub iterations: u64,
    /// Operations per sample.
    pub batch: u64,
    /// What the samples were taken in: "cycles" or "ns".
    pub raw_unit: String,
    /// Per operation, in TSC cycles.
    pub cycles: Stats,
    /// Per operation, in nanoseconds.
    pub ns: Stats,
    /// Throughput workloads: messages per second over the timed part.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub msgs_per_s: Option<f64>,
}

impl Workload {
    /// From a summary of raw samples; `tsc_hz` converts between units.
    /// (The arguments are the fields of a `bench-result` line.)
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        name: &str,
        path: Path,
        cores: u32,
        unit: Unit,
        batch: u64,
        s: &Summary,
        tsc_hz: u64,
        throughput: Option<(u64, u64)>,
    ) -> Workload {
        let hz = tsc_hz.max(1) as f64;
        let batch = batch.max(1);
        let per_op = |v: u64| v as f64 / batch as f64;
        let (cycles, ns) = match unit {
            Unit::Cycles => (Stats::map(s, per_op), Stats::map(s, |v| per_op(v) * 1e9 / hz)),
            Unit::Ns => (Stats::map(s, |v| per_op(v) * hz / 1e9), Stats::map(s, per_op)),
        };
        Workload {
            name: name.to_owned(),
            path,
            description: crate::workloads::describe(name).to_owned(),
            cores,
            iterations: s.iterations,
            batch,
            raw_unit: unit.name().to_owned(),
            cycles,
            ns,
            msgs_per_s: throughput.filter(|(_, e)| *e > 0).map(|(m, e)| m as f64 * 1e9 / e as f64),
        }
    }

    pub fn from_line(line: &ResultLine, tsc_hz: u64) -> Workload {
        Workload::new(
            line.workload,
            line.path,
            line.cores,
            line.unit,
            line.batch,
            &line.summary,
            tsc_hz,
            line.throughput,
        )
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Git {
    pub commit: String,
    /// Uncommitted changes in the work tree.
    pub dirty: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Machine {
    pub cpu_model: String,
    pub host_cpus: usize,
    pub os: String,
    pub memory_mib: u64,
    /// The host's TSC, calibrated against the monotonic clock.
    pub host_tsc_hz: u64,
    /// The host's 1-minute load average before and after the run: other
    /// work on the host competes with QEMU's vCPU threads (TCG) and shows
    /// in the figures, most in cross-core ones.
    #[serde(default)]
    pub load_before: f64,
    #[serde(default)]
    pub load_after: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Qemu {
    pub version: String,
    /// "tcg" or "kvm".
    pub accel: String,
    pub smp: u32,
    pub memory: String,
    pub cpu: String,
    pub firmware: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Guest {
    /// The guest kernel's TSC frequency (median of five 50 ms windows
    /// against the PIT, taken by the bench mode).
    pub tsc_hz: u64,
    pub cpus: u32,
    /// RDTSCP was available (else timing used `lfence; rdtsc`).
    pub rdtscp: bool,
    /// Runs per workload and path, alternating the paths; samples pooled.
    #[serde(default)]
    pub rounds: u32,
}

/// Wasm against native for one workload name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    pub workload: String,
    pub wasm_median_ns: f64,
    pub native_median_ns: f64,
    pub wasm_p99_ns: f64,
    pub native_p99_ns: f64,
    /// Wasm / native, medians (below 1: the Wasm path is faster).
    pub ratio_median: f64,
    pub ratio_p99: f64,
    /// Wasm / native medians after taking away each path's own cost of a
    /// timing sample (`clock_read`, divided by the batch), for workloads
    /// timed by the tasks themselves with one sample per operation batch.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub ratio_median_clock_corrected: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Results {
    pub schema: u32,
    /// UTC, ISO 8601.
    pub created: String,
    pub quick: bool,
    pub duration_s: f64,
    pub git: Git,
    pub machine: Machine,
    pub qemu: Qemu,
    pub guest: Guest,
    pub workloads: Vec<Workload>,
    pub comparisons: Vec<Comparison>,
}

/// What the kernel reported: the `bench-start` facts and the results.
#[derive(Debug, Clone, PartialEq)]
pub struct KernelRun {
    pub guest: Guest,
    pub workloads: Vec<Workload>,
    pub planned: u32,
}

/// Reads a whole result channel. Fails with the kernel's reason on a
/// `bench-fail` or a `panic`, or when the run did not finish.
pub fn parse_channel(text: &str) -> Result<KernelRun, String> {
    let mut start = None;
    let mut workloads = Vec::new();
    let mut done = false;
    for raw in text.lines() {
        if let Some(reason) = raw.strip_prefix("panic ") {
            return Err(format!("the kernel panicked: {reason}"));
        }
        match protocol::parse_line(raw) {
            Some(Line::Start(s)) => start = Some(s),
            Some(Line::Result(r)) => {
                let hz = start.map_or(0, |s| s.tsc_hz);
                workloads.push(Workload::from_line(&r, hz));
            }
            Some(Line::Fail(why)) => return Err(format!("the bench run failed: {why}")),
            Some(Line::Done { .. }) => done = true,
            _ => {}
        }
    }
    let start = start.ok_or("no bench-start line on the result channel")?;
    if !done {
        return Err(format!("the run stopped after {} of {} results", workloads.len(), start.planned));
    }
    let guest = Guest { tsc_hz: start.tsc_hz, cpus: start.cpus, rdtscp: start.rdtscp, rounds: start.rounds };
    Ok(KernelRun { guest, workloads, planned: start.planned })
}

impl Results {
    /// Pairs every workload measured on both paths.
    pub fn compare(workloads: &[Workload]) -> Vec<Comparison> {
        let clock = |p: Path| {
            workloads.iter().find(|w| w.path == p && w.name == crate::workloads::CLOCK_READ).map(|w| w.ns.median)
        };
        let mut out = Vec::new();
        for w in workloads.iter().filter(|w| w.path == Path::Wasm) {
            if let Some(n) = workloads.iter().find(|n| n.path == Path::Native && n.name == w.name) {
                let self_timed = w.name == crate::workloads::NULL_SYSCALL
                    || w.name == crate::workloads::CTX_SWITCH
                    || w.name.starts_with("ipc_rt/");
                let corrected = match (self_timed, clock(Path::Wasm), clock(Path::Native)) {
                    (true, Some(wc), Some(nc)) => {
                        Some(ratio(w.ns.median - wc / w.batch as f64, n.ns.median - nc / n.batch as f64))
                    }
                    _ => None,
                };
                out.push(Comparison {
                    workload: w.name.clone(),
                    wasm_median_ns: w.ns.median,
                    native_median_ns: n.ns.median,
                    wasm_p99_ns: w.ns.p99,
                    native_p99_ns: n.ns.p99,
                    ratio_median: ratio(w.ns.median, n.ns.median),
                    ratio_p99: ratio(w.ns.p99, n.ns.p99),
                    ratio_median_clock_corrected: corrected,
                });
            }
        }
        out
    }

    /// What is wrong with a report (empty: well formed). Checked by
    /// `cargo xtask test` on a `--quick` run.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.schema != SCHEMA {
            problems.push(format!("schema {} (expected {SCHEMA})", self.schema));
        }
        if self.workloads.is_empty() {
            problems.push("no workloads".into());
        }
        for w in &self.workloads {
            let id = format!("{} ({})", w.name, w.path.name());
            if w.iterations == 0 {
                problems.push(format!("{id}: no iterations"));
            }
            for (unit, s) in [("cycles", &w.cycles), ("ns", &w.ns)] {
                if !(s.min.is_finite() && 0.0 <= s.min && s.min <= s.median && s.median <= s.p99 && s.p99 <= s.max) {
                    problems.push(format!(
                        "{id}: {unit} not ordered: min {} median {} p99 {} max {}",
                        s.min, s.median, s.p99, s.max
                    ));
                }
            }
        }
        let mut paths: BTreeMap<&str, Vec<Path>> = BTreeMap::new();
        for w in &self.workloads {
            paths.entry(&w.name).or_default().push(w.path);
        }
        for (name, p) in &paths {
            let both = p.contains(&Path::Wasm) && p.contains(&Path::Native);
            if !p.contains(&Path::Host) && !both {
                problems.push(format!("{name}: measured on {p:?} only; both paths expected"));
            }
        }
        for must in [
            crate::workloads::NULL_SYSCALL,
            crate::workloads::RT_SAME_CORE,
            crate::workloads::RT_SAME_CORE_QUEUED,
            crate::workloads::SPAWN,
            crate::workloads::CTX_SWITCH,
        ] {
            if !paths.contains_key(must) {
                problems.push(format!("{must} missing"));
            }
        }
        if !self.workloads.iter().any(|w| w.path == Path::Host) {
            problems.push("no host baselines".into());
        }
        problems
    }

    /// The Markdown summary.
    pub fn markdown(&self) -> String {
        let mut m = String::new();
        let _ = writeln!(m, "# WasmOS benchmark results\n");
        let _ = writeln!(
            m,
            "{} run of {} (git {}{}), {:.0} s.\n",
            if self.quick { "Quick (`--quick`)" } else { "Full" },
            self.created,
            short(&self.git.commit),
            if self.git.dirty { ", uncommitted changes" } else { "" },
            self.duration_s
        );
        let _ = writeln!(
            m,
            "- host: {}, {} CPUs, {}, {} MiB; load average {:.2} before, {:.2} after the run",
            self.machine.cpu_model,
            self.machine.host_cpus,
            self.machine.os,
            self.machine.memory_mib,
            self.machine.load_before,
            self.machine.load_after
        );
        let _ = writeln!(
            m,
            "- QEMU {} with **{}**, `-smp {}`, `-m {}`, `-cpu {}`, {} boot",
            self.qemu.version,
            self.qemu.accel.to_uppercase(),
            self.qemu.smp,
            self.qemu.memory,
            self.qemu.cpu,
            self.qemu.firmware
        );
        let _ = writeln!(
            m,
            "- guest TSC {:.0} MHz (median of 5 x 50 ms against the PIT), host TSC {:.0} MHz; timing with {}; {} round(s) per workload, paths alternating\n",
            self.guest.tsc_hz as f64 / 1e6,
            self.machine.host_tsc_hz as f64 / 1e6,
            if self.guest.rdtscp { "`rdtscp`" } else { "`lfence; rdtsc` (no RDTSCP)" },
            self.guest.rounds.max(1)
        );
        let _ = writeln!(m, "## Wasm path vs native ring-3 path (same kernel, same boot)\n");
        let _ = writeln!(
            m,
            "Per operation; ratio = Wasm / native (below 1: Wasm is faster). \"corrected\": the median ratio after \
             taking each path's `clock_read` (the cost of its own timing) out of workloads the tasks time themselves.\n"
        );
        let _ = writeln!(
            m,
            "| workload | Wasm median | Wasm p99 | native median | native p99 | ratio (median) | corrected | ratio (p99) | samples W / N |"
        );
        let _ = writeln!(m, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        for c in &self.comparisons {
            let find = |p: Path| self.workloads.iter().find(|w| w.name == c.workload && w.path == p);
            let (Some(w), Some(n)) = (find(Path::Wasm), find(Path::Native)) else { continue };
            let _ = writeln!(
                m,
                "| `{}` | {} | {} | {} | {} | {:.2} | {} | {:.2} | {} / {} |",
                c.workload,
                fmt_op(w.ns.median, w.cycles.median),
                fmt_op(w.ns.p99, w.cycles.p99),
                fmt_op(n.ns.median, n.cycles.median),
                fmt_op(n.ns.p99, n.cycles.p99),
                c.ratio_median,
                c.ratio_median_clock_corrected.map_or("-".to_owned(), |r| format!("{r:.2}")),
                c.ratio_p99,
                w.iterations,
                n.iterations
            );
        }
        let tput: Vec<&Comparison> =
            self.comparisons.iter().filter(|c| c.workload.starts_with("throughput/")).collect();
        if !tput.is_empty() {
            let _ = writeln!(m, "\n## Throughput (messages per second, timed part)\n");
            let _ = writeln!(m, "| workload | cores | Wasm msgs/s | native msgs/s | Wasm / native |");
            let _ = writeln!(m, "|---|---:|---:|---:|---:|");
            for c in tput {
                let find = |p: Path| self.workloads.iter().find(|w| w.name == c.workload && w.path == p);
                let (Some(w), Some(n)) = (find(Path::Wasm), find(Path::Native)) else { continue };
                let (a, b) = (w.msgs_per_s.unwrap_or(0.0), n.msgs_per_s.unwrap_or(0.0));
                let _ = writeln!(
                    m,
                    "| `{}` | {} | {} | {} | {:.2} |",
                    c.workload,
                    w.cores,
                    fmt_rate(a),
                    fmt_rate(b),
                    ratio(a, b)
                );
            }
        }
        let host: Vec<&Workload> = self.workloads.iter().filter(|w| w.path == Path::Host).collect();
        if !host.is_empty() {
            let _ = writeln!(m, "\n## Host baselines (Linux on the host, outside QEMU)\n");
            let _ = writeln!(m, "| workload | median | p99 | samples | what |");
            let _ = writeln!(m, "|---|---:|---:|---:|---|");
            for w in host {
                let _ = writeln!(
                    m,
                    "| `{}` | {} | {} | {} | {} |",
                    w.name,
                    fmt_op(w.ns.median, w.cycles.median),
                    fmt_op(w.ns.p99, w.cycles.p99),
                    w.iterations,
                    w.description
                );
            }
        }
        let _ = writeln!(m, "\n## What each workload measures\n");
        let mut seen = Vec::new();
        for w in &self.workloads {
            let key = w
                .name
                .rsplit_once('/')
                .filter(|_| !w.name.starts_with("host"))
                .map_or(w.name.as_str(), |(head, _)| head);
            if w.path != Path::Host && !seen.contains(&key) {
                seen.push(key);
                let _ = writeln!(m, "- `{key}`: {}", w.description);
            }
        }
        let _ = writeln!(
            m,
            "\nWasm samples are taken with the ABI's `time_now_ns` (its cost is `clock_read`, Wasm row); native \
             samples with `lfence; rdtsc` / `rdtscp; lfence` (`clock_read`, native row). Both include one clock read. \
             Plots: `latency.svg`, `cross_core.svg`, `throughput.svg`. Every figure: `results.json`."
        );
        m
    }
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { f64::NAN }
}

fn short(commit: &str) -> &str {
    &commit[..commit.len().min(12)]
}

/// "1.23 µs (3.7k cyc)" style.
pub fn fmt_op(ns: f64, cycles: f64) -> String {
    let time = if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.1} ns")
    };
    let cyc = if cycles >= 1e6 {
        format!("{:.2}M", cycles / 1e6)
    } else if cycles >= 1e4 {
        format!("{:.1}k", cycles / 1e3)
    } else {
        format!("{cycles:.0}")
    };
    format!("{time} ({cyc} cyc)")
}

pub fn fmt_rate(r: f64) -> String {
    if r >= 1e6 {
        format!("{:.2} M", r / 1e6)
    } else if r >= 1e3 {
        format!("{:.1} k", r / 1e3)
    } else {
        format!("{r:.0}")
    }
}

/// Now, as UTC ISO 8601 and as a directory name (`20260520-130501`).
pub fn timestamp(unix_secs: u64) -> (String, String) {
    let days = (unix_secs / 86_400) as i64;
    let rem = unix_secs % 86_400;
    let (h, mi, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + (mo <= 2) as i64;
    (format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z"), format!("{y:04}{mo:02}{d:02}-{h:02}{mi:02}{s:02}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(min: u64, median: u64, p99: u64) -> Summary {
        Summary { iterations: 100, min, median, p99, max: p99 * 2, mean: median }
    }

    fn results() -> Results {
        let hz = 2_000_000_000;
        let w = |name: &str, path, unit, s: Summary| Workload::new(name, path, 1, unit, 1, &s, hz, None);
        let workloads = vec![
            w("null_syscall", Path::Wasm, Unit::Ns, summary(90, 100, 150)),
            w("null_syscall", Path::Native, Unit::Cycles, summary(300, 400, 900)),
            w("ipc_rt/same_core", Path::Wasm, Unit::Ns, summary(900, 1000, 3000)),
            w("ipc_rt/same_core", Path::Native, Unit::Cycles, summary(3000, 4000, 9000)),
            w("ipc_rt/same_core_queued", Path::Wasm, Unit::Ns, summary(1900, 2000, 4000)),
            w("ipc_rt/same_core_queued", Path::Native, Unit::Cycles, summary(3000, 4000, 9000)),
            w("spawn", Path::Wasm, Unit::Cycles, summary(1, 2, 3)),
            w("spawn", Path::Native, Unit::Cycles, summary(1, 2, 3)),
            w("ctx_switch", Path::Wasm, Unit::Ns, summary(1, 2, 3)),
            w("ctx_switch", Path::Native, Unit::Cycles, summary(1, 2, 3)),
            w("host/getpid", Path::Host, Unit::Cycles, summary(100, 120, 200)),
        ];
        Results {
            schema: SCHEMA,
            created: "2026-05-20T10:00:00Z".into(),
            quick: true,
            duration_s: 1.0,
            git: Git::default(),
            machine: Machine::default(),
            qemu: Qemu::default(),
            guest: Guest { tsc_hz: hz, cpus: 8, rdtscp: true, rounds: 1 },
            comparisons: Results::compare(&workloads),
            workloads,
        }
    }

    #[test]
    fn units_are_converted_per_operation() {
        let s = summary(1000, 2000, 3000);
        let w = Workload::new("null_syscall", Path::Native, 1, Unit::Cycles, 100, &s, 2_000_000_000, None);
        assert_eq!(w.cycles.median, 20.0);
        assert_eq!(w.ns.median, 10.0);
        let w = Workload::new("x", Path::Wasm, 1, Unit::Ns, 1, &s, 2_000_000_000, Some((1000, 1_000_000)));
        assert_eq!(w.cycles.median, 4000.0);
        assert_eq!(w.msgs_per_s, Some(1_000_000.0));
    }

    #[test]
    fn comparisons_and_checks() {
        let r = results();
        assert!(r.problems().is_empty(), "{:?}", r.problems());
        let c = r.comparisons.iter().find(|c| c.workload == "null_syscall").unwrap();
        // Wasm 100 ns, native 400 cycles at 2 GHz = 200 ns.
        assert_eq!(c.ratio_median, 0.5);
        let md = r.markdown();
        assert!(md.contains("| `null_syscall` | 100.0 ns (200 cyc) |"), "{md}");
        // No clock_read in this report: nothing to correct with.
        assert_eq!(c.ratio_median_clock_corrected, None);
        let mut with_clock = r.workloads.clone();
        let hz = 2_000_000_000;
        with_clock.push(Workload::new("clock_read", Path::Wasm, 1, Unit::Ns, 1, &summary(40, 50, 60), hz, None));
        with_clock.push(Workload::new("clock_read", Path::Native, 1, Unit::Cycles, 1, &summary(40, 50, 60), hz, None));
        let c = Results::compare(&with_clock).into_iter().find(|c| c.workload == "ipc_rt/same_core").unwrap();
        // (1000 - 50) / (2000 - 25)
        assert!((c.ratio_median_clock_corrected.unwrap() - 950.0 / 1975.0).abs() < 1e-9);
        assert!(md.contains("host/getpid"));
    }

    #[test]
    fn broken_reports_are_caught() {
        let mut r = results();
        r.workloads.retain(|w| !(w.name == "spawn" && w.path == Path::Native));
        r.workloads[0].ns.median = r.workloads[0].ns.p99 + 1.0;
        r.workloads[1].iterations = 0;
        let p = r.problems();
        assert!(p.iter().any(|p| p.contains("spawn: measured on [Wasm] only")), "{p:?}");
        assert!(p.iter().any(|p| p.contains("not ordered")), "{p:?}");
        assert!(p.iter().any(|p| p.contains("no iterations")), "{p:?}");
        let json = serde_json::to_string(&r).unwrap();
        let back: Results = serde_json::from_str(&json).unwrap();
        assert_eq!(back.workloads.len(), r.workloads.len());
    }

    #[test]
    fn channel_parsing() {
        let ok = "WASMOS-RESULTS 1\nbench-start version=1 tsc_hz=1000000000 cpus=2 quick=1 rdtscp=1 planned=1\n\
                  bench-progress 1/1 null_syscall wasm\n\
                  bench-result workload=null_syscall path=wasm cores=1 unit=ns batch=100 iters=10 min=100 median=200 p99=300 max=400 mean=210\n\
                  bench-done results=1\n";
        let run = parse_channel(ok).unwrap();
        assert_eq!(run.guest.cpus, 2);
        assert_eq!(run.workloads[0].ns.median, 2.0);
        assert_eq!(run.workloads[0].cycles.median, 2.0);
        assert!(parse_channel(&ok.replace("bench-done results=1\n", "")).unwrap_err().contains("stopped after 1 of 1"));
        assert!(parse_channel("bench-fail boom\n").unwrap_err().contains("boom"));
        assert!(parse_channel("panic cpu3: EXCEPTION\n").unwrap_err().contains("panicked"));
    }

    #[test]
    fn timestamps() {
        assert_eq!(timestamp(0).0, "1970-01-01T00:00:00Z");
        assert_eq!(timestamp(1_779_278_400), ("2026-05-20T12:00:00Z".into(), "20260520-120000".into()));
    }
}
