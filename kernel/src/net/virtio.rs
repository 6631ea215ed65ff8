//! The virtio-net driver: virtio-drivers' `VirtIONet` over PCI, the
//! memory services it needs from the kernel ([`KernelHal`]), and the card
//! as frames in and out ([`NetDevice`]).
//!
//! DMA: buffers the driver shares with the device may be heap memory,
//! which is virtually but not physically contiguous, so every shared
//! buffer is bounced through physically contiguous frames (`share` copies
//! in, `unshare` copies out). One extra copy of each frame buys never
//! handing the device a wrong address; virtqueues themselves are
//! allocated contiguous (`dma_alloc`).

use alloc::vec::Vec;
use core::ptr::NonNull;

use virtio_drivers::device::net::VirtIONet;
use virtio_drivers::transport::pci::PciTransport;
use virtio_drivers::{BufferDirection, Hal, PhysAddr};
use x86_64::PhysAddr as X86PhysAddr;
use x86_64::structures::paging::PhysFrame;

use crate::memory::{self, PAGE_SIZE};

/// Descriptors per virtqueue.
pub const QUEUE_SIZE: usize = 64;
/// Receive buffer size: a full Ethernet frame plus the virtio header.
const RX_BUFFER: usize = 2048;

pub struct KernelHal;

fn alloc_frames(pages: usize) -> PhysAddr {
    let first = memory::with(|m| m.frames.alloc_contiguous(pages, u64::MAX)).expect("out of memory for DMA buffers");
    let paddr = first.start_address().as_u64();
    // SAFETY: the frames were just allocated for us and are mapped at the
    // physical-memory offset.
    unsafe { core::ptr::write_bytes(memory::phys_to_virt(paddr).as_mut_ptr::<u8>(), 0, pages * PAGE_SIZE as usize) };
    paddr
}

fn free_frames(paddr: PhysAddr, pages: usize) {
    memory::with(|m| {
        for i in 0..pages as u64 {
            m.frames.free(PhysFrame::containing_address(X86PhysAddr::new(paddr + i * PAGE_SIZE)));
        }
    });
}

fn pages_for(len: usize) -> usize {
    len.div_ceil(PAGE_SIZE as usize).max(1)
}

// SAFETY: the addresses handed out are physically contiguous, zeroed,
// owned by the device until given back, and mapped at `phys_to_virt`.
unsafe impl Hal for KernelHal {
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        let paddr = alloc_frames(pages);
        let vaddr = NonNull::new(memory::phys_to_virt(paddr).as_mut_ptr()).expect("not null");
        (paddr, vaddr)
    }

    unsafe fn dma_dealloc(paddr: PhysAddr, _vaddr: NonNull<u8>, pages: usize) -> i32 {
        free_frames(paddr, pages);
        0
    }

    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, size: usize) -> NonNull<u8> {
        let virt = memory::with(|m| m.map_mmio(paddr, size as u64)).expect("cannot map device registers");
        NonNull::new(virt.as_mut_ptr()).expect("not null")
    }

    unsafe fn share(buffer: NonNull<[u8]>, direction: BufferDirection) -> PhysAddr {
        let len = buffer.len();
        let paddr = alloc_frames(pages_for(len));
        if direction != BufferDirection::DeviceToDriver {
            // SAFETY: `buffer` is valid for reads of `len` bytes (the
            // driver's contract); the bounce frames are ours.
            unsafe {
                core::ptr::copy_nonoverlapping(buffer.as_ptr() as *const u8, memory::phys_to_virt(paddr).as_mut_ptr(), len)
            };
        }
        paddr
    }

    unsafe fn unshare(paddr: PhysAddr, buffer: NonNull<[u8]>, direction: BufferDirection) {
        let len = buffer.len();
        if direction != BufferDirection::DriverToDevice {
            // SAFETY: `buffer` is valid for writes of `len` bytes; the
            // device is done with the bounce frames.
            unsafe {
                core::ptr::copy_nonoverlapping(memory::phys_to_virt(paddr).as_ptr::<u8>(), buffer.as_ptr() as *mut u8, len)
            };
        }
        free_frames(paddr, pages_for(len));
    }
}

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
        // Polled (see `net`): the device need not interrupt.
        driver.disable_interrupts();
        Ok(NetDevice { driver })
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
