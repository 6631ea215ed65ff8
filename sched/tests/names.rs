//! The name service is governed by namespaces (`wasmos_ipc::names`): a
//! task reaches a system service (`tcp`, `sysinfo`, `fs`) only if its
//! parent gave it the name, never more than the parent holds, and only
//! the kernel's own tasks may serve a system name. Every grant and every
//! refusal below is checked by the task that meets it; a failed check is
//! its exit code.

mod common;

use common::{data_string, run, system, wasm};
use wasmos_ipc::abi::ExitReason;
use wasmos_ipc::names::Namespace;
use wasmos_sched::{Config, TaskExit};

fn exited(code: i32) -> Option<TaskExit> {
    Some(TaskExit { code, reason: ExitReason::Exited })
}

/// Data every probe uses: names at fixed places.
const NAMES: &str = r#"
      (data (i32.const 0) "tcp")
      (data (i32.const 16) "sysinfo")
      (data (i32.const 32) "fs")
      (data (i32.const 48) "public-echo")
      (data (i32.const 64) "tcp,sysinfo")
      (data (i32.const 80) "tcp, nosuch")"#;

/// `(call $spawn_ns <child at 4096>)` with the namespace at `names`/`len`.
fn spawn_ns(len: usize, names: u32, names_len: u32) -> String {
    format!(
        "(call $spawn_ns (i32.const 4096) (i32.const {len}) (i32.const 48) (i32.const 5) (i32.const -1) (i32.const 0) \
         (i32.const 0) (i32.const {names}) (i32.const {names_len}))"
    )
}

/// Waits for one ChildExit and fails with `step` unless it is exit 0
/// (with `base` + the child's code when the child failed a check).
fn child_exit_ok(step: u32, base: u32) -> String {
    format!(
        r#"(drop (call $recv (i32.const -1) (i32.const 1024) (i32.const 64) (i32.const 512) (i64.const 10000000000)))
        (if (i32.ne (i32.load (i32.const 512)) (i32.const 4)) (then (call $exit (i32.const {step}))))
        (if (i32.ne (i32.load8_u (i32.const 532)) (i32.const 0)) (then (call $exit (i32.const {step}))))
        (if (i32.ne (i32.load (i32.const 528)) (i32.const 0)) (then (call $exit (i32.add (i32.const {base}) (i32.load (i32.const 528))))))"#
    )
}

/// Holds only `tcp`: may look it up, nothing else of the system.
fn grandchild() -> Vec<u8> {
    wasm(&format!(
        r#"{NAMES}
      (func (export "_start")
        (if (i32.le_s (call $lookup (i32.const 0) (i32.const 3)) (i32.const 0)) (then (call $exit (i32.const 1))))
        (if (i32.ne (call $lookup (i32.const 16) (i32.const 7)) (i32.const -2)) (then (call $exit (i32.const 2))))
        (call $exit (i32.const 0)))"#
    ))
}

/// Spawned with `tcp` only.
fn granted_tcp() -> Vec<u8> {
    let g = grandchild();
    wasm(&format!(
        r#"{NAMES}
      (data (i32.const 4096) "{bytes}")
      (func (export "_start")
        ;; its grant, and nothing beside it
        (if (i32.le_s (call $lookup (i32.const 0) (i32.const 3)) (i32.const 0)) (then (call $exit (i32.const 1))))
        (if (i32.ne (call $lookup (i32.const 16) (i32.const 7)) (i32.const -2)) (then (call $exit (i32.const 2))))
        ;; a grant to look up is no right to serve: not even an unserved name
        (if (i32.ne (call $register (i32.const 32) (i32.const 2) (i32.const 0)) (i32.const -2)) (then (call $exit (i32.const 3))))
        ;; it hands down what it holds, and no more
        (if (i32.ne {more} (i32.const -2)) (then (call $exit (i32.const 4))))
        (if (i32.le_s {same} (i32.const 0)) (then (call $exit (i32.const 5))))
        {wait}
        (call $exit (i32.const 0)))"#,
        bytes = data_string(&g),
        more = spawn_ns(g.len(), 64, 11),
        same = spawn_ns(g.len(), 0, 3),
        wait = child_exit_ok(6, 10),
    ))
}

