//! Running a [`System`] on OS threads, one per core: the hosted runtime
//! (`servers/hosted`) and this crate's tests. A platform built on it gets
//! its clock and "IPIs" from [`Wakers`]; [`Cores`] runs the scheduler
//! loops.
//!
//! Idling follows the kernel's protocol (`ipc/src/ring.rs`): announce
//! sleep on the core's ring, re-check, then wait on the core's condvar
//! (the IPI) or until the next timer deadline, at most 10 ms (the kernel's
//! timer tick).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use wasmos_ipc::ids::TaskId;

use crate::{CoreScheduler, Poll, System, TaskExit};

/// The clock and the per-core wake-up signals.
pub struct Wakers {
    start: Instant,
    wake: Vec<(Mutex<bool>, Condvar)>,
}

impl Wakers {
    pub fn new(cores: usize) -> Wakers {
        Wakers { start: Instant::now(), wake: (0..cores).map(|_| (Mutex::new(false), Condvar::new())).collect() }
    }

    /// For `Platform::now_ns`.
    pub fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    /// For `Platform::wake_core`.
    pub fn wake(&self, core: usize) {
        let (flag, cv) = &self.wake[core];
        *flag.lock().unwrap_or_else(|e| e.into_inner()) = true;
        cv.notify_one();
    }

    /// Parks `core`'s thread until woken or `deadline` (ns) passes.
    pub fn idle(&self, sys: &System, core: usize, deadline: Option<u64>) {
        if sys.prepare_sleep(core) {
            let (flag, cv) = &self.wake[core];
            let mut woken = flag.lock().unwrap_or_else(|e| e.into_inner());
            let wait = deadline
                .map_or(Duration::from_millis(10), |d| Duration::from_nanos(d.saturating_sub(self.now_ns())))
                .min(Duration::from_millis(10));
            if !*woken {
                woken = cv.wait_timeout(woken, wait).unwrap_or_else(|e| e.into_inner()).0;
            }
            *woken = false;
        }
        sys.woke(core);
    }
}

/// Cores 1.. run on their own threads for as long as this lives; core 0
/// runs on the caller's thread inside [`Cores::wait`].
pub struct Cores {
    sys: Arc<System>,
    wakers: Arc<Wakers>,
    core0: CoreScheduler,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Cores {
    /// Starts the listed cores (core 0 first: it runs in [`Cores::wait`]).
    pub fn start(sys: &Arc<System>, wakers: &Arc<Wakers>, cores: &[usize]) -> Cores {
        assert_eq!(cores.first(), Some(&0), "core 0 runs on the calling thread");
        let stop = Arc::new(AtomicBool::new(false));
        let threads = cores[1..]
            .iter()
            .map(|&core| {
                let (sys, wakers, stop) = (sys.clone(), wakers.clone(), stop.clone());
                // The kernel gives each core a 256 KiB stack; so do we, so
                // that stack-hungry code fails here first.
                std::thread::Builder::new()
                    .name(format!("core{core}"))
                    .stack_size(256 << 10)
                    .spawn(move || {
                        let mut sched = CoreScheduler::new(sys.clone(), core);
                        while !stop.load(Ordering::Relaxed) {
                            if let Poll::Idle { deadline } = sched.poll() {
                                wakers.idle(&sys, core, deadline);
                            }
                        }
                    })
                    .expect("spawn a core thread")
            })
            .collect();
        let core0 = CoreScheduler::new(sys.clone(), 0);
        Cores { sys: sys.clone(), wakers: wakers.clone(), core0, stop, threads }
    }

    /// Starts every core of the system.
    pub fn start_all(sys: &Arc<System>, wakers: &Arc<Wakers>) -> Cores {
        let all: Vec<usize> = (0..sys.cores()).collect();
        Cores::start(sys, wakers, &all)
    }

    /// Runs until every task in `watch` has exited or `timeout_ns` passes;
    /// returns their exits (`None` = still running).
    pub fn wait(&mut self, watch: &[TaskId], timeout_ns: u64) -> Vec<Option<TaskExit>> {
        let (sys, wakers) = (self.sys.clone(), self.wakers.clone());
        let all_done = || watch.iter().all(|id| sys.exit_of(*id).is_some());
        self.core0.run_until(timeout_ns, all_done, |s, deadline| wakers.idle(&sys, s.core(), deadline));
        watch.iter().map(|id| sys.exit_of(*id)).collect()
    }

    /// Runs core 0 here until any task in `watch` has ended or
    /// `timeout_ns` passes; the exits so far, in `watch`'s order.
    pub fn wait_any(&mut self, watch: &[TaskId], timeout_ns: u64) -> Vec<Option<TaskExit>> {
        let (sys, wakers) = (self.sys.clone(), self.wakers.clone());
        let any_done = || watch.iter().any(|id| sys.exit_of(*id).is_some());
        self.core0.run_until(timeout_ns, any_done, |s, deadline| wakers.idle(&sys, s.core(), deadline));
        watch.iter().map(|id| sys.exit_of(*id)).collect()
    }
}

impl Drop for Cores {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for core in 1..self.sys.cores() {
            self.wakers.wake(core);
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
