//! One IPC workload on a one-core hosted system, driven on this thread
//! (no other threads, so instruction counts repeat exactly): for
//! callgrind. `cargo xtask profile` runs it twice per workload, at two
//! sizes, and divides the difference by the size difference, so set-up
//! and compilation cancel out and what is left is the cost of one op.
//!
//! Usage: `profile <rt|rt_queued|oneway|null|yield> <count>`

use std::sync::Arc;

use wasmos_bench::programs;
use wasmos_sched::{Config, CoreScheduler, Platform, System};

struct Quiet;

impl Platform for Quiet {
    fn now_ns(&self) -> u64 {
        // A clock that moves only when read keeps the runs identical.
        use std::sync::atomic::{AtomicU64, Ordering};
        static NOW: AtomicU64 = AtomicU64::new(0);
        NOW.fetch_add(1, Ordering::Relaxed)
    }
    fn wake_core(&self, _core: usize) {}
    fn console_write(&self, _core: usize, _task: &str, _text: &[u8]) {}
    fn fill_random(&self, buf: &mut [u8]) {
        buf.fill(0);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (workload, n) = match args.as_slice() {
        [_, w, n] => (w.as_str(), n.parse::<u32>().expect("count")),
        _ => panic!("usage: profile <rt|rt_queued|oneway|null|yield> <count>"),
    };
    let n = n.to_string();
    let tasks: Vec<(&str, Vec<&str>)> = match workload {
        "rt" | "rt_queued" => vec![("echo_server", vec!["bench.server"]), ("echo_client", vec!["bench.client", &n])],
        "oneway" => vec![
            ("consumer", vec!["bench.consumer", "sink0", &n, &n]),
            ("producer", vec!["bench.producer", "sink0", &n]),
        ],
        "null" => vec![("null", vec!["bench.null", &n, "1"])],
        "yield" => vec![("yield", vec!["bench.yield_a", &n]), ("yield", vec!["bench.yield_b", &n])],
        other => panic!("unknown workload {other}"),
    };
    let sys = Arc::new(System::new(1, Config::default(), Arc::new(Quiet)));
    if workload == "rt_queued" {
        // The same round trip through the ready queue: no hand-off.
        sys.set_handoff_depth(0);
    }
    let ids: Vec<_> =
        tasks.iter().map(|(program, argv)| sys.spawn_args(&programs::get(program), argv, 0).expect("spawn")).collect();
    let mut sched = CoreScheduler::new(sys.clone(), 0);
    let done = || ids.iter().all(|id| sys.exit_of(*id).is_some());
    assert!(sched.run_until(u64::MAX, done, |_, _| {}), "workload did not finish");
    for id in ids {
        assert_eq!(sys.exit_of(id).map(|e| e.code), Some(0), "a task failed");
    }
}
