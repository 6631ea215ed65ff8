//! Round-trip timings of `ipc_call`/`ipc_reply`, same core and across
//! cores, through the real scheduler. Ignored by default (timings need a
//! release build and a quiet machine):
//! `cargo test --release -p wasmos-sched --test perf -- --ignored --nocapture`.

mod common;

use common::{program, system, wasm};
use wasmos_sched::Config;

const CALLS: u32 = 200_000;

/// The client makes `CALLS` calls to "echo" and exits with the mean round
/// trip in nanoseconds (measured inside Wasm with `time_now_ns`).
fn timed_client() -> Vec<u8> {
    wasm(&format!(
        r#"(data (i32.const 0) "echo")
          (func (export "_start") (local $h i32) (local $i i32) (local $t i64)
            (local.set $h (call $lookup_wait (i32.const 0) (i32.const 4)))
            (local.set $t (call $now))
            (loop $l
              (i32.store (i32.const 2048) (local.get $i))
              (if (i32.ne (call $call (local.get $h) (i32.const 2048) (i32.const 4) (i32.const 3072) (i32.const 64)) (i32.const 4))
                (then (call $exit (i32.const -1))))
              (local.set $i (i32.add (local.get $i) (i32.const 1)))
              (br_if $l (i32.lt_u (local.get $i) (i32.const {CALLS}))))
            (local.set $t (i64.sub (call $now) (local.get $t)))
            (call $exit (i32.wrap_i64 (i64.div_u (local.get $t) (i64.const {CALLS})))))"#
    ))
}

fn round_trip(server_core: i32) -> i32 {
    let (sys, platform) = system(2, Config::default());
    sys.spawn(&program("echo_server"), "echo", server_core).unwrap();
    let client = sys.spawn(&timed_client(), "client", 0).unwrap();
    let exit = common::run(&sys, &platform, &[client], 120)[0].expect("client finished");
    assert!(exit.code > 0, "client failed: {exit:?}");
    exit.code
}

#[test]
#[ignore]
fn call_reply_round_trip_same_core() {
    println!("same-core call/reply round trip: {} ns", round_trip(0));
}

#[test]
#[ignore]
fn call_reply_round_trip_cross_core() {
    println!("cross-core call/reply round trip: {} ns", round_trip(1));
}
