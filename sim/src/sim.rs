//! The simulator: nodes (a real `Swarm` each), connections (a real
//! peer-wire session at each end), links with latency and bandwidth, one
//! event queue ordered by simulated time, one seeded generator.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use rustico_peer_wire::{
    Action, Content, Event as WireEvent, Handshake, Handshaking, Progress, Reserved, Session,
    SessionConfig,
};
use rustico_pieces::{Bitfield, Geometry};
use rustico_swarm::{
    BanReason, CloseReason, Disconnect, Event as SwarmEvent, HandshakeInfo, PeerCommand, PeerEvent,
    PeerKey, PeerSource, Remote, Swarm, SwarmConfig,
};
use sha1::{Digest, Sha1};

use crate::report::{Availability, Invariant, Report, SimError};
use crate::rng::SimRng;
use crate::{SimConfig, Verify};

const NS: u64 = 1_000_000_000;
const PORT: u16 = 6881;
/// Longest message a session buffers: a piece message of one block.
const MAX_MESSAGE: usize = 16_384 + 13;
/// Longest segment: one block's piece message, so that with whole
/// messages each block travels alone and arrives with its last byte.
const SEGMENT: usize = MAX_MESSAGE;
/// Segments up to this long (one Ethernet MSS: `have`s, requests, choke
/// and interest changes) move at the node's whole rate and take no share
/// of it from the connections carrying blocks.
const SMALL: usize = 1460;
/// Bytes of blocks a session serves in one turn, as a session's transmit
/// buffer would hold (its `max_transmit_buffer`).
const TRANSMIT_BUFFER: usize = 256 * 1024;
/// Sending time a connection may have queued before the driver stops
/// serving blocks on it.
const SEND_BUFFER: u64 = NS / 2;

/// What a simulated peer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// The initial seed (honest).
    Seed,
    /// An honest leecher.
    Leecher,
    /// An honest leecher that chokes and unchokes its peers in rapid
    /// succession.
    Flapper,
    /// Has every piece, sends a corrupt byte in every block.
    Corrupt,
    /// Has every piece, takes requests and never serves them.
    Staller,
}

impl Kind {
    fn honest(self) -> bool {
        matches!(self, Kind::Seed | Kind::Leecher | Kind::Flapper)
    }
    fn must_complete(self) -> bool {
        matches!(self, Kind::Leecher | Kind::Flapper)
    }
}

#[derive(Debug)]
struct Node {
    kind: Kind,
    addr: SocketAddr,
    up: u64,
    down: u64,
    latency: u64,
    swarm: Option<Swarm>,
    epoch: u32,
    /// In-memory storage: the SHA-1 of each saved piece's bytes.
    stored: Vec<Option<[u8; 20]>>,
    have: Bitfield,
    conns: BTreeSet<usize>,
    keys: Keys,
    dirty: Vec<usize>,
    wake_at: Option<u64>,
    /// When the sessions' transfer counts last went to the swarm.
    reported_at: u64,
    first_join: Option<u64>,
    completed_at: Option<u64>,
    uploaded_before: u64,
    downloaded_before: u64,
    leaves_left: u8,
    next_port: u16,
    /// When this node's sending and receiving links go idle.
    busy_up: Busy,
    busy_down: Busy,
    /// Corrupt peers that sent blocks of a failed piece (this lifetime).
    failed_by: BTreeSet<usize>,
    /// Peers this node banned (this lifetime), with when.
    banned: BTreeMap<usize, u64>,
}

impl Node {
    fn online(&self) -> bool {
        self.swarm.is_some()
    }
}

/// A node's swarm handles mapped to connections, indexed by the handle's
/// slot (the picker's slab index), checked by the whole handle.
#[derive(Debug, Default)]
struct Keys(Vec<Option<(PeerKey, usize)>>);

impl Keys {
    fn get(&self, key: PeerKey) -> Option<usize> {
        match self.0.get(key.index() as usize) {
            Some(Some((k, c))) if *k == key => Some(*c),
            _ => None,
        }
    }
    fn insert(&mut self, key: PeerKey, c: usize) {
        let i = key.index() as usize;
        if self.0.len() <= i {
            self.0.resize(i + 1, None);
        }
        self.0[i] = Some((key, c));
    }
    fn remove(&mut self, key: PeerKey) {
        if let Some(slot) = self.0.get_mut(key.index() as usize) {
            if slot.is_some_and(|(k, _)| k == key) {
                *slot = None;
            }
        }
    }
    fn clear(&mut self) {
        self.0.clear();
    }
}

/// Links of one node busy in one direction: a heap of (idle at,
/// connection, direction), stale entries skipped, and how many are busy.
#[derive(Debug, Default)]
struct Busy {
    heap: BinaryHeap<Reverse<(u64, usize, usize)>>,
    count: u64,
}

#[derive(Debug)]
enum Wire {
    Pending,
    Handshaking(Box<Handshaking>),
    Session(Box<Session>),
    Done,
}

#[derive(Debug)]
struct End {
    node: usize,
    epoch: u32,
    key: Option<PeerKey>,
    wire: Wire,
    open: bool,
    wake_at: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Split {
    Whole,
    Random,
    Bytes,
}

/// The segments in flight towards one end of a connection, in the order
/// they arrive, each with its place in the event order (time, sequence
/// number). Only the first is in the event queue (a `Deliver`); the next
/// goes in when it is taken, with the place it got when sent, so events
/// run in the same order as with every segment queued, from a queue a
/// fraction of the size. The buffers come from and go back to the
/// simulator's pool: no allocation per segment.
#[derive(Debug, Default)]
struct Pipe(VecDeque<(u64, u64, Vec<u8>)>);

/// Empty segment buffers for reuse, in two sizes: a session's transmit
/// buffer needs room for a whole block message, a `have` does not. A
/// transmit buffer handed a small one grew by reallocation on every block
/// (a third of a fast run's time, mostly the kernel zeroing fresh pages).
/// The pool keeps what was in flight at the busiest moment, no more.
#[derive(Debug, Default)]
struct Pool {
    /// Buffers that hold a block message.
    large: Vec<Vec<u8>>,
    small: Vec<Vec<u8>>,
}

impl Pool {
    /// A buffer with room for `len` bytes.
    fn take(&mut self, len: usize) -> Vec<u8> {
        let pooled = if len <= SMALL {
            self.small.pop().or_else(|| self.large.pop())
        } else {
            self.large.pop()
        };
        pooled.unwrap_or_else(|| Vec::with_capacity(len.max(SMALL)))
    }

    fn give(&mut self, mut buf: Vec<u8>) {
        buf.clear();
        if buf.capacity() >= MAX_MESSAGE {
            self.large.push(buf);
        } else {
            self.small.push(buf);
        }
    }
}

#[derive(Debug)]
struct Conn {
    ends: [End; 2],
    alive: bool,
    latency: u64,
    split: Split,
    cut_after: Option<u64>,
    cut_pending: bool,
    sent: [u64; 2],
    /// Per direction (from side 0, from side 1): when the sender's last
    /// byte leaves, and when it arrives.
    free_at: [u64; 2],
    arrive_at: [u64; 2],
    /// The same for the last segment longer than [`SMALL`]: what the
    /// connection's share of its nodes' bandwidth is counted by.
    bulk_free_at: [u64; 2],
    bulk_arrive_at: [u64; 2],
    dialer_addr: SocketAddr,
    /// Per receiving side: the bytes on their way to it.
    pipes: [Pipe; 2],
    /// Per side: queued in its node's dirty list; queued to be checked.
    dirty: [bool; 2],
    checked: [bool; 2],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ev {
    Connect(usize),
    /// The next segment of the connection's pipe towards a side.
    Deliver(usize, usize),
    Fin(usize, usize),
    Cut(usize),
    SessionWake(usize, usize),
    Wake(usize, u32),
    Join(usize),
    Leave(usize, u32),
    Flap(usize, u32),
    Announce(usize, u32),
    Check,
}

impl Ev {
    /// The event in one word (what the event queue holds): its kind in the
    /// low byte, its connection or node in the next 32 bits, its side or
    /// epoch above.
    fn tag(&self) -> u64 {
        let (kind, a, b) = match *self {
            Ev::Connect(c) => (1, c, 0),
            Ev::Deliver(c, s) => (2, c, s as u64),
            Ev::Fin(c, s) => (3, c, s as u64),
            Ev::Cut(c) => (4, c, 0),
            Ev::SessionWake(c, s) => (5, c, s as u64),
            Ev::Wake(n, e) => (6, n, u64::from(e)),
            Ev::Join(n) => (7, n, 0),
            Ev::Leave(n, e) => (8, n, u64::from(e)),
            Ev::Flap(n, e) => (9, n, u64::from(e)),
            Ev::Announce(n, e) => (10, n, u64::from(e)),
            Ev::Check => (11, 0, 0),
        };
        debug_assert!(a < 1 << 32 && b < 1 << 24, "{self:?} does not fit a tag");
        kind | (a as u64) << 8 | b << 40
    }

