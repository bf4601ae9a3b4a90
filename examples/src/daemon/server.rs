//! A small HTTP/1.1 server: one acceptor thread, one thread per
//! connection (at most [`MAX_CONNECTIONS`]), keep-alive, `Expect:
//! 100-continue`, and limits checked before anything is allocated: the
//! request head is at most [`MAX_HEAD`] bytes, a body larger than the
//! configured limit is refused with 413 before it is read, and chunked
//! request bodies are refused (every client of ours sends a length).
//! Parsing is `httparse`'s.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Most connections served at once; more get 503.
pub const MAX_CONNECTIONS: usize = 64;
/// Largest request line plus headers.
pub const MAX_HEAD: usize = 16 * 1024;
/// Most headers in a request.
const MAX_HEADERS: usize = 64;
/// An idle keep-alive connection is closed after this long.
const IDLE: Duration = Duration::from_secs(15);
/// How often a blocked read looks at the stop flag.
const POLL: Duration = Duration::from_millis(200);

/// A request, its body read in full.
#[derive(Debug, Clone)]
pub struct Request {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The request target, as sent (path and query).
    pub url: String,
    /// Headers in order, values as text (lossy for non-UTF-8).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Request {
    /// The first header of this name (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A response to write.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers besides `Content-Length` and `Connection`.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

/// What answers requests.
pub type Handler = Arc<dyn Fn(Request) -> Response + Send + Sync>;

/// A running server.
pub struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    active: Arc<AtomicUsize>,
    acceptor: Option<JoinHandle<()>>,
}

impl Server {
    /// Binds `bind` and serves until [`Server::stop`].
    pub fn start(bind: SocketAddr, max_body: usize, handler: Handler) -> std::io::Result<Server> {
        let listener = TcpListener::bind(bind)?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let active = Arc::new(AtomicUsize::new(0));
        let acceptor = {
            let stop = stop.clone();
            let active = active.clone();
            crate::engine::spawn("http", move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(mut stream) = stream else { continue };
                    if active.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
                        active.fetch_sub(1, Ordering::SeqCst);
                        let _ = write_response(
                            &mut stream,
                            &simple(503, "Too many connections"),
                            false,
                            true,
                        );
                        continue;
                    }
                    let handler = handler.clone();
                    let stop = stop.clone();
                    let done = active.clone();
                    let spawned = crate::engine::spawn("http-conn", move || {
                        serve_connection(stream, &handler, max_body, &stop);
                        done.fetch_sub(1, Ordering::SeqCst);
                    });
                    if spawned.is_err() {
                        active.fetch_sub(1, Ordering::SeqCst);
                    }
                }
            })?
        };
        Ok(Server {
            addr,
            stop,
            active,
            acceptor: Some(acceptor),
        })
    }

    /// The address bound.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, lets connections finish their request, waits for
    /// them (at most a few seconds).
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let wake = SocketAddr::new(loopback_for(self.addr.ip()), self.addr.port());
        let _ = TcpStream::connect_timeout(&wake, Duration::from_millis(500));
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.active.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn loopback_for(ip: std::net::IpAddr) -> std::net::IpAddr {
    if ip.is_unspecified() {
        std::net::IpAddr::from([127, 0, 0, 1])
    } else {
        ip
    }
}

/// A plain-text response.
pub fn simple(status: u16, message: &str) -> Response {
    Response {
        status,
        headers: vec![("Content-Type".into(), "text/plain; charset=utf-8".into())],
        body: format!("{message}\n").into_bytes(),
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        301 => "Moved Permanently",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        413 => "Payload Too Large",
        421 => "Misdirected Request",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

fn write_response(
    stream: &mut TcpStream,
    response: &Response,
    head_only: bool,
    close: bool,
) -> std::io::Result<()> {
    let mut out = format!(
        "HTTP/1.1 {} {}\r\n",
        response.status,
        reason(response.status)
    );
    for (name, value) in &response.headers {
        // Header values are ours; a line break would split the response.
        if name.contains(['\r', '\n']) || value.contains(['\r', '\n']) {
            continue;
        }
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str(&format!("Content-Length: {}\r\n", response.body.len()));
    out.push_str(if close {
        "Connection: close\r\n\r\n"
    } else {
        "Connection: keep-alive\r\n\r\n"
    });
    let mut bytes = out.into_bytes();
    if !head_only {
        bytes.extend_from_slice(&response.body);
    }
    stream.write_all(&bytes)?;
    stream.flush()
}

/// Reads more bytes into `buf`; `false` at end of stream, on error, on
/// stop, or once the connection was idle too long.
fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>, stop: &AtomicBool, since: Instant) -> bool {
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if stop.load(Ordering::SeqCst) || since.elapsed() > IDLE {
            return false;
        }
        match stream.read(&mut chunk) {
            Ok(0) => return false,
            Ok(n) => {
                // `read` returns at most the buffer's length; if it did
                // not, the connection is closed rather than served wrong.
                let Some(got) = chunk.get(..n) else {
                    debug_assert!(false, "read {n} bytes into {}", chunk.len());
                    return false;
                };
                buf.extend_from_slice(got);
                return true;
            }
            Err(e) if crate::engine::link::is_retry(&e) => {}
            Err(_) => return false,
        }
    }
}

/// What the head of a request says about its body and connection.
struct Head {
    request: Request,
    content_length: usize,
    close: bool,
    expect_continue: bool,
}

/// Parses a complete head; `Err` is the response that refuses it.
fn parse_head(bytes: &[u8], max_body: usize) -> Result<Head, Response> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    match parsed.parse(bytes) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(simple(400, "Incomplete request head")),
        Err(httparse::Error::TooManyHeaders) => return Err(simple(431, "Too many headers")),
        Err(e) => return Err(simple(400, &format!("Malformed request: {e}"))),
    }
    let method = parsed.method.unwrap_or_default().to_string();
    let url = parsed.path.unwrap_or_default().to_string();
    let http10 = parsed.version == Some(0);
    let headers: Vec<(String, String)> = parsed
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_string(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect();
    let request = Request {
        method,
        url,
        headers,
        body: Vec::new(),
    };
    if request.header("Transfer-Encoding").is_some() {
        return Err(simple(
            501,
            "Chunked request bodies are not supported; send Content-Length",
        ));
    }
    let mut content_length = 0usize;
    let mut seen: Option<&str> = None;
    for (name, value) in &request.headers {
        if name.eq_ignore_ascii_case("Content-Length") {
            if seen.is_some_and(|s| s != value) {
                return Err(simple(400, "Conflicting Content-Length headers"));
            }
            seen = Some(value);
            content_length = match value.trim().parse::<u64>() {
                Ok(n) if n > max_body as u64 => {
                    return Err(simple(
                        413,
                        &format!("Request body larger than {max_body} bytes"),
                    ))
                }
                Ok(n) => usize::try_from(n).unwrap_or(usize::MAX),
                Err(_) => return Err(simple(400, "Bad Content-Length")),
            };
        }
    }
    let connection = request
        .header("Connection")
        .unwrap_or_default()
        .to_ascii_lowercase();
    let close = connection.contains("close") || (http10 && !connection.contains("keep-alive"));
    let expect_continue = request
        .header("Expect")
        .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
    Ok(Head {
        request,
        content_length,
        close,
        expect_continue,
    })
}

