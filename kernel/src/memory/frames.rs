//! Physical frame allocator: one bit per 4 KiB frame of physical memory,
//! built from the bootloader's memory map.
//!
//! Why a bitmap and not a free list: the kernel needs contiguous runs of
//! frames (DMA buffers for virtio, the AP trampoline below 1 MiB), and a
//! bitmap answers "n free frames in a row below address X" directly, at a
//! cost of 32 KiB per GiB of RAM. Single frames are found with a rotating
//! hint so that the common case does not rescan the start of memory.
//!
//! The bitmap itself lives in the first usable region large enough for it
//! and is marked used. Frames the memory map does not call usable are
//! marked used forever.

use bootloader_api::info::{MemoryRegionKind, MemoryRegions};
use x86_64::PhysAddr;
use x86_64::structures::paging::{FrameAllocator, FrameDeallocator, PhysFrame, Size4KiB};

pub const FRAME_SIZE: u64 = 4096;
/// Frames below this index (1 MiB) are kept for requests that need them.
const LOW_MEMORY_END_FRAME: usize = 0x10_0000 / FRAME_SIZE as usize;

pub struct BitmapFrameAllocator {
    /// Bit set = frame in use (or not RAM).
    bits: &'static mut [u64],
    frames: usize,
    free: usize,
    usable: usize,
    next_hint: usize,
}

impl BitmapFrameAllocator {
    /// Builds the allocator from the boot memory map. `phys_offset` is where
    /// the bootloader mapped all of physical memory.
    pub fn new(regions: &MemoryRegions, phys_offset: u64) -> Self {
        let top = regions
            .iter()
            .filter(|r| r.kind == MemoryRegionKind::Usable)
            .map(|r| r.end)
            .max()
            .expect("no usable memory");
        let frames = top.div_ceil(FRAME_SIZE) as usize;
        let words = frames.div_ceil(64);
        let bitmap_bytes = (words * 8) as u64;

        // Place the bitmap in the first usable region (above 1 MiB, to keep
        // low memory for the AP trampoline) that can hold it.
        let home = regions
            .iter()
            .filter(|r| r.kind == MemoryRegionKind::Usable && r.start >= 0x10_0000)
            .find(|r| r.end - align_up(r.start, FRAME_SIZE) >= bitmap_bytes)
            .expect("no region large enough for the frame bitmap");
        let bitmap_phys = align_up(home.start, FRAME_SIZE);
        // SAFETY: [bitmap_phys, +bitmap_bytes) is usable RAM that nothing
        // else uses yet (the allocator is being created and will mark it
        // used below), reached through the bootloader's physical mapping.
        let bits = unsafe { core::slice::from_raw_parts_mut((phys_offset + bitmap_phys) as *mut u64, words) };
        bits.fill(u64::MAX);

        let mut this = Self { bits, frames, free: 0, usable: 0, next_hint: 0 };
        for r in regions.iter().filter(|r| r.kind == MemoryRegionKind::Usable) {
            let first = align_up(r.start, FRAME_SIZE) / FRAME_SIZE;
            let last = r.end / FRAME_SIZE; // exclusive
            for f in first..last {
                this.set_free(f as usize);
                this.usable += 1;
            }
        }
        // Never hand out frame 0: a null physical address is a bug magnet.
        this.mark_used(0);
        let first = bitmap_phys / FRAME_SIZE;
        for f in first..first + bitmap_bytes.div_ceil(FRAME_SIZE) {
            this.mark_used(f as usize);
        }
        this
    }

    fn is_used(&self, f: usize) -> bool {
        self.bits[f / 64] & (1 << (f % 64)) != 0
    }

    fn set_free(&mut self, f: usize) {
        if self.is_used(f) {
            self.bits[f / 64] &= !(1 << (f % 64));
            self.free += 1;
        }
    }

    fn mark_used(&mut self, f: usize) {
        if f < self.frames && !self.is_used(f) {
            self.bits[f / 64] |= 1 << (f % 64);
            self.free -= 1;
        }
    }

    /// Number of free frames.
    pub fn free_frames(&self) -> usize {
        self.free
    }

    /// Number of frames the memory map called usable at boot.
    pub fn usable_frames(&self) -> usize {
        self.usable
    }

    /// Allocates one frame, from 1 MiB upwards first: the few frames below
    /// 1 MiB are the only ones a real-mode AP can start from, so they are
    /// handed out singly only when everything else is gone.
    pub fn alloc(&mut self) -> Option<PhysFrame> {
        let words = self.bits.len();
        let low_words = LOW_MEMORY_END_FRAME / 64;
        let high = low_words..words;
        let order = (0..high.len())
            .map(|i| high.start + (self.next_hint.max(low_words) - low_words + i) % high.len())
            .chain(0..low_words.min(words));
        for w in order {
            if self.bits[w] != u64::MAX {
                let bit = (!self.bits[w]).trailing_zeros() as usize;
                let f = w * 64 + bit;
                if f >= self.frames {
                    continue;
                }
                self.mark_used(f);
                self.next_hint = w;
                return Some(frame_at(f));
            }
        }
        None
    }

    /// Allocates `count` physically contiguous frames whose end lies below
    /// `limit` (e.g. 1 MiB for the real-mode trampoline, 4 GiB for 32-bit DMA).
    pub fn alloc_contiguous(&mut self, count: usize, limit: u64) -> Option<PhysFrame> {
        let end = ((limit / FRAME_SIZE) as usize).min(self.frames);
        let mut run = 0;
        for f in 1..end {
            if self.is_used(f) {
                run = 0;
                continue;
            }
            run += 1;
            if run == count {
                let first = f + 1 - count;
                for g in first..=f {
                    self.mark_used(g);
                }
                return Some(frame_at(first));
            }
        }
        None
    }

    /// Returns a frame. Freeing a frame that is not allocated is a kernel bug.
    pub fn free(&mut self, frame: PhysFrame) {
        let f = (frame.start_address().as_u64() / FRAME_SIZE) as usize;
        assert!(f < self.frames && self.is_used(f), "double free of frame {f:#x}");
        self.set_free(f);
    }
}

fn frame_at(f: usize) -> PhysFrame {
    PhysFrame::containing_address(PhysAddr::new(f as u64 * FRAME_SIZE))
}

pub const fn align_up(x: u64, align: u64) -> u64 {
    (x + align - 1) & !(align - 1)
}

// SAFETY: `alloc` returns each frame at most once until it is freed.
unsafe impl FrameAllocator<Size4KiB> for BitmapFrameAllocator {
    fn allocate_frame(&mut self) -> Option<PhysFrame<Size4KiB>> {
        self.alloc()
    }
}

impl FrameDeallocator<Size4KiB> for BitmapFrameAllocator {
    unsafe fn deallocate_frame(&mut self, frame: PhysFrame<Size4KiB>) {
        self.free(frame)
    }
}
