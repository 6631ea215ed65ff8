//! The `wasmos` import module: every system call, as a host function.
//!
//! Calls that can answer at once do so and return (a plain function call,
//! no suspension). Calls that must wait record a [`Wait`] and return the
//! [`Blocked`] host error; the scheduler resumes them later with their
//! result. Signatures and error codes are documented in
//! [`wasmos_ipc::abi`].

use alloc::string::String;
use alloc::vec::Vec;

use wasmi::{Caller, Engine, Error, Linker};
use wasmos_ipc::abi::{self, MAX_PAYLOAD, Status};
use wasmos_ipc::caps::{Cap, Rights};
use wasmos_ipc::ids::TaskId;
use wasmos_ipc::message::{Message, Payload};
use wasmos_ipc::names::{self, Namespace};

use crate::envelope::{Envelope, Incoming, SpawnRequest};
use crate::platform::Stream;
use crate::task::{self, Blocked, TaskData, Wait};

pub use crate::imports::provides;

type Ctx<'a> = Caller<'a, TaskData>;

/// Fuel a system call costs, on top of the instructions around it. The
/// interpreter meters only Wasm instructions; without a price for host
/// work, a task that does nothing but make system calls (a message flood,
/// a handle forger) would run many times longer per slice than one that
/// computes, and hold up its core's other tasks that much longer. Cheap
/// queries (`time_now_ns`, `core_id`, `core_count`) are free.
const SYSCALL_FUEL: u64 = 100;

pub(crate) fn charge(caller: &mut Ctx) {
    charge_more(caller, SYSCALL_FUEL)
}

fn charge_more(caller: &mut Ctx, fuel: u64) {
    if let Ok(left) = caller.get_fuel() {
        let _ = caller.set_fuel(left.saturating_sub(fuel));
    }
}

/// Fuel a successful `task_spawn` costs on top of [`SYSCALL_FUEL`], plus
/// one per [`SPAWN_BYTES_PER_FUEL`] bytes of the binary: the child's
/// instantiation (its store, its memory, zeroed) is work for its core that
/// the interpreter does not meter, so a spawn bomb pays for it in its own
/// slice and cannot crowd out the tasks beside it.
const SPAWN_FUEL: u64 = 5_000;
const SPAWN_BYTES_PER_FUEL: u64 = 16;

/// Turns a status-or-value into the i32 the guest sees.
fn code(r: Result<i32, Status>) -> Result<i32, Error> {
    Ok(r.unwrap_or_else(Status::code))
}

fn block<T>(caller: &mut Ctx, wait: Wait) -> Result<T, Error> {
    caller.data_mut().wait = Some(wait);
    Err(Error::host(Blocked))
}

/// Longest service name, or task argv (`task_spawn`), in bytes.
const MAX_NAME: i32 = 1024;

/// Charges a one-way item with a payload of `len` bytes to the calling
/// task and to the system's queue budget (see `quota::QueueCharge`), before
/// anything is copied: `WOULD_BLOCK` when the caller has
/// `Config::max_queued_bytes` in flight, `NO_MEMORY` when the system's
/// queues are full (ordinary tasks stop short of the system's reserve).
fn queue_charge(caller: &Ctx, to: TaskId, len: i32) -> Result<crate::quota::QueueCharge, Status> {
    let data = caller.data();
    // A full inbox is refused before anything is charged: a flooder
    // retrying on `WOULD_BLOCK` then costs its core no more than before.
    if data.system.directory.queued(to) >= abi::INBOX_CAPACITY {
        return Err(Status::WouldBlock);
    }
    let bytes = crate::system::QUEUED_ITEM_OVERHEAD + (len.clamp(0, MAX_PAYLOAD as i32) as usize);
    let sys = &data.system;
    crate::quota::QueueCharge::take(Some(&data.queued), &sys.queued, data.queue_ceiling(), bytes)
}

fn name_bytes(caller: &Ctx, ptr: i32, len: i32) -> Result<Vec<u8>, Status> {
    if len > MAX_NAME {
        return Err(Status::InvalidArgument);
    }
    task::read_bytes(caller, ptr, len)
}

