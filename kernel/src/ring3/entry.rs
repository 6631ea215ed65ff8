//! Ring 0 <-> ring 3: the SYSCALL/SYSRET set-up, the system-call entry
//! stub, and the way into (and back out of) user mode.
//!
//! The model is seL4's: one kernel stack per core, no kernel stack per
//! task. A task's user registers live in its [`Regs`]; the entry stub
//! pushes them straight into the running task's `Regs` (RSP is pointed at
//! the end of that record), then switches to the core's kernel stack and
//! calls [`super::scheduler::dispatch`], which returns the `Regs` of the task
//! to resume: the same one, or another after a context switch (the
//! scheduler has reloaded CR3 by then). Null means "no task left on this
//! core": the stub then returns to the kernel code that called
//! [`enter_user`].
//!
//! System-call ABI (like the Linux one, with fewer registers kept):
//! `rax` = number, `rdi`, `rsi`, `rdx` = arguments; results in `rax` and
//! `rdx`. `rbx`, `rbp`, `r12`-`r15` and `rsp` are preserved; every other
//! register may be clobbered (SYSCALL itself clobbers `rcx` and `r11`).
//! So a context switch saves and restores exactly the callee-saved
//! registers, the stack pointer, RIP and RFLAGS, and the result registers.
//!
//! FPU/SSE state. The kernel is compiled with SSE (a hard-float target),
//! so the Rust code a system call runs may overwrite XMM registers. The
//! system-call ABI treats the XMM registers as the SysV ABI treats them
//! across a call: not preserved. On every way back to ring 3
//! ([`resume_user`]) XMM0-15 are zeroed, so no value of the kernel's, of a
//! Wasm task's or of another native task's reaches the task. Because
//! native tasks are switched only inside system calls (never preempted),
//! nothing else of their SSE state needs saving on a switch: whatever a
//! task had in XMM registers it gave up at its system call. The x87/MMX
//! state and MXCSR's control bits are not touched by the kernel at all
//! (the target disables MMX, x87 is never generated, and Rust never
//! writes MXCSR). Interrupts taken in ring 3 save and restore the whole
//! FXSAVE state (`interrupts.rs`), so asynchronous entries preserve
//! everything. The programs (`programs.rs`) use no SSE; a native task
//! that kept SSE values across system calls would need an FXSAVE area in
//! its `Task` and a save at entry, which the baseline does not pay for
//! because it does not need it (as seL4 switches FPU state lazily, only
//! for tasks that use it).
//!
//! Per-core words the stub needs before it has a stack sit in the per-CPU
//! data, reached through GS after `swapgs` ([`wasmos_smp::percpu::PerCpu::kernel_words`]).

use core::arch::naked_asm;
use core::mem::offset_of;
use core::sync::atomic::Ordering;

use wasmos_smp::percpu::{self, PerCpu};
use x86_64::VirtAddr;
use x86_64::registers::model_specific::{Efer, EferFlags, KernelGsBase, LStar, SFMask, Star};
use x86_64::registers::rflags::RFlags;

use crate::cpu::Selectors;

const WORDS: usize = offset_of!(PerCpu, kernel_words);
/// gs:[USER_RSP]: the user stack pointer, parked while the stub saves it.
const USER_RSP: usize = WORDS;
/// gs:[REGS_TOP]: one past the end of the running task's saved registers.
const REGS_TOP_WORD: usize = 1;
const REGS_TOP: usize = WORDS + 8 * REGS_TOP_WORD;
/// gs:[KERNEL_RSP]: where system calls run: the stack of the kernel code
/// that entered user mode, below what [`enter_user`] saved there.
const KERNEL_RSP: usize = WORDS + 16;

/// A task's user-mode registers while it is not running, in the order the
/// entry stub pushes them (lowest address first). `rax`..`rdx` carry a
/// system call's results (or a new task's arguments) back to user mode.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct Regs {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub rbx: u64,
    pub rbp: u64,
    pub rflags: u64,
    pub rip: u64,
    pub rsp: u64,
    pub rax: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
}

// The stub pushes exactly the nine words below `rax` and reads the four
// from `rax` on; keep the layout and the assembly in step.
const _: () = assert!(offset_of!(Regs, rsp) == 64 && offset_of!(Regs, rax) == 72 && offset_of!(Regs, rdx) == 96);

/// Makes `regs` the registers the next system call on this core saves
/// into. Interrupts must be off (the running task and this word change
/// together).
pub fn set_current(regs: &mut Regs) {
    let top = &raw mut regs.rax as u64;
    percpu::current().kernel_words[REGS_TOP_WORD].store(top, Ordering::Relaxed);
}

/// RFLAGS of a task when it starts: interrupts on (bit 1 is reserved, always set).
pub const USER_RFLAGS: u64 = 0x202;

