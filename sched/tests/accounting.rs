//! Floods a hostile task can drive, and the bounds that stop them: every
//! hostile task gets a status code, other tasks keep being served, and the
//! kernel's memory (names, queued bytes, linear memory) returns to its
//! baseline. Plus the spawn/send race on one core, and the argument checks
//! of issue #17's smaller items.

mod common;

use common::{data_string, program, run, system, wasm};
use wasmos_ipc::abi::{ExitReason, MAX_NAMES_PER_TASK, Status};
use wasmos_sched::{Config, QUEUED_ITEM_OVERHEAD, SYSTEM_NAMES, TaskExit};

fn exited(code: i32) -> Option<TaskExit> {
    Some(TaskExit { code, reason: ExitReason::Exited })
}

/// Registers fresh 1 KiB names until refused, holds them for 200 ms (so
/// that floods overlap), and exits with `count * 16 - status`. Names are
/// ASCII (the clock's bits, masked), distinct between tasks.
const NAMER: &str = r#"
  (func (export "_start") (local $n i32) (local $r i32)
    (i64.store (i32.const 8) (i64.and (call $now) (i64.const 0x7f7f7f7f7f7f7f7f)))
    (loop $l
      (i32.store (i32.const 0) (local.get $n))
      (local.set $r (call $register (i32.const 0) (i32.const 1024) (i32.const 0)))
      (if (i32.eqz (local.get $r)) (then (local.set $n (i32.add (local.get $n) (i32.const 1))) (br $l))))
    (drop (call $sleep (i64.const 200000000)))
    (call $exit (i32.sub (i32.mul (local.get $n) (i32.const 16)) (local.get $r))))"#;

fn namer_code(count: usize, status: Status) -> i32 {
    count as i32 * 16 - status.code()
}

/// Spawns `n` copies of `child` on its own core and exits with the sum of
/// `child exit code << (9 * k)` (k = spawn order).
fn spawner_of(child: &[u8], n: usize) -> Vec<u8> {
    wasm(&format!(
        r#"(data (i32.const 8192) "{bytes}")
          (data (i32.const 0) "child")
          (func (export "_start") (local $k i32) (local $acc i32) (local $h i32)
            (loop $spawn
              (local.set $h (call $spawn (i32.const 8192) (i32.const {len}) (i32.const 0) (i32.const 5) (call $core_id) (i32.const 0) (i32.const 0)))
              (if (i32.lt_s (local.get $h) (i32.const 0)) (then (call $exit (i32.sub (i32.const -1000) (local.get $h)))))
              (i32.store (i32.add (i32.const 4096) (i32.mul (local.get $k) (i32.const 4))) (local.get $h))
              (local.set $k (i32.add (local.get $k) (i32.const 1)))
              (br_if $spawn (i32.lt_u (local.get $k) (i32.const {n}))))
            (local.set $k (i32.const 0))
            (loop $exits
              (drop (call $recv (i32.const -1) (i32.const 1024) (i32.const 64) (i32.const 512) (i64.const -1)))
              (if (i32.eq (i32.load (i32.const 512)) (i32.const 4))
                (then
                  (local.set $h (i32.const 0))
                  (block $found (loop $find
                    (br_if $found (i32.eq (i32.load (i32.add (i32.const 4096) (i32.mul (local.get $h) (i32.const 4)))) (i32.load (i32.const 520))))
                    (local.set $h (i32.add (local.get $h) (i32.const 1)))
                    (br $find)))
                  (local.set $acc (i32.add (local.get $acc)
                    (i32.shl (i32.load (i32.const 528)) (i32.mul (local.get $h) (i32.const 9)))))
                  (local.set $k (i32.add (local.get $k) (i32.const 1)))))
              (br_if $exits (i32.lt_u (local.get $k) (i32.const {n}))))
            (call $exit (local.get $acc)))"#,
        bytes = data_string(child),
        len = child.len(),
    ))
}

