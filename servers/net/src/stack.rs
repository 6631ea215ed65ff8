//! The smoltcp backend: a TCP/IP stack whose Ethernet frames travel by
//! IPC to and from a device driver server (on bare metal, the kernel's
//! virtio-net service): each frame is one message, so the stack knows
//! nothing of the card, and could run anywhere a task can.
//!
//! The link: the stack's first message to the driver is empty ("attach":
//! send received frames to me); after that every message either way is
//! one frame. A frame the other side cannot queue is dropped, as a card
//! with a full ring drops it; TCP sends it again.
//!
//! smoltcp has no listening socket that accepts many connections: one TCP
//! socket is one connection. A listening port is therefore a backlog of
//! sockets listening on it; accepting takes an established one out. The
//! backlog grows with demand: before every received frame the stack makes
//! sure [`SPARE_LISTENERS`] sockets of each port are still listening,
//! adding fresh ones while the port holds fewer than [`MAX_BACKLOG`]
//! (handshaking or waiting for `ACCEPT`), so a burst of up to
//! [`MAX_BACKLOG`] simultaneous connects is answered, not reset; a SYN
//! beyond that finds no listener and is reset. The sockets grown past
//! [`SPARE_LISTENERS`] are not charged when the listener is made, so they
//! are paid from the `tcp` service's memory budget as they are added
//! ([`Backend::uncharged_bytes`], [`Backend::set_growth_allowance`]): a
//! burst cannot take the kernel heap the budget protects. Closed connections linger
//! until their FIN exchange is over (or [`CLOSE_TIMEOUT_NS`]), then their
//! buffers are freed; while they linger they count against the budget
//! the same way.

use alloc::vec;
use alloc::vec::Vec;

use alloc::collections::VecDeque;
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};

use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::socket::tcp::{self, State};
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpCidr, Ipv4Address};
use wasmos_ipc::ids::TaskId;
use wasmos_ipc::net::{NetError, Peer, events};

use crate::service::Backend;

/// Sockets kept listening on each port, ready for the next SYNs.
pub const SPARE_LISTENERS: usize = 32;
/// Sockets one port may hold at once between `LISTEN`ing and `ACCEPT`
/// (listening, handshaking, established and not yet accepted): the burst
/// of simultaneous connects it answers. Each costs its buffers (24 KiB),
/// so 256 is 6 MiB of kernel heap at most, only while a burst waits.
pub const MAX_BACKLOG: usize = 256;
/// Receive and send buffer of each connection.
const RX_BUFFER: usize = 8 * 1024;
const TX_BUFFER: usize = 16 * 1024;
/// What one socket's buffers cost.
const SOCKET_BYTES: usize = RX_BUFFER + TX_BUFFER;
/// A closed connection whose peer never finishes the FIN exchange is
/// aborted after this long.
const CLOSE_TIMEOUT_NS: u64 = 10_000_000_000;
/// A connection silent for this long (no ACKs to our data) is dropped.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(60);

/// IPv4 settings of the interface.
#[derive(Debug, Clone, Copy)]
pub struct Ipv4Config {
    pub address: Ipv4Address,
    pub prefix_len: u8,
    pub gateway: Option<Ipv4Address>,
}

impl Ipv4Config {
    /// QEMU's user-mode network: the guest is 10.0.2.15/24, the host and
    /// router 10.0.2.2.
    pub const QEMU_USER: Ipv4Config = Ipv4Config {
        address: Ipv4Address::new(10, 0, 2, 15),
        prefix_len: 24,
        gateway: Some(Ipv4Address::new(10, 0, 2, 2)),
    };
}

/// Received frames waiting for the stack, at most (more are dropped).
const RX_QUEUE: usize = 256;
/// Frames the stack may have queued for the driver at once.
const TX_QUEUE: usize = 64;

/// smoltcp's view of the link to the driver: two frame queues.
pub struct FrameLink {
    driver: TaskId,
    rx: VecDeque<Vec<u8>>,
    tx: VecDeque<Vec<u8>>,
}

