//! Virtio devices on PCI, shared by the drivers (`net`, `blk`): finding a
//! device on the bus ([`find`]), the configuration-port access ([`pci`]),
//! interrupt routing by MSI-X ([`msix`]) and
//! the memory services virtio-drivers needs from the kernel ([`KernelHal`]).
//!
//! DMA: buffers a driver shares with its device may be heap memory, which
//! is virtually but not physically contiguous, so every shared buffer is
//! bounced through physically contiguous frames (`share` copies in,
//! `unshare` copies out). One extra copy of each buffer buys never handing
//! the device a wrong address; virtqueues themselves are allocated
//! contiguous (`dma_alloc`).

pub mod msix;
pub mod pci;

use core::ptr::NonNull;

use virtio_drivers::transport::DeviceType;
use virtio_drivers::transport::pci::bus::{Command, DeviceFunction, PciRoot};
use virtio_drivers::transport::pci::{PciTransport, virtio_device_type};
use virtio_drivers::{BufferDirection, Hal, PhysAddr};
use x86_64::PhysAddr as X86PhysAddr;
use x86_64::structures::paging::PhysFrame;

use crate::memory::{self, PAGE_SIZE};

/// Finds the first virtio device of `kind` on PCI bus 0, lets it answer
/// memory accesses and master the bus (DMA), and returns its transport.
/// `None` (logged) when there is none or it cannot be set up.
pub fn find(kind: DeviceType, what: &str) -> Option<(PciTransport, DeviceFunction)> {
    let mut root = PciRoot::new(pci::PortCam);
    let df = root.enumerate_bus(0).find(|(_, info)| virtio_device_type(info) == Some(kind)).map(|(df, _)| df)?;
    let (_, command) = root.get_status_command(df);
    root.set_command(df, command | Command::MEMORY_SPACE | Command::BUS_MASTER | Command::IO_SPACE);
    match PciTransport::new::<KernelHal, _>(&mut root, df) {
        Ok(t) => Some((t, df)),
        Err(e) => {
            log::error!("{what} at {df}: {e}");
            None
        }
    }
}

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
                core::ptr::copy_nonoverlapping(
                    buffer.as_ptr() as *const u8,
                    memory::phys_to_virt(paddr).as_mut_ptr(),
                    len,
                )
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
                core::ptr::copy_nonoverlapping(
                    memory::phys_to_virt(paddr).as_ptr::<u8>(),
                    buffer.as_ptr() as *mut u8,
                    len,
                )
            };
        }
        free_frames(paddr, pages_for(len));
    }
}
