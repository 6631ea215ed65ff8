//! The protocol state machine: sockets and their owners, `POLL` waiters,
//! and the mapping of each request onto a [`Backend`].

use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec;
use alloc::vec::Vec;

use wasmos_ipc::ids::TaskId;
use wasmos_ipc::net::{MAX_EVENTS, MAX_RECV, NO_TIMEOUT, NetError, Op, Peer, Request as NetRequest, events};
use wasmos_sched::{NativeCtx, NativeService, ReplyTo, Request};

/// What moves the bytes: a TCP/IP stack or the host's sockets. Every
/// method answers at once; `Ok(None)` means "not now" (would block).
pub trait Backend: Send {
    type Listener: Send;
    type Conn: Send;

    fn listen(&mut self, port: u16) -> Result<Self::Listener, NetError>;
    /// A connection that arrived on the listener, if one did.
    fn accept(&mut self, listener: &mut Self::Listener) -> Result<Option<Self::Conn>, NetError>;
    /// Whether [`Backend::accept`] would return a connection.
    fn can_accept(&mut self, listener: &mut Self::Listener) -> bool;
    /// Reads into `buf`: `Some(0)` = the peer closed its side.
    fn recv(&mut self, conn: &mut Self::Conn, buf: &mut [u8]) -> Result<Option<usize>, NetError>;
    /// Sends some prefix of `data`; returns how much was taken.
    fn send(&mut self, conn: &mut Self::Conn, data: &[u8]) -> Result<Option<usize>, NetError>;
    /// Readiness bits ([`events`]): `READABLE` (bytes or end of stream),
    /// `WRITABLE` (room to send), `ERROR` (reset).
    fn readiness(&mut self, conn: &mut Self::Conn) -> u32;
    /// Closes gracefully (pending bytes still go out).
    fn close(&mut self, conn: Self::Conn);
    fn close_listener(&mut self, listener: Self::Listener);
    /// Device and protocol work (timers, frames). `waiting` says whether a
    /// task waits in `POLL`. Returns when to be called again at the latest.
    fn poll(&mut self, now_ns: u64, waiting: bool) -> Option<u64>;

    /// A one-way message for the backend: on bare metal, a frame from the
    /// device driver. A backend without a device has no use for one.
    fn message(&mut self, _from: TaskId, _bytes: &[u8]) {}

    /// Frames for the device driver, and its id: the service sends them
    /// after every poll. `None` for a backend without a device.
    fn frames_out(&mut self) -> Option<(TaskId, &mut VecDeque<Vec<u8>>)> {
        None
    }

    /// Kernel heap bytes a listener holds (its backlog's buffers), charged
    /// against [`MEMORY_BUDGET`] before it is made; 0 when the sockets are
    /// the host's.
    fn listener_bytes(&self) -> usize {
        0
    }

    /// Kernel heap bytes an accepted connection adds.
    fn conn_bytes(&self) -> usize {
        0
    }

    /// Who is at the other end of `conn` (`ACCEPT` names it), if known.
    fn peer(&mut self, _conn: &Self::Conn) -> Option<Peer> {
        None
    }

    /// Kernel heap bytes the backend holds beyond what the service charged
    /// (listen backlogs grown past their spare sockets): counted against
    /// the budget with the charged ones.
    fn uncharged_bytes(&self) -> usize {
        0
    }

    /// How many bytes the backend may add on its own (backlog growth)
    /// before the next call: the budget the service has left. Told before
    /// every [`Backend::poll`].
    fn set_growth_allowance(&mut self, _bytes: usize) {}
}

/// Sockets one task may hold at once.
pub const SOCKETS_PER_TASK: usize = 256;
/// Sockets the service holds at once, for all tasks.
pub const MAX_SOCKETS: usize = 1024;
/// Listeners one task may hold at once (each costs a backlog of
/// connections' buffers).
pub const LISTENERS_PER_TASK: usize = 8;
/// Heap bytes the service's sockets may hold together (see
/// [`Backend::listener_bytes`]): about 150 listeners of the kernel's stack
/// exhausted the kernel heap before this bound.
pub const MEMORY_BUDGET: usize = 16 << 20;
/// How often sockets of dead tasks are looked for.
const GC_INTERVAL_NS: u64 = 100_000_000;

enum Kind<B: Backend> {
    Listener(B::Listener),
    Conn(B::Conn),
}

