//! One task: its wasmi store, its capability table, its inbox, and what it
//! is waiting for; plus the bounds-checked copies in and out of its memory.

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::cell::RefCell;

use wasmi::{AsContext, AsContextMut, Func, Memory, ResumableCallHostTrap, ResumableCallOutOfFuel, Store};
use wasmos_ipc::abi::{Kind, RecvInfo, Status};
use wasmos_ipc::caps::{Cap, HandleTable};
use wasmos_ipc::ids::TaskId;
use wasmos_ipc::message::Payload;

use crate::envelope::Incoming;
use crate::percore::CoreState;
use crate::system::System;

/// What a suspended task waits for. `File`: the reply to a WASI file call
/// the task's WASI layer made to `fs` on its behalf (`wasi::disk`), which
/// the WASI layer reads (and may make another call) before the task resumes.
/// `Console`: WASI `fd_read` on stdin found no input; the iovecs and the
/// result pointer of that call, filled when input comes (`wasi::console`).
/// `PollConsole`: `poll_oneoff` with an FD_READ subscription on stdin and
/// maybe a clock one: its events are written when input comes or the
/// clock's `deadline` passes, whichever is first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wait {
    Recv { from: Option<TaskId>, buf: u32, cap: u32, info: u32, deadline: Option<u64> },
    Reply { call: u64, buf: u32, cap: u32, deadline: Option<u64> },
    Sleep { deadline: u64 },
    File { call: u64 },
    Console { iovs: u32, n: u32, read: u32 },
    PollConsole { events: u32, nevents: u32, stdin: u64, clock: Option<(u64, u64)> },
}

impl Wait {
    pub fn deadline(&self) -> Option<u64> {
        match *self {
            Wait::Recv { deadline, .. } => deadline,
            Wait::Sleep { deadline } => Some(deadline),
            Wait::Reply { deadline, .. } => deadline,
            Wait::File { .. } | Wait::Console { .. } => None,
            Wait::PollConsole { clock, .. } => clock.map(|(deadline, _)| deadline),
        }
    }
}

/// The host error a blocking system call returns to suspend its task.
#[derive(Debug)]
pub(crate) struct Blocked;

impl core::fmt::Display for Blocked {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("task blocked in a system call")
    }
}

impl wasmi::errors::HostError for Blocked {}

/// A sender with items in a task's inbox (fair receive).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sender {
    id: TaskId,
    queued: u32,
    /// When it was last served; 0 = not since it last had nothing queued.
    served: u64,
}

/// Per-task state reachable from its own system calls (`Caller::data`).
pub struct TaskData {
    pub(crate) id: TaskId,
    pub(crate) name: String,
    pub(crate) core: usize,
    pub(crate) system: Arc<System>,
    pub(crate) state: Rc<RefCell<CoreState>>,
    pub(crate) memory: Option<Memory>,
    pub(crate) limits: crate::quota::MemoryBudget,
    /// Bytes of one-way items this task sent that are still queued
    /// somewhere (`Config::max_queued_bytes`).
    pub(crate) queued: Arc<crate::quota::SharedBudget>,
    /// Live children (spawned, exit not yet delivered).
    pub(crate) children: u32,
    pub(crate) handles: HandleTable,
    pub(crate) inbox: VecDeque<Incoming>,
    pub(crate) notifications: u64,
    pub(crate) wait: Option<Wait>,
    /// Calls this task received and has not answered: token -> caller.
    /// (token, caller, call). A vector, not a map: a server holds a few
    /// unanswered calls at a time, and it keeps its capacity, so taking
    /// and answering a call allocates nothing.
    pub(crate) reply_tokens: Vec<(u32, TaskId, u64)>,
    pub(crate) next_token: u32,
    /// Sequence number of this task's outstanding `ipc_call`.
    pub(crate) next_call: u64,
    /// Fair receive: the senders with items queued, how many each, and
    /// when each was last served (a counter, not a time). See `pick`. A
    /// small vector: a few senders at a time is the normal case, and it
    /// keeps its capacity, so receiving allocates nothing.
    pub(crate) senders: Vec<Sender>,
    pub(crate) serve_clock: u64,
    /// Yielded in `ipc_reply` to a caller on its core: goes back in line
    /// right behind it rather than at the back.
    pub(crate) after_handoff: bool,
    /// The parent and the handle it holds for us.
    pub(crate) parent: Option<(TaskId, i32)>,
    /// The init task may read boot files.
    pub(crate) init: bool,
    /// The system names it may look up (`wasmos_ipc::names`).
    pub(crate) namespace: wasmos_ipc::names::Namespace,
    /// WASI state, for tasks whose module imports `wasi_snapshot_preview1`.
    pub(crate) wasi: Option<crate::wasi::Wasi>,
}

