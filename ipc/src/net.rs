//! The TCP socket protocol: what a task says to the `tcp` service.
//!
//! The `tcp` service is the TCP/IP server. On bare metal it is smoltcp on a
//! virtio-net device, in the hosted runtime the host's sockets; both speak
//! exactly this protocol, which is why one `.wasm` file serves HTTP in
//! both worlds. A program finds the service with
//! `service_lookup("tcp")` and talks to it with `ipc_call` only.
//!
//! # Requests
//! A request is a 12-byte header, little-endian, then data (for `SEND`):
//!
//! | bytes | field | meaning |
//! |---|---|---|
//! | 0 | `op` | an [`Op`] |
//! | 1..4 | — | zero |
//! | 4..8 | `socket` | a socket id from `LISTEN` / `ACCEPT` |
//! | 8..12 | `arg` | depends on `op` |
//!
//! | op | `socket` | `arg` | data | reply `result` | reply data |
//! |---|---|---|---|---|---|
//! | `LISTEN` | — | port, ORed with [`listen`] flags | — | listener id | — |
//! | `ACCEPT` | listener | — | — | connection id | the peer: IPv4 address (4 bytes, network order), port (`u16`) |
//! | `RECV` | connection | max bytes | — | bytes read, `0` = peer closed | the bytes |
//! | `SEND` | connection | — | bytes to send | bytes taken (maybe fewer) | — |
//! | `CLOSE` | either | — | — | `0` | — |
//! | `POLL` | most events wanted (`0` = [`MAX_EVENTS`]) | timeout ms (`u32::MAX` = none) | — | number of events | `(socket u32, events u32)` each |
//!
//! # Shared ports
//! Several tasks may listen on one port, each with `LISTEN` and
//! [`listen::SHARED`] (all of them: a port taken without it is
//! `ADDRESS_IN_USE` to everyone else, and a shared port to a task asking
//! without it). This is how one web server runs a worker on every core.
//! Each task gets a listener of its own; the service deals the port's new
//! connections to them round-robin, skipping a listener that already has
//! [`DEAL_AHEAD`] dealt and not yet accepted, so a worker that falls
//! behind is given fewer. A listener is `READABLE` only for connections
//! dealt to it: one connection wakes one worker. The connections still
//! dealt to a listener that closes (or whose task dies) are dealt again
//! to the others; the last one to close ends the port.
//!
//! `ACCEPT`'s reply data names the peer so a server can count
//! connections per peer (webapi's `--max-per-peer`); all zeros when the
//! service does not know it. A client that wants only the id may ignore
//! the data.
//!
//! # Replies
//! A reply is an `i32` `result`, then data. `result < 0` is a
//! [`NetError`]. Every call but `POLL` answers at once: `ACCEPT`, `RECV`
//! and `SEND` say [`NetError::WouldBlock`] instead of waiting, and `POLL`
//! is where a program waits: it answers when one of the caller's sockets
//! is ready ([`events`]; level-triggered, like `poll(2)`) or the timeout
//! passes (then with 0 events). One task serves many connections this way,
//! and a slow or silent peer holds up nobody else. `POLL` reports ready
//! sockets round-robin: each reply starts after the last socket the
//! caller's previous reply named, so a caller taking a few at a time
//! still sees every ready socket in turn.
//!
//! # Ownership
//! A socket belongs to the task that created it: every other task gets
//! [`NetError::InvalidSocket`] for it. The service closes a task's sockets
//! when the task dies.

/// The service's name in the name service.
pub const SERVICE: &str = "tcp";

/// Request header length.
pub const HEADER: usize = 12;

/// Most bytes one `SEND` can carry (a request is at most `MAX_PAYLOAD`).
pub const MAX_SEND: usize = crate::abi::MAX_PAYLOAD - HEADER;

/// Most bytes one `RECV` returns (a reply is at most `MAX_PAYLOAD`).
pub const MAX_RECV: usize = crate::abi::MAX_PAYLOAD - 4;

