//! The interrupt descriptor table, the entry stubs, and the dispatcher.
//!
//! `extern "x86-interrupt"` is unstable, so the entry path is written in
//! assembly: 256 tiny stubs, each 16 bytes apart, push a dummy error code
//! (for vectors where the CPU pushes none) and the vector number, then jump
//! to one common routine that saves every general-purpose register into a
//! [`TrapFrame`] and calls [`interrupt_dispatch`] with a pointer to it.
//! One uniform frame layout for every vector keeps the dispatcher a plain
//! `match` and lets the exception reporter print all registers.
//!
//! Exceptions are fatal, except where the faulting instruction is listed in
//! the fixup table (see [`probe_read_u64`]): there the handler records the
//! fault and resumes at a recovery address. That is the same idea as Linux's
//! exception tables, and it lets in-kernel tests check that a real page fault
//! is delivered and decoded correctly without taking the kernel down.

use core::arch::{global_asm, naked_asm};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use x86_64::VirtAddr;
use x86_64::instructions::tables::lidt;
use x86_64::registers::control::Cr2;
use x86_64::structures::DescriptorTablePointer;

use crate::cpu::{DOUBLE_FAULT_IST, NMI_IST};
use wasmos_smp::vectors;

/// Registers saved by the entry path, lowest address first.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct TrapFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    pub vector: u64,
    pub error_code: u64,
    // Pushed by the CPU.
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

// The stubs. Vectors 8, 10-14, 17, 21, 29 and 30 get an error code from
// the CPU; every other vector gets a 0 pushed so that the frame has one
// shape. Each stub is padded to 16 bytes, so stub n lives at
// `wasmos_isr_stubs + 16 * n` and no address table is needed.
global_asm!(
    r#"
    .section .text.wasmos_isr, "ax"
    .balign 16
    .global wasmos_isr_stubs
wasmos_isr_stubs:
    .set vec, 0
    .rept 256
        .balign 16
        .if (vec == 8) || ((vec >= 10) && (vec <= 14)) || (vec == 17) || (vec == 21) || (vec == 29) || (vec == 30)
        .else
            pushq $0
        .endif
        pushq $vec
        jmp {common}
        .set vec, vec + 1
    .endr
    "#,
    common = sym interrupt_common,
    options(att_syntax)
);

/// Saves the registers, calls the dispatcher, restores them, returns.
///
/// The CPU aligns RSP to 16 bytes before pushing its 5-word frame; with
/// the 2 words of the stub and the 15 registers saved here the total is
/// 22 words, so RSP is 16-byte aligned for FXSAVE's 512-byte area below
/// them and at the `call` as the ABI requires.
///
/// The FPU/SSE state (x87, MMX, XMM0-15, MXCSR) is saved with `fxsave64`
/// before the dispatcher runs and restored with `fxrstor64` after it.
/// Why save rather than compile the handlers without SSE: the kernel is
/// built for a hard-float target, so the interrupted code, kernel code
/// as much as a ring-3 task, may have live values in XMM registers
/// (wasmi's handlers keep the Wasm float accumulators there), and an
/// interrupt may arrive between any two instructions. Rust has no stable
/// way to forbid SSE in one function and everything it calls (the
/// dispatcher calls into `wasmos_smp`, `log` and the formatting code,
/// all of which may use XMM registers for copies), so "handlers do not
/// touch SSE" could not be guaranteed, only hoped for. Saving is cheap
/// next to an interrupt's own cost, and handlers never switch tasks (the
/// timer only counts; preemption of Wasm tasks is by fuel), so the state
/// goes back to exactly the code it was taken from. No XSAVE: the kernel
/// enables no AVX state (CR4.OSXSAVE stays clear), so FXSAVE covers
/// every register the CPU lets anyone use.
///
/// An interrupt from ring 3 (a native benchmark task, `ring3/`) arrives
/// with the user's GS base loaded: `swapgs` puts the kernel's per-CPU GS
/// base back on the way in and the user's on the way out. The test is on
/// the RPL bits of the interrupted CS, at `[rsp + 24]` right after the
/// stub's two pushes (vector, error code, then the CPU's RIP, CS...).
///
/// # Safety
/// Never called from Rust: only the per-vector stubs jump here, with the
/// CPU's interrupt frame and the stub's vector and error code on the stack.
#[unsafe(naked)]
unsafe extern "C" fn interrupt_common() {
    naked_asm!(
        "test byte ptr [rsp + 24], 3",
        "jz 2f",
        "swapgs",
        "2:",
        "push rax", "push rbx", "push rcx", "push rdx", "push rsi", "push rdi", "push rbp",
        "push r8", "push r9", "push r10", "push r11", "push r12", "push r13", "push r14", "push r15",
        "mov rdi, rsp",
        "sub rsp, {fx}",
        "fxsave64 [rsp]",
        "cld",
        "call {dispatch}",
        "fxrstor64 [rsp]",
        "add rsp, {fx}",
        "pop r15", "pop r14", "pop r13", "pop r12", "pop r11", "pop r10", "pop r9", "pop r8",
        "pop rbp", "pop rdi", "pop rsi", "pop rdx", "pop rcx", "pop rbx", "pop rax",
        "test byte ptr [rsp + 24], 3",
        "jz 3f",
        "swapgs",
        "3:",
        // Drop the vector number and the error code.
        "add rsp, 16",
        "iretq",
        dispatch = sym interrupt_dispatch,
        fx = const FXSAVE_BYTES,
    )
}

