//! The torrent manager: one thread per torrent that drives a
//! [`rustico_swarm::Swarm`]. It feeds the swarm what peers, savers and
//! trackers report, and carries out what the swarm polls out: orders to
//! peer connections, pieces to the saver pool, addresses to dial,
//! snapshots to the resume thread, `completed` to the tracker thread.
//! Every protocol or policy decision is the swarm's.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, select, unbounded, Receiver, Sender};
use rustico_storage::{Options, Storage, WriteError};
use rustico_swarm::{
    Bitfield, CloseReason, Dial, Disconnect, Event as SwarmEvent, HandshakeInfo, PeerCommand,
    PeerEvent, PeerSource, Remote, Swarm, SwarmConfig, SwarmError,
};

use super::conn::{self, Closed, ConnInput, ConnSetup, Mailbox, Origin};
use super::tracker::{self, TrackerEvent};
use super::webseed::{self, WebSeedInput};
use super::{Control, PeerKey, PeerMsg, Status, ToManager};
use crate::meta::TorrentMeta;
use crate::session::{Command, Event};

/// Per-torrent choices of the caller.
#[derive(Debug, Clone, Default)]
pub struct TorrentOptions {
    /// Keep running (seeding) once complete; else the manager stops.
    pub keep_seeding: bool,
    /// Peers to connect to before those of trackers and the DHT: the
    /// user's, and those that answered a magnet link's metadata fetch.
    pub peers: Vec<SocketAddr>,
    /// Announce to the torrent's trackers.
    pub use_trackers: bool,
    /// Where to keep resume data (default: `DIR/.HASH.rustico-resume`).
    pub resume_path: Option<PathBuf>,
}

pub(super) struct ManagerSetup {
    pub meta: TorrentMeta,
    pub dir: PathBuf,
    pub options: TorrentOptions,
    pub peer_id: [u8; 20],
    pub port: u16,
    pub peers_per_torrent: usize,
    pub peers_per_ip: usize,
    pub upload_slots: usize,
    pub encryption: rustico_peer_wire::mse::Policy,
    pub dht: Option<(u16, crate::dht::NodeSink)>,
    pub status: Arc<Status>,
    pub control_tx: Sender<Control>,
    pub control_rx: Receiver<Control>,
}

/// Why a torrent stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ManagerError {
    /// The content folder could not be opened.
    #[error("{name}: cannot open storage in {dir}: {source}")]
    Storage {
        /// The torrent.
        name: String,
        /// The folder.
        dir: String,
        /// Why.
        source: rustico_storage::OpenError,
    },
    /// Checking what is already on disk failed.
    #[error("{name}: checking existing data failed: {source}")]
    Recheck {
        /// The torrent.
        name: String,
        /// Why.
        source: rustico_storage::RecheckError,
    },
    /// The swarm refused the torrent or a report (a bug in this driver).
    #[error("{name}: {source}")]
    Swarm {
        /// The torrent.
        name: String,
        /// Why.
        source: SwarmError,
    },
    /// A piece could not be written.
    #[error("{name}: cannot write piece {piece}: {source}")]
    Write {
        /// The torrent.
        name: String,
        /// The piece.
        piece: u32,
        /// Why.
        source: WriteError,
    },
    /// A thread could not be started.
    #[error("cannot start a thread: {0}")]
    Thread(#[from] std::io::Error),
    /// A broken invariant of this driver (a bug; debug builds panic).
    #[error("{name}: internal error: {what}")]
    Internal {
        /// The torrent.
        name: String,
        /// The invariant.
        what: &'static str,
    },
}

/// How a piece fared in the saver.
#[derive(Debug)]
pub struct SaveResult {
    piece: u32,
    outcome: Result<(), WriteError>,
    data: Vec<u8>,
}

struct SaveJob {
    piece: u32,
    data: Vec<u8>,
}

const SAVER_THREADS: usize = 2;
const SAVER_QUEUE_BYTES: usize = 32 << 20;

/// Where a peer's orders go.
enum Link {
    /// A peer connection thread, through its coalescing mailbox.
    Conn(Mailbox, SocketAddr),
    /// A web seed thread, by its URL.
    Web(Sender<WebSeedInput>, String),
}

