//! A bounded byte ring between one producer that must never wait (an
//! interrupt handler: the kernel's COM1 receive interrupt) and one consumer
//! (whoever reads the console: the stdin reader's core).
//!
//! Why not a lock or the cross-core [`crate::ring`]: the producer runs in
//! interrupt context, where taking a lock the interrupted code may hold
//! would deadlock and allocating is not allowed. Here the producer only
//! loads the consumer's index, stores a byte and publishes its own index;
//! a full ring drops the byte and counts it ([`ByteRing::dropped`]), so
//! the producer never blocks and memory never grows.
//!
//! One producer and one consumer at a time: the indices are each written
//! by one side only. The kernel keeps it so (the handler runs on one core
//! with interrupts off; readers go through one lock). Misuse cannot cause
//! undefined behaviour (there is no `unsafe` here: the slots are atomics),
//! only mixed-up bytes.

use core::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};

/// A ring of `N` bytes.
pub struct ByteRing<const N: usize> {
    slots: [AtomicU8; N],
    /// Bytes ever pushed (the producer's index; wraps).
    head: AtomicUsize,
    /// Bytes ever taken (the consumer's index; wraps).
    tail: AtomicUsize,
    dropped: AtomicU64,
}

impl<const N: usize> Default for ByteRing<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> ByteRing<N> {
    /// An empty ring (usable in a `static`).
    pub const fn new() -> Self {
        assert!(N > 0, "a ring needs room");
        ByteRing {
            slots: [const { AtomicU8::new(0) }; N],
            head: AtomicUsize::new(0),
            tail: AtomicUsize::new(0),
            dropped: AtomicU64::new(0),
        }
    }

    /// Producer: appends `byte`, or drops and counts it when the ring is
    /// full. Returns whether it was kept. Never waits.
    pub fn push(&self, byte: u8) -> bool {
        let head = self.head.load(Ordering::Relaxed);
        let tail = self.tail.load(Ordering::Acquire);
        if head.wrapping_sub(tail) >= N {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        self.slots[head % N].store(byte, Ordering::Relaxed);
        // Publishes the byte: a consumer that sees the new head sees it.
        self.head.store(head.wrapping_add(1), Ordering::Release);
        true
    }

    /// Consumer: moves up to `out.len()` bytes, oldest first, into `out`;
    /// how many.
    pub fn pop_into(&self, out: &mut [u8]) -> usize {
        let tail = self.tail.load(Ordering::Relaxed);
        let head = self.head.load(Ordering::Acquire);
        let n = head.wrapping_sub(tail).min(out.len());
        for (i, b) in out[..n].iter_mut().enumerate() {
            *b = self.slots[tail.wrapping_add(i) % N].load(Ordering::Relaxed);
        }
        // Frees the slots: the producer that sees the new tail may reuse them.
        self.tail.store(tail.wrapping_add(n), Ordering::Release);
        n
    }

    /// Bytes waiting.
    pub fn len(&self) -> usize {
        self.head.load(Ordering::Acquire).wrapping_sub(self.tail.load(Ordering::Acquire)).min(N)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes dropped because the ring was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    pub const fn capacity(&self) -> usize {
        N
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_and_loses_nothing_when_not_full() {
        let ring = ByteRing::<8>::new();
        let mut out = [0u8; 8];
        let mut next = 0u8;
        let mut seen = alloc::vec::Vec::new();
        // Many laps around the ring, in uneven batches.
        for round in 0..200usize {
            for _ in 0..(round % 7) + 1 {
                assert!(ring.push(next));
                next = next.wrapping_add(1);
            }
            let n = ring.pop_into(&mut out[..(round % 5) + 3]);
            seen.extend_from_slice(&out[..n]);
            let n = ring.pop_into(&mut out);
            seen.extend_from_slice(&out[..n]);
            assert!(ring.is_empty());
        }
        assert_eq!(ring.dropped(), 0);
        let expected: alloc::vec::Vec<u8> = (0..seen.len()).map(|i| i as u8).collect();
        assert_eq!(seen, expected);
    }

    #[test]
    fn full_ring_drops_and_counts() {
        let ring = ByteRing::<4>::new();
        for b in 0..4 {
            assert!(ring.push(b));
        }
        assert!(!ring.push(4));
        assert!(!ring.push(5));
        assert_eq!(ring.dropped(), 2);
        assert_eq!(ring.len(), 4);
        let mut out = [0u8; 10];
        assert_eq!(ring.pop_into(&mut out), 4);
        assert_eq!(&out[..4], &[0, 1, 2, 3], "the oldest bytes are kept, the newest dropped");
        // Room again.
        assert!(ring.push(6));
        assert_eq!(ring.pop_into(&mut out), 1);
        assert_eq!(out[0], 6);
        assert_eq!(ring.dropped(), 2);
    }

    #[test]
    fn concurrent_producer_and_consumer() {
        static RING: ByteRing<16> = ByteRing::new();
        const COUNT: usize = 100_000;
        let producer = std::thread::spawn(|| {
            let mut kept = alloc::vec::Vec::new();
            for i in 0..COUNT {
                if RING.push(i as u8) {
                    kept.push(i as u8);
                }
            }
            kept
        });
        let mut got = alloc::vec::Vec::new();
        let mut out = [0u8; 5];
        while !producer.is_finished() || !RING.is_empty() {
            let n = RING.pop_into(&mut out);
            got.extend_from_slice(&out[..n]);
        }
        let kept = producer.join().unwrap();
        assert_eq!(got, kept, "every kept byte arrives once, in order");
        assert_eq!(kept.len() as u64 + RING.dropped(), COUNT as u64);
    }
}
