//! Networking: find the virtio-net card on the PCI bus and start the `tcp`
//! service (smoltcp over it, `wasmos-net`) on core 0.
//!
//! The card is polled, not interrupt-driven: the service asks to be polled
//! every millisecond while a task waits for the network, and core 0's
//! scheduler runs it between task slices, or on the next timer tick
//! (10 ms) when the core is idle. Why: delivering the card's interrupt
//! needs an I/O APIC driver (legacy INTx) or MSI-X routing, neither of
//! which exists yet; polling at the tick bounds the added latency at
//! 10 ms, fine for the web server, and leaves the IPC benchmarks
//! undisturbed (no interrupts from a card nobody uses).

mod pci;
mod virtio;

use alloc::boxed::Box;

use virtio_drivers::transport::pci::bus::{Command, DeviceFunction, PciRoot};
use virtio_drivers::transport::pci::{virtio_device_type, PciTransport};
use virtio_drivers::transport::DeviceType;
use wasmos_net::stack::{Ipv4Config, Stack};
use wasmos_net::TcpService;
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
    let mut root = PciRoot::new(pci::PortCam);
    let found = root
        .enumerate_bus(0)
        .find(|(_, info)| virtio_device_type(info) == Some(DeviceType::Network))
        .map(|(df, _)| df);
    let Some(df) = found else {
        log::info!("net: no virtio-net card; no tcp service");
        return None;
    };
    // Let the card answer memory accesses and master the bus (DMA).
    let (_, command) = root.get_status_command(df);
    root.set_command(df, command | Command::MEMORY_SPACE | Command::BUS_MASTER | Command::IO_SPACE);
    let transport = match PciTransport::new::<virtio::KernelHal, _>(&mut root, df) {
        Ok(t) => t,
        Err(e) => {
            log::error!("net: virtio-net at {df}: {e}");
            return None;
        }
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
    let stack = Stack::new(device, mac, ip, sys.now_ns());
    if let Err(e) = sys.start_native(wasmos_ipc::net::SERVICE, NET_CORE, Box::new(TcpService::new(stack))) {
        log::error!("net: cannot start the tcp service: {}", e.name());
        return None;
    }
    Some(NetInfo { mac, ip, pci: df })
}