struct Socket<B: Backend> {
    owner: TaskId,
    kind: Kind<B>,
    /// The last `SEND` was refused or cut short: report `WRITABLE`.
    want_write: bool,
}

struct Waiter {
    reply: ReplyTo,
    deadline: Option<u64>,
    /// Most events the caller takes.
    max: usize,
}

/// The `tcp` service over backend `B`.
pub struct TcpService<B: Backend> {
    backend: B,
    sockets: BTreeMap<u32, Socket<B>>,
    next_id: u32,
    waiters: Vec<Waiter>,
    /// Heap bytes the open sockets hold (at most `budget`).
    memory: usize,
    /// The most they may hold: [`MEMORY_BUDGET`], or less for a small
    /// kernel heap ([`TcpService::with_memory_budget`]).
    budget: usize,
    /// Per task, the last socket its previous `POLL` reply named.
    cursors: BTreeMap<TaskId, u32>,
    next_gc: u64,
    /// Frames the driver would not take (its queue full): lost, as on a
    /// network card whose ring is full; TCP sends them again.
    frames_dropped: u64,
}

impl<B: Backend> TcpService<B> {
    pub fn new(backend: B) -> TcpService<B> {
        TcpService {
            backend,
            sockets: BTreeMap::new(),
            next_id: 1,
            waiters: Vec::new(),
            memory: 0,
            budget: MEMORY_BUDGET,
            cursors: BTreeMap::new(),
            next_gc: 0,
            frames_dropped: 0,
        }
    }

    /// Holds the sockets' heap bytes to `bytes` (at most
    /// [`MEMORY_BUDGET`]); the kernel derives it from its heap's size.
    pub fn with_memory_budget(mut self, bytes: usize) -> TcpService<B> {
        self.budget = bytes.min(MEMORY_BUDGET);
        self
    }

    /// Sockets open now (for tests and stats).
    pub fn socket_count(&self) -> usize {
        self.sockets.len()
    }

    /// Heap bytes the open sockets hold (for tests and stats).
    pub fn memory_in_use(&self) -> usize {
        self.memory
    }

    /// Heap bytes a socket of this kind holds.
    fn cost(&self, listener: bool) -> usize {
        if listener { self.backend.listener_bytes() } else { self.backend.conn_bytes() }
    }

    /// Whether `owner` may open one more socket (a listener if `listener`):
    /// checked before the backend allocates anything, so a task asking for
    /// too much gets `NO_RESOURCES`, never an allocation the heap cannot
    /// hold.
    fn may_add(&self, owner: TaskId, listener: bool) -> Result<(), NetError> {
        let owned = || self.sockets.values().filter(|s| s.owner == owner);
        let listeners = owned().filter(|s| matches!(s.kind, Kind::Listener(_))).count();
        if owned().count() >= SOCKETS_PER_TASK
            || self.sockets.len() >= MAX_SOCKETS
            || (listener && listeners >= LISTENERS_PER_TASK)
            || self.memory + self.backend.uncharged_bytes() + self.cost(listener) > self.budget
        {
            return Err(NetError::NoResources);
        }
        Ok(())
    }

    /// Enters a socket that [`TcpService::may_add`] allowed.
    fn add(&mut self, owner: TaskId, kind: Kind<B>) -> Result<u32, NetError> {
        self.memory += self.cost(matches!(kind, Kind::Listener(_)));
        let id = self.next_id;
        // Ids are not reused soon (wrapping after 4 billion sockets), so a
        // stale id does not silently reach a newer socket.
        self.next_id = self.next_id.wrapping_add(1).max(1);
        self.sockets.insert(id, Socket { owner, kind, want_write: false });
        Ok(id)
    }

    fn remove(&mut self, id: u32) {
        if let Some(socket) = self.sockets.remove(&id) {
            self.memory -= self.cost(matches!(socket.kind, Kind::Listener(_)));
            match socket.kind {
                Kind::Listener(l) => self.backend.close_listener(l),
                Kind::Conn(c) => self.backend.close(c),
            }
        }
    }

