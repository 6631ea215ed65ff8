//! Kernel side of Wasm tasks: the bare-metal [`Platform`] (TSC clock, IPIs,
//! COM1), the one shared [`System`], and each core's scheduler loop.
//!
//! Every core runs [`core_loop`]: poll the scheduler; when it is idle,
//! announce sleep on the core's ring and halt with `sti; hlt`, which wakes
//! on the next IPI (a message arrived) or timer tick (a sleep may be over).
//! A mode may hook into that loop and the console ([`Hook`]); only bench
//! mode does.
//! The announce-then-halt order, with interrupts off in between, is the
//! race-free protocol described in `ipc/src/ring.rs`.
//!
//! Console input: COM1's interrupt wakes core 0 and rings the input
//! doorbell (`console.rs`); core 0's loop forwards it as an IPI to the core
//! whose task waits for input ([`Platform::console_wait`]), outside
//! interrupt context. That core's scheduler then sees
//! `console_ready` and serves the task; it checks that before it halts,
//! so input that came before the IPI is not missed either.

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use wasmos_bundle::Bundle;
use wasmos_ipc::abi::ExitReason;
use wasmos_sched::{Config, CoreScheduler, Platform, Poll, System};
use wasmos_smp::{clock, lapic, percpu, vectors};
use x86_64::instructions::interrupts;

struct BareMetal {
    bundle: Option<Bundle<'static>>,
    random: spin::Mutex<ChaCha20Rng>,
}

/// A seed from RDRAND when the CPU has it (KVM, real hardware), mixed with
/// TSC readings either way. QEMU's default TCG CPU has no RDRAND; then the
/// seed is only TSC timing jitter: fine for hash seeds and test data, not
/// for secrets. (Stated in the WASI docs, `sched/src/wasi.rs`.)
fn seed() -> [u8; 32] {
    let has_rdrand = core::arch::x86_64::__cpuid(1).ecx & (1 << 30) != 0;
    let mut seed = [0u8; 32];
    for chunk in seed.chunks_exact_mut(8) {
        let mut word = clock::rdtsc().rotate_left(17) ^ clock::now_ns();
        if has_rdrand {
            let mut r = 0u64;
            // SAFETY: CPUID says RDRAND exists; it has no memory effects.
            if unsafe { core::arch::x86_64::_rdrand64_step(&mut r) } == 1 {
                word ^= r;
            }
        }
        chunk.copy_from_slice(&word.to_le_bytes());
        core::hint::spin_loop();
    }
    seed
}

impl Platform for BareMetal {
    fn fill_random(&self, buf: &mut [u8]) {
        self.random.lock().fill_bytes(buf);
    }

    fn boot_file(&self, name: &str) -> Option<&[u8]> {
        self.bundle.and_then(|b| b.get(name))
    }

    fn now_ns(&self) -> u64 {
        clock::now_ns()
    }

    fn wake_core(&self, core: usize) {
        if let Some(cpu) = percpu::all().get(core) {
            lapic::send_ipi(cpu.apic_id, vectors::IPI);
        }
    }

    fn task_ended(&self, task: &str, code: i32, reason: ExitReason) {
        let code = if reason == ExitReason::Exited { code } else { KILLED_STATUS };
        let mut watch = EXIT_WATCH.lock();
        let Some(i) = watch.pending.iter().position(|name| name == task) else {
            return;
        };
        watch.pending.swap_remove(i);
        if watch.status == 0 {
            watch.status = code;
        }
        if watch.pending.is_empty() {
            crate::result!("program-exit {}", watch.status);
            crate::qemu::exit(crate::qemu::ExitCode::Success);
        }
    }

    fn console_read(&self, buf: &mut [u8]) -> Option<usize> {
        if crate::console::input_mode() == crate::console::InputMode::Off {
            // No console input on this boot (the test modes): at its end.
            return Some(0);
        }
        let dropped = crate::console::input_dropped();
        if DROPPED_SEEN.swap(dropped, Ordering::Relaxed) != dropped {
            log::warn!("console: {dropped} input bytes dropped so far (the input ring was full)");
        }
        crate::console::read_input(buf)
    }

    fn console_ready(&self) -> bool {
        crate::console::input_mode() == crate::console::InputMode::Off || crate::console::input_pending()
    }

    fn console_wait(&self, core: Option<usize>) {
        CONSOLE_WAITER.store(core.unwrap_or(NO_CORE), Ordering::Release);
    }

    fn console_write(&self, core: usize, task: &str, text: &[u8]) {
        if HOOK.get().is_some_and(|h| h.console(task, text)) {
            return;
        }
        let text = core::str::from_utf8(text).unwrap_or("<not UTF-8>");
        for line in text.trim_end_matches('\n').lines() {
            crate::console::log_fmt(format_args!("[cpu{core} task {task}] {line}\n"));
        }
    }
}

static SYSTEM: spin::Once<Arc<System>> = spin::Once::new();

/// The core whose task waits for console input ([`NO_CORE`]: none).
static CONSOLE_WAITER: AtomicUsize = AtomicUsize::new(NO_CORE);
const NO_CORE: usize = usize::MAX;
/// Dropped input bytes already reported.
static DROPPED_SEEN: AtomicU64 = AtomicU64::new(0);

