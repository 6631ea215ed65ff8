//! The virtio-net driver: virtio-drivers' `VirtIONet` over PCI, with the
//! kernel's DMA services (`crate::virtio::KernelHal`), and the card as
//! frames in and out ([`NetDevice`]).

use alloc::vec::Vec;

use virtio_drivers::device::net::VirtIONet;
use virtio_drivers::transport::pci::PciTransport;

use crate::virtio::KernelHal;

/// virtio-net's receive queue (queue 0; transmit is queue 1).
pub const RECEIVE_QUEUE: u16 = 0;
/// Descriptors per virtqueue.
pub const QUEUE_SIZE: usize = 64;
/// Receive buffer size: a full Ethernet frame plus the virtio header.
const RX_BUFFER: usize = 2048;

pub type Driver = VirtIONet<KernelHal, PciTransport, QUEUE_SIZE>;

/// The network card: frames in, frames out.
pub struct NetDevice {
    driver: Driver,
}

// SAFETY: the driver holds raw pointers to its registers and queues, which
// makes it !Send. It is created on the BSP and then moved once, to the core
// that runs the driver service, and used only there.
unsafe impl Send for NetDevice {}

impl NetDevice {
    pub fn new(transport: PciTransport) -> Result<NetDevice, virtio_drivers::Error> {
        let mut driver = Driver::new(transport, RX_BUFFER)?;
        // Until `net` has routed its interrupt, the device need not raise it.
        driver.disable_interrupts();
        Ok(NetDevice { driver })
    }

    /// Asks the device to interrupt when it has used a buffer (after its
    /// MSI-X route is set up; only the receive queue has a vector).
    pub fn enable_interrupts(&mut self) {
        self.driver.enable_interrupts();
    }

    pub fn mac(&self) -> [u8; 6] {
        self.driver.mac_address()
    }

    /// A received frame, if one is waiting; its buffer goes straight back
    /// to the device.
    pub fn receive(&mut self) -> Option<Vec<u8>> {
        let rx = self.driver.receive().ok()?;
        let frame = rx.packet().to_vec();
        if let Err(e) = self.driver.recycle_rx_buffer(rx) {
            log::warn!("virtio-net: receive buffer lost: {e:?}");
        }
        Some(frame)
    }

    /// Sends one frame; `false` if the card's queue is full (the frame is
    /// dropped, as a full ring drops it).
    pub fn transmit(&mut self, frame: &[u8]) -> bool {
        if !self.driver.can_send() {
            return false;
        }
        let mut buf = self.driver.new_tx_buffer(frame.len());
        buf.packet_mut().copy_from_slice(frame);
        match self.driver.send(buf) {
            Ok(()) => true,
            Err(e) => {
                log::warn!("virtio-net: frame dropped on send: {e:?}");
                false
            }
        }
    }
}
