//! In-kernel tests of Wasm tasks on every core: the programs from
//! `tests/wasm/` (put in the bundle by xtask as `test/<name>.wasm`) run
//! under the real per-core schedulers, rings and IPIs.

use alloc::format;
use alloc::vec::Vec;

use wasmos_ipc::abi::{ExitReason, Status};
use wasmos_ipc::ids::TaskId;
use wasmos_sched::TaskExit;

use super::{Ctx, Test, TestResult};
use crate::ensure;

pub const TESTS: &[Test] = &[
    Test { name: "wasm::hello_on_another_core", run: hello_on_another_core },
    Test { name: "wasm::invalid_binary_rejected", run: invalid_binary_rejected },
    Test { name: "wasm::ping_pong_same_core", run: ping_pong_same_core },
    Test { name: "wasm::ping_pong_cross_core", run: ping_pong_cross_core },
    Test { name: "wasm::all_to_all_storm", run: all_to_all_storm },
    Test { name: "wasm::ten_million_host_calls", run: ten_million_host_calls },
    Test { name: "wasm::fuel_preempts_infinite_loop", run: fuel_preempts_infinite_loop },
    Test { name: "wasm::faults_are_contained", run: faults_are_contained },
    Test { name: "wasm::caller_of_dead_server_told", run: caller_of_dead_server_told },
    Test { name: "wasm::capability_denied", run: capability_denied },
    Test { name: "wasm::task_kill_on_every_core", run: task_kill_on_every_core },
    Test { name: "wasm::init_starts_listed_programs", run: init_starts_listed_programs },
    Test { name: "wasi::std_program", run: wasi_std_program },
    Test { name: "hostile::spawn_bomb_stopped", run: spawn_bomb_stopped },
    Test { name: "hostile::memory_hogs_share_budget", run: memory_hogs_share_budget },
    Test { name: "hostile::healthy_throughput_beside_each_kind", run: healthy_throughput_beside_each_kind },
];

const SECONDS: u64 = 1_000_000_000;

pub(crate) fn exited(code: i32) -> Option<TaskExit> {
    Some(TaskExit { code, reason: ExitReason::Exited })
}

/// Starts test program `name` on `core`.
pub(crate) fn spawn(ctx: &Ctx, name: &str, core: i32) -> Result<TaskId, alloc::string::String> {
    let entry = format!("test/{name}.wasm");
    let bytes =
        ctx.bundle.and_then(|b| b.get(&entry)).ok_or_else(|| format!("{entry} missing from the boot bundle"))?;
    ctx.sys.spawn(bytes, name, core).map_err(|e| format!("spawning {name}: {}", e.name()))
}

/// Keeps core 0 scheduling until every task in `ids` exited, or `secs` pass.
pub(crate) fn wait(ctx: &mut Ctx, ids: &[TaskId], secs: u64) -> Vec<Option<TaskExit>> {
    let sys = ctx.sys.clone();
    let done = || ids.iter().all(|id| sys.exit_of(*id).is_some());
    ctx.sched.run_until(secs * SECONDS, done, |s, _| crate::tasks::idle(&sys, s));
    ids.iter().map(|id| ctx.sys.exit_of(*id)).collect()
}

fn last_core(ctx: &Ctx) -> i32 {
    ctx.sys.cores() as i32 - 1
}

fn hello_on_another_core(ctx: &mut Ctx) -> TestResult {
    let id = spawn(ctx, "hello", last_core(ctx))?;
    let exits = wait(ctx, &[id], 20);
    ensure!(exits == [exited(7)], "hello ended {exits:?}");
    Ok(())
}

fn invalid_binary_rejected(ctx: &mut Ctx) -> TestResult {
    ensure!(ctx.sys.spawn(b"\0asm\x01\0\0\0garbage", "bad", 0) == Err(Status::InvalidWasm), "garbage accepted");
    ensure!(ctx.sys.spawn(&[], "empty", 0) == Err(Status::InvalidWasm), "empty binary accepted");
    // And the system still works.
    let id = spawn(ctx, "hello", 0)?;
    ensure!(wait(ctx, &[id], 20) == [exited(7)], "hello after a rejected binary");
    Ok(())
}

