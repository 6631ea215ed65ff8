//! A core's tasks and queues (`CoreState`): routing and delivery,
//! spawning on the core, the end of a slice, exits; and running one fuel
//! slice (`run_slice`). The loop that drives it is
//! [`crate::scheduler::CoreScheduler`]; only this core touches it.
//!
//! Ready tasks wait in a FIFO. A task that a message just unblocked goes to
//! the *front*, so a call to a task waiting in `ipc_recv` on the same core
//! runs the callee next (direct hand-off), and its reply runs the caller
//! next. A task that used up its fuel goes to the back.

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::rc::{Rc, Weak};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::ops::Bound::{Excluded, Unbounded};
use core::sync::atomic::{AtomicBool, Ordering};

use wasmi::{Linker, ResumableCall, Store, TrapCode};
use wasmos_ipc::abi::{ExitReason, RecvInfo, Status};
use wasmos_ipc::caps::HandleTable;
use wasmos_ipc::ids::TaskId;
use wasmos_ipc::message::Payload;

use crate::envelope::{Envelope, Incoming, SpawnRequest, TaskExit};
use crate::service::{NativeCtx, NativeService, NativeStart, ReplyTo, Request, ServiceHost};
use crate::system::System;
use crate::task::{self, Blocked, Exec, Task, TaskData, TaskTable, Wait};

/// Ring envelopes handled per poll before running a task, so a flood from
/// other cores cannot starve this core's tasks.
const DRAIN_BATCH: usize = 256;

/// What [`crate::scheduler::CoreScheduler::poll`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Poll {
    /// Work was done and more may be waiting: poll again.
    Busy,
    /// Nothing runnable. Sleep until an interrupt (a wake-up, a timer
    /// tick), or at most until `deadline` (ns) when a task sleeps.
    Idle { deadline: Option<u64> },
}

/// A core's tasks and queues, shared (on this core only) between the
/// scheduler loop and the system calls of the task it is running.
pub(crate) struct CoreState {
    core: usize,
    /// Boxed: a task (its wasmi store) is almost 2 KiB, and it moves out
    /// of the map for every slice it runs.
    tasks: TaskTable,
    ready: VecDeque<TaskId>,
    sleepers: BTreeSet<(u64, TaskId)>,
    /// The tasks running right now, taken out of `tasks`: the one the
    /// scheduler started, then any it handed the core to directly in
    /// `ipc_call` (see `host::handoff`), innermost last.
    running: Vec<TaskId>,
    /// Deliveries to the running task, applied when it is back in `tasks`.
    deferred: VecDeque<Envelope>,
    /// Envelopes that found another core's ring full and must not be lost:
    /// replies, exit reports, and `ipc_call` requests (the caller stays
    /// suspended meanwhile). Retried in order on every poll.
    outbox: VecDeque<(usize, Envelope)>,
    /// The linker of the engine this core last instantiated from, and the
    /// compiler generation current when it was made; dropped when the core
    /// goes idle after a newer generation started, so that an idle core
    /// does not pin an old engine (and its code) indefinitely.
    linker: Option<(Linker<TaskData>, u64)>,
    /// Makes a linker of the system calls for an engine (`host::linker`).
    make_linker: MakeLinker,
    sys: Arc<System>,
    /// Native services on this core (see [`crate::service`]).
    natives: BTreeMap<TaskId, NativeSlot>,
    /// This state's own cell, handed to each task's system calls.
    self_ref: Weak<RefCell<CoreState>>,
    /// The task of this core blocked on console input (`Wait::Console`);
    /// at most one in the system, the stdin owner.
    console_waiter: Option<TaskId>,
}

/// Makes a linker of the system calls for an engine (`host::linker`,
/// which sits above this module).
pub type MakeLinker = fn(&wasmi::Engine) -> Linker<TaskData>;

impl CoreState {
    /// The state of `core`'s scheduler, linking tasks' system calls with
    /// linkers `make_linker` makes.
    pub fn new(sys: Arc<System>, core: usize, make_linker: MakeLinker) -> Rc<RefCell<CoreState>> {
        Rc::new_cyclic(|me| {
            RefCell::new(CoreState {
                core,
                tasks: TaskTable::default(),
                ready: VecDeque::new(),
                sleepers: BTreeSet::new(),
                running: Vec::new(),
                deferred: VecDeque::new(),
                outbox: VecDeque::new(),
                natives: BTreeMap::new(),
                linker: None,
                make_linker,
                sys,
                self_ref: me.clone(),
                console_waiter: None,
            })
        })
    }

    /// The core this state belongs to.
    pub fn core(&self) -> usize {
        self.core
    }

    /// The native service `id` of this core.
    pub fn native_mut(&mut self, id: TaskId) -> Option<&mut NativeSlot> {
        self.natives.get_mut(&id)
    }

    /// Tasks on this core, the running ones included.
    pub fn task_count(&self) -> usize {
        self.tasks.len() + self.running.len()
    }

    /// Whether anything is runnable or waiting to be sent.
    pub fn has_work(&self, now: u64) -> bool {
        !self.ready.is_empty()
            || !self.deferred.is_empty()
            || !self.sys.rings[self.core].is_empty()
            || self.natives.values().any(|n| n.due(now))
            || (self.console_waiter.is_some() && self.sys.platform.console_ready())
    }

