//! WasmOS integration suites, as data: what each QEMU boot must show.
//!
//! - [`protocol`]: the result channel the kernel writes on COM2, and its parser;
//! - [`suites`]: the list of QEMU suites and the checks each one applies;
//! - [`http`]: what webapi must answer, checked with a real HTTP client;
//! - [`hostile`]: what webapi must survive (clients that never read,
//!   trickle, burst, half-close) and the HTTP/1.1 points it claims;
//! - [`workers`]: webapi with a worker on every core, sharing a port;
//! - `abi_copies` (tests only): every copy of the system-call list agrees
//!   with `wasmos_ipc::abi::FUNCTIONS`.
//!
//! xtask only drives (builds images, runs QEMU, prints); the decisions of
//! what passes live here, where they are unit-tested on the host.

#[cfg(test)]
mod abi_copies;
pub mod hostile;
pub mod http;
#[cfg(test)]
mod layers;
pub mod programs;
pub mod protocol;
pub mod soak;
pub mod suites;
pub mod workers;
