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
//!
//! COM1 is also the console's input (WASI stdin, `sched`'s
//! `Platform::console_read`). Its receive interrupt (ISA IRQ 4) is routed
//! through the I/O APIC to core 0 ([`start_input`]); the handler
//! ([`on_input_interrupt`]) only moves the UART's receive FIFO into a
//! bounded lock-free ring ([`wasmos_ipc::bytering`]; bytes beyond its
//! capacity are dropped and counted), rings the input doorbell and
//! returns: no lock, no allocation, never inside the interpreter's way.
//! Core 0's loop forwards the doorbell to the core whose task waits for
//! input (`tasks.rs`). Reading the receive registers never disturbs the
//! output path: the transmit side uses other registers, and the divisor
//! latch (which would alias them) is only set by `init`. Without an I/O
//! APIC in the MADT (or with `console.irq=off` in `boot.cfg`) core 0
//! polls the line status register on its timer tick instead, the
//! documented fallback; the boot log says which.

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use spin::Mutex;
use uart_16550::SerialPort;
use wasmos_ipc::bytering::ByteRing;
use wasmos_smp::madt::{IoApic, IsaOverride};
use x86_64::instructions::interrupts;
use x86_64::instructions::port::Port;

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

// ---- Console input (COM1 receive) ----

/// COM1's ISA interrupt line.
const COM1_IRQ: u8 = 4;
/// UART registers, as offsets from the base port.
const UART_DATA: u16 = 0;
const UART_IER: u16 = 1;
const UART_MCR: u16 = 4;
const UART_LSR: u16 = 5;
/// IER bit 0: interrupt when received data is available (or the FIFO
/// timed out with bytes below its trigger level).
const IER_RX_AVAILABLE: u8 = 1 << 0;
/// MCR: DTR, RTS and OUT2, which gates the UART's interrupt onto the line.
const MCR_DTR_RTS_OUT2: u8 = 0x0B;
/// LSR bit 0: a byte is waiting in the receive buffer.
const LSR_DATA_READY: u8 = 1 << 0;
/// Bytes of input held for the reader; more than a pasted line or two.
pub const INPUT_BYTES: usize = 4096;
/// Most bytes one handler run reads: the ring plus a full FIFO. A sender
/// faster than that gets its excess dropped and counted, not a core stuck
/// in the handler.
const DRAIN_MAX: usize = INPUT_BYTES + 16;

static INPUT: ByteRing<INPUT_BYTES> = ByteRing::new();
/// One reader at a time (the ring has one consumer); the producer, the
/// handler, never takes it.
static INPUT_READER: Mutex<()> = Mutex::new(());
/// Set when input arrived; core 0's loop forwards it (`tasks.rs`).
static INPUT_DOORBELL: AtomicBool = AtomicBool::new(false);
/// How input is taken: [`InputMode`] as a byte.
static INPUT_MODE: AtomicU8 = AtomicU8::new(InputMode::Off as u8);

/// How the console's input reaches the ring.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum InputMode {
    /// Not started (test modes): no input.
    Off = 0,
    /// COM1's interrupt through the I/O APIC to core 0.
    Interrupt = 1,
    /// Core 0 looks at the line status register on every timer tick.
    Polled = 2,
}

fn uart_read(reg: u16) -> u8 {
    // SAFETY: reads a COM1 register (standard PC I/O ports, see
    // `LOG_PORT`); LSR and the receive buffer are read only here, by the
    // one producer, and reading them does not disturb transmission.
    unsafe { Port::<u8>::new(COM1 + reg).read() }
}

fn uart_write(reg: u16, value: u8) {
    // SAFETY: IER and MCR of COM1; only `start_input` and the handler's
    // re-arm write them, after `init` set the port up.
    unsafe { Port::<u8>::new(COM1 + reg).write(value) }
}

/// Starts console input: routes COM1's IRQ 4 (with its MADT override, if
/// any) through the I/O APIC to core 0's local APIC at
/// `vectors::CONSOLE`, and enables the UART's receive interrupt. Falls
/// back to polling on core 0's tick when there is no I/O APIC, the route
/// fails, or `interrupt` is false (`console.irq=off`). Logs which.
pub fn start_input(io_apics: &[IoApic], overrides: &[IsaOverride], interrupt: bool) -> InputMode {
    let mode = if interrupt { route_input(io_apics, overrides) } else { InputMode::Polled };
    if mode == InputMode::Polled {
        log::info!("console: polling COM1 for input on core 0's timer tick (fallback: no interrupt)");
    }
    INPUT_MODE.store(mode as u8, Ordering::Release);
    interrupts::without_interrupts(|| {
        uart_write(UART_MCR, MCR_DTR_RTS_OUT2);
        uart_write(UART_IER, if mode == InputMode::Interrupt { IER_RX_AVAILABLE } else { 0 });
    });
    // Bytes that came before the route: the FIFO kept them (its interrupt
    // may have fired into a masked line, so no edge would come for them).
    drain_receiver();
    mode
}

