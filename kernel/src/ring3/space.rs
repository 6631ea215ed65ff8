//! One address space per native task: a PML4 of its own that shares the
//! kernel's top-level entries (supervisor-only) and adds one user slot
//! with the task's code, stack and data pages.
//!
//! Every frame an address space allocates (its PML4, the page tables of
//! its user slot, its pages) is recorded and freed when it is dropped;
//! the kernel's own tables, shared through the copied PML4 entries, are
//! never touched. Drop an address space only when no core has it loaded
//! (the native scheduler hands exited tasks over after leaving their CR3).

use alloc::vec::Vec;

use x86_64::structures::paging::mapper::MapToError;
use x86_64::structures::paging::{
    FrameAllocator, Mapper, OffsetPageTable, Page, PageTable, PageTableFlags as Flags, PhysFrame, Size4KiB,
};
use x86_64::{PhysAddr, VirtAddr};

use crate::memory::frames::BitmapFrameAllocator;
use crate::memory::{self, MapError, PAGE_SIZE};

/// Where user pages go inside the user slot.
const CODE_OFFSET: u64 = 0x40_0000;
const STACK_TOP_OFFSET: u64 = 0x80_0000;
const DATA_OFFSET: u64 = 0x100_0000;

/// Size of one PML4 slot (512 GiB).
const SLOT_SIZE: u64 = 512 << 30;

static USER_SLOT: spin::Once<u64> = spin::Once::new();

/// The base address of the user slot: the first top-level slot of the
/// lower half (not slot 0, to keep null pointers unmapped) that the kernel
/// does not use.
fn user_base() -> u64 {
    *USER_SLOT.call_once(|| {
        memory::with(|m| {
            let l4 = m.page_table.level_4_table();
            (1..256).find(|&i| l4[i].is_unused()).expect("no free lower-half PML4 slot for user space") as u64
                * SLOT_SIZE
        })
    })
}

/// A frame allocator that remembers what it handed out (its `Vec` must
/// have room: no heap allocation may happen under the memory lock).
struct Recording<'a> {
    frames: &'a mut BitmapFrameAllocator,
    got: &'a mut Vec<PhysFrame>,
}

// SAFETY: hands out frames from the kernel's allocator, each once.
unsafe impl FrameAllocator<Size4KiB> for Recording<'_> {
    fn allocate_frame(&mut self) -> Option<PhysFrame> {
        if self.got.len() == self.got.capacity() {
            return None;
        }
        let frame = self.frames.alloc()?;
        self.got.push(frame);
        Some(frame)
    }
}

pub struct AddressSpace {
    pml4: PhysFrame,
    /// Every frame this space allocated, the PML4 included.
    owned: Vec<PhysFrame>,
    /// The data pages, in order, for reading results back.
    data: Vec<PhysFrame>,
    pub code_base: u64,
    pub stack_top: u64,
    pub data_base: u64,
}

fn map_error(e: MapToError<Size4KiB>) -> MapError {
    match e {
        MapToError::FrameAllocationFailed => MapError::OutOfFrames,
        _ => MapError::AlreadyMapped,
    }
}

