//! The hosted runtime's figures: the same `wasmos-sched` code as the
//! kernel on Linux threads (`wasmos_sched::threads`: threads as cores,
//! condvars as IPIs), running the same Wasm bench programs, timed the
//! same way (inside Wasm with `time_now_ns`). This is the approach of
//! `sched/tests/perf.rs`, with samples instead of a mean.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use wasmos_sched::threads::{Cores, Wakers};
use wasmos_sched::{Config, Platform, System};

use crate::protocol::sample_record;
use crate::stats::{Summary, summarize};
use crate::workloads::warmup;

/// Linux threads as cores; the console of every task is captured.
struct Capture {
    wakers: Arc<Wakers>,
    console: Mutex<HashMap<String, Vec<u8>>>,
}

impl Platform for Capture {
    fn now_ns(&self) -> u64 {
        self.wakers.now_ns()
    }
    fn wake_core(&self, core: usize) {
        self.wakers.wake(core)
    }
    fn console_write(&self, _core: usize, task: &str, text: &[u8]) {
        self.console.lock().expect("not poisoned").entry(task.to_owned()).or_default().extend_from_slice(text);
    }
    fn fill_random(&self, buf: &mut [u8]) {
        buf.fill(0);
    }
}

/// Runs bench programs `(program, argv, core)` on a two-core hosted
/// system until all exit; returns the samples task `timed` recorded (ns).
fn run(tasks: &[(&str, Vec<String>, i32)], timed: &str, config: Config) -> Result<Vec<u64>, String> {
    let wakers = Arc::new(Wakers::new(2));
    let platform = Arc::new(Capture { wakers: wakers.clone(), console: Mutex::new(HashMap::new()) });
    let sys = Arc::new(System::new(2, config, platform.clone()));
    let mut ids = Vec::new();
    for (program, argv, core) in tasks {
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        ids.push(
            sys.spawn_args(&crate::programs::get(program), &argv, *core)
                .map_err(|e| format!("spawn {program}: {}", e.name()))?,
        );
    }
    let exits = Cores::start_all(&sys, &wakers).wait(&ids, 300_000_000_000);
    if exits.iter().any(|e| e.is_none_or(|e| e.code != 0)) {
        return Err(format!("hosted bench tasks ended {exits:?}"));
    }
    let console = platform.console.lock().expect("not poisoned");
    sample_record(console.get(timed).map(Vec::as_slice).unwrap_or(&[]))
        .ok_or_else(|| format!("{timed} wrote no samples"))
}

fn finish(mut samples: Vec<u64>) -> Result<Summary, String> {
    let w = warmup(samples.len());
    summarize(&mut samples[w..]).ok_or_else(|| "no samples".to_string())
}

/// Call/reply round trip, client on core 0, server on `server_core`;
/// `handoff` false: same-core calls go through the ready queue.
pub fn round_trip(server_core: i32, n: u32, handoff: bool) -> Result<Summary, String> {
    let argv = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let config = if handoff { Config::default() } else { Config { handoff_depth: 0, ..Config::default() } };
    finish(run(
        &[
            ("echo_server", argv(&["bench.server"]), server_core),
            ("echo_client", argv(&["bench.client", &n.to_string()]), 0),
        ],
        "bench.client",
        config,
    )?)
}

/// The null system call (`core_id`), `reps` x 10 per sample.
pub fn null_syscall(samples: u32, reps: u32) -> Result<Summary, String> {
    let argv = vec!["bench.null".to_string(), samples.to_string(), reps.to_string()];
    finish(run(&[("null", argv, 0)], "bench.null", Config::default())?)
}

/// The `crc32` compute workload: `samples` passes over `len` bytes, each
/// checked by the program against `expected`.
pub fn crc32(samples: u32, len: u32, expected: u32) -> Result<Summary, String> {
    let argv = vec!["bench.crc32".to_string(), samples.to_string(), len.to_string(), expected.to_string()];
    finish(run(&[("crc32", argv, 0)], "bench.crc32", Config::default())?)
}

#[cfg(test)]
mod tests {
    #[test]
    fn crc32_program_computes_the_reference_crc() {
        let len = crate::workloads::CRC_BYTES;
        let want = crate::workloads::crc32_reference(len as usize);
        let s = super::crc32(5, len, want).unwrap();
        assert!(s.min > 0 && s.iterations == 4, "{s:?}");
        // A wrong expectation makes the program exit 1, not 0.
        assert!(super::crc32(2, len, want ^ 1).is_err());
        // And a shorter buffer has its own CRC.
        assert!(super::crc32(2, 100, crate::workloads::crc32_reference(100)).is_ok());
    }

    #[test]
    fn hosted_round_trips_and_null_calls() {
        let same = super::round_trip(0, 50, true).unwrap();
        let queued = super::round_trip(0, 50, false).unwrap();
        let cross = super::round_trip(1, 50, true).unwrap();
        assert!(queued.min > 0);
        assert!(same.min > 0 && same.median <= same.p99 && cross.median <= cross.p99);
        let null = super::null_syscall(20, 2).unwrap();
        assert!(null.min > 0);
    }
}
