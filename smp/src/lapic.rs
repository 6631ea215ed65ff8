//! The calling core's local APIC, through the x2apic crate.
//!
//! Mode: x2APIC (MSR access) when CPUID says the CPU has it, otherwise
//! xAPIC through the MMIO page the kernel mapped for us. QEMU 7.2 under TCG
//! does not offer x2APIC, so the xAPIC path is the one CI exercises; KVM
//! and real hardware take the x2APIC path. The x2apic crate speaks raw
//! register values, and in xAPIC mode the APIC ID sits in bits 24..32 of
//! the ID register and of the ICR's high half; this module hides that.
//!
//! Each core keeps its own `LocalApic` in its per-CPU data, and every
//! access happens with interrupts disabled, so an interrupt handler's EOI
//! can never alias a half-done IPI send on the same core.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use x2apic::lapic::{IpiAllShorthand, LocalApic, LocalApicBuilder, TimerDivide, TimerMode};
use x86_64::instructions::interrupts;

use crate::{percpu, vectors};

/// Which register interface the local APICs use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    X2Apic,
    XApic,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::X2Apic => "x2APIC",
            Mode::XApic => "xAPIC",
        }
    }
}

/// Virtual address of the xAPIC register page (0 = x2APIC mode).
static XAPIC_VIRT: AtomicU64 = AtomicU64::new(0);
/// Initial count of the periodic timer (0 = not calibrated yet).
static TIMER_INITIAL: AtomicU32 = AtomicU32::new(0);
/// The timer counts at bus clock / 16.
const TIMER_DIVIDE: TimerDivide = TimerDivide::Div16;
pub const TIMER_DIVISOR: u64 = 16;

/// Whether this CPU offers x2APIC.
pub fn cpu_has_x2apic() -> bool {
    let leaf1 = core::arch::x86_64::__cpuid(1);
    leaf1.ecx & (1 << 21) != 0
}

/// Chooses the mode for all cores. `xapic_virt` is where the kernel mapped
/// the MADT's local APIC page (uncached); it is only used without x2APIC.
pub fn configure(xapic_virt: u64) -> Mode {
    if cpu_has_x2apic() {
        Mode::X2Apic
    } else {
        XAPIC_VIRT.store(xapic_virt, Ordering::Release);
        Mode::XApic
    }
}

pub fn mode() -> Mode {
    if XAPIC_VIRT.load(Ordering::Acquire) == 0 { Mode::X2Apic } else { Mode::XApic }
}

/// Sets the periodic timer's initial count, computed from a calibration.
pub fn set_timer_initial(count: u32) {
    TIMER_INITIAL.store(count, Ordering::Release);
}

/// The initial count that makes a timer counting at `lapic_hz / divisor`
/// fire `tick_hz` times a second.
pub fn periodic_initial_count(lapic_hz: u64, tick_hz: u64) -> u32 {
    (lapic_hz / TIMER_DIVISOR / tick_hz).clamp(1, u32::MAX as u64) as u32
}

/// Enables the calling core's local APIC (timer stopped) and stores it in
/// this core's per-CPU data. Per-CPU data must be installed first.
pub fn init_this_core() {
    let mut builder = LocalApicBuilder::new();
    builder
        .timer_vector(vectors::TIMER as usize)
        .error_vector(vectors::APIC_ERROR as usize)
        .spurious_vector(vectors::SPURIOUS as usize)
        .timer_mode(TimerMode::OneShot)
        .timer_divide(TIMER_DIVIDE)
        // An initial count of 0 keeps the timer stopped until we start it.
        .timer_initial(0);
    let xapic = XAPIC_VIRT.load(Ordering::Acquire);
    if xapic != 0 {
        builder.set_xapic_base(xapic);
    }
    let mut lapic = builder.build().expect("local APIC configuration is complete");
    interrupts::without_interrupts(|| {
        // SAFETY: enabling the local APIC of the calling core with vectors
        // that the IDT handles; the register page (xAPIC) is mapped.
        unsafe { lapic.enable() };
        let cpu = percpu::current();
        // SAFETY: only the owning core reaches its `lapic` slot, and only
        // with interrupts disabled (here and in `with_local`).
        unsafe { *cpu.lapic.get() = Some(lapic) };
    });
}

/// Runs `f` on this core's local APIC with interrupts disabled. Returns
/// `None` if this core has no APIC set up yet.
fn with_local<R>(f: impl FnOnce(&mut LocalApic) -> R) -> Option<R> {
    interrupts::without_interrupts(|| {
        let cpu = percpu::try_current()?;
        // SAFETY: the owning core with interrupts off is the only context
        // that touches this slot, so this `&mut` is unique.
        let slot = unsafe { &mut *cpu.lapic.get() };
        slot.as_mut().map(f)
    })
}

