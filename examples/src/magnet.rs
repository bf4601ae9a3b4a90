//! Magnet links (BEP 9): find peers (the link's `x.pe`, `--peer`, the
//! link's trackers), fetch the info dictionary from them with
//! `ut_metadata`, check it against the info-hash and turn it into a
//! `.torrent`.
//!
//! The protocol state is peer-wire's: one `Session` per peer (the same
//! session type as for a download, started with `Content::magnet()`) and
//! one `MetadataDownload` for the torrent. This module is their I/O: one
//! blocking thread per peer (the fetch lasts seconds and involves a
//! handful of peers) reading straight into its session's buffer, the
//! download behind a mutex.
//!
//! A v2-only link (`btmh` alone) names the SHA-256 info-hash, and its
//! `.torrent` needs the piece layers too: after the info dictionary they
//! come from the peers that answered, by BEP 52 hash requests, each
//! answer checked by metainfo's `PieceLayerFetch`.

use std::collections::{HashMap, HashSet};
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crossbeam_channel::{unbounded, Receiver, Sender};
use rustico_metainfo::{Magnet, Torrent};
use rustico_peer_wire::mse::Policy;
use rustico_peer_wire::{
    Content, DataOutcome, Event, Handshake, Handshaking, MetadataDownload, Reserved, SessionConfig,
};
use rustico_tracker_client::{AnnounceRequest, PassConfig, TrackerList, TransportConfig};

/// How long a peer's read waits before the thread looks at the shared
/// state again (new requests to send, the fetch finished elsewhere).
const READ_SLICE: Duration = Duration::from_millis(300);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A peer whose connection ended is dialled again after this long (it
/// may not have been listening yet), unless it misbehaved.
const REDIAL_AFTER: Duration = Duration::from_secs(5);
/// Metadata connections in progress at once: more addresses wait their
/// turn (a tracker may answer thousands of hanging peers).
const MAX_DIALS: usize = 16;
/// Addresses kept for the metadata fetch; later ones are ignored.
const MAX_ADDRESSES: usize = 1000;
/// Trackers are asked again this often until the metadata is in.
const REANNOUNCE_EVERY: Duration = Duration::from_secs(15);

/// Why a magnet link's metadata (or a v2 torrent's piece layers) could
/// not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Nothing to ask: no peer addresses and no trackers.
    #[error("the magnet link names no peers (x.pe) and no trackers (tr); give peers with --peer")]
    NoSources,
    /// The stop flag was set (Ctrl-C, or the daemon removed the torrent).
    #[error("interrupted while fetching the {0}")]
    Interrupted(Stage),
    /// The deadline passed after some metadata pieces came in.
    #[error("timed out fetching the metadata ({have} of {of} pieces from {peers} peers)")]
    TimedOut {
        /// Metadata pieces received and kept.
        have: usize,
        /// Metadata pieces in all.
        of: usize,
        /// Peer addresses found.
        peers: usize,
    },
    /// The deadline passed and every `metadata_size` that came was refused.
    #[error("timed out fetching the metadata: none of the {peers} peers found sent a usable metadata_size ({refused} sent one that was refused: metadata_size {size}: {why})")]
    SizesRefused {
        /// Peer addresses found.
        peers: usize,
        /// Peers whose size was refused.
        refused: usize,
        /// The last refused size.
        size: u64,
        /// Why it was refused.
        why: rustico_peer_wire::MetadataError,
    },
    /// The deadline passed and no peer announced a `metadata_size`.
    #[error("timed out fetching the metadata: none of the {peers} peers found sent metadata_size")]
    NoSize {
        /// Peer addresses found.
        peers: usize,
    },
    /// The verified info dictionary does not make a torrent with the link.
    #[error("the fetched metadata: {0}")]
    Metadata(#[source] rustico_metainfo::Error),
    /// The verified piece layers do not make a torrent.
    #[error("the fetched piece layers: {0}")]
    Layers(#[source] rustico_metainfo::Error),
    /// No peer that sent the metadata gave every piece layer.
    #[error("none of the {peers} peers that sent the metadata gave the piece layers")]
    NoLayers {
        /// Peers asked.
        peers: usize,
    },
}

/// What a magnet fetch was doing, in [`FetchError::Interrupted`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The info dictionary (BEP 9).
    Metadata,
    /// A v2 torrent's piece layers (BEP 52).
    PieceLayers,
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Stage::Metadata => "metadata",
            Stage::PieceLayers => "piece layers",
        })
    }
}

