//! WasmOS kernel entry point and boot sequence.
//!
//! The bootstrap processor (BSP) arrives in `kmain` from the bootloader in
//! 64-bit mode with paging on, all physical memory mapped at an offset, and
//! the boot bundle (configuration + Wasm payloads) loaded as the ramdisk.
//! From there, in order, and why in that order:
//!
//! 1. serial consoles, so every later step can report;
//! 2. memory (frames, page table, heap), because CPU tables are heap objects;
//! 3. this core's GDT/TSS/IDT, so faults from here on are reported;
//! 4. the boot configuration from the bundle;
//! 5. ACPI + local APIC + timer calibration + application processors (smp);
//! 6. the banner, then the mode: `run` idles, `test` runs the in-kernel
//!    test suite, `fault-demo` shows what a fatal exception looks like,
//!    `soak` runs a mixed load and `bench` the benchmarks (`bench.rs`).

#![no_std]
#![no_main]

extern crate alloc;

mod bench;
mod blk;
mod boot_config;
mod console;
mod cpu;
mod interrupts;
mod ktest;
mod memory;
mod net;
mod panic;
mod qemu;
mod ring3;
mod smp;
mod tasks;
mod virtio;

use bootloader_api::config::{BootloaderConfig, Mapping};
use bootloader_api::info::MemoryRegionKind;
use bootloader_api::{BootInfo, entry_point};

use boot_config::Mode;

/// Kernel stack of the BSP. 256 KiB: the Wasm interpreter recurses.
const BSP_STACK_BYTES: u64 = 256 * 1024;

const BOOTLOADER_CONFIG: BootloaderConfig = {
    let mut config = BootloaderConfig::new_default();
    config.mappings.physical_memory = Some(Mapping::Dynamic);
    config.kernel_stack_size = BSP_STACK_BYTES;
    config
};

entry_point!(kmain, config = &BOOTLOADER_CONFIG);

/// Which firmware booted us, told apart by the memory map's region kinds.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Firmware {
    Bios,
    Uefi,
}

impl Firmware {
    pub fn name(self) -> &'static str {
        match self {
            Firmware::Bios => "bios",
            Firmware::Uefi => "uefi",
        }
    }
}

/// The bootloader's entry: turns SSE on before anything else runs. The
/// kernel is compiled with SSE (a hard-float target), so any Rust code
/// may use XMM registers; until CR4.OSFXSR is set they raise #UD. This
/// function has no locals and `enable_sse` is inline assembly, so no
/// compiler-generated SSE instruction comes first (checked in the
/// disassembly: ARCHITECTURE.md, "The kernel target").
fn kmain(boot_info: &'static mut BootInfo) -> ! {
    cpu::enable_sse();
    kmain_with_sse(boot_info)
}

#[inline(never)]
fn kmain_with_sse(boot_info: &'static mut BootInfo) -> ! {
    console::init();
    let firmware = if boot_info.memory_regions.iter().any(|r| matches!(r.kind, MemoryRegionKind::UnknownUefi(_))) {
        Firmware::Uefi
    } else {
        Firmware::Bios
    };
    let boot_info: &'static BootInfo = boot_info;
    let mem = memory::init(boot_info);
    cpu::init_this_core(0);
    smp::record_bsp_stack(BSP_STACK_BYTES);
    let config = boot_config::BootConfig::from_boot_info(boot_info);
    // Announce the result channel as early as possible, so that even a
    // failure during SMP bring-up is attributed to this run; in every
    // mode, so xtask can tell a kernel that started from one that never
    // did (`qemu::timed_out`).
    result!("WASMOS-RESULTS 1");

    let system = smp::init(boot_info, mem.phys_offset, config.tick_hz());
    let usable_mib = mem.usable_bytes >> 20;
    let heap = memory::heap::stats();
    kprintln!("");
    kprintln!("WasmOS {} - a multicore microkernel that runs WebAssembly", env!("CARGO_PKG_VERSION"));
    kprintln!(
        "  cpus     : {} online of {} found (local APIC in {} mode, timer {} Hz)",
        system.cpus_online,
        system.cpus_found,
        system.apic_mode,
        system.tick_hz
    );
    kprintln!("  memory   : {} MiB usable, kernel heap grows up to {} MiB", usable_mib, heap.limit_bytes >> 20);
    kprintln!("  clocks   : TSC {} MHz, APIC timer {} MHz", system.tsc_hz / 1_000_000, system.lapic_hz / 1_000_000);
    kprintln!("  firmware : {}, boot mode: {}", firmware.name(), config.mode.name());
    kprintln!("  bundle   : {} entries", config.bundle.map_or(0, |b| b.len()));
    kprintln!("");

    if matches!(config.mode, Mode::Test | Mode::Soak | Mode::Bench) {
        result!(
            "boot cpus_found={} cpus_online={} mem_mib={} firmware={}",
            system.cpus_found,
            system.cpus_online,
            usable_mib,
            firmware.name()
        );
    }

    // Every budget of tasks is a share of the kernel heap's limit (Wasm
    // memory half, queued messages an eighth, sockets an eighth; sched's
    // `quota::heap_shares`), so tasks together can never starve the
    // kernel's own allocations.
    let sched_config = config.scheduler(heap.limit_bytes as usize);
    let sys = tasks::init(wasmos_smp::percpu::count(), sched_config, config.bundle);
    tasks::wait_for_schedulers(system.cpus_online, 5_000_000_000);

    match config.mode {
        Mode::Run => {
            if let Some(names) = config.config().get("exit_with").filter(|n| !n.is_empty()) {
                // The result channel carries the programs' exit status.
                tasks::exit_with(&names.split(',').map(str::trim).collect::<alloc::vec::Vec<_>>());
            }
            start_services(sys, &config);
            // `console.irq=off`: poll COM1 on the tick (the fallback), to
            // compare or test.
            let irq = config.config().get("console.irq") != Some("off");
            console::start_input(&system.io_apics, &system.overrides, irq);
            tasks::start_init(sys, config.bundle);
            log::info!("running; press Ctrl-A X to leave QEMU");
            tasks::core_loop(0)
        }
        Mode::Test => {
            let mut ctx = ktest::Ctx::new(sys, config.bundle);
            let outcome = ktest::run(config.test_filter(), &mut ctx);
            qemu::exit(if outcome.failed == 0 { qemu::ExitCode::Success } else { qemu::ExitCode::Failure })
        }
        Mode::FaultDemo => fault_demo(),
        Mode::Soak => {
            let mut ctx = ktest::Ctx::new(sys, config.bundle);
            // With a network card (xtask forwards a port), webapi serves
            // the host's HTTP clients all through the soak.
            if config.config().get("net.hostfwd").is_some() {
                start_services(sys, &config);
                match config.bundle.and_then(|b| b.get("webapi.wasm")).map(|w| sys.spawn(w, "webapi", -1)) {
                    Some(Ok(_)) => log::info!("soak: webapi started"),
                    other => log::error!("soak: webapi not started: {:?}", other.map(|r| r.map_err(|e| e.name()))),
                }
            }
            let seconds = config.config().get("soak_seconds").and_then(|s| s.parse().ok()).unwrap_or(60);
            let ok = ktest::soak::run(&mut ctx, seconds);
            qemu::exit(if ok { qemu::ExitCode::Success } else { qemu::ExitCode::Failure })
        }
        Mode::Bench => {
            let mut ctx = ktest::Ctx::new(sys, config.bundle);
            let quick = config.config().get("bench_quick") == Some("1");
            let ok = bench::run(&mut ctx, quick);
            qemu::exit(if ok { qemu::ExitCode::Success } else { qemu::ExitCode::Failure })
        }
    }
}