struct Manager {
    meta: TorrentMeta,
    swarm: Swarm,
    storage: Arc<Storage>,
    /// What peers' BEP 52 hash requests are answered from (v2 only).
    served_hashes: Option<Arc<dyn rustico_peer_wire::HashSource>>,
    /// The block hashes of the latest failed copy of v2 pieces, to
    /// compare with the hashes a peer sends (at most
    /// [`MAX_FAILED_COPIES`]).
    failed_copies: HashMap<u32, Vec<[u8; 32]>>,
    links: HashMap<PeerKey, Link>,
    /// The torrent's HTTP(S) web seeds, indexed as the swarm names them.
    web_seeds: Vec<String>,
    peer_id: [u8; 20],
    listen_port: u16,
    encryption: rustico_peer_wire::mse::Policy,
    dht: Option<(u16, crate::dht::NodeSink)>,
    status: Arc<Status>,
    peer_tx: Sender<ToManager>,
    saver_tx: Sender<SaveJob>,
    tracker_tx: Option<Sender<TrackerEvent>>,
    tracker_thread: Option<std::thread::JoinHandle<()>>,
    resume_tx: Option<Sender<Bitfield>>,
    resume_thread: Option<std::thread::JoinHandle<()>>,
    options: TorrentOptions,
}

pub(super) fn run(setup: ManagerSetup) {
    let status = setup.status.clone();
    if let Err(e) = run_inner(setup) {
        log::error!(target: "rustico", "{e}");
        // The slot is only ever replaced whole: a poisoned lock still
        // holds a valid value.
        *status
            .error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Arc::new(e));
    }
    status.stopped.store(true, Ordering::SeqCst);
}