fn route_input(io_apics: &[IoApic], overrides: &[IsaOverride]) -> InputMode {
    let route = wasmos_smp::madt::isa_route(COM1_IRQ, overrides);
    let Some(chip) = wasmos_smp::madt::io_apic_for(route.gsi, io_apics) else {
        log::warn!("console: the MADT lists no I/O APIC for COM1's IRQ {COM1_IRQ} (GSI {})", route.gsi);
        return InputMode::Polled;
    };
    let Some(apic_id) = wasmos_smp::percpu::all().first().map(|c| c.apic_id) else { return InputMode::Polled };
    let virt = match crate::memory::with(|m| m.map_mmio(chip.phys, 4096)) {
        Ok(v) => v,
        Err(e) => {
            log::warn!("console: cannot map the I/O APIC at {:#x}: {e:?}", chip.phys);
            return InputMode::Polled;
        }
    };
    // SAFETY: `virt` maps the chip's register page, uncached (`map_mmio`),
    // for the kernel's lifetime; only this boot-time code on the BSP uses
    // the chip's registers.
    let ioapic = unsafe { wasmos_smp::ioapic::IoApic::new(virt.as_u64() as usize, chip.gsi_base) };
    match ioapic.route(route, wasmos_smp::vectors::CONSOLE, apic_id) {
        Ok(()) => {
            log::info!(
                "console: COM1 input by interrupt, IRQ {COM1_IRQ} -> GSI {} (I/O APIC {} at {:#x}){}, vector {:#x} to core 0 (APIC {apic_id})",
                route.gsi,
                chip.id,
                chip.phys,
                if route.gsi != COM1_IRQ as u32 || route.level || route.active_low { ", MADT override" } else { "" },
                wasmos_smp::vectors::CONSOLE
            );
            InputMode::Interrupt
        }
        Err(e) => {
            log::warn!("console: cannot route COM1's IRQ through the I/O APIC: {e:?}");
            InputMode::Polled
        }
    }
}

/// Moves what the UART received into the ring (bytes beyond its capacity
/// are dropped and counted); rings the doorbell if anything came.
/// Interrupt context or interrupts off, core 0 only: the one producer.
fn drain_receiver() {
    let mut got = false;
    for _ in 0..DRAIN_MAX {
        if uart_read(UART_LSR) & LSR_DATA_READY == 0 {
            break;
        }
        // A terminal's Enter is CR (QEMU's `-serial mon:stdio` passes it
        // raw); programs read lines ended by LF, so CR becomes LF, as a
        // Unix tty's default ICRNL does.
        let byte = match uart_read(UART_DATA) {
            b'\r' => b'\n',
            b => b,
        };
        INPUT.push(byte);
        got = true;
    }
    if got {
        INPUT_DOORBELL.store(true, Ordering::Release);
    }
}

/// COM1's receive interrupt (`vectors::CONSOLE`, core 0): drain, doorbell.
/// The caller acknowledges the local APIC.
pub fn on_input_interrupt() {
    drain_receiver();
    // Still data after the bound: the line stays raised and an edge-
    // triggered input would not fire again. Turning the interrupt off and
    // on makes the UART drop and raise its line: a fresh edge.
    if uart_read(UART_LSR) & LSR_DATA_READY != 0 {
        uart_write(UART_IER, 0);
        uart_write(UART_IER, IER_RX_AVAILABLE);
    }
}

/// The fallback: core 0's timer tick polls the UART.
pub fn on_tick() {
    if INPUT_MODE.load(Ordering::Relaxed) == InputMode::Polled as u8 && crate::cpu::current_index() == 0 {
        drain_receiver();
    }
}

/// Takes up to `buf.len()` bytes of console input; `None` when there is
/// none now (a serial line never ends).
pub fn read_input(buf: &mut [u8]) -> Option<usize> {
    let _one_reader = INPUT_READER.lock();
    match INPUT.pop_into(buf) {
        0 if !buf.is_empty() => None,
        n => Some(n),
    }
}

/// How console input is taken on this boot.
pub fn input_mode() -> InputMode {
    match INPUT_MODE.load(Ordering::Acquire) {
        1 => InputMode::Interrupt,
        2 => InputMode::Polled,
        _ => InputMode::Off,
    }
}

/// Whether console input is waiting.
pub fn input_pending() -> bool {
    !INPUT.is_empty()
}

/// Whether input arrived since the last call (clears the doorbell).
pub fn take_input_doorbell() -> bool {
    INPUT_DOORBELL.load(Ordering::Acquire) && INPUT_DOORBELL.swap(false, Ordering::AcqRel)
}

/// Whether input arrived that no one has forwarded yet.
pub fn input_doorbell_set() -> bool {
    INPUT_DOORBELL.load(Ordering::Acquire)
}

/// Bytes dropped because the input ring was full.
pub fn input_dropped() -> u64 {
    INPUT.dropped()
}
