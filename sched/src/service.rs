//! Native services: endpoints written in Rust by the platform, reached by
//! Wasm tasks through the ordinary IPC ABI.
//!
//! Some servers need what a Wasm task cannot have: the TCP/IP server needs
//! a network device on bare metal (DMA, MMIO) and the host's sockets in the
//! hosted runtime. Such a server is a [`NativeService`]: it gets a task id
//! and a name in the name service like any task, so a Wasm program finds
//! it with `service_lookup` and talks to it with `ipc_send` / `ipc_call`,
//! and cannot tell it from a Wasm server. That is what keeps programs
//! portable: the kernel registers a service backed by smoltcp + virtio-net,
//! the hosted runtime one backed by `std::net`, and the same `.wasm` file
//! talks to either.
//!
//! A native service lives on one core, owned by that core's scheduler like
//! a task, so it needs no locks: the scheduler hands it what arrived
//! ([`NativeService::receive`]) and lets it do device work
//! ([`NativeService::poll`]) when it asked to be polled. It may hold calls
//! and answer them later (a blocking `recv` on a socket), with
//! [`NativeCtx::reply`]. It never dies; a caller that dies while waiting
//! simply never reads the reply.

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::sync::Arc;
use core::sync::atomic::Ordering;

use wasmos_ipc::abi::Status;
use wasmos_ipc::ids::TaskId;
use wasmos_ipc::message::{Message, Payload};

use crate::envelope::{Envelope, Incoming};
use crate::percore::CoreState;
use crate::system::System;

/// A server implemented natively. See the module documentation.
pub trait NativeService: Send {
    /// One message or call sent to the service. A call
    /// (`request.reply.is_some()`) must be answered exactly once, now or
    /// later, with [`NativeCtx::reply`], or its caller waits forever.
    fn receive(&mut self, ctx: &mut NativeCtx<'_>, request: Request);

    /// Device and timer work. Returns the time (ns, the system clock) by
    /// which it wants to be polled again, or `None` if only a new request
    /// can give it work. Called when a request arrived or the time it asked
    /// for has come; return `Some(0)` to be polled on every scheduler round.
    fn poll(&mut self, ctx: &mut NativeCtx<'_>) -> Option<u64>;
}

/// Where the answer to a call goes. Not `Clone`: one answer per call.
#[derive(Debug, PartialEq, Eq)]
pub struct ReplyTo {
    to: TaskId,
    call: u64,
}

impl ReplyTo {
    /// The task that made the call.
    pub fn caller(&self) -> TaskId {
        self.to
    }
}

/// A message or call for a native service.
#[derive(Debug)]
pub struct Request {
    /// The sending task (a service keys per-client state on it).
    pub from: TaskId,
    /// The badge of the capability the sender used.
    pub badge: u32,
    pub payload: Payload,
    /// `Some` for an `ipc_call`: where the reply goes.
    pub reply: Option<ReplyTo>,
}

/// What a native service may do while it runs.
pub struct NativeCtx<'a> {
    pub(crate) state: &'a mut CoreState,
    /// The service's own task id (the sender of what it sends).
    pub(crate) id: TaskId,
}

impl NativeCtx<'_> {
    pub fn now_ns(&self) -> u64 {
        self.state.sys().now_ns()
    }

    /// The core the service runs on.
    pub fn core(&self) -> usize {
        self.state.core()
    }

    pub fn system(&self) -> &Arc<System> {
        self.state.sys()
    }

    /// Answers a call: `Ok(bytes)` is the reply payload (at most
    /// `MAX_PAYLOAD` bytes, else the caller gets `TOO_LARGE`), `Err` the
    /// status the caller's `ipc_call` returns.
    pub fn reply(&mut self, to: ReplyTo, result: Result<&[u8], Status>) {
        let result = result.and_then(Payload::copy_from);
        self.state.route(Envelope::Reply { to: to.to, call: to.call, result });
    }

