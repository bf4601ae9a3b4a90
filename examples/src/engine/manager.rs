//! The torrent manager: one thread per torrent that owns the piece picker,
//! the peers' state, the choker and the connection policy. Peers report
//! what happened; the manager answers with the requests each should send,
//! hands finished pieces to the saver threads, and announces a piece
//! (`have`) only once the saver has it on disk.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, select, unbounded, Receiver, Sender};
use rustico_peer_wire::{BlockRequest, PexConfig, PexFlags, PexPeer, PexState};
use rustico_piece_picker::{PeerKey as PickKey, PickerConfig, PiecePicker};
use rustico_storage::{Options, Storage, WriteError};

use super::conn::{self, Closed, ConnInput, ConnSetup, Origin};
use super::tracker::{self, TrackerEvent};
use super::{Control, PeerKey, PeerMsg, Status, ToManager};
use crate::choker::{Choker, PeerState, RECHOKE_INTERVAL};
use crate::meta::TorrentMeta;
use crate::peer_policy::{Ended, PeerPolicy};
use crate::session::{Command, Event};
use rustico_peer_wire::Bitfield as Bits;

/// Per-torrent choices of the caller.
#[derive(Debug, Clone, Default)]
pub struct TorrentOptions {
    /// Keep running (seeding) once complete; else the manager stops.
    pub keep_seeding: bool,
    /// Peers to connect to besides the trackers'.
    pub peers: Vec<SocketAddr>,
    /// Announce to the torrent's trackers.
    pub use_trackers: bool,
}

pub(super) struct ManagerSetup {
    pub meta: TorrentMeta,
    pub dir: PathBuf,
    pub options: TorrentOptions,
    pub peer_id: [u8; 20],
    pub port: u16,
    pub peers_per_torrent: usize,
    pub upload_slots: usize,
    pub status: Arc<Status>,
    pub control_tx: Sender<Control>,
    pub control_rx: Receiver<Control>,
}

/// How a piece fared in the saver.
#[derive(Debug)]
pub struct SaveResult {
    piece: u32,
    outcome: Result<(), String>,
    hash_failed: bool,
    data: Vec<u8>,
    senders: Vec<Option<SocketAddr>>,
}

struct SaveJob {
    piece: u32,
    data: Vec<u8>,
    senders: Vec<Option<SocketAddr>>,
}

/// A piece being assembled: its bytes and who sent each block.
struct PieceBuf {
    data: Vec<u8>,
    senders: Vec<Option<SocketAddr>>,
}

const BLOCK: usize = 16 * 1024;

/// Smallest and largest request pipeline per peer; in between it follows
/// the peer's rate (about one second of data in flight).
const MIN_PIPELINE: usize = 4;
const START_PIPELINE: usize = 64;
const MAX_PIPELINE: usize = 600;
/// Assumed `reqq` of a peer that does not say (libtorrent's own default).
const DEFAULT_REQQ: usize = 250;
const TICK: Duration = Duration::from_millis(250);
const RESUME_SAVE_EVERY: Duration = Duration::from_secs(5);
const SAVER_THREADS: usize = 2;
/// Web seeds wait this long after the start for peers to show up.
const WEB_SEED_DELAY: Duration = Duration::from_secs(1);
/// Web seeds start when fewer peers than this are connected...
const WEB_SEED_BELOW_PEERS: usize = 4;
/// ... or when all peers together send less than this (bytes/s).
const WEB_SEED_BELOW_RATE: f64 = 1024.0 * 1024.0;
const BOTH_SEEDING: &str = "both seeding";
const SAVER_QUEUE_BYTES: usize = 32 << 20;
/// Memory kept in recycled piece buffers.
const SPARE_BUFFER_BYTES: usize = 8 << 20;

struct Peer {
    addr: SocketAddr,
    tx: Sender<ConnInput>,
    outgoing: bool,
    pick: Option<PickKey>,
    peer_id: Option<[u8; 20]>,
    client: String,
    fast: bool,
    peer_choking: bool,
    peer_interested: bool,
    am_interested: bool,
    am_choking: bool,
    reqq: usize,
    target: usize,
    down_rate: f64,
    up_rate: f64,
    downloaded: u64,
    uploaded: u64,
    is_seed: bool,
    /// Where the peer accepts connections: the address we dialled, or
    /// for an incoming peer its IP with the `p` of its extension
    /// handshake. What PEX tells others.
    listen_addr: Option<SocketAddr>,
    /// Peer exchange with this peer (it speaks `ut_pex`, torrent public).
    pex: Option<PexState>,
}

