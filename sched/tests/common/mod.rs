//! Test harness: a host `Platform` (threads as cores, condvars as IPIs)
//! and WAT building blocks for test programs.

#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use wasmos_sched::{Config, CoreScheduler, Platform, Poll, System, TaskExit};
use wasmos_ipc::ids::TaskId;

pub struct TestPlatform {
    start: Instant,
    wake: Vec<(Mutex<bool>, Condvar)>,
    pub console: Mutex<Vec<(usize, String, String)>>,
}

impl Platform for TestPlatform {
    fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }
    fn wake_core(&self, core: usize) {
        let (flag, cv) = &self.wake[core];
        *flag.lock().unwrap() = true;
        cv.notify_one();
    }
    fn console_write(&self, core: usize, task: &str, text: &[u8]) {
        self.console.lock().unwrap().push((core, task.into(), String::from_utf8_lossy(text).into()));
    }
}

/// A system of `cores` cores and a way to read what tasks printed.
pub fn system(cores: usize, config: Config) -> (Arc<System>, Arc<TestPlatform>) {
    let platform = Arc::new(TestPlatform {
        start: Instant::now(),
        wake: (0..cores).map(|_| (Mutex::new(false), Condvar::new())).collect(),
        console: Mutex::new(Vec::new()),
    });
    struct Shared(Arc<TestPlatform>);
    impl Platform for Shared {
        fn now_ns(&self) -> u64 {
            self.0.now_ns()
        }
        fn wake_core(&self, core: usize) {
            self.0.wake_core(core)
        }
        fn console_write(&self, core: usize, task: &str, text: &[u8]) {
            self.0.console_write(core, task, text)
        }
    }
    let sys = Arc::new(System::new(cores, config, Box::new(Shared(platform.clone()))));
    (sys, platform)
}

/// Sleeps the calling core thread the way the kernel halts: announce,
/// re-check, wait for a wake-up (or a short timeout for timers).
fn idle(sys: &System, platform: &TestPlatform, core: usize, deadline: Option<u64>) {
    if sys.prepare_sleep(core) {
        let (flag, cv) = &platform.wake[core];
        let mut woken = flag.lock().unwrap();
        let wait = deadline.map_or(Duration::from_millis(5), |d| {
            Duration::from_nanos(d.saturating_sub(platform.now_ns())).min(Duration::from_millis(5))
        });
        if !*woken {
            woken = cv.wait_timeout(woken, wait).unwrap().0;
        }
        *woken = false;
    }
    sys.woke(core);
}

/// Runs cores 1.. on threads and core 0 on the calling thread until every
/// task in `watch` has exited (or `secs` pass). Returns their exits.
pub fn run(sys: &Arc<System>, platform: &Arc<TestPlatform>, watch: &[TaskId], secs: u64) -> Vec<Option<TaskExit>> {
    let all: Vec<usize> = (0..sys.cores()).collect();
    run_cores(sys, platform, watch, secs, &all)
}

/// Like [`run`], polling only the listed cores (core 0 must be listed).
pub fn run_cores(sys: &Arc<System>, platform: &Arc<TestPlatform>, watch: &[TaskId], secs: u64, cores: &[usize]) -> Vec<Option<TaskExit>> {
    assert_eq!(cores.first(), Some(&0));
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = cores[1..]
        .iter()
        .map(|&core| {
            let (sys, platform, stop) = (sys.clone(), platform.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut sched = CoreScheduler::new(sys.clone(), core);
                while !stop.load(Ordering::Relaxed) {
                    if let Poll::Idle { deadline } = sched.poll() {
                        idle(&sys, &platform, core, deadline);
                    }
                }
            })
        })
        .collect();
    let mut sched = CoreScheduler::new(sys.clone(), 0);
    let all_done = || watch.iter().all(|id| sys.exit_of(*id).is_some());
    sched.run_until(secs * 1_000_000_000, all_done, |s| {
        let _ = s;
        idle(sys, platform, 0, None)
    });
    stop.store(true, Ordering::Relaxed);
    for core in 1..sys.cores() {
        platform.wake_core(core);
    }
    for t in threads {
        t.join().unwrap();
    }
    watch.iter().map(|id| sys.exit_of(*id)).collect()
}

/// The `wasmos` imports every test program may use, plus one page of memory.
pub const PRELUDE: &str = r#"
  (import "wasmos" "ipc_send" (func $send (param i32 i32 i32) (result i32)))
  (import "wasmos" "ipc_recv" (func $recv (param i32 i32 i32 i32 i64) (result i32)))
  (import "wasmos" "ipc_call" (func $call (param i32 i32 i32 i32 i32) (result i32)))
  (import "wasmos" "ipc_reply" (func $reply (param i32 i32 i32) (result i32)))
  (import "wasmos" "task_spawn" (func $spawn (param i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "wasmos" "task_exit" (func $exit (param i32)))
  (import "wasmos" "service_register" (func $register (param i32 i32 i32) (result i32)))
  (import "wasmos" "service_lookup" (func $lookup (param i32 i32) (result i32)))
  (import "wasmos" "sleep_ns" (func $sleep (param i64) (result i32)))
  (import "wasmos" "time_now_ns" (func $now (result i64)))
  (import "wasmos" "console_write" (func $print (param i32 i32) (result i32)))
  (import "wasmos" "core_id" (func $core_id (result i32)))
  (memory (export "memory") 1)
  ;; Looks up a service whose name is at [ptr, ptr+len), retrying until it
  ;; is registered.
  (func $lookup_wait (param $ptr i32) (param $len i32) (result i32) (local $h i32)
    (block $found (loop $again
      (local.set $h (call $lookup (local.get $ptr) (local.get $len)))
      (br_if $found (i32.gt_s (local.get $h) (i32.const 0)))
      (drop (call $sleep (i64.const 100000)))
      (br $again)))
    (local.get $h))
"#;

/// A module: the prelude plus `body`.
pub fn wasm(body: &str) -> Vec<u8> {
    wat::parse_str(format!("(module {PRELUDE} {body})")).expect("test program must assemble")
}

/// Escapes bytes for a WAT data segment.
pub fn data_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("\\{b:02x}")).collect()
}
