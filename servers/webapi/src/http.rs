//! HTTP/1.1 for webapi: parsing a request out of a connection's bytes
//! (with httparse), routing it, and writing the response. Pure functions
//! over byte buffers, so they are unit-tested on the host.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// Longest request head (request line and headers) accepted.
pub const MAX_HEAD: usize = 8 * 1024;
/// Longest request body accepted.
pub const MAX_BODY: usize = 64 * 1024;
const MAX_HEADERS: usize = 32;

/// A request, borrowed from the connection's buffer.
#[derive(Debug, PartialEq, Eq)]
pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub body: &'a [u8],
    pub content_type: Option<&'a str>,
    /// Whether the connection stays open after the response.
    pub keep_alive: bool,
}

/// What the bytes received so far hold.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed<'a> {
    /// Not a whole request yet: read more.
    Incomplete,
    /// A request, and how many bytes of the buffer it used.
    Complete(Request<'a>, usize),
    /// Not a request we can answer: answer with this status, then close.
    Bad(u16),
}

/// Parses the first request in `buf`.
pub fn parse(buf: &[u8]) -> Parsed<'_> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => return Parsed::Bad(431),
        Ok(httparse::Status::Partial) => return Parsed::Incomplete,
        Err(httparse::Error::TooManyHeaders) => return Parsed::Bad(431),
        Err(_) => return Parsed::Bad(400),
    };
    if head_len > MAX_HEAD {
        return Parsed::Bad(431);
    }
    let (Some(method), Some(path), Some(version)) = (req.method, req.path, req.version) else {
        return Parsed::Bad(400);
    };
    let mut content_length = None;
    let mut content_type = None;
    let mut connection = None;
    for h in req.headers.iter() {
        let value = core::str::from_utf8(h.value).map(str::trim);
        if h.name.eq_ignore_ascii_case("content-length") {
            let Some(n) = value.ok().and_then(|v| v.parse::<usize>().ok()) else { return Parsed::Bad(400) };
            if content_length.is_some_and(|old| old != n) {
                return Parsed::Bad(400);
            }
            content_length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            // Chunked request bodies are not supported (RFC 9112 allows a
            // server to refuse them).
            return Parsed::Bad(501);
        } else if h.name.eq_ignore_ascii_case("content-type") {
            content_type = value.ok();
        } else if h.name.eq_ignore_ascii_case("connection") {
            connection = value.ok();
        }
    }
    let body_len = content_length.unwrap_or(0);
    if body_len > MAX_BODY {
        return Parsed::Bad(413);
    }
    let Some(body) = buf.get(head_len..head_len + body_len) else { return Parsed::Incomplete };
    let close = connection.is_some_and(|c| c.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")));
    let keep = connection.is_some_and(|c| c.split(',').any(|t| t.trim().eq_ignore_ascii_case("keep-alive")));
    // HTTP/1.1 keeps the connection unless told otherwise; 1.0 closes it.
    let keep_alive = if version == 1 { !close } else { keep };
    Parsed::Complete(Request { method, path, body, content_type, keep_alive }, head_len + body_len)
}

/// A response before it is written out.
#[derive(Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    /// `Allow` header (for 405).
    pub allow: Option<&'static str>,
}

