//! The native tasks' scheduler (one per core) and their system calls.
//!
//! Same semantics as the Wasm ABI's IPC, so that the two paths do the
//! same work per message: `call` blocks the caller until the reply; the
//! callee `recv`s (blocking when its inbox is empty) and `reply`s (which
//! never blocks); `send` is one-way and never blocks (`WOULD_BLOCK` once
//! [`INBOX_CAPACITY`] messages are queued for the target, counted across
//! cores); `yield` goes to the back of the ready queue. A task that a
//! message unblocks goes to the *front*, as in `sched/src/core.rs`, so a
//! call runs the callee next and its reply runs the caller next.
//!
//! Messages are one word, carried in registers (a short IPC, like seL4's
//! fastpath); the Wasm path copies a 4-byte payload between linear
//! memories.
//!
//! Cross-core messages travel through a per-core lock-free ring
//! ([`wasmos_ipc::ring::Mailbox`], the same type and wake-up protocol as
//! the Wasm path), with an IPI only when the target core announced that it
//! is going to sleep. The task directory is a fixed array of atomics, so
//! no lock is taken on the message path.
//!
//! Each core's state is touched only by that core: from system calls
//! (interrupts off, FMASK) and from [`run_core`] with interrupts off.
//! Tasks are never preempted by the timer; they block or yield in every
//! iteration of every benchmark.

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU32, Ordering};

use wasmos_ipc::ring::{Full, Mailbox, PushOutcome};
use wasmos_smp::{MAX_CPUS, lapic, percpu, vectors};
use x86_64::instructions::interrupts;
use x86_64::registers::control::{Cr3, Cr3Flags};
use x86_64::structures::paging::PhysFrame;

use super::entry::{self, Regs};
use super::space::AddressSpace;

pub const SYS_NULL: u64 = 0;
pub const SYS_CALL: u64 = 1;
pub const SYS_RECV: u64 = 2;
pub const SYS_REPLY: u64 = 3;
pub const SYS_SEND: u64 = 4;
pub const SYS_YIELD: u64 = 5;
pub const SYS_EXIT: u64 = 6;

/// Results, with the Wasm ABI's codes.
const WOULD_BLOCK: u64 = -3i64 as u64;
const DEAD_TARGET: u64 = -4i64 as u64;
const INVALID_ARGUMENT: u64 = -13i64 as u64;

/// Task ids are indexes into a fixed directory.
pub const MAX_TASKS: usize = 64;
/// One-way messages that may be queued for one task (as `abi::INBOX_CAPACITY`).
pub const INBOX_CAPACITY: u32 = wasmos_ipc::abi::INBOX_CAPACITY as u32;
/// Envelopes each core's ring holds (as the Wasm path's default).
const RING_CAPACITY: usize = 1024;
const NO_CORE: u32 = u32::MAX;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wait {
    None,
    Recv,
    Reply,
}

#[derive(Debug, Clone, Copy)]
struct Item {
    msg: u64,
    from: u32,
    call: bool,
}

impl Item {
    /// The reply token `recv` returns: the caller's id + 1; 0 = one-way.
    fn token(&self) -> u64 {
        if self.call { self.from as u64 + 1 } else { 0 }
    }
}

pub struct Task {
    regs: Regs,
    pub id: u32,
    wait: Wait,
    inbox: VecDeque<Item>,
    pub space: AddressSpace,
    pub exit_code: u64,
}

impl Task {
    /// A task running `entry` (an offset in its code) with the given
    /// registers set at start.
    pub fn new(id: u32, space: AddressSpace, entry: u64, r12: u64, r13: u64) -> Box<Task> {
        assert!((id as usize) < MAX_TASKS, "native task id {id} out of range");
        let regs = Regs {
            rip: space.code_base + entry,
            rsp: space.stack_top,
            rflags: entry::USER_RFLAGS,
            r12,
            r13,
            r15: space.data_base,
            ..Regs::default()
        };
        Box::new(Task {
            regs,
            id,
            wait: Wait::None,
            inbox: VecDeque::with_capacity(INBOX_CAPACITY as usize),
            space,
            exit_code: 0,
        })
    }
}

enum Envelope {
    Start(Box<Task>),
    Deliver { to: u32, item: Item },
    Reply { to: u32, msg: u64 },
}

/// What every core may know about a task: where it lives and how many
/// one-way messages are queued for it.
struct Slot {
    core: AtomicU32,
    queued: AtomicU32,
}

