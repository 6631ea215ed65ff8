//! A payload a task sends is copied into the kernel heap; when the heap
//! cannot hold it, the send gets `NO_MEMORY` instead of ending the kernel
//! (an infallible allocation aborts). The allocator here fails every
//! allocation of this thread while `FAIL` is set.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use wasmos_ipc::abi::Status;
use wasmos_ipc::message::Payload;

thread_local! {
    static FAIL: Cell<bool> = const { Cell::new(false) };
}

struct Failing;

// SAFETY: forwards to the system allocator, or fails (null), as
// `GlobalAlloc` allows.
unsafe impl GlobalAlloc for Failing {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if FAIL.with(Cell::get) {
            return std::ptr::null_mut();
        }
        // SAFETY: the caller's layout, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Failing = Failing;

#[test]
fn a_payload_the_heap_cannot_hold_is_no_memory() {
    let bytes = vec![7u8; 4000];
    FAIL.with(|f| f.set(true));
    let big = Payload::copy_from(&bytes);
    let small = Payload::copy_from(&bytes[..8]);
    FAIL.with(|f| f.set(false));
    assert!(matches!(big, Err(Status::NoMemory)), "a heap payload needs an allocation");
    assert_eq!(small.expect("inline: no allocation").as_slice(), &bytes[..8]);
    assert_eq!(Payload::copy_from(&bytes).unwrap().as_slice(), &bytes[..]);
}
