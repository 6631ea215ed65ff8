//! The one way the kernel dies: print the reason on the log, put a `panic`
//! line on the result channel, stop the other cores, and leave QEMU with
//! the failure status. Used by the panic handler and by fatal exceptions.

use core::fmt;
use core::sync::atomic::{AtomicBool, Ordering};

use crate::qemu::{ExitCode, exit};

static DYING: AtomicBool = AtomicBool::new(false);

/// Reports `reason` and stops the machine. If another core is already on
/// this path, this core just parks, so the first report is the one shown.
pub fn fatal(reason: fmt::Arguments) -> ! {
    x86_64::instructions::interrupts::disable();
    if DYING.swap(true, Ordering::SeqCst) {
        crate::cpu::halt_forever();
    }
    let cpu = crate::cpu::current_index();
    crate::console::emergency_log(format_args!("\n[cpu{cpu} FATAL] {reason}\n"));
    crate::console::emergency_result_line(format_args!("panic cpu{cpu}: {reason}"));
    crate::smp::stop_other_cores();
    exit(ExitCode::Failure)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    match info.location() {
        Some(loc) => fatal(format_args!("panicked at {}:{}: {}", loc.file(), loc.line(), info.message())),
        None => fatal(format_args!("panicked: {}", info.message())),
    }
}
