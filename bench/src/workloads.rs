//! The workloads, their names and their sizes: shared by the kernel's
//! bench mode (which runs them) and the host side (which generates the
//! Wasm programs and describes the figures), so the two cannot disagree.
//!
//! Names are `/`-separated: `null_syscall`, `clock_read`,
//! `ipc_rt/same_core`, `ipc_rt/same_core_queued`, `ipc_rt/cross_idle/0-<k>`, `ipc_rt/cross_busy/0-<k>`,
//! `ctx_switch`, `spawn`, `throughput/producers/<p>`, `throughput/pairs/<n>`;
//! host baselines start with `host/` or `hosted/`.

use alloc::format;
use alloc::string::String;

pub const NULL_SYSCALL: &str = "null_syscall";
pub const CLOCK_READ: &str = "clock_read";
pub const RT_SAME_CORE: &str = "ipc_rt/same_core";
/// The same-core round trip with hand-offs turned off (the ready queue).
pub const RT_SAME_CORE_QUEUED: &str = "ipc_rt/same_core_queued";
pub const CTX_SWITCH: &str = "ctx_switch";
pub const SPAWN: &str = "spawn";
pub const CRC32: &str = "crc32";

/// Bytes of the buffer the `crc32` workload checksums per sample.
pub const CRC_BYTES: u32 = 4096;

/// The `crc32` workload's buffer: the top byte of each step of the LCG
/// `x = x * 1664525 + 1013904223` (mod 2^32), from x = 1. The Wasm and
/// native programs generate the same bytes themselves.
pub fn crc_buffer(len: usize) -> alloc::vec::Vec<u8> {
    let mut x: u32 = 1;
    (0..len)
        .map(|_| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (x >> 24) as u8
        })
        .collect()
}

/// CRC-32 (IEEE 802.3: reflected, polynomial 0xEDB88320, initial and
/// final XOR 0xFFFFFFFF), computed bit by bit: the reference the
/// table-driven Wasm and native programs are checked against.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut c = u32::MAX;
    for &b in bytes {
        c ^= b as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 { (c >> 1) ^ 0xEDB8_8320 } else { c >> 1 };
        }
    }
    !c
}

/// The CRC the `crc32` workload must compute over its `len`-byte buffer.
pub fn crc32_reference(len: usize) -> u32 {
    crc32(&crc_buffer(len))
}

/// Round trip from core 0 to a server on core `k`; `busy`: both cores
/// poll their rings instead of halting (no IPI needed).
pub fn rt_cross(busy: bool, k: usize) -> String {
    format!("ipc_rt/cross_{}/0-{k}", if busy { "busy" } else { "idle" })
}

/// `p` producer cores sending one-way messages to one consumer on core 0.
pub fn producers(p: usize) -> String {
    format!("throughput/producers/{p}")
}

/// `n` independent producer/consumer pairs, one per core.
pub fn pairs(n: usize) -> String {
    format!("throughput/pairs/{n}")
}

/// How much of everything one run measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizes {
    /// Samples of the same-core round trip.
    pub rt_same: u32,
    /// Samples of each cross-core round trip (every target, both modes).
    pub rt_cross: u32,
    /// Samples of the null system call, each timing `null_batch` calls.
    pub null_samples: u32,
    pub null_batch: u32,
    pub clock: u32,
    pub ctx_switch: u32,
    pub spawn: u32,
    /// Samples of `crc32`, each one pass over [`CRC_BYTES`] bytes.
    pub crc: u32,
    /// Messages each producer sends.
    pub msgs_per_producer: u32,
    /// Messages per throughput sample.
    pub tput_batch: u32,
    /// Producer counts and pair counts measured (those <= the cores).
    pub core_steps: &'static [usize],
    /// Times each workload runs, alternating the paths (Wasm, native,
    /// Wasm, native, ...), so that a noisy moment on the host hits both
    /// paths alike; the samples of all rounds are pooled.
    pub rounds: u32,
}

impl Sizes {
    pub fn new(quick: bool) -> Sizes {
        if quick {
            Sizes {
                rt_same: 2_000,
                rt_cross: 300,
                null_samples: 300,
                null_batch: 100,
                clock: 1_000,
                ctx_switch: 1_000,
                spawn: 30,
                crc: 30,
                msgs_per_producer: 2_000,
                tput_batch: 50,
                core_steps: &[1, 2, 4, 8],
                rounds: 1,
            }
        } else {
            Sizes {
                rt_same: 40_000,
                rt_cross: 10_000,
                null_samples: 10_000,
                null_batch: 100,
                clock: 40_000,
                ctx_switch: 40_000,
                spawn: 2_000,
                crc: 300,
                msgs_per_producer: 50_000,
                tput_batch: 100,
                core_steps: &[1, 2, 3, 4, 5, 6, 7, 8],
                rounds: 3,
            }
        }
    }
}