/// Size of the FXSAVE area (16-byte aligned).
const FXSAVE_BYTES: usize = 512;

unsafe extern "C" {
    static wasmos_isr_stubs: u8;
}

/// One 16-byte IDT gate.
#[derive(Clone, Copy)]
#[repr(C, align(16))]
struct Gate(u128);

impl Gate {
    const MISSING: Gate = Gate(0);

    fn interrupt(handler: u64, code_selector: u16, ist: u16) -> Gate {
        const PRESENT_INTERRUPT_GATE_DPL0: u128 = 0x8E;
        let h = handler as u128;
        Gate(
            (h & 0xFFFF)
                | ((code_selector as u128) << 16)
                | (((ist & 0x7) as u128) << 32)
                | (PRESENT_INTERRUPT_GATE_DPL0 << 40)
                | (((h >> 16) & 0xFFFF) << 48)
                | ((h >> 32) << 64),
        )
    }
}

#[repr(C, align(16))]
struct Idt([Gate; 256]);

static IDT: spin::Once<Idt> = spin::Once::new();

/// Builds the shared IDT (once) and loads it on the calling core. Every
/// core uses the same table; what differs per core (IST stacks) lives in
/// each core's TSS.
pub fn load_idt(kernel_code_selector: u16) {
    let idt = IDT.call_once(|| {
        let base = &raw const wasmos_isr_stubs as u64;
        let mut gates = [Gate::MISSING; 256];
        for (vector, gate) in gates.iter_mut().enumerate() {
            let ist = match vector {
                8 => DOUBLE_FAULT_IST,
                2 => NMI_IST,
                _ => 0,
            };
            *gate = Gate::interrupt(base + 16 * vector as u64, kernel_code_selector, ist);
        }
        Idt(gates)
    });
    let ptr = DescriptorTablePointer { limit: (core::mem::size_of::<Idt>() - 1) as u16, base: VirtAddr::from_ptr(idt) };
    // SAFETY: the IDT is 'static and every gate points at a stub above.
    unsafe { lidt(&ptr) };
}

const EXCEPTION_NAMES: [(&str, &str); 32] = [
    ("#DE", "Divide Error"),
    ("#DB", "Debug"),
    ("NMI", "Non-Maskable Interrupt"),
    ("#BP", "Breakpoint"),
    ("#OF", "Overflow"),
    ("#BR", "Bound Range Exceeded"),
    ("#UD", "Invalid Opcode"),
    ("#NM", "Device Not Available"),
    ("#DF", "Double Fault"),
    ("#09", "Coprocessor Segment Overrun"),
    ("#TS", "Invalid TSS"),
    ("#NP", "Segment Not Present"),
    ("#SS", "Stack-Segment Fault"),
    ("#GP", "General Protection"),
    ("#PF", "Page Fault"),
    ("#15", "Reserved"),
    ("#MF", "x87 Floating-Point"),
    ("#AC", "Alignment Check"),
    ("#MC", "Machine Check"),
    ("#XM", "SIMD Floating-Point"),
    ("#VE", "Virtualization"),
    ("#CP", "Control Protection"),
    ("#22", "Reserved"),
    ("#23", "Reserved"),
    ("#24", "Reserved"),
    ("#25", "Reserved"),
    ("#26", "Reserved"),
    ("#27", "Reserved"),
    ("#HV", "Hypervisor Injection"),
    ("#VC", "VMM Communication"),
    ("#SX", "Security"),
    ("#31", "Reserved"),
];