    /// Handles every request but `POLL`: the result word and reply data.
    fn handle(&mut self, owner: TaskId, req: &NetRequest<'_>, data: &mut Vec<u8>) -> Result<u32, NetError> {
        match req.op {
            Op::Listen => {
                let port = u16::try_from(req.arg).ok().filter(|&p| p != 0).ok_or(NetError::BadRequest)?;
                self.may_add(owner, true)?;
                let listener = self.backend.listen(port)?;
                self.add(owner, Kind::Listener(listener))
            }
            Op::Accept => {
                owned(&mut self.sockets, owner, req.socket)?;
                self.may_add(owner, false)?;
                let socket = owned(&mut self.sockets, owner, req.socket)?;
                let Kind::Listener(listener) = &mut socket.kind else { return Err(NetError::WrongKind) };
                let conn = self.backend.accept(listener)?.ok_or(NetError::WouldBlock)?;
                data.extend_from_slice(&self.backend.peer(&conn).unwrap_or_default().encode());
                self.add(owner, Kind::Conn(conn))
            }
            Op::Recv => {
                let max = (req.arg as usize).min(MAX_RECV);
                let socket = owned(&mut self.sockets, owner, req.socket)?;
                let Kind::Conn(conn) = &mut socket.kind else { return Err(NetError::WrongKind) };
                data.resize(max, 0);
                let n = self.backend.recv(conn, data)?.ok_or(NetError::WouldBlock)?;
                data.truncate(n);
                Ok(n as u32)
            }
            Op::Send => {
                let socket = owned(&mut self.sockets, owner, req.socket)?;
                let Kind::Conn(conn) = &mut socket.kind else { return Err(NetError::WrongKind) };
                let taken = self.backend.send(conn, req.data)?;
                socket.want_write = taken.is_none_or(|n| n < req.data.len());
                taken.map(|n| n as u32).ok_or(NetError::WouldBlock)
            }
            Op::Close => {
                owned(&mut self.sockets, owner, req.socket)?;
                self.remove(req.socket);
                Ok(0)
            }
            Op::Poll => unreachable!("POLL is answered by the caller"),
        }
    }

    /// The ready sockets of `owner`, at most `max`, encoded as `POLL`
    /// reply data. Round-robin: the search starts after the last socket
    /// the previous reply to `owner` named, so none is starved however
    /// many are ready and however few the caller takes.
    fn ready(&mut self, owner: TaskId, max: usize) -> Vec<u8> {
        use core::ops::Bound::{Excluded, Included, Unbounded};
        let max = if max == 0 { MAX_EVENTS } else { max.min(MAX_EVENTS) };
        let start = self.cursors.get(&owner).copied().unwrap_or(0);
        let mut out = Vec::new();
        let mut last = None;
        let (after, before) = (Excluded(start), Included(start));
        let Self { sockets, backend, .. } = self;
        let mut visit = |id: u32, socket: &mut Socket<B>, out: &mut Vec<u8>| -> bool {
            if socket.owner != owner {
                return true;
            }
            let bits = match &mut socket.kind {
                Kind::Listener(l) => {
                    if backend.can_accept(l) {
                        events::READABLE
                    } else {
                        0
                    }
                }
                Kind::Conn(c) => {
                    let r = backend.readiness(c);
                    let write = if socket.want_write { r & events::WRITABLE } else { 0 };
                    (r & (events::READABLE | events::ERROR)) | write
                }
            };
            if bits != 0 {
                out.extend_from_slice(&id.to_le_bytes());
                out.extend_from_slice(&bits.to_le_bytes());
                last = Some(id);
            }
            out.len() < max * 8
        };
        let mut full = false;
        for (&id, socket) in sockets.range_mut((after, Unbounded)) {
            if !visit(id, socket, &mut out) {
                full = true;
                break;
            }
        }
        if !full {
            for (&id, socket) in sockets.range_mut((Unbounded, before)) {
                if !visit(id, socket, &mut out) {
                    break;
                }
            }
        }
        if let Some(id) = last {
            self.cursors.insert(owner, id);
        }
        out
    }

    /// Closes the sockets of tasks that died.
    fn collect_dead(&mut self, ctx: &NativeCtx<'_>) {
        let mut owners: Vec<TaskId> = self.sockets.values().map(|s| s.owner).collect();
        owners.sort_unstable();
        owners.dedup();
        self.cursors.retain(|&owner, _| ctx.is_alive(owner));
        for owner in owners.into_iter().filter(|&o| !ctx.is_alive(o)) {
            let ids: Vec<u32> = self.sockets.iter().filter(|(_, s)| s.owner == owner).map(|(&id, _)| id).collect();
            for id in ids {
                self.remove(id);
            }
        }
    }
}