    /// The next ready task, taken out of the table; else what the core
    /// should do (`Busy`: a stale entry was skipped, poll again).
    #[inline]
    pub fn pick(&mut self, now: u64) -> Result<(TaskId, Box<Task>), Poll> {
        match self.ready.pop_front() {
            // A stale id (its task was killed) is skipped.
            Some(id) => self.tasks.remove(&id).map(|task| (id, task)).ok_or(Poll::Busy),
            None => {
                if self.linker.as_ref().is_some_and(|(_, g)| *g != self.sys.generation.load(Ordering::Relaxed)) {
                    self.linker = None;
                }
                Err(self.idle(now))
            }
        }
    }

    /// `id` runs a slice now: it counts as running until [`Self::end_slice`].
    #[inline]
    pub fn begin_slice(&mut self, id: TaskId) {
        self.running.push(id);
        self.sys.stats[self.core].switches.fetch_add(1, Ordering::Relaxed);
    }

    /// The slice of `id` is over: back in the table, queued, or reaped.
    #[inline]
    pub fn end_slice(&mut self, id: TaskId, task: Box<Task>, outcome: Result<(), TaskExit>) {
        self.running.pop();
        self.settle(id, task, outcome);
    }

    /// Ends every task and service of the core without running them again
    /// (a scheduler that goes away; see `CoreScheduler`'s `Drop`).
    pub fn tear_down(&mut self) {
        let tasks = core::mem::take(&mut self.tasks);
        let natives = core::mem::take(&mut self.natives);
        self.sys.reaped.fetch_add(tasks.len() as u64, Ordering::Relaxed);
        for id in natives.keys().copied() {
            self.sys.directory.remove(id);
        }
        for task in tasks.into_tasks() {
            self.sys.directory.remove(task.data().id);
        }
    }

    /// Whether `id` is one of this core's tasks, not running now.
    pub fn holds(&self, id: TaskId) -> bool {
        self.tasks.contains_key(&id)
    }

    /// Sends an envelope towards its target, wherever it lives.
    pub fn route(&mut self, envelope: Envelope) {
        let core = match &envelope {
            Envelope::Deliver { to, .. } | Envelope::Reply { to, .. } | Envelope::Kill { to } => self.sys.core_of(*to),
            Envelope::Spawn(_) | Envelope::StartNative(_) => Some(self.core),
        };
        match core {
            Some(core) => self.route_to(core, envelope),
            None => self.undeliverable(envelope),
        }
    }

    /// Sends an envelope to `core` (its target's home): delivered here, or
    /// into that core's ring; a full ring keeps it in the outbox, retried
    /// on every poll, so it is never lost.
    pub fn route_to(&mut self, core: usize, envelope: Envelope) {
        if core == self.core {
            self.deliver_local(envelope);
        } else if let Err(envelope) = self.sys.post(core, envelope) {
            self.outbox.push_back((core, envelope));
        }
    }

    /// Takes `to` out of the table to run it inside the caller `me`'s
    /// `ipc_call` (a direct hand-off), if it can: `to` lives here, waits
    /// in `ipc_recv` for anyone or for `me`, and fewer than `depth` hand-offs
    /// are nested already. It counts as running until [`Self::end_handoff`].
    pub fn begin_handoff(&mut self, me: TaskId, to: TaskId, depth: usize) -> Option<Box<Task>> {
        if to.core() != self.core || self.running.len() > depth {
            return None;
        }
        let Some(Wait::Recv { from, deadline, .. }) = self.tasks.get(&to).and_then(|t| t.data().wait) else {
            return None;
        };
        if from.is_some_and(|f| f != me) {
            return None;
        }
        if let Some(deadline) = deadline {
            self.sleepers.remove(&(deadline, to));
        }
        self.running.push(to);
        self.tasks.remove(&to)
    }

    /// The hand-off to `to` is over: back in the table (or reaped), and
    /// the caller's answer if it came.
    pub fn end_handoff(
        &mut self,
        to: TaskId,
        callee: Box<Task>,
        outcome: Result<(), TaskExit>,
        caller: TaskId,
        call: u64,
    ) -> Option<Result<Payload, Status>> {
        self.running.pop();
        self.settle(to, callee, outcome);
        self.take_reply(caller, call)
    }

    /// The target is gone: a caller learns it from its call's result;
    /// anything else had no one left to read it.
    fn undeliverable(&mut self, envelope: Envelope) {
        if let Envelope::Deliver { item: Incoming::Call { from, call, .. }, .. } = envelope {
            self.route(Envelope::Reply { to: from, call, result: Err(Status::DeadTarget) });
        }
    }

    /// Delivers a one-way item to `to` on `core` (from `System::reserve`,
    /// or `core_of` for an uncounted notification): into its inbox on
    /// this core, else into that core's ring. A full ring is `WOULD_BLOCK`
    /// and gives a counted item's reservation back.
    pub fn send_one_way(&mut self, core: usize, to: TaskId, item: Incoming) -> Result<(), Status> {
        let counted = !matches!(item, Incoming::Notification { .. });
        if core == self.core {
            self.deliver_local(Envelope::Deliver { to, item });
            return Ok(());
        }
        self.sys.post(core, Envelope::Deliver { to, item }).map_err(|_| {
            if counted {
                self.sys.unreserve(to);
            }
            Status::WouldBlock
        })
    }