/// Short mnemonic and name of an exception vector.
pub fn exception_name(vector: u8) -> (&'static str, &'static str) {
    EXCEPTION_NAMES.get(vector as usize).copied().unwrap_or(("IRQ", "External interrupt"))
}

/// A fault caught by the fixup table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CaughtFault {
    pub vector: u8,
    pub error_code: u64,
    /// CR2 for page faults, 0 otherwise.
    pub address: u64,
}

// The last fault caught by a probe on each core is handed from the handler
// to `probe_read_u64` through these; a probe runs with interrupts disabled,
// so only its own fault can write them before it reads them back.
static PROBE_FAULT: [AtomicU64; 3 * wasmos_smp::MAX_CPUS] = [const { AtomicU64::new(0) }; 3 * wasmos_smp::MAX_CPUS];

/// Reads a u64 from `addr`, catching the fault if the address is not
/// readable instead of taking the kernel down.
pub fn probe_read_u64(addr: u64) -> Result<u64, CaughtFault> {
    let mut value = 0u64;
    let faulted = x86_64::instructions::interrupts::without_interrupts(|| {
        // SAFETY: `probe_read_raw` only reads `addr`; if the read faults,
        // the page-fault handler sees its RIP in the fixup table and
        // resumes at the fixup label, which returns 1.
        unsafe { probe_read_raw(addr, &mut value) }
    });
    if faulted == 0 {
        Ok(value)
    } else {
        let base = 3 * crate::cpu::current_index() as usize;
        Err(CaughtFault {
            vector: PROBE_FAULT[base].load(Ordering::Relaxed) as u8,
            error_code: PROBE_FAULT[base + 1].load(Ordering::Relaxed),
            address: PROBE_FAULT[base + 2].load(Ordering::Relaxed),
        })
    }
}

/// Reads `[addr]` into `*out` and returns 0, or returns 1 if the read
/// faulted (the page-fault handler resumes at the fixup label).
///
/// # Safety
/// `out` must be valid for a write; interrupts must be disabled, so that
/// only this read's fault can be recorded in `PROBE_FAULT` for this core.
#[unsafe(naked)]
unsafe extern "C" fn probe_read_raw(addr: u64, out: *mut u64) -> u64 {
    naked_asm!(
        ".global wasmos_probe_insn",
        "wasmos_probe_insn:",
        "mov rax, [rdi]",
        "mov [rsi], rax",
        "xor eax, eax",
        "ret",
        ".global wasmos_probe_fixup",
        "wasmos_probe_fixup:",
        "mov eax, 1",
        "ret",
    )
}

unsafe extern "C" {
    static wasmos_probe_insn: u8;
    static wasmos_probe_fixup: u8;
}

/// If the fault happened at an instruction listed in the fixup table,
/// redirect the frame to its recovery address and report true.
fn try_fixup(frame: &mut TrapFrame, address: u64) -> bool {
    if frame.rip != &raw const wasmos_probe_insn as u64 {
        return false;
    }
    let base = 3 * crate::cpu::current_index() as usize;
    PROBE_FAULT[base].store(frame.vector, Ordering::Relaxed);
    PROBE_FAULT[base + 1].store(frame.error_code, Ordering::Relaxed);
    PROBE_FAULT[base + 2].store(address, Ordering::Relaxed);
    frame.rip = &raw const wasmos_probe_fixup as u64;
    true
}

// Device interrupts (MSI-X, `virtio::msix`) do nothing but ring their
// driver's doorbell and acknowledge: the driver runs as a native service
// in its core's scheduler loop, which the interrupt woke from `hlt`, never
// in interrupt context and never inside a Wasm slice.
static DOORBELLS: [AtomicBool; vectors::DEVICE_COUNT as usize] =
    [const { AtomicBool::new(false) }; vectors::DEVICE_COUNT as usize];

