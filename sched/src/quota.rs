//! Resource limits a task cannot talk its way past.
//!
//! Linear memory is charged twice: against the task's own limit and
//! against one budget shared by all tasks, so that many tasks each within
//! their limit still cannot exhaust the kernel heap together. The charge is
//! returned when the task's store is dropped ([`MemoryBudget`]'s `Drop`),
//! which happens exactly once however the task ends.
//!
//! Kernel memory a task makes the kernel hold for it alone, such as the
//! slots of its capability table, is charged the same way, as if it were
//! linear memory ([`MemoryBudget`]'s `SlotBudget`).

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

    /// The most it may hold.
    pub fn limit(&self) -> usize {
        self.limit
    }

    pub(crate) fn try_charge(&self, bytes: usize) -> bool {
        self.try_charge_below(bytes, self.limit)
    }

    /// Charges `bytes` if the total stays within `ceiling` (and the
    /// limit). Ordinary tasks are held to a ceiling below the limit; the
    /// rest is a reserve only the kernel's own tasks and services can use,
    /// so a flood by ordinary tasks cannot starve the system servers.
    pub(crate) fn try_charge_below(&self, bytes: usize, ceiling: usize) -> bool {
        let ceiling = ceiling.min(self.limit);
        let mut used = self.used.load(Ordering::Relaxed);
        loop {
            let Some(next) = used.checked_add(bytes).filter(|n| *n <= ceiling) else { return false };
            match self.used.compare_exchange_weak(used, next, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => return true,
                Err(now) => used = now,
            }
        }
    }

    pub(crate) fn release(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
    }
}

/// Bytes of one queued one-way item (message, grant) charged to its sender
/// and to the system-wide queue budget, from the moment it is sent until it
/// is received or dropped (its receiver died): the charge travels inside
/// the item and is returned by its `Drop`, on every path an item can end.
pub(crate) struct QueueCharge {
    /// The sending task's own budget; `None` for a native service.
    sender: Option<Arc<SharedBudget>>,
    global: Arc<SharedBudget>,
    bytes: usize,
}

impl QueueCharge {
    /// Charges `bytes` to `sender` (its per-task budget: `WOULD_BLOCK` when
    /// full, it frees up as receivers take its messages) and to `global`
    /// up to `ceiling` (`NO_MEMORY` when the system's queues are full).
    pub fn take(
        sender: Option<&Arc<SharedBudget>>,
        global: &Arc<SharedBudget>,
        ceiling: usize,
        bytes: usize,
    ) -> Result<QueueCharge, wasmos_ipc::abi::Status> {
        use wasmos_ipc::abi::Status;
        if let Some(own) = sender
            && !own.try_charge(bytes)
        {
            return Err(Status::WouldBlock);
        }
        if !global.try_charge_below(bytes, ceiling) {
            if let Some(own) = sender {
                own.release(bytes);
            }
            return Err(Status::NoMemory);
        }
        Ok(QueueCharge { sender: sender.cloned(), global: global.clone(), bytes })
    }
}

impl Drop for QueueCharge {
    fn drop(&mut self) {
        if let Some(own) = &self.sender {
            own.release(self.bytes);
        }
        self.global.release(self.bytes);
    }
}

/// One task's limiter (wasmi calls it on every memory or table growth).
pub(crate) struct MemoryBudget {
    per_task: usize,
    /// How much of `shared` may be in use when this task grows: below its
    /// limit for ordinary tasks (see [`SharedBudget::try_charge_below`]).
    ceiling: usize,
    max_table_elements: usize,
    shared: Arc<SharedBudget>,
    /// Bytes of linear memory this task holds against `shared`.
    charged: usize,
    /// Bytes of kernel memory held for this task alone (its handle
    /// table's slots), also against `shared` and its own limit.
    kernel: usize,
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
        MemoryBudget {
            per_task,
            ceiling: usize::MAX,
            max_table_elements,
            shared,
            charged: 0,
            kernel: 0,
            last: 0,
            unpaid: 0,
        }
    }

    /// Holds this task to `ceiling` bytes of the shared budget in use.
    pub fn with_ceiling(mut self, ceiling: usize) -> MemoryBudget {
        self.ceiling = ceiling;
        self
    }

    /// Fuel owed for memory grown since the last call (see
    /// [`GROWTH_BYTES_PER_FUEL`]); the scheduler takes it off the slice.
    pub fn take_growth_fuel(&mut self) -> u64 {
        (core::mem::take(&mut self.unpaid) / GROWTH_BYTES_PER_FUEL) as u64
    }
}

