//! The torrent manager: one actor per torrent, run by the engine's
//! worker pool, that drives a [`rustico_swarm::Swarm`]. It feeds the
//! swarm what peers, the disk pool and trackers report, and carries out
//! what the swarm polls out: orders to peer connections, pieces and
//! resume snapshots to the disk pool, addresses to dial, `completed` to
//! the engine's tracker service. Every protocol or policy decision is the swarm's.
//!
//! A torrent starts by checking its storage on the disk pool
//! ([`TorrentActor`]'s first phase), runs until it is told to stop (or
//! completes, unless it keeps seeding), then waits briefly for its peers'
//! goodbyes, its last resume data and its trackers' `stopped`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, unbounded, Receiver, Sender, TryRecvError};
use rustico_storage::{Options, PieceData, Resumed, Storage, WriteError};
use rustico_swarm::{
    Bitfield, CloseReason, Dial, Disconnect, Event as SwarmEvent, HandshakeInfo, PeerCommand,
    PeerSource, Remote, Swarm, SwarmConfig, SwarmError,
};

use super::actors::{Actor, Mail, Step, Waker};
use super::conn::{self, Closed, ConnInput, ConnSetup, Mailbox, Origin};
use super::disk::DiskPool;
use super::limits::{ConnectionBudget, ConnectionSlot, RateLimits};
use super::tracker::{TrackerService, TrackerSetup, TrackerTorrent};
use super::webseed::{self, WebSeedInput};
use super::{Control, PeerKey, PeerMsg, Status, ToManager};
use crate::meta::TorrentMeta;
use crate::session::Command;

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
    pub connections: ConnectionBudget,
    pub rates: RateLimits,
    pub encryption: rustico_peer_wire::mse::Policy,
    pub dht: Option<(u16, crate::dht::NodeSink)>,
    pub status: Arc<Status>,
    pub control_tx: Sender<Control>,
    pub control_rx: Receiver<Control>,
    pub disk: DiskPool,
    pub net: super::net::NetPool,
    pub trackers: TrackerService,
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
    /// The engine's disk pool has stopped (the process is ending).
    #[error("the disk pool has stopped")]
    DiskPoolGone,
}

/// How a piece fared on the disk pool.
#[derive(Debug)]
pub struct SaveResult {
    piece: u32,
    outcome: Result<(), WriteError>,
    data: PieceData,
}

/// Peer messages a manager takes in one run before the other torrents
/// get their turn.
const PEER_MESSAGES_PER_RUN: usize = 64;
/// How long a stopping torrent waits for its peers' goodbyes.
const GOODBYE: Duration = Duration::from_millis(500);
/// How long a torrent that found every process-wide connection slot
/// taken waits before it dials again.
const SLOT_RETRY: Duration = Duration::from_secs(2);
/// How long it waits for its trackers' `stopped` announce (bounded in
/// time by the tracker service) so the process does not exit first.
const TRACKER_GOODBYE: Duration = Duration::from_secs(8);

/// Where a peer's orders go.
enum Link {
    /// A peer connection thread, through its coalescing mailbox, and its
    /// place in the engine's connection budget (freed with the link).
    Conn(
        Mailbox,
        SocketAddr,
        #[allow(dead_code, reason = "held for its drop, which frees the slot")] ConnectionSlot,
    ),
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
    /// Peer connections of every torrent of the engine.
    connections: ConnectionBudget,
    /// The engine's shared rate limits, handed to each connection.
    rates: RateLimits,
    /// Where connections report (bounded: a peer waits when we lag).
    peer_tx: Mail<ToManager>,
    peer_rx: Receiver<ToManager>,
    /// Our own inbox, for the disk pool and the tracker service.
    control_tx: Mail<Control>,
    control_rx: Receiver<Control>,
    disk: DiskPool,
    net: super::net::NetPool,
    waker: Waker,
    /// The torrent's registration with the tracker service, if it
    /// announces to trackers.
    trackers: Option<TrackerTorrent>,
    resume: Arc<ResumeWriter>,
    options: TorrentOptions,
}

/// One torrent in the engine's actor pool, through its phases.
pub(super) struct TorrentActor {
    phase: Phase,
    waker: Waker,
}