/// The doorbell that device vector `vector` rings (a driver hands it to
/// the scheduler as its `NativeService::doorbell`).
pub fn doorbell(vector: u8) -> &'static AtomicBool {
    &DOORBELLS[vector.wrapping_sub(vectors::DEVICE_FIRST) as usize]
}

extern "C" fn interrupt_dispatch(frame: &mut TrapFrame) {
    let vector = frame.vector as u8;
    match vector {
        2 => {
            // NMIs are how a panicking core stops the others (see
            // `panic::stop_other_cores`): park this core for good.
            crate::cpu::halt_forever();
        }
        0..=31 => {
            let address = if vector == 14 { Cr2::read_raw() } else { 0 };
            if try_fixup(frame, address) {
                return;
            }
            fatal_exception(frame, address);
        }
        vectors::SPURIOUS => {
            // Spurious interrupts must not be acknowledged.
        }
        vectors::TIMER => {
            wasmos_smp::on_timer_tick();
            crate::console::on_tick();
            wasmos_smp::lapic::eoi();
        }
        vectors::IPI => {
            wasmos_smp::on_ipi();
            wasmos_smp::lapic::eoi();
        }
        vectors::CONSOLE => {
            crate::console::on_input_interrupt();
            wasmos_smp::lapic::eoi();
        }
        v if (vectors::DEVICE_FIRST..vectors::DEVICE_FIRST + vectors::DEVICE_COUNT).contains(&v) => {
            doorbell(v).store(true, Ordering::Release);
            wasmos_smp::lapic::eoi();
        }
        other => {
            log::warn!("unexpected interrupt vector {other:#x}");
            wasmos_smp::lapic::eoi();
        }
    }
}

/// Prints everything we know about an exception and stops the machine.
fn fatal_exception(frame: &TrapFrame, address: u64) -> ! {
    let (short, name) = exception_name(frame.vector as u8);
    let cpu = crate::cpu::current_index();
    let f = frame;
    crate::console::emergency_log(format_args!(
        "\nEXCEPTION {short} (vector {}, {name}) on cpu {cpu}\n\
         \x20 error code: {:#x}\n\
         \x20 RIP={:#018x} CS={:#x} RFLAGS={:#x}\n\
         \x20 RSP={:#018x} SS={:#x}\n\
         \x20 CR2={:#018x}\n\
         \x20 RAX={:#018x} RBX={:#018x} RCX={:#018x} RDX={:#018x}\n\
         \x20 RSI={:#018x} RDI={:#018x} RBP={:#018x} R8 ={:#018x}\n\
         \x20 R9 ={:#018x} R10={:#018x} R11={:#018x} R12={:#018x}\n\
         \x20 R13={:#018x} R14={:#018x} R15={:#018x}\n",
        f.vector,
        f.error_code,
        f.rip,
        f.cs,
        f.rflags,
        f.rsp,
        f.ss,
        address,
        f.rax,
        f.rbx,
        f.rcx,
        f.rdx,
        f.rsi,
        f.rdi,
        f.rbp,
        f.r8,
        f.r9,
        f.r10,
        f.r11,
        f.r12,
        f.r13,
        f.r14,
        f.r15,
    ));
    print_backtrace(f.rbp);
    crate::panic::fatal(format_args!(
        "EXCEPTION {short} vector {} error={:#x} RIP={:#x} CR2={:#x} cpu={cpu}",
        f.vector, f.error_code, f.rip, address
    ))
}

/// Prints the return addresses found by walking the frame-pointer chain
/// from `rbp` (the kernel is built with frame pointers). Every read goes
/// through the fault-catching probe, so a corrupt chain ends the walk
/// instead of faulting again. Resolve with
/// `addr2line -e target/x86_64-wasmos-kernel/<profile>/wasmos-kernel`
/// after subtracting the kernel's load offset (0x10000000000 under QEMU).
fn print_backtrace(mut rbp: u64) {
    crate::console::emergency_log(format_args!("  backtrace:"));
    for _ in 0..32 {
        if rbp == 0 || !rbp.is_multiple_of(8) {
            break;
        }
        let (Ok(next), Ok(ret)) = (probe_read_u64(rbp), probe_read_u64(rbp + 8)) else { break };
        crate::console::emergency_log(format_args!(" {ret:#x}"));
        if next <= rbp {
            break;
        }
        rbp = next;
    }
    crate::console::emergency_log(format_args!("\n"));
}
