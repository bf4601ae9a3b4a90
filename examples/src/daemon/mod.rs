//! `rustico daemon`: runs until stopped, keeps its torrents in a state
//! folder, and serves Transmission's RPC and a web page over HTTP.
//!
//! ```text
//!   HTTP workers (tiny_http) --rpc--> Daemon (torrents, state folder) --> Engine
//!        |                                                                   |
//!   page at /, web root at /transmission/web/             torrent managers, peers
//! ```

pub mod http;
pub mod rpc;
pub mod server;
pub mod state;

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::cli::{DaemonArgs, NetArgs};
use crate::config::Config;

/// How often the state folder's counters are saved while running.
const SAVE_EVERY: Duration = Duration::from_secs(30);
/// How often the main thread looks at the stop flag.
const TICK: Duration = Duration::from_millis(100);

/// Why the daemon did not start.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The configuration file is unreadable or invalid.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// Only one of `rpc_username` and `rpc_password` is set.
    #[error("[daemon]: set both rpc_username and rpc_password, or neither")]
    HalfCredentials,
    /// The RPC would be reachable from other hosts without a password.
    #[error("[daemon]: refusing to serve the RPC on {bind} without authentication; set rpc_username and rpc_password")]
    Unauthenticated {
        /// The configured `rpc_bind`.
        bind: IpAddr,
    },
    /// The state folder's absolute path cannot be found.
    #[error("{}: {source}", path.display())]
    StateDir {
        /// The folder, as configured.
        path: std::path::PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The peer port cannot be bound.
    #[error(transparent)]
    Listen(#[from] crate::run::ListenError),
    /// The state folder cannot be read.
    #[error(transparent)]
    State(#[from] state::StateError),
    /// The RPC server did not start.
    #[error(transparent)]
    Http(#[from] http::HttpError),
}

/// A random token for `X-Transmission-Session-Id`.
fn session_id() -> String {
    let mut out = String::new();
    let mut state = crate::engine::seed_from_clock();
    for _ in 0..3 {
        state = crate::engine::splitmix(state);
        out.push_str(&format!("{state:016x}"));
    }
    out
}

/// `rustico daemon`.
pub fn run(args: &DaemonArgs, verbose: u8) -> Result<(), DaemonError> {
    let config = Config::load(args.config.as_deref())?;
    crate::run::init_logging(verbose, &config);
    let settings = &config.daemon;
    let auth = match (&settings.rpc_username, &settings.rpc_password) {
        (Some(user), Some(password)) => Some((user.clone(), password.clone())),
        (None, None) => None,
        _ => return Err(DaemonError::HalfCredentials),
    };
    if !settings.rpc_bind.is_loopback() && auth.is_none() {
        return Err(DaemonError::Unauthenticated {
            bind: settings.rpc_bind,
        });
    }
    let state_dir = args
        .state
        .clone()
        .or_else(|| settings.state_dir.clone())
        .unwrap_or_else(|| config.state_dir().join("daemon"));
    // Torrents keep their folder across restarts from anywhere.
    let state_dir = std::path::absolute(&state_dir).map_err(|source| DaemonError::StateDir {
        path: state_dir.clone(),
        source,
    })?;
    let download_dir = settings
        .download_dir
        .clone()
        .or_else(|| config.download_dir.clone())
        .unwrap_or_else(|| state_dir.join("downloads"));
    let interrupted = crate::run::interrupt_flag();
    let net = NetArgs {
        port: args.port,
        ..NetArgs::default()
    };
    let engine = crate::run::start_engine(&config, &net, IpAddr::from([0, 0, 0, 0]))?;
    let peer_port = engine.port();
    let dht = engine.dht().is_some();
    log::info!(target: "rustico", "daemon: peers on port {peer_port}, state in {}", state_dir.display());
    let daemon = state::Daemon::open(engine, state_dir.clone(), download_dir)?;
    let ctx = rpc::Context {
        session_id: session_id(),
        peer_port,
        peer_limit: config.peers_per_torrent.max(1),
        max_connections: config.max_connections,
        max_upload_rate: config.max_upload_rate,
        max_download_rate: config.max_download_rate,
        dht,
        config_dir: state_dir.display().to_string(),
        rpc_port: 0,
        auth: auth.is_some(),
    };
    let http_config = http::HttpConfig {
        bind: SocketAddr::new(
            settings.rpc_bind,
            args.rpc_port.unwrap_or(settings.rpc_port),
        ),
        auth,
        host_whitelist: settings.rpc_host_whitelist.clone(),
        max_body: settings.rpc_max_body,
        web_root: settings.web_root.clone(),
    };
    let server = match http::Server::start(http_config, daemon.clone(), ctx) {
        Ok(s) => s,
        Err(e) => {
            state::Daemon::shutdown(daemon);
            return Err(e.into());
        }
    };
    println!("rpc listening on {}", server.addr());
    // Tests and scripts wait for this line; if stdout is gone, nobody is
    // waiting.
    if let Err(e) = std::io::stdout().flush() {
        log::debug!(target: "rustico", "daemon: stdout: {e}");
    }
    let mut next_save = Instant::now() + SAVE_EVERY;
    while !interrupted.load(Ordering::SeqCst) {
        std::thread::sleep(TICK);
        if Instant::now() >= next_save {
            next_save = Instant::now() + SAVE_EVERY;
            let d = state::lock(&daemon);
            for id in d.torrents.iter().map(|e| e.saved.id).collect::<Vec<_>>() {
                d.save_entry(id);
            }
            d.save_totals();
        }
    }
    eprintln!("rustico: stopping the daemon (saving resume data, telling trackers)");
    server.stop();
    state::Daemon::shutdown(daemon);
    Ok(())
}
