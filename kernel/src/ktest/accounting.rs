//! Floods an ordinary task can drive, on every core of the real kernel:
//! each hostile task gets a status code (never a kernel heap panic), other
//! tasks keep being served, and the kernel's memory (names, queued bytes,
//! heap) returns to its baseline.

use alloc::format;
use alloc::vec::Vec;

use wasmos_ipc::abi::{MAX_NAMES_PER_TASK, Status};
use wasmos_sched::{QUEUED_ITEM_OVERHEAD, SYSTEM_NAMES};

use super::wasm::{exited, spawn, wait};
use super::{Ctx, Test, TestResult};
use crate::{ensure, memory};

pub const TESTS: &[Test] = &[
    Test { name: "hostile::name_flood_refused", run: name_flood_refused },
    Test { name: "hostile::message_flood_charged", run: message_flood_charged },
    Test { name: "hostile::distinct_binaries_bounded", run: distinct_binaries_bounded },
];

const SECONDS: u64 = 1_000_000_000;

/// Keeps core 0 scheduling until `done` or `secs` pass.
fn until(ctx: &mut Ctx, secs: u64, done: impl FnMut() -> bool) {
    let sys = ctx.sys.clone();
    ctx.sched.run_until(secs * SECONDS, done, |s, _| crate::tasks::idle(&sys, s));
}

fn heap_used() -> u64 {
    memory::heap::stats().used_bytes
}

/// A system task registering names in a loop stops at its own limit; 62
/// ordinary tasks flooding at once fill the name service but for the
/// system's reserve (`NO_MEMORY`), where a system server still registers;
/// then every name is gone. Twice: the heap after the second round is
/// where the first left it.
fn name_flood_refused(ctx: &mut Ctx) -> TestResult {
    let baseline = ctx.sys.service_count();
    let mut heap_after = Vec::new();
    for round in 0..2 {
        let alone = spawn(ctx, "namer", 1 % ctx.sys.cores() as i32)?;
        let code = MAX_NAMES_PER_TASK as i32 * 16 - Status::QuotaExceeded.code();
        let exits = wait(ctx, &[alone], 30);
        ensure!(exits == [exited(code)], "round {round}: one namer ended {exits:?}");

        let flood = spawn(ctx, "name_flood", 0)?;
        let ordinary = ctx.sys.config().max_names - SYSTEM_NAMES;
        let sys = ctx.sys.clone();
        until(ctx, 30, || sys.service_count() >= ordinary);
        ensure!(ctx.sys.service_count() == ordinary, "round {round}: {} names", ctx.sys.service_count());
        // The name service is full for ordinary tasks: a system server
        // still registers (the echo server is started by the kernel).
        let server = spawn(ctx, "echo_server", -1)?;
        let client = spawn(ctx, "echo_client", -1)?;
        let exits = wait(ctx, &[flood, client, server], 60);
        let total = (ordinary - baseline) as i32;
        ensure!(
            exits == [exited(total * 4 + 3), exited(0), exited(0)],
            "round {round}: flood/client/server ended {exits:?} (expected {} names)",
            total
        );
        ensure!(ctx.sys.service_count() == baseline, "round {round}: {} names left", ctx.sys.service_count());
        heap_after.push(heap_used());
    }
    ensure!(heap_after[1] <= heap_after[0] + (256 << 10), "heap grew between rounds: {heap_after:?}");
    Ok(())
}

/// 20 flooders (more than the queue budget holds: 16 x 1 MiB) each fill
/// a non-receiving child's inbox with 4 KiB messages: each stops at its
/// own budget with `WOULD_BLOCK`, or earlier with `NO_MEMORY` when the
/// system's budget is full; an echo pair is served meanwhile; all bytes
/// come back. Twice, comparing the heap after each round.
fn message_flood_charged(ctx: &mut Ctx) -> TestResult {
    let config = ctx.sys.config().clone();
    let item = QUEUED_ITEM_OVERHEAD + 4096;
    let own = config.max_queued_bytes / item;
    let mut heap_after = Vec::new();
    for round in 0..2 {
        let mut ids = Vec::new();
        for i in 0..20 {
            ids.push(spawn(ctx, "msg_flood", i % ctx.sys.cores() as i32)?);
        }
        ids.push(spawn(ctx, "echo_server", -1)?);
        ids.push(spawn(ctx, "echo_client", -1)?);
        let exits = wait(ctx, &ids, 60);
        ensure!(exits[20..] == [exited(0), exited(0)], "round {round}: echo pair ended {:?}", &exits[20..]);
        let mut ends = Vec::new();
        for exit in &exits[..20] {
            let Some(exit) = exit else { return Err(format!("round {round}: a flooder did not end")) };
            ends.push(((exit.code / 16) as usize, -(exit.code % 16)));
        }
        let (wb, nm) = (Status::WouldBlock.code(), Status::NoMemory.code());
        ensure!(
            ends.iter().all(|&(n, s)| (s == wb && n == own) || (s == nm && n < own)),
            "round {round}: (sent, status) {ends:?}"
        );
        ensure!(ends.iter().any(|&(_, s)| s == nm), "round {round}: nobody met NO_MEMORY: {ends:?}");
        let sent: usize = ends.iter().map(|&(n, _)| n).sum();
        ensure!(sent * item <= config.total_queued_bytes, "round {round}: {sent} messages queued at once");
        ensure!(ctx.sys.queued_bytes() == 0, "round {round}: {} queued bytes left", ctx.sys.queued_bytes());
        heap_after.push(heap_used());
    }
    ensure!(heap_after[1] <= heap_after[0] + (256 << 10), "heap grew between rounds: {heap_after:?}");
    Ok(())
}

/// An ordinary task spawning 1200 distinct binaries one after another
/// (`compile_churn`, each child ending at once), three rounds: every spawn
/// succeeds, an echo pair is served meanwhile, the compiled code alive
/// stays within its budget, and the heap does not grow from round to
/// round by more than one engine generation. Before code was compiled in
/// generations, wasmi kept every child's code (about 4.6 MB a round, by
/// the compiled size measured on the host), until the heap ran out; with
/// generations but without their retirement, round 2 meets `NO_MEMORY`.
fn distinct_binaries_bounded(ctx: &mut Ctx) -> TestResult {
    let budget = ctx.sys.config().compiled_bytes;
    let mut heap_after = Vec::new();
    for round in 0..3 {
        let flood = spawn(ctx, "compile_flood", 0)?;
        let server = spawn(ctx, "echo_server", -1)?;
        let client = spawn(ctx, "echo_client", -1)?;
        let exits = wait(ctx, &[flood, client, server], 120);
        ensure!(
            exits == [exited(1200 * 16), exited(0), exited(0)],
            "round {round}: flood/client/server ended {exits:?} (flood: spawns * 16 - status)"
        );
        let live = ctx.sys.compiled_in_use();
        ensure!(live <= budget, "round {round}: {live} bytes of compiled code alive, budget {budget}");
        heap_after.push(heap_used());
    }
    let generation = (budget / 4) as u64;
    ensure!(heap_after[2] <= heap_after[0] + generation, "heap grew between rounds: {heap_after:?}");
    Ok(())
}