fn run_inner(setup: ManagerSetup) -> Result<(), ManagerError> {
    let meta = setup.meta;
    let name = meta.name.clone();
    let storage =
        Storage::open(&setup.dir, meta.layout.clone(), Options::default()).map_err(|source| {
            ManagerError::Storage {
                name: name.clone(),
                dir: setup.dir.display().to_string(),
                source,
            }
        })?;
    let storage = Arc::new(storage);
    let resume_path = setup.options.resume_path.clone().unwrap_or_else(|| {
        setup
            .dir
            .join(format!(".{}.rustico-resume", meta.hex_hash()))
    });
    let status = setup.status;
    status
        .total_bytes
        .store(meta.total_length, Ordering::Relaxed);
    let started = Instant::now();
    status.checking.store(true, Ordering::Relaxed);
    let resumed = storage.resume_or_recheck(&resume_path, &|_| {}, &AtomicBool::new(false));
    status.checking.store(false, Ordering::Relaxed);
    let resumed = resumed.map_err(|source| ManagerError::Recheck {
        name: name.clone(),
        source,
    })?;
    log::info!(
        target: "rustico",
        "{name}: {} of {} pieces already on disk ({} rechecked in {:.1} s)",
        resumed.have.count(),
        meta.num_pieces,
        resumed.pieces_rechecked,
        started.elapsed().as_secs_f64()
    );
    let mut web_seeds = Vec::new();
    for base in &meta.web_seeds {
        if base.starts_with("http://") || base.starts_with("https://") {
            web_seeds.push(base.clone());
        } else {
            log::warn!(target: "rustico", "{name}: web seed {base}: not HTTP(S); skipped");
        }
    }
    let mut config = SwarmConfig::new(meta.total_length, meta.piece_length, setup.peer_id);
    config.listen_port = Some(setup.port);
    config.private = meta.private;
    config.max_peers = setup.peers_per_torrent;
    config.max_peers_per_ip = setup.peers_per_ip;
    config.upload_slots = setup.upload_slots;
    config.seed = super::seed_from_clock();
    config.web_seeds = web_seeds.len();
    config.block_hashes = meta.block_layers.is_some();
    let now = Instant::now();
    let swarm_error = |source| ManagerError::Swarm {
        name: name.clone(),
        source,
    };
    let mut swarm = Swarm::new(config, resumed.have, now).map_err(swarm_error)?;
    status
        .have_bytes
        .store(swarm.stats().have_bytes, Ordering::Relaxed);

    // Peers block (and TCP pushes back) when the manager falls behind; a
    // message is the events of one wake-up, at most about 1 MiB of blocks.
    let (peer_tx, peer_rx) = bounded::<ToManager>(64);
    // Room for about 32 MiB of pieces waiting to be hashed and written:
    // enough to absorb a burst without the manager (and so every peer's
    // pipeline) stalling on the savers, bounded whatever the piece size.
    let queue = (SAVER_QUEUE_BYTES / meta.piece_length.max(1) as usize).clamp(2, 256);
    let (saver_tx, saver_rx) = bounded::<SaveJob>(queue);
    for _ in 0..SAVER_THREADS {
        let rx = saver_rx.clone();
        let storage = storage.clone();
        let control = setup.control_tx.clone();
        super::spawn("saver", move || saver(&rx, &storage, &control))?;
    }
    drop(saver_rx);
    let (tracker_tx, tracker_thread) = if setup.options.use_trackers && !meta.trackers.is_empty() {
        let (tx, rx) = unbounded();
        let t = tracker::TrackerSetup {
            tiers: meta.trackers.clone(),
            info_hashes: std::iter::once(meta.info_hash)
                .chain(meta.v2_swarm)
                .collect(),
            peer_id: setup.peer_id,
            port: setup.port,
            status: status.clone(),
            control: setup.control_tx.clone(),
            events: rx,
        };
        (
            Some(tx),
            Some(super::spawn("tracker", move || tracker::run(t))?),
        )
    } else {
        (None, None)
    };
    let (resume_tx, resume_rx) = unbounded::<Bitfield>();
    let resume_thread = {
        let storage = storage.clone();
        let name = name.clone();
        super::spawn("resume", move || {
            while let Ok(mut have) = resume_rx.recv() {
                // Only the latest snapshot matters.
                while let Ok(newer) = resume_rx.try_recv() {
                    have = newer;
                }
                if let Err(e) = storage.save_resume(&resume_path, &have) {
                    log::warn!(target: "rustico", "{name}: saving resume data failed: {e}");
                }
            }
        })?
    };
    swarm.handle_candidates(setup.options.peers.iter().copied(), PeerSource::User, now);
    if swarm.is_complete() {
        status.complete_on_disk.store(true, Ordering::SeqCst);
        status.complete.store(true, Ordering::SeqCst);
    }
    let served_hashes = meta.served_hashes(&storage);
    let mut m = Manager {
        meta,
        swarm,
        storage,
        served_hashes,
        failed_copies: HashMap::new(),
        links: HashMap::new(),
        web_seeds,
        peer_id: setup.peer_id,
        listen_port: setup.port,
        encryption: setup.encryption,
        dht: setup.dht,
        status,
        peer_tx,
        saver_tx,
        tracker_tx,
        tracker_thread,
        resume_tx: Some(resume_tx),
        resume_thread: Some(resume_thread),
        options: setup.options,
    };
    let result = m.event_loop(&peer_rx, &setup.control_rx);
    m.shut_down(&peer_rx);
    result
}

/// Failed v2 pieces whose block hashes the manager keeps at once (the
/// swarm asks for no more than its suspect pieces either).
const MAX_FAILED_COPIES: usize = 64;

fn saver(rx: &Receiver<SaveJob>, storage: &Storage, control: &Sender<Control>) {
    for job in rx {
        let outcome = storage.write_piece(job.piece, &job.data);
        let result = SaveResult {
            piece: job.piece,
            outcome,
            data: job.data,
        };
        if control.send(Control::Saved(result)).is_err() {
            return;
        }
    }
}

/// A session's report as the swarm takes it (`None`: the connection
/// thread handles it itself).
fn peer_event(event: Event) -> Option<PeerEvent> {
    Some(match event {
        Event::Pieces(bits) => PeerEvent::Pieces(bits),
        Event::Have(piece) => PeerEvent::Have(piece),
        Event::Choked(on) => PeerEvent::Choked(on),
        Event::Interested(on) => PeerEvent::Interested(on),
        Event::Block { req, data } => PeerEvent::Block { req, data },
        Event::Dropped(reqs) => PeerEvent::Rejected(reqs),
        Event::Stalled(reqs) => PeerEvent::Stalled(reqs),
        Event::Reqq(n) => PeerEvent::Reqq(n),
        Event::PeerInfo { listen_port, pex } => PeerEvent::ExtensionInfo { listen_port, pex },
        Event::Pex(message) => PeerEvent::Pex(message),
        Event::Stats { down, up } => PeerEvent::Transferred { down, up },
        Event::BlockHashesRefused(piece) => PeerEvent::BlockHashesRefused(piece),
        Event::AllowedFast(piece) => PeerEvent::AllowedFast(piece),
        Event::Serve(_) | Event::BlockHashes { .. } => return None,
    })
}

