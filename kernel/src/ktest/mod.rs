//! The in-kernel test runner.
//!
//! Custom test frameworks are nightly-only, so tests are listed explicitly
//! in [`ALL`], each a plain function returning `Result<(), String>`. The
//! runner reports each test on the result channel (`test-start`,
//! `test-pass <name> <us>`, `test-fail <name> <why>`) and on the log, then a
//! `done` line. A test that panics or faults kills the run; the harness sees
//! a `test-start` without an outcome and blames that test.

mod accounting;
mod memory;
mod smp;
pub mod soak;
mod storage;
mod wasm;

use alloc::string::String;
use alloc::sync::Arc;

use wasmos_bundle::Bundle;
use wasmos_sched::{CoreScheduler, System};

use crate::result;

pub type TestResult = Result<(), String>;

pub struct Test {
    pub name: &'static str,
    pub run: fn(&mut Ctx) -> TestResult,
}

/// What tests get: the task system, the BSP's own scheduler (a test that
/// waits for tasks keeps core 0 scheduling while it waits), the bundle.
pub struct Ctx {
    pub sys: Arc<System>,
    pub sched: CoreScheduler,
    pub bundle: Option<Bundle<'static>>,
}

impl Ctx {
    /// The context on the BSP (core 0), which runs the tests.
    pub fn new(sys: &Arc<System>, bundle: Option<Bundle<'static>>) -> Ctx {
        Ctx { sys: sys.clone(), sched: CoreScheduler::new(sys.clone(), 0), bundle }
    }
}

/// Fails the current test with a message and the source location.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($arg:tt)*) => {
        if !$cond {
            return Err(alloc::format!("{} (at {}:{})", format_args!($($arg)*), file!(), line!()));
        }
    };
}

const ALL: &[&[Test]] = &[memory::TESTS, smp::TESTS, wasm::TESTS, accounting::TESTS, storage::TESTS];

/// Tests that need what only their own suite sets up (the storage tests
/// need a prepared disk): they run only when the filter names them.
fn only_when_named(name: &str) -> bool {
    name.starts_with("storage::")
}

pub struct Outcome {
    pub passed: usize,
    pub failed: usize,
}

/// Runs every test whose name contains one of the filter's comma-separated
/// parts (all tests when there is no filter).
pub fn run(filter: Option<&str>, ctx: &mut Ctx) -> Outcome {
    let selected = |name: &str| match filter {
        None => !only_when_named(name),
        Some(f) => f
            .split(',')
            .map(str::trim)
            .any(|part| name.contains(part) && (part.starts_with("storage") || !only_when_named(name))),
    };
    let mut outcome = Outcome { passed: 0, failed: 0 };
    for test in ALL.iter().flat_map(|group| group.iter()).filter(|t| selected(t.name)) {
        result!("test-start {}", test.name);
        let start = crate::smp::now_ns();
        let res = (test.run)(ctx);
        let micros = (crate::smp::now_ns() - start) / 1000;
        match res {
            Ok(()) => {
                outcome.passed += 1;
                log::info!("test {} ... ok ({} us)", test.name, micros);
                result!("test-pass {} {}", test.name, micros);
            }
            Err(why) => {
                outcome.failed += 1;
                let why = why.replace('\n', " ");
                log::error!("test {} ... FAILED: {}", test.name, why);
                result!("test-fail {} {}", test.name, why);
            }
        }
    }
    result!("done passed={} failed={}", outcome.passed, outcome.failed);
    log::info!("tests done: {} passed, {} failed", outcome.passed, outcome.failed);
    outcome
}
