//! The protocol state machine: sockets and their owners, `POLL` waiters,
//! and the mapping of each request onto a [`Backend`].

use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec;
use alloc::vec::Vec;

use wasmos_ipc::ids::TaskId;
use wasmos_ipc::net::{
    DEAL_AHEAD, MAX_EVENTS, MAX_RECV, NO_TIMEOUT, NetError, Op, Peer, Request as NetRequest, events, listen,
};
use wasmos_sched::{NativeCtx, NativeService, ReplyTo, Request};

/// What moves the bytes: a TCP/IP stack or the host's sockets. Every
/// method answers at once; `Ok(None)` means "not now" (would block).
pub trait Backend: Send {
    type Listener: Send;
    type Conn: Send;

    fn listen(&mut self, port: u16) -> Result<Self::Listener, NetError>;
    /// A connection that arrived on the listener, if one did.
    fn accept(&mut self, listener: &mut Self::Listener) -> Result<Option<Self::Conn>, NetError>;
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
    /// One task's listener on `port` (the port's [`Port`] holds the
    /// backend's listener): the connections dealt to it, oldest first.
    Listener {
        port: u16,
        dealt: VecDeque<B::Conn>,
    },
    Conn(B::Conn),
}

/// A listening port: one backend listener however many tasks listen on
/// it (`wasmos_ipc::net`, "Shared ports").
struct Port<B: Backend> {
    listener: B::Listener,
    /// Made with [`listen::SHARED`]: other tasks asking the same may join.
    shared: bool,
    /// The listeners (socket ids) on it, in the order they came.
    members: Vec<u32>,
    /// Index in `members` of the next to be dealt a connection.
    next: usize,
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
    ports: BTreeMap<u16, Port<B>>,
    next_id: u32,
    waiters: Vec<Waiter>,
    /// Heap bytes the ports, the open connections and those dealt but not
    /// yet accepted hold (at most `budget`).
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
            ports: BTreeMap::new(),
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

    /// Whether `owner` may open one more socket (a listener if `listener`)
    /// that brings `bytes` of heap: checked before the backend allocates
    /// anything, so a task asking for too much gets `NO_RESOURCES`, never
    /// an allocation the heap cannot hold.
    fn may_add(&self, owner: TaskId, listener: bool, bytes: usize) -> Result<(), NetError> {
        let owned = || self.sockets.values().filter(|s| s.owner == owner);
        let listeners = owned().filter(|s| matches!(s.kind, Kind::Listener { .. })).count();
        if owned().count() >= SOCKETS_PER_TASK
            || self.sockets.len() >= MAX_SOCKETS
            || (listener && listeners >= LISTENERS_PER_TASK)
            || !affords(&self.backend, self.memory, self.budget, bytes)
        {
            return Err(NetError::NoResources);
        }
        Ok(())
    }

    /// Enters a socket that [`TcpService::may_add`] allowed (its bytes
    /// already charged).
    fn add(&mut self, owner: TaskId, kind: Kind<B>) -> u32 {
        let id = self.next_id;
        // Ids are not reused soon (wrapping after 4 billion sockets), so a
        // stale id does not silently reach a newer socket.
        self.next_id = self.next_id.wrapping_add(1).max(1);
        self.sockets.insert(id, Socket { owner, kind, want_write: false });
        id
    }

    fn close_conn(&mut self, conn: B::Conn) {
        self.memory -= self.backend.conn_bytes();
        self.backend.close(conn);
    }

