//! Processor discovery from ACPI's MADT ("APIC" table).
//!
//! The acpi crate (5.x, no allocator) finds and maps the table; we walk its
//! entries and keep what start-up needs: the local APIC's physical address
//! and one [`Cpu`] per processor that firmware says is usable. The rules of
//! the ACPI spec (6.5, 5.2.12.2 and 5.2.12.12) for an entry's flags:
//! bit 0 "enabled" means usable now; bit 1 "online capable" means it may be
//! hot-added later (we skip those: QEMU never sets it for present CPUs).
//! A processor may appear both as a Local APIC and a Local x2APIC entry;
//! the APIC ID identifies it, so duplicates are dropped.
//!
//! The MADT also lists the I/O APICs (address, first global system
//! interrupt) and the interrupt source overrides: where an ISA IRQ (COM1's
//! 4, the PIT's 0) really arrives, and with which polarity and trigger.
//! That is all the routing an ISA line needs; no AML is involved
//! ([`isa_route`]).

use alloc::vec::Vec;
use core::ptr::NonNull;

use acpi::madt::{Madt, MadtEntry};
use acpi::{AcpiHandler, AcpiTables, PhysicalMapping};

/// One usable processor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cpu {
    pub apic_id: u32,
    /// ACPI processor UID, for correlating with other tables.
    pub acpi_uid: u32,
}

/// What the MADT told us.
#[derive(Debug, Clone)]
pub struct Topology {
    /// Physical address of the local APIC registers (xAPIC mode).
    pub lapic_phys: u64,
    /// Every usable processor, in MADT order (firmware lists the BSP first
    /// on every PC we know of, but we do not rely on that).
    pub cpus: Vec<Cpu>,
    /// Every I/O APIC, in MADT order.
    pub io_apics: Vec<IoApic>,
    /// The ISA interrupt source overrides.
    pub overrides: Vec<IsaOverride>,
}

/// One I/O APIC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoApic {
    pub id: u8,
    /// Physical address of its two registers (IOREGSEL, IOWIN).
    pub phys: u64,
    /// The global system interrupt its first input carries.
    pub gsi_base: u32,
}

/// An interrupt source override (ACPI 6.5, 5.2.12.5): ISA IRQ `irq`
/// arrives on global system interrupt `gsi`, with MPS INTI `flags`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IsaOverride {
    pub irq: u8,
    pub gsi: u32,
    pub flags: u16,
}

/// Where an ISA IRQ arrives and how it signals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IsaRoute {
    pub gsi: u32,
    pub active_low: bool,
    pub level: bool,
}

/// The route of ISA `irq`: its override if the MADT has one, else the
/// identity (GSI = IRQ). ISA lines are edge-triggered, active high, unless
/// the override's flags say otherwise (polarity in bits 0-1, trigger in
/// bits 2-3; 0 = "conforms to the bus", i.e. ISA's default; 2 is reserved
/// and taken as the default too).
pub fn isa_route(irq: u8, overrides: &[IsaOverride]) -> IsaRoute {
    match overrides.iter().find(|o| o.irq == irq) {
        None => IsaRoute { gsi: irq as u32, active_low: false, level: false },
        Some(o) => IsaRoute { gsi: o.gsi, active_low: o.flags & 0b11 == 0b11, level: (o.flags >> 2) & 0b11 == 0b11 },
    }
}

/// The I/O APIC whose inputs include `gsi`: the one with the highest base
/// at or below it (each has at most 240 inputs, the redirection table's
/// limit, so `gsi - base` is checked against the table size by the driver).
pub fn io_apic_for(gsi: u32, io_apics: &[IoApic]) -> Option<IoApic> {
    io_apics.iter().filter(|a| a.gsi_base <= gsi).max_by_key(|a| a.gsi_base).copied()
}

/// A processor entry in the form the classification needs.
#[derive(Debug, Clone, Copy)]
pub struct RawCpuEntry {
    pub apic_id: u32,
    pub acpi_uid: u32,
    pub flags: u32,
}

const FLAG_ENABLED: u32 = 1 << 0;

/// Keeps enabled processors, drops duplicates (same APIC ID listed as both
/// xAPIC and x2APIC), preserves order.
pub fn usable_cpus(entries: impl IntoIterator<Item = RawCpuEntry>) -> Vec<Cpu> {
    let mut cpus: Vec<Cpu> = Vec::new();
    for e in entries {
        if e.flags & FLAG_ENABLED == 0 || cpus.iter().any(|c| c.apic_id == e.apic_id) {
            continue;
        }
        cpus.push(Cpu { apic_id: e.apic_id, acpi_uid: e.acpi_uid });
    }
    cpus
}

/// Why processor discovery failed.
#[derive(Debug)]
pub enum Error {
    Acpi(acpi::AcpiError),
    NoProcessors,
}

/// Maps ACPI tables through the kernel's linear map of physical memory, so
/// "mapping" is just an offset and unmapping is a no-op.
#[derive(Clone, Copy)]
struct OffsetHandler {
    phys_offset: u64,
}