pub struct RxToken(Vec<u8>);
pub struct TxToken<'a>(&'a mut VecDeque<Vec<u8>>);

impl phy::RxToken for RxToken {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut frame = vec![0; len];
        let result = f(&mut frame);
        self.0.push_back(frame);
        result
    }
}

impl Device for FrameLink {
    type RxToken<'a> = RxToken;
    type TxToken<'a> = TxToken<'a>;

    fn receive(&mut self, _now: Instant) -> Option<(RxToken, TxToken<'_>)> {
        let frame = self.rx.pop_front()?;
        Some((RxToken(frame), TxToken(&mut self.tx)))
    }

    fn transmit(&mut self, _now: Instant) -> Option<TxToken<'_>> {
        (self.tx.len() < TX_QUEUE).then_some(TxToken(&mut self.tx))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = 1514;
        caps
    }
}

/// smoltcp over a [`FrameLink`] to a driver.
pub struct Stack {
    device: FrameLink,
    iface: Interface,
    sockets: SocketSet<'static>,
    /// Connections closed by their task, until the stack is done with them.
    closing: Vec<(SocketHandle, u64)>,
    ports: Vec<Port>,
    /// Bytes the backlogs may still grow by (the service's budget left).
    growth_allowance: usize,
}

/// A listening port's backlog.
struct Port {
    port: u16,
    backlog: Vec<SocketHandle>,
}

/// A listening port (its backlog is the stack's).
pub struct Listener {
    port: u16,
}

fn ns(now: Instant) -> u64 {
    now.total_micros() as u64 * 1000
}

fn instant(now_ns: u64) -> Instant {
    Instant::from_micros((now_ns / 1000) as i64)
}

impl Stack {
    /// A stack with address `mac`/`ip` whose frames go to and come from
    /// the driver service `driver`.
    pub fn new(driver: TaskId, mac: [u8; 6], ip: Ipv4Config, now_ns: u64) -> Stack {
        // The empty first frame attaches us to the driver.
        let mut device = FrameLink { driver, rx: VecDeque::new(), tx: VecDeque::from([Vec::new()]) };
        let config = Config::new(HardwareAddress::Ethernet(EthernetAddress(mac)));
        let mut iface = Interface::new(config, &mut device, instant(now_ns));
        iface.update_ip_addrs(|addrs| {
            addrs.push(IpCidr::new(ip.address.into(), ip.prefix_len)).expect("one address fits");
        });
        if let Some(gw) = ip.gateway {
            iface.routes_mut().add_default_ipv4_route(gw).expect("one route fits");
        }
        Stack {
            device,
            iface,
            sockets: SocketSet::new(Vec::new()),
            closing: Vec::new(),
            ports: Vec::new(),
            growth_allowance: 0,
        }
    }

    fn new_socket(&mut self) -> SocketHandle {
        let rx = tcp::SocketBuffer::new(vec![0; RX_BUFFER]);
        let tx = tcp::SocketBuffer::new(vec![0; TX_BUFFER]);
        let mut socket = tcp::Socket::new(rx, tx);
        socket.set_timeout(Some(CONNECTION_TIMEOUT));
        // Small responses go out at once rather than waiting for an ACK.
        socket.set_nagle_enabled(false);
        self.sockets.add(socket)
    }

    fn listening_socket(&mut self, port: u16) -> Result<SocketHandle, NetError> {
        let handle = self.new_socket();
        if self.sockets.get_mut::<tcp::Socket>(handle).listen(port).is_err() {
            self.sockets.remove(handle);
            return Err(NetError::BadRequest);
        }
        Ok(handle)
    }