/// One task registering names in a loop gets `QUOTA_EXCEEDED` after
/// `MAX_NAMES_PER_TASK`; ordinary tasks together get `NO_MEMORY` once the
/// name service is full but for the system's reserve, which a system
/// server can still use meanwhile; an echo pair is served throughout; and
/// every name is gone with its task.
#[test]
fn a_name_flood_gets_a_status_and_the_names_come_back() {
    let max_names = SYSTEM_NAMES + 2 * MAX_NAMES_PER_TASK + 4;
    let (sys, platform) = system(2, Config { max_names, ..Config::default() });
    // A system task on its own: the per-task limit.
    let alone = sys.spawn(&wasm(NAMER), "namer", 0).unwrap();
    assert_eq!(run(&sys, &platform, &[alone], 10), [exited(namer_code(MAX_NAMES_PER_TASK, Status::QuotaExceeded))]);
    assert_eq!(sys.service_count(), 0, "names of an ended task stayed registered");

    // Three ordinary tasks (children) at once: 16 + 16 + 4 fill what is
    // not reserved.
    let flood = sys.spawn(&spawner_of(&wasm(NAMER), 3), "flood", 0).unwrap();
    let late = sys
        .spawn(
            &wasm(
                r#"(data (i32.const 0) "late")
              (func (export "_start")
                (drop (call $sleep (i64.const 100000000)))
                (call $exit (call $register (i32.const 0) (i32.const 4) (i32.const 0))))"#,
            ),
            "late",
            1,
        )
        .unwrap();
    let server = sys.spawn(&program("echo_server"), "echo", 1).unwrap();
    let client = sys.spawn(&program("echo_client"), "client", 1).unwrap();
    let full = namer_code(MAX_NAMES_PER_TASK, Status::QuotaExceeded);
    let exits = run(&sys, &platform, &[flood, late, client, server], 20);
    assert_eq!(exits[1..], [exited(0), exited(0), exited(0)], "late registrar, client, server");
    // The third namer gets what ordinary tasks may still fill: 4, or 3 if
    // the echo server (a system task, on the other core) registered "echo"
    // before it.
    let code = exits[0].expect("flood ended").code;
    let lasts = [4, 3].map(|n| namer_code(n, Status::NoMemory));
    assert!(lasts.iter().any(|last| code == full | full << 9 | last << 18), "flood ended with {code:#x}");
    assert_eq!(sys.service_count(), 0, "names not returned");
}

#[test]
fn empty_and_overlong_names_are_refused() {
    let (sys, platform) = system(1, Config::default());
    let body = format!(
        r#"(func (export "_start")
            (if (i32.ne (call $register (i32.const 0) (i32.const 0) (i32.const 0)) (i32.const {inval})) (then (call $exit (i32.const 1))))
            (if (i32.ne (call $register (i32.const 0) (i32.const 1025) (i32.const 0)) (i32.const {inval})) (then (call $exit (i32.const 2))))
            (call $exit (i32.const 0)))"#,
        inval = Status::InvalidArgument.code()
    );
    let id = sys.spawn(&wasm(&body), "t", 0).unwrap();
    assert_eq!(run(&sys, &platform, &[id], 10), [exited(0)]);
}