impl wasmi::ResourceLimiter for MemoryBudget {
    fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> Result<bool, LimiterError> {
        if desired.saturating_add(self.kernel) > self.per_task || maximum.is_some_and(|m| desired > m) {
            return Ok(false);
        }
        let delta = desired.saturating_sub(current);
        if !self.shared.try_charge_below(delta, self.ceiling) {
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

impl wasmos_ipc::caps::SlotBudget for MemoryBudget {
    fn try_charge(&mut self, bytes: usize) -> bool {
        let total = self.charged.saturating_add(self.kernel).saturating_add(bytes);
        if total > self.per_task || !self.shared.try_charge_below(bytes, self.ceiling) {
            return false;
        }
        self.kernel += bytes;
        true
    }

    fn refund(&mut self, bytes: usize) {
        self.kernel -= bytes;
        self.shared.release(bytes);
    }
}

impl Drop for MemoryBudget {
    fn drop(&mut self) {
        self.shared.release(self.charged + self.kernel);
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

    #[test]
    fn ordinary_tasks_leave_the_reserve() {
        let shared = Arc::new(SharedBudget::new(100));
        let mut user = MemoryBudget::new(100, 10, shared.clone()).with_ceiling(70);
        let mut system = MemoryBudget::new(100, 10, shared.clone());
        assert_eq!(user.memory_growing(0, 80, None).ok(), Some(false), "above the ceiling");
        assert_eq!(user.memory_growing(0, 70, None).ok(), Some(true));
        assert_eq!(system.memory_growing(0, 30, None).ok(), Some(true), "the reserve is the system's");
        drop((user, system));
        assert_eq!(shared.used(), 0);
    }

    #[test]
    fn kernel_memory_held_for_a_task_counts_as_its_memory() {
        use wasmos_ipc::caps::SlotBudget;
        let shared = Arc::new(SharedBudget::new(100));
        let mut a = MemoryBudget::new(80, 10, shared.clone()).with_ceiling(90);
        assert!(a.try_charge(30));
        assert_eq!(a.memory_growing(0, 60, None).ok(), Some(false), "60 + 30 exceeds the task's 80");
        assert_eq!(a.memory_growing(0, 50, None).ok(), Some(true));
        assert!(!a.try_charge(1), "the task's 80 are used up");
        let mut b = MemoryBudget::new(80, 10, shared.clone()).with_ceiling(90);
        assert!(!b.try_charge(11), "over the ceiling of the shared budget");
        assert!(b.try_charge(10));
        b.refund(10);
        assert_eq!(shared.used(), 80);
        drop(a);
        assert_eq!(shared.used(), 0, "both kinds are returned with the task");
    }

    #[test]
    fn queue_charges_come_back_on_drop() {
        use wasmos_ipc::abi::Status;
        let global = Arc::new(SharedBudget::new(100));
        let own = Arc::new(SharedBudget::new(50));
        let a = QueueCharge::take(Some(&own), &global, 80, 40).unwrap();
        assert_eq!(QueueCharge::take(Some(&own), &global, 80, 20).err(), Some(Status::WouldBlock));
        let other = Arc::new(SharedBudget::new(50));
        let b = QueueCharge::take(Some(&other), &global, 80, 40).unwrap();
        assert_eq!(QueueCharge::take(Some(&other), &global, 80, 1).err(), Some(Status::NoMemory));
        assert_eq!(other.used(), 40, "a refused charge is not kept");
        let system = QueueCharge::take(None, &global, 100, 20).unwrap();
        drop((a, b, system));
        assert_eq!((global.used(), own.used(), other.used()), (0, 0, 0));
    }
}

/// The share of a kernel heap of `heap_bytes` that each budget of tasks
/// may take, so that together they can never exhaust it: Wasm linear
/// memory half of it, queued one-way message bytes, the `tcp` service's
/// socket buffers and the compiled modules of binaries ordinary tasks
/// spawn an eighth each (each at most the default, 16 MiB), which leaves
/// at least an eighth for the kernel itself (the code of the boot
/// bundle's programs, task tables, stacks, drivers). The reserves for the
/// kernel's own tasks are a quarter of their budget (at most the
/// defaults), and one task may take at most what ordinary tasks together
/// may. The kernel applies it at boot (`Config::for_heap` in `system.rs`,
/// [`socket_budget_for_heap`]); the hosted runtime keeps the defaults.
pub mod heap_shares {
    /// Wasm linear memory of all tasks: half the heap.
    pub fn wasm(heap_bytes: usize) -> usize {
        heap_bytes / 2
    }

    /// Queued one-way message bytes of all tasks: an eighth, at most 16 MiB.
    pub fn queued(heap_bytes: usize) -> usize {
        (heap_bytes / 8).min(16 << 20)
    }

    /// Socket buffers of the `tcp` service: an eighth, at most 16 MiB.
    pub fn sockets(heap_bytes: usize) -> usize {
        (heap_bytes / 8).min(16 << 20)
    }

    /// Compiled modules that ordinary tasks spawn: an eighth, at most
    /// 16 MiB (`compiler.rs`).
    pub fn compiled(heap_bytes: usize) -> usize {
        (heap_bytes / 8).min(16 << 20)
    }
}

/// Heap bytes the `tcp` service's sockets may hold, for a kernel heap of
/// `heap_bytes` ([`heap_shares`]).
pub fn socket_budget_for_heap(heap_bytes: usize) -> usize {
    heap_shares::sockets(heap_bytes)
}
