//! webapi: an HTTP/1.1 server written as a WasmOS program.
//!
//! One task serves many connections: it waits in the `tcp` service's
//! `POLL` for any of its sockets to be ready, then accepts, reads, answers
//! and writes without ever blocking on one peer. Several such workers may
//! run, one per core (`boot.cfg`: `spawn=webapi.wasm*N`, see init): they
//! listen on one shared port and the `tcp` service deals each new
//! connection to one of them, round-robin (`wasmos_ipc::net`, "Shared
//! ports"); `/api/stats` says which core's worker answered
//! (`worker_core`) and how many connections it was dealt (`accepted`). No client behaviour can
//! make it grow past its budget or hold a slot for long:
//!
//! - **Memory.** A connection's buffered input is at most one request
//!   ([`http::MAX_HEAD`] + [`http::MAX_BODY`]); once its unsent output
//!   passes `--max-output` it is not read (nor its pipelined requests
//!   answered) until that drains: back-pressure through TCP to the
//!   sender. The buffers of all connections together stay under
//!   `--memory-budget`: past it nothing is read and new connections get a
//!   503. Buffers grow with fallible allocation (`try_reserve`): a failure
//!   answers 503 and closes that connection, never a panic.
//! - **Deadlines.** A request's whole head must arrive within
//!   `--head-timeout-ms` of its first byte (not renewed per byte, so a
//!   slowloris trickle is cut off with a 408), its body within
//!   `--body-timeout-ms` of the head; a keep-alive connection with nothing
//!   in flight is closed after `--idle-timeout-ms`, one whose peer takes
//!   none of its output for `--send-timeout-ms` is dropped.
//! - **Slots.** At most `--max-connections` at once, and at most
//!   `--max-per-peer` from one peer address (the `tcp` service's `ACCEPT`
//!   names it). A newcomer past either limit takes the slot of the
//!   longest-idle keep-alive connection (no request in progress for at
//!   least [`EVICT_IDLE_NS`]; of that peer for the per-peer limit), which
//!   is closed; only when none is idle
//!   does it get `503` with `Retry-After` and is closed. Near the limit
//!   (7/8 of it) responses go out with `Connection: close` for
//!   [`CLOSE_WINDOW_NS`], so busy keep-alive clients give their slots
//!   back. A slot freed by a deadline goes to the next client that
//!   connects.
//! - **Crash route** (off by default). With `--crash-route`,
//!   `POST /api/crash` makes webapi trap on purpose: a test kills it that
//!   way and sees init restart it (`/api/stats` says `started_ms`).
//!
//! Routes (in [`http`]): `GET /` (a page), `GET /api/stats` (JSON from
//! the `sysinfo` service: uptime, cores, tasks and messages per core, and
//! this server's own connections and memory), `POST /api/echo` (the body
//! back; `started_ms` is when this instance started, so a restart shows);
//! `HEAD` for every `GET` route. Keep-alive, pipelining,
//! `Expect: 100-continue` and a request followed at once by FIN
//! (half-close) follow HTTP/1.1 (RFC 9110, 9112); the limits of a request
//! are in [`http`].
//!
//! The same `webapi.wasm` runs on the kernel (the `tcp` service there is
//! smoltcp on virtio-net) and under `wasmos-hosted` (host sockets).
//!
//! Arguments (defaults in [`Limits::DEFAULT`]): `--port N` (8080),
//! `--max-connections N` (128), `--max-output BYTES` (262144),
//! `--memory-budget BYTES` (8388608), `--head-timeout-ms MS` (10000),
//! `--body-timeout-ms MS` (30000), `--idle-timeout-ms MS` (10000),
//! `--send-timeout-ms MS` (30000), `--max-per-peer N` (32),
//! `--crash-route` (off).
//!
//! Under QEMU's user-mode network every client on the host reaches the
//! guest from one address (10.0.2.2), so `cargo xtask run` gives webapi
//! `--max-per-peer 128` there (one peer would otherwise be capped at 32).

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

/// The port when none is given.
pub const DEFAULT_PORT: u16 = 8080;

/// How long a connection must have been idle (no request in progress;
/// since it was accepted or last answered) before a newcomer may take its
/// slot: a client that just connected, or was just answered and is about
/// to ask again, keeps it.
pub const EVICT_IDLE_NS: u64 = 1_000_000_000;

/// How long responses go out with `Connection: close` once the
/// connections reach 7/8 of `--max-connections`.
pub const CLOSE_WINDOW_NS: u64 = 1_000_000_000;