/// `owner`'s socket `id`; another task's socket is as good as none.
fn owned<B: Backend>(
    sockets: &mut BTreeMap<u32, Socket<B>>,
    owner: TaskId,
    id: u32,
) -> Result<&mut Socket<B>, NetError> {
    sockets.get_mut(&id).filter(|s| s.owner == owner).ok_or(NetError::InvalidSocket)
}

fn reply_bytes(result: Result<u32, NetError>, data: &[u8]) -> Vec<u8> {
    let word = match result {
        Ok(v) => v as i32,
        Err(e) => e.code(),
    };
    let mut out = Vec::with_capacity(4 + data.len());
    out.extend_from_slice(&word.to_le_bytes());
    out.extend_from_slice(data);
    out
}

impl<B: Backend> NativeService for TcpService<B> {
    fn receive(&mut self, ctx: &mut NativeCtx<'_>, request: Request) {
        // A one-way message is for the backend (a frame from the driver).
        let Some(reply) = request.reply else {
            return self.backend.message(request.from, request.payload.as_slice());
        };
        let owner = request.from;
        let req = match NetRequest::decode(request.payload.as_slice()) {
            Ok(req) => req,
            Err(e) => return ctx.reply(reply, Ok(&reply_bytes(Err(e), &[]))),
        };
        if req.op == Op::Poll {
            let max = req.socket as usize;
            let ready = self.ready(owner, max);
            if !ready.is_empty() || req.arg == 0 {
                let count = (ready.len() / 8) as u32;
                return ctx.reply(reply, Ok(&reply_bytes(Ok(count), &ready)));
            }
            let deadline = (req.arg != NO_TIMEOUT).then(|| ctx.now_ns() + u64::from(req.arg) * 1_000_000);
            self.waiters.push(Waiter { reply, deadline, max });
            return;
        }
        let mut data = vec![];
        let result = self.handle(owner, &req, &mut data);
        ctx.reply(reply, Ok(&reply_bytes(result, &data)));
    }

