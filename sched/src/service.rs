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
use alloc::vec::Vec;
use core::sync::atomic::AtomicBool;

use wasmos_ipc::abi::Status;
use wasmos_ipc::ids::TaskId;
use wasmos_ipc::message::Payload;
use wasmos_ipc::sysinfo::CoreInfo;

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

    /// A flag its device's interrupt handler sets (a driver with a routed
    /// interrupt): while it is set the service is due, and the scheduler
    /// clears it right before it polls the service, so an interrupt during
    /// that poll makes it due again. Asked once, when the service starts.
    /// The core's idle check reads it with interrupts off, so an interrupt
    /// that sets it after the check still wakes the halted core.
    fn doorbell(&self) -> Option<&'static AtomicBool> {
        None
    }
}

/// Where the answer to a call goes. Not `Clone`: one answer per call.
#[derive(Debug, PartialEq, Eq)]
pub struct ReplyTo {
    pub(crate) to: TaskId,
    pub(crate) call: u64,
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

/// What a service's core does for it: implemented by the core's state
/// (`percore`), reached through [`NativeCtx`]. A narrow interface, so a
/// service sees only what it may use, and this module needs nothing of
/// the scheduler (one indirect call per use; services are not on the
/// Wasm tasks' fast path).
pub(crate) trait ServiceHost {
    fn now_ns(&self) -> u64;
    fn core(&self) -> usize;
    /// Routes the answer to `call` of `to`, wherever `to` lives.
    fn reply(&mut self, to: TaskId, call: u64, result: Result<Payload, Status>);
    /// A one-way message from the service `from`; see [`NativeCtx::send`].
    fn send(&mut self, from: TaskId, to: TaskId, bytes: &[u8]) -> Result<(), Status>;
    fn is_alive(&self, task: TaskId) -> bool;
    /// Each core's counters, for `sysinfo`.
    fn core_info(&self) -> Vec<CoreInfo>;
}

/// What a native service may do while it runs.
pub struct NativeCtx<'a> {
    pub(crate) host: &'a mut dyn ServiceHost,
    /// The service's own task id (the sender of what it sends).
    pub(crate) id: TaskId,
}

impl NativeCtx<'_> {
    pub fn now_ns(&self) -> u64 {
        self.host.now_ns()
    }

    /// The core the service runs on.
    pub fn core(&self) -> usize {
        self.host.core()
    }

    /// Answers a call: `Ok(bytes)` is the reply payload (at most
    /// `MAX_PAYLOAD` bytes, else the caller gets `TOO_LARGE`), `Err` the
    /// status the caller's `ipc_call` returns.
    pub fn reply(&mut self, to: ReplyTo, result: Result<&[u8], Status>) {
        let result = result.and_then(Payload::copy_from);
        self.host.reply(to.to, to.call, result);
    }

    /// Sends a one-way message to `to` (a task or another service), with
    /// the same bounds as `ipc_send`: `WOULD_BLOCK` when `to` has
    /// `INBOX_CAPACITY` items queued or the ring to its core is full,
    /// `DEAD_TARGET` when it is gone, `TOO_LARGE` over `MAX_PAYLOAD`,
    /// `NO_MEMORY` when the system's queue budget is full (a service may
    /// use all of it, the reserve too; see `Config::total_queued_bytes`).
    pub fn send(&mut self, to: TaskId, bytes: &[u8]) -> Result<(), Status> {
        self.host.send(self.id, to, bytes)
    }

    /// Whether `task` is still alive (a service drops what a dead client
    /// held: its sockets, its pending calls).
    pub fn is_alive(&self, task: TaskId) -> bool {
        self.host.is_alive(task)
    }
}

/// Start request for a native service, sent to its core's ring.
pub(crate) struct NativeStart {
    pub id: TaskId,
    pub service: Box<dyn NativeService>,
}

/// The `sysinfo` service ([`wasmos_ipc::sysinfo`]): answers every call
/// with the uptime and each core's live tasks, deliveries and slices.
/// Both platforms start it, so programs can report on the system they run
/// on without knowing which one it is.
pub struct SysInfo;

impl NativeService for SysInfo {
    fn receive(&mut self, ctx: &mut NativeCtx<'_>, request: Request) {
        let Some(reply) = request.reply else { return };
        let cores = ctx.host.core_info();
        let mut out = alloc::vec![0u8; wasmos_ipc::sysinfo::reply_len(cores.len())];
        let len = wasmos_ipc::sysinfo::encode(ctx.now_ns(), cores.into_iter(), &mut out);
        ctx.reply(reply, Ok(&out[..len]));
    }

    fn poll(&mut self, _ctx: &mut NativeCtx<'_>) -> Option<u64> {
        None
    }
}
