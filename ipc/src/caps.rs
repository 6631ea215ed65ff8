//! Capability tables: what a task may talk to.
//!
//! Each task owns one [`HandleTable`]. A handle is a small integer that
//! indexes it; the entry ([`Cap`]) names a target task, carries a badge the
//! target sees on every message sent through it (so a server can tell its
//! clients apart without trusting them), and rights. A task can only send
//! to targets it holds a `SEND` capability for, and only pass on (at spawn,
//! to the name service, inside a message) capabilities with `GRANT`.
//!
//! Handles are 1-based (0 is never valid). A closed slot is reused only
//! after its generation changes: the handle value carries the slot in its
//! low 16 bits and the slot's generation above, so a stale handle (closed,
//! then the slot reused) is rejected instead of silently reaching whatever
//! the slot holds now.
//!
//! # Revocation when a task dies
//! Capabilities to a dead task are revoked all at once, in O(1), without
//! touching any table: every use of a capability resolves its target
//! through the system's directory of live tasks, and a dead task's id is
//! gone from it (ids are never reused, see [`crate::ids`]), so every
//! remaining handle to it answers `DEAD_TARGET`. Walking every table
//! instead would mean touching other cores' tasks, which only their own
//! core may do. The dead task's own table is freed with the task. The
//! handle stays in the holder's table (and counts against its limit) until
//! it closes it, so the holder can tell "peer died" (`DEAD_TARGET`) from
//! "no such handle" (`INVALID_HANDLE`).
//!
//! # Who pays for a table
//! A table's slots are kernel memory the task made the kernel hold, so
//! they are charged to it: when a table must grow, [`HandleTable::insert`]
//! asks the task's [`SlotBudget`] for the new slots' bytes first, and the
//! growth itself is fallible. Either refusal is `NO_MEMORY` and leaves the
//! table as it was. A table never shrinks; its charge is returned with the
//! task.

use alloc::vec::Vec;

use crate::abi::Status;
use crate::ids::TaskId;

/// Rights bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rights(pub u8);

impl Rights {
    /// Send, call, notify and grant to the target.
    pub const SEND: Rights = Rights(1);
    /// Pass a copy of the capability on (`ipc_grant`, `ipc_send_cap`,
    /// `task_spawn`'s caps, `service_register`, `cap_mint`).
    pub const GRANT: Rights = Rights(2);
    /// End the target (`task_kill`). Only the handle `task_spawn` returns
    /// to the parent has it to begin with.
    pub const KILL: Rights = Rights(4);
    /// What a task has to itself, and services to themselves: send and grant.
    pub const ENDPOINT: Rights = Rights(3);
    pub const ALL: Rights = Rights(7);

