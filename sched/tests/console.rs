//! WASI stdin over the platform's console input: `fd_read` on fd 0 blocks
//! the task until input comes (the core is told, `console_wait`, and woken
//! by the platform), returns what is there, 0 at the end of input; one
//! task owns stdin, another reader meanwhile gets `EBUSY`.

mod common;

use std::time::{Duration, Instant};

use common::*;
use wasmos_sched::{Config, TaskExit};

/// Reads stdin until its end, writing every chunk to stdout; exits 7 at
/// the end of input, or with the errno of a failed read.
const CAT: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func (export "_start") (local $errno i32)
    (loop $more
      ;; iovec at 0: 1024 bytes at 64; the count at 16
      (i32.store (i32.const 0) (i32.const 64))
      (i32.store (i32.const 4) (i32.const 1024))
      (local.set $errno (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 16)))
      (if (local.get $errno) (then (call $exit (local.get $errno))))
      (if (i32.eqz (i32.load (i32.const 16))) (then (call $exit (i32.const 7))))
      ;; the same bytes out: iovec at 32
      (i32.store (i32.const 32) (i32.const 64))
      (i32.store (i32.const 36) (i32.load (i32.const 16)))
      (drop (call $fd_write (i32.const 1) (i32.const 32) (i32.const 1) (i32.const 24)))
      (br $more))))"#;

fn exited(code: i32) -> Option<TaskExit> {
    Some(TaskExit { code, reason: wasmos_ipc::abi::ExitReason::Exited })
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < Duration::from_secs(10), "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// What `task` wrote (its exit notice left out).
fn printed(platform: &TestPlatform, task: &str) -> String {
    let console = platform.console.lock().unwrap();
    let texts = console.iter().filter(|(_, t, text)| t == task && !text.starts_with("exited with code"));
    texts.map(|(_, _, text)| text.as_str()).collect()
}

#[test]
fn stdin_blocks_until_input_and_ends_with_eof() {
    let (sys, platform) = system(2, Config::default());
    platform.open_input();
    let cat = sys.spawn(&wat::parse_str(CAT).unwrap(), "cat", 1).unwrap();
    let typist = {
        let platform = platform.clone();
        std::thread::spawn(move || {
            // The task blocked on core 1 and said so: nothing has been typed.
            wait_until("cat waits for input", || platform.input_waiter() == Some(1));
            assert_eq!(printed(&platform, "cat"), "");
            platform.type_input(b"first line\n");
            wait_until("the first line is echoed", || printed(&platform, "cat") == "first line\n");
            // Blocked again, then two chunks that may arrive as one read.
            wait_until("cat waits again", || platform.input_waiter() == Some(1));
            platform.type_input(b"sec");
            platform.type_input(b"ond\n");
            wait_until("the second line is echoed", || printed(&platform, "cat") == "first line\nsecond\n");
            platform.end_input();
        })
    };
    assert_eq!(run(&sys, &platform, &[cat], 20), [exited(7)]);
    typist.join().unwrap();
    assert_eq!(platform.input_waiter(), None, "the waiter is forgotten once served");
}

#[test]
fn a_second_reader_gets_ebusy_while_the_owner_lives() {
    let (sys, platform) = system(2, Config::default());
    platform.open_input();
    let owner = sys.spawn(&wat::parse_str(CAT).unwrap(), "owner", 0).unwrap();
    let platform2 = platform.clone();
    let sys2 = sys.clone();
    let other = std::thread::spawn(move || {
        wait_until("the owner waits for input", || platform2.input_waiter() == Some(0));
        let other = sys2.spawn(&wat::parse_str(CAT).unwrap(), "other", 1).unwrap();
        wait_until("the other reader ended", || sys2.exit_of(other).is_some());
        platform2.type_input(b"for the owner\n");
        wait_until("the owner echoed", || printed(&platform2, "owner") == "for the owner\n");
        platform2.end_input();
        other
    });
    assert_eq!(run(&sys, &platform, &[owner], 20), [exited(7)]);
    let other = other.join().unwrap();
    // EBUSY is 10.
    assert_eq!(sys.exit_of(other), exited(10));
    assert_eq!(printed(&platform, "other"), "");
}

/// Reads stdin once, echoes it, exits 3.
const ONCE: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 64))
    (i32.store (i32.const 4) (i32.const 1024))
    (if (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 16)) (then (call $exit (i32.const 1))))
    (i32.store (i32.const 32) (i32.const 64))
    (i32.store (i32.const 36) (i32.load (i32.const 16)))
    (drop (call $fd_write (i32.const 1) (i32.const 32) (i32.const 1) (i32.const 24)))
    (call $exit (i32.const 3))))"#;

