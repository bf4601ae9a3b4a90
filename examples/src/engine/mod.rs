//! The client's actors, wired with channels:
//!
//! ```text
//!   server (listener + handshake pool) --route by info-hash--> torrent manager
//!   tracker service <--peers / events-->  torrent manager  --jobs--> disk pool
//!   peer connection threads <--commands / events--> torrent manager
//! ```
//!
//! Each torrent has one manager, an actor that drives its `rustico_swarm`
//! state machine (peers, picker, choker, connection policy); managers run
//! on a fixed pool of worker threads ([`actors`]), so torrents cost no
//! thread of their own. Each peer has one connection thread (and a socket
//! reader); the disk pool ([`disk`]) checks, verifies and writes pieces
//! and resume data for every torrent; one tracker service
//! schedules every torrent's announces and runs them on a few threads.
//! The [`Engine`] holds what torrents share: the listen port, the routing
//! table, the two pools and the tracker service.

pub mod actors;
pub mod conn;
pub mod disk;
pub mod limits;
pub mod link;
mod manager;
pub mod net;
mod tracker;
pub(crate) use tracker::{announce_pass, Clients};
mod webseed;

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{unbounded, Receiver, Sender};
use rustico_peer_wire::mse::Policy;
use rustico_peer_wire::{Bitfield, BlockRequest, PexMessage};

use crate::meta::TorrentMeta;
use crate::progress::Snapshot;
use actors::Mail;

pub use manager::{ManagerError, TorrentOptions};

/// A peer's handle inside its torrent manager: the swarm's own.
pub type PeerKey = rustico_swarm::PeerKey;

/// Orders from the torrent manager to a connection (a peer-wire session,
/// or a web seed), in [`conn::ConnInput::Command`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Ask the peer for these blocks.
    Request(Vec<BlockRequest>),
    /// Withdraw a request (another peer delivered it: end-game).
    Cancel(BlockRequest),
    /// We now have this piece, on disk.
    Have(u32),
    /// Choke (true) or unchoke (false) the peer.
    Choke(bool),
    /// Tell the peer whether we want anything from it.
    Interested(bool),
    /// Send a `ut_pex` message (ignored if the peer lacks `ut_pex`).
    Pex(PexMessage),
    /// Send a BEP 52 hash request (a failed v2 piece's block hashes).
    RequestHashes(rustico_peer_wire::HashRequest),
}

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
        /// The link is RC4-encrypted (MSE).
        encrypted: bool,
    },
    /// What the session reported, in order, as the swarm takes it (one
    /// type for one concept: the swarm's `PeerEvent`, not a copy).
    Events(Vec<rustico_swarm::PeerEvent>),
    /// The block hashes of a failed v2 piece that we asked for, checked
    /// against the piece's hash.
    BlockHashes {
        /// The piece.
        piece: u32,
        /// Its blocks' hashes (zeros past the file's end).
        hashes: Vec<[u8; 32]>,
    },
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
    /// The listener accepted a peer for this torrent (its link set up,
    /// the start of its handshake already read).
    Incoming(link::Accepted, SocketAddr),
    /// Addresses from a tracker or the DHT.
    Peers(Vec<SocketAddr>, rustico_swarm::PeerSource),
    /// The saver finished a piece.
    Saved(manager::SaveResult),
    /// Stop: close peers, flush, tell trackers.
    Stop,
    /// Send a [`TorrentDetail`] (peers, pieces) back on this channel.
    Detail(Sender<TorrentDetail>),
}

/// One peer of a [`TorrentDetail`].
#[derive(Debug, Clone)]
pub struct PeerDetail {
    /// Its address, or a web seed's URL.
    pub address: String,
    /// The swarm's figures for it.
    pub stats: rustico_swarm::PeerStats,
}

/// What a user interface shows of one running torrent beyond [`Status`]:
/// asked for with [`TorrentHandle::ask_detail`].
#[derive(Debug, Clone)]
pub struct TorrentDetail {
    /// Connected (and connecting) peers.
    pub peers: Vec<PeerDetail>,
    /// Pieces verified on disk.
    pub have: Bitfield,
    /// Pieces with blocks requested and not yet all received.
    pub downloading: Vec<u32>,
}