impl AddressSpace {
    /// A new address space with `code` copied to its code pages and
    /// `stack_pages` + `data_pages` zeroed, writable, non-executable pages.
    pub fn new(code: &[u8], stack_pages: u64, data_pages: u64) -> Result<AddressSpace, MapError> {
        let base = user_base();
        let code_pages = (code.len() as u64).div_ceil(PAGE_SIZE).max(1);
        let pages = code_pages + stack_pages + data_pages;
        // PML4 + PDPT + PD + a page table per 2 MiB touched, plus the pages.
        let mut owned = Vec::with_capacity((pages + 3 + pages.div_ceil(512) + 3) as usize);
        let mut data = Vec::with_capacity(data_pages as usize);
        let pml4 = memory::with(|m| -> Result<PhysFrame, MapError> {
            let mut alloc = Recording { frames: &mut m.frames, got: &mut owned };
            let pml4 = alloc.allocate_frame().ok_or(MapError::OutOfFrames)?;
            let l4_ptr = memory::phys_to_virt(pml4.start_address().as_u64()).as_mut_ptr::<PageTable>();
            // SAFETY: a fresh frame, reached through the physical-memory
            // mapping, that nothing else refers to yet.
            let l4 = unsafe { &mut *l4_ptr };
            l4.zero();
            // Share the kernel's top-level entries (all supervisor-only).
            for (i, entry) in m.page_table.level_4_table().iter().enumerate() {
                l4[i] = entry.clone();
            }
            let offset = memory::phys_to_virt(0);
            // SAFETY: `l4` is a valid PML4 and all physical memory is
            // mapped at `offset`.
            let mut table = unsafe { OffsetPageTable::new(l4, offset) };
            let parents = Flags::PRESENT | Flags::WRITABLE | Flags::USER_ACCESSIBLE;
            let mut map =
                |virt: u64, flags: Flags, alloc: &mut Recording, fill: &[u8]| -> Result<PhysFrame, MapError> {
                    let frame = alloc.allocate_frame().ok_or(MapError::OutOfFrames)?;
                    let dst = memory::phys_to_virt(frame.start_address().as_u64()).as_mut_ptr::<u8>();
                    // SAFETY: a fresh frame of 4 KiB, reached through the
                    // physical-memory mapping; `fill` is at most a page.
                    unsafe {
                        core::ptr::write_bytes(dst, 0, PAGE_SIZE as usize);
                        core::ptr::copy_nonoverlapping(fill.as_ptr(), dst, fill.len());
                    }
                    let page = Page::<Size4KiB>::containing_address(VirtAddr::new(virt));
                    // SAFETY: the page lies in the user slot of this new
                    // address space, where nothing is mapped yet.
                    unsafe { table.map_to_with_table_flags(page, frame, flags, parents, alloc) }
                        .map_err(map_error)?
                        .ignore();
                    Ok(frame)
                };
            let code_flags = Flags::PRESENT | Flags::USER_ACCESSIBLE;
            for (i, chunk) in code.chunks(PAGE_SIZE as usize).enumerate() {
                map(base + CODE_OFFSET + i as u64 * PAGE_SIZE, code_flags, &mut alloc, chunk)?;
            }
            let rw = Flags::PRESENT | Flags::WRITABLE | Flags::USER_ACCESSIBLE | Flags::NO_EXECUTE;
            for i in 1..=stack_pages {
                map(base + STACK_TOP_OFFSET - i * PAGE_SIZE, rw, &mut alloc, &[])?;
            }
            for i in 0..data_pages {
                data.push(map(base + DATA_OFFSET + i * PAGE_SIZE, rw, &mut alloc, &[])?);
            }
            Ok(pml4)
        });
        match pml4 {
            Ok(pml4) => Ok(AddressSpace {
                pml4,
                owned,
                data,
                code_base: base + CODE_OFFSET,
                stack_top: base + STACK_TOP_OFFSET,
                data_base: base + DATA_OFFSET,
            }),
            Err(e) => {
                free(&owned);
                Err(e)
            }
        }
    }

    /// The value for CR3.
    pub fn cr3(&self) -> PhysFrame {
        self.pml4
    }

    /// Reads `count` little-endian u64s from the start of the data pages.
    pub fn read_data_u64(&self, count: usize) -> Vec<u64> {
        let per_page = (PAGE_SIZE / 8) as usize;
        (0..count.min(self.data.len() * per_page))
            .map(|i| {
                let frame = self.data[i / per_page].start_address().as_u64();
                let ptr = memory::phys_to_virt(frame + (i % per_page) as u64 * 8).as_ptr::<u64>();
                // SAFETY: a data frame this address space owns, reached
                // through the physical-memory mapping; aligned u64.
                unsafe { core::ptr::read_volatile(ptr) }
            })
            .collect()
    }
}

fn free(frames: &[PhysFrame]) {
    memory::with(|m| {
        for frame in frames {
            m.frames.free(*frame);
        }
    });
}

impl Drop for AddressSpace {
    fn drop(&mut self) {
        debug_assert_ne!(
            x86_64::registers::control::Cr3::read().0.start_address(),
            PhysAddr::new(self.pml4.start_address().as_u64()),
            "dropping the loaded address space"
        );
        free(&self.owned);
    }
}
