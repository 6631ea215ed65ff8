//! The QEMU suites `cargo xtask test` runs, and how each one is judged.
//!
//! A suite is one boot. Its checks are counted like tests: every kernel
//! test it reports, plus suite-level checks (the machine booted with the
//! cores asked for, the run ended cleanly). Judging is a pure function of
//! the result channel, the log and QEMU's exit, so it is unit-tested here.

use crate::protocol::{Outcome, Report};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Firmware {
    Bios,
    Uefi,
}

impl Firmware {
    pub fn name(self) -> &'static str {
        match self {
            Firmware::Bios => "bios",
            Firmware::Uefi => "uefi",
        }
    }
}

/// What a suite expects from its boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Every in-kernel test passes and the kernel exits with success.
    KernelTests,
    /// The deliberate page fault is reported in full and fails the run.
    FaultReport,
}

#[derive(Debug, Clone)]
pub struct Suite {
    pub name: &'static str,
    pub firmware: Firmware,
    pub smp: u32,
    /// `mode=` in boot.cfg.
    pub mode: &'static str,
    pub expect: Expect,
    /// Generous: TCG with more virtual CPUs than host cores is slow.
    pub timeout_secs: u64,
}

/// Every suite, in the order they run.
pub fn all() -> Vec<Suite> {
    let kernel = |name, firmware, smp| Suite {
        name,
        firmware,
        smp,
        mode: "test",
        expect: Expect::KernelTests,
        // wasm::ten_million_host_calls alone takes tens of seconds under
        // TCG on a busy 2-CPU host.
        timeout_secs: 420,
    };
    vec![
        kernel("bios-smp1", Firmware::Bios, 1),
        kernel("bios-smp2", Firmware::Bios, 2),
        kernel("bios-smp8", Firmware::Bios, 8),
        kernel("uefi-smp8", Firmware::Uefi, 8),
        Suite {
            name: "fault-demo",
            firmware: Firmware::Bios,
            smp: 2,
            mode: "fault-demo",
            expect: Expect::FaultReport,
            timeout_secs: 120,
        },
    ]
}

/// QEMU's exit status with `isa-debug-exit`: the kernel writes `v` to the
/// port and QEMU exits with `(v << 1) | 1`.
pub const EXIT_SUCCESS: i32 = (0x10 << 1) | 1;
pub const EXIT_FAILURE: i32 = (0x11 << 1) | 1;

/// How the QEMU process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Status(i32),
    /// Killed by a signal we did not send.
    Signal,
    TimedOut {
        after_secs: u64,
    },
}

/// One counted check: a kernel test or a suite-level check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: String,
    pub result: Result<Option<u64>, String>,
}

impl Check {
    fn pass(name: String, micros: Option<u64>) -> Check {
        Check { name, result: Ok(micros) }
    }
    fn fail(name: String, why: String) -> Check {
        Check { name, result: Err(why) }
    }
    pub fn passed(&self) -> bool {
        self.result.is_ok()
    }
}

/// The fault the fault-demo mode takes (see `kernel/src/main.rs`).
pub const FAULT_DEMO_ADDRESS: &str = "CR2=0x000000deadbee000";

