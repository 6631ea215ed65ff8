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
//! socket is one connection. A [`Listener`] is therefore a small backlog of
//! sockets listening on the same port; accepting takes an established one
//! out and puts a fresh listening socket in its place, so a burst of
//! [`BACKLOG`] clients can connect at once. Closed connections linger
//! until their FIN exchange is over (or [`CLOSE_TIMEOUT_NS`]), then their
//! buffers are freed.

use alloc::vec;
use alloc::vec::Vec;

use alloc::collections::VecDeque;
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};

use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::socket::tcp::{self, State};
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpCidr, Ipv4Address};
use wasmos_ipc::ids::TaskId;
use wasmos_ipc::net::{NetError, events};

use crate::service::Backend;

/// Connections that can be waiting for `ACCEPT` on one port at once. A
/// SYN that finds all of them taken is answered with a reset, so this is
/// sized for bursts of clients (each costs its buffers, 24 KiB).
pub const BACKLOG: usize = 32;
/// Receive and send buffer of each connection.
const RX_BUFFER: usize = 8 * 1024;
const TX_BUFFER: usize = 16 * 1024;
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
    listeners: Vec<u16>,
}

pub struct Listener {
    port: u16,
    backlog: Vec<SocketHandle>,
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
        Stack { device, iface, sockets: SocketSet::new(Vec::new()), closing: Vec::new(), listeners: Vec::new() }
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
        if self.listeners.contains(&port) {
            return Err(NetError::AddressInUse);
        }
        let mut backlog = Vec::with_capacity(BACKLOG);
        for _ in 0..BACKLOG {
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
        self.listeners.push(port);
        Ok(Listener { port, backlog })
    }

    fn listener_bytes(&self) -> usize {
        BACKLOG * (RX_BUFFER + TX_BUFFER)
    }

    fn conn_bytes(&self) -> usize {
        RX_BUFFER + TX_BUFFER
    }

    fn accept(&mut self, listener: &mut Listener) -> Result<Option<SocketHandle>, NetError> {
        let Some(i) = listener.backlog.iter().position(|&h| accepted(self.socket(h).state())) else { return Ok(None) };
        let fresh = self.listening_socket(listener.port)?;
        Ok(Some(core::mem::replace(&mut listener.backlog[i], fresh)))
    }

    fn can_accept(&mut self, listener: &mut Listener) -> bool {
        let mut ready = false;
        for &h in &listener.backlog {
            let socket = self.sockets.get_mut::<tcp::Socket>(h);
            match socket.state() {
                // A handshake that failed leaves the socket closed: listen
                // again (cannot fail: the port was accepted before).
                State::Closed => drop(socket.listen(listener.port)),
                state => ready |= accepted(state),
            }
        }
        ready
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
        self.listeners.retain(|&p| p != listener.port);
        for h in listener.backlog {
            self.socket(h).abort();
            self.sockets.remove(h);
        }
    }

    fn poll(&mut self, now_ns: u64, waiting: bool) -> Option<u64> {
        let now = instant(now_ns);
        self.iface.poll(now, &mut self.device, &mut self.sockets);
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
