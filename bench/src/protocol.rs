//! The bench result channel: how the kernel's `bench` mode reports.
//!
//! In bench mode the kernel writes whole lines on its result channel
//! (COM2, the same port and header as the test protocol in
//! `tests/src/protocol.rs`). This module is the one place where the bench
//! lines are defined: the kernel formats them with [`ResultLine`]'s
//! `Display`, xtask reads them with [`parse_line`]. Version 1:
//!
//! ```text
//! WASMOS-RESULTS 1
//! boot cpus_found=<n> cpus_online=<n> mem_mib=<n> firmware=<bios|uefi>
//! bench-start version=1 tsc_hz=<hz> cpus=<n> quick=<0|1> rdtscp=<0|1> planned=<n> rounds=<r>
//! bench-progress <i>/<n> <workload> <path>           (n = planned x rounds runs)
//! bench-result workload=<name> path=<wasm|native> cores=<n> unit=<cycles|ns> batch=<b> iters=<n> min=<x> median=<x> p99=<x> max=<x> mean=<x> [msgs=<n> elapsed_ns=<n>]
//! bench-fail <reason, rest of the line>
//! bench-done results=<n>
//! panic cpu<k>: <reason>                             (kernel died)
//! ```
//!
//! A `bench-result` summarises the raw samples of one workload on one path
//! with [`crate::stats::summarize`]: `iters` samples, each covering `batch`
//! operations, in `unit` (`cycles` of the TSC, or `ns` when the samples
//! were taken with the Wasm ABI's `time_now_ns`). Divide by `batch` for the
//! cost of one operation. Throughput workloads add `msgs` (messages
//! delivered in the timed part) and `elapsed_ns` (how long that took).
//!
//! Workload names are `/`-separated paths; see [`crate::workloads`].

use core::fmt;

/// Version in the `bench-start` line.
pub const VERSION: u32 = 1;

/// Which implementation a figure measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "std", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "std", serde(rename_all = "lowercase"))]
pub enum Path {
    /// Wasm tasks under wasmi in ring 0; system calls are host calls.
    Wasm,
    /// Native ring-3 tasks; SYSCALL/SYSRET, one address space each.
    Native,
    /// A baseline measured on the host (Linux), outside QEMU.
    Host,
}

impl Path {
    pub fn name(self) -> &'static str {
        match self {
            Path::Wasm => "wasm",
            Path::Native => "native",
            Path::Host => "host",
        }
    }

    pub fn parse(s: &str) -> Option<Path> {
        [Path::Wasm, Path::Native, Path::Host].into_iter().find(|p| p.name() == s)
    }
}

/// The unit of raw samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Cycles,
    Ns,
}

impl Unit {
    pub fn name(self) -> &'static str {
        match self {
            Unit::Cycles => "cycles",
            Unit::Ns => "ns",
        }
    }

    pub fn parse(s: &str) -> Option<Unit> {
        [Unit::Cycles, Unit::Ns].into_iter().find(|u| u.name() == s)
    }
}

/// One `bench-result` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultLine<'a> {
    pub workload: &'a str,
    pub path: Path,
    /// Cores the workload used.
    pub cores: u32,
    pub unit: Unit,
    /// Operations per sample.
    pub batch: u64,
    pub summary: crate::stats::Summary,
    /// For throughput workloads: messages delivered in the timed part, and
    /// how long that took.
    pub throughput: Option<(u64, u64)>,
}

impl fmt::Display for ResultLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.summary;
        write!(
            f,
            "bench-result workload={} path={} cores={} unit={} batch={} iters={} min={} median={} p99={} max={} mean={}",
            self.workload,
            self.path.name(),
            self.cores,
            self.unit.name(),
            self.batch,
            s.iterations,
            s.min,
            s.median,
            s.p99,
            s.max,
            s.mean
        )?;
        if let Some((msgs, elapsed_ns)) = self.throughput {
            write!(f, " msgs={msgs} elapsed_ns={elapsed_ns}")?;
        }
        Ok(())
    }
}

/// The `bench-start` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Start {
    pub tsc_hz: u64,
    pub cpus: u32,
    pub quick: bool,
    pub rdtscp: bool,
    /// Results the run is going to produce.
    pub planned: u32,
    /// Runs per result (see `workloads::Sizes::rounds`).
    pub rounds: u32,
}

impl fmt::Display for Start {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "bench-start version={VERSION} tsc_hz={} cpus={} quick={} rdtscp={} planned={} rounds={}",
            self.tsc_hz, self.cpus, self.quick as u8, self.rdtscp as u8, self.planned, self.rounds
        )
    }
}

/// One parsed bench line (lines of the test protocol are `None` here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line<'a> {
    Start(Start),
    Progress { index: u32, total: u32, workload: &'a str, path: &'a str },
    Result(ResultLine<'a>),
    Fail(&'a str),
    Done { results: u32 },
}

fn value<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace().filter_map(|kv| kv.split_once('=')).find(|(k, _)| *k == key).map(|(_, v)| v)
}

fn number(line: &str, key: &str) -> Option<u64> {
    value(line, key)?.parse().ok()
}

