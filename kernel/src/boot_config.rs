//! The boot configuration, read from the boot bundle (the ramdisk that
//! xtask builds; format in the `wasmos-bundle` crate).
//!
//! Keys in `boot.cfg`:
//! - `mode`: `run` (default: boot and idle), `test` (run the in-kernel
//!   tests and exit QEMU with their status), `fault-demo` (take a page
//!   fault on purpose to show the exception report);
//! - `tests`: comma-separated substrings selecting which tests run;
//! - `spawn`: comma-separated bundle entries to start in `run` mode, each
//!   `name.wasm` (any core), `name.wasm@3` (core 3) or `name.wasm@all`
//!   (one copy per core);
//! - `fuel_slice`: fuel per scheduling slice (default 200000).

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
            Bundle::parse(bytes)
                .map_err(|e| log::error!("boot bundle unreadable: {e}; booting in run mode"))
                .ok()
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

    /// Scheduler settings from the configuration.
    pub fn scheduler(&self) -> wasmos_sched::Config {
        let mut config = wasmos_sched::Config::default();
        if let Some(fuel) = self.config().get("fuel_slice").and_then(|v| v.parse().ok()) {
            config.fuel_slice = fuel;
        }
        config
    }

    fn config(&self) -> Config<'static> {
        self.bundle.map(|b| b.config()).unwrap_or(Config::new(""))
    }

    /// Which tests to run in test mode (`None` = all).
    pub fn test_filter(&self) -> Option<&'static str> {
        self.tests
    }
}

/// Starts the programs `spawn=` lists. The kernel is the loader for now:
/// a Wasm init task needs a file server to read the bundle from, which
/// comes with the servers (issue #4).
pub fn spawn_listed(config: &BootConfig, sys: &wasmos_sched::System) {
    let Some(bundle) = config.bundle else { return };
    let Some(list) = config.config().get("spawn") else { return };
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, placement) = item.split_once('@').unwrap_or((item, ""));
        let Some(bytes) = bundle.get(name) else {
            log::error!("spawn: {name} is not in the boot bundle");
            continue;
        };
        let cores: alloc::vec::Vec<i32> = match placement {
            "" => alloc::vec![-1],
            "all" => (0..sys.cores() as i32).collect(),
            n => match n.parse() {
                Ok(core) => alloc::vec![core],
                Err(_) => {
                    log::error!("spawn: bad placement {item:?}");
                    continue;
                }
            },
        };
        let task = name.trim_end_matches(".wasm");
        for core in cores {
            match sys.spawn(bytes, task, core) {
                Ok(_) => log::info!("spawned {task} (core {})", if core < 0 { "any".into() } else { alloc::format!("{core}") }),
                Err(e) => log::error!("spawn {name}: {}", e.name()),
            }
        }
    }
}
