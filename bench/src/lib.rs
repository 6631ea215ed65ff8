//! WasmOS benchmarks: the report model and the host side of
//! `cargo xtask bench`.
//!
//! Without the `std` feature (how the kernel uses it) only the parts the
//! kernel's bench mode shares with the host are built:
//! - [`stats`]: min, median, p99 (nearest rank) over samples;
//! - [`protocol`]: the `bench-*` lines of the result channel, and the
//!   sample records the Wasm bench programs write;
//! - [`workloads`]: names, sizes and descriptions of the workloads.
//!
//! With `std` (the default, for xtask and the tests):
//! - [`programs`]: the Wasm bench programs (`bench/wasm/*.wat`);
//! - [`host`]: the Linux baselines (getpid, pipe and futex ping-pong);
//! - [`hosted`]: the same Wasm programs under the hosted runtime;
//! - [`report`]: `results.json` (serde), the checks on it, the Markdown
//!   summary; [`plot`]: the SVG plots;
//! - [`web`]: the web benchmark's load generator and report.

#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

pub mod protocol;
pub mod stats;
pub mod workloads;

#[cfg(feature = "std")]
pub mod host;
#[cfg(feature = "std")]
pub mod hosted;
#[cfg(feature = "std")]
pub mod plot;
#[cfg(feature = "std")]
pub mod programs;
#[cfg(feature = "std")]
pub mod report;
#[cfg(feature = "std")]
pub mod web;