impl Manager {
    fn event_loop(
        &mut self,
        peer_rx: &Receiver<ToManager>,
        control_rx: &Receiver<Control>,
    ) -> Result<(), ManagerError> {
        loop {
            self.carry_out()?;
            if self.swarm.is_complete()
                && self.swarm.pieces_saving() == 0
                && !self.options.keep_seeding
            {
                return Ok(());
            }
            let timer = self
                .swarm
                .poll_timeout()
                .map_or_else(crossbeam_channel::never, crossbeam_channel::at);
            select! {
                recv(peer_rx) -> msg => if let Ok(ToManager::Peer(key, msg)) = msg {
                    self.handle_peer(key, msg)?;
                },
                recv(control_rx) -> c => match c {
                    Ok(Control::Stop) | Err(_) => return Ok(()),
                    Ok(c) => self.handle_control(c)?,
                },
                recv(timer) -> _ => self.swarm.handle_timeout(Instant::now()),
            }
        }
    }

    /// Drains the swarm's outputs, in the order its docs give.
    fn carry_out(&mut self) -> Result<(), ManagerError> {
        while let Some((key, command)) = self.swarm.poll_command() {
            self.send(key, command);
        }
        while let Some(piece) = self.swarm.poll_piece() {
            // The savers end only when the manager does (or panic): a
            // piece sent nowhere would leave the swarm waiting forever.
            let sent = self.saver_tx.send(SaveJob {
                piece: piece.piece,
                data: piece.data,
            });
            if sent.is_err() {
                debug_assert!(false, "every saver thread ended");
                return Err(ManagerError::Internal {
                    name: self.meta.name.clone(),
                    what: "every saver thread ended",
                });
            }
        }
        while let Some(dial) = self.swarm.poll_dial() {
            self.dial(dial)?;
        }
        while let Some(event) = self.swarm.poll_event() {
            self.handle_swarm_event(event);
        }
        self.publish();
        Ok(())
    }

    /// Keeps the block hashes of a failed v2 piece, for when a peer sends
    /// the true ones.
    fn keep_failed_copy(&mut self, piece: u32, data: &[u8]) {
        let Some(blocks) = self.meta.block_layers.as_ref().and_then(|l| l.piece(piece)) else {
            return;
        };
        if self.failed_copies.len() < MAX_FAILED_COPIES || self.failed_copies.contains_key(&piece) {
            self.failed_copies.insert(piece, blocks.copy_hashes(data));
        }
    }

    /// A peer sent the checked block hashes of a failed piece: the blocks
    /// of its latest failed copy that differ go to the swarm, which bans
    /// their senders.
    fn compare_failed_copy(&mut self, piece: u32, hashes: &[[u8; 32]], now: Instant) {
        let (Some(copy), Some(blocks)) = (
            self.failed_copies.remove(&piece),
            self.meta.block_layers.as_ref().and_then(|l| l.piece(piece)),
        ) else {
            return;
        };
        let corrupt = blocks.corrupt_blocks(hashes, &copy);
        log::debug!(target: "rustico", "{}: piece {piece}: blocks {corrupt:?} proved corrupt by their hashes", self.meta.name);
        self.swarm.handle_corrupt_blocks(piece, &corrupt, now);
    }

