//! Every `wasmos` system call with arbitrary arguments, made by a real
//! task against its real memory: a module is generated whose `_start`
//! makes the calls the input describes. Each call must return a status
//! (or block), never panic the scheduler or corrupt another task.
#![no_main]
use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

/// (name, number of i32 arguments, has an i64 last argument, returns)
const CALLS: &[(&str, usize, bool, bool)] = &[
    ("send", 3, false, true),
    ("recv", 4, true, true),
    ("call", 5, false, true),
    ("call_timeout", 5, true, true),
    ("reply", 3, false, true),
    ("grant", 2, false, true),
    ("notify", 1, true, true),
    ("spawn", 7, false, true),
    ("register", 3, false, true),
    ("lookup", 2, false, true),
    ("close", 1, false, true),
    ("kill", 1, false, true),
    ("mint", 3, false, true),
    ("sleep", 0, true, true),
    ("print", 2, false, true),
    ("boot_file", 4, false, true),
];

#[derive(Arbitrary, Debug)]
struct Call {
    which: u8,
    args: [i32; 7],
    wide: i64,
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(calls) = Vec::<Call>::arbitrary(&mut u) else { return };
    let mut body = String::from("(func (export \"_start\")\n");
    for c in calls.iter().take(32) {
        let (name, n, wide, _) = CALLS[c.which as usize % CALLS.len()];
        body.push_str(&format!("  (drop (call ${name}"));
        for a in &c.args[..n] {
            body.push_str(&format!(" (i32.const {a})"));
        }
        if wide {
            // Keep sleeps and timeouts short so runs stay bounded.
            body.push_str(&format!(" (i64.const {})", c.wide.rem_euclid(1_000_000)));
        }
        body.push_str("))\n");
    }
    body.push(')');
    let module = wasmos_tests::programs::module(&body);
    let sys = common::system();
    // A peer to talk to, registered as "echo".
    let _ = sys.spawn(&wasmos_tests::programs::get("echo_server"), "echo", 0);
    if sys.spawn(&module, "fuzz", 0).is_ok() {
        common::run(&sys, 256);
    }
});
