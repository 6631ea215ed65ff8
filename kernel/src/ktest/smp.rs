//! In-kernel tests of multiprocessor bring-up: every core online with its
//! own APIC, timers ticking everywhere, and IPIs between every pair.

use core::sync::atomic::Ordering;

use wasmos_smp::{clock, lapic, percpu, remote, vectors};

use super::{Ctx, Test, TestResult};
use crate::ensure;

pub const TESTS: &[Test] = &[
    Test { name: "smp::all_cores_online", run: all_cores_online },
    Test { name: "smp::clocks_calibrated", run: clocks_calibrated },
    Test { name: "smp::timer_ticks_on_every_core", run: timer_ticks_on_every_core },
    Test { name: "smp::ipi_matrix", run: ipi_matrix },
];

const REMOTE_TIMEOUT_MS: u64 = 2_000;

/// Answers with the core's index in the low 32 bits and the APIC ID the
/// hardware reports in the high 32 bits.
fn whoami(_: usize) -> usize {
    let cpu = percpu::current();
    (cpu.cpu_index as usize) | ((lapic::hardware_id() as usize) << 32)
}

fn all_cores_online(_: &mut Ctx) -> TestResult {
    let cpus = percpu::all();
    ensure!(!cpus.is_empty(), "no per-CPU data");
    ensure!(percpu::online_count() == cpus.len(), "{} of {} cores online", percpu::online_count(), cpus.len());
    for (i, cpu) in cpus.iter().enumerate() {
        let answer = remote::run_on(i, whoami, 0, REMOTE_TIMEOUT_MS).map_err(|e| alloc::format!("cpu{i}: {e:?}"))?;
        let (index, apic_id) = (answer & 0xFFFF_FFFF, answer >> 32);
        ensure!(index == i, "asked cpu{i}, cpu{index} answered");
        ensure!(apic_id as u32 == cpu.apic_id, "cpu{i}: APIC ID {apic_id} but MADT said {}", cpu.apic_id);
    }
    Ok(())
}

fn clocks_calibrated(_: &mut Ctx) -> TestResult {
    let hz = clock::tsc_hz();
    ensure!((100_000_000..20_000_000_000).contains(&hz), "implausible TSC frequency {hz} Hz");
    let a = clock::now_ns();
    let b = clock::now_ns();
    ensure!(b >= a, "clock went backwards: {a} -> {b}");
    Ok(())
}

/// Every core must take timer interrupts. The wait is generous because
/// under TCG eight virtual CPUs share two host cores.
fn timer_ticks_on_every_core(_: &mut Ctx) -> TestResult {
    let cpus = percpu::all();
    let before: alloc::vec::Vec<u64> = cpus.iter().map(|c| c.ticks.load(Ordering::Relaxed)).collect();
    let deadline = clock::now_ns() + 2_000_000_000;
    loop {
        let lagging: alloc::vec::Vec<usize> =
            (0..cpus.len()).filter(|&i| cpus[i].ticks.load(Ordering::Relaxed) < before[i] + 3).collect();
        if lagging.is_empty() {
            return Ok(());
        }
        ensure!(clock::now_ns() < deadline, "cores {lagging:?} took fewer than 3 timer ticks in 2 s");
        x86_64::instructions::interrupts::enable_and_hlt();
    }
}

/// Runs on the source core (inside its IPI handler, interrupts off): sends
/// one IPI to every other core and waits to see each one handled. Returns a
/// bit mask of the cores that never handled theirs.
fn ipi_every_other_core(_: usize) -> usize {
    let me = percpu::current().cpu_index as usize;
    let mut missed = 0usize;
    for (t, target) in percpu::all().iter().enumerate() {
        if t == me {
            continue;
        }
        let before = target.ipis.load(Ordering::Acquire);
        lapic::send_ipi(target.apic_id, vectors::IPI);
        let deadline = clock::now_ns() + 1_000_000_000;
        while target.ipis.load(Ordering::Acquire) == before {
            if clock::now_ns() > deadline {
                missed |= 1 << t;
                break;
            }
            core::hint::spin_loop();
        }
    }
    missed
}

fn ipi_matrix(_: &mut Ctx) -> TestResult {
    let n = percpu::all().len();
    let mut failures = alloc::vec::Vec::new();
    for source in 0..n {
        let missed = if source == 0 {
            // The BSP sends with interrupts on, so it can also be a target.
            ipi_every_other_core(0)
        } else {
            remote::run_on(source, ipi_every_other_core, 0, REMOTE_TIMEOUT_MS * n as u64)
                .map_err(|e| alloc::format!("cpu{source} unreachable: {e:?}"))?
        };
        for t in (0..n).filter(|t| missed & (1 << t) != 0) {
            failures.push(alloc::format!("{source}->{t}"));
        }
    }
    ensure!(failures.is_empty(), "IPIs not handled: {}", failures.join(" "));
    crate::kprintln!("  ipi matrix: {} x {} pairs delivered", n, n.saturating_sub(1));
    Ok(())
}
