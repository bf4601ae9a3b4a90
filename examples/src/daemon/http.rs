//! The daemon's HTTP server: Transmission's RPC at `/transmission/rpc`,
//! our page at `/`, and optionally a web root (Transmission's own web
//! client, say) at `/transmission/web/`.
//!
//! Every request passes, in order: the `Host` check (DNS rebinding: only
//! IP literals, `localhost` and configured names), HTTP Basic
//! authentication when configured, then the route. The RPC also needs the
//! `X-Transmission-Session-Id` the server handed out (a page of another
//! site cannot read that header, so it cannot forge a request: CSRF), and
//! its body is limited in size.

use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use base64::Engine as _;
use tiny_http::{Header, Request, Response};

use super::rpc;
use super::state::Daemon;

/// Our page, embedded (no build step).
const INDEX_HTML: &str = include_str!("web/index.html");
const APP_JS: &str = include_str!("web/app.js");
const STYLE_CSS: &str = include_str!("web/style.css");

/// Worker threads calling `recv`.
const WORKERS: usize = 4;

/// The RPC path; Transmission's clients add a trailing slash.
const RPC_PATH: &str = "/transmission/rpc";
/// Where a configured web root is served.
const WEB_PATH: &str = "/transmission/web";

/// The name of the CSRF header.
pub const SESSION_HEADER: &str = "X-Transmission-Session-Id";

/// What the server needs to know.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Where to listen.
    pub bind: SocketAddr,
    /// `(user, password)` for HTTP Basic authentication.
    pub auth: Option<(String, String)>,
    /// Host names accepted besides IP literals and `localhost`.
    pub host_whitelist: Vec<String>,
    /// Largest request body, bytes.
    pub max_body: usize,
    /// A folder served at `/transmission/web/`.
    pub web_root: Option<PathBuf>,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// Binding the address failed.
    #[error("cannot listen on {addr}: {why}")]
    Bind {
        /// Where.
        addr: SocketAddr,
        /// Why.
        why: String,
    },
    /// A worker thread could not start.
    #[error("cannot start an HTTP thread: {0}")]
    Thread(#[from] std::io::Error),
    /// The web root cannot be served.
    #[error("web root {path}: {source}")]
    WebRoot {
        /// The folder.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// A running server.
pub struct Server {
    server: Arc<tiny_http::Server>,
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    workers: Vec<JoinHandle<()>>,
}

struct Shared {
    daemon: Arc<Mutex<Daemon>>,
    ctx: rpc::Context,
    config: HttpConfig,
    web_root: Option<PathBuf>,
}

impl Server {
    /// Binds and starts the workers. `ctx.rpc_port` is filled in with the
    /// port actually bound.
    pub fn start(
        config: HttpConfig,
        daemon: Arc<Mutex<Daemon>>,
        mut ctx: rpc::Context,
    ) -> Result<Server, HttpError> {
        let server = tiny_http::Server::http(config.bind).map_err(|e| HttpError::Bind {
            addr: config.bind,
            why: e.to_string(),
        })?;
        let addr = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| HttpError::Bind {
                addr: config.bind,
                why: "not an IP listener".into(),
            })?;
        ctx.rpc_port = addr.port();
        let web_root = match &config.web_root {
            Some(root) => Some(root.canonicalize().map_err(|source| HttpError::WebRoot {
                path: root.display().to_string(),
                source,
            })?),
            None => None,
        };
        let server = Arc::new(server);
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Shared {
            daemon,
            ctx,
            config,
            web_root,
        });
        let mut workers = Vec::new();
        for _ in 0..WORKERS {
            let server = server.clone();
            let stop = stop.clone();
            let shared = shared.clone();
            workers.push(crate::engine::spawn("http", move || {
                while !stop.load(Ordering::SeqCst) {
                    match server.recv() {
                        Ok(request) => serve(&shared, request),
                        Err(e) => {
                            log::debug!(target: "rustico", "http: {e}");
                            if stop.load(Ordering::SeqCst) {
                                return;
                            }
                        }
                    }
                }
            })?);
        }
        Ok(Server {
            server,
            addr,
            stop,
            workers,
        })
    }

    /// The address bound.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops the workers (requests in progress finish first).
    pub fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        for _ in &self.workers {
            self.server.unblock();
        }
        for w in self.workers {
            let _ = w.join();
        }
    }
}

fn header(name: &str, value: &str) -> Option<Header> {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).ok()
}

fn respond(
    request: Request,
    status: u16,
    content_type: &str,
    body: Vec<u8>,
    extra: &[(&str, &str)],
) {
    let mut response = Response::from_data(body).with_status_code(status);
    let common = [
        ("Content-Type", content_type),
        ("X-Content-Type-Options", "nosniff"),
        ("X-Frame-Options", "DENY"),
        ("Cache-Control", "no-store"),
    ];
    for (name, value) in common.iter().chain(extra) {
        if let Some(h) = header(name, value) {
            response.add_header(h);
        }
    }
    if let Err(e) = request.respond(response) {
        log::debug!(target: "rustico", "http: cannot answer: {e}");
    }
}

