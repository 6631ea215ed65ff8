//! Kernel side of multiprocessor start-up: hands the `wasmos-smp` crate the
//! memory it needs (APIC page, trampoline page, AP stacks), calibrates the
//! clocks, brings every AP online and gives each core its idle loop.

use core::sync::atomic::{AtomicU64, Ordering};

use bootloader_api::BootInfo;
use wasmos_smp::{clock, lapic, madt, percpu, pit, trampoline};
use x86_64::PhysAddr;
use x86_64::structures::paging::PhysFrame;

use crate::memory;

/// Periodic timer rate on every core, unless `boot.cfg` says otherwise
/// (`tick_hz`). 100 Hz keeps idle vCPUs cheap under TCG (8 vCPUs share 2
/// host cores in CI) and is plenty for sleeps and timeouts; preemption of
/// Wasm tasks is counted in fuel, not ticks. Devices do not depend on it:
/// they interrupt (`virtio::msix`), and the net-irq test slows the tick
/// to 1 Hz to show that.
pub const TIMER_HZ: u64 = 100;

/// Pages of kernel stack per AP (the Wasm interpreter recurses).
const AP_STACK_PAGES: u64 = 64;
/// Pages of each emergency (IST) stack.
pub const IST_STACK_PAGES: u64 = 4;
/// How long one AP may take to come up under TCG before we give up on it.
const AP_START_TIMEOUT_MS: u64 = 5_000;
/// Calibration window on the PIT.
const CALIBRATION_MS: u64 = 20;

/// The lowest mapped address of each core's kernel stack (0: not known).
/// Every one has an unmapped guard page right below it: the APs' stacks
/// come from `Memory::alloc_stack`, the BSP's from the bootloader, which
/// leaves a guard page below the kernel stack (bootloader 0.11); the
/// BSP's bottom is found by [`record_bsp_stack`].
static STACK_BOTTOM: [AtomicU64; wasmos_smp::MAX_CPUS] = [const { AtomicU64::new(0) }; wasmos_smp::MAX_CPUS];

/// Where core `core`'s kernel stack ends (its lowest mapped address).
pub fn stack_bottom(core: usize) -> Option<u64> {
    STACK_BOTTOM.get(core).map(|b| b.load(Ordering::Acquire)).filter(|&b| b != 0)
}

/// Finds the bottom of the BSP's stack: the lowest page of the mapped run
/// that holds the current stack pointer, at most `max_bytes` below it
/// (reads go through the fault-catching probe, so the IDT must be
/// loaded). Beyond `max_bytes` there is no guard page where the stack
/// should end, and nothing is recorded.
pub fn record_bsp_stack(max_bytes: u64) {
    let rsp: u64;
    // SAFETY: reads the stack pointer only.
    unsafe { core::arch::asm!("mov {}, rsp", out(reg) rsp, options(nomem, nostack, preserves_flags)) };
    let mut bottom = rsp & !(memory::PAGE_SIZE - 1);
    while rsp - bottom < max_bytes {
        if crate::interrupts::probe_read_u64(bottom - memory::PAGE_SIZE).is_err() {
            STACK_BOTTOM[0].store(bottom, Ordering::Release);
            return;
        }
        bottom -= memory::PAGE_SIZE;
    }
    log::warn!("no guard page found within {max_bytes} bytes below the BSP's stack pointer");
}

/// What start-up found and achieved, for the banner and the test harness.
pub struct SystemInfo {
    pub cpus_found: usize,
    pub cpus_online: usize,
    pub apic_mode: &'static str,
    pub tsc_hz: u64,
    pub lapic_hz: u64,
    pub tick_hz: u64,
    /// The MADT's I/O APICs and ISA overrides (console input's route).
    pub io_apics: alloc::vec::Vec<madt::IoApic>,
    pub overrides: alloc::vec::Vec<madt::IsaOverride>,
}

/// Brings up every processor in the MADT. Runs once, on the BSP, after
/// memory and the BSP's CPU tables are ready.
pub fn init(boot_info: &'static BootInfo, phys_offset: u64, tick_hz: u64) -> SystemInfo {
    let rsdp = boot_info.rsdp_addr.into_option().expect("bootloader found no ACPI RSDP");
    // SAFETY: the RSDP address comes from the firmware via the bootloader,
    // and all of physical memory is mapped at `phys_offset`.
    let topology =
        unsafe { madt::discover(rsdp, phys_offset) }.unwrap_or_else(|e| panic!("cannot read the ACPI MADT: {e:?}"));

    let apic_page = memory::with(|m| m.map_mmio(topology.lapic_phys, 4096))
        .unwrap_or_else(|e| panic!("cannot map the local APIC: {e:?}"));
    let mode = lapic::configure(apic_page.as_u64());
    pit::disable_legacy_pic();

    // Per-CPU data: the BSP first, then the others in MADT order.
    let bsp_id = {
        // The local APIC is not enabled yet (x2APIC mode is switched on by
        // `init_this_core`), so ask CPUID leaf 1 for the initial APIC ID:
        // 8 bits, enough for the BSP, which firmware always numbers low.
        let leaf1 = core::arch::x86_64::__cpuid(1);
        leaf1.ebx >> 24
    };
    let mut ids = alloc::vec![bsp_id];
    ids.extend(topology.cpus.iter().map(|c| c.apic_id).filter(|&id| id != bsp_id));
    ids.truncate(wasmos_smp::MAX_CPUS);
    percpu::init(&ids);
    lapic::init_this_core();

    let (tsc_hz, lapic_hz) = calibrate();
    clock::set_tsc_hz(tsc_hz);
    lapic::set_timer_initial(lapic::periodic_initial_count(lapic_hz, tick_hz));
    lapic::start_periodic_timer();
    percpu::current().online.store(true, Ordering::Release);
    x86_64::instructions::interrupts::enable();

    start_application_processors(ids.len());

    SystemInfo {
        cpus_found: topology.cpus.len(),
        cpus_online: percpu::online_count(),
        apic_mode: mode.name(),
        tsc_hz,
        lapic_hz,
        tick_hz,
        io_apics: topology.io_apics,
        overrides: topology.overrides,
    }
}