    /// Closes socket `id`. A listener's dealt connections go to the port's
    /// other listeners; the last listener closes the port.
    fn remove(&mut self, id: u32) {
        let Some(socket) = self.sockets.remove(&id) else { return };
        let (port_no, mut dealt) = match socket.kind {
            Kind::Conn(c) => return self.close_conn(c),
            Kind::Listener { port, dealt } => (port, dealt),
        };
        let Some(port) = self.ports.get_mut(&port_no) else { return };
        port.members.retain(|&m| m != id);
        if port.members.is_empty() {
            let port = self.ports.remove(&port_no).expect("looked up above");
            self.memory -= self.backend.listener_bytes();
            self.backend.close_listener(port.listener);
            for conn in dealt {
                self.close_conn(conn);
            }
            return;
        }
        // Dealt again round-robin, past DEAL_AHEAD if need be: they are
        // charged already and their peers are waiting.
        let members = port.members.clone();
        for (i, conn) in dealt.drain(..).enumerate() {
            let to = members[(port.next + i) % members.len()];
            if let Some(Socket { kind: Kind::Listener { dealt, .. }, .. }) = self.sockets.get_mut(&to) {
                dealt.push_back(conn);
            }
        }
        port.next %= members.len();
    }

    /// `LISTEN`: a new port, or (both asking [`listen::SHARED`]) one more
    /// listener on a shared one.
    fn listen(&mut self, owner: TaskId, arg: u32) -> Result<u32, NetError> {
        if arg & !(0xffff | listen::ALL) != 0 {
            return Err(NetError::BadRequest);
        }
        let shared = arg & listen::SHARED != 0;
        let port_no = u16::try_from(arg & 0xffff).ok().filter(|&p| p != 0).ok_or(NetError::BadRequest)?;
        let joining = match self.ports.get(&port_no) {
            Some(port) if port.shared && shared => true,
            Some(_) => return Err(NetError::AddressInUse),
            None => false,
        };
        let bytes = if joining { 0 } else { self.backend.listener_bytes() };
        self.may_add(owner, true, bytes)?;
        if !joining {
            let listener = self.backend.listen(port_no)?;
            self.memory += bytes;
            self.ports.insert(port_no, Port { listener, shared, members: Vec::new(), next: 0 });
        }
        let id = self.add(owner, Kind::Listener { port: port_no, dealt: VecDeque::new() });
        self.ports.get_mut(&port_no).expect("made above").members.push(id);
        Ok(id)
    }

    /// Deals every port's new connections to its listeners, round-robin,
    /// each up to [`DEAL_AHEAD`] waiting, while the budget and the socket
    /// limit allow; the rest stay in the backend's backlog.
    fn deal(&mut self) {
        let conn_bytes = self.backend.conn_bytes();
        let mut waiting: usize = self.sockets.values().map(|s| s.dealt_count()).sum();
        let Self { ports, sockets, backend, memory, budget, .. } = self;
        for port in ports.values_mut() {
            let n = port.members.len();
            loop {
                let has_room = |m: &u32| sockets.get(m).is_some_and(|s| s.dealt_count() < DEAL_AHEAD);
                let Some(k) = (0..n).map(|i| (port.next + i) % n).find(|&k| has_room(&port.members[k])) else {
                    break;
                };
                if sockets.len() + waiting >= MAX_SOCKETS || !affords(&*backend, *memory, *budget, conn_bytes) {
                    return;
                }
                let Ok(Some(conn)) = backend.accept(&mut port.listener) else { break };
                *memory += conn_bytes;
                waiting += 1;
                if let Some(Socket { kind: Kind::Listener { dealt, .. }, .. }) = sockets.get_mut(&port.members[k]) {
                    dealt.push_back(conn);
                }
                port.next = (k + 1) % n;
            }
        }
    }

    /// `ACCEPT`: the oldest connection dealt to `owner`'s listener.
    fn accept(&mut self, owner: TaskId, listener: u32, data: &mut Vec<u8>) -> Result<u32, NetError> {
        let Kind::Listener { .. } = owned(&mut self.sockets, owner, listener)?.kind else {
            return Err(NetError::WrongKind);
        };
        // Its bytes were charged when it was dealt.
        self.may_add(owner, false, 0)?;
        self.deal();
        let Some(Socket { kind: Kind::Listener { dealt, .. }, .. }) = self.sockets.get_mut(&listener) else {
            unreachable!("checked above")
        };
        let conn = dealt.pop_front().ok_or(NetError::WouldBlock)?;
        data.extend_from_slice(&self.backend.peer(&conn).unwrap_or_default().encode());
        Ok(self.add(owner, Kind::Conn(conn)))
    }