/// Most events one `POLL` reply lists.
pub const MAX_EVENTS: usize = MAX_RECV / 8;

/// Bytes of an `ACCEPT` reply's data: the peer's IPv4 address and port.
pub const PEER_BYTES: usize = 6;

/// Who is at the other end of a connection (from `ACCEPT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Peer {
    /// IPv4 address, most significant octet first.
    pub address: [u8; 4],
    pub port: u16,
}

impl Peer {
    /// The `ACCEPT` reply data.
    pub fn encode(&self) -> [u8; PEER_BYTES] {
        let [a, b, c, d] = self.address;
        let [p0, p1] = self.port.to_le_bytes();
        [a, b, c, d, p0, p1]
    }

    /// Reads `ACCEPT` reply data; `None` if it is too short (a service
    /// that does not name peers).
    pub fn decode(bytes: &[u8]) -> Option<Peer> {
        let b = bytes.get(..PEER_BYTES)?;
        Some(Peer { address: [b[0], b[1], b[2], b[3]], port: u16::from_le_bytes([b[4], b[5]]) })
    }
}

/// Flags of a `LISTEN`'s `arg`, above the port's 16 bits.
pub mod listen {
    /// Share the port with other tasks listening with this flag (see
    /// "Shared ports" above).
    pub const SHARED: u32 = 1 << 16;
    /// Every flag; a `LISTEN` with another bit set is `BAD_REQUEST`.
    pub const ALL: u32 = SHARED;
}

/// Most connections dealt to one listener of a shared port and not yet
/// accepted by it; the rest wait in the port's backlog.
pub const DEAL_AHEAD: usize = 4;

/// `POLL` timeout meaning "no timeout".
pub const NO_TIMEOUT: u32 = u32::MAX;

#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Listen = 1,
    Accept = 2,
    Recv = 3,
    Send = 4,
    Close = 5,
    Poll = 6,
}

impl Op {
    pub fn from_u8(v: u8) -> Option<Op> {
        Some(match v {
            1 => Op::Listen,
            2 => Op::Accept,
            3 => Op::Recv,
            4 => Op::Send,
            5 => Op::Close,
            6 => Op::Poll,
            _ => return None,
        })
    }
}

/// Readiness bits in a `POLL` event.
pub mod events {
    /// A connection has bytes to read or the peer closed it (`RECV` will
    /// not say `WOULD_BLOCK`); a listener has a connection to `ACCEPT`.
    pub const READABLE: u32 = 1;
    /// A connection whose last `SEND` was refused or cut short can take
    /// bytes again. (Reported only then: a socket is writable nearly
    /// always, and saying so would wake the caller for nothing.)
    pub const WRITABLE: u32 = 2;
    /// The connection was reset or failed: `RECV`/`SEND` give `RESET`.
    pub const ERROR: u32 = 4;
}

/// Errors, as negative `result` values.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetError {
    /// Nothing to accept or read, or no room to send, right now: `POLL`.
    WouldBlock = -1,
    /// No such socket, or it belongs to another task.
    InvalidSocket = -2,
    /// The request is malformed (short header, unknown op, bad argument).
    BadRequest = -3,
    /// Another listener has the port.
    AddressInUse = -4,
    /// The connection was reset or failed.
    Reset = -5,
    /// The service is out of sockets (or its memory for them).
    NoResources = -6,
    /// The operation does not apply to this kind of socket (`RECV` on a
    /// listener, `ACCEPT` on a connection).
    WrongKind = -7,
    /// The service has no network (no device found, link down).
    NoNetwork = -8,
}

impl NetError {
    pub const ALL: [NetError; 8] = [
        NetError::WouldBlock,
        NetError::InvalidSocket,
        NetError::BadRequest,
        NetError::AddressInUse,
        NetError::Reset,
        NetError::NoResources,
        NetError::WrongKind,
        NetError::NoNetwork,
    ];

