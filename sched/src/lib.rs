//! WasmOS scheduling: Wasm tasks on wasmi, one scheduler per core.
//!
//! - [`platform`]: the small trait that differs between bare metal (IPIs,
//!   the TSC, the serial port) and the hosted runtime (threads, condvars);
//! - [`system`]: what all cores share: the Wasm engine, one inbox ring per
//!   core, the directory of live tasks, the name service, counters;
//! - [`quota`]: memory budgets per task and for all tasks together;
//! - [`task`]: one task's state (wasmi store, capability table, inbox,
//!   what it waits for) and the copies between linear memories;
//! - [`host`]: the `wasmos` import module, i.e. the system calls;
//! - [`wasi`]: WASI preview 1 for unmodified `wasm32-wasip1` programs;
//! - [`core`]: the per-core scheduler loop;
//! - [`native`]: servers written in Rust by the platform (the TCP/IP
//!   server), reached through the same IPC as Wasm tasks;
//! - `threads` (feature `std`): cores as OS threads, for the hosted
//!   runtime and the tests.
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
//! A core's tasks live in that core's [`core::CoreScheduler`]. Other cores
//! reach them only through the core's ring ([`wasmos_ipc::ring`]). While a
//! task runs it is taken out of the table, so its own system calls can
//! reach every *other* task on the core (to deliver a message, say) without
//! aliasing its store.

#![cfg_attr(not(any(test, feature = "std")), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod core;
pub mod host;
pub mod native;
pub mod platform;
pub mod quota;
pub mod system;
pub mod task;
#[cfg(feature = "std")]
pub mod threads;
pub mod wasi;

pub use crate::core::{CoreScheduler, Poll};
pub use native::{NativeCtx, NativeService, ReplyTo, Request, SysInfo};
pub use platform::{Platform, Stream};
pub use system::{Config, QUEUED_ITEM_OVERHEAD, SYSTEM_NAMES, System, TaskExit};