enum Phase {
    /// The disk pool opens the storage and checks what is on disk; the
    /// answer comes on `checked`.
    Starting {
        setup: Option<Box<ManagerSetup>>,
        checked: Option<Receiver<Result<Checked, ManagerError>>>,
    },
    Running(Box<Manager>),
    /// Peers were told to close: waiting until `until` at most for their
    /// goodbyes, and for the last resume data and the trackers.
    Stopping {
        manager: Box<Manager>,
        until: Instant,
    },
    Done,
}

/// What the disk pool found when the torrent started.
struct Checked {
    storage: Arc<Storage>,
    resumed: Resumed,
    resume_path: PathBuf,
    started: Instant,
}

impl TorrentActor {
    pub(super) fn new(setup: ManagerSetup, waker: Waker) -> TorrentActor {
        TorrentActor {
            phase: Phase::Starting {
                setup: Some(Box::new(setup)),
                checked: None,
            },
            waker,
        }
    }
}

impl Actor for TorrentActor {
    fn run(&mut self, now: Instant) -> Step {
        loop {
            self.phase = match std::mem::replace(&mut self.phase, Phase::Done) {
                Phase::Starting { setup, checked } => match self.start(setup, checked) {
                    Ok(next) => next,
                    Err((status, e)) => {
                        fail(&status, e);
                        status.stopped.store(true, Ordering::SeqCst);
                        return Step::Done;
                    }
                },
                Phase::Running(mut manager) => match manager.step(now) {
                    Ok(Some(step)) => {
                        self.phase = Phase::Running(manager);
                        return step;
                    }
                    Ok(None) => {
                        manager.begin_stop();
                        Phase::Stopping {
                            manager,
                            until: Instant::now() + GOODBYE,
                        }
                    }
                    Err(e) => {
                        fail(&manager.status, e);
                        manager.begin_stop();
                        Phase::Stopping {
                            manager,
                            until: Instant::now() + GOODBYE,
                        }
                    }
                },
                Phase::Stopping { mut manager, until } => match manager.stopping(until) {
                    Some(at) => {
                        self.phase = Phase::Stopping { manager, until };
                        return Step::Wait(Some(at));
                    }
                    None => {
                        manager.finish();
                        return Step::Done;
                    }
                },
                Phase::Done => return Step::Done,
            };
            if let Phase::Starting { .. } = self.phase {
                return Step::Wait(None);
            }
        }
    }
}

impl TorrentActor {
    /// The first run hands the storage check to the disk pool; a later
    /// one takes its answer and builds the manager. Still waiting: the
    /// same phase back.
    #[allow(clippy::type_complexity)]
    fn start(
        &mut self,
        setup: Option<Box<ManagerSetup>>,
        checked: Option<Receiver<Result<Checked, ManagerError>>>,
    ) -> Result<Phase, (Arc<Status>, ManagerError)> {
        let Some(setup) = setup else {
            debug_assert!(false, "a starting torrent without its setup");
            return Ok(Phase::Done);
        };
        let Some(rx) = checked else {
            let (tx, rx) = bounded(1);
            let job = check_storage(&setup);
            let waker = self.waker.clone();
            let queued = setup.disk.run(move || {
                let _ = tx.send(job());
                waker.wake();
            });
            if !queued {
                return Err((setup.status.clone(), ManagerError::DiskPoolGone));
            }
            return Ok(Phase::Starting {
                setup: Some(setup),
                checked: Some(rx),
            });
        };
        match rx.try_recv() {
            Err(TryRecvError::Empty) => Ok(Phase::Starting {
                setup: Some(setup),
                checked: Some(rx),
            }),
            Err(TryRecvError::Disconnected) => {
                Err((setup.status.clone(), ManagerError::DiskPoolGone))
            }
            Ok(Err(e)) => Err((setup.status.clone(), e)),
            Ok(Ok(checked)) => {
                let status = setup.status.clone();
                match Manager::new(*setup, checked, self.waker.clone()) {
                    Ok(manager) => Ok(Phase::Running(Box::new(manager))),
                    Err(e) => Err((status, e)),
                }
            }
        }
    }
}

/// Records why a torrent stopped with an error.
fn fail(status: &Status, e: ManagerError) {
    log::error!(target: "rustico", "{e}");
    // The slot is only ever replaced whole: a poisoned lock still holds a
    // valid value.
    *status.error.lock().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(e));
}