/// Where the peers of a magnet link come from.
#[derive(Debug, Clone)]
pub struct PeerSources {
    /// Addresses to dial (the link's `x.pe` and `--peer`).
    pub peers: Vec<SocketAddr>,
    /// Tracker URLs (the link's `tr`).
    pub trackers: Vec<String>,
    /// Our listen port, for the trackers.
    pub port: u16,
    /// Protocol encryption when dialling them.
    pub encryption: Policy,
}

impl PeerSources {
    /// The link's `x.pe` (resolved now; unresolvable ones are logged and
    /// skipped) and `tr`, plus `extra` peers.
    pub fn from_magnet(magnet: &Magnet, extra: &[SocketAddr], port: u16) -> PeerSources {
        let mut peers: Vec<SocketAddr> = Vec::new();
        for text in &magnet.peers {
            match text.to_socket_addrs().map(|mut a| a.next()) {
                Ok(Some(addr)) => peers.push(addr),
                _ => log::warn!(target: "rustico", "magnet x.pe {text}: cannot resolve; skipped"),
            }
        }
        for addr in extra {
            if !peers.contains(addr) {
                peers.push(*addr);
            }
        }
        PeerSources {
            peers,
            trackers: magnet.trackers.clone(),
            port,
            encryption: Policy::default(),
        }
    }
}

/// What the peer threads share.
struct Shared {
    info_hash: [u8; 20],
    peer_id: [u8; 20],
    encryption: Policy,
    download: Mutex<MetadataDownload<usize>>,
    /// Address of each peer handle (the index).
    addrs: Mutex<Vec<SocketAddr>>,
    /// Addresses that finished a handshake with us, in that order.
    answered: Mutex<Vec<SocketAddr>>,
    /// Handles whose metadata failed the hash check: their threads end.
    banned: Mutex<HashSet<usize>>,
    /// The verified info dictionary is in (or the fetch was abandoned).
    done: AtomicBool,
    /// Peers whose `metadata_size` was refused (zero, too large, or not
    /// what others said), and the last size and reason: a time-out then
    /// says so rather than that no peer sent one.
    refused_sizes: Mutex<(usize, Option<(u64, rustico_peer_wire::MetadataError)>)>,
}

impl Shared {
    fn download(&self) -> MutexGuard<'_, MetadataDownload<usize>> {
        // A peer thread that panicked while holding the lock leaves the
        // download in a state its methods still accept.
        self.download
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn addr_of(&self, handle: usize) -> String {
        self.addrs
            .lock()
            .ok()
            .and_then(|a| a.get(handle).map(ToString::to_string))
            .unwrap_or_else(|| format!("peer #{handle}"))
    }

    fn is_banned(&self, handle: usize) -> bool {
        self.banned.lock().is_ok_and(|b| b.contains(&handle))
    }
}

/// Fetches the info dictionary of `info_hash` from the peers `sources`
/// leads to, until it is verified, `deadline` passes or `stop` is set.
/// Returns the verified bytes and the addresses that answered (for the
/// download that follows to dial first; the trackers' other addresses
/// come again from its own announces).
pub fn fetch_metadata(
    info_hash: [u8; 20],
    v2_only: bool,
    sources: &PeerSources,
    deadline: Option<Instant>,
    stop: &AtomicBool,
) -> Result<(Vec<u8>, Vec<SocketAddr>), FetchError> {
    let shared = Arc::new(Shared {
        info_hash,
        peer_id: crate::engine::make_peer_id(),
        encryption: sources.encryption,
        download: Mutex::new(if v2_only {
            MetadataDownload::new(info_hash).with_digest(truncated_v2_hash)
        } else {
            MetadataDownload::new(info_hash)
        }),
        addrs: Mutex::new(Vec::new()),
        answered: Mutex::new(Vec::new()),
        banned: Mutex::new(HashSet::new()),
        done: AtomicBool::new(false),
        refused_sizes: Mutex::new((0, None)),
    });
    let (found_tx, found_rx) = unbounded::<SocketAddr>();
    for addr in &sources.peers {
        // `found_rx` lives until the end of this function.
        let sent = found_tx.send(*addr);
        debug_assert!(sent.is_ok(), "the address channel closed early");
    }
    if !sources.trackers.is_empty() {
        let shared = Arc::clone(&shared);
        let trackers = sources.trackers.clone();
        let port = sources.port;
        let tx = found_tx.clone();
        let spawned = crate::engine::spawn("magnet-tracker", move || {
            announce_until_done(&shared, &trackers, port, &tx);
        });
        // Not fatal: the link's peers may be enough.
        if let Err(e) = spawned {
            log::warn!(target: "rustico", "magnet: cannot start the tracker thread ({e}); asking the link's peers only");
        }
    }
    drop(found_tx);
    let result = drive(&shared, &found_rx, deadline, stop);
    shared.done.store(true, Ordering::SeqCst);
    result
}

