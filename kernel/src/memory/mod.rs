//! Kernel memory: the frame allocator, the kernel's page table, the kernel
//! heap, stacks with guard pages, and MMIO mappings.
//!
//! Virtual layout. The bootloader places the kernel, its stack, the boot
//! info and the map of all physical memory wherever it likes in the higher
//! half. At start-up we look for three unused top-level (PML4) slots and
//! claim them for our own regions, so the layout never collides with the
//! bootloader's choices:
//!
//! | region | size | contents                                   |
//! |--------|------|--------------------------------------------|
//! | heap   | 512 GiB of address space | kernel heap, grown on demand |
//! | stacks | 512 GiB | kernel stacks, each below an unmapped guard page |
//! | mmio   | 512 GiB | device registers, mapped uncached           |
//!
//! One lock (`MEMORY`) covers frames and page tables: mapping needs both,
//! and the code under it never allocates from the heap, so the heap may take
//! it when it needs to grow.

pub mod frames;
pub mod heap;

use bootloader_api::BootInfo;
use frames::BitmapFrameAllocator;
use spin::Mutex;
use x86_64::registers::control::Cr3;
use x86_64::structures::paging::{
    Mapper, OffsetPageTable, Page, PageTable, PageTableFlags as Flags, PhysFrame, Size4KiB, Translate,
};
use x86_64::{PhysAddr, VirtAddr};

pub const PAGE_SIZE: u64 = 4096;
const PML4_SLOT_SIZE: u64 = 512 << 30;

pub struct Memory {
    pub frames: BitmapFrameAllocator,
    pub page_table: OffsetPageTable<'static>,
    stacks_next: u64,
    stacks_end: u64,
    mmio_next: u64,
    mmio_end: u64,
}

static MEMORY: Mutex<Option<Memory>> = Mutex::new(None);

/// Where the bootloader mapped physical memory (virt = phys + offset).
static PHYS_OFFSET: spin::Once<u64> = spin::Once::new();

/// Summary of memory at boot, for the banner and the result channel.
#[derive(Clone, Copy, Debug)]
pub struct MemoryInfo {
    pub usable_bytes: u64,
    pub phys_offset: u64,
}

/// Sets up frames, page table access, our virtual regions and the heap.
/// Must run once on the BSP before anything allocates.
pub fn init(boot_info: &'static BootInfo) -> MemoryInfo {
    let phys_offset = boot_info.physical_memory_offset.into_option().expect("bootloader did not map physical memory");
    PHYS_OFFSET.call_once(|| phys_offset);
    let frames = BitmapFrameAllocator::new(&boot_info.memory_regions, phys_offset);
    let usable_bytes = frames.usable_frames() as u64 * PAGE_SIZE;

    let (l4_frame, _) = Cr3::read();
    // SAFETY: CR3 holds the active PML4, reached through the bootloader's
    // mapping of physical memory; we are the only user of this reference.
    let l4: &'static mut PageTable =
        unsafe { &mut *((phys_offset + l4_frame.start_address().as_u64()) as *mut PageTable) };
    let free_slots = {
        let mut it = (256..512).filter(|&i| l4[i].is_unused());
        let mut next = || it.next().expect("no free top-level page-table slots") as u64;
        [next(), next(), next()]
    };
    // SAFETY: the whole of physical memory is mapped at `phys_offset`.
    let page_table = unsafe { OffsetPageTable::new(l4, VirtAddr::new(phys_offset)) };
    let slot_base = |i: u64| VirtAddr::new_truncate(i * PML4_SLOT_SIZE).as_u64();
    let [heap_slot, stack_slot, mmio_slot] = free_slots.map(slot_base);

    *MEMORY.lock() = Some(Memory {
        frames,
        page_table,
        stacks_next: stack_slot,
        stacks_end: stack_slot + PML4_SLOT_SIZE,
        mmio_next: mmio_slot,
        mmio_end: mmio_slot + PML4_SLOT_SIZE,
    });
    heap::init(heap_slot, heap_slot + PML4_SLOT_SIZE, usable_bytes);
    MemoryInfo { usable_bytes, phys_offset }
}

/// Runs `f` with the memory manager locked. `f` must not allocate from the
/// heap (the heap may itself be waiting for this lock to grow).
pub fn with<R>(f: impl FnOnce(&mut Memory) -> R) -> R {
    x86_64::instructions::interrupts::without_interrupts(|| f(MEMORY.lock().as_mut().expect("memory not initialised")))
}

/// The virtual address at which physical address `phys` can be accessed.
pub fn phys_to_virt(phys: u64) -> VirtAddr {
    VirtAddr::new(phys + *PHYS_OFFSET.get().expect("memory not initialised"))
}

