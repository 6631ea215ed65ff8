//! The event loop: sockets from the `tcp` service, requests to [`http`],
//! and the limits of [`Limits`]: per-connection back-pressure, the memory
//! budget over all connections, the deadlines.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

use wasmos_sdk::net::{Error, Event, NetError, Peer, Socket, Tcp, events};
use wasmos_sdk::{env, println};

use crate::http::{self, Parsed, Response};
use crate::{CLOSE_WINDOW_NS, EVICT_IDLE_NS, Limits};

/// Bytes asked of the service per `RECV`.
const READ_CHUNK: usize = 2048;
/// `RECV`s per connection per round: a flood cannot keep us on one.
const READS_PER_ROUND: usize = 16;
/// Buffers larger than this are given back once empty.
const KEEP_CAPACITY: usize = 16 * 1024;

struct Conn {
    /// The peer's address (the per-peer limit counts by it).
    peer: [u8; 4],
    input: Vec<u8>,
    output: Vec<u8>,
    /// How much of `output` is sent.
    sent: usize,
    /// When the request now arriving began (its first byte), if one is.
    request_since: Option<u64>,
    /// When its head was complete (the body deadline counts from there).
    head_done: Option<u64>,
    /// `100 Continue` is sent for the request now arriving.
    continued: bool,
    /// When the connection last had nothing in flight (keep-alive idle).
    idle_since: u64,
    /// When output last moved (or began to wait).
    send_progress: u64,
    /// The peer closed its side: answer what came, then close.
    eof: bool,
    /// Close once `output` is sent (Connection: close, an error).
    closing: bool,
}

impl Conn {
    fn new(now: u64, peer: Peer) -> Conn {
        Conn {
            peer: peer.address,
            input: Vec::new(),
            output: Vec::new(),
            sent: 0,
            request_since: None,
            head_done: None,
            continued: false,
            idle_since: now,
            send_progress: now,
            eof: false,
            closing: false,
        }
    }

    fn unsent(&self) -> usize {
        self.output.len() - self.sent
    }

    /// A keep-alive connection with no request in progress (nothing
    /// received of a next one, nothing left to send): closing it loses
    /// nothing, so a newcomer may take its slot.
    fn idle(&self) -> bool {
        self.input.is_empty() && self.unsent() == 0 && self.request_since.is_none() && !self.closing && !self.eof
    }

    /// Bytes this connection holds in its buffers.
    fn held(&self) -> usize {
        self.input.capacity() + self.output.capacity()
    }

    /// Queues a final response (an error) and stops reading.
    fn fail(&mut self, status: u16) {
        self.input.clear();
        let _ = Response::error(status).write_into(&mut self.output, false, false);
        self.closing = true;
    }
}

struct Server {
    tcp: Tcp,
    limits: Limits,
    conns: BTreeMap<Socket, Conn>,
    /// Sum of [`Conn::held`] over `conns`.
    held: usize,
    requests: u64,
    /// Connections the `tcp` service dealt to this worker.
    accepted: u64,
    /// Connections refused with 503 (full; of them, for the per-peer
    /// limit), idle ones closed for a newcomer, and closed by a deadline.
    refused: u64,
    refused_per_peer: u64,
    evicted: u64,
    timed_out: u64,
    /// When this instance started (ms of the system clock): `/api/stats`
    /// says it, so a restart shows.
    started_ms: u64,
    /// Until then responses go out with `Connection: close` (set when the
    /// connections near their limit).
    close_until: u64,
}

/// Whether a newcomer can be served.
enum Room {
    Free,
    /// `--max-connections` or the memory budget reached, none idle.
    Full,
    /// Its peer's `--max-per-peer` reached, none of that peer's idle.
    PeerFull,
}