impl TaskData {
    /// Whether the kernel started this task itself (a system server, init)
    /// rather than another task: only those may use the reserves.
    pub(crate) fn is_system(&self) -> bool {
        self.parent.is_none()
    }

    /// Puts `cap` in this task's table, charging any growth of the table
    /// to the task's memory (`QUOTA_EXCEEDED`, `NO_MEMORY`).
    pub(crate) fn hold(&mut self, cap: Cap) -> Result<i32, Status> {
        self.handles.insert(cap, &mut self.limits)
    }

    /// How full the system's queue budget may be when this task sends.
    pub(crate) fn queue_ceiling(&self) -> usize {
        let config = &self.system.config;
        match self.is_system() {
            true => config.total_queued_bytes,
            false => config.total_queued_bytes.saturating_sub(config.system_queue_reserve),
        }
    }
}

/// Where a task's Wasm execution stands.
pub(crate) enum Exec {
    /// Spawned on its parent's core and in its table, not instantiated
    /// yet: that happens when it first runs (`CoreState::spawn_local`).
    /// `caps_lost`: the capabilities its parent gave did not fit in its
    /// memory budget; it ends with `OUT_OF_MEMORY` instead of starting.
    Instantiate {
        module: wasmi::Module,
        caps_lost: bool,
    },
    NotStarted(Func),
    HostTrap(ResumableCallHostTrap),
    OutOfFuel(ResumableCallOutOfFuel),
}

pub(crate) struct Task {
    pub store: Store<TaskData>,
    pub exec: Option<Exec>,
    /// The value a suspended system call returns when resumed.
    pub resume_with: i32,
    /// Fuel left of the current slice (`None`: the next run starts a new
    /// one, which happens only after the task ran out and went to the back
    /// of the queue). A slice is not renewed when the task blocks: a client
    /// and server handing the core to each other on every call would
    /// otherwise never run out, and starve every other task on the core.
    pub fuel_left: Option<u64>,
    /// `_start`, while the start function runs before it (`start.rs`).
    pub then: Option<Func>,
}

/// A core's tasks, by directory slot (the low bits of their ids, unique
/// among live tasks): finding one, taking it out to run and putting it
/// back are an index, not a map operation, and allocate nothing once the
/// table has grown to the highest slot used.
#[derive(Default)]
pub(crate) struct TaskTable {
    slots: Vec<Option<Box<Task>>>,
    len: usize,
}

impl TaskTable {
    pub fn get(&self, id: &TaskId) -> Option<&Task> {
        self.slots.get(id.slot())?.as_deref().filter(|t| t.data().id == *id)
    }

    pub fn get_mut(&mut self, id: &TaskId) -> Option<&mut Task> {
        self.slots.get_mut(id.slot())?.as_deref_mut().filter(|t| t.data().id == *id)
    }

    pub fn contains_key(&self, id: &TaskId) -> bool {
        self.get(id).is_some()
    }

    pub fn remove(&mut self, id: &TaskId) -> Option<Box<Task>> {
        self.get(id)?;
        self.len -= 1;
        self.slots[id.slot()].take()
    }

