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

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use base64::Engine as _;

use super::rpc;
use super::server::{self, Request, Response};
use super::state::Daemon;

/// Our page, embedded (no build step).
const INDEX_HTML: &str = include_str!("web/index.html");
const APP_JS: &str = include_str!("web/app.js");
const STYLE_CSS: &str = include_str!("web/style.css");

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
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Where.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
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
    inner: server::Server,
}

struct Shared {
    daemon: Arc<Mutex<Daemon>>,
    ctx: rpc::Context,
    config: HttpConfig,
    web_root: Option<PathBuf>,
}

impl Server {
    /// Binds and starts serving. `ctx.rpc_port` is filled in with the
    /// port actually bound.
    pub fn start(
        config: HttpConfig,
        daemon: Arc<Mutex<Daemon>>,
        mut ctx: rpc::Context,
    ) -> Result<Server, HttpError> {
        let web_root = match &config.web_root {
            Some(root) => Some(root.canonicalize().map_err(|source| HttpError::WebRoot {
                path: root.display().to_string(),
                source,
            })?),
            None => None,
        };
        // The port is known only once bound (the session-get answer names
        // it): the handler finds the shared state in a slot set right after.
        let bind = config.bind;
        let max_body = config.max_body;
        let shared = Arc::new(Mutex::new(None::<Arc<Shared>>));
        let slot = shared.clone();
        let handler: server::Handler = Arc::new(move |request| {
            // The slot is only ever replaced whole: a poisoned lock still
            // holds a valid value.
            let current = slot
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone();
            match current {
                Some(shared) => serve(&shared, request),
                None => server::simple(503, "Starting"),
            }
        });
        let inner =
            server::Server::start(bind, max_body, handler).map_err(|e| HttpError::Bind {
                addr: bind,
                source: e,
            })?;
        ctx.rpc_port = inner.addr().port();
        {
            let mut s = shared
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            *s = Some(Arc::new(Shared {
                daemon,
                ctx,
                config,
                web_root,
            }));
        }
        Ok(Server { inner })
    }

    /// The address bound.
    pub fn addr(&self) -> SocketAddr {
        self.inner.addr()
    }

    /// Stops serving (requests in progress finish first).
    pub fn stop(self) {
        self.inner.stop();
    }
}

fn respond(status: u16, content_type: &str, body: Vec<u8>, extra: &[(&str, &str)]) -> Response {
    let common = [
        ("Content-Type", content_type),
        ("X-Content-Type-Options", "nosniff"),
        ("X-Frame-Options", "DENY"),
        ("Cache-Control", "no-store"),
    ];
    Response {
        status,
        headers: common
            .iter()
            .chain(extra)
            .map(|(n, v)| ((*n).to_string(), (*v).to_string()))
            .collect(),
        body,
    }
}

fn text(status: u16, message: &str, extra: &[(&str, &str)]) -> Response {
    respond(
        status,
        "text/plain; charset=utf-8",
        format!("{message}\n").into_bytes(),
        extra,
    )
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
    let Some(value) = request.header("Authorization") else {
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

fn serve(shared: &Shared, request: Request) -> Response {
    let started = std::time::Instant::now();
    let what = format!("{} {}", request.method, request.url);
    let response = serve_checked(shared, request);
    let took = started.elapsed();
    if took > std::time::Duration::from_secs(1) {
        log::info!(target: "rustico", "http: {what} took {:.1} s", took.as_secs_f64());
    }
    response
}

fn serve_checked(shared: &Shared, request: Request) -> Response {
    let host_ok = request
        .header("Host")
        .is_some_and(|h| host_allowed(h, &shared.config.host_whitelist));
    if !host_ok {
        // Transmission answers a bad Host with 421 too.
        return text(
            421,
            "Misdirected request: this Host is not allowed (DNS rebinding protection); add it to [daemon] rpc_host_whitelist",
            &[],
        );
    }
    if let Some((user, password)) = &shared.config.auth {
        if !authorized(&request, user, password) {
            return text(
                401,
                "Unauthorized",
                &[("WWW-Authenticate", "Basic realm=\"rustico\"")],
            );
        }
    }
    let path = request
        .url
        .split(['?', '#'])
        .next()
        .unwrap_or_default()
        .to_string();
    if path == RPC_PATH || path == "/transmission/rpc/" {
        return serve_rpc(shared, &request);
    }
    if request.method != "GET" && request.method != "HEAD" {
        return text(405, "Method not allowed", &[("Allow", "GET, HEAD")]);
    }
    const PAGE_CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'";
    let csp = [("Content-Security-Policy", PAGE_CSP)];
    match path.as_str() {
        "/" | "/index.html" => {
            // A page of ours may know the CSRF token: other sites cannot
            // read it (no CORS), and the Host check keeps rebinding out.
            let page = INDEX_HTML.replace("{{SESSION_ID}}", &shared.ctx.session_id);
            respond(200, "text/html; charset=utf-8", page.into_bytes(), &csp)
        }
        "/app.js" => respond(200, "text/javascript; charset=utf-8", APP_JS.into(), &csp),
        "/style.css" => respond(200, "text/css; charset=utf-8", STYLE_CSS.into(), &csp),
        "/transmission" | "/transmission/" | WEB_PATH => {
            text(301, "Moved", &[("Location", "/transmission/web/")])
        }
        other => match other.strip_prefix("/transmission/web/") {
            Some(rest) => serve_web_root(shared, rest),
            None => text(404, "Not found", &[]),
        },
    }
}

fn serve_rpc(shared: &Shared, request: &Request) -> Response {
    let session = &shared.ctx.session_id;
    let given = request.header(SESSION_HEADER).unwrap_or_default();
    if !same(given.as_bytes(), session.as_bytes()) {
        let body = format!(
            "<h1>409: Conflict</h1><p>Your request had an invalid session id. Send the header {SESSION_HEADER}: {session}</p>"
        );
        return respond(
            409,
            "text/html; charset=utf-8",
            body.into_bytes(),
            &[(SESSION_HEADER, session.as_str())],
        );
    }
    if request.method != "POST" {
        return text(405, "The RPC takes POST", &[("Allow", "POST")]);
    }
    // The server refused larger bodies before reading them.
    let json_type = "application/json; charset=utf-8";
    let value: serde_json::Value = match serde_json::from_slice(&request.body) {
        Ok(v) => v,
        Err(e) => {
            let answer = serde_json::json!({
                "result": format!("malformed JSON: {e}"),
                "arguments": {},
            });
            return respond(400, json_type, answer.to_string().into_bytes(), &[]);
        }
    };
    let answer = rpc::handle(&shared.daemon, &shared.ctx, &value);
    respond(200, json_type, answer.to_string().into_bytes(), &[])
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

fn serve_web_root(shared: &Shared, rest: &str) -> Response {
    let Some(root) = &shared.web_root else {
        return text(404, "No web root is configured ([daemon] web_root)", &[]);
    };
    let Some(file) = resolve_under(root, rest) else {
        return text(404, "Not found", &[]);
    };
    match std::fs::read(&file) {
        Ok(bytes) => respond(200, content_type(&file), bytes, &[]),
        Err(_) => text(404, "Not found", &[]),
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