    /// Sends a one-way message to `to` (a task or another service), with
    /// the same bounds as `ipc_send`: `WOULD_BLOCK` when `to` has
    /// `INBOX_CAPACITY` items queued or the ring to its core is full,
    /// `DEAD_TARGET` when it is gone, `TOO_LARGE` over `MAX_PAYLOAD`,
    /// `NO_MEMORY` when the system's queue budget is full (a service may
    /// use all of it, the reserve too; see `Config::total_queued_bytes`).
    pub fn send(&mut self, to: TaskId, bytes: &[u8]) -> Result<(), Status> {
        if bytes.len() > wasmos_ipc::abi::MAX_PAYLOAD {
            return Err(Status::TooLarge);
        }
        let sys = self.state.sys().clone();
        let charge = crate::quota::QueueCharge::take(
            None,
            &sys.queued,
            sys.config.total_queued_bytes,
            crate::system::QUEUED_ITEM_OVERHEAD + bytes.len(),
        )?;
        let payload = Payload::copy_from(bytes)?;
        let core = sys.reserve(to)?;
        let msg = Message::new(0, payload);
        self.state.send_one_way(core, to, Incoming::Message { from: self.id, msg, _charge: charge })
    }

    /// Whether `task` is still alive (a service drops what a dead client
    /// held: its sockets, its pending calls).
    pub fn is_alive(&self, task: TaskId) -> bool {
        self.state.sys().core_of(task).is_some()
    }
}

/// A native service on its core, with what arrived for it.
pub(crate) struct NativeSlot {
    /// Taken out while it runs (it gets the core's state to work with).
    service: Option<Box<dyn NativeService>>,
    inbox: VecDeque<Incoming>,
    /// When it wants to be polled next (`None`: only on a request).
    next_poll: Option<u64>,
}

/// Start request for a native service, sent to its core's ring.
pub(crate) struct NativeStart {
    pub id: TaskId,
    pub service: Box<dyn NativeService>,
}

impl NativeSlot {
    pub fn new(start: NativeStart) -> NativeSlot {
        // Polled once at start, so it can bring up its device.
        NativeSlot { service: Some(start.service), inbox: VecDeque::new(), next_poll: Some(0) }
    }

    pub fn push(&mut self, item: Incoming) {
        self.inbox.push_back(item);
    }

    /// Whether it has work now: a request, or its poll time has come.
    pub fn due(&self, now: u64) -> bool {
        !self.inbox.is_empty() || self.next_poll.is_some_and(|t| t <= now)
    }

    /// The service and what arrived for it, taken out to run, if it is
    /// due (it goes back in with its next poll time after).
    fn take_if_due(&mut self, now: u64) -> Option<(Box<dyn NativeService>, VecDeque<Incoming>)> {
        if !self.due(now) {
            return None;
        }
        let service = self.service.take()?;
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
pub(crate) fn run(state: &mut CoreState, id: TaskId) {
    let now = state.sys().now_ns();
    let Some((mut service, inbox)) = state.native_mut(id).and_then(|slot| slot.take_if_due(now)) else { return };
    let mut ctx = NativeCtx { state, id };
    for item in inbox {
        let request = match item {
            Incoming::Message { from, msg, .. } => {
                ctx.state.sys().directory.received(id);
                Request { from, badge: msg.badge, payload: msg.payload, reply: None }
            }
            Incoming::Call { from, msg, call } => {
                Request { from, badge: msg.badge, payload: msg.payload, reply: Some(ReplyTo { to: from, call }) }
            }
            // A capability granted to a service has nowhere to go: services
            // hold no handle table. Notifications and exit reports carry
            // nothing a service acts on.
            Incoming::Grant { .. } => {
                ctx.state.sys().directory.received(id);
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

/// The `sysinfo` service ([`wasmos_ipc::sysinfo`]): answers every call
/// with the uptime and each core's live tasks, deliveries and slices.
/// Both platforms start it, so programs can report on the system they run
/// on without knowing which one it is.
pub struct SysInfo;

impl NativeService for SysInfo {
    fn receive(&mut self, ctx: &mut NativeCtx<'_>, request: Request) {
        let Some(reply) = request.reply else { return };
        let sys = ctx.system().clone();
        let cores = (0..sys.cores()).map(|c| {
            let s = sys.stats(c);
            wasmos_ipc::sysinfo::CoreInfo {
                tasks: s.tasks.load(Ordering::Relaxed) as u32,
                delivered: s.delivered.load(Ordering::Relaxed),
                switches: s.switches.load(Ordering::Relaxed),
            }
        });
        let mut out = alloc::vec![0u8; wasmos_ipc::sysinfo::reply_len(sys.cores())];
        let len = wasmos_ipc::sysinfo::encode(sys.now_ns(), cores, &mut out);
        ctx.reply(reply, Ok(&out[..len]));
    }

    fn poll(&mut self, _ctx: &mut NativeCtx<'_>) -> Option<u64> {
        None
    }
}
