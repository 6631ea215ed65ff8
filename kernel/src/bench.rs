//! The bench mode: every workload on the Wasm path and on the native
//! ring-3 path, in the same boot, reported on the result channel in the
//! format of `bench/src/protocol.rs`.
//!
//! How each path is timed, and why:
//! - Native tasks time themselves in ring 3 with `lfence; rdtsc` before
//!   and `rdtscp; lfence` after each operation (`ring3/programs.rs`).
//! - Wasm tasks time themselves with the ABI's `time_now_ns` (a host call
//!   that reads the TSC and converts it to ns). That is what a Wasm
//!   program can do, it brackets exactly the operation (a system call as
//!   the program sees it, interpreter dispatch included), and its own cost
//!   is measured and reported as `clock_read`, next to the native
//!   path's, so every figure can be read with its timing overhead in mind.
//!   Samples reach the kernel as binary records on the task's console,
//!   which this mode captures instead of printing.
//! - Spawn is timed by the kernel around the whole spawn-run-exit cycle,
//!   the same way for both paths.
//! - The null system call is timed in batches (`null_batch` calls per
//!   sample) so that the clock's cost is spread over many calls.
//!
//! Each run's first tenth of samples is dropped as warm-up
//! (`wasmos_bench::workloads::warmup`). A full run repeats every workload
//! in rounds that alternate the paths (`Sizes::rounds`), so that a noisy
//! moment on the host (QEMU's vCPUs are host threads) hits both paths
//! alike; samples are pooled. Timer interrupts (100 Hz) stay on for both
//! paths; they show in the tails (p99, max), not the medians.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::arch::asm;
use core::sync::atomic::{AtomicBool, Ordering};

use wasmos_bench::protocol::{Path, ResultLine, Start, Unit, sample_record};
use wasmos_bench::stats::summarize;
use wasmos_bench::workloads::{self, Sizes, warmup};
use wasmos_ipc::abi::ExitReason;
use wasmos_ipc::ids::TaskId;
use wasmos_smp::clock;

use crate::ktest::Ctx;
use crate::ring3::{self, Program};
use crate::{result, tasks};

/// Bench mode's hook into every core's loop and the console
/// ([`tasks::Hook`]), so the loop every other mode runs knows nothing of
/// benchmarks.
struct BenchHook;

static HOOK: BenchHook = BenchHook;

impl tasks::Hook for BenchHook {
    fn idle(&self, core: usize) -> bool {
        if ring3::has_pending(core) {
            // Native tasks were started on this core: run them to the end.
            ring3::run_core();
            return true;
        }
        if poll_idle(core) {
            core::hint::spin_loop();
            return true;
        }
        false
    }

    fn pending(&self, core: usize) -> bool {
        ring3::has_pending(core)
    }

    fn console(&self, task: &str, text: &[u8]) -> bool {
        if !CAPTURE.load(Ordering::Relaxed) {
            return false;
        }
        CAPTURED.lock().entry(String::from(task)).or_default().extend_from_slice(text);
        true
    }
}

/// Console capture: what tasks write is kept per task name instead of
/// printed, because the bench programs report their timing samples as
/// binary records on their console (see `bench/src/programs.rs`), and
/// because serial output would disturb the timings.
static CAPTURE: AtomicBool = AtomicBool::new(false);
static CAPTURED: spin::Mutex<BTreeMap<String, Vec<u8>>> = spin::Mutex::new(BTreeMap::new());

/// Takes what task `name` wrote while capture was on.
fn take_captured(name: &str) -> Vec<u8> {
    CAPTURED.lock().remove(name).unwrap_or_default()
}

/// Cores that poll instead of halting when idle (the "busy target"
/// workloads: no IPI is needed to wake a core that never sleeps).
static POLL_IDLE: [AtomicBool; wasmos_smp::MAX_CPUS] = [const { AtomicBool::new(false) }; wasmos_smp::MAX_CPUS];

fn set_poll_idle(core: usize, poll: bool) {
    POLL_IDLE[core].store(poll, Ordering::Relaxed);
}

/// Whether `core` polls when idle (read by the ring-3 scheduler too).
pub fn poll_idle(core: usize) -> bool {
    POLL_IDLE[core].load(Ordering::Relaxed)
}

/// How long one workload may take before the run is declared stuck.
const WORKLOAD_TIMEOUT_NS: u64 = 300 * 1_000_000_000;