impl Response {
    pub fn new(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Response {
        Response { status, content_type, body: body.into(), allow: None }
    }

    /// A short plain-text error page for `status`.
    pub fn error(status: u16) -> Response {
        Response::new(status, "text/plain; charset=utf-8", format!("{} {}\n", status, reason(status)))
    }

    /// The response's bytes: status line, headers, body.
    pub fn to_bytes(&self, keep_alive: bool) -> Vec<u8> {
        let mut head = format!(
            "HTTP/1.1 {} {}\r\nServer: wasmos-webapi\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: {}\r\n",
            self.status,
            reason(self.status),
            self.content_type,
            self.body.len(),
            if keep_alive { "keep-alive" } else { "close" },
        );
        if let Some(allow) = self.allow {
            head.push_str("Allow: ");
            head.push_str(allow);
            head.push_str("\r\n");
        }
        head.push_str("\r\n");
        let mut out = head.into_bytes();
        out.extend_from_slice(&self.body);
        out
    }
}

pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

pub const INDEX: &str = "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>WasmOS</title></head>\n\
<body><h1>Hello from WasmOS</h1>\n\
<p>This page is served by <code>webapi.wasm</code>, a WebAssembly task, through the <code>tcp</code> service.</p>\n\
<ul><li><a href=\"/api/stats\">/api/stats</a>: uptime, cores, tasks and messages per core (JSON)</li>\n\
<li><code>POST /api/echo</code>: returns the request body</li></ul>\n</body></html>\n";

/// Routes a request. `stats` makes the JSON of `/api/stats` (it asks the
/// system, so only when that path is asked for).
pub fn route(req: &Request<'_>, stats: impl FnOnce() -> String) -> Response {
    // The path without a query string.
    let path = req.path.split('?').next().unwrap_or("");
    let (allowed, response) = match path {
        "/" => (
            "GET, HEAD",
            (req.method == "GET" || req.method == "HEAD")
                .then(|| Response::new(200, "text/html; charset=utf-8", INDEX)),
        ),
        "/api/stats" => ("GET", (req.method == "GET").then(|| Response::new(200, "application/json", stats()))),
        "/api/echo" => (
            "POST",
            (req.method == "POST").then(|| {
                // Only a known set of types is echoed back as such: the
                // response header must stay a `&'static str`.
                let ty = match req.content_type {
                    Some(t) if t.starts_with("text/plain") => "text/plain; charset=utf-8",
                    Some(t) if t.starts_with("application/json") => "application/json",
                    _ => "application/octet-stream",
                };
                Response::new(200, ty, req.body)
            }),
        ),
        _ => return Response::error(404),
    };
    response.unwrap_or_else(|| Response { allow: Some(allowed), ..Response::error(405) })
}

/// Whether a response to `req` has no body on the wire (HEAD).
pub fn head_only(req: &Request<'_>) -> bool {
    req.method == "HEAD"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(text: &str) -> (Request<'_>, usize) {
        match parse(text.as_bytes()) {
            Parsed::Complete(r, n) => (r, n),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn parses_get_and_keep_alive_rules() {
        let (r, n) = complete("GET /api/stats HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\n");
        assert_eq!((r.method, r.path, r.keep_alive), ("GET", "/api/stats", true));
        assert_eq!(n, "GET /api/stats HTTP/1.1\r\nHost: x\r\n\r\n".len());
        assert!(!complete("GET / HTTP/1.1\r\nConnection: close\r\n\r\n").0.keep_alive);
        assert!(!complete("GET / HTTP/1.0\r\n\r\n").0.keep_alive);
        assert!(complete("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").0.keep_alive);
    }

    #[test]
    fn body_waits_for_content_length() {
        let text = "POST /api/echo HTTP/1.1\r\nContent-Length: 5\r\n\r\nhel";
        assert_eq!(parse(text.as_bytes()), Parsed::Incomplete);
        let whole = "POST /api/echo HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello";
        let (r, n) = complete(whole);
        assert_eq!((r.body, n), (&b"hello"[..], whole.len()));
    }

    #[test]
    fn malformed_and_oversized_requests() {
        assert_eq!(parse(b"GARBAGE\x01\x02\r\n\r\n"), Parsed::Bad(400));
        assert_eq!(parse(b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n"), Parsed::Bad(400));
        assert_eq!(parse(b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"), Parsed::Bad(400));
        assert_eq!(parse(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"), Parsed::Bad(501));
        assert_eq!(parse(b"POST / HTTP/1.1\r\nContent-Length: 999999\r\n\r\n"), Parsed::Bad(413));
        let long = alloc::format!("GET /{} HTTP/1.1\r\n", "a".repeat(MAX_HEAD));
        assert_eq!(parse(long.as_bytes()), Parsed::Bad(431));
        // A partial head is just incomplete (slow clients are timed out by
        // the server loop, not refused here).
        assert_eq!(parse(b"GET / HTT"), Parsed::Incomplete);
    }

    #[test]
    fn routes() {
        let stats = || String::from("{\"cores\":8}");
        let get = |path| Request { method: "GET", path, body: &[], content_type: None, keep_alive: true };
        assert_eq!(route(&get("/"), stats).status, 200);
        assert_eq!(route(&get("/api/stats?x=1"), stats).body, b"{\"cores\":8}");
        assert_eq!(route(&get("/nope"), stats).status, 404);
        let wrong = route(&get("/api/echo"), stats);
        assert_eq!((wrong.status, wrong.allow), (405, Some("POST")));
        let post = Request {
            method: "POST",
            path: "/api/echo",
            body: b"hi",
            content_type: Some("text/plain"),
            keep_alive: true,
        };
        let echoed = route(&post, stats);
        assert_eq!(
            (echoed.status, echoed.body.as_slice(), echoed.content_type),
            (200, &b"hi"[..], "text/plain; charset=utf-8")
        );
    }

    #[test]
    fn response_bytes_have_exact_length() {
        let bytes = Response::new(200, "text/plain", "abc").to_bytes(true);
        let text = core::str::from_utf8(&bytes).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(text.contains("Content-Length: 3\r\n"));
        assert!(text.contains("Connection: keep-alive\r\n"));
        assert!(text.ends_with("\r\n\r\nabc"));
    }
}