/// Judges one suite.
pub fn evaluate(suite: &Suite, report: &Report, log: &str, exit: Exit) -> Vec<Check> {
    let name = |check: &str| format!("{}::{check}", suite.name);
    let how_it_ended = || describe_end(report, exit);
    let mut checks = Vec::new();
    match suite.expect {
        Expect::KernelTests => {
            for (test, outcome) in &report.tests {
                checks.push(match outcome {
                    Outcome::Pass { micros } => Check::pass(name(test), Some(*micros)),
                    Outcome::Fail { reason } => Check::fail(name(test), reason.clone()),
                    Outcome::Unfinished => Check::fail(name(test), format!("never finished: {}", how_it_ended())),
                });
            }
            checks.push(boot_check(suite, report, name("boot")));
            let clean = match (exit, &report.panic, report.done) {
                (_, Some((cpu, why)), _) => Err(format!("kernel panic on cpu{cpu}: {why}")),
                (Exit::Status(EXIT_SUCCESS), None, Some((p, f))) => {
                    if p as usize == report.passed() && f as usize == report.failed() {
                        Ok(None)
                    } else {
                        Err(format!(
                            "done line says {p} passed/{f} failed, channel shows {}/{}",
                            report.passed(),
                            report.failed()
                        ))
                    }
                }
                (Exit::Status(EXIT_SUCCESS), None, None) => Err("exit status success but no done line".into()),
                (Exit::Status(EXIT_FAILURE), None, Some(_)) => Err("kernel reported failing tests".into()),
                _ => Err(how_it_ended()),
            };
            checks.push(Check { name: name("clean_exit"), result: clean });
        }
        Expect::FaultReport => {
            let wanted = ["EXCEPTION #PF (vector 14, Page Fault)", "error code: 0x0", FAULT_DEMO_ADDRESS, "RIP=0x"];
            let missing: Vec<&str> = wanted.iter().copied().filter(|w| !log.contains(w)).collect();
            checks.push(if missing.is_empty() {
                Check::pass(name("exception_report"), None)
            } else {
                Check::fail(name("exception_report"), format!("log lacks {missing:?}"))
            });
            let fails_run = match (&report.panic, exit) {
                (Some((_, why)), Exit::Status(EXIT_FAILURE)) if why.contains("#PF") => Ok(None),
                (Some((_, why)), Exit::Status(EXIT_FAILURE)) => Err(format!("panic line does not name #PF: {why}")),
                _ => Err(format!("expected a panic line and failure exit: {}", how_it_ended())),
            };
            checks.push(Check { name: name("fault_fails_the_run"), result: fails_run });
        }
    }
    checks
}

fn boot_check(suite: &Suite, report: &Report, name: String) -> Check {
    let Some(boot) = &report.boot else {
        return Check::fail(name, "no boot line on the result channel".into());
    };
    let smp = suite.smp;
    if boot.cpus_found != smp || boot.cpus_online != smp {
        return Check::fail(
            name,
            format!("asked for {smp} cores: {} found, {} online", boot.cpus_found, boot.cpus_online),
        );
    }
    if boot.firmware != suite.firmware.name() {
        return Check::fail(name, format!("booted by {} firmware, expected {}", boot.firmware, suite.firmware.name()));
    }
    Check::pass(name, None)
}

/// Whether the run ended abnormally: a panic, a test that never finished,
/// no `done` line, or an exit that is neither of the kernel's own. Then the
/// end of the kernel log is where to look, not just a test's reason.
pub fn ended_abnormally(report: &Report, exit: Exit) -> bool {
    report.panic.is_some()
        || report.unfinished().is_some()
        || report.done.is_none()
        || !matches!(exit, Exit::Status(EXIT_SUCCESS | EXIT_FAILURE))
}

