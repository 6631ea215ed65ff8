//! Per-core CPU tables: each core gets its own GDT and TSS.
//!
//! Why per core: the TSS holds the interrupt stack table (IST), and two
//! cores taking a double fault at once must not share one emergency stack.
//! The GDT must point at that core's TSS, so it is per core too. Both are
//! leaked heap allocations: they live as long as the core does (forever).
//!
//! The double-fault handler runs on IST1, a dedicated stack with a guard
//! page, so a kernel stack overflow (which faults while pushing the
//! page-fault frame onto the exhausted stack) still ends in a readable
//! report instead of a triple fault.
//!
//! The GDT also holds ring-3 segments for the native tasks of the
//! benchmark baseline (`ring3/`), in the order SYSRET needs: it loads
//! SS from STAR[63:48] + 8 and CS from STAR[63:48] + 16, so user data
//! must come right before user code. An interrupt that arrives while a
//! core runs ring-3 code switches to the TSS's RSP0 stack.
//!
//! SSE: the kernel is compiled for `kernel/x86_64-wasmos-kernel.json`,
//! a hard-float target with SSE2 (see ARCHITECTURE.md, "The kernel
//! target"), so any Rust code may use XMM registers. [`enable_sse`] makes
//! that legal and runs on every core before its first Rust code: on the
//! BSP first thing in `kmain`, on the APs in the trampoline's own
//! assembly (`wasmos_smp::trampoline`), and again, harmlessly, in
//! [`init_this_core`]. Who saves the XMM state where: `interrupts.rs`
//! (every interrupt and exception) and `ring3/entry.rs` (ring 3).

use alloc::boxed::Box;
use x86_64::VirtAddr;
use x86_64::instructions::segmentation::{CS, DS, ES, SS, Segment};
use x86_64::instructions::tables::load_tss;
use x86_64::registers::model_specific::GsBase;
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable, SegmentSelector};
use x86_64::structures::tss::TaskStateSegment;

/// IST slot (1-based in the IDT, 0-based in the TSS) of the double-fault stack.
pub const DOUBLE_FAULT_IST: u16 = 1;
/// IST slot used for NMIs, which may arrive on any stack at any time.
pub const NMI_IST: u16 = 2;

/// Selectors are identical on every core because every GDT has the same layout.
#[derive(Clone, Copy, Debug)]
pub struct Selectors {
    pub kernel_code: SegmentSelector,
    pub kernel_data: SegmentSelector,
    /// Ring-3 selectors (RPL 3), for SYSRET (see the module comment).
    pub user_data: SegmentSelector,
    pub user_code: SegmentSelector,
}

/// Builds and loads this core's GDT and TSS. The stacks are the tops of
/// the emergency stacks (double fault, NMI) and of the stack interrupts
/// from ring 3 arrive on, already mapped with guard pages.
pub fn load_tables(double_fault_stack: VirtAddr, nmi_stack: VirtAddr, ring3_interrupt_stack: VirtAddr) -> Selectors {
    let mut tss = Box::new(TaskStateSegment::new());
    tss.interrupt_stack_table[(DOUBLE_FAULT_IST - 1) as usize] = double_fault_stack;
    tss.interrupt_stack_table[(NMI_IST - 1) as usize] = nmi_stack;
    tss.privilege_stack_table[0] = ring3_interrupt_stack;
    let tss: &'static TaskStateSegment = Box::leak(tss);

    let mut gdt = Box::new(GlobalDescriptorTable::new());
    let kernel_code = gdt.append(Descriptor::kernel_code_segment());
    let kernel_data = gdt.append(Descriptor::kernel_data_segment());
    let user_data = gdt.append(Descriptor::user_data_segment());
    let user_code = gdt.append(Descriptor::user_code_segment());
    let tss_sel = gdt.append(Descriptor::tss_segment(tss));
    let gdt: &'static GlobalDescriptorTable = Box::leak(gdt);
    gdt.load();

    // SAFETY: the selectors index descriptors of the GDT just loaded, which
    // is 'static; reloading CS/SS/DS/ES with them keeps the current
    // privilege level (0) and flat 64-bit segments.
    unsafe {
        CS::set_reg(kernel_code);
        SS::set_reg(kernel_data);
        DS::set_reg(kernel_data);
        ES::set_reg(kernel_data);
        load_tss(tss_sel);
    }
    Selectors { kernel_code, kernel_data, user_data, user_code }
}