/// Converts an APIC ID to the ICR destination field the crate expects.
fn destination(apic_id: u32) -> u32 {
    match mode() {
        Mode::X2Apic => apic_id,
        Mode::XApic => apic_id << 24,
    }
}

/// Waits until the previous IPI left this APIC (xAPIC only: x2APIC has no
/// delivery-status bit and needs no wait).
fn wait_icr_idle(lapic: &LocalApic) {
    if mode() == Mode::XApic {
        // SAFETY: reading the ICR has no side effects.
        while unsafe { lapic.get_ipi_delivery_status() } {
            core::hint::spin_loop();
        }
    }
}

/// Signals end of interrupt.
pub fn eoi() {
    // SAFETY: called at the end of an APIC-delivered interrupt handler.
    with_local(|l| unsafe { l.end_of_interrupt() });
}

/// This core's APIC ID, read from the hardware.
pub fn hardware_id() -> u32 {
    let xapic = XAPIC_VIRT.load(Ordering::Acquire);
    if xapic == 0 {
        // SAFETY: reading the x2APIC ID MSR (0x802) has no side effects;
        // only called in x2APIC mode, after the APIC was enabled.
        unsafe { x86_64::registers::model_specific::Msr::new(0x802).read() as u32 }
    } else {
        // SAFETY: reading the ID register of the mapped xAPIC page.
        unsafe { core::ptr::read_volatile((xapic + 0x20) as *const u32) >> 24 }
    }
}

/// Sends a fixed interrupt on `vector` to the core with `apic_id`.
pub fn send_ipi(apic_id: u32, vector: u8) {
    with_local(|l| {
        wait_icr_idle(l);
        // SAFETY: a fixed IPI to a vector the IDT handles.
        unsafe { l.send_ipi(vector, destination(apic_id)) };
    })
    .expect("local APIC not initialised on this core");
}

/// Sends an NMI to every other core (used to stop them on a fatal error).
pub fn send_nmi_to_others() {
    with_local(|l| {
        // SAFETY: the NMI handler parks the receiving core; this is only
        // used on the way to stopping the machine.
        unsafe { l.send_nmi_all(IpiAllShorthand::AllExcludingSelf) };
    });
}

/// INIT followed by two STARTUP IPIs, per the MP specification, with the
/// delays it asks for. `page` is the physical page number (address >> 12)
/// of the trampoline; it must be below 1 MiB.
pub fn send_init_sipi_sipi(apic_id: u32, page: u8, still_waiting: impl Fn() -> bool) {
    let dest = destination(apic_id);
    // SAFETY: INIT resets only the target AP, which is not running yet.
    with_local(|l| unsafe { l.send_init_ipi(dest) });
    crate::clock::delay_us(10_000);
    for _ in 0..2 {
        if !still_waiting() {
            break;
        }
        with_local(|l| {
            wait_icr_idle(l);
            // SAFETY: the page holds the trampoline, identity-mapped.
            unsafe { l.send_sipi(page, dest) };
        });
        crate::clock::delay_us(200);
    }
}

/// Starts the one-shot countdown used for calibration (from u32::MAX).
pub fn start_calibration_countdown() {
    with_local(|l| {
        // SAFETY: reprogramming this core's own timer.
        unsafe {
            l.set_timer_mode(TimerMode::OneShot);
            l.set_timer_initial(u32::MAX);
        }
    });
}

/// Current count of this core's timer.
pub fn timer_current() -> u32 {
    // SAFETY: reading the current-count register has no side effects.
    with_local(|l| unsafe { l.timer_current() }).unwrap_or(0)
}

/// Starts this core's periodic timer with the calibrated initial count.
pub fn start_periodic_timer() {
    let initial = TIMER_INITIAL.load(Ordering::Acquire);
    assert!(initial != 0, "APIC timer started before calibration");
    with_local(|l| {
        // SAFETY: reprogramming this core's own timer; the IDT handles
        // `vectors::TIMER`.
        unsafe {
            l.set_timer_divide(TIMER_DIVIDE);
            l.set_timer_mode(TimerMode::Periodic);
            l.set_timer_initial(initial);
            l.enable_timer();
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periodic_count() {
        // 1 GHz bus, divide by 16, 100 Hz -> 625_000.
        assert_eq!(periodic_initial_count(1_000_000_000, 100), 625_000);
        assert_eq!(periodic_initial_count(0, 100), 1);
    }
}
