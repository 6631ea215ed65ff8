//! The per-core inbox: a bounded lock-free MPSC ring plus a sleep flag.
//!
//! Any core may push; only the owning core pops. The queue is crossbeam's
//! `ArrayQueue` (bounded, lock-free, no allocation after creation). A full
//! ring is back-pressure: [`Mailbox::push`] hands the item back, and the
//! sender is told (`WOULD_BLOCK`); nothing is dropped.
//!
//! # Waking a sleeping core, without losing a wake-up
//!
//! A core with nothing to do halts. A producer must wake it only when it
//! sleeps (an IPI to a running core is wasted work) and must never leave it
//! asleep with a message queued. Both sides follow a Dekker-style protocol:
//!
//! ```text
//! consumer (owning core)                 producer (any core)
//!   interrupts off                         push(item)
//!   sleeping := true                       fence(SeqCst)
//!   fence(SeqCst)                          if sleeping.swap(false):
//!   if queue not empty:                        send wake-up (IPI)
//!       sleeping := false; don't sleep
//!   else: sti; hlt   (atomic on x86)
//!   sleeping := false
//! ```
//!
//! The two fences order each side's store before its load, so at least one
//! side sees the other: either the consumer sees the item and stays awake,
//! or the producer sees `sleeping` and sends the wake-up. On x86, `sti; hlt`
//! takes a pending interrupt right after `hlt` starts, so an IPI that lands
//! between the check and the halt still wakes the core. `swap(false)` makes
//! exactly one of several racing producers send the IPI.
//!
//! # Checked two ways
//! - The loom model checker explores every interleaving (and every
//!   reordering the memory model allows) of a consumer going to sleep
//!   against one or two producers, and asserts that the consumer is never
//!   left asleep with an item queued and no wake-up on its way
//!   (`loom_tests` below; `cargo xtask test` runs it as
//!   `host::ring_model_check`). Under loom the queue is a model with
//!   *weaker* ordering than crossbeam's (see `model`; crossbeam's queue is
//!   not loom-aware and is checked by its own authors): what is checked is
//!   the protocol around it. Removing either fence makes the check fail.
//! - A stress test with 8 producers and a consumer that really parks.

#[cfg(not(loom))]
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering, fence};
#[cfg(loom)]
use loom::sync::atomic::{AtomicBool, AtomicU64, Ordering, fence};

#[cfg(not(loom))]
use crossbeam_queue::ArrayQueue;
#[cfg(loom)]
use model::ArrayQueue;

/// A bounded queue with `ArrayQueue`'s interface, for loom. Emptiness is
/// an atomic count published with Release and read with Acquire: weaker
/// than crossbeam's queue (which uses SeqCst on its indices), so a
/// protocol that is correct over this model is correct over the real one.
/// The items themselves sit behind a mutex that `is_empty` never takes, so
/// the mutex adds no ordering the real queue would not have.
#[cfg(loom)]
mod model {
    use loom::sync::atomic::{AtomicUsize, Ordering};
    use std::collections::VecDeque;

    pub struct ArrayQueue<T> {
        items: loom::sync::Mutex<VecDeque<T>>,
        len: AtomicUsize,
        capacity: usize,
    }

    impl<T> ArrayQueue<T> {
        pub fn new(capacity: usize) -> Self {
            ArrayQueue { items: loom::sync::Mutex::new(VecDeque::new()), len: AtomicUsize::new(0), capacity }
        }
        pub fn push(&self, item: T) -> Result<(), T> {
            let mut items = self.items.lock().unwrap();
            if items.len() == self.capacity {
                return Err(item);
            }
            items.push_back(item);
            drop(items);
            self.len.fetch_add(1, Ordering::Release);
            Ok(())
        }
        pub fn pop(&self) -> Option<T> {
            if self.len.load(Ordering::Acquire) == 0 {
                return None;
            }
            let item = self.items.lock().unwrap().pop_front();
            self.len.fetch_sub(1, Ordering::AcqRel);
            item
        }
        pub fn is_empty(&self) -> bool {
            self.len.load(Ordering::Acquire) == 0
        }
    }
}

/// What a successful push asks of the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    /// Queued; the consumer is awake (or another producer is waking it).
    Delivered,
    /// Queued, and the consumer was asleep: the caller must wake it (IPI
    /// on bare metal, condvar/unpark when hosted). Exactly one of several
    /// racing producers gets this.
    DeliveredWakeNeeded,
}