fn text(request: Request, status: u16, message: &str, extra: &[(&str, &str)]) {
    respond(
        request,
        status,
        "text/plain; charset=utf-8",
        format!("{message}\n").into_bytes(),
        extra,
    );
}

fn header_value<'a>(request: &'a Request, name: &str) -> Option<&'a str> {
    request
        .headers()
        .iter()
        .find(|h| h.field.as_str().as_str().eq_ignore_ascii_case(name))
        .map(|h| h.value.as_str())
}

/// Whether a `Host` header names us: an IP literal, `localhost`, or a
/// configured name (with any port).
pub fn host_allowed(host: &str, whitelist: &[String]) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        // [v6]:port
        match rest.split_once(']') {
            Some((v6, tail)) if tail.is_empty() || tail.starts_with(':') => {
                return v6.parse::<std::net::Ipv6Addr>().is_ok()
            }
            _ => return false,
        }
    } else {
        host.rsplit_once(':').map_or(host, |(name, _)| name)
    };
    if name.parse::<IpAddr>().is_ok() {
        return true;
    }
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost" || whitelist.iter().any(|w| w.eq_ignore_ascii_case(&name))
}

/// Compares without stopping at the first difference.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn authorized(request: &Request, user: &str, password: &str) -> bool {
    let Some(value) = header_value(request, "Authorization") else {
        return false;
    };
    let Some(encoded) = value.strip_prefix("Basic ") else {
        return false;
    };
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
        return false;
    };
    same(&decoded, format!("{user}:{password}").as_bytes())
}

fn serve(shared: &Shared, request: Request) {
    let started = std::time::Instant::now();
    let what = format!("{} {}", request.method(), request.url());
    serve_checked(shared, request);
    let took = started.elapsed();
    if took > std::time::Duration::from_secs(1) {
        log::info!(target: "rustico", "http: {what} took {:.1} s", took.as_secs_f64());
    }
}

fn serve_checked(shared: &Shared, request: Request) {
    let host_ok = header_value(&request, "Host")
        .is_some_and(|h| host_allowed(h, &shared.config.host_whitelist));
    if !host_ok {
        // Transmission answers a bad Host with 421 too.
        return text(request, 421, "Misdirected request: this Host is not allowed (DNS rebinding protection); add it to [daemon] rpc_host_whitelist", &[]);
    }
    if let Some((user, password)) = &shared.config.auth {
        if !authorized(&request, user, password) {
            return text(
                request,
                401,
                "Unauthorized",
                &[("WWW-Authenticate", "Basic realm=\"rustico\"")],
            );
        }
    }
    let url = request.url().to_string();
    let path = url.split(['?', '#']).next().unwrap_or_default();
    if path == RPC_PATH || path == "/transmission/rpc/" {
        return serve_rpc(shared, request);
    }
    if request.method() != &tiny_http::Method::Get && request.method() != &tiny_http::Method::Head {
        return text(
            request,
            405,
            "Method not allowed",
            &[("Allow", "GET, HEAD")],
        );
    }
    const PAGE_CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'";
    let csp = [("Content-Security-Policy", PAGE_CSP)];
    match path {
        "/" | "/index.html" => {
            // A page of ours may know the CSRF token: other sites cannot
            // read it (no CORS), and the Host check keeps rebinding out.
            let page = INDEX_HTML.replace("{{SESSION_ID}}", &shared.ctx.session_id);
            respond(
                request,
                200,
                "text/html; charset=utf-8",
                page.into_bytes(),
                &csp,
            )
        }
        "/app.js" => respond(
            request,
            200,
            "text/javascript; charset=utf-8",
            APP_JS.into(),
            &csp,
        ),
        "/style.css" => respond(
            request,
            200,
            "text/css; charset=utf-8",
            STYLE_CSS.into(),
            &csp,
        ),
        "/transmission" | "/transmission/" | WEB_PATH => {
            text(request, 301, "Moved", &[("Location", "/transmission/web/")])
        }
        _ => match path.strip_prefix("/transmission/web/") {
            Some(rest) => serve_web_root(shared, request, rest),
            None => text(request, 404, "Not found", &[]),
        },
    }
}