    fn send(&mut self, key: PeerKey, command: PeerCommand) {
        let Some(link) = self.links.get(&key) else {
            return;
        };
        match link {
            Link::Conn(tx, _) => {
                let input = match command {
                    PeerCommand::Request(reqs) => ConnInput::Command(Command::Request(reqs)),
                    PeerCommand::Cancel(req) => ConnInput::Command(Command::Cancel(req)),
                    PeerCommand::Have(piece) => ConnInput::Command(Command::Have(piece)),
                    PeerCommand::Choke(on) => ConnInput::Command(Command::Choke(on)),
                    PeerCommand::Interested(on) => ConnInput::Command(Command::Interested(on)),
                    PeerCommand::Pex(message) => ConnInput::Command(Command::Pex(message)),
                    PeerCommand::Close(reason) => ConnInput::Close(conn::CloseOrder::Swarm(reason)),
                    PeerCommand::RequestBlockHashes(piece) => {
                        let Some(blocks) =
                            self.meta.block_layers.as_ref().and_then(|l| l.piece(piece))
                        else {
                            debug_assert!(false, "block hashes asked of a v1 piece {piece}");
                            return;
                        };
                        ConnInput::Command(Command::RequestHashes(crate::meta::hash_request(
                            blocks.range(),
                        )))
                    }
                    PeerCommand::BackOff => return,
                };
                tx.send(input);
            }
            Link::Web(tx, _) => {
                let input = match command {
                    PeerCommand::Request(reqs) => WebSeedInput::Request(reqs),
                    PeerCommand::Cancel(req) => WebSeedInput::Cancel(req),
                    PeerCommand::BackOff => WebSeedInput::BackOff,
                    PeerCommand::Close(_) => WebSeedInput::Close,
                    _ => return,
                };
                let _ = tx.send(input);
            }
        }
    }

    fn dial(&mut self, dial: Dial) -> Result<(), ManagerError> {
        let started = match dial.remote {
            Remote::Addr(addr) => self.spawn_connection(dial.peer, addr, Origin::Outgoing),
            Remote::WebSeed(index) => self.spawn_web_seed(dial.peer, index),
        };
        if !started {
            let reported =
                self.swarm
                    .handle_disconnected(dial.peer, Disconnect::Failed, Instant::now());
            self.swarm_report(reported)?;
        }
        Ok(())
    }

    fn spawn_connection(&mut self, key: PeerKey, addr: SocketAddr, origin: Origin) -> bool {
        let (tx, rx) = conn::mailbox();
        let setup = ConnSetup {
            key,
            addr,
            info_hash: self.meta.info_hash,
            peer_id: self.peer_id,
            num_pieces: self.meta.num_pieces,
            ours: self.swarm.have().clone(),
            storage: self.storage.clone(),
            metadata: Arc::clone(&self.meta.metadata),
            hashes: self.served_hashes.clone(),
            block_layers: self.meta.block_layers.clone(),
            pex: !self.meta.private,
            listen_port: self.listen_port,
            encryption: self.encryption,
            dht: self.dht.clone(),
            to_manager: self.peer_tx.clone(),
            inbox: rx,
        };
        if super::spawn("peer", move || conn::run(setup, origin)).is_err() {
            return false;
        }
        self.links.insert(key, Link::Conn(tx, addr));
        true
    }

    fn spawn_web_seed(&mut self, key: PeerKey, index: usize) -> bool {
        let Some(base) = self.web_seeds.get(index).cloned() else {
            return false;
        };
        let files: Vec<(Vec<String>, u64, bool)> = self
            .meta
            .layout
            .files()
            .iter()
            .map(|file| {
                let path = file.components().map(str::to_string).collect();
                (path, file.length, file.padding)
            })
            .collect();
        let (tx, rx) = unbounded();
        let setup = webseed::WebSeedSetup {
            key,
            base: base.clone(),
            files: webseed::file_urls(&base, self.meta.multi_file, &files),
            piece_length: u64::from(self.meta.piece_length),
            num_pieces: self.meta.num_pieces,
            to_manager: self.peer_tx.clone(),
            inbox: rx,
        };
        if super::spawn("webseed", move || webseed::run(setup)).is_err() {
            return false;
        }
        log::info!(target: "rustico", "{}: using web seed {base}", self.meta.name);
        self.links.insert(key, Link::Web(tx, base));
        true
    }

    /// A peer for logs: its address, or a web seed's URL.
    fn name_of(&self, remote: Remote) -> String {
        match remote {
            Remote::Addr(addr) => addr.to_string(),
            Remote::WebSeed(i) => format!(
                "web seed {}",
                self.web_seeds.get(i).map_or("?", String::as_str)
            ),
        }
    }