/// A sentence on how the run ended, naming the test that was running.
pub fn describe_end(report: &Report, exit: Exit) -> String {
    let during = report.unfinished().map(|t| format!(" while running {t}")).unwrap_or_default();
    match (exit, &report.panic) {
        (_, Some((cpu, why))) => format!("kernel panic on cpu{cpu}{during}: {why}"),
        (Exit::TimedOut { after_secs }, None) => format!("timed out after {after_secs} s{during}"),
        (Exit::Status(EXIT_SUCCESS), None) => format!("exited with success{during}"),
        (Exit::Status(EXIT_FAILURE), None) => format!("kernel reported failure{during}"),
        (Exit::Status(0), None) => format!("machine reset (triple fault?){during}"),
        (Exit::Status(code), None) => format!("QEMU exited with status {code}{during}"),
        (Exit::Signal, None) => format!("QEMU killed by a signal{during}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn suite(expect: Expect) -> Suite {
        Suite { name: "s", firmware: Firmware::Bios, smp: 2, mode: "test", expect, timeout_secs: 1 }
    }

    const OK_RUN: &str = "WASMOS-RESULTS 1\nboot cpus_found=2 cpus_online=2 mem_mib=500 firmware=bios\n\
        test-start t1\ntest-pass t1 5\ndone passed=1 failed=0\n";

    #[test]
    fn clean_run_passes_every_check() {
        let checks = evaluate(&suite(Expect::KernelTests), &Report::parse(OK_RUN), "", Exit::Status(EXIT_SUCCESS));
        let names: Vec<&str> = checks.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["s::t1", "s::boot", "s::clean_exit"]);
        assert!(checks.iter().all(Check::passed), "{checks:?}");
    }

    #[test]
    fn missing_core_fails_boot_check() {
        let text = OK_RUN.replace("cpus_online=2", "cpus_online=1");
        let checks = evaluate(&suite(Expect::KernelTests), &Report::parse(&text), "", Exit::Status(EXIT_SUCCESS));
        let boot = checks.iter().find(|c| c.name == "s::boot").unwrap();
        assert!(boot.result.as_ref().unwrap_err().contains("1 online"));
    }

    #[test]
    fn triple_fault_mid_test_blames_the_test() {
        let text = "WASMOS-RESULTS 1\nboot cpus_found=2 cpus_online=2 mem_mib=1 firmware=bios\ntest-start smp::x\n";
        let checks = evaluate(&suite(Expect::KernelTests), &Report::parse(text), "", Exit::Status(0));
        let t = &checks[0];
        assert_eq!(t.name, "s::smp::x");
        assert!(t.result.as_ref().unwrap_err().contains("triple fault"), "{t:?}");
        assert!(!checks.last().unwrap().passed());
    }

    #[test]
    fn timeout_and_panic_fail_clean_exit() {
        let r = Report::parse(OK_RUN);
        let c = evaluate(&suite(Expect::KernelTests), &r, "", Exit::TimedOut { after_secs: 9 });
        assert!(c.last().unwrap().result.as_ref().unwrap_err().contains("timed out after 9 s"));
        let r = Report::parse(&format!("{OK_RUN}panic cpu1: boom\n"));
        let c = evaluate(&suite(Expect::KernelTests), &r, "", Exit::Status(EXIT_FAILURE));
        assert!(c.last().unwrap().result.as_ref().unwrap_err().contains("cpu1: boom"));
    }

    #[test]
    fn abnormal_endings() {
        let ok = Report::parse(OK_RUN);
        assert!(!ended_abnormally(&ok, Exit::Status(EXIT_SUCCESS)));
        // Failing tests reported normally are not a crash.
        let failing = Report::parse(
            &OK_RUN.replace("test-pass t1 5", "test-fail t1 no").replace("passed=1 failed=0", "passed=0 failed=1"),
        );
        assert!(!ended_abnormally(&failing, Exit::Status(EXIT_FAILURE)));
        assert!(ended_abnormally(&ok, Exit::Status(0)));
        assert!(ended_abnormally(&ok, Exit::TimedOut { after_secs: 1 }));
        assert!(ended_abnormally(&Report::parse(&format!("{OK_RUN}panic cpu0: x\n")), Exit::Status(EXIT_FAILURE)));
        assert!(ended_abnormally(&Report::parse("test-start t\n"), Exit::Status(EXIT_FAILURE)));
    }

    #[test]
    fn done_line_must_agree() {
        let text = OK_RUN.replace("done passed=1", "done passed=2");
        let c = evaluate(&suite(Expect::KernelTests), &Report::parse(&text), "", Exit::Status(EXIT_SUCCESS));
        assert!(!c.last().unwrap().passed());
    }

    #[test]
    fn fault_demo_needs_report_and_failure() {
        let log = format!(
            "EXCEPTION #PF (vector 14, Page Fault) on cpu 0\n  error code: 0x0\n  RIP=0x1\n  {FAULT_DEMO_ADDRESS}\n"
        );
        let r = Report::parse("WASMOS-RESULTS 1\npanic cpu0: EXCEPTION #PF vector 14 error=0x0\n");
        let s = suite(Expect::FaultReport);
        assert!(evaluate(&s, &r, &log, Exit::Status(EXIT_FAILURE)).iter().all(Check::passed));
        // A #GP instead of a #PF, or a run that "succeeds", must fail.
        assert!(
            !evaluate(&s, &r, &log.replace("#PF (vector 14", "#GP (vector 13"), Exit::Status(EXIT_FAILURE))[0].passed()
        );
        assert!(!evaluate(&s, &r, &log, Exit::Status(EXIT_SUCCESS))[1].passed());
    }
}