    pub fn deliver_local(&mut self, envelope: Envelope) {
        let sys = self.sys.clone();
        let target = match &envelope {
            Envelope::Deliver { to, .. } | Envelope::Reply { to, .. } | Envelope::Kill { to } => Some(*to),
            Envelope::Spawn(_) | Envelope::StartNative(_) => None,
        };
        if target.is_some_and(|t| self.running.contains(&t)) {
            self.deferred.push_back(envelope);
            return;
        }
        match envelope {
            Envelope::Spawn(request) => self.instantiate(*request),
            Envelope::StartNative(start) => {
                self.natives.insert(start.id, NativeSlot::new(*start));
            }
            Envelope::Deliver { to, item } if self.natives.contains_key(&to) => {
                let slot = self.natives.get_mut(&to).expect("checked");
                slot.push(item);
                sys.stats[self.core].delivered.fetch_add(1, Ordering::Relaxed);
            }
            Envelope::Deliver { to, item } => {
                let Some(task) = self.tasks.get_mut(&to) else {
                    return self.undeliverable(Envelope::Deliver { to, item });
                };
                task.data_mut().accept(item);
                sys.stats[self.core].delivered.fetch_add(1, Ordering::Relaxed);
                self.wake_receiver(to);
            }
            Envelope::Kill { to } => match self.tasks.remove(&to) {
                // Its id may still sit in the ready queue: a stale entry
                // there is skipped (ids are never reused).
                Some(task) => {
                    // One spawned on this core and not instantiated yet was
                    // not counted in the core's tasks.
                    let counted = !matches!(task.exec, Some(Exec::Instantiate { .. }));
                    self.reap(task, TaskExit { code: -1, reason: ExitReason::Killed }, counted)
                }
                // Admitted to this core but not started yet: its spawn
                // request is still in this core's ring, ahead of a kill
                // posted there now, so the kill comes right after it.
                None if sys.core_of(to) == Some(self.core) && !self.natives.contains_key(&to) => {
                    if let Err(envelope) = sys.post(self.core, Envelope::Kill { to }) {
                        self.outbox.push_back((self.core, envelope));
                    }
                }
                // Gone already (its exit is reported), or a native service.
                None => {}
            },
            Envelope::Reply { to, call, result } => {
                let Some(task) = self.tasks.get_mut(&to) else { return };
                if task.data().wait == Some(Wait::File { call }) {
                    return self.file_reply(to, result);
                }
                // Not waiting for this one (any more): it gave up (timeout).
                let Some(Wait::Reply { call: waiting, buf, cap, deadline }) = task.data().wait else { return };
                if waiting != call {
                    return;
                }
                if let Some(deadline) = deadline {
                    self.sleepers.remove(&(deadline, to));
                }
                task.resume_with = task::write_reply(&mut task.store, buf, cap, result);
                task.data_mut().wait = None;
                sys.stats[self.core].delivered.fetch_add(1, Ordering::Relaxed);
                self.ready.push_front(to);
            }
        }
    }

    /// The reply to a WASI file call of `to` (`Wait::File`): the WASI
    /// layer reads it and either ends the task's system call (it becomes
    /// ready with the result) or makes the next call of the same one.
    fn file_reply(&mut self, to: TaskId, result: Result<Payload, Status>) {
        let Some(task) = self.tasks.get_mut(&to) else { return };
        self.sys.stats[self.core].delivered.fetch_add(1, Ordering::Relaxed);
        match crate::wasi::file_reply(&mut task.store, result) {
            crate::wasi::Next::Done(errno) => {
                task.resume_with = errno;
                task.data_mut().wait = None;
                self.ready.push_front(to);
            }
            crate::wasi::Next::Call(fs, payload) => {
                let data = task.data_mut();
                let call = data.next_call;
                data.next_call += 1;
                data.wait = Some(Wait::File { call });
                let msg = wasmos_ipc::message::Message::new(fs.badge, payload);
                self.route(Envelope::Deliver { to: fs.target, item: Incoming::Call { from: to, msg, call } });
            }
        }
    }

    /// Step 1 of a poll: delivers what other cores posted (a batch, so a
    /// flood cannot hold the core in this loop).
    #[inline]
    pub fn drain_ring(&mut self) {
        let sys = self.sys.clone();
        for _ in 0..DRAIN_BATCH {
            let Some(envelope) = sys.rings[self.core].pop() else { break };
            self.deliver_local(envelope);
        }
    }

    /// Step 2: envelopes that found a ring full are posted again, in order.
    #[inline]
    pub fn retry_outbox(&mut self) {
        for _ in 0..self.outbox.len() {
            let (core, envelope) = self.outbox.pop_front().expect("length checked");
            if let Err(envelope) = self.sys.post(core, envelope) {
                self.outbox.push_back((core, envelope));
            }
        }
    }

