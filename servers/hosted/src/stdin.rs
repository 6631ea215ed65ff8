//! Console input for the hosted runtime: the process's stdin, the same
//! stream WASI `fd_read` on fd 0 reads in QEMU from COM1.
//!
//! A thread (started by the first read, so a run whose programs never
//! read stdin never touches it) reads stdin in chunks into a bounded
//! buffer and wakes the core whose task waits for input
//! (`Platform::console_wait`). When the buffer is full the thread waits
//! for room: nothing is dropped (unlike a UART, a pipe can be told to
//! wait). Host stdin's end of file (or a read error) is the program's end
//! of input.

use std::collections::VecDeque;
use std::io::Read;
use std::sync::{Arc, Condvar, Mutex};

use wasmos_sched::threads::Wakers;

/// Bytes held for the reading task.
const BUFFER_BYTES: usize = 64 * 1024;
/// Bytes the thread reads at a time.
const CHUNK: usize = 4096;

#[derive(Default)]
struct State {
    bytes: VecDeque<u8>,
    ended: bool,
    started: bool,
    /// The core to wake when input comes.
    waiter: Option<usize>,
}

pub struct HostStdin {
    state: Mutex<State>,
    room: Condvar,
    wakers: Arc<Wakers>,
}

impl HostStdin {
    pub fn new(wakers: Arc<Wakers>) -> Arc<HostStdin> {
        Arc::new(HostStdin { state: Mutex::new(State::default()), room: Condvar::new(), wakers })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `Platform::console_read`.
    pub fn read(this: &Arc<HostStdin>, buf: &mut [u8]) -> Option<usize> {
        let mut state = this.lock();
        if !state.started {
            state.started = true;
            let me = this.clone();
            let spawned = std::thread::Builder::new().name("stdin".into()).spawn(move || me.pump(std::io::stdin()));
            if spawned.is_err() {
                state.ended = true;
            }
        }
        let n = buf.len().min(state.bytes.len());
        for (b, byte) in buf.iter_mut().zip(state.bytes.drain(..n)) {
            *b = byte;
        }
        if n > 0 {
            this.room.notify_one();
            return Some(n);
        }
        (state.ended || buf.is_empty()).then_some(0)
    }

    /// `Platform::console_ready`.
    pub fn ready(&self) -> bool {
        let state = self.lock();
        // Not started: the first read starts the thread and must happen.
        !state.started || state.ended || !state.bytes.is_empty()
    }

    /// `Platform::console_wait`.
    pub fn wait(&self, core: Option<usize>) {
        self.lock().waiter = core;
    }

    /// The thread: stdin into the buffer until it ends.
    fn pump(&self, mut input: impl Read) {
        let mut chunk = [0u8; CHUNK];
        loop {
            let got = match input.read(&mut chunk) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => 0,
            };
            let mut state = self.lock();
            while got > 0 && state.bytes.len() + got > BUFFER_BYTES {
                state = self.room.wait(state).unwrap_or_else(|e| e.into_inner());
            }
            if got == 0 {
                state.ended = true;
            } else {
                state.bytes.extend(&chunk[..got]);
            }
            if let Some(core) = state.waiter {
                self.wakers.wake(core);
            }
            if got == 0 {
                return;
            }
        }
    }
}
