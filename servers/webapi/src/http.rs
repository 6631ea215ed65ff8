//! HTTP/1.1 for webapi: parsing a request out of a connection's bytes
//! (with httparse), routing it, and writing the response. Pure functions
//! over byte buffers, so they are unit-tested on the host.
//!
//! Request limits: a head (request line and headers) of at most
//! [`MAX_HEAD`] bytes and [`MAX_HEADERS`] headers (431 past either), a
//! body of at most [`MAX_BODY`] bytes given by `Content-Length` (413 past
//! it; chunked bodies get 501). Per RFC 9112: HTTP/1.1 needs exactly one
//! `Host` (400), `Content-Length` is digits only and copies must agree
//! (400), an absolute-form target (`http://host/path`) is served as its
//! path, `Expect: 100-continue` is answered with `100 Continue` before
//! the body is read (any other expectation: 417). A response head is at
//! most [`MAX_RESPONSE_HEAD`] bytes.

use alloc::borrow::Cow;
use alloc::collections::TryReserveError;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

/// Longest request head (request line and headers) accepted.
pub const MAX_HEAD: usize = 8 * 1024;
/// Longest request body accepted.
pub const MAX_BODY: usize = 64 * 1024;
/// Most request headers accepted.
pub const MAX_HEADERS: usize = 32;
/// Longest response head written.
pub const MAX_RESPONSE_HEAD: usize = 512;

/// The interim response to `Expect: 100-continue`.
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// A request, borrowed from the connection's buffer.
#[derive(Debug, PartialEq, Eq)]
pub struct Request<'a> {
    pub method: &'a str,
    /// The path (and query) of the target, also for an absolute-form one.
    pub path: &'a str,
    pub body: &'a [u8],
    pub content_type: Option<&'a str>,
    /// Whether the connection stays open after the response.
    pub keep_alive: bool,
}

/// What the bytes received so far hold.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed<'a> {
    /// Not a whole request head yet: read more.
    Incomplete,
    /// A valid head whose body has not all arrived; `expect_continue`: the
    /// client waits for `100 Continue` before sending it.
    Body { expect_continue: bool },
    /// A request, and how many bytes of the buffer it used.
    Complete(Request<'a>, usize),
    /// Not a request we can answer: answer with this status, then close.
    Bad(u16),
}

/// A `Content-Length` value: ASCII digits only (no sign, no spaces inside,
/// no list), without overflow.
pub fn content_length(value: &[u8]) -> Option<usize> {
    let value = value.trim_ascii();
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    value.iter().try_fold(0usize, |n, &d| n.checked_mul(10)?.checked_add(usize::from(d - b'0')))
}