/// Spawns a child that does not receive (it sleeps 300 ms) on its own
/// core, floods it with 4 KiB messages until refused, waits for its exit
/// and exits with `sent * 16 - status`.
fn flooder() -> Vec<u8> {
    let child = wasm(r#"(func (export "_start") (drop (call $sleep (i64.const 300000000))))"#);
    wasm(&format!(
        r#"(data (i32.const 8192) "{bytes}")
          (data (i32.const 0) "sink")
          (func (export "_start") (local $h i32) (local $n i32) (local $r i32)
            (drop (memory.grow (i32.const 1)))
            (local.set $h (call $spawn (i32.const 8192) (i32.const {len}) (i32.const 0) (i32.const 4) (call $core_id) (i32.const 0) (i32.const 0)))
            (loop $l
              (local.set $r (call $send (local.get $h) (i32.const 65536) (i32.const 4096)))
              (if (i32.eqz (local.get $r)) (then (local.set $n (i32.add (local.get $n) (i32.const 1))) (br $l))))
            (drop (call $recv (i32.const -1) (i32.const 1024) (i32.const 64) (i32.const 512) (i64.const -1)))
            (call $exit (i32.sub (i32.mul (local.get $n) (i32.const 16)) (local.get $r))))"#,
        bytes = data_string(&child),
        len = child.len(),
    ))
}

/// Queued message bytes are charged to their sender: one flooder stops
/// with `WOULD_BLOCK` at its own budget, before the inbox bound; many
/// flooders together stop with `NO_MEMORY` at the system's budget; calls
/// are served meanwhile; every byte comes back when the sinks end.
#[test]
fn a_message_flood_is_charged_to_its_sender() {
    let per_task = 256 << 10;
    let total = 1 << 20;
    let config = Config { max_queued_bytes: per_task, total_queued_bytes: total, ..Config::default() };
    let (sys, platform) = system(2, config);
    let item = QUEUED_ITEM_OVERHEAD + 4096;
    let one = sys.spawn(&flooder(), "flood", 0).unwrap();
    let own = (per_task / item) as i32;
    assert_eq!(run(&sys, &platform, &[one], 10), [exited(own * 16 - Status::WouldBlock.code())]);
    assert_eq!(sys.queued_bytes(), 0);

    let flooders: Vec<_> = (0..6).map(|i| sys.spawn(&flooder(), "flood", i % 2).unwrap()).collect();
    let server = sys.spawn(&program("echo_server"), "echo", 1).unwrap();
    let client = sys.spawn(&program("echo_client"), "client", 0).unwrap();
    let mut watch = flooders.clone();
    watch.extend([client, server]);
    let exits = run(&sys, &platform, &watch, 20);
    assert_eq!(exits[6..], [exited(0), exited(0)], "the echo pair was not served");
    // Each exit code is `sent * 16 - status`.
    let ends: Vec<(usize, i32)> =
        exits[..6].iter().map(|e| e.expect("flooder ended").code).map(|c| ((c / 16) as usize, -(c % 16))).collect();
    let (wb, nm) = (Status::WouldBlock.code(), Status::NoMemory.code());
    assert!(ends.iter().all(|&(n, s)| (s == wb && n == own as usize) || (s == nm && n < own as usize)), "{ends:?}");
    assert!(ends.iter().any(|&(_, s)| s == nm), "no flooder met NO_MEMORY: {ends:?}");
    let sent: usize = ends.iter().map(|&(n, _)| n).sum();
    assert!(sent * item <= total, "more queued than the budget: {ends:?}");
    assert_eq!(sys.queued_bytes(), 0, "queued bytes not returned");
    assert_eq!(sys.memory_in_use(), 0);
}

/// A task spawns a child and at once sends it every kind of item:
/// `ipc_send`, `ipc_send_cap`, `ipc_grant`, `notify`, then `ipc_call`. The
/// child counts what arrives (kind mask | count << 8), replying to the
/// call; nothing is lost, on the parent's own core or another.
#[test]
fn sends_right_after_a_spawn_all_arrive() {
    let child = wasm(
        r#"(func (export "_start") (local $n i32) (local $mask i32) (local $k i32)
            (loop $l
              (drop (call $recv (i32.const -1) (i32.const 1024) (i32.const 64) (i32.const 512) (i64.const 2000000000)))
              (local.set $k (i32.load (i32.const 512)))
              (if (i32.eqz (local.get $k)) (then (call $exit (i32.or (local.get $mask) (i32.shl (local.get $n) (i32.const 8))))))
              (i32.store (i32.const 512) (i32.const 0))
              (local.set $mask (i32.or (local.get $mask) (i32.shl (i32.const 1) (local.get $k))))
              (local.set $n (i32.add (local.get $n) (i32.const 1)))
              (if (i32.eq (local.get $k) (i32.const 2))
                (then (drop (call $reply (i32.load (i32.const 524)) (i32.const 1024) (i32.const 2)))))
              (br_if $l (i32.lt_u (local.get $n) (i32.const 6))))
            (call $exit (i32.or (local.get $mask) (i32.shl (local.get $n) (i32.const 8)))))"#,
    );
    for core in ["(call $core_id)", "(i32.sub (i32.const 1) (call $core_id))"] {
        let parent = wat::parse_str(format!(
            r#"(module
              (import "wasmos" "ipc_send_cap" (func $send_cap (param i32 i32 i32 i32) (result i32)))
              {prelude}
              (data (i32.const 8192) "{bytes}")
              (data (i32.const 0) "child")
              (data (i32.const 2048) "hi")
              (func (export "_start") (local $h i32) (local $r i32)
                (local.set $h (call $spawn (i32.const 8192) (i32.const {len}) (i32.const 0) (i32.const 5) {core} (i32.const 0) (i32.const 0)))
                (if (i32.lt_s (local.get $h) (i32.const 0)) (then (call $exit (i32.const 100))))
                (if (call $send (local.get $h) (i32.const 2048) (i32.const 2)) (then (call $exit (i32.const 101))))
                (if (call $send_cap (local.get $h) (i32.const 2048) (i32.const 2) (local.get $h)) (then (call $exit (i32.const 102))))
                (if (call $grant (local.get $h) (local.get $h)) (then (call $exit (i32.const 103))))
                (if (call $notify (local.get $h) (i64.const 1)) (then (call $exit (i32.const 104))))
                (local.set $r (call $call (local.get $h) (i32.const 2048) (i32.const 2) (i32.const 3072) (i32.const 64)))
                (if (i32.ne (local.get $r) (i32.const 2)) (then (call $exit (i32.sub (i32.const 200) (local.get $r)))))
                (if (call $send (local.get $h) (i32.const 2048) (i32.const 2)) (then (call $exit (i32.const 105))))
                (drop (call $recv (i32.const -1) (i32.const 1024) (i32.const 64) (i32.const 512) (i64.const -1)))
                (call $exit (i32.load (i32.const 528)))))"#,
            prelude = wasmos_tests::programs::PRELUDE,
            bytes = data_string(&child),
            len = child.len(),
        ))
        .unwrap();
        let (sys, platform) = system(2, Config::default());
        let id = sys.spawn(&parent, "parent", 0).unwrap();
        // Message (1, three times), Call (2), Notification (3), Grant (5).
        let mask = 1 << 1 | 1 << 2 | 1 << 3 | 1 << 5;
        assert_eq!(run(&sys, &platform, &[id], 10), [exited(mask | 6 << 8)], "child on core {core}");
    }
}