    fn poll(&mut self, ctx: &mut NativeCtx<'_>) -> Option<u64> {
        let now = ctx.now_ns();
        // Backlog growth is paid from what the budget has left.
        let left = self.budget.saturating_sub(self.memory + self.backend.uncharged_bytes());
        self.backend.set_growth_allowance(left);
        let device = self.backend.poll(now, !self.waiters.is_empty());
        if let Some((driver, frames)) = self.backend.frames_out() {
            while let Some(frame) = frames.pop_front() {
                if ctx.send(driver, &frame).is_err() {
                    self.frames_dropped += 1;
                }
            }
        }
        if now >= self.next_gc {
            self.collect_dead(ctx);
            self.next_gc = now + GC_INTERVAL_NS;
        }
        let mut still = Vec::new();
        for waiter in core::mem::take(&mut self.waiters) {
            let owner = waiter.reply.caller();
            if !ctx.is_alive(owner) {
                continue;
            }
            let ready = self.ready(owner, waiter.max);
            if !ready.is_empty() || waiter.deadline.is_some_and(|d| now >= d) {
                let count = (ready.len() / 8) as u32;
                ctx.reply(waiter.reply, Ok(&reply_bytes(Ok(count), &ready)));
            } else {
                still.push(waiter);
            }
        }
        self.waiters = still;
        let deadlines = self.waiters.iter().filter_map(|w| w.deadline);
        let gc = (!self.sockets.is_empty()).then_some(self.next_gc);
        device.into_iter().chain(deadlines).chain(gc).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A backend that holds no sockets: it counts its open listeners, says
    /// what each costs, and reports every connection as `readiness`.
    #[derive(Default)]
    struct Fake {
        open: usize,
        listener_cost: usize,
        readiness: u32,
        /// Bytes grown on its own (a backlog past its spare sockets).
        uncharged: usize,
    }

    impl Backend for Fake {
        type Listener = ();
        type Conn = ();
        fn listen(&mut self, _: u16) -> Result<(), NetError> {
            self.open += 1;
            Ok(())
        }
        fn accept(&mut self, _: &mut ()) -> Result<Option<()>, NetError> {
            Ok(None)
        }
        fn can_accept(&mut self, _: &mut ()) -> bool {
            false
        }
        fn recv(&mut self, _: &mut (), _: &mut [u8]) -> Result<Option<usize>, NetError> {
            Ok(None)
        }
        fn send(&mut self, _: &mut (), _: &[u8]) -> Result<Option<usize>, NetError> {
            Ok(None)
        }
        fn readiness(&mut self, _: &mut ()) -> u32 {
            self.readiness
        }
        fn close(&mut self, _: ()) {}
        fn close_listener(&mut self, _: ()) {
            self.open -= 1;
        }
        fn poll(&mut self, _: u64, _: bool) -> Option<u64> {
            None
        }
        fn listener_bytes(&self) -> usize {
            self.listener_cost
        }
        fn uncharged_bytes(&self) -> usize {
            self.uncharged
        }
    }

    fn listen(service: &mut TcpService<Fake>, owner: u64, port: u32) -> Result<u32, NetError> {
        let req = NetRequest { op: Op::Listen, socket: 0, arg: port, data: &[] };
        service.handle(TaskId(owner), &req, &mut Vec::new())
    }

    /// The listener flood of issue #17: one task gets `NO_RESOURCES` after
    /// `LISTENERS_PER_TASK`, all tasks together at the memory budget, and
    /// the refused ones are never made (the backend allocates nothing).
    #[test]
    fn listeners_are_bounded_per_task_and_by_memory() {
        let mut cheap = TcpService::new(Fake::default());
        for port in 1..=LISTENERS_PER_TASK as u32 {
            assert!(listen(&mut cheap, 1, port).is_ok());
        }
        assert_eq!(listen(&mut cheap, 1, 999), Err(NetError::NoResources));
        assert_eq!(cheap.backend.open, LISTENERS_PER_TASK, "a refused listener was made");
        assert!(listen(&mut cheap, 2, 999).is_ok(), "another task is still served");

        // Listeners that cost a third of the budget each.
        let mut dear = TcpService::new(Fake { listener_cost: MEMORY_BUDGET / 3, ..Fake::default() });
        let ids: Vec<u32> = (1..=3).map(|p| listen(&mut dear, p as u64, p).unwrap()).collect();
        assert_eq!(listen(&mut dear, 4, 4), Err(NetError::NoResources));
        assert_eq!(dear.backend.open, 3);
        for id in ids {
            dear.remove(id);
        }
        assert_eq!((dear.memory_in_use(), dear.backend.open), (0, 0), "memory not returned");
        assert!(listen(&mut dear, 4, 4).is_ok());
    }

    /// A backlog grown past its spare sockets counts against the budget:
    /// with it, a listener that would fit the charged bytes alone is
    /// refused, and without it is made.
    #[test]
    fn backlog_growth_is_charged_to_the_budget() {
        let cost = MEMORY_BUDGET / 3;
        let mut service = TcpService::new(Fake { listener_cost: cost, ..Fake::default() });
        assert!(listen(&mut service, 1, 1).is_ok());
        service.backend.uncharged = MEMORY_BUDGET - 2 * cost + 1;
        assert_eq!(listen(&mut service, 2, 2), Err(NetError::NoResources), "growth not charged");
        service.backend.uncharged = 0;
        assert!(listen(&mut service, 2, 2).is_ok());
    }

    fn ids(reply: &[u8]) -> Vec<u32> {
        reply.chunks_exact(8).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
    }

    #[test]
    fn poll_is_round_robin_and_starves_none() {
        let (a, b) = (TaskId(1), TaskId(2));
        let mut service = TcpService::new(Fake { readiness: events::READABLE, ..Fake::default() });
        for i in 0..10 {
            // Another task's sockets in between must neither show nor count.
            service.add(if i % 3 == 2 { b } else { a }, Kind::Conn(())).unwrap();
        }
        // a owns 1, 2, 4, 5, 7, 8, 10; batches of 3 go round.
        assert_eq!(ids(&service.ready(a, 3)), [1, 2, 4]);
        assert_eq!(ids(&service.ready(a, 3)), [5, 7, 8]);
        assert_eq!(ids(&service.ready(a, 3)), [10, 1, 2]);
        assert_eq!(ids(&service.ready(a, 3)), [4, 5, 7]);
        assert_eq!(ids(&service.ready(b, 0)), [3, 6, 9]);
        // All at once: each ready socket once, from where the last stopped.
        assert_eq!(ids(&service.ready(a, 0)), [8, 10, 1, 2, 4, 5, 7]);
        assert_eq!(ids(&service.ready(a, 100)), [8, 10, 1, 2, 4, 5, 7]);
    }
}