/// The capability `handle` names for passing on (`service_register`,
/// `cap_mint`): `0` is the caller itself (send and grant, badge 0), any
/// other handle needs GRANT.
fn passable(caller: &Ctx, handle: i32) -> Result<Cap, Status> {
    if handle == 0 {
        Ok(Cap { target: caller.data().id, badge: 0, rights: Rights::ENDPOINT })
    } else {
        caller.data().handles.get(handle, Rights::GRANT)
    }
}

fn payload(caller: &Ctx, ptr: i32, len: i32) -> Result<Payload, Status> {
    task::read_payload(caller, ptr, len)
}

/// Queues a one-way item (message, grant, notification) for `to` on
/// behalf of the calling task: on this core straight into the target's
/// inbox, on another core into that core's ring. Never blocks: a target
/// with [`abi::INBOX_CAPACITY`] items already queued (counted across all
/// cores, see `System::reserve`), or a full ring, is `WOULD_BLOCK`.
/// Notifications take no place: their bits are OR-ed into a word.
fn send(caller: &mut Ctx, to: TaskId, item: Incoming) -> Result<i32, Status> {
    let me = caller.data().id;
    let sys = caller.data().system.clone();
    let counted = !matches!(item, Incoming::Notification { .. });
    let core = if counted { sys.reserve(to)? } else { sys.core_of(to).ok_or(Status::DeadTarget)? };
    if to == me {
        let data = caller.data_mut();
        match item {
            Incoming::Notification { bits } => data.notifications |= bits,
            item => data.push_incoming(item),
        }
        return Ok(0);
    }
    let state = caller.data().state.clone();
    let mut st = state.borrow_mut();
    st.send_one_way(core, to, item).map(|()| 0)
}

/// Queues a call for `to`. Unlike [`send`], a full queue is not an error:
/// the caller blocks anyway until the reply, so a request that finds the
/// ring to the target's core full waits in this core's outbox (retried on
/// every poll) with the caller suspended. Calls take no inbox place: each
/// task has at most one outstanding, so they are bounded by the number of
/// tasks. A target that dies meanwhile answers `DEAD_TARGET`.
fn send_call(caller: &mut Ctx, to: TaskId, item: Incoming) -> Result<(), Status> {
    let sys = caller.data().system.clone();
    let core = sys.core_of(to).ok_or(Status::DeadTarget)?;
    caller.data().state.borrow_mut().route_to(core, Envelope::Deliver { to, item });
    Ok(())
}

/// How long a task may wait for an answer from another core inside its
/// own system call (`ipc_call`, `ipc_recv`) before it suspends: about
/// four cross-core round trips under TCG, a few hundred on hardware.
pub const SPIN_NS: u64 = 20_000;

/// Spin, then block: while no other task on this core could run
/// (`CoreState::only_running`), for at most [`SPIN_NS`] (or until
/// `deadline`), drains this core's ring from inside the system call and
/// asks `found` whether what the caller waits for is there. A suspension
/// and a resumption cost more than a cross-core round trip, and a core
/// that stays awake needs no IPI to be woken, so an answer that comes
/// within microseconds is taken here. Never while a hand-off is in
/// progress (the task's caller waits for it to block), and never past
/// the moment another task on the core becomes ready.
fn spin<T>(caller: &mut Ctx, deadline: Option<u64>, mut found: impl FnMut(&mut Ctx) -> Option<T>) -> Option<T> {
    let sys = caller.data().system.clone();
    let state = caller.data().state.clone();
    let until = sys.now_ns().saturating_add(SPIN_NS).min(deadline.unwrap_or(u64::MAX));
    loop {
        let now = sys.now_ns();
        if now >= until || !state.borrow().only_running(now) {
            return None;
        }
        state.borrow_mut().drain_ring_for(caller.data_mut());
        if let Some(answer) = found(caller) {
            return Some(answer);
        }
        core::hint::spin_loop();
    }
}

fn ipc_send(mut caller: Ctx, handle: i32, ptr: i32, len: i32) -> Result<i32, Error> {
    charge(&mut caller);
    let r = (|| {
        let cap = caller.data().handles.get(handle, Rights::SEND)?;
        let charge = queue_charge(&caller, cap.target, len)?;
        let payload = payload(&caller, ptr, len)?;
        let from = caller.data().id;
        send(
            &mut caller,
            cap.target,
            Incoming::Message { from, msg: Message::new(cap.badge, payload), _charge: charge },
        )
    })();
    code(r)
}

