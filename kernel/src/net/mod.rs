//! Networking: find the virtio-net card on the PCI bus and start two
//! servers on core 0, which talk by IPC like any others:
//!
//! - the **driver** ([`NetDriver`]): owns the card; every frame it receives
//!   becomes a message to the stack, every message from the stack a frame
//!   it sends. It has no name in the name service, so no task can reach
//!   it: only the stack, which is handed its id.
//! - the **`tcp` service**: smoltcp (`wasmos-net`'s `Stack`), with the
//!   socket protocol that tasks use.
//!
//! The card is polled, not interrupt-driven: the driver asks to be polled
//! every millisecond, and core 0's scheduler runs it between task slices,
//! or on the next timer tick (10 ms) when the core is idle. Why:
//! delivering the card's interrupt needs an I/O APIC driver (legacy INTx)
//! or MSI-X routing, neither of which exists yet; polling at the tick
//! bounds the added latency at 10 ms, fine for the web server.

mod virtio;

use alloc::boxed::Box;

use wasmos_ipc::ids::TaskId;
use wasmos_sched::{NativeCtx, NativeService, Request};

use virtio_drivers::transport::DeviceType;
use virtio_drivers::transport::pci::bus::DeviceFunction;
use wasmos_net::TcpService;
use wasmos_net::stack::{Ipv4Config, Stack};
use wasmos_sched::System;

/// The core the `tcp` service runs on.
pub const NET_CORE: usize = 0;

/// What [`start`] found.
pub struct NetInfo {
    pub mac: [u8; 6],
    pub ip: Ipv4Config,
    pub pci: DeviceFunction,
}

/// Looks for a virtio-net card on PCI bus 0 and, if there is one, starts
/// the `tcp` service on it. `None` (logged) when there is no card.
pub fn start(sys: &System) -> Option<NetInfo> {
    let Some((transport, df)) = crate::virtio::find(DeviceType::Network, "net: virtio-net") else {
        log::info!("net: no virtio-net card; no tcp service");
        return None;
    };
    let device = match virtio::NetDevice::new(transport) {
        Ok(d) => d,
        Err(e) => {
            log::error!("net: virtio-net at {df} failed to start: {e:?}");
            return None;
        }
    };
    let mac = device.mac();
    let ip = Ipv4Config::QEMU_USER;
    let driver = match sys.start_native_unnamed(NET_CORE, Box::new(NetDriver { device, stack: None, dropped: 0 })) {
        Ok(id) => id,
        Err(e) => {
            log::error!("net: cannot start the driver service: {}", e.name());
            return None;
        }
    };
    let stack = Stack::new(driver, mac, ip, sys.now_ns());
    // Socket buffers get their share of the kernel heap (sched's `quota::heap_shares`).
    let budget = wasmos_sched::quota::socket_budget_for_heap(crate::memory::heap::stats().limit_bytes as usize);
    let tcp = TcpService::new(stack).with_memory_budget(budget);
    if let Err(e) = sys.start_native(wasmos_ipc::net::SERVICE, NET_CORE, Box::new(tcp)) {
        log::error!("net: cannot start the tcp service: {}", e.name());
        return None;
    }
    Some(NetInfo { mac, ip, pci: df })
}

/// How often the driver looks at the card.
const POLL_NS: u64 = 1_000_000;

/// The virtio-net driver server: frames between the card and the stack.
struct NetDriver {
    device: virtio::NetDevice,
    /// Where received frames go: whoever attached (the `tcp` service).
    stack: Option<TaskId>,
    /// Frames lost because a queue was full (the card's or the stack's).
    dropped: u64,
}

impl NativeService for NetDriver {
    fn receive(&mut self, ctx: &mut NativeCtx<'_>, request: Request) {
        if let Some(reply) = request.reply {
            // Frames are one-way messages; there is nothing to call.
            return ctx.reply(reply, Err(wasmos_ipc::abi::Status::InvalidArgument));
        }
        // The first message (empty) attaches the stack; only it may send.
        let stack = *self.stack.get_or_insert(request.from);
        if request.from == stack && !request.payload.is_empty() && !self.device.transmit(request.payload.as_slice()) {
            self.dropped += 1;
        }
    }

    fn poll(&mut self, ctx: &mut NativeCtx<'_>) -> Option<u64> {
        while let Some(frame) = self.device.receive() {
            match self.stack {
                Some(stack) if ctx.send(stack, &frame).is_ok() => {}
                _ => self.dropped += 1,
            }
        }
        Some(ctx.now_ns() + POLL_NS)
    }
}