    /// The event [`Ev::tag`] made `tag` of.
    fn from_tag(tag: u64) -> Option<Ev> {
        let a = (tag >> 8 & 0xffff_ffff) as usize;
        let (side, epoch) = ((tag >> 40) as usize, (tag >> 40) as u32);
        Some(match tag & 0xff {
            1 => Ev::Connect(a),
            2 => Ev::Deliver(a, side),
            3 => Ev::Fin(a, side),
            4 => Ev::Cut(a),
            5 => Ev::SessionWake(a, side),
            6 => Ev::Wake(a, epoch),
            7 => Ev::Join(a),
            8 => Ev::Leave(a, epoch),
            9 => Ev::Flap(a, epoch),
            10 => Ev::Announce(a, epoch),
            11 => Ev::Check,
            _ => return None,
        })
    }
}

/// A whole swarm under simulation. Build it with [`Sim::new`], then call
/// [`Sim::run`] (or [`Sim::step`] to watch it go).
pub struct Sim {
    cfg: SimConfig,
    rng: SimRng,
    base: Instant,
    now: u64,
    seq: u64,
    /// Events as (time, sequence number, [`Ev::tag`]): three words each,
    /// so the heap moves less memory than with the events themselves.
    queue: BinaryHeap<Reverse<(u64, u64, u64)>>,
    nodes: Vec<Node>,
    conns: Vec<Conn>,
    by_ip: HashMap<IpAddr, usize>,
    content: Vec<u8>,
    hashes: Vec<[u8; 20]>,
    geometry: Geometry,
    info_hash: [u8; 20],
    avail: Vec<u32>,
    /// Connections made between two seeds, per pair of nodes.
    seed_pairs: HashMap<(usize, usize), u32>,
    trace: u64,
    last_progress: u64,
    touched: Vec<usize>,
    /// Connection ends drained in this step, checked after it.
    drained: Vec<(usize, usize)>,
    /// Reused by `drain_session`: bytes to send, served blocks' messages,
    /// session events.
    out_buf: Vec<u8>,
    block_bufs: Vec<Vec<u8>>,
    pool: Pool,
    event_buf: Vec<WireEvent>,
    seed_node: usize,
    seed_left: bool,
    finished: bool,
    /// The livelock bound: the configured one plus the time the slowest
    /// honest uplink needs for 8 pieces (a piece may exist only there).
    progress_ns: u64,
    report: Report,
}

impl std::fmt::Debug for Sim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sim")
            .field("seed", &self.cfg.seed)
            .field("now", &Duration::from_nanos(self.now))
            .field("nodes", &self.nodes.len())
            .finish_non_exhaustive()
    }
}

fn node_ip(i: usize) -> Ipv4Addr {
    let i = i as u32 + 1;
    Ipv4Addr::new(10, (i >> 16) as u8, (i >> 8) as u8, i as u8)
}

fn transfer_ns(bytes: usize, rate: u64) -> u64 {
    (bytes as u64).saturating_mul(NS) / rate.max(1)
}

impl Sim {
    /// A simulation of `config`: one seed, `config.leechers` honest
    /// leechers (some of them choke-flappers if the faults say so), and the
    /// corrupt and stalling peers of the faults, all on one simulated
    /// network.
    pub fn new(config: SimConfig) -> Result<Sim, SimError> {
        let mut rng = SimRng::new(config.seed);
        let total = config.total_length();
        let geometry = Geometry::new(total, config.piece_length).map_err(|e| SimError {
            seed: config.seed,
            at: Duration::ZERO,
            invariant: Invariant::Swarm {
                node: 0,
                source: rustico_swarm::SwarmError::from(e),
            },
        })?;
        let mut content = vec![0u8; total as usize];
        for chunk in content.chunks_mut(8) {
            let word = rng.u64().to_le_bytes();
            let n = chunk.len();
            chunk.copy_from_slice(&word[..n]);
        }
        let hashes: Vec<[u8; 20]> = content
            .chunks(config.piece_length as usize)
            .map(|p| Sha1::digest(p).into())
            .collect();
        let mut info_hash = [0u8; 20];
        for (i, b) in info_hash.iter_mut().enumerate() {
            *b = (config.seed >> ((i % 8) * 8)) as u8 ^ i as u8;
        }
        let f = &config.faults;
        let mut kinds = vec![Kind::Seed];
        for i in 0..config.leechers {
            kinds.push(if i < f.flapping_peers {
                Kind::Flapper
            } else {
                Kind::Leecher
            });
        }
        kinds.extend(std::iter::repeat_n(Kind::Corrupt, f.corrupt_peers));
        kinds.extend(std::iter::repeat_n(Kind::Staller, f.stalling_peers));
        let n = geometry.num_pieces();
        let mut nodes = Vec::new();
        let mut by_ip = HashMap::new();
        for (i, kind) in kinds.iter().copied().enumerate() {
            let slow = kind.must_complete() && rng.chance(f.slow_peers);
            let (up, down, latency) = if slow {
                let up = rng.range(20_000, 100_000);
                (up / 10, up, rng.range(100, 300) * 1_000_000)
            } else {
                let up = rng.range(config.upload_rate / 2, config.upload_rate * 2);
                (up, up * 4, rng.range(5, 40) * 1_000_000)
            };
            let full = !kind.must_complete();
            let have = if full {
                Bitfield::full(n)
            } else {
                Bitfield::new(n)
            };
            let stored = if full {
                hashes.iter().map(|h| Some(*h)).collect()
            } else {
                vec![None; n as usize]
            };
            let ip = node_ip(i);
            by_ip.insert(IpAddr::V4(ip), i);
            nodes.push(Node {
                kind,
                addr: SocketAddr::new(IpAddr::V4(ip), PORT),
                up,
                down,
                latency,
                swarm: None,
                epoch: 0,
                stored,
                have,
                conns: BTreeSet::new(),
                keys: Keys::default(),
                dirty: Vec::new(),
                wake_at: None,
                reported_at: 0,
                first_join: None,
                completed_at: None,
                uploaded_before: 0,
                downloaded_before: 0,
                leaves_left: if f.churn && kind.must_complete() {
                    2
                } else {
                    0
                },
                next_port: 40_000,
                failed_by: BTreeSet::new(),
                banned: BTreeMap::new(),
                busy_up: Busy::default(),
                busy_down: Busy::default(),
            });
        }
        let mut sim = Sim {
            report: Report {
                seed: config.seed,
                faults: config.faults.clone(),
                sim_time: Duration::ZERO,
                events: 0,
                trace: 0,
                download_times: Vec::new(),
                seed_uploaded: 0,
                downloaded: 0,
                availability: Vec::new(),
                hash_failures: 0,
                bans: 0,
                cuts: 0,
                leaves: 0,
                seed_left: false,
                max_idle: Duration::ZERO,
                stalls: 0,
                byte_links: 0,
                flaps: 0,
                connections: 0,
                max_partial_pieces: 0,
                max_suspect_pieces: 0,
                max_in_flight: 0,
                max_queued_serves: 0,
                max_seed_pair_connections: 0,
                upload_capacity: nodes.iter().filter(|n| n.kind.honest()).map(|n| n.up).sum(),
            },
            rng,
            base: Instant::now(),
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            nodes,
            conns: Vec::new(),
            by_ip,
            content,
            hashes,
            geometry,
            info_hash,
            avail: vec![0; n as usize],
            seed_pairs: HashMap::new(),
            trace: 0xcbf2_9ce4_8422_2325,
            last_progress: 0,
            touched: Vec::new(),
            drained: Vec::new(),
            out_buf: Vec::new(),
            block_bufs: Vec::new(),
            pool: Pool::default(),
            event_buf: Vec::new(),
            seed_node: 0,
            seed_left: false,
            finished: false,
            progress_ns: 0,
            cfg: config,
        };
        let slowest = sim
            .nodes
            .iter()
            .filter(|n| n.kind.honest())
            .map(|n| n.up)
            .min()
            .unwrap_or(1);
        // A choker serves a few peers at once; a flapper unchokes every
        // peer at each flap, so a piece only a slow flapper holds goes to
        // every leecher at once, each at its share, blocks in any order and
        // queued requests rejected at each flap: seed 3396 took 745 s for
        // 19 leechers sharing 2.3 KB/s (1.45 times a piece per leecher).
        let at_once = if sim.cfg.faults.flapping_peers > 0 {
            (2 * sim.cfg.leechers).max(8)
        } else {
            8
        };
        sim.progress_ns = sim.cfg.progress_bound.as_nanos() as u64
            + transfer_ns(at_once * sim.cfg.piece_length as usize, slowest);
        let spread = sim.cfg.join_spread.as_nanos() as u64;
        for i in 0..sim.nodes.len() {
            let at = if sim.nodes[i].kind.must_complete() {
                sim.rng.range(0, spread)
            } else {
                0
            };
            sim.push(at, Ev::Join(i));
        }
        sim.push(NS, Ev::Check);
        // Nobody to wait for: the run is over before it starts.
        sim.finished = sim.incomplete() == 0;
        Ok(sim)
    }

