//! The swarm state machine: one torrent's peers and every decision about
//! them.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use rustico_peer_wire::{PexConfig, PexFlags, PexMessage, PexPeer, PexState};
use rustico_piece_picker::{PeerKey, PiecePicker};
use rustico_pieces::{Bitfield, BlockRequest, Geometry, PieceData};

use crate::choker::{Choker, PeerState as ChokeState};
use crate::policy::{Ended, Policy};
use crate::slots::{self, Activity, Admission, Limits, Occupant, Stance};
use crate::smart_ban::SmartBan;
use crate::{
    BanReason, CloseReason, CompletedPiece, Dial, Disconnect, Event, HandshakeInfo, PeerCommand,
    PeerEvent, PeerSource, PeerStats, Refusal, Remote, SwarmConfig, SwarmError, SwarmStats,
};

/// The kinds of deadline in the swarm's one timer table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timer {
    /// Rates, stalled requests, PEX, topping up pipelines.
    Tick = 0,
    /// The choker's periodic decision (or an early one when the peer set
    /// changed).
    Rechoke = 1,
    /// A backed-off address becomes dialable.
    Dial = 2,
    /// A resume snapshot is due.
    Resume = 3,
    /// Whether to start the web seeds.
    WebSeeds = 4,
}

const TIMERS: [Timer; 5] = [
    Timer::Tick,
    Timer::Rechoke,
    Timer::Dial,
    Timer::Resume,
    Timer::WebSeeds,
];

#[derive(Debug, Default)]
struct TimerTable([Option<Instant>; 5]);

impl TimerTable {
    fn set(&mut self, timer: Timer, at: Option<Instant>) {
        self.0[timer as usize] = at;
    }
    fn get(&self, timer: Timer) -> Option<Instant> {
        self.0[timer as usize]
    }
    fn earliest(&self) -> Option<Instant> {
        self.0.iter().flatten().min().copied()
    }
}

#[derive(Debug)]
struct Peer {
    key: PeerKey,
    remote: Remote,
    outgoing: bool,
    connected: bool,
    peer_id: Option<[u8; 20]>,
    client: String,
    encrypted: bool,
    fast: bool,
    am_choking: bool,
    am_interested: bool,
    peer_choking: bool,
    peer_interested: bool,
    snubbed: bool,
    is_seed: bool,
    pieces: u32,
    reqq: usize,
    target: usize,
    down_rate: f64,
    up_rate: f64,
    tick_down: u64,
    tick_up: u64,
    downloaded: u64,
    uploaded: u64,
    /// Where the peer accepts connections: the address we dialled, or for
    /// an incoming peer its IP with the `p` of its extension handshake.
    listen_addr: Option<SocketAddr>,
    pex: Option<PexState>,
    /// Its `PexState` was given the current set of connected peers.
    pex_synced: bool,
    /// The set changed since its last PEX message: poll for one.
    pex_dirty: bool,
    /// No PEX message may go before this (one a minute): until then the
    /// set is not handed to its `PexState`, which would not use it.
    pex_due: Option<Instant>,
    /// The stall clock: the last block, or when requests started waiting.
    waiting_since: Instant,
    /// No new requests before this (after a reject or a stall).
    hold_until: Option<Instant>,
    /// Rounds of requests voided (rejected, or dropped by a choke without
    /// the fast extension) since the peer's last block: each doubles the
    /// hold, so a peer that takes requests and never serves them is asked
    /// ever less often, whatever it sends.
    fruitless: u32,
    closing: Option<CloseReason>,
    /// Age, last payload and interest, for slot decisions.
    activity: Activity,
    /// BEP 6 allowed-fast pieces it granted us: asked for even while it
    /// chokes us (at most [`MAX_ALLOWED_FAST`]).
    allowed_fast: Vec<u32>,
    /// How much of [`Swarm::saved`] its session's bitfield holds: the
    /// driver took the bitfield when it made the peer, so pieces saved
    /// after that and before the handshake reach it as `Have` on connect.
    saved_known: usize,
}

impl Peer {
    fn new(key: PeerKey, remote: Remote, outgoing: bool, cfg: &SwarmConfig, now: Instant) -> Peer {
        Peer {
            key,
            remote,
            outgoing,
            connected: false,
            peer_id: None,
            client: String::new(),
            encrypted: false,
            fast: false,
            allowed_fast: Vec::new(),
            am_choking: true,
            am_interested: false,
            peer_choking: true,
            peer_interested: false,
            snubbed: false,
            is_seed: false,
            pieces: 0,
            reqq: if matches!(remote, Remote::WebSeed(_)) {
                cfg.max_pipeline
            } else {
                cfg.default_reqq
            },
            target: cfg.start_pipeline,
            down_rate: 0.0,
            up_rate: 0.0,
            tick_down: 0,
            tick_up: 0,
            downloaded: 0,
            uploaded: 0,
            listen_addr: match remote {
                Remote::Addr(addr) if outgoing => Some(addr),
                _ => None,
            },
            pex: None,
            pex_synced: false,
            pex_dirty: true,
            pex_due: None,
            waiting_since: now,
            hold_until: None,
            fruitless: 0,
            closing: None,
            activity: Activity::new(now),
            saved_known: 0,
        }
    }

    fn is_web_seed(&self) -> bool {
        matches!(self.remote, Remote::WebSeed(_))
    }

    /// Connected, not being closed.
    fn active(&self) -> bool {
        self.connected && self.closing.is_none()
    }

    /// Connected, not being closed, a BitTorrent peer (not a web seed).
    fn active_peer(&self) -> bool {
        self.active() && !self.is_web_seed()
    }

    /// Data moved, or interest either way: a connection worth keeping.
    fn useful(&self) -> bool {
        self.downloaded + self.uploaded + self.tick_down + self.tick_up > 0
            || self.am_interested
            || self.peer_interested
    }

    fn is_at(&self, addr: SocketAddr) -> bool {
        self.remote == Remote::Addr(addr) || self.listen_addr == Some(addr)
    }

    /// The remote IP address (`None` for a web seed).
    fn ip(&self) -> Option<IpAddr> {
        match self.remote {
            Remote::Addr(addr) => Some(addr.ip()),
            Remote::WebSeed(_) => None,
        }
    }

    fn stance(&self) -> Stance {
        Stance {
            am_interested: self.am_interested,
            peer_interested: self.peer_interested,
            am_choking: self.am_choking,
        }
    }

    fn occupant(&self) -> Occupant {
        Occupant {
            key: self.key,
            ip: self.ip(),
            connected: self.connected,
            closing: self.closing.is_some(),
            outgoing: self.outgoing,
            stance: self.stance(),
            activity: self.activity,
        }
    }
}

/// A piece being assembled: each block's buffer as it arrived (never
/// copied into a piece buffer), and who sent it.
#[derive(Debug)]
struct PieceBuf {
    blocks: Vec<Vec<u8>>,
    senders: Vec<Option<Remote>>,
}