static SLOTS: [Slot; MAX_TASKS] =
    [const { Slot { core: AtomicU32::new(NO_CORE), queued: AtomicU32::new(0) } }; MAX_TASKS];

static RINGS: spin::Once<Vec<Mailbox<Envelope>>> = spin::Once::new();
static KERNEL_CR3: spin::Once<PhysFrame> = spin::Once::new();
/// Tasks that exited, handed over once no core has their CR3 loaded.
static EXITED: spin::Mutex<Vec<Task>> = spin::Mutex::new(Vec::new());

fn rings() -> &'static [Mailbox<Envelope>] {
    RINGS.call_once(|| (0..percpu::count()).map(|_| Mailbox::new(RING_CAPACITY)).collect())
}

/// Records the kernel's page table (what a core loads when it has no
/// native task left) and creates the rings. On the BSP, before any task.
pub fn init() {
    KERNEL_CR3.call_once(|| Cr3::read().0);
    rings();
}

struct Core {
    tasks: [Option<Box<Task>>; MAX_TASKS],
    count: usize,
    ready: VecDeque<u32>,
    current: Option<u32>,
    /// What CR3 holds (0 = the kernel's, or not known yet).
    loaded: u64,
    outbox: VecDeque<(usize, Envelope)>,
    zombies: Vec<Task>,
}

struct CoreCell(UnsafeCell<Core>);

// SAFETY: each cell is used only by its own core, with interrupts off
// (system calls, and `run_core` around its use), so it is never aliased.
unsafe impl Sync for CoreCell {}

static CORES: [CoreCell; MAX_CPUS] = [const {
    CoreCell(UnsafeCell::new(Core {
        tasks: [const { None }; MAX_TASKS],
        count: 0,
        ready: VecDeque::new(),
        current: None,
        loaded: 0,
        outbox: VecDeque::new(),
        zombies: Vec::new(),
    }))
}; MAX_CPUS];

/// This core's index and state. Interrupts must be off, and the caller
/// must not hold another reference to the state.
fn this_core() -> (usize, *mut Core) {
    let me = percpu::current().cpu_index as usize;
    (me, CORES[me].0.get())
}

/// The system-call handler, called by the entry stub with interrupts off.
/// Returns the registers of the task to resume, or null when this core
/// has no native task left.
pub extern "C" fn dispatch(number: u64, a0: u64, a1: u64, _a2: u64) -> *mut Regs {
    let (me, core) = this_core();
    // SAFETY: this core's state, interrupts off, no other reference live
    // (the code that entered user mode dropped its own).
    let core = unsafe { &mut *core };
    core.syscall(me, number, a0, a1)
}

fn valid(id: u64) -> Option<u32> {
    (id < MAX_TASKS as u64).then_some(id as u32)
}

impl Core {
    fn task(&mut self, id: u32) -> Option<&mut Task> {
        self.tasks[id as usize].as_deref_mut()
    }

    /// Resumes the running task `id` with `value` as the result.
    fn ret(&mut self, id: u32, value: u64) -> *mut Regs {
        let task = self.task(id).expect("the running task exists");
        task.regs.rax = value;
        &raw mut task.regs
    }

    fn syscall(&mut self, me: usize, number: u64, a0: u64, a1: u64) -> *mut Regs {
        let cur = self.current.expect("a system call comes from the running task");
        match number {
            SYS_NULL => self.ret(cur, 0),
            SYS_CALL => {
                let Some(to) = valid(a0).filter(|&to| to != cur) else { return self.ret(cur, INVALID_ARGUMENT) };
                self.task(cur).expect("running").wait = Wait::Reply;
                self.route(me, to, Envelope::Deliver { to, item: Item { msg: a1, from: cur, call: true } });
                self.switch(me)
            }
            SYS_SEND => {
                let Some(to) = valid(a0) else { return self.ret(cur, INVALID_ARGUMENT) };
                let result = self.send(me, cur, to, a1);
                self.ret(cur, result)
            }
            SYS_RECV => {
                let task = self.task(cur).expect("running");
                match task.inbox.pop_front() {
                    Some(item) => {
                        if !item.call {
                            SLOTS[cur as usize].queued.fetch_sub(1, Ordering::Relaxed);
                        }
                        task.regs.rdx = item.token();
                        self.ret(cur, item.msg)
                    }
                    None => {
                        task.wait = Wait::Recv;
                        self.switch(me)
                    }
                }
            }
            SYS_REPLY => {
                let Some(to) = a0.checked_sub(1).and_then(valid) else { return self.ret(cur, INVALID_ARGUMENT) };
                self.route(me, to, Envelope::Reply { to, msg: a1 });
                self.ret(cur, 0)
            }
            SYS_YIELD => {
                self.ready.push_back(cur);
                self.switch(me)
            }
            SYS_EXIT => {
                let mut task = self.tasks[cur as usize].take().expect("running");
                task.exit_code = a0;
                self.count -= 1;
                self.current = None;
                SLOTS[cur as usize].core.store(NO_CORE, Ordering::Release);
                self.zombies.push(*task);
                self.switch(me)
            }
            _ => self.ret(cur, INVALID_ARGUMENT),
        }
    }