fn echo_pair(ctx: &mut Ctx, server_core: i32, client_core: i32) -> TestResult {
    let server = spawn(ctx, "echo_server", server_core)?;
    let client = spawn(ctx, "echo_client", client_core)?;
    let exits = wait(ctx, &[client, server], 60);
    ensure!(exits == [exited(0), exited(0)], "client/server ended {exits:?} (server core {server_core})");
    Ok(())
}

fn ping_pong_same_core(ctx: &mut Ctx) -> TestResult {
    echo_pair(ctx, 0, 0)?;
    let k = last_core(ctx);
    echo_pair(ctx, k, k)
}

fn ping_pong_cross_core(ctx: &mut Ctx) -> TestResult {
    let k = last_core(ctx);
    echo_pair(ctx, k, 0)?;
    echo_pair(ctx, 0, k)
}

/// A sink and a sender on every core; every sender sends 200 messages to
/// every sink; every sink must count exactly 200 x cores.
fn all_to_all_storm(ctx: &mut Ctx) -> TestResult {
    let cores = ctx.sys.cores() as i32;
    let mut ids = Vec::new();
    for core in 0..cores {
        ids.push(spawn(ctx, "storm_sink", core)?);
        ids.push(spawn(ctx, "storm_sender", core)?);
    }
    let exits = wait(ctx, &ids, 120);
    for (i, exit) in exits.iter().enumerate() {
        let expected = if i % 2 == 0 { 200 * cores } else { 0 };
        ensure!(
            *exit == exited(expected),
            "{} on core {}: {exit:?}, expected {expected}",
            if i % 2 == 0 { "sink" } else { "sender" },
            i / 2
        );
    }
    crate::kprintln!("  storm: {} messages counted across {} cores", 200 * cores * cores, cores);
    Ok(())
}

/// One Wasm loop making ten million host calls (`host_calls.wat`) on a
/// kernel stack with a guard page right below it, checked first: the
/// stack's lowest page reads, the page under it page-faults. An
/// interpreter whose dispatch grew the native stack with every executed
/// instruction (wasmi's tail-call handlers on a soft-float target end in
/// `call`, not `jmp`) runs into that page long before the end and the
/// machine stops with a double fault; the task must instead exit with
/// the count of calls made. Also checks that SSE is on for the core the
/// test runs on (the kernel is compiled with it).
fn ten_million_host_calls(ctx: &mut Ctx) -> TestResult {
    ensure!(crate::cpu::sse_enabled(), "SSE is not enabled on core {} (CR0/CR4)", crate::cpu::current_index());
    let core = last_core(ctx);
    let bottom = crate::smp::stack_bottom(core as usize).ok_or(format!("core {core}'s stack bottom is not known"))?;
    ensure!(
        crate::interrupts::probe_read_u64(bottom).is_ok(),
        "the lowest page of core {core}'s stack ({bottom:#x}) is not mapped"
    );
    match crate::interrupts::probe_read_u64(bottom - 8) {
        Ok(v) => return Err(format!("no guard page below core {core}'s stack: {:#x} reads {v:#x}", bottom - 8)),
        Err(f) => ensure!(
            f.vector == 14 && f.error_code & 1 == 0,
            "reading the guard page: {f:?}, expected a not-present page fault"
        ),
    }
    let start = crate::smp::now_ns();
    let id = spawn(ctx, "host_calls", core)?;
    let exits = wait(ctx, &[id], 300);
    ensure!(
        exits == [exited(10_000_000)],
        "host_calls ended {exits:?}, expected 10000000 calls made (-1: core_id answers did not add up)"
    );
    let ms = (crate::smp::now_ns() - start) / 1_000_000;
    crate::kprintln!("  10M host calls on core {core} in {ms} ms; its stack ends at {bottom:#x}, guard page below");
    Ok(())
}

fn fuel_preempts_infinite_loop(ctx: &mut Ctx) -> TestResult {
    let k = last_core(ctx);
    let spinner = spawn(ctx, "spinner", k)?;
    let quick = spawn(ctx, "quick", k)?;
    let exits = wait(ctx, &[quick], 60);
    ensure!(exits == [exited(5)], "quick task ended {exits:?}");
    ensure!(ctx.sys.exit_of(spinner).is_none(), "spinner finished before the quick task: no preemption seen");
    let exits = wait(ctx, &[spinner], 120);
    ensure!(exits == [exited(3)], "spinner ended {exits:?}");
    Ok(())
}