/// One torrent's swarm as a sans-IO state machine, in the shape of
/// quinn-proto's `Endpoint`: it owns the peer table, the piece picker,
/// request pipelines, piece assembly, smart ban, the choker, the
/// connection policy, peer exchange, web-seed scheduling and resume
/// timing. It never reads the clock, never does I/O and starts no thread.
///
/// # Driving it
///
/// Feed it what happened with the `handle_*` methods, each taking `now`:
/// [`handle_candidates`](Self::handle_candidates) (addresses from
/// trackers, PEX, the DHT, the command line),
/// [`handle_incoming`](Self::handle_incoming) (a peer dialled us),
/// [`handle_connected`](Self::handle_connected) (a handshake completed),
/// [`handle_peer_event`](Self::handle_peer_event) (a message or report
/// from a peer's session), [`handle_disconnected`](Self::handle_disconnected),
/// [`handle_dial_deferred`](Self::handle_dial_deferred) (a dial the
/// driver had no slot for: retried later, no fault of the peer's),
/// [`handle_piece_saved`](Self::handle_piece_saved) /
/// [`handle_piece_failed`](Self::handle_piece_failed) (the hash check),
/// and [`handle_timeout`](Self::handle_timeout) when
/// [`poll_timeout`](Self::poll_timeout) is reached (an early or extra call
/// is harmless).
///
/// After each `handle_*` call (or a batch of them), drain the outputs in
/// this order:
/// 1. [`poll_command`](Self::poll_command) until `None`: orders for peer
///    connections, in the order they must be carried out per peer
///    (requests, cancels, `have`, choke, interest, PEX, close).
/// 2. [`poll_piece`](Self::poll_piece) until `None`: complete pieces to
///    hash and save.
/// 3. [`poll_dial`](Self::poll_dial) until `None`: connections to make.
/// 4. [`poll_event`](Self::poll_event) until `None`: what the torrent's
///    user should know (piece saved, complete, banned, resume snapshot).
/// 5. [`poll_timeout`](Self::poll_timeout): when to call
///    [`handle_timeout`](Self::handle_timeout) next, from one timer table.
///
/// The queues are independent, so draining them in another order loses
/// nothing; the order above delivers commands to peers first, which keeps
/// pipelines full.
///
/// Peers are named by [`PeerKey`], the piece picker's `Copy` handle with a
/// generation: a handle kept after its peer disconnected is refused with
/// [`SwarmError::UnknownPeer`], never mistaken for a newer peer.
#[derive(Debug)]
pub struct Swarm {
    cfg: SwarmConfig,
    geometry: Geometry,
    block_size: usize,
    picker: PiecePicker,
    have: Bitfield,
    /// Pieces saved since the swarm started, in order (see
    /// [`Peer::saved_known`]); at most one entry per piece.
    saved: Vec<u32>,
    peers: Vec<Option<Peer>>,
    policy: Policy,
    choker: Choker<PeerKey>,
    smart_ban: SmartBan,
    timers: TimerTable,
    commands: VecDeque<(PeerKey, PeerCommand)>,
    pieces: VecDeque<CompletedPiece>,
    dials: VecDeque<Dial>,
    events: VecDeque<Event>,
    buffers: HashMap<u32, PieceBuf>,
    saving: HashMap<u32, Vec<Option<Remote>>>,
    have_bytes: u64,
    downloaded: u64,
    uploaded: u64,
    last_tick: Instant,
    web_seeds_started: bool,
    resume_dirty: bool,
    last_resume: Instant,
    scratch: Vec<BlockRequest>,
    cancels: Vec<PeerKey>,
    /// Peer ids of banned peers with their IP address, and the end of
    /// their ban: a banned peer that dials us again from a new port is
    /// known by its id (from the same address only, so that nobody can
    /// get a peer banned by using its id).
    banned_ids: HashMap<([u8; 20], IpAddr), Instant>,
    /// The last rechoke made at once for a change of interest (see
    /// [`QUICK_RECHOKE_GAP`]).
    last_quick_rechoke: Option<Instant>,
    /// The connected set last given to the peers' `PexState`s.
    pex_connected: Vec<PexPeer>,
    /// When the tick next runs `send_pex`.
    pex_check_at: Instant,
    /// Peers in the table with their handshake done, and the others:
    /// kept as they change, so that [`Swarm::stats`] costs no pass over
    /// the peers (a driver may ask for it after every event).
    connected_peers: usize,
    connecting_peers: usize,
    /// The peers' rates summed at the last tick (the only time they
    /// change), less those of the peers taken out since.
    down_rate: f64,
    up_rate: f64,
    /// Addresses that lost a slot (evicted or idle), until when they may
    /// not take another's slot: a crowd reconnecting cannot evict each
    /// other in turn and keep every slot young.
    slot_cooldown: slots::Cooldown,
    /// Failed v2 pieces whose block hashes are being asked for: the
    /// peers asked so far and the copy's senders (asked last).
    block_hash_asks: HashMap<u32, BlockHashAsk>,
    /// No dial before this: the driver had no connection slot (see
    /// [`Swarm::handle_dial_deferred`]).
    dial_hold: Option<Instant>,
    /// The addresses of the peers in the table.
    addrs: Addresses,
    /// When a peer was last replaced by a waiting address (turnover).
    last_turnover: Option<Instant>,
}

/// The addresses of the peers in the table (the one dialled, and the
/// listen address an incoming peer told), each with how many peers have
/// it: whether an address is connected, asked on every dial and PEX
/// message, without a pass over the table (that set, built each time,
/// was O(peers) per ask).
#[derive(Debug, Default)]
struct Addresses(HashMap<SocketAddr, u32>);

impl Addresses {
    fn add(&mut self, addr: SocketAddr) {
        *self.0.entry(addr).or_default() += 1;
    }

    fn remove(&mut self, addr: SocketAddr) {
        if let Some(n) = self.0.get_mut(&addr) {
            *n -= 1;
            if *n == 0 {
                self.0.remove(&addr);
            }
        }
    }

    fn contains(&self, addr: SocketAddr) -> bool {
        self.0.contains_key(&addr)
    }

    /// The addresses `peer` is known by.
    fn of(peer: &Peer) -> impl Iterator<Item = SocketAddr> {
        let dialled = match peer.remote {
            Remote::Addr(a) => Some(a),
            _ => None,
        };
        dialled.into_iter().chain(peer.listen_addr)
    }
}

/// One failed piece's search for its block hashes.
#[derive(Debug)]
struct BlockHashAsk {
    asked: Vec<PeerKey>,
    senders: Vec<Remote>,
}

/// Allowed-fast grants kept per peer (libtorrent grants 10): a peer
/// granting more cannot make us keep a list of every piece.
const MAX_ALLOWED_FAST: usize = 32;

/// Peers asked at once for one failed piece's block hashes: an answer
/// is checked against the piece's hash, so the first good one settles
/// it, and a peer that never answers holds nothing up.
const BLOCK_HASH_ASKS_AT_ONCE: usize = 2;
/// Peers asked in all (each refusal asks one more) before the swarm
/// waits for a good copy of the piece instead.
const MAX_BLOCK_HASH_ASKS: usize = 4;

/// Rechokes made at once for changes of interest are at least this far
/// apart (see `Swarm::quick_rechoke`).
const QUICK_RECHOKE_GAP: Duration = Duration::from_millis(200);

/// Least time between two PEX messages to one peer (BEP 11: one a
/// minute); the swarm's `PexState`s are built with it.
const PEX_INTERVAL: Duration = Duration::from_secs(60);

/// How often the tick looks for PEX news (a change of our peers, or a
/// peer whose [`PEX_INTERVAL`] is over). Looking costs a pass over every
/// peer, and was a twentieth of a simulated swarm's time when done each
/// tick; a message a few seconds past its minute loses nothing.
const PEX_CHECK_INTERVAL: Duration = Duration::from_secs(5);

/// The live peer `key` names, borrowing only the table.
fn slot_mut(peers: &mut [Option<Peer>], key: PeerKey) -> Option<&mut Peer> {
    peers
        .get_mut(key.index() as usize)
        .and_then(Option::as_mut)
        .filter(|p| p.key == key)
}

fn derive_seed(seed: u64, n: u64) -> u64 {
    crate::rng::SplitMix64::new(seed ^ n.wrapping_mul(0xA076_1D64_78BD_642F)).next_u64()
}

impl Swarm {
    /// A swarm for a torrent of which we have the pieces in `have` (from
    /// resume data or a recheck). Fails when the lengths cannot describe a
    /// torrent or `have` does not fit it.
    pub fn new(config: SwarmConfig, have: Bitfield, now: Instant) -> Result<Swarm, SwarmError> {
        let mut cfg = config;
        cfg.max_pipeline = cfg.max_pipeline.max(cfg.min_pipeline).max(1);
        cfg.min_pipeline = cfg.min_pipeline.max(1);
        cfg.start_pipeline = cfg.start_pipeline.clamp(cfg.min_pipeline, cfg.max_pipeline);
        let geometry = Geometry::new(cfg.total_length, cfg.piece_length)?;
        let n = geometry.num_pieces();
        if have.len() != n {
            return Err(SwarmError::HaveLength {
                expected: n,
                actual: have.len(),
            });
        }
        cfg.picker.total_length = cfg.total_length;
        cfg.picker.piece_length = cfg.piece_length;
        cfg.picker.seed = derive_seed(cfg.seed, 1);
        let mut picker = PiecePicker::new(cfg.picker.clone()).map_err(SwarmError::Picker)?;
        let mut have_bytes = 0;
        for piece in have.iter_set() {
            picker
                .we_have(piece)
                .map_err(|source| SwarmError::Internal { piece, source })?;
            have_bytes += u64::from(geometry.piece_size(piece).unwrap_or(0));
        }
        let mut timers = TimerTable::default();
        timers.set(Timer::Tick, Some(now + cfg.tick_interval));
        timers.set(Timer::Rechoke, Some(now + cfg.rechoke_interval));
        if cfg.web_seeds > 0 && !have.is_complete() {
            timers.set(Timer::WebSeeds, Some(now + cfg.web_seed_delay));
        }
        Ok(Swarm {
            block_size: cfg.picker.block_size.max(1) as usize,
            choker: Choker::new(
                cfg.upload_slots,
                cfg.optimistic_interval,
                derive_seed(cfg.seed, 2),
            ),
            policy: Policy::new(
                cfg.max_candidates,
                cfg.base_backoff,
                cfg.max_backoff,
                cfg.ban_duration,
                derive_seed(cfg.seed, 3),
            ),
            smart_ban: SmartBan::new(
                cfg.max_suspect_pieces,
                cfg.sole_failures_to_ban,
                cfg.shared_failures_to_ban,
            ),
            geometry,
            picker,
            have,
            saved: Vec::new(),
            peers: Vec::new(),
            timers,
            commands: VecDeque::new(),
            pieces: VecDeque::new(),
            dials: VecDeque::new(),
            events: VecDeque::new(),
            buffers: HashMap::new(),
            saving: HashMap::new(),
            have_bytes,
            downloaded: 0,
            uploaded: 0,
            last_tick: now,
            web_seeds_started: false,
            resume_dirty: false,
            last_resume: now,
            scratch: Vec::new(),
            cancels: Vec::new(),
            banned_ids: HashMap::new(),
            last_quick_rechoke: None,
            pex_connected: Vec::new(),
            pex_check_at: now,
            connected_peers: 0,
            connecting_peers: 0,
            down_rate: 0.0,
            up_rate: 0.0,
            slot_cooldown: slots::Cooldown::new(cfg.max_candidates, cfg.eviction_grace * 6),
            block_hash_asks: HashMap::new(),
            dial_hold: None,
            addrs: Addresses::default(),
            last_turnover: None,
            cfg,
        })
    }