/// The native services every platform provides: `sysinfo`, and `tcp`
/// when there is a network card. In `run` mode, and in `soak` mode when
/// the machine has a network card; the test modes count tasks and must
/// start from an empty system.
fn start_services(sys: &wasmos_sched::System, config: &boot_config::BootConfig) {
    if let Err(e) = sys.start_native(wasmos_ipc::sysinfo::SERVICE, 0, alloc::boxed::Box::new(wasmos_sched::SysInfo)) {
        log::error!("cannot start the sysinfo service: {}", e.name());
    }
    // `net.irq=off`: poll the card (the fallback), to compare or test.
    match net::start(sys, config.config().get("net.irq") != Some("off")) {
        Some(info) => {
            let m = info.mac;
            kprintln!(
                "  network  : virtio-net {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x} at PCI {}, {}/{}, tcp service on core {}",
                m[0],
                m[1],
                m[2],
                m[3],
                m[4],
                m[5],
                info.pci,
                info.ip.address,
                info.ip.prefix_len,
                net::NET_CORE
            );
            // xtask tells us which host port QEMU forwards to which of ours.
            if let Some((host, guest)) = config.config().get("net.hostfwd").and_then(|v| v.split_once(':')) {
                kprintln!("  web      : http://127.0.0.1:{host}/ on the host reaches port {guest} here");
            }
        }
        None => kprintln!("  network  : none (no virtio-net card)"),
    }
    start_storage(sys, config);
    kprintln!("");
}

/// The block service on the virtio-blk disk, if the machine has one, and
/// the file server (`fs`) on it.
fn start_storage(sys: &wasmos_sched::System, config: &boot_config::BootConfig) {
    let Some(disk) = blk::start(sys) else {
        kprintln!("  disk     : none (no virtio-blk disk; no fs service)");
        return;
    };
    let mib = (disk.sectors * wasmos_ipc::block::SECTOR as u64) >> 20;
    let ro = if disk.read_only { ", read-only" } else { "" };
    let fs = match config.bundle.and_then(|b| b.get(blk::FS_WASM)) {
        None => alloc::string::String::from("no fs.wasm in the bundle"),
        Some(wasm) => match blk::start_file_server(sys, wasm, disk.service, &[]) {
            Ok(_) => alloc::format!("file server fs on core {}", blk::BLK_CORE),
            Err(e) => alloc::format!("file server not started: {}", e.name()),
        },
    };
    kprintln!("  disk     : virtio-blk {mib} MiB{ro} at PCI {}, {fs}", disk.pci);
}

/// Touches an unmapped address on purpose so that the exception report can
/// be checked end to end by the test harness.
fn fault_demo() -> ! {
    // Canonical (bit 47 clear) and never mapped: a page fault, not a #GP.
    const UNMAPPED: u64 = 0x0000_00de_adbe_e000;
    log::info!("fault-demo: reading unmapped address {UNMAPPED:#x}");
    // SAFETY: deliberately unsound: this read must fault and the fault
    // handler must stop the machine with a report.
    let value = unsafe { core::ptr::read_volatile(UNMAPPED as *const u64) };
    panic!("fault-demo: read of an unmapped address returned {value:#x}")
}
