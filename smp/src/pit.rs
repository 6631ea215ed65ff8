//! The 8254 PIT as a reference clock, and the legacy 8259 PIC switched off.
//!
//! The PIT runs at a fixed, known 1.193182 MHz, which makes it the one clock
//! on a PC whose rate needs no measuring. We use channel 2 in one-shot mode
//! with its gate controlled by port 0x61 (the way the PC speaker is driven),
//! polling its output bit: no interrupt routing is needed, so calibration
//! works before the IOAPIC or any IDT entry for the PIT exists.

use x86_64::instructions::port::Port;

/// Input clock of the PIT, Hz.
pub const PIT_HZ: u64 = 1_193_182;

/// PIT ticks for `ms` milliseconds (fits the 16-bit counter up to 54 ms).
pub fn ticks_for_ms(ms: u64) -> u16 {
    let ticks = PIT_HZ * ms / 1000;
    assert!(ticks <= u16::MAX as u64, "PIT one-shot limited to 54 ms");
    ticks as u16
}

/// Rate of a counter that advanced `delta` while `ms` milliseconds passed.
pub fn rate_hz(delta: u64, ms: u64) -> u64 {
    delta * 1000 / ms
}

/// Calls `before`, waits `ms` milliseconds on the PIT, calls `after`.
/// Interrupts should be disabled so the window is not stretched.
pub fn measure<A, B>(ms: u64, before: A, after: B)
where
    A: FnOnce(),
    B: FnOnce(),
{
    let ticks = ticks_for_ms(ms);
    let mut gate: Port<u8> = Port::new(0x61);
    let mut command: Port<u8> = Port::new(0x43);
    let mut ch2: Port<u8> = Port::new(0x42);
    // SAFETY: standard PC I/O ports of the PIT and its gate; only the BSP
    // uses them, during start-up.
    unsafe {
        // Gate low, speaker off, then program channel 2: lobyte/hibyte,
        // mode 0 (interrupt on terminal count), binary.
        let g = gate.read() & !0x03;
        gate.write(g);
        command.write(0b1011_0000);
        ch2.write(ticks as u8);
        ch2.write((ticks >> 8) as u8);
        // Raising the gate starts the count.
        before();
        gate.write(g | 0x01);
        // OUT2 (bit 5) goes high at terminal count.
        while gate.read() & 0x20 == 0 {
            core::hint::spin_loop();
        }
        after();
        gate.write(g);
    }
}

/// Remaps the 8259 PICs to vectors 0x20-0x2f and masks every line, so a
/// stray legacy interrupt lands on a known vector instead of aliasing a
/// CPU exception. The local APICs take over from here.
pub fn disable_legacy_pic() {
    let mut m_cmd: Port<u8> = Port::new(0x20);
    let mut m_data: Port<u8> = Port::new(0x21);
    let mut s_cmd: Port<u8> = Port::new(0xA0);
    let mut s_data: Port<u8> = Port::new(0xA1);
    // SAFETY: standard 8259 initialisation sequence on the PC's fixed
    // ports; it only affects legacy interrupt delivery, which we disable.
    unsafe {
        m_cmd.write(0x11);
        s_cmd.write(0x11);
        m_data.write(0x20);
        s_data.write(0x28);
        m_data.write(4);
        s_data.write(2);
        m_data.write(0x01);
        s_data.write(0x01);
        m_data.write(0xFF);
        s_data.write(0xFF);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_math() {
        assert_eq!(ticks_for_ms(10), 11_931);
        assert_eq!(rate_hz(30_000_000, 10), 3_000_000_000);
    }

    #[test]
    #[should_panic]
    fn one_shot_limit() {
        ticks_for_ms(60);
    }
}