/// `ipc_send` with a capability: a copy of `transfer` (which needs GRANT)
/// travels in the same message; the receiver finds its new handle in
/// `RecvInfo::reply_token`.
fn ipc_send_cap(mut caller: Ctx, handle: i32, ptr: i32, len: i32, transfer: i32) -> Result<i32, Error> {
    charge(&mut caller);
    let r = (|| {
        let cap = caller.data().handles.get(handle, Rights::SEND)?;
        let granted = caller.data().handles.get(transfer, Rights::GRANT)?;
        let charge = queue_charge(&caller, cap.target, len)?;
        let payload = payload(&caller, ptr, len)?;
        let from = caller.data().id;
        let msg = Message { badge: cap.badge, payload, transfer: Some(granted) };
        send(&mut caller, cap.target, Incoming::Message { from, msg, _charge: charge })
    })();
    code(r)
}

/// A call and its reply, every step in this function and [`handoff`]:
/// 1. check the handle (SEND) and the buffers, copy the request out;
/// 2. the callee waits in `ipc_recv` on this core: hand the core to it
///    inside this host call ([`handoff`]); if it answers before it blocks
///    again, return the answer now: the caller never suspends;
/// 3. otherwise queue the call (this core's task table, or the ring of the
///    callee's core, read off its id); if this core has nothing else to
///    run, wait for the answer here a few microseconds ([`spin`]);
/// 4. else suspend the caller with [`Wait::Reply`]; the reply resumes it
///    (`CoreState::deliver_local`), or its deadline does (`TIMED_OUT`).
fn ipc_call(caller: Ctx, handle: i32, ptr: i32, len: i32, buf: i32, cap: i32) -> Result<i32, Error> {
    ipc_call_timeout(caller, handle, ptr, len, buf, cap, abi::FOREVER)
}

/// [`ipc_call`] that gives up after `timeout_ns` (`-1` never, `0` unless
/// answered within the call by a hand-off). A reply that comes after the
/// caller gave up is discarded.
#[allow(clippy::too_many_arguments)]
fn ipc_call_timeout(
    mut caller: Ctx,
    handle: i32,
    ptr: i32,
    len: i32,
    buf: i32,
    cap: i32,
    timeout_ns: i64,
) -> Result<i32, Error> {
    charge(&mut caller);
    let deadline = (timeout_ns > 0).then(|| caller.data().system.now_ns().saturating_add(timeout_ns as u64));
    let r = (|| {
        let target = caller.data().handles.get(handle, Rights::SEND)?;
        if buf < 0 || cap < 0 {
            return Err(Status::BadPointer);
        }
        if timeout_ns < abi::FOREVER {
            return Err(Status::InvalidArgument);
        }
        let payload = payload(&caller, ptr, len)?;
        start_call(&mut caller, target, payload, deadline)
    })();
    match r {
        Ok((_, Some(answer))) => Ok(task::write_reply(&mut caller, buf as u32, cap as u32, answer)),
        Ok((_, None)) if timeout_ns == 0 => Ok(Status::TimedOut.code()),
        Ok((call, None)) => block(&mut caller, Wait::Reply { call, buf: buf as u32, cap: cap as u32, deadline }),
        Err(e) => Ok(e.code()),
    }
}

/// Steps 2 and 3 of [`ipc_call`]: sends `payload` to `target` as a call
/// of the calling task; returns the call's number and its answer if it
/// came within the system call (a hand-off, or a short [`spin`]). The WASI
/// layer makes its file calls to `fs` through this too.
pub(crate) fn start_call(
    caller: &mut Ctx,
    target: Cap,
    payload: Payload,
    deadline: Option<u64>,
) -> Result<(u64, Option<Result<Payload, Status>>), Status> {
    let me = caller.data().id;
    if target.target == me {
        // Nobody could ever answer.
        return Err(Status::InvalidArgument);
    }
    let call = caller.data().next_call;
    caller.data_mut().next_call += 1;
    let item = Incoming::Call { from: me, msg: Message::new(target.badge, payload), call };
    match handoff(caller, target.target, item, call) {
        Ok(answer) => Ok((call, answer)),
        Err(item) => {
            send_call(caller, target.target, item)?;
            let state = caller.data().state.clone();
            Ok((call, spin(caller, deadline, |_| state.borrow_mut().take_reply(me, call))))
        }
    }
}