    /// Step 3: sleeps and receive timeouts that are over make their tasks
    /// ready (`sleep_ns` returns 0, `ipc_recv` `TIMED_OUT`).
    #[inline]
    pub fn fire_timers(&mut self, now: u64) {
        while let Some(&(deadline, id)) = self.sleepers.first() {
            if deadline > now {
                break;
            }
            self.sleepers.pop_first();
            if let Some(task) = self.tasks.get_mut(&id) {
                match task.data().wait {
                    Some(Wait::Sleep { .. }) => task.resume_with = 0,
                    Some(Wait::Recv { .. } | Wait::Reply { .. }) => task.resume_with = Status::TimedOut.code(),
                    // The clock came first: its event, and no more waiting for input.
                    Some(wait @ Wait::PollConsole { .. }) => {
                        task.resume_with = crate::wasi::poll_console_event(&mut task.store, wait, false);
                    }
                    Some(Wait::File { .. } | Wait::Console { .. }) | None => continue,
                }
                task.data_mut().wait = None;
                self.ready.push_back(id);
                // Only a stdin poll with a clock is both a sleeper and the
                // console's waiter; it waits no more.
                if self.console_waiter == Some(id) {
                    self.end_console_wait();
                }
            }
        }
    }

    /// `id` (of this core) blocks on console input: served by
    /// [`Self::serve_console`] once the platform has some.
    pub fn wait_console(&mut self, id: TaskId) {
        self.console_waiter = Some(id);
        self.sys.platform.console_wait(Some(self.core));
    }

    fn end_console_wait(&mut self) {
        self.console_waiter = None;
        self.sys.platform.console_wait(None);
    }

    /// Step 3b: the task blocked on console input gets what arrived (or
    /// the end of input) and becomes ready, first in line like a task a
    /// message unblocked.
    #[inline]
    pub fn serve_console(&mut self) {
        let Some(id) = self.console_waiter else { return };
        if !self.sys.platform.console_ready() {
            return;
        }
        // Blocked tasks sit in the table; one that is not there now is
        // running (it cannot be waiting, then) or gone.
        let Some(task) = self.tasks.get_mut(&id) else { return };
        let errno = match task.data().wait {
            Some(wait @ Wait::Console { .. }) => match crate::wasi::console_fill(&mut task.store, wait) {
                Some(errno) => errno,
                None => return,
            },
            Some(wait @ Wait::PollConsole { clock, .. }) => {
                if let Some((deadline, _)) = clock {
                    self.sleepers.remove(&(deadline, id));
                }
                crate::wasi::poll_console_event(&mut task.store, wait, true)
            }
            _ => return self.end_console_wait(),
        };
        task.resume_with = errno;
        task.data_mut().wait = None;
        self.ready.push_front(id);
        self.end_console_wait();
    }

    /// Step 4: each native service on this core handles what it has.
    #[inline]
    pub fn run_services(&mut self) {
        // By key, not by a list of them: no allocation on this path.
        let mut next = self.natives.keys().next().copied();
        while let Some(id) = next {
            run_service(self, id);
            next = self.natives.range((Excluded(id), Unbounded)).next().map(|(&k, _)| k);
        }
    }

    /// Nothing is ready: busy if deliveries or service work wait, else
    /// idle until the first timer, retry or service poll that is due.
    fn idle(&self, now: u64) -> Poll {
        if !self.deferred.is_empty() || self.natives.values().any(|n| n.inbox_len() > 0) {
            return Poll::Busy;
        }
        let deadline = self.sleepers.first().map(|&(d, _)| d);
        let retry = (!self.outbox.is_empty()).then_some(now + 1_000_000);
        let natives = self.natives.values().filter_map(NativeSlot::next_poll);
        Poll::Idle { deadline: deadline.into_iter().chain(retry).chain(natives).min() }
    }

    /// Puts a task back after it ran (a slice, or a hand-off): waiting
    /// (with its timer), ready again, or reaped; then delivers what was
    /// held back for it while it ran.
    pub fn settle(&mut self, id: TaskId, mut task: Box<Task>, outcome: Result<(), TaskExit>) {
        match outcome {
            Ok(()) => {
                if let Some(wait) = task.data().wait {
                    if let Some(deadline) = wait.deadline() {
                        self.sleepers.insert((deadline, id));
                    }
                } else if core::mem::take(&mut task.data_mut().after_handoff) {
                    // Behind the caller it just answered (first in line).
                    let at = self.ready.len().min(1);
                    self.ready.insert(at, id);
                } else {
                    self.ready.push_back(id);
                }
                self.tasks.insert(id, task);
            }
            Err(exit) => self.reap(task, exit, true),
        }
        // In place, so the queue keeps its capacity; what is for a task
        // still running (an outer hand-off) goes round to the back again.
        for _ in 0..self.deferred.len() {
            let envelope = self.deferred.pop_front().expect("length checked");
            self.deliver_local(envelope);
        }
        // Something may have arrived for it while it ran.
        if matches!(self.tasks.get(&id).and_then(|t| t.data().wait), Some(Wait::Recv { .. })) {
            self.wake_receiver(id);
        }
    }

