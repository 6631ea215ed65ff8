//! Messages in flight: the fixed header and the owned payload.
//!
//! Owns [`Payload`] (the bytes of a message, copied out of the sender's
//! linear memory with a size check) and [`Message`] (header fields plus
//! payload plus an optional transferred capability), and the bounds-checked
//! copy out to a receiver ([`Payload::copy_to`]).
//!
//! # No allocation for small messages
//! Most requests and replies are a few words (a token, an opcode and an
//! argument, a status). A payload of at most [`INLINE_PAYLOAD`] bytes is
//! stored inline in the [`Payload`] itself, so sending it costs no heap
//! allocation on the sender's core and no free on the receiver's core;
//! larger payloads (up to [`MAX_PAYLOAD`]) get one exact-size boxed slice.
//! The inline size keeps a `Payload` at 56 bytes, so a ring slot stays
//! about one and a half cache lines.
//!
//! The header a receiver sees in its linear memory is
//! [`RecvInfo`](crate::abi::RecvInfo) (the ABI); [`Message::info`] builds it.

use alloc::boxed::Box;

use crate::abi::{Kind, MAX_PAYLOAD, RecvInfo, Status};
use crate::caps::Cap;

/// Payloads up to this many bytes live inline (no heap allocation).
pub const INLINE_PAYLOAD: usize = 48;

/// The bytes of a message: at most [`MAX_PAYLOAD`], owned.
#[derive(Clone, PartialEq, Eq)]
pub struct Payload(Repr);

#[derive(Clone, PartialEq, Eq)]
enum Repr {
    Inline { len: u8, bytes: [u8; INLINE_PAYLOAD] },
    Heap(Box<[u8]>),
}

impl Payload {
    /// The empty payload.
    pub const EMPTY: Payload = Payload(Repr::Inline { len: 0, bytes: [0; INLINE_PAYLOAD] });

    /// Copies `bytes` (for example, a range of the sender's linear memory).
    /// More than [`MAX_PAYLOAD`] bytes is `TOO_LARGE`; a heap that cannot
    /// hold the copy is `NO_MEMORY` (a task drives this allocation, so it
    /// must not end the kernel).
    pub fn copy_from(bytes: &[u8]) -> Result<Payload, Status> {
        if bytes.len() > MAX_PAYLOAD {
            return Err(Status::TooLarge);
        }
        if bytes.len() <= INLINE_PAYLOAD {
            let mut inline = [0u8; INLINE_PAYLOAD];
            inline[..bytes.len()].copy_from_slice(bytes);
            return Ok(Payload(Repr::Inline { len: bytes.len() as u8, bytes: inline }));
        }
        let mut heap = alloc::vec::Vec::new();
        heap.try_reserve_exact(bytes.len()).map_err(|_| Status::NoMemory)?;
        heap.extend_from_slice(bytes);
        Ok(Payload(Repr::Heap(heap.into_boxed_slice())))
    }

    pub fn as_slice(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { len, bytes } => &bytes[..*len as usize],
            Repr::Heap(b) => b,
        }
    }

    pub fn len(&self) -> usize {
        self.as_slice().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the bytes are stored inline (no heap allocation was made).
    pub fn is_inline(&self) -> bool {
        matches!(self.0, Repr::Inline { .. })
    }

    /// Copies the payload to the start of `dst` and returns its length;
    /// `TOO_LARGE` (and `dst` untouched) if `dst` is shorter.
    pub fn copy_to(&self, dst: &mut [u8]) -> Result<usize, Status> {
        let bytes = self.as_slice();
        let dst = dst.get_mut(..bytes.len()).ok_or(Status::TooLarge)?;
        dst.copy_from_slice(bytes);
        Ok(bytes.len())
    }
}

impl Default for Payload {
    fn default() -> Self {
        Payload::EMPTY
    }
}

impl core::fmt::Debug for Payload {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Payload({} bytes{})", self.len(), if self.is_inline() { ", inline" } else { "" })
    }
}

/// A message or call on its way to a task: the header fields the receiver
/// will see, the payload, and an optional capability travelling with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The badge of the capability the sender used.
    pub badge: u32,
    pub payload: Payload,
    /// A capability transferred with the message (`ipc_send_cap`): the
    /// receiver gets a new handle for it in its own table.
    pub transfer: Option<Cap>,
}

impl Message {
    pub fn new(badge: u32, payload: Payload) -> Message {
        Message { badge, payload, transfer: None }
    }

    /// The [`RecvInfo`] for this message, received as `kind`; `handle` is
    /// the reply token (calls) or the transferred capability's new handle
    /// (messages), 0 for none.
    pub fn info(&self, kind: Kind, handle: u32) -> RecvInfo {
        RecvInfo { kind: kind as u32, len: self.payload.len() as u32, badge: self.badge, reply_token: handle, bits: 0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::caps::Rights;
    use crate::ids::TaskId;

    #[test]
    fn small_payloads_are_inline_large_ones_boxed() {
        let small = Payload::copy_from(b"ping").unwrap();
        assert!(small.is_inline());
        assert_eq!(small.as_slice(), b"ping");
        let edge = Payload::copy_from(&[7u8; INLINE_PAYLOAD]).unwrap();
        assert!(edge.is_inline());
        assert_eq!(edge.len(), INLINE_PAYLOAD);
        let big = Payload::copy_from(&[9u8; INLINE_PAYLOAD + 1]).unwrap();
        assert!(!big.is_inline());
        assert_eq!(big.as_slice(), &[9u8; INLINE_PAYLOAD + 1][..]);
        assert!(Payload::EMPTY.is_empty());
        assert_eq!(Payload::default(), Payload::copy_from(&[]).unwrap());
    }

    #[test]
    fn payload_size_is_bounded_both_ways() {
        assert_eq!(Payload::copy_from(&[0u8; MAX_PAYLOAD]).map(|p| p.len()), Ok(MAX_PAYLOAD));
        assert_eq!(Payload::copy_from(&[0u8; MAX_PAYLOAD + 1]), Err(Status::TooLarge));
        let p = Payload::copy_from(b"hello").unwrap();
        let mut short = [0u8; 4];
        assert_eq!(p.copy_to(&mut short), Err(Status::TooLarge));
        assert_eq!(short, [0; 4], "a failed copy leaves the buffer alone");
        let mut buf = [0u8; 8];
        assert_eq!(p.copy_to(&mut buf), Ok(5));
        assert_eq!(&buf[..5], b"hello");
    }

    #[test]
    fn payload_stays_small() {
        assert!(core::mem::size_of::<Payload>() <= 56, "{}", core::mem::size_of::<Payload>());
    }

    #[test]
    fn info_carries_header_fields() {
        let mut m = Message::new(42, Payload::copy_from(b"abc").unwrap());
        m.transfer = Some(Cap { target: TaskId(3), badge: 1, rights: Rights::SEND });
        let info = m.info(Kind::Message, 5);
        assert_eq!(info, RecvInfo { kind: Kind::Message as u32, len: 3, badge: 42, reply_token: 5, bits: 0 });
    }
}