/// Same-core direct hand-off: if `to` is a task on this core waiting in
/// `ipc_recv` for what `item` is, receives `item` into it and runs it
/// right here, inside the caller's host call, until it blocks again (in
/// its next `ipc_recv`, typically), runs out of fuel or ends. Returns the
/// answer to `call` if it came meanwhile (or `DEAD_TARGET` if the callee
/// died), `None` if not yet; gives `item` back when a hand-off is not
/// possible: the callee is busy, a native service, on another core, or
/// hand-offs are nested [`System::handoff_depth`] deep.
///
/// Fuel stays fair: the callee runs on its own slice (`Task::fuel_left`),
/// not the caller's, and is queued at the back when it runs out, like any
/// task. The callee's system calls see the caller as running, so whatever
/// reaches the caller meanwhile (the reply) is held back in `deferred`.
fn handoff(
    caller: &mut Ctx,
    to: TaskId,
    item: Incoming,
    call: u64,
) -> Result<Option<Result<Payload, Status>>, Incoming> {
    let me = caller.data().id;
    let sys = caller.data().system.clone();
    let state = caller.data().state.clone();
    let Some(mut callee) = state.borrow_mut().begin_handoff(me, to, sys.handoff_depth()) else {
        return Err(item);
    };
    let Some(Wait::Recv { from, buf, cap, info, .. }) = callee.data_mut().wait.take() else { unreachable!("checked") };
    callee.data_mut().push_incoming(item);
    // Something it waits for is queued now, so this receives (the call, or
    // notification bits that were pending: then the call waits its turn).
    callee.resume_with = task::try_receive(&mut callee.store, from, buf, cap, info).unwrap_or(0);
    let stats = &sys.stats[to.core()];
    for counter in [&stats.delivered, &stats.switches, &stats.handoffs] {
        counter.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
    }
    let outcome = crate::percore::run_slice(&sys, &mut callee);
    let answer = state.borrow_mut().end_handoff(to, callee, outcome, me, call);
    if answer.is_some() {
        stats.delivered.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
    }
    Ok(answer)
}

fn ipc_recv(mut caller: Ctx, from: i32, buf: i32, cap: i32, info: i32, timeout_ns: i64) -> Result<i32, Error> {
    charge(&mut caller);
    if timeout_ns < abi::FOREVER {
        // Only -1 means forever; another negative value is a mistake.
        return Ok(Status::InvalidArgument.code());
    }
    if buf < 0 || cap < 0 || info < 0 {
        return Ok(Status::BadPointer.code());
    }
    // Buffers are checked now, not when a message arrives, so a bad one is
    // an error at once (only the first MAX_PAYLOAD bytes can ever be written).
    let buf_ok = task::check_range(&caller, buf as u32, (cap as u32).min(MAX_PAYLOAD as u32));
    let info_ok = if info == 0 { Ok(()) } else { task::check_range(&caller, info as u32, abi::RecvInfo::SIZE as u32) };
    if let Err(e) = buf_ok.and(info_ok) {
        return Ok(e.code());
    }
    let from = if from == abi::ANY {
        None
    } else {
        match caller.data().handles.get(from, Rights(0)) {
            Ok(c) => Some(c.target),
            Err(e) => return Ok(e.code()),
        }
    };
    if let Some(result) = task::try_receive(&mut caller, from, buf as u32, cap as u32, info as u32) {
        return Ok(result);
    }
    if timeout_ns == 0 {
        return Ok(Status::TimedOut.code());
    }
    let deadline = (timeout_ns > 0).then(|| caller.data().system.now_ns().saturating_add(timeout_ns as u64));
    let (buf, cap, info) = (buf as u32, cap as u32, info as u32);
    if let Some(result) = spin(&mut caller, deadline, |c| task::try_receive(c, from, buf, cap, info)) {
        return Ok(result);
    }
    block(&mut caller, Wait::Recv { from, buf, cap, info, deadline })
}

