//! Hostile clients against webapi, each bounded in count and time and
//! aimed at 127.0.0.1 only: a pipelining client that never reads, a
//! slowloris crowd, a burst of simultaneous connects, a request followed
//! at once by FIN, more busy keep-alive clients than connection slots, a
//! crowd of idle connections, webapi killed on purpose (and restarted by
//! its supervisor), one peer past its connection limit, and the HTTP/1.1
//! points webapi claims (RFC 9110/9112).
//! Each hostile check asserts that a fresh ordinary client is answered
//! within a bound while the hostile one runs, and, where memory is the
//! target, that webapi's own figures (`/api/stats`) stay within limits.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::suites::Check;

/// How slow the machine under test is: QEMU under TCG needs more time.
#[derive(Clone, Copy)]
pub struct Pace {
    /// The bound on a fresh client's answer beside a hostile one.
    pub answer_within: Duration,
    /// Connections the slowloris and burst checks open.
    pub crowd: usize,
    /// Of a burst of `crowd` simultaneous connects, how many must get an
    /// HTTP answer (200 or 503).
    pub burst_answered: usize,
    /// webapi runs with `--crash-route` under a supervisor: kill it with
    /// `POST /api/crash` and see it restarted.
    pub crash_route: bool,
}

/// Busy keep-alive clients in the crowd check: more than webapi's 128
/// connection slots.
pub const BUSY_CLIENTS: usize = 160;
/// Idle connections in the idle-crowd check.
pub const IDLE_CONNECTIONS: usize = 300;
/// How soon a fresh client must be answered beside the idle crowd: well
/// under webapi's idle timeout (10 s), which would free the slots anyway.
const IDLE_ANSWER_WITHIN: Duration = Duration::from_secs(4);

/// Runs `f` as check `prefix::name`; a non-empty note is printed.
pub(crate) fn check(prefix: &str, name: &str, f: impl FnOnce() -> Result<String, String>) -> Check {
    let start = Instant::now();
    let result = f().map(|note| {
        if !note.is_empty() {
            println!("    {prefix}::{name}: {note}");
        }
        Some(start.elapsed().as_micros() as u64)
    });
    Check { name: format!("{prefix}::{name}"), result }
}

/// A connection with `timeout` for connecting, reading and writing.
pub(crate) fn connect(addr: SocketAddr, timeout: Duration) -> Result<TcpStream, String> {
    let s = TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    Ok(s)
}

/// Sends `bytes`, reads until the server closes or `timeout`.
fn exchange(addr: SocketAddr, bytes: &[u8], timeout: Duration) -> Result<String, String> {
    let mut s = connect(addr, timeout)?;
    s.write_all(bytes).map_err(|e| format!("write: {e}"))?;
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    Ok(String::from_utf8_lossy(&out).into_owned())
}

fn status_of(reply: &str) -> Option<u16> {
    reply.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

/// A fresh client's `GET /api/stats` (Connection: close), retried while
/// it is refused (503) or not answered, until `within`: the JSON.
fn fresh_stats(addr: SocketAddr, within: Duration) -> Result<(serde_json::Value, Duration), String> {
    let start = Instant::now();
    let mut last = String::new();
    while start.elapsed() < within {
        let left = within.saturating_sub(start.elapsed()).max(Duration::from_millis(100));
        match exchange(addr, b"GET /api/stats HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", left) {
            Ok(reply) if status_of(&reply) == Some(200) => {
                let body = reply.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
                let json = serde_json::from_str(body).map_err(|e| format!("stats not JSON: {e}: {body:.100}"))?;
                return Ok((json, start.elapsed()));
            }
            Ok(reply) => last = format!("{:.60?}", reply),
            Err(e) => last = e,
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Err(format!("a fresh client got no 200 within {within:?} (last: {last})"))
}

/// Reads one response (head and `Content-Length` body) from a keep-alive
/// connection: its status, whether the server closes after it, and the
/// body.
pub(crate) fn read_response(s: &mut TcpStream) -> Result<(u16, bool, Vec<u8>), String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let raw = String::from_utf8_lossy(&got[..end]).into_owned();
            let head = raw.to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|n| n.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if got.len() >= end + 4 + length {
                let status = status_of(&raw).ok_or("not HTTP")?;
                return Ok((status, head.contains("connection: close"), got[end + 4..end + 4 + length].to_vec()));
            }
        }
        let n = s.read(&mut buf).map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err("closed".into());
        }
        got.extend_from_slice(&buf[..n]);
    }
}

