//! What webapi must do, checked from outside with a real HTTP client
//! (ureq) and raw TCP for what a client library will not send. The same
//! checks run against webapi in QEMU (through QEMU's port forwarding to
//! smoltcp on virtio-net) and under `wasmos-hosted` (host sockets).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::suites::Check;

/// Concurrent clients in the concurrency check, and requests each.
const CLIENTS: usize = 8;
const REQUESTS_PER_CLIENT: usize = 20;

fn new_agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(30)))
        .http_status_as_error(false)
        .build()
        .into()
}

struct Got {
    status: u16,
    content_type: String,
    body: Vec<u8>,
}

fn get(agent: &ureq::Agent, url: &str) -> Result<Got, String> {
    let mut response = agent.get(url).call().map_err(|e| format!("GET {url}: {e}"))?;
    read(&mut response)
}

fn read(response: &mut ureq::http::Response<ureq::Body>) -> Result<Got, String> {
    let status = response.status().as_u16();
    let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let body = response.body_mut().read_to_vec().map_err(|e| format!("body: {e}"))?;
    Ok(Got { status, content_type, body })
}

/// Sends raw bytes on a fresh connection and reads until the server
/// closes it or `timeout`; returns what came back.
fn raw(addr: SocketAddr, bytes: &[u8], timeout: Duration) -> Result<String, String> {
    let mut s = TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    s.write_all(bytes).map_err(|e| format!("write: {e}"))?;
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    Ok(String::from_utf8_lossy(&out).into_owned())
}

fn check(prefix: &str, name: &str, f: impl FnOnce() -> Result<(), String>) -> Check {
    let start = Instant::now();
    Check { name: format!("{prefix}::{name}"), result: f().map(|()| Some(start.elapsed().as_micros() as u64)) }
}