    /// Whether no task but the running ones wants this core now: nothing
    /// ready, no retries waiting, no native service or timer due. Only
    /// then may a running task wait for its answer inside its system call
    /// (`host::spin`) instead of suspending.
    pub fn only_running(&self, now: u64) -> bool {
        self.running.len() == 1
            && self.ready.is_empty()
            && self.outbox.is_empty()
            && self.sleepers.first().is_none_or(|&(deadline, _)| deadline > now)
            && !self.natives.values().any(|n| n.due(now))
    }

    /// Drains this core's ring from inside a running task's system call:
    /// what is for the task itself goes into its own inbox (`data`), the
    /// rest is delivered as the scheduler would.
    pub fn drain_ring_for(&mut self, data: &mut TaskData) {
        let sys = self.sys.clone();
        for _ in 0..DRAIN_BATCH {
            let Some(envelope) = sys.rings[self.core].pop() else { break };
            match envelope {
                Envelope::Deliver { to, item } if to == data.id => {
                    data.accept(item);
                    sys.stats[self.core].delivered.fetch_add(1, Ordering::Relaxed);
                }
                envelope => self.deliver_local(envelope),
            }
        }
    }

    /// Takes the answer to `caller`'s call `call` if it arrived while
    /// `caller` was running (held back in `deferred`).
    pub fn take_reply(&mut self, caller: TaskId, call: u64) -> Option<Result<Payload, Status>> {
        let at = self
            .deferred
            .iter()
            .position(|e| matches!(e, Envelope::Reply { to, call: c, .. } if *to == caller && *c == call))?;
        match self.deferred.remove(at)? {
            Envelope::Reply { result, .. } => Some(result),
            _ => unreachable!("matched a reply"),
        }
    }

    /// If `id` waits in `ipc_recv` and now has something to receive, hands
    /// it over and puts the task at the front of the ready queue.
    fn wake_receiver(&mut self, id: TaskId) {
        let Some(task) = self.tasks.get_mut(&id) else { return };
        let Some(Wait::Recv { from, buf, cap, info, deadline }) = task.data().wait else { return };
        if let Some(result) = task::try_receive(&mut task.store, from, buf, cap, info) {
            task.resume_with = result;
            task.data_mut().wait = None;
            if let Some(d) = deadline {
                self.sleepers.remove(&(d, id));
            }
            self.ready.push_front(id);
        }
    }

    /// Creates a task from a spawn request that came through the ring.
    fn instantiate(&mut self, request: SpawnRequest) {
        let id = request.id;
        let task = self.prepare(request);
        self.start_task(id, task);
    }

    /// Enters a task spawned by a task on this same core: into the task
    /// table at once (instantiated when it first runs, `start_task`), so
    /// that whatever its parent sends it right after `task_spawn` finds
    /// it. Through the ring, the spawn would arrive after those sends,
    /// which are delivered straight into this core's table.
    pub fn spawn_local(&mut self, request: SpawnRequest) {
        let id = request.id;
        let task = self.prepare(request);
        self.tasks.insert(id, task);
        self.ready.push_back(id);
    }

    /// The task's store and state, not instantiated yet.
    fn prepare(&mut self, request: SpawnRequest) -> Box<Task> {
        let sys = self.sys.clone();
        let SpawnRequest { id, name, module, caps, parent, init, namespace, args, env: user_env } = request;
        let uses_wasi = crate::imports::uses_wasi(&module);
        let wasi = uses_wasi.then(|| {
            let mut env = alloc::vec![
                alloc::format!("WASMOS_CORE={}", self.core),
                alloc::format!("WASMOS_CORES={}", sys.cores()),
                alloc::format!("WASMOS_VERSION={}", env!("CARGO_PKG_VERSION")),
            ];
            env.extend(user_env);
            // The writable preopen, if the file server runs and the task
            // may reach it.
            let fs = wasmos_ipc::fs::SERVICE;
            let disk = namespace.allows(fs) && sys.services.lock().contains_key(fs);
            crate::wasi::Wasi::new(args, env, disk)
        });
        let mut limits = crate::quota::MemoryBudget::new(sys.config.max_memory_bytes, 100_000, sys.memory.clone());
        if parent.is_some() {
            limits =
                limits.with_ceiling(sys.config.total_memory_bytes.saturating_sub(sys.config.system_memory_reserve));
        }
        let data = TaskData {
            id,
            name,
            core: self.core,
            system: sys.clone(),
            state: self.self_ref.upgrade().expect("the core state outlives its tasks"),
            memory: None,
            limits,
            queued: Arc::new(crate::quota::SharedBudget::new(sys.config.max_queued_bytes)),
            children: 0,
            handles: HandleTable::new(sys.config.max_handles),
            inbox: VecDeque::new(),
            notifications: 0,
            wait: None,
            reply_tokens: Vec::new(),
            senders: Vec::new(),
            serve_clock: 0,
            after_handoff: false,
            next_token: 1,
            next_call: 1,
            parent,
            init,
            namespace,
            wasi,
        };
        let mut store = Store::new(module.engine(), data);
        store.limiter(|d| &mut d.limits);
        let _ = store.set_fuel(sys.config.fuel_slice);
        // Fewer caps than the table's limit (checked at spawn); only the
        // memory budget can refuse them.
        let caps_lost = caps.into_iter().any(|cap| store.data_mut().hold(cap).is_err());
        let exec = Some(Exec::Instantiate { module, caps_lost });
        Box::new(Task { store, exec, resume_with: 0, fuel_left: None, then: None })
    }

