//! The result channel: how the kernel reports to the test harness.
//!
//! In test mode the kernel writes whole lines to its second serial port
//! (COM2), which QEMU sends to a file. The format, version 1:
//!
//! ```text
//! WASMOS-RESULTS 1                                  first line of a run
//! boot cpus_found=<n> cpus_online=<n> mem_mib=<n> firmware=<bios|uefi>
//! test-start <name>
//! test-pass <name> <microseconds>
//! test-fail <name> <reason, rest of the line>
//! done passed=<n> failed=<n>
//! panic cpu<k>: <reason, rest of the line>         kernel died
//! program-exit <code>                               run mode, `exit_with=`:
//!                                                   the programs ended
//! ```
//!
//! Anything else on the port (firmware noise before the header, a line cut
//! off by a crash) is ignored, never an error: a garbled channel shows up
//! as missing results, which the suite checks catch.

use std::collections::BTreeMap;

/// One parsed line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    Header { version: u32 },
    Boot(BootInfo),
    TestStart { name: String },
    TestPass { name: String, micros: u64 },
    TestFail { name: String, reason: String },
    Done { passed: u64, failed: u64 },
    Panic { cpu: u32, reason: String },
    ProgramExit { code: i32 },
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BootInfo {
    pub cpus_found: u32,
    pub cpus_online: u32,
    pub mem_mib: u64,
    pub firmware: String,
}

/// Parses one line; `None` for anything that is not a protocol line.
pub fn parse_line(line: &str) -> Option<Line> {
    let line = line.trim_end_matches(['\r', '\n']);
    // Firmware may leave escape sequences before our header on the same port.
    let line = match line.find("WASMOS-RESULTS ") {
        Some(i) => &line[i..],
        None => line,
    };
    let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
    match word {
        "WASMOS-RESULTS" => Some(Line::Header { version: rest.trim().parse().ok()? }),
        "boot" => {
            let kv = key_values(rest);
            Some(Line::Boot(BootInfo {
                cpus_found: kv.get("cpus_found")?.parse().ok()?,
                cpus_online: kv.get("cpus_online")?.parse().ok()?,
                mem_mib: kv.get("mem_mib")?.parse().ok()?,
                firmware: kv.get("firmware")?.to_string(),
            }))
        }
        "test-start" if !rest.is_empty() && !rest.contains(' ') => Some(Line::TestStart { name: rest.into() }),
        "test-pass" => {
            let (name, micros) = rest.split_once(' ')?;
            Some(Line::TestPass { name: name.into(), micros: micros.trim().parse().ok()? })
        }
        "test-fail" => {
            let (name, reason) = rest.split_once(' ').unwrap_or((rest, ""));
            (!name.is_empty()).then(|| Line::TestFail { name: name.into(), reason: reason.into() })
        }
        "done" => {
            let kv = key_values(rest);
            Some(Line::Done { passed: kv.get("passed")?.parse().ok()?, failed: kv.get("failed")?.parse().ok()? })
        }
        "panic" => {
            let (cpu, reason) = rest.split_once(": ")?;
            Some(Line::Panic { cpu: cpu.strip_prefix("cpu")?.parse().ok()?, reason: reason.into() })
        }
        "program-exit" => Some(Line::ProgramExit { code: rest.trim().parse().ok()? }),
        _ => None,
    }
}

fn key_values(s: &str) -> BTreeMap<&str, &str> {
    s.split_whitespace().filter_map(|kv| kv.split_once('=')).collect()
}

/// The outcome of one kernel test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Pass {
        micros: u64,
    },
    Fail {
        reason: String,
    },
    /// Started but never finished: the kernel died or hung inside it.
    Unfinished,
}

/// Everything one run reported, in order.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub header_version: Option<u32>,
    pub boot: Option<BootInfo>,
    /// Tests in the order they started.
    pub tests: Vec<(String, Outcome)>,
    pub done: Option<(u64, u64)>,
    pub panic: Option<(u32, String)>,
    /// The exit status of the programs a run-mode boot waited for.
    pub program_exit: Option<i32>,
}

impl Report {
    /// Builds a report from the whole channel text. A final line without a
    /// newline is still parsed (the machine may have stopped right after).
    pub fn parse(text: &str) -> Report {
        let mut r = Report::default();
        for line in text.lines() {
            r.apply(parse_line(line));
        }
        r
    }