pub fn main() {
    let mut store = [0u8; env::MAX_BYTES];
    let mut argv = [""; env::MAX_ARGS];
    let argc = env::args(&mut store, &mut argv);
    let limits = match Limits::from_args(argv.get(1..argc).unwrap_or(&[])) {
        Ok(l) => l,
        Err(why) => {
            println!("webapi: {why}");
            wasmos_sdk::exit(2)
        }
    };
    let tcp = loop {
        match Tcp::connect() {
            Ok(tcp) => break tcp,
            // The `tcp` service starts with the system; wait for it.
            Err(_) => wasmos_sdk::sleep_ns(10_000_000),
        }
    };
    let port = limits.port;
    // Shared: init may start a worker on every core, all on this port.
    let listener = match tcp.listen_shared(port) {
        Ok(l) => l,
        Err(e) => {
            println!("webapi: cannot listen on port {port}: {e:?}");
            wasmos_sdk::exit(1)
        }
    };
    println!("webapi: listening on port {port} (core {})", wasmos_sdk::core_id());
    let mut server = Server {
        tcp,
        limits,
        conns: BTreeMap::new(),
        held: 0,
        requests: 0,
        accepted: 0,
        refused: 0,
        refused_per_peer: 0,
        evicted: 0,
        timed_out: 0,
        started_ms: wasmos_sdk::now_ns() / 1_000_000,
        close_until: 0,
    };
    let mut events = [Event::default(); 128];
    loop {
        // Wake at least every 100 ms for the deadlines.
        let ready = match server.tcp.poll(&mut events, Some(100)) {
            Ok(ready) => ready,
            Err(e) => {
                println!("webapi: poll failed: {e:?}");
                wasmos_sdk::exit(1)
            }
        };
        let mut progress = ready.is_empty();
        for &Event { socket, events: bits } in ready {
            if socket == listener {
                progress |= server.accept_all(listener);
            } else {
                progress |= server.serve(socket, bits);
            }
        }
        server.expire();
        // Readiness is level-triggered: a connection held back (output
        // full, budget spent) or half-closed stays ready. Rather than spin
        // on it, give the peers a moment.
        if !progress {
            wasmos_sdk::sleep_ns(1_000_000);
        }
    }
}

impl Server {
    /// Accepts every waiting connection; true if there was one.
    fn accept_all(&mut self, listener: Socket) -> bool {
        let mut any = false;
        loop {
            match self.tcp.accept_peer(listener) {
                Ok((socket, peer)) => {
                    any = true;
                    self.accepted += 1;
                    let now = wasmos_sdk::now_ns();
                    match self.make_room(peer.address) {
                        Room::Free => {
                            self.conns.insert(socket, Conn::new(now, peer));
                        }
                        full => {
                            self.refused += 1;
                            self.refused_per_peer += u64::from(matches!(full, Room::PeerFull));
                            let busy = Response { retry_after: Some(1), ..Response::error(503) };
                            let _ = self.tcp.send(socket, &busy.to_bytes(false));
                            let _ = self.tcp.close(socket);
                        }
                    }
                    // Near the limit: let keep-alive clients give their
                    // slots back for a while.
                    let l = &self.limits;
                    if self.conns.len() >= l.max_connections - l.max_connections / 8 {
                        self.close_until = now + CLOSE_WINDOW_NS;
                    }
                }
                Err(Error::Net(NetError::WouldBlock)) => return any,
                Err(e) => {
                    println!("webapi: accept failed: {e:?}");
                    return any;
                }
            }
        }
    }

    /// Whether a newcomer from `peer` may be served: past its peer's limit
    /// or the connection limit, the longest-idle connection (of that peer,
    /// or of all) is closed to make room; none idle, no room.
    fn make_room(&mut self, peer: [u8; 4]) -> Room {
        if self.held >= self.limits.memory_budget {
            return Room::Full;
        }
        let from_peer = self.conns.values().filter(|c| c.peer == peer).count();
        if from_peer >= self.limits.max_per_peer {
            return if self.evict_idle(Some(peer)) { Room::Free } else { Room::PeerFull };
        }
        if self.conns.len() >= self.limits.max_connections {
            return if self.evict_idle(None) { Room::Free } else { Room::Full };
        }
        Room::Free
    }

    /// Closes the connection idle longest (of `peer`, if given), if it has
    /// been idle for [`EVICT_IDLE_NS`]; false if none has.
    fn evict_idle(&mut self, peer: Option<[u8; 4]>) -> bool {
        let now = wasmos_sdk::now_ns();
        let victim = self
            .conns
            .iter()
            .filter(|(_, c)| c.idle() && now.saturating_sub(c.idle_since) >= EVICT_IDLE_NS)
            .filter(|(_, c)| peer.is_none_or(|p| c.peer == p))
            .min_by_key(|(_, c)| c.idle_since)
            .map(|(&socket, _)| socket);
        let Some(socket) = victim else { return false };
        if let Some(conn) = self.conns.remove(&socket) {
            self.held -= conn.held();
        }
        let _ = self.tcp.close(socket);
        self.evicted += 1;
        true
    }