    /// The core's linker readied for `module`: one of the module's engine
    /// (code is compiled in generations of engines, `compiler.rs`; the
    /// linker is rebuilt when a generation's first module is instantiated
    /// here, and so stops pinning the old engine), with ENOSYS stubs for
    /// the WASI calls it imports and the kernel does not implement.
    fn link_for(&mut self, module: &wasmi::Module) -> &Linker<TaskData> {
        let generation = self.sys.generation.load(Ordering::Relaxed);
        let (linker, _) = match self.linker.take() {
            Some((l, g)) if wasmi::Engine::same(l.engine(), module.engine()) => self.linker.insert((l, g)),
            _ => self.linker.insert(((self.make_linker)(module.engine()), generation)),
        };
        if crate::imports::uses_wasi(module) {
            for import in module.imports().filter(|i| i.module() == crate::imports::WASI) {
                if let Some(ty) = import.ty().func() {
                    crate::wasi::define_missing(linker, import.name(), ty);
                }
            }
        }
        linker
    }

    /// Instantiates a prepared task (runs its start function) and queues
    /// it to run `_start`; a failure is its exit.
    pub fn start_task(&mut self, id: TaskId, mut task: Box<Task>) {
        let sys = self.sys.clone();
        let Some(Exec::Instantiate { module, caps_lost }) = task.exec.take() else { unreachable!("a prepared task") };
        if caps_lost {
            return self.reap(task, TaskExit { code: -1, reason: ExitReason::OutOfMemory }, false);
        }
        let instance = match self.link_for(&module).instantiate_and_start(&mut task.store, &module) {
            Ok(instance) => instance,
            Err(e) => return self.reap(task, exit_of_error(&e), false),
        };
        task.data_mut().memory = instance.get_memory(&task.store, "memory");
        let Some(start) = instance.get_func(&task.store, "_start") else {
            return self.reap(task, TaskExit { code: -1, reason: ExitReason::OtherTrap }, false);
        };
        sys.stats[self.core].tasks.fetch_add(1, Ordering::Relaxed);
        // The module's start function, if it has one, runs first, under
        // the same rules as `_start` (fuel slices, blocking calls).
        let first = match instance.get_func(&task.store, crate::start::START_EXPORT) {
            Some(start_fn) => {
                task.then = Some(start);
                start_fn
            }
            None => start,
        };
        task.exec = Some(Exec::NotStarted(first));
        self.tasks.insert(id, task);
        self.ready.push_back(id);
    }

    /// Ends a task: frees everything it had, then tells whoever waits on
    /// it. In that order, so that an exit someone has seen (a parent's
    /// `ChildExit`, `System::exit_of`) means the task's memory is back in
    /// the shared budget: a parent may respawn at once without meeting
    /// OUT_OF_MEMORY for a child that is already gone.
    pub fn reap(&mut self, mut task: Box<Task>, exit: TaskExit, counted: bool) {
        let sys = self.sys.clone();
        let data = task.data_mut();
        let id = data.id;
        sys.directory.remove(id);
        // Its names, and names others registered for it.
        sys.services.lock().retain(|_, s| s.cap.target != id && s.owner != Some(id));
        if let Some(deadline) = data.wait.and_then(|w| w.deadline()) {
            self.sleepers.remove(&(deadline, id));
        }
        if self.console_waiter == Some(id) {
            self.end_console_wait();
        }
        let mut notices = Vec::new();
        for item in data.inbox.drain(..) {
            if let Incoming::Call { from, call, .. } = item {
                notices.push(Envelope::Reply { to: from, call, result: Err(Status::DeadTarget) });
            }
        }
        for (_, caller, call) in data.reply_tokens.drain(..) {
            notices.push(Envelope::Reply { to: caller, call, result: Err(Status::DeadTarget) });
        }
        // Its open disk files: closed at the file server as its last calls
        // (their replies find no one and are dropped).
        // (The name service's lock only for a task that has some.)
        let orphans = data.wasi.as_ref().is_some_and(|w| w.orphaned_handles().next().is_some());
        let fs = orphans.then(|| sys.services.lock().get(wasmos_ipc::fs::SERVICE).map(|s| s.cap)).flatten();
        if let (Some(fs), Some(wasi)) = (fs, &data.wasi) {
            for (call, payload) in (data.next_call..).zip(wasi.orphaned_handles()) {
                let msg = wasmos_ipc::message::Message::new(fs.badge, payload);
                notices.push(Envelope::Deliver { to: fs.target, item: Incoming::Call { from: id, msg, call } });
            }
        }
        let parent = data.parent;
        let name = core::mem::take(&mut data.name);
        // Frees the store: linear memory (its budget charge), tables, the
        // instance, and the task's capability table.
        drop(task);
        if counted {
            sys.stats[self.core].tasks.fetch_sub(1, Ordering::Relaxed);
        }
        sys.reaped.fetch_add(1, Ordering::Relaxed);
        match parent {
            Some((parent, handle)) => notices.push(Envelope::Deliver {
                to: parent,
                item: Incoming::ChildExit { child_handle: handle, bits: RecvInfo::exit_bits(exit.code, exit.reason) },
            }),
            None => {
                let mut exits = sys.orphan_exits.lock();
                exits.insert(id, exit);
                if exits.len() > crate::system::REMEMBERED_EXITS {
                    exits.pop_first();
                }
            }
        }
        // Every end is visible on the console: a user's program started by
        // init shows its exit code, a killed task why.
        let line = if exit.reason != ExitReason::Exited {
            alloc::format!("killed: {} (exit code {})\n", exit.reason.name(), exit.code)
        } else {
            alloc::format!("exited with code {}\n", exit.code)
        };
        sys.platform.console_write(self.core, &name, line.as_bytes());
        sys.platform.task_ended(&name, exit.code, exit.reason);
        for notice in notices {
            self.route(notice);
        }
    }
}