/// The job that opens a torrent's storage and checks what is on disk
/// (its resume data, or every piece).
fn check_storage(
    setup: &ManagerSetup,
) -> impl FnOnce() -> Result<Checked, ManagerError> + Send + 'static {
    let (meta_name, layout, dir, status) = (
        setup.meta.name.clone(),
        setup.meta.layout.clone(),
        setup.dir.clone(),
        setup.status.clone(),
    );
    let resume_path = setup.options.resume_path.clone().unwrap_or_else(|| {
        setup
            .dir
            .join(format!(".{}.rustico-resume", setup.meta.hex_hash()))
    });
    move || {
        let name = meta_name;
        let storage = Storage::open(&dir, layout, Options::default()).map_err(|source| {
            ManagerError::Storage {
                name: name.clone(),
                dir: dir.display().to_string(),
                source,
            }
        })?;
        let started = Instant::now();
        status.checking.store(true, Ordering::Relaxed);
        let resumed = storage.resume_or_recheck(&resume_path, &|_| {}, &AtomicBool::new(false));
        status.checking.store(false, Ordering::Relaxed);
        let resumed = resumed.map_err(|source| ManagerError::Recheck { name, source })?;
        Ok(Checked {
            storage: Arc::new(storage),
            resumed,
            resume_path,
            started,
        })
    }
}

/// A torrent's resume data, written on the disk pool: only the latest
/// snapshot matters, and two writes of one torrent never overlap.
struct ResumeWriter {
    name: String,
    storage: Arc<Storage>,
    path: PathBuf,
    latest: Mutex<Option<Bitfield>>,
    writing: Mutex<()>,
}

impl ResumeWriter {
    /// Saves `have` soon (a snapshot not yet written is replaced); the
    /// actor is woken once it is written.
    fn save(self: &Arc<Self>, have: Bitfield, disk: &DiskPool, waker: &Waker) {
        let queue = {
            let mut latest = self.latest.lock().unwrap_or_else(PoisonError::into_inner);
            latest.replace(have).is_none()
        };
        if queue {
            let (me, waker) = (Arc::clone(self), waker.clone());
            // Saving fsyncs the data first, which must not stall a worker.
            disk.run(move || {
                me.write();
                waker.wake();
            });
        }
    }

    fn write(&self) {
        let _one_at_a_time = self.writing.lock().unwrap_or_else(PoisonError::into_inner);
        let have = self
            .latest
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(have) = have {
            if let Err(e) = self.storage.save_resume(&self.path, &have) {
                log::warn!(target: "rustico", "{}: saving resume data failed: {e}", self.name);
            }
        }
    }

    /// Nothing waits to be written, and nothing is being written.
    fn idle(&self) -> bool {
        self.latest
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_none()
            && self.writing.try_lock().is_ok()
    }
}

impl Manager {
    fn new(setup: ManagerSetup, checked: Checked, waker: Waker) -> Result<Manager, ManagerError> {
        let Checked {
            storage,
            resumed,
            resume_path,
            started,
        } = checked;
        let meta = setup.meta;
        let name = meta.name.clone();
        let status = setup.status;
        status
            .total_bytes
            .store(meta.total_length, Ordering::Relaxed);
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
        let control_tx = Mail::new(setup.control_tx, waker.clone());
        let trackers = (setup.options.use_trackers && !meta.trackers.is_empty()).then(|| {
            setup.trackers.register(TrackerSetup {
                tiers: meta.trackers.clone(),
                info_hashes: std::iter::once(meta.info_hash)
                    .chain(meta.v2_swarm)
                    .collect(),
                peer_id: setup.peer_id,
                port: setup.port,
                status: status.clone(),
                control: control_tx.clone(),
            })
        });
        let resume = Arc::new(ResumeWriter {
            name: name.clone(),
            storage: storage.clone(),
            path: resume_path,
            latest: Mutex::new(None),
            writing: Mutex::new(()),
        });
        swarm.handle_candidates(setup.options.peers.iter().copied(), PeerSource::User, now);
        if swarm.is_complete() {
            status.complete_on_disk.store(true, Ordering::SeqCst);
            status.complete.store(true, Ordering::SeqCst);
        }
        let served_hashes = meta.served_hashes(&storage);
        Ok(Manager {
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
            connections: setup.connections,
            rates: setup.rates,
            peer_tx: Mail::new(peer_tx, waker.clone()),
            peer_rx,
            control_tx,
            control_rx: setup.control_rx,
            disk: setup.disk,
            net: setup.net,
            waker,
            trackers,
            resume,
            options: setup.options,
        })
    }
}

