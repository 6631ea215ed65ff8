//! WasmOS multiprocessor support: everything needed to go from one core to
//! all of them, and for cores to poke each other afterwards.
//!
//! What this crate owns, by module:
//! - [`madt`]: find every processor in ACPI's MADT (acpi 5.x tables, our own
//!   classification of the entries);
//! - [`lapic`]: this core's local APIC (x2APIC when the CPU has it, xAPIC
//!   MMIO otherwise), EOI, IPIs, the periodic timer;
//! - [`ioapic`]: route one legacy (ISA) line to a core (COM1's receive
//!   interrupt);
//! - [`pit`]: the legacy PIT as the reference clock that calibrates the TSC
//!   and the APIC timer;
//! - [`percpu`]: per-CPU data reached through the GS base;
//! - [`trampoline`]: the real-mode AP start-up code and INIT-SIPI-SIPI;
//! - [`remote`]: run a function on another core (IPI + mailbox) and wait.
//!
//! What it does not own: page tables, stacks, the IDT. The kernel passes
//! those in ([`trampoline::ApBoot`]), so this crate stays free of any
//! particular memory manager and its pure logic is unit-tested on the host.

#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod clock;
pub mod ioapic;
pub mod lapic;
pub mod madt;
pub mod percpu;
pub mod pit;
pub mod remote;
pub mod trampoline;

use core::sync::atomic::Ordering;

/// Most cores WasmOS supports (QEMU's q35 machine allows up to 288 with
/// x2APIC; 64 keeps per-core tables small and covers every target).
pub const MAX_CPUS: usize = 64;

/// Interrupt vectors used by the local APIC. Exceptions use 0-31; the
/// legacy PIC is remapped out of the way (0x20-0x2f) and masked.
pub mod vectors {
    /// Periodic APIC timer.
    pub const TIMER: u8 = 0x40;
    /// Device interrupts (MSI-X messages name one of these): the first of
    /// [`DEVICE_COUNT`] vectors, one per device driver. Their priority
    /// class (vector >> 4) does not matter: every handler only sets a flag.
    pub const DEVICE_FIRST: u8 = 0x50;
    pub const DEVICE_COUNT: u8 = 16;
    /// The virtio-net card's receive queue.
    pub const NET: u8 = DEVICE_FIRST;
    /// COM1's receive interrupt (ISA IRQ 4, through the I/O APIC).
    pub const CONSOLE: u8 = DEVICE_FIRST + 1;
    /// Local APIC error interrupt.
    pub const APIC_ERROR: u8 = 0xFE;
    /// "Look at your mailbox": cross-core wake-ups and remote calls.
    pub const IPI: u8 = 0xF0;
    /// Spurious-interrupt vector (low 4 bits must be 1 on old APICs).
    pub const SPURIOUS: u8 = 0xFF;
}

/// Timer interrupt bookkeeping; the kernel's handler calls this before EOI.
pub fn on_timer_tick() {
    if let Some(cpu) = percpu::try_current() {
        cpu.ticks.fetch_add(1, Ordering::Relaxed);
    }
}

/// IPI bookkeeping and remote calls; the kernel's handler calls this
/// before EOI.
pub fn on_ipi() {
    if let Some(cpu) = percpu::try_current() {
        cpu.ipis.fetch_add(1, Ordering::Relaxed);
        remote::serve(cpu);
    }
}