    /// Simulated time since the start.
    pub fn now(&self) -> Duration {
        Duration::from_nanos(self.now)
    }

    /// The swarm of peer `node`, while it is online.
    pub fn swarm(&self, node: usize) -> Option<&Swarm> {
        self.nodes.get(node).and_then(|n| n.swarm.as_ref())
    }

    /// What each peer is, by index (0 is the initial seed).
    pub fn kinds(&self) -> Vec<Kind> {
        self.nodes.iter().map(|n| n.kind).collect()
    }

    /// Runs until every honest leecher completed (then checks the final
    /// invariants), or an invariant breaks.
    pub fn run(mut self) -> Result<Report, SimError> {
        while self.step()? {}
        self.finish()
    }

    /// Processes one event; `Ok(false)` once the run is over.
    pub fn step(&mut self) -> Result<bool, SimError> {
        if self.finished {
            return Ok(false);
        }
        let Some(Reverse((at, _, tag))) = self.queue.pop() else {
            self.finished = true;
            return Ok(false);
        };
        let Some(ev) = Ev::from_tag(tag) else {
            return Err(self.fail(Invariant::Internal("an event that is no event")));
        };
        self.now = at;
        self.report.events += 1;
        if self.cfg.trace {
            let len = match ev {
                Ev::Deliver(c, side) => self.conns[c].pipes[side].0.front().map(|s| s.2.len()),
                _ => None,
            };
            let tag = tag | (len.unwrap_or(0) as u64) << 44;
            for word in [at, tag] {
                self.trace = (self.trace ^ word).wrapping_mul(0x0100_0000_01b3);
            }
        }
        self.handle(ev).map_err(|invariant| self.fail(invariant))?;
        while let Some(n) = self.touched.pop() {
            self.pump(n).map_err(|invariant| self.fail(invariant))?;
            self.check_node(n, false)
                .map_err(|invariant| self.fail(invariant))?;
        }
        while let Some((c, side)) = self.drained.pop() {
            self.conns[c].checked[side] = false;
            self.check_end(c, side)
                .map_err(|invariant| self.fail(invariant))?;
        }
        if self.now > self.cfg.time_limit.as_nanos() as u64 {
            let incomplete = self.incomplete();
            return Err(self.fail(Invariant::TimeLimit { incomplete }));
        }
        Ok(!self.finished)
    }

    fn fail(&self, invariant: Invariant) -> SimError {
        SimError {
            seed: self.cfg.seed,
            at: Duration::from_nanos(self.now),
            invariant,
        }
    }

    fn instant(&self) -> Instant {
        self.base + Duration::from_nanos(self.now)
    }

    fn push(&mut self, at: u64, ev: Ev) {
        self.seq += 1;
        self.queue_at(at, self.seq, ev);
    }

    /// Queues `ev` at its place in the order: time, then sequence number.
    fn queue_at(&mut self, at: u64, seq: u64, ev: Ev) {
        self.queue.push(Reverse((at, seq, ev.tag())));
    }

    fn mark_dirty(&mut self, n: usize, c: usize) {
        for side in 0..2 {
            let conn = &mut self.conns[c];
            if conn.ends[side].node == n && !conn.dirty[side] {
                conn.dirty[side] = true;
                self.nodes[n].dirty.push(c);
            }
        }
    }

    fn touch(&mut self, n: usize) {
        if !self.touched.contains(&n) {
            self.touched.push(n);
        }
    }

    fn incomplete(&self) -> usize {
        self.nodes
            .iter()
            .filter(|n| n.kind.must_complete() && n.completed_at.is_none())
            .count()
    }

    // ------------------------------------------------------------ events

    fn handle(&mut self, ev: Ev) -> Result<(), Invariant> {
        match ev {
            Ev::Join(n) => self.join(n)?,
            Ev::Leave(n, epoch) => {
                if self.nodes[n].epoch == epoch && self.nodes[n].online() {
                    self.leave(n);
                    if self.nodes[n].kind.must_complete() {
                        let back = self.rng.range(NS, 30 * NS);
                        self.push(self.now + back, Ev::Join(n));
                    }
                }
            }
            Ev::Announce(n, epoch) => {
                if self.nodes[n].epoch == epoch && self.nodes[n].online() {
                    self.announce(n);
                    self.push(self.now + 30 * NS, Ev::Announce(n, epoch));
                }
            }
            Ev::Flap(n, epoch) => {
                if self.nodes[n].epoch == epoch && self.nodes[n].online() {
                    let conns: Vec<usize> = self.nodes[n].conns.iter().copied().collect();
                    for c in conns {
                        for side in 0..2 {
                            let end = &mut self.conns[c].ends[side];
                            if end.node != n || !end.open {
                                continue;
                            }
                            if let Wire::Session(s) = &mut end.wire {
                                let choking = s.am_choking();
                                s.set_choking(!choking);
                                self.report.flaps += 1;
                                self.mark_dirty(n, c);
                            }
                        }
                    }
                    self.touch(n);
                    let next = self.rng.range(50, 500) * 1_000_000;
                    self.push(self.now + next, Ev::Flap(n, epoch));
                }
            }
            Ev::Wake(n, epoch) => {
                let node = &mut self.nodes[n];
                if node.epoch == epoch && node.wake_at == Some(self.now) {
                    node.wake_at = None;
                    // Only the swarm's tick reads them (rates, idle
                    // peers): once per tick interval is enough, and most
                    // wakes are for other timers.
                    let tick = node.swarm.as_ref().map(|s| s.config().tick_interval);
                    let due = node.reported_at + tick.map_or(0, |t| t.as_nanos() as u64);
                    if self.now >= due {
                        node.reported_at = self.now;
                        self.report_transfers(n)?;
                    }
                    let now = self.instant();
                    if let Some(swarm) = self.nodes[n].swarm.as_mut() {
                        swarm.handle_timeout(now);
                    }
                    self.touch(n);
                }
            }
            Ev::SessionWake(c, side) => {
                let now = self.instant();
                let end = &mut self.conns[c].ends[side];
                if !end.open || end.wake_at != Some(self.now) {
                    return Ok(());
                }
                end.wake_at = None;
                let result = match &mut end.wire {
                    Wire::Handshaking(hs) => hs.handle_timeout(now),
                    Wire::Session(s) => s.handle_timeout(now),
                    _ => Ok(()),
                };
                let n = end.node;
                if result.is_err() {
                    self.close_conn(c, side, Disconnect::Failed)?;
                } else {
                    self.mark_dirty(n, c);
                }
                self.touch(n);
            }
            Ev::Connect(c) => self.connect(c)?,
            Ev::Deliver(c, side) => self.deliver(c, side)?,
            Ev::Fin(c, side) => self.close_end(c, side, Disconnect::Closed)?,
            Ev::Cut(c) => {
                if self.conns[c].alive {
                    self.report.cuts += 1;
                    self.conns[c].alive = false;
                    self.close_end(c, 0, Disconnect::Failed)?;
                    self.close_end(c, 1, Disconnect::Failed)?;
                }
            }
            Ev::Check => self.periodic()?,
        }
        Ok(())
    }

    fn join(&mut self, n: usize) -> Result<(), Invariant> {
        let now = self.instant();
        let node = &mut self.nodes[n];
        node.epoch += 1;
        node.failed_by.clear();
        node.banned.clear();
        let mut peer_id = *b"-RS0010-000000000000";
        let tag = format!("{:06}{:06}", n % 1_000_000, node.epoch % 1_000_000);
        peer_id[8..].copy_from_slice(tag.as_bytes());
        let mut config =
            SwarmConfig::new(self.geometry.total_length(), self.cfg.piece_length, peer_id);
        config.listen_port = Some(PORT);
        config.seed = self.rng.u64();
        config.ban_duration = Duration::from_secs(24 * 3600);
        if let Some(tune) = &self.cfg.tune {
            (tune.0)(n, &mut config);
        }
        let swarm = Swarm::new(config, node.have.clone(), now)
            .map_err(|source| Invariant::Swarm { node: n, source })?;
        node.swarm = Some(swarm);
        node.wake_at = None;
        if node.first_join.is_none() {
            node.first_join = Some(self.now);
        }
        if node.kind.honest() {
            for p in node.have.iter_set() {
                if let Some(a) = self.avail.get_mut(p as usize) {
                    *a += 1;
                }
            }
        }
        let epoch = node.epoch;
        let kind = node.kind;
        self.push(self.now, Ev::Announce(n, epoch));
        if kind == Kind::Flapper {
            self.push(self.now + 100_000_000, Ev::Flap(n, epoch));
        }
        if self.nodes[n].leaves_left > 0 && self.rng.chance(0.6) {
            self.nodes[n].leaves_left -= 1;
            let at = self.now + self.rng.range(2 * NS, 60 * NS);
            self.push(at, Ev::Leave(n, epoch));
        }
        self.touch(n);
        Ok(())
    }