    /// Applies one parsed line (the incremental form used while QEMU runs).
    pub fn apply(&mut self, line: Option<Line>) {
        match line {
            None => {}
            Some(Line::Header { version }) => self.header_version = Some(version),
            Some(Line::Boot(b)) => self.boot = Some(b),
            Some(Line::TestStart { name }) => self.tests.push((name, Outcome::Unfinished)),
            Some(Line::TestPass { name, micros }) => self.finish(name, Outcome::Pass { micros }),
            Some(Line::TestFail { name, reason }) => self.finish(name, Outcome::Fail { reason }),
            Some(Line::Done { passed, failed }) => self.done = Some((passed, failed)),
            // The first panic is the cause; later ones are fallout.
            Some(Line::Panic { cpu, reason }) if self.panic.is_none() => self.panic = Some((cpu, reason)),
            Some(Line::Panic { .. }) => {}
            Some(Line::ProgramExit { code }) => self.program_exit = Some(code),
        }
    }

    fn finish(&mut self, name: String, outcome: Outcome) {
        match self.tests.iter_mut().rev().find(|(n, o)| *n == name && *o == Outcome::Unfinished) {
            Some(slot) => slot.1 = outcome,
            // An outcome without a start still counts (a lost start line).
            None => self.tests.push((name, outcome)),
        }
    }

    /// The test that was running when the output stopped, if any.
    pub fn unfinished(&self) -> Option<&str> {
        self.tests.iter().find(|(_, o)| *o == Outcome::Unfinished).map(|(n, _)| n.as_str())
    }

    pub fn passed(&self) -> usize {
        self.tests.iter().filter(|(_, o)| matches!(o, Outcome::Pass { .. })).count()
    }

    pub fn failed(&self) -> usize {
        self.tests.len() - self.passed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "\u{1b}[2J\u{1b}[01;01HBdsDxe: noise\nWASMOS-RESULTS 1\n\
        boot cpus_found=8 cpus_online=8 mem_mib=502 firmware=uefi\n\
        test-start a::one\ntest-pass a::one 12\n\
        test-start a::two\ntest-fail a::two expected 3, got 4 (at x.rs:1)\n\
        done passed=1 failed=1\n";

    #[test]
    fn parses_a_complete_run_with_firmware_noise() {
        let r = Report::parse(GOOD);
        assert_eq!(r.header_version, Some(1));
        let boot = r.boot.clone().unwrap();
        assert_eq!((boot.cpus_found, boot.cpus_online, boot.mem_mib), (8, 8, 502));
        assert_eq!(boot.firmware, "uefi");
        assert_eq!(r.tests[0], ("a::one".into(), Outcome::Pass { micros: 12 }));
        assert_eq!(r.tests[1], ("a::two".into(), Outcome::Fail { reason: "expected 3, got 4 (at x.rs:1)".into() }));
        assert_eq!(r.done, Some((1, 1)));
        assert_eq!((r.passed(), r.failed()), (1, 1));
        assert!(r.panic.is_none() && r.unfinished().is_none());
    }

    #[test]
    fn program_exit_status() {
        assert_eq!(Report::parse("WASMOS-RESULTS 1\nprogram-exit 42\n").program_exit, Some(42));
        assert_eq!(parse_line("program-exit -1"), Some(Line::ProgramExit { code: -1 }));
        assert_eq!(parse_line("program-exit"), None);
    }

    #[test]
    fn header_glued_to_escape_codes() {
        assert_eq!(parse_line("\u{1b}[=3hWASMOS-RESULTS 1"), Some(Line::Header { version: 1 }));
    }

    #[test]
    fn test_without_outcome_is_unfinished_and_panic_is_kept() {
        let r = Report::parse("WASMOS-RESULTS 1\ntest-start smp::ipi_matrix\npanic cpu3: EXCEPTION #PF vector 14\n");
        assert_eq!(r.unfinished(), Some("smp::ipi_matrix"));
        assert_eq!(r.panic, Some((3, "EXCEPTION #PF vector 14".into())));
        assert_eq!(r.failed(), 1);
    }

    #[test]
    fn truncated_and_garbage_lines_are_ignored() {
        let r = Report::parse(
            "WASMOS-RESULTS 1\ntest-start x\ntest-pa\u{0}\u{7f}ss x 1\nboot cpus_found=2\ndone passed=\n",
        );
        assert!(r.boot.is_none(), "incomplete boot line must not parse");
        assert!(r.done.is_none());
        assert_eq!(r.unfinished(), Some("x"));
        assert_eq!(parse_line("test-pass name notanumber"), None);
        assert_eq!(parse_line("panic nocpu"), None);
        assert_eq!(parse_line(""), None);
    }

    #[test]
    fn repeated_test_names_pair_with_their_own_start() {
        let r = Report::parse("test-start t\ntest-pass t 1\ntest-start t\n");
        assert_eq!(r.tests.len(), 2);
        assert_eq!(r.unfinished(), Some("t"));
    }
}
