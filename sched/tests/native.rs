//! Native services: a Rust endpoint that Wasm tasks reach through the
//! ordinary IPC ABI (`service_lookup`, `ipc_call`, `ipc_send`), on the
//! caller's core and on another one, answering at once or later.

mod common;

use common::{program, run, system, wasm};
use wasmos_ipc::abi::Status;
use wasmos_sched::{Config, NativeCtx, NativeService, ReplyTo, Request};

/// Answers every call with the request's first word plus one, from `poll`
/// rather than `receive` (a held call); ignores one-way messages (the
/// echo client's "stop").
struct DelayedEcho {
    held: Vec<(ReplyTo, u32)>,
}

impl NativeService for DelayedEcho {
    fn receive(&mut self, _ctx: &mut NativeCtx<'_>, request: Request) {
        let word = u32::from_le_bytes(request.payload.as_slice()[..4].try_into().unwrap());
        if let Some(reply) = request.reply {
            self.held.push((reply, word));
        }
    }

    fn poll(&mut self, ctx: &mut NativeCtx<'_>) -> Option<u64> {
        for (reply, word) in std::mem::take(&mut self.held) {
            assert!(ctx.is_alive(reply.caller()), "the caller waits for this reply");
            ctx.reply(reply, Ok(&(word + 1).to_le_bytes()));
        }
        None
    }
}

fn delayed_echo() -> Box<DelayedEcho> {
    Box::new(DelayedEcho { held: Vec::new() })
}

/// The echo client (1000 calls, each checked, then a one-way "stop") gets
/// every answer from a native service, on its own core and on another.
#[test]
fn wasm_client_calls_native_service_on_same_and_other_core() {
    for service_core in [0, 1] {
        let (sys, platform) = system(2, Config::default());
        sys.start_native("echo", service_core, delayed_echo()).unwrap();
        let client = sys.spawn(&program("echo_client"), "client", 0).unwrap();
        let exits = run(&sys, &platform, &[client], 20);
        assert_eq!(exits[0].map(|e| e.code), Some(0), "service on core {service_core}: {exits:?}");
    }
}

/// One-way messages reach the service in order before a later call from
/// the same sender: the reply (the count so far) is 3.
#[test]
fn messages_then_call_arrive_in_order() {
    struct Count(u32);
    impl NativeService for Count {
        fn receive(&mut self, ctx: &mut NativeCtx<'_>, request: Request) {
            match request.reply {
                None => self.0 += 1,
                Some(reply) => ctx.reply(reply, Ok(&self.0.to_le_bytes())),
            }
        }
        fn poll(&mut self, _ctx: &mut NativeCtx<'_>) -> Option<u64> {
            None
        }
    }
    for core in [0, 1] {
        let (sys, platform) = system(2, Config::default());
        sys.start_native("count", core, Box::new(Count(0))).unwrap();
        let client = wasm(
            r#"(data (i32.const 0) "count")
              (func (export "_start") (local $h i32)
                (local.set $h (call $lookup_wait (i32.const 0) (i32.const 5)))
                (drop (call $send (local.get $h) (i32.const 0) (i32.const 1)))
                (drop (call $send (local.get $h) (i32.const 0) (i32.const 1)))
                (drop (call $send (local.get $h) (i32.const 0) (i32.const 1)))
                (drop (call $call (local.get $h) (i32.const 0) (i32.const 1) (i32.const 3072) (i32.const 64)))
                (call $exit (i32.load (i32.const 3072))))"#,
        );
        let client = sys.spawn(&client, "client", 0).unwrap();
        assert_eq!(run(&sys, &platform, &[client], 10)[0].map(|e| e.code), Some(3), "service on core {core}");
    }
}

/// A held call is answered on a later poll: the poll happens with no other
/// work on the core (the service asked for it by having work queued).
#[test]
fn a_held_call_is_answered_later() {
    struct Later {
        held: Option<(ReplyTo, u64)>,
    }
    impl NativeService for Later {
        fn receive(&mut self, ctx: &mut NativeCtx<'_>, request: Request) {
            self.held = Some((request.reply.expect("a call"), ctx.now_ns() + 30_000_000));
        }
        fn poll(&mut self, ctx: &mut NativeCtx<'_>) -> Option<u64> {
            match self.held.take() {
                Some((reply, at)) if ctx.now_ns() >= at => {
                    ctx.reply(reply, Ok(b"late"));
                    None
                }
                Some((reply, at)) => {
                    self.held = Some((reply, at));
                    Some(at)
                }
                None => None,
            }
        }
    }
    let (sys, platform) = system(1, Config::default());
    sys.start_native("later", 0, Box::new(Later { held: None })).unwrap();
    let client = wasm(
        r#"(data (i32.const 0) "later")
          (func (export "_start") (local $h i32) (local $t i64) (local $r i32)
            (local.set $h (call $lookup_wait (i32.const 0) (i32.const 5)))
            (local.set $t (call $now))
            (local.set $r (call $call (local.get $h) (i32.const 0) (i32.const 1) (i32.const 3072) (i32.const 64)))
            (if (i32.ne (local.get $r) (i32.const 4)) (then (call $exit (i32.const 1))))
            (if (i32.ne (i32.load (i32.const 3072)) (i32.const 0x6574616c)) (then (call $exit (i32.const 2))))
            ;; the answer came after the service's 30 ms, not before
            (if (i64.lt_u (i64.sub (call $now) (local.get $t)) (i64.const 30000000)) (then (call $exit (i32.const 3))))
            (call $exit (i32.const 0)))"#,
    );
    let client = sys.spawn(&client, "client", 0).unwrap();
    assert_eq!(run(&sys, &platform, &[client], 10)[0].map(|e| e.code), Some(0));
}