struct Manager {
    meta: TorrentMeta,
    storage: Arc<Storage>,
    picker: PiecePicker,
    have: Bits,
    saving: usize,
    peers: HashMap<PeerKey, Peer>,
    by_pick: HashMap<PickKey, PeerKey>,
    next_key: PeerKey,
    buffers: HashMap<u32, PieceBuf>,
    /// Pieces that failed their hash, kept (bytes and senders) until a good
    /// copy arrives: the blocks that differ name the peers who lied.
    suspects: HashMap<u32, (Vec<u8>, Vec<Option<SocketAddr>>)>,
    /// Piece buffers back from the saver, reused (every byte is
    /// overwritten before a piece is complete, so they need no clearing).
    spare_buffers: Vec<Vec<u8>>,
    policy: PeerPolicy,
    choker: Choker<PeerKey>,
    peers_per_torrent: usize,
    peer_id: [u8; 20],
    status: Arc<Status>,
    peer_tx: Sender<ToManager>,
    saver_tx: Sender<SaveJob>,
    tracker_tx: Option<Sender<TrackerEvent>>,
    tracker_thread: Option<std::thread::JoinHandle<()>>,
    resume_tx: Option<Sender<Bits>>,
    resume_thread: Option<std::thread::JoinHandle<()>>,
    resume_dirty: bool,
    last_resume_save: Instant,
    rechoke_soon: bool,
    next_rechoke: Instant,
    scratch: Vec<BlockRequest>,
    cancels: Vec<PickKey>,
    verified_bytes: u64,
    options: TorrentOptions,
    /// Our listen port.
    listen_port: u16,
    /// When the torrent started (web seeds wait a moment for peers).
    started: Instant,
    /// The web seeds were started.
    web_seeds_started: bool,
}

pub(super) fn run(setup: ManagerSetup) {
    let status = setup.status.clone();
    if let Err(e) = run_inner(setup) {
        log::error!(target: "rustico", "{e}");
        if let Ok(mut slot) = status.error.lock() {
            *slot = Some(e);
        }
    }
    status.stopped.store(true, Ordering::SeqCst);
}

fn run_inner(setup: ManagerSetup) -> Result<(), String> {
    let meta = setup.meta;
    let name = meta.name.clone();
    let layout = meta.layout.clone();
    let storage = Arc::new(
        Storage::open(&setup.dir, layout, Options::default()).map_err(|e| {
            format!(
                "{name}: cannot open storage in {}: {e}",
                setup.dir.display()
            )
        })?,
    );
    let resume_path = setup
        .dir
        .join(format!(".{}.rustico-resume", meta.hex_hash()));
    let status = setup.status;
    status
        .total_bytes
        .store(meta.total_length, Ordering::Relaxed);
    let started = Instant::now();
    let resumed = storage
        .resume_or_recheck(&resume_path, &|_| {}, &AtomicBool::new(false))
        .map_err(|e| format!("{name}: checking existing data failed: {e}"))?;
    let have = resumed.have;
    log::info!(
        target: "rustico",
        "{name}: {} of {} pieces already on disk ({} rechecked in {:.1} s)",
        have.count(),
        meta.num_pieces,
        resumed.pieces_rechecked,
        started.elapsed().as_secs_f64()
    );
    let mut config = PickerConfig::new(meta.total_length, meta.piece_length);
    config.seed = super::seed_from_clock();
    let mut picker = PiecePicker::new(config).map_err(|e| format!("{name}: piece picker: {e}"))?;
    let mut verified_bytes = 0;
    for i in have.iter_set() {
        picker.we_have(i).map_err(|e| format!("{name}: {e}"))?;
        verified_bytes += u64::from(meta.piece_size(i));
    }
    status.have_bytes.store(verified_bytes, Ordering::Relaxed);

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
        super::spawn("saver", move || saver(&rx, &storage, &control)).map_err(|e| e.to_string())?;
    }
    drop(saver_rx);
    let (tracker_tx, tracker_thread) = if setup.options.use_trackers && !meta.trackers.is_empty() {
        let (tx, rx) = unbounded();
        let t = tracker::TrackerSetup {
            tiers: meta.trackers.clone(),
            info_hash: meta.info_hash,
            peer_id: setup.peer_id,
            port: setup.port,
            status: status.clone(),
            control: setup.control_tx.clone(),
            events: rx,
        };
        let thread = super::spawn("tracker", move || tracker::run(t)).map_err(|e| e.to_string())?;
        (Some(tx), Some(thread))
    } else {
        (None, None)
    };
    let (resume_tx, resume_rx) = unbounded::<Bits>();
    let resume_thread = {
        let storage = storage.clone();
        let name = meta.name.clone();
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
        })
        .map_err(|e| e.to_string())?
    };
    let now = Instant::now();
    let mut m = Manager {
        storage,
        picker,
        have,
        saving: 0,
        peers: HashMap::new(),
        by_pick: HashMap::new(),
        next_key: 1,
        buffers: HashMap::new(),
        suspects: HashMap::new(),
        spare_buffers: Vec::new(),
        policy: PeerPolicy::new(setup.peers_per_torrent),
        choker: Choker::new(setup.upload_slots, super::seed_from_clock()),
        peers_per_torrent: setup.peers_per_torrent,
        peer_id: setup.peer_id,
        status,
        peer_tx,
        saver_tx,
        tracker_tx,
        tracker_thread,
        resume_tx: Some(resume_tx),
        resume_thread: Some(resume_thread),
        resume_dirty: false,
        last_resume_save: now,
        rechoke_soon: false,
        next_rechoke: now + RECHOKE_INTERVAL,
        scratch: Vec::new(),
        cancels: Vec::new(),
        verified_bytes,
        options: setup.options,
        listen_port: setup.port,
        started: now,
        web_seeds_started: false,
        meta,
    };
    for addr in m.options.peers.clone() {
        m.policy.handle_candidate(addr);
    }
    if m.have.is_complete() {
        m.status.complete_on_disk.store(true, Ordering::SeqCst);
        m.status.complete.store(true, Ordering::SeqCst);
    }
    let result = m.event_loop(&peer_rx, &setup.control_rx);
    m.shut_down(&peer_rx);
    result
}

