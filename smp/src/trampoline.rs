//! Application-processor start-up: the real-mode trampoline and the
//! INIT-SIPI-SIPI sequence.
//!
//! A STARTUP IPI makes an AP begin executing in 16-bit real mode at
//! `page << 12`, with CS = page << 8 and IP = 0. The code below takes it
//! to 64-bit long mode on the kernel's own page tables:
//!
//! 1. real mode: find our base from CS, load a tiny GDT, set CR0.PE;
//! 2. 32-bit protected mode: CR4.PAE, CR3 = kernel PML4, EFER.LME and
//!    EFER.NXE (the kernel's tables use the NX bit: without NXE those
//!    entries are malformed), then CR0.PG|WP; and SSE (CR4.OSFXSR and
//!    OSXMMEXCPT, CR0.MP set, EM and TS clear), because the kernel is
//!    compiled with SSE and the first Rust code below may use it;
//! 3. 64-bit mode: load the stack, argument and entry point the BSP left
//!    in the parameter block at the end of the page, and call the entry.
//!
//! The code is position-independent (it finds its base from CS), so the
//! kernel may put the page anywhere below 1 MiB. The page must be
//! identity-mapped while APs start, because the instruction after the one
//! that turns paging on is fetched at its physical address. CR3 is loaded
//! from 32-bit code, so the PML4 must be below 4 GiB (checked).
//!
//! APs start one at a time and share the page: the BSP waits for each AP to
//! report in before it rewrites the parameter block for the next.

use core::sync::atomic::{AtomicU32, Ordering};

use crate::{clock, lapic, percpu};

core::arch::global_asm!(
    r#"
    .pushsection .text.wasmos_ap_trampoline, "ax"
    .global wasmos_ap_trampoline_start
    .global wasmos_ap_trampoline_params
    .global wasmos_ap_trampoline_end
    .code16
wasmos_ap_trampoline_start:
    cli
    cld
    movw %cs, %ax
    movw %ax, %ds
    movw %ax, %ss
    movw $0x1000, %sp
    xorl %ebx, %ebx
    movw %ax, %bx
    shll $4, %ebx
    leal (2f - wasmos_ap_trampoline_start)(%ebx), %eax
    movl %eax, (3f - wasmos_ap_trampoline_start + 2)
    lgdtl (3f - wasmos_ap_trampoline_start)
    movl %cr0, %eax
    orl $1, %eax
    movl %eax, %cr0
    leal (4f - wasmos_ap_trampoline_start)(%ebx), %eax
    pushl $0x08
    pushl %eax
    lretl

    .code32
4:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    leal 0x1000(%ebx), %esp
    movl %cr4, %eax
    orl $((1 << 5) | (1 << 9) | (1 << 10)), %eax
    movl %eax, %cr4
    movl (wasmos_ap_trampoline_params - wasmos_ap_trampoline_start)(%ebx), %eax
    movl %eax, %cr3
    movl $0xC0000080, %ecx
    rdmsr
    orl $((1 << 8) | (1 << 11)), %eax
    wrmsr
    movl %cr0, %eax
    orl $((1 << 31) | (1 << 16) | (1 << 1)), %eax
    andl $~((1 << 2) | (1 << 3)), %eax
    movl %eax, %cr0
    leal (5f - wasmos_ap_trampoline_start)(%ebx), %eax
    pushl $0x18
    pushl %eax
    lretl

    .code64
5:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movl %ebx, %ebx
    movq (wasmos_ap_trampoline_params - wasmos_ap_trampoline_start + 8)(%rbx), %rsp
    movq (wasmos_ap_trampoline_params - wasmos_ap_trampoline_start + 24)(%rbx), %rdi
    movq (wasmos_ap_trampoline_params - wasmos_ap_trampoline_start + 16)(%rbx), %rax
    xorl %ebp, %ebp
    callq *%rax
    ud2

    .balign 8
2:
    .quad 0
    .quad 0x00CF9A000000FFFF
    .quad 0x00CF92000000FFFF
    .quad 0x00AF9A000000FFFF
3:
    .word 31
    .long 0
    .balign 8
wasmos_ap_trampoline_params:
    .quad 0
    .quad 0
    .quad 0
    .quad 0
wasmos_ap_trampoline_end:
    .popsection
    "#,
    options(att_syntax)
);

unsafe extern "C" {
    static wasmos_ap_trampoline_start: u8;
    static wasmos_ap_trampoline_params: u8;
    static wasmos_ap_trampoline_end: u8;
}

