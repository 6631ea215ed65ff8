//! A web server with a worker on every core: webapi started `*N` times,
//! sharing one port, with the `tcp` service dealing connections to them
//! round-robin (`wasmos_ipc::net`, "Shared ports"). Checked from outside,
//! 127.0.0.1 only, every loop bounded in count and time: connections from
//! concurrent clients land on more than one worker (each answer names its
//! worker's core, `/api/stats` `worker_core`), and a worker killed in the
//! middle of the load loses only its own connections and is restarted.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::hostile::{check, connect, read_response};
use crate::suites::Check;

/// Concurrent clients, and fresh connections each makes.
const CLIENTS: usize = 16;
const CONNECTIONS_PER_CLIENT: usize = 4;

/// What one `/api/stats` answer says of the worker that gave it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Worker {
    core: u64,
    started_ms: u64,
}

/// `GET /api/stats` on `s` (kept alive unless `close`): who answered.
fn stats(s: &mut TcpStream, close: bool) -> Result<Worker, String> {
    let connection = if close { "close" } else { "keep-alive" };
    let request = format!("GET /api/stats HTTP/1.1\r\nHost: t\r\nConnection: {connection}\r\n\r\n");
    s.write_all(request.as_bytes()).map_err(|e| format!("write: {e}"))?;
    let (status, _, body) = read_response(s)?;
    if status != 200 {
        return Err(format!("status {status}"));
    }
    let json: serde_json::Value = serde_json::from_slice(&body).map_err(|e| format!("stats not JSON: {e}"))?;
    let field = |k: &str| json[k].as_u64().ok_or_else(|| format!("no {k} in {json}"));
    Ok(Worker { core: field("worker_core")?, started_ms: field("started_ms")? })
}

/// A fresh connection's `/api/stats`, retried (a worker may be
/// restarting) until `within`.
fn fresh(addr: SocketAddr, within: Duration) -> Result<Worker, String> {
    let start = Instant::now();
    let mut last = String::new();
    while start.elapsed() < within {
        match connect(addr, within).and_then(|mut s| stats(&mut s, true)) {
            Ok(w) => return Ok(w),
            Err(e) => last = e,
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(format!("no answer within {within:?} (last: {last})"))
}

/// The checks against `workers` webapi workers at `addr`, started with
/// `--crash-route` under a supervisor. `within` bounds each wait.
pub fn checks(prefix: &str, addr: SocketAddr, workers: usize, within: Duration) -> Vec<Check> {
    vec![
        check(prefix, "workers::every_worker_answers", || every_worker_answers(addr, workers, within)),
        check(prefix, "workers::connections_spread_over_workers", || spread(addr, workers, within)),
        check(prefix, "workers::a_killed_worker_loses_only_its_own", || kill_one(addr, workers, within)),
    ]
}

/// Fresh connections one after another until each of the `workers`
/// has answered one (they start one by one), within `within`.
fn every_worker_answers(addr: SocketAddr, workers: usize, within: Duration) -> Result<String, String> {
    let start = Instant::now();
    let mut cores = BTreeSet::new();
    let mut tries = 0;
    while start.elapsed() < within {
        cores.insert(fresh(addr, within)?.core);
        tries += 1;
        if cores.len() >= workers {
            return Ok(format!("cores {cores:?} after {tries} connections"));
        }
    }
    Err(format!("only the workers of cores {cores:?} answered {tries} connections in {within:?}"))
}

/// `CLIENTS` concurrent clients, `CONNECTIONS_PER_CLIENT` fresh
/// connections each: every one answered, by more than one worker (by
/// every worker, since connections are dealt round-robin).
fn spread(addr: SocketAddr, workers: usize, within: Duration) -> Result<String, String> {
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            std::thread::spawn(move || {
                (0..CONNECTIONS_PER_CLIENT)
                    .map(|_| connect(addr, within).and_then(|mut s| stats(&mut s, true)))
                    .collect::<Result<Vec<Worker>, String>>()
            })
        })
        .collect();
    let mut per_core: BTreeMap<u64, usize> = BTreeMap::new();
    for client in clients {
        for w in client.join().map_err(|_| "a client panicked")?? {
            *per_core.entry(w.core).or_default() += 1;
        }
    }
    let note = format!("{} connections per worker core: {per_core:?}", CLIENTS * CONNECTIONS_PER_CLIENT);
    if per_core.len() < workers.min(2) {
        return Err(format!("all on one worker: {note}"));
    }
    if per_core.len() < workers {
        return Err(format!("{} of {workers} workers got none: {note}", workers - per_core.len()));
    }
    Ok(note)
}

/// Keep-alive connections on every worker; one of them asks its worker
/// to crash. The connections of the other workers go on being answered by
/// the same workers; those of the killed one end; a fresh client soon
/// reaches its successor on the same core (a later `started_ms`).
fn kill_one(addr: SocketAddr, workers: usize, within: Duration) -> Result<String, String> {
    let mut conns = Vec::new();
    for _ in 0..2 * workers {
        let mut s = connect(addr, within)?;
        let w = stats(&mut s, false)?;
        conns.push((s, w));
    }
    let victim = conns[0].1;
    if conns.iter().all(|(_, w)| w.core == victim.core) {
        return Err(format!("all {} connections on the worker of core {}", conns.len(), victim.core));
    }
    let crash = b"POST /api/crash HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n";
    conns[0].0.write_all(crash).map_err(|e| format!("write: {e}"))?;
    let mut survivors = 0;
    // (The killed worker's other connections may still be answered, if
    // their request came before the crash, or end: either is right.)
    for (s, before) in conns.iter_mut().skip(1).filter(|(_, w)| w.core != victim.core) {
        match stats(s, false) {
            Ok(now) if now == *before => survivors += 1,
            Ok(now) => return Err(format!("a connection of worker {before:?} was answered by {now:?}")),
            Err(e) => return Err(format!("a connection of worker {before:?}, not the killed one, failed: {e}")),
        }
    }
    let start = Instant::now();
    let mut seen = BTreeSet::new();
    while start.elapsed() < within {
        let w = fresh(addr, within.saturating_sub(start.elapsed()).max(Duration::from_secs(1)))?;
        if w.core == victim.core && w.started_ms > victim.started_ms {
            return Ok(format!(
                "{survivors} connections of other workers kept; core {}'s worker restarted after {:?}",
                victim.core,
                start.elapsed()
            ));
        }
        seen.insert((w.core, w.started_ms));
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!("no restarted worker on core {} within {within:?}; answers from {seen:?}", victim.core))
}
