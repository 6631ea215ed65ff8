//! Per-CPU data, one [`PerCpu`] per core, found through the GS base.
//!
//! Why GS: reading `gs:[0]` is one instruction and works in interrupt
//! handlers without locks. The first field of every `PerCpu` points at the
//! structure itself, so `current()` is a single load. The array is built
//! once on the BSP before any AP starts and never moves (leaked `Box`).
//!
//! Fields that only the owning core touches (its local APIC handle) sit in
//! an `UnsafeCell` and are only reached with interrupts disabled, from that
//! core; see [`crate::lapic`]. Everything other cores read is atomic.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use spin::Once;
use x2apic::lapic::LocalApic;
use x86_64::VirtAddr;
use x86_64::registers::model_specific::GsBase;

use crate::remote::Mailbox;

#[repr(C, align(64))]
pub struct PerCpu {
    /// Points at this structure; must stay the first field (read as gs:[0]).
    self_ptr: *const PerCpu,
    /// Dense index, 0 = BSP, in MADT order otherwise.
    pub cpu_index: u32,
    pub apic_id: u32,
    /// Set by the core itself once its tables, APIC and timer are up.
    pub online: AtomicBool,
    /// Timer interrupts taken by this core.
    pub ticks: AtomicU64,
    /// IPIs (vector [`crate::vectors::IPI`]) taken by this core.
    pub ipis: AtomicU64,
    pub(crate) lapic: UnsafeCell<Option<LocalApic>>,
    pub(crate) mailbox: Mailbox,
    /// Words the kernel's system-call entry reaches as `gs:[offset]`
    /// before it has a stack of its own (its offset is taken with
    /// `core::mem::offset_of!`). Only the owning core uses them, with
    /// interrupts off; see `kernel/src/ring3/entry.rs`.
    pub kernel_words: [AtomicU64; KERNEL_WORDS],
}

/// Number of [`PerCpu::kernel_words`].
pub const KERNEL_WORDS: usize = 4;

// SAFETY: the only non-Sync parts are `self_ptr` (immutable after init) and
// `lapic`, which is accessed exclusively by the owning core with interrupts
// disabled (see `lapic::with_local`), so no two contexts ever alias it.
unsafe impl Sync for PerCpu {}
// SAFETY: as above; the structure is created on the BSP and then only
// shared by reference.
unsafe impl Send for PerCpu {}

static CPUS: Once<&'static [PerCpu]> = Once::new();

/// Creates the per-CPU array for `apic_ids` (index 0 must be the BSP) and
/// installs entry 0 on the calling core.
pub fn init(apic_ids: &[u32]) {
    let cpus: Vec<PerCpu> = apic_ids
        .iter()
        .enumerate()
        .map(|(i, &apic_id)| PerCpu {
            self_ptr: core::ptr::null(),
            cpu_index: i as u32,
            apic_id,
            online: AtomicBool::new(false),
            ticks: AtomicU64::new(0),
            ipis: AtomicU64::new(0),
            lapic: UnsafeCell::new(None),
            mailbox: Mailbox::new(),
            kernel_words: [const { AtomicU64::new(0) }; KERNEL_WORDS],
        })
        .collect();
    let cpus: &'static mut [PerCpu] = Box::leak(cpus.into_boxed_slice());
    for cpu in cpus.iter_mut() {
        cpu.self_ptr = cpu as *const PerCpu;
    }
    CPUS.call_once(|| cpus);
    install(0);
}

/// Points this core's GS base at `all()[index]`.
pub fn install(index: usize) {
    let cpu = &all()[index];
    GsBase::write(VirtAddr::from_ptr(cpu as *const PerCpu));
}

/// Every core's data (empty before [`init`]).
pub fn all() -> &'static [PerCpu] {
    CPUS.get().copied().unwrap_or(&[])
}

/// Number of cores known (found, not necessarily online).
pub fn count() -> usize {
    all().len()
}

/// Number of cores that finished start-up.
pub fn online_count() -> usize {
    all().iter().filter(|c| c.online.load(Ordering::Acquire)).count()
}

/// The calling core's data. Panics (via a null dereference check) if
/// [`install`] has not run on this core; use [`try_current`] where that
/// can happen.
pub fn current() -> &'static PerCpu {
    try_current().expect("per-CPU data not installed on this core")
}

/// The calling core's data, or `None` before [`install`] ran on it.
pub fn try_current() -> Option<&'static PerCpu> {
    if CPUS.get().is_none() || GsBase::read().as_u64() == 0 {
        return None;
    }
    let ptr: *const PerCpu;
    // SAFETY: GS base points at a live, leaked `PerCpu` whose first field
    // is its own address; reading it has no side effects.
    unsafe {
        core::arch::asm!("mov {}, gs:[0]", out(reg) ptr, options(nostack, readonly, preserves_flags));
        Some(&*ptr)
    }
}