    /// Puts `task` (whose id is `id`) in its slot.
    pub fn insert(&mut self, id: TaskId, task: Box<Task>) {
        let slot = id.slot();
        if slot >= self.slots.len() {
            self.slots.resize_with(slot + 1, || None);
        }
        debug_assert!(self.slots[slot].is_none(), "two live tasks in one slot");
        self.len += self.slots[slot].is_none() as usize;
        self.slots[slot] = Some(task);
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// Every task, taken out of the table.
    pub fn into_tasks(self) -> impl Iterator<Item = Box<Task>> {
        self.slots.into_iter().flatten()
    }
}

impl Task {
    pub fn data(&self) -> &TaskData {
        self.store.data()
    }
    pub fn data_mut(&mut self) -> &mut TaskData {
        self.store.data_mut()
    }
}

/// Checks that `[ptr, ptr+len)` lies in the caller's memory (which never
/// shrinks, so the answer stays true).
pub(crate) fn check_range(ctx: &impl AsContext<Data = TaskData>, ptr: u32, len: u32) -> Result<(), Status> {
    range(ctx, ctx.as_context().data().memory, ptr, len).map(drop)
}

/// Checks that `[ptr, ptr+len)` lies in the task's memory.
fn range(
    ctx: &impl AsContext<Data = TaskData>,
    memory: Option<Memory>,
    ptr: u32,
    len: u32,
) -> Result<(Memory, usize, usize), Status> {
    let memory = memory.ok_or(Status::BadPointer)?;
    let start = ptr as usize;
    let end = start.checked_add(len as usize).ok_or(Status::BadPointer)?;
    if end > memory.data_size(ctx) {
        return Err(Status::BadPointer);
    }
    Ok((memory, start, end))
}

/// Copies `len` bytes out of the task's memory.
pub(crate) fn read_bytes(ctx: &impl AsContext<Data = TaskData>, ptr: i32, len: i32) -> Result<Vec<u8>, Status> {
    if ptr < 0 || len < 0 {
        return Err(Status::BadPointer);
    }
    let memory = ctx.as_context().data().memory;
    let (memory, start, end) = range(ctx, memory, ptr as u32, len as u32)?;
    // Up to a whole linear memory (a binary for `task_spawn`): fallible.
    let mut bytes = Vec::new();
    bytes.try_reserve_exact(end - start).map_err(|_| Status::NoMemory)?;
    bytes.extend_from_slice(&memory.data(ctx)[start..end]);
    Ok(bytes)
}

/// Copies a message payload (at most `MAX_PAYLOAD` bytes, else
/// `TOO_LARGE`) out of the task's memory; small ones need no allocation.
pub(crate) fn read_payload(ctx: &impl AsContext<Data = TaskData>, ptr: i32, len: i32) -> Result<Payload, Status> {
    if len as usize > wasmos_ipc::abi::MAX_PAYLOAD {
        return Err(Status::TooLarge);
    }
    if ptr < 0 || len < 0 {
        return Err(Status::BadPointer);
    }
    let memory = ctx.as_context().data().memory;
    let (memory, start, end) = range(ctx, memory, ptr as u32, len as u32)?;
    Payload::copy_from(&memory.data(ctx)[start..end])
}

/// Copies `bytes` into the task's memory at `ptr`.
pub(crate) fn write_bytes(ctx: &mut impl AsContextMut<Data = TaskData>, ptr: u32, bytes: &[u8]) -> Result<(), Status> {
    let memory = ctx.as_context().data().memory;
    let (memory, start, end) = range(ctx, memory, ptr, bytes.len() as u32)?;
    memory.data_mut(ctx)[start..end].copy_from_slice(bytes);
    Ok(())
}

/// Writes the answer to an `ipc_call` into the caller's reply buffer and
/// returns what its `ipc_call` returns: the reply's length, or a status.
pub(crate) fn write_reply(
    ctx: &mut impl AsContextMut<Data = TaskData>,
    buf: u32,
    cap: u32,
    result: Result<Payload, Status>,
) -> i32 {
    match result {
        Ok(payload) if payload.len() > cap as usize => Status::TooLarge.code(),
        Ok(payload) => match write_bytes(ctx, buf, payload.as_slice()) {
            Ok(()) => payload.len() as i32,
            Err(e) => e.code(),
        },
        Err(status) => status.code(),
    }
}

/// If the inbox holds something that satisfies `ipc_recv(from, ...)`,
/// copies it into the task's memory and returns the call's result (length
/// or error). `None` = nothing to receive yet.
pub(crate) fn try_receive(
    ctx: &mut impl AsContextMut<Data = TaskData>,
    from: Option<TaskId>,
    buf: u32,
    cap: u32,
    info_ptr: u32,
) -> Option<i32> {
    let step = take_incoming(ctx.as_context_mut().data_mut(), from, cap);
    let (info, payload) = match step {
        Take::Nothing => return None,
        Take::Error(status) => return Some(status.code()),
        Take::TooLarge(info) => {
            // Left queued: the receiver can retry with a bigger buffer.
            let _ = write_info(ctx, info_ptr, &info);
            return Some(Status::TooLarge.code());
        }
        Take::Got(info, payload) => (info, payload),
    };
    if let Err(e) = write_bytes(ctx, buf, payload.as_slice()).and_then(|_| write_info(ctx, info_ptr, &info)) {
        return Some(e.code());
    }
    Some(payload.len() as i32)
}

enum Take {
    Nothing,
    Error(Status),
    TooLarge(RecvInfo),
    Got(RecvInfo, Payload),
}

/// Picks what `ipc_recv` receives: pending notification bits first, then
/// the oldest inbox item that passes the sender filter. An item that does
/// not fit (payload longer than `cap`, or a capability with it and a full
/// handle table) stays queued and the receiver gets the error.
/// Which inbox item `ipc_recv` takes: with a sender filter, the oldest
/// match; without, the oldest item of the sender served least recently
/// (items with no sender task first). So each sender's items arrive in
/// order, and senders share the receiver fairly: a task flooding a server
/// with messages cannot push a client's call to the back of a full inbox.
/// A sender with nothing queued is forgotten, so a client's next call
/// goes ahead of a flood (like a new flow in fair queueing). With one
/// sender (the common case) this is plain FIFO at O(1).
fn pick(data: &TaskData, from: Option<TaskId>) -> Option<usize> {
    let first = data.inbox.front()?;
    if from.is_some() {
        return data.inbox.iter().position(|m| m.sender().is_none() || m.sender() == from);
    }
    if first.sender().is_none() || data.senders.len() <= 1 {
        return Some(0);
    }
    // Items with no sender (grants, exits) cannot wait behind anyone.
    if data.senders.iter().map(|s| s.queued as usize).sum::<usize>() < data.inbox.len() {
        return data.inbox.iter().position(|m| m.sender().is_none());
    }
    let next = data.senders.iter().min_by_key(|s| s.served)?.id;
    data.inbox.iter().position(|m| m.sender() == Some(next))
}

impl TaskData {
    /// Takes a delivered item: notification bits are OR-ed in, a child's
    /// exit lowers the count of live children, the rest is queued.
    pub(crate) fn accept(&mut self, item: Incoming) {
        match item {
            Incoming::Notification { bits } => self.notifications |= bits,
            item => {
                if let Incoming::ChildExit { .. } = item {
                    self.children = self.children.saturating_sub(1);
                }
                self.push_incoming(item)
            }
        }
    }

