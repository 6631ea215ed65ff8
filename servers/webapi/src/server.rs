//! The event loop: sockets from the `tcp` service, requests to [`http`].

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

use wasmos_sdk::net::{Error, Event, NetError, Socket, Tcp, events};
use wasmos_sdk::{env, println};

use crate::http::{self, Parsed, Response};
use crate::{DEFAULT_PORT, IDLE_TIMEOUT_NS, MAX_CONNECTIONS};

struct Conn {
    input: Vec<u8>,
    output: Vec<u8>,
    /// How much of `output` is sent.
    sent: usize,
    last_active: u64,
    /// Close once `output` is sent (Connection: close, an error, EOF).
    closing: bool,
}

struct Server {
    tcp: Tcp,
    conns: BTreeMap<Socket, Conn>,
    requests: u64,
}

pub fn main() {
    let mut store = [0u8; env::MAX_BYTES];
    let mut argv = [""; env::MAX_ARGS];
    let argc = env::args(&mut store, &mut argv);
    let port = match env::flag(&argv[..argc], "port").map(str::parse::<u16>) {
        None => DEFAULT_PORT,
        Some(Ok(p)) => p,
        Some(Err(_)) => {
            println!("webapi: --port wants a number from 1 to 65535");
            wasmos_sdk::exit(2)
        }
    };
    let tcp = loop {
        match Tcp::connect() {
            Ok(tcp) => break tcp,
            // The `tcp` service starts with the system; wait for it.
            Err(_) => wasmos_sdk::sleep_ns(10_000_000),
        }
    };
    let listener = match tcp.listen(port) {
        Ok(l) => l,
        Err(e) => {
            println!("webapi: cannot listen on port {port}: {e:?}");
            wasmos_sdk::exit(1)
        }
    };
    println!("webapi: listening on port {port}");
    let mut server = Server { tcp, conns: BTreeMap::new(), requests: 0 };
    let mut events = [Event::default(); 64];
    loop {
        // Wake at least once a second to close idle connections.
        let ready = match server.tcp.poll(&mut events, Some(1000)) {
            Ok(ready) => ready,
            Err(e) => {
                println!("webapi: poll failed: {e:?}");
                wasmos_sdk::exit(1)
            }
        };
        for &Event { socket, events: bits } in ready {
            if socket == listener {
                server.accept_all(listener);
            } else {
                server.serve(socket, bits);
            }
        }
        server.close_idle();
    }
}

impl Server {
    fn accept_all(&mut self, listener: Socket) {
        loop {
            match self.tcp.accept(listener) {
                Ok(socket) if self.conns.len() >= MAX_CONNECTIONS => {
                    let _ = self.tcp.send(socket, &Response::error(503).to_bytes(false));
                    let _ = self.tcp.close(socket);
                }
                Ok(socket) => {
                    let conn = Conn {
                        input: Vec::new(),
                        output: Vec::new(),
                        sent: 0,
                        last_active: wasmos_sdk::now_ns(),
                        closing: false,
                    };
                    self.conns.insert(socket, conn);
                }
                Err(Error::Net(NetError::WouldBlock)) => return,
                Err(e) => {
                    println!("webapi: accept failed: {e:?}");
                    return;
                }
            }
        }
    }

    /// Reads what arrived, answers every whole request in it, writes.
    fn serve(&mut self, socket: Socket, bits: u32) {
        let Some(mut conn) = self.conns.remove(&socket) else { return };
        let keep = bits & events::ERROR == 0
            && self.read(socket, &mut conn)
            && self.answer(&mut conn)
            && self.write(socket, &mut conn);
        if keep && !(conn.closing && conn.sent == conn.output.len()) {
            self.conns.insert(socket, conn);
        } else {
            let _ = self.tcp.close(socket);
        }
    }

    /// Reads until the socket has nothing more; false if the connection is
    /// gone.
    fn read(&mut self, socket: Socket, conn: &mut Conn) -> bool {
        let mut buf = [0u8; 2048];
        // Bounded: a flood of bytes cannot keep us on one connection.
        for _ in 0..16 {
            match self.tcp.recv(socket, &mut buf) {
                Ok(0) => {
                    conn.closing = true;
                    return true;
                }
                Ok(n) => {
                    conn.input.extend_from_slice(&buf[..n]);
                    conn.last_active = wasmos_sdk::now_ns();
                    if conn.input.len() > http::MAX_HEAD + http::MAX_BODY {
                        return true;
                    }
                }
                Err(Error::Net(NetError::WouldBlock)) => return true,
                Err(_) => return false,
            }
        }
        true
    }

    /// Answers the whole requests in `conn.input`; false if nothing more
    /// should be read or written.
    fn answer(&mut self, conn: &mut Conn) -> bool {
        while !conn.input.is_empty() && !conn.closing {
            let (bytes, used, keep_alive) = match http::parse(&conn.input) {
                Parsed::Incomplete => break,
                Parsed::Bad(status) => (Response::error(status).to_bytes(false), conn.input.len(), false),
                Parsed::Complete(req, used) => {
                    self.requests += 1;
                    let requests = self.requests;
                    let response = http::route(&req, || stats_json(requests));
                    let mut bytes = response.to_bytes(req.keep_alive);
                    if http::head_only(&req) {
                        bytes.truncate(bytes.len() - response.body.len());
                    }
                    (bytes, used, req.keep_alive)
                }
            };
            conn.output.extend_from_slice(&bytes);
            conn.input.drain(..used);
            conn.closing |= !keep_alive;
        }
        true
    }

    /// Sends what it can of `conn.output`; false if the connection failed.
    fn write(&mut self, socket: Socket, conn: &mut Conn) -> bool {
        while conn.sent < conn.output.len() {
            match self.tcp.send(socket, &conn.output[conn.sent..]) {
                Ok(n) => conn.sent += n,
                Err(Error::Net(NetError::WouldBlock)) => return true,
                Err(_) => return false,
            }
        }
        conn.output.clear();
        conn.sent = 0;
        true
    }

    fn close_idle(&mut self) {
        let now = wasmos_sdk::now_ns();
        let idle: Vec<Socket> = self
            .conns
            .iter()
            .filter(|(_, c)| now.saturating_sub(c.last_active) > IDLE_TIMEOUT_NS)
            .map(|(&s, _)| s)
            .collect();
        for socket in idle {
            self.conns.remove(&socket);
            let _ = self.tcp.close(socket);
        }
    }
}

/// `/api/stats`: the system's counters, and this server's request count.
fn stats_json(requests: u64) -> String {
    let mut buf = [0u8; wasmos_sdk::abi::MAX_PAYLOAD];
    let mut out = String::new();
    match wasmos_sdk::sysinfo::query(&mut buf) {
        Ok(info) => {
            let list = |f: &dyn Fn(wasmos_sdk::sysinfo::CoreInfo) -> u64| {
                let items: Vec<String> = info.cores().map(|c| alloc::format!("{}", f(c))).collect();
                items.join(",")
            };
            let _ = write!(
                out,
                "{{\"uptime_ms\":{},\"cores\":{},\"tasks_per_core\":[{}],\"messages_delivered_per_core\":[{}],\"slices_per_core\":[{}],\"requests_served\":{}}}",
                info.uptime_ns / 1_000_000,
                info.core_count(),
                list(&|c| c.tasks as u64),
                list(&|c| c.delivered),
                list(&|c| c.switches),
                requests
            );
        }
        Err(e) => {
            let _ = write!(out, "{{\"error\":\"sysinfo: {}\",\"requests_served\":{}}}", e.name(), requests);
        }
    }
    out.push('\n');
    out
}