/// A tracker as its torrent last heard from it, in [`Status::trackers`].
#[derive(Debug, Clone, Default)]
pub struct TrackerReport {
    /// Its announce URL.
    pub url: String,
    /// Its tier (0 first).
    pub tier: usize,
    /// When the last announce finished, seconds since the Unix epoch (0:
    /// never).
    pub last_announce: u64,
    /// The last announce worked.
    pub last_ok: bool,
    /// "Success", or why it failed.
    pub last_result: String,
    /// Peers it returned last time.
    pub last_peers: usize,
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
    /// Every piece was already on disk when the torrent started (set
    /// before `complete`).
    pub complete_on_disk: AtomicBool,
    /// The manager thread has ended.
    pub stopped: AtomicBool,
    /// Why the torrent stopped with an error, if it did.
    pub error: Mutex<Option<Arc<ManagerError>>>,
    /// Pieces on disk are being checked (resume data or a full recheck).
    pub checking: AtomicBool,
    /// Its trackers, as the tracker service last heard from them.
    pub trackers: Mutex<Vec<TrackerReport>>,
    /// The peer addresses its swarm knew when it ended (set before
    /// `stopped`), for a restart: `TorrentOptions::peers`.
    pub known_peers: Mutex<Vec<std::net::SocketAddr>>,
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
            dht: None,
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
    /// Most connections per torrent with one IP address.
    pub peers_per_ip: usize,
    /// Upload slots per torrent.
    pub upload_slots: usize,
    /// Most peer connections of all torrents together (0: unlimited).
    pub max_connections: usize,
    /// Most bytes per second sent to peers, all torrents together (0:
    /// unlimited).
    pub max_upload_rate: u64,
    /// Most bytes per second read from peers, all torrents together (0:
    /// unlimited).
    pub max_download_rate: u64,
    /// The DHT node's settings; `None` runs without a DHT. Its port 0
    /// means the listen port.
    pub dht: Option<crate::dht::DhtSettings>,
    /// Protocol encryption (MSE), both ways.
    pub encryption: Policy,
}

/// Where incoming peers go: each torrent's inbox by info-hash, and the
/// info-hash by MSE's `HASH('req2', info-hash)`.
#[derive(Default)]
struct RouteTable {
    by_hash: HashMap<[u8; 20], Mail<Control>>,
    by_skey: HashMap<[u8; 20], [u8; 20]>,
}

type Routes = Arc<Mutex<RouteTable>>;

/// Locks `mutex`, also when a thread panicked while holding it: every
/// value kept behind these locks (route tables, handshake counts) is
/// changed by single inserts and removals, so it is whole. Reading a
/// poisoned lock as "nothing there" would instead refuse every peer from
/// then on without a word.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A running client: one listen port shared by its torrents.
pub struct Engine {
    config: EngineConfig,
    /// The worker threads every torrent's manager runs on.
    pool: actors::Pool,
    /// The threads every torrent's file I/O runs on.
    disk: disk::DiskPool,
    /// The threads every established peer connection runs on.
    net: net::NetPool,
    /// Every torrent's announces.
    trackers: tracker::TrackerService,
    peer_id: [u8; 20],
    port: u16,
    routes: Routes,
    shutdown: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    dht: Option<crate::dht::DhtNode>,
    /// Peer connections of every torrent, against `max_connections`.
    connections: limits::ConnectionBudget,
    /// The shared upload and download rate limits.
    rates: limits::RateLimits,
}

/// Incoming handshakes in progress at once, in all.
const MAX_HANDSHAKES: usize = 64;
/// Incoming handshakes in progress at once from one IP address.
const MAX_HANDSHAKES_PER_IP: usize = 4;

/// Counts incoming handshakes in progress, so that silent or slow sockets
/// cannot pile up: each handshake has its own thread and one deadline for
/// the whole of it, so none waits for another, and past the limits new
/// connections are closed at once.
#[derive(Default)]
struct HandshakeLimits {
    in_progress: Mutex<(usize, HashMap<std::net::IpAddr, usize>)>,
}

/// One admitted handshake; dropping it frees its place.
struct HandshakePermit {
    limits: Arc<HandshakeLimits>,
    ip: std::net::IpAddr,
}