    fn leave(&mut self, n: usize) {
        self.report.leaves += 1;
        let conns: Vec<usize> = self.nodes[n].conns.iter().copied().collect();
        for c in conns {
            let conn = &mut self.conns[c];
            if !conn.alive {
                continue;
            }
            conn.alive = false;
            let latency = conn.latency;
            for side in 0..2 {
                let end = &mut self.conns[c].ends[side];
                if end.node == n {
                    end.open = false;
                    end.wire = Wire::Done;
                } else if end.open {
                    self.push(self.now + latency, Ev::Fin(c, side));
                }
            }
        }
        let node = &mut self.nodes[n];
        if let Some(swarm) = node.swarm.take() {
            let stats = swarm.stats();
            node.uploaded_before += stats.uploaded;
            node.downloaded_before += stats.downloaded;
        }
        node.conns.clear();
        node.keys.clear();
        node.dirty.clear();
        node.epoch += 1;
        if node.kind.honest() {
            for p in node.have.iter_set() {
                if let Some(a) = self.avail.get_mut(p as usize) {
                    *a = a.saturating_sub(1);
                }
            }
        }
    }

    /// Reports every session's payload counts to node `n`'s swarm (what a
    /// driver polling `Session::take_stats` does), so its rates are fresh
    /// when its timers run.
    fn report_transfers(&mut self, n: usize) -> Result<(), Invariant> {
        let now = self.instant();
        let node = &mut self.nodes[n];
        let Some(swarm) = node.swarm.as_mut() else {
            return Ok(());
        };
        for &c in &node.conns {
            for end in &mut self.conns[c].ends {
                if end.node != n || !end.open {
                    continue;
                }
                let (Some(key), Wire::Session(s)) = (end.key, &mut end.wire) else {
                    continue;
                };
                let (down, up) = s.take_stats();
                if down + up > 0 {
                    swarm
                        .handle_peer_event(key, PeerEvent::Transferred { down, up }, now)
                        .map_err(|source| Invariant::Swarm { node: n, source })?;
                }
            }
        }
        Ok(())
    }

