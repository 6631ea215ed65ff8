//! The boot configuration, read from the boot bundle (the ramdisk that
//! xtask builds; format in the `wasmos-bundle` crate).
//!
//! Keys in `boot.cfg`:
//! - `mode`: `run` (default: boot and idle), `test` (run the in-kernel
//!   tests and exit QEMU with their status), `fault-demo` (take a page
//!   fault on purpose to show the exception report);
//! - `tests`: comma-separated substrings selecting which tests run;
//! - `spawn`: what the init task (`servers/init`) starts in `run` mode;
//! - `exit_with`: in `run` mode, comma-separated task names: when all of
//!   them have ended, the kernel writes `program-exit <status>` (the first
//!   non-zero exit code, 101 for a killed task) to the result channel and
//!   leaves QEMU;
//! - `fuel_slice`: fuel per scheduling slice (default 20000);
//! - `tick_hz`: the periodic timer's rate on every core (1-1000, default
//!   `smp::TIMER_HZ`); the net-irq test boots with 1;
//! - `net.irq`: `off` polls the network card instead of taking its
//!   interrupt (the fallback; for comparisons and the test's control run);
//! - `console.irq`: `off` polls COM1 for console input on core 0's tick
//!   instead of taking its interrupt through the I/O APIC (the fallback).

use bootloader_api::BootInfo;
pub use wasmos_bundle::Mode;
use wasmos_bundle::{Bundle, Config};

pub struct BootConfig {
    pub mode: Mode,
    tests: Option<&'static str>,
    pub bundle: Option<Bundle<'static>>,
}

impl BootConfig {
    /// Reads the bundle from the ramdisk. A missing or unreadable bundle is
    /// reported and treated as an empty one (mode `run`), so a kernel booted
    /// by hand still comes up.
    pub fn from_boot_info(boot_info: &'static BootInfo) -> BootConfig {
        let bytes = match boot_info.ramdisk_addr.into_option() {
            // SAFETY: the bootloader loaded the ramdisk at this address with
            // this length and keeps it mapped (it is reported as in use in
            // the memory map, so the frame allocator never hands it out).
            Some(addr) => unsafe { core::slice::from_raw_parts(addr as *const u8, boot_info.ramdisk_len as usize) },
            None => {
                log::warn!("no boot bundle (ramdisk); booting in run mode");
                &[]
            }
        };
        let bundle = if bytes.is_empty() {
            None
        } else {
            Bundle::parse(bytes).map_err(|e| log::error!("boot bundle unreadable: {e}; booting in run mode")).ok()
        };
        let config = bundle.map(|b| b.config()).unwrap_or(Config::new(""));
        let mode = match config.get("mode") {
            None => Mode::Run,
            Some(m) => Mode::parse(m).unwrap_or_else(|| {
                log::error!("unknown mode {m:?} in boot.cfg; using run");
                Mode::Run
            }),
        };
        BootConfig { mode, tests: config.get("tests").filter(|t| !t.is_empty()), bundle }
    }

    /// Scheduler settings from the configuration, with budgets scaled to
    /// a kernel heap of `heap_bytes`.
    pub fn scheduler(&self, heap_bytes: usize) -> wasmos_sched::Config {
        let mut config = wasmos_sched::Config::for_heap(heap_bytes);
        if let Some(fuel) = self.config().get("fuel_slice").and_then(|v| v.parse().ok()) {
            config.fuel_slice = fuel;
        }
        config
    }

    /// The timer tick rate (`tick_hz`, clamped to 1-1000 Hz).
    pub fn tick_hz(&self) -> u64 {
        match self.config().get("tick_hz").map(str::parse::<u64>) {
            None => crate::smp::TIMER_HZ,
            Some(Ok(hz)) => hz.clamp(1, 1000),
            Some(Err(_)) => {
                log::error!("tick_hz in boot.cfg is not a number; using {} Hz", crate::smp::TIMER_HZ);
                crate::smp::TIMER_HZ
            }
        }
    }

    pub fn config(&self) -> Config<'static> {
        self.bundle.map(|b| b.config()).unwrap_or(Config::new(""))
    }

    /// Which tests to run in test mode (`None` = all).
    pub fn test_filter(&self) -> Option<&'static str> {
        self.tests
    }
}
