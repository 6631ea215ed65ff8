//! Typed messages: a request, reply or message type says how it is laid
//! out in bytes ([`Wire`]), and [`call`], [`reply`], [`send`] and [`recv`]
//! take and return such types instead of byte slices. Layouts are fixed
//! and little-endian, like every protocol in this repository (the socket
//! protocol, `sysinfo`).
//!
//! ```ignore
//! // client                                  // server
//! let n: u32 = wire::call(server, &41u32)?;  let (info, x) = wire::recv::<u32>(None, None)?;
//!                                            wire::reply(info.reply_token, &(x + 1))?;
//! ```

use crate::{Handle, RecvInfo, Status};

/// A fixed-size, little-endian layout.
pub trait Wire: Sized {
    /// Encoded length, in bytes (at most [`MAX_LEN`]).
    const LEN: usize;
    fn encode(&self, out: &mut [u8]);
    /// `None` if `bytes` is not exactly `LEN` long or not a valid value.
    fn decode(bytes: &[u8]) -> Option<Self>;
}

/// Largest [`Wire::LEN`] these helpers handle.
pub const MAX_LEN: usize = 256;

macro_rules! wire_int {
    ($($t:ty),*) => {$(
        impl Wire for $t {
            const LEN: usize = core::mem::size_of::<$t>();
            fn encode(&self, out: &mut [u8]) {
                out[..Self::LEN].copy_from_slice(&self.to_le_bytes());
            }
            fn decode(bytes: &[u8]) -> Option<Self> {
                Some(<$t>::from_le_bytes(bytes.try_into().ok()?))
            }
        }
    )*};
}

wire_int!(u8, u16, u32, u64, i8, i16, i32, i64);

impl Wire for () {
    const LEN: usize = 0;
    fn encode(&self, _: &mut [u8]) {}
    fn decode(bytes: &[u8]) -> Option<Self> {
        bytes.is_empty().then_some(())
    }
}

impl<A: Wire, B: Wire> Wire for (A, B) {
    const LEN: usize = A::LEN + B::LEN;
    fn encode(&self, out: &mut [u8]) {
        self.0.encode(&mut out[..A::LEN]);
        self.1.encode(&mut out[A::LEN..Self::LEN]);
    }
    fn decode(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != Self::LEN {
            return None;
        }
        Some((A::decode(&bytes[..A::LEN])?, B::decode(&bytes[A::LEN..])?))
    }
}

impl<const N: usize> Wire for [u8; N] {
    const LEN: usize = N;
    fn encode(&self, out: &mut [u8]) {
        out[..N].copy_from_slice(self);
    }
    fn decode(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok()
    }
}

/// Why a typed exchange failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The system call failed.
    Ipc(Status),
    /// What came back is not a value of the expected type.
    Malformed,
}

impl From<Status> for Error {
    fn from(s: Status) -> Self {
        Error::Ipc(s)
    }
}

fn encoded<'a, T: Wire>(value: &T, buf: &'a mut [u8; MAX_LEN]) -> &'a [u8] {
    const { assert!(T::LEN <= MAX_LEN) };
    value.encode(&mut buf[..T::LEN]);
    &buf[..T::LEN]
}

/// `ipc_call` with a typed request and reply.
pub fn call<Q: Wire, R: Wire>(to: Handle, request: &Q) -> Result<R, Error> {
    const { assert!(R::LEN <= MAX_LEN) };
    let mut out = [0u8; MAX_LEN];
    let mut back = [0u8; MAX_LEN];
    let n = crate::call(to, encoded(request, &mut out), &mut back[..R::LEN])?;
    R::decode(&back[..n]).ok_or(Error::Malformed)
}

/// `ipc_reply` with a typed reply.
pub fn reply<R: Wire>(token: u32, value: &R) -> Result<(), Status> {
    let mut out = [0u8; MAX_LEN];
    crate::reply(token, encoded(value, &mut out))
}

/// `ipc_send` with a typed message.
pub fn send<M: Wire>(to: Handle, message: &M) -> Result<(), Status> {
    let mut out = [0u8; MAX_LEN];
    crate::send(to, encoded(message, &mut out))
}

/// `ipc_recv` of a typed message or call (see [`crate::recv`] for `from`
/// and `timeout_ns`). A payload of the wrong size is `Malformed` (and is
/// consumed).
pub fn recv<M: Wire>(from: Option<Handle>, timeout_ns: Option<u64>) -> Result<(RecvInfo, M), Error> {
    const { assert!(M::LEN <= MAX_LEN) };
    let mut buf = [0u8; MAX_LEN];
    let (info, n) = crate::recv(from, &mut buf[..M::LEN], timeout_ns)?;
    Ok((info, M::decode(&buf[..n]).ok_or(Error::Malformed)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<T: Wire + PartialEq + core::fmt::Debug>(value: T) {
        let mut buf = [0u8; MAX_LEN];
        let bytes = encoded(&value, &mut buf);
        assert_eq!(bytes.len(), T::LEN);
        assert_eq!(T::decode(bytes), Some(value));
    }

    #[test]
    fn layouts_round_trip() {
        round_trip(0xdead_beefu32);
        round_trip(-5i64);
        round_trip(());
        round_trip((7u8, (0x1234u16, *b"abcd")));
        let mut buf = [0u8; MAX_LEN];
        assert_eq!(encoded(&(1u16, 2u32), &mut buf), &[1, 0, 2, 0, 0, 0]);
    }

    #[test]
    fn wrong_lengths_are_refused() {
        assert_eq!(u32::decode(&[1, 2, 3]), None);
        assert_eq!(<(u8, u8)>::decode(&[1, 2, 3]), None);
        assert_eq!(<()>::decode(&[0]), None);
    }
}
