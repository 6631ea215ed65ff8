//! Host tests of the scheduler: real Wasm programs (written in WAT) on
//! one or more cores (threads), through the same code the kernel runs.

mod common;

use common::{data_string, run, system, wasm};
use wasmos_ipc::abi::{ExitReason, Status};
use wasmos_sched::{Config, TaskExit};

fn exited(code: i32) -> Option<TaskExit> {
    Some(TaskExit { code, reason: ExitReason::Exited })
}

const ECHO_SERVER: &str = r#"
  (data (i32.const 0) "echo")
  (func (export "_start") (local $n i32)
    (drop (call $register (i32.const 0) (i32.const 4) (i32.const 0)))
    (loop $serve
      (local.set $n (call $recv (i32.const -1) (i32.const 1024) (i32.const 4096) (i32.const 512) (i64.const -1)))
      (i32.store (i32.const 1024) (i32.add (i32.load (i32.const 1024)) (i32.const 1)))
      (drop (call $reply (i32.load (i32.const 524)) (i32.const 1024) (local.get $n)))
      (br $serve)))
"#;

/// Calls "echo" `n` times; exits 0 if every reply is the request plus one.
fn echo_client(n: u32) -> String {
    format!(
        r#"
  (data (i32.const 0) "echo")
  (func (export "_start") (local $h i32) (local $i i32) (local $r i32)
    (local.set $h (call $lookup_wait (i32.const 0) (i32.const 4)))
    (loop $l
      (i32.store (i32.const 2048) (local.get $i))
      (local.set $r (call $call (local.get $h) (i32.const 2048) (i32.const 4) (i32.const 3072) (i32.const 64)))
      (if (i32.ne (local.get $r) (i32.const 4)) (then (call $exit (i32.sub (i32.const 1000) (local.get $r)))))
      (if (i32.ne (i32.load (i32.const 3072)) (i32.add (local.get $i) (i32.const 1))) (then (call $exit (i32.const 2))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const {n}))))
    (call $exit (i32.const 0)))
"#
    )
}

#[test]
fn hello_prints_and_exits_with_its_code() {
    let (sys, platform) = system(1, Config::default());
    let body = r#"
      (data (i32.const 0) "hello from wasm")
      (func (export "_start") (drop (call $print (i32.const 0) (i32.const 15))) (call $exit (i32.const 7)))"#;
    let id = sys.spawn(&wasm(body), "hello", 0).unwrap();
    assert_eq!(run(&sys, &platform, &[id], 10), [exited(7)]);
    let console = platform.console.lock().unwrap();
    assert_eq!(console[0], (0, "hello".into(), "hello from wasm".into()));
    assert_eq!(sys.task_count(), 0, "exited task still in the directory");
}

