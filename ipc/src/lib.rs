//! WasmOS IPC primitives, shared by the kernel and the hosted runtime.
//!
//! - [`abi`]: the system-call ABI Wasm programs see (import module
//!   `wasmos`): function names, status codes, message and info layouts.
//!   This is the one place the ABI is written down; `docs/ABI.md` mirrors it.
//! - [`ids`]: task ids; [`directory`]: the lock-free table of live tasks
//!   (home core, liveness, queued-message count) that ids index.
//! - [`caps`]: per-task capability (handle) tables.
//! - [`names`]: system service names and the namespaces that govern who
//!   may look them up.
//! - [`message`]: messages in flight (owned payload, inline when small).
//! - [`ring`]: the per-core lock-free MPSC inbox and its sleep/wake protocol.
//! - [`bytering`]: a bounded byte ring an interrupt handler fills without
//!   waiting (console input).
//! - [`net`], [`sysinfo`], [`block`], [`fs`]: the wire protocols of the
//!   services every platform provides (the TCP socket service, system
//!   counters, block devices, the file server).
//!
//! Nothing here knows about wasmi, interrupts or threads: the scheduler
//! (`wasmos-sched`) and the platforms build on it.

#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

#[cfg(any(test, feature = "runtime"))]
extern crate alloc;

pub mod abi;
pub mod block;
pub mod bytering;
#[cfg(feature = "runtime")]
pub mod caps;
#[cfg(feature = "runtime")]
pub mod directory;
pub mod fs;
#[cfg(feature = "runtime")]
pub mod ids;
#[cfg(feature = "runtime")]
pub mod message;
pub mod names;
pub mod net;
#[cfg(feature = "runtime")]
pub mod ring;
pub mod sysinfo;