    pub fn code(self) -> i32 {
        self as i32
    }

    pub fn from_code(code: i32) -> Option<NetError> {
        NetError::ALL.into_iter().find(|e| e.code() == code)
    }
}

/// A decoded request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'a> {
    pub op: Op,
    pub socket: u32,
    pub arg: u32,
    pub data: &'a [u8],
}

impl<'a> Request<'a> {
    /// Decodes a request; `BadRequest` for a short header, unknown op or
    /// data on an op that takes none.
    pub fn decode(bytes: &'a [u8]) -> Result<Request<'a>, NetError> {
        let header = bytes.get(..HEADER).ok_or(NetError::BadRequest)?;
        let op = Op::from_u8(header[0]).ok_or(NetError::BadRequest)?;
        let word = |i: usize| u32::from_le_bytes(header[i..i + 4].try_into().expect("4 bytes"));
        let data = &bytes[HEADER..];
        if op != Op::Send && !data.is_empty() {
            return Err(NetError::BadRequest);
        }
        Ok(Request { op, socket: word(4), arg: word(8), data })
    }

    /// Writes the request into `out` and returns its length (`HEADER` plus
    /// the data, which must fit).
    pub fn encode(&self, out: &mut [u8]) -> usize {
        out[0] = self.op as u8;
        out[1..4].fill(0);
        out[4..8].copy_from_slice(&self.socket.to_le_bytes());
        out[8..12].copy_from_slice(&self.arg.to_le_bytes());
        out[HEADER..HEADER + self.data.len()].copy_from_slice(self.data);
        HEADER + self.data.len()
    }
}

/// Splits a reply into its result and data; `BadRequest` if it is shorter
/// than the result word.
pub fn decode_reply(bytes: &[u8]) -> Result<(Result<u32, NetError>, &[u8]), NetError> {
    let head = bytes.get(..4).ok_or(NetError::BadRequest)?;
    let result = i32::from_le_bytes(head.try_into().expect("4 bytes"));
    let result =
        if result >= 0 { Ok(result as u32) } else { Err(NetError::from_code(result).unwrap_or(NetError::BadRequest)) };
    Ok((result, &bytes[4..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_round_trip() {
        let mut buf = [0u8; 64];
        let req = Request { op: Op::Send, socket: 7, arg: 0, data: b"hello" };
        let n = req.encode(&mut buf);
        assert_eq!(n, HEADER + 5);
        assert_eq!(Request::decode(&buf[..n]), Ok(req));
    }

    #[test]
    fn malformed_requests_are_refused() {
        assert_eq!(Request::decode(&[1, 0, 0]), Err(NetError::BadRequest));
        let mut bad_op = [0u8; HEADER];
        bad_op[0] = 99;
        assert_eq!(Request::decode(&bad_op), Err(NetError::BadRequest));
        let mut listen_with_data = [0u8; HEADER + 1];
        listen_with_data[0] = Op::Listen as u8;
        assert_eq!(Request::decode(&listen_with_data), Err(NetError::BadRequest));
    }

    #[test]
    fn peer_round_trip() {
        let peer = Peer { address: [10, 0, 2, 2], port: 51234 };
        assert_eq!(Peer::decode(&peer.encode()), Some(peer));
        assert_eq!(Peer::decode(&[1, 2, 3]), None);
    }

    #[test]
    fn replies_and_error_codes() {
        let mut reply = (-5i32).to_le_bytes().to_vec();
        assert_eq!(decode_reply(&reply), Ok((Err(NetError::Reset), &[][..])));
        reply = 3i32.to_le_bytes().to_vec();
        reply.extend_from_slice(b"abc");
        assert_eq!(decode_reply(&reply), Ok((Ok(3), &b"abc"[..])));
        assert_eq!(decode_reply(&[0, 0]), Err(NetError::BadRequest));
        for e in NetError::ALL {
            assert_eq!(NetError::from_code(e.code()), Some(e));
        }
    }
}