/// Sets up SYSCALL/SYSRET on the calling core: EFER.SCE, STAR with the
/// GDT's selectors, LSTAR at the entry stub, FMASK clearing IF (the
/// kernel runs system calls with interrupts off, as seL4 does), TF, DF and
/// AC; and a null user GS base for the first `swapgs`.
pub fn init_this_core(selectors: Selectors) {
    Star::write(selectors.user_code, selectors.user_data, selectors.kernel_code, selectors.kernel_data)
        .expect("the GDT has the segment order SYSRET needs");
    LStar::write(VirtAddr::new(syscall_entry as *const () as u64));
    SFMask::write(
        RFlags::INTERRUPT_FLAG
            | RFlags::TRAP_FLAG
            | RFlags::DIRECTION_FLAG
            | RFlags::ALIGNMENT_CHECK
            | RFlags::NESTED_TASK,
    );
    KernelGsBase::write(VirtAddr::zero());
    // SAFETY: turning on SYSCALL/SYSRET; LSTAR, STAR and FMASK are set
    // above, so a SYSCALL from ring 3 lands in the entry stub.
    unsafe { Efer::update(|f| f.insert(EferFlags::SYSTEM_CALL_EXTENSIONS)) };
}

/// Runs `regs`' task in ring 3 until this core has no native task left.
/// Call with interrupts disabled; they are still disabled on return.
///
/// # Safety
/// `regs` must be the registers of a task whose address space is loaded
/// in CR3, made current with [`set_current`], with a canonical user RIP.
pub unsafe fn enter_user(regs: *mut Regs) {
    // SAFETY: forwarded to the caller.
    unsafe { enter_user_raw(regs) }
}

/// Saves the kernel's callee-saved registers, records the stack pointer
/// as where system calls run, and resumes the task. The matching return
/// is the `2:` path of [`syscall_entry`].
///
/// # Safety
/// As [`enter_user`]; also, GS must hold this core's per-CPU base (kernel
/// GS), since the kernel stack pointer is saved there.
#[unsafe(naked)]
unsafe extern "C" fn enter_user_raw(regs: *mut Regs) {
    naked_asm!(
        "push rbp", "push rbx", "push r12", "push r13", "push r14", "push r15",
        // Keep RSP 16-byte aligned for the `call` in the entry stub.
        "sub rsp, 8",
        "mov gs:[{kernel_rsp}], rsp",
        "mov rax, rdi",
        "jmp {resume}",
        kernel_rsp = const KERNEL_RSP,
        resume = sym resume_user,
    )
}

/// The SYSCALL entry (LSTAR). Interrupts are off (FMASK).
///
/// # Safety
/// Never called from Rust: the CPU enters it on `syscall` from ring 3,
/// with the user's GS base, while a task made current by `set_current`
/// runs, so that `regs_top` and `kernel_rsp` in the per-CPU block are
/// valid.
#[unsafe(naked)]
unsafe extern "C" fn syscall_entry() {
    naked_asm!(
        "swapgs",
        "mov gs:[{user_rsp}], rsp",
        // Push the user registers into the running task's `Regs`.
        "mov rsp, gs:[{regs_top}]",
        "push qword ptr gs:[{user_rsp}]",
        "push rcx", "push r11", "push rbp", "push rbx", "push r12", "push r13", "push r14", "push r15",
        "mov rsp, gs:[{kernel_rsp}]",
        // dispatch(number, arg0, arg1, arg2)
        "mov rcx, rdx", "mov rdx, rsi", "mov rsi, rdi", "mov rdi, rax",
        "call {dispatch}",
        "test rax, rax",
        "jz 2f",
        "jmp {resume}",
        // No task left: back to the kernel code in `enter_user`.
        "2:",
        "mov rsp, gs:[{kernel_rsp}]",
        "add rsp, 8",
        "pop r15", "pop r14", "pop r13", "pop r12", "pop rbx", "pop rbp",
        "ret",
        user_rsp = const USER_RSP,
        regs_top = const REGS_TOP,
        kernel_rsp = const KERNEL_RSP,
        dispatch = sym super::scheduler::dispatch,
        resume = sym resume_user,
    )
}

/// Loads the task registers at `rax` and returns to ring 3, with the XMM
/// registers zeroed (see the module comment: the kernel's values must not
/// leak to ring 3).
///
/// # Safety
/// Only jumped to, with `rax` pointing at the current task's `Regs` (a
/// canonical user RIP, the task's address space in CR3) and kernel GS;
/// it does not return.
#[unsafe(naked)]
unsafe extern "C" fn resume_user() {
    naked_asm!(
        "xorps xmm0, xmm0",
        "xorps xmm1, xmm1",
        "xorps xmm2, xmm2",
        "xorps xmm3, xmm3",
        "xorps xmm4, xmm4",
        "xorps xmm5, xmm5",
        "xorps xmm6, xmm6",
        "xorps xmm7, xmm7",
        "xorps xmm8, xmm8",
        "xorps xmm9, xmm9",
        "xorps xmm10, xmm10",
        "xorps xmm11, xmm11",
        "xorps xmm12, xmm12",
        "xorps xmm13, xmm13",
        "xorps xmm14, xmm14",
        "xorps xmm15, xmm15",
        "mov rsp, rax",
        "pop r15",
        "pop r14",
        "pop r13",
        "pop r12",
        "pop rbx",
        "pop rbp",
        "pop r11",
        "pop rcx",
        "mov rax, [rsp + 8]",
        "mov rdi, [rsp + 16]",
        "mov rsi, [rsp + 24]",
        "mov rdx, [rsp + 32]",
        "mov rsp, [rsp]",
        "swapgs",
        "sysretq",
    )
}
