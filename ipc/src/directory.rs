//! The directory of live tasks, read and updated by every core without a
//! lock: which core a task lives on, whether it is still alive, and how
//! many one-way items are queued for it.
//!
//! # Ids name their slot and their core
//! A [`TaskId`] is `generation (40 bits) | home core (8) | slot (16)`. The
//! home core never changes (tasks are pinned), so routing a message is
//! arithmetic on the id: no lookup, no shared memory. Each slot holds one
//! word, `generation << 24 | queued`: the generation of the task living
//! there (0 = free) and its count of queued one-way items. A sender
//! reserves an inbox place with one compare-and-swap on that word, which
//! fails if the slot's generation is no longer the id's (the task died, and
//! maybe another took the slot) or if [`INBOX_CAPACITY`] items are already
//! queued. Calls and replies are not counted; they only need liveness, one
//! load of the word. A task that dies between that check and the arrival
//! of the item is found missing by its core, which bounces calls with
//! `DEAD_TARGET` (the core's own table is the final word on liveness).
//!
//! A slot's generation goes up by one each time it is reused, and slots are
//! taken round robin, so an id names one task: a stale id would have to
//! outlive 2^40 reuses of its slot to alias a newer task.
//!
//! # Checked by loom
//! `loom_tests` below: senders on two cores reserving against the owner
//! receiving, dying, and its slot being reused. The bound holds, and no
//! reservation made for the dead task is counted against the new one.

#[cfg(not(loom))]
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
#[cfg(loom)]
use loom::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use alloc::boxed::Box;

use crate::abi::{INBOX_CAPACITY, Status};
use crate::ids::TaskId;

const SLOT_BITS: u32 = 16;
const CORE_BITS: u32 = 8;
const GEN_BITS: u32 = 40;
const QUEUE_BITS: u32 = 24;
const GEN_MASK: u64 = (1 << GEN_BITS) - 1;
const QUEUE_MASK: u64 = (1 << QUEUE_BITS) - 1;

/// Largest number of slots (tasks and services alive at once).
pub const MAX_SLOTS: usize = 1 << SLOT_BITS;
/// Largest core number an id can carry, plus one.
pub const MAX_CORES: usize = 1 << CORE_BITS;

const _: () = assert!(INBOX_CAPACITY as u64 <= QUEUE_MASK);

impl TaskId {
    /// Its slot in the directory (a small index, unique among live tasks).
    pub fn slot(self) -> usize {
        (self.0 & (MAX_SLOTS as u64 - 1)) as usize
    }

    fn generation(self) -> u64 {
        self.0 >> (SLOT_BITS + CORE_BITS)
    }

    /// The core the task lives on (it never moves).
    pub fn core(self) -> usize {
        ((self.0 >> SLOT_BITS) & (MAX_CORES as u64 - 1)) as usize
    }
}

struct Slot {
    /// `generation << QUEUE_BITS | queued`; generation 0 = no task.
    word: AtomicU64,
    /// Owned by whoever set it (allocation), until the task is removed.
    taken: AtomicBool,
    /// The generation the slot's last task had (the next one gets +1).
    last: AtomicU64,
}

pub struct Directory {
    slots: Box<[Slot]>,
    /// Where the next allocation starts looking (round robin).
    cursor: AtomicUsize,
    live: AtomicUsize,
}

impl Directory {
    /// A directory for at most `capacity` live tasks (at most [`MAX_SLOTS`]).
    pub fn new(capacity: usize) -> Directory {
        let capacity = capacity.clamp(1, MAX_SLOTS);
        let slots = (0..capacity)
            .map(|_| Slot { word: AtomicU64::new(0), taken: AtomicBool::new(false), last: AtomicU64::new(0) })
            .collect();
        Directory { slots, cursor: AtomicUsize::new(0), live: AtomicUsize::new(0) }
    }