#[test]
fn returning_from_start_is_exit_zero() {
    let (sys, platform) = system(1, Config::default());
    let id = sys.spawn(&wasm(r#"(func (export "_start"))"#), "t", 0).unwrap();
    assert_eq!(run(&sys, &platform, &[id], 10), [exited(0)]);
}

#[test]
fn invalid_binaries_are_rejected_at_spawn() {
    let (sys, _) = system(1, Config::default());
    assert_eq!(sys.spawn(b"\0asm garbage", "bad", 0), Err(Status::InvalidWasm));
    assert_eq!(sys.spawn(b"", "empty", 0), Err(Status::InvalidWasm));
    let unknown_import = wat::parse_str(r#"(module (import "env" "f" (func)) (func (export "_start")))"#).unwrap();
    assert_eq!(sys.spawn(&unknown_import, "imports", 0), Err(Status::InvalidWasm));
    assert_eq!(sys.spawn(&wasm(r#"(func (export "_start"))"#), "core", 5), Err(Status::InvalidArgument));
}

#[test]
fn ping_pong_same_core() {
    let (sys, platform) = system(1, Config::default());
    sys.spawn(&wasm(ECHO_SERVER), "echo", 0).unwrap();
    let client = sys.spawn(&wasm(&echo_client(2000)), "client", 0).unwrap();
    assert_eq!(run(&sys, &platform, &[client], 30), [exited(0)]);
    assert!(sys.stats(0).delivered.load(std::sync::atomic::Ordering::Relaxed) >= 4000);
}

#[test]
fn ping_pong_across_cores() {
    let (sys, platform) = system(2, Config::default());
    sys.spawn(&wasm(ECHO_SERVER), "echo", 1).unwrap();
    let client = sys.spawn(&wasm(&echo_client(2000)), "client", 0).unwrap();
    assert_eq!(run(&sys, &platform, &[client], 30), [exited(0)]);
}

/// Every core runs a sink and a sender; each sender sends `M` messages to
/// every sink; each sink exits with the number it received.
#[test]
fn all_to_all_storm_counts_every_message() {
    const CORES: usize = 4;
    const M: u32 = 500;
    let (sys, platform) = system(CORES, Config { ring_capacity: 64, ..Config::default() });
    let sink = format!(
        r#"
      (data (i32.const 0) "sink0")
      (func (export "_start") (local $n i32)
        (i32.store8 (i32.const 4) (i32.add (i32.const 48) (call $core_id)))
        (drop (call $register (i32.const 0) (i32.const 5) (i32.const 0)))
        (loop $l
          (if (i32.ge_s (call $recv (i32.const -1) (i32.const 1024) (i32.const 64) (i32.const 512) (i64.const -1)) (i32.const 0))
            (then (local.set $n (i32.add (local.get $n) (i32.const 1)))))
          (br_if $l (i32.lt_u (local.get $n) (i32.const {total}))))
        (call $exit (local.get $n)))"#,
        total = M * CORES as u32
    );
    let sender = format!(
        r#"
      (data (i32.const 0) "sink0")
      (func (export "_start") (local $k i32) (local $h i32) (local $i i32)
        (loop $sinks
          (i32.store8 (i32.const 4) (i32.add (i32.const 48) (local.get $k)))
          (local.set $h (call $lookup_wait (i32.const 0) (i32.const 5)))
          (local.set $i (i32.const 0))
          (loop $msgs
            (i32.store (i32.const 2048) (local.get $i))
            (if (i32.eq (call $send (local.get $h) (i32.const 2048) (i32.const 4)) (i32.const {would_block}))
              (then (drop (call $sleep (i64.const 20000))) (br $msgs)))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br_if $msgs (i32.lt_u (local.get $i) (i32.const {M}))))
          (local.set $k (i32.add (local.get $k) (i32.const 1)))
          (br_if $sinks (i32.lt_u (local.get $k) (i32.const {CORES}))))
        (call $exit (i32.const 0)))"#,
        would_block = Status::WouldBlock.code()
    );
    let (sink, sender) = (wasm(&sink), wasm(&sender));
    let mut watch = Vec::new();
    for core in 0..CORES as i32 {
        watch.push(sys.spawn(&sink, "sink", core).unwrap());
        watch.push(sys.spawn(&sender, "sender", core).unwrap());
    }
    let exits = run(&sys, &platform, &watch, 60);
    for (i, exit) in exits.iter().enumerate() {
        let expected = if i % 2 == 0 { (M * CORES as u32) as i32 } else { 0 };
        assert_eq!(*exit, exited(expected), "task {i}");
    }
}

#[test]
fn fuel_preempts_an_infinite_loop() {
    let (sys, platform) = system(1, Config { fuel_slice: 10_000, ..Config::default() });
    let spinner = sys.spawn(&wasm(r#"(func (export "_start") (loop $l (br $l)))"#), "spin", 0).unwrap();
    let worker = wasm(
        r#"(func (export "_start") (local $i i32)
             (loop $l (local.set $i (i32.add (local.get $i) (i32.const 1)))
                      (br_if $l (i32.lt_u (local.get $i) (i32.const 100000))))
             (call $exit (i32.const 5)))"#,
    );
    let worker = sys.spawn(&worker, "worker", 0).unwrap();
    assert_eq!(run(&sys, &platform, &[worker], 30), [exited(5)]);
    assert_eq!(sys.exit_of(spinner), None, "the spinner keeps running, preempted");
}

/// A parent spawns `child` (embedded as bytes) and exits with the reason
/// byte of the child-exit report it receives.
fn parent_of(child: &[u8]) -> Vec<u8> {
    wasm(&format!(
        r#"
      (data (i32.const 4096) "{bytes}")
      (data (i32.const 0) "child")
      (func (export "_start") (local $h i32) (local $r i32)
        (local.set $h (call $spawn (i32.const 4096) (i32.const {len}) (i32.const 0) (i32.const 5) (i32.const -1) (i32.const 0) (i32.const 0)))
        (if (i32.lt_s (local.get $h) (i32.const 0)) (then (call $exit (i32.sub (i32.const 1000) (local.get $h)))))
        (local.set $r (call $recv (i32.const -1) (i32.const 1024) (i32.const 64) (i32.const 512) (i64.const -1)))
        ;; kind must be ChildExit (4) and the badge our handle for the child
        (if (i32.ne (i32.load (i32.const 512)) (i32.const 4)) (then (call $exit (i32.const 900))))
        (if (i32.ne (i32.load (i32.const 520)) (local.get $h)) (then (call $exit (i32.const 901))))
        (call $exit (i32.load8_u (i32.const 532))))"#,
        bytes = data_string(child),
        len = child.len()
    ))
}

#[test]
fn every_fault_kills_only_the_faulty_task_and_tells_the_parent() {
    let cases: [(&str, &str, ExitReason); 5] = [
        ("unreachable", r#"(func (export "_start") unreachable)"#, ExitReason::Unreachable),
        ("oob", r#"(func (export "_start") (drop (i32.load (i32.const 70000))))"#, ExitReason::MemoryOutOfBounds),
        (
            "divzero",
            r#"(func (export "_start") (drop (i32.div_s (i32.const 1) (i32.sub (i32.const 1) (i32.const 1)))))"#,
            ExitReason::IntegerTrap,
        ),
        ("recursion", r#"(func $f (call $f)) (func (export "_start") (call $f))"#, ExitReason::StackOverflow),
        ("exit", r#"(func (export "_start") (call $exit (i32.const 3)))"#, ExitReason::Exited),
    ];
    let (sys, platform) = system(2, Config::default());
    let parents: Vec<_> =
        cases.iter().map(|(name, body, _)| sys.spawn(&parent_of(&wasm(body)), name, 0).unwrap()).collect();
    // A healthy server keeps serving throughout.
    sys.spawn(&wasm(ECHO_SERVER), "echo", 1).unwrap();
    let client = sys.spawn(&wasm(&echo_client(200)), "client", 0).unwrap();
    let mut watch = parents.clone();
    watch.push(client);
    let exits = run(&sys, &platform, &watch, 30);
    for (i, (name, _, reason)) in cases.iter().enumerate() {
        assert_eq!(exits[i], exited(*reason as i32), "{name}");
    }
    assert_eq!(exits[cases.len()], exited(0), "healthy client");
    assert!(platform.console.lock().unwrap().iter().any(|(_, _, text)| text.contains("stack overflow")));
}

#[test]
fn memory_growth_beyond_quota_fails_without_killing() {
    let (sys, platform) = system(1, Config { max_memory_bytes: 4 << 16, ..Config::default() });
    let body = r#"(func (export "_start")
        (if (i32.ne (memory.grow (i32.const 2)) (i32.const 1)) (then (call $exit (i32.const 1))))
        (if (i32.ne (memory.grow (i32.const 8)) (i32.const -1)) (then (call $exit (i32.const 2))))
        (call $exit (i32.const 0)))"#;
    let id = sys.spawn(&wasm(body), "grow", 0).unwrap();
    assert_eq!(run(&sys, &platform, &[id], 10), [exited(0)]);
}

#[test]
fn a_caller_of_a_dying_server_gets_dead_target() {
    let (sys, platform) = system(2, Config::default());
    let dying = r#"
      (data (i32.const 0) "echo")
      (func (export "_start")
        (drop (call $register (i32.const 0) (i32.const 4) (i32.const 0)))
        (drop (call $recv (i32.const -1) (i32.const 1024) (i32.const 64) (i32.const 512) (i64.const -1)))
        unreachable)"#;
    for server_core in [0, 1] {
        sys.spawn(&wasm(dying), "dying", server_core).unwrap();
        let client = sys.spawn(&wasm(&echo_client(1)), "client", 0).unwrap();
        let exits = run(&sys, &platform, &[client], 10);
        assert_eq!(exits, [exited(1000 - Status::DeadTarget.code())], "server on core {server_core}");
    }
}

#[test]
fn sends_need_a_capability() {
    let (sys, platform) = system(1, Config::default());
    sys.spawn(&wasm(ECHO_SERVER), "echo", 0).unwrap();
    // Without looking anything up, the task holds no handles: every handle
    // number, including the server's would-be handle 1, is refused.
    let body = format!(
        r#"(func (export "_start")
            (if (i32.ne (call $send (i32.const 1) (i32.const 0) (i32.const 4)) (i32.const {inv})) (then (call $exit (i32.const 1))))
            (if (i32.ne (call $send (i32.const 0x12345) (i32.const 0) (i32.const 4)) (i32.const {inv})) (then (call $exit (i32.const 2))))
            (if (i32.ne (call $send (i32.const -7) (i32.const 0) (i32.const 4)) (i32.const {inv})) (then (call $exit (i32.const 3))))
            (if (i32.ne (call $call (i32.const 1) (i32.const 0) (i32.const 4) (i32.const 64) (i32.const 4)) (i32.const {inv})) (then (call $exit (i32.const 4))))
            (call $exit (i32.const 0)))"#,
        inv = Status::InvalidHandle.code()
    );
    let id = sys.spawn(&wasm(&body), "nocap", 0).unwrap();
    assert_eq!(run(&sys, &platform, &[id], 10), [exited(0)]);
}

#[test]
fn bad_pointers_get_an_error_not_a_crash() {
    let (sys, platform) = system(1, Config::default());
    let body = format!(
        r#"(data (i32.const 0) "echo")
          (func (export "_start")
            (if (i32.ne (call $print (i32.const 65530) (i32.const 100)) (i32.const {bad})) (then (call $exit (i32.const 1))))
            (if (i32.ne (call $print (i32.const -1) (i32.const 1)) (i32.const {bad})) (then (call $exit (i32.const 2))))
            (if (i32.ne (call $lookup (i32.const 65530) (i32.const 20)) (i32.const {bad})) (then (call $exit (i32.const 3))))
            (if (i32.ne (call $lookup (i32.const 0) (i32.const 70000)) (i32.const {arg})) (then (call $exit (i32.const 4))))
            (if (i32.ne (call $recv (i32.const -1) (i32.const 65530) (i32.const 100) (i32.const 0) (i64.const 0)) (i32.const {to})) (then (call $exit (i32.const 5))))
            (call $exit (i32.const 0)))"#,
        bad = Status::BadPointer.code(),
        arg = Status::InvalidArgument.code(),
        to = Status::TimedOut.code()
    );
    let id = sys.spawn(&wasm(&body), "badptr", 0).unwrap();
    assert_eq!(run(&sys, &platform, &[id], 10), [exited(0)]);
}

#[test]
fn a_full_ring_pushes_back_with_would_block() {
    // Core 1 is never polled here, so its ring fills: capacity 16, one slot
    // taken by the spawn of the child itself.
    let (sys, platform) = system(2, Config { ring_capacity: 16, ..Config::default() });
    let child = wasm(r#"(func (export "_start"))"#);
    let body = format!(
        r#"(data (i32.const 4096) "{bytes}")
          (func (export "_start") (local $h i32) (local $n i32)
            (local.set $h (call $spawn (i32.const 4096) (i32.const {len}) (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 0) (i32.const 0)))
            (loop $l
              (if (i32.eq (call $send (local.get $h) (i32.const 0) (i32.const 4)) (i32.const 0))
                (then (local.set $n (i32.add (local.get $n) (i32.const 1))) (br $l))))
            (if (i32.ne (call $send (local.get $h) (i32.const 0) (i32.const 4)) (i32.const {wb})) (then (call $exit (i32.const -1))))
            (call $exit (local.get $n)))"#,
        bytes = data_string(&child),
        len = child.len(),
        wb = Status::WouldBlock.code()
    );
    let id = sys.spawn(&wasm(&body), "flood-remote", 0).unwrap();
    let exits = common::run_cores(&sys, &platform, &[id], 10, &[0]);
    assert_eq!(exits, [exited(15)]);
    assert_eq!(sys.ring_counters(1).1, 2, "two refused pushes, nothing dropped");
}

#[test]
fn a_full_inbox_pushes_back_with_would_block() {
    let (sys, platform) = system(1, Config::default());
    let body = format!(
        r#"(data (i32.const 0) "echo")
          (func (export "_start") (local $h i32) (local $n i32)
            (drop (call $register (i32.const 0) (i32.const 4) (i32.const 0)))
            (local.set $h (call $lookup (i32.const 0) (i32.const 4)))
            (loop $l
              (if (i32.eq (call $send (local.get $h) (i32.const 0) (i32.const 4)) (i32.const 0))
                (then (local.set $n (i32.add (local.get $n) (i32.const 1))) (br $l))))
            (call $exit (local.get $n)))"#
    );
    // The sender registers *itself* as "echo" and floods itself: same-core
    // inbox limit.
    let id = sys.spawn(&wasm(&body), "flood-self", 0).unwrap();
    let exits = run(&sys, &platform, &[id], 10);
    assert_eq!(exits, [exited(wasmos_ipc::abi::INBOX_CAPACITY as i32)]);
}

#[test]
fn recv_times_out() {
    let (sys, platform) = system(1, Config::default());
    let body = format!(
        r#"(func (export "_start") (local $t i64)
            (local.set $t (call $now))
            (if (i32.ne (call $recv (i32.const -1) (i32.const 0) (i32.const 0) (i32.const 0) (i64.const 5000000)) (i32.const {to}))
              (then (call $exit (i32.const 1))))
            (if (i64.lt_u (i64.sub (call $now) (local.get $t)) (i64.const 5000000)) (then (call $exit (i32.const 2))))
            (if (i32.ne (call $recv (i32.const -1) (i32.const 0) (i32.const 0) (i32.const 0) (i64.const 0)) (i32.const {to}))
              (then (call $exit (i32.const 3))))
            (call $exit (i32.const 0)))"#,
        to = Status::TimedOut.code()
    );
    let id = sys.spawn(&wasm(&body), "timeout", 0).unwrap();
    assert_eq!(run(&sys, &platform, &[id], 10), [exited(0)]);
}
