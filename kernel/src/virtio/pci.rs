//! PCI configuration space through the legacy I/O ports 0xCF8/0xCFC.
//!
//! Why ports and not ECAM (memory-mapped configuration): QEMU's default
//! `pc` machine (i440FX), which `cargo xtask run` boots, has no ECAM; every
//! x86 PC has the ports. The address/data port pair is one shared
//! register, so accesses are serialised by a lock.

use spin::Mutex;
use virtio_drivers::transport::pci::bus::{ConfigurationAccess, DeviceFunction};
use x86_64::instructions::port::Port;

static PORTS: Mutex<()> = Mutex::new(());

/// Configuration access mechanism #1 (the I/O ports).
pub struct PortCam;

fn address(df: DeviceFunction, offset: u8) -> u32 {
    0x8000_0000 | (df.bus as u32) << 16 | (df.device as u32) << 11 | (df.function as u32) << 8 | (offset as u32 & 0xFC)
}

impl ConfigurationAccess for PortCam {
    fn read_word(&self, df: DeviceFunction, offset: u8) -> u32 {
        let _guard = PORTS.lock();
        // SAFETY: 0xCF8/0xCFC are the PCI configuration ports on every PC;
        // the lock keeps the address/data pair together.
        unsafe {
            Port::<u32>::new(0xCF8).write(address(df, offset));
            Port::<u32>::new(0xCFC).read()
        }
    }

    fn write_word(&mut self, df: DeviceFunction, offset: u8, data: u32) {
        let _guard = PORTS.lock();
        // SAFETY: as in `read_word`.
        unsafe {
            Port::<u32>::new(0xCF8).write(address(df, offset));
            Port::<u32>::new(0xCFC).write(data);
        }
    }

    unsafe fn unsafe_clone(&self) -> Self {
        PortCam
    }
}