type Outcome = Result<(), String>;

/// Reads the TSC after everything before it has completed.
fn tsc_begin() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: LFENCE and RDTSC only read the time-stamp counter.
    unsafe {
        asm!("lfence", "rdtsc", "lfence", out("eax") lo, out("edx") hi, options(nostack, nomem, preserves_flags))
    };
    (hi as u64) << 32 | lo as u64
}

/// Reads the TSC once everything before it has completed, and keeps
/// what follows from starting early: `rdtscp; lfence`, or `lfence;
/// rdtsc; lfence` on a CPU without RDTSCP.
fn tsc_end() -> u64 {
    if !*RDTSCP.get().unwrap_or(&false) {
        return tsc_begin();
    }
    let (lo, hi): (u32, u32);
    // SAFETY: RDTSCP (present: checked in `run`) and LFENCE only read
    // the time-stamp counter and IA32_TSC_AUX.
    unsafe {
        asm!("rdtscp", "lfence", out("eax") lo, out("edx") hi, out("ecx") _, options(nostack, nomem, preserves_flags))
    };
    (hi as u64) << 32 | lo as u64
}

static RDTSCP: spin::Once<bool> = spin::Once::new();

/// Whether the CPU has RDTSCP (CPUID 0x8000_0001, EDX bit 27).
pub fn has_rdtscp() -> bool {
    *RDTSCP.call_once(|| {
        core::arch::x86_64::__cpuid(0x8000_0000).eax >= 0x8000_0001
            && core::arch::x86_64::__cpuid(0x8000_0001).edx & (1 << 27) != 0
    })
}

struct Bench<'a> {
    ctx: &'a mut Ctx,
    sizes: Sizes,
    cores: usize,
    planned: u32,
    done: u32,
    runs: u32,
}

/// Runs every workload; returns whether all of them produced results.
pub fn run(ctx: &mut Ctx, quick: bool) -> bool {
    let cores = ctx.sys.cores();
    let sizes = Sizes::new(quick);
    // Every ns figure depends on the TSC frequency: measure it again,
    // more carefully than the boot did (nothing runs yet, so restarting
    // the clock's epoch here disturbs no one).
    let boot_hz = clock::tsc_hz();
    let hz = crate::smp::calibrate_tsc_median(5);
    clock::set_tsc_hz(hz);
    log::info!(
        "bench: TSC {} MHz (median of 5 x 50 ms against the PIT; boot said {} MHz)",
        hz / 1_000_000,
        boot_hz / 1_000_000
    );
    let rdtscp = has_rdtscp();
    let steps = sizes.core_steps.iter().filter(|&&n| n <= cores).count() as u32;
    // clock, null, crc32, same-core (hand-off and queued), 2 x cross per
    // other core, ctx, spawn, producers and pairs per step; each on two
    // paths.
    let planned = 2 * (7 + 2 * (cores as u32 - 1) + 2 * steps);
    result!("{}", Start { tsc_hz: clock::tsc_hz(), cpus: cores as u32, quick, rdtscp, planned, rounds: sizes.rounds });
    if !rdtscp {
        log::warn!("no RDTSCP: timing with lfence; rdtsc instead");
    }
    ring3::init();
    tasks::set_hook(&HOOK);
    CAPTURE.store(true, Ordering::Relaxed);
    let mut b = Bench { ctx, sizes, cores, planned, done: 0, runs: 0 };
    let outcome = b.all();
    CAPTURE.store(false, Ordering::Relaxed);
    match outcome {
        Ok(()) => {
            result!("bench-done results={}", b.done);
            true
        }
        Err(why) => {
            result!("bench-fail {}", why.replace('\n', " "));
            crate::kprintln!("bench failed: {why}");
            false
        }
    }
}

