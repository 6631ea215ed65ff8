//! MSI-X for virtio PCI devices: the device writes its interrupt straight
//! into one core's local APIC, with no I/O APIC in between.
//!
//! Two things are programmed ([`route`]):
//! - the PCI MSI-X capability: table entry 0 gets the message (address
//!   `0xFEE0_0000 | apic_id << 12`, data = the vector, fixed delivery,
//!   edge), then MSI-X is enabled with INTx disabled, so the device never
//!   also raises a legacy line;
//! - the virtio common configuration: the chosen queues' `queue_msix_vector`
//!   names entry 0; every other queue and the configuration-change event
//!   get `NO_VECTOR`, so they raise nothing. virtio-drivers' PCI transport
//!   does not expose these fields, so they are written here, at the offsets
//!   the virtio 1.x spec fixes (4.1.4.3). The device answers a vector it
//!   cannot use by reading back `NO_VECTOR`; that, like a missing
//!   capability, makes [`route`] fail and the driver fall back to polling.
//!
//! Why MSI-X before the I/O APIC: QEMU's q35 virtio-pci devices all have
//! it, and a message names its target core and vector itself. Legacy INTx
//! would need the I/O APIC programmed and, on q35, the PCI slot-to-GSI
//! routing, which lives in ACPI AML (`_PRT`) that the kernel cannot
//! interpret; MSI-X needs neither and no interrupt line is ever shared.
//!
//! Destination: physical mode, 8-bit APIC ID (bits 19:12). That covers
//! every core WasmOS runs on QEMU; an x2APIC ID above 255 cannot be named
//! without interrupt remapping, and [`route`] refuses it.

use core::ptr::NonNull;

use virtio_drivers::transport::pci::bus::{ConfigurationAccess, DeviceFunction, PciRoot};

use super::pci::PortCam;
use crate::memory;

const CAP_ID_MSIX: u8 = 0x11;
const CAP_ID_VENDOR: u8 = 0x09;
const VIRTIO_PCI_CAP_COMMON_CFG: u8 = 1;
/// `msix_config`, `queue_select` and `queue_msix_vector` in the common
/// configuration structure.
const COMMON_MSIX_CONFIG: usize = 0x10;
const COMMON_NUM_QUEUES: usize = 0x12;
const COMMON_QUEUE_SELECT: usize = 0x16;
const COMMON_QUEUE_MSIX_VECTOR: usize = 0x1A;
/// "No interrupt" in the virtio vector fields.
const NO_VECTOR: u16 = 0xFFFF;
const MSIX_ENABLE: u32 = 1 << 15;
const MSIX_FUNCTION_MASK: u32 = 1 << 14;
const COMMAND_INTX_DISABLE: u32 = 1 << 10;

/// Why a device could not be given an MSI-X route.
#[derive(Debug)]
pub enum NoRoute {
    NoMsixCapability,
    NoCommonConfig,
    /// The BAR holding the table or the common configuration is not a
    /// memory BAR, or cannot be mapped.
    BadBar,
    /// The APIC ID does not fit an MSI address without remapping.
    ApicIdTooLarge,
    /// The device read back `NO_VECTOR` for a queue (or the queue is not
    /// there).
    VectorRejected,
}

/// Routes the interrupts of `queues` (virtio queue indices) of the virtio
/// device at `df` to `vector` on the core whose local APIC ID is `apic_id`.
pub fn route(df: DeviceFunction, queues: &[u16], apic_id: u32, vector: u8) -> Result<(), NoRoute> {
    if apic_id > 0xFF {
        return Err(NoRoute::ApicIdTooLarge);
    }
    let root = PciRoot::new(PortCam);
    let cap = root.capabilities(df).find(|c| c.id == CAP_ID_MSIX).ok_or(NoRoute::NoMsixCapability)?;
    let common = root
        .capabilities(df)
        .find(|c| c.id == CAP_ID_VENDOR && (c.private_header >> 8) as u8 == VIRTIO_PCI_CAP_COMMON_CFG)
        .ok_or(NoRoute::NoCommonConfig)?;
    let cam = PortCam;

    // Table entry 0: message address, upper address, data, vector control.
    let table_word = cam.read_word(df, cap.offset + 4);
    let table = map_bar(df, (table_word & 7) as u8, (table_word & !7) as u64, 16)?;
    let entry = [0xFEE0_0000 | apic_id << 12, 0, vector as u32, 0];
    for (i, word) in entry.iter().enumerate() {
        // SAFETY: `table` maps the first 16-byte entry of this device's
        // MSI-X table (the capability says where), device memory that only
        // this driver touches.
        unsafe { table.cast::<u32>().add(i).write_volatile(*word) };
    }
    // Message control is the upper half of the capability's first word.
    let header = cam.read_word(df, cap.offset);
    let mut cam_w = PortCam;
    cam_w.write_word(df, cap.offset, (header | MSIX_ENABLE << 16) & !(MSIX_FUNCTION_MASK << 16));
    let command = cam.read_word(df, 0x04);
    cam_w.write_word(df, 0x04, (command & 0xFFFF) | COMMAND_INTX_DISABLE);

    // The virtio side: which queues use entry 0.
    let bar = cam.read_word(df, common.offset + 4) as u8;
    let offset = cam.read_word(df, common.offset + 8) as u64;
    let cfg = map_bar(df, bar, offset, 0x38)?;
    let reg = |at: usize| cfg.as_ptr().wrapping_add(at).cast::<u16>();
    // `cfg` maps this device's common configuration structure, 0x38
    // bytes, and every offset used is a 16-bit register inside it; the
    // driver service that uses the device has not started yet, so nothing
    // else selects a queue meanwhile.
    // SAFETY: as just said.
    let read = |at: usize| unsafe { reg(at).read_volatile() };
    // SAFETY: as for `read`.
    let write = |at: usize, value: u16| unsafe { reg(at).write_volatile(value) };
    let queue_count = read(COMMON_NUM_QUEUES);
    write(COMMON_MSIX_CONFIG, NO_VECTOR);
    for queue in 0..queue_count {
        let wanted = if queues.contains(&queue) { 0 } else { NO_VECTOR };
        write(COMMON_QUEUE_SELECT, queue);
        write(COMMON_QUEUE_MSIX_VECTOR, wanted);
        if read(COMMON_QUEUE_MSIX_VECTOR) != wanted {
            return Err(NoRoute::VectorRejected);
        }
    }
    if queues.iter().any(|&q| q >= queue_count) {
        return Err(NoRoute::VectorRejected);
    }
    Ok(())
}

/// Maps `len` bytes at `offset` in memory BAR `bar` of `df`.
fn map_bar(df: DeviceFunction, bar: u8, offset: u64, len: u64) -> Result<NonNull<u8>, NoRoute> {
    if bar > 5 {
        return Err(NoRoute::BadBar);
    }
    let cam = PortCam;
    let low = cam.read_word(df, 0x10 + 4 * bar);
    if low & 1 != 0 {
        return Err(NoRoute::BadBar);
    }
    let mut base = (low & !0xF) as u64;
    // Type 0b10: a 64-bit BAR, whose upper half is the next register.
    if (low >> 1) & 3 == 2 && bar < 5 {
        base |= (cam.read_word(df, 0x10 + 4 * (bar + 1)) as u64) << 32;
    }
    if base == 0 {
        return Err(NoRoute::BadBar);
    }
    let virt = memory::with(|m| m.map_mmio(base + offset, len)).map_err(|_| NoRoute::BadBar)?;
    NonNull::new(virt.as_mut_ptr()).ok_or(NoRoute::BadBar)
}
