//! What differs between bare metal and the hosted runtime.

/// Services the scheduler needs from whatever runs it. Implementations:
/// the kernel (`kernel/src/tasks.rs`: TSC clock, IPIs, COM1) and the hosted
/// runtime (monotonic clock, condvars, stdout).
pub trait Platform: Send + Sync {
    /// Monotonic nanoseconds, the same clock on every core.
    fn now_ns(&self) -> u64;
    /// Wakes core `core`, which announced it is going to sleep.
    fn wake_core(&self, core: usize);
    /// A task wrote to the console.
    fn console_write(&self, core: usize, task: &str, text: &[u8]);
    /// Fills `buf` with random bytes (WASI `random_get`). Implementations
    /// say where their randomness comes from.
    fn fill_random(&self, buf: &mut [u8]);
    /// A file of the boot bundle, for the init task (`boot_file`) and the
    /// read-only file tree WASI programs see (`files/...`).
    fn boot_file(&self, _name: &str) -> Option<&[u8]> {
        None
    }
}