impl Bench<'_> {
    fn all(&mut self) -> Outcome {
        let s = self.sizes;
        self.both(workloads::CLOCK_READ, |b, p| b.clock(p))?;
        self.both(workloads::NULL_SYSCALL, |b, p| b.null_syscall(p))?;
        self.both(workloads::CRC32, |b, p| b.crc32(p))?;
        self.both(workloads::RT_SAME_CORE, |b, p| b.round_trip(p, 0, false, s.rt_same))?;
        let depth = self.ctx.sys.handoff_depth();
        self.ctx.sys.set_handoff_depth(0);
        let queued = self.both(workloads::RT_SAME_CORE_QUEUED, |b, p| b.round_trip(p, 0, false, s.rt_same));
        self.ctx.sys.set_handoff_depth(depth);
        queued?;
        for busy in [false, true] {
            for k in 1..self.cores {
                self.both(&workloads::rt_cross(busy, k), |b, p| b.round_trip(p, k, busy, s.rt_cross))?;
            }
        }
        self.both(workloads::CTX_SWITCH, |b, p| b.ctx_switch(p))?;
        self.both(workloads::SPAWN, |b, p| b.spawn(p))?;
        let cores = self.cores;
        for &n in s.core_steps.iter().filter(|&&n| n <= cores) {
            self.both(&workloads::producers(n), |b, p| b.throughput(p, n, false))?;
        }
        for &n in s.core_steps.iter().filter(|&&n| n <= cores) {
            self.both(&workloads::pairs(n), |b, p| b.throughput(p, n, true))?;
        }
        Ok(())
    }

    /// Runs `f` for the Wasm path, then the native path, `rounds` times
    /// (alternating), pools each path's samples and reports both.
    fn both(&mut self, name: &str, mut f: impl FnMut(&mut Self, Path) -> Result<Report, String>) -> Outcome {
        let mut pooled: [Option<Report>; 2] = [None, None];
        for _ in 0..self.sizes.rounds {
            for (i, path) in [Path::Wasm, Path::Native].into_iter().enumerate() {
                self.runs += 1;
                result!("bench-progress {}/{} {name} {}", self.runs, self.planned * self.sizes.rounds, path.name());
                let mut report = f(self, path).map_err(|e| format!("{name} ({}): {e}", path.name()))?;
                CAPTURED.lock().clear();
                if report.throughput.is_none() {
                    report.samples.drain(..warmup(report.samples.len()));
                }
                match &mut pooled[i] {
                    None => pooled[i] = Some(report),
                    Some(p) => p.pool(report),
                }
            }
        }
        for (i, path) in [Path::Wasm, Path::Native].into_iter().enumerate() {
            self.emit(name, path, pooled[i].take().expect("at least one round"))?;
        }
        Ok(())
    }

    fn emit(&mut self, name: &str, path: Path, mut r: Report) -> Outcome {
        let summary = summarize(&mut r.samples).ok_or_else(|| format!("{name}: no samples"))?;
        let line = ResultLine {
            workload: name,
            path,
            cores: r.cores,
            unit: r.unit,
            batch: r.batch,
            summary,
            throughput: r.throughput,
        };
        result!("{line}");
        let per_op = summary.median as f64 / r.batch as f64;
        crate::kprintln!(
            "  {name:<28} {:<6} median {per_op:>10.1} {} (n={})",
            path.name(),
            r.unit.name(),
            summary.iterations
        );
        self.done += 1;
        Ok(())
    }

    // ---- the workloads -------------------------------------------------

    fn clock(&mut self, path: Path) -> Result<Report, String> {
        let n = self.sizes.clock;
        match path {
            Path::Native => self.native_single(Program::Clock, 0, n, 0),
            _ => self.wasm_single("clock", &[n], 0),
        }
    }

    fn null_syscall(&mut self, path: Path) -> Result<Report, String> {
        let (n, batch) = (self.sizes.null_samples, self.sizes.null_batch);
        let mut r = match path {
            Path::Native => self.native_single(Program::Null, batch as u64, n, 0)?,
            // The Wasm loop makes 10 calls per iteration.
            _ => self.wasm_single("null", &[n, batch / 10], 0)?,
        };
        r.batch = batch as u64;
        Ok(r)
    }

    /// Interpreter speed on its own: CRC-32 over a fixed buffer, timed
    /// per pass, reported per byte. Both programs build the table and the
    /// buffer themselves and are checked against the reference CRC (the
    /// Wasm program exits 1 on a mismatch; the native one exits with its
    /// CRC).
    fn crc32(&mut self, path: Path) -> Result<Report, String> {
        let (n, len) = (self.sizes.crc, workloads::CRC_BYTES);
        let want = workloads::crc32_reference(len as usize);
        let mut r = match path {
            Path::Native => {
                // Samples, then the table (1 KiB), then the buffer.
                let pages = (n as u64 * 8 + 1024 + len as u64).div_ceil(crate::memory::PAGE_SIZE);
                let task = ring3::task(0, Program::Crc32, len as u64, n as u64, pages).map_err(|e| format!("{e:?}"))?;
                ring3::start(task, 0);
                let tasks = self.native_wait(&[0])?;
                if tasks[0].exit_code != want as u64 {
                    return Err(format!("native CRC {:#x}, expected {want:#x}", tasks[0].exit_code));
                }
                Report::cycles(tasks[0].samples(n as usize))
            }
            _ => self.wasm_single("crc32", &[n, len, want], 0)?,
        };
        r.batch = len as u64;
        Ok(r)
    }

    fn round_trip(&mut self, path: Path, server_core: usize, busy: bool, n: u32) -> Result<Report, String> {
        if busy {
            set_poll_idle(0, true);
            set_poll_idle(server_core, true);
        }
        let r = self.round_trip_inner(path, server_core, n);
        set_poll_idle(0, false);
        set_poll_idle(server_core, false);
        let mut r = r?;
        r.cores = if server_core == 0 { 1 } else { 2 };
        Ok(r)
    }

    fn round_trip_inner(&mut self, path: Path, server_core: usize, n: u32) -> Result<Report, String> {
        match path {
            Path::Native => {
                let server = ring3::task(1, Program::Server, 0, 0, 1).map_err(|e| format!("{e:?}"))?;
                let client = ring3::task(0, Program::Client, 1, n as u64, ring3::pages_for(n as u64))
                    .map_err(|e| format!("{e:?}"))?;
                ring3::start(server, server_core);
                ring3::start(client, 0);
                let tasks = self.native_wait(&[0, 1])?;
                Ok(Report::cycles(tasks[0].samples(n as usize)))
            }
            _ => {
                self.wasm_tasks(&[
                    ("echo_server", "bench.server", &[], server_core),
                    ("echo_client", "bench.client", &[n], 0),
                ])?;
                Ok(Report::ns(self.captured("bench.client")?))
            }
        }
    }

    fn ctx_switch(&mut self, path: Path) -> Result<Report, String> {
        let n = self.sizes.ctx_switch;
        let mut r = match path {
            Path::Native => {
                let a = ring3::task(0, Program::Yield, 0, n as u64, ring3::pages_for(n as u64))
                    .map_err(|e| format!("{e:?}"))?;
                let b = ring3::task(1, Program::Yield, 0, n as u64, ring3::pages_for(n as u64))
                    .map_err(|e| format!("{e:?}"))?;
                ring3::start(a, 0);
                ring3::start(b, 0);
                let tasks = self.native_wait(&[0, 1])?;
                Report::cycles(tasks[0].samples(n as usize))
            }
            _ => {
                self.wasm_tasks(&[("yield", "bench.yield_a", &[n], 0), ("yield", "bench.yield_b", &[n], 0)])?;
                Report::ns(self.captured("bench.yield_a")?)
            }
        };
        // A sample is a switch to the other task and one back.
        r.batch = 2;
        Ok(r)
    }

    fn spawn(&mut self, path: Path) -> Result<Report, String> {
        let n = self.sizes.spawn as usize;
        let nop = self.bundle_file("bench/nop.wasm")?;
        let mut samples = Vec::with_capacity(n);
        for _ in 0..n {
            let t0 = tsc_begin();
            match path {
                Path::Native => {
                    let task = ring3::task(0, Program::Nop, 0, 0, 1).map_err(|e| format!("{e:?}"))?;
                    ring3::start(task, 0);
                    drop(self.native_wait(&[0])?);
                }
                _ => {
                    let reaped_before = self.ctx.sys.lifetime_counts().1;
                    let id = self.ctx.sys.spawn(nop, "bench.nop", 0).map_err(|e| e.name().to_string())?;
                    self.wasm_wait(&[id], reaped_before)?;
                }
            }
            samples.push(tsc_end() - t0);
        }
        Ok(Report::cycles(samples))
    }

    /// One-way messages into consumers on core 0 (`pairs` false: from `n`
    /// producer cores 1, 2, ... n, wrapping to 0 when n = cores) or `n`
    /// pairs, consumer and producer on each core 0..n (`pairs` true).
    /// Consumers record timestamps (start, then after every batch): the
    /// samples are the batches' durations, the rate is the messages of the
    /// timed batches over the wall time from the first timed batch's start
    /// to the last one's end, across all consumers.
    fn throughput(&mut self, path: Path, n: usize, pairs: bool) -> Result<Report, String> {
        let (m, batch) = (self.sizes.msgs_per_producer, self.sizes.tput_batch);
        let consumers = if pairs { n } else { 1 };
        let producers = if pairs { 1 } else { n };
        let per_consumer = m * producers as u32;
        let batches = (per_consumer / batch) as usize;
        let core_of = |c: usize, i: usize| if pairs { c } else { (i + 1) % self.cores };
        let mut stamps: Vec<Vec<u64>> = Vec::new();
        let unit = match path {
            Path::Native => {
                // Consumer c is task 2c; its producers follow (pairs: 2c+1;
                // otherwise 1..=n).
                let mut ids = Vec::new();
                for c in 0..consumers {
                    let id = (2 * c) as u32;
                    let t = ring3::task(
                        id,
                        Program::Consumer,
                        batch as u64,
                        per_consumer as u64,
                        ring3::pages_for(batches as u64 + 1),
                    )
                    .map_err(|e| format!("{e:?}"))?;
                    ring3::start(t, c);
                    ids.push(id);
                }
                for c in 0..consumers {
                    for i in 0..producers {
                        let id = if pairs { 2 * c + 1 } else { 1 + i } as u32;
                        let t = ring3::task(id, Program::Producer, (2 * c) as u64, m as u64, 1)
                            .map_err(|e| format!("{e:?}"))?;
                        ring3::start(t, core_of(c, i));
                        ids.push(id);
                    }
                }
                let tasks = self.native_wait(&ids)?;
                stamps.extend(tasks[..consumers].iter().map(|t| t.samples(batches + 1)));
                Unit::Cycles
            }
            _ => {
                let mut list: Vec<(&str, String, Vec<String>, usize)> = Vec::new();
                for c in 0..consumers {
                    let args = alloc::vec![format!("sink{c}"), per_consumer.to_string(), batch.to_string()];
                    list.push(("consumer", format!("bench.consumer{c}"), args, c));
                }
                for c in 0..consumers {
                    for i in 0..producers {
                        let args = alloc::vec![format!("sink{c}"), m.to_string()];
                        list.push(("producer", format!("bench.producer{c}.{i}"), args, core_of(c, i)));
                    }
                }
                self.wasm_spawn_wait(&list)?;
                for c in 0..consumers {
                    stamps.push(self.captured(&format!("bench.consumer{c}"))?);
                }
                Unit::Ns
            }
        };
        let (mut samples, mut msgs, mut start, mut end) = (Vec::new(), 0u64, u64::MAX, 0u64);
        for ts in &stamps {
            if ts.len() != batches + 1 {
                return Err(format!("a consumer recorded {} timestamps, expected {}", ts.len(), batches + 1));
            }
            let w = warmup(batches);
            start = start.min(ts[w]);
            end = end.max(ts[batches]);
            samples.extend(ts[w..].windows(2).map(|p| p[1].saturating_sub(p[0])));
            msgs += ((batches - w) * batch as usize) as u64;
        }
        let wall = end.saturating_sub(start);
        let wall_ns = match unit {
            Unit::Ns => wall,
            Unit::Cycles => clock::cycles_to_ns(wall, clock::tsc_hz()),
        };
        let cores = if pairs { n } else { n + 1 }.min(self.cores) as u32;
        Ok(Report { samples, unit, batch: batch as u64, cores, throughput: Some((msgs, wall_ns)) })
    }

    // ---- helpers --------------------------------------------------------

    /// One native task with the given program on core `core`, its samples.
    fn native_single(&mut self, program: Program, r12: u64, n: u32, core: usize) -> Result<Report, String> {
        let task = ring3::task(0, program, r12, n as u64, ring3::pages_for(n as u64)).map_err(|e| format!("{e:?}"))?;
        ring3::start(task, core);
        let tasks = self.native_wait(&[0])?;
        Ok(Report::cycles(tasks[0].samples(n as usize)))
    }

    /// Runs core 0's native tasks (if any), then waits until all `ids`
    /// exited; returns them in that order.
    fn native_wait(&mut self, ids: &[u32]) -> Result<Vec<ring3::Task>, String> {
        ring3::run_core();
        let deadline = clock::now_ns() + WORKLOAD_TIMEOUT_NS;
        loop {
            if let Some(tasks) = ring3::take_exited(ids) {
                return Ok(tasks);
            }
            if clock::now_ns() > deadline {
                return Err(format!("native tasks {ids:?} did not all exit in time"));
            }
            if ring3::has_pending(0) {
                ring3::run_core();
            }
            // The other cores are working: sleep until the next tick
            // rather than compete with them for the host's CPUs.
            x86_64::instructions::hlt();
        }
    }

    fn wasm_single(&mut self, program: &str, args: &[u32], core: usize) -> Result<Report, String> {
        self.wasm_tasks(&[(program, "bench.single", args, core)])?;
        Ok(Report::ns(self.captured("bench.single")?))
    }

    /// Spawns Wasm bench programs (bundle `bench/<program>.wasm`, task
    /// name, numeric arguments, core) and waits until all exited with 0.
    fn wasm_tasks(&mut self, list: &[(&str, &str, &[u32], usize)]) -> Result<(), String> {
        let list: Vec<(&str, String, Vec<String>, usize)> = list
            .iter()
            .map(|(p, name, args, core)| (*p, String::from(*name), args.iter().map(|a| a.to_string()).collect(), *core))
            .collect();
        self.wasm_spawn_wait(&list)
    }

    fn wasm_spawn_wait(&mut self, list: &[(&str, String, Vec<String>, usize)]) -> Result<(), String> {
        let reaped_before = self.ctx.sys.lifetime_counts().1;
        let mut ids = Vec::new();
        for (program, name, args, core) in list {
            let bytes = self.bundle_file(&format!("bench/{program}.wasm"))?;
            let mut argv: Vec<&str> = alloc::vec![name.as_str()];
            argv.extend(args.iter().map(String::as_str));
            ids.push(
                self.ctx
                    .sys
                    .spawn_args(bytes, &argv, *core as i32)
                    .map_err(|e| format!("spawning {program}: {}", e.name()))?,
            );
        }
        self.wasm_wait(&ids, reaped_before)
    }

    fn wasm_wait(&mut self, ids: &[TaskId], reaped_before: u64) -> Outcome {
        let sys = self.ctx.sys.clone();
        // Checked between every two slices on core 0: one atomic load (only
        // bench tasks run in this mode), not a lock, to stay out of the way.
        // The count rises when a reap starts and the exit is recorded a
        // little later, so the exits are looked up once the count is there.
        let target = reaped_before + ids.len() as u64;
        let done = || sys.lifetime_counts().1 >= target && ids.iter().all(|id| sys.exit_of(*id).is_some());
        if !self.ctx.sched.run_until(WORKLOAD_TIMEOUT_NS, done, |s, _| tasks::idle(&sys, s)) {
            return Err(format!(
                "{} Wasm tasks still running after the timeout",
                ids.iter().filter(|id| sys.exit_of(**id).is_none()).count()
            ));
        }
        for id in ids {
            let exit = sys.exit_of(*id).expect("checked above");
            if exit.reason != ExitReason::Exited || exit.code != 0 {
                return Err(format!("a Wasm task ended: {} (code {})", exit.reason.name(), exit.code));
            }
        }
        Ok(())
    }

    fn captured(&self, task: &str) -> Result<Vec<u64>, String> {
        sample_record(&take_captured(task)).ok_or_else(|| format!("{task} wrote no sample record"))
    }

    fn bundle_file(&self, name: &str) -> Result<&'static [u8], String> {
        self.ctx.bundle.and_then(|b| b.get(name)).ok_or_else(|| format!("{name} missing from the boot bundle"))
    }
}

/// Raw samples of one workload on one path.
struct Report {
    samples: Vec<u64>,
    unit: Unit,
    batch: u64,
    cores: u32,
    /// Throughput workloads: messages timed, and the wall time (ns).
    throughput: Option<(u64, u64)>,
}

impl Report {
    /// Adds another round's samples (and messages and wall time).
    fn pool(&mut self, other: Report) {
        self.samples.extend(other.samples);
        if let (Some((m, w)), Some((m2, w2))) = (self.throughput, other.throughput) {
            self.throughput = Some((m + m2, w + w2));
        }
    }

    fn cycles(samples: Vec<u64>) -> Report {
        Report { samples, unit: Unit::Cycles, batch: 1, cores: 1, throughput: None }
    }

    fn ns(samples: Vec<u64>) -> Report {
        Report { unit: Unit::Ns, ..Report::cycles(samples) }
    }
}
