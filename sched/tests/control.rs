//! `task_kill` and `cap_mint`: a parent ends its child wherever it is,
//! and a server tells its clients apart by the badges it minted.

mod common;

use common::{data_string, program, run, system, wasm};
use wasmos_ipc::abi::ExitReason;
use wasmos_sched::{Config, TaskExit};

fn exited(code: i32) -> Option<TaskExit> {
    Some(TaskExit { code, reason: ExitReason::Exited })
}

/// Spawns a long sleeper on `core` (`-1` any), kills it after `delay_ns`
/// (0: at once, before it can have started), and checks the report:
/// exits 0 if the child ended as killed with code -1 and a second kill
/// is DEAD_TARGET; else a step number.
fn killer(core: i32, delay_ns: u64) -> Vec<u8> {
    let child =
        wasm("(func (export \"_start\") (drop (call $sleep (i64.const 60000000000))) (call $exit (i32.const 5)))");
    wasm(&format!(
        r#"
      (data (i32.const 4096) "{bytes}")
      (data (i32.const 0) "child")
      (func (export "_start") (local $h i32)
        (local.set $h (call $spawn (i32.const 4096) (i32.const {len}) (i32.const 0) (i32.const 5) (i32.const {core}) (i32.const 0) (i32.const 0)))
        (if (i32.lt_s (local.get $h) (i32.const 0)) (then (call $exit (i32.const 1))))
        (drop (call $sleep (i64.const {delay_ns})))
        (if (i32.ne (call $kill (local.get $h)) (i32.const 0)) (then (call $exit (i32.const 2))))
        (drop (call $recv (i32.const -1) (i32.const 1024) (i32.const 64) (i32.const 512) (i64.const 10000000000)))
        ;; ChildExit (4) for our handle, reason Killed (7), code -1
        (if (i32.ne (i32.load (i32.const 512)) (i32.const 4)) (then (call $exit (i32.const 3))))
        (if (i32.ne (i32.load (i32.const 520)) (local.get $h)) (then (call $exit (i32.const 4))))
        (if (i32.ne (i32.load8_u (i32.const 532)) (i32.const 7)) (then (call $exit (i32.const 5))))
        (if (i32.ne (i32.load (i32.const 528)) (i32.const -1)) (then (call $exit (i32.const 6))))
        (if (i32.ne (call $kill (local.get $h)) (i32.const -4)) (then (call $exit (i32.const 7))))
        (call $exit (i32.const 0)))"#,
        bytes = data_string(&child),
        len = child.len()
    ))
}

#[test]
fn a_parent_kills_its_child_on_any_core_at_any_moment() {
    let (sys, platform) = system(2, Config::default());
    let cases = [(0, 0), (0, 10_000_000), (1, 0), (1, 10_000_000), (-1, 1_000)];
    let ids: Vec<_> = cases
        .iter()
        .map(|(core, delay)| sys.spawn(&killer(*core, *delay), &format!("killer{core}_{delay}"), 0).unwrap())
        .collect();
    let exits = run(&sys, &platform, &ids, 30);
    for (case, exit) in cases.iter().zip(exits) {
        assert_eq!(exit, exited(0), "child on core {} killed after {} ns", case.0, case.1);
    }
    assert_eq!(sys.task_count(), 0, "a killed child is reaped");
    assert_eq!(sys.memory_in_use(), 0, "and its memory freed");
    assert!(platform.console.lock().unwrap().iter().any(|(_, _, t)| t.contains("killed: killed")));
}

