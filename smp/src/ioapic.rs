//! The I/O APIC: routes a legacy (ISA) interrupt line to one core's local
//! APIC. WasmOS uses it for COM1's receive interrupt only; PCI devices
//! interrupt by MSI-X (the kernel's `virtio::msix`), whose routing on q35
//! would otherwise need ACPI `_PRT` (AML). An ISA line needs none of that:
//! the MADT says which I/O APIC input it arrives on and how it signals
//! ([`crate::madt::isa_route`]).
//!
//! Two registers at the chip's physical address: IOREGSEL (offset 0)
//! selects a register, IOWIN (offset 0x10) reads or writes it. Register 1
//! holds the number of redirection entries (bits 16-23, plus one); entry
//! `n` is the register pair 0x10 + 2n (low word) and 0x11 + 2n (high word).
//! Only [`route`] writes them, once at boot on the BSP, before the line can
//! fire; nothing else selects a register, so the select-then-access pair
//! needs no lock.

use crate::madt::IsaRoute;

const IOREGSEL: usize = 0x00;
const IOWIN: usize = 0x10;
const REG_VERSION: u32 = 0x01;
const REG_REDIRECTION: u32 = 0x10;

/// Bits of a redirection entry's low word (delivery mode 000 = fixed,
/// destination mode 0 = physical: both zero).
const POLARITY_LOW: u32 = 1 << 13;
const TRIGGER_LEVEL: u32 = 1 << 15;
const MASKED: u32 = 1 << 16;

/// Why a line could not be routed.
#[derive(Debug, PartialEq, Eq)]
pub enum NoRoute {
    /// The GSI is not one of this I/O APIC's inputs.
    NotHere { gsi: u32, first: u32, inputs: u32 },
    /// Physical destinations name 8-bit APIC IDs.
    ApicIdTooLarge(u32),
}

/// The redirection entry (high word, low word) that delivers `route` as
/// fixed interrupt `vector` to the local APIC `apic_id`, unmasked.
pub fn redirection_entry(route: IsaRoute, vector: u8, apic_id: u8) -> (u32, u32) {
    let mut low = vector as u32;
    if route.active_low {
        low |= POLARITY_LOW;
    }
    if route.level {
        low |= TRIGGER_LEVEL;
    }
    ((apic_id as u32) << 24, low)
}

/// One I/O APIC, mapped.
pub struct IoApic {
    /// Virtual address of its registers (uncached MMIO).
    base: usize,
    gsi_base: u32,
}

impl IoApic {
    /// # Safety
    /// `base` must map the I/O APIC's 4 KiB register page (uncached) for
    /// as long as this value is used, and nothing else may use the chip's
    /// registers meanwhile.
    pub unsafe fn new(base: usize, gsi_base: u32) -> IoApic {
        IoApic { base, gsi_base }
    }

    fn read(&self, reg: u32) -> u32 {
        // SAFETY: `base` maps the chip's registers (`new`'s contract);
        // IOREGSEL and IOWIN are 32-bit registers inside that page.
        unsafe {
            core::ptr::write_volatile((self.base + IOREGSEL) as *mut u32, reg);
            core::ptr::read_volatile((self.base + IOWIN) as *const u32)
        }
    }

    fn write(&self, reg: u32, value: u32) {
        // SAFETY: as in `read`.
        unsafe {
            core::ptr::write_volatile((self.base + IOREGSEL) as *mut u32, reg);
            core::ptr::write_volatile((self.base + IOWIN) as *mut u32, value);
        }
    }

    /// How many inputs (redirection entries) the chip has.
    pub fn inputs(&self) -> u32 {
        ((self.read(REG_VERSION) >> 16) & 0xFF) + 1
    }

    /// Routes `route` to `vector` on the core with local APIC ID `apic_id`.
    pub fn route(&self, route: IsaRoute, vector: u8, apic_id: u32) -> Result<(), NoRoute> {
        let apic_id = u8::try_from(apic_id).map_err(|_| NoRoute::ApicIdTooLarge(apic_id))?;
        let inputs = self.inputs();
        let n = route.gsi.checked_sub(self.gsi_base).filter(|n| *n < inputs).ok_or(NoRoute::NotHere {
            gsi: route.gsi,
            first: self.gsi_base,
            inputs,
        })?;
        let (high, low) = redirection_entry(route, vector, apic_id);
        // Masked while it changes, destination first, then unmasked with
        // the vector: never a half-written entry live.
        self.write(REG_REDIRECTION + 2 * n, MASKED);
        self.write(REG_REDIRECTION + 2 * n + 1, high);
        self.write(REG_REDIRECTION + 2 * n, low);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_for_an_isa_edge_line() {
        let route = IsaRoute { gsi: 4, active_low: false, level: false };
        assert_eq!(redirection_entry(route, 0x51, 3), (3 << 24, 0x51));
    }

    #[test]
    fn entry_carries_polarity_and_trigger() {
        let route = IsaRoute { gsi: 9, active_low: true, level: true };
        let (high, low) = redirection_entry(route, 0x52, 0);
        assert_eq!(high, 0);
        assert_eq!(low, 0x52 | 1 << 13 | 1 << 15);
        assert_eq!(low & MASKED, 0, "routed lines are unmasked");
    }
}
