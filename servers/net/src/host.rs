//! The std::net backend: the hosted runtime's `tcp` service uses the
//! host's own TCP/IP stack, so a Wasm web server under `wasmos-hosted` is
//! reachable like any Linux server.
//!
//! Every socket is non-blocking; readiness is found by trying (`peek` for
//! reads, `accept` for listeners, whose early catches wait in a backlog).
//! Without an event source of our own the service is polled every
//! millisecond while a task waits in `POLL`, and not at all otherwise.

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};

use wasmos_ipc::net::{NetError, Peer, events};

use crate::service::Backend;

/// How often readiness is re-checked while a task waits in `POLL`.
const RECHECK_NS: u64 = 1_000_000;

/// The host's sockets, listening on `address`.
pub struct HostNet {
    address: Ipv4Addr,
}

impl HostNet {
    /// Listeners bind to `address` (`127.0.0.1` keeps the server private
    /// to this machine; `0.0.0.0` exposes it).
    pub fn new(address: Ipv4Addr) -> HostNet {
        HostNet { address }
    }
}

pub struct Listener {
    socket: TcpListener,
    backlog: VecDeque<TcpStream>,
}

impl Listener {
    /// Takes every pending connection off the host socket into the backlog.
    fn fill(&mut self) {
        while let Ok((stream, _)) = self.socket.accept() {
            if stream.set_nonblocking(true).is_ok() {
                let _ = stream.set_nodelay(true);
                self.backlog.push_back(stream);
            }
        }
    }
}

fn error(e: &std::io::Error) -> NetError {
    match e.kind() {
        ErrorKind::WouldBlock => NetError::WouldBlock,
        ErrorKind::AddrInUse => NetError::AddressInUse,
        ErrorKind::PermissionDenied | ErrorKind::AddrNotAvailable => NetError::BadRequest,
        _ => NetError::Reset,
    }
}

/// `Ok(None)` for would-block, an error for anything else.
fn nonblocking(r: std::io::Result<usize>) -> Result<Option<usize>, NetError> {
    match r {
        Ok(n) => Ok(Some(n)),
        Err(e) if e.kind() == ErrorKind::WouldBlock => Ok(None),
        Err(e) if e.kind() == ErrorKind::Interrupted => Ok(None),
        Err(e) => Err(error(&e)),
    }
}

impl Backend for HostNet {
    type Listener = Listener;
    type Conn = TcpStream;

    fn listen(&mut self, port: u16) -> Result<Listener, NetError> {
        let socket = TcpListener::bind(SocketAddr::from((self.address, port))).map_err(|e| error(&e))?;
        socket.set_nonblocking(true).map_err(|e| error(&e))?;
        Ok(Listener { socket, backlog: VecDeque::new() })
    }

    fn accept(&mut self, listener: &mut Listener) -> Result<Option<TcpStream>, NetError> {
        listener.fill();
        Ok(listener.backlog.pop_front())
    }

    fn recv(&mut self, conn: &mut TcpStream, buf: &mut [u8]) -> Result<Option<usize>, NetError> {
        nonblocking(conn.read(buf))
    }

    fn send(&mut self, conn: &mut TcpStream, data: &[u8]) -> Result<Option<usize>, NetError> {
        match nonblocking(conn.write(data))? {
            Some(0) if !data.is_empty() => Ok(None),
            n => Ok(n),
        }
    }

    fn readiness(&mut self, conn: &mut TcpStream) -> u32 {
        // The host does not say whether a send would block without trying
        // one: report writable and let `SEND` say `WOULD_BLOCK`.
        let mut byte = [0u8; 1];
        match conn.peek(&mut byte) {
            Ok(_) => events::READABLE | events::WRITABLE,
            Err(e) if e.kind() == ErrorKind::WouldBlock => events::WRITABLE,
            Err(_) => events::READABLE | events::ERROR,
        }
    }

    fn close(&mut self, conn: TcpStream) {
        // Dropping sends FIN after what is already queued.
        let _ = conn.shutdown(std::net::Shutdown::Write);
    }

    fn close_listener(&mut self, _listener: Listener) {}

    fn peer(&mut self, conn: &TcpStream) -> Option<Peer> {
        match conn.peer_addr().ok()? {
            SocketAddr::V4(a) => Some(Peer { address: a.ip().octets(), port: a.port() }),
            SocketAddr::V6(_) => None,
        }
    }

    fn poll(&mut self, now_ns: u64, waiting: bool) -> Option<u64> {
        waiting.then_some(now_ns + RECHECK_NS)
    }
}