fn ipc_reply(mut caller: Ctx, token: i32, ptr: i32, len: i32) -> Result<i32, Error> {
    charge(&mut caller);
    let r = (|| {
        let payload = payload(&caller, ptr, len)?;
        let tokens = &mut caller.data_mut().reply_tokens;
        let at = tokens.iter().position(|t| t.0 == token as u32).ok_or(Status::NoCaller)?;
        let (_, to, call) = tokens.swap_remove(at);
        let sys = caller.data().system.clone();
        if sys.core_of(to).is_none() {
            return Err(Status::DeadTarget);
        }
        let state = caller.data().state.clone();
        let mut st = state.borrow_mut();
        st.route(Envelope::Reply { to, call, result: Ok(payload) });
        // On this core the caller is in the core's own table (it waits for
        // this reply): no second look at the shared directory.
        Ok(st.holds(to) && !caller.data().inbox.is_empty())
    })();
    match r {
        // The caller is on this core and now first in line, and the
        // replier has more calls queued: let the caller run now (the
        // replier comes right after it). A busy server would otherwise go
        // on working through its inbox until its slice ends, and a client
        // on its core could make one call per slice. A replier with
        // nothing queued goes on to its next `ipc_recv` and blocks there,
        // so the caller's next call can hand off to it again.
        Ok(true) => {
            caller.data_mut().after_handoff = true;
            Err(Error::host(Blocked))
        }
        Ok(false) => Ok(0),
        Err(e) => Ok(e.code()),
    }
}

fn ipc_grant(mut caller: Ctx, handle: i32, granted: i32) -> Result<i32, Error> {
    charge(&mut caller);
    let r = (|| {
        let target = caller.data().handles.get(handle, Rights::SEND)?;
        let cap = caller.data().handles.get(granted, Rights::GRANT)?;
        let charge = queue_charge(&caller, target.target, 0)?;
        send(&mut caller, target.target, Incoming::Grant { badge: target.badge, cap, _charge: charge })
    })();
    code(r)
}

fn notify(mut caller: Ctx, handle: i32, bits: i64) -> Result<i32, Error> {
    charge(&mut caller);
    let r = (|| {
        let target = caller.data().handles.get(handle, Rights::SEND)?;
        send(&mut caller, target.target, Incoming::Notification { bits: bits as u64 })
    })();
    code(r)
}

#[allow(clippy::too_many_arguments)]
fn task_spawn(
    caller: Ctx,
    wasm: i32,
    wasm_len: i32,
    name: i32,
    name_len: i32,
    core_hint: i32,
    caps: i32,
    ncaps: i32,
) -> Result<i32, Error> {
    spawn(caller, [wasm, wasm_len, name, name_len, core_hint, caps, ncaps], None)
}

/// `task_spawn` giving the child the system names listed at
/// `names`/`names_len` (comma-separated), all of which the caller must
/// hold itself: a namespace is handed down, never widened.
#[allow(clippy::too_many_arguments)]
fn task_spawn_ns(
    caller: Ctx,
    wasm: i32,
    wasm_len: i32,
    name: i32,
    name_len: i32,
    core_hint: i32,
    caps: i32,
    ncaps: i32,
    names: i32,
    names_len: i32,
) -> Result<i32, Error> {
    spawn(caller, [wasm, wasm_len, name, name_len, core_hint, caps, ncaps], Some((names, names_len)))
}

/// `task_spawn_ns` that also gives a WASI child environment variables:
/// `env`/`env_len` holds `K=V` entries, each ended by a NUL.
#[allow(clippy::too_many_arguments)]
fn task_spawn_env(
    caller: Ctx,
    wasm: i32,
    wasm_len: i32,
    name: i32,
    name_len: i32,
    core_hint: i32,
    caps: i32,
    ncaps: i32,
    names: i32,
    names_len: i32,
    env: i32,
    env_len: i32,
) -> Result<i32, Error> {
    let args = [wasm, wasm_len, name, name_len, core_hint, caps, ncaps];
    spawn_with_env(caller, args, Some((names, names_len)), Some((env, env_len)))
}

/// Longest environment of `task_spawn_env`, in bytes.
const MAX_ENV: i32 = 4096;

