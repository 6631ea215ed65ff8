//! Baselines measured on the host, in the same `cargo xtask bench` run:
//! Linux system call, pipe ping-pong between two processes, condvar
//! (futex) ping-pong between two threads. Each is timed like the native
//! path in QEMU (`lfence; rdtsc` ... `rdtscp; lfence`, host TSC, whose
//! frequency [`calibrate_tsc`] measures against the monotonic clock),
//! warmed up the same way, summarised with the same statistics.
//!
//! "Same core" pins both sides to CPU 0, "cross core" to CPUs 0 and 1
//! (`sched_setaffinity`), each from a thread of its own so the caller's
//! affinity is untouched. The pipe's other process is the xtask binary
//! itself, re-executed with a hidden subcommand that runs [`pipe_child`].

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::stats::{Summary, summarize};
use crate::workloads::warmup;

/// Reads the TSC after everything before it completed.
#[cfg(target_arch = "x86_64")]
pub fn tsc_begin() -> u64 {
    use std::arch::x86_64::{_mm_lfence, _rdtsc};
    // SAFETY: LFENCE and RDTSC are available on every x86_64 CPU and
    // only read the time-stamp counter.
    unsafe {
        _mm_lfence();
        let t = _rdtsc();
        _mm_lfence();
        t
    }
}

/// Reads the TSC once everything before it completed.
#[cfg(target_arch = "x86_64")]
pub fn tsc_end() -> u64 {
    use std::arch::x86_64::{__rdtscp, _mm_lfence};
    let mut aux = 0;
    // SAFETY: RDTSCP is on every x86_64 CPU this runs on (checked by
    // `has_rdtscp` before any timing); it only reads counters.
    unsafe {
        let t = __rdtscp(&mut aux);
        _mm_lfence();
        t
    }
}

/// Whether the host CPU has RDTSCP.
pub fn has_rdtscp() -> bool {
    let max = std::arch::x86_64::__cpuid(0x8000_0000).eax;
    max >= 0x8000_0001 && std::arch::x86_64::__cpuid(0x8000_0001).edx & (1 << 27) != 0
}

/// The host TSC's frequency, measured over `ms` of the monotonic clock.
pub fn calibrate_tsc(ms: u64) -> u64 {
    let (t0, c0) = (Instant::now(), tsc_begin());
    std::thread::sleep(Duration::from_millis(ms));
    let (c1, t1) = (tsc_end(), Instant::now());
    ((c1 - c0) as f64 / (t1 - t0).as_secs_f64()) as u64
}

/// CPUs this process may run on.
pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Pins the calling thread to `cpu`.
pub fn pin(cpu: usize) -> std::io::Result<()> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET and
    // sched_setaffinity only read and write that local set.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

fn finish(mut samples: Vec<u64>) -> Summary {
    let w = warmup(samples.len());
    summarize(&mut samples[w..]).expect("at least one sample")
}

/// `getpid` through `syscall(2)` (glibc's `getpid()` is a real system
/// call too, but `syscall` makes it explicit), `batch` per sample.
pub fn getpid(samples: usize, batch: u32) -> Summary {
    let mut out = Vec::with_capacity(samples);
    for _ in 0..samples {
        let t0 = tsc_begin();
        for _ in 0..batch {
            // SAFETY: getpid has no arguments and no side effects.
            std::hint::black_box(unsafe { libc::syscall(libc::SYS_getpid) });
        }
        out.push(tsc_end() - t0);
    }
    finish(out)
}

/// The child side of the pipe ping-pong: pins itself to `cpu`, then
/// echoes 8-byte messages from stdin to stdout until stdin closes.
pub fn pipe_child(cpu: usize) {
    let _ = pin(cpu);
    let (mut input, mut output) = (std::io::stdin().lock(), std::io::stdout().lock());
    let mut buf = [0u8; 8];
    while input.read_exact(&mut buf).is_ok() {
        if output.write_all(&buf).and_then(|_| output.flush()).is_err() {
            break;
        }
    }
}

/// Round trips of 8 bytes through two pipes to a child process: `child`
/// must run [`pipe_child`] pinned to `child_cpu` (it gets that CPU as its
/// last argument); this side runs pinned to `cpu`.
pub fn pipe_pingpong(child: &mut Command, cpu: usize, child_cpu: usize, samples: usize) -> Result<Summary, String> {
    let mut proc = child
        .arg(child_cpu.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start the pipe child: {e}"))?;
    let (mut to, mut from) = (proc.stdin.take().expect("piped"), proc.stdout.take().expect("piped"));
    let result = std::thread::scope(|s| {
        s.spawn(|| -> Result<Vec<u64>, String> {
            pin(cpu).map_err(|e| format!("pin: {e}"))?;
            let mut out = Vec::with_capacity(samples);
            let mut buf = [0u8; 8];
            for i in 0..samples as u64 {
                let t0 = tsc_begin();
                to.write_all(&i.to_le_bytes()).map_err(|e| e.to_string())?;
                from.read_exact(&mut buf).map_err(|e| e.to_string())?;
                out.push(tsc_end() - t0);
            }
            Ok(out)
        })
        .join()
        .map_err(|_| "pipe thread panicked".to_string())?
    });
    drop(to);
    let _ = proc.wait();
    Ok(finish(result?))
}

/// Round trips between two threads through a mutex + condvar (futexes on
/// Linux): one flips a turn flag and waits for it to come back.
pub fn futex_pingpong(cpu_a: usize, cpu_b: usize, samples: usize) -> Result<Summary, String> {
    let state = Arc::new((Mutex::new(false), Condvar::new()));
    let other = state.clone();
    let peer = std::thread::spawn(move || {
        let _ = pin(cpu_b);
        let (lock, cv) = &*other;
        for _ in 0..samples {
            let mut turn = lock.lock().expect("not poisoned");
            while !*turn {
                turn = cv.wait(turn).expect("not poisoned");
            }
            *turn = false;
            cv.notify_one();
        }
    });
    let timed = std::thread::spawn(move || -> Result<Vec<u64>, String> {
        pin(cpu_a).map_err(|e| format!("pin: {e}"))?;
        let (lock, cv) = &*state;
        let mut out = Vec::with_capacity(samples);
        for _ in 0..samples {
            let t0 = tsc_begin();
            let mut turn = lock.lock().expect("not poisoned");
            *turn = true;
            cv.notify_one();
            while *turn {
                turn = cv.wait(turn).expect("not poisoned");
            }
            drop(turn);
            out.push(tsc_end() - t0);
        }
        Ok(out)
    });
    let out = timed.join().map_err(|_| "futex thread panicked".to_string())??;
    peer.join().map_err(|_| "futex peer panicked".to_string())?;
    Ok(finish(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tsc_and_baselines_give_ordered_figures() {
        assert!(has_rdtscp());
        let hz = calibrate_tsc(20);
        assert!(hz > 100_000_000, "{hz}");
        let s = getpid(50, 10);
        assert!(s.min > 0 && s.min <= s.median && s.median <= s.p99);
        let s = futex_pingpong(0, cpus().min(2) - 1, 50).unwrap();
        assert!(s.min > 0 && s.median <= s.p99);
    }

    #[test]
    fn pipe_pingpong_with_cat() {
        // `cat` echoes like `pipe_child` (it ignores our extra argument
        // only if it names a file, so use `sh -c cat`).
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "cat", "sh"]);
        let s = pipe_pingpong(&mut cmd, 0, 0, 20).unwrap();
        assert!(s.min > 0 && s.median <= s.p99);
    }
}