    fn handle_swarm_event(&mut self, event: SwarmEvent) {
        let name = &self.meta.name;
        match event {
            SwarmEvent::PieceSaved { piece } => log::info!(
                target: "rustico",
                "{name}: piece {piece} complete ({}/{})",
                self.swarm.have().count(),
                self.meta.num_pieces
            ),
            SwarmEvent::HashFailed { piece, senders } => {
                let names: Vec<String> = senders.iter().map(|r| self.name_of(*r)).collect();
                log::warn!(
                    target: "rustico",
                    "{name}: piece {piece} failed its hash check (sent by {})",
                    names.join(", ")
                );
            }
            SwarmEvent::Complete => {
                log::info!(target: "rustico", "{name}: download complete");
                if let Some(tx) = &self.tracker_tx {
                    let _ = tx.send(TrackerEvent::Completed);
                }
                self.status.complete.store(true, Ordering::SeqCst);
            }
            SwarmEvent::Banned { remote, reason } => log::warn!(
                target: "rustico",
                "{name}: banning peer {}: {reason}",
                self.name_of(remote)
            ),
            SwarmEvent::SaveResume(have) => {
                // Saving fsyncs the data first, which must not stall us.
                if let Some(tx) = &self.resume_tx {
                    let _ = tx.send(have);
                }
            }
            SwarmEvent::PexReceived {
                peer,
                learned,
                listed,
            } => {
                if let Some(Link::Conn(_, from)) = self.links.get(&peer) {
                    log::info!(
                        target: "rustico",
                        "{name}: PEX from {from}: {learned} new peers (of {listed} listed)"
                    );
                }
            }
        }
    }

    fn publish(&self) {
        let s = self.swarm.stats();
        let status = &self.status;
        status.have_bytes.store(s.have_bytes, Ordering::Relaxed);
        status.downloaded.store(s.downloaded, Ordering::Relaxed);
        status.uploaded.store(s.uploaded, Ordering::Relaxed);
        status
            .down_rate
            .store(s.down_rate as u64, Ordering::Relaxed);
        status.up_rate.store(s.up_rate as u64, Ordering::Relaxed);
        status.peers.store(s.peers, Ordering::Relaxed);
    }

    /// Peers and pieces for a user interface.
    fn detail(&self) -> super::TorrentDetail {
        let mut downloading = Vec::new();
        let mut peers = Vec::new();
        for key in self.swarm.peer_keys() {
            downloading.extend(self.swarm.requests_in_flight(key).map(|r| r.piece));
            let Some(stats) = self.swarm.peer_stats(key) else {
                continue;
            };
            peers.push(super::PeerDetail {
                address: self.name_of(stats.remote),
                stats,
            });
        }
        downloading.sort_unstable();
        downloading.dedup();
        super::TorrentDetail {
            peers,
            have: self.swarm.have().clone(),
            downloading,
        }
    }

    fn handle_control(&mut self, c: Control) -> Result<(), ManagerError> {
        let now = Instant::now();
        match c {
            Control::Incoming(accepted, addr) => match self.swarm.handle_incoming(addr, now) {
                Ok(key) => {
                    if !self.spawn_connection(key, addr, Origin::Incoming(accepted)) {
                        let reported = self.swarm.handle_disconnected(key, Disconnect::Failed, now);
                        self.swarm_report(reported)?;
                    }
                }
                Err(why) => {
                    log::debug!(target: "rustico", "{}: refused incoming peer {addr}: {why}", self.meta.name);
                }
            },
            Control::Peers(addrs, source) => {
                self.swarm.handle_candidates(addrs, source, now);
            }
            Control::Saved(result) => {
                let (piece, data) = (result.piece, result.data);
                let reported = match result.outcome {
                    Ok(()) => {
                        self.failed_copies.remove(&piece);
                        self.swarm.handle_piece_saved(piece, data, now)
                    }
                    Err(WriteError::HashMismatch { .. }) => {
                        self.keep_failed_copy(piece, &data);
                        self.swarm.handle_piece_failed(piece, data, now)
                    }
                    Err(source) => {
                        return Err(ManagerError::Write {
                            name: self.meta.name.clone(),
                            piece,
                            source,
                        })
                    }
                };
                reported.map_err(|source| ManagerError::Swarm {
                    name: self.meta.name.clone(),
                    source,
                })?;
            }
            Control::Detail(reply) => {
                let _ = reply.send(self.detail());
            }
            Control::Stop => {}
        }
        Ok(())
    }

