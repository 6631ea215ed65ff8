//! The kernel's system calls against the ABI table (`wasmos_ipc::abi::FUNCTIONS`):
//! every function in it links with exactly its signature, nothing else
//! does, and no call returns an error status its entry does not list.

mod common;

use common::{program, run, system};
use wasmos_ipc::abi::{FUNCTIONS, Function, Status, ValType};
use wasmos_sched::Config;

fn wat_type(t: ValType) -> &'static str {
    t.name()
}

/// `(import "wasmos" "<name>" (func $<alias> (param ..) (result ..)))`.
fn import(f: &Function, alias: &str, extra_param: bool, drop_result: bool) -> String {
    let mut params: Vec<&str> = f.params.iter().map(|(_, t)| wat_type(*t)).collect();
    if extra_param {
        params.push("i32");
    }
    let params = if params.is_empty() { String::new() } else { format!(" (param {})", params.join(" ")) };
    let result = match (f.result, drop_result) {
        (Some(t), false) => format!(" (result {})", wat_type(t)),
        (Some(_), true) => String::new(),
        // task_exit: "dropping" its missing result means adding one.
        (None, true) => " (result i32)".into(),
        (None, false) => String::new(),
    };
    format!("(import \"wasmos\" \"{}\" (func ${alias}{params}{result}))", f.name)
}

fn assemble(text: &str) -> Vec<u8> {
    wat::parse_str(text).unwrap_or_else(|e| panic!("does not assemble: {e}\n{text}"))
}

#[test]
fn every_function_of_the_table_links_with_its_signature() {
    let imports: String = FUNCTIONS.iter().map(|f| import(f, f.name, false, false)).collect::<Vec<_>>().join("\n");
    let module = assemble(&format!(
        "(module {imports} (memory (export \"memory\") 1) (func (export \"_start\") (call $task_exit (i32.const 7))))"
    ));
    let (sys, platform) = system(1, Config::default());
    let id = sys.spawn(&module, "all_imports", 0).expect("a module importing the whole table is valid");
    let exit = run(&sys, &platform, &[id], 10)[0].expect("it ran");
    assert_eq!(exit.code, 7, "instantiation failed: a table entry is not registered with its signature ({exit:?})");
}

#[test]
fn a_wrong_signature_or_an_unknown_name_is_invalid_wasm() {
    let (sys, _platform) = system(1, Config::default());
    let body = "(memory (export \"memory\") 1) (func (export \"_start\"))";
    for f in FUNCTIONS {
        for (extra, drop) in [(true, false), (false, true)] {
            let module = assemble(&format!("(module {} {body})", import(f, "f", extra, drop)));
            assert_eq!(
                sys.spawn(&module, "wrong", 0).err(),
                Some(Status::InvalidWasm),
                "{} imported with a wrong signature (extra param {extra}, result changed {drop})",
                f.name
            );
        }
    }
    let module = assemble(&format!("(module (import \"wasmos\" \"ipc_sendd\" (func (param i32))) {body})"));
    assert_eq!(sys.spawn(&module, "unknown", 0).err(), Some(Status::InvalidWasm));
}

/// Argument values a hostile program would try, per type: bad and edge
/// pointers, lengths and handles (`$h` is a live handle to the echo
/// server, SEND only).
fn pool(t: ValType, name: &str) -> Vec<String> {
    match (t, name) {
        // Never wait long: a timeout of 0 polls, 1 us waits briefly (a
        // negative one other than -1 is the hostility issue's to define).
        (ValType::I64, "timeout_ns") => vec!["0".into(), "1000".into()],
        (ValType::I64, "ns") => ["-1", "0", "1", "1000"].map(String::from).into(),
        (ValType::I64, _) => ["-1", "0", "1", "-9223372036854775808", "9223372036854775807"].map(String::from).into(),
        (ValType::I32, _) => {
            let mut v: Vec<String> = [
                "-1",
                "0",
                "1",
                "2",
                "4",
                "24",
                "4096",
                "4097",
                "65530",
                "65536",
                "70000",
                "2147483647",
                "-2147483648",
            ]
            .map(String::from)
            .into();
            v.push("(local.get $h)".into());
            v
        }
    }
}

/// One program per function: looks up the echo server, then makes
/// `CALLS` calls with arguments from [`pool`] and exits with
/// `call * 100 + -status` at the first error status that the function's
/// table entry does not list (0 when there was none).
fn hostile_program(f: &Function) -> String {
    const CALLS: usize = 200;
    let mut seed = 0x9e37_79b9_u64 ^ f.name.len() as u64;
    let mut pick = |n: usize| {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (seed >> 33) as usize % n
    };
    let listed: String = f
        .errors
        .iter()
        .map(|s| format!("(i32.eq (local.get $r) (i32.const {}))", s.code()))
        .fold("(i32.const 0)".to_owned(), |acc, term| format!("(i32.or {acc} {term})"));
    let mut calls = String::new();
    let count = if f.params.is_empty() { 1 } else { CALLS };
    for i in 0..count {
        let args: String = f
            .params
            .iter()
            .map(|(name, t)| {
                let p = pool(*t, name);
                let v = &p[pick(p.len())];
                if v.starts_with('(') { v.clone() } else { format!("({}.const {v})", t.name()) }
            })
            .collect::<Vec<_>>()
            .join(" ");
        let call = format!("(call $f {args})");
        let status = match f.result {
            Some(ValType::I32) => call,
            // time_now_ns: never an error.
            _ => format!("(i32.wrap_i64 (i64.and {call} (i64.const 0)))"),
        };
        calls.push_str(&format!(
            "(local.set $r {status})
             (if (i32.and (i32.lt_s (local.get $r) (i32.const 0)) (i32.eqz {listed}))
               (then (call $exit (i32.sub (i32.const {}) (local.get $r)))))\n",
            (i + 1) * 100
        ));
    }
    format!(
        "(module
           {}
           (import \"wasmos\" \"task_exit\" (func $exit (param i32)))
           (import \"wasmos\" \"service_lookup\" (func $lookup (param i32 i32) (result i32)))
           (import \"wasmos\" \"sleep_ns\" (func $sleep (param i64) (result i32)))
           (memory (export \"memory\") 1)
           (data (i32.const 0) \"echo\")
           (func (export \"_start\") (local $h i32) (local $r i32)
             (block $found (loop $again
               (local.set $h (call $lookup (i32.const 0) (i32.const 4)))
               (br_if $found (i32.gt_s (local.get $h) (i32.const 0)))
               (drop (call $sleep (i64.const 100000)))
               (br $again)))
             {calls}
             (call $exit (i32.const 0))))",
        import(f, "f", false, false)
    )
}

#[test]
fn no_call_returns_a_status_its_entry_does_not_list() {
    for f in FUNCTIONS.iter().filter(|f| f.name != "task_exit") {
        let (sys, platform) = system(2, Config::default());
        let echo = sys.spawn(&program("echo_server"), "echo", 0).unwrap();
        let module = assemble(&hostile_program(f));
        let prober = sys.spawn(&module, f.name, 1).unwrap();
        let exits = run(&sys, &platform, &[prober], 30);
        let code = exits[0].unwrap_or_else(|| panic!("{}: the prober did not finish", f.name)).code;
        assert!(
            code == 0,
            "{}: call {} returned {:?} ({}), which FUNCTIONS does not list",
            f.name,
            code / 100,
            Status::from_code(-(code % 100)).map(Status::name),
            -(code % 100)
        );
        let _ = echo;
    }
}
