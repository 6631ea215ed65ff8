//! Native ring-3 tasks: the classic microkernel path, kept in the same
//! kernel as the baseline that the Wasm path is measured against.
//!
//! Why this exists: WasmOS claims that running Wasm in ring 0 makes system
//! calls and IPC cheaper than the classic design, where every task is a
//! ring-3 process with its own page table, enters the kernel with the
//! `syscall` instruction, and an IPC switches address space (CR3) and
//! registers. A claim like that needs the classic path measured in the
//! same kernel, the same boot and the same run, done properly and not
//! deliberately slowed: this module is that path, used only by the bench
//! mode (`crate::bench`).
//!
//! What it is, and what it is not:
//! - [`entry`]: SYSCALL/SYSRET through EFER.SCE, STAR, LSTAR and FMASK;
//!   `swapgs`; a seL4-style entry that saves the user registers straight
//!   into the running task's record and runs the handler on the core's one
//!   kernel stack (no kernel stack per task);
//! - [`space`]: one page table per task (its own PML4 sharing the kernel's
//!   top-level entries), so every switch between tasks reloads CR3 and
//!   flushes the TLB's user entries. No PCID (an optimisation some kernels
//!   use; noted in BENCHMARKS.md);
//! - [`scheduler`]: a tiny scheduler per core and IPC with the Wasm ABI's
//!   semantics (call/recv/reply/send/yield), cross-core through the same
//!   lock-free rings and IPI protocol as the Wasm path;
//! - [`programs`]: the ring-3 code, hand-written machine code copied into
//!   user pages (no ELF loader).
//!
//! Not a general process model: no preemption of native tasks, no faults
//! survived in ring 3 (a fault there is a kernel bug and stops the
//! machine with the usual report), messages are one register word.

mod entry;
mod programs;
mod scheduler;
mod space;

use alloc::boxed::Box;
use alloc::vec::Vec;

pub use programs::Program;
pub use scheduler::{Task, has_pending, run_core, start, take_exited};

use crate::memory::MapError;

/// Per-core set-up (MSRs), from `cpu::init_this_core` on every core.
pub fn init_this_core(selectors: crate::cpu::Selectors) {
    entry::init_this_core(selectors);
}

/// Global set-up, on the BSP, before the first native task.
pub fn init() {
    scheduler::init();
}

/// A new task `id` running `program` in an address space of its own, with
/// one stack page and `data_pages` pages for its samples; `r12` and `r13`
/// are the program's parameters (see [`programs`]).
pub fn task(id: u32, program: Program, r12: u64, r13: u64, data_pages: u64) -> Result<Box<Task>, MapError> {
    let space = space::AddressSpace::new(programs::code(), 1, data_pages)?;
    Ok(Task::new(id, space, program.entry(), r12, r13))
}

/// Data pages needed for `count` u64 samples.
pub fn pages_for(count: u64) -> u64 {
    (count * 8).div_ceil(crate::memory::PAGE_SIZE).max(1)
}

impl Task {
    /// The first `count` u64 samples the task wrote to its data pages.
    pub fn samples(&self, count: usize) -> Vec<u64> {
        self.space.read_data_u64(count)
    }
}
