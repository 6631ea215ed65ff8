//! Every `wasmos` system call with arbitrary arguments, made by real
//! tasks against their real memory: a module is generated whose `_start`
//! makes the calls the input describes, and two copies of it run beside
//! an echo server. To reach the states hostile programs reach, a call may
//! repeat up to 64 times (floods of sends, names, spawns), take as an
//! argument the last value a call returned (so handles that `task_spawn`,
//! `service_lookup` or `cap_mint` gave come back into `task_kill`,
//! `ipc_grant`...), and `task_spawn` may start a real child (an embedded
//! echo server or sleeper). Each call must return a status (or block),
//! never panic the scheduler; once the system is dropped, every byte of
//! Wasm memory its tasks held must be back in the budget.
#![no_main]
use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

/// (name, number of i32 arguments, has an i64 last argument)
const CALLS: &[(&str, usize, bool)] = &[
    ("send", 3, false),
    ("recv", 4, true),
    ("call", 5, false),
    ("call_timeout", 5, true),
    ("reply", 3, false),
    ("grant", 2, false),
    ("notify", 1, true),
    ("spawn", 7, false),
    ("spawn_ns", 9, false),
    ("register", 3, false),
    ("lookup", 2, false),
    ("close", 1, false),
    ("kill", 1, false),
    ("mint", 3, false),
    ("sleep", 0, true),
    ("print", 2, false),
    ("boot_file", 4, false),
];

/// Where the embedded children's bytes sit in the fuzz task's memory.
const CHILDREN_AT: u32 = 16384;

#[derive(Arbitrary, Debug)]
enum Arg {
    Const(i32),
    /// The last value any call of this task returned.
    Last,
    /// A small value: handles, lengths, core numbers.
    Small(u8),
}

#[derive(Arbitrary, Debug)]
struct Call {
    which: u8,
    args: [Arg; 9],
    wide: i64,
    /// Extra repetitions (0..=63), in a loop.
    repeat: u8,
    /// For `spawn`, `spawn_ns`: start one of the embedded children instead of
    /// whatever bytes the arguments point at.
    real_child: Option<bool>,
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(calls) = Vec::<Call>::arbitrary(&mut u) else { return };
    let echo = wasmos_tests::programs::get("echo_server");
    let sleeper = wasmos_tests::programs::get("sleeper");
    let escape = |b: &[u8]| b.iter().map(|b| format!("\\{b:02x}")).collect::<String>();
    let mut body = format!(
        "(data (i32.const {CHILDREN_AT}) \"{}{}\")\n(data (i32.const 0) \"echo\")\n(global $last (mut i32) (i32.const 0))\n",
        escape(&echo),
        escape(&sleeper)
    );
    body.push_str("(func (export \"_start\") (local $i i32)\n");
    for c in calls.iter().take(32) {
        let (name, n, wide) = CALLS[c.which as usize % CALLS.len()];
        let mut args: Vec<String> = c.args[..n]
            .iter()
            .map(|a| match a {
                Arg::Const(v) => format!("(i32.const {v})"),
                Arg::Last => "(global.get $last)".into(),
                Arg::Small(v) => format!("(i32.const {})", v % 8),
            })
            .collect();
        if name.starts_with("spawn") {
            if let Some(first) = c.real_child {
                let (at, len) =
                    if first { (CHILDREN_AT, echo.len()) } else { (CHILDREN_AT + echo.len() as u32, sleeper.len()) };
                args[0] = format!("(i32.const {at})");
                args[1] = format!("(i32.const {len})");
            }
        }
        if wide {
            // Keep sleeps and timeouts short so runs stay bounded.
            args.push(format!("(i64.const {})", c.wide.rem_euclid(1_000_000)));
        }
        body.push_str(&format!(
            "  (local.set $i (i32.const {}))\n  (loop $again\n    (global.set $last (call ${name} {}))\n    \
             (local.set $i (i32.sub (local.get $i) (i32.const 1)))\n    (br_if $again (i32.gt_s (local.get $i) (i32.const 0))))\n",
            c.repeat % 64 + 1,
            args.join(" ")
        ));
    }
    body.push(')');
    let module = wasmos_tests::programs::module(&body);
    let sys = common::system();
    // A peer to talk to, registered as "echo".
    let _ = sys.spawn(&echo, "echo", 0);
    if sys.spawn(&module, "fuzz", 0).is_ok() {
        let _ = sys.spawn(&module, "fuzz2", 0);
        // The scheduler, and with it every task, is dropped at the end.
        common::run(&sys, 512);
    }
    assert_eq!(sys.memory_in_use(), 0, "Wasm memory still charged after every task is gone");
});