    /// Enters a new task living on `core`; `QUOTA_EXCEEDED` when every slot
    /// is taken, `INVALID_ARGUMENT` for a core an id cannot name.
    pub fn insert(&self, core: usize) -> Result<TaskId, Status> {
        if core >= MAX_CORES {
            return Err(Status::InvalidArgument);
        }
        let n = self.slots.len();
        for _ in 0..n {
            let index = self.cursor.fetch_add(1, Ordering::Relaxed) % n;
            let slot = &self.slots[index];
            if slot.taken.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
                continue;
            }
            // The slot is ours until `remove`: nobody else writes it.
            let generation = match (slot.last.load(Ordering::Relaxed) + 1) & GEN_MASK {
                0 => 1,
                g => g,
            };
            slot.last.store(generation, Ordering::Relaxed);
            slot.word.store(generation << QUEUE_BITS, Ordering::Release);
            self.live.fetch_add(1, Ordering::Relaxed);
            let id = generation << (SLOT_BITS + CORE_BITS) | (core as u64) << SLOT_BITS | index as u64;
            return Ok(TaskId(id));
        }
        Err(Status::QuotaExceeded)
    }

    /// Ends `id`: it is dead to every sender from now on, and its queued
    /// count is forgotten with it. Removing a dead id does nothing.
    pub fn remove(&self, id: TaskId) {
        let Some(slot) = self.slot(id) else { return };
        let generation = id.generation();
        let ended = slot
            .word
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |w| (w >> QUEUE_BITS == generation).then_some(0));
        if ended.is_ok() {
            self.live.fetch_sub(1, Ordering::Relaxed);
            slot.taken.store(false, Ordering::Release);
        }
    }

    fn slot(&self, id: TaskId) -> Option<&Slot> {
        self.slots.get(id.slot()).filter(|_| id.generation() != 0)
    }

    /// Whether `id` is alive (a snapshot: it may die right after).
    pub fn is_alive(&self, id: TaskId) -> bool {
        self.slot(id).is_some_and(|s| s.word.load(Ordering::Acquire) >> QUEUE_BITS == id.generation())
    }

    /// Reserves a place in `id`'s inbox for one one-way item and returns
    /// the core it lives on: `DEAD_TARGET` if it is gone, `WOULD_BLOCK` if
    /// [`INBOX_CAPACITY`] items are already queued for it. A reservation
    /// whose item is then not sent goes back with [`Directory::unreserve`];
    /// the receiver gives one back per item with [`Directory::received`].
    pub fn reserve(&self, id: TaskId) -> Result<usize, Status> {
        let slot = self.slot(id).ok_or(Status::DeadTarget)?;
        let mut word = slot.word.load(Ordering::Relaxed);
        loop {
            if word >> QUEUE_BITS != id.generation() {
                return Err(Status::DeadTarget);
            }
            if word & QUEUE_MASK >= INBOX_CAPACITY as u64 {
                return Err(Status::WouldBlock);
            }
            match slot.word.compare_exchange_weak(word, word + 1, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => return Ok(id.core()),
                Err(now) => word = now,
            }
        }
    }

    /// Gives back a reservation whose item was not sent. Nothing to give
    /// if the task died meanwhile (its count went with it).
    pub fn unreserve(&self, id: TaskId) {
        self.received(id)
    }

    /// The task received (or dropped) one counted item.
    pub fn received(&self, id: TaskId) {
        let Some(slot) = self.slot(id) else { return };
        let mut word = slot.word.load(Ordering::Relaxed);
        while word >> QUEUE_BITS == id.generation() && word & QUEUE_MASK > 0 {
            match slot.word.compare_exchange_weak(word, word - 1, Ordering::Release, Ordering::Relaxed) {
                Ok(_) => return,
                Err(now) => word = now,
            }
        }
    }

    /// One-way items queued for `id` now (0 for a dead id).
    pub fn queued(&self, id: TaskId) -> usize {
        match self.slot(id).map(|s| s.word.load(Ordering::Acquire)) {
            Some(w) if w >> QUEUE_BITS == id.generation() => (w & QUEUE_MASK) as usize,
            _ => 0,
        }
    }

    /// Tasks alive now.
    pub fn len(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;

    /// Two senders race for the last inbox place of a task (and give it
    /// back, as after a full ring), while its owner receives one item,
    /// then the task dies and a new task takes the slot. Every
    /// interleaving: the new task starts (and stays) at zero, no
    /// reservation or release for the dead task lands on it, and the dead
    /// id is refused.
    #[test]
    fn reservations_never_leak_across_generations() {
        loom::model(|| {
            let dir = Arc::new(Directory::new(1));
            let old = dir.insert(0).unwrap();
            // One place left (set directly: a loop of reservations would
            // make the model too long to explore).
            let generation = dir.slots[0].word.load(Ordering::Relaxed) >> QUEUE_BITS;
            dir.slots[0].word.store(generation << QUEUE_BITS | (INBOX_CAPACITY as u64 - 1), Ordering::Relaxed);
            let senders: Vec<_> = (0..2)
                .map(|_| {
                    let dir = dir.clone();
                    loom::thread::spawn(move || match dir.reserve(old) {
                        // As if the ring was full: give it back.
                        Ok(_) => dir.unreserve(old),
                        Err(s) => assert!(s == Status::WouldBlock || s == Status::DeadTarget),
                    })
                })
                .collect();
            dir.received(old);
            dir.remove(old);
            let new = dir.insert(1).unwrap();
            assert_ne!(new, old);
            for t in senders {
                t.join().unwrap();
            }
            assert!(!dir.is_alive(old));
            assert_eq!(dir.queued(new), 0);
            assert_eq!(dir.reserve(old), Err(Status::DeadTarget));
        });
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn ids_carry_their_core_and_die_once() {
        let dir = Directory::new(4);
        let a = dir.insert(3).unwrap();
        assert_eq!(a.core(), 3);
        assert!(dir.is_alive(a));
        dir.remove(a);
        assert!(!dir.is_alive(a));
        assert_eq!(dir.reserve(a), Err(Status::DeadTarget));
        dir.remove(a);
        assert_eq!(dir.len(), 0);
        // Slots are reused, ids never are.
        let ids: Vec<TaskId> = (0..8)
            .map(|_| {
                let id = dir.insert(0).unwrap();
                dir.remove(id);
                id
            })
            .collect();
        let mut unique = ids.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), ids.len());
        assert!(!ids.contains(&a));
    }

    #[test]
    fn full_directory_is_a_quota_error() {
        let dir = Directory::new(2);
        let a = dir.insert(0).unwrap();
        dir.insert(1).unwrap();
        assert_eq!(dir.insert(0), Err(Status::QuotaExceeded));
        dir.remove(a);
        assert!(dir.insert(0).is_ok());
        assert_eq!(dir.insert(MAX_CORES), Err(Status::InvalidArgument));
    }

    #[test]
    fn inbox_bound_and_release() {
        let dir = Directory::new(1);
        let a = dir.insert(0).unwrap();
        for _ in 0..INBOX_CAPACITY {
            assert_eq!(dir.reserve(a), Ok(0));
        }
        assert_eq!(dir.reserve(a), Err(Status::WouldBlock));
        dir.received(a);
        assert_eq!(dir.queued(a), INBOX_CAPACITY - 1);
        dir.unreserve(a);
        assert_eq!(dir.queued(a), INBOX_CAPACITY - 2);
        assert!(dir.reserve(a).is_ok());
        // A stale id's release touches nothing of the slot's next task.
        dir.remove(a);
        let b = dir.insert(0).unwrap();
        dir.received(a);
        dir.reserve(b).unwrap();
        assert_eq!(dir.queued(b), 1);
    }

    #[test]
    fn racing_senders_never_pass_the_bound() {
        use std::sync::Arc;
        let dir = Arc::new(Directory::new(1));
        let a = dir.insert(0).unwrap();
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let dir = dir.clone();
                std::thread::spawn(move || (0..1000).filter(|_| dir.reserve(a).is_ok()).count())
            })
            .collect();
        let got: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(got, INBOX_CAPACITY);
        assert_eq!(dir.queued(a), INBOX_CAPACITY);
    }
}