fn faults_are_contained(ctx: &mut Ctx) -> TestResult {
    let cases = [
        ("fault_unreachable", ExitReason::Unreachable),
        ("fault_oob", ExitReason::MemoryOutOfBounds),
        ("fault_divzero", ExitReason::IntegerTrap),
        ("fault_recursion", ExitReason::StackOverflow),
    ];
    let cores = ctx.sys.cores() as i32;
    let mut ids = Vec::new();
    for (i, (name, _)) in cases.iter().enumerate() {
        ids.push(spawn(ctx, name, i as i32 % cores)?);
    }
    let exits = wait(ctx, &ids, 60);
    for ((name, reason), exit) in cases.iter().zip(&exits) {
        ensure!(exit.map(|e| e.reason) == Some(*reason), "{name}: {exit:?}, expected {}", reason.name());
    }
    // Everything else still works.
    echo_pair(ctx, cores - 1, 0)
}

fn caller_of_dead_server_told(ctx: &mut Ctx) -> TestResult {
    for server_core in [0, last_core(ctx)] {
        let server = spawn(ctx, "dying_server", server_core)?;
        let client = spawn(ctx, "echo_client", 0)?;
        let exits = wait(ctx, &[client, server], 60);
        let expected = exited(1000 - Status::DeadTarget.code());
        ensure!(
            exits[0] == expected,
            "client ended {:?}, expected DEAD_TARGET (server on core {server_core})",
            exits[0]
        );
        ensure!(exits[1].map(|e| e.reason) == Some(ExitReason::Unreachable), "server ended {:?}", exits[1]);
    }
    Ok(())
}

fn capability_denied(ctx: &mut Ctx) -> TestResult {
    let server = spawn(ctx, "echo_server", 0)?;
    let id = spawn(ctx, "nocap", last_core(ctx))?;
    let exits = wait(ctx, &[id], 20);
    ensure!(exits == [exited(0)], "nocap ended {exits:?} (non-zero = a send without a capability got through)");
    // Stop the server through a legitimate client.
    let client = spawn(ctx, "echo_client", 0)?;
    let exits = wait(ctx, &[client, server], 60);
    ensure!(exits == [exited(0), exited(0)], "cleanup {exits:?}");
    Ok(())
}

/// A parent kills a child on every core, some before they start: each is
/// reported killed, and nothing of them is left.
fn task_kill_on_every_core(ctx: &mut Ctx) -> TestResult {
    let before = ctx.sys.task_count();
    let id = spawn(ctx, "killer", 0)?;
    let exits = wait(ctx, &[id], 60);
    let cores = ctx.sys.cores() as i32;
    ensure!(exits == [exited(cores)], "killer ended {exits:?} (1000 + step = a failed step)");
    ensure!(ctx.sys.task_count() == before, "{} tasks left", ctx.sys.task_count() - before);
    Ok(())
}

/// init (built from servers/init) reads boot.cfg and starts what `spawn=`
/// lists: xtask lists the token ring on every core. init exits 0 when all
/// started; the ring's tasks exit after their laps, leaving no task behind.
fn init_starts_listed_programs(ctx: &mut Ctx) -> TestResult {
    let before = ctx.sys.task_count();
    let bytes = ctx.bundle.and_then(|b| b.get("init.wasm")).ok_or("init.wasm missing from the bundle")?;
    let init = ctx.sys.spawn_init(bytes).map_err(|e| format!("init rejected: {}", e.name()))?;
    let exits = wait(ctx, &[init], 60);
    ensure!(exits == [exited(0)], "init ended {exits:?} (non-zero = programs it could not start)");
    let sys = ctx.sys.clone();
    let drained = ctx.sched.run_until(120 * SECONDS, || sys.task_count() == before, |s, _| crate::tasks::idle(&sys, s));
    ensure!(drained, "{} tasks still running after the token ring should have finished", ctx.sys.task_count() - before);
    Ok(())
}

