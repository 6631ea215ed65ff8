//! In-kernel tests of the frame allocator, the heap, page mapping, guard
//! pages and exception reporting (faults caught through the fixup table).

use alloc::boxed::Box;
use alloc::vec::Vec;

use super::{Ctx, Test, TestResult};
use crate::ensure;
use crate::interrupts::probe_read_u64;
use crate::memory::{self, PAGE_SIZE};

pub const TESTS: &[Test] = &[
    Test { name: "memory::frame_allocator_stress", run: frame_allocator_stress },
    Test { name: "memory::contiguous_frames", run: contiguous_frames },
    Test { name: "memory::heap_stress", run: heap_stress },
    Test { name: "memory::heap_grows_on_demand", run: heap_grows_on_demand },
    Test { name: "memory::page_mapping", run: page_mapping },
    Test { name: "memory::stack_guard_page_faults", run: stack_guard_page_faults },
    Test { name: "exceptions::page_fault_reported", run: page_fault_reported },
    Test { name: "exceptions::general_protection_reported", run: general_protection_reported },
];

/// Allocates 16 MiB of frames one by one, checks they are distinct and
/// really usable RAM (each keeps its own pattern), frees them, and checks
/// the free count is back where it started.
///
/// Nothing between the two counts may allocate from the heap: a heap that
/// grows takes frames and the counts no longer add up (that made this
/// test fail now and then before the vector was allocated up front).
fn frame_allocator_stress(_: &mut Ctx) -> TestResult {
    const N: usize = 4096;
    let mut frames = Vec::with_capacity(N);
    let before = memory::with(|m| m.frames.free_frames());
    for i in 0..N {
        let f = memory::with(|m| m.frames.alloc()).ok_or("ran out of frames")?;
        let addr = f.start_address().as_u64();
        ensure!(addr % PAGE_SIZE == 0, "frame {addr:#x} not page aligned");
        // SAFETY: the frame was just handed to us and is not mapped anywhere else.
        unsafe { memory::phys_to_virt(addr).as_mut_ptr::<u64>().write_volatile(0xF00D_0000_0000 | i as u64) };
        frames.push(f);
    }
    ensure!(memory::with(|m| m.frames.free_frames()) == before - N, "free count did not drop by {N}");
    for (i, f) in frames.iter().enumerate() {
        // SAFETY: still ours, written above.
        let v = unsafe { memory::phys_to_virt(f.start_address().as_u64()).as_ptr::<u64>().read_volatile() };
        ensure!(v == 0xF00D_0000_0000 | i as u64, "frame {i} lost its pattern: {v:#x}");
    }
    // Distinct: sorted in place (no allocation), no two neighbours equal.
    frames.sort_unstable_by_key(|f| f.start_address().as_u64());
    let duplicates = frames.windows(2).filter(|w| w[0] == w[1]).count();
    ensure!(duplicates == 0, "allocator handed out {duplicates} duplicate frames");
    // Free in a scrambled order to exercise the bitmap's hint logic.
    for i in (0..N).step_by(2).chain((1..N).step_by(2)) {
        memory::with(|m| m.frames.free(frames[i]));
    }
    ensure!(memory::with(|m| m.frames.free_frames()) == before, "frames leaked after freeing all");
    Ok(())
}

fn contiguous_frames(_: &mut Ctx) -> TestResult {
    let first = memory::with(|m| m.frames.alloc_contiguous(64, u64::MAX)).ok_or("no run of 64 frames")?;
    let start = first.start_address().as_u64();
    // A contiguous run is what a DMA buffer needs: all 64 frames must now be
    // in use, so single allocations may not return any of them.
    let mut singles = Vec::new();
    for _ in 0..256 {
        let f = memory::with(|m| m.frames.alloc()).ok_or("out of frames")?;
        let a = f.start_address().as_u64();
        ensure!(!(start..start + 64 * PAGE_SIZE).contains(&a), "frame {a:#x} handed out twice");
        singles.push(f);
    }
    let low = memory::with(|m| m.frames.alloc_contiguous(1, 0x10_0000));
    for f in singles {
        memory::with(|m| m.frames.free(f));
    }
    for i in 0..64 {
        memory::with(|m| {
            m.frames.free(x86_64::structures::paging::PhysFrame::containing_address(x86_64::PhysAddr::new(
                start + i * PAGE_SIZE,
            )))
        });
    }
    if let Some(f) = low {
        ensure!(f.start_address().as_u64() < 0x10_0000, "limit ignored");
        memory::with(|m| m.frames.free(f));
    }
    Ok(())
}