#[test]
fn only_a_handle_with_kill_can_kill() {
    // The echo server's handle from service_lookup is SEND only; a minted
    // copy of oneself never carries KILL; a killed server answers its
    // caller DEAD_TARGET.
    let prog = wasm(
        r#"
      (data (i32.const 0) "echo")
      (func (export "_start") (local $h i32) (local $me i32)
        (local.set $h (call $lookup_wait (i32.const 0) (i32.const 4)))
        (if (i32.ne (call $kill (local.get $h)) (i32.const -2)) (then (call $exit (i32.const 1))))
        (local.set $me (call $mint (i32.const 0) (i32.const 0) (i32.const 7)))
        (if (i32.le_s (local.get $me) (i32.const 0)) (then (call $exit (i32.const 2))))
        (if (i32.ne (call $kill (local.get $me)) (i32.const -2)) (then (call $exit (i32.const 3))))
        (if (i32.ne (call $kill (i32.const 12345)) (i32.const -1)) (then (call $exit (i32.const 4))))
        (call $exit (i32.const 0)))"#,
    );
    let (sys, platform) = system(2, Config::default());
    let echo = sys.spawn(&program("echo_server"), "echo", 1).unwrap();
    let id = sys.spawn(&prog, "no_kill", 0).unwrap();
    assert_eq!(run(&sys, &platform, &[id], 20), [exited(0)]);
    assert!(sys.exit_of(echo).is_none(), "the server was not killed");
}

#[test]
fn a_server_tells_clients_apart_by_minted_badges() {
    // The server mints a badged copy of itself per client (badges 101,
    // 102), hands each to a client it spawned (as the client's handle 1),
    // and checks that every message arrives with its sender's badge.
    let client = wasm(
        r#"
      (func (export "_start")
        (i32.store (i32.const 2048) (call $core_id))
        (drop (call $send (i32.const 1) (i32.const 2048) (i32.const 4)))
        ;; a badged capability cannot be re-badged, nor minted from with unknown rights
        (if (i32.ne (call $mint (i32.const 1) (i32.const 999) (i32.const 1)) (i32.const -2)) (then (call $exit (i32.const 1))))
        (if (i32.ne (call $mint (i32.const 0) (i32.const 1) (i32.const 8)) (i32.const -13)) (then (call $exit (i32.const 2))))
        (call $exit (i32.const 0)))"#,
    );
    let server = wasm(&format!(
        r#"
      (data (i32.const 4096) "{bytes}")
      (data (i32.const 0) "client")
      (func $spawn_with_badge (param $badge i32) (param $core i32) (local $cap i32)
        (local.set $cap (call $mint (i32.const 0) (local.get $badge) (i32.const 3)))
        (if (i32.le_s (local.get $cap) (i32.const 0)) (then (call $exit (i32.const 10))))
        (i32.store (i32.const 3000) (local.get $cap))
        (if (i32.le_s (call $spawn (i32.const 4096) (i32.const {len}) (i32.const 0) (i32.const 6) (local.get $core) (i32.const 3000) (i32.const 1)) (i32.const 0))
          (then (call $exit (i32.const 11)))))
      (func (export "_start") (local $seen i32) (local $n i32)
        (call $spawn_with_badge (i32.const 101) (i32.const 0))
        (call $spawn_with_badge (i32.const 102) (i32.const 1))
        ;; two messages and two child exits, in any order
        (loop $more
          (drop (call $recv (i32.const -1) (i32.const 1024) (i32.const 64) (i32.const 512) (i64.const 10000000000)))
          (local.set $n (i32.add (local.get $n) (i32.const 1)))
          (if (i32.eq (i32.load (i32.const 512)) (i32.const 1)) (then
            ;; client k on core k-101 sent its core id with badge 101+k
            (if (i32.ne (i32.load (i32.const 520)) (i32.add (i32.const 101) (i32.load (i32.const 1024))))
              (then (call $exit (i32.const 12))))
            (local.set $seen (i32.or (local.get $seen) (i32.shl (i32.const 1) (i32.sub (i32.load (i32.const 520)) (i32.const 101)))))))
          (if (i32.eq (i32.load (i32.const 512)) (i32.const 4)) (then
            (if (i32.ne (i32.load8_u (i32.const 532)) (i32.const 0)) (then (call $exit (i32.const 13))))
            (if (i32.ne (i32.load (i32.const 528)) (i32.const 0)) (then (call $exit (i32.add (i32.const 20) (i32.load (i32.const 528))))))))
          (br_if $more (i32.lt_u (local.get $n) (i32.const 4))))
        (call $exit (local.get $seen)))"#,
        bytes = data_string(&client),
        len = client.len()
    ));
    let (sys, platform) = system(2, Config::default());
    let id = sys.spawn(&server, "server", 0).unwrap();
    assert_eq!(run(&sys, &platform, &[id], 20), [exited(3)], "both badges seen, both clients exited 0");
}