    pub fn contains(self, other: Rights) -> bool {
        self.0 & other.0 == other.0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cap {
    pub target: TaskId,
    pub badge: u32,
    pub rights: Rights,
}

/// What pays for a table's growth (the kernel: the task's memory budget).
pub trait SlotBudget {
    /// Charges `bytes`, or refuses them.
    fn try_charge(&mut self, bytes: usize) -> bool;
    /// Returns a charge whose growth then failed.
    fn refund(&mut self, bytes: usize);
}

#[derive(Clone)]
struct Slot {
    generation: u16,
    cap: Option<Cap>,
}

pub struct HandleTable {
    slots: Vec<Slot>,
    limit: usize,
}

/// Heap bytes one slot takes: what a task is charged per slot.
pub const SLOT_BYTES: usize = core::mem::size_of::<Slot>();

/// Slots a table grows by at least (then it doubles, up to its limit).
const MIN_GROWTH: usize = 4;

const SLOT_BITS: u32 = 16;
const SLOT_MASK: u32 = (1 << SLOT_BITS) - 1;

impl HandleTable {
    /// A table that holds at most `limit` capabilities (at most 65535).
    pub fn new(limit: usize) -> Self {
        HandleTable { slots: Vec::new(), limit: limit.min(SLOT_MASK as usize) }
    }

    fn encode(index: usize, generation: u16) -> i32 {
        ((generation as u32 & 0x7FFF) << SLOT_BITS | (index as u32 + 1)) as i32
    }

    fn decode(&self, handle: i32) -> Option<usize> {
        if handle <= 0 {
            return None;
        }
        let h = handle as u32;
        let index = ((h & SLOT_MASK) as usize).checked_sub(1)?;
        let slot = self.slots.get(index)?;
        (slot.generation as u32 & 0x7FFF == h >> SLOT_BITS && slot.cap.is_some()).then_some(index)
    }

    /// Stores `cap` and returns its handle: `QUOTA_EXCEEDED` at the
    /// table's limit, `NO_MEMORY` if `budget` refuses the growth or the
    /// heap cannot provide it.
    pub fn insert(&mut self, cap: Cap, budget: &mut impl SlotBudget) -> Result<i32, Status> {
        if let Some(index) = self.slots.iter().position(|s| s.cap.is_none()) {
            let slot = &mut self.slots[index];
            slot.cap = Some(cap);
            return Ok(Self::encode(index, slot.generation));
        }
        if self.slots.len() >= self.limit {
            return Err(Status::QuotaExceeded);
        }
        if self.slots.len() == self.slots.capacity() {
            let grow = self.slots.capacity().max(MIN_GROWTH).min(self.limit - self.slots.len());
            let bytes = grow * SLOT_BYTES;
            if !budget.try_charge(bytes) {
                return Err(Status::NoMemory);
            }
            if self.slots.try_reserve_exact(grow).is_err() {
                budget.refund(bytes);
                return Err(Status::NoMemory);
            }
        }
        self.slots.push(Slot { generation: 0, cap: Some(cap) });
        Ok(Self::encode(self.slots.len() - 1, 0))
    }

    /// The capability behind `handle`, if it has `rights`.
    pub fn get(&self, handle: i32, rights: Rights) -> Result<Cap, Status> {
        let index = self.decode(handle).ok_or(Status::InvalidHandle)?;
        let cap = self.slots[index].cap.expect("decode checks presence");
        if cap.rights.contains(rights) { Ok(cap) } else { Err(Status::NoCapability) }
    }

    /// Closes `handle`; its slot gets a new generation before reuse.
    pub fn remove(&mut self, handle: i32) -> Result<Cap, Status> {
        let index = self.decode(handle).ok_or(Status::InvalidHandle)?;
        let slot = &mut self.slots[index];
        slot.generation = slot.generation.wrapping_add(1);
        Ok(slot.cap.take().expect("decode checks presence"))
    }

    /// Finds the handle of a capability to `target`, if any.
    pub fn find(&self, target: TaskId) -> Option<i32> {
        self.slots
            .iter()
            .enumerate()
            .find(|(_, s)| s.cap.is_some_and(|c| c.target == target))
            .map(|(i, s)| Self::encode(i, s.generation))
    }

    pub fn len(&self) -> usize {
        self.slots.iter().filter(|s| s.cap.is_some()).count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A budget that never refuses.
    struct Unmetered;

    impl SlotBudget for Unmetered {
        fn try_charge(&mut self, _: usize) -> bool {
            true
        }
        fn refund(&mut self, _: usize) {}
    }

    fn cap(t: u64) -> Cap {
        Cap { target: TaskId(t), badge: t as u32, rights: Rights::ALL }
    }

    #[test]
    fn first_handles_are_one_two_three() {
        let mut t = HandleTable::new(8);
        assert_eq!(t.insert(cap(10), &mut Unmetered), Ok(1));
        assert_eq!(t.insert(cap(11), &mut Unmetered), Ok(2));
        assert_eq!(t.insert(cap(12), &mut Unmetered), Ok(3));
        assert_eq!(t.get(2, Rights::SEND).unwrap().target, TaskId(11));
    }

    #[test]
    fn forged_and_stale_handles_are_rejected() {
        let mut t = HandleTable::new(8);
        let h = t.insert(cap(10), &mut Unmetered).unwrap();
        for forged in [0, -1, 2, 99, h | (5 << 16), i32::MAX] {
            assert_eq!(t.get(forged, Rights::SEND), Err(Status::InvalidHandle), "{forged:#x}");
        }
        t.remove(h).unwrap();
        assert_eq!(t.get(h, Rights::SEND), Err(Status::InvalidHandle));
        let h2 = t.insert(cap(20), &mut Unmetered).unwrap();
        assert_ne!(h, h2, "a reused slot must get a new handle value");
        assert_eq!(t.get(h, Rights::SEND), Err(Status::InvalidHandle), "stale handle reached the new occupant");
        assert_eq!(t.get(h2, Rights::SEND).unwrap().target, TaskId(20));
    }

    #[test]
    fn rights_are_enforced() {
        let mut t = HandleTable::new(8);
        let h = t.insert(Cap { target: TaskId(1), badge: 0, rights: Rights::SEND }, &mut Unmetered).unwrap();
        assert!(t.get(h, Rights::SEND).is_ok());
        assert_eq!(t.get(h, Rights::GRANT), Err(Status::NoCapability));
    }

    #[test]
    fn quota() {
        let mut t = HandleTable::new(2);
        t.insert(cap(1), &mut Unmetered).unwrap();
        t.insert(cap(2), &mut Unmetered).unwrap();
        assert_eq!(t.insert(cap(3), &mut Unmetered), Err(Status::QuotaExceeded));
        assert_eq!(t.len(), 2);
        assert_eq!(t.find(TaskId(2)), Some(2));
    }

    /// A budget of `left` bytes that records what it holds.
    struct Budget {
        left: usize,
        held: usize,
    }

    impl SlotBudget for Budget {
        fn try_charge(&mut self, bytes: usize) -> bool {
            let ok = bytes <= self.left;
            if ok {
                self.left -= bytes;
                self.held += bytes;
            }
            ok
        }
        fn refund(&mut self, bytes: usize) {
            self.left += bytes;
            self.held -= bytes;
        }
    }

    #[test]
    fn growth_is_charged_and_a_refusal_is_no_memory() {
        let mut t = HandleTable::new(1024);
        let mut budget = Budget { left: 20 * SLOT_BYTES, held: 0 };
        for i in 0..16 {
            t.insert(cap(i), &mut budget).unwrap();
        }
        assert_eq!(budget.held, 16 * SLOT_BYTES, "4 slots, then 4 more, then it doubles to 16");
        assert_eq!(t.insert(cap(99), &mut budget), Err(Status::NoMemory), "growth past the budget");
        assert_eq!((t.len(), budget.held), (16, 16 * SLOT_BYTES), "a refused growth leaves all as it was");
        let h = t.find(TaskId(3)).unwrap();
        t.remove(h).unwrap();
        assert!(t.insert(cap(42), &mut budget).is_ok(), "a freed slot is reused without a charge");
        assert_eq!(budget.held, 16 * SLOT_BYTES);
    }
}