/// Samples dropped at the start of each run (warm-up: caches, TLB, the
/// module cache, lazily grown queues): a tenth, at least one when there
/// are several.
pub fn warmup(samples: usize) -> usize {
    if samples < 2 { 0 } else { (samples / 10).max(1) }
}

/// What a workload measures, for the report (by name; parameters in the
/// name are not repeated).
pub fn describe(name: &str) -> &'static str {
    let first = name.split('/').next().unwrap_or("");
    match name {
        NULL_SYSCALL => "null system call: Wasm `core_id` host call / native SYSCALL+SYSRET doing nothing",
        CLOCK_READ => {
            "cost of taking one timing sample (Wasm: two `time_now_ns` calls; native: lfence/rdtsc + rdtscp/lfence)"
        }
        RT_SAME_CORE => {
            "IPC round trip (call -> recv/reply -> reply delivered), caller and callee on core 0 (Wasm: direct hand-off)"
        }
        RT_SAME_CORE_QUEUED => {
            "the same-core round trip with Wasm hand-offs turned off: both sides suspend and go through the ready queue (native: as ipc_rt/same_core)"
        }
        CTX_SWITCH => "one context switch: two tasks on core 0 yielding to each other (a sample = 2 switches)",
        CRC32 => {
            "compute alone: CRC-32 (table-driven, a byte at a time) over a fixed 4 KiB buffer, the same algorithm in Wasm and in ring-3 machine code; per byte"
        }
        SPAWN => {
            "spawn a task that exits at once, and wait for its exit (Wasm: cached module; native: new page table + 3 pages)"
        }
        _ if name.starts_with("ipc_rt/cross_idle") => {
            "IPC round trip from core 0 to a server on core k, both cores halt when idle (IPI wake-up)"
        }
        _ if name.starts_with("ipc_rt/cross_busy") => {
            "IPC round trip from core 0 to a server on core k, both cores poll their rings (no IPI)"
        }
        _ if name.starts_with("throughput/producers") => {
            "one-way messages: n producer cores into one consumer on core 0 (latency = per message at the consumer, in batches)"
        }
        _ if name.starts_with("throughput/pairs") => {
            "one-way messages: n independent producer/consumer pairs, one per core (msgs/s over the wall time of all pairs)"
        }
        _ if first == "host" || first == "hosted" => host_description(name),
        _ => "",
    }
}

fn host_description(name: &str) -> &'static str {
    match name {
        "host/getpid" => "Linux getpid system call (libc::syscall, not cached)",
        "host/pipe/same_core" => "Linux pipe ping-pong between two processes pinned to one CPU",
        "host/pipe/cross_core" => "Linux pipe ping-pong between two processes on two CPUs",
        "host/futex/same_core" => "Linux condvar (futex) ping-pong between two threads pinned to one CPU",
        "host/futex/cross_core" => "Linux condvar (futex) ping-pong between two threads on two CPUs",
        "hosted/ipc_rt/same_core" => {
            "the hosted runtime (same sched code on Linux threads): Wasm IPC round trip, one core"
        }
        "hosted/ipc_rt/same_core_queued" => "the hosted runtime: Wasm IPC round trip, one core, hand-offs turned off",
        "hosted/ipc_rt/cross_core" => "the hosted runtime: Wasm IPC round trip between two core threads",
        "hosted/null_syscall" => "the hosted runtime: Wasm `core_id` host call",
        _ => "host baseline",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_reference_is_the_ieee_crc() {
        // The standard check value of CRC-32/ISO-HDLC.
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(&[]), 0);
        let buf = crc_buffer(4);
        // x1 = 1 * 1664525 + 1013904223 = 0x3C88_596C: its top byte first.
        assert_eq!(buf[0], 0x3C);
        assert_eq!(crc32_reference(CRC_BYTES as usize), crc32(&crc_buffer(CRC_BYTES as usize)));
    }

    #[test]
    fn names_and_sizes() {
        assert_eq!(rt_cross(false, 3), "ipc_rt/cross_idle/0-3");
        assert_eq!(rt_cross(true, 1), "ipc_rt/cross_busy/0-1");
        assert_eq!(producers(8), "throughput/producers/8");
        assert!(!describe(&pairs(2)).is_empty());
        assert!(!describe("host/pipe/same_core").is_empty());
        let (q, f) = (Sizes::new(true), Sizes::new(false));
        assert!(q.rt_same < f.rt_same && q.spawn < f.spawn);
        // The Wasm programs keep at most 57344 u64 samples.
        for s in [q, f] {
            assert!(s.rt_same.max(s.clock).max(s.ctx_switch).max(s.null_samples) <= 57_344);
            assert!(s.msgs_per_producer * 8 / s.tput_batch < 57_344);
        }
        assert!(q.crc.max(f.crc) <= 57_344 && CRC_BYTES <= 45_048, "the Wasm program's buffer and samples must fit");
        assert_eq!(warmup(1), 0);
        assert_eq!(warmup(5), 1);
        assert_eq!(warmup(1000), 100);
    }
}