fn saver(rx: &Receiver<SaveJob>, storage: &Storage, control: &Sender<Control>) {
    for job in rx {
        let (outcome, hash_failed) = match storage.write_piece(job.piece, &job.data) {
            Ok(()) => (Ok(()), false),
            Err(WriteError::HashMismatch { .. }) => (Err("hash mismatch".to_string()), true),
            Err(e) => (Err(e.to_string()), false),
        };
        let result = SaveResult {
            piece: job.piece,
            outcome,
            hash_failed,
            data: job.data,
            senders: job.senders,
        };
        if control.send(Control::Saved(result)).is_err() {
            return;
        }
    }
}

impl Manager {
    fn name(&self) -> &str {
        &self.meta.name
    }

    fn event_loop(
        &mut self,
        peer_rx: &Receiver<ToManager>,
        control_rx: &Receiver<Control>,
    ) -> Result<(), String> {
        let mut next_tick = Instant::now();
        loop {
            if self.have.is_complete() && self.saving == 0 && !self.options.keep_seeding {
                return Ok(());
            }
            let now = Instant::now();
            if now >= next_tick {
                self.on_tick(now);
                next_tick = now + TICK;
            }
            select! {
                recv(peer_rx) -> msg => {
                    if let Ok(ToManager::Peer(key, msg)) = msg {
                        self.handle_peer(key, msg);
                    }
                }
                recv(control_rx) -> c => match c {
                    Ok(Control::Stop) | Err(_) => return Ok(()),
                    Ok(c) => self.handle_control(c)?,
                },
                recv(crossbeam_channel::at(next_tick)) -> _ => {}
            }
        }
    }