/// Classifies how a Wasm call ended with an error.
fn exit_of_error(e: &wasmi::Error) -> TaskExit {
    if let Some(code) = e.i32_exit_status() {
        return TaskExit { code, reason: ExitReason::Exited };
    }
    use wasmi::errors::{ErrorKind, InstantiationError, MemoryError};
    let memory_error = match e.kind() {
        ErrorKind::Memory(m) | ErrorKind::Instantiation(InstantiationError::FailedToInstantiateMemory(m)) => Some(m),
        _ => None,
    };
    if matches!(memory_error, Some(MemoryError::ResourceLimiterDeniedAllocation | MemoryError::OutOfSystemMemory)) {
        // Instantiation asked for more memory than the quota allows.
        return TaskExit { code: -1, reason: ExitReason::OutOfMemory };
    }
    let reason = match e.as_trap_code() {
        Some(TrapCode::UnreachableCodeReached) => ExitReason::Unreachable,
        Some(TrapCode::MemoryOutOfBounds | TrapCode::TableOutOfBounds) => ExitReason::MemoryOutOfBounds,
        Some(TrapCode::IntegerDivisionByZero | TrapCode::IntegerOverflow) => ExitReason::IntegerTrap,
        Some(TrapCode::StackOverflow) => ExitReason::StackOverflow,
        Some(TrapCode::GrowthOperationLimited) => ExitReason::OutOfMemory,
        _ => ExitReason::OtherTrap,
    };
    TaskExit { code: -1, reason }
}

/// What a native service on this core may ask of it (see
/// [`crate::service::NativeCtx`]).
impl ServiceHost for CoreState {
    fn now_ns(&self) -> u64 {
        self.sys.now_ns()
    }

    fn core(&self) -> usize {
        self.core
    }

    fn reply(&mut self, to: TaskId, call: u64, result: Result<Payload, Status>) {
        self.route(Envelope::Reply { to, call, result });
    }

    fn send(&mut self, from: TaskId, to: TaskId, bytes: &[u8]) -> Result<(), Status> {
        if bytes.len() > wasmos_ipc::abi::MAX_PAYLOAD {
            return Err(Status::TooLarge);
        }
        let sys = self.sys.clone();
        let charge = crate::quota::QueueCharge::take(
            None,
            &sys.queued,
            sys.config.total_queued_bytes,
            crate::system::QUEUED_ITEM_OVERHEAD + bytes.len(),
        )?;
        let payload = Payload::copy_from(bytes)?;
        let core = sys.reserve(to)?;
        let msg = wasmos_ipc::message::Message::new(0, payload);
        self.send_one_way(core, to, Incoming::Message { from, msg, _charge: charge })
    }

    fn is_alive(&self, task: TaskId) -> bool {
        self.sys.core_of(task).is_some()
    }

    fn core_info(&self) -> Vec<wasmos_ipc::sysinfo::CoreInfo> {
        (0..self.sys.cores())
            .map(|c| {
                let s = self.sys.stats(c);
                wasmos_ipc::sysinfo::CoreInfo {
                    tasks: s.tasks.load(Ordering::Relaxed) as u32,
                    delivered: s.delivered.load(Ordering::Relaxed),
                    switches: s.switches.load(Ordering::Relaxed),
                }
            })
            .collect()
    }
}

/// A native service on its core, with what arrived for it.
pub(crate) struct NativeSlot {
    /// Taken out while it runs (it gets the core's state to work with).
    service: Option<Box<dyn NativeService>>,
    inbox: VecDeque<Incoming>,
    /// When it wants to be polled next (`None`: only on a request).
    next_poll: Option<u64>,
    /// Set by its device's interrupt ([`NativeService::doorbell`]).
    doorbell: Option<&'static AtomicBool>,
}

impl NativeSlot {
    pub fn new(start: NativeStart) -> NativeSlot {
        // Polled once at start, so it can bring up its device.
        let doorbell = start.service.doorbell();
        NativeSlot { service: Some(start.service), inbox: VecDeque::new(), next_poll: Some(0), doorbell }
    }