/// `core_hint` is `-1` or a core; other negative values are refused, from
/// the kernel's API and from `task_spawn`.
#[test]
fn negative_core_hints_other_than_minus_one_are_invalid() {
    let (sys, platform) = system(1, Config::default());
    let quick = wasm(r#"(func (export "_start"))"#);
    assert_eq!(sys.spawn(&quick, "t", -2), Err(Status::InvalidArgument));
    assert_eq!(sys.spawn(&quick, "t", i32::MIN), Err(Status::InvalidArgument));
    let parent = wasm(&format!(
        r#"(data (i32.const 8192) "{bytes}")
          (data (i32.const 0) "child")
          (func (export "_start")
            (call $exit (call $spawn (i32.const 8192) (i32.const {len}) (i32.const 0) (i32.const 5) (i32.const -2) (i32.const 0) (i32.const 0))))"#,
        bytes = data_string(&quick),
        len = quick.len(),
    ));
    let id = sys.spawn(&parent, "p", 0).unwrap();
    assert_eq!(run(&sys, &platform, &[id], 10), [exited(Status::InvalidArgument.code())]);
}

/// A `wasmos` import with the wrong signature is `INVALID_WASM` at spawn,
/// not a trap at instantiation.
#[test]
fn a_wrong_import_signature_is_invalid_wasm() {
    let (sys, _) = system(1, Config::default());
    for import in [
        r#"(import "wasmos" "ipc_send" (func (param i32 i32) (result i32)))"#,
        r#"(import "wasmos" "time_now_ns" (func (result i32)))"#,
        r#"(import "wasmos" "task_exit" (func (param i32) (result i32)))"#,
    ] {
        let bytes =
            wat::parse_str(format!(r#"(module {import} (memory (export "memory") 1) (func (export "_start")))"#))
                .unwrap();
        assert_eq!(sys.spawn(&bytes, "t", 0), Err(Status::InvalidWasm), "{import}");
    }
    let right = wat::parse_str(
        r#"(module (import "wasmos" "ipc_send" (func (param i32 i32 i32) (result i32)))
             (memory (export "memory") 1) (func (export "_start")))"#,
    )
    .unwrap();
    assert!(sys.spawn(&right, "t", 0).is_ok());
}

/// A task name with a control character (a newline could forge console
/// lines) or invalid UTF-8 is refused; other argv parts are the program's.
#[test]
fn task_names_with_control_characters_are_refused() {
    let (sys, platform) = system(1, Config::default());
    let quick = wasm(r#"(func (export "_start"))"#);
    let parent = wasm(&format!(
        r#"(data (i32.const 8192) "{bytes}")
          (data (i32.const 0) "a\0ab")
          (data (i32.const 16) "\ff")
          (data (i32.const 32) "ok\00line\0a2")
          (func (export "_start")
            (if (i32.ne (call $spawn (i32.const 8192) (i32.const {len}) (i32.const 0) (i32.const 3) (i32.const -1) (i32.const 0) (i32.const 0)) (i32.const {inval}))
              (then (call $exit (i32.const 1))))
            (if (i32.ne (call $spawn (i32.const 8192) (i32.const {len}) (i32.const 16) (i32.const 1) (i32.const -1) (i32.const 0) (i32.const 0)) (i32.const {inval}))
              (then (call $exit (i32.const 2))))
            (if (i32.lt_s (call $spawn (i32.const 8192) (i32.const {len}) (i32.const 32) (i32.const 9) (i32.const -1) (i32.const 0) (i32.const 0)) (i32.const 0))
              (then (call $exit (i32.const 3))))
            (call $exit (i32.const 0)))"#,
        bytes = data_string(&quick),
        len = quick.len(),
        inval = Status::InvalidArgument.code(),
    ));
    let id = sys.spawn(&parent, "p", 0).unwrap();
    assert_eq!(run(&sys, &platform, &[id], 10), [exited(0)]);
}

#[test]
fn recv_with_a_negative_timeout_other_than_forever_is_invalid() {
    let (sys, platform) = system(1, Config::default());
    let body = r#"(func (export "_start")
            (call $exit (call $recv (i32.const -1) (i32.const 1024) (i32.const 64) (i32.const 512) (i64.const -2))))"#;
    let id = sys.spawn(&wasm(body), "t", 0).unwrap();
    assert_eq!(run(&sys, &platform, &[id], 10), [exited(Status::InvalidArgument.code())]);
}

/// Ordinary tasks (spawned by tasks) together stop short of the memory
/// budget's system reserve; a task the kernel started may use it.
#[test]
fn ordinary_tasks_leave_the_memory_reserve_to_the_system() {
    let mib = 1 << 20;
    let config = Config {
        max_memory_bytes: 8 * mib,
        total_memory_bytes: 10 * mib,
        system_memory_reserve: 4 * mib,
        ..Config::default()
    };
    let (sys, platform) = system(1, config);
    // The hog grows 1 MiB at a time from 1 page: 8 MiB is 113 pages + 1.
    let hog = program("memory_hog");
    let system_hog = sys.spawn(&hog, "hog", 0).unwrap();
    assert_eq!(run(&sys, &platform, &[system_hog], 10), [exited(113)]);
    // Under a parent (1 page of its own): 6 MiB for both of them.
    let parent = sys.spawn(&spawner_of(&hog, 1), "parent", 0).unwrap();
    let exits = run(&sys, &platform, &[parent], 10);
    assert_eq!(exits, [exited(81)], "an ordinary hog's pages");
    assert_eq!(sys.memory_in_use(), 0);
}

/// Every budget of kernel memory the kernel gives tasks is a share of its
/// heap, so that together they never exceed seven eighths of it.
#[test]
fn budgets_fit_every_kernel_heap() {
    // 16 MiB is the smallest heap the kernel makes (`memory/heap.rs`);
    // 125 MiB is that of a 512 MiB machine.
    for mib in [16usize, 24, 32, 64, 125, 256, 1024, 16 << 10] {
        let heap = mib << 20;
        let c = Config::for_heap(heap);
        let sockets = wasmos_sched::quota::socket_budget_for_heap(heap);
        let total = c.total_memory_bytes + c.total_queued_bytes + sockets + c.compiled_bytes;
        assert!(total <= heap / 8 * 7, "{mib} MiB heap: budgets of {total} bytes leave the kernel too little");
        assert!(c.system_memory_reserve < c.total_memory_bytes && c.system_queue_reserve < c.total_queued_bytes);
        assert!(c.max_memory_bytes + c.system_memory_reserve <= c.total_memory_bytes, "{mib} MiB");
        assert!(c.max_queued_bytes + c.system_queue_reserve <= c.total_queued_bytes, "{mib} MiB");
        assert!(c.max_memory_bytes >= 1 << 20 && c.max_queued_bytes >= 64 << 10, "{mib} MiB: still usable");
    }
    // A large heap gets the defaults' per-task limits and reserves.
    let big = Config::for_heap(1 << 30);
    let default = Config::default();
    assert_eq!(big.max_memory_bytes, default.max_memory_bytes);
    assert_eq!(big.total_queued_bytes, default.total_queued_bytes);
    assert_eq!(big.system_queue_reserve, default.system_queue_reserve);
    assert_eq!(big.total_memory_bytes, 512 << 20);
}

/// A task's capability table is its memory: with its linear memory at its
/// limit, the first handle it makes finds no room (`NO_MEMORY`); with one
/// page free, it gets the whole table (1024 handles, then
/// `QUOTA_EXCEEDED`). Either way the charge comes back with the task.
#[test]
fn a_handle_table_is_charged_to_its_task() {
    let config = Config { max_memory_bytes: 1 << 20, max_handles: 1024, ..Config::default() };
    let (sys, platform) = system(1, config);
    // Grows to `pages`, then mints handles to itself until refused and
    // exits with `count * 16 - status`.
    let minter = |pages: u32| {
        wasm(&format!(
            r#"(func (export "_start") (local $n i32) (local $r i32)
              (if (i32.lt_s (memory.grow (i32.const {grow})) (i32.const 0)) (then (call $exit (i32.const -1))))
              (loop $l
                (local.set $r (call $mint (i32.const 0) (i32.const 7) (i32.const 3)))
                (if (i32.gt_s (local.get $r) (i32.const 0)) (then (local.set $n (i32.add (local.get $n) (i32.const 1))) (br $l))))
              (call $exit (i32.sub (i32.mul (local.get $n) (i32.const 16)) (local.get $r))))"#,
            grow = pages - 1
        ))
    };
    let full = sys.spawn(&minter(16), "full", 0).unwrap();
    let roomy = sys.spawn(&minter(15), "roomy", 0).unwrap();
    let exits = run(&sys, &platform, &[full, roomy], 10);
    assert_eq!(exits, [exited(-Status::NoMemory.code()), exited(1024 * 16 - Status::QuotaExceeded.code())]);
    assert_eq!(sys.memory_in_use(), 0, "the tables' charge is returned with their tasks");
}

/// Spawns `n` children without waiting for them, each from a binary made
/// distinct by writing the count over the child's `AAAA` (as
/// `compile_churn` does, which waits for each). Exits with `count * 16 -
/// status` of the first refused spawn, or `count * 16` if none was refused.
fn distinct_spawner(child: &[u8], n: u32) -> Vec<u8> {
    let mark = child.windows(4).position(|w| w == b"AAAA").expect("the child carries AAAA");
    wasm(&format!(
        r#"(data (i32.const 8192) "{bytes}")
          (data (i32.const 0) "child")
          (func (export "_start") (local $n i32) (local $h i32)
            (loop $spawn
              (i32.store (i32.const {at}) (local.get $n))
              (local.set $h (call $spawn (i32.const 8192) (i32.const {len}) (i32.const 0) (i32.const 5) (call $core_id) (i32.const 0) (i32.const 0)))
              (if (i32.lt_s (local.get $h) (i32.const 0)) (then (call $exit (i32.sub (i32.mul (local.get $n) (i32.const 16)) (local.get $h)))))
              (local.set $n (i32.add (local.get $n) (i32.const 1)))
              (br_if $spawn (i32.lt_u (local.get $n) (i32.const {n}))))
            (call $exit (i32.mul (local.get $n) (i32.const 16))))"#,
        bytes = data_string(child),
        at = 8192 + mark,
        len = child.len(),
    ))
}

/// Spawns `child` (so that it is an ordinary task, which the compile
/// budget binds) and exits with its exit code.
fn parent_of(child: &[u8]) -> Vec<u8> {
    wasm(&format!(
        r#"(data (i32.const 8192) "{bytes}")
          (data (i32.const 0) "child")
          (func (export "_start")
            (if (i32.lt_s (call $spawn (i32.const 8192) (i32.const {len}) (i32.const 0) (i32.const 5) (call $core_id) (i32.const 0) (i32.const 0)) (i32.const 0))
              (then (call $exit (i32.const -1))))
            (drop (call $recv (i32.const -1) (i32.const 1024) (i32.const 64) (i32.const 512) (i64.const -1)))
            (call $exit (i32.load (i32.const 528))))"#,
        bytes = data_string(child),
        len = child.len(),
    ))
}

/// wasmi never frees code until its engine goes, so code is compiled in
/// generations of engines: a task spawning an endless stream of distinct
/// binaries whose children end (`compile_flood`, the program the kernel's
/// `hostile::distinct_binaries_bounded` runs: 1200 of them) keeps the
/// compiled code within its budget (without generations, they would need
/// many times it); one whose children live on is refused with `NO_MEMORY`.
#[test]
fn compiled_code_is_bounded_and_freed_a_generation_at_a_time() {
    let budget = 96 << 10;
    let config = Config { compiled_bytes: budget, max_children: 64, ..Config::default() };
    let (sys, platform) = system(1, config);
    let cost = wasmos_sched::compiler::cost(program("compile_leaf").len());
    assert!(1200 * cost > 6 * budget, "the children must overflow the budget many times");
    let churn = sys.spawn(&program("compile_flood"), "churn", 0).unwrap();
    assert_eq!(run(&sys, &platform, &[churn], 30), [exited(1200 * 16)]);

    let lives = wasm(
        r#"(data (i32.const 100) "AAAA")
          (func (export "_start") (drop (call $recv (i32.const -1) (i32.const 1024) (i32.const 64) (i32.const 512) (i64.const -1))))"#,
    );
    let hoard = sys.spawn(&parent_of(&distinct_spawner(&lives, 64)), "hoard", 0).unwrap();
    let code = run(&sys, &platform, &[hoard], 30)[0].expect("the hoarder ends").code;
    let (count, status) = (code.div_euclid(16), -code.rem_euclid(16));
    assert_eq!(status, Status::NoMemory.code(), "exit code {code}");
    let per_child = wasmos_sched::compiler::cost(lives.len());
    assert!(count > 0 && (count as usize) * per_child <= budget, "{count} children of {per_child} bytes each");
}

/// A core that instantiated a task and went idle does not keep the engine
/// generation it instantiated from alive once a newer one starts (its
/// linker is dropped when it goes idle): cores 1-3 each start one short
/// task between rounds of compile churn on core 0, all in one run of the
/// cores. Before, each idle core's linker pinned its generation, three old
/// generations beside the current one filled the budget, and the third
/// round's spawns met `NO_MEMORY` (the kernel's 8-core
/// `distinct_binaries_bounded` failed so, now and then).
#[test]
fn idle_cores_do_not_pin_old_generations() {
    let budget = 96 << 10;
    let config = Config { compiled_bytes: budget, max_children: 64, ..Config::default() };
    let (sys, platform) = system(4, config);
    let mut all = common::cores(&sys, &platform, &[0, 1, 2, 3]);
    let short = wasm(r#"(func (export "_start"))"#);
    for core in 1..4 {
        let pin = sys.spawn(&short, "pin", core).unwrap();
        let churn = sys.spawn(&program("compile_flood"), "churn", 0).unwrap();
        assert_eq!(all.wait(&[pin, churn], 30 * 1_000_000_000), [exited(0), exited(1200 * 16)], "round {core}");
    }
    // The idle cores look again within 10 ms of a new generation.
    std::thread::sleep(std::time::Duration::from_millis(100));
    let live = sys.compiled_in_use();
    assert!(live <= budget / 4, "{live} bytes of compiled code alive, more than the current generation");
}
