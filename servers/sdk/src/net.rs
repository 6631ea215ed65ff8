//! TCP sockets for WasmOS programs: a client of the `tcp` service.
//!
//! Every call is one `ipc_call` to the service (protocol:
//! `wasmos_ipc::net`). Nothing here blocks except [`Tcp::poll`], which is
//! how a program waits for any of its sockets, so one task can serve many
//! connections without a slow peer holding up the others.
//!
//! ```ignore
//! let tcp = Tcp::connect()?;                 // finds the `tcp` service
//! let listener = tcp.listen(8080)?;
//! let mut events = [Event::default(); 64];
//! loop {
//!     for e in tcp.poll(&mut events, None)? { /* accept / recv / send */ }
//! }
//! ```

use wasmos_ipc::net::{HEADER, NO_TIMEOUT, Op, Request, SERVICE, decode_reply};
pub use wasmos_ipc::net::{MAX_RECV, MAX_SEND, NetError, Peer, events};

use crate::{Handle, Status};

/// Why a socket call failed: the service said no, or the call itself
/// failed (no `tcp` service, it died...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    Net(NetError),
    Ipc(Status),
}

impl From<NetError> for Error {
    fn from(e: NetError) -> Self {
        Error::Net(e)
    }
}

impl From<Status> for Error {
    fn from(e: Status) -> Self {
        Error::Ipc(e)
    }
}

/// A socket id (listener or connection), owned by this task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Socket(pub u32);

/// A readiness report from [`Tcp::poll`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Event {
    pub socket: Socket,
    /// [`events`] bits.
    pub events: u32,
}

/// A connection to the `tcp` service.
pub struct Tcp {
    service: Handle,
}

impl Tcp {
    /// Looks up the `tcp` service (waiting until it is registered).
    pub fn connect() -> Result<Tcp, Status> {
        Ok(Tcp { service: crate::lookup(SERVICE)? })
    }

    /// One request; the reply's result word, its data copied into `out`.
    fn request(&self, op: Op, socket: u32, arg: u32, data: &[u8], out: &mut [u8]) -> Result<(u32, usize), Error> {
        let mut msg = [0u8; wasmos_ipc::abi::MAX_PAYLOAD];
        let len = Request { op, socket, arg, data }.encode(&mut msg);
        let mut reply = [0u8; wasmos_ipc::abi::MAX_PAYLOAD];
        let n = crate::call(self.service, &msg[..len], &mut reply)?;
        let (result, body) = decode_reply(&reply[..n])?;
        let copied = body.len().min(out.len());
        out[..copied].copy_from_slice(&body[..copied]);
        Ok((result?, copied))
    }

    /// Listens on `port` (all addresses of the machine).
    pub fn listen(&self, port: u16) -> Result<Socket, Error> {
        self.request(Op::Listen, 0, port as u32, &[], &mut []).map(|(id, _)| Socket(id))
    }

    /// Listens on `port` together with every other task that does so with
    /// this call: the service deals the port's connections among them,
    /// round-robin (one web server's workers on every core; protocol:
    /// `wasmos_ipc::net`, "Shared ports").
    pub fn listen_shared(&self, port: u16) -> Result<Socket, Error> {
        let arg = port as u32 | wasmos_ipc::net::listen::SHARED;
        self.request(Op::Listen, 0, arg, &[], &mut []).map(|(id, _)| Socket(id))
    }

    /// A new connection, or `Net(WouldBlock)` if none is waiting.
    pub fn accept(&self, listener: Socket) -> Result<Socket, Error> {
        self.accept_peer(listener).map(|(socket, _)| socket)
    }

    /// A new connection and who is at its other end (all zeros if the
    /// service does not say), or `Net(WouldBlock)` if none is waiting.
    pub fn accept_peer(&self, listener: Socket) -> Result<(Socket, Peer), Error> {
        let mut peer = [0u8; wasmos_ipc::net::PEER_BYTES];
        let (id, n) = self.request(Op::Accept, listener.0, 0, &[], &mut peer)?;
        Ok((Socket(id), Peer::decode(&peer[..n]).unwrap_or_default()))
    }

    /// Reads up to `buf.len()` (at most [`MAX_RECV`]) bytes; `Ok(0)` = the
    /// peer closed; `Net(WouldBlock)` = nothing yet.
    pub fn recv(&self, conn: Socket, buf: &mut [u8]) -> Result<usize, Error> {
        let max = buf.len().min(MAX_RECV) as u32;
        self.request(Op::Recv, conn.0, max, &[], buf).map(|(_, n)| n)
    }

    /// Sends a prefix of `data` (at most [`MAX_SEND`] bytes); returns its
    /// length. `Net(WouldBlock)` = no room now: wait for `WRITABLE`.
    pub fn send(&self, conn: Socket, data: &[u8]) -> Result<usize, Error> {
        let data = &data[..data.len().min(MAX_SEND)];
        self.request(Op::Send, conn.0, 0, data, &mut []).map(|(n, _)| n as usize)
    }

    /// Closes a listener or connection (pending bytes still go out).
    pub fn close(&self, socket: Socket) -> Result<(), Error> {
        self.request(Op::Close, socket.0, 0, &[], &mut []).map(drop)
    }

    /// Waits until one of this task's sockets is ready or `timeout_ms`
    /// passes (`None`: no limit; `Some(0)`: just look). Fills `out` and
    /// returns the ready ones. The service hands them out round-robin
    /// (each call starts after the last socket the previous one reported),
    /// so however many are ready, a batch of `out.len()` starves none.
    pub fn poll<'a>(&self, out: &'a mut [Event], timeout_ms: Option<u32>) -> Result<&'a [Event], Error> {
        let mut raw = [0u8; wasmos_ipc::abi::MAX_PAYLOAD];
        let timeout = timeout_ms.map_or(NO_TIMEOUT, |t| t.min(NO_TIMEOUT - 1));
        // The socket word of a POLL is how many events the caller takes.
        let max = u32::try_from(out.len()).unwrap_or(u32::MAX);
        let (count, len) = self.request(Op::Poll, max, timeout, &[], &mut raw)?;
        let mut n = 0;
        for (chunk, slot) in raw[..len].chunks_exact(8).take(count as usize).zip(out.iter_mut()) {
            let word = |i: usize| u32::from_le_bytes([chunk[i], chunk[i + 1], chunk[i + 2], chunk[i + 3]]);
            *slot = Event { socket: Socket(word(0)), events: word(4) };
            n += 1;
        }
        Ok(&out[..n])
    }
}

const _: () = assert!(HEADER < wasmos_ipc::abi::MAX_PAYLOAD);
