//! Run a function on another core and wait for its result.
//!
//! Each core has one [`Mailbox`]. A caller takes the target's mailbox lock,
//! writes the request, sends an IPI, and spins until the target's IPI
//! handler ([`serve`]) has run the function and published the result.
//! This is the kernel's tool for per-core set-up and for tests that need
//! code to run on a particular core (the IPI matrix); the IPC fast path
//! does not use it.
//!
//! Rules: the function runs in interrupt context on the target (interrupts
//! off), so it must be short and must not wait for the caller. The caller
//! must have interrupts enabled, or two cores calling each other at once
//! would deadlock.

use core::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

use spin::Mutex;

use crate::{clock, lapic, percpu, vectors};

const IDLE: u8 = 0;
const PENDING: u8 = 1;
const DONE: u8 = 2;

pub struct Mailbox {
    lock: Mutex<()>,
    state: AtomicU8,
    func: AtomicUsize,
    arg: AtomicUsize,
    result: AtomicUsize,
}

impl Mailbox {
    pub const fn new() -> Self {
        Mailbox {
            lock: Mutex::new(()),
            state: AtomicU8::new(IDLE),
            func: AtomicUsize::new(0),
            arg: AtomicUsize::new(0),
            result: AtomicUsize::new(0),
        }
    }
}

impl Default for Mailbox {
    fn default() -> Self {
        Self::new()
    }
}

/// Why a remote call did not happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoteError {
    NoSuchCpu,
    Offline,
    /// The target did not answer within the timeout (it may be wedged
    /// with interrupts disabled).
    TimedOut,
}

/// Runs `func(arg)` on core `cpu` and returns its result.
pub fn run_on(cpu: usize, func: fn(usize) -> usize, arg: usize, timeout_ms: u64) -> Result<usize, RemoteError> {
    let target = percpu::all().get(cpu).ok_or(RemoteError::NoSuchCpu)?;
    if percpu::try_current().map(|c| c.cpu_index as usize) == Some(cpu) {
        return Ok(func(arg));
    }
    if !target.online.load(Ordering::Acquire) {
        return Err(RemoteError::Offline);
    }
    debug_assert!(x86_64::instructions::interrupts::are_enabled(), "run_on with interrupts off");
    let mbox = &target.mailbox;
    let _guard = mbox.lock.lock();
    mbox.func.store(func as *const () as usize, Ordering::Relaxed);
    mbox.arg.store(arg, Ordering::Relaxed);
    mbox.state.store(PENDING, Ordering::Release);
    lapic::send_ipi(target.apic_id, vectors::IPI);
    let deadline = clock::now_ns() + timeout_ms * 1_000_000;
    loop {
        if mbox.state.load(Ordering::Acquire) == DONE {
            mbox.state.store(IDLE, Ordering::Relaxed);
            return Ok(mbox.result.load(Ordering::Relaxed));
        }
        if clock::now_ns() > deadline {
            // Withdraw the request if it has not started; if it has, it
            // will finish and mark DONE, and the next caller resets it.
            let _ = mbox.state.compare_exchange(PENDING, IDLE, Ordering::AcqRel, Ordering::Acquire);
            return Err(RemoteError::TimedOut);
        }
        core::hint::spin_loop();
    }
}

/// Runs a pending request addressed to `cpu` (called from its IPI handler).
pub(crate) fn serve(cpu: &percpu::PerCpu) {
    let mbox = &cpu.mailbox;
    if mbox.state.load(Ordering::Acquire) != PENDING {
        return;
    }
    let raw = mbox.func.load(Ordering::Relaxed);
    // SAFETY: `func` was stored from a `fn(usize) -> usize` by `run_on`
    // before it published PENDING with Release; we read it after an
    // Acquire load of PENDING.
    let func: fn(usize) -> usize = unsafe { core::mem::transmute::<usize, fn(usize) -> usize>(raw) };
    let result = func(mbox.arg.load(Ordering::Relaxed));
    mbox.result.store(result, Ordering::Relaxed);
    mbox.state.store(DONE, Ordering::Release);
}
