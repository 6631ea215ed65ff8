//! WasmOS scheduling: Wasm tasks on wasmi, one scheduler per core.
//!
//! From the bottom layer up: each module uses only those listed before it,
//! except for the knot noted at the end (`tests/src/layers.rs` checks both):
//! - [`platform`]: the small trait that differs between bare metal (IPIs,
//!   the TSC, the serial port) and the hosted runtime (threads, condvars);
//! - [`quota`]: memory budgets per task and for all tasks together, and
//!   their shares of the kernel heap;
//! - [`start`]: a module's start function moved to an export, so that it
//!   runs as a resumable call under `_start`'s rules;
//! - [`imports`]: which imports a module may have (checked at spawn);
//! - [`service`]: servers written in Rust by the platform (the TCP/IP
//!   server, `sysinfo`), reached through the same IPC as Wasm tasks, and
//!   the narrow interface their core gives them;
//! - [`envelope`]: what travels: inbox items, envelopes between cores,
//!   spawn requests, exits;
//! - [`system`]: what all cores share: the Wasm engine, one inbox ring per
//!   core, the directory of live tasks, the name service, counters;
//! - [`task`]: one task's state (wasmi store, capability table, inbox,
//!   what it waits for) and the copies between linear memories;
//! - [`percore`]: a core's tasks and queues (`CoreState`): routing,
//!   delivery, spawn, a slice's end, exits;
//! - [`wasi`]: WASI preview 1 for unmodified `wasm32-wasip1` programs;
//! - [`host`]: the `wasmos` import module, i.e. the system calls;
//! - [`scheduler`]: the per-core loop (`CoreScheduler::poll`);
//! - `threads` (feature `std`): cores as OS threads, for the hosted
//!   runtime and the tests.
//!
//! The knot: a core owns its tasks, and a task's system calls reach back
//! into their core (`TaskData::state`: task -> percore); a WASI task's
//! descriptors live in its `TaskData` and its core links its missing
//! WASI calls to stubs when it instantiates it (task, percore -> wasi).
//! ARCHITECTURE.md ("sched's modules") says what untying it would take.
//!
//! # No kernel stack per task
//! A system call that has to wait (receive on an empty inbox, call waiting
//! for its reply, sleep) records what it waits for and returns a host
//! error; wasmi suspends the call (a resumable call keeps the Wasm stack in
//! the store) and the scheduler runs someone else. When the wait is over,
//! the scheduler resumes the call with the system call's result. Fuel
//! metering bounds each slice: a task that runs out of fuel is suspended
//! the same way and queued at the back.
//!
//! # Only the owner touches a core's tasks
//! A core's tasks live in that core's [`scheduler::CoreScheduler`]. Other cores
//! reach them only through the core's ring ([`wasmos_ipc::ring`]). While a
//! task runs it is taken out of the table, so its own system calls can
//! reach every *other* task on the core (to deliver a message, say) without
//! aliasing its store.

#![cfg_attr(not(any(test, feature = "std")), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod compiler;
pub mod envelope;
pub mod host;
pub mod imports;
pub mod percore;
pub mod platform;
pub mod quota;
pub mod scheduler;
pub mod service;
pub mod start;
pub mod system;
pub mod task;
#[cfg(feature = "std")]
pub mod threads;
pub mod wasi;

pub use crate::percore::Poll;
pub use crate::scheduler::CoreScheduler;
pub use envelope::TaskExit;
pub use platform::{Platform, Stream};
pub use service::{NativeCtx, NativeService, ReplyTo, Request, SysInfo};
pub use system::{Config, QUEUED_ITEM_OVERHEAD, SYSTEM_NAMES, System};
