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
    fn boot_file(&self, name: &str) -> Option<&[u8]> {
        match name {
            "motd" => Some(b"hello"),
            "files/data/hello.txt" => Some(b"file contents from the bundle\n"),
            _ => None,
        }
    }
    fn fill_random(&self, buf: &mut [u8]) {
        // Deterministic for tests; the kernel and hosted runtime use real sources.
        for (i, b) in buf.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(151).wrapping_add(7);
        }
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
        fn boot_file(&self, name: &str) -> Option<&[u8]> {
            self.0.boot_file(name)
        }
        fn fill_random(&self, buf: &mut [u8]) {
            self.0.fill_random(buf)
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

/// Cores 1.. run on threads for as long as this lives; core 0 runs on the
/// test's thread inside [`Cores::wait`].
pub struct Cores {
    sys: Arc<System>,
    platform: Arc<TestPlatform>,
    core0: CoreScheduler,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Cores {
    /// Starts the listed cores (core 0 must be first; it runs in `wait`).
    pub fn start(sys: &Arc<System>, platform: &Arc<TestPlatform>, cores: &[usize]) -> Cores {
        assert_eq!(cores.first(), Some(&0));
        let stop = Arc::new(AtomicBool::new(false));
        let threads = cores[1..]
            .iter()
            .map(|&core| {
                let (sys, platform, stop) = (sys.clone(), platform.clone(), stop.clone());
                // The kernel gives each core a 256 KiB stack; so do we.
                std::thread::Builder::new().stack_size(256 << 10).spawn(move || {
                    let mut sched = CoreScheduler::new(sys.clone(), core);
                    while !stop.load(Ordering::Relaxed) {
                        if let Poll::Idle { deadline } = sched.poll() {
                            idle(&sys, &platform, core, deadline);
                        }
                    }
                })
                .expect("core thread")
            })
            .collect();
        let core0 = CoreScheduler::new(sys.clone(), 0);
        Cores { sys: sys.clone(), platform: platform.clone(), core0, stop, threads }
    }

    /// Runs until every task in `watch` has exited (or `secs` pass) and
    /// returns their exits.
    pub fn wait(&mut self, watch: &[TaskId], secs: u64) -> Vec<Option<TaskExit>> {
        let (sys, platform) = (self.sys.clone(), self.platform.clone());
        let all_done = || watch.iter().all(|id| sys.exit_of(*id).is_some());
        self.core0.run_until(secs * 1_000_000_000, all_done, |_| idle(&sys, &platform, 0, None));
        watch.iter().map(|id| sys.exit_of(*id)).collect()
    }
}

impl Drop for Cores {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for core in 1..self.sys.cores() {
            self.platform.wake_core(core);
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Runs every core until the tasks in `watch` exit; returns their exits.
pub fn run(sys: &Arc<System>, platform: &Arc<TestPlatform>, watch: &[TaskId], secs: u64) -> Vec<Option<TaskExit>> {
    let all: Vec<usize> = (0..sys.cores()).collect();
    Cores::start(sys, platform, &all).wait(watch, secs)
}

/// A module: the prelude plus `body`.
pub fn wasm(body: &str) -> Vec<u8> {
    wasmos_tests::programs::module(body)
}

/// A program from `tests/wasm/`.
pub fn program(name: &str) -> Vec<u8> {
    wasmos_tests::programs::get(name)
}

/// Escapes bytes for a WAT data segment.
pub fn data_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("\\{b:02x}")).collect()
}
