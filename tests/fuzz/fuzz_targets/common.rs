//! A one-core system with a quiet platform, and a bounded run of it.
use std::sync::Arc;

use wasmos_sched::{Config, CoreScheduler, Platform, Poll, System};

pub struct Quiet;

impl Platform for Quiet {
    fn now_ns(&self) -> u64 {
        // A clock that only moves when asked keeps runs deterministic.
        use std::sync::atomic::{AtomicU64, Ordering};
        static NOW: AtomicU64 = AtomicU64::new(0);
        NOW.fetch_add(1_000, Ordering::Relaxed)
    }
    fn wake_core(&self, _core: usize) {}
    fn console_write(&self, _core: usize, _task: &str, _text: &[u8]) {}
    fn fill_random(&self, buf: &mut [u8]) {
        buf.fill(7);
    }
}

pub fn system() -> Arc<System> {
    let config = Config {
        fuel_slice: 2_000,
        max_memory_bytes: 1 << 20,
        total_memory_bytes: 4 << 20,
        max_tasks: 16,
        ..Config::default()
    };
    Arc::new(System::new(1, config, Arc::new(Quiet)))
}

/// Polls core 0 a bounded number of times (tasks may block forever).
pub fn run(sys: &Arc<System>, polls: usize) {
    let mut sched = CoreScheduler::new(sys.clone(), 0);
    for _ in 0..polls {
        if let Poll::Idle { .. } = sched.poll() {
            break;
        }
    }
}