/// The environment blob of `task_spawn_env`: `K=V` entries (UTF-8, a
/// non-empty key without `=`), each ended by a NUL.
fn environment(caller: &Ctx, ptr: i32, len: i32) -> Result<Vec<String>, Status> {
    if len > MAX_ENV {
        return Err(Status::InvalidArgument);
    }
    let blob = task::read_bytes(caller, ptr, len)?;
    let Some(blob) = blob.strip_suffix(&[0]) else {
        return if blob.is_empty() { Ok(Vec::new()) } else { Err(Status::InvalidArgument) };
    };
    blob.split(|b| *b == 0)
        .map(|entry| {
            let entry = core::str::from_utf8(entry).map_err(|_| Status::InvalidArgument)?;
            match entry.split_once('=') {
                Some((key, _)) if !key.is_empty() => Ok(String::from(entry)),
                _ => Err(Status::InvalidArgument),
            }
        })
        .collect()
}

/// Both spawn calls: `args` are `task_spawn`'s, `names` the child's
/// namespace (`None`: no system name).
fn spawn(caller: Ctx, args: [i32; 7], names: Option<(i32, i32)>) -> Result<i32, Error> {
    spawn_with_env(caller, args, names, None)
}

/// The spawn calls; `env`: `task_spawn_env`'s environment.
fn spawn_with_env(
    mut caller: Ctx,
    args: [i32; 7],
    names: Option<(i32, i32)>,
    env: Option<(i32, i32)>,
) -> Result<i32, Error> {
    let [wasm, wasm_len, name, name_len, core_hint, caps, ncaps] = args;
    charge(&mut caller);
    let r = (|| {
        let namespace = match names {
            None => Namespace::NONE,
            Some((ptr, len)) => {
                let list = name_bytes(&caller, ptr, len)?;
                let list = core::str::from_utf8(&list).map_err(|_| Status::InvalidArgument)?;
                let namespace = Namespace::parse(list)?;
                if !namespace.within(caller.data().namespace) {
                    return Err(Status::NoCapability);
                }
                namespace
            }
        };
        let env = match env {
            Some((ptr, len)) => environment(&caller, ptr, len)?,
            None => Vec::new(),
        };
        let bytes = task::read_bytes(&caller, wasm, wasm_len)?;
        // NUL-separated argv; the first part names the task.
        let argv = name_bytes(&caller, name, name_len)?;
        let args: Vec<String> = argv.split(|b| *b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
        // The name prefixes the task's console lines: a control character
        // (a newline) in it could forge lines of other tasks or the kernel.
        let name_part = argv.split(|b| *b == 0).next().unwrap_or(&[]);
        let name = core::str::from_utf8(name_part).map_err(|_| Status::InvalidArgument)?;
        if name.chars().any(char::is_control) {
            return Err(Status::InvalidArgument);
        }
        let name = String::from(name);
        let ncaps = usize::try_from(ncaps).map_err(|_| Status::InvalidArgument)?;
        let cap_bytes = task::read_bytes(&caller, caps, (ncaps * 4) as i32)?;
        let granted = cap_bytes
            .chunks_exact(4)
            .map(|b| caller.data().handles.get(i32::from_le_bytes([b[0], b[1], b[2], b[3]]), Rights::GRANT))
            .collect::<Result<Vec<Cap>, Status>>()?;
        let sys = caller.data().system.clone();
        if granted.len() > sys.config.max_handles || caller.data().children >= sys.config.max_children {
            return Err(Status::QuotaExceeded);
        }
        let module = sys.compile(&bytes, !caller.data().is_system())?;
        let id = sys.admit(sys.choose_core(core_hint)?)?;
        let handle = match caller.data_mut().hold(Cap { target: id, badge: 0, rights: Rights::ALL }) {
            Ok(handle) => handle,
            Err(e) => {
                sys.directory.remove(id);
                return Err(e);
            }
        };
        let parent = Some((caller.data().id, handle));
        let request = SpawnRequest { id, name, module, caps: granted, parent, init: false, namespace, args, env };
        let state = caller.data().state.clone();
        if id.core() == state.borrow().core() {
            // On this core the child enters the task table now, not
            // through the ring: a send right after the spawn finds it
            // there (it would else find no task and be lost).
            sys.spawned.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
            state.borrow_mut().spawn_local(request);
        } else if let Err(e) = sys.start(request) {
            let _ = caller.data_mut().handles.remove(handle);
            return Err(e);
        }
        caller.data_mut().children += 1;
        charge_more(&mut caller, SPAWN_FUEL + bytes.len() as u64 / SPAWN_BYTES_PER_FUEL);
        Ok(handle)
    })();
    code(r)
}

/// Ends the task behind `handle` (which needs KILL: the parent's handle
/// to its child has it), on whatever core it lives, as if it had trapped:
/// its exit is reported to its parent with [`ExitReason::Killed`]. The
/// kill is asynchronous (it travels like a message) but ordered: the
/// target runs no further slice once it is processed, and nothing the
/// caller sends the target after the kill reaches it.
fn task_kill(mut caller: Ctx, handle: i32) -> Result<i32, Error> {
    charge(&mut caller);
    let r = (|| {
        let cap = caller.data().handles.get(handle, Rights::KILL)?;
        if cap.target == caller.data().id {
            // `task_exit` is the way out; a kill of the running task
            // would have to unwind its own host call.
            return Err(Status::InvalidArgument);
        }
        let sys = caller.data().system.clone();
        if sys.core_of(cap.target).is_none() {
            return Err(Status::DeadTarget);
        }
        let state = caller.data().state.clone();
        state.borrow_mut().route(Envelope::Kill { to: cap.target });
        Ok(0)
    })();
    code(r)
}

/// A new handle to `handle`'s target (`0`: the caller itself) carrying
/// `badge` and the rights of `handle` masked by `rights`; needs GRANT.
/// A badged capability cannot be re-badged (seL4's rule): only a badge-0
/// one can be minted from, so a client handed a badged copy cannot pass
/// itself off as another client.
fn cap_mint(mut caller: Ctx, handle: i32, badge: i32, rights: i32) -> Result<i32, Error> {
    charge(&mut caller);
    let r = (|| {
        if rights & !(Rights::ALL.0 as i32) != 0 {
            return Err(Status::InvalidArgument);
        }
        let cap = passable(&caller, handle)?;
        if cap.badge != 0 {
            return Err(Status::NoCapability);
        }
        let minted = Cap { target: cap.target, badge: badge as u32, rights: Rights(cap.rights.0 & rights as u8) };
        caller.data_mut().hold(minted)
    })();
    code(r)
}

fn task_exit(_: Ctx, status: i32) -> Result<(), Error> {
    Err(Error::i32_exit(status))
}

fn service_register(mut caller: Ctx, name: i32, len: i32, handle: i32) -> Result<i32, Error> {
    charge(&mut caller);
    let r = (|| {
        let name = String::from_utf8(name_bytes(&caller, name, len)?).map_err(|_| Status::InvalidArgument)?;
        if name.is_empty() {
            return Err(Status::InvalidArgument);
        }
        // Only the platform's own tasks may serve a system name, even one
        // nobody serves yet (`tcp` on a machine without a network card).
        if names::is_system(&name) && !caller.data().is_system() {
            return Err(Status::NoCapability);
        }
        let cap = passable(&caller, handle)?;
        let me = caller.data().id;
        let sys = caller.data().system.clone();
        // Every name is charged to the task that registered it (and goes
        // when it ends): at most `MAX_NAMES_PER_TASK` each, and ordinary
        // tasks together stop `SYSTEM_NAMES` short of the global limit.
        let ceiling = match caller.data().parent {
            None => sys.config.max_names,
            Some(_) => sys.config.max_names.saturating_sub(crate::system::SYSTEM_NAMES),
        };
        let mut services = sys.services.lock();
        if services.contains_key(&name) {
            return Err(Status::AlreadyExists);
        }
        if services.values().filter(|s| s.owner == Some(me)).count() >= abi::MAX_NAMES_PER_TASK {
            return Err(Status::QuotaExceeded);
        }
        if services.len() >= ceiling {
            return Err(Status::NoMemory);
        }
        services.insert(name, crate::system::Service { cap, owner: Some(me) });
        Ok(0)
    })();
    let _ = &mut caller;
    code(r)
}

fn service_lookup(mut caller: Ctx, name: i32, len: i32) -> Result<i32, Error> {
    charge(&mut caller);
    let r = (|| {
        let name = name_bytes(&caller, name, len)?;
        let name = core::str::from_utf8(&name).map_err(|_| Status::InvalidArgument)?;
        if !caller.data().namespace.allows(name) {
            return Err(Status::NoCapability);
        }
        let sys = caller.data().system.clone();
        let cap = sys.services.lock().get(name).ok_or(Status::NotFound)?.cap;
        // Clients may send, not pass the server on.
        caller.data_mut().hold(Cap { rights: Rights::SEND, ..cap })
    })();
    code(r)
}

fn handle_close(mut caller: Ctx, handle: i32) -> Result<i32, Error> {
    charge(&mut caller);
    code(caller.data_mut().handles.remove(handle).map(|_| 0))
}

fn time_now_ns(caller: Ctx) -> Result<i64, Error> {
    Ok(caller.data().system.now_ns() as i64)
}

fn sleep_ns(mut caller: Ctx, ns: i64) -> Result<i32, Error> {
    charge(&mut caller);
    if ns <= 0 {
        return Ok(0);
    }
    let deadline = caller.data().system.now_ns().saturating_add(ns as u64);
    block(&mut caller, Wait::Sleep { deadline })
}

fn console_write(mut caller: Ctx, ptr: i32, len: i32) -> Result<i32, Error> {
    charge(&mut caller);
    let r = task::read_bytes(&caller, ptr, len.min(MAX_PAYLOAD as i32)).map(|text| {
        let data = caller.data();
        data.system.platform.output(data.core, &data.name, Stream::Stdout, &text);
        text.len() as i32
    });
    code(r)
}

fn core_id(caller: Ctx) -> Result<i32, Error> {
    Ok(caller.data().core as i32)
}

fn core_count(caller: Ctx) -> Result<i32, Error> {
    Ok(caller.data().system.cores() as i32)
}

fn boot_file(mut caller: Ctx, name: i32, len: i32, buf: i32, cap: i32) -> Result<i32, Error> {
    charge(&mut caller);
    let r = (|| {
        if !caller.data().init {
            return Err(Status::NoCapability);
        }
        let name = name_bytes(&caller, name, len)?;
        let name = core::str::from_utf8(&name).map_err(|_| Status::InvalidArgument)?;
        let sys = caller.data().system.clone();
        let file = sys.platform.boot_file(name).ok_or(Status::NotFound)?;
        if buf < 0 || cap < 0 {
            return Err(Status::BadPointer);
        }
        if file.len() > cap as usize {
            return Err(Status::TooLarge);
        }
        task::write_bytes(&mut caller, buf as u32, file)?;
        Ok(file.len() as i32)
    })();
    code(r)
}

/// The linker every task is instantiated with.
pub fn linker(engine: &Engine) -> Linker<TaskData> {
    let mut l = Linker::new(engine);
    let m = abi::MODULE;
    let r = [
        l.func_wrap(m, "ipc_send", ipc_send).err(),
        l.func_wrap(m, "ipc_send_cap", ipc_send_cap).err(),
        l.func_wrap(m, "ipc_recv", ipc_recv).err(),
        l.func_wrap(m, "ipc_call", ipc_call).err(),
        l.func_wrap(m, "ipc_call_timeout", ipc_call_timeout).err(),
        l.func_wrap(m, "ipc_reply", ipc_reply).err(),
        l.func_wrap(m, "ipc_grant", ipc_grant).err(),
        l.func_wrap(m, "notify", notify).err(),
        l.func_wrap(m, "task_spawn", task_spawn).err(),
        l.func_wrap(m, "task_spawn_ns", task_spawn_ns).err(),
        l.func_wrap(m, "task_spawn_env", task_spawn_env).err(),
        l.func_wrap(m, "task_exit", task_exit).err(),
        l.func_wrap(m, "task_kill", task_kill).err(),
        l.func_wrap(m, "cap_mint", cap_mint).err(),
        l.func_wrap(m, "service_register", service_register).err(),
        l.func_wrap(m, "service_lookup", service_lookup).err(),
        l.func_wrap(m, "handle_close", handle_close).err(),
        l.func_wrap(m, "time_now_ns", time_now_ns).err(),
        l.func_wrap(m, "sleep_ns", sleep_ns).err(),
        l.func_wrap(m, "console_write", console_write).err(),
        l.func_wrap(m, "core_id", core_id).err(),
        l.func_wrap(m, "core_count", core_count).err(),
        l.func_wrap(m, "boot_file", boot_file).err(),
    ];
    assert!(r.iter().all(Option::is_none), "defining the wasmos module failed");
    crate::wasi::define(&mut l);
    l
}