/// The ring was full: the item comes back to the caller, which reports
/// back-pressure (`WOULD_BLOCK`) or retries later. Nothing is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full<T>(pub T);

pub struct Mailbox<T> {
    queue: ArrayQueue<T>,
    sleeping: AtomicBool,
    pushed: AtomicU64,
    rejected: AtomicU64,
}

impl<T> Mailbox<T> {
    pub fn new(capacity: usize) -> Self {
        Mailbox {
            queue: ArrayQueue::new(capacity),
            sleeping: AtomicBool::new(false),
            pushed: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
        }
    }

    /// Queues `item`; on a full ring gives it back.
    pub fn push(&self, item: T) -> Result<PushOutcome, Full<T>> {
        if let Err(item) = self.queue.push(item) {
            self.rejected.fetch_add(1, Ordering::Relaxed);
            return Err(Full(item));
        }
        self.pushed.fetch_add(1, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        if self.sleeping.load(Ordering::Relaxed) && self.sleeping.swap(false, Ordering::AcqRel) {
            Ok(PushOutcome::DeliveredWakeNeeded)
        } else {
            Ok(PushOutcome::Delivered)
        }
    }

    /// Takes the oldest item (owning core only, by convention).
    pub fn pop(&self) -> Option<T> {
        self.queue.pop()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Announces that the consumer is about to sleep. Returns `false` if an
    /// item is already queued (then the consumer must not sleep). Call with
    /// interrupts disabled on bare metal, and halt with `sti; hlt`.
    pub fn prepare_sleep(&self) -> bool {
        self.sleeping.store(true, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        if self.queue.is_empty() {
            true
        } else {
            self.sleeping.store(false, Ordering::Relaxed);
            false
        }
    }

    /// The consumer is awake again.
    pub fn woke(&self) {
        self.sleeping.store(false, Ordering::Relaxed);
    }

    pub fn is_sleeping(&self) -> bool {
        self.sleeping.load(Ordering::Relaxed)
    }

    /// Items accepted and refused (full) since creation.
    pub fn counters(&self) -> (u64, u64) {
        (self.pushed.load(Ordering::Relaxed), self.rejected.load(Ordering::Relaxed))
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;
    use loom::sync::atomic::AtomicUsize;

    /// The consumer checks its ring and, finding it empty, announces sleep;
    /// `producers` threads each push one item and send a wake-up when told
    /// to. Whatever the interleaving: a consumer that decided to sleep is
    /// never left with an item queued and no wake-up sent, and at most one
    /// wake-up is sent per sleep.
    fn no_lost_wakeup(producers: usize) {
        loom::model(move || {
            let mailbox = Arc::new(Mailbox::new(4));
            let wakeups = Arc::new(AtomicUsize::new(0));
            let threads: Vec<_> = (0..producers)
                .map(|p| {
                    let (mailbox, wakeups) = (mailbox.clone(), wakeups.clone());
                    loom::thread::spawn(move || {
                        if mailbox.push(p) == Ok(PushOutcome::DeliveredWakeNeeded) {
                            wakeups.fetch_add(1, Ordering::Relaxed);
                        }
                    })
                })
                .collect();
            // The consumer: drain, then decide whether to halt.
            let mut received = 0;
            while mailbox.pop().is_some() {
                received += 1;
            }
            let asleep = mailbox.prepare_sleep();
            for t in threads {
                t.join().unwrap();
            }
            let woken = wakeups.load(Ordering::Relaxed);
            assert!(woken <= 1, "{woken} wake-ups for one sleep");
            if asleep && woken == 0 {
                // Halted with nobody coming to wake it: nothing may be queued.
                assert!(mailbox.is_empty(), "lost wake-up: asleep, item queued, no IPI");
            }
            if !asleep {
                // It stayed awake because something was queued (or a
                // producer raced in): it will find every item.
                while mailbox.pop().is_some() {
                    received += 1;
                }
                assert_eq!(received, producers);
            }
        });
    }

    #[test]
    fn one_producer() {
        no_lost_wakeup(1);
    }

    #[test]
    fn two_producers() {
        no_lost_wakeup(2);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn full_ring_gives_the_item_back() {
        let m = Mailbox::new(2);
        assert!(m.push(1).is_ok());
        assert!(m.push(2).is_ok());
        assert_eq!(m.push(3), Err(Full(3)));
        assert_eq!(m.counters(), (2, 1));
        assert_eq!(m.pop(), Some(1));
        assert!(m.push(3).is_ok());
    }

    #[test]
    fn wake_needed_only_when_sleeping_and_only_once() {
        let m = Mailbox::new(8);
        assert_eq!(m.push(1), Ok(PushOutcome::Delivered));
        assert!(!m.prepare_sleep(), "must not sleep with an item queued");
        assert!(!m.is_sleeping());
        m.pop();
        assert!(m.prepare_sleep());
        assert_eq!(m.push(2), Ok(PushOutcome::DeliveredWakeNeeded));
        assert_eq!(m.push(3), Ok(PushOutcome::Delivered), "second producer must not wake again");
    }

    /// 8 producers, 1 consumer that really parks when the protocol lets it:
    /// every message arrives exactly once, in order per producer, and the
    /// consumer is never left asleep with work queued (the test would hang).
    /// 2 M messages in a debug build, 4 M in release. The producers start
    /// only once the consumer is parked, so the wake path runs at least once.
    #[test]
    fn stress_eight_producers_one_sleeping_consumer() {
        const PRODUCERS: u64 = 8;
        const PER_PRODUCER: u64 = if cfg!(debug_assertions) { 250_000 } else { 500_000 };
        let started = std::time::Instant::now();
        let mailbox = Arc::new(Mailbox::<u64>::new(256));
        let wakeups = Arc::new(AtomicUsize::new(0));
        let consumer_thread = {
            let mailbox = mailbox.clone();
            std::thread::spawn(move || {
                let mut next = vec![0u64; PRODUCERS as usize];
                let mut received = 0u64;
                let (mut parks, mut announced) = (0u64, 0u64);
                while received < PRODUCERS * PER_PRODUCER {
                    match mailbox.pop() {
                        Some(v) => {
                            let (p, seq) = ((v >> 40) as usize, v & ((1 << 40) - 1));
                            assert_eq!(seq, next[p], "producer {p}: out of order or duplicated");
                            next[p] += 1;
                            received += 1;
                        }
                        None => {
                            announced += 1;
                            if mailbox.prepare_sleep() {
                                parks += 1;
                                // A wake-up that raced ahead leaves a token,
                                // so park returns at once: no lost wake-up.
                                std::thread::park();
                                mailbox.woke();
                            }
                        }
                    }
                }
                assert!(mailbox.pop().is_none(), "more messages than sent");
                (next, parks, announced)
            })
        };
        let consumer = consumer_thread.thread().clone();
        while !mailbox.is_sleeping() {
            std::thread::yield_now();
        }
        let producers: Vec<_> = (0..PRODUCERS)
            .map(|p| {
                let mailbox = mailbox.clone();
                let consumer = consumer.clone();
                let wakeups = wakeups.clone();
                std::thread::spawn(move || {
                    for seq in 0..PER_PRODUCER {
                        let mut item = (p << 40) | seq;
                        loop {
                            match mailbox.push(item) {
                                Ok(PushOutcome::DeliveredWakeNeeded) => {
                                    wakeups.fetch_add(1, Ordering::Relaxed);
                                    consumer.unpark();
                                    break;
                                }
                                Ok(PushOutcome::Delivered) => break,
                                Err(Full(back)) => {
                                    item = back;
                                    std::thread::yield_now();
                                }
                            }
                        }
                    }
                })
            })
            .collect();
        for p in producers {
            p.join().unwrap();
        }
        let (next, parks, announced) = consumer_thread.join().unwrap();
        assert!(next.iter().all(|&n| n == PER_PRODUCER), "{next:?}");
        let wakeups = wakeups.load(Ordering::Relaxed) as u64;
        assert!(parks >= 1 && wakeups >= 1, "the sleep/wake path never ran");
        // Every real park needed a wake-up; at most one wake-up per
        // announced sleep (`swap` dedupes racing producers; one may find a
        // consumer that saw the item and stayed awake: a spurious IPI).
        assert!(parks <= wakeups && wakeups <= announced, "parks {parks}, wake-ups {wakeups}, announced {announced}");
        let (pushed, refused) = mailbox.counters();
        assert_eq!(pushed, PRODUCERS * PER_PRODUCER);
        std::eprintln!(
            "ring stress: {pushed} messages, {refused} refused (full), {parks} parks, {wakeups} wake-ups, {:?}",
            started.elapsed()
        );
    }
}