/// Parses one line; `None` for anything that is not a bench line.
pub fn parse_line(line: &str) -> Option<Line<'_>> {
    let line = line.trim_end_matches(['\r', '\n']);
    let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
    match word {
        "bench-start" => Some(Line::Start(Start {
            tsc_hz: number(rest, "tsc_hz")?,
            cpus: number(rest, "cpus")? as u32,
            quick: number(rest, "quick")? != 0,
            rdtscp: number(rest, "rdtscp")? != 0,
            planned: number(rest, "planned")? as u32,
            rounds: number(rest, "rounds").unwrap_or(1) as u32,
        })),
        "bench-progress" => {
            let mut parts = rest.split_whitespace();
            let (index, total) = parts.next()?.split_once('/')?;
            Some(Line::Progress {
                index: index.parse().ok()?,
                total: total.parse().ok()?,
                workload: parts.next()?,
                path: parts.next().unwrap_or(""),
            })
        }
        "bench-result" => {
            let summary = crate::stats::Summary {
                iterations: number(rest, "iters")?,
                min: number(rest, "min")?,
                median: number(rest, "median")?,
                p99: number(rest, "p99")?,
                max: number(rest, "max")?,
                mean: number(rest, "mean")?,
            };
            let throughput = match (number(rest, "msgs"), number(rest, "elapsed_ns")) {
                (Some(m), Some(e)) => Some((m, e)),
                _ => None,
            };
            Some(Line::Result(ResultLine {
                workload: value(rest, "workload")?,
                path: Path::parse(value(rest, "path")?)?,
                cores: number(rest, "cores")? as u32,
                unit: Unit::parse(value(rest, "unit")?)?,
                batch: number(rest, "batch")?.max(1),
                summary,
                throughput,
            }))
        }
        "bench-fail" => Some(Line::Fail(rest)),
        "bench-done" => Some(Line::Done { results: number(rest, "results")? as u32 }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Summary;
    use std::string::ToString;

    fn sample() -> ResultLine<'static> {
        ResultLine {
            workload: "ipc_rt/cross_idle/0-3",
            path: Path::Native,
            cores: 2,
            unit: Unit::Cycles,
            batch: 1,
            summary: Summary { iterations: 1000, min: 10, median: 20, p99: 30, max: 40, mean: 21 },
            throughput: None,
        }
    }

    #[test]
    fn result_lines_round_trip() {
        let line = sample();
        let text = line.to_string();
        assert!(text.starts_with("bench-result workload=ipc_rt/cross_idle/0-3 path=native "));
        assert_eq!(parse_line(&text), Some(Line::Result(line.clone())));
        let with = ResultLine { throughput: Some((8000, 123456)), unit: Unit::Ns, batch: 64, ..line };
        assert_eq!(parse_line(&with.to_string()), Some(Line::Result(with.clone())));
    }

    #[test]
    fn start_progress_done_fail() {
        let start = Start { tsc_hz: 2_994_000_000, cpus: 8, quick: true, rdtscp: false, planned: 40, rounds: 3 };
        assert_eq!(parse_line(&start.to_string()), Some(Line::Start(start)));
        assert_eq!(
            parse_line("bench-progress 3/40 null_syscall wasm"),
            Some(Line::Progress { index: 3, total: 40, workload: "null_syscall", path: "wasm" })
        );
        assert_eq!(parse_line("bench-done results=40\r"), Some(Line::Done { results: 40 }));
        assert_eq!(parse_line("bench-fail task trapped"), Some(Line::Fail("task trapped")));
    }

    #[test]
    fn garbage_is_not_a_bench_line() {
        assert_eq!(parse_line("test-pass x 1"), None);
        assert_eq!(
            parse_line(
                "bench-result workload=x path=alien cores=1 unit=ns batch=1 iters=1 min=1 median=1 p99=1 max=1 mean=1"
            ),
            None
        );
        assert_eq!(parse_line("bench-result workload=x"), None);
        assert_eq!(parse_line("bench-progress x"), None);
        assert_eq!(parse_line(""), None);
    }
}

/// First four bytes of a sample record ("WBS1").
pub const SAMPLES_MAGIC: &[u8; 4] = b"WBS1";

/// Finds the sample record a bench Wasm program wrote on its console
/// (`"WBS1"`, a u32 count, then count u64 samples, all little-endian; see
/// `bench/wasm/prelude.wat`) and returns the samples. `None` when there
/// is no complete record.
pub fn sample_record(bytes: &[u8]) -> Option<alloc::vec::Vec<u64>> {
    let start = bytes.windows(4).position(|w| w == SAMPLES_MAGIC)?;
    let rest = &bytes[start + 4..];
    let count = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?) as usize;
    let data = rest.get(4..4 + count.checked_mul(8)?)?;
    Some(data.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes"))).collect())
}

#[cfg(test)]
mod record_tests {
    use super::*;

    #[test]
    fn sample_records() {
        let mut bytes = std::vec::Vec::from(&b"noise"[..]);
        bytes.extend_from_slice(b"WBS1");
        bytes.extend_from_slice(&3u32.to_le_bytes());
        for v in [7u64, 8, 1 << 40] {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        bytes.extend_from_slice(b"exited with code 0\n");
        assert_eq!(sample_record(&bytes), Some(std::vec![7, 8, 1 << 40]));
        assert_eq!(sample_record(&bytes[..bytes.len() - 25]), None);
        assert_eq!(sample_record(b"nothing"), None);
    }
}
