//! The TCP socket service (`tcp`), for the kernel and the hosted runtime.
//!
//! Owns the server side of the socket protocol ([`wasmos_ipc::net`]):
//! which task owns which socket, `POLL` callers waiting for readiness,
//! closing a dead task's sockets. It is a [`wasmos_sched::NativeService`]:
//! a Rust server on one core that Wasm tasks reach through ordinary IPC.
//! What actually moves bytes is a [`Backend`]:
//!
//! - [`stack`] (feature `smoltcp`): smoltcp's TCP/IP over any
//!   `smoltcp::phy::Device`; the kernel gives it virtio-net;
//! - [`host`] (feature `std`): the host's sockets (`std::net`), for the
//!   hosted runtime.
//!
//! # Why a native service and not a Wasm task
//! The design card suggests the TCP/IP stack as a Wasm task. We keep it
//! native for now, on both platforms, for one reason: the hosted runtime
//! *must* implement it natively (over the host's sockets), and with one
//! protocol state machine shared by both backends the two worlds cannot
//! drift apart, which is what makes one `.wasm` file behave the same in
//! both. On bare metal the device driver needs DMA and MMIO, so it is
//! kernel code either way; only smoltcp could move into Wasm, at the cost
//! of a frame-passing protocol and a copy per frame.

#![cfg_attr(not(feature = "std"), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod service;

#[cfg(feature = "std")]
pub mod host;
#[cfg(feature = "smoltcp")]
pub mod stack;

pub use service::{Backend, TcpService};
