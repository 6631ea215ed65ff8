//! The web benchmark (`cargo xtask bench --http`): a closed-loop HTTP load
//! generator over raw sockets, and its report.
//!
//! Each of `connections` client threads keeps one keep-alive connection
//! to `127.0.0.1:port` and sends `GET /` the moment the previous answer
//! has arrived in full (closed loop: the offered load is what the server
//! sustains). After a warm-up, every request's latency (send to last body
//! byte) is recorded for a fixed window; requests/s is completed requests
//! over the window. Everything is bounded: the window, a per-request
//! timeout, and the number of threads. Only 127.0.0.1 is ever addressed.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path as FsPath;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::report::{Git, Machine, Qemu};
use crate::stats::Summary;

/// Schema of a web report's `results.json`.
pub const SCHEMA: &str = "wasmos-bench-web/1";

/// Most client connections one point may use.
pub const MAX_CONNECTIONS: usize = 256;

/// How long one point runs.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub warmup: Duration,
    pub measure: Duration,
    /// A request not answered within this counts as an error and ends
    /// its connection's part of the point.
    pub timeout: Duration,
}

/// One measured point: a target, its worker count, the client's
/// connection count, and what came of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// "qemu" or "hosted".
    pub target: String,
    pub workers: u32,
    pub connections: u32,
    /// Requests answered in the window.
    pub requests: u64,
    pub seconds: f64,
    pub requests_per_s: f64,
    /// Latency of each request, microseconds.
    pub latency_us: LatencyUs,
    /// Requests that failed (connect, reset, timeout, not 200).
    pub errors: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencyUs {
    pub min: f64,
    pub median: f64,
    pub p99: f64,
    pub max: f64,
}

/// A web report: every point of one run, and where it ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebResults {
    pub schema: String,
    pub created: String,
    pub duration_s: f64,
    pub git: Git,
    pub machine: Machine,
    pub qemu: Qemu,
    pub path: String,
    pub window_s: f64,
    pub points: Vec<Point>,
}

/// Runs one point against `127.0.0.1:port` with `connections` clients.
pub fn measure(port: u16, connections: usize, window: Window) -> (u64, f64, Vec<u64>, u64) {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let connections = connections.clamp(1, MAX_CONNECTIONS);
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..connections)
        .map(|_| {
            let (measuring, stop) = (measuring.clone(), stop.clone());
            std::thread::spawn(move || client(addr, window.timeout, &measuring, &stop))
        })
        .collect();
    std::thread::sleep(window.warmup);
    measuring.store(true, Ordering::SeqCst);
    let start = Instant::now();
    std::thread::sleep(window.measure);
    stop.store(true, Ordering::SeqCst);
    let seconds = start.elapsed().as_secs_f64();
    let mut latencies = Vec::new();
    let mut errors = 0;
    for c in clients {
        if let Ok((lat, err)) = c.join() {
            latencies.extend(lat);
            errors += err;
        }
    }
    (latencies.len() as u64, seconds, latencies, errors)
}