    /// Writes what is pending, reads what it may, answers every whole
    /// request, writes again. True if any byte moved.
    fn serve(&mut self, socket: Socket, bits: u32) -> bool {
        let Some(mut conn) = self.conns.remove(&socket) else { return false };
        self.held -= conn.held();
        let before = (conn.input.len(), conn.sent, conn.output.len(), conn.eof);
        let mut keep = bits & events::ERROR == 0 && self.write(socket, &mut conn);
        if keep && self.may_read(&conn) {
            keep = self.read(socket, &mut conn);
        }
        if keep {
            self.answer(&mut conn);
            keep = self.write(socket, &mut conn);
        }
        let progress = !keep || before != (conn.input.len(), conn.sent, conn.output.len(), conn.eof);
        if keep && !(conn.closing && conn.unsent() == 0) {
            self.held += conn.held();
            self.conns.insert(socket, conn);
        } else {
            let _ = self.tcp.close(socket);
        }
        progress
    }

    /// Whether `conn` may take more input now (back-pressure).
    fn may_read(&self, conn: &Conn) -> bool {
        !conn.eof
            && !conn.closing
            && conn.unsent() < self.limits.max_output
            && conn.input.len() < http::MAX_HEAD + http::MAX_BODY
            && self.held < self.limits.memory_budget
    }

    /// Reads until the socket has nothing more or the connection's input
    /// is full; false if the connection is gone.
    fn read(&mut self, socket: Socket, conn: &mut Conn) -> bool {
        let mut buf = [0u8; READ_CHUNK];
        for _ in 0..READS_PER_ROUND {
            let room = (http::MAX_HEAD + http::MAX_BODY).saturating_sub(conn.input.len()).min(READ_CHUNK);
            if room == 0 || self.held + conn.held() >= self.limits.memory_budget {
                return true;
            }
            match self.tcp.recv(socket, &mut buf[..room]) {
                Ok(0) => {
                    conn.eof = true;
                    return true;
                }
                Ok(n) => {
                    if conn.input.try_reserve(n).is_err() {
                        conn.fail(503);
                        return true;
                    }
                    if conn.input.is_empty() && conn.request_since.is_none() {
                        conn.request_since = Some(wasmos_sdk::now_ns());
                    }
                    conn.input.extend_from_slice(&buf[..n]);
                }
                Err(Error::Net(NetError::WouldBlock)) => return true,
                Err(_) => return false,
            }
        }
        true
    }

    /// Answers the whole requests in `conn.input` while its output has
    /// room.
    fn answer(&mut self, conn: &mut Conn) {
        while !conn.input.is_empty() && !conn.closing && conn.unsent() < self.limits.max_output {
            let now = wasmos_sdk::now_ns();
            let (status, used) = match http::parse(&conn.input) {
                Parsed::Incomplete => break,
                Parsed::Body { expect_continue } => {
                    conn.head_done.get_or_insert(now);
                    if expect_continue && !conn.continued {
                        conn.continued = true;
                        if conn.output.try_reserve(http::CONTINUE.len()).is_err() {
                            conn.fail(503);
                            break;
                        }
                        conn.output.extend_from_slice(http::CONTINUE);
                    }
                    break;
                }
                Parsed::Bad(status) => (Err(status), conn.input.len()),
                Parsed::Complete(req, used) => {
                    if self.limits.crash_route && req.method == "POST" && req.path == "/api/crash" {
                        println!("webapi: POST /api/crash with --crash-route: trapping on purpose");
                        core::arch::wasm32::unreachable()
                    }
                    self.requests += 1;
                    let keep_alive = req.keep_alive && now >= self.close_until;
                    let stats = || stats_json(self, self.conns.len() + 1);
                    let response = http::route(&req, stats);
                    match response.write_into(&mut conn.output, keep_alive, http::head_only(&req)) {
                        Ok(()) => (Ok(keep_alive), used),
                        Err(_) => (Err(503), used),
                    }
                }
            };
            conn.input.drain(..used);
            conn.request_since = (!conn.input.is_empty()).then_some(now);
            conn.head_done = None;
            conn.continued = false;
            conn.idle_since = now;
            match status {
                Ok(keep_alive) => conn.closing |= !keep_alive,
                Err(status) => conn.fail(status),
            }
        }
        // Half-closed: what is not a whole request by now never will be.
        if conn.eof && !conn.closing && conn.unsent() < self.limits.max_output {
            conn.input.clear();
            conn.closing = true;
        }
        if conn.input.is_empty() && conn.input.capacity() > KEEP_CAPACITY {
            conn.input = Vec::new();
        }
    }