impl HandshakeLimits {
    fn admit(limits: &Arc<HandshakeLimits>, ip: std::net::IpAddr) -> Option<HandshakePermit> {
        let mut guard = lock(&limits.in_progress);
        let (total, per_ip) = &mut *guard;
        let mine = per_ip.entry(ip).or_insert(0);
        if *total >= MAX_HANDSHAKES || *mine >= MAX_HANDSHAKES_PER_IP {
            return None;
        }
        *mine += 1;
        *total += 1;
        Some(HandshakePermit {
            limits: limits.clone(),
            ip,
        })
    }
}

impl Drop for HandshakePermit {
    fn drop(&mut self) {
        let mut guard = lock(&self.limits.in_progress);
        let (total, per_ip) = &mut *guard;
        *total = total.saturating_sub(1);
        if let Some(n) = per_ip.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                per_ip.remove(&self.ip);
            }
        }
    }
}

impl Engine {
    /// Binds the listen port and starts the server.
    pub fn start(config: EngineConfig) -> std::io::Result<Engine> {
        let listener = TcpListener::bind(SocketAddr::new(config.listen_ip, config.listen_port))?;
        let port = listener.local_addr()?.port();
        let routes: Routes = Arc::default();
        let shutdown = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        {
            let shutdown = shutdown.clone();
            let routes = routes.clone();
            let policy = config.encryption;
            threads.push(spawn("listener", move || {
                let limits = Arc::new(HandshakeLimits::default());
                for stream in listener.incoming() {
                    if shutdown.load(Ordering::Relaxed) {
                        return;
                    }
                    let stream = match stream {
                        Ok(stream) => stream,
                        Err(e) => {
                            // Out of file descriptors (EMFILE) and the like
                            // fail again at once: pause instead of spinning.
                            log::debug!(target: "rustico", "accept: {e}");
                            std::thread::sleep(Duration::from_millis(100));
                            continue;
                        }
                    };
                    let Ok(addr) = stream.peer_addr() else {
                        continue;
                    };
                    let Some(permit) = HandshakeLimits::admit(&limits, addr.ip()) else {
                        log::debug!(target: "rustico", "{addr}: too many handshakes in progress; refused");
                        continue;
                    };
                    let routes = routes.clone();
                    let started = spawn("handshake", move || {
                        route_incoming(stream, addr, policy, &routes);
                        drop(permit);
                    });
                    if let Err(e) = started {
                        log::warn!(target: "rustico", "{addr}: cannot start a handshake thread: {e}");
                    }
                }
            })?);
        }
        let dht = match config.dht.clone() {
            Some(mut settings) => {
                if settings.port == 0 {
                    settings.port = port;
                }
                Some(crate::dht::DhtNode::start(settings)?)
            }
            None => None,
        };
        // As many workers and disk threads as cores (at least 2, at most
        // 8): torrents are sans-IO state machines and disk jobs are
        // hashing and writing, both CPU-bound.
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 8));
        let pool = actors::Pool::new(cores)?;
        let net = net::NetPool::new(cores)?;
        log::debug!(target: "rustico", "{} threads run the torrents, {cores} their file I/O, {} their peers", pool.threads(), net.threads());
        let connections = limits::ConnectionBudget::new(config.max_connections);
        let rates = limits::RateLimits::new(
            config.max_upload_rate,
            config.max_download_rate,
            std::time::Instant::now(),
        );
        Ok(Engine {
            connections,
            rates,
            pool,
            disk: disk::DiskPool::new(cores)?,
            net,
            trackers: tracker::TrackerService::start()?,
            peer_id: make_peer_id(),
            config,
            port,
            routes,
            shutdown,
            threads,
            dht,
        })
    }

    /// The port peers reach us on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Protocol encryption, both ways.
    pub fn encryption(&self) -> Policy {
        self.config.encryption
    }

    /// The DHT node, unless the DHT is off.
    pub fn dht(&self) -> Option<&crate::dht::DhtNode> {
        self.dht.as_ref()
    }

    /// Starts a torrent whose content lives under `dir`.
    pub fn add_torrent(
        &self,
        meta: TorrentMeta,
        dir: PathBuf,
        options: TorrentOptions,
    ) -> TorrentHandle {
        let (control_tx, control_rx) = unbounded();
        let status = Arc::new(Status::default());
        status
            .total_bytes
            .store(meta.total_length, Ordering::Relaxed);
        // A hybrid torrent is in two swarms: its v1 hash's and its
        // truncated v2 hash's. Peers may greet us under either.
        let hashes: Vec<[u8; 20]> = std::iter::once(meta.info_hash)
            .chain(meta.v2_swarm)
            .collect();
        let private = meta.private;
        let dht = self
            .dht
            .as_ref()
            .filter(|_| !meta.private)
            .map(|d| (d.port(), d.node_sink()));
        let setup = manager::ManagerSetup {
            dht,
            meta,
            dir,
            options,
            peer_id: self.peer_id,
            port: self.port,
            peers_per_torrent: self.config.peers_per_torrent,
            peers_per_ip: self.config.peers_per_ip,
            upload_slots: self.config.upload_slots,
            connections: self.connections.clone(),
            rates: self.rates.clone(),
            encryption: self.config.encryption,
            status: status.clone(),
            control_tx: control_tx.clone(),
            control_rx,
            disk: self.disk.clone(),
            net: self.net.clone(),
            trackers: self.trackers.clone(),
        };
        let waker = self
            .pool
            .start(move |waker| manager::TorrentActor::new(setup, waker));
        let control_tx = Mail::new(control_tx, waker);
        // BEP 27: a private torrent's peers come from its trackers only.
        if let Some(dht) = self.dht.as_ref().filter(|_| !private) {
            for hash in &hashes {
                dht.add_torrent(*hash, control_tx.clone(), self.port);
            }
        }
        {
            let mut routes = lock(&self.routes);
            for hash in hashes {
                routes.by_hash.insert(hash, control_tx.clone());
                routes
                    .by_skey
                    .insert(rustico_peer_wire::mse::skey_hash(&hash), hash);
            }
        }
        TorrentHandle {
            control: control_tx,
            status,
        }
    }

    /// Stops accepting peers.
    pub fn shutdown(mut self) {
        self.shutdown.store(true, Ordering::Relaxed);
        // Wake the listener so it sees the flag.
        let _ = TcpStream::connect_timeout(
            &SocketAddr::new(loopback_for(self.config.listen_ip), self.port),
            Duration::from_millis(200),
        );
        *lock(&self.routes) = RouteTable::default();
        if let Some(dht) = self.dht.take() {
            dht.stop();
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

/// Sets up an incoming peer's link (plaintext or MSE, as `policy` allows)
/// within one deadline, and hands it to its torrent.
fn route_incoming(stream: TcpStream, addr: SocketAddr, policy: Policy, routes: &Routes) {
    let torrent_of = |skey: &[u8; 20]| lock(routes).by_skey.get(skey).copied();
    let accepted = match link::accept(stream, policy, conn::HANDSHAKE_TIMEOUT, torrent_of) {
        Ok(accepted) => accepted,
        Err(e) => {
            log::debug!(target: "rustico", "{addr}: incoming connection dropped: {e}");
            return;
        }
    };
    let route = lock(routes).by_hash.get(&accepted.info_hash).cloned();
    match route {
        Some(tx) => {
            let _ = tx.send(Control::Incoming(accepted, addr));
        }
        None => log::debug!(target: "rustico", "{addr}: handshake for an unknown torrent"),
    }
}

/// A running torrent.
pub struct TorrentHandle {
    control: Mail<Control>,
    status: Arc<Status>,
}

impl TorrentHandle {
    /// Its published counters.
    pub fn status(&self) -> &Arc<Status> {
        &self.status
    }

    /// Asks the manager for its peers and pieces without waiting: the
    /// answer comes on the returned channel (`None`: the torrent stopped).
    pub fn ask_detail(&self) -> Option<Receiver<TorrentDetail>> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.control.send(Control::Detail(tx)).ok()?;
        Some(rx)
    }

    /// Asks the torrent to stop (peers closed, resume data saved, trackers
    /// told `stopped`) and waits for it, at most `timeout`.
    pub fn stop(self, timeout: Duration) {
        let _ = self.control.send(Control::Stop);
        let start = std::time::Instant::now();
        while !self.status.stopped.load(Ordering::SeqCst) && start.elapsed() < timeout {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Spawns a named thread.
pub fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new().name(name.to_string()).spawn(f)
}

/// rustico's prefix followed by 12 characters that differ between runs.
pub fn make_peer_id() -> [u8; 20] {
    rustico_peer_wire::generate_peer_id(
        rustico_peer_wire::RUSTICO_PEER_ID_PREFIX,
        seed_from_clock(),
    )
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