/// Failed v2 pieces whose block hashes the manager keeps at once (the
/// swarm asks for no more than its suspect pieces either).
const MAX_FAILED_COPIES: usize = 64;

impl Manager {
    /// One run: the engine's orders, then up to
    /// [`PEER_MESSAGES_PER_RUN`] peer messages, then the swarm's timers;
    /// then the swarm's outputs are carried out. `None`: the torrent
    /// stops (told to, or complete and not seeding).
    fn step(&mut self, now: Instant) -> Result<Option<Step>, ManagerError> {
        loop {
            match self.control_rx.try_recv() {
                Ok(Control::Stop) | Err(TryRecvError::Disconnected) => return Ok(None),
                Ok(c) => self.handle_control(c)?,
                Err(TryRecvError::Empty) => break,
            }
            self.carry_out()?;
        }
        for _ in 0..PEER_MESSAGES_PER_RUN {
            let Ok(ToManager::Peer(key, msg)) = self.peer_rx.try_recv() else {
                break;
            };
            self.handle_peer(key, msg)?;
            self.carry_out()?;
        }
        if self.swarm.poll_timeout().is_some_and(|t| t <= now) {
            self.swarm.handle_timeout(Instant::now());
        }
        self.carry_out()?;
        if self.swarm.is_complete() && self.swarm.pieces_saving() == 0 && !self.options.keep_seeding
        {
            return Ok(None);
        }
        // More waiting: another turn once the other torrents had theirs.
        let next = if self.peer_rx.is_empty() {
            self.swarm.poll_timeout()
        } else {
            Some(now)
        };
        Ok(Some(Step::Wait(next)))
    }