    fn announce(&mut self, n: usize) {
        let online: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| i != n && self.nodes[i].online())
            .collect();
        let mut picked = Vec::new();
        let want = online.len().min(30);
        let mut pool = online;
        for _ in 0..want {
            if let Some(i) = self.rng.pick(pool.len()) {
                picked.push(self.nodes[pool.swap_remove(i)].addr);
            }
        }
        let now = self.instant();
        if let Some(swarm) = self.nodes[n].swarm.as_mut() {
            swarm.handle_candidates(picked, PeerSource::Tracker, now);
        }
        self.touch(n);
    }

    fn periodic(&mut self) -> Result<(), Invariant> {
        self.push(self.now + NS, Ev::Check);
        let online = self
            .nodes
            .iter()
            .filter(|n| n.kind.honest() && n.online())
            .count();
        let _ = online;
        let mean = if self.avail.is_empty() {
            0.0
        } else {
            self.avail.iter().map(|&a| f64::from(a)).sum::<f64>() / self.avail.len() as f64
        };
        let min = self.avail.iter().copied().min().unwrap_or(0);
        self.report.availability.push(Availability {
            at: Duration::from_nanos(self.now),
            mean,
            min,
        });
        let idle = self.now.saturating_sub(self.last_progress);
        if self.incomplete() > 0 {
            self.report.max_idle = self.report.max_idle.max(Duration::from_nanos(idle));
        }
        if self.incomplete() > 0 && idle > self.progress_ns {
            if self.cfg.verbose {
                self.dump();
            }
            return Err(Invariant::NoProgress {
                idle: Duration::from_nanos(self.now - self.last_progress),
            });
        }
        for n in 0..self.nodes.len() {
            self.check_node(n, true)?;
        }
        Ok(())
    }

    // ------------------------------------------------------- connections

    fn start_dial(&mut self, n: usize, key: PeerKey, remote: Remote) -> Result<(), Invariant> {
        let target = match remote {
            Remote::Addr(addr) => self.by_ip.get(&addr.ip()).copied(),
            Remote::WebSeed(_) => None,
        };
        let node = &mut self.nodes[n];
        let port = node.next_port;
        node.next_port = node.next_port.checked_add(1).unwrap_or(40_000);
        let dialer_addr = SocketAddr::new(node.addr.ip(), port);
        let Some(t) = target else {
            let now = self.instant();
            if let Some(swarm) = self.nodes[n].swarm.as_mut() {
                swarm
                    .handle_disconnected(key, Disconnect::Failed, now)
                    .map_err(|source| Invariant::Swarm { node: n, source })?;
            }
            return Ok(());
        };
        let latency = self.nodes[n].latency + self.nodes[t].latency;
        let f = &self.cfg.faults;
        let split = if self.rng.chance(f.byte_links) {
            Split::Bytes
        } else if self.rng.chance(f.split_links) {
            Split::Random
        } else {
            Split::Whole
        };
        let cut_after = if self.rng.chance(f.cut_links) {
            Some(self.rng.range(1, 400_000))
        } else {
            None
        };
        let c = self.conns.len();
        if split == Split::Bytes {
            self.report.byte_links += 1;
        }
        let epoch = self.nodes[n].epoch;
        self.conns.push(Conn {
            ends: [
                End {
                    node: n,
                    epoch,
                    key: Some(key),
                    wire: Wire::Pending,
                    open: true,
                    wake_at: None,
                },
                End {
                    node: t,
                    epoch: 0,
                    key: None,
                    wire: Wire::Pending,
                    open: false,
                    wake_at: None,
                },
            ],
            alive: true,
            latency,
            split,
            cut_after,
            cut_pending: false,
            sent: [0, 0],
            free_at: [0, 0],
            arrive_at: [0, 0],
            bulk_free_at: [0, 0],
            bulk_arrive_at: [0, 0],
            dirty: [false; 2],
            checked: [false; 2],
            dialer_addr,
            pipes: Default::default(),
        });
        self.nodes[n].conns.insert(c);
        self.nodes[n].keys.insert(key, c);
        if self.cfg.verbose {
            eprintln!(
                "{:?} node {n} dials node {t}: conn {c} {split:?} cut {cut_after:?}",
                self.now()
            );
        }
        self.push(self.now + latency, Ev::Connect(c));
        Ok(())
    }

    fn handshaking(&self, n: usize, now: Instant) -> Handshaking {
        let node = &self.nodes[n];
        let peer_id = node.swarm.as_ref().map_or([0; 20], |s| s.config().peer_id);
        let ours = Handshake::new(Reserved::supported(), self.info_hash, peer_id);
        let have = node.have.clone();
        let content = match Content::torrent(self.geometry, have) {
            Ok(c) => c,
            Err(_) => Content::magnet(),
        };
        let config = SessionConfig {
            client: Some("rustico-sim".into()),
            listen_port: Some(PORT),
            pex: true,
            // The driver reports transfer counts itself before each swarm
            // timer (see `report_transfers`): one timer per peer instead
            // of one per connection end.
            stats_interval: None,
            max_transmit_buffer: TRANSMIT_BUFFER,
            ..SessionConfig::default()
        };
        Handshaking::new(ours, content, config, now)
    }

    fn connect(&mut self, c: usize) -> Result<(), Invariant> {
        let now = self.instant();
        let conn = &self.conns[c];
        if !conn.alive || !conn.ends[0].open {
            return Ok(());
        }
        let (n, t, from) = (conn.ends[0].node, conn.ends[1].node, conn.dialer_addr);
        let accepted = match self.nodes[t].swarm.as_mut() {
            Some(swarm) => swarm.handle_incoming(from, now).ok(),
            None => None,
        };
        if self.cfg.verbose {
            eprintln!(
                "{:?} conn {c}: node {t} accepts node {n}: {accepted:?}",
                self.now()
            );
        }
        let Some(key) = accepted else {
            self.conns[c].alive = false;
            return self.close_end(c, 0, Disconnect::Failed);
        };
        let hs0 = self.handshaking(n, now);
        let hs1 = self.handshaking(t, now);
        let epoch = self.nodes[t].epoch;
        let conn = &mut self.conns[c];
        conn.ends[0].wire = Wire::Handshaking(Box::new(hs0));
        conn.ends[1] = End {
            node: t,
            epoch,
            key: Some(key),
            wire: Wire::Handshaking(Box::new(hs1)),
            open: true,
            wake_at: None,
        };
        self.nodes[t].conns.insert(c);
        self.nodes[t].keys.insert(key, c);
        self.mark_dirty(n, c);
        self.mark_dirty(t, c);
        self.touch(n);
        self.touch(t);
        Ok(())
    }

    /// Closes end `side`: its swarm hears of it (with the last transfer
    /// counts). A normal close is TCP's FIN: what this end put on the
    /// wire still arrives, then the other end is told (a seed that hangs
    /// up on a seed has sent its bitfield, and the other learns it is a
    /// seed). A failure resets the connection: nothing more arrives, and
    /// the other end is told after the link's latency.
    fn close_conn(&mut self, c: usize, side: usize, how: Disconnect) -> Result<(), Invariant> {
        let conn = &mut self.conns[c];
        let was_alive = conn.alive;
        let fin_at = match how {
            Disconnect::Closed => (self.now + conn.latency).max(conn.arrive_at[side]),
            Disconnect::Failed => {
                conn.alive = false;
                self.now + conn.latency
            }
        };
        self.close_end(c, side, how)?;
        if was_alive && self.conns[c].ends[1 - side].open {
            self.push(fin_at, Ev::Fin(c, 1 - side));
        }
        Ok(())
    }

    fn close_end(&mut self, c: usize, side: usize, how: Disconnect) -> Result<(), Invariant> {
        let now = self.instant();
        let end = &mut self.conns[c].ends[side];
        if !end.open {
            return Ok(());
        }
        end.open = false;
        let n = end.node;
        let wire = std::mem::replace(&mut end.wire, Wire::Done);
        if !self.conns[c].ends[1 - side].open {
            self.conns[c].alive = false;
        }
        let end = &self.conns[c].ends[side];
        let key = end.key;
        if self.nodes[n].epoch != end.epoch {
            return Ok(());
        }
        let node = &mut self.nodes[n];
        node.conns.remove(&c);
        if let (Some(key), Some(swarm)) = (key, node.swarm.as_mut()) {
            node.keys.remove(key);
            if let Wire::Session(mut s) = wire {
                let (down, up) = s.take_stats();
                if down + up > 0 {
                    swarm
                        .handle_peer_event(key, PeerEvent::Transferred { down, up }, now)
                        .map_err(|source| Invariant::Swarm { node: n, source })?;
                }
            }
            swarm
                .handle_disconnected(key, how, now)
                .map_err(|source| Invariant::Swarm { node: n, source })?;
        }
        self.touch(n);
        Ok(())
    }

    /// Puts `bytes` (taken) on the link from `side`, in segments. `framed` bytes
    /// are whole length-prefixed messages (an established session's
    /// output): without a split fault a segment then ends at a message
    /// boundary where it can, so that a message is not delivered in two
    /// events (a block's last 13 bytes were one in nine of all events).
    fn send(&mut self, c: usize, side: usize, bytes: &mut Vec<u8>, framed: bool) {
        let conn = &self.conns[c];
        if bytes.is_empty() || !conn.alive || conn.cut_pending {
            bytes.clear();
            return;
        }
        let (from, to) = (conn.ends[side].node, conn.ends[1 - side].node);
        let (latency, split, cut_after) = (conn.latency, conn.split, conn.cut_after);
        // Each connection is its own FIFO (TCP); a node's upload and
        // download are shared among its busy connections.
        let small = bytes.len() <= SMALL;
        let (up_rate, down_rate) = if small {
            (self.nodes[from].up, self.nodes[to].down)
        } else {
            (
                self.nodes[from].up / self.busy_links(from, c, side),
                self.nodes[to].down / self.busy_links(to, c, 1 - side),
            )
        };
        let conn = &self.conns[c];
        let (old_free, old_arrive) = (conn.bulk_free_at[side], conn.bulk_arrive_at[side]);
        let mut off = 0;
        // Where the first message not yet wholly sent starts.
        let mut next_message = 0;
        while off < bytes.len() {
            let max = match split {
                Split::Random => self.rng.range(1, 4096) as usize,
                _ => SEGMENT,
            };
            let mut len = max.min(bytes.len() - off);
            if framed && split == Split::Whole {
                len = whole_messages(bytes, &mut next_message, off, len);
            }
            let mut cut = false;
            let sent = self.conns[c].sent[side];
            if let Some(x) = cut_after {
                if sent + len as u64 >= x {
                    len = (x.saturating_sub(sent)) as usize;
                    cut = true;
                }
            }
            let start = self.now.max(self.conns[c].free_at[side]);
            let up_done = start + transfer_ns(len, up_rate);
            let arrive = up_done + latency;
            let down_done = arrive + transfer_ns(len, down_rate);
            let down_done = down_done.max(self.conns[c].arrive_at[side]);
            self.conns[c].free_at[side] = up_done;
            self.conns[c].arrive_at[side] = down_done;
            if len > 0 {
                let segment = if len == bytes.len() {
                    // `bytes` goes back to a session as its transmit buffer.
                    std::mem::replace(bytes, self.pool.take(MAX_MESSAGE))
                } else {
                    let mut segment = self.pool.take(len);
                    segment.extend_from_slice(&bytes[off..off + len]);
                    segment
                };
                self.seq += 1;
                let pipe = &mut self.conns[c].pipes[1 - side].0;
                pipe.push_back((down_done, self.seq, segment));
                if pipe.len() == 1 {
                    self.queue_at(down_done, self.seq, Ev::Deliver(c, 1 - side));
                }
            }
            self.conns[c].sent[side] += len as u64;
            off += len;
            if cut {
                self.conns[c].cut_pending = true;
                self.push(down_done, Ev::Cut(c));
                break;
            }
        }
        bytes.clear();
        if !small {
            let conn = &mut self.conns[c];
            conn.bulk_free_at[side] = conn.free_at[side];
            conn.bulk_arrive_at[side] = conn.arrive_at[side];
            self.mark_busy(from, c, side, true, old_free);
            self.mark_busy(to, c, side, false, old_arrive);
        }
    }

    /// Connections of node `n` busy sending (`sending`) or receiving now,
    /// counting `c` itself: they share the node's bandwidth. Amortised
    /// O(log n): each node keeps a heap of when its busy links go idle.
    fn busy_links(&mut self, n: usize, c: usize, side: usize) -> u64 {
        let sending = self.conns[c].ends[side].node == n;
        let dir = if sending { side } else { 1 - side };
        let now = self.now;
        let conns = &self.conns;
        let busy = if sending {
            &mut self.nodes[n].busy_up
        } else {
            &mut self.nodes[n].busy_down
        };
        let until = |c: usize, d: usize| {
            if sending {
                conns[c].bulk_free_at[d]
            } else {
                conns[c].bulk_arrive_at[d]
            }
        };
        while let Some(&Reverse((t, oc, od))) = busy.heap.peek() {
            if t > now {
                break;
            }
            busy.heap.pop();
            if until(oc, od) == t {
                busy.count = busy.count.saturating_sub(1);
            }
        }
        busy.count + u64::from(until(c, dir) <= now)
    }

    /// Link `c` of node `n` (direction `dir`) is busy until its new time.
    fn mark_busy(&mut self, n: usize, c: usize, dir: usize, sending: bool, old: u64) {
        let now = self.now;
        let conn = &self.conns[c];
        let new = if sending {
            conn.bulk_free_at[dir]
        } else {
            conn.bulk_arrive_at[dir]
        };
        if new <= now || new == old {
            return;
        }
        let busy = if sending {
            &mut self.nodes[n].busy_up
        } else {
            &mut self.nodes[n].busy_down
        };
        if old <= now {
            busy.count += 1;
        }
        busy.heap.push(Reverse((new, c, dir)));
    }

    fn deliver(&mut self, c: usize, side: usize) -> Result<(), Invariant> {
        let now = self.instant();
        let conn = &mut self.conns[c];
        let pipe = &mut conn.pipes[side].0;
        let Some((at, _, segment)) = pipe.pop_front() else {
            debug_assert!(false, "a delivery without a segment");
            return Err(Invariant::Internal("a delivery without a segment"));
        };
        debug_assert_eq!(at, self.now, "a segment delivered out of order");
        if let Some(&(at, seq, _)) = pipe.front() {
            self.queue_at(at, seq, Ev::Deliver(c, side));
        }
        let conn = &self.conns[c];
        let result = if conn.alive && conn.ends[side].open {
            self.feed(c, side, &segment, now)
        } else {
            Ok(())
        };
        self.pool.give(segment);
        result
    }

    /// Hands `data`, arrived at end `side` of connection `c`, to its
    /// handshake or session.
    fn feed(&mut self, c: usize, side: usize, data: &[u8], now: Instant) -> Result<(), Invariant> {
        let conn = &self.conns[c];
        let step = if conn.split == Split::Bytes {
            1
        } else {
            data.len()
        };
        let n = conn.ends[side].node;
        for chunk in data.chunks(step.max(1)) {
            let wire = std::mem::replace(&mut self.conns[c].ends[side].wire, Wire::Done);
            let (wire, outcome) = match wire {
                Wire::Handshaking(hs) => match hs.handle_input(chunk, now) {
                    Ok(Progress::Handshaking(hs)) => (Wire::Handshaking(Box::new(hs)), Fed::Go),
                    Ok(Progress::Established(s)) => (Wire::Session(Box::new(s)), Fed::Established),
                    Err(_) => (Wire::Done, Fed::Fail),
                },
                Wire::Session(mut s) => {
                    let fed = if s.handle_input(chunk, now).is_ok() {
                        Fed::Go
                    } else {
                        Fed::Fail
                    };
                    (Wire::Session(s), fed)
                }
                other => (other, Fed::Stop),
            };
            self.conns[c].ends[side].wire = wire;
            match outcome {
                Fed::Go => {}
                Fed::Established => self.established(c, side)?,
                Fed::Stop => break,
                Fed::Fail => {
                    self.close_conn(c, side, Disconnect::Failed)?;
                    break;
                }
            }
            if !self.conns[c].ends[side].open {
                break;
            }
        }
        self.mark_dirty(n, c);
        self.touch(n);
        Ok(())
    }

    /// The handshake of end `side` completed: its swarm hears of it.
    fn established(&mut self, c: usize, side: usize) -> Result<(), Invariant> {
        let now = self.instant();
        let end = &self.conns[c].ends[side];
        let (n, key) = (end.node, end.key);
        let Wire::Session(s) = &end.wire else {
            return Ok(());
        };
        let hs = *s.peer_handshake();
        let info = HandshakeInfo {
            peer_id: hs.peer_id,
            fast: s.fast(),
            client: String::from_utf8_lossy(&hs.peer_id[..8]).into_owned(),
            encrypted: false,
        };
        let other = self.conns[c].ends[1 - side].node;
        self.report.connections += 1;
        if side == 0 && self.nodes[n].have.is_complete() && self.nodes[other].have.is_complete() {
            let count = self
                .seed_pairs
                .entry((n.min(other), n.max(other)))
                .or_default();
            *count += 1;
            self.report.max_seed_pair_connections =
                self.report.max_seed_pair_connections.max(*count);
        }
        if let (Some(key), Some(swarm)) = (key, self.nodes[n].swarm.as_mut()) {
            swarm
                .handle_connected(key, info, now)
                .map_err(|source| Invariant::Swarm { node: n, source })?;
        }
        Ok(())
    }

    // ------------------------------------------------------------ driving

    /// Carries out what node `n`'s sessions and swarm want until neither
    /// has anything left, then schedules its timers.
    fn pump(&mut self, n: usize) -> Result<(), Invariant> {
        loop {
            if !self.nodes[n].online() {
                return Ok(());
            }
            let mut busy = false;
            while let Some(c) = self.nodes[n].dirty.pop() {
                busy = true;
                for side in 0..2 {
                    if self.conns[c].ends[side].node == n {
                        self.conns[c].dirty[side] = false;
                    }
                    let end = &self.conns[c].ends[side];
                    if end.node == n && end.open && end.epoch == self.nodes[n].epoch {
                        self.drain_session(c, side)?;
                    }
                }
            }
            busy |= self.drain_swarm(n)?;
            if !busy {
                break;
            }
        }
        let node = &mut self.nodes[n];
        let Some(swarm) = node.swarm.as_ref() else {
            return Ok(());
        };
        if let Some(at) = swarm.poll_timeout() {
            let at = (at.saturating_duration_since(self.base).as_nanos() as u64).max(self.now);
            if node.wake_at.is_none_or(|w| at < w) {
                node.wake_at = Some(at);
                let epoch = node.epoch;
                self.push(at, Ev::Wake(n, epoch));
            }
        }
        Ok(())
    }

    /// Serves, reports and transmits for one end of a connection.
    fn drain_session(&mut self, c: usize, side: usize) -> Result<(), Invariant> {
        if !self.conns[c].checked[side] {
            self.conns[c].checked[side] = true;
            self.drained.push((c, side));
        }
        let now = self.instant();
        let n = self.conns[c].ends[side].node;
        let kind = self.nodes[n].kind;
        let mut out = std::mem::take(&mut self.out_buf);
        let mut blocks = std::mem::take(&mut self.block_bufs);
        let mut events = std::mem::take(&mut self.event_buf);
        out.clear();
        events.clear();
        let deadline;
        let framed;
        // Like a socket's send buffer: blocks are served only while this
        // connection's backlog is under SEND_BUFFER of sending time, so
        // our requests and haves do not queue behind megabytes of blocks.
        let serving =
            matches!(&self.conns[c].ends[side].wire, Wire::Session(s) if s.queued_serves() > 0);
        let share = if serving {
            self.busy_links(n, c, side)
        } else {
            1
        };
        let per_byte_rate = (self.nodes[n].up / share).max(1);
        let mut est_free = self.conns[c].free_at[side].max(self.now);
        let limit = self.now + SEND_BUFFER;
        let mut more = false;
        {
            let end = &mut self.conns[c].ends[side];
            match &mut end.wire {
                Wire::Handshaking(hs) => {
                    hs.poll_transmit(&mut out, now);
                    deadline = hs.poll_timeout();
                    framed = false;
                }
                Wire::Session(s) => {
                    let mut served = 0;
                    loop {
                        if kind != Kind::Staller && (est_free > limit || served >= TRANSMIT_BUFFER)
                        {
                            more = s.has_deferred_output();
                            break;
                        }
                        let Some(Action::Serve(req)) = s.poll_action() else {
                            // Empty, or held back by the session's full
                            // transmit buffer until this write drains it.
                            more = s.has_deferred_output();
                            break;
                        };
                        if kind == Kind::Staller {
                            continue;
                        }
                        est_free += transfer_ns(req.length as usize + 13, per_byte_rate);
                        if self.nodes[n]
                            .stored
                            .get(req.piece as usize)
                            .is_none_or(Option::is_none)
                        {
                            return Err(Invariant::ServedMissing {
                                node: n,
                                piece: req.piece,
                            });
                        }
                        let start = (self.geometry.piece_offset(req.piece) + u64::from(req.offset))
                            as usize;
                        let Some(data) = self.content.get(start..start + req.length as usize)
                        else {
                            return Err(Invariant::ServedMissing {
                                node: n,
                                piece: req.piece,
                            });
                        };
                        if kind == Kind::Corrupt {
                            let mut bad = data.to_vec();
                            if let Some(b) = bad.get_mut(req.length as usize / 2) {
                                *b ^= 0x5a;
                            }
                            s.send_block(req, &bad);
                        } else {
                            s.send_block(req, data);
                        }
                        // Each block leaves in a buffer of its own, which
                        // becomes its segment without a copy; one transmit
                        // buffer of many blocks grew by reallocation into
                        // fresh pages and was then copied out in pieces.
                        let mut message = self.pool.take(MAX_MESSAGE);
                        served += s.poll_transmit(&mut message, now);
                        blocks.push(message);
                    }
                    while let Some(ev) = s.poll_event() {
                        events.push(ev);
                    }
                    s.poll_transmit(&mut out, now);
                    deadline = s.poll_timeout();
                    framed = true;
                }
                _ => return Ok(()),
            }
        }
        let key = self.conns[c].ends[side].key;
        if let (Some(key), false) = (key, events.is_empty()) {
            let mut batch = Vec::new();
            for ev in events.drain(..) {
                if matches!(ev, WireEvent::Stalled(_)) {
                    self.report.stalls += 1;
                }
                // DHT ports, metadata and hashes: nothing the sim speaks.
                let _ = PeerEvent::from_session(ev, self.geometry.num_pieces(), &mut batch);
            }
            for swarm_ev in batch {
                self.peer_event(n, key, swarm_ev, now)?;
            }
        }
        for mut message in blocks.drain(..) {
            self.send(c, side, &mut message, true);
            self.pool.give(message);
        }
        self.block_bufs = blocks;
        self.send(c, side, &mut out, framed);
        self.out_buf = out;
        self.event_buf = events;
        let mut wake = deadline.map(|at| at.saturating_duration_since(self.base).as_nanos() as u64);
        if more {
            // Serve the rest once the backlog has drained below the mark.
            let resume = self.conns[c].free_at[side].saturating_sub(SEND_BUFFER / 2);
            wake = Some(wake.map_or(resume, |w| w.min(resume)));
        }
        let end = &mut self.conns[c].ends[side];
        if let Some(at) = wake {
            let at = at.max(self.now);
            if end.open && end.wake_at.is_none_or(|w| at < w) {
                end.wake_at = Some(at);
                self.push(at, Ev::SessionWake(c, side));
            }
        }
        Ok(())
    }

    fn peer_event(
        &mut self,
        n: usize,
        key: PeerKey,
        ev: PeerEvent,
        now: Instant,
    ) -> Result<(), Invariant> {
        let Some(swarm) = self.nodes[n].swarm.as_mut() else {
            return Ok(());
        };
        swarm
            .handle_peer_event(key, ev, now)
            .map_err(|source| Invariant::Swarm { node: n, source })
    }

    /// Drains the swarm's queues; true when there was anything. After each
    /// hash check the orders and events it caused are taken before the next
    /// piece, so an order is judged against the bans made before it.
    fn drain_swarm(&mut self, n: usize) -> Result<bool, Invariant> {
        let now = self.instant();
        let mut busy = false;
        loop {
            busy |= self.drain_commands(n, now)?;
            busy |= self.drain_events(n)?;
            let Some(swarm) = self.nodes[n].swarm.as_mut() else {
                return Ok(busy);
            };
            let Some(piece) = swarm.poll_piece() else {
                break;
            };
            busy = true;
            let index = piece.piece as usize;
            let digest = match self.cfg.verify {
                Verify::Sha1 => {
                    let mut sha1 = Sha1::new();
                    for chunk in piece.data.chunks() {
                        sha1.update(chunk);
                    }
                    Some(sha1.finalize().into())
                }
                Verify::Compare => {
                    // A piece of the wrong length fails, as its hash would.
                    let start = self.geometry.piece_offset(piece.piece) as usize;
                    let size = self.geometry.piece_size(piece.piece).unwrap_or(0) as usize;
                    let same = piece.data.len() == size
                        && self.content.get(start..start + size).is_some_and(|truth| {
                            let mut at = 0;
                            piece.data.chunks().iter().all(|chunk| {
                                let end = at + chunk.len();
                                let same = truth.get(at..end) == Some(&chunk[..]);
                                at = end;
                                same
                            })
                        });
                    same.then(|| self.hashes.get(index).copied()).flatten()
                }
            };
            if let Some(digest) = digest.filter(|d| self.hashes.get(index) == Some(d)) {
                swarm
                    .handle_piece_saved(piece.piece, piece.data, now)
                    .map_err(|source| Invariant::Swarm { node: n, source })?;
                self.saved(n, piece.piece, digest);
            } else {
                self.report.hash_failures += 1;
                swarm
                    .handle_piece_failed(piece.piece, piece.data, now)
                    .map_err(|source| Invariant::Swarm { node: n, source })?;
            }
        }
        loop {
            let Some(swarm) = self.nodes[n].swarm.as_mut() else {
                return Ok(busy);
            };
            let Some(dial) = swarm.poll_dial() else {
                break;
            };
            busy = true;
            self.start_dial(n, dial.peer, dial.remote)?;
        }
        Ok(busy)
    }

    fn drain_commands(&mut self, n: usize, now: Instant) -> Result<bool, Invariant> {
        let mut busy = false;
        loop {
            let Some(swarm) = self.nodes[n].swarm.as_mut() else {
                return Ok(busy);
            };
            let Some((key, command)) = swarm.poll_command() else {
                return Ok(busy);
            };
            busy = true;
            self.command(n, key, command, now)?;
        }
    }

    fn drain_events(&mut self, n: usize) -> Result<bool, Invariant> {
        let mut busy = false;
        loop {
            let Some(swarm) = self.nodes[n].swarm.as_mut() else {
                return Ok(busy);
            };
            let Some(event) = swarm.poll_event() else {
                return Ok(busy);
            };
            busy = true;
            self.swarm_event(n, event)?;
        }
    }

    fn saved(&mut self, n: usize, piece: u32, digest: [u8; 20]) {
        let node = &mut self.nodes[n];
        if let Some(slot) = node.stored.get_mut(piece as usize) {
            *slot = Some(digest);
        }
        if node.have.set(piece) && node.kind.honest() {
            if let Some(a) = self.avail.get_mut(piece as usize) {
                *a += 1;
            }
        }
        if node.kind.must_complete() {
            self.last_progress = self.now;
        }
        if node.have.is_complete() && node.completed_at.is_none() {
            node.completed_at = Some(self.now);
        }
        if self.incomplete() == 0 {
            self.finished = true;
        }
        // The only seed leaves once every piece is on an honest leecher.
        if self.cfg.faults.seed_leaves && !self.seed_left {
            let elsewhere = (0..self.geometry.num_pieces()).all(|p| {
                self.nodes.iter().enumerate().any(|(i, node)| {
                    i != self.seed_node && node.kind.honest() && node.online() && node.have.get(p)
                })
            });
            if elsewhere {
                self.seed_left = true;
                self.report.seed_left = true;
                let seed = self.seed_node;
                let epoch = self.nodes[seed].epoch;
                self.push(self.now, Ev::Leave(seed, epoch));
            }
        }
    }

    fn swarm_event(&mut self, n: usize, event: SwarmEvent) -> Result<(), Invariant> {
        if self.cfg.verbose && !matches!(event, SwarmEvent::SaveResume(_)) {
            eprintln!("{:?} node {n} event {event:?}", self.now());
        }
        match event {
            SwarmEvent::HashFailed { senders, .. } => {
                for remote in senders {
                    if let Some(i) = self.node_of(remote) {
                        if self.nodes[i].kind == Kind::Corrupt {
                            self.nodes[n].failed_by.insert(i);
                        }
                    }
                }
            }
            SwarmEvent::Banned { remote, reason } => {
                self.report.bans += 1;
                if let Some(i) = self.node_of(remote) {
                    let honest = self.nodes[i].kind.honest();
                    if honest && reason != BanReason::SharedFailedPieces {
                        return Err(Invariant::HonestBanned {
                            node: n,
                            honest: i,
                            reason,
                        });
                    }
                    self.nodes[n].banned.entry(i).or_insert(self.now);
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn node_of(&self, remote: Remote) -> Option<usize> {
        match remote {
            Remote::Addr(addr) => self.by_ip.get(&addr.ip()).copied(),
            Remote::WebSeed(_) => None,
        }
    }

    fn command(
        &mut self,
        n: usize,
        key: PeerKey,
        command: PeerCommand,
        now: Instant,
    ) -> Result<(), Invariant> {
        if self.cfg.verbose {
            let conn = self.nodes[n].keys.get(key);
            match &command {
                PeerCommand::Request(r) => eprintln!(
                    "{:?} node {n} -> conn {conn:?} request {} blocks",
                    self.now(),
                    r.len()
                ),
                PeerCommand::Cancel(_) => {}
                other => eprintln!("{:?} node {n} -> conn {conn:?} {other:?}", self.now()),
            }
        }
        let Some(c) = self.nodes[n].keys.get(key) else {
            // A connection that already ended (its report is queued).
            return Ok(());
        };
        let side =
            usize::from(self.conns[c].ends[1].node == n && self.conns[c].ends[1].key == Some(key));
        if let PeerCommand::Close(reason) = command {
            let how = match reason {
                CloseReason::ProtocolViolation => Disconnect::Failed,
                _ => Disconnect::Closed,
            };
            return self.close_conn(c, side, how);
        }
        let remote = self.conns[c].ends[1 - side].node;
        let remote_open = self.conns[c].alive && self.conns[c].ends[1 - side].open;
        let end = &mut self.conns[c].ends[side];
        let Wire::Session(s) = &mut end.wire else {
            return Err(Invariant::OrderBeforeHandshake { node: n });
        };
        match command {
            PeerCommand::Request(reqs) => {
                if self.nodes[n].banned.contains_key(&remote) {
                    return Err(Invariant::BannedReconnected {
                        node: n,
                        banned: remote,
                    });
                }
                for req in reqs {
                    let truth = self.nodes[remote].have.get(req.piece);
                    if !s.peer_has(req.piece) || (remote_open && !truth) {
                        return Err(Invariant::RequestedMissing {
                            node: n,
                            from: remote,
                            piece: req.piece,
                        });
                    }
                    if !(s.is_unchoked() || s.fast() && s.allowed_fast().contains(&req.piece)) {
                        return Err(Invariant::RequestedWhileChoked {
                            node: n,
                            from: remote,
                            piece: req.piece,
                        });
                    }
                    s.request(req, now);
                }
            }
            PeerCommand::Cancel(req) => s.cancel(req),
            PeerCommand::Have(piece) => s.have(piece),
            PeerCommand::Choke(on) => s.set_choking(on),
            PeerCommand::Interested(on) => s.set_interested(on),
            PeerCommand::Pex(m) => {
                s.send_pex(&m);
            }
            PeerCommand::BackOff | PeerCommand::Close(_) | PeerCommand::RequestBlockHashes(_) => {}
        }
        self.mark_dirty(n, c);
        Ok(())
    }

    // --------------------------------------------------------- invariants

    /// The swarm's bounds for node `n`; with `all`, every connection's
    /// too (else only those drained in this step, by [`Sim::check_end`]).
    fn check_node(&mut self, n: usize, all: bool) -> Result<(), Invariant> {
        let node = &self.nodes[n];
        let Some(swarm) = node.swarm.as_ref() else {
            return Ok(());
        };
        let cfg = swarm.config();
        let stats = swarm.stats();
        let bound = |what, value: usize, bound: usize| check(n, what, value, bound);
        bound(
            "suspect pieces",
            stats.suspect_pieces,
            cfg.max_suspect_pieces,
        )?;
        // A partial piece is one some peer is downloading or one left by a
        // peer that went away; each peer continues its own first.
        bound(
            "partial pieces",
            stats.partial_pieces,
            cfg.max_peers * 2 + 8,
        )?;
        bound("undrained commands", stats.queued_commands, 0)?;
        let r = &mut self.report;
        r.max_partial_pieces = r.max_partial_pieces.max(stats.partial_pieces);
        r.max_suspect_pieces = r.max_suspect_pieces.max(stats.suspect_pieces);
        if all {
            let max_pipeline = cfg.max_pipeline;
            for &c in &node.conns {
                for end in &self.conns[c].ends {
                    if end.node != n || !end.open {
                        continue;
                    }
                    let in_flight = end.key.map_or(0, |k| swarm.requests_in_flight(k).count());
                    bound("requests in flight", in_flight, max_pipeline)?;
                }
            }
            let ends: Vec<(usize, usize)> =
                node.conns.iter().flat_map(|&c| [(c, 0), (c, 1)]).collect();
            for (c, side) in ends {
                self.check_end(c, side)?;
            }
        }
        Ok(())
    }

    /// The bounds of one end of a connection: our requests, the peer's
    /// queued requests, buffered input.
    fn check_end(&mut self, c: usize, side: usize) -> Result<(), Invariant> {
        let end = &self.conns[c].ends[side];
        let n = end.node;
        if !end.open || self.nodes[n].epoch != end.epoch {
            return Ok(());
        }
        let Wire::Session(s) = &end.wire else {
            return Ok(());
        };
        let max_pipeline = self.nodes[n]
            .swarm
            .as_ref()
            .map_or(0, |sw| sw.config().max_pipeline);
        check(n, "session requests", s.outstanding(), max_pipeline)?;
        check(n, "queued serves", s.queued_serves(), 500)?;
        check(n, "buffered input", s.pending_input(), MAX_MESSAGE)?;
        let r = &mut self.report;
        r.max_in_flight = r.max_in_flight.max(s.outstanding());
        r.max_queued_serves = r.max_queued_serves.max(s.queued_serves());
        Ok(())
    }

    /// Prints who lacks what and the state of their connections.
    fn dump(&self) {
        for (i, node) in self.nodes.iter().enumerate() {
            let missing: Vec<u32> = (0..self.geometry.num_pieces())
                .filter(|&p| !node.have.get(p))
                .collect();
            eprintln!(
                "node {i} {:?} online {} up {} down {} latency {} ms missing {:?}",
                node.kind,
                node.online(),
                node.up,
                node.down,
                node.latency / 1_000_000,
                missing
            );
            let Some(swarm) = node.swarm.as_ref() else {
                continue;
            };
            if missing.is_empty() {
                continue;
            }
            eprintln!("  stats {:?}", swarm.stats());
            for key in swarm.peer_keys() {
                let conn = node.keys.get(key);
                let other = conn.map(|c| {
                    let e = &self.conns[c].ends;
                    if e[0].node == i {
                        e[1].node
                    } else {
                        e[0].node
                    }
                });
                eprintln!(
                    "  peer {key:?} conn {conn:?} node {other:?}: {:?}",
                    swarm.peer_stats(key)
                );
                if let Some(c) = conn {
                    let k = &self.conns[c];
                    eprintln!(
                        "    conn alive {} split {:?} cut {:?} sent {:?} free_at {:?}",
                        k.alive, k.split, k.cut_after, k.sent, k.free_at
                    );
                    for e in &k.ends {
                        if let Wire::Session(s) = &e.wire {
                            eprintln!(
                                "    end node {} open {}: am_choking {} unchoked {} outstanding {} queued_serves {} pending_in {} allowed {:?}",
                                e.node, e.open, s.am_choking(), s.is_unchoked(), s.outstanding(), s.queued_serves(), s.pending_input(), s.allowed_fast()
                            );
                        }
                    }
                }
            }
        }
    }

    fn finish(mut self) -> Result<Report, SimError> {
        for n in 0..self.nodes.len() {
            let node = &self.nodes[n];
            if !node.kind.must_complete() {
                continue;
            }
            let have = node.have.count();
            if have < self.geometry.num_pieces() || node.completed_at.is_none() {
                return Err(self.fail(Invariant::NotCompleted {
                    node: n,
                    have,
                    pieces: self.geometry.num_pieces(),
                }));
            }
            for (p, stored) in node.stored.iter().enumerate() {
                let ok = stored.as_ref() == self.hashes.get(p)
                    && node.swarm.as_ref().is_none_or(|s| s.have().get(p as u32));
                if !ok {
                    return Err(self.fail(Invariant::Unverified {
                        node: n,
                        piece: p as u32,
                    }));
                }
            }
            if node.online() {
                for &corrupt in &node.failed_by {
                    if !node.banned.contains_key(&corrupt) {
                        return Err(self.fail(Invariant::NotBanned { node: n, corrupt }));
                    }
                }
            }
        }
        let r = &mut self.report;
        r.sim_time = Duration::from_nanos(self.now);
        r.trace = if self.cfg.trace { self.trace } else { 0 };
        r.download_times = self
            .nodes
            .iter()
            .filter(|n| n.kind.must_complete())
            .filter_map(|n| Some(Duration::from_nanos(n.completed_at? - n.first_join?)))
            .collect();
        let seed = &self.nodes[self.seed_node];
        r.seed_uploaded =
            seed.uploaded_before + seed.swarm.as_ref().map_or(0, |s| s.stats().uploaded);
        r.downloaded = self
            .nodes
            .iter()
            .map(|n| n.downloaded_before + n.swarm.as_ref().map_or(0, |s| s.stats().downloaded))
            .sum();
        Ok(self.report)
    }
}

/// The longest part of the `len` bytes of `bytes` from `off` that ends
/// where a message ends (all `len` when none does), given that the first
/// message not yet wholly sent starts at `next`; moves `next` past the
/// messages taken.
fn whole_messages(bytes: &[u8], next: &mut usize, off: usize, len: usize) -> usize {
    let mut whole = None;
    while let Some(prefix) = bytes.get(*next..*next + 4) {
        let body = prefix
            .try_into()
            .map_or(usize::MAX, |p: [u8; 4]| u32::from_be_bytes(p) as usize);
        let end = next.saturating_add(4).saturating_add(body);
        if end > off + len {
            break;
        }
        *next = end;
        whole = Some(end - off);
    }
    whole.unwrap_or(len)
}

fn check(node: usize, what: &'static str, value: usize, bound: usize) -> Result<(), Invariant> {
    if value > bound {
        Err(Invariant::Memory {
            node,
            what,
            value,
            bound,
        })
    } else {
        Ok(())
    }
}

enum Fed {
    Go,
    Established,
    Stop,
    Fail,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_survives_its_tag() {
        let big = (1 << 32) - 1;
        let events = [
            Ev::Connect(big),
            Ev::Deliver(7, 1),
            Ev::Fin(big, 0),
            Ev::Cut(3),
            Ev::SessionWake(9, 1),
            Ev::Wake(99, (1 << 24) - 1),
            Ev::Join(0),
            Ev::Leave(5, 2),
            Ev::Flap(6, 3),
            Ev::Announce(100, 4),
            Ev::Check,
        ];
        for ev in events {
            assert_eq!(Ev::from_tag(ev.tag()), Some(ev));
        }
        assert_eq!(Ev::from_tag(0), None);
        assert_eq!(Ev::from_tag(12), None);
    }
}
