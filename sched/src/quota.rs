//! Resource limits a task cannot talk its way past.
//!
//! Linear memory is charged twice: against the task's own limit and
//! against one budget shared by all tasks, so that many tasks each within
//! their limit still cannot exhaust the kernel heap together. The charge is
//! returned when the task's store is dropped ([`MemoryBudget`]'s `Drop`),
//! which happens exactly once however the task ends.

use alloc::sync::Arc;
use core::sync::atomic::{AtomicUsize, Ordering};

use wasmi::errors::{MemoryError, TableError};
use wasmi_core::LimiterError;

/// The shared budget: bytes of linear memory all tasks together may hold.
pub struct SharedBudget {
    used: AtomicUsize,
    limit: usize,
}

impl SharedBudget {
    pub fn new(limit: usize) -> SharedBudget {
        SharedBudget { used: AtomicUsize::new(0), limit }
    }

    /// Bytes currently charged.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    fn try_charge(&self, bytes: usize) -> bool {
        let mut used = self.used.load(Ordering::Relaxed);
        loop {
            let Some(next) = used.checked_add(bytes).filter(|n| *n <= self.limit) else { return false };
            match self.used.compare_exchange_weak(used, next, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => return true,
                Err(now) => used = now,
            }
        }
    }

    fn release(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
    }
}

/// One task's limiter (wasmi calls it on every memory or table growth).
pub(crate) struct MemoryBudget {
    per_task: usize,
    max_table_elements: usize,
    shared: Arc<SharedBudget>,
    /// Bytes this task holds against `shared`.
    charged: usize,
    /// The last growth charged, returned if the growth then fails.
    last: usize,
    /// Bytes grown whose zeroing the task has not paid fuel for yet.
    unpaid: usize,
}

/// Bytes of new (zeroed) linear memory one unit of fuel pays for. The
/// interpreter charges `memory.grow` as one instruction, but the kernel
/// zeroes every new page: without a price, a task growing its memory
/// would hold its core far longer per slice than one that computes.
pub const GROWTH_BYTES_PER_FUEL: usize = 64;

impl MemoryBudget {
    pub fn new(per_task: usize, max_table_elements: usize, shared: Arc<SharedBudget>) -> MemoryBudget {
        MemoryBudget { per_task, max_table_elements, shared, charged: 0, last: 0, unpaid: 0 }
    }

    /// Fuel owed for memory grown since the last call (see
    /// [`GROWTH_BYTES_PER_FUEL`]); the scheduler takes it off the slice.
    pub fn take_growth_fuel(&mut self) -> u64 {
        (core::mem::take(&mut self.unpaid) / GROWTH_BYTES_PER_FUEL) as u64
    }
}

impl wasmi::ResourceLimiter for MemoryBudget {
    fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> Result<bool, LimiterError> {
        if desired > self.per_task || maximum.is_some_and(|m| desired > m) {
            return Ok(false);
        }
        let delta = desired.saturating_sub(current);
        if !self.shared.try_charge(delta) {
            return Ok(false);
        }
        self.charged += delta;
        self.last = delta;
        self.unpaid += delta;
        Ok(true)
    }

    fn memory_grow_failed(&mut self, _error: &MemoryError) -> Result<(), LimiterError> {
        self.shared.release(self.last);
        self.charged -= self.last;
        self.unpaid = self.unpaid.saturating_sub(self.last);
        self.last = 0;
        Ok(())
    }

    fn table_growing(&mut self, _current: usize, desired: usize, maximum: Option<usize>) -> Result<bool, LimiterError> {
        Ok(desired <= self.max_table_elements && maximum.is_none_or(|m| desired <= m))
    }

    fn table_grow_failed(&mut self, _error: &TableError) -> Result<(), LimiterError> {
        Ok(())
    }

    fn instances(&self) -> usize {
        1
    }

    fn tables(&self) -> usize {
        4
    }

    fn memories(&self) -> usize {
        1
    }
}

impl Drop for MemoryBudget {
    fn drop(&mut self) {
        self.shared.release(self.charged);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmi::ResourceLimiter;

    #[test]
    fn shared_budget_caps_tasks_together_and_is_returned_on_drop() {
        let shared = Arc::new(SharedBudget::new(100));
        let mut a = MemoryBudget::new(80, 10, shared.clone());
        let mut b = MemoryBudget::new(80, 10, shared.clone());
        assert_eq!(a.memory_growing(0, 60, None).ok(), Some(true));
        assert_eq!(b.memory_growing(0, 60, None).ok(), Some(false), "60 + 60 exceeds the shared 100");
        assert_eq!(b.memory_growing(0, 40, None).ok(), Some(true));
        assert_eq!(a.memory_growing(60, 90, None).ok(), Some(false), "per-task limit 80");
        assert_eq!(shared.used(), 100);
        drop(a);
        assert_eq!(shared.used(), 40);
        b.memory_grow_failed(&MemoryError::OutOfBoundsGrowth).unwrap();
        assert_eq!(shared.used(), 0, "a failed growth is returned");
    }
}