    /// Queues an item in the inbox (keeping the per-sender counts).
    pub(crate) fn push_incoming(&mut self, item: Incoming) {
        if let Some(id) = item.sender() {
            match self.senders.iter_mut().find(|s| s.id == id) {
                Some(s) => s.queued += 1,
                None => self.senders.push(Sender { id, queued: 1, served: 0 }),
            }
        }
        self.inbox.push_back(item);
    }
}

/// Records that `sender` was just served, and forgets senders that have
/// nothing queued any more.
fn served(data: &mut TaskData, sender: Option<TaskId>) {
    let Some(i) = sender.and_then(|id| data.senders.iter().position(|s| s.id == id)) else { return };
    data.serve_clock += 1;
    let s = &mut data.senders[i];
    s.queued -= 1;
    s.served = data.serve_clock;
    if s.queued == 0 {
        data.senders.swap_remove(i);
    }
}

fn take_incoming(data: &mut TaskData, from: Option<TaskId>, cap: u32) -> Take {
    let mut info = RecvInfo::default();
    if data.notifications != 0 {
        info.kind = Kind::Notification as u32;
        info.bits = core::mem::take(&mut data.notifications);
        return Take::Got(info, Payload::EMPTY);
    }
    let Some(index) = pick(data, from) else {
        return Take::Nothing;
    };
    let (len, transfer) = match &data.inbox[index] {
        Incoming::Message { msg, .. } => (msg.payload.len(), msg.transfer),
        // `ipc_call` carries no capability (its info field holds the token).
        Incoming::Call { msg, .. } => (msg.payload.len(), None),
        Incoming::Grant { cap, .. } => (0, Some(*cap)),
        _ => (0, None),
    };
    if len > cap as usize {
        info.len = len as u32;
        return Take::TooLarge(info);
    }
    // Take a slot for a transferred capability before dequeuing, so a full
    // table leaves the message (and its capability) queued, not lost.
    let new_handle = match transfer.map(|c| data.hold(c)) {
        None => 0,
        Some(Ok(handle)) => handle as u32,
        Some(Err(e)) => return Take::Error(e),
    };
    let item = data.inbox.remove(index).expect("index from position");
    served(data, item.sender());
    if matches!(item, Incoming::Message { .. } | Incoming::Grant { .. }) {
        data.system.directory.received(data.id);
    }
    let (info, payload) = match item {
        // Messages and calls carry the sender's task id in `bits`: a server
        // keys per-client state on it (ids are never reused).
        Incoming::Message { from, msg, .. } => {
            (RecvInfo { bits: from.0, ..msg.info(Kind::Message, new_handle) }, msg.payload)
        }
        Incoming::Call { from, msg, call } => {
            let token = data.next_token.max(1);
            data.next_token = token.wrapping_add(1);
            data.reply_tokens.push((token, from, call));
            (RecvInfo { bits: from.0, ..msg.info(Kind::Call, token) }, msg.payload)
        }
        Incoming::Grant { badge, .. } => {
            (RecvInfo { kind: Kind::Grant as u32, badge, reply_token: new_handle, ..info }, Payload::EMPTY)
        }
        Incoming::ChildExit { child_handle, bits } => {
            (RecvInfo { kind: Kind::ChildExit as u32, badge: child_handle as u32, bits, ..info }, Payload::EMPTY)
        }
        Incoming::Notification { bits } => (RecvInfo { kind: Kind::Notification as u32, bits, ..info }, Payload::EMPTY),
    };
    Take::Got(info, payload)
}

fn write_info(ctx: &mut impl AsContextMut<Data = TaskData>, ptr: u32, info: &RecvInfo) -> Result<(), Status> {
    if ptr == 0 { Ok(()) } else { write_bytes(ctx, ptr, &info.to_bytes()) }
}