    fn shut_down(&mut self, peer_rx: &Receiver<ToManager>) {
        for peer in self.peers.values() {
            let _ = peer.tx.send(ConnInput::Close("shutting down".into()));
        }
        self.save_resume();
        self.resume_tx = None;
        if let Some(tx) = self.tracker_tx.take() {
            let _ = tx.send(TrackerEvent::Stopped);
        }
        // Let connections say goodbye (briefly) so their threads end.
        let deadline = Instant::now() + Duration::from_millis(500);
        while !self.peers.is_empty() {
            match peer_rx.recv_deadline(deadline) {
                Ok(ToManager::Peer(key, PeerMsg::Closed(_))) => {
                    self.peers.remove(&key);
                }
                Ok(ToManager::Peer(_, PeerMsg::Events(events))) => {
                    for event in events {
                        if let Event::Stats { down, up } = event {
                            self.status.downloaded.fetch_add(down, Ordering::Relaxed);
                            self.status.uploaded.fetch_add(up, Ordering::Relaxed);
                        }
                    }
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
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

    /// Hands a snapshot of our pieces to the resume thread (saving fsyncs
    /// the data first, which must not stall the manager).
    fn save_resume(&mut self) {
        if let Some(tx) = &self.resume_tx {
            let _ = tx.send(self.have.clone());
        }
        self.resume_dirty = false;
        self.last_resume_save = Instant::now();
    }

    fn on_tick(&mut self, now: Instant) {
        if self.resume_dirty && now.duration_since(self.last_resume_save) >= RESUME_SAVE_EVERY {
            self.save_resume();
        }
        if now >= self.next_rechoke || self.rechoke_soon {
            self.rechoke(now, now >= self.next_rechoke);
        }
        // Dial while under the limit, seeding too (a seed meeting a seed
        // hangs up at once: "both seeding").
        let free = self.peers_per_torrent.saturating_sub(self.peers.len());
        for addr in self.policy.poll_dial(now, free) {
            self.spawn_connection(addr, Origin::Outgoing);
        }
        self.send_pex(now);
        self.maybe_start_web_seeds(now);
        let (down, up) = self
            .peers
            .values()
            .fold((0.0, 0.0), |(d, u), p| (d + p.down_rate, u + p.up_rate));
        self.status.down_rate.store(down as u64, Ordering::Relaxed);
        self.status.up_rate.store(up as u64, Ordering::Relaxed);
        let connected = self.peers.values().filter(|p| p.pick.is_some()).count();
        self.status.peers.store(connected, Ordering::Relaxed);
    }

    fn rechoke(&mut self, now: Instant, periodic: bool) {
        self.rechoke_soon = false;
        if periodic {
            self.next_rechoke = now + RECHOKE_INTERVAL;
        }
        let states: Vec<PeerState<PeerKey>> = self
            .peers
            .iter()
            .filter(|(_, p)| p.pick.is_some())
            .map(|(&key, p)| PeerState {
                key,
                interested: p.peer_interested,
                rate_from_peer: p.down_rate,
                rate_to_peer: p.up_rate,
            })
            .collect();
        let unchoke = self.choker.decide(now, self.have.is_complete(), &states);
        for (key, peer) in self.peers.iter_mut() {
            if peer.pick.is_none() {
                continue;
            }
            let choke = !unchoke.contains(key);
            if choke != peer.am_choking {
                peer.am_choking = choke;
                let _ = peer.tx.send(ConnInput::Command(Command::Choke(choke)));
            }
        }
    }

    fn spawn_connection(&mut self, addr: SocketAddr, origin: Origin) {
        let key = self.next_key;
        self.next_key += 1;
        let (tx, rx) = unbounded();
        let outgoing = matches!(origin, Origin::Outgoing);
        let setup = ConnSetup {
            key,
            addr,
            info_hash: self.meta.info_hash,
            peer_id: self.peer_id,
            num_pieces: self.meta.num_pieces,
            ours: self.have.clone(),
            storage: self.storage.clone(),
            metadata: Arc::clone(&self.meta.metadata),
            pex: !self.meta.private,
            listen_port: self.listen_port,
            to_manager: self.peer_tx.clone(),
            inbox: rx,
        };
        if super::spawn("peer", move || conn::run(setup, origin)).is_err() {
            if outgoing {
                self.policy
                    .handle_ended(addr, Ended::Failed, Instant::now());
            }
            return;
        }
        self.peers.insert(
            key,
            Peer {
                addr,
                tx,
                outgoing,
                pick: None,
                peer_id: None,
                client: String::new(),
                fast: false,
                peer_choking: true,
                peer_interested: false,
                am_interested: false,
                am_choking: true,
                reqq: DEFAULT_REQQ,
                target: START_PIPELINE,
                down_rate: 0.0,
                up_rate: 0.0,
                downloaded: 0,
                uploaded: 0,
                is_seed: false,
                listen_addr: outgoing.then_some(addr),
                pex: None,
            },
        );
    }

    fn handle_control(&mut self, c: Control) -> Result<(), String> {
        match c {
            Control::Incoming(stream, addr, head) => {
                let now = Instant::now();
                if self.policy.is_banned(addr, now) || self.peers.len() >= self.peers_per_torrent {
                    log::debug!(target: "rustico", "{}: refused incoming peer {addr}", self.name());
                    return Ok(());
                }
                self.spawn_connection(addr, Origin::Incoming(stream, head));
            }
            Control::Peers(addrs) => {
                for addr in addrs {
                    self.policy.handle_candidate(addr);
                }
            }
            Control::Saved(result) => self.handle_saved(result)?,
            Control::Stop => {}
        }
        Ok(())
    }

    fn handle_saved(&mut self, result: SaveResult) -> Result<(), String> {
        self.saving = self.saving.saturating_sub(1);
        let piece = result.piece;
        match result.outcome {
            Ok(()) => {
                if let Some((bad, bad_senders)) = self.suspects.remove(&piece) {
                    let good = &result.data;
                    for (i, sender) in bad_senders.iter().enumerate() {
                        let range = i * BLOCK..((i + 1) * BLOCK).min(good.len());
                        if let (Some(addr), Some(b), Some(g)) =
                            (sender, bad.get(range.clone()), good.get(range))
                        {
                            if b != g {
                                self.ban(*addr, "sent a corrupt block");
                            }
                        }
                    }
                }
                let keep = (SPARE_BUFFER_BYTES / result.data.len().max(1)).max(2);
                if self.spare_buffers.len() < keep
                    && result.data.len() == self.meta.piece_length as usize
                {
                    self.spare_buffers.push(result.data);
                }
                let _ = self.picker.piece_verified(piece);
                self.have.set(piece);
                self.verified_bytes += u64::from(self.meta.piece_size(piece));
                self.status
                    .have_bytes
                    .store(self.verified_bytes, Ordering::Relaxed);
                self.resume_dirty = true;
                log::info!(
                    target: "rustico",
                    "{}: piece {piece} complete ({}/{})",
                    self.name(),
                    self.have.count(),
                    self.meta.num_pieces
                );
                for peer in self.peers.values_mut() {
                    let _ = peer.tx.send(ConnInput::Command(Command::Have(piece)));
                }
                self.update_interest_all();
                if self.have.is_complete() {
                    log::info!(target: "rustico", "{}: download complete", self.name());
                    self.save_resume();
                    if let Some(tx) = &self.tracker_tx {
                        let _ = tx.send(TrackerEvent::Completed);
                    }
                    self.status.complete.store(true, Ordering::SeqCst);
                    // Seeds have nothing to trade with seeds.
                    for peer in self.peers.values() {
                        if peer.is_seed {
                            let _ = peer.tx.send(ConnInput::Close(BOTH_SEEDING.into()));
                        }
                    }
                }
            }
            Err(_) if result.hash_failed => {
                let mut blamed = Vec::new();
                if let Err(e) = self.picker.piece_hash_failed(piece, &mut blamed) {
                    log::warn!(target: "rustico", "{}: picker: {e}", self.name());
                }
                let mut senders: Vec<SocketAddr> =
                    result.senders.iter().flatten().copied().collect();
                senders.sort();
                senders.dedup();
                let names: Vec<String> = senders.iter().map(|a| self.peer_name(*a)).collect();
                log::warn!(
                    target: "rustico",
                    "{}: piece {piece} failed its hash check (sent by {})",
                    self.name(),
                    names.join(", ")
                );
                // A sole sender is surely the culprit; with several, wait
                // for a good copy to tell which blocks were wrong.
                if let [only] = senders[..] {
                    if self.policy.handle_hash_failure(only, Instant::now()) {
                        self.ban(only, "sent pieces that failed the hash check");
                    }
                }
                self.suspects.insert(piece, (result.data, result.senders));
                self.top_up_all();
            }
            Err(why) => {
                return Err(format!(
                    "{}: cannot write piece {piece}: {why}",
                    self.name()
                ))
            }
        }
        Ok(())
    }

    /// A peer's address, or for a web seed (whose address is a stand-in)
    /// its URL.
    fn peer_name(&self, addr: SocketAddr) -> String {
        self.peers
            .values()
            .find(|p| p.addr == addr && p.client.starts_with("web seed "))
            .map_or_else(|| addr.to_string(), |p| p.client.clone())
    }

    fn ban(&mut self, addr: SocketAddr, why: &str) {
        self.policy.ban(addr, Instant::now());
        let name = self.peer_name(addr);
        log::warn!(target: "rustico", "{}: banning peer {name}: {why}", self.name());
        for peer in self.peers.values().filter(|p| p.addr == addr) {
            let _ = peer.tx.send(ConnInput::Close(format!("banned: {why}")));
        }
    }

    fn handle_peer(&mut self, key: PeerKey, msg: PeerMsg) {
        match msg {
            PeerMsg::Connected {
                client,
                fast,
                peer_id,
            } => self.handle_connected(key, client, fast, peer_id),
            PeerMsg::Events(events) => {
                for event in events {
                    self.handle_event(key, event);
                }
            }
            PeerMsg::Closed(closed) => self.handle_closed(key, closed),
        }
    }

    fn handle_connected(&mut self, key: PeerKey, client: String, fast: bool, peer_id: [u8; 20]) {
        // Two connections with one peer (both dialled each other): keep the
        // one dialled by the lower peer id, as the other side does too.
        let ours = self.peer_id;
        let duplicate = self
            .peers
            .iter()
            .find(|(k, p)| **k != key && p.peer_id == Some(peer_id))
            .map(|(k, p)| (*k, p.outgoing));
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        if let Some((other, other_outgoing)) = duplicate {
            let keep_outgoing = ours < peer_id;
            let drop_this = peer.outgoing != keep_outgoing || other_outgoing == peer.outgoing;
            let victim = if drop_this { key } else { other };
            if let Some(v) = self.peers.get(&victim) {
                let _ = v.tx.send(ConnInput::Close("duplicate connection".into()));
            }
            if drop_this {
                return;
            }
        }
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        let pk = self.picker.add_peer();
        peer.pick = Some(pk);
        peer.peer_id = Some(peer_id);
        peer.fast = fast;
        peer.client = client;
        self.by_pick.insert(pk, key);
        if peer.outgoing {
            self.policy.handle_connected(peer.addr);
        }
        log::info!(
            target: "rustico",
            "{}: peer {} connected ({}, {})",
            self.meta.name,
            peer.addr,
            if peer.outgoing { "outgoing" } else { "incoming" },
            peer.client
        );
        // PEX-capable peers hear of the newcomer now, if their first
        // message is still due.
        self.send_pex(Instant::now());
    }

    fn handle_closed(&mut self, key: PeerKey, closed: Closed) {
        let Some(peer) = self.peers.remove(&key) else {
            return;
        };
        let now = Instant::now();
        if let Some(pk) = peer.pick {
            let _ = self.picker.remove_peer(pk);
            self.by_pick.remove(&pk);
            self.rechoke_soon = true;
        }
        let (how, reason) = match closed {
            Closed::Failed(r) => (Ended::Failed, r),
            // Two seeds have nothing to trade: back off as from a failure
            // rather than redial every few seconds.
            Closed::Normal(r) if r == BOTH_SEEDING => (Ended::Failed, r),
            Closed::Normal(r) => (Ended::Closed, r),
        };
        if peer.outgoing {
            self.policy.handle_ended(peer.addr, how, now);
        }
        if peer.pick.is_some() {
            log::info!(
                target: "rustico",
                "{}: peer {} left: {reason} (down {} up {})",
                self.meta.name,
                peer.addr,
                crate::progress::human_bytes(peer.downloaded),
                crate::progress::human_bytes(peer.uploaded)
            );
            self.top_up_all();
        } else {
            log::debug!(target: "rustico", "{}: peer {} failed: {reason}", self.meta.name, peer.addr);
        }
    }

    fn handle_event(&mut self, key: PeerKey, event: Event) {
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        let Some(pk) = peer.pick else { return };
        match event {
            Event::Pieces(bits) => {
                if bits.is_complete() {
                    peer.is_seed = true;
                    let _ = self.picker.peer_has_all(pk);
                } else {
                    let _ = self.picker.peer_bitfield(pk, bits.as_wire());
                }
                if self.have.is_complete() && bits.is_complete() {
                    let _ = peer.tx.send(ConnInput::Close(BOTH_SEEDING.into()));
                    return;
                }
                self.update_interest(key);
            }
            Event::Have(piece) => {
                let _ = self.picker.peer_has(pk, piece);
                self.update_interest(key);
            }
            Event::Choked(choked) => {
                log::debug!(target: "rustico", "{}: {} {}", self.meta.name, peer.addr, if choked { "choked us" } else { "unchoked us" });
                peer.peer_choking = choked;
                if choked {
                    if !peer.fast {
                        let _ = self.picker.peer_choked(pk);
                    }
                } else {
                    self.top_up(key);
                }
            }
            Event::Interested(on) => {
                log::debug!(target: "rustico", "{}: {} interested: {on}", self.meta.name, peer.addr);
                if peer.peer_interested != on {
                    peer.peer_interested = on;
                    // At once, not at the next tick: a new leecher should
                    // not wait to be served when a slot is free.
                    self.rechoke(Instant::now(), false);
                }
            }
            Event::Block { req, data } => self.handle_block(key, pk, req, data),
            Event::Dropped(reqs) => {
                log::debug!(target: "rustico", "{}: {} dropped {} requests", self.meta.name, peer.addr, reqs.len());
                for r in &reqs {
                    let _ = self.picker.block_rejected(pk, *r);
                }
                self.top_up_all();
            }
            Event::Stalled(reqs) => {
                for r in &reqs {
                    let _ = self.picker.block_rejected(pk, *r);
                }
                peer.target = MIN_PIPELINE;
                log::debug!(target: "rustico", "{}: peer {} stalled with {} requests", self.meta.name, peer.addr, reqs.len());
                self.top_up_all();
            }
            Event::Reqq(n) => peer.reqq = n.max(1),
            Event::Stats { down, up } => {
                peer.down_rate = 0.5 * peer.down_rate + 0.5 * down as f64;
                peer.up_rate = 0.5 * peer.up_rate + 0.5 * up as f64;
                peer.downloaded += down;
                peer.uploaded += up;
                self.status.downloaded.fetch_add(down, Ordering::Relaxed);
                self.status.uploaded.fetch_add(up, Ordering::Relaxed);
                // About one second of blocks in flight, within bounds.
                let by_rate = (peer.down_rate / 16384.0) as usize;
                peer.target = by_rate.clamp(MIN_PIPELINE.max(peer.target / 2), MAX_PIPELINE);
                let _ = self.picker.set_peer_rate(pk, peer.down_rate as u64);
                self.top_up(key);
            }
            Event::Serve(_) => {}
            Event::PeerInfo { listen_port, pex } => {
                if !peer.outgoing {
                    peer.listen_addr =
                        listen_port.map(|port| SocketAddr::new(peer.addr.ip(), port));
                }
                if pex && !self.meta.private && peer.pex.is_none() {
                    let mut state = PexState::new(peer.addr, PexConfig::default());
                    if let Some(listen) = peer.listen_addr {
                        state.exclude(listen);
                    }
                    peer.pex = Some(state);
                    // The first message goes at once (later ones at most
                    // once a minute): a short-lived swarm must not wait
                    // for the next tick to share what it knows.
                    self.send_pex(Instant::now());
                }
            }
            Event::Pex(message) => {
                if self.meta.private {
                    return;
                }
                let from = peer.addr;
                let Some(state) = peer.pex.as_mut() else {
                    return;
                };
                let incoming = state.handle_incoming(message, Instant::now());
                if incoming.too_soon {
                    log::debug!(target: "rustico", "{}: PEX from {from} too soon; ignored", self.meta.name);
                    return;
                }
                let mut learned = 0;
                for added in incoming.added {
                    // Our own address comes back from others; dialling it
                    // would only meet ourselves (which the handshake
                    // detects elsewhere, by peer id).
                    if added.addr.port() == self.listen_port && added.addr.ip().is_loopback() {
                        continue;
                    }
                    if self
                        .peers
                        .values()
                        .any(|p| p.listen_addr == Some(added.addr))
                    {
                        continue;
                    }
                    self.policy.handle_candidate(added.addr);
                    learned += 1;
                }
                log::info!(
                    target: "rustico",
                    "{}: PEX from {from}: {learned} new peers (of {} listed)",
                    self.meta.name,
                    learned + incoming.discarded
                );
            }
        }
    }

    /// Starts the torrent's web seeds once it has been running a moment
    /// and peers are few (under [`WEB_SEED_BELOW_PEERS`]) or slow (under
    /// [`WEB_SEED_BELOW_RATE`] together). They then stay, as peers that
    /// have everything; the picker's fastest-peer-first keeps a slow one
    /// from holding pieces up.
    fn maybe_start_web_seeds(&mut self, now: Instant) {
        if self.web_seeds_started
            || self.meta.web_seeds.is_empty()
            || self.have.is_complete()
            || now.duration_since(self.started) < WEB_SEED_DELAY
        {
            return;
        }
        let connected = self.peers.values().filter(|p| p.pick.is_some()).count();
        let rate: f64 = self.peers.values().map(|p| p.down_rate).sum();
        if connected >= WEB_SEED_BELOW_PEERS && rate >= WEB_SEED_BELOW_RATE {
            return;
        }
        self.web_seeds_started = true;
        let files: Vec<(Vec<String>, u64, bool)> = self
            .meta
            .layout
            .files()
            .iter()
            .map(|file| (file.path.clone(), file.length, file.padding))
            .collect();
        for (index, base) in self.meta.web_seeds.clone().into_iter().enumerate() {
            if !(base.starts_with("http://") || base.starts_with("https://")) {
                log::warn!(target: "rustico", "{}: web seed {base}: not HTTP(S); skipped", self.meta.name);
                continue;
            }
            let key = self.next_key;
            self.next_key += 1;
            let (tx, rx) = unbounded();
            let setup = super::webseed::WebSeedSetup {
                key,
                base: base.clone(),
                files: super::webseed::file_urls(&base, self.meta.multi_file, &files),
                piece_length: u64::from(self.meta.piece_length),
                num_pieces: self.meta.num_pieces,
                to_manager: self.peer_tx.clone(),
                inbox: rx,
            };
            if super::spawn("webseed", move || super::webseed::run(setup)).is_err() {
                continue;
            }
            log::info!(target: "rustico", "{}: using web seed {base}", self.meta.name);
            let addr = super::webseed::pseudo_addr(index);
            self.peers.insert(
                key,
                Peer {
                    addr,
                    tx,
                    outgoing: false,
                    pick: None,
                    peer_id: None,
                    client: String::new(),
                    fast: false,
                    peer_choking: true,
                    peer_interested: false,
                    am_interested: false,
                    am_choking: true,
                    reqq: MAX_PIPELINE,
                    target: START_PIPELINE,
                    down_rate: 0.0,
                    up_rate: 0.0,
                    downloaded: 0,
                    uploaded: 0,
                    is_seed: false,
                    listen_addr: None,
                    pex: None,
                },
            );
        }
    }

    /// Sends each PEX-capable peer what changed in our peer set (at most
    /// once a minute per peer; `PexState` keeps the pace).
    fn send_pex(&mut self, now: Instant) {
        if self.meta.private {
            return;
        }
        let connected: Vec<PexPeer> = self
            .peers
            .values()
            .filter(|p| p.pick.is_some())
            .filter_map(|p| {
                let seed = if p.is_seed { PexFlags::SEED } else { 0 };
                // Reachable: we dialled it ourselves.
                let reachable = if p.outgoing { PexFlags::REACHABLE } else { 0 };
                p.listen_addr.map(|addr| PexPeer {
                    addr,
                    flags: PexFlags(seed | reachable),
                })
            })
            .collect();
        for peer in self.peers.values_mut() {
            let Some(state) = peer.pex.as_mut() else {
                continue;
            };
            state.set_connected(connected.iter().copied());
            if let Some(message) = state.poll_message(now) {
                let _ = peer.tx.send(ConnInput::Command(Command::Pex(message)));
            }
        }
    }

    fn handle_block(&mut self, key: PeerKey, pk: PickKey, req: BlockRequest, data: Vec<u8>) {
        let block = req;
        self.cancels.clear();
        let outcome = match self.picker.block_received(pk, block, &mut self.cancels) {
            Ok(o) => o,
            Err(_) => return,
        };
        for other in self.cancels.drain(..) {
            if let Some(p) = self.by_pick.get(&other).and_then(|k| self.peers.get(k)) {
                let _ = p.tx.send(ConnInput::Command(Command::Cancel(req)));
            }
        }
        if outcome.accepted {
            let size = self.meta.piece_size(req.piece) as usize;
            let addr = self.peers.get(&key).map(|p| p.addr);
            let spare = &mut self.spare_buffers;
            let buf = self.buffers.entry(req.piece).or_insert_with(|| {
                let data = match spare.pop() {
                    Some(d) if d.len() == size => d,
                    _ => vec![0u8; size],
                };
                PieceBuf {
                    data,
                    senders: vec![None; size.div_ceil(BLOCK)],
                }
            });
            let start = req.offset as usize;
            if let Some(dst) = buf.data.get_mut(start..start + data.len()) {
                dst.copy_from_slice(&data);
            }
            if let Some(slot) = buf.senders.get_mut(start / BLOCK) {
                *slot = addr;
            }
            if outcome.piece_complete {
                if let Some(buf) = self.buffers.remove(&req.piece) {
                    self.saving += 1;
                    let _ = self.saver_tx.send(SaveJob {
                        piece: req.piece,
                        data: buf.data,
                        senders: buf.senders,
                    });
                }
            }
        }
        self.top_up(key);
    }

    fn update_interest(&mut self, key: PeerKey) {
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        let Some(pk) = peer.pick else { return };
        let want = self.picker.interesting(pk);
        if want != peer.am_interested {
            log::debug!(target: "rustico", "{}: interested in {}: {want}", self.meta.name, peer.addr);
            peer.am_interested = want;
            let _ = peer.tx.send(ConnInput::Command(Command::Interested(want)));
        }
        self.top_up(key);
    }

    fn update_interest_all(&mut self) {
        let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
        for key in keys {
            self.update_interest(key);
        }
    }

    fn top_up_all(&mut self) {
        let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
        for key in keys {
            self.top_up(key);
        }
    }

    fn top_up(&mut self, key: PeerKey) {
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        let Some(pk) = peer.pick else { return };
        if peer.peer_choking || !peer.am_interested {
            return;
        }
        let limit = peer.target.min(peer.reqq);
        let in_flight = self.picker.in_flight_count(pk);
        if in_flight >= limit {
            log::trace!(target: "rustico", "{}: {} has {in_flight} of {limit} in flight", self.meta.name, peer.addr);
            return;
        }
        // Ask in batches: topping up one block at a time costs a message
        // per block between threads.
        if in_flight > 0 && limit - in_flight < (limit / 4).max(1) {
            return;
        }
        self.scratch.clear();
        if let Err(e) = self.picker.pick(pk, limit - in_flight, &mut self.scratch) {
            log::warn!(target: "rustico", "{}: picker: {e}", self.meta.name);
            return;
        }
        if self.scratch.is_empty() {
            log::debug!(target: "rustico", "{}: nothing to request from {}", self.meta.name, peer.addr);
            return;
        }
        log::trace!(target: "rustico", "{}: {} more requests to {}", self.meta.name, self.scratch.len(), peer.addr);
        let reqs = self.scratch.clone();
        let _ = peer.tx.send(ConnInput::Command(Command::Request(reqs)));
    }
}