    /// Tops up every port to [`SPARE_LISTENERS`] listening sockets, within
    /// [`MAX_BACKLOG`] and the growth allowance (a socket past a port's
    /// first [`SPARE_LISTENERS`] is paid from it).
    fn spare_listeners(&mut self) {
        for i in 0..self.ports.len() {
            let port = self.ports[i].port;
            let listening = self.ports[i]
                .backlog
                .iter()
                .filter(|&&h| self.sockets.get::<tcp::Socket>(h).state() == State::Listen)
                .count();
            let room = MAX_BACKLOG.saturating_sub(self.ports[i].backlog.len());
            for _ in 0..SPARE_LISTENERS.saturating_sub(listening).min(room) {
                let grows = self.ports[i].backlog.len() >= SPARE_LISTENERS;
                if grows && self.uncharged_bytes() + SOCKET_BYTES > self.growth_allowance {
                    break;
                }
                match self.listening_socket(port) {
                    Ok(h) => self.ports[i].backlog.push(h),
                    Err(_) => return,
                }
            }
        }
    }

    fn socket(&mut self, handle: SocketHandle) -> &mut tcp::Socket<'static> {
        self.sockets.get_mut::<tcp::Socket>(handle)
    }
}

/// Whether a backlog socket holds a connection ready to hand out.
fn accepted(state: State) -> bool {
    !matches!(state, State::Listen | State::SynReceived | State::Closed)
}

impl Backend for Stack {
    type Listener = Listener;
    type Conn = SocketHandle;

    fn listen(&mut self, port: u16) -> Result<Listener, NetError> {
        if self.ports.iter().any(|p| p.port == port) {
            return Err(NetError::AddressInUse);
        }
        let mut backlog = Vec::with_capacity(SPARE_LISTENERS);
        for _ in 0..SPARE_LISTENERS {
            match self.listening_socket(port) {
                Ok(h) => backlog.push(h),
                Err(e) => {
                    for h in backlog {
                        self.sockets.remove(h);
                    }
                    return Err(e);
                }
            }
        }
        self.ports.push(Port { port, backlog });
        Ok(Listener { port })
    }

    /// What a listener holds when made and keeps topped up: its spare
    /// listening sockets. Connections it accepts are charged as they are
    /// accepted ([`Self::conn_bytes`]); those waiting to be accepted are
    /// bounded by [`MAX_BACKLOG`] per port.
    fn listener_bytes(&self) -> usize {
        SPARE_LISTENERS * (RX_BUFFER + TX_BUFFER)
    }

    fn conn_bytes(&self) -> usize {
        SOCKET_BYTES
    }

    /// The backlog sockets past each port's [`SPARE_LISTENERS`] (those a
    /// burst grew): the listener's charge does not cover them. And the
    /// connections closed but still finishing their FIN exchange (up to
    /// [`CLOSE_TIMEOUT_NS`]): their owner's charge ended at `CLOSE`, but a
    /// peer that never closes its end keeps each for the whole timeout, so
    /// a stream of such peers would else hold heap without bound.
    fn uncharged_bytes(&self) -> usize {
        let grown = self.ports.iter().map(|p| p.backlog.len().saturating_sub(SPARE_LISTENERS)).sum::<usize>();
        (grown + self.closing.len()) * SOCKET_BYTES
    }

    fn set_growth_allowance(&mut self, bytes: usize) {
        // What is grown already stays allowed.
        self.growth_allowance = bytes + self.uncharged_bytes();
    }

    fn peer(&mut self, conn: &SocketHandle) -> Option<Peer> {
        let endpoint = self.sockets.get::<tcp::Socket>(*conn).remote_endpoint()?;
        match endpoint.addr {
            smoltcp::wire::IpAddress::Ipv4(a) => Some(Peer { address: a.octets(), port: endpoint.port }),
        }
    }

    fn accept(&mut self, listener: &mut Listener) -> Result<Option<SocketHandle>, NetError> {
        let Some(port) = self.ports.iter_mut().find(|p| p.port == listener.port) else { return Ok(None) };
        let sockets = &mut self.sockets;
        for &h in &port.backlog {
            let socket = sockets.get_mut::<tcp::Socket>(h);
            // A handshake that failed leaves the socket closed: listen
            // again (cannot fail: the port was accepted before).
            if socket.state() == State::Closed {
                let _ = socket.listen(port.port);
            }
        }
        let Some(i) = port.backlog.iter().position(|&h| accepted(sockets.get::<tcp::Socket>(h).state())) else {
            return Ok(None);
        };
        // The next poll puts a fresh listening socket in its place.
        Ok(Some(port.backlog.swap_remove(i)))
    }