/// Waits until something accepts connections on `addr`.
pub fn wait_for_port(addr: SocketAddr, timeout: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

/// Round trips in [`echo_latency_check`], the pause before each, and the
/// median it accepts.
const ECHO_ROUNDS: usize = 20;
const ECHO_IDLE_GAP: Duration = Duration::from_millis(100);
const ECHO_MEDIAN_LIMIT: Duration = Duration::from_millis(200);

/// `POST /api/echo` on a fresh connection, [`ECHO_ROUNDS`] times one after
/// another, each after a pause that lets the server's cores go idle, each
/// body different and echoed back exactly, with a median round trip under
/// [`ECHO_MEDIAN_LIMIT`]. Against a kernel whose timer ticks once a
/// second, a card that is only polled is looked at when its halted core
/// next wakes, at the tick: a median of 901 ms (538-917) measured so
/// (`net.irq=off`), so passing needs the card's interrupt.
pub fn echo_latency_check(prefix: &str, addr: SocketAddr) -> Check {
    check(prefix, "echo_by_interrupt", || {
        let mut times = Vec::with_capacity(ECHO_ROUNDS);
        for round in 0..ECHO_ROUNDS {
            std::thread::sleep(ECHO_IDLE_GAP);
            let body = format!("interrupt-driven echo {round}");
            let request = format!(
                "POST /api/echo HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let start = Instant::now();
            let reply = raw(addr, request.as_bytes(), Duration::from_secs(10))?;
            times.push(start.elapsed());
            if !reply.starts_with("HTTP/1.1 200") || !reply.ends_with(&body) {
                return Err(format!("round {round}: not echoed: {:?}", reply.chars().take(120).collect::<String>()));
            }
        }
        times.sort();
        let median = times[ECHO_ROUNDS / 2];
        if median > ECHO_MEDIAN_LIMIT {
            return Err(format!(
                "median round trip {:.1} ms (limit {} ms; min {:.1} ms, max {:.1} ms): packets wait for the timer",
                median.as_secs_f64() * 1e3,
                ECHO_MEDIAN_LIMIT.as_millis(),
                times[0].as_secs_f64() * 1e3,
                times[ECHO_ROUNDS - 1].as_secs_f64() * 1e3
            ));
        }
        eprintln!(
            "  {prefix}: {ECHO_ROUNDS} echoes, median {:.2} ms, max {:.2} ms",
            median.as_secs_f64() * 1e3,
            times[ECHO_ROUNDS - 1].as_secs_f64() * 1e3
        );
        Ok(())
    })
}

/// Every webapi check against the server at `addr`, which runs on a
/// system of `cores` cores. Names start with `prefix`.
pub fn webapi_checks(prefix: &str, addr: SocketAddr, cores: usize) -> Vec<Check> {
    let base = format!("http://{addr}");
    let agent = new_agent();
    let mut checks = Vec::new();

    checks.push(check(prefix, "get_index", || {
        let got = get(&agent, &format!("{base}/"))?;
        if got.status != 200 || !got.content_type.starts_with("text/html") {
            return Err(format!("status {} type {:?}", got.status, got.content_type));
        }
        let text = String::from_utf8_lossy(&got.body);
        text.contains("WasmOS").then_some(()).ok_or_else(|| format!("page lacks \"WasmOS\": {text:.200}"))
    }));

    checks.push(check(prefix, "stats_json", || {
        let got = get(&agent, &format!("{base}/api/stats"))?;
        if got.status != 200 || got.content_type != "application/json" {
            return Err(format!("status {} type {:?}", got.status, got.content_type));
        }
        let json: serde_json::Value = serde_json::from_slice(&got.body).map_err(|e| format!("not JSON: {e}"))?;
        let n = json["cores"].as_u64().ok_or(format!("no \"cores\": {json}"))?;
        let per_core = |key: &str| json[key].as_array().map(Vec::len);
        if n != cores as u64 {
            return Err(format!("cores = {n}, expected {cores}"));
        }
        for key in ["tasks_per_core", "messages_delivered_per_core"] {
            if per_core(key) != Some(cores) {
                return Err(format!("{key} is not a list of {cores}: {json}"));
            }
        }
        // webapi itself is a task, and its IPC with the tcp service counts.
        let tasks: u64 = json["tasks_per_core"].as_array().unwrap().iter().filter_map(|v| v.as_u64()).sum();
        let delivered: u64 =
            json["messages_delivered_per_core"].as_array().unwrap().iter().filter_map(|v| v.as_u64()).sum();
        if tasks < 1 || delivered < 1 || json["uptime_ms"].as_u64().is_none() {
            return Err(format!("implausible counters: {json}"));
        }
        Ok(())
    }));

    checks.push(check(prefix, "post_echo", || {
        let body: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
        let mut response = agent
            .post(&format!("{base}/api/echo"))
            .header("Content-Type", "application/octet-stream")
            .send(&body[..])
            .map_err(|e| format!("POST: {e}"))?;
        let got = read(&mut response)?;
        (got.status == 200 && got.body == body)
            .then_some(())
            .ok_or_else(|| format!("status {}, {} bytes back of {}", got.status, got.body.len(), body.len()))
    }));

    checks.push(check(prefix, "unknown_path_404", || {
        let got = get(&agent, &format!("{base}/no/such/page"))?;
        (got.status == 404).then_some(()).ok_or_else(|| format!("status {}", got.status))
    }));

    checks.push(check(prefix, "malformed_request_400", || {
        let reply = raw(addr, b"THIS IS NOT HTTP\x01\x02\r\n\r\n", Duration::from_secs(20))?;
        reply.starts_with("HTTP/1.1 400 ").then_some(()).ok_or_else(|| format!("answer: {reply:.80?}"))
    }));

    checks.push(check(prefix, "keep_alive_two_requests_one_connection", || {
        // Both requests in one write (pipelined); the second says close, so
        // the server ends the connection after answering both.
        let reply = raw(
            addr,
            b"GET /api/stats HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            Duration::from_secs(20),
        )?;
        let answers = reply.matches("HTTP/1.1 200 OK").count();
        (answers == 2).then_some(()).ok_or_else(|| format!("{answers} answers: {reply:.200?}"))
    }));

    checks.push(check(prefix, "concurrent_clients", || {
        let results: Vec<Result<(), String>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..CLIENTS)
                .map(|c| {
                    let base = &base;
                    s.spawn(move || {
                        // Connections open a little apart, then all talk at
                        // once. QEMU's user-mode network accepts forwarded
                        // connections with a listen backlog of 1: a burst of
                        // simultaneous connects on a loaded host is reset by
                        // QEMU before reaching the guest (packet captures
                        // show those connections never arrive).
                        std::thread::sleep(Duration::from_millis(40 * c as u64));
                        let agent = new_agent();
                        for r in 0..REQUESTS_PER_CLIENT {
                            let body = format!("client {c} request {r}");
                            let mut response = agent
                                .post(&format!("{base}/api/echo"))
                                .header("Content-Type", "text/plain")
                                .send(body.as_bytes())
                                .map_err(|e| format!("client {c}: {e}"))?;
                            let got = read(&mut response)?;
                            if got.status != 200 || got.body != body.as_bytes() {
                                return Err(format!("client {c} request {r}: status {}", got.status));
                            }
                        }
                        Ok(())
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err("client panicked".into()))).collect()
        });
        let failed: Vec<String> = results.into_iter().filter_map(Result::err).collect();
        failed.is_empty().then_some(()).ok_or_else(|| failed.join("; "))
    }));

    checks.push(check(prefix, "slow_and_vanishing_clients_harm_nobody", || {
        // Three connections that send half a request and stall, and three
        // that send half a request and vanish; meanwhile others are served.
        let mut stalled = Vec::new();
        for _ in 0..3 {
            let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(10)).map_err(|e| e.to_string())?;
            s.write_all(b"GET / HTTP/1.1\r\nHost: slow").map_err(|e| e.to_string())?;
            stalled.push(s);
        }
        for _ in 0..3 {
            let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(10)).map_err(|e| e.to_string())?;
            s.write_all(b"POST /api/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\npartial")
                .map_err(|e| e.to_string())?;
            drop(s);
        }
        for i in 0..3 {
            let got = get(&agent, &format!("{base}/api/stats"))?;
            if got.status != 200 {
                return Err(format!("request {i} beside stalled clients: status {}", got.status));
            }
        }
        drop(stalled);
        Ok(())
    }));

    checks
}