/// An unmodified Rust std program built for wasm32-wasip1
/// (`tests/wasi-check`): it checks arguments, environment, a bundled file,
/// sleep, clocks, randomness and an unimplemented call (ENOSYS), and
/// exits 42 when all pass. Its output is compared with the hosted run by
/// `cargo xtask test`.
fn wasi_std_program(ctx: &mut Ctx) -> TestResult {
    let bytes = ctx.bundle.and_then(|b| b.get("test/wasi_check.wasm")).ok_or("wasi_check.wasm missing")?;
    let id = ctx
        .sys
        .spawn_args(bytes, &["wasi-check", "hello-arg"], last_core(ctx))
        .map_err(|e| format!("spawn: {}", e.name()))?;
    let exits = wait(ctx, &[id], 60);
    ensure!(exits == [exited(42)], "wasi_check ended {exits:?} (see its output in the log)");
    Ok(())
}

/// A task spawning without end is refused at its quota (QUOTA_EXCEEDED),
/// while a healthy client/server pair keeps working.
fn spawn_bomb_stopped(ctx: &mut Ctx) -> TestResult {
    let limit = ctx.sys.config().max_children as i32;
    let before = ctx.sys.task_count();
    let bomb = spawn(ctx, "spawn_bomb", 0)?;
    let server = spawn(ctx, "echo_server", last_core(ctx))?;
    let client = spawn(ctx, "echo_client", 0)?;
    let exits = wait(ctx, &[bomb, client, server], 120);
    ensure!(exits[0] == exited(limit), "bomb ended {:?}, expected {limit} children then QUOTA_EXCEEDED", exits[0]);
    ensure!(exits[1..] == [exited(0), exited(0)], "healthy pair ended {:?}", &exits[1..]);
    // The bomb's children sleep half a second, then all must be gone.
    let sys = ctx.sys.clone();
    let drained = ctx.sched.run_until(60 * SECONDS, || sys.task_count() == before, |s, _| crate::tasks::idle(&sys, s));
    ensure!(drained, "{} of the bomb's children still alive", ctx.sys.task_count() - before);
    Ok(())
}

/// Eight memory hogs (each allowed 16 MiB, 128 MiB together) against the
/// shared budget (half the kernel heap, about 61 MiB here): the budget is
/// never exceeded at any moment, the kernel survives, at least one hog is
/// refused below its own limit, and every byte comes back.
fn memory_hogs_share_budget(ctx: &mut Ctx) -> TestResult {
    let budget = ctx.sys.config().total_memory_bytes;
    let per_task_pages = (ctx.sys.config().max_memory_bytes / 65536) as i32;
    let before = ctx.sys.memory_in_use();
    let cores = ctx.sys.cores() as i32;
    let mut ids = Vec::new();
    for i in 0..8 {
        ids.push(spawn(ctx, "memory_hog", i % cores)?);
    }
    let sys = ctx.sys.clone();
    let mut peak = 0;
    ctx.sched.run_until(
        120 * SECONDS,
        || {
            peak = peak.max(sys.memory_in_use());
            ids.iter().all(|id| sys.exit_of(*id).is_some())
        },
        |s, _| crate::tasks::idle(&sys, s),
    );
    let mut pages = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let exit = ctx.sys.exit_of(*id);
        pages
            .push(exit.filter(|e| e.reason == ExitReason::Exited).map(|e| e.code).ok_or(format!("hog {i}: {exit:?}"))?);
    }
    ensure!(peak <= budget, "peak {peak} bytes over the budget {budget}");
    ensure!(pages.iter().any(|p| *p < per_task_pages), "no hog was held back by the shared budget: {pages:?}");
    // (Other tests' tasks may end meanwhile, so "no more than before".)
    let after = ctx.sys.memory_in_use();
    ensure!(after <= before, "{} bytes not returned", after - before);
    crate::kprintln!("  memory hogs: peak {} MiB of a {} MiB budget; pages {pages:?}", peak >> 20, budget >> 20);
    echo_pair(ctx, 0, last_core(ctx))
}

/// The share of its undisturbed throughput the healthy workload must keep
/// beside any one kind of hostile task on its cores.
const MIN_HEALTHY_SHARE: u32 = 25; // percent