    /// A one-way message: takes a place in the target's inbox first.
    fn send(&mut self, me: usize, from: u32, to: u32, msg: u64) -> u64 {
        let slot = &SLOTS[to as usize];
        let core = slot.core.load(Ordering::Acquire);
        if core == NO_CORE {
            return DEAD_TARGET;
        }
        let reserved =
            slot.queued.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |q| (q < INBOX_CAPACITY).then_some(q + 1));
        if reserved.is_err() {
            return WOULD_BLOCK;
        }
        let envelope = Envelope::Deliver { to, item: Item { msg, from, call: false } };
        if core as usize == me {
            self.deliver_local(me, envelope);
            return 0;
        }
        match rings()[core as usize].push(envelope) {
            Ok(outcome) => {
                wake_if(core as usize, outcome);
                0
            }
            Err(Full(_)) => {
                slot.queued.fetch_sub(1, Ordering::Relaxed);
                WOULD_BLOCK
            }
        }
    }

    /// Sends a call or a reply towards `to`, wherever it lives; a full ring
    /// parks it in the outbox (retried before every switch), never drops it.
    fn route(&mut self, me: usize, to: u32, envelope: Envelope) {
        let core = SLOTS[to as usize].core.load(Ordering::Acquire);
        if core == NO_CORE {
            // A call to a dead task is answered at once.
            if let Envelope::Deliver { item: Item { from, call: true, .. }, .. } = envelope {
                self.deliver_local(me, Envelope::Reply { to: from, msg: DEAD_TARGET });
            }
            return;
        }
        if core as usize == me {
            return self.deliver_local(me, envelope);
        }
        match rings()[core as usize].push(envelope) {
            Ok(outcome) => wake_if(core as usize, outcome),
            Err(Full(envelope)) => self.outbox.push_back((core as usize, envelope)),
        }
    }

    fn deliver_local(&mut self, me: usize, envelope: Envelope) {
        match envelope {
            Envelope::Start(task) => {
                let id = task.id;
                self.tasks[id as usize] = Some(task);
                self.count += 1;
                self.ready.push_back(id);
            }
            Envelope::Deliver { to, item } => {
                let Some(task) = self.task(to) else {
                    // It exited meanwhile: a caller learns it, a one-way
                    // message had no one left to read it.
                    if item.call {
                        self.route(me, item.from, Envelope::Reply { to: item.from, msg: DEAD_TARGET });
                    } else {
                        SLOTS[to as usize].queued.fetch_sub(1, Ordering::Relaxed);
                    }
                    return;
                };
                if task.wait == Wait::Recv {
                    task.wait = Wait::None;
                    task.regs.rax = item.msg;
                    task.regs.rdx = item.token();
                    if !item.call {
                        SLOTS[to as usize].queued.fetch_sub(1, Ordering::Relaxed);
                    }
                    self.ready.push_front(to);
                } else {
                    task.inbox.push_back(item);
                }
            }
            Envelope::Reply { to, msg } => {
                if let Some(task) = self.task(to).filter(|t| t.wait == Wait::Reply) {
                    task.wait = Wait::None;
                    task.regs.rax = msg;
                    self.ready.push_front(to);
                }
            }
        }
    }

    /// Picks the next task (loading its CR3 if it differs), or returns
    /// null once this core has no task left. Waits for messages meanwhile.
    fn switch(&mut self, me: usize) -> *mut Regs {
        loop {
            while let Some(envelope) = rings()[me].pop() {
                self.deliver_local(me, envelope);
            }
            for _ in 0..self.outbox.len() {
                let (core, envelope) = self.outbox.pop_front().expect("length checked");
                match rings()[core].push(envelope) {
                    Ok(outcome) => wake_if(core, outcome),
                    Err(Full(envelope)) => self.outbox.push_back((core, envelope)),
                }
            }
            if let Some(id) = self.ready.pop_front() {
                let task = self.tasks[id as usize].as_deref_mut().expect("ready tasks exist");
                let cr3 = task.space.cr3();
                load_cr3(&mut self.loaded, cr3);
                self.current = Some(id);
                entry::set_current(&mut task.regs);
                let regs = &raw mut task.regs;
                self.release_zombies();
                return regs;
            }
            self.current = None;
            if self.count == 0 && self.outbox.is_empty() {
                load_cr3(&mut self.loaded, *KERNEL_CR3.get().expect("ring3::init ran"));
                self.release_zombies();
                return core::ptr::null_mut();
            }
            if !self.zombies.is_empty() {
                load_cr3(&mut self.loaded, *KERNEL_CR3.get().expect("ring3::init ran"));
                self.release_zombies();
            }
            idle(me, !self.outbox.is_empty());
        }
    }

    /// Hands exited tasks over (CR3 no longer holds theirs).
    fn release_zombies(&mut self) {
        if !self.zombies.is_empty() {
            EXITED.lock().append(&mut self.zombies);
        }
    }
}

