//! The `tcp` service (std backend) with real Wasm tasks on a real
//! scheduler: a socket belongs to the task that made it, malformed and
//! conflicting requests get their errors, and a dead task's sockets are
//! closed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmos_ipc::abi::ExitReason;
use wasmos_ipc::net::NetError;
use wasmos_net::TcpService;
use wasmos_net::host::HostNet;
use wasmos_sched::threads::{Cores, Wakers};
use wasmos_sched::{Config, Platform, System, TaskExit};

struct Host(Arc<Wakers>);

impl Platform for Host {
    fn now_ns(&self) -> u64 {
        self.0.now_ns()
    }
    fn wake_core(&self, core: usize) {
        self.0.wake(core)
    }
    fn console_write(&self, _: usize, task: &str, text: &[u8]) {
        eprint!("[{task}] {}", String::from_utf8_lossy(text));
    }
    fn boot_file(&self, _: &str) -> Option<&[u8]> {
        None
    }
    fn fill_random(&self, buf: &mut [u8]) {
        buf.fill(4);
    }
}

/// `$req h op socket arg` sends one 12-byte request and returns the
/// reply's result word.
const REQ: &str = r#"
  (func $req (param $h i32) (param $op i32) (param $sock i32) (param $arg i32) (result i32)
    (i32.store (i32.const 2048) (local.get $op))
    (i32.store (i32.const 2052) (local.get $sock))
    (i32.store (i32.const 2056) (local.get $arg))
    (drop (call $call (local.get $h) (i32.const 2048) (i32.const 12) (i32.const 3072) (i32.const 64)))
    (i32.load (i32.const 3072)))"#;

fn exited(code: i32) -> Option<TaskExit> {
    Some(TaskExit { code, reason: ExitReason::Exited })
}

#[test]
fn sockets_belong_to_their_task_and_die_with_it() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let wakers = Arc::new(Wakers::new(2));
    let sys = Arc::new(System::new(2, Config::default(), Arc::new(Host(wakers.clone()))));
    sys.start_native("tcp", 1, Box::new(TcpService::new(HostNet::new([127, 0, 0, 1].into())))).unwrap();
    let (would_block, invalid, bad, in_use) = (
        NetError::WouldBlock.code(),
        NetError::InvalidSocket.code(),
        NetError::BadRequest.code(),
        NetError::AddressInUse.code(),
    );
    // Owner: listens (socket 1), lets the other task try it, then accepts
    // the test's probe connection, and checks an empty accept, a malformed
    // request, a second listener on its port and an unknown op.
    let owner = wasmos_tests::programs::module(&format!(
        r#"(data (i32.const 0) "tcp") (data (i32.const 16) "owner") {REQ}
          (func (export "_start") (local $h i32) (local $l i32)
            (local.set $h (call $lookup_wait (i32.const 0) (i32.const 3)))
            (local.set $l (call $req (local.get $h) (i32.const 1) (i32.const 0) (i32.const {port})))
            (if (i32.ne (local.get $l) (i32.const 1)) (then (call $exit (i32.const 10))))
            (drop (call $register (i32.const 16) (i32.const 5) (i32.const 0)))
            (drop (call $sleep (i64.const 300000000)))
            ;; the test's probe connection waits in the backlog, then nothing
            (if (i32.lt_s (call $req (local.get $h) (i32.const 2) (local.get $l) (i32.const 0)) (i32.const 2)) (then (call $exit (i32.const 11))))
            (if (i32.ne (call $req (local.get $h) (i32.const 2) (local.get $l) (i32.const 0)) (i32.const {would_block})) (then (call $exit (i32.const 15))))
            (drop (call $call (local.get $h) (i32.const 2048) (i32.const 3) (i32.const 3072) (i32.const 64)))
            (if (i32.ne (i32.load (i32.const 3072)) (i32.const {bad})) (then (call $exit (i32.const 12))))
            (if (i32.ne (call $req (local.get $h) (i32.const 1) (i32.const 0) (i32.const {port})) (i32.const {in_use})) (then (call $exit (i32.const 13))))
            (if (i32.ne (call $req (local.get $h) (i32.const 99) (i32.const 0) (i32.const 0)) (i32.const {bad})) (then (call $exit (i32.const 14))))
            (call $exit (i32.const 0)))"#
    ));
    // Intruder: every use of the owner's socket is INVALID_SOCKET.
    let intruder = wasmos_tests::programs::module(&format!(
        r#"(data (i32.const 0) "tcp") (data (i32.const 16) "owner") {REQ}
          (func (export "_start") (local $h i32)
            (local.set $h (call $lookup_wait (i32.const 0) (i32.const 3)))
            (drop (call $lookup_wait (i32.const 16) (i32.const 5)))
            (if (i32.ne (call $req (local.get $h) (i32.const 2) (i32.const 1) (i32.const 0)) (i32.const {invalid})) (then (call $exit (i32.const 20))))
            (if (i32.ne (call $req (local.get $h) (i32.const 3) (i32.const 1) (i32.const 64)) (i32.const {invalid})) (then (call $exit (i32.const 21))))
            (if (i32.ne (call $req (local.get $h) (i32.const 5) (i32.const 1) (i32.const 0)) (i32.const {invalid})) (then (call $exit (i32.const 22))))
            (call $exit (i32.const 0)))"#
    ));
    let a = sys.spawn(&owner, "owner", 0).unwrap();
    let b = sys.spawn(&intruder, "intruder", 0).unwrap();
    let mut cores = Cores::start_all(&sys, &wakers);
    // While the owner lives, its listener takes connections.
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the owner's listener never came up");
        cores.wait(&[a, b], 10_000_000);
    }
    assert_eq!(cores.wait(&[a, b], 20_000_000_000), [exited(0), exited(0)]);
    // Once it is dead, the service closes its listener (within its 100 ms
    // sweep): connections are refused.
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
        assert!(Instant::now() < deadline, "a dead task's listener stayed open");
        cores.wait(&[], 50_000_000);
    }
}