    fn recv(&mut self, conn: &mut SocketHandle, buf: &mut [u8]) -> Result<Option<usize>, NetError> {
        let socket = self.socket(*conn);
        if socket.can_recv() {
            return socket.recv_slice(buf).map(Some).map_err(|_| NetError::Reset);
        }
        match socket.state() {
            // Reset by the peer, or timed out.
            State::Closed => Err(NetError::Reset),
            _ if !socket.may_recv() => Ok(Some(0)),
            _ => Ok(None),
        }
    }

    fn send(&mut self, conn: &mut SocketHandle, data: &[u8]) -> Result<Option<usize>, NetError> {
        let socket = self.socket(*conn);
        if !socket.may_send() {
            return Err(NetError::Reset);
        }
        match socket.send_slice(data) {
            Ok(0) if !data.is_empty() => Ok(None),
            Ok(n) => Ok(Some(n)),
            Err(_) => Err(NetError::Reset),
        }
    }

    fn readiness(&mut self, conn: &mut SocketHandle) -> u32 {
        let socket = self.sockets.get::<tcp::Socket>(*conn);
        let mut bits = 0;
        if socket.can_recv() || !socket.may_recv() {
            bits |= events::READABLE;
        }
        if socket.can_send() {
            bits |= events::WRITABLE;
        }
        if socket.state() == State::Closed {
            bits |= events::ERROR;
        }
        bits
    }

    fn close(&mut self, conn: SocketHandle) {
        self.socket(conn).close();
        // The deadline is set on the next poll, which knows the time.
        self.closing.push((conn, u64::MAX));
    }

    fn close_listener(&mut self, listener: Listener) {
        let Some(i) = self.ports.iter().position(|p| p.port == listener.port) else { return };
        for h in self.ports.swap_remove(i).backlog {
            self.socket(h).abort();
            self.sockets.remove(h);
        }
    }

    fn poll(&mut self, now_ns: u64, waiting: bool) -> Option<u64> {
        let now = instant(now_ns);
        // One frame at a time, with listeners topped up before each: a
        // burst of SYNs in one batch of frames finds a socket for each.
        loop {
            self.spare_listeners();
            match self.iface.poll_ingress_single(now, &mut self.device, &mut self.sockets) {
                smoltcp::iface::PollIngressSingleResult::None => break,
                _ => continue,
            }
        }
        self.iface.poll_egress(now, &mut self.device, &mut self.sockets);
        // Free closed connections once the stack is done with them.
        let sockets = &mut self.sockets;
        self.closing.retain_mut(|(h, deadline)| {
            if *deadline == u64::MAX {
                *deadline = now_ns + CLOSE_TIMEOUT_NS;
            }
            let socket = sockets.get_mut::<tcp::Socket>(*h);
            let done = matches!(socket.state(), State::Closed | State::TimeWait);
            if done || now_ns >= *deadline {
                socket.abort();
                sockets.remove(*h);
                return false;
            }
            true
        });
        // Frames arrive as messages, which schedule a poll; timers
        // (retransmission, closing connections) need one of their own.
        let _ = waiting;
        let stack = self.iface.poll_at(now, &self.sockets).map(ns);
        let closing = (!self.closing.is_empty()).then_some(now_ns + 100_000_000);
        stack.into_iter().chain(closing).min()
    }

    fn message(&mut self, from: TaskId, bytes: &[u8]) {
        if from == self.device.driver && !bytes.is_empty() && self.device.rx.len() < RX_QUEUE {
            self.device.rx.push_back(bytes.to_vec());
        }
    }

    fn frames_out(&mut self) -> Option<(TaskId, &mut VecDeque<Vec<u8>>)> {
        Some((self.device.driver, &mut self.device.tx))
    }
}