    /// The swarm's answer to a report about a peer. A stale key is
    /// expected (the peer left while its report was on its way); any other
    /// refusal means this driver reported out of order, a bug.
    fn swarm_report(&self, result: Result<(), SwarmError>) -> Result<(), ManagerError> {
        match result {
            Ok(()) | Err(SwarmError::UnknownPeer { .. }) => Ok(()),
            Err(source) => {
                debug_assert!(false, "the swarm refused a report: {source}");
                Err(ManagerError::Swarm {
                    name: self.meta.name.clone(),
                    source,
                })
            }
        }
    }

    fn handle_peer(&mut self, key: PeerKey, msg: PeerMsg) -> Result<(), ManagerError> {
        let now = Instant::now();
        let name = &self.meta.name;
        match msg {
            PeerMsg::Connected {
                client,
                fast,
                peer_id,
                encrypted,
            } => {
                let info = HandshakeInfo {
                    peer_id,
                    fast,
                    client,
                    encrypted,
                };
                let connected = self.swarm.handle_connected(key, info, now);
                if connected.is_ok() {
                    if let (Some(Link::Conn(_, addr)), Some(stats)) =
                        (self.links.get(&key), self.swarm.peer_stats(key))
                    {
                        let way = if stats.outgoing {
                            "outgoing"
                        } else {
                            "incoming"
                        };
                        let link = if stats.encrypted {
                            "encrypted"
                        } else {
                            "plaintext"
                        };
                        log::info!(target: "rustico", "{name}: peer {addr} connected ({way}, {link}, {})", stats.client);
                    }
                }
                self.swarm_report(connected)?;
            }
            PeerMsg::Events(events) => {
                for event in events {
                    if let Event::BlockHashes { piece, hashes } = &event {
                        self.compare_failed_copy(*piece, hashes, now);
                    }
                    let Some(event) = peer_event(event) else {
                        continue;
                    };
                    let reported = self.swarm.handle_peer_event(key, event, now);
                    self.swarm_report(reported)?;
                }
            }
            PeerMsg::Closed(closed) => {
                let stats = self.swarm.peer_stats(key);
                let (how, reason) = match closed {
                    Closed::Failed(r) => (Disconnect::Failed, r.to_string()),
                    Closed::Normal(r) => (Disconnect::Closed, r.to_string()),
                };
                let reported = self.swarm.handle_disconnected(key, how, now);
                self.swarm_report(reported)?;
                let link = self.links.remove(&key);
                let who = match &link {
                    Some(Link::Conn(_, addr)) => addr.to_string(),
                    Some(Link::Web(_, url)) => format!("web seed {url}"),
                    None => "?".into(),
                };
                match stats {
                    Some(s) if s.connected => log::info!(
                        target: "rustico",
                        "{name}: peer {who} left: {reason} (down {} up {})",
                        crate::progress::human_bytes(s.downloaded),
                        crate::progress::human_bytes(s.uploaded)
                    ),
                    _ => log::debug!(target: "rustico", "{name}: peer {who} failed: {reason}"),
                }
            }
        }
        Ok(())
    }

    fn shut_down(&mut self, peer_rx: &Receiver<ToManager>) {
        self.swarm.close_all(CloseReason::Shutdown);
        while let Some((key, command)) = self.swarm.poll_command() {
            self.send(key, command);
        }
        if let Some(tx) = self.resume_tx.take() {
            let _ = tx.send(self.swarm.have().clone());
        }
        if let Some(tx) = self.tracker_tx.take() {
            let _ = tx.send(TrackerEvent::Stopped);
        }
        // Let connections say goodbye (briefly) so their threads end, and
        // count their last bytes.
        let deadline = Instant::now() + Duration::from_millis(500);
        while !self.links.is_empty() {
            match peer_rx.recv_deadline(deadline) {
                Ok(ToManager::Peer(key, msg @ (PeerMsg::Closed(_) | PeerMsg::Events(_)))) => {
                    // Stopping anyway: a bug is still worth a line.
                    if let Err(e) = self.handle_peer(key, msg) {
                        log::error!(target: "rustico", "{e}");
                    }
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        self.publish();
        self.status.peers.store(0, Ordering::Relaxed);
        if let Some(t) = self.resume_thread.take() {
            let _ = t.join();
        }
        // The `stopped` announce is bounded in time; wait for it so the
        // process does not exit first.
        if let Some(t) = self.tracker_thread.take() {
            let deadline = Instant::now() + Duration::from_secs(8);
            while !t.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}