/// What the server allows each client and all of them; set by arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub port: u16,
    /// Connections served at once; more get a 503.
    pub max_connections: usize,
    /// Unsent output past which a connection is not read.
    pub max_output: usize,
    /// Buffered bytes (input and output, all connections) past which
    /// nothing is read and new connections get a 503.
    pub memory_budget: usize,
    pub head_timeout_ns: u64,
    pub body_timeout_ns: u64,
    pub idle_timeout_ns: u64,
    pub send_timeout_ns: u64,
    /// Connections from one peer address at once.
    pub max_per_peer: usize,
    /// `POST /api/crash` traps on purpose (for supervision tests).
    pub crash_route: bool,
}

impl Limits {
    pub const DEFAULT: Limits = Limits {
        port: DEFAULT_PORT,
        max_connections: 128,
        max_output: 256 * 1024,
        memory_budget: 8 * 1024 * 1024,
        head_timeout_ns: 10_000_000_000,
        body_timeout_ns: 30_000_000_000,
        idle_timeout_ns: 10_000_000_000,
        send_timeout_ns: 30_000_000_000,
        max_per_peer: 32,
        crash_route: false,
    };

    /// The limits `args` (argv without argv[0]) ask for; an error names
    /// the argument that is wrong.
    pub fn from_args(args: &[&str]) -> Result<Limits, &'static str> {
        let mut limits = Limits::DEFAULT;
        let mut i = 0;
        while i < args.len() {
            let name = args[i];
            let value = args.get(i + 1).copied();
            let number = |low: u64, high: u64, why: &'static str| -> Result<u64, &'static str> {
                value.and_then(|v| v.parse::<u64>().ok()).filter(|n| (low..=high).contains(n)).ok_or(why)
            };
            let ms = |why| number(1, 3_600_000, why).map(|ms| ms * 1_000_000);
            if name == "--crash-route" {
                limits.crash_route = true;
                i += 1;
                continue;
            }
            match name {
                "--port" => limits.port = number(1, 65535, "--port wants a number from 1 to 65535")? as u16,
                "--max-connections" => {
                    limits.max_connections = number(1, 4096, "--max-connections wants 1 to 4096")? as usize
                }
                "--max-output" => {
                    limits.max_output = number(4096, 1 << 30, "--max-output wants 4096 to 2^30 bytes")? as usize
                }
                "--memory-budget" => {
                    limits.memory_budget =
                        number(1 << 16, 1 << 31, "--memory-budget wants 65536 to 2^31 bytes")? as usize
                }
                "--head-timeout-ms" => limits.head_timeout_ns = ms("--head-timeout-ms wants 1 to 3600000")?,
                "--body-timeout-ms" => limits.body_timeout_ns = ms("--body-timeout-ms wants 1 to 3600000")?,
                "--idle-timeout-ms" => limits.idle_timeout_ns = ms("--idle-timeout-ms wants 1 to 3600000")?,
                "--send-timeout-ms" => limits.send_timeout_ns = ms("--send-timeout-ms wants 1 to 3600000")?,
                "--max-per-peer" => limits.max_per_peer = number(1, 4096, "--max-per-peer wants 1 to 4096")? as usize,
                _ => return Err("unknown argument (see webapi's doc for the list)"),
            }
            i += 2;
        }
        Ok(limits)
    }
}

#[cfg(target_arch = "wasm32")]
#[unsafe(no_mangle)]
pub extern "C" fn _start() {
    server::main()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_from_args() {
        assert_eq!(Limits::from_args(&[]), Ok(Limits::DEFAULT));
        let l = Limits::from_args(&["--port", "81", "--max-connections", "7", "--head-timeout-ms", "500"]).unwrap();
        assert_eq!((l.port, l.max_connections, l.head_timeout_ns), (81, 7, 500_000_000));
        assert!(Limits::from_args(&["--port", "0"]).is_err());
        assert!(Limits::from_args(&["--port"]).is_err());
        assert!(Limits::from_args(&["--max-output", "12"]).is_err());
        assert!(Limits::from_args(&["--bogus", "1"]).is_err());
        let l = Limits::from_args(&["--crash-route", "--max-per-peer", "3"]).unwrap();
        assert_eq!((l.crash_route, l.max_per_peer), (true, 3));
        let defaults = Limits::from_args(&[]).unwrap();
        assert_eq!((defaults.crash_route, defaults.max_per_peer), (false, 32));
        assert!(Limits::from_args(&["--max-per-peer", "0"]).is_err());
    }
}