/// Many allocations of mixed sizes, each filled with its own byte, freed in
/// an interleaved order; any overlap or corruption shows up as a wrong byte.
fn heap_stress(_: &mut Ctx) -> TestResult {
    let mut live: Vec<(u8, Box<[u8]>)> = Vec::new();
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for round in 0..20_000u32 {
        let r = next();
        if r % 3 == 0 && !live.is_empty() {
            let idx = (r as usize / 3) % live.len();
            let (tag, block) = live.swap_remove(idx);
            ensure!(block.iter().all(|&b| b == tag), "block with tag {tag} corrupted (round {round})");
        } else {
            let size = match r % 16 {
                0 => 64 * 1024 + (r % 4096) as usize,
                1..=3 => 2048 + (r % 2048) as usize,
                _ => 1 + (r % 256) as usize,
            };
            let tag = (round % 251) as u8;
            live.push((tag, alloc::vec![tag; size].into_boxed_slice()));
        }
    }
    for (tag, block) in &live {
        ensure!(block.iter().all(|b| b == tag), "block with tag {tag} corrupted at the end");
    }
    Ok(())
}

/// A 32 MiB allocation cannot fit in what is mapped at boot: the heap must
/// map more, and the memory must be usable end to end.
fn heap_grows_on_demand(_: &mut Ctx) -> TestResult {
    let before = memory::heap::stats().mapped_bytes;
    let size = 32 << 20;
    let mut big = alloc::vec![0u8; size];
    big[0] = 1;
    big[size - 1] = 2;
    let after = memory::heap::stats().mapped_bytes;
    ensure!(after >= before + size as u64 || before >= size as u64, "heap did not grow: {before} -> {after}");
    ensure!(big[0] == 1 && big[size - 1] == 2, "big allocation not backed by memory");
    Ok(())
}

/// Maps a page, checks translation and access through both mappings, then
/// unmaps it and checks that touching it faults with the right address.
fn page_mapping(_: &mut Ctx) -> TestResult {
    let stack = memory::with(|m| m.alloc_stack(1)).map_err(|e| alloc::format!("{e:?}"))?;
    let page = stack.bottom;
    // SAFETY: the page was just mapped for us.
    unsafe { page.as_mut_ptr::<u64>().write_volatile(0x1234_5678_9ABC_DEF0) };
    let phys = memory::with(|m| m.translate(page)).ok_or("fresh page has no translation")?;
    // SAFETY: the same frame through the physical-memory map.
    let via_phys = unsafe { memory::phys_to_virt(phys.as_u64()).as_ptr::<u64>().read_volatile() };
    ensure!(via_phys == 0x1234_5678_9ABC_DEF0, "physical view disagrees: {via_phys:#x}");
    ensure!(probe_read_u64(page.as_u64()) == Ok(0x1234_5678_9ABC_DEF0), "probe of a mapped page failed");

    memory::with(|m| m.unmap_and_free(page));
    ensure!(memory::with(|m| m.translate(page)).is_none(), "page still translates after unmap");
    let fault = probe_read_u64(page.as_u64() + 8).err().ok_or("read of an unmapped page did not fault")?;
    ensure!(fault.vector == 14, "expected #PF, got vector {}", fault.vector);
    ensure!(fault.address == page.as_u64() + 8, "CR2 {:#x} != {:#x}", fault.address, page.as_u64() + 8);
    ensure!(fault.error_code & 1 == 0, "error code {:#x} claims a protection violation", fault.error_code);
    Ok(())
}

fn stack_guard_page_faults(_: &mut Ctx) -> TestResult {
    let stack = memory::with(|m| m.alloc_stack(4)).map_err(|e| alloc::format!("{e:?}"))?;
    ensure!(probe_read_u64(stack.top.as_u64() - 8).is_ok(), "top of a fresh stack unreadable");
    let guard = stack.bottom - 8u64;
    let fault = probe_read_u64(guard.as_u64()).err().ok_or("guard page is readable")?;
    ensure!(fault.vector == 14 && fault.address == guard.as_u64(), "wrong fault {fault:?}");
    Ok(())
}

fn page_fault_reported(_: &mut Ctx) -> TestResult {
    let addr = 0x0000_0000_dead_b000u64;
    let fault = probe_read_u64(addr).err().ok_or("read of an unmapped address succeeded")?;
    ensure!(fault.vector == 14, "expected vector 14, got {}", fault.vector);
    ensure!(fault.address == addr, "CR2 = {:#x}, expected {addr:#x}", fault.address);
    // Bit 0 clear: not present; bit 1 clear: a read; bit 2 clear: kernel mode.
    ensure!(fault.error_code & 0b111 == 0, "error code {:#x}", fault.error_code);
    Ok(())
}

fn general_protection_reported(_: &mut Ctx) -> TestResult {
    // A non-canonical address raises #GP, not #PF.
    let fault = probe_read_u64(0x8000_0000_0000_0000).err().ok_or("non-canonical read succeeded")?;
    ensure!(fault.vector == 13, "expected #GP (13), got vector {}", fault.vector);
    ensure!(fault.error_code == 0, "error code {:#x}", fault.error_code);
    Ok(())
}
