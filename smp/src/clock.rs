//! Time since boot, from the TSC.
//!
//! The TSC is the cheapest clock there is (one instruction, no lock) and on
//! every CPU QEMU or a modern board gives us it runs at a constant rate and
//! in step across cores. Its frequency is measured once against the PIT
//! ([`crate::pit`]) and stored here.

use core::sync::atomic::{AtomicU64, Ordering};

static TSC_HZ: AtomicU64 = AtomicU64::new(0);
static TSC_AT_BOOT: AtomicU64 = AtomicU64::new(0);

/// Records the calibrated TSC frequency; time starts now.
pub fn set_tsc_hz(hz: u64) {
    TSC_AT_BOOT.store(rdtsc(), Ordering::Relaxed);
    TSC_HZ.store(hz, Ordering::Release);
}

pub fn tsc_hz() -> u64 {
    TSC_HZ.load(Ordering::Acquire)
}

pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC has no side effects and is allowed at ring 0.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Converts a TSC delta to nanoseconds (saturating, no overflow for
/// centuries of uptime thanks to 128-bit arithmetic).
pub fn cycles_to_ns(cycles: u64, hz: u64) -> u64 {
    if hz == 0 {
        return 0;
    }
    ((cycles as u128 * 1_000_000_000) / hz as u128).min(u64::MAX as u128) as u64
}

/// Nanoseconds since calibration (0 before it).
pub fn now_ns() -> u64 {
    let hz = tsc_hz();
    cycles_to_ns(rdtsc().saturating_sub(TSC_AT_BOOT.load(Ordering::Relaxed)), hz)
}

/// Busy-waits at least `us` microseconds. Only for start-up protocol delays
/// (INIT-SIPI-SIPI), never in steady state.
pub fn delay_us(us: u64) {
    let hz = tsc_hz();
    let start = rdtsc();
    let wait = (hz as u128 * us as u128 / 1_000_000) as u64;
    while rdtsc().wrapping_sub(start) < wait {
        core::hint::spin_loop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cycle_conversion() {
        assert_eq!(cycles_to_ns(3_000_000_000, 3_000_000_000), 1_000_000_000);
        assert_eq!(cycles_to_ns(1, 2_000_000_000), 0);
        assert_eq!(cycles_to_ns(123, 0), 0);
        // 100 years at 5 GHz does not overflow.
        let cycles = 5_000_000_000u64 * 3600 * 24 * 365 * 100;
        assert_eq!(cycles_to_ns(cycles, 5_000_000_000), 3600 * 24 * 365 * 100 * 1_000_000_000);
    }
}