    // ------------------------------------------------------------- getters

    /// The configuration in effect.
    pub fn config(&self) -> &SwarmConfig {
        &self.cfg
    }

    /// The pieces we have, verified and saved.
    pub fn have(&self) -> &Bitfield {
        &self.have
    }

    /// Every piece is verified and saved.
    pub fn is_complete(&self) -> bool {
        self.have.is_complete()
    }

    /// Pieces handed out by [`poll_piece`](Self::poll_piece) (or still
    /// queued there) whose save was not reported yet.
    pub fn pieces_saving(&self) -> usize {
        self.saving.len()
    }

    /// The handles of every peer: being dialled, handshaking, connected
    /// or being closed.
    pub fn peer_keys(&self) -> impl Iterator<Item = PeerKey> + '_ {
        self.peers.iter().flatten().map(|p| p.key)
    }

    /// Figures for one peer (`None` for an unknown handle).
    pub fn peer_stats(&self, key: PeerKey) -> Option<PeerStats> {
        let p = self.peer(key).ok()?;
        Some(PeerStats {
            remote: p.remote,
            listen_addr: p.listen_addr,
            outgoing: p.outgoing,
            connected: p.connected,
            client: p.client.clone(),
            encrypted: p.encrypted,
            am_choking: p.am_choking,
            am_interested: p.am_interested,
            peer_choking: p.peer_choking,
            peer_interested: p.peer_interested,
            snubbed: p.snubbed,
            down_rate: p.down_rate,
            up_rate: p.up_rate,
            downloaded: p.downloaded,
            uploaded: p.uploaded,
            pieces: p.pieces,
            requests_in_flight: self.picker.in_flight_count(key),
        })
    }

    /// Whether the peer has announced `piece`.
    pub fn peer_has_piece(&self, key: PeerKey, piece: u32) -> bool {
        self.picker.peer_has_piece(key, piece)
    }

    /// Blocks requested from the peer and not yet answered, oldest first.
    pub fn requests_in_flight(&self, key: PeerKey) -> impl Iterator<Item = BlockRequest> + '_ {
        self.picker.in_flight(key)
    }

    /// Every peer address this swarm knows and has not banned, sorted:
    /// from trackers, the DHT, PEX, the caller, and where incoming peers
    /// said they listen. A driver that starts the torrent again (after a
    /// recheck, or a stop and a start) gives them to the new swarm with
    /// [`Swarm::handle_candidates`]: without a tracker it would know
    /// nobody, and a seed that already took us for a seed does not dial
    /// us again.
    pub fn known_addrs(&self, now: Instant) -> Vec<SocketAddr> {
        let mut addrs: Vec<SocketAddr> = self.policy.unbanned(now).collect();
        addrs.sort_unstable();
        addrs
    }

    /// Whether the peer's remote address (or listen address) is banned now.
    pub fn is_banned(&self, addr: SocketAddr, now: Instant) -> bool {
        self.policy.is_banned(addr, now)
    }

    /// Figures for the whole torrent, without a pass over the peers (cheap
    /// enough to ask after every event).
    pub fn stats(&self) -> SwarmStats {
        debug_assert_eq!(
            (self.connected_peers, self.connecting_peers),
            self.peers
                .iter()
                .flatten()
                .fold((0, 0), |(on, off), p| if p.connected {
                    (on + 1, off)
                } else {
                    (on, off + 1)
                }),
            "peer counts drifted"
        );
        SwarmStats {
            pieces_have: self.have.count(),
            num_pieces: self.geometry.num_pieces(),
            have_bytes: self.have_bytes,
            total_bytes: self.geometry.total_length(),
            downloaded: self.downloaded,
            uploaded: self.uploaded,
            down_rate: self.down_rate,
            up_rate: self.up_rate,
            peers: self.connected_peers,
            connecting: self.connecting_peers,
            candidates: self.policy.len(),
            pieces_saving: self.saving.len(),
            end_game: self.picker.in_end_game(),
            partial_pieces: self.buffers.len(),
            suspect_pieces: self.smart_ban.suspects(),
            queued_commands: self.commands.len(),
        }
    }

    fn peer(&self, key: PeerKey) -> Result<&Peer, SwarmError> {
        self.peers
            .get(key.index() as usize)
            .and_then(Option::as_ref)
            .filter(|p| p.key == key)
            .ok_or(SwarmError::UnknownPeer { peer: key })
    }

    fn peer_mut(&mut self, key: PeerKey) -> Result<&mut Peer, SwarmError> {
        self.peers
            .get_mut(key.index() as usize)
            .and_then(Option::as_mut)
            .filter(|p| p.key == key)
            .ok_or(SwarmError::UnknownPeer { peer: key })
    }

    fn insert(&mut self, mut peer: Peer, now: Instant) {
        peer.saved_known = self.saved.len();
        // A torrent without peers has no tick or rechoke armed (see
        // `tick`): the first peer starts them.
        if self.timers.get(Timer::Tick).is_none() {
            self.timers
                .set(Timer::Tick, Some(now + self.cfg.tick_interval));
        }
        if self.timers.get(Timer::Rechoke).is_none() {
            self.timers
                .set(Timer::Rechoke, Some(now + self.cfg.rechoke_interval));
        }
        for addr in Addresses::of(&peer) {
            self.addrs.add(addr);
        }
        let i = peer.key.index() as usize;
        if self.peers.len() <= i {
            self.peers.resize_with(i + 1, || None);
        }
        if let Some(slot) = self.peers.get_mut(i) {
            debug_assert!(slot.is_none(), "the picker reissued a live slot");
            if peer.connected {
                self.connected_peers += 1;
            } else {
                self.connecting_peers += 1;
            }
            *slot = Some(peer);
        }
    }

    /// Takes the peer out of the table (the picker still knows it).
    fn take_peer(&mut self, key: PeerKey) -> Option<Peer> {
        let peer = self
            .peers
            .get_mut(key.index() as usize)
            .and_then(Option::take)?;
        for addr in Addresses::of(&peer) {
            self.addrs.remove(addr);
        }
        debug_assert!(self.addrs_match_the_table(), "address counts drifted");
        if peer.connected {
            self.connected_peers -= 1;
        } else {
            self.connecting_peers -= 1;
        }
        self.down_rate = (self.down_rate - peer.down_rate).max(0.0);
        self.up_rate = (self.up_rate - peer.up_rate).max(0.0);
        Some(peer)
    }

    /// The index counts what a pass over the table finds.
    fn addrs_match_the_table(&self) -> bool {
        let mut counted = Addresses::default();
        for peer in self.peers.iter().flatten() {
            for addr in Addresses::of(peer) {
                counted.add(addr);
            }
        }
        counted.0 == self.addrs.0
    }

    fn keys(&self) -> Vec<PeerKey> {
        // Sized up front: collecting from `flatten` grows the vector a
        // step at a time.
        let mut keys = Vec::with_capacity(self.peers.len());
        keys.extend(self.peers.iter().flatten().map(|p| p.key));
        keys
    }

    /// BitTorrent connections (dialling, handshaking or connected).
    fn connections(&self) -> usize {
        self.peers
            .iter()
            .flatten()
            .filter(|p| !p.is_web_seed())
            .count()
    }

    /// The table as slot decisions see it.
    fn occupants(&self) -> Vec<Occupant> {
        let mut table = Vec::with_capacity(self.peers.len());
        table.extend(self.peers.iter().flatten().map(Peer::occupant));
        table
    }

    fn is_self(&self, addr: SocketAddr) -> bool {
        self.cfg.listen_port == Some(addr.port())
            && (addr.ip().is_loopback() || addr.ip().is_unspecified())
    }

    // ------------------------------------------------------------- inputs

    /// Addresses to try, from `source`. Our own address and addresses over
    /// the candidate cap are left out. Returns how many were taken.
    pub fn handle_candidates(
        &mut self,
        addrs: impl IntoIterator<Item = SocketAddr>,
        source: PeerSource,
        now: Instant,
    ) -> usize {
        let mut taken = 0;
        for addr in addrs {
            if !self.is_self(addr) && self.policy.handle_candidate(addr, source) {
                taken += 1;
            }
        }
        self.dial(now);
        taken
    }

    /// A peer at `addr` dialled us. Returns the handle to report its
    /// handshake under, or why it is refused (close the socket then).
    /// Give its session [`Swarm::have`] as it is now: pieces saved before
    /// its handshake completes come as [`PeerCommand::Have`] once it does.
    /// It is refused when its IP address has
    /// [`SwarmConfig::max_peers_per_ip`] connections already; when the
    /// table is full it replaces the connected peer that moved no payload
    /// for longest, past [`SwarmConfig::eviction_grace`] (that one gets a
    /// [`PeerCommand::Close`] with [`CloseReason::Evicted`]), and is
    /// refused if there is none, or if a connection from its address lost
    /// its slot that way a moment ago.
    pub fn handle_incoming(&mut self, addr: SocketAddr, now: Instant) -> Result<PeerKey, Refusal> {
        if self.policy.is_banned(addr, now) {
            return Err(Refusal::Banned);
        }
        let limits = Limits::from_config(&self.cfg);
        let cooling = self.slot_cooldown.holds(addr.ip(), now);
        match slots::admit_incoming(&limits, &self.occupants(), addr.ip(), cooling, now) {
            Admission::Admit => {}
            Admission::Replace(victim) => self.evict(victim, CloseReason::Evicted, now),
            Admission::Refuse(why) => return Err(why),
        }
        let key = self.picker.add_peer();
        let peer = Peer::new(key, Remote::Addr(addr), false, &self.cfg, now);
        self.insert(peer, now);
        Ok(key)
    }

    /// The handshake with a dialled or incoming peer (or a web seed's
    /// start) completed. A duplicate of an existing connection (the same
    /// peer id from the same IP address, or a dial to an address we are
    /// connected to) is resolved here: a connection that moved payload, or
    /// a young one that shows interest, wins; one past
    /// [`SwarmConfig::eviction_grace`] that moved nothing loses to the
    /// newcomer; two young ones dialled both ways keep the one dialled by
    /// the lower peer id (as the other side does). The same peer id from
    /// another IP address is not a duplicate.
    pub fn handle_connected(
        &mut self,
        key: PeerKey,
        info: HandshakeInfo,
        now: Instant,
    ) -> Result<(), SwarmError> {
        let peer = self.peer_mut(key)?;
        if peer.connected {
            return Err(SwarmError::AlreadyConnected { peer: key });
        }
        peer.connected = true;
        peer.peer_id = Some(info.peer_id);
        peer.fast = info.fast;
        peer.client = info.client;
        peer.encrypted = info.encrypted;
        peer.waiting_since = now;
        peer.activity.start(now);
        let (remote, outgoing, web_seed) = (peer.remote, peer.outgoing, peer.is_web_seed());
        self.connecting_peers -= 1;
        self.connected_peers += 1;
        if let (Remote::Addr(addr), true) = (remote, outgoing) {
            self.policy.handle_connected(addr);
        }
        let banned_id = match remote {
            Remote::Addr(addr) => self
                .banned_ids
                .get(&(info.peer_id, addr.ip()))
                .is_some_and(|&t| now < t),
            Remote::WebSeed(_) => false,
        };
        if banned_id {
            // A banned peer back from another address or port.
            self.close(key, CloseReason::Banned);
            return Ok(());
        }
        if !web_seed {
            // What was saved between the driver's bitfield and now.
            let known = self.peer(key).map_or(self.saved.len(), |p| p.saved_known);
            for &piece in self.saved.get(known..).unwrap_or_default() {
                self.commands.push_back((key, PeerCommand::Have(piece)));
            }
            let twin = self
                .peers
                .iter()
                .flatten()
                .find(|p| {
                    p.key != key
                        && p.active_peer()
                        && ((p.peer_id == Some(info.peer_id)
                            && matches!(remote, Remote::Addr(a) if p.ip() == Some(a.ip())))
                            || matches!(remote, Remote::Addr(a) if outgoing && p.is_at(a)))
                })
                .map(|p| p.key);
            if let Some(existing) = twin {
                self.resolve_duplicate(existing, key, now);
            }
        }
        self.send_pex(now);
        Ok(())
    }

    /// Two connections with one peer: closes one of them (see
    /// [`slots::duplicate_loser`]).
    fn resolve_duplicate(&mut self, existing: PeerKey, new: PeerKey, now: Instant) {
        let (Ok(e), Ok(n)) = (self.peer(existing), self.peer(new)) else {
            return;
        };
        // A simultaneous open: both sides keep the connection dialled by
        // the lower peer id, so they close the same one.
        let theirs = n.peer_id.or(e.peer_id).unwrap_or([0; 20]);
        let keep_outgoing = self.cfg.peer_id < theirs;
        let limits = Limits::from_config(&self.cfg);
        let victim = slots::duplicate_loser(
            &limits,
            &e.occupant(),
            e.useful(),
            &n.occupant(),
            keep_outgoing,
            now,
        );
        self.close(victim, CloseReason::Duplicate);
    }

    /// Something a connected peer's session reported. Events of a peer
    /// being closed are ignored, except [`PeerEvent::Transferred`].
    pub fn handle_peer_event(
        &mut self,
        key: PeerKey,
        event: PeerEvent,
        now: Instant,
    ) -> Result<(), SwarmError> {
        let peer = self.peer_mut(key)?;
        if !peer.connected {
            return Err(SwarmError::NotConnected { peer: key });
        }
        if let PeerEvent::Transferred { down, up } = event {
            peer.tick_down += down;
            peer.tick_up += up;
            peer.downloaded += down;
            peer.uploaded += up;
            self.downloaded += down;
            self.uploaded += up;
            return Ok(());
        }
        if peer.closing.is_some() {
            return Ok(());
        }
        if let PeerEvent::Block { data, .. } = &event {
            // Blocks we asked for, not whatever payload it pushed at us.
            peer.activity.block_received(data.len());
        }
        self.dispatch(key, event, now);
        if self.peer(key).is_ok_and(|p| p.closing.is_some()) {
            // Its requests went back to the pool.
            self.top_up_all(now);
        }
        Ok(())
    }

    fn dispatch(&mut self, key: PeerKey, event: PeerEvent, now: Instant) {
        let Ok(peer) = self.peer_mut(key) else { return };
        match event {
            PeerEvent::Pieces(bits) => self.on_pieces(key, &bits, now),
            PeerEvent::Have(piece) => self.on_have(key, piece, now),
            PeerEvent::Choked(choked) => self.on_choked(key, choked, now),
            PeerEvent::Interested(on) => {
                if peer.peer_interested != on {
                    peer.peer_interested = on;
                    // A choked peer losing interest frees no slot.
                    if on || !peer.am_choking {
                        self.quick_rechoke(now);
                    }
                }
            }
            PeerEvent::Block { req, data } => self.on_block(key, req, data, now),
            PeerEvent::Rejected(reqs) => self.on_rejected(key, &reqs, false, now),
            PeerEvent::Stalled(reqs) => self.on_rejected(key, &reqs, true, now),
            PeerEvent::Reqq(n) => {
                peer.reqq = n.max(1);
                self.top_up(key, now);
            }
            PeerEvent::ExtensionInfo { listen_port, pex } => {
                self.on_extension_info(key, listen_port, pex, now)
            }
            PeerEvent::Pex(message) => self.on_pex(key, message, now),
            PeerEvent::AllowedFast(piece) => self.on_allowed_fast(key, piece, now),
            PeerEvent::BlockHashesRefused(piece) => {
                if self
                    .block_hash_asks
                    .get(&piece)
                    .is_some_and(|ask| ask.asked.contains(&key))
                {
                    self.ask_block_hashes(piece);
                }
            }
            PeerEvent::Transferred { .. } => {}
        }
    }

    /// A connection (or a dial) ended. Its requests go to other peers; an
    /// outgoing address is backed off; a free slot is filled.
    pub fn handle_disconnected(
        &mut self,
        key: PeerKey,
        how: Disconnect,
        now: Instant,
    ) -> Result<(), SwarmError> {
        self.peer(key)?;
        let Some(peer) = self.take_peer(key) else {
            return Err(SwarmError::UnknownPeer { peer: key });
        };
        let removed = self.picker.remove_peer(key);
        debug_assert!(removed.is_ok(), "picker lost peer {key}");
        if peer.connected && !peer.is_web_seed() {
            // Someone else may get its upload slot now.
            self.timers.set(Timer::Rechoke, Some(now));
        }
        if let (Remote::Addr(addr), true) = (peer.remote, peer.outgoing) {
            let how = match (peer.closing, how) {
                // Nothing to trade is no reason to redial every few seconds.
                (
                    Some(
                        CloseReason::BothSeeding
                        | CloseReason::ProtocolViolation
                        | CloseReason::Idle
                        | CloseReason::Evicted,
                    ),
                    _,
                )
                | (_, Disconnect::Failed) => Ended::Failed,
                _ => Ended::Closed,
            };
            self.policy.handle_ended(addr, how, now);
        } else if let Some(listen) = peer.listen_addr.filter(|_| !peer.outgoing) {
            // An incoming peer is dialled back where it listens, after
            // the backoff of a normal end.
            if self.policy.handle_candidate(listen, PeerSource::Pex) {
                self.policy.handle_ended(listen, Ended::Closed, now);
            }
        }
        self.dial(now);
        self.top_up_all(now);
        Ok(())
    }

    /// The driver could not make the connection that
    /// [`poll_dial`](Self::poll_dial) asked for because a limit above the
    /// torrent's said no (a process-wide connection limit: no slot free),
    /// not because of the peer. The dial is undone as if it had never
    /// been made: the address is not backed off and its failures are not
    /// counted. The swarm also takes back the other dials it queued and
    /// not yet handed out, and makes no new dial before `retry_at` (the
    /// driver's guess of when a slot may be free); it then dials as usual,
    /// best addresses first, and may be deferred again.
    ///
    /// Only for a dial to an address that has not connected yet: anything
    /// else (an incoming peer, a web seed, an established connection) is
    /// refused with [`SwarmError::NotADial`] and left as it was. Incoming
    /// peers are not held back: the driver refuses those itself.
    pub fn handle_dial_deferred(
        &mut self,
        key: PeerKey,
        retry_at: Instant,
        now: Instant,
    ) -> Result<(), SwarmError> {
        let peer = self.peer(key)?;
        if !peer.outgoing || peer.connected || peer.is_web_seed() {
            return Err(SwarmError::NotADial { peer: key });
        }
        self.undo_dial(key);
        // Dials queued behind it would meet the same limit.
        let mut kept = VecDeque::with_capacity(self.dials.len());
        for dial in std::mem::take(&mut self.dials) {
            match dial.remote {
                Remote::Addr(_) => self.undo_dial(dial.peer),
                Remote::WebSeed(_) => kept.push_back(dial),
            }
        }
        self.dials = kept;
        let until = retry_at.max(now);
        self.dial_hold = Some(until);
        self.timers.set(Timer::Dial, Some(until));
        Ok(())
    }

    /// A piece from [`poll_piece`](Self::poll_piece) matched its hash and
    /// is on disk; `data` is its bytes back (compared against the failed
    /// copies for smart ban, then dropped). Announces it to every peer.
    pub fn handle_piece_saved(
        &mut self,
        piece: u32,
        data: PieceData,
        now: Instant,
    ) -> Result<(), SwarmError> {
        if self.saving.remove(&piece).is_none() {
            return Err(SwarmError::NotSaving { piece });
        }
        // A good copy settles it: smart ban compares the failed ones.
        self.block_hash_asks.remove(&piece);
        for liar in self.smart_ban.piece_saved(piece, &data, self.block_size) {
            self.ban(liar, BanReason::CorruptBlock, now);
        }
        // (interest updates below top up whoever lost requests to a ban)
        if let Err(source) = self.picker.piece_verified(piece) {
            debug_assert!(false, "picker refused verified piece {piece}: {source}");
            return Err(SwarmError::Internal { piece, source });
        }
        if !self.have.get(piece) {
            self.saved.push(piece);
        }
        self.have.set(piece);
        self.have_bytes += u64::from(self.geometry.piece_size(piece).unwrap_or(0));
        self.events.push_back(Event::PieceSaved { piece });
        for key in self.keys() {
            if self.peer(key).is_ok_and(|p| p.active_peer()) {
                self.commands.push_back((key, PeerCommand::Have(piece)));
            }
        }
        self.resume_dirty = true;
        if self.timers.get(Timer::Resume).is_none() {
            let at = (self.last_resume + self.cfg.resume_interval).max(now);
            self.timers.set(Timer::Resume, Some(at));
        }
        if self.is_complete() {
            self.events.push_back(Event::Complete);
            self.save_resume(now);
            self.timers.set(Timer::WebSeeds, None);
            // Seeds have nothing to trade with seeds.
            for key in self.keys() {
                if self.peer(key).is_ok_and(|p| p.active() && p.is_seed) {
                    self.close(key, CloseReason::BothSeeding);
                }
            }
        }
        for key in self.keys() {
            self.update_interest(key, now);
        }
        Ok(())
    }

    /// A piece from [`poll_piece`](Self::poll_piece) failed its hash
    /// check; `data` is its bytes back. The piece is downloaded again; the
    /// peers that sent it are blamed (smart ban).
    pub fn handle_piece_failed(
        &mut self,
        piece: u32,
        data: PieceData,
        now: Instant,
    ) -> Result<(), SwarmError> {
        let Some(senders) = self.saving.remove(&piece) else {
            return Err(SwarmError::NotSaving { piece });
        };
        let mut contributors = Vec::new();
        if let Err(source) = self.picker.piece_hash_failed(piece, &mut contributors) {
            debug_assert!(false, "picker refused failed piece {piece}: {source}");
            return Err(SwarmError::Internal { piece, source });
        }
        let mut distinct: Vec<Remote> = senders.iter().flatten().copied().collect();
        distinct.sort_unstable();
        distinct.dedup();
        self.events.push_back(Event::HashFailed {
            piece,
            senders: distinct.clone(),
        });
        let asking = self.block_hash_asks.contains_key(&piece);
        let ask_hashes = self.cfg.block_hashes
            && distinct.len() > 1
            && (asking || self.block_hash_asks.len() < self.cfg.max_suspect_pieces);
        // With block hashes on the way, a piece shared with others blames
        // nobody by count: the hashes name the sender of the bad block,
        // and counting would ban the honest peers a liar shared with.
        let bans =
            self.smart_ban
                .piece_failed(piece, &data, self.block_size, &senders, !ask_hashes);
        for (remote, reason) in bans {
            self.ban(remote, reason, now);
        }
        if ask_hashes && !asking {
            debug_assert_eq!(self.block_size, 16 * 1024, "v2 blocks are 16 KiB");
            self.block_hash_asks.insert(
                piece,
                BlockHashAsk {
                    asked: Vec::new(),
                    senders: distinct,
                },
            );
            for _ in 0..BLOCK_HASH_ASKS_AT_ONCE {
                self.ask_block_hashes(piece);
            }
        }
        self.top_up_all(now);
        Ok(())
    }

    /// The driver compared the latest failed copy of `piece` with its
    /// block hashes (asked for by [`PeerCommand::RequestBlockHashes`]):
    /// `corrupt` are the 16 KiB blocks that differ. Their senders are
    /// banned at once. A late or repeated report changes nothing.
    pub fn handle_corrupt_blocks(&mut self, piece: u32, corrupt: &[u32], now: Instant) {
        if self.block_hash_asks.remove(&piece).is_none() {
            return;
        }
        for liar in self.smart_ban.blocks_corrupt(piece, corrupt) {
            self.ban(liar, BanReason::BlockHashMismatch, now);
        }
        self.top_up_all(now);
    }

    /// Asks one more peer for a failed piece's block hashes: one that
    /// has the piece and did not send the failed copy, else one of its
    /// senders. With nobody left to ask and no answer awaited, the piece
    /// waits for a good copy (smart ban).
    fn ask_block_hashes(&mut self, piece: u32) {
        let Some(ask) = self.block_hash_asks.get(&piece) else {
            return;
        };
        let eligible = |p: &Peer| {
            p.active_peer()
                && !ask.asked.contains(&p.key)
                && self.picker.peer_has_piece(p.key, piece)
        };
        let next = self
            .peers
            .iter()
            .flatten()
            .filter(|p| eligible(p))
            .min_by_key(|p| ask.senders.contains(&p.remote))
            .map(|p| p.key);
        match next {
            Some(key) if ask.asked.len() < MAX_BLOCK_HASH_ASKS => {
                self.commands
                    .push_back((key, PeerCommand::RequestBlockHashes(piece)));
                if let Some(ask) = self.block_hash_asks.get_mut(&piece) {
                    ask.asked.push(key);
                }
            }
            _ => {
                if ask.asked.is_empty() {
                    self.block_hash_asks.remove(&piece);
                }
            }
        }
    }

    /// Runs the timers due at `now`. An early or extra call is harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        for timer in TIMERS {
            if self.timers.get(timer).is_some_and(|t| now >= t) {
                self.timers.set(timer, None);
                match timer {
                    Timer::Tick => {
                        self.tick(now);
                        self.check_slots(now);
                    }
                    Timer::Rechoke => self.rechoke(now, true),
                    Timer::Dial => self.dial(now),
                    Timer::Resume => {
                        if self.resume_dirty {
                            self.save_resume(now);
                        }
                    }
                    Timer::WebSeeds => self.maybe_start_web_seeds(now),
                }
            }
        }
    }

    // ------------------------------------------------------------ mutators

    /// Closes every connection (the torrent stops): a
    /// [`PeerCommand::Close`] for each; report each
    /// [`handle_disconnected`](Self::handle_disconnected) as usual.
    pub fn close_all(&mut self, reason: CloseReason) {
        for key in self.keys() {
            self.close(key, reason);
        }
    }

    /// Closes one peer's connection for `reason`; its requests go to other
    /// peers.
    pub fn close_peer(
        &mut self,
        key: PeerKey,
        reason: CloseReason,
        now: Instant,
    ) -> Result<(), SwarmError> {
        self.peer(key)?;
        self.close(key, reason);
        self.top_up_all(now);
        Ok(())
    }

    // ------------------------------------------------------------- outputs

    /// The next order for a peer connection.
    pub fn poll_command(&mut self) -> Option<(PeerKey, PeerCommand)> {
        self.commands.pop_front()
    }

    /// The next complete piece to hash and save.
    pub fn poll_piece(&mut self) -> Option<CompletedPiece> {
        self.pieces.pop_front()
    }

    /// The next connection to make. Give its session [`Swarm::have`] as
    /// it is now: pieces saved before its handshake completes come as
    /// [`PeerCommand::Have`] once it does.
    pub fn poll_dial(&mut self) -> Option<Dial> {
        self.dials.pop_front()
    }

    /// The next event for the torrent's user.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When to call [`handle_timeout`](Self::handle_timeout) next: the
    /// earliest deadline of the timer table.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.earliest()
    }

    // ------------------------------------------------------------ internals

    /// Marks the peer closing and orders the close; its requests return
    /// to the pool (the caller tops up the other peers).
    fn close(&mut self, key: PeerKey, reason: CloseReason) {
        let Ok(peer) = self.peer_mut(key) else { return };
        if peer.closing.is_some() {
            return;
        }
        peer.closing = Some(reason);
        let _ = self.picker.peer_choked(key);
        self.commands.push_back((key, PeerCommand::Close(reason)));
    }

    fn ban(&mut self, remote: Remote, reason: BanReason, now: Instant) {
        if let Remote::Addr(addr) = remote {
            self.policy.ban(addr, now);
        }
        self.events.push_back(Event::Banned { remote, reason });
        // Every connection of the peer: by address, then by the ids those
        // connections showed, so its other addresses are banned too.
        let mut ids = Vec::new();
        for p in self.peers.iter().flatten() {
            let hit = match remote {
                Remote::Addr(addr) => p.is_at(addr),
                web => p.remote == web,
            };
            if let (true, Some(id), Some(ip)) = (hit, p.peer_id, p.ip()) {
                ids.push((id, ip));
            }
        }
        let until = now + self.cfg.ban_duration;
        if self.banned_ids.len() >= self.cfg.max_candidates {
            self.banned_ids.retain(|_, t| now < *t);
        }
        for id in &ids {
            if self.banned_ids.len() < self.cfg.max_candidates {
                self.banned_ids.insert(*id, until);
            }
        }
        for key in self.keys() {
            let Ok(p) = self.peer(key) else { continue };
            let hit = match remote {
                Remote::Addr(addr) => p.is_at(addr),
                web => p.remote == web,
            } || matches!((p.peer_id, p.ip()), (Some(id), Some(ip)) if ids.contains(&(id, ip)));
            if !hit {
                continue;
            }
            if p.is_web_seed() {
                self.commands.push_back((key, PeerCommand::BackOff));
            } else {
                for addr in [Some(p.remote), p.listen_addr.map(Remote::Addr)] {
                    if let Some(Remote::Addr(addr)) = addr {
                        self.policy.ban(addr, now);
                    }
                }
                self.close(key, CloseReason::Banned);
            }
        }
    }

    fn save_resume(&mut self, now: Instant) {
        self.events.push_back(Event::SaveResume(self.have.clone()));
        self.resume_dirty = false;
        self.last_resume = now;
        self.timers.set(Timer::Resume, None);
    }

    /// Forgets a dial that was never made: its peer leaves the table and
    /// its address is free to dial again, with no failure counted.
    fn undo_dial(&mut self, key: PeerKey) {
        let Some(peer) = self.take_peer(key) else {
            debug_assert!(false, "undoing a dial of an unknown peer {key}");
            return;
        };
        let removed = self.picker.remove_peer(key);
        debug_assert!(removed.is_ok(), "picker lost peer {key}");
        if let Remote::Addr(addr) = peer.remote {
            self.policy.handle_deferred(addr);
        }
    }

    fn dial(&mut self, now: Instant) {
        if let Some(until) = self.dial_hold {
            if now < until {
                self.timers.set(Timer::Dial, Some(until));
                return;
            }
            self.dial_hold = None;
        }
        self.policy.set_seeding(self.is_complete());
        let limits = Limits::from_config(&self.cfg);
        let table = self.occupants();
        let free = slots::dial_budget(&limits, &table);
        let busy = &self.addrs;
        let mut per_ip: HashMap<IpAddr, usize> = HashMap::new();
        let addrs = self.policy.poll_dial(now, free, |a| {
            if busy.contains(a) {
                return true;
            }
            let n = per_ip
                .entry(a.ip())
                .or_insert_with(|| slots::with_ip(&table, a.ip()));
            if *n >= limits.max_per_ip {
                return true;
            }
            *n += 1;
            false
        });
        for addr in addrs {
            let key = self.picker.add_peer();
            let peer = Peer::new(key, Remote::Addr(addr), true, &self.cfg, now);
            self.insert(peer, now);
            self.dials.push_back(Dial {
                peer: key,
                remote: Remote::Addr(addr),
            });
        }
        self.timers.set(Timer::Dial, self.policy.next_ready(now));
    }

    /// Once a tick: takes in each peer's payload and interest, passes over
    /// (in the choker) a peer that was unchoked and interested for
    /// [`SwarmConfig::unused_unchoke_timeout`] without taking a byte,
    /// closes the peers idle past their time-outs, and while we want data,
    /// dials have filled their share of the table and addresses wait,
    /// replaces one peer that has nothing for us and moved nothing past
    /// the grace period (peer turnover, at most one per
    /// [`SwarmConfig::turnover_interval`]).
    fn check_slots(&mut self, now: Instant) {
        let hog_after = self.hog_timeout();
        let mut new_hogs = false;
        for p in self.peers.iter_mut().flatten() {
            if p.active_peer() {
                let stance = p.stance();
                p.activity.observe(p.uploaded, stance, now);
                if !p.activity.hog && p.activity.hogging(now, hog_after) {
                    // Unchoked and interested, it took nothing: its upload
                    // slot goes to a peer that will use it.
                    p.activity.hog = true;
                    new_hogs = true;
                }
            }
        }
        if new_hogs {
            self.rechoke(now, false);
        }
        let limits = Limits::from_config(&self.cfg);
        let table = self.occupants();
        let idle = slots::idle_peers(&limits, &table, now);
        if !idle.is_empty() {
            for key in idle {
                self.evict(key, CloseReason::Idle, now);
            }
            return;
        }
        let turned_over_lately = self
            .last_turnover
            .is_some_and(|t| now < t + self.cfg.turnover_interval);
        if self.is_complete() || turned_over_lately || self.connections() < limits.dial_limit() {
            return;
        }
        let waiting = self.policy.has_ready(now, |a| {
            self.addrs.contains(a) || slots::ip_full(&limits, &table, a.ip())
        });
        let nothing_for_us: Vec<Occupant> = table
            .iter()
            .filter(|o| self.peer(o.key).is_ok_and(|p| !p.am_interested))
            .copied()
            .collect();
        if let (true, Some(victim)) = (
            waiting,
            slots::eviction_candidate(&limits, &nothing_for_us, now),
        ) {
            self.last_turnover = Some(now);
            self.evict(victim, CloseReason::Evicted, now);
        }
    }

    /// How long an unchoked, interested peer may take nothing before it
    /// counts as wasting its slot, at our upload rate now.
    fn hog_timeout(&self) -> Duration {
        slots::hog_timeout(
            self.cfg.unused_unchoke_timeout,
            self.block_size,
            self.cfg.upload_slots,
            self.up_rate,
        )
    }

    /// Closes a peer to free its slot; its address may not take another's
    /// slot for a while.
    fn evict(&mut self, key: PeerKey, reason: CloseReason, now: Instant) {
        if let Some(ip) = self.peer(key).ok().and_then(Peer::ip) {
            self.slot_cooldown.start(ip, now);
        }
        self.close(key, reason);
        self.top_up_all(now);
    }

    fn maybe_start_web_seeds(&mut self, now: Instant) {
        if self.web_seeds_started || self.cfg.web_seeds == 0 || self.is_complete() {
            return;
        }
        let connected = self
            .peers
            .iter()
            .flatten()
            .filter(|p| p.active_peer())
            .count();
        let rate: f64 = self.peers.iter().flatten().map(|p| p.down_rate).sum();
        if connected >= self.cfg.web_seed_below_peers && rate >= self.cfg.web_seed_below_rate {
            self.timers
                .set(Timer::WebSeeds, Some(now + self.cfg.tick_interval));
            return;
        }
        self.web_seeds_started = true;
        for index in 0..self.cfg.web_seeds {
            let key = self.picker.add_peer();
            let remote = Remote::WebSeed(index);
            let peer = Peer::new(key, remote, true, &self.cfg, now);
            self.insert(peer, now);
            self.dials.push_back(Dial { peer: key, remote });
        }
    }

    fn on_pieces(&mut self, key: PeerKey, bits: &Bitfield, now: Instant) {
        let n = self.geometry.num_pieces();
        let result = if bits.len() != n {
            Err(())
        } else if bits.is_complete() {
            self.picker.peer_has_all(key).map_err(|_| ())
        } else {
            self.picker
                .peer_bitfield(key, bits.as_wire())
                .map_err(|_| ())
        };
        if result.is_err() {
            self.close(key, CloseReason::ProtocolViolation);
            return;
        }
        let complete = self.is_complete();
        let Ok(peer) = self.peer_mut(key) else { return };
        peer.pieces = bits.count();
        peer.is_seed = bits.is_complete();
        if peer.is_seed {
            self.note_seed(key);
        }
        if complete && bits.is_complete() {
            self.close(key, CloseReason::BothSeeding);
            return;
        }
        self.update_interest(key, now);
    }

    fn on_have(&mut self, key: PeerKey, piece: u32, now: Instant) {
        let n = self.geometry.num_pieces();
        if piece >= n {
            self.close(key, CloseReason::ProtocolViolation);
            return;
        }
        let new = !self.picker.peer_has_piece(key, piece);
        let _ = self.picker.peer_has(key, piece);
        let complete = self.is_complete();
        let Ok(peer) = self.peer_mut(key) else { return };
        if new {
            peer.pieces += 1;
        }
        let is_seed = peer.pieces >= n;
        let became_seed = is_seed && !peer.is_seed;
        peer.is_seed = is_seed;
        if became_seed {
            self.note_seed(key);
        }
        if complete && is_seed {
            self.close(key, CloseReason::BothSeeding);
            return;
        }
        self.update_interest(key, now);
    }

    /// The peer `key` has every piece: its addresses are remembered as a
    /// seed's, so that we do not dial it again once we seed too.
    fn note_seed(&mut self, key: PeerKey) {
        let Ok(peer) = self.peer(key) else { return };
        let dialled = match (peer.remote, peer.outgoing) {
            (Remote::Addr(addr), true) => Some(addr),
            _ => None,
        };
        for addr in [dialled, peer.listen_addr].into_iter().flatten() {
            self.policy.handle_seed(addr);
        }
    }

    fn on_allowed_fast(&mut self, key: PeerKey, piece: u32, now: Instant) {
        let pieces = self.geometry.num_pieces();
        let Ok(peer) = self.peer_mut(key) else { return };
        if peer.fast
            && piece < pieces
            && peer.allowed_fast.len() < MAX_ALLOWED_FAST
            && !peer.allowed_fast.contains(&piece)
        {
            peer.allowed_fast.push(piece);
            if peer.peer_choking {
                self.top_up(key, now);
            }
        }
    }

    fn on_choked(&mut self, key: PeerKey, choked: bool, now: Instant) {
        let Ok(peer) = self.peer_mut(key) else { return };
        peer.peer_choking = choked;
        if choked {
            // Without the fast extension a choke voids every request; with
            // it the peer rejects (or still serves) each one.
            if !peer.fast && self.picker.in_flight_count(key) > 0 {
                let _ = self.picker.peer_choked(key);
                // Not straight back on the unchoke: a peer flipping choke
                // would get a fresh pipeline for every ten bytes it sends.
                self.back_off(key, now);
                self.top_up_all(now);
            }
        } else {
            peer.waiting_since = now;
            self.top_up(key, now);
        }
    }

    fn on_block(&mut self, key: PeerKey, req: BlockRequest, data: Vec<u8>, now: Instant) {
        let Ok(peer) = self.peer_mut(key) else { return };
        peer.waiting_since = now;
        peer.snubbed = false;
        peer.fruitless = 0;
        // Blame goes to where the peer listens when known: an incoming
        // peer's connection address changes with every connection, its
        // listen address does not.
        let remote = peer.listen_addr.map_or(peer.remote, Remote::Addr);
        if data.len() != req.length as usize {
            self.close(key, CloseReason::ProtocolViolation);
            return;
        }
        self.cancels.clear();
        let outcome = match self.picker.block_received(key, req, &mut self.cancels) {
            Ok(o) => o,
            Err(_) => {
                // Not a block of this torrent's grid.
                self.close(key, CloseReason::ProtocolViolation);
                return;
            }
        };
        let cancels = std::mem::take(&mut self.cancels);
        for &other in &cancels {
            if self.peer(other).is_ok_and(|p| p.active()) {
                self.commands.push_back((other, PeerCommand::Cancel(req)));
            }
        }
        self.cancels = cancels;
        if outcome.accepted {
            self.assemble(remote, req, data, outcome.piece_complete);
        }
        self.top_up(key, now);
    }

    fn assemble(&mut self, remote: Remote, req: BlockRequest, data: Vec<u8>, complete: bool) {
        let size = self.geometry.piece_size(req.piece).unwrap_or(0) as usize;
        let blocks = size.div_ceil(self.block_size);
        let buf = self.buffers.entry(req.piece).or_insert_with(|| PieceBuf {
            blocks: vec![Vec::new(); blocks],
            senders: vec![None; blocks],
        });
        let index = req.offset as usize / self.block_size;
        // The picker accepted it: a block of this piece's grid.
        debug_assert!(index < blocks && req.offset as usize % self.block_size == 0);
        if let Some(slot) = buf.blocks.get_mut(index) {
            *slot = data;
        }
        if let Some(slot) = buf.senders.get_mut(index) {
            *slot = Some(remote);
        }
        if complete {
            if let Some(buf) = self.buffers.remove(&req.piece) {
                self.saving.insert(req.piece, buf.senders);
                self.pieces.push_back(CompletedPiece {
                    piece: req.piece,
                    data: PieceData::from_chunks(buf.blocks),
                });
            }
        }
    }

    fn on_rejected(&mut self, key: PeerKey, reqs: &[BlockRequest], stalled: bool, now: Instant) {
        let before = self.picker.in_flight_count(key);
        for r in reqs {
            let _ = self.picker.block_rejected(key, *r);
        }
        if self.picker.in_flight_count(key) == before {
            return;
        }
        let (min, hold) = (self.cfg.min_pipeline, self.cfg.reject_hold);
        if stalled {
            if let Ok(peer) = self.peer_mut(key) {
                peer.hold_until = Some(now + hold);
                peer.target = min;
                peer.snubbed = true;
            }
        } else {
            // The blocks go to other peers first, not straight back to the
            // one that refused them.
            self.back_off(key, now);
        }
        self.top_up_all(now);
    }

    /// A round of requests to `key` was voided without a block: no new
    /// ones for `reject_hold`, doubled for each such round since its last
    /// block (at most 32 times), and from the second round on a minimal
    /// pipeline. Voids while already held count as the same round.
    fn back_off(&mut self, key: PeerKey, now: Instant) {
        let (min, hold) = (self.cfg.min_pipeline, self.cfg.reject_hold);
        let Ok(peer) = self.peer_mut(key) else { return };
        if peer.hold_until.is_some_and(|t| now < t) {
            return;
        }
        peer.fruitless = peer.fruitless.saturating_add(1);
        let doublings = peer.fruitless.saturating_sub(1).min(5);
        peer.hold_until = Some(now + hold * (1u32 << doublings));
        if peer.fruitless > 1 {
            peer.target = min;
        }
    }

    fn on_extension_info(
        &mut self,
        key: PeerKey,
        listen_port: Option<u16>,
        pex: bool,
        now: Instant,
    ) {
        let private = self.cfg.private;
        let policy = &mut self.policy;
        let addrs = &mut self.addrs;
        let Some(peer) = slot_mut(&mut self.peers, key) else {
            return;
        };
        let Remote::Addr(addr) = peer.remote else {
            return;
        };
        if !peer.outgoing {
            if let Some(old) = peer.listen_addr {
                addrs.remove(old);
            }
            peer.listen_addr = listen_port.map(|port| SocketAddr::new(addr.ip(), port));
            if let Some(new) = peer.listen_addr {
                addrs.add(new);
                // Where to reach it once it leaves (not while it is here:
                // connected addresses are not dialled).
                policy.handle_candidate(new, PeerSource::Pex);
            }
            if let Some(listen) = peer.listen_addr {
                if policy.is_banned(listen, now) {
                    // A banned peer dialling us from a new port.
                    self.close(key, CloseReason::Banned);
                    return;
                }
            }
        }
        if pex && !private && peer.pex.is_none() {
            let mut state = PexState::new(
                addr,
                PexConfig {
                    interval: PEX_INTERVAL,
                    ..PexConfig::default()
                },
            );
            if let Some(listen) = peer.listen_addr {
                state.exclude(listen);
            }
            peer.pex = Some(state);
        }
        // The same peer by address: an incoming connection from where we
        // also dialled.
        if let Some(listen) = peer.listen_addr.filter(|_| !peer.outgoing) {
            let twin = self
                .peers
                .iter()
                .flatten()
                .find(|p| p.key != key && p.active_peer() && p.is_at(listen))
                .map(|p| p.key);
            if let Some(existing) = twin {
                self.resolve_duplicate(existing, key, now);
            }
        }
        // The first message goes at once (later ones at most once a
        // minute): a short-lived swarm must not wait to share what it knows.
        self.send_pex(now);
    }

    fn on_pex(&mut self, key: PeerKey, message: PexMessage, now: Instant) {
        if self.cfg.private {
            return;
        }
        let Ok(peer) = self.peer_mut(key) else { return };
        let Some(state) = peer.pex.as_mut() else {
            return;
        };
        let incoming = state.handle_incoming(message, now);
        if incoming.too_soon {
            return;
        }
        let listed = incoming.added.len() + incoming.discarded;
        let mut learned = 0;
        for added in incoming.added {
            if self.is_self(added.addr) || self.addrs.contains(added.addr) {
                continue;
            }
            if self.policy.handle_candidate(added.addr, PeerSource::Pex) {
                learned += 1;
                if added.flags.seed() {
                    self.policy.handle_seed(added.addr);
                }
            }
        }
        self.events.push_back(Event::PexReceived {
            peer: key,
            learned,
            listed,
        });
        self.dial(now);
    }

    fn update_interest(&mut self, key: PeerKey, now: Instant) {
        let want = self.picker.interesting(key);
        let Ok(peer) = self.peer_mut(key) else { return };
        if !peer.active() {
            return;
        }
        if want != peer.am_interested {
            peer.am_interested = want;
            self.commands
                .push_back((key, PeerCommand::Interested(want)));
        }
        self.top_up(key, now);
    }

    fn top_up_all(&mut self, now: Instant) {
        for key in self.keys() {
            self.top_up(key, now);
        }
    }

    fn top_up(&mut self, key: PeerKey, now: Instant) {
        let in_flight = self.picker.in_flight_count(key);
        let Some(peer) = slot_mut(&mut self.peers, key) else {
            return;
        };
        // While it chokes us, only the pieces it allows fast (BEP 6).
        let choked_fast = peer.peer_choking && peer.fast && !peer.allowed_fast.is_empty();
        if !peer.active()
            || (peer.peer_choking && !choked_fast)
            || !peer.am_interested
            || peer.hold_until.is_some_and(|t| now < t)
        {
            return;
        }
        let limit = peer.target.min(peer.reqq).max(1);
        if in_flight >= limit {
            return;
        }
        // Ask in batches: topping up one block at a time costs a message
        // per block between threads.
        if in_flight > 0 && limit - in_flight < (limit / 4).max(1) {
            return;
        }
        self.scratch.clear();
        let picked = if choked_fast {
            self.picker.pick_in(
                key,
                &peer.allowed_fast,
                limit - in_flight,
                &mut self.scratch,
            )
        } else {
            self.picker.pick(key, limit - in_flight, &mut self.scratch)
        };
        if picked.is_err() || self.scratch.is_empty() {
            return;
        }
        if in_flight == 0 {
            peer.waiting_since = now;
        }
        self.commands
            .push_back((key, PeerCommand::Request(self.scratch.clone())));
    }

    /// Sends each PEX-capable peer what changed in our peer set (at most
    /// once a minute per peer; `PexState` keeps the pace).
    fn send_pex(&mut self, now: Instant) {
        if self.cfg.private {
            return;
        }
        let connected: Vec<PexPeer> = self
            .peers
            .iter()
            .flatten()
            .filter(|p| p.active_peer())
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
        // Rebuilding every peer's set each tick cost O(peers²) a second;
        // only a change (or a new PEX peer) needs it.
        let changed = connected != self.pex_connected;
        for peer in self.peers.iter_mut().flatten() {
            if peer.closing.is_some() {
                continue;
            }
            let Some(state) = peer.pex.as_mut() else {
                continue;
            };
            if changed {
                peer.pex_synced = false;
            }
            // Too soon after its last message: `poll_message` would say
            // nothing, and the set given now would be replaced before it
            // is read (building it for every peer on every change cost
            // O(peers²) per change).
            if peer.pex_due.is_some_and(|due| now < due) {
                continue;
            }
            if !peer.pex_synced {
                state.set_connected(connected.iter().copied());
                peer.pex_synced = true;
                peer.pex_dirty = true;
            }
            // Unchanged since its last message: nothing to poll (polling
            // compares two maps).
            if !peer.pex_dirty {
                continue;
            }
            // Past `pex_due`, `PexState`'s own pace allows a message: no
            // message means the peer knows our set, until it changes.
            peer.pex_dirty = false;
            if let Some(message) = state.poll_message(now) {
                peer.pex_due = Some(now + PEX_INTERVAL);
                self.commands
                    .push_back((peer.key, PeerCommand::Pex(message)));
            }
        }
        if changed {
            self.pex_connected = connected;
        }
    }

    /// A peer became interested, or one we unchoke lost interest: rechoke
    /// at once (a new leecher should not wait for the next rechoke when a
    /// slot is free; a slot left idle should go to someone), but at most once per
    /// [`QUICK_RECHOKE_GAP`]; a change within it brings the rechoke timer
    /// forward instead. Peers flipping their interest cost at most a few
    /// rechokes a second, however fast they flip.
    fn quick_rechoke(&mut self, now: Instant) {
        match self.last_quick_rechoke {
            Some(last) if now < last + QUICK_RECHOKE_GAP => {
                let at = last + QUICK_RECHOKE_GAP;
                let next = self.timers.get(Timer::Rechoke).map_or(at, |t| t.min(at));
                self.timers.set(Timer::Rechoke, Some(next));
            }
            _ => {
                self.last_quick_rechoke = Some(now);
                self.rechoke(now, false);
            }
        }
    }

    fn rechoke(&mut self, now: Instant, periodic: bool) {
        if periodic {
            self.timers
                .set(Timer::Rechoke, Some(now + self.cfg.rechoke_interval));
        }
        // A peer that held an upload slot and took nothing (see
        // `check_slots`) ranks behind every other: it gets a slot only if
        // nobody else wants it. Passing it over for good starved a leecher
        // that was waiting out a back-off of its own; ranking it on equal
        // terms let idle peers keep every slot by table order.
        let states: Vec<ChokeState<PeerKey>> = self
            .peers
            .iter()
            .flatten()
            .filter(|p| p.active_peer())
            .map(|p| ChokeState {
                key: p.key,
                interested: p.peer_interested,
                rate_from_peer: p.down_rate,
                rate_to_peer: p.up_rate,
                wasted_a_slot: p.activity.hog,
            })
            .collect();
        let seeding = self.is_complete();
        let unchoke = self.choker.decide(now, seeding, &states);
        for state in states {
            let choke = !unchoke.contains(&state.key);
            if let Ok(peer) = self.peer_mut(state.key) {
                if choke != peer.am_choking {
                    peer.am_choking = choke;
                    self.commands
                        .push_back((state.key, PeerCommand::Choke(choke)));
                }
            }
        }
        if !periodic && self.timers.get(Timer::Rechoke).is_none() {
            self.timers
                .set(Timer::Rechoke, Some(now + self.cfg.rechoke_interval));
        }
    }

    fn tick(&mut self, now: Instant) {
        let dt = now
            .saturating_duration_since(self.last_tick)
            .as_secs_f64()
            .max(1e-3);
        self.last_tick = now;
        // Idle torrents cost nothing: with no peer (dialling, connected
        // or web seed) there is nothing to measure, time out or rechoke,
        // and the next peer arms the timers again.
        if self.peers.iter().all(Option::is_none) {
            self.timers.set(Timer::Tick, None);
            self.timers.set(Timer::Rechoke, None);
            (self.down_rate, self.up_rate) = (0.0, 0.0);
            return;
        }
        self.timers
            .set(Timer::Tick, Some(now + self.cfg.tick_interval));
        let (min, max, block) = (
            self.cfg.min_pipeline,
            self.cfg.max_pipeline,
            self.block_size as f64,
        );
        let (timeout, hold) = (self.cfg.request_timeout, self.cfg.reject_hold);
        let mut stalled = Vec::new();
        (self.down_rate, self.up_rate) = (0.0, 0.0);
        for peer in self.peers.iter_mut().flatten() {
            peer.down_rate = 0.5 * peer.down_rate + 0.5 * peer.tick_down as f64 / dt;
            peer.up_rate = 0.5 * peer.up_rate + 0.5 * peer.tick_up as f64 / dt;
            peer.tick_down = 0;
            peer.tick_up = 0;
            self.down_rate += peer.down_rate;
            self.up_rate += peer.up_rate;
            if !peer.active() {
                continue;
            }
            // About one second of blocks in flight, within bounds.
            let by_rate = (peer.down_rate / block) as usize;
            peer.target = by_rate.clamp(min.max(peer.target / 2), max);
            let _ = self.picker.set_peer_rate(peer.key, peer.down_rate as u64);
            if self.picker.in_flight_count(peer.key) > 0
                && now.saturating_duration_since(peer.waiting_since) >= timeout
            {
                stalled.push(peer.key);
            }
        }
        for key in stalled {
            let reqs: Vec<BlockRequest> = self.picker.in_flight(key).collect();
            for r in &reqs {
                self.commands.push_back((key, PeerCommand::Cancel(*r)));
            }
            let _ = self.picker.peer_choked(key);
            if let Ok(peer) = self.peer_mut(key) {
                peer.target = min;
                peer.snubbed = true;
                peer.waiting_since = now;
                peer.hold_until = Some(now + hold);
            }
        }
        if now >= self.pex_check_at {
            self.pex_check_at = now + PEX_CHECK_INTERVAL;
            self.send_pex(now);
        }
        self.top_up_all(now);
    }
}