/// Calls answered in 500 ms by a healthy client/server pair (`rate_client`
/// on `client_core`, `rate_server` on `server_core`) while the `hostile`
/// programs run on the given cores. Waits for the hostile tasks to end too
/// and returns their exits.
fn healthy_rate(
    ctx: &mut Ctx,
    client_core: i32,
    server_core: i32,
    hostile: &[(&str, i32)],
) -> Result<(u32, Vec<Option<TaskExit>>), alloc::string::String> {
    let before = ctx.sys.task_count();
    let mut bad = Vec::new();
    for &(name, core) in hostile {
        bad.push(spawn(ctx, name, core)?);
    }
    let server = spawn(ctx, "rate_server", server_core)?;
    let client = spawn(ctx, "rate_client", client_core)?;
    let exits = wait(ctx, &[client, server], 60);
    let calls = match exits[0] {
        Some(TaskExit { code, reason: ExitReason::Exited }) if code > 0 && code < 1_000_000 - 20 => code as u32,
        other => return Err(format!("healthy client ended {other:?}")),
    };
    ensure!(exits[1] == exited(0), "healthy server ended {:?}", exits[1]);
    let bad_exits = wait(ctx, &bad, 60);
    // Children of a spawn bomb outlive it briefly: the next round starts
    // from a quiet system.
    let sys = ctx.sys.clone();
    let quiet = ctx.sched.run_until(60 * SECONDS, || sys.task_count() <= before, |s, _| crate::tasks::idle(&sys, s));
    ensure!(quiet, "{} hostile tasks still alive (exits {bad_exits:?})", ctx.sys.task_count() - before);
    Ok((calls, bad_exits))
}

/// Hostile tasks of each kind, one kind at a time, on the core of a
/// healthy client/server pair: the pair must keep at least
/// [`MIN_HEALTHY_SHARE`] percent of the calls it makes undisturbed, and
/// each hostile task must have met the error it deserved.
///
/// Everything shares one core on purpose: that measures the scheduler's
/// fairness (fuel slices, system-call fuel, direct hand-off, fair
/// receive) and not QEMU's. Spread over two busy virtual CPUs, TCG on a
/// 2-core host serialises them and every cross-core message can wait a
/// host time slice, which says nothing about the kernel.
///
/// The undisturbed rate is measured again right before each kind: QEMU's
/// speed moves with the host's load over the minute the test takes, and a
/// baseline from its start would blame that drift on the hostile tasks.
fn healthy_throughput_beside_each_kind(ctx: &mut Ctx) -> TestResult {
    let c = last_core(ctx);
    let s = c;
    let limit = ctx.sys.config().max_children as i32;
    let dead_target = exited(1000 - Status::DeadTarget.code());
    #[allow(clippy::type_complexity)]
    let kinds: [(&str, &[(&str, i32)], &dyn Fn(&[Option<TaskExit>]) -> bool); 6] = [
        ("infinite loop", &[("cpu_hog", c), ("cpu_hog", s)], &|e| e.iter().all(|x| *x == exited(0))),
        ("memory hog", &[("memory_hog", c), ("memory_hog", s)], &|e| {
            e.iter().all(|x| x.is_some_and(|x| x.reason == ExitReason::Exited))
        }),
        ("spawn bomb", &[("spawn_bomb", c)], &|e| e == [exited(limit)]),
        ("flood at the server", &[("flooder", c), ("flooder", s)], &|e| e.iter().all(|x| *x == exited(0))),
        ("forged handles and pointers", &[("forger", c), ("forger", s)], &|e| e.iter().all(|x| *x == exited(0))),
        ("server dying under its caller", &[("dying_server", s), ("echo_client", c)], &|e| {
            e[0].is_some_and(|x| x.reason == ExitReason::Unreachable) && e[1] == dead_target
        }),
    ];
    let mut report = alloc::string::String::from("calls/500 ms");
    let mut failures = Vec::new();
    for (kind, hostile, judged) in kinds {
        let (baseline, _) = healthy_rate(ctx, c, s, &[])?;
        ensure!(baseline > 0, "no calls answered undisturbed");
        let (calls, exits) = healthy_rate(ctx, c, s, hostile).map_err(|e| format!("{kind}: {e}"))?;
        let share = calls * 100 / baseline;
        report.push_str(&format!("; {kind}: {calls} of {baseline} ({share}%)"));
        if share < MIN_HEALTHY_SHARE {
            failures.push(format!("{kind}: {share}% of baseline"));
        }
        if !judged(&exits) {
            failures.push(format!("{kind}: hostile tasks ended {exits:?}"));
        }
    }
    crate::kprintln!("  healthy throughput (client and server on core {c}): {report}");
    ensure!(failures.is_empty(), "{} (need {MIN_HEALTHY_SHARE}%; {report})", failures.join("; "));
    Ok(())
}