/// Errors reach the caller as the status of its `ipc_call`; a name can be
/// taken once; a service on a core that does not exist is refused.
#[test]
fn errors_and_names() {
    struct Refuse;
    impl NativeService for Refuse {
        fn receive(&mut self, ctx: &mut NativeCtx<'_>, request: Request) {
            if let Some(reply) = request.reply {
                ctx.reply(reply, Err(Status::InvalidArgument));
            }
        }
        fn poll(&mut self, _ctx: &mut NativeCtx<'_>) -> Option<u64> {
            None
        }
    }
    let (sys, platform) = system(2, Config::default());
    sys.start_native("refuse", 1, Box::new(Refuse)).unwrap();
    assert_eq!(sys.start_native("refuse", 0, Box::new(Refuse)), Err(Status::AlreadyExists));
    assert_eq!(sys.start_native("x", 2, Box::new(Refuse)), Err(Status::InvalidArgument));
    let client = wasm(
        r#"(data (i32.const 0) "refuse")
          (func (export "_start") (local $h i32)
            (local.set $h (call $lookup_wait (i32.const 0) (i32.const 6)))
            (call $exit (call $call (local.get $h) (i32.const 0) (i32.const 1) (i32.const 3072) (i32.const 64))))"#,
    );
    let client = sys.spawn(&client, "client", 0).unwrap();
    assert_eq!(run(&sys, &platform, &[client], 10)[0].map(|e| e.code), Some(Status::InvalidArgument.code()));
}

/// A native service can send one-way messages too (the network driver
/// sends frames this way): on a call it sends the caller a message, then
/// replies; the caller receives the message after its call returns.
#[test]
fn a_native_service_sends_messages() {
    struct Notifier;
    impl NativeService for Notifier {
        fn receive(&mut self, ctx: &mut NativeCtx<'_>, request: Request) {
            let reply = request.reply.expect("a call");
            ctx.send(reply.caller(), b"note").unwrap();
            assert_eq!(ctx.send(wasmos_ipc::ids::TaskId(u64::MAX), b"x"), Err(Status::DeadTarget));
            ctx.reply(reply, Ok(b"done"));
        }
        fn poll(&mut self, _ctx: &mut NativeCtx<'_>) -> Option<u64> {
            None
        }
    }
    for core in [0, 1] {
        let (sys, platform) = system(2, Config::default());
        sys.start_native("notifier", core, Box::new(Notifier)).unwrap();
        let client = wasm(
            r#"(data (i32.const 0) "notifier")
              (func (export "_start") (local $h i32)
                (local.set $h (call $lookup_wait (i32.const 0) (i32.const 8)))
                (if (i32.ne (call $call (local.get $h) (i32.const 0) (i32.const 1) (i32.const 3072) (i32.const 64)) (i32.const 4)) (then (call $exit (i32.const 1))))
                (if (i32.ne (call $recv (i32.const -1) (i32.const 1024) (i32.const 64) (i32.const 512) (i64.const 1000000000)) (i32.const 4)) (then (call $exit (i32.const 2))))
                ;; "note" little-endian, and a Message (kind 1)
                (if (i32.ne (i32.load (i32.const 1024)) (i32.const 0x65746f6e)) (then (call $exit (i32.const 3))))
                (if (i32.ne (i32.load (i32.const 512)) (i32.const 1)) (then (call $exit (i32.const 4))))
                (call $exit (i32.const 0)))"#,
        );
        let client = sys.spawn(&client, "client", 0).unwrap();
        assert_eq!(run(&sys, &platform, &[client], 10)[0].map(|e| e.code), Some(0), "service on core {core}");
    }
}

/// A driver whose device interrupt rings its doorbell: polled because the
/// doorbell rang, never by a timer (it asks for none), and the ring is
/// cleared before the poll, so an idle core has nothing left to do after.
#[test]
fn a_doorbell_makes_its_service_due() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    struct Driver {
        bell: &'static AtomicBool,
        polls: &'static AtomicUsize,
    }
    impl NativeService for Driver {
        fn receive(&mut self, _ctx: &mut NativeCtx<'_>, _request: Request) {}
        fn poll(&mut self, _ctx: &mut NativeCtx<'_>) -> Option<u64> {
            self.polls.fetch_add(1, Ordering::SeqCst);
            None
        }
        fn doorbell(&self) -> Option<&'static AtomicBool> {
            Some(self.bell)
        }
    }
    let bell: &'static AtomicBool = Box::leak(Box::new(AtomicBool::new(false)));
    let polls: &'static AtomicUsize = Box::leak(Box::new(AtomicUsize::new(0)));
    let (sys, _platform) = system(1, Config::default());
    sys.start_native_unnamed(0, Box::new(Driver { bell, polls })).unwrap();
    let mut sched = wasmos_sched::CoreScheduler::new(sys.clone(), 0);
    for _ in 0..3 {
        sched.poll();
    }
    // Polled once at start (to bring its device up), then not again.
    assert_eq!(polls.load(Ordering::SeqCst), 1);
    assert!(!sched.has_work());
    bell.store(true, Ordering::SeqCst);
    assert!(sched.has_work(), "a rung doorbell is work: the core must not halt");
    sched.poll();
    assert_eq!(polls.load(Ordering::SeqCst), 2);
    assert!(!bell.load(Ordering::SeqCst), "cleared when its service ran");
    assert!(!sched.has_work());
    sched.poll();
    assert_eq!(polls.load(Ordering::SeqCst), 2, "no ring, no poll");
}