/// Dials every address found (again after [`REDIAL_AFTER`] when its
/// connection ended) until the download completes.
fn drive(
    shared: &Arc<Shared>,
    found: &Receiver<SocketAddr>,
    deadline: Option<Instant>,
    stop: &AtomicBool,
) -> Result<(Vec<u8>, Vec<SocketAddr>), FetchError> {
    // Per address: the running flag of its current thread and when it started.
    let mut dialled: HashMap<SocketAddr, (Arc<AtomicBool>, Instant, usize)> = HashMap::new();
    let mut order: Vec<SocketAddr> = Vec::new();
    let mut known: HashSet<SocketAddr> = HashSet::new();
    let mut found_open = true;
    loop {
        if let Some(bytes) = shared.download().poll_complete() {
            // Only the order of the dials is lost if a peer thread
            // panicked holding the lock: the addresses are still right.
            let answered = shared
                .answered
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone();
            return Ok((bytes, answered));
        }
        if stop.load(Ordering::SeqCst) {
            return Err(FetchError::Interrupted(Stage::Metadata));
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            let progress = shared.download().progress();
            let peers = order.len();
            return Err(match progress {
                Some((have, of)) => FetchError::TimedOut { have, of, peers },
                None => {
                    let (refused, last) = *shared
                        .refused_sizes
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    match last {
                        Some((size, why)) if refused > 0 => FetchError::SizesRefused {
                            peers,
                            refused,
                            size,
                            why,
                        },
                        _ => FetchError::NoSize { peers },
                    }
                }
            });
        }
        if found_open {
            match found.recv_timeout(Duration::from_millis(100)) {
                Ok(addr) => {
                    if order.len() < MAX_ADDRESSES && known.insert(addr) {
                        order.push(addr);
                    }
                }
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => found_open = false,
            }
        } else {
            std::thread::sleep(Duration::from_millis(100));
        }
        let now = Instant::now();
        let mut in_progress = dialled
            .values()
            .filter(|(running, _, _)| running.load(Ordering::SeqCst))
            .count();
        for addr in &order {
            if in_progress >= MAX_DIALS {
                break;
            }
            let redial = match dialled.get(addr) {
                None => true,
                Some((running, started, handle)) => {
                    !running.load(Ordering::SeqCst)
                        && now.duration_since(*started) >= REDIAL_AFTER
                        && !shared.is_banned(*handle)
                }
            };
            if !redial {
                continue;
            }
            let handle = {
                // A peer thread that panicked holding the lock left the
                // list whole (a push is the only change made under it).
                let mut addrs = shared
                    .addrs
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                addrs.push(*addr);
                addrs.len() - 1
            };
            let running = Arc::new(AtomicBool::new(true));
            in_progress += 1;
            dialled.insert(*addr, (Arc::clone(&running), now, handle));
            let shared = Arc::clone(shared);
            let addr = *addr;
            let thread_running = Arc::clone(&running);
            let spawned = crate::engine::spawn("magnet-peer", move || {
                let running = thread_running;
                match fetch_from_peer(&shared, handle, addr) {
                    Ok(()) => {}
                    // Misbehaviour is a warning; a peer that is merely
                    // unreachable or has nothing is not.
                    Err(why @ PeerFailure::Misbehaved(_)) => {
                        log::warn!(target: "rustico", "metadata peer {addr}: {why}");
                    }
                    Err(why @ PeerFailure::Gone(_)) => {
                        log::info!(target: "rustico", "metadata peer {addr}: {why}");
                    }
                }
                shared.download().handle_peer_gone(handle);
                running.store(false, Ordering::SeqCst);
            });
            // Out of threads: this address waits for a redial like one
            // whose connection ended, instead of holding a dial slot.
            if let Err(e) = spawned {
                log::warn!(target: "rustico", "metadata peer {addr}: cannot start a thread: {e}");
                running.store(false, Ordering::SeqCst);
            }
        }
    }
}

