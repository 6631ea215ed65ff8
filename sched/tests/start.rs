//! A module's start function runs under the same rules as `_start`: it
//! is preempted when its fuel slice runs out (never killed for it), its
//! system calls block and resume, and it sees its own memory.

mod common;

use common::{run, system, wasm};
use wasmos_ipc::abi::{ExitReason, Status};
use wasmos_sched::{Config, TaskExit};

fn exited(code: i32) -> Option<TaskExit> {
    Some(TaskExit { code, reason: ExitReason::Exited })
}

#[test]
fn a_long_start_function_is_preempted_not_killed() {
    // A million iterations: many fuel slices (the default slice is
    // 200 000 units). `_start` runs after it and sees what it did.
    let prog = wasm(
        r#"
      (global $done (mut i32) (i32.const 0))
      (func $init (local $i i32)
        (loop $l
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $l (i32.lt_u (local.get $i) (i32.const 1000000))))
        (global.set $done (i32.const 7)))
      (start $init)
      (func (export "_start") (call $exit (global.get $done)))"#,
    );
    let (sys, platform) = system(1, Config::default());
    let id = sys.spawn(&prog, "long_start", 0).unwrap();
    assert_eq!(run(&sys, &platform, &[id], 30), [exited(7)]);
}

#[test]
fn a_start_function_makes_system_calls_as_start_does() {
    // Writes its memory to the console, polls its inbox (TIMED_OUT), and
    // sleeps (a blocking call, resumed); then `_start` runs.
    let prog = wasm(
        r#"
      (data (i32.const 0) "hello from the start function")
      (global $step (mut i32) (i32.const 0))
      (func $init
        (if (i32.lt_s (call $print (i32.const 0) (i32.const 29)) (i32.const 0)) (then (return)))
        (global.set $step (i32.const 1))
        (if (i32.ne (call $recv (i32.const -1) (i32.const 1024) (i32.const 64) (i32.const 512) (i64.const 0))
                    (i32.const -7)) (then (return)))
        (global.set $step (i32.const 2))
        (if (i32.ne (call $sleep (i64.const 2000000)) (i32.const 0)) (then (return)))
        (global.set $step (i32.const 3)))
      (start $init)
      (func (export "_start") (call $exit (global.get $step)))"#,
    );
    let (sys, platform) = system(1, Config::default());
    let id = sys.spawn(&prog, "calls_in_start", 0).unwrap();
    assert_eq!(run(&sys, &platform, &[id], 30), [exited(3)]);
    let console = platform.console.lock().unwrap();
    assert!(console.iter().any(|(_, _, t)| t.contains("hello from the start function")), "{console:?}");
}

#[test]
fn a_trap_in_a_start_function_is_the_tasks_exit() {
    let prog = wasm(
        r#"
      (func $init unreachable)
      (start $init)
      (func (export "_start") (call $exit (i32.const 0)))"#,
    );
    let (sys, platform) = system(1, Config::default());
    let id = sys.spawn(&prog, "trap_in_start", 0).unwrap();
    assert_eq!(run(&sys, &platform, &[id], 30), [Some(TaskExit { code: -1, reason: ExitReason::Unreachable })]);
    assert_eq!(sys.memory_in_use(), 0);
}

#[test]
fn the_start_export_name_is_reserved() {
    let prog = wasm(r#"(func (export "wasmos:start")) (func (export "_start"))"#);
    let (sys, _platform) = system(1, Config::default());
    assert_eq!(sys.spawn(&prog, "reserved", 0).err(), Some(Status::InvalidWasm));
}