/// The origin-form path of a request target: itself if it starts with `/`,
/// the path of an absolute-form `http://host/path` (`/` if it has none).
pub fn target_path(target: &str) -> Option<&str> {
    if target.starts_with('/') {
        return Some(target);
    }
    let lower = |n: usize| target.get(..n).map(str::to_ascii_lowercase);
    let rest = if lower(7).as_deref() == Some("http://") {
        &target[7..]
    } else if lower(8).as_deref() == Some("https://") {
        &target[8..]
    } else {
        return None;
    };
    match rest.find(['/', '?']) {
        Some(i) if rest.as_bytes()[i] == b'/' => Some(&rest[i..]),
        _ if rest.is_empty() => None,
        _ => Some("/"),
    }
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
    let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version) else {
        return Parsed::Bad(400);
    };
    let Some(path) = target_path(target) else { return Parsed::Bad(400) };
    let mut content_length_seen = None;
    let mut content_type = None;
    let mut connection = None;
    let mut hosts = 0;
    let mut expect_continue = false;
    for h in req.headers.iter() {
        let value = core::str::from_utf8(h.value).map(str::trim);
        if h.name.eq_ignore_ascii_case("content-length") {
            let Some(n) = content_length(h.value) else { return Parsed::Bad(400) };
            if content_length_seen.is_some_and(|old| old != n) {
                return Parsed::Bad(400);
            }
            content_length_seen = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            // Chunked request bodies are not supported (RFC 9112 allows a
            // server to refuse them).
            return Parsed::Bad(501);
        } else if h.name.eq_ignore_ascii_case("content-type") {
            content_type = value.ok();
        } else if h.name.eq_ignore_ascii_case("connection") {
            connection = value.ok();
        } else if h.name.eq_ignore_ascii_case("host") {
            hosts += 1;
        } else if h.name.eq_ignore_ascii_case("expect") {
            match value {
                Ok(v) if v.eq_ignore_ascii_case("100-continue") => expect_continue = version == 1,
                _ => return Parsed::Bad(417),
            }
        }
    }
    // RFC 9112 3.2: an HTTP/1.1 request without exactly one Host is a 400.
    if version == 1 && hosts != 1 {
        return Parsed::Bad(400);
    }
    let body_len = content_length_seen.unwrap_or(0);
    if body_len > MAX_BODY {
        return Parsed::Bad(413);
    }
    let Some(body) = buf.get(head_len..head_len + body_len) else { return Parsed::Body { expect_continue } };
    let close = connection.is_some_and(|c| c.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")));
    let keep = connection.is_some_and(|c| c.split(',').any(|t| t.trim().eq_ignore_ascii_case("keep-alive")));
    // HTTP/1.1 keeps the connection unless told otherwise; 1.0 closes it.
    let keep_alive = if version == 1 { !close } else { keep };
    Parsed::Complete(Request { method, path, body, content_type, keep_alive }, head_len + body_len)
}

/// A response before it is written out; the body may borrow the request.
#[derive(Debug, PartialEq, Eq)]
pub struct Response<'a> {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Cow<'a, [u8]>,
    /// `Allow` header (for 405).
    pub allow: Option<&'static str>,
    /// `Retry-After` header, in seconds (for 503).
    pub retry_after: Option<u32>,
}

/// A `fmt::Write` into a fixed buffer: the response head never allocates.
struct HeadBuf {
    buf: [u8; MAX_RESPONSE_HEAD],
    len: usize,
}

impl Write for HeadBuf {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let end = self.len + s.len();
        self.buf.get_mut(self.len..end).ok_or(core::fmt::Error)?.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

impl<'a> Response<'a> {
    pub fn new(status: u16, content_type: &'static str, body: impl Into<Cow<'a, [u8]>>) -> Response<'a> {
        Response { status, content_type, body: body.into(), allow: None, retry_after: None }
    }

    /// A short plain-text error page for `status`.
    pub fn error(status: u16) -> Response<'static> {
        Response::new(status, "text/plain; charset=utf-8", format!("{} {}\n", status, reason(status)).into_bytes())
    }

    /// Appends the response's bytes (status line, headers and, unless
    /// `head_only`, the body) to `out`, or nothing if `out` cannot grow.
    pub fn write_into(&self, out: &mut Vec<u8>, keep_alive: bool, head_only: bool) -> Result<(), TryReserveError> {
        let mut head = HeadBuf { buf: [0; MAX_RESPONSE_HEAD], len: 0 };
        // Cannot overflow: every field is short and bounded.
        let _ = write!(
            head,
            "HTTP/1.1 {} {}\r\nServer: wasmos-webapi\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: {}\r\n",
            self.status,
            reason(self.status),
            self.content_type,
            self.body.len(),
            if keep_alive { "keep-alive" } else { "close" },
        );
        if let Some(allow) = self.allow {
            let _ = write!(head, "Allow: {allow}\r\n");
        }
        if let Some(seconds) = self.retry_after {
            let _ = write!(head, "Retry-After: {seconds}\r\n");
        }
        let _ = head.write_str("\r\n");
        let body: &[u8] = if head_only { &[] } else { &self.body };
        out.try_reserve(head.len + body.len())?;
        out.extend_from_slice(&head.buf[..head.len]);
        out.extend_from_slice(body);
        Ok(())
    }

    /// The response's bytes: status line, headers, body.
    pub fn to_bytes(&self, keep_alive: bool) -> Vec<u8> {
        let mut out = Vec::new();
        // A fresh Vec of a few KiB: only fails where allocation aborts.
        let _ = self.write_into(&mut out, keep_alive, false);
        out
    }
}

pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        417 => "Expectation Failed",
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
/// system, so only when that path is asked for). `HEAD` is answered as
/// `GET` (the caller leaves the body out).
pub fn route<'a>(req: &Request<'a>, stats: impl FnOnce() -> String) -> Response<'a> {
    // The path without a query string.
    let path = req.path.split('?').next().unwrap_or("");
    let get = req.method == "GET" || req.method == "HEAD";
    let (allowed, response) = match path {
        "/" => ("GET, HEAD", get.then(|| Response::new(200, "text/html; charset=utf-8", INDEX.as_bytes()))),
        "/api/stats" => ("GET, HEAD", get.then(|| Response::new(200, "application/json", stats().into_bytes()))),
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
        assert!(!complete("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").0.keep_alive);
        assert!(!complete("GET / HTTP/1.0\r\n\r\n").0.keep_alive);
        assert!(complete("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").0.keep_alive);
    }

    #[test]
    fn body_waits_for_content_length() {
        let text = "POST /api/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhel";
        assert_eq!(parse(text.as_bytes()), Parsed::Body { expect_continue: false });
        let whole = "POST /api/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello";
        let (r, n) = complete(whole);
        assert_eq!((r.body, n), (&b"hello"[..], whole.len()));
    }

    #[test]
    fn malformed_and_oversized_requests() {
        assert_eq!(parse(b"GARBAGE\x01\x02\r\n\r\n"), Parsed::Bad(400));
        assert_eq!(parse(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: x\r\n\r\n"), Parsed::Bad(400));
        assert_eq!(parse(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"), Parsed::Bad(501));
        assert_eq!(parse(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 999999\r\n\r\n"), Parsed::Bad(413));
        let long = alloc::format!("GET /{} HTTP/1.1\r\n", "a".repeat(MAX_HEAD));
        assert_eq!(parse(long.as_bytes()), Parsed::Bad(431));
        let many: String = (0..=MAX_HEADERS).map(|i| alloc::format!("X-{i}: y\r\n")).collect();
        assert_eq!(parse(alloc::format!("GET / HTTP/1.1\r\nHost: x\r\n{many}\r\n").as_bytes()), Parsed::Bad(431));
        // A partial head is just incomplete (slow clients are timed out by
        // the server loop, not refused here).
        assert_eq!(parse(b"GET / HTT"), Parsed::Incomplete);
        // A target that is neither origin- nor absolute-form.
        assert_eq!(parse(b"GET foo HTTP/1.1\r\nHost: x\r\n\r\n"), Parsed::Bad(400));
    }

    #[test]
    fn host_is_required_on_http_1_1() {
        assert_eq!(parse(b"GET / HTTP/1.1\r\n\r\n"), Parsed::Bad(400));
        assert_eq!(parse(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), Parsed::Bad(400));
        // HTTP/1.0 has no such rule.
        assert!(matches!(parse(b"GET / HTTP/1.0\r\n\r\n"), Parsed::Complete(..)));
    }

    #[test]
    fn absolute_form_targets() {
        assert_eq!(
            complete("GET http://example.com/api/stats?x=1 HTTP/1.1\r\nHost: e\r\n\r\n").0.path,
            "/api/stats?x=1"
        );
        assert_eq!(complete("GET HTTP://example.com HTTP/1.1\r\nHost: e\r\n\r\n").0.path, "/");
        assert_eq!(complete("GET https://h:80?q HTTP/1.1\r\nHost: e\r\n\r\n").0.path, "/");
        assert_eq!(target_path("http://"), None);
        assert_eq!(target_path("ftp://x/"), None);
    }

    #[test]
    fn strict_content_length() {
        assert_eq!(content_length(b"5"), Some(5));
        assert_eq!(content_length(b" 12 "), Some(12));
        for bad in [&b"+5"[..], b"-1", b"5 5", b"5,5", b"", b"0x10", b"99999999999999999999999"] {
            assert_eq!(content_length(bad), None, "{:?}", core::str::from_utf8(bad));
        }
        let plus = b"POST /api/echo HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello";
        assert_eq!(parse(plus), Parsed::Bad(400));
        let differ = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab";
        assert_eq!(parse(differ), Parsed::Bad(400));
        let same = "POST /api/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nab";
        assert_eq!(complete(same).0.body, b"ab");
    }

    #[test]
    fn expect_continue() {
        let head = b"POST /api/echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n";
        assert_eq!(parse(head), Parsed::Body { expect_continue: true });
        let mut whole = head.to_vec();
        whole.extend_from_slice(b"abc");
        assert!(matches!(parse(&whole), Parsed::Complete(..)));
        let other = b"POST /api/echo HTTP/1.1\r\nHost: x\r\nExpect: magic\r\nContent-Length: 3\r\n\r\n";
        assert_eq!(parse(other), Parsed::Bad(417));
        assert_eq!(CONTINUE, b"HTTP/1.1 100 Continue\r\n\r\n");
    }

    #[test]
    fn routes() {
        let stats = || String::from("{\"cores\":8}");
        let req = |method, path| Request { method, path, body: &[], content_type: None, keep_alive: true };
        assert_eq!(route(&req("GET", "/"), stats).status, 200);
        assert_eq!(&*route(&req("GET", "/api/stats?x=1"), stats).body, b"{\"cores\":8}");
        assert_eq!(route(&req("GET", "/nope"), stats).status, 404);
        // HEAD on every GET route.
        for path in ["/", "/api/stats"] {
            let head = req("HEAD", path);
            assert_eq!(route(&head, stats).status, 200, "{path}");
            assert!(head_only(&head));
        }
        let wrong = route(&req("GET", "/api/echo"), stats);
        assert_eq!((wrong.status, wrong.allow), (405, Some("POST")));
        let wrong = route(&req("DELETE", "/api/stats"), stats);
        assert_eq!((wrong.status, wrong.allow), (405, Some("GET, HEAD")));
        let post = Request {
            method: "POST",
            path: "/api/echo",
            body: b"hi",
            content_type: Some("text/plain"),
            keep_alive: true,
        };
        let echoed = route(&post, stats);
        assert_eq!((echoed.status, &*echoed.body, echoed.content_type), (200, &b"hi"[..], "text/plain; charset=utf-8"));
    }

    #[test]
    fn response_bytes_have_exact_length() {
        let bytes = Response::new(200, "text/plain", &b"abc"[..]).to_bytes(true);
        let text = core::str::from_utf8(&bytes).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(text.contains("Content-Length: 3\r\n"));
        assert!(text.contains("Connection: keep-alive\r\n"));
        assert!(text.ends_with("\r\n\r\nabc"));
    }

    #[test]
    fn head_response_has_the_get_length_and_no_body() {
        let mut out = Vec::new();
        Response::new(200, "text/plain", &b"abcd"[..]).write_into(&mut out, true, true).unwrap();
        let text = core::str::from_utf8(&out).unwrap();
        assert!(text.contains("Content-Length: 4\r\n") && text.ends_with("\r\n\r\n"), "{text}");
    }

    #[test]
    fn busy_response_says_when_to_retry() {
        let busy = Response { retry_after: Some(1), ..Response::error(503) }.to_bytes(false);
        let text = core::str::from_utf8(&busy).unwrap();
        assert!(text.starts_with("HTTP/1.1 503 Service Unavailable\r\n") && text.contains("Retry-After: 1\r\n"));
    }
}