/// Announces to the link's trackers (one tier each) every
/// [`REANNOUNCE_EVERY`] until the metadata is in, as the torrent's tracker
/// thread does: one announce pass at a time, so a dead or garbage tracker
/// early in the list holds up the others by the pass's stagger only.
fn announce_until_done(
    shared: &Shared,
    trackers: &[String],
    port: u16,
    found: &Sender<SocketAddr>,
) {
    let tiers = trackers.iter().map(|url| vec![url.clone()]).collect();
    let mut list = TrackerList::new(tiers, crate::engine::seed_from_clock());
    let mut clients = crate::engine::Clients::new(TransportConfig::default());
    while !shared.done.load(Ordering::SeqCst) {
        let mut request = AnnounceRequest::new(shared.info_hash, shared.peer_id, port);
        // The size is unknown until the metadata is in; any non-zero
        // `left` says we are not a seed.
        request.left = 1;
        request.numwant = Some(50);
        let answer = crate::engine::announce_pass(
            &mut list,
            &mut clients,
            &request,
            PassConfig::default(),
            |url, result| match result {
                Ok(response) => {
                    log::info!(target: "rustico", "tracker {url}: {} peers for the metadata", response.peers.len());
                    for skipped in &response.skipped {
                        log::warn!(target: "rustico", "tracker {url}: {skipped}");
                    }
                }
                Err(e) => log::warn!(target: "rustico", "tracker {url}: announce failed: {e}"),
            },
        );
        if let Some((_, response)) = answer {
            for addr in response.peers {
                let _ = found.send(addr);
            }
        }
        let until = Instant::now() + REANNOUNCE_EVERY;
        while Instant::now() < until && !shared.done.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Why a metadata peer's connection ended.
#[derive(Debug, thiserror::Error)]
enum PeerFailure {
    /// It broke the protocol or lied (logged as a warning).
    #[error(transparent)]
    Misbehaved(#[from] Misbehaviour),
    /// It is unreachable, left, or has nothing for us (not its fault).
    #[error(transparent)]
    Gone(#[from] Departure),
}

/// How a metadata peer broke the protocol or lied.
#[derive(Debug, thiserror::Error)]
enum Misbehaviour {
    /// Its messages broke the peer protocol.
    #[error(transparent)]
    Session(#[from] rustico_peer_wire::SessionError),
    /// Its `metadata_size` is zero, too large, or not what others said.
    #[error("rejected: {0}")]
    Size(#[source] rustico_peer_wire::MetadataError),
    /// A metadata piece we did not ask for, or of the wrong size.
    #[error("rejected metadata piece: {0}")]
    Piece(#[source] rustico_peer_wire::MetadataError),
    /// A reject of a piece we did not ask it for.
    #[error("rejected reject: {0}")]
    Reject(#[source] rustico_peer_wire::MetadataError),
    /// Metadata it sent did not hash to the info-hash.
    #[error("dropped: its metadata did not match the info-hash")]
    WrongMetadata,
    /// Piece-layer hashes that do not lead to the file's root.
    #[error("dropped: {0}")]
    WrongLayers(#[source] rustico_metainfo::LayerFetchError),
}

/// Why a metadata peer left without fault of its own.
#[derive(Debug, thiserror::Error)]
enum Departure {
    /// Connecting or the handshake failed.
    #[error("handshake: {0}")]
    Handshake(#[source] crate::engine::conn::ConnectError),
    /// A socket option could not be set.
    #[error("socket: {0}")]
    Socket(#[source] std::io::Error),
    /// Writing to it failed.
    #[error("send: {0}")]
    Send(#[source] std::io::Error),
    /// Reading from it failed.
    #[error("read: {0}")]
    Read(#[source] std::io::Error),
    /// It closed the connection.
    #[error("peer closed the connection")]
    Closed,
    /// Its handshake lacks the extension protocol.
    #[error("no extension protocol (BEP 10), so no ut_metadata")]
    NoExtensions,
    /// Its extension handshake lacks `ut_metadata`.
    #[error("does not support ut_metadata")]
    NoUtMetadata,
    /// Its extension handshake has no `metadata_size`.
    #[error("has no metadata to give (no metadata_size)")]
    NoMetadataSize,
    /// The fetch was stopped or ran out of time.
    #[error("stopped")]
    Stopped,
    /// It answered no hash request for [`LAYER_PEER_TIMEOUT`].
    #[error("no answer to our hash requests")]
    Silent,
    /// It refused a hash request.
    #[error("rejected a hash request")]
    HashesRejected,
}

/// One peer: handshakes, then requests metadata pieces as the download
/// hands them out, until the fetch is done or the peer fails or lies.
fn fetch_from_peer(shared: &Shared, handle: usize, addr: SocketAddr) -> Result<(), PeerFailure> {
    let config = SessionConfig {
        handshake_timeout: CONNECT_TIMEOUT,
        stats_interval: None,
        client: Some(format!("rustico {}", env!("CARGO_PKG_VERSION"))),
        ..SessionConfig::default()
    };
    let ours = Handshake::new(Reserved::supported(), shared.info_hash, shared.peer_id);
    let hs = Handshaking::new(ours, Content::magnet(), config, Instant::now());
    let (mut link, mut session) =
        crate::engine::conn::dial(addr, shared.info_hash, hs, shared.encryption)
            .map_err(Departure::Handshake)?;
    if let Ok(mut answered) = shared.answered.lock() {
        answered.push(addr);
    }
    let mut out = Vec::new();
    if !session.extended() {
        return Err(Departure::NoExtensions.into());
    }
    // Reads wait at most a slice, then the shared state is looked at again.
    link.socket()
        .set_read_timeout(Some(READ_SLICE))
        .map_err(Departure::Socket)?;
    let mut asking = false;
    loop {
        if shared.done.load(Ordering::SeqCst) {
            return Ok(());
        }
        if shared.is_banned(handle) {
            return Err(Misbehaviour::WrongMetadata.into());
        }
        while let Some(event) = session.poll_event() {
            handle_event(shared, handle, addr, event, &mut asking)?;
        }
        if asking {
            let mut download = shared.download();
            while let Some(piece) = download.poll_request(handle, Instant::now()) {
                session.request_metadata(piece);
            }
        }
        out.clear();
        session.poll_transmit(&mut out, Instant::now());
        link.write_all(&mut out).map_err(Departure::Send)?;
        // Straight into the session's buffer: no copy on the way.
        match link.read(session.recv_buffer()) {
            Ok(0) => return Err(Departure::Closed.into()),
            Ok(n) => session
                .handle_received(n, Instant::now())
                .map_err(Misbehaviour::from)?,
            Err(e) if crate::engine::link::is_retry(&e) => {}
            Err(e) => return Err(Departure::Read(e).into()),
        }
        session
            .handle_timeout(Instant::now())
            .map_err(Misbehaviour::from)?;
    }
}

/// What one session event means for the shared download; `asking` turns
/// on once the peer announced a size we accept.
fn handle_event(
    shared: &Shared,
    handle: usize,
    addr: SocketAddr,
    event: Event,
    asking: &mut bool,
) -> Result<(), PeerFailure> {
    match event {
        Event::Extensions(ext) => {
            if !ext.ut_metadata {
                return Err(Departure::NoUtMetadata.into());
            }
            let Some(size) = ext.metadata_size else {
                return Err(Departure::NoMetadataSize.into());
            };
            let accepted = shared.download().handle_metadata_size(handle, size);
            if let Err(e) = accepted {
                let mut refused = shared
                    .refused_sizes
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                refused.0 += 1;
                refused.1 = Some((size, e));
                return Err(Misbehaviour::Size(e).into());
            }
            *asking = true;
            log::debug!(target: "rustico", "metadata peer {addr}: metadata_size {size}");
        }
        Event::MetadataPiece {
            piece,
            total_size,
            data,
        } => {
            let outcome = shared
                .download()
                .handle_data(handle, piece, total_size, &data)
                .map_err(Misbehaviour::Piece)?;
            match outcome {
                DataOutcome::Complete => {
                    log::info!(target: "rustico", "metadata complete and verified against the info-hash");
                }
                DataOutcome::HashMismatch { contributors } => {
                    let names: Vec<String> =
                        contributors.iter().map(|&c| shared.addr_of(c)).collect();
                    log::warn!(
                        target: "rustico",
                        "metadata does not match the info-hash (SHA-1); dropping the peers that sent it: {}",
                        names.join(", ")
                    );
                    if let Ok(mut banned) = shared.banned.lock() {
                        banned.extend(contributors);
                    }
                }
                DataOutcome::Stored | DataOutcome::Duplicate => {}
            }
        }
        Event::MetadataRejected { piece } => {
            log::debug!(target: "rustico", "metadata peer {addr}: rejected piece {piece}");
            shared
                .download()
                .handle_reject(handle, piece)
                .map_err(Misbehaviour::Reject)?;
        }
        _ => {}
    }
    Ok(())
}

/// Fetches a magnet link's metadata and builds its torrent: the parsed
/// torrent, the `.torrent` bytes and the peers that answered.
pub fn resolve(
    magnet: &Magnet,
    sources: &PeerSources,
    deadline: Option<Instant>,
    stop: &AtomicBool,
) -> Result<(Torrent, Vec<u8>, Vec<SocketAddr>), FetchError> {
    if sources.peers.is_empty() && sources.trackers.is_empty() {
        return Err(FetchError::NoSources);
    }
    let name = magnet.display_name.as_deref().unwrap_or("(no name)");
    log::info!(target: "rustico", "fetching the metadata of {} ({name}) from peers", magnet.info_hash);
    let v2_only = magnet.info_hashes().v1.is_none();
    let (info, peers) = fetch_metadata(magnet.info_hash.0, v2_only, sources, deadline, stop)?;
    // The link's trackers (`tr`, one tier each) and web seeds (`ws`)
    // around the verified info dictionary.
    let mut torrent = Torrent::from_magnet_and_info(magnet, &info).map_err(FetchError::Metadata)?;
    // A hybrid verifies its pieces by SHA-1 without the layers; a
    // v2-only torrent cannot.
    if !torrent.has_v1() && !torrent.has_piece_layers() {
        torrent = fetch_piece_layers(&torrent, &peers, sources.encryption, deadline, stop)?;
    }
    let file = torrent.as_bytes().to_vec();
    Ok((torrent, file, peers))
}

/// The info-hash a v2-only torrent's swarm goes by: SHA-256 of the info
/// dictionary, truncated to 20 bytes (BEP 52).
fn truncated_v2_hash(info: &[u8]) -> [u8; 20] {
    rustico_metainfo::InfoHashV2::of_info_bytes(info)
        .truncated()
        .0
}

/// A peer that answers no hash request for this long is left for the next.
const LAYER_PEER_TIMEOUT: Duration = Duration::from_secs(20);

/// Fetches the piece layers `torrent` lacks from `peers` (those that
/// answered the metadata fetch), one peer at a time, until every layer is
/// in and checked, `deadline` passes or `stop` is set.
fn fetch_piece_layers(
    torrent: &Torrent,
    peers: &[SocketAddr],
    encryption: Policy,
    deadline: Option<Instant>,
    stop: &AtomicBool,
) -> Result<Torrent, FetchError> {
    let mut fetch = rustico_metainfo::PieceLayerFetch::new(torrent);
    let peer_id = crate::engine::make_peer_id();
    for &addr in peers {
        if stop.load(Ordering::SeqCst) {
            return Err(FetchError::Interrupted(Stage::PieceLayers));
        }
        match layers_from_peer(
            torrent, &mut fetch, addr, peer_id, encryption, deadline, stop,
        ) {
            Ok(()) => {}
            Err(why @ PeerFailure::Misbehaved(_)) => {
                log::warn!(target: "rustico", "piece layers from {addr}: {why}");
            }
            Err(why @ PeerFailure::Gone(_)) => {
                log::info!(target: "rustico", "piece layers from {addr}: {why}");
            }
        }
        if fetch.is_complete() {
            log::info!(target: "rustico", "piece layers complete and verified against the pieces roots");
            return fetch.complete(torrent).map_err(FetchError::Layers);
        }
    }
    Err(FetchError::NoLayers { peers: peers.len() })
}

/// One peer's part of [`fetch_piece_layers`]: asks it for every range
/// still missing until all are in, it rejects one, lies, leaves or
/// stays silent for [`LAYER_PEER_TIMEOUT`]. Ranges it held go back.
fn layers_from_peer(
    torrent: &Torrent,
    fetch: &mut rustico_metainfo::PieceLayerFetch,
    addr: SocketAddr,
    peer_id: [u8; 20],
    encryption: Policy,
    deadline: Option<Instant>,
    stop: &AtomicBool,
) -> Result<(), PeerFailure> {
    use rustico_metainfo::LayerRange;
    let info_hash = torrent.info_hash().0;
    let config = SessionConfig {
        handshake_timeout: CONNECT_TIMEOUT,
        stats_interval: None,
        client: Some(format!("rustico {}", env!("CARGO_PKG_VERSION"))),
        ..SessionConfig::default()
    };
    let ours = Handshake::new(
        Reserved::supported().with_v2_upgrade(true),
        info_hash,
        peer_id,
    );
    let hs = Handshaking::new(ours, Content::magnet(), config, Instant::now());
    let (mut link, mut session) =
        crate::engine::conn::dial(addr, info_hash, hs, encryption).map_err(Departure::Handshake)?;
    link.socket()
        .set_read_timeout(Some(READ_SLICE))
        .map_err(Departure::Socket)?;
    let mut asked: Vec<LayerRange> = Vec::new();
    let mut last_answer = Instant::now();
    let mut out = Vec::new();
    let outcome = loop {
        if fetch.is_complete() {
            break Ok(());
        }
        if stop.load(Ordering::SeqCst) || deadline.is_some_and(|d| Instant::now() >= d) {
            break Err(Departure::Stopped.into());
        }
        if last_answer.elapsed() >= LAYER_PEER_TIMEOUT {
            break Err(Departure::Silent.into());
        }
        while session.hash_requests().len() < rustico_peer_wire::MAX_HASH_REQUESTS {
            let Some(range) = fetch.poll_request() else {
                break;
            };
            if session.request_hashes(crate::meta::hash_request(&range)) {
                asked.push(range);
            } else {
                fetch.release(&range);
                break;
            }
        }
        let mut ended = None;
        while let Some(event) = session.poll_event() {
            let (request, hashes) = match event {
                Event::Hashes { request, hashes } => (request, Some(hashes)),
                Event::HashesRejected(request) => (request, None),
                _ => continue,
            };
            let Some(at) = asked
                .iter()
                .position(|r| crate::meta::hash_request(r) == request)
            else {
                continue;
            };
            let range = asked.swap_remove(at);
            last_answer = Instant::now();
            match hashes {
                Some(hashes) => {
                    if let Err(e) = fetch.handle_hashes(&range, &hashes) {
                        ended = Some(Misbehaviour::WrongLayers(e).into());
                    }
                }
                None => {
                    fetch.release(&range);
                    ended = Some(Departure::HashesRejected.into());
                }
            }
        }
        if let Some(why) = ended {
            break Err(why);
        }
        out.clear();
        session.poll_transmit(&mut out, Instant::now());
        if let Err(e) = link.write_all(&mut out) {
            break Err(Departure::Send(e).into());
        }
        match link.read(session.recv_buffer()) {
            Ok(0) => break Err(Departure::Closed.into()),
            Ok(n) => {
                if let Err(e) = session.handle_received(n, Instant::now()) {
                    break Err(Misbehaviour::from(e).into());
                }
            }
            Err(e) if crate::engine::link::is_retry(&e) => {}
            Err(e) => break Err(Departure::Read(e).into()),
        }
        if let Err(e) = session.handle_timeout(Instant::now()) {
            break Err(Misbehaviour::from(e).into());
        }
    };
    for range in &asked {
        fetch.release(range);
    }
    outcome
}

/// A file name for `<name>.torrent` that cannot leave its folder.
pub fn torrent_file_name(name: &str) -> String {
    let safe: String = name
        .chars()
        .map(|c| {
            if c == '/' || c == '\\' || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    let safe = safe.trim_start_matches('.');
    if safe.is_empty() {
        "metadata.torrent".into()
    } else {
        format!("{safe}.torrent")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};

    use rustico_metainfo::{HashServer, TorrentBuilder, TorrentVersion};
    use rustico_peer_wire::{HashRequest, HashSource, Progress};

    /// Answers hash requests from a torrent's layers, with every hash
    /// flipped when `lie` is set.
    #[derive(Debug)]
    struct Layers {
        server: HashServer,
        lie: bool,
    }

    impl HashSource for Layers {
        fn hashes(&self, r: &HashRequest) -> Option<Vec<[u8; 32]>> {
            let mut hashes = self.server.answer(&crate::meta::layer_range(r))?;

            if self.lie {
                hashes.iter_mut().for_each(|h| h[0] ^= 1);
            }
            Some(hashes)
        }
    }

    /// A peer on 127.0.0.1 that serves one connection with a session
    /// answering from `source`; returns its address and a thread that
    /// ends when the connection does.
    fn fake_peer(info_hash: [u8; 20], source: Layers) -> (SocketAddr, std::thread::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let thread = std::thread::spawn(move || {
            let (mut stream, _): (TcpStream, _) = listener.accept().unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let now = Instant::now();
            let ours = Handshake::new(
                Reserved::supported().with_v2_upgrade(true),
                info_hash,
                [7; 20],
            );
            let content = Content::magnet().with_hashes(Arc::new(source));
            let mut hs = Handshaking::new(ours, content, SessionConfig::default(), now);
            let mut out = Vec::new();
            hs.poll_transmit(&mut out, now);
            stream.write_all(&out).unwrap();
            let mut buf = vec![0u8; 1 << 16];
            let mut session = loop {
                let n = stream.read(&mut buf).unwrap();
                assert!(n > 0, "closed during the handshake");
                match hs.handle_input(&buf[..n], now).unwrap() {
                    Progress::Handshaking(next) => hs = next,
                    Progress::Established(s) => break s,
                }
            };
            loop {
                out.clear();
                session.poll_transmit(&mut out, Instant::now());
                if stream.write_all(&out).is_err() {
                    return;
                }
                match stream.read(session.recv_buffer()) {
                    Ok(n) if n > 0 => {
                        if session.handle_received(n, Instant::now()).is_err() {
                            return;
                        }
                    }
                    _ => return,
                }
            }
        });
        (addr, thread)
    }

    /// A peer whose hashes do not lead to the pieces root is dropped, and
    /// the layers come from the next peer.
    #[test]
    fn a_peer_with_wrong_layer_hashes_is_dropped_and_the_next_one_gives_them() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.bin");
        let data: Vec<u8> = (0..600 * 16_384 + 9)
            .map(|i: usize| (i * 13 + i / 777) as u8)
            .collect();
        std::fs::write(&file, data).unwrap();
        let full = TorrentBuilder::new(&file)
            .version(TorrentVersion::V2)
            .piece_length(16_384)
            .build(|_| {}, &AtomicBool::new(false))
            .unwrap();
        let bare = Torrent::from_info_bytes(full.info_bytes()).unwrap();
        let hash = full.info_hash().0;
        let (liar, liar_thread) = fake_peer(
            hash,
            Layers {
                server: HashServer::new(&full),
                lie: true,
            },
        );
        let (honest, _) = fake_peer(
            hash,
            Layers {
                server: HashServer::new(&full),
                lie: false,
            },
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        let stop = AtomicBool::new(false);
        let complete = fetch_piece_layers(
            &bare,
            &[liar, honest],
            Policy::Disable,
            Some(deadline),
            &stop,
        )
        .unwrap();
        // The liar's connection was closed on its first answer.
        liar_thread.join().unwrap();
        assert!(complete.has_piece_layers());
        for piece in 0..full.num_pieces() {
            assert_eq!(complete.v2_piece_hash(piece), full.v2_piece_hash(piece));
        }
        // Only liars: an error, not a torrent.
        let (liar, _) = fake_peer(
            hash,
            Layers {
                server: HashServer::new(&full),
                lie: true,
            },
        );
        assert!(
            fetch_piece_layers(&bare, &[liar], Policy::Disable, Some(deadline), &stop).is_err()
        );
    }

    #[test]
    fn a_link_with_nowhere_to_ask_is_a_typed_error() {
        let magnet = Magnet::parse(&format!("magnet:?xt=urn:btih:{}", "ab".repeat(20))).unwrap();
        let sources = PeerSources::from_magnet(&magnet, &[], 6881);
        let err = resolve(&magnet, &sources, None, &AtomicBool::new(false)).unwrap_err();
        assert!(matches!(err, FetchError::NoSources), "{err:?}");
        assert!(err.to_string().contains("--peer"), "{err}");
        // The refused size and why, not "no peer sent one".
        let refused = FetchError::SizesRefused {
            peers: 3,
            refused: 1,
            size: 1_000_000_000,
            why: rustico_peer_wire::MetadataError::SizeTooLarge {
                size: 1_000_000_000,
                max: 16 << 20,
            },
        };
        let text = refused.to_string();
        assert!(
            text.contains("refused: metadata_size 1000000000: "),
            "{text}"
        );
        assert!(!text.contains("sent metadata_size"), "{text}");
    }

    #[test]
    fn torrent_file_names_stay_in_their_folder() {
        assert_eq!(torrent_file_name("abc"), "abc.torrent");
        assert_eq!(torrent_file_name("../x/y"), "_x_y.torrent");
        assert_eq!(torrent_file_name(".."), "metadata.torrent");
    }
}