    /// Drains the swarm's outputs, in the order its docs give.
    fn carry_out(&mut self) -> Result<(), ManagerError> {
        while let Some((key, command)) = self.swarm.poll_command() {
            self.send(key, command);
        }
        while let Some(piece) = self.swarm.poll_piece() {
            let (storage, control) = (self.storage.clone(), self.control_tx.clone());
            // The disk pool ends only with the engine: a piece sent
            // nowhere would leave the swarm waiting forever.
            let sent = self.disk.run(move || {
                let outcome = storage.write_piece_data(piece.piece, &piece.data);
                let _ = control.send(Control::Saved(SaveResult {
                    piece: piece.piece,
                    outcome,
                    data: piece.data,
                }));
            });
            if !sent {
                debug_assert!(false, "the disk pool ended");
                return Err(ManagerError::Internal {
                    name: self.meta.name.clone(),
                    what: "the disk pool ended while a torrent ran",
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
            Link::Conn(tx, _, _) => {
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
            Remote::Addr(addr) => {
                let Some(slot) = self.connections.try_take() else {
                    // Every process-wide slot is taken: no fault of the
                    // peer's; the swarm holds its dials for a while.
                    let now = Instant::now();
                    log::debug!(target: "rustico", "{}: no connection slot for {addr}; dialling again in {SLOT_RETRY:?}", self.meta.name);
                    let deferred =
                        self.swarm
                            .handle_dial_deferred(dial.peer, now + SLOT_RETRY, now);
                    return self.swarm_report(deferred);
                };
                self.spawn_connection(dial.peer, addr, Origin::Outgoing, slot)
            }
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

    fn spawn_connection(
        &mut self,
        key: PeerKey,
        addr: SocketAddr,
        origin: Origin,
        slot: ConnectionSlot,
    ) -> bool {
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
            rates: self.rates.clone(),
            to_manager: self.peer_tx.clone(),
            inbox: rx,
            net: self.net.clone(),
        };
        if super::spawn("peer", move || conn::run(setup, origin)).is_err() {
            return false;
        }
        self.links.insert(key, Link::Conn(tx, addr, slot));
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
                if let Some(trackers) = &self.trackers {
                    trackers.completed();
                }
                self.status.complete.store(true, Ordering::SeqCst);
            }
            SwarmEvent::Banned { remote, reason } => log::warn!(
                target: "rustico",
                "{name}: banning peer {}: {reason}",
                self.name_of(remote)
            ),
            SwarmEvent::SaveResume(have) => self.resume.save(have, &self.disk, &self.waker),
            SwarmEvent::PexReceived {
                peer,
                learned,
                listed,
            } => {
                if let Some(Link::Conn(_, from, _)) = self.links.get(&peer) {
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
            Control::Incoming(accepted, addr) => {
                // Over the process-wide limit: refused before the swarm
                // hears of it (dropping `accepted` closes the socket).
                let Some(slot) = self.connections.try_take() else {
                    log::debug!(target: "rustico", "{}: refused incoming peer {addr}: {} of {:?} connection slots taken", self.meta.name, self.connections.in_use(), self.connections.max());
                    return Ok(());
                };
                match self.swarm.handle_incoming(addr, now) {
                    Ok(key) => {
                        if !self.spawn_connection(key, addr, Origin::Incoming(accepted), slot) {
                            let reported =
                                self.swarm.handle_disconnected(key, Disconnect::Failed, now);
                            self.swarm_report(reported)?;
                        }
                    }
                    Err(why) => {
                        log::debug!(target: "rustico", "{}: refused incoming peer {addr}: {why}", self.meta.name);
                    }
                }
            }
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
                        // Rare: joining the blocks costs a copy here only.
                        self.keep_failed_copy(piece, &data.to_vec());
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
                    if let (Some(Link::Conn(_, addr, _)), Some(stats)) =
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
                    let reported = self.swarm.handle_peer_event(key, event, now);
                    self.swarm_report(reported)?;
                }
            }
            PeerMsg::BlockHashes { piece, hashes } => self.compare_failed_copy(piece, &hashes, now),
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
                    Some(Link::Conn(_, addr, _)) => addr.to_string(),
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

    /// Tells every peer to close, saves the last resume data and tells
    /// the trackers `stopped`; [`stopping`](Self::stopping) waits for it.
    fn begin_stop(&mut self) {
        self.swarm.close_all(CloseReason::Shutdown);
        while let Some((key, command)) = self.swarm.poll_command() {
            self.send(key, command);
        }
        self.resume
            .save(self.swarm.have().clone(), &self.disk, &self.waker);
        if let Some(trackers) = &mut self.trackers {
            trackers.stop();
        }
    }

    /// A stopping torrent's run: takes its peers' last words. `None` once
    /// they are all gone (or `until` passed), the resume data is written
    /// and the `stopped` announce is done (or took too long); else when
    /// to look again.
    fn stopping(&mut self, until: Instant) -> Option<Instant> {
        while let Ok(ToManager::Peer(key, msg)) = self.peer_rx.try_recv() {
            if let msg @ (PeerMsg::Closed(_) | PeerMsg::Events(_)) = msg {
                // Stopping anyway: a bug is still worth a line.
                if let Err(e) = self.handle_peer(key, msg) {
                    log::error!(target: "rustico", "{e}");
                }
            }
        }
        while let Ok(c) = self.control_rx.try_recv() {
            // A finished piece or a new peer is of no use now.
            if let Control::Detail(reply) = c {
                let _ = reply.send(self.detail());
            }
        }
        let now = Instant::now();
        let goodbyes = self.links.is_empty() || now >= until;
        let tracker = self
            .trackers
            .as_ref()
            .is_none_or(TrackerTorrent::is_finished)
            || now >= until + TRACKER_GOODBYE;
        if goodbyes && tracker && self.resume.idle() {
            return None;
        }
        // Peers and the resume writer wake us; the tracker service does not.
        let poll = now + Duration::from_millis(20);
        Some(if goodbyes { poll } else { until.min(poll) })
    }

    /// The torrent has ended.
    fn finish(&mut self) {
        self.publish();
        if let Ok(mut known) = self.status.known_peers.lock() {
            *known = self.swarm.known_addrs(Instant::now());
        }
        self.status.peers.store(0, Ordering::Relaxed);
        // Stops its announces if `begin_stop` did not.
        drop(self.trackers.take());
        self.status.stopped.store(true, Ordering::SeqCst);
    }
}
