//! Host tests of the scheduler: real Wasm programs (written in WAT) on
//! one or more cores (threads), through the same code the kernel runs.

mod common;

use common::{data_string, program, run, system, wasm};
use wasmos_ipc::abi::{ExitReason, Status};
use wasmos_sched::{Config, TaskExit};

fn exited(code: i32) -> Option<TaskExit> {
    Some(TaskExit { code, reason: ExitReason::Exited })
}

#[test]
fn hello_prints_and_exits_with_its_code() {
    let (sys, platform) = system(1, Config::default());
    let id = sys.spawn(&program("hello"), "hello", 0).unwrap();
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

fn handoffs(sys: &wasmos_sched::System) -> u64 {
    sys.stats(0).handoffs.load(std::sync::atomic::Ordering::Relaxed)
}

/// Same core: the server waits in `ipc_recv`, so each call runs it inside
/// the client's host call (a hand-off); with hand-offs off, the same calls
/// go through the ready queue, with the same results.
#[test]
fn ping_pong_same_core() {
    for depth in [4, 0] {
        let (sys, platform) = system(1, Config { handoff_depth: depth, ..Config::default() });
        let server = sys.spawn(&program("echo_server"), "echo", 0).unwrap();
        let client = sys.spawn(&program("echo_client"), "client", 0).unwrap();
        assert_eq!(run(&sys, &platform, &[client, server], 30), [exited(0), exited(0)]);
        assert!(sys.stats(0).delivered.load(std::sync::atomic::Ordering::Relaxed) >= 2000);
        match depth {
            0 => assert_eq!(handoffs(&sys), 0, "hand-offs while turned off"),
            _ => assert!(handoffs(&sys) >= 950, "only {} of 1000 calls handed off", handoffs(&sys)),
        }
    }
}

/// Client -> relay -> back end, all on one core: the relay calls the back
/// end from inside its own hand-off (nested, depth 2). With depth 1 the
/// inner call falls back to the queue; the answers are the same.
#[test]
fn nested_handoffs_and_their_depth_limit() {
    let relay = wasm(
        r#"(data (i32.const 0) "echo") (data (i32.const 8) "back")
          (func (export "_start") (local $b i32) (local $n i32)
            (local.set $b (call $lookup_wait (i32.const 8) (i32.const 4)))
            (drop (call $register (i32.const 0) (i32.const 4) (i32.const 0)))
            (loop $serve
              (local.set $n (call $recv (i32.const -1) (i32.const 1024) (i32.const 64) (i32.const 512) (i64.const -1)))
              (if (i32.ne (call $call (local.get $b) (i32.const 1024) (local.get $n) (i32.const 3072) (i32.const 64)) (local.get $n))
                (then (call $exit (i32.const 3))))
              (drop (call $reply (i32.load (i32.const 524)) (i32.const 3072) (local.get $n)))
              (br_if $serve (i32.ne (i32.load (i32.const 3072)) (i32.const -1))))
            (call $exit (i32.const 0)))"#,
    );
    let back = wasm(
        r#"(data (i32.const 0) "back")
          (func (export "_start") (local $n i32) (local $v i32)
            (drop (call $register (i32.const 0) (i32.const 4) (i32.const 0)))
            (loop $serve
              (local.set $n (call $recv (i32.const -1) (i32.const 1024) (i32.const 64) (i32.const 512) (i64.const -1)))
              (local.set $v (i32.load (i32.const 1024)))
              (if (i32.ne (local.get $v) (i32.const -1)) (then (i32.store (i32.const 1024) (i32.add (local.get $v) (i32.const 1)))))
              (drop (call $reply (i32.load (i32.const 524)) (i32.const 1024) (local.get $n)))
              (br_if $serve (i32.ne (local.get $v) (i32.const -1))))
            (call $exit (i32.const 0)))"#,
    );
    // 1000 calls: two hand-offs each with depth 4 (at least 95% of them),
    // one each with depth 1 (never the inner one).
    for (depth, expected) in [(4, 1900..=2010), (1, 950..=1005)] {
        let (sys, platform) = system(1, Config { handoff_depth: depth, ..Config::default() });
        let back = sys.spawn(&back, "back", 0).unwrap();
        let relay = sys.spawn(&relay, "relay", 0).unwrap();
        let client = sys.spawn(&program("echo_client"), "client", 0).unwrap();
        assert_eq!(
            run(&sys, &platform, &[client, relay, back], 30),
            [exited(0), exited(0), exited(0)],
            "depth {depth}"
        );
        let n = handoffs(&sys);
        assert!(expected.contains(&n), "depth {depth}: {n} hand-offs");
    }
}

#[test]
fn ping_pong_across_cores() {
    let (sys, platform) = system(2, Config::default());
    let server = sys.spawn(&program("echo_server"), "echo", 1).unwrap();
    let client = sys.spawn(&program("echo_client"), "client", 0).unwrap();
    assert_eq!(run(&sys, &platform, &[client, server], 30), [exited(0), exited(0)]);
}

/// Every core runs a sink and a sender; each sender sends 200 messages to
/// every sink; each sink exits with the number it received.
#[test]
fn all_to_all_storm_counts_every_message() {
    const CORES: usize = 4;
    let (sys, platform) = system(CORES, Config { ring_capacity: 64, ..Config::default() });
    let (sink, sender) = (program("storm_sink"), program("storm_sender"));
    let mut watch = Vec::new();
    for core in 0..CORES as i32 {
        watch.push(sys.spawn(&sink, "sink", core).unwrap());
        watch.push(sys.spawn(&sender, "sender", core).unwrap());
    }
    let exits = run(&sys, &platform, &watch, 60);
    for (i, exit) in exits.iter().enumerate() {
        let expected = if i % 2 == 0 { 200 * CORES as i32 } else { 0 };
        assert_eq!(*exit, exited(expected), "task {i}");
    }
}

#[test]
fn fuel_preempts_a_loop_without_system_calls() {
    let (sys, platform) = system(1, Config { fuel_slice: 10_000, ..Config::default() });
    let spinner = sys.spawn(&program("spinner"), "spin", 0).unwrap();
    let quick = sys.spawn(&program("quick"), "quick", 0).unwrap();
    let mut cores = common::cores(&sys, &platform, &[0]);
    assert_eq!(cores.wait(&[quick], 30_000_000_000), [exited(5)]);
    assert_eq!(sys.exit_of(spinner), None, "the quick task must finish while the spinner still spins");
    assert_eq!(cores.wait(&[spinner], 60_000_000_000), [exited(3)]);
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
    let cases = [
        ("fault_unreachable", ExitReason::Unreachable),
        ("fault_oob", ExitReason::MemoryOutOfBounds),
        ("fault_divzero", ExitReason::IntegerTrap),
        ("fault_recursion", ExitReason::StackOverflow),
        ("hello", ExitReason::Exited),
    ];
    let (sys, platform) = system(2, Config::default());
    let parents: Vec<_> =
        cases.iter().map(|(name, _)| sys.spawn(&parent_of(&program(name)), name, 0).unwrap()).collect();
    // A healthy server keeps serving throughout.
    sys.spawn(&program("echo_server"), "echo", 1).unwrap();
    let client = sys.spawn(&program("echo_client"), "client", 0).unwrap();
    let mut watch = parents.clone();
    watch.push(client);
    let exits = run(&sys, &platform, &watch, 30);
    for (i, (name, reason)) in cases.iter().enumerate() {
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
    for server_core in [0, 1] {
        sys.spawn(&program("dying_server"), "dying", server_core).unwrap();
        let client = sys.spawn(&program("echo_client"), "client", 0).unwrap();
        let exits = run(&sys, &platform, &[client], 10);
        assert_eq!(exits, [exited(1000 - Status::DeadTarget.code())], "server on core {server_core}");
    }
}

#[test]
fn sends_need_a_capability() {
    let (sys, platform) = system(1, Config::default());
    let server = sys.spawn(&program("echo_server"), "echo", 0).unwrap();
    let id = sys.spawn(&program("nocap"), "nocap", 0).unwrap();
    assert_eq!(run(&sys, &platform, &[id], 10), [exited(0)]);
    assert_eq!(sys.exit_of(server), None);
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
            ;; receive buffers are checked at the call, message or not
            (if (i32.ne (call $recv (i32.const -1) (i32.const 65530) (i32.const 100) (i32.const 0) (i64.const 0)) (i32.const {bad})) (then (call $exit (i32.const 5))))
            (if (i32.ne (call $recv (i32.const -1) (i32.const 0) (i32.const 4) (i32.const 65530) (i64.const 0)) (i32.const {bad})) (then (call $exit (i32.const 6))))
            (if (i32.ne (call $recv (i32.const -1) (i32.const 65000) (i32.const 100) (i32.const 0) (i64.const 0)) (i32.const {to})) (then (call $exit (i32.const 7))))
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
    let exits = common::cores(&sys, &platform, &[0]).wait(&[id], 10_000_000_000);
    assert_eq!(exits, [exited(15)]);
    assert_eq!(sys.ring_counters(1).1, 2, "two refused pushes, nothing dropped");
}

#[test]
fn a_full_inbox_pushes_back_with_would_block() {
    let (sys, platform) = system(1, Config::default());
    let body = r#"(data (i32.const 0) "echo")
          (func (export "_start") (local $h i32) (local $n i32)
            (drop (call $register (i32.const 0) (i32.const 4) (i32.const 0)))
            (local.set $h (call $lookup (i32.const 0) (i32.const 4)))
            (loop $l
              (if (i32.eq (call $send (local.get $h) (i32.const 0) (i32.const 4)) (i32.const 0))
                (then (local.set $n (i32.add (local.get $n) (i32.const 1))) (br $l))))
            (call $exit (local.get $n)))"#
        .to_string();
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

#[test]
fn instantiating_beyond_the_memory_quota_is_out_of_memory() {
    let (sys, platform) = system(1, Config::default());
    let greedy = wat::parse_str(r#"(module (memory (export "memory") 300) (func (export "_start")))"#).unwrap();
    let parent = sys.spawn(&parent_of(&greedy), "parent", 0).unwrap();
    assert_eq!(run(&sys, &platform, &[parent], 10), [exited(ExitReason::OutOfMemory as i32)]);
}

/// G spawns C, grants R a capability to C (its lookup handle to R lacks
/// GRANT, so granting that must fail), R notifies C through the granted
/// handle, C exits with the notification bits, G receives C's exit, closes
/// its handle and checks the closed handle no longer works.
#[test]
fn capabilities_pass_in_messages_and_notifications_arrive() {
    let (sys, platform) = system(2, Config::default());
    let child = wasm(
        r#"(func (export "_start")
            (drop (call $recv (i32.const -1) (i32.const 1024) (i32.const 64) (i32.const 512) (i64.const -1)))
            (if (i32.ne (i32.load (i32.const 512)) (i32.const 3)) (then (call $exit (i32.const 1))))
            (call $exit (i32.wrap_i64 (i64.load (i32.const 528)))))"#,
    );
    let receiver = r#"(data (i32.const 0) "r")
        (func (export "_start") (local $h i32)
          (drop (call $register (i32.const 0) (i32.const 1) (i32.const 0)))
          (drop (call $recv (i32.const -1) (i32.const 1024) (i32.const 64) (i32.const 512) (i64.const -1)))
          (if (i32.ne (i32.load (i32.const 512)) (i32.const 5)) (then (call $exit (i32.const 1))))
          (local.set $h (i32.load (i32.const 524)))
          (if (i32.ne (call $notify (local.get $h) (i64.const 48)) (i32.const 0)) (then (call $exit (i32.const 2))))
          (call $exit (i32.const 0)))"#;
    let granter = format!(
        r#"(data (i32.const 4096) "{bytes}")
        (data (i32.const 0) "r")
        (func (export "_start") (local $hc i32) (local $hr i32)
          (local.set $hc (call $spawn (i32.const 4096) (i32.const {len}) (i32.const 0) (i32.const 1) (i32.const 1) (i32.const 0) (i32.const 0)))
          (local.set $hr (call $lookup_wait (i32.const 0) (i32.const 1)))
          (if (i32.ne (call $grant (local.get $hr) (local.get $hr)) (i32.const {nocap})) (then (call $exit (i32.const 101))))
          (if (i32.ne (call $grant (local.get $hr) (local.get $hc)) (i32.const 0)) (then (call $exit (i32.const 102))))
          (drop (call $recv (i32.const -1) (i32.const 1024) (i32.const 64) (i32.const 512) (i64.const -1)))
          (if (i32.ne (i32.load (i32.const 512)) (i32.const 4)) (then (call $exit (i32.const 103))))
          (if (i32.ne (call $close (local.get $hc)) (i32.const 0)) (then (call $exit (i32.const 104))))
          (if (i32.ne (call $send (local.get $hc) (i32.const 0) (i32.const 4)) (i32.const {invalid})) (then (call $exit (i32.const 105))))
          (call $exit (i32.load (i32.const 528))))"#,
        bytes = data_string(&child),
        len = child.len(),
        nocap = Status::NoCapability.code(),
        invalid = Status::InvalidHandle.code()
    );
    let r = sys.spawn(&wasm(receiver), "r", 0).unwrap();
    let g = sys.spawn(&wasm(&granter), "g", 1).unwrap();
    assert_eq!(run(&sys, &platform, &[r, g], 10), [exited(0), exited(48)]);
}

/// Only the init task may read boot files.
#[test]
fn boot_files_are_for_init_only() {
    let (sys, platform) = system(1, Config::default());
    let body = |expect_ok: bool| {
        format!(
            r#"(data (i32.const 0) "motdnope")
            (func (export "_start")
              {checks}
              (call $exit (i32.const 0)))"#,
            checks = if expect_ok {
                format!(
                    r#"(if (i32.ne (call $boot_file (i32.const 0) (i32.const 4) (i32.const 1024) (i32.const 64)) (i32.const 5)) (then (call $exit (i32.const 1))))
                    (if (i32.ne (i32.load8_u (i32.const 1024)) (i32.const 104)) (then (call $exit (i32.const 2))))
                    (if (i32.ne (call $boot_file (i32.const 4) (i32.const 4) (i32.const 1024) (i32.const 64)) (i32.const {nf})) (then (call $exit (i32.const 3))))
                    (if (i32.ne (call $boot_file (i32.const 0) (i32.const 4) (i32.const 1024) (i32.const 2)) (i32.const {big})) (then (call $exit (i32.const 4))))"#,
                    nf = Status::NotFound.code(),
                    big = Status::TooLarge.code()
                )
            } else {
                format!(
                    r#"(if (i32.ne (call $boot_file (i32.const 0) (i32.const 4) (i32.const 1024) (i32.const 64)) (i32.const {nocap})) (then (call $exit (i32.const 1))))"#,
                    nocap = Status::NoCapability.code()
                )
            }
        )
    };
    let init = sys.spawn_init(&wasm(&body(true))).unwrap();
    let other = sys.spawn(&wasm(&body(false)), "other", 0).unwrap();
    assert_eq!(run(&sys, &platform, &[init, other], 10), [exited(0), exited(0)]);
}

/// A WASI module: prints through fd_write, reads argv, opens a bundled
/// file, gets ENOSYS from an unimplemented call, and exits via proc_exit.
#[test]
fn wasi_preview1_basics() {
    let (sys, platform) = system(1, Config::default());
    let module = wat::parse_str(
        r#"(module
          (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
          (import "wasi_snapshot_preview1" "args_sizes_get" (func $args_sizes (param i32 i32) (result i32)))
          (import "wasi_snapshot_preview1" "path_open" (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
          (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
          (import "wasi_snapshot_preview1" "sock_shutdown" (func $nosys (param i32 i32) (result i32)))
          (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
          (memory (export "memory") 1)
          (data (i32.const 0) "hi from wasi\n")
          (data (i32.const 64) "data/hello.txt")
          (func (export "_start")
            ;; iovec at 16: (0, 13)
            (i32.store (i32.const 16) (i32.const 0))
            (i32.store (i32.const 20) (i32.const 13))
            (if (call $fd_write (i32.const 1) (i32.const 16) (i32.const 1) (i32.const 24)) (then (call $exit (i32.const 1))))
            (if (i32.ne (i32.load (i32.const 24)) (i32.const 13)) (then (call $exit (i32.const 2))))
            (drop (call $args_sizes (i32.const 32) (i32.const 36)))
            (if (i32.ne (i32.load (i32.const 32)) (i32.const 2)) (then (call $exit (i32.const 3))))
            (if (call $open (i32.const 3) (i32.const 0) (i32.const 64) (i32.const 14) (i32.const 0) (i64.const -1) (i64.const -1) (i32.const 0) (i32.const 40))
              (then (call $exit (i32.const 4))))
            ;; read 4 bytes of the file into 128
            (i32.store (i32.const 48) (i32.const 128))
            (i32.store (i32.const 52) (i32.const 4))
            (if (call $fd_read (i32.load (i32.const 40)) (i32.const 48) (i32.const 1) (i32.const 56)) (then (call $exit (i32.const 5))))
            (if (i32.ne (i32.load (i32.const 128)) (i32.const 0x656c6966)) (then (call $exit (i32.const 6)))) ;; "file"
            (if (i32.ne (call $nosys (i32.const 0) (i32.const 0)) (i32.const 52)) (then (call $exit (i32.const 7))))
            (call $exit (i32.const 9))))"#,
    )
    .unwrap();
    let id = sys.spawn_args(&module, &["w", "arg"], 0).unwrap();
    assert_eq!(run(&sys, &platform, &[id], 10), [exited(9)]);
    assert!(platform.console.lock().unwrap().iter().any(|(_, task, text)| task == "w" && text == "hi from wasi\n"));
}

#[test]
fn a_spawn_bomb_is_stopped_at_its_quota() {
    let (sys, platform) = system(2, Config { max_children: 8, ..Config::default() });
    let bomb = sys.spawn(&program("spawn_bomb"), "bomb", 0).unwrap();
    let client = sys.spawn(&program("echo_client"), "client", 1).unwrap();
    let server = sys.spawn(&program("echo_server"), "echo", 1).unwrap();
    assert_eq!(run(&sys, &platform, &[bomb, client, server], 30), [exited(8), exited(0), exited(0)]);
}

#[test]
fn memory_hogs_share_one_budget_and_give_it_back() {
    // 4 MiB per task, 10 MiB for everyone: three hogs cannot all get 4.
    let config = Config { max_memory_bytes: 4 << 20, total_memory_bytes: 10 << 20, ..Config::default() };
    let (sys, platform) = system(2, config);
    let hogs: Vec<_> = (0..3).map(|i| sys.spawn(&program("memory_hog"), "hog", i % 2).unwrap()).collect();
    let exits = run(&sys, &platform, &hogs, 30);
    let pages: Vec<i32> = exits.iter().map(|e| e.expect("hog finished").code).collect();
    assert!(pages.iter().all(|p| *p >= 1 && *p <= 64), "per-task limit: {pages:?}");
    // They overlap (each holds its memory for a second): 3 x 4 MiB cannot fit.
    assert!(pages.iter().any(|p| *p < 64), "no hog was held back by the shared budget: {pages:?}");
    assert_eq!(sys.memory_in_use(), 0, "memory not returned after exit");
    // An end that is announced has already given its memory back: the
    // hogs ran one after another on each core, so the last one announced
    // saw everything free.
    let seen = platform.memory_at_exit.lock().unwrap().clone();
    assert_eq!(seen.len(), 3);
    assert_eq!(seen.last(), Some(&0), "an exit was announced before the task's memory was freed: {seen:?}");
}

/// A caller blocked in `ipc_call` on a server that dies of any fault gets
/// `DEAD_TARGET` (the echo client exits with `1000 - status`), and the
/// server's exit is recorded with the fault's reason, on the caller's core
/// and on another core.
#[test]
fn every_fault_of_a_server_answers_its_blocked_caller_with_dead_target() {
    let faults = [
        ("unreachable", ExitReason::Unreachable),
        ("(drop (i32.load (i32.const 70000)))", ExitReason::MemoryOutOfBounds),
        ("(drop (i32.div_u (i32.const 1) (i32.load (i32.const 4000))))", ExitReason::IntegerTrap),
        ("(drop (call $rec (i32.const 0)))", ExitReason::StackOverflow),
    ];
    let (sys, platform) = system(2, Config::default());
    for (fault, reason) in faults {
        for server_core in [0, 1] {
            let server = wasm(&format!(
                r#"(data (i32.const 0) "echo")
                  (func $rec (param i32) (result i32) (i32.add (call $rec (local.get 0)) (i32.const 1)))
                  (func (export "_start")
                    (drop (call $register (i32.const 0) (i32.const 4) (i32.const 0)))
                    (drop (call $recv (i32.const -1) (i32.const 1024) (i32.const 64) (i32.const 512) (i64.const -1)))
                    {fault}
                    (call $exit (i32.const 0)))"#
            ));
            let server = sys.spawn(&server, "dying", server_core).unwrap();
            let client = sys.spawn(&program("echo_client"), "client", 0).unwrap();
            let exits = run(&sys, &platform, &[client, server], 10);
            let want = [exited(1000 - Status::DeadTarget.code()), Some(TaskExit { code: -1, reason })];
            assert_eq!(exits, want, "{fault} on core {server_core}");
        }
    }
}

/// `ipc_call` never reports a full queue. A call takes no inbox place
/// (each task has at most one outstanding), so it gets through to a server
/// whose inbox the caller filled with one-way sends while it slept.
#[test]
fn a_call_gets_through_to_a_full_inbox() {
    let (sys, platform) = system(1, Config::default());
    let server = wasm(
        r#"(data (i32.const 0) "echo")
          (func (export "_start") (local $n i32)
            (drop (call $register (i32.const 0) (i32.const 4) (i32.const 0)))
            (drop (call $sleep (i64.const 20000000)))
            (loop $l
              (drop (call $recv (i32.const -1) (i32.const 1024) (i32.const 64) (i32.const 512) (i64.const -1)))
              (if (i32.eq (i32.load (i32.const 512)) (i32.const 2))
                (then
                  (i32.store (i32.const 2048) (i32.add (i32.load (i32.const 1024)) (i32.const 1)))
                  (drop (call $reply (i32.load (i32.const 524)) (i32.const 2048) (i32.const 4)))
                  (call $exit (local.get $n))))
              (local.set $n (i32.add (local.get $n) (i32.const 1)))
              (br $l)))"#,
    );
    let client = wasm(&format!(
        r#"(data (i32.const 0) "echo")
          (func (export "_start") (local $h i32) (local $n i32) (local $r i32)
            (local.set $h (call $lookup_wait (i32.const 0) (i32.const 4)))
            (loop $l
              (if (i32.eq (call $send (local.get $h) (i32.const 2048) (i32.const 4)) (i32.const 0))
                (then (local.set $n (i32.add (local.get $n) (i32.const 1))) (br $l))))
            (if (i32.ne (local.get $n) (i32.const {cap})) (then (call $exit (i32.const 1))))
            (i32.store (i32.const 2048) (i32.const 41))
            (local.set $r (call $call (local.get $h) (i32.const 2048) (i32.const 4) (i32.const 3072) (i32.const 64)))
            (if (i32.ne (local.get $r) (i32.const 4)) (then (call $exit (i32.sub (i32.const 1000) (local.get $r)))))
            (call $exit (i32.load (i32.const 3072))))"#,
        cap = wasmos_ipc::abi::INBOX_CAPACITY
    ));
    let server = sys.spawn(&server, "server", 0).unwrap();
    let client = sys.spawn(&client, "client", 0).unwrap();
    let exits = run(&sys, &platform, &[client, server], 10);
    assert_eq!(exits, [exited(42), exited(wasmos_ipc::abi::INBOX_CAPACITY as i32)]);
}

/// Cross-core: the ring to the server's core is full (that core is not
/// running yet); the call waits and completes once the core starts.
#[test]
fn a_call_into_a_full_ring_waits_instead_of_failing() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let (sys, platform) = system(2, Config { ring_capacity: 16, ..Config::default() });
    // The child counts one-way messages and answers the first call.
    let child = wasm(
        r#"(func (export "_start") (local $n i32)
            (loop $l
              (drop (call $recv (i32.const -1) (i32.const 1024) (i32.const 64) (i32.const 512) (i64.const -1)))
              (if (i32.eq (i32.load (i32.const 512)) (i32.const 2))
                (then
                  (i32.store (i32.const 2048) (local.get $n))
                  (drop (call $reply (i32.load (i32.const 524)) (i32.const 2048) (i32.const 4)))
                  (call $exit (i32.const 0))))
              (local.set $n (i32.add (local.get $n) (i32.const 1)))
              (br $l)))"#,
    );
    let parent = wasm(&format!(
        r#"(data (i32.const 4096) "{bytes}")
          (func (export "_start") (local $h i32) (local $n i32) (local $r i32)
            (local.set $h (call $spawn (i32.const 4096) (i32.const {len}) (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 0) (i32.const 0)))
            (loop $l
              (if (i32.eq (call $send (local.get $h) (i32.const 0) (i32.const 4)) (i32.const 0))
                (then (local.set $n (i32.add (local.get $n) (i32.const 1))) (br $l))))
            (local.set $r (call $call (local.get $h) (i32.const 0) (i32.const 4) (i32.const 3072) (i32.const 64)))
            (if (i32.ne (local.get $r) (i32.const 4)) (then (call $exit (i32.sub (i32.const 1000) (local.get $r)))))
            ;; the child saw every one-way message before the call
            (if (i32.ne (i32.load (i32.const 3072)) (local.get $n)) (then (call $exit (i32.const 2))))
            (call $exit (local.get $n)))"#,
        bytes = data_string(&child),
        len = child.len()
    ));
    let id = sys.spawn(&parent, "parent", 0).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let core1 = {
        let (sys, stop) = (sys.clone(), stop.clone());
        std::thread::spawn(move || {
            // Start core 1 late, so that the parent meets a full ring.
            std::thread::sleep(std::time::Duration::from_millis(100));
            let mut sched = wasmos_sched::CoreScheduler::new(sys, 1);
            while !stop.load(Ordering::Relaxed) {
                if let wasmos_sched::Poll::Idle { .. } = sched.poll() {
                    std::thread::sleep(std::time::Duration::from_micros(100));
                }
            }
        })
    };
    let exits = common::cores(&sys, &platform, &[0]).wait(&[id], 10_000_000_000);
    stop.store(true, Ordering::Relaxed);
    core1.join().unwrap();
    assert_eq!(exits, [exited(15)], "15 sends fit beside the spawn; the call waited");
    assert!(sys.ring_counters(1).1 >= 2, "the send and at least one try of the call were refused");
}

/// `ipc_send_cap`: a capability travels inside a message; the receiver
/// finds its new handle in `RecvInfo::reply_token` and can use it. A
/// forged transfer handle is `INVALID_HANDLE`, one without GRANT (from the
/// name service) `NO_CAPABILITY`.
#[test]
fn a_capability_travels_inside_a_message() {
    let imports = r#"
      (import "wasmos" "ipc_send" (func $send (param i32 i32 i32) (result i32)))
      (import "wasmos" "ipc_send_cap" (func $send_cap (param i32 i32 i32 i32) (result i32)))
      (import "wasmos" "ipc_recv" (func $recv (param i32 i32 i32 i32 i64) (result i32)))
      (import "wasmos" "task_spawn" (func $spawn (param i32 i32 i32 i32 i32 i32 i32) (result i32)))
      (import "wasmos" "service_register" (func $register (param i32 i32 i32) (result i32)))
      (import "wasmos" "service_lookup" (func $lookup (param i32 i32) (result i32)))
      (import "wasmos" "task_exit" (func $exit (param i32)))
      (memory (export "memory") 1)"#;
    let sink = wat::parse_str(format!(
        r#"(module {imports}
          (func (export "_start")
            (drop (call $recv (i32.const -1) (i32.const 1024) (i32.const 64) (i32.const 512) (i64.const -1)))
            (call $exit (i32.load8_u (i32.const 1024)))))"#
    ))
    .unwrap();
    let relay = wat::parse_str(format!(
        r#"(module {imports}
          (func (export "_start") (local $r i32)
            (local.set $r (call $recv (i32.const -1) (i32.const 1024) (i32.const 64) (i32.const 512) (i64.const -1)))
            (if (i32.ne (local.get $r) (i32.const 2)) (then (call $exit (i32.const 10))))
            (if (i32.ne (i32.load (i32.const 512)) (i32.const 1)) (then (call $exit (i32.const 11))))
            (if (i32.eqz (i32.load (i32.const 524))) (then (call $exit (i32.const 12))))
            (call $exit (call $send (i32.load (i32.const 524)) (i32.const 1024) (i32.const 2)))))"#
    ))
    .unwrap();
    let parent = wat::parse_str(format!(
        r#"(module {imports}
          (data (i32.const 0) "p")
          (data (i32.const 16) "hi")
          (data (i32.const 4096) "{sink}")
          (data (i32.const 8192) "{relay}")
          (func (export "_start") (local $hs i32) (local $hr i32) (local $hl i32) (local $i i32) (local $s i32) (local $c i32)
            (local.set $hs (call $spawn (i32.const 4096) (i32.const {sink_len}) (i32.const 0) (i32.const 0) (i32.const -1) (i32.const 0) (i32.const 0)))
            (local.set $hr (call $spawn (i32.const 8192) (i32.const {relay_len}) (i32.const 0) (i32.const 0) (i32.const -1) (i32.const 0) (i32.const 0)))
            (if (i32.ne (call $send_cap (local.get $hr) (i32.const 16) (i32.const 2) (i32.const 0x7fff)) (i32.const {invalid})) (then (call $exit (i32.const 20))))
            (drop (call $register (i32.const 0) (i32.const 1) (i32.const 0)))
            (local.set $hl (call $lookup (i32.const 0) (i32.const 1)))
            (if (i32.ne (call $send_cap (local.get $hr) (i32.const 16) (i32.const 2) (local.get $hl)) (i32.const {nocap})) (then (call $exit (i32.const 21))))
            (if (i32.ne (call $send_cap (local.get $hr) (i32.const 16) (i32.const 2) (local.get $hs)) (i32.const 0)) (then (call $exit (i32.const 22))))
            ;; both children's exits: sink's code * 1000 + relay's code
            (loop $l
              (drop (call $recv (i32.const -1) (i32.const 1024) (i32.const 64) (i32.const 512) (i64.const -1)))
              (if (i32.eq (i32.load (i32.const 512)) (i32.const 4))
                (then
                  (if (i32.eq (i32.load (i32.const 520)) (local.get $hs))
                    (then (local.set $s (i32.load (i32.const 528))))
                    (else (local.set $c (i32.load (i32.const 528)))))
                  (local.set $i (i32.add (local.get $i) (i32.const 1)))))
              (br_if $l (i32.lt_u (local.get $i) (i32.const 2))))
            (call $exit (i32.add (i32.mul (local.get $s) (i32.const 1000)) (local.get $c)))))"#,
        sink = data_string(&sink),
        sink_len = sink.len(),
        relay = data_string(&relay),
        relay_len = relay.len(),
        invalid = Status::InvalidHandle.code(),
        nocap = Status::NoCapability.code(),
    ))
    .unwrap();
    let (sys, platform) = system(2, Config::default());
    let id = sys.spawn(&parent, "parent", 0).unwrap();
    assert_eq!(run(&sys, &platform, &[id], 10), [exited(b'h' as i32 * 1000)]);
}

/// The inbox limit holds across cores: a task that does not receive takes
/// at most `INBOX_CAPACITY` one-way messages in all (in rings and in its
/// inbox), however fast its core drains its ring; then senders on other
/// cores get `WOULD_BLOCK`, and room comes back once it receives.
#[test]
fn the_inbox_limit_holds_for_senders_on_other_cores() {
    let (sys, platform) = system(2, Config::default());
    let cap = wasmos_ipc::abi::INBOX_CAPACITY;
    // Sleeps (not receiving), then receives everything and exits with the
    // count.
    let child = wasm(
        r#"(func (export "_start") (local $n i32)
            (drop (call $sleep (i64.const 100000000)))
            (loop $l
              (if (i32.ge_s (call $recv (i32.const -1) (i32.const 1024) (i32.const 64) (i32.const 512) (i64.const 0)) (i32.const 0))
                (then (local.set $n (i32.add (local.get $n) (i32.const 1))) (br $l))))
            (call $exit (local.get $n)))"#,
    );
    let parent = wasm(&format!(
        r#"(data (i32.const 4096) "{bytes}")
          (func (export "_start") (local $h i32) (local $n i32) (local $r i32)
            (local.set $h (call $spawn (i32.const 4096) (i32.const {len}) (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 0) (i32.const 0)))
            (loop $l
              (local.set $r (call $send (local.get $h) (i32.const 0) (i32.const 4)))
              (if (i32.eqz (local.get $r)) (then (local.set $n (i32.add (local.get $n) (i32.const 1))) (br $l))))
            (if (i32.ne (local.get $r) (i32.const {wb})) (then (call $exit (i32.const -1))))
            ;; the child's exit: the number it received
            (drop (call $recv (i32.const -1) (i32.const 1024) (i32.const 64) (i32.const 512) (i64.const -1)))
            (if (i32.ne (i32.load (i32.const 528)) (local.get $n)) (then (call $exit (i32.const -2))))
            (call $exit (local.get $n)))"#,
        bytes = data_string(&child),
        len = child.len(),
        wb = Status::WouldBlock.code()
    ));
    let id = sys.spawn(&parent, "flood", 0).unwrap();
    assert_eq!(run(&sys, &platform, &[id], 10), [exited(cap as i32)]);
}

/// Two tasks that compute without system calls share a core through fuel
/// slices and both finish.
#[test]
fn two_cpu_hogs_share_a_core() {
    let (sys, platform) = system(1, Config::default());
    let a = sys.spawn(&program("cpu_hog"), "hog_a", 0).unwrap();
    let b = sys.spawn(&program("cpu_hog"), "hog_b", 0).unwrap();
    assert_eq!(run(&sys, &platform, &[a, b], 20), [exited(0), exited(0)]);
}

/// Two flooders, a server and its client on one core: the client's calls
/// still get through (fuel slices kept across blocking calls, fair
/// receive), and when the client stops the server the flooders learn it.
/// (This starved the flooders for good before slices carried over.)
#[test]
fn flood_beside_a_healthy_pair_on_one_core() {
    let (sys, platform) = system(1, Config::default());
    let f1 = sys.spawn(&program("flooder"), "flood1", 0).unwrap();
    let f2 = sys.spawn(&program("flooder"), "flood2", 0).unwrap();
    let server = sys.spawn(&program("rate_server"), "server", 0).unwrap();
    let client = sys.spawn(&program("rate_client"), "client", 0).unwrap();
    let exits = run(&sys, &platform, &[client, server, f1, f2], 20);
    assert!(exits[0].is_some_and(|e| e.code > 100), "client: {:?}", exits[0]);
    assert_eq!(exits[1..], [exited(0), exited(0), exited(0)]);
}