impl AcpiHandler for OffsetHandler {
    unsafe fn map_physical_region<T>(&self, physical_address: usize, size: usize) -> PhysicalMapping<Self, T> {
        let virt = (physical_address as u64 + self.phys_offset) as *mut T;
        // SAFETY: all physical memory is mapped at `phys_offset` for the
        // kernel's lifetime, so the range stays valid; the pointer is
        // non-null because `phys_offset` is a higher-half address.
        unsafe { PhysicalMapping::new(physical_address, NonNull::new_unchecked(virt), size, size, *self) }
    }

    fn unmap_physical_region<T>(_region: &PhysicalMapping<Self, T>) {}
}

/// Reads the MADT starting from the RSDP the bootloader found.
///
/// # Safety
/// `rsdp_phys` must be the physical address of a valid RSDP and all of
/// physical memory must be mapped at `phys_offset`.
pub unsafe fn discover(rsdp_phys: u64, phys_offset: u64) -> Result<Topology, Error> {
    let handler = OffsetHandler { phys_offset };
    // SAFETY: forwarded from the caller's contract.
    let tables = unsafe { AcpiTables::from_rsdp(handler, rsdp_phys as usize) }.map_err(Error::Acpi)?;
    let madt = tables.find_table::<Madt>().map_err(Error::Acpi)?;
    let madt = madt.get();
    let mut lapic_phys = madt.local_apic_address as u64;
    let mut raw = Vec::new();
    let (mut io_apics, mut overrides) = (Vec::new(), Vec::new());
    for entry in madt.entries() {
        match entry {
            MadtEntry::LocalApic(e) => {
                raw.push(RawCpuEntry { apic_id: e.apic_id as u32, acpi_uid: e.processor_id as u32, flags: e.flags })
            }
            MadtEntry::LocalX2Apic(e) => {
                raw.push(RawCpuEntry { apic_id: e.x2apic_id, acpi_uid: e.processor_uid, flags: e.flags })
            }
            MadtEntry::LocalApicAddressOverride(e) => lapic_phys = e.local_apic_address,
            MadtEntry::IoApic(e) => io_apics.push(IoApic {
                id: e.io_apic_id,
                phys: e.io_apic_address as u64,
                gsi_base: e.global_system_interrupt_base,
            }),
            // Bus 0 is ISA, the only bus the spec defines for overrides.
            MadtEntry::InterruptSourceOverride(e) if e.bus == 0 => {
                overrides.push(IsaOverride { irq: e.irq, gsi: e.global_system_interrupt, flags: e.flags })
            }
            _ => {}
        }
    }
    let cpus = usable_cpus(raw);
    if cpus.is_empty() {
        return Err(Error::NoProcessors);
    }
    Ok(Topology { lapic_phys, cpus, io_apics, overrides })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(apic_id: u32, flags: u32) -> RawCpuEntry {
        RawCpuEntry { apic_id, acpi_uid: apic_id, flags }
    }

    #[test]
    fn keeps_enabled_in_order() {
        let cpus = usable_cpus([e(0, 1), e(1, 1), e(2, 0), e(3, 1)]);
        let ids: Vec<u32> = cpus.iter().map(|c| c.apic_id).collect();
        assert_eq!(ids, [0, 1, 3]);
    }

    #[test]
    fn online_capable_but_disabled_is_skipped() {
        assert!(usable_cpus([e(5, 0b10)]).is_empty());
    }

    #[test]
    fn isa_irq_without_override_is_identity_edge_high() {
        let timer = IsaOverride { irq: 0, gsi: 2, flags: 0 };
        assert_eq!(isa_route(4, &[timer]), IsaRoute { gsi: 4, active_low: false, level: false });
        assert_eq!(isa_route(0, &[timer]), IsaRoute { gsi: 2, active_low: false, level: false });
    }

    #[test]
    fn override_flags_set_polarity_and_trigger() {
        // QEMU's q35 lists IRQ 9 (SCI) as level, active high: flags 0xD.
        let sci = IsaOverride { irq: 9, gsi: 9, flags: 0b1101 };
        assert_eq!(isa_route(9, &[sci]), IsaRoute { gsi: 9, active_low: false, level: true });
        let moved = IsaOverride { irq: 4, gsi: 20, flags: 0b1111 };
        assert_eq!(isa_route(4, &[sci, moved]), IsaRoute { gsi: 20, active_low: true, level: true });
        // "Conforms" and the reserved value keep ISA's defaults.
        let odd = IsaOverride { irq: 3, gsi: 3, flags: 0b1010 };
        assert_eq!(isa_route(3, &[odd]), IsaRoute { gsi: 3, active_low: false, level: false });
    }

    #[test]
    fn gsi_picks_the_io_apic_that_covers_it() {
        let a = IoApic { id: 0, phys: 0xFEC0_0000, gsi_base: 0 };
        let b = IoApic { id: 1, phys: 0xFEC0_1000, gsi_base: 24 };
        assert_eq!(io_apic_for(4, &[b, a]), Some(a));
        assert_eq!(io_apic_for(30, &[a, b]), Some(b));
        assert_eq!(io_apic_for(4, &[b]), None);
    }

    #[test]
    fn x2apic_duplicates_are_dropped() {
        let cpus = usable_cpus([e(0, 1), e(1, 1), e(0, 1), e(300, 1)]);
        let ids: Vec<u32> = cpus.iter().map(|c| c.apic_id).collect();
        assert_eq!(ids, [0, 1, 300]);
    }
}