/// Why a mapping request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapError {
    OutOfFrames,
    OutOfAddressSpace,
    AlreadyMapped,
}

/// A kernel stack: `top` is the initial stack pointer; the page below
/// `bottom` is left unmapped so an overflow faults instead of corrupting.
#[derive(Debug, Clone, Copy)]
pub struct Stack {
    pub top: VirtAddr,
    pub bottom: VirtAddr,
}

impl Memory {
    /// Maps `[start, start + pages*4K)` to freshly allocated frames.
    pub fn map_fresh(&mut self, start: VirtAddr, pages: u64, flags: Flags) -> Result<(), MapError> {
        for i in 0..pages {
            let page = Page::<Size4KiB>::containing_address(start + i * PAGE_SIZE);
            let frame = self.frames.alloc().ok_or(MapError::OutOfFrames)?;
            self.map_page(page, frame, flags)?;
        }
        Ok(())
    }

    fn map_page(&mut self, page: Page, frame: PhysFrame, flags: Flags) -> Result<(), MapError> {
        // SAFETY: callers map either fresh frames (owned by nobody else) or
        // device/trampoline frames at addresses reserved for them.
        let flush = unsafe { self.page_table.map_to(page, frame, flags, &mut self.frames) }.map_err(|e| match e {
            x86_64::structures::paging::mapper::MapToError::FrameAllocationFailed => MapError::OutOfFrames,
            _ => MapError::AlreadyMapped,
        })?;
        flush.flush();
        Ok(())
    }

    /// Unmaps one page and returns its frame to the allocator.
    pub fn unmap_and_free(&mut self, page: VirtAddr) {
        let page = Page::<Size4KiB>::containing_address(page);
        if let Ok((frame, flush)) = self.page_table.unmap(page) {
            flush.flush();
            self.frames.free(frame);
        }
    }

    /// Physical address behind a virtual one, if mapped.
    pub fn translate(&self, addr: VirtAddr) -> Option<PhysAddr> {
        self.page_table.translate_addr(addr)
    }

    /// Allocates a kernel stack of `pages` pages under a guard page.
    pub fn alloc_stack(&mut self, pages: u64) -> Result<Stack, MapError> {
        let guard = self.stacks_next;
        let bottom = guard + PAGE_SIZE;
        let top = bottom + pages * PAGE_SIZE;
        if top > self.stacks_end {
            return Err(MapError::OutOfAddressSpace);
        }
        self.stacks_next = top;
        let flags = Flags::PRESENT | Flags::WRITABLE | Flags::NO_EXECUTE;
        self.map_fresh(VirtAddr::new(bottom), pages, flags)?;
        Ok(Stack { top: VirtAddr::new(top), bottom: VirtAddr::new(bottom) })
    }

    /// Maps device registers uncached and returns their virtual address.
    pub fn map_mmio(&mut self, phys: u64, len: u64) -> Result<VirtAddr, MapError> {
        let first = phys & !(PAGE_SIZE - 1);
        let pages = (phys + len - first).div_ceil(PAGE_SIZE);
        let virt = self.mmio_next;
        if virt + pages * PAGE_SIZE > self.mmio_end {
            return Err(MapError::OutOfAddressSpace);
        }
        self.mmio_next += pages * PAGE_SIZE;
        let flags = Flags::PRESENT | Flags::WRITABLE | Flags::NO_CACHE | Flags::WRITE_THROUGH | Flags::NO_EXECUTE;
        for i in 0..pages {
            let frame = PhysFrame::containing_address(PhysAddr::new(first + i * PAGE_SIZE));
            self.map_page(Page::containing_address(VirtAddr::new(virt + i * PAGE_SIZE)), frame, flags)?;
        }
        Ok(VirtAddr::new(virt + (phys - first)))
    }

    /// Identity-maps one low frame (virt == phys), writable and executable:
    /// the AP trampoline runs there while it switches on paging.
    pub fn identity_map(&mut self, frame: PhysFrame) -> Result<(), MapError> {
        let page = Page::containing_address(VirtAddr::new(frame.start_address().as_u64()));
        self.map_page(page, frame, Flags::PRESENT | Flags::WRITABLE)
    }

    /// Removes an identity mapping made by [`Memory::identity_map`] and frees the frame.
    pub fn remove_identity_map(&mut self, frame: PhysFrame) {
        self.unmap_and_free(VirtAddr::new(frame.start_address().as_u64()));
    }

    /// Physical address of the active top-level page table.
    pub fn cr3(&self) -> u64 {
        Cr3::read().0.start_address().as_u64()
    }
}
