//! `download`, `seed` and `demo`: start an engine, add torrents, show
//! progress until done.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustico_metainfo::{Magnet, Torrent, TorrentBuilder};

use crate::cli::{DemoArgs, DownloadArgs, NetArgs, SeedArgs};
use crate::config::Config;
use crate::config::ConfigError;
use crate::dht::DhtSettings;
use crate::engine::{Engine, EngineConfig, ManagerError, Status, TorrentHandle, TorrentOptions};
use crate::magnet::{FetchError, PeerSources};
use crate::meta::{MetaError, TorrentMeta};
use crate::progress::{use_bars, TorrentProgress};

const POLL: Duration = Duration::from_millis(50);
const SEEDING_LINE_EVERY: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the engine did not start.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// The port asked for with `--port` (or the daemon's) is not free.
    #[error("cannot listen on port {port}: {source}")]
    Port {
        /// The port asked for.
        port: u16,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Neither the configured port nor any other could be bound (or the
    /// DHT node could not start).
    #[error("cannot listen: {0}")]
    Any(#[source] std::io::Error),
}

/// Why `download`, `seed` or `demo` failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The configuration file is unreadable or invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The engine did not start.
    #[error(transparent)]
    Listen(#[from] ListenError),
    /// A `download` argument is a magnet link that does not parse.
    #[error("{link}: {source}")]
    BadMagnet {
        /// The argument.
        link: String,
        /// Why.
        #[source]
        source: rustico_metainfo::MagnetError,
    },
    /// A torrent file is unreadable, invalid, or cannot be laid out.
    #[error(transparent)]
    Meta(#[from] MetaError),
    /// A magnet link's metadata could not be fetched.
    #[error(transparent)]
    Magnet(#[from] FetchError),
    /// Ctrl-C while the DHT was still looking for a magnet link's peers.
    #[error("interrupted while looking for peers")]
    InterruptedLookingForPeers,
    /// A folder could not be created.
    #[error("{}: {source}", path.display())]
    CreateDir {
        /// The folder.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A file could not be written.
    #[error("{}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A file could not be read.
    #[error("{}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A torrent stopped with an error.
    #[error(transparent)]
    Torrent(Arc<ManagerError>),
    /// A torrent's manager ended before the torrent was complete, without
    /// an error.
    #[error("{name}: stopped before completing")]
    Stopped {
        /// The torrent.
        name: String,
    },
    /// Ctrl-C (or SIGTERM) before every torrent was complete.
    #[error("interrupted before every torrent completed; run the same command again to resume")]
    Interrupted,
    /// Ctrl-C (or SIGTERM) during `demo`.
    #[error("demo interrupted")]
    DemoInterrupted,
    /// `demo` could not create its torrent.
    #[error("creating the torrent: {0}")]
    DemoTorrent(#[source] rustico_metainfo::CreateError),
    /// A `demo` leecher's file is not the seeder's.
    #[error("{}: content differs from the original", path.display())]
    DemoDiffers {
        /// The leecher's copy.
        path: PathBuf,
    },
    /// A broken invariant of this driver (a bug; debug builds panic).
    #[error("internal error: {what}")]
    Internal {
        /// The invariant.
        what: String,
    },
}

pub(crate) fn start_engine(
    config: &Config,
    net: &NetArgs,
    ip: IpAddr,
) -> Result<Engine, ListenError> {
    let dht = (config.dht && !net.no_dht).then(|| DhtSettings {
        port: net.dht_port.or(config.dht_port).unwrap_or(0),
        bind: match ip {
            IpAddr::V4(v4) => v4,
            IpAddr::V6(_) => std::net::Ipv4Addr::UNSPECIFIED,
        },
        bootstrap: if net.dht_bootstrap.is_empty() {
            config.dht_bootstrap.clone()
        } else {
            net.dht_bootstrap.clone()
        },
        state_file: Some(config.state_dir().join("dht-nodes")),
    });
    let engine_config = |port| EngineConfig {
        listen_port: port,
        listen_ip: ip,
        peers_per_torrent: config.peers_per_torrent.max(1),
        peers_per_ip: config.peers_per_ip.max(1),
        upload_slots: config.upload_slots.max(1),
        max_connections: config.max_connections,
        max_upload_rate: config.max_upload_rate,
        max_download_rate: config.max_download_rate,
        dht: dht.clone(),
        encryption: net.encryption.unwrap_or(config.encryption).into(),
    };
    match net.port {
        Some(port) => {
            Engine::start(engine_config(port)).map_err(|source| ListenError::Port { port, source })
        }
        // The configured port may be taken (another client): any port will
        // do, and only that second failure is reported.
        None => Engine::start(engine_config(config.listen_port))
            .or_else(|_| Engine::start(engine_config(0)))
            .map_err(ListenError::Any),
    }
}

/// Why [`watch`] stopped waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WatchEnd {
    /// Every torrent is complete and verified.
    Complete,
    /// SIGINT or SIGTERM arrived.
    Interrupted,
}

/// A flag set by SIGINT (Ctrl-C) or SIGTERM, so that the torrents stop
/// cleanly: peers closed, resume data flushed, trackers told `stopped`.
/// A second signal while that runs exits at once (exit status 1).
pub(crate) fn interrupt_flag() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // Registration fails only for forbidden signals, not these two; if
        // it did, the signal would keep its default action (terminate),
        // which loses nothing verified: logged, not fatal.
        let registered =
            signal_hook::flag::register_conditional_shutdown(signal, 1, Arc::clone(&flag))
                .and_then(|_| signal_hook::flag::register(signal, Arc::clone(&flag)));
        if let Err(e) = registered {
            debug_assert!(false, "signal {signal} cannot be handled: {e}");
            log::warn!(target: "rustico", "signal {signal} cannot be handled: {e}");
        }
    }
    flag
}

/// A `download` argument: a torrent file, or a magnet link whose
/// metadata comes later from peers.
enum Source {
    File(TorrentMeta),
    Magnet(Magnet),
}

fn load_source(source: &str) -> Result<Source, RunError> {
    if source.starts_with("magnet:") {
        return Magnet::parse(source)
            .map(Source::Magnet)
            .map_err(|e| RunError::BadMagnet {
                link: source.to_string(),
                source: e,
            });
    }
    Ok(TorrentMeta::from_file(Path::new(source)).map(Source::File)?)
}

/// Fetches a magnet link's metadata (no time limit: Ctrl-C stops it),
/// saves `DIR/NAME.torrent` and returns the torrent and the peers to dial.
fn resolve_magnet(
    magnet: &Magnet,
    args: &DownloadArgs,
    dir: &Path,
    engine: &Engine,
    interrupted: &AtomicBool,
) -> Result<(TorrentMeta, Vec<SocketAddr>), RunError> {
    let mut sources = PeerSources::from_magnet(magnet, &args.net.peers, engine.port());
    sources.encryption = engine.encryption();
    // A second run (resuming) finds the .torrent the first one saved.
    if let Some(name) = &magnet.display_name {
        let path = dir.join(crate::magnet::torrent_file_name(name));
        if let Ok(saved) = Torrent::from_file(&path) {
            if saved.info_hash() == magnet.info_hash {
                log::info!(target: "rustico", "{name}: metadata from {} (saved earlier)", path.display());
                return Ok((TorrentMeta::from_torrent(&saved)?, sources.peers));
            }
        }
    }
    if let Some(dht) = engine.dht() {
        // A magnet link has no private flag: its peers may come from the
        // DHT. With nothing else to go on, keep looking (a swarm's peers
        // announce on their own schedule) until some appear or Ctrl-C.
        let mut wait = Duration::from_secs(2);
        loop {
            let found = dht.get_peers(magnet.info_hash.0);
            log::info!(target: "rustico", "magnet: {} peers from the DHT", found.len());
            for addr in found {
                if !sources.peers.contains(&addr) {
                    sources.peers.push(addr);
                }
            }
            if !sources.peers.is_empty() || !sources.trackers.is_empty() {
                break;
            }
            log::info!(target: "rustico", "magnet: no peers yet; looking again in {} s", wait.as_secs());
            let until = Instant::now() + wait;
            while Instant::now() < until {
                if interrupted.load(Ordering::Relaxed) {
                    return Err(RunError::InterruptedLookingForPeers);
                }
                std::thread::sleep(POLL);
            }
            wait = (wait * 2).min(Duration::from_secs(60));
        }
    }
    let (torrent, file, answered) = crate::magnet::resolve(magnet, &sources, None, interrupted)?;
    std::fs::create_dir_all(dir).map_err(|source| RunError::CreateDir {
        path: dir.to_path_buf(),
        source,
    })?;
    let path = dir.join(crate::magnet::torrent_file_name(torrent.name()));
    std::fs::write(&path, &file).map_err(|source| RunError::Write {
        path: path.clone(),
        source,
    })?;
    log::info!(target: "rustico", "{}: metadata saved as {}", torrent.name(), path.display());
    let mut peers = sources.peers;
    for addr in answered {
        if !peers.contains(&addr) {
            peers.push(addr);
        }
    }
    Ok((TorrentMeta::from_torrent(&torrent)?, peers))
}

/// `rustico download`.
pub fn download(args: &DownloadArgs, verbose: u8) -> Result<(), RunError> {
    let config = Config::load(args.config.as_deref())?;
    init_logging(verbose, &config);
    let dir = args
        .output
        .clone()
        .or_else(|| config.download_dir.clone())
        .unwrap_or_else(|| PathBuf::from("."));
    let sources = args
        .torrents
        .iter()
        .map(|t| load_source(t))
        .collect::<Result<Vec<_>, _>>()?;
    let interrupted = interrupt_flag();
    let engine = start_engine(&config, &args.net, IpAddr::from([0, 0, 0, 0]))?;
    log::info!(target: "rustico", "listening on port {}", engine.port());
    let options = TorrentOptions {
        keep_seeding: args.seed,
        peers: args.net.peers.clone(),
        use_trackers: true,
        resume_path: None,
    };
    let mut handles = Vec::new();
    for source in sources {
        let (meta, options) = match source {
            Source::File(meta) => (meta, options.clone()),
            Source::Magnet(magnet) => {
                let resolved = resolve_magnet(&magnet, args, &dir, &engine, &interrupted);
                let (meta, peers) = match resolved {
                    Ok(r) => r,
                    Err(e) => {
                        for (_, h) in handles {
                            TorrentHandle::stop(h, STOP_TIMEOUT);
                        }
                        engine.shutdown();
                        return Err(e);
                    }
                };
                (
                    meta,
                    TorrentOptions {
                        peers,
                        ..options.clone()
                    },
                )
            }
        };
        let name = meta.name.clone();
        handles.push((name, engine.add_torrent(meta, dir.clone(), options)));
    }
    let outcome = watch(&handles, engine.dht(), !args.seed, &interrupted);
    if matches!(outcome, Ok(WatchEnd::Interrupted)) {
        eprintln!("rustico: interrupted; stopping cleanly (saving resume data, telling trackers)");
    }
    for (_, h) in handles {
        h.stop(STOP_TIMEOUT);
    }
    engine.shutdown();
    match outcome? {
        WatchEnd::Complete => Ok(()),
        WatchEnd::Interrupted if args.seed => Ok(()),
        WatchEnd::Interrupted => Err(RunError::Interrupted),
    }
}

/// `rustico seed`.
pub fn seed(args: &SeedArgs, verbose: u8) -> Result<(), RunError> {
    let config = Config::load(args.config.as_deref())?;
    init_logging(verbose, &config);
    let meta = TorrentMeta::from_file(&args.torrent)?;
    let interrupted = interrupt_flag();
    let engine = start_engine(&config, &args.net, IpAddr::from([0, 0, 0, 0]))?;
    eprintln!(
        "seeding {} on port {}",
        crate::text::shown(&meta.name),
        engine.port()
    );
    let options = TorrentOptions {
        keep_seeding: true,
        peers: args.net.peers.clone(),
        use_trackers: true,
        resume_path: None,
    };
    let name = meta.name.clone();
    let handle = engine.add_torrent(meta, args.dir.clone(), options);
    let handles = vec![(name, handle)];
    let outcome = watch(&handles, engine.dht(), false, &interrupted);
    if matches!(outcome, Ok(WatchEnd::Interrupted)) {
        eprintln!("rustico: interrupted; stopping cleanly (saving resume data, telling trackers)");
    }
    for (_, h) in handles {
        h.stop(STOP_TIMEOUT);
    }
    engine.shutdown();
    outcome.map(|_| ())
}

pub(crate) fn init_logging(verbose: u8, config: &Config) {
    let dir = config.log_dir();
    if let Some(path) = crate::logging::init(verbose, Some(&dir)) {
        log::debug!(target: "rustico", "logging to {}", path.display());
    }
}

/// Why the torrent stopped with an error, if it did.
pub(crate) fn torrent_error(status: &Status) -> Option<Arc<ManagerError>> {
    // The slot is only ever replaced whole: a poisoned lock still holds a
    // valid value.
    status
        .error
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone()
}

/// Shows progress until every torrent is complete (when `until_complete`)
/// or `interrupted` is set; an error of any torrent ends the wait with that
/// error.
fn watch(
    handles: &[(String, TorrentHandle)],
    dht: Option<&crate::dht::DhtNode>,
    until_complete: bool,
    interrupted: &AtomicBool,
) -> Result<WatchEnd, RunError> {
    let start = Instant::now();
    let bars = use_bars();
    let mut shows: Vec<TorrentProgress> = handles
        .iter()
        .map(|(name, h)| {
            TorrentProgress::new(name, h.status().total_bytes.load(Ordering::Relaxed), bars)
        })
        .collect();
    let mut finished = vec![false; handles.len()];
    let mut next_seeding_line = start + SEEDING_LINE_EVERY;
    loop {
        let now = Instant::now();
        for (i, (name, h)) in handles.iter().enumerate() {
            let status = h.status();
            if let Some(e) = torrent_error(status) {
                return Err(RunError::Torrent(e));
            }
            let mut snap = status.snapshot();
            snap.dht = dht.map(|node| {
                let stats = node.stats();
                (
                    stats.nodes.load(Ordering::Relaxed),
                    stats.peers_found.load(Ordering::Relaxed),
                )
            });
            let show = &mut shows[i];
            if !finished[i] && status.complete.load(Ordering::SeqCst) {
                finished[i] = true;
                if status.complete_on_disk.load(Ordering::SeqCst) {
                    // Nothing came from peers: the data was already here.
                    // (Not `downloaded == 0`: counters arrive in batches.)
                    show.finish_verified(&snap);
                } else {
                    show.finish(&snap, start.elapsed());
                }
                log::info!(target: "rustico", "{name}: complete and verified");
            } else if !finished[i] {
                show.update(&snap, now);
            }
            if status.stopped.load(Ordering::SeqCst) && !status.complete.load(Ordering::SeqCst) {
                return Err(RunError::Stopped { name: name.clone() });
            }
        }
        if until_complete && finished.iter().all(|&f| f) {
            return Ok(WatchEnd::Complete);
        }
        if interrupted.load(Ordering::SeqCst) {
            return Ok(WatchEnd::Interrupted);
        }
        if now >= next_seeding_line {
            next_seeding_line = now + SEEDING_LINE_EVERY;
            for (i, (name, h)) in handles.iter().enumerate() {
                if finished[i] {
                    let snap = h.status().snapshot();
                    crate::progress::print_line(&format!(
                        "{name}: seeding, up {}/s, uploaded {}, peers {}",
                        crate::progress::human_bytes(snap.up_rate as u64),
                        crate::progress::human_bytes(snap.uploaded),
                        snap.peers
                    ));
                }
            }
        }
        std::thread::sleep(POLL);
    }
}

/// `rustico demo`: a whole swarm on loopback.
pub fn demo(args: &DemoArgs, verbose: u8) -> Result<(), RunError> {
    // Without a log folder, `init` writes no file and returns no path.
    crate::logging::init(verbose, None);
    let size = args.size.max(1) * 1024 * 1024;
    let leechers = args.leechers.max(1);
    let root = std::env::temp_dir().join(format!("rustico-demo-{}", std::process::id()));
    let _cleanup = RemoveOnDrop(root.clone());
    let seed_dir = root.join("seed");
    std::fs::create_dir_all(&seed_dir).map_err(|source| RunError::CreateDir {
        path: seed_dir.clone(),
        source,
    })?;
    eprintln!(
        "demo: {} of random data, 1 seeder and {leechers} leechers on 127.0.0.1 (files in {})",
        crate::progress::human_bytes(size),
        root.display()
    );
    let data = random_bytes(0x5eed_f00d, size as usize);
    let file = seed_dir.join("demo.bin");
    std::fs::write(&file, &data).map_err(|source| RunError::Write {
        path: file.clone(),
        source,
    })?;
    let started = Instant::now();
    let torrent = TorrentBuilder::new(&file)
        .build(|_| {}, &AtomicBool::new(false))
        .map_err(RunError::DemoTorrent)?;
    // What the builder wrote, read back as any `.torrent` is.
    let torrent = Torrent::from_bytes(torrent.as_bytes()).map_err(|e| {
        debug_assert!(false, "a built torrent does not parse: {e}");
        RunError::Internal {
            what: format!("the demo's own torrent does not parse: {e}"),
        }
    })?;
    let meta = TorrentMeta::from_torrent(&torrent)?;
    eprintln!(
        "demo: torrent {} ({} pieces of {}) created in {:.2} s",
        meta.hex_hash(),
        meta.num_pieces,
        crate::progress::human_bytes(u64::from(meta.piece_length)),
        started.elapsed().as_secs_f64()
    );
    // Every demo peer shares 127.0.0.1: each may connect to all others.
    let config = Config {
        peers_per_ip: leechers + 1,
        ..Config::default()
    };
    let loopback = IpAddr::from([127, 0, 0, 1]);
    // The demo runs on loopback alone: no DHT.
    let any_port = NetArgs {
        port: Some(0),
        peers: Vec::new(),
        no_dht: true,
        dht_bootstrap: Vec::new(),
        dht_port: None,
        encryption: None,
    };
    let options = |peers| TorrentOptions {
        keep_seeding: true,
        peers,
        use_trackers: false,
        resume_path: None,
    };
    let seeder = start_engine(&config, &any_port, loopback)?;
    let seeder_addr = SocketAddr::new(loopback, seeder.port());
    let seed_handle = seeder.add_torrent(meta.clone(), seed_dir.clone(), options(vec![]));
    let mut engines = Vec::new();
    let mut handles = Vec::new();
    let mut known = vec![seeder_addr];
    let swarm_start = Instant::now();
    for i in 0..leechers {
        let engine = start_engine(&config, &any_port, loopback)?;
        let dir = root.join(format!("leecher-{}", i + 1));
        // Each leecher dials the seeder and the leechers before it, so
        // every pair is connected once and pieces flow between leechers.
        let handle = engine.add_torrent(meta.clone(), dir.clone(), options(known.clone()));
        known.push(SocketAddr::new(loopback, engine.port()));
        handles.push((format!("leecher {}", i + 1), handle));
        engines.push((engine, dir));
    }
    let outcome = watch(&handles, None, true, &interrupt_flag());
    let elapsed = swarm_start.elapsed();
    // Upload counters arrive from the connections in batches; the last
    // ones are counted while the torrents stop, so read them afterwards.
    let seed_status = Arc::clone(seed_handle.status());
    let leecher_statuses: Vec<(String, Arc<Status>)> = handles
        .iter()
        .map(|(name, h)| (name.clone(), Arc::clone(h.status())))
        .collect();
    for (_, h) in handles {
        h.stop(STOP_TIMEOUT);
    }
    seed_handle.stop(STOP_TIMEOUT);
    let uploaded_by_seed = seed_status.uploaded.load(Ordering::Relaxed);
    if outcome? == WatchEnd::Interrupted {
        return Err(RunError::DemoInterrupted);
    }
    for (engine, dir) in engines {
        engine.shutdown();
        let path = dir.join("demo.bin");
        let got = std::fs::read(&path).map_err(|source| RunError::Read {
            path: path.clone(),
            source,
        })?;
        if got != data {
            return Err(RunError::DemoDiffers { path });
        }
    }
    seeder.shutdown();
    let total = size * leechers as u64;
    eprintln!(
        "demo: {leechers} leechers downloaded {} each in {:.2} s ({}/s in total); every byte checked",
        crate::progress::human_bytes(size),
        elapsed.as_secs_f64(),
        crate::progress::human_bytes((total as f64 / elapsed.as_secs_f64().max(1e-6)) as u64)
    );
    eprintln!(
        "demo: the seeder uploaded {}, the leechers traded the rest among themselves",
        crate::progress::human_bytes(uploaded_by_seed)
    );
    for (name, status) in leecher_statuses {
        eprintln!(
            "demo: {name} uploaded {} to the others",
            crate::progress::human_bytes(status.uploaded.load(Ordering::Relaxed))
        );
    }
    Ok(())
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Deterministic pseudo-random bytes (splitmix64).
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    let mut state = seed;
    while out.len() < len {
        state = state.wrapping_add(1);
        out.extend_from_slice(&crate::engine::splitmix(state).to_le_bytes());
    }
    out.truncate(len);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_taken_port_is_named() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let net = NetArgs {
            port: Some(port),
            no_dht: true,
            ..NetArgs::default()
        };
        let loopback = IpAddr::from([127, 0, 0, 1]);
        let Err(err) = start_engine(&Config::default(), &net, loopback) else {
            panic!("listened on a port already taken");
        };
        assert!(
            matches!(&err, ListenError::Port { port: p, source }
                if *p == port && source.kind() == std::io::ErrorKind::AddrInUse),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .starts_with(&format!("cannot listen on port {port}: ")),
            "{err}"
        );
    }

    #[test]
    fn a_bad_magnet_argument_is_named() {
        let link = "magnet:?xt=urn:btih:nothex";
        let Err(err) = load_source(link) else {
            panic!("a bad magnet link loaded");
        };
        assert!(
            matches!(&err, RunError::BadMagnet { link: l, .. } if l == link),
            "{err:?}"
        );
        assert!(err.to_string().starts_with(link), "{err}");
    }
}
