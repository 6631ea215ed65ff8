//! Kernel side of Wasm tasks: the bare-metal [`Platform`] (TSC clock, IPIs,
//! COM1), the one shared [`System`], and each core's scheduler loop.
//!
//! Every core runs [`core_loop`]: poll the scheduler; when it is idle,
//! announce sleep on the core's ring and halt with `sti; hlt`, which wakes
//! on the next IPI (a message arrived) or timer tick (a sleep may be over).
//! The announce-then-halt order, with interrupts off in between, is the
//! race-free protocol described in `ipc/src/ring.rs`.

use alloc::sync::Arc;

use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use wasmos_bundle::Bundle;
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

    fn console_write(&self, core: usize, task: &str, text: &[u8]) {
        let text = core::str::from_utf8(text).unwrap_or("<not UTF-8>");
        for line in text.trim_end_matches('\n').lines() {
            crate::console::log_fmt(format_args!("[cpu{core} task {task}] {line}\n"));
        }
    }
}

static SYSTEM: spin::Once<Arc<System>> = spin::Once::new();

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

/// Halts this core until something may have arrived for it.
pub fn idle(sys: &System, sched: &CoreScheduler) {
    let core = sched.core();
    interrupts::disable();
    if sys.prepare_sleep(core) && !sched.has_work() {
        // `sti; hlt`: an IPI that arrived since `prepare_sleep` is taken
        // right after `hlt` begins, so it still wakes us.
        interrupts::enable_and_hlt();
    } else {
        interrupts::enable();
    }
    sys.woke(core);
}

/// Application processors whose scheduler exists (see [`wait_for_cores`]).
static APS_READY: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);

/// Waits until every application processor has created its scheduler, so
/// that what follows (the in-kernel tests, which count frames and heap
/// bytes) starts from a quiet machine: an AP setting up its scheduler
/// allocates, and that allocation could otherwise land in the middle of a
/// test's before/after count.
pub fn wait_for_cores(cores: usize) {
    while APS_READY.load(core::sync::atomic::Ordering::Acquire) + 1 < cores {
        core::hint::spin_loop();
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
    if core != 0 {
        APS_READY.fetch_add(1, core::sync::atomic::Ordering::Release);
    }
    loop {
        if let Poll::Idle { .. } = sched.poll() {
            idle(&sys, &sched);
        }
    }
}
