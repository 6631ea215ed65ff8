//! webapi: an HTTP/1.1 server written as a WasmOS program.
//!
//! One task serves every connection: it waits in the `tcp` service's
//! `POLL` for any of its sockets to be ready, then accepts, reads, answers
//! and writes without ever blocking on one peer. So garbage, a client that
//! sends half a request and stalls (slowloris), or one that vanishes
//! mid-request costs that connection only: a malformed request gets a 400
//! and its connection closed, an idle one is closed after
//! [`IDLE_TIMEOUT_NS`], and a reset just drops it.
//!
//! Routes (in [`http`]): `GET /` (a page), `GET /api/stats` (JSON from
//! the `sysinfo` service: uptime, cores, tasks and messages per core),
//! `POST /api/echo` (the body back). Keep-alive and pipelining follow
//! HTTP/1.1.
//!
//! The same `webapi.wasm` runs on the kernel (the `tcp` service there is
//! smoltcp on virtio-net) and under `wasmos-hosted` (host sockets).
//! Arguments: `--port N` (default 8080).

// no_std in Wasm; on the host (unit tests, clippy) std provides the
// allocator and panic handler.
#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;

pub mod http;

#[cfg(target_arch = "wasm32")]
mod server;

#[cfg(target_arch = "wasm32")]
#[global_allocator]
static ALLOCATOR: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

/// A connection that has not sent a byte for this long is closed.
pub const IDLE_TIMEOUT_NS: u64 = 10_000_000_000;

/// Connections served at once; more get a 503.
pub const MAX_CONNECTIONS: usize = 128;

/// The port when none is given.
pub const DEFAULT_PORT: u16 = 8080;

#[cfg(target_arch = "wasm32")]
#[unsafe(no_mangle)]
pub extern "C" fn _start() {
    server::main()
}