/// Spawned with `task_spawn`: an empty namespace.
fn granted_nothing() -> Vec<u8> {
    let g = grandchild();
    wasm(&format!(
        r#"{NAMES}
      (data (i32.const 4096) "{bytes}")
      (func (export "_start")
        ;; no system service, registered (tcp, sysinfo) or not (fs):
        ;; the same answer, so it learns nothing of what runs
        (if (i32.ne (call $lookup (i32.const 0) (i32.const 3)) (i32.const -2)) (then (call $exit (i32.const 1))))
        (if (i32.ne (call $lookup (i32.const 16) (i32.const 7)) (i32.const -2)) (then (call $exit (i32.const 2))))
        (if (i32.ne (call $lookup (i32.const 32) (i32.const 2)) (i32.const -2)) (then (call $exit (i32.const 3))))
        ;; cannot stand in for a system service, served or not
        (if (i32.ne (call $register (i32.const 0) (i32.const 3) (i32.const 0)) (i32.const -2)) (then (call $exit (i32.const 4))))
        (if (i32.ne (call $register (i32.const 32) (i32.const 2) (i32.const 0)) (i32.const -2)) (then (call $exit (i32.const 5))))
        ;; public names work as before
        (if (i32.ne (call $register (i32.const 48) (i32.const 11) (i32.const 0)) (i32.const 0)) (then (call $exit (i32.const 6))))
        (if (i32.le_s (call $lookup (i32.const 48) (i32.const 11)) (i32.const 0)) (then (call $exit (i32.const 7))))
        ;; cannot give what it lacks; an unknown name is a bad argument
        (if (i32.ne {tcp} (i32.const -2)) (then (call $exit (i32.const 8))))
        (if (i32.ne {bogus} (i32.const -13)) (then (call $exit (i32.const 9))))
        (call $exit (i32.const 0)))"#,
        bytes = data_string(&g),
        tcp = spawn_ns(g.len(), 0, 3),
        bogus = spawn_ns(g.len(), 80, 11),
    ))
}

/// A task the kernel starts: holds every name, serves `tcp` (a stand-in
/// for the socket service), and starts the two probes.
fn parent() -> Vec<u8> {
    let (tcp, none) = (granted_tcp(), granted_nothing());
    wasm(&format!(
        r#"{NAMES}
      (data (i32.const 4096) "{tcp_bytes}")
      (data (i32.const 32768) "{none_bytes}")
      (func (export "_start")
        (if (i32.ne (call $register (i32.const 0) (i32.const 3) (i32.const 0)) (i32.const 0)) (then (call $exit (i32.const 1))))
        (if (i32.le_s (call $lookup (i32.const 16) (i32.const 7)) (i32.const 0)) (then (call $exit (i32.const 2))))
        (if (i32.le_s {spawn_tcp} (i32.const 0)) (then (call $exit (i32.const 3))))
        {wait_tcp}
        (if (i32.le_s (call $spawn (i32.const 32768) (i32.const {none_len}) (i32.const 48) (i32.const 5) (i32.const -1) (i32.const 0) (i32.const 0)) (i32.const 0))
          (then (call $exit (i32.const 5))))
        {wait_none}
        (call $exit (i32.const 0)))"#,
        tcp_bytes = data_string(&tcp),
        none_bytes = data_string(&none),
        none_len = none.len(),
        spawn_tcp = spawn_ns(tcp.len(), 0, 3),
        wait_tcp = child_exit_ok(4, 100),
        wait_none = child_exit_ok(6, 200),
    ))
}

#[test]
fn namespaces_grant_and_refuse_system_names() {
    let (sys, platform) = system(2, Config::default());
    sys.start_native("sysinfo", 1, Box::new(wasmos_sched::SysInfo)).unwrap();
    let id = sys.spawn(&parent(), "parent", 0).unwrap();
    // 0: every check passed; 10x: the tcp probe failed check x (11x: its
    // grandchild failed check x); 20x: the empty-namespace probe did.
    assert_eq!(run(&sys, &platform, &[id], 30), [exited(0)]);
}

#[test]
fn the_platform_can_narrow_what_it_starts() {
    // `System::spawn_in` (the hosted runtime's `--grant`): a task started
    // with `tcp` only does not get `sysinfo`.
    let (sys, platform) = system(1, Config::default());
    sys.start_native("sysinfo", 0, Box::new(wasmos_sched::SysInfo)).unwrap();
    let probe = wasm(&format!(
        r#"{NAMES}
      (func (export "_start")
        (if (i32.ne (call $lookup (i32.const 16) (i32.const 7)) (i32.const -2)) (then (call $exit (i32.const 1))))
        (call $exit (i32.const 0)))"#
    ));
    let narrow = sys.spawn_in(&probe, &["narrow"], 0, Namespace::parse("tcp").unwrap()).unwrap();
    let wide = sys.spawn_in(&probe, &["wide"], 0, Namespace::ALL).unwrap();
    assert_eq!(run(&sys, &platform, &[narrow, wide], 20), [exited(0), exited(1)]);
}
