//! Serial consoles: COM1 carries the human log (through the `log` facade,
//! each line prefixed with the CPU it came from), COM2 carries the
//! machine-readable result channel that `cargo xtask test` parses.
//!
//! Why two ports: the test harness must never have to guess which bytes of
//! a noisy log are results. COM2 only ever carries whole lines in the format
//! documented in `tests/src/protocol.rs` (`WASMOS-RESULTS 1`, `test-pass …`).
//!
//! Both ports sit behind spin locks taken with interrupts disabled, so an
//! interrupt handler that logs cannot deadlock against the code it
//! interrupted on the same core.

use core::fmt::{self, Write};
use spin::Mutex;
use uart_16550::SerialPort;
use x86_64::instructions::interrupts;

const COM1: u16 = 0x3F8;
const COM2: u16 = 0x2F8;

// SAFETY: 0x3F8 is the standard PC COM1 I/O port, present on QEMU's q35
// machine and on every PC-compatible board we target; only this lock uses it.
static LOG_PORT: Mutex<SerialPort> = Mutex::new(unsafe { SerialPort::new(COM1) });
// SAFETY: 0x2F8 is COM2, likewise standard; only this lock uses it.
static RESULT_PORT: Mutex<SerialPort> = Mutex::new(unsafe { SerialPort::new(COM2) });

/// Initialises both UARTs and installs the logger. Called once, first thing
/// on the bootstrap processor.
pub fn init() {
    LOG_PORT.lock().init();
    RESULT_PORT.lock().init();
    log::set_logger(&LOGGER).expect("logger installed twice");
    log::set_max_level(log::LevelFilter::Info);
}

/// Writes formatted text to the log port (no prefix, no newline added).
pub fn log_fmt(args: fmt::Arguments) {
    interrupts::without_interrupts(|| {
        let _ = LOG_PORT.lock().write_fmt(args);
    });
}

/// Writes one line to the result channel. The line must not contain '\n'.
pub fn result_line(args: fmt::Arguments) {
    interrupts::without_interrupts(|| {
        let mut port = RESULT_PORT.lock();
        let _ = port.write_fmt(args);
        let _ = port.write_str("\n");
    });
}

/// Writes to the log port even if another core holds its lock forever
/// (for example because it faulted while printing). Used only on the way
/// to a fatal stop, where a garbled line beats a silent hang.
pub fn emergency_log(args: fmt::Arguments) {
    // SAFETY: a second handle to the same UART; at worst its bytes
    // interleave with another core's output. Only used on fatal paths.
    let mut port = unsafe { SerialPort::new(COM1) };
    let _ = port.write_fmt(args);
}

/// Like [`emergency_log`], for the result channel.
pub fn emergency_result_line(args: fmt::Arguments) {
    // SAFETY: as in `emergency_log`.
    let mut port = unsafe { SerialPort::new(COM2) };
    let _ = port.write_fmt(args);
    let _ = port.write_str("\n");
}

struct Logger;
static LOGGER: Logger = Logger;

impl log::Log for Logger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        // Libraries speak only when something is wrong (virtio-drivers
        // logs its feature negotiation at INFO).
        let library = !metadata.target().starts_with("wasmos");
        metadata.level() <= log::max_level() && !(library && metadata.level() > log::Level::Warn)
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let cpu = crate::cpu::current_index();
        log_fmt(format_args!("[cpu{cpu} {:5}] {}\n", record.level(), record.args()));
    }

    fn flush(&self) {}
}

/// `println!`-like macro for the log port without a level prefix (banners).
#[macro_export]
macro_rules! kprintln {
    ($($arg:tt)*) => {
        $crate::console::log_fmt(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// Emits one line on the result channel.
#[macro_export]
macro_rules! result {
    ($($arg:tt)*) => {
        $crate::console::result_line(format_args!($($arg)*))
    };
}
