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
//! The card is interrupt-driven: its receive queue's MSI-X message
//! (`crate::virtio::msix`) goes to [`NET_CORE`]'s local APIC, whose handler
//! only rings the driver's doorbell (`interrupts::doorbell`). The driver
//! asks for no timed polls; core 0's scheduler runs it because the
//! doorbell is set, and a core 0 with nothing else to do stays halted until
//! a frame arrives. Why: polling at the timer tick added up to 10 ms to
//! every packet that reached an idle core (issue #15 measured a median of
//! 9.99 ms for one `GET /`), and polling faster would keep an idle vCPU
//! busy. Transmit needs no interrupt: virtio-drivers' `send` waits for the
//! device to take the frame, so the transmit queue gets no vector.
//!
//! Fallback: when no MSI-X route can be set up (no capability, the device
//! rejects the vector) or `net.irq=off` is in `boot.cfg`, the driver polls
//! every millisecond, between task slices or at the next timer tick when
//! the core is idle, as it did before; the boot log says which.

mod virtio;

use alloc::boxed::Box;
use core::sync::atomic::AtomicBool;

use wasmos_ipc::ids::TaskId;
use wasmos_sched::{NativeCtx, NativeService, Request};

use virtio_drivers::transport::DeviceType;
use virtio_drivers::transport::pci::bus::DeviceFunction;
use wasmos_net::TcpService;
use wasmos_net::stack::{Ipv4Config, Stack};
use wasmos_sched::System;
use wasmos_smp::vectors;

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
/// `interrupts`: route the card's interrupt (false: poll, the fallback).
pub fn start(sys: &System, interrupts: bool) -> Option<NetInfo> {
    let Some((transport, df)) = crate::virtio::find(DeviceType::Network, "net: virtio-net") else {
        log::info!("net: no virtio-net card; no tcp service");
        return None;
    };
    let mut device = match virtio::NetDevice::new(transport) {
        Ok(d) => d,
        Err(e) => {
            log::error!("net: virtio-net at {df} failed to start: {e:?}");
            return None;
        }
    };
    let mac = device.mac();
    let ip = Ipv4Config::QEMU_USER;
    let doorbell = if interrupts { route_interrupt(df, &mut device) } else { None };
    if doorbell.is_none() {
        log::info!("net: polling the card every {} us (fallback: no interrupt)", POLL_NS / 1000);
    }
    let driver = NetDriver { device, stack: None, dropped: 0, doorbell };
    let driver = match sys.start_native_unnamed(NET_CORE, Box::new(driver)) {
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

/// Routes the card's receive interrupt to [`NET_CORE`] by MSI-X; the
/// doorbell it rings, or `None` (logged) if it cannot be routed.
fn route_interrupt(df: DeviceFunction, device: &mut virtio::NetDevice) -> Option<&'static AtomicBool> {
    let apic_id = wasmos_smp::percpu::all().get(NET_CORE)?.apic_id;
    match crate::virtio::msix::route(df, &[virtio::RECEIVE_QUEUE], apic_id, vectors::NET) {
        Ok(()) => {
            device.enable_interrupts();
            log::info!(
                "net: receive interrupt by MSI-X, vector {:#x} to core {NET_CORE} (APIC {apic_id})",
                vectors::NET
            );
            Some(crate::interrupts::doorbell(vectors::NET))
        }
        Err(e) => {
            log::warn!("net: no MSI-X route for virtio-net at {df}: {e:?}");
            None
        }
    }
}

/// How often the driver looks at the card when it has no interrupt.
const POLL_NS: u64 = 1_000_000;

/// The virtio-net driver server: frames between the card and the stack.
struct NetDriver {
    device: virtio::NetDevice,
    /// Where received frames go: whoever attached (the `tcp` service).
    stack: Option<TaskId>,
    /// Frames lost because a queue was full (the card's or the stack's).
    dropped: u64,
    /// Rung by the card's interrupt; `None`: polled.
    doorbell: Option<&'static AtomicBool>,
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
        // With an interrupt, only the doorbell (or a frame to send) needs
        // the driver: no timed poll.
        if self.doorbell.is_some() { None } else { Some(ctx.now_ns() + POLL_NS) }
    }

    fn doorbell(&self) -> Option<&'static AtomicBool> {
        self.doorbell
    }
}