/// Measures the TSC and the APIC timer's input clock against the PIT.
fn calibrate() -> (u64, u64) {
    let mut tsc_start = 0;
    let mut tsc_end = 0;
    let mut apic_end = 0;
    x86_64::instructions::interrupts::without_interrupts(|| {
        pit::measure(
            CALIBRATION_MS,
            || {
                lapic::start_calibration_countdown();
                tsc_start = clock::rdtsc();
            },
            || {
                apic_end = lapic::timer_current();
                tsc_end = clock::rdtsc();
            },
        )
    });
    let tsc_hz = pit::rate_hz(tsc_end - tsc_start, CALIBRATION_MS);
    let lapic_ticks = (u32::MAX - apic_end) as u64 * lapic::TIMER_DIVISOR;
    (tsc_hz, pit::rate_hz(lapic_ticks, CALIBRATION_MS))
}

/// A steadier TSC frequency for the bench mode: the median of `windows`
/// 50 ms measurements against the PIT. Under TCG on a busy host the vCPU
/// can be descheduled inside one 20 ms window (the boot calibration),
/// which inflates that one; the median of several is robust to it.
pub fn calibrate_tsc_median(windows: usize) -> u64 {
    const WINDOW_MS: u64 = 50;
    let mut rates: alloc::vec::Vec<u64> = (0..windows.max(1))
        .map(|_| {
            let (mut start, mut end) = (0, 0);
            x86_64::instructions::interrupts::without_interrupts(|| {
                pit::measure(WINDOW_MS, || start = clock::rdtsc(), || end = clock::rdtsc())
            });
            pit::rate_hz(end - start, WINDOW_MS)
        })
        .collect();
    rates.sort_unstable();
    rates[rates.len() / 2]
}

fn start_application_processors(count: usize) {
    if count <= 1 {
        return;
    }
    let (page, cr3) = memory::with(|m| {
        let frame = m.frames.alloc_contiguous(1, 0x10_0000).expect("no free page below 1 MiB for the AP trampoline");
        m.identity_map(frame).expect("cannot identity-map the AP trampoline");
        (frame, m.cr3())
    });
    let page_phys = page.start_address().as_u64();
    for (cpu_index, bottom) in STACK_BOTTOM.iter().enumerate().take(count).skip(1) {
        let stack = memory::with(|m| m.alloc_stack(AP_STACK_PAGES)).expect("out of memory for AP stacks");
        bottom.store(stack.bottom.as_u64(), Ordering::Release);
        let boot = trampoline::ApBoot {
            page_phys,
            page_virt: memory::phys_to_virt(page_phys).as_mut_ptr(),
            cr3,
            stack_top: stack.top.as_u64(),
            cpu_index,
        };
        // SAFETY: the page is ours, below 1 MiB and identity-mapped; CR3 is
        // the live kernel PML4; the stack is freshly mapped; `ap_main`
        // never returns.
        match unsafe { trampoline::start_ap(&boot, ap_main, AP_START_TIMEOUT_MS) } {
            Ok(()) => {}
            Err(e) => log::error!("cpu{cpu_index} (APIC ID {}) did not start: {e:?}", percpu::all()[cpu_index].apic_id),
        }
    }
    // Every AP is past the trampoline: take the identity mapping away so
    // that a stray null-ish pointer faults instead of hitting code.
    memory::with(|m| m.remove_identity_map(PhysFrame::<_>::containing_address(PhysAddr::new(page_phys))));
}

/// Where every AP lands, on its own stack, with per-CPU data installed.
fn ap_main(cpu_index: usize) -> ! {
    crate::cpu::init_this_core(cpu_index);
    lapic::init_this_core();
    lapic::start_periodic_timer();
    percpu::current().online.store(true, Ordering::Release);
    log::debug!("online");
    x86_64::instructions::interrupts::enable();
    crate::tasks::core_loop(cpu_index)
}

/// Stops every other core (NMI); used on the way to a fatal stop.
pub fn stop_other_cores() {
    lapic::send_nmi_to_others();
}

/// Nanoseconds since the clocks were calibrated.
pub fn now_ns() -> u64 {
    clock::now_ns()
}