    /// Sends what it can of `conn.output`; false if the connection failed.
    fn write(&mut self, socket: Socket, conn: &mut Conn) -> bool {
        while conn.sent < conn.output.len() {
            match self.tcp.send(socket, &conn.output[conn.sent..]) {
                Ok(n) => {
                    conn.sent += n;
                    conn.send_progress = wasmos_sdk::now_ns();
                }
                Err(Error::Net(NetError::WouldBlock)) => {
                    // Drop what is sent: a peer that reads slowly but never
                    // stops must not make the buffer grow past the unsent
                    // limit.
                    if conn.sent >= KEEP_CAPACITY {
                        conn.output.drain(..conn.sent);
                        conn.sent = 0;
                    }
                    return true;
                }
                Err(_) => return false,
            }
        }
        if conn.output.capacity() > KEEP_CAPACITY {
            conn.output = Vec::new();
        } else {
            conn.output.clear();
        }
        conn.sent = 0;
        conn.send_progress = wasmos_sdk::now_ns();
        true
    }

    /// Enforces the deadlines: a request head or body too slow gets a 408,
    /// an idle connection or one whose peer takes no output is closed.
    fn expire(&mut self) {
        let now = wasmos_sdk::now_ns();
        let l = self.limits;
        let past = |since: u64, limit: u64| now.saturating_sub(since) > limit;
        let mut expired: Vec<(Socket, bool)> = Vec::new();
        for (&socket, conn) in &self.conns {
            let slow_request = match (conn.request_since, conn.head_done) {
                (_, Some(head)) => past(head, l.body_timeout_ns),
                (Some(first), None) => past(first, l.head_timeout_ns),
                (None, None) => false,
            };
            if conn.unsent() > 0 {
                if past(conn.send_progress, l.send_timeout_ns) {
                    expired.push((socket, false));
                }
            } else if slow_request && !conn.closing {
                expired.push((socket, true));
            } else if conn.input.is_empty() && past(conn.idle_since, l.idle_timeout_ns) {
                expired.push((socket, false));
            }
        }
        for (socket, answer) in expired {
            let Some(mut conn) = self.conns.remove(&socket) else { continue };
            self.held -= conn.held();
            self.timed_out += 1;
            if answer {
                // 408, then close once sent (small: it fits the socket).
                conn.fail(408);
                if self.write(socket, &mut conn) && conn.unsent() > 0 {
                    self.held += conn.held();
                    self.conns.insert(socket, conn);
                    continue;
                }
            }
            let _ = self.tcp.close(socket);
        }
    }
}

/// Bytes of Wasm linear memory this task has.
fn memory_bytes() -> usize {
    #[cfg(target_arch = "wasm32")]
    {
        core::arch::wasm32::memory_size::<0>() * 65536
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        0
    }
}

/// `/api/stats`: the system's counters, and this server's.
fn stats_json(server: &Server, connections: usize) -> String {
    let mut buf = [0u8; wasmos_sdk::abi::MAX_PAYLOAD];
    let mut out = String::new();
    let own = alloc::format!(
        "\"worker_core\":{},\"accepted\":{},\"started_ms\":{},\"requests_served\":{},\"connections\":{connections},\"buffered_bytes\":{},\"memory_bytes\":{},\"refused_busy\":{},\"refused_per_peer\":{},\"evicted_idle\":{},\"timed_out\":{}",
        wasmos_sdk::core_id(),
        server.accepted,
        server.started_ms,
        server.requests,
        server.held,
        memory_bytes(),
        server.refused,
        server.refused_per_peer,
        server.evicted,
        server.timed_out,
    );
    match wasmos_sdk::sysinfo::query(&mut buf) {
        Ok(info) => {
            let list = |f: &dyn Fn(wasmos_sdk::sysinfo::CoreInfo) -> u64| {
                let items: Vec<String> = info.cores().map(|c| alloc::format!("{}", f(c))).collect();
                items.join(",")
            };
            let _ = write!(
                out,
                "{{\"uptime_ms\":{},\"cores\":{},\"tasks_per_core\":[{}],\"messages_delivered_per_core\":[{}],\"slices_per_core\":[{}],{own}}}",
                info.uptime_ns / 1_000_000,
                info.core_count(),
                list(&|c| c.tasks as u64),
                list(&|c| c.delivered),
                list(&|c| c.switches),
            );
        }
        Err(e) => {
            let _ = write!(out, "{{\"error\":\"sysinfo: {}\",{own}}}", e.name());
        }
    }
    out.push('\n');
    out
}