    /// Handles every request but `POLL`: the result word and reply data.
    fn handle(&mut self, owner: TaskId, req: &NetRequest<'_>, data: &mut Vec<u8>) -> Result<u32, NetError> {
        match req.op {
            Op::Listen => self.listen(owner, req.arg),
            Op::Accept => self.accept(owner, req.socket, data),
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
    /// reply data (call [`TcpService::deal`] first: a listener is ready
    /// when it has connections dealt). Round-robin: the search starts
    /// after the last socket the previous reply to `owner` named, so none
    /// is starved however many are ready and however few the caller takes.
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
                Kind::Listener { dealt, .. } => {
                    if dealt.is_empty() {
                        0
                    } else {
                        events::READABLE
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

    /// Closes the sockets of tasks that died (their listeners' dealt
    /// connections go to the port's other listeners).
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

impl<B: Backend> Socket<B> {
    /// Connections dealt to this listener and not yet accepted.
    fn dealt_count(&self) -> usize {
        match &self.kind {
            Kind::Listener { dealt, .. } => dealt.len(),
            Kind::Conn(_) => 0,
        }
    }
}

/// Whether `bytes` more fit `budget` beside the `memory` charged and what
/// the backend holds uncharged.
fn affords<B: Backend>(backend: &B, memory: usize, budget: usize, bytes: usize) -> bool {
    memory + backend.uncharged_bytes() + bytes <= budget
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
            self.deal();
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
        self.deal();
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

    /// A backend that holds no sockets: it counts its open listeners and
    /// connections, says what each costs, has `pending` connections
    /// (numbered from 1) for any listener to accept, and reports every
    /// connection as `readiness`.
    #[derive(Default)]
    struct Fake {
        open: usize,
        conns: usize,
        listener_cost: usize,
        conn_cost: usize,
        pending: u32,
        accepted: u32,
        readiness: u32,
        /// Bytes grown on its own (a backlog past its spare sockets).
        uncharged: usize,
    }

    impl Backend for Fake {
        type Listener = ();
        type Conn = u32;
        fn listen(&mut self, _: u16) -> Result<(), NetError> {
            self.open += 1;
            Ok(())
        }
        fn accept(&mut self, _: &mut ()) -> Result<Option<u32>, NetError> {
            if self.pending == 0 {
                return Ok(None);
            }
            self.pending -= 1;
            self.accepted += 1;
            self.conns += 1;
            Ok(Some(self.accepted))
        }
        fn recv(&mut self, _: &mut u32, _: &mut [u8]) -> Result<Option<usize>, NetError> {
            Ok(None)
        }
        fn send(&mut self, _: &mut u32, _: &[u8]) -> Result<Option<usize>, NetError> {
            Ok(None)
        }
        fn readiness(&mut self, _: &mut u32) -> u32 {
            self.readiness
        }
        fn close(&mut self, _: u32) {
            self.conns -= 1;
        }
        fn close_listener(&mut self, _: ()) {
            self.open -= 1;
        }
        fn poll(&mut self, _: u64, _: bool) -> Option<u64> {
            None
        }
        fn listener_bytes(&self) -> usize {
            self.listener_cost
        }
        fn conn_bytes(&self) -> usize {
            self.conn_cost
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
            service.add(if i % 3 == 2 { b } else { a }, Kind::Conn(i));
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

    fn accept(service: &mut TcpService<Fake>, owner: u64, listener: u32) -> Result<u32, NetError> {
        let req = NetRequest { op: Op::Accept, socket: listener, arg: 0, data: &[] };
        service.handle(TaskId(owner), &req, &mut Vec::new())
    }

    /// The backend connection behind socket `id`.
    fn conn_of(service: &TcpService<Fake>, id: u32) -> u32 {
        match service.sockets[&id].kind {
            Kind::Conn(c) => c,
            Kind::Listener { .. } => panic!("{id} is a listener"),
        }
    }

    /// Three workers share a port: a port taken without `SHARED` (or with
    /// it, by a task asking without) is `ADDRESS_IN_USE`; new connections
    /// are dealt round-robin, one backend listener serves all, and a
    /// listener is ready only with connections of its own.
    #[test]
    fn a_shared_port_deals_connections_round_robin() {
        let shared = 80 | listen::SHARED;
        let mut service = TcpService::new(Fake { listener_cost: 100, conn_cost: 10, ..Fake::default() });
        let workers: Vec<u32> = (1..=3).map(|w| listen(&mut service, w, shared).unwrap()).collect();
        assert_eq!(service.backend.open, 1, "one backend listener for the port");
        assert_eq!(listen(&mut service, 4, 80), Err(NetError::AddressInUse));
        assert!(listen(&mut service, 4, 81).is_ok());
        assert_eq!(listen(&mut service, 5, 81 | listen::SHARED), Err(NetError::AddressInUse));
        assert_eq!(listen(&mut service, 5, 82 | 1 << 20), Err(NetError::BadRequest));

        service.backend.pending = 6;
        service.deal();
        let mut got = Vec::new();
        for (w, &l) in workers.iter().enumerate() {
            assert_eq!(ids(&service.ready(TaskId(w as u64 + 1), 0)), [l], "worker {w} not woken");
            for _ in 0..2 {
                let id = accept(&mut service, w as u64 + 1, l).unwrap();
                got.push(conn_of(&service, id));
            }
            assert_eq!(accept(&mut service, w as u64 + 1, l), Err(NetError::WouldBlock));
            assert!(ids(&service.ready(TaskId(w as u64 + 1), 0)).is_empty(), "ready with nothing dealt");
        }
        assert_eq!(got, [1, 4, 2, 5, 3, 6], "not dealt round-robin");
        assert_eq!(accept(&mut service, 2, workers[0]), Err(NetError::InvalidSocket), "took another's");
        assert_eq!(service.memory_in_use(), 2 * 100 + 6 * 10);
    }

    /// A worker that takes none is dealt at most `DEAL_AHEAD`; the others
    /// get the rest. When it closes, its dealt connections go to the
    /// others; when the last closes, the port and everything dealt go.
    #[test]
    fn a_busy_or_closed_worker_gives_its_connections_to_the_others() {
        let shared = 80 | listen::SHARED;
        let mut service = TcpService::new(Fake { listener_cost: 100, conn_cost: 10, ..Fake::default() });
        let (busy, idle) = (listen(&mut service, 1, shared).unwrap(), listen(&mut service, 2, shared).unwrap());
        service.backend.pending = 3 * DEAL_AHEAD as u32;
        for _ in 0..DEAL_AHEAD + 1 {
            service.deal();
            accept(&mut service, 2, idle).unwrap();
        }
        assert_eq!(service.sockets[&busy].dealt_count(), DEAL_AHEAD, "the busy one got more than its share");
        service.remove(busy);
        assert_eq!(service.sockets[&idle].dealt_count(), 2 * DEAL_AHEAD - 1, "dealt connections lost");
        assert_eq!(service.backend.open, 1, "the port closed with a listener left");
        service.remove(idle);
        let accepted = DEAL_AHEAD + 1;
        assert_eq!((service.backend.open, service.backend.conns), (0, accepted), "port or dealt connections left");
        assert_eq!(service.memory_in_use(), accepted * 10, "only the accepted connections hold memory");
        for id in service.sockets.keys().copied().collect::<Vec<_>>() {
            service.remove(id);
        }
        assert_eq!((service.memory_in_use(), service.backend.conns), (0, 0));
    }

    /// Dealing stops at the budget: connections stay in the backend's
    /// backlog rather than be charged past it.
    #[test]
    fn dealing_stays_within_the_budget() {
        let mut service = TcpService::new(Fake { conn_cost: 10, ..Fake::default() }).with_memory_budget(25);
        let l = listen(&mut service, 1, 80).unwrap();
        service.backend.pending = 4;
        service.deal();
        assert_eq!((service.sockets[&l].dealt_count(), service.backend.pending), (2, 2));
        assert_eq!(service.memory_in_use(), 20);
    }
}