fn load_cr3(loaded: &mut u64, frame: PhysFrame) {
    let phys = frame.start_address().as_u64();
    if *loaded != phys {
        // SAFETY: every native address space shares the kernel's
        // top-level entries, so the kernel stays mapped identically.
        unsafe { Cr3::write(frame, Cr3Flags::empty()) };
        *loaded = phys;
    }
}

fn wake_if(core: usize, outcome: PushOutcome) {
    if outcome == PushOutcome::DeliveredWakeNeeded {
        lapic::send_ipi(percpu::all()[core].apic_id, vectors::IPI);
    }
}

/// Nothing to run: poll (busy mode) or halt until an IPI or a tick, with
/// the same announce-then-halt protocol as the Wasm cores.
fn idle(me: usize, must_poll: bool) {
    if must_poll || crate::bench::poll_idle(me) {
        core::hint::spin_loop();
        return;
    }
    let ring = &rings()[me];
    if ring.prepare_sleep() {
        interrupts::enable_and_hlt();
        interrupts::disable();
    }
    ring.woke();
}

/// Starts `task` on `core` (any core, from kernel code).
pub fn start(task: Box<Task>, core: usize) {
    let slot = &SLOTS[task.id as usize];
    slot.queued.store(0, Ordering::Relaxed);
    // Published only once the start is queued: the ring is FIFO, so any
    // message a sender then pushes to that core arrives after it.
    let mut envelope = Envelope::Start(task);
    loop {
        match rings()[core].push(envelope) {
            Ok(_) => break,
            Err(Full(e)) => envelope = e,
        }
        core::hint::spin_loop();
    }
    slot.core.store(core as u32, Ordering::Release);
    // The target may be halted in its Wasm scheduler, which does not
    // watch this ring's sleep flag: always wake it.
    if core != percpu::current().cpu_index as usize {
        lapic::send_ipi(percpu::all()[core].apic_id, vectors::IPI);
    }
}

/// Whether native work waits for `core` (checked by its idle loop).
pub fn has_pending(core: usize) -> bool {
    RINGS.get().is_some_and(|r| !r[core].is_empty())
}

/// Runs this core's native tasks until none is left.
pub fn run_core() {
    interrupts::disable();
    let regs = {
        let (me, core) = this_core();
        // SAFETY: this core's state, interrupts off; the reference ends
        // before user mode is entered.
        let core = unsafe { &mut *core };
        core.switch(me)
    };
    if !regs.is_null() {
        // SAFETY: `switch` loaded the task's CR3 and made it current.
        unsafe { entry::enter_user(regs) };
    }
    interrupts::enable();
}

/// Takes the exited tasks with these ids, once all have exited; `None`
/// while some still run.
pub fn take_exited(ids: &[u32]) -> Option<Vec<Task>> {
    let mut exited = EXITED.lock();
    if !ids.iter().all(|id| exited.iter().any(|t| t.id == *id)) {
        return None;
    }
    let mut out = Vec::new();
    let mut i = 0;
    while i < exited.len() {
        if ids.contains(&exited[i].id) { out.push(exited.swap_remove(i)) } else { i += 1 }
    }
    out.sort_by_key(|t| ids.iter().position(|id| *id == t.id));
    Some(out)
}