    pub fn push(&mut self, item: Incoming) {
        self.inbox.push_back(item);
    }

    /// Whether it has work now: a request, its device interrupted, or its
    /// poll time has come.
    pub fn due(&self, now: u64) -> bool {
        !self.inbox.is_empty()
            || self.doorbell.is_some_and(|d| d.load(Ordering::Acquire))
            || self.next_poll.is_some_and(|t| t <= now)
    }

    /// The service and what arrived for it, taken out to run, if it is
    /// due (it goes back in with its next poll time after).
    fn take_if_due(&mut self, now: u64) -> Option<(Box<dyn NativeService>, VecDeque<Incoming>)> {
        if !self.due(now) {
            return None;
        }
        let service = self.service.take()?;
        if let Some(doorbell) = self.doorbell {
            doorbell.store(false, Ordering::Release);
        }
        Some((service, core::mem::take(&mut self.inbox)))
    }

    pub fn inbox_len(&self) -> usize {
        self.inbox.len()
    }

    pub fn next_poll(&self) -> Option<u64> {
        self.next_poll
    }
}

/// Runs the native service `id` on `state`'s core if it is due: hands it
/// its requests, then polls it.
fn run_service(state: &mut CoreState, id: TaskId) {
    let sys = state.sys.clone();
    let now = sys.now_ns();
    let Some((mut service, inbox)) = state.native_mut(id).and_then(|slot| slot.take_if_due(now)) else { return };
    let mut ctx = NativeCtx { host: &mut *state, id };
    for item in inbox {
        let request = match item {
            Incoming::Message { from, msg, .. } => {
                sys.directory.received(id);
                Request { from, badge: msg.badge, payload: msg.payload, reply: None }
            }
            Incoming::Call { from, msg, call } => {
                Request { from, badge: msg.badge, payload: msg.payload, reply: Some(ReplyTo { to: from, call }) }
            }
            // A capability granted to a service has nowhere to go: services
            // hold no handle table. Notifications and exit reports carry
            // nothing a service acts on.
            Incoming::Grant { .. } => {
                sys.directory.received(id);
                continue;
            }
            Incoming::ChildExit { .. } | Incoming::Notification { .. } => continue,
        };
        service.receive(&mut ctx, request);
    }
    let next_poll = service.poll(&mut ctx);
    if let Some(slot) = state.native_mut(id) {
        slot.service = Some(service);
        slot.next_poll = next_poll;
    }
}

/// Runs one fuel slice of a task. `Ok` = it is still alive (suspended in a
/// system call, or preempted); `Err` = it ended.
pub(crate) fn run_slice(sys: &System, task: &mut Task) -> Result<(), TaskExit> {
    // An instruction that costs more than a slice (a bulk copy of a big
    // buffer) gets the fuel it needs, or it could never run.
    let needed = match &task.exec {
        Some(Exec::OutOfFuel(call)) => call.required_fuel(),
        _ => 0,
    };
    let budget = task.fuel_left.unwrap_or(sys.config.fuel_slice);
    let _ = task.store.set_fuel(budget.max(needed));
    let result = match task.exec.take().expect("a ready task has an execution state") {
        Exec::Instantiate { .. } => unreachable!("instantiated before its first slice (`CoreState::start_task`)"),
        Exec::NotStarted(func) => func.call_resumable(&mut task.store, &[], &mut []),
        Exec::HostTrap(call) => {
            let value = [wasmi::Val::I32(task.resume_with)];
            call.resume(&mut task.store, &value, &mut [])
        }
        Exec::OutOfFuel(call) => call.resume(&mut task.store, &mut []),
    };
    // Memory the slice grew is paid for out of the slice (the next one, if
    // this one ran out), so growing is not cheaper than computing.
    let growth = task.data_mut().limits.take_growth_fuel();
    task.fuel_left = match result {
        Ok(ResumableCall::OutOfFuel(_)) if growth == 0 => None,
        Ok(ResumableCall::OutOfFuel(_)) => Some(sys.config.fuel_slice.saturating_sub(growth)),
        _ => Some(task.store.get_fuel().unwrap_or(0).saturating_sub(growth)),
    };
    match result {
        Ok(ResumableCall::Finished) => match task.then.take() {
            // The start function returned: `_start` runs next.
            Some(start) => {
                task.exec = Some(Exec::NotStarted(start));
                Ok(())
            }
            None => Err(TaskExit { code: 0, reason: ExitReason::Exited }),
        },
        Ok(ResumableCall::HostTrap(call)) => {
            // Every host error pauses a resumable call, `task_exit` too.
            if call.host_error().downcast_ref::<Blocked>().is_none() {
                return Err(exit_of_error(call.host_error()));
            }
            if task.data().wait.is_none() {
                // A yield: resumes with success when its turn comes again.
                task.resume_with = 0;
            }
            task.exec = Some(Exec::HostTrap(call));
            Ok(())
        }
        Ok(ResumableCall::OutOfFuel(call)) => {
            task.exec = Some(Exec::OutOfFuel(call));
            Ok(())
        }
        Err(e) => Err(exit_of_error(&e)),
    }
}