fn serve_connection(mut stream: TcpStream, handler: &Handler, max_body: usize, stop: &AtomicBool) {
    let _ = stream.set_read_timeout(Some(POLL));
    let _ = stream.set_write_timeout(Some(IDLE));
    let _ = stream.set_nodelay(true);
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let since = Instant::now();
        let head_end = loop {
            let found = buf.windows(4).position(|w| w == b"\r\n\r\n");
            if found.map_or(buf.len(), |pos| pos + 4) > MAX_HEAD {
                let _ = write_response(
                    &mut stream,
                    &simple(431, "Request head too large"),
                    false,
                    true,
                );
                return;
            }
            if let Some(pos) = found {
                break pos + 4;
            }
            if !fill(&mut stream, &mut buf, stop, since) {
                return;
            }
        };
        // `head_end` was found inside `buf`.
        let Some(head_bytes) = buf.get(..head_end) else {
            debug_assert!(false, "head end {head_end} beyond {} bytes", buf.len());
            return;
        };
        let head = match parse_head(head_bytes, max_body) {
            Ok(head) => head,
            Err(refusal) => {
                // The body (if any) is not read: close instead.
                let _ = write_response(&mut stream, &refusal, false, true);
                let _ = stream.shutdown(Shutdown::Write);
                return;
            }
        };
        buf.drain(..head_end);
        if head.expect_continue
            && buf.len() < head.content_length
            && stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").is_err()
        {
            return;
        }
        let since = Instant::now();
        while buf.len() < head.content_length {
            if !fill(&mut stream, &mut buf, stop, since) {
                return;
            }
        }
        let mut request = head.request;
        request.body = buf.drain(..head.content_length).collect();
        let head_only = request.method == "HEAD";
        let response = handler(request);
        let close = head.close || stop.load(Ordering::SeqCst);
        if write_response(&mut stream, &response, head_only, close).is_err() || close {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_keep_alive_requests_and_stops() {
        let handler: Handler = Arc::new(|r: Request| Response {
            status: 200,
            headers: vec![],
            body: r.body,
        });
        let server = Server::start("127.0.0.1:0".parse().unwrap(), 100, handler).unwrap();
        let mut s = TcpStream::connect(server.addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        for body in ["one", "two"] {
            let req = format!(
                "POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            s.write_all(req.as_bytes()).unwrap();
            let mut got = vec![0u8; 512];
            let n = s.read(&mut got).unwrap();
            let text = String::from_utf8_lossy(&got[..n]).to_string();
            assert!(
                text.starts_with("HTTP/1.1 200 OK\r\n") && text.ends_with(body),
                "{text}"
            );
        }
        drop(s);
        server.stop();
    }

    #[test]
    fn heads_are_checked_before_bodies_are_read() {
        let ok = parse_head(
            b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n",
            10,
        )
        .unwrap();
        assert_eq!((ok.content_length, ok.close), (5, false));
        assert_eq!(ok.request.header("host"), Some("a"));
        let refused = |head: &[u8]| parse_head(head, 10).err().map(|r| r.status);
        assert_eq!(
            refused(b"POST / HTTP/1.1\r\nContent-Length: 100000000000000\r\n\r\n"),
            Some(413)
        );
        assert_eq!(
            refused(b"POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\n"),
            Some(413)
        );
        assert_eq!(
            refused(b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n"),
            Some(400)
        );
        assert_eq!(
            refused(b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
            Some(400)
        );
        assert_eq!(
            refused(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Some(501)
        );
        assert_eq!(refused(b"NOT HTTP\r\n\r\n"), Some(400));
        let old = parse_head(b"GET / HTTP/1.0\r\n\r\n", 10).unwrap();
        assert!(old.close);
    }
}