/// The parameter block at the end of the trampoline, as the assembly reads it.
#[repr(C)]
struct Params {
    cr3: u64,
    stack_top: u64,
    entry: u64,
    arg: u64,
}

/// The trampoline's bytes, to be copied to the start-up page.
fn code() -> &'static [u8] {
    // SAFETY: the three symbols delimit one contiguous block emitted by the
    // `global_asm!` above, in one section; the bytes are never written.
    unsafe {
        let start = &raw const wasmos_ap_trampoline_start;
        let end = &raw const wasmos_ap_trampoline_end;
        core::slice::from_raw_parts(start, end as usize - start as usize)
    }
}

fn params_offset() -> usize {
    (&raw const wasmos_ap_trampoline_params) as usize - (&raw const wasmos_ap_trampoline_start) as usize
}

/// What the kernel provides to start one AP.
pub struct ApBoot {
    /// Physical address of the start-up page (page-aligned, below 1 MiB,
    /// identity-mapped).
    pub page_phys: u64,
    /// Where the kernel can write that page.
    pub page_virt: *mut u8,
    /// Physical address of the PML4 the AP should use (below 4 GiB).
    pub cr3: u64,
    /// Top of the AP's kernel stack (16-byte aligned, guard page below).
    pub stack_top: u64,
    pub cpu_index: usize,
}

/// Why an AP did not come up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartError {
    PageNotLow,
    Cr3AboveFourGiB,
    /// The AP never reached 64-bit code.
    NoResponse,
    /// It reached 64-bit code but never declared itself online.
    NotOnline,
}

/// The kernel's per-AP entry point, called on the AP's own stack once it
/// runs 64-bit code with its per-CPU data installed.
static AP_MAIN: spin::Once<fn(usize) -> !> = spin::Once::new();
/// Index + 1 of the last AP that reached Rust (0 = none yet).
static ARRIVED: AtomicU32 = AtomicU32::new(0);

extern "C" fn ap_rust_entry(cpu_index: u64) -> ! {
    let cpu_index = cpu_index as usize;
    percpu::install(cpu_index);
    ARRIVED.store(cpu_index as u32 + 1, Ordering::Release);
    let main = AP_MAIN.get().expect("AP started without a kernel entry point");
    main(cpu_index)
}

/// Starts one AP and waits until it sets its `online` flag.
///
/// # Safety
/// `boot` must describe a free, identity-mapped, writable page below 1 MiB,
/// the active PML4 and a mapped stack; `ap_main` must never return.
pub unsafe fn start_ap(boot: &ApBoot, ap_main: fn(usize) -> !, timeout_ms: u64) -> Result<(), StartError> {
    if boot.page_phys >= 0x10_0000 || boot.page_phys & 0xFFF != 0 {
        return Err(StartError::PageNotLow);
    }
    if boot.cr3 >= 1 << 32 {
        return Err(StartError::Cr3AboveFourGiB);
    }
    AP_MAIN.call_once(|| ap_main);
    let code = code();
    let params = Params {
        cr3: boot.cr3,
        stack_top: boot.stack_top,
        entry: ap_rust_entry as *const () as u64,
        arg: boot.cpu_index as u64,
    };
    // SAFETY: the caller guarantees the page is ours and writable; the
    // code is shorter than a page (checked by the assert) and the
    // parameter block lies inside the copied code.
    unsafe {
        assert!(code.len() <= 0x800, "trampoline grew beyond half a page");
        core::ptr::copy_nonoverlapping(code.as_ptr(), boot.page_virt, code.len());
        core::ptr::write_volatile(boot.page_virt.add(params_offset()) as *mut Params, params);
    }
    ARRIVED.store(0, Ordering::Release);
    let target = &percpu::all()[boot.cpu_index];
    let arrived = || ARRIVED.load(Ordering::Acquire) == boot.cpu_index as u32 + 1;
    lapic::send_init_sipi_sipi(target.apic_id, (boot.page_phys >> 12) as u8, || !arrived());

    let deadline = clock::now_ns() + timeout_ms * 1_000_000;
    while !arrived() {
        if clock::now_ns() > deadline {
            return Err(StartError::NoResponse);
        }
        core::hint::spin_loop();
    }
    while !target.online.load(Ordering::Acquire) {
        if clock::now_ns() > deadline {
            return Err(StartError::NotOnline);
        }
        core::hint::spin_loop();
    }
    Ok(())
}