/// Core 0 (where COM1 interrupts): passes the input doorbell on to the
/// core waiting for input, if it is another one.
fn forward_console_input(core: usize) {
    if core != 0 || !crate::console::take_input_doorbell() {
        return;
    }
    let waiter = CONSOLE_WAITER.load(Ordering::Acquire);
    if waiter != core
        && let Some(cpu) = percpu::all().get(waiter)
    {
        lapic::send_ipi(cpu.apic_id, vectors::IPI);
    }
}

/// The exit status reported for a program that was killed (a trap, out
/// of memory), as `wasmos-hosted` reports it.
const KILLED_STATUS: i32 = 101;

/// `exit_with=` (run mode): the programs whose end ends the machine, and
/// the status so far (the first non-zero exit code among them).
struct ExitWatch {
    pending: Vec<String>,
    status: i32,
}

static EXIT_WATCH: spin::Mutex<ExitWatch> = spin::Mutex::new(ExitWatch { pending: Vec::new(), status: 0 });

/// Leaves QEMU once every task named in `names` has ended, writing
/// `program-exit <status>` to the result channel first.
pub fn exit_with(names: &[&str]) {
    EXIT_WATCH.lock().pending = names.iter().map(|n| String::from(*n)).collect();
}

/// A mode's hook into every core's loop and into the console. Only bench
/// mode sets one (`bench.rs`: it runs ring-3 tasks on idle cores, keeps
/// cores polling for the busy-target workloads, and captures what tasks
/// print); without one the loop is "poll the scheduler, else halt".
pub trait Hook: Sync {
    /// `core`'s scheduler is idle. Returns true if the core must not halt
    /// now (the hook did work, or the core polls): the loop polls again.
    fn idle(&self, core: usize) -> bool;
    /// Work for `core` that no message on its ring announces, checked with
    /// interrupts off right before it halts.
    fn pending(&self, core: usize) -> bool;
    /// Task `task` printed `text`; true if the hook took it (not logged).
    fn console(&self, task: &str, text: &[u8]) -> bool;
}

static HOOK: spin::Once<&'static dyn Hook> = spin::Once::new();

/// Installs the mode's hook (once, before the mode starts work).
pub fn set_hook(hook: &'static dyn Hook) {
    HOOK.call_once(|| hook);
}

/// Creates the task system for `cores` cores. Runs once, on the BSP.
/// `bundle` is what the init task may read with `boot_file`.
pub fn init(cores: usize, config: Config, bundle: Option<Bundle<'static>>) -> &'static Arc<System> {
    let random = spin::Mutex::new(ChaCha20Rng::from_seed(seed()));
    SYSTEM.call_once(|| Arc::new(System::new(cores, config, Arc::new(BareMetal { bundle, random }))))
}

/// Starts `init.wasm` from the bundle; init starts everything else.
pub fn start_init(sys: &System, bundle: Option<Bundle<'static>>) {
    match bundle.and_then(|b| b.get("init.wasm")) {
        None => log::warn!("no init.wasm in the boot bundle: no tasks started"),
        Some(init) => match sys.spawn_init(init) {
            Ok(_) => log::info!("started init"),
            Err(e) => log::error!("init.wasm rejected: {}", e.name()),
        },
    }
}

/// The task system (after [`init`]).
pub fn system() -> Option<&'static Arc<System>> {
    SYSTEM.get()
}

/// Halts this core until something may have arrived for it (or returns
/// at once when the mode's [`Hook`] keeps the core busy).
pub fn idle(sys: &System, sched: &CoreScheduler) {
    let core = sched.core();
    let hook = HOOK.get();
    if hook.is_some_and(|h| h.idle(core)) {
        return;
    }
    interrupts::disable();
    // Core 0 must not halt on input it has not forwarded yet.
    let input = core == 0 && crate::console::input_doorbell_set();
    if sys.prepare_sleep(core) && !sched.has_work() && !hook.is_some_and(|h| h.pending(core)) && !input {
        // `sti; hlt`: an IPI that arrived since `prepare_sleep` is taken
        // right after `hlt` begins, so it still wakes us.
        interrupts::enable_and_hlt();
    } else {
        interrupts::enable();
    }
    sys.woke(core);
}

/// Application processors whose scheduler exists.
static SCHEDULERS_READY: AtomicUsize = AtomicUsize::new(0);

/// Waits (at most `timeout_ns`) until every application processor has
/// created its scheduler. Their start-up allocates (the heap may grow,
/// taking frames), so tests that count free frames must not run before.
pub fn wait_for_schedulers(cores: usize, timeout_ns: u64) {
    let deadline = wasmos_smp::clock::now_ns() + timeout_ns;
    while SCHEDULERS_READY.load(Ordering::Acquire) < cores.saturating_sub(1) && wasmos_smp::clock::now_ns() < deadline {
        // The APs notice the system at their next timer tick.
        interrupts::enable_and_hlt();
    }
}

/// This core's scheduler loop, forever. APs come here once online; they
/// wait (halted) until the BSP has created the system.
pub fn core_loop(core: usize) -> ! {
    let sys = loop {
        match system() {
            Some(sys) => break sys.clone(),
            None => interrupts::enable_and_hlt(),
        }
    };
    let mut sched = CoreScheduler::new(sys.clone(), core);
    SCHEDULERS_READY.fetch_add(1, Ordering::Release);
    loop {
        forward_console_input(core);
        if let Poll::Idle { .. } = sched.poll() {
            idle(&sys, &sched);
        }
    }
}
