//! Task identities.
//!
//! A [`TaskId`] is a 64-bit number handed out once, from one global
//! counter, and never reused. A stale id therefore can never name a newer
//! task: looking it up after its task died simply finds nothing, which the
//! scheduler reports as `DEAD_TARGET`. (seL4 and HinaOS reach the same
//! property with generation counters on reused slots; with 2^64 ids we do
//! not need to reuse any.)

use core::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TaskId(pub u64);

/// Hands out fresh task ids.
pub struct TaskIdAllocator {
    next: AtomicU64,
}

impl TaskIdAllocator {
    pub const fn new() -> Self {
        TaskIdAllocator { next: AtomicU64::new(1) }
    }

    pub fn next(&self) -> TaskId {
        TaskId(self.next.fetch_add(1, Ordering::Relaxed))
    }
}

impl Default for TaskIdAllocator {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_across_threads() {
        static IDS: TaskIdAllocator = TaskIdAllocator::new();
        let handles: Vec<_> = (0..4).map(|_| std::thread::spawn(|| (0..1000).map(|_| IDS.next().0).collect::<Vec<_>>())).collect();
        let mut all: Vec<u64> = handles.into_iter().flat_map(|h| h.join().unwrap()).collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 4000);
        assert!(!all.contains(&0), "0 is never a task id");
    }
}
