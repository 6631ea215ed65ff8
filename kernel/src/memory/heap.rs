//! The kernel heap: the `talc` allocator over a virtual region that grows on
//! demand, mapped page by page from the frame allocator.
//!
//! Why talc: it is a maintained, fast dlmalloc-style allocator that works on
//! stable without `allocator_api`, and its `Source` hook lets the heap grow
//! when it runs out instead of reserving a fixed slab at boot. Growth is
//! bounded by `limit` (a share of RAM), so Wasm activity cannot eat the
//! frames the rest of the kernel needs; an allocation beyond it fails
//! cleanly (`alloc` returns null) rather than taking memory from page tables.
//!
//! Interrupt handlers never allocate, so a spinlock without interrupt
//! masking is enough here.

use core::alloc::Layout;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU64, Ordering};
use talc::base::Talc;
use talc::base::binning::Binning;
use talc::source::Source;
use talc::sync::TalcLock;
use x86_64::VirtAddr;
use x86_64::structures::paging::PageTableFlags as Flags;

use super::PAGE_SIZE;

/// The heap grows in steps of at least this much, to amortise the lock
/// round trip and TLB work.
const GROWTH_STEP: u64 = 1 << 20;

#[global_allocator]
static HEAP: TalcLock<spinning_top::RawSpinlock, GrowingHeap, talc::DefaultBinning> =
    TalcLock::new(GrowingHeap { start: 0, end: 0, limit: 0, heap_end: None });

/// Bytes of address space currently mapped for the heap.
static MAPPED: AtomicU64 = AtomicU64::new(0);

#[derive(Debug)]
pub struct GrowingHeap {
    start: u64,
    /// End of the mapped part.
    end: u64,
    /// The heap never grows beyond this address.
    limit: u64,
    /// What talc returned from the last claim/extend.
    heap_end: Option<NonNull<u8>>,
}

// SAFETY: the heap's state is only touched under the TalcLock.
unsafe impl Send for GrowingHeap {}

// SAFETY: `acquire` maps pages with the memory lock, which never allocates,
// and hands them to talc through the `talc` reference only.
unsafe impl Source for GrowingHeap {
    fn acquire<B: Binning>(talc: &mut Talc<Self, B>, layout: Layout) -> Result<(), ()> {
        let want = (layout.size() + layout.align() + 4 * PAGE_SIZE as usize) as u64;
        let grow = want.max(GROWTH_STEP).div_ceil(PAGE_SIZE) * PAGE_SIZE;
        let s = &mut talc.source;
        if s.end + grow > s.limit {
            return Err(());
        }
        let from = s.end;
        let flags = Flags::PRESENT | Flags::WRITABLE | Flags::NO_EXECUTE;
        super::with(|m| m.map_fresh(VirtAddr::new(from), grow / PAGE_SIZE, flags)).map_err(|_| ())?;
        let new_end = from + grow;
        talc.source.end = new_end;
        MAPPED.store(new_end - talc.source.start, Ordering::Relaxed);
        let heap_end = match talc.source.heap_end {
            // SAFETY: [start, new_end) is freshly mapped, writable memory
            // that nothing else uses.
            None => unsafe { talc.claim(talc.source.start as *mut u8, (new_end - from) as usize) },
            // SAFETY: the heap ended at `end` and [end, new_end) was just
            // mapped right after it.
            Some(end) => Some(unsafe { talc.extend(end, new_end as *mut u8) }),
        };
        talc.source.heap_end = Some(heap_end.ok_or(())?);
        Ok(())
    }
}

/// Sets the heap's address range and its growth limit: a quarter of
/// usable RAM, at least 16 MiB.
pub fn init(start: u64, region_end: u64, usable_bytes: u64) {
    let limit = (usable_bytes / 4).max(16 << 20);
    let mut talc = HEAP.lock();
    talc.source.start = start;
    talc.source.end = start;
    talc.source.limit = (start + limit).min(region_end);
}

/// Heap figures for diagnostics and leak checks.
#[derive(Clone, Copy, Debug)]
pub struct HeapStats {
    pub mapped_bytes: u64,
    pub limit_bytes: u64,
    /// Bytes in live allocations (talc's counters).
    pub used_bytes: u64,
}

pub fn stats() -> HeapStats {
    let talc = HEAP.lock();
    HeapStats {
        mapped_bytes: MAPPED.load(Ordering::Relaxed),
        limit_bytes: talc.source.limit - talc.source.start,
        used_bytes: talc.counters().allocated_bytes as u64,
    }
}