fn serve_rpc(shared: &Shared, mut request: Request) {
    let session = &shared.ctx.session_id;
    let given = header_value(&request, SESSION_HEADER).unwrap_or_default();
    if !same(given.as_bytes(), session.as_bytes()) {
        let body = format!(
            "<h1>409: Conflict</h1><p>Your request had an invalid session id. Send the header {SESSION_HEADER}: {session}</p>"
        );
        return respond(
            request,
            409,
            "text/html; charset=utf-8",
            body.into_bytes(),
            &[(SESSION_HEADER, session.as_str())],
        );
    }
    if request.method() != &tiny_http::Method::Post {
        return text(request, 405, "The RPC takes POST", &[("Allow", "POST")]);
    }
    let max = shared.config.max_body;
    if request.body_length().is_some_and(|n| n > max) {
        return text(
            request,
            413,
            &format!("Request body larger than {max} bytes"),
            &[("Connection", "close")],
        );
    }
    let mut body = Vec::new();
    let read = request
        .as_reader()
        .take(max as u64 + 1)
        .read_to_end(&mut body);
    if let Err(e) = read {
        return text(request, 400, &format!("Cannot read the body: {e}"), &[]);
    }
    if body.len() > max {
        return text(
            request,
            413,
            &format!("Request body larger than {max} bytes"),
            &[("Connection", "close")],
        );
    }
    let json_type = "application/json; charset=utf-8";
    let value: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            let answer = serde_json::json!({
                "result": format!("malformed JSON: {e}"),
                "arguments": {},
            });
            return respond(
                request,
                400,
                json_type,
                answer.to_string().into_bytes(),
                &[],
            );
        }
    };
    let answer = rpc::handle(&shared.daemon, &shared.ctx, &value);
    respond(
        request,
        200,
        json_type,
        answer.to_string().into_bytes(),
        &[],
    )
}

/// Percent-decodes a URL path; `None` for bad escapes or non-UTF-8.
fn percent_decode(path: &str) -> Option<String> {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes.get(i) {
            Some(b'%') => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            Some(&b) => {
                out.push(b);
                i += 1;
            }
            None => return None,
        }
    }
    String::from_utf8(out).ok()
}

/// The file under `root` that a URL path names, if it is a plain relative
/// path (no `..`, no hidden names, no backslashes) that stays inside
/// `root` once symbolic links are resolved.
pub fn resolve_under(root: &Path, url_path: &str) -> Option<PathBuf> {
    let decoded = percent_decode(url_path)?;
    let mut path = root.to_path_buf();
    for part in decoded.split('/').filter(|p| !p.is_empty()) {
        if part.starts_with('.') || part.contains(['\\', '\0', ':']) {
            return None;
        }
        path.push(part);
    }
    if path.is_dir() {
        path.push("index.html");
    }
    let real = path.canonicalize().ok()?;
    (real.starts_with(root) && real.is_file()).then_some(real)
}

fn content_type(path: &Path) -> &'static str {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
    {
        "html" | "htm" => "text/html; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "png" => "image/png",
        "gif" => "image/gif",
        "jpg" | "jpeg" => "image/jpeg",
        "svg" => "image/svg+xml",
        "ico" => "image/x-icon",
        "json" => "application/json",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        _ => "application/octet-stream",
    }
}

fn serve_web_root(shared: &Shared, request: Request, rest: &str) {
    let Some(root) = &shared.web_root else {
        return text(
            request,
            404,
            "No web root is configured ([daemon] web_root)",
            &[],
        );
    };
    let Some(file) = resolve_under(root, rest) else {
        return text(request, 404, "Not found", &[]);
    };
    match std::fs::read(&file) {
        Ok(bytes) => respond(request, 200, content_type(&file), bytes, &[]),
        Err(_) => text(request, 404, "Not found", &[]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_check_takes_ip_literals_localhost_and_the_whitelist_only() {
        let list = vec!["box.lan".to_string()];
        for ok in [
            "127.0.0.1:9091",
            "127.0.0.1",
            "[::1]:9091",
            "localhost:1",
            "LOCALHOST",
            "box.lan:9091",
        ] {
            assert!(host_allowed(ok, &list), "{ok}");
        }
        for bad in [
            "evil.example:9091",
            "evil.example",
            "127.0.0.1.evil.example",
            "[::1",
            "[nope]:1",
            "",
        ] {
            assert!(!host_allowed(bad, &list), "{bad}");
        }
    }

    #[test]
    fn web_root_paths_cannot_leave_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("web");
        std::fs::create_dir_all(root.join("js")).unwrap();
        std::fs::write(root.join("index.html"), "i").unwrap();
        std::fs::write(root.join("js/a.js"), "a").unwrap();
        std::fs::write(dir.path().join("secret"), "s").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret"), root.join("link")).unwrap();
        let root = root.canonicalize().unwrap();
        assert_eq!(resolve_under(&root, "js/a.js"), Some(root.join("js/a.js")));
        assert_eq!(resolve_under(&root, ""), Some(root.join("index.html")));
        for bad in [
            "../secret",
            "js/../../secret",
            "%2e%2e/secret",
            "%2E%2E%2Fsecret",
            "link",
            ".hidden",
            "js\\..\\..\\secret",
            "%zz",
            "%c0%ae%c0%ae/secret",
        ] {
            assert_eq!(resolve_under(&root, bad), None, "{bad}");
        }
    }
}