/// What [`Clients`] saw.
pub struct ClientReport {
    pub ok: u64,
    /// Why each failed request failed (after the server first answered).
    pub failed: Vec<String>,
}

/// HTTP clients calling webapi in a loop until stopped (the soak's load
/// from outside): `GET /api/stats` and `POST /api/echo` in turn, checked.
/// Requests before the server first answers (it is still booting) do not
/// count; every one after must succeed.
pub struct Clients {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    threads: Vec<std::thread::JoinHandle<ClientReport>>,
}

impl Clients {
    pub fn start(addr: SocketAddr, n: usize) -> Clients {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let threads = (0..n)
            .map(|c| {
                let stop = stop.clone();
                std::thread::spawn(move || client_loop(addr, c, &stop))
            })
            .collect();
        Clients { stop, threads }
    }

    /// Setting this stops the clients (a run that is ending says so before
    /// its server goes away).
    pub fn stop_flag(&self) -> std::sync::Arc<std::sync::atomic::AtomicBool> {
        self.stop.clone()
    }

    pub fn stop(self) -> ClientReport {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut all = ClientReport { ok: 0, failed: Vec::new() };
        for t in self.threads {
            if let Ok(r) = t.join() {
                all.ok += r.ok;
                all.failed.extend(r.failed);
            }
        }
        all
    }
}

fn client_loop(addr: SocketAddr, client: usize, stop: &std::sync::atomic::AtomicBool) -> ClientReport {
    let base = format!("http://{addr}");
    let agent = new_agent();
    let mut report = ClientReport { ok: 0, failed: Vec::new() };
    let mut i = 0u64;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        i += 1;
        let result = if i.is_multiple_of(2) {
            get(&agent, &format!("{base}/api/stats")).and_then(|g| {
                serde_json::from_slice::<serde_json::Value>(&g.body)
                    .map(drop)
                    .map_err(|e| format!("stats not JSON: {e}"))
            })
        } else {
            let body = format!("client {client} request {i}");
            agent
                .post(&format!("{base}/api/echo"))
                .header("Content-Type", "text/plain")
                .send(body.as_bytes())
                .map_err(|e| format!("POST: {e}"))
                .and_then(|mut r| read(&mut r))
                .and_then(|g| {
                    if g.body == body.as_bytes() {
                        Ok(())
                    } else {
                        Err(format!("echo returned {} bytes", g.body.len()))
                    }
                })
        };
        match result {
            Ok(()) => report.ok += 1,
            // Not up yet (QEMU accepts for the guest before webapi listens).
            Err(_) if report.ok == 0 => std::thread::sleep(Duration::from_millis(500)),
            Err(e) => {
                // The machine may be shutting down: a request cut short by
                // the end of the run is not a failure.
                std::thread::sleep(Duration::from_secs(1));
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                report.failed.push(e);
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    report
}