/// One client connection's loop: latencies (ns) recorded while
/// `measuring`, and the errors it met, until `stop`.
fn client(addr: SocketAddr, timeout: Duration, measuring: &AtomicBool, stop: &AtomicBool) -> (Vec<u64>, u64) {
    let mut latencies = Vec::new();
    let mut errors = 0;
    let mut conn: Option<TcpStream> = None;
    let mut buf = vec![0u8; 64 * 1024];
    while !stop.load(Ordering::Relaxed) {
        let s = match conn.as_mut() {
            Some(s) => s,
            None => match open(addr, timeout) {
                Ok(s) => conn.insert(s),
                Err(_) => {
                    errors += u64::from(measuring.load(Ordering::Relaxed));
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
            },
        };
        let sent = Instant::now();
        let counted = measuring.load(Ordering::Relaxed);
        match request(s, &mut buf) {
            Ok(keep) => {
                if counted && !stop.load(Ordering::Relaxed) {
                    latencies.push(sent.elapsed().as_nanos() as u64);
                }
                if !keep {
                    conn = None;
                }
            }
            Err(()) => {
                errors += u64::from(counted);
                conn = None;
            }
        }
    }
    (latencies, errors)
}

fn open(addr: SocketAddr, timeout: Duration) -> std::io::Result<TcpStream> {
    let s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    s.set_nodelay(true)?;
    Ok(s)
}

/// `GET /` on `s`, read to the end of the body; whether the connection
/// stays open. Err for anything but a complete 200.
fn request(s: &mut TcpStream, buf: &mut [u8]) -> Result<bool, ()> {
    s.write_all(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n").map_err(drop)?;
    let mut got = 0;
    loop {
        if got == buf.len() {
            return Err(());
        }
        let n = s.read(&mut buf[got..]).map_err(drop)?;
        if n == 0 {
            return Err(());
        }
        got += n;
        let Some(end) = buf[..got].windows(4).position(|w| w == b"\r\n\r\n") else { continue };
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|n| n.trim().parse().ok())
            .ok_or(())?;
        if got < end + 4 + length {
            continue;
        }
        if !head.starts_with("http/1.1 200") || got > end + 4 + length {
            return Err(());
        }
        return Ok(!head.contains("connection: close"));
    }
}

impl Point {
    pub fn new(target: &str, workers: u32, connections: u32, measured: (u64, f64, Vec<u64>, u64)) -> Point {
        let (requests, seconds, mut latencies, errors) = measured;
        let s = crate::stats::summarize(&mut latencies).unwrap_or(Summary {
            iterations: 0,
            min: 0,
            median: 0,
            p99: 0,
            max: 0,
            mean: 0,
        });
        let us = |ns: u64| ns as f64 / 1e3;
        Point {
            target: target.into(),
            workers,
            connections,
            requests,
            seconds,
            requests_per_s: requests as f64 / seconds.max(1e-9),
            latency_us: LatencyUs { min: us(s.min), median: us(s.median), p99: us(s.p99), max: us(s.max) },
            errors,
        }
    }
}

impl WebResults {
    /// The point of `target` with `workers` and `connections`.
    pub fn find(&self, target: &str, workers: u32, connections: u32) -> Option<&Point> {
        self.points.iter().find(|p| p.target == target && p.workers == workers && p.connections == connections)
    }

    /// What is wrong with the report, if anything: a point with nothing
    /// answered, or min <= median <= p99 <= max broken.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for p in &self.points {
            let l = &p.latency_us;
            let name = format!("{} workers={} connections={}", p.target, p.workers, p.connections);
            if p.requests == 0 {
                out.push(format!("{name}: no request answered"));
            } else if !(l.min <= l.median && l.median <= l.p99 && l.p99 <= l.max) {
                out.push(format!("{name}: latencies out of order"));
            }
        }
        if self.points.is_empty() {
            out.push("no points".into());
        }
        out
    }

    pub fn markdown(&self) -> String {
        let mut md = format!(
            "# WasmOS web benchmark\n\n{} · commit {}{} · {} ({} host CPUs) · QEMU {} {} -smp {} -m {}\n\n\
             Closed loop: each connection sends `{}` again as soon as the answer is in; {:.0} s measured \
             per point after a warm-up. Latency is send to last byte, on the host, through QEMU's user-mode \
             network (QEMU) or the loopback (hosted).\n\n",
            self.created,
            self.git.commit,
            if self.git.dirty { " (dirty)" } else { "" },
            self.machine.cpu_model,
            self.machine.host_cpus,
            self.qemu.version,
            self.qemu.accel.to_uppercase(),
            self.qemu.smp,
            self.qemu.memory,
            self.path,
            self.window_s,
        );
        md.push_str("| target | workers | connections | requests/s | p50 | p99 | max | errors |\n");
        md.push_str("|---|---:|---:|---:|---:|---:|---:|---:|\n");
        for p in &self.points {
            let l = &p.latency_us;
            md.push_str(&format!(
                "| {} | {} | {} | {:.0} | {} | {} | {} | {} |\n",
                p.target,
                p.workers,
                p.connections,
                p.requests_per_s,
                fmt_us(l.median),
                fmt_us(l.p99),
                fmt_us(l.max),
                p.errors
            ));
        }
        md.push_str("\nPlot: `web.svg` (requests/s against workers). Every figure: `results.json`.\n");
        md
    }
}

fn fmt_us(us: f64) -> String {
    if us >= 1000.0 { format!("{:.2} ms", us / 1000.0) } else { format!("{us:.0} us") }
}

/// `web.svg`: requests/s against workers, one line per target and
/// connection count.
pub fn plot(r: &WebResults, file: &FsPath) -> Result<(), Box<dyn std::error::Error>> {
    let mut series = Vec::new();
    let mut targets: Vec<&str> = r.points.iter().map(|p| p.target.as_str()).collect();
    targets.dedup();
    let mut conns: Vec<u32> = r.points.iter().map(|p| p.connections).collect();
    conns.sort_unstable();
    conns.dedup();
    for target in targets {
        for (i, &c) in conns.iter().enumerate() {
            let mut pts: Vec<(f64, f64)> = r
                .points
                .iter()
                .filter(|p| p.target == target && p.connections == c)
                .map(|p| (p.workers as f64, p.requests_per_s))
                .collect();
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            let color = crate::plot::palette(i);
            series.push((format!("{target}, {c} connections"), color, target == "hosted", pts));
        }
    }
    crate::plot::line_chart(
        file,
        &format!(
            "GET / requests/s against webapi workers ({} -smp {} on {} host CPUs; hosted dashed)",
            r.qemu.accel.to_uppercase(),
            r.qemu.smp,
            r.machine.host_cpus
        ),
        "workers",
        "requests / s",
        &series,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny HTTP server on 127.0.0.1 answering `GET /` with keep-alive:
    /// the generator counts its answers, and a server that answers 404
    /// shows as errors, not requests.
    fn serve(status: &'static str) -> u16 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for s in listener.incoming().take(8) {
                let Ok(mut s) = s else { continue };
                std::thread::spawn(move || {
                    let mut buf = [0u8; 1024];
                    let mut got = Vec::new();
                    while let Ok(n) = s.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        got.extend_from_slice(&buf[..n]);
                        while let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                            got.drain(..end + 4);
                            let reply = format!("HTTP/1.1 {status}\r\nContent-Length: 5\r\n\r\nhello");
                            if s.write_all(reply.as_bytes()).is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        port
    }

    const WINDOW: Window = Window {
        warmup: Duration::from_millis(50),
        measure: Duration::from_millis(300),
        timeout: Duration::from_secs(2),
    };

    #[test]
    fn counts_answers_and_errors() {
        let good = Point::new("test", 1, 2, measure(serve("200 OK"), 2, WINDOW));
        assert!(good.requests > 10 && good.errors == 0, "{good:?}");
        assert!(good.latency_us.min <= good.latency_us.median && good.latency_us.p99 <= good.latency_us.max);
        let bad = Point::new("test", 1, 1, measure(serve("404 Not Found"), 1, WINDOW));
        assert_eq!(bad.requests, 0, "{bad:?}");
        assert!(bad.errors > 0, "{bad:?}");
    }
}
