//! The client's actors, wired with channels:
//!
//! ```text
//!   server (listener + handshake pool) --route by info-hash--> torrent manager
//!   tracker thread <--peers / events-->  torrent manager  --jobs--> piece saver
//!   peer connection threads <--commands / events--> torrent manager
//! ```
//!
//! Each torrent has one manager thread that drives its `rustico_swarm`
//! state machine (peers, picker, choker, connection policy); each peer has
//! one connection thread (and a socket reader); the saver verifies and
//! writes pieces off the network threads; the tracker thread announces. The [`Engine`] holds what torrents
//! share: the listen port and the routing table.

pub mod conn;
mod manager;
mod tracker;
mod webseed;

use std::collections::HashMap;
use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{unbounded, Receiver, Sender};
use rustico_peer_wire::Handshake;

use crate::meta::TorrentMeta;
use crate::progress::Snapshot;
use crate::session::Event;

pub use manager::TorrentOptions;

/// A peer's handle inside its torrent manager: the swarm's own.
pub type PeerKey = rustico_swarm::PeerKey;

/// What a connection thread tells its manager.
#[derive(Debug)]
pub enum PeerMsg {
    /// Both handshakes are done.
    Connected {
        /// The peer's client, from its peer id prefix.
        client: String,
        /// Both sides speak the fast extension.
        fast: bool,
        /// The peer's id from its handshake.
        peer_id: [u8; 20],
    },
    /// What the session reported, in order.
    Events(Vec<Event>),
    /// The connection ended (always the last message).
    Closed(conn::Closed),
}

/// A manager's bounded inbox of peer messages.
#[derive(Debug)]
pub enum ToManager {
    /// From the connection thread of peer `key`.
    Peer(PeerKey, PeerMsg),
}

/// A manager's unbounded inbox of everything else.
pub enum Control {
    /// The server accepted a peer for this torrent (first 48 handshake
    /// bytes already read).
    Incoming(TcpStream, SocketAddr, Vec<u8>),
    /// Addresses from a tracker or the command line.
    Peers(Vec<SocketAddr>),
    /// The saver finished a piece.
    Saved(manager::SaveResult),
    /// Stop: close peers, flush, tell trackers.
    Stop,
}

/// Counters a torrent publishes for progress displays and trackers.
#[derive(Debug, Default)]
pub struct Status {
    /// Verified bytes on disk.
    pub have_bytes: AtomicU64,
    /// Total bytes.
    pub total_bytes: AtomicU64,
    /// Payload bytes received since start.
    pub downloaded: AtomicU64,
    /// Payload bytes sent since start.
    pub uploaded: AtomicU64,
    /// Download rate, bytes per second.
    pub down_rate: AtomicU64,
    /// Upload rate, bytes per second.
    pub up_rate: AtomicU64,
    /// Connected peers.
    pub peers: AtomicUsize,
    /// Every piece is verified on disk.
    pub complete: AtomicBool,
    /// The manager thread has ended.
    pub stopped: AtomicBool,
    /// Why the torrent stopped with an error, if it did.
    pub error: Mutex<Option<String>>,
}

impl Status {
    /// A snapshot for the progress display.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            have_bytes: self.have_bytes.load(Ordering::Relaxed),
            total_bytes: self.total_bytes.load(Ordering::Relaxed),
            down_rate: self.down_rate.load(Ordering::Relaxed) as f64,
            up_rate: self.up_rate.load(Ordering::Relaxed) as f64,
            uploaded: self.uploaded.load(Ordering::Relaxed),
            peers: self.peers.load(Ordering::Relaxed),
        }
    }
}

/// Settings shared by every torrent of an engine.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Port to listen on (0: any).
    pub listen_port: u16,
    /// Address to listen on.
    pub listen_ip: std::net::IpAddr,
    /// Most peers per torrent.
    pub peers_per_torrent: usize,
    /// Upload slots per torrent.
    pub upload_slots: usize,
}

type Routes = Arc<Mutex<HashMap<[u8; 20], Sender<Control>>>>;

/// A running client: one listen port shared by its torrents.
pub struct Engine {
    config: EngineConfig,
    peer_id: [u8; 20],
    port: u16,
    routes: Routes,
    shutdown: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

/// Handshake workers of the server's pool.
const HANDSHAKE_WORKERS: usize = 4;

impl Engine {
    /// Binds the listen port and starts the server.
    pub fn start(config: EngineConfig) -> std::io::Result<Engine> {
        let listener = TcpListener::bind(SocketAddr::new(config.listen_ip, config.listen_port))?;
        let port = listener.local_addr()?.port();
        let routes: Routes = Arc::default();
        let shutdown = Arc::new(AtomicBool::new(false));
        let (accepted_tx, accepted_rx) = unbounded::<(TcpStream, SocketAddr)>();
        let mut threads = Vec::new();
        {
            let shutdown = shutdown.clone();
            threads.push(spawn("listener", move || {
                for stream in listener.incoming() {
                    if shutdown.load(Ordering::Relaxed) {
                        return;
                    }
                    let Ok(stream) = stream else { continue };
                    let Ok(addr) = stream.peer_addr() else {
                        continue;
                    };
                    if accepted_tx.send((stream, addr)).is_err() {
                        return;
                    }
                }
            })?);
        }
        for _ in 0..HANDSHAKE_WORKERS {
            let rx = accepted_rx.clone();
            let routes = routes.clone();
            threads.push(spawn("handshake", move || route_incoming(&rx, &routes))?);
        }
        Ok(Engine {
            peer_id: make_peer_id(),
            config,
            port,
            routes,
            shutdown,
            threads,
        })
    }