const CR0_MP: u64 = 1 << 1;
const CR0_EM: u64 = 1 << 2;
const CR0_TS: u64 = 1 << 3;
const CR4_OSFXSR: u64 = 1 << 9;
const CR4_OSXMMEXCPT: u64 = 1 << 10;
/// MXCSR at reset: every SIMD floating-point exception masked, round to
/// nearest, no flush-to-zero: what Wasm's float semantics expect.
const MXCSR_DEFAULT: u32 = 0x1F80;

/// Turns SSE on for this core: CR0.EM clear (no x87 emulation trap),
/// CR0.MP set (WAIT honours TS), CR0.TS clear (no lazy-switch trap: the
/// kernel saves state eagerly where it must), CR4.OSFXSR (FXSAVE/FXRSTOR
/// and SSE instructions allowed), CR4.OSXMMEXCPT (an unmasked SIMD
/// exception is #XM, not #UD); then a clean x87 state and the default
/// MXCSR. Always inlined and written in assembly only, so that the code
/// calling it has no SSE instruction before it (`kmain`).
#[inline(always)]
pub fn enable_sse() {
    // SAFETY: only CR0.EM/MP/TS and CR4.OSFXSR/OSXMMEXCPT change, which
    // enables instructions and touches no memory but the stack slot MXCSR
    // is loaded from; paging, protection and caching bits are kept.
    unsafe {
        core::arch::asm!(
            "mov {t}, cr0",
            "and {t}, {clear0}",
            "or {t}, {set0}",
            "mov cr0, {t}",
            "mov {t}, cr4",
            "or {t}, {set4}",
            "mov cr4, {t}",
            "fninit",
            "push {mxcsr}",
            "ldmxcsr [rsp]",
            "add rsp, 8",
            t = out(reg) _,
            clear0 = const !(CR0_EM | CR0_TS) as i64,
            set0 = const CR0_MP,
            set4 = const CR4_OSFXSR | CR4_OSXMMEXCPT,
            mxcsr = const MXCSR_DEFAULT as u64,
        );
    }
}

/// Whether SSE is on for this core as [`enable_sse`] leaves it.
pub fn sse_enabled() -> bool {
    let (cr0, cr4): (u64, u64);
    // SAFETY: reading CR0 and CR4 has no side effect.
    unsafe {
        core::arch::asm!("mov {}, cr0", "mov {}, cr4", out(reg) cr0, out(reg) cr4, options(nomem, nostack, preserves_flags))
    };
    cr0 & (CR0_EM | CR0_TS) == 0
        && cr0 & CR0_MP != 0
        && cr4 & (CR4_OSFXSR | CR4_OSXMMEXCPT) == CR4_OSFXSR | CR4_OSXMMEXCPT
}

/// Index of the executing core (0 = bootstrap processor). Safe to call at
/// any time: before per-CPU data is set up (GS base still 0) it answers 0,
/// which is right because only the BSP runs that early.
pub fn current_index() -> u32 {
    if GsBase::read().as_u64() == 0 { 0 } else { wasmos_smp::percpu::current().cpu_index }
}

/// Stops this core for good, with interrupts off.
pub fn halt_forever() -> ! {
    loop {
        x86_64::instructions::interrupts::disable();
        x86_64::instructions::hlt();
    }
}

/// Gives the calling core its GDT, TSS (with fresh emergency stacks) and
/// the shared IDT. Runs once per core: on the BSP right after memory is up,
/// on each AP first thing after the trampoline.
pub fn init_this_core(cpu_index: usize) {
    enable_sse();
    let (double_fault, nmi, ring3) = crate::memory::with(|m| {
        let df = m.alloc_stack(crate::smp::IST_STACK_PAGES);
        let nmi = m.alloc_stack(crate::smp::IST_STACK_PAGES);
        let ring3 = m.alloc_stack(RING3_INTERRUPT_STACK_PAGES);
        (df, nmi, ring3)
    });
    let double_fault = double_fault.unwrap_or_else(|e| panic!("cpu{cpu_index}: no double-fault stack: {e:?}"));
    let nmi = nmi.unwrap_or_else(|e| panic!("cpu{cpu_index}: no NMI stack: {e:?}"));
    let ring3 = ring3.unwrap_or_else(|e| panic!("cpu{cpu_index}: no ring-3 interrupt stack: {e:?}"));
    let selectors = load_tables(double_fault.top, nmi.top, ring3.top);
    crate::interrupts::load_idt(selectors.kernel_code.0);
    crate::ring3::init_this_core(selectors);
}

/// Pages of the stack that interrupts taken in ring 3 run on (RSP0). The
/// handlers are the same short ones as in ring 0 (timer, IPI), and they
/// never switch tasks, so one such stack per core is enough.
const RING3_INTERRUPT_STACK_PAGES: u64 = 8;
