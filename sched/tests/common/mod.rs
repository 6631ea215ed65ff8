//! Test harness: a host `Platform` on the `threads` runner (threads as
//! cores, condvars as IPIs) that records what tasks print, and helpers to
//! build test programs.

#![allow(dead_code)]

use std::sync::{Arc, Mutex, OnceLock, Weak};

use wasmos_ipc::abi::ExitReason;
use wasmos_ipc::ids::TaskId;
use wasmos_sched::threads::{Cores, Wakers};
use wasmos_sched::{Config, Platform, System, TaskExit};

pub struct TestPlatform {
    wakers: Arc<Wakers>,
    pub console: Mutex<Vec<(usize, String, String)>>,
    /// The system, so that `task_ended` can look at it.
    sys: OnceLock<Weak<System>>,
    /// `System::memory_in_use` each time a task's end was announced.
    pub memory_at_exit: Mutex<Vec<usize>>,
    /// Console input, once a test opens it ([`TestPlatform::open_input`]);
    /// `None`: at its end, as a platform without input is.
    pub input: Mutex<Option<Input>>,
}

/// Console input a test types.
#[derive(Default)]
pub struct Input {
    pub bytes: std::collections::VecDeque<u8>,
    pub ended: bool,
    /// The core the scheduler said waits for input.
    pub waiter: Option<usize>,
}

impl TestPlatform {
    /// Console input that is open and empty: reads block until
    /// [`TestPlatform::type_input`] or [`TestPlatform::end_input`].
    pub fn open_input(&self) {
        *self.input.lock().unwrap() = Some(Input::default());
    }

    /// Input arrives, and the waiting core is woken, as a platform must.
    pub fn type_input(&self, bytes: &[u8]) {
        let waiter = {
            let mut input = self.input.lock().unwrap();
            let input = input.as_mut().expect("input opened");
            input.bytes.extend(bytes);
            input.waiter
        };
        if let Some(core) = waiter {
            self.wakers.wake(core);
        }
    }

    pub fn end_input(&self) {
        let waiter = {
            let mut input = self.input.lock().unwrap();
            let input = input.as_mut().expect("input opened");
            input.ended = true;
            input.waiter
        };
        if let Some(core) = waiter {
            self.wakers.wake(core);
        }
    }

    /// The core blocked on console input, if any.
    pub fn input_waiter(&self) -> Option<usize> {
        self.input.lock().unwrap().as_ref().and_then(|i| i.waiter)
    }
}

impl Platform for TestPlatform {
    fn now_ns(&self) -> u64 {
        self.wakers.now_ns()
    }
    fn wake_core(&self, core: usize) {
        self.wakers.wake(core)
    }
    fn console_write(&self, core: usize, task: &str, text: &[u8]) {
        self.console.lock().unwrap().push((core, task.into(), String::from_utf8_lossy(text).into()));
    }
    fn task_ended(&self, _task: &str, _code: i32, _reason: ExitReason) {
        if let Some(sys) = self.sys.get().and_then(Weak::upgrade) {
            self.memory_at_exit.lock().unwrap().push(sys.memory_in_use());
        }
    }
    fn boot_file(&self, name: &str) -> Option<&[u8]> {
        match name {
            "motd" => Some(b"hello"),
            "files/data/hello.txt" => Some(b"file contents from the bundle\n"),
            _ => None,
        }
    }
    fn console_read(&self, buf: &mut [u8]) -> Option<usize> {
        let mut input = self.input.lock().unwrap();
        let Some(input) = input.as_mut() else { return Some(0) };
        let n = buf.len().min(input.bytes.len());
        for (b, byte) in buf.iter_mut().zip(input.bytes.drain(..n)) {
            *b = byte;
        }
        if n > 0 || input.ended { Some(n) } else { None }
    }
    fn console_ready(&self) -> bool {
        self.input.lock().unwrap().as_ref().is_none_or(|i| i.ended || !i.bytes.is_empty())
    }
    fn console_wait(&self, core: Option<usize>) {
        if let Some(input) = self.input.lock().unwrap().as_mut() {
            input.waiter = core;
        }
    }
    fn fill_random(&self, buf: &mut [u8]) {
        // Deterministic for tests; the kernel and hosted runtime use real sources.
        for (i, b) in buf.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(151).wrapping_add(7);
        }
    }
}

/// A system of `cores` cores; the platform records what tasks print.
pub fn system(cores: usize, config: Config) -> (Arc<System>, Arc<TestPlatform>) {
    let platform = Arc::new(TestPlatform {
        wakers: Arc::new(Wakers::new(cores)),
        console: Mutex::new(Vec::new()),
        sys: OnceLock::new(),
        memory_at_exit: Mutex::new(Vec::new()),
        input: Mutex::new(None),
    });
    let sys = Arc::new(System::new(cores, config, platform.clone()));
    let _ = platform.sys.set(Arc::downgrade(&sys));
    (sys, platform)
}

/// Runs only the listed cores (core 0 first).
pub fn cores(sys: &Arc<System>, platform: &Arc<TestPlatform>, list: &[usize]) -> Cores {
    Cores::start(sys, &platform.wakers, list)
}

/// Runs every core until the tasks in `watch` exit; returns their exits.
pub fn run(sys: &Arc<System>, platform: &Arc<TestPlatform>, watch: &[TaskId], secs: u64) -> Vec<Option<TaskExit>> {
    Cores::start_all(sys, &platform.wakers).wait(watch, secs * 1_000_000_000)
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