    /// The port peers reach us on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Starts a torrent whose content lives under `dir`.
    pub fn add_torrent(
        &self,
        meta: TorrentMeta,
        dir: PathBuf,
        options: TorrentOptions,
    ) -> Result<TorrentHandle, String> {
        let (control_tx, control_rx) = unbounded();
        let status = Arc::new(Status::default());
        status
            .total_bytes
            .store(meta.total_length, Ordering::Relaxed);
        let hash = meta.info_hash;
        let setup = manager::ManagerSetup {
            meta,
            dir,
            options,
            peer_id: self.peer_id,
            port: self.port,
            peers_per_torrent: self.config.peers_per_torrent,
            upload_slots: self.config.upload_slots,
            status: status.clone(),
            control_tx: control_tx.clone(),
            control_rx,
        };
        let thread = spawn("torrent", move || manager::run(setup)).map_err(|e| e.to_string())?;
        if let Ok(mut routes) = self.routes.lock() {
            routes.insert(hash, control_tx.clone());
        }
        Ok(TorrentHandle {
            control: control_tx,
            status,
            thread: Some(thread),
        })
    }

    /// Stops accepting peers.
    pub fn shutdown(mut self) {
        self.shutdown.store(true, Ordering::Relaxed);
        // Wake the listener so it sees the flag.
        let _ = TcpStream::connect_timeout(
            &SocketAddr::new(loopback_for(self.config.listen_ip), self.port),
            Duration::from_millis(200),
        );
        if let Ok(mut routes) = self.routes.lock() {
            routes.clear();
        }
        for t in self.threads.drain(..) {
            if t.is_finished() {
                let _ = t.join();
            }
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

fn route_incoming(rx: &Receiver<(TcpStream, SocketAddr)>, routes: &Routes) {
    for (mut stream, addr) in rx {
        let _ = stream.set_read_timeout(Some(conn::HANDSHAKE_TIMEOUT));
        let mut head = vec![0u8; Handshake::INFO_HASH_END];
        if stream.read_exact(&mut head).is_err() {
            continue;
        }
        let Ok(Some(hash)) = Handshake::peek_info_hash(&head) else {
            log::debug!(target: "rustico", "{addr}: not a BitTorrent handshake");
            continue;
        };
        let route = routes.lock().ok().and_then(|r| r.get(&hash).cloned());
        match route {
            Some(tx) => {
                let _ = tx.send(Control::Incoming(stream, addr, head));
            }
            None => log::debug!(target: "rustico", "{addr}: handshake for an unknown torrent"),
        }
    }
}

/// A running torrent.
pub struct TorrentHandle {
    control: Sender<Control>,
    status: Arc<Status>,
    thread: Option<JoinHandle<()>>,
}

impl TorrentHandle {
    /// Its published counters.
    pub fn status(&self) -> &Arc<Status> {
        &self.status
    }

    /// Asks the torrent to stop (peers closed, resume data saved, trackers
    /// told `stopped`) and waits for it, at most `timeout`.
    pub fn stop(mut self, timeout: Duration) {
        let _ = self.control.send(Control::Stop);
        let start = std::time::Instant::now();
        if let Some(t) = self.thread.take() {
            while !t.is_finished() && start.elapsed() < timeout {
                std::thread::sleep(Duration::from_millis(20));
            }
            if t.is_finished() {
                let _ = t.join();
            }
        }
    }
}

/// Spawns a named thread.
pub fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new().name(name.to_string()).spawn(f)
}

/// `-RS0010-` followed by 12 pseudo-random characters.
pub fn make_peer_id() -> [u8; 20] {
    let mut id = *b"-RS0010-000000000000";
    let mut seed = seed_from_clock();
    for b in id.iter_mut().skip(8) {
        seed = splitmix(seed);
        *b = b"0123456789abcdefghijklmnopqrstuvwxyz"[(seed % 36) as usize];
    }
    id
}

/// A seed from the clock and the process, for non-reproducible choices.
pub fn seed_from_clock() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    splitmix(
        nanos
            ^ u64::from(std::process::id())
            ^ COUNTER.fetch_add(1, Ordering::Relaxed).rotate_left(32),
    )
}

/// One step of splitmix64.
pub fn splitmix(state: u64) -> u64 {
    let mut z = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
