//! What differs between bare metal and the hosted runtime.

use wasmos_ipc::abi::ExitReason;

/// Which of a program's output streams a write went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// WASI fd 1, and `console_write` (a native program's only output).
    Stdout,
    /// WASI fd 2.
    Stderr,
}

/// Services the scheduler needs from whatever runs it. Implementations:
/// the kernel (`kernel/src/tasks.rs`: TSC clock, IPIs, COM1 out and in) and
/// the hosted runtime (monotonic clock, condvars, stdout and stdin).
pub trait Platform: Send + Sync {
    /// Monotonic nanoseconds, the same clock on every core.
    fn now_ns(&self) -> u64;
    /// Wakes core `core`, which announced it is going to sleep.
    fn wake_core(&self, core: usize);
    /// A line for the console log about task `task` (its exit notice),
    /// and by default everything a task writes (see [`Platform::output`]).
    fn console_write(&self, core: usize, task: &str, text: &[u8]);
    /// Task `task` wrote `text` to its stdout or stderr. The kernel logs it
    /// like any console line (the default); the hosted runtime passes it
    /// through raw, so a program can sit in a pipeline.
    fn output(&self, core: usize, task: &str, _stream: Stream, text: &[u8]) {
        self.console_write(core, task, text)
    }
    /// Task `task` ended (after its exit notice went to the console), with
    /// its exit code when `reason` is `Exited`. The kernel uses it to leave
    /// QEMU when the programs named by `exit_with=` in boot.cfg end.
    fn task_ended(&self, _task: &str, _code: i32, _reason: ExitReason) {}
    /// Fills `buf` with random bytes (WASI `random_get`). Implementations
    /// say where their randomness comes from.
    fn fill_random(&self, buf: &mut [u8]);
    /// Console input (WASI stdin): moves up to `buf.len()` bytes into
    /// `buf`. `Some(n)` with n > 0: that many bytes; `Some(0)`: the input
    /// has ended (the default: a platform without input is at its end);
    /// `None`: nothing now, more may come. Never blocks. The kernel reads
    /// COM1 (filled by its receive interrupt), the hosted runtime its
    /// process's stdin.
    fn console_read(&self, _buf: &mut [u8]) -> Option<usize> {
        Some(0)
    }
    /// Whether [`Platform::console_read`] would return `Some` now (bytes,
    /// or the end of input).
    fn console_ready(&self) -> bool {
        true
    }
    /// A task on core `core` is blocked on console input (`None`: no task
    /// is any more). Until told otherwise, the platform wakes that core
    /// ([`Platform::wake_core`]) when input arrives or ends, so that its
    /// scheduler looks again; the scheduler checks
    /// [`Platform::console_ready`] before it sleeps, so a wake-up that
    /// comes early is never needed twice.
    fn console_wait(&self, _core: Option<usize>) {}
    /// A file of the boot bundle, for the init task (`boot_file`) and the
    /// read-only file tree WASI programs see (`files/...`).
    fn boot_file(&self, _name: &str) -> Option<&[u8]> {
        None
    }
}