/// A server that takes calls and never answers, registered as `mute`.
fn mute_server() -> Vec<u8> {
    wasm(
        r#"
      (data (i32.const 0) "mute")
      (func (export "_start")
        (drop (call $register (i32.const 0) (i32.const 4) (i32.const 0)))
        (loop $forever
          (drop (call $recv (i32.const -1) (i32.const 1024) (i32.const 64) (i32.const 512) (i64.const -1)))
          (br $forever)))"#,
    )
}

/// Calls `mute` with a 20 ms timeout (TIMED_OUT, not before 20 ms), with
/// timeout 0 (TIMED_OUT at once), with -2 (INVALID_ARGUMENT), then makes
/// an ordinary call to `echo`, which must get echo's answer (not a late
/// one from `mute`). Exits 0, or the failed step.
fn impatient_client() -> Vec<u8> {
    wasm(
        r#"
      (data (i32.const 0) "mute")
      (data (i32.const 8) "echo")
      (func (export "_start") (local $mute i32) (local $echo i32) (local $t i64)
        (local.set $mute (call $lookup_wait (i32.const 0) (i32.const 4)))
        (local.set $echo (call $lookup_wait (i32.const 8) (i32.const 4)))
        (local.set $t (call $now))
        (if (i32.ne (call $call_timeout (local.get $mute) (i32.const 2048) (i32.const 4) (i32.const 3072) (i32.const 64) (i64.const 20000000)) (i32.const -7))
          (then (call $exit (i32.const 1))))
        (if (i64.lt_u (i64.sub (call $now) (local.get $t)) (i64.const 20000000)) (then (call $exit (i32.const 2))))
        (if (i32.ne (call $call_timeout (local.get $mute) (i32.const 2048) (i32.const 4) (i32.const 3072) (i32.const 64) (i64.const 0)) (i32.const -7))
          (then (call $exit (i32.const 3))))
        (if (i32.ne (call $call_timeout (local.get $mute) (i32.const 2048) (i32.const 4) (i32.const 3072) (i32.const 64) (i64.const -2)) (i32.const -13))
          (then (call $exit (i32.const 4))))
        (i32.store (i32.const 2048) (i32.const 41))
        (if (i32.ne (call $call_timeout (local.get $echo) (i32.const 2048) (i32.const 4) (i32.const 3072) (i32.const 64) (i64.const -1)) (i32.const 4))
          (then (call $exit (i32.const 5))))
        (if (i32.ne (i32.load (i32.const 3072)) (i32.const 42)) (then (call $exit (i32.const 6))))
        (call $exit (i32.const 0)))"#,
    )
}

#[test]
fn a_call_to_a_server_that_never_answers_times_out() {
    // The mute server on the client's core and on another core.
    for mute_core in [0, 1] {
        let (sys, platform) = system(2, Config::default());
        sys.spawn(&mute_server(), "mute", mute_core).unwrap();
        sys.spawn(&program("echo_server"), "echo", 1).unwrap();
        let client = sys.spawn(&impatient_client(), "client", 0).unwrap();
        assert_eq!(run(&sys, &platform, &[client], 20), [exited(0)], "mute server on core {mute_core}");
    }
}

#[test]
fn the_kernel_suites_killer_program_passes_here_too() {
    let (sys, platform) = system(3, Config::default());
    let id = sys.spawn(&program("killer"), "killer", 0).unwrap();
    assert_eq!(run(&sys, &platform, &[id], 20), [exited(3)]);
}