#[test]
fn an_owner_that_ended_gives_stdin_to_the_next_reader() {
    let (sys, platform) = system(2, Config::default());
    platform.open_input();
    let first = sys.spawn(&wat::parse_str(ONCE).unwrap(), "first", 0).unwrap();
    let mut running = cores(&sys, &platform, &[0, 1]);
    let (tx, rx) = std::sync::mpsc::channel();
    let typist = {
        let (sys, platform) = (sys.clone(), platform.clone());
        std::thread::spawn(move || {
            wait_until("the first reader waits", || platform.input_waiter() == Some(0));
            platform.type_input(b"a\n");
            wait_until("the first reader ended", || sys.exit_of(first).is_some());
            let second = sys.spawn(&wat::parse_str(CAT).unwrap(), "second", 1).unwrap();
            tx.send(second).unwrap();
            wait_until("the second reader waits", || platform.input_waiter() == Some(1));
            platform.type_input(b"b\n");
            platform.end_input();
        })
    };
    assert_eq!(running.wait(&[first], 20_000_000_000), [exited(3)]);
    let second = rx.recv_timeout(Duration::from_secs(20)).unwrap();
    assert_eq!(running.wait(&[second], 20_000_000_000), [exited(7)]);
    typist.join().unwrap();
    assert_eq!(printed(&platform, "first"), "a\n");
    assert_eq!(printed(&platform, "second"), "b\n");
}

/// `poll_oneoff` on stdin (userdata 7) and a relative clock of
/// `timeout_ns` (userdata 9); exits with userdata * 10 + the event's type
/// (71: stdin readable, 90: the clock), or 100 + errno.
fn poll_program(timeout_ns: u64) -> Vec<u8> {
    wat::parse_str(format!(
        r#"(module
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func (export "_start") (local $errno i32)
    (i64.store (i32.const 0) (i64.const 7))
    (i32.store8 (i32.const 8) (i32.const 1))
    (i32.store (i32.const 16) (i32.const 0))
    (i64.store (i32.const 48) (i64.const 9))
    (i32.store8 (i32.const 56) (i32.const 0))
    (i64.store (i32.const 72) (i64.const {timeout_ns}))
    (local.set $errno (call $poll (i32.const 0) (i32.const 128) (i32.const 2) (i32.const 160)))
    (if (local.get $errno) (then (call $exit (i32.add (i32.const 100) (local.get $errno)))))
    (if (i32.ne (i32.load (i32.const 160)) (i32.const 1)) (then (call $exit (i32.const 99))))
    (call $exit (i32.add (i32.mul (i32.load (i32.const 128)) (i32.const 10)) (i32.load8_u (i32.const 138))))))"#
    ))
    .unwrap()
}

#[test]
fn poll_oneoff_wakes_on_stdin_before_its_clock() {
    let (sys, platform) = system(2, Config::default());
    platform.open_input();
    let poller = sys.spawn(&poll_program(20_000_000_000), "poller", 1).unwrap();
    let typist = {
        let platform = platform.clone();
        std::thread::spawn(move || {
            wait_until("the poller waits for input", || platform.input_waiter() == Some(1));
            platform.type_input(b"x");
        })
    };
    assert_eq!(run(&sys, &platform, &[poller], 10), [exited(71)]);
    typist.join().unwrap();
    // Polling took nothing: the byte is still there for a read.
    assert_eq!(platform.input.lock().unwrap().as_ref().unwrap().bytes.len(), 1);
}

#[test]
fn poll_oneoff_on_quiet_stdin_ends_with_its_clock() {
    let (sys, platform) = system(1, Config::default());
    platform.open_input();
    let start = Instant::now();
    let poller = sys.spawn(&poll_program(50_000_000), "poller", 0).unwrap();
    assert_eq!(run(&sys, &platform, &[poller], 10), [exited(90)]);
    assert!(start.elapsed() >= Duration::from_millis(50));
    assert_eq!(platform.input_waiter(), None, "the clock ended the wait for input too");
}

#[test]
fn poll_oneoff_on_stdin_with_input_there_returns_at_once() {
    let (sys, platform) = system(1, Config::default());
    platform.open_input();
    platform.type_input(b"ready");
    let poller = sys.spawn(&poll_program(20_000_000_000), "poller", 0).unwrap();
    assert_eq!(run(&sys, &platform, &[poller], 10), [exited(71)]);
}