/// A fresh client's `/api/stats`, with the number `key` of it.
fn stat(json: &serde_json::Value, key: &str) -> Result<u64, String> {
    json[key].as_u64().ok_or_else(|| format!("no {key} in {json}"))
}

/// Checks of the per-peer limit against a webapi started with
/// `--max-per-peer per_peer` (a small one: every client here is one peer).
pub fn per_peer_checks(prefix: &str, addr: SocketAddr, per_peer: usize, t: Duration) -> Vec<Check> {
    let mut checks = Vec::new();
    checks.push(check(prefix, "per_peer_limit_refuses_one_more", || {
        // `per_peer` connections with a request in progress (half a head:
        // not idle, so not closed for a newcomer), then one more. First
        // webapi must have seen earlier connections (a probe for the port)
        // end, or they would count.
        std::thread::sleep(Duration::from_secs(1));
        let mut held = Vec::new();
        for i in 0..per_peer {
            let mut s = connect(addr, t)?;
            s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n").map_err(|e| format!("connection {i}: {e}"))?;
            held.push(s);
        }
        std::thread::sleep(Duration::from_millis(300));
        let reply = exchange(addr, b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", t)?;
        if status_of(&reply) != Some(503) || !reply.contains("Retry-After: ") {
            return Err(format!(
                "connection {} of one peer got {reply:.120?}, wanted 503 with Retry-After",
                per_peer + 1
            ));
        }
        // One of them goes: the next one is served.
        drop(held.pop());
        std::thread::sleep(Duration::from_millis(300));
        let (json, took) = fresh_stats(addr, t)?;
        let refused = stat(&json, "refused_per_peer")?;
        if refused < 1 {
            return Err(format!("refused_per_peer = {refused} after a refusal: {json}"));
        }
        drop(held);
        Ok(format!(
            "connection {} refused with 503; after one closed, a fresh client answered in {took:?}",
            per_peer + 1
        ))
    }));
    checks.push(check(prefix, "per_peer_idle_connection_gives_way", || {
        // `per_peer` idle connections of this peer: one more takes the
        // slot of the longest idle instead of a 503.
        // (After the last check's connections are seen gone.)
        std::thread::sleep(Duration::from_secs(1));
        let mut idle = Vec::new();
        for _ in 0..per_peer {
            idle.push(connect(addr, t)?);
        }
        // Past webapi's grace for a connection's first request (1 s).
        std::thread::sleep(Duration::from_millis(1500));
        let reply = exchange(addr, b"GET /api/stats HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", t)?;
        drop(idle);
        let body = reply.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
        let json: serde_json::Value = match status_of(&reply) {
            Some(200) => serde_json::from_str(body).map_err(|e| format!("stats not JSON: {e}"))?,
            _ => return Err(format!("beside {per_peer} idle connections of its peer: {reply:.120?}")),
        };
        let evicted = stat(&json, "evicted_idle")?;
        (evicted >= 1).then(String::new).ok_or_else(|| format!("answered, but no idle connection gave way: {json}"))
    }));
    checks
}

pub fn checks(prefix: &str, addr: SocketAddr, pace: Pace) -> Vec<Check> {
    let t = pace.answer_within;
    let mut checks = Vec::new();

    checks.push(check(prefix, "request_then_fin_answered", || {
        for i in 0..5 {
            let mut s = connect(addr, t)?;
            s.write_all(b"GET / HTTP/1.0\r\n\r\n").map_err(|e| e.to_string())?;
            s.shutdown(Shutdown::Write).map_err(|e| e.to_string())?;
            let mut out = Vec::new();
            let _ = s.read_to_end(&mut out);
            let reply = String::from_utf8_lossy(&out);
            if status_of(&reply) != Some(200) || !reply.contains("WasmOS") {
                return Err(format!("try {i}: answer {reply:.80?}"));
            }
        }
        Ok(String::new())
    }));

    let rfc = |name: &str, request: &'static [u8], want: u16, also: &'static str| {
        check(prefix, name, || {
            let reply = exchange(addr, request, t)?;
            if status_of(&reply) != Some(want) || !reply.contains(also) {
                return Err(format!("wanted {want} with {also:?}, got {reply:.160?}"));
            }
            Ok(String::new())
        })
    };
    checks.push(rfc("rfc_host_required_on_1_1", b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", 400, ""));
    checks.push(rfc(
        "rfc_absolute_form_target",
        b"GET http://wasmos.test/api/stats HTTP/1.1\r\nHost: wasmos.test\r\nConnection: close\r\n\r\n",
        200,
        "\"cores\":",
    ));
    checks.push(rfc(
        "rfc_content_length_plus_refused",
        b"POST /api/echo HTTP/1.1\r\nHost: t\r\nContent-Length: +5\r\n\r\nhello",
        400,
        "",
    ));
    checks.push(rfc(
        "rfc_content_length_duplicates_differ",
        b"POST /api/echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        400,
        "",
    ));
    checks.push(check(prefix, "rfc_head_on_every_get_route", || {
        for path in ["/", "/api/stats"] {
            let request = format!("HEAD {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
            let reply = exchange(addr, request.as_bytes(), t)?;
            let length = reply
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .and_then(|n| n.trim().parse::<usize>().ok());
            if status_of(&reply) != Some(200) || !reply.ends_with("\r\n\r\n") || length.is_none_or(|n| n == 0) {
                return Err(format!("HEAD {path}: {reply:.200?}"));
            }
        }
        Ok(String::new())
    }));
    checks.push(check(prefix, "rfc_expect_100_continue", || {
        let mut s = connect(addr, t)?;
        s.write_all(b"POST /api/echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\nConnection: close\r\nContent-Type: text/plain\r\n\r\n")
            .map_err(|e| e.to_string())?;
        let mut got = Vec::new();
        let mut buf = [0u8; 256];
        while !got.ends_with(b"\r\n\r\n") {
            let n = s.read(&mut buf).map_err(|e| format!("no 100 Continue before the body: {e}"))?;
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        if got != b"HTTP/1.1 100 Continue\r\n\r\n" {
            return Err(format!("interim answer {:?}", String::from_utf8_lossy(&got)));
        }
        s.write_all(b"hello").map_err(|e| e.to_string())?;
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
        let reply = String::from_utf8_lossy(&rest);
        (status_of(&reply) == Some(200) && reply.ends_with("\r\n\r\nhello"))
            .then(String::new)
            .ok_or_else(|| format!("final answer {reply:.160?}"))
    }));

    checks.push(check(prefix, "never_reading_pipeliner_bounded", || {
        // 200 POSTs of 64 KiB in one stream, answers never read, for at
        // most 20 s. webapi must stop reading it (back-pressure), not grow.
        let stop = Arc::new(AtomicBool::new(false));
        let hostile = {
            let stop = stop.clone();
            std::thread::spawn(move || -> usize {
                let Ok(mut s) = connect(addr, Duration::from_secs(2)) else { return 0 };
                let body = vec![b'x'; 64 * 1024];
                let head = format!(
                    "POST /api/echo HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\n\r\n",
                    body.len()
                );
                let start = Instant::now();
                let mut sent = 0;
                for _ in 0..200 {
                    if stop.load(Ordering::Relaxed) || start.elapsed() > Duration::from_secs(20) {
                        break;
                    }
                    let mut request = head.clone().into_bytes();
                    request.extend_from_slice(&body);
                    let mut off = 0;
                    while off < request.len() && !stop.load(Ordering::Relaxed) {
                        match s.write(&request[off..]) {
                            Ok(n) => off += n,
                            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                            Err(_) => return sent,
                        }
                    }
                    sent += 1;
                }
                // Hold the connection (unread) until told to go.
                while !stop.load(Ordering::Relaxed) && start.elapsed() < Duration::from_secs(25) {
                    std::thread::sleep(Duration::from_millis(100));
                }
                sent
            })
        };
        std::thread::sleep(Duration::from_secs(4));
        let result = fresh_stats(addr, t);
        stop.store(true, Ordering::Relaxed);
        let sent = hostile.join().unwrap_or(0);
        let (json, took) = result?;
        let memory = json["memory_bytes"].as_u64().ok_or(format!("no memory_bytes: {json}"))?;
        let buffered = json["buffered_bytes"].as_u64().ok_or(format!("no buffered_bytes: {json}"))?;
        // Its limits: 256 KiB of unsent output per connection, one
        // request of input; the task's memory cap is 16 MiB.
        if buffered > 1 << 20 || memory > 12 << 20 {
            return Err(format!("webapi holds {buffered} bytes in buffers, {memory} bytes of memory ({sent} requests sent)"));
        }
        Ok(format!("answered in {took:?}; webapi buffers {buffered} B, memory {memory} B; hostile sent {sent} of 200"))
    }));

    checks.push(check(prefix, "slowloris_crowd_cannot_hold_slots", || {
        // `crowd` connections each trickle a header byte a second, for at
        // most 30 s. Head deadline: they are cut off, the slots go to new
        // clients.
        let start = Instant::now();
        let mut crowd = Vec::new();
        for _ in 0..pace.crowd {
            if let Ok(mut s) = connect(addr, Duration::from_secs(2))
                && s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\nX-Slow: ").is_ok()
            {
                let _ = s.set_nonblocking(true);
                crowd.push(s);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let opened = crowd.len();
        let opened_at = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let trickler = {
            let stop = stop.clone();
            std::thread::spawn(move || -> (usize, usize) {
                // Until stopped or 30 s: one byte a second on each; count
                // those the server ended (408 or closed).
                let mut ended = vec![false; crowd.len()];
                let mut timeouts = 0;
                while !stop.load(Ordering::Relaxed) && start.elapsed() < Duration::from_secs(30) {
                    for (s, ended) in crowd.iter_mut().zip(ended.iter_mut()).filter(|(_, e)| !**e) {
                        let mut buf = [0u8; 512];
                        match s.read(&mut buf) {
                            Ok(0) => *ended = true,
                            Ok(n) => {
                                timeouts += usize::from(buf[..n].starts_with(b"HTTP/1.1 408"));
                                *ended = true;
                            }
                            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                                if s.write(b"a").is_err() {
                                    *ended = true;
                                }
                            }
                            Err(_) => *ended = true,
                        }
                    }
                    std::thread::sleep(Duration::from_secs(1));
                }
                (ended.iter().filter(|e| **e).count(), timeouts)
            })
        };
        std::thread::sleep(Duration::from_secs(1));
        let result = fresh_stats(addr, t);
        // Let the crowd's fate show (head deadline 10 s), then stop it.
        while opened_at.elapsed() < Duration::from_secs(16) {
            std::thread::sleep(Duration::from_millis(200));
        }
        stop.store(true, Ordering::Relaxed);
        let (ended, timeouts) = trickler.join().map_err(|_| "trickler panicked")?;
        let (_, took) = result?;
        if ended < opened {
            return Err(format!("{} of {opened} trickling connections still open after 16 s", opened - ended));
        }
        Ok(format!("fresh client answered after {took:?}; {opened} tricklers, {ended} ended ({timeouts} with 408)"))
    }));

    checks.push(check(prefix, "burst_of_simultaneous_connects", || {
        let n = pace.crowd;
        let barrier = Arc::new(std::sync::Barrier::new(n));
        let handles: Vec<_> = (0..n)
            .map(|_| {
                let barrier = barrier.clone();
                std::thread::spawn(move || -> Result<u16, String> {
                    barrier.wait();
                    let request = b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
                    let reply = exchange(addr, request, Duration::from_secs(20))?;
                    status_of(&reply)
                        .ok_or_else(|| if reply.is_empty() { "no answer".into() } else { "not HTTP".into() })
                })
            })
            .collect();
        let statuses: Vec<Result<u16, String>> =
            handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err("panicked".into()))).collect();
        let ok = statuses.iter().filter(|s| **s == Ok(200)).count();
        let busy = statuses.iter().filter(|s| **s == Ok(503)).count();
        // What the others met, by kind (connect refused or reset, no answer).
        let mut errors: Vec<String> = statuses.iter().filter_map(|s| s.clone().err()).collect();
        errors.sort();
        errors.dedup();
        let (answered, fresh) = (ok + busy, fresh_stats(addr, t));
        let (_, took) = fresh?;
        if answered < pace.burst_answered {
            return Err(format!(
                "{answered} of {n} answered ({ok} 200, {busy} 503), wanted {}; others: {errors:?}",
                pace.burst_answered
            ));
        }
        Ok(format!(
            "{answered} of {n} answered ({ok} 200, {busy} 503); a fresh client after {took:?}; others: {errors:?}"
        ))
    }));

    checks.push(check(prefix, "busy_keep_alive_crowd_newcomer_answered", || {
        // BUSY_CLIENTS keep-alive clients, more than the connection slots,
        // each asking again as soon as it is answered (reconnecting when
        // closed or refused), for at most 40 s. Idle eviction and the
        // Connection: close window must let a newcomer in.
        let stop = Arc::new(AtomicBool::new(false));
        let start = Instant::now();
        let crowd: Vec<_> = (0..BUSY_CLIENTS)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || -> usize {
                    let mut answered = 0;
                    while !stop.load(Ordering::Relaxed) && start.elapsed() < Duration::from_secs(40) {
                        let Ok(mut s) = connect(addr, Duration::from_secs(5)) else {
                            std::thread::sleep(Duration::from_millis(50));
                            continue;
                        };
                        while !stop.load(Ordering::Relaxed) && start.elapsed() < Duration::from_secs(40) {
                            if s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").is_err() {
                                break;
                            }
                            match read_response(&mut s) {
                                Ok((200, close, _)) => {
                                    answered += 1;
                                    if close {
                                        break;
                                    }
                                }
                                Ok(_) | Err(_) => {
                                    std::thread::sleep(Duration::from_millis(50));
                                    break;
                                }
                            }
                        }
                    }
                    answered
                })
            })
            .collect();
        std::thread::sleep(Duration::from_secs(5));
        let result = fresh_stats(addr, t);
        stop.store(true, Ordering::Relaxed);
        let answered: usize = crowd.into_iter().map(|h| h.join().unwrap_or(0)).sum();
        let (json, took) = result?;
        if answered == 0 {
            return Err("the busy crowd itself was never answered".into());
        }
        let (conns, evicted) = (stat(&json, "connections")?, stat(&json, "evicted_idle")?);
        Ok(format!(
            "newcomer answered in {took:?} beside {BUSY_CLIENTS} busy clients ({answered} answers to them; \
             webapi had {conns} connections, {evicted} idle ones closed for newcomers so far)"
        ))
    }));

    checks.push(check(prefix, "idle_crowd_newcomer_answered", || {
        // IDLE_CONNECTIONS connections that send nothing, then a fresh
        // client: it must not wait for the idle timeout.
        let start = Instant::now();
        let mut idle = Vec::new();
        for _ in 0..IDLE_CONNECTIONS {
            if start.elapsed() > Duration::from_secs(30) {
                break;
            }
            if let Ok(s) = connect(addr, Duration::from_secs(2)) {
                idle.push(s);
            }
        }
        let (opened, opening) = (idle.len(), start.elapsed());
        let result = fresh_stats(addr, IDLE_ANSWER_WITHIN);
        drop(idle);
        let (json, took) = result?;
        let evicted = stat(&json, "evicted_idle")?;
        Ok(format!("{opened} idle connections opened in {opening:?}; a fresh client answered in {took:?} ({evicted} idle closed for newcomers so far)"))
    }));

    if pace.crash_route {
        checks.push(check(prefix, "crash_route_kills_and_supervisor_restarts", || {
            let (before, _) = fresh_stats(addr, t)?;
            let started = stat(&before, "started_ms")?;
            // The crash request gets no answer: webapi traps on it.
            let reply = exchange(
                addr,
                b"POST /api/crash HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                t,
            )
            .unwrap_or_default();
            if status_of(&reply).is_some() {
                return Err(format!("the crash route answered: {reply:.120?}"));
            }
            let killed = Instant::now();
            // Until the restarted instance answers (the old one may still
            // answer in the moment before it is gone).
            while killed.elapsed() < t {
                let left = t.saturating_sub(killed.elapsed());
                let (after, _) = fresh_stats(addr, left)?;
                let now = stat(&after, "started_ms")?;
                if now != started {
                    return Ok(format!(
                        "restarted (started_ms {started} -> {now}); a fresh client answered {:?} after the crash",
                        killed.elapsed()
                    ));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(format!("started_ms still {started} {t:?} after the crash: not restarted"))
        }));
    }

    checks
}
