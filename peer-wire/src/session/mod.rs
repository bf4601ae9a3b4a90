//! The peer session: one connection's protocol state as a sans-IO state
//! machine, from the handshake ([`Handshaking`]) to the established
//! [`Session`] (BEP 3, 6, 9, 10, 11).
//!
//! The driver (a thread with a socket, an async task, a simulator) owns
//! the I/O and the clock. It feeds the session bytes and `Instant`s and
//! drains what the session wants done; the session never reads the clock
//! and never does I/O. See [`Session`] for the order of the `poll_*`
//! methods.

mod handshaking;
mod hashes;
#[cfg(test)]
mod tests;
mod timers;

pub use handshaking::{Handshaking, Progress};
pub use hashes::{HashSource, MAX_HASH_REQUESTS};
pub use timers::Timer;

use std::collections::{HashSet, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustico_pieces::{Bitfield, BitfieldError, BlockRequest, Geometry, BLOCK_LEN};

use crate::extension::{ExtensionHandshake, ExtensionMap, UT_METADATA, UT_PEX};
use crate::handshake::{Handshake, HandshakeError};
use crate::message::{id, piece_header, FrameError, Limits, Message};
use crate::message_v2::{HashMessageError, HashRequest};
use crate::metadata::MetadataMessage;
use crate::metadata_download::MetadataServer;
use crate::pex::PexMessage;
use crate::Framer;

use timers::TimerTable;

/// Stalled requests whose late blocks are still taken (see
/// [`Event::Stalled`]).
const MAX_LATE: usize = 1024;

/// `ut_metadata` requests from the peer waiting for room in the transmit
/// buffer; more are rejected (BEP 9 lets a peer reject any request).
const MAX_METADATA_QUEUE: usize = 16;

/// Settings of a peer session. The defaults are the `rustico` client's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// The peer's handshake must arrive within this long (default 10 s).
    pub handshake_timeout: Duration,
    /// A keep-alive is sent after this long without sending anything
    /// (default 90 s; BEP 3 peers drop a connection silent for 2 minutes).
    pub keep_alive_interval: Duration,
    /// A peer that sent nothing for this long is dropped (default 180 s).
    pub idle_timeout: Duration,
    /// Our requests are reported stalled when no block arrived for this
    /// long (default 15 s).
    pub request_timeout: Duration,
    /// Transfer counters are reported this often ([`Event::Stats`]);
    /// `None` never (default 1 s).
    pub stats_interval: Option<Duration>,
    /// Requests from the peer we queue at most (announced as `reqq`);
    /// more are rejected (fast extension) or dropped. Default 500.
    pub max_peer_requests: usize,
    /// Bytes the transmit buffer may hold before the session stops adding
    /// to it: no further [`Action::Serve`] is handed out and no queued
    /// `ut_metadata` request is answered until [`Session::poll_transmit`]
    /// drains it, and [`Session::wants_input`] turns `false`. A peer that
    /// asks and never reads pins at most about this much (plus one block
    /// and the small answers, such as rejects, to what it sends). Default
    /// 256 KiB.
    pub max_transmit_buffer: usize,
    /// `allowed fast` pieces from the peer we remember at most (default
    /// 32; BEP 6 suggests 10); further ones are ignored.
    pub max_allowed_fast: usize,
    /// Our client name, announced as `v` in the extension handshake.
    pub client: Option<String>,
    /// Our TCP listen port, announced as `p`.
    pub listen_port: Option<u16>,
    /// Peer exchange (BEP 11) allowed: `ut_pex` is announced, and the
    /// peer's messages are reported. Must be `false` for private
    /// torrents (BEP 27).
    pub pex: bool,
    /// Our DHT node's UDP port, sent in a BEP 5 `port` message when both
    /// handshakes set the DHT bit (set it in ours, with
    /// [`Reserved::with_dht`](crate::Reserved::with_dht), exactly when
    /// this is `Some`; never for private torrents, BEP 27).
    pub dht_port: Option<u16>,
}

impl Default for SessionConfig {
    fn default() -> SessionConfig {
        SessionConfig {
            handshake_timeout: Duration::from_secs(10),
            keep_alive_interval: Duration::from_secs(90),
            idle_timeout: Duration::from_secs(180),
            request_timeout: Duration::from_secs(15),
            stats_interval: Some(Duration::from_secs(1)),
            max_peer_requests: 500,
            max_transmit_buffer: 256 * 1024,
            max_allowed_fast: 32,
            client: None,
            listen_port: None,
            pex: false,
            dht_port: None,
        }
    }
}

/// What the session knows of the torrent: its geometry and our pieces, or
/// nothing yet (a magnet link whose info dictionary is being fetched).
#[derive(Debug, Clone)]
pub struct Content {
    torrent: Option<(Geometry, Bitfield)>,
    metadata: Option<Arc<MetadataServer>>,
    hashes: Option<Arc<dyn HashSource>>,
}

/// A bitfield whose length is not the torrent's piece count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("our bitfield has {bits} pieces, the torrent {num_pieces}")]
pub struct ContentError {
    /// The bitfield's length.
    pub bits: u32,
    /// The geometry's piece count.
    pub num_pieces: u32,
}

impl Content {
    /// A torrent we know: `have` are the pieces we have now (later ones
    /// are announced with [`Session::have`]).
    pub fn torrent(geometry: Geometry, have: Bitfield) -> Result<Content, ContentError> {
        if have.len() != geometry.num_pieces() {
            return Err(ContentError {
                bits: have.len(),
                num_pieces: geometry.num_pieces(),
            });
        }
        Ok(Content {
            torrent: Some((geometry, have)),
            metadata: None,
            hashes: None,
        })
    }

    /// A magnet link: no pieces, and the info dictionary is wanted
    /// (`ut_metadata` is announced without `metadata_size`; the peer's
    /// answers arrive as [`Event::MetadataPiece`]).
    pub fn magnet() -> Content {
        Content {
            torrent: None,
            metadata: None,
            hashes: None,
        }
    }

    /// Serves the info dictionary with `ut_metadata` (BEP 9) to peers
    /// that fetch it from a magnet link.
    pub fn with_metadata(mut self, server: Arc<MetadataServer>) -> Content {
        self.metadata = Some(server);
        self
    }

    /// Answers the peer's BEP 52 hash requests from `source` (without
    /// one, every hash request is rejected).
    pub fn with_hashes(mut self, source: Arc<dyn HashSource>) -> Content {
        self.hashes = Some(source);
        self
    }

    /// The torrent's geometry, if known.
    pub fn geometry(&self) -> Option<&Geometry> {
        self.torrent.as_ref().map(|(g, _)| g)
    }

    /// Our pieces, if the torrent is known.
    pub fn have(&self) -> Option<&Bitfield> {
        self.torrent.as_ref().map(|(_, h)| h)
    }

    fn num_pieces(&self) -> Option<u32> {
        self.geometry().map(Geometry::num_pieces)
    }
}

/// What the torrent must hear about this peer, from [`Session::poll_event`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The peer's pieces from a `bitfield` message (merged with the
    /// `have`s before it). Reported only when it adds pieces; the set is
    /// taken when the event is polled, so bitfields that arrive before the
    /// next poll are reported once, with everything known by then (which
    /// may include pieces of `Have` events queued behind it).
    Bitfield(Bitfield),
    /// The peer has every piece (`have all`, BEP 6). Reported once.
    HaveAll,
    /// The peer has no piece (`have none`, BEP 6). Reported once, and
    /// only before any piece is known.
    HaveNone,
    /// The peer has a new piece.
    Have(u32),
    /// The peer choked us. Without the fast extension every outstanding
    /// request is void: a [`Event::Dropped`] follows with them.
    ///
    /// This and the next three report changes of state: a change that
    /// undoes the previous event while it is still queued (a peer flipping
    /// choke or interest) removes that event instead of adding one.
    Choked,
    /// The peer unchoked us.
    Unchoked,
    /// The peer became interested in our pieces.
    Interested,
    /// The peer is no longer interested.
    NotInterested,
    /// The peer lets us request this piece while choked (BEP 6).
    AllowedFast(u32),
    /// A block we requested arrived.
    Block {
        /// The block.
        req: BlockRequest,
        /// Its bytes.
        data: Vec<u8>,
    },
    /// These requests will not be served: rejected by the peer, voided by
    /// its choke, or made while it chokes us. They are forgotten.
    Dropped(Vec<BlockRequest>),
    /// No block arrived for [`SessionConfig::request_timeout`]; these
    /// outstanding requests are forgotten so another peer may get them.
    /// A block of theirs that arrives later (a slow link) is still
    /// reported as [`Event::Block`], unless cancelled meanwhile.
    Stalled(Vec<BlockRequest>),
    /// The peer's extension handshake (BEP 10). Handshakes repeated before
    /// the event is polled are reported once, with the latest.
    Extensions(PeerExtensions),
    /// A `ut_pex` message (only when [`SessionConfig::pex`] is on).
    Pex(PexMessage),
    /// The peer's DHT node listens on this UDP port of its address (a
    /// BEP 5 `port` message; port 0 is not reported). Messages repeated
    /// before the event is polled are reported once, with the latest.
    DhtPort(u16),
    /// A piece of the info dictionary (magnet sessions only), for a
    /// [`MetadataDownload`](crate::MetadataDownload).
    MetadataPiece {
        /// Metadata piece index.
        piece: u32,
        /// The `total_size` the peer claims.
        total_size: u64,
        /// The piece's bytes.
        data: Vec<u8>,
    },
    /// The peer will not send this metadata piece (magnet sessions only).
    MetadataRejected {
        /// Metadata piece index.
        piece: u32,
    },
    /// A BEP 52 `hashes` message answering one of our
    /// [`Session::request_hashes`]: `request.length` hashes, then the
    /// proof's uncles, bottom first. Not checked: the caller knows the
    /// roots (see `rustico_metainfo::PieceLayerFetch`).
    Hashes {
        /// The request answered.
        request: HashRequest,
        /// The hashes and uncles.
        hashes: Vec<[u8; 32]>,
    },
    /// The peer will not answer this hash request (`hash reject`).
    HashesRejected(HashRequest),
    /// Payload bytes received and sent since the previous report, every
    /// [`SessionConfig::stats_interval`].
    Stats {
        /// Payload bytes received.
        down: u64,
        /// Payload bytes sent.
        up: u64,
    },
}

/// What the peer said of itself in its extension handshake.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerExtensions {
    /// `v`: its client.
    pub client: Option<String>,
    /// `p`: its listen port (0 is left out).
    pub listen_port: Option<u16>,
    /// `reqq`: how many of our requests it queues.
    pub reqq: Option<u32>,
    /// `metadata_size` (BEP 9).
    pub metadata_size: Option<u64>,
    /// It speaks `ut_metadata`: [`Session::request_metadata`] works.
    pub ut_metadata: bool,
    /// It speaks `ut_pex` and PEX is allowed: [`Session::send_pex`] works.
    pub ut_pex: bool,
    /// `yourip`: our address as it sees it.
    pub your_ip: Option<IpAddr>,
}

/// What the connection's driver must do, from [`Session::poll_action`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// The peer asked for this block (validated: in the torrent, a piece
    /// we have, at most 16 KiB, within the queue bound). Read it and give
    /// it to [`Session::send_block`] / [`Session::send_block_with`], or
    /// [`Session::refuse_block`] if it cannot be read.
    Serve(BlockRequest),
}

/// What [`Session::send_block`] did with a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Served {
    /// Queued for sending.
    Sent,
    /// Not sent, and rejected if the peer speaks the fast extension: we
    /// choked the peer meanwhile, or the block could not be read.
    Refused,
    /// Not a request this session handed out (a driver bug); nothing sent.
    NotAwaited,
}

/// What the peer knows it has: nothing yet, everything, or a set.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum PeerPieces {
    /// No piece known (nothing announced, or `have none`).
    #[default]
    Nothing,
    /// Every piece (`have all`), stored without a bitfield.
    All,
    /// The pieces of a `bitfield` and `have`s.
    Some(Bitfield),
}

/// Why a session ended. After an error every `handle_*` returns it again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// The peer's handshake is not a BitTorrent handshake.
    #[error("bad handshake: {0}")]
    Handshake(#[from] HandshakeError),
    /// The peer answered for another torrent.
    #[error("the peer's handshake is for another torrent")]
    InfoHashMismatch {
        /// Ours.
        expected: [u8; 20],
        /// The peer's.
        found: [u8; 20],
    },
    /// The peer's id is ours: we dialled ourselves.
    #[error("connected to ourselves (the peer id is ours)")]
    OwnPeerId,
    /// The handshake did not finish in time.
    #[error("no handshake within {0:?}")]
    HandshakeTimeout(Duration),
    /// Malformed or oversized framing.
    #[error("protocol error: {0}")]
    Frame(#[from] FrameError),
    /// A well-formed message that breaks the protocol.
    #[error("protocol violation in the message at byte {offset}: {violation}")]
    Violation {
        /// Stream offset (after the handshake) of the message's length
        /// prefix.
        offset: u64,
        /// What was wrong.
        violation: Violation,
    },
    /// The peer sent nothing for too long.
    #[error("peer silent for {0:?}")]
    Idle(Duration),
    /// A state the session's own logic should never reach (a bug).
    #[error("internal error: {0}")]
    Internal(&'static str),
}

/// A message that breaks the protocol, in [`SessionError::Violation`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    /// `have` or `allowed fast` of a piece past the end of the torrent.
    #[error("message id {id} names piece {piece} of {num_pieces}")]
    PieceOutOfRange {
        /// Message id.
        id: u8,
        /// The piece named.
        piece: u32,
        /// Pieces in the torrent.
        num_pieces: u32,
    },
    /// A `bitfield` that does not fit the torrent.
    #[error("bad bitfield: {0}")]
    Bitfield(BitfieldError),
    /// A BEP 6 message although the fast extension was not negotiated.
    #[error("message id {id} needs the fast extension, which was not negotiated")]
    NeedsFast {
        /// Message id.
        id: u8,
    },
    /// A request for a block outside the torrent (piece index, or an end
    /// past the piece).
    #[error("request for {0:?}, outside the torrent")]
    RequestOutOfRange(BlockRequest),
    /// A request for a piece we never announced.
    #[error("request for piece {} which we do not have", .0.piece)]
    RequestForMissingPiece(BlockRequest),
    /// A malformed BEP 52 hash message (ids 21 to 23).
    #[error("bad hash message: {0}")]
    HashMessage(HashMessageError),
}

/// One peer connection after the handshake, sans-IO.
///
/// Made by [`Handshaking`] when the peer's handshake is in: there is no
/// other way to get one, so blocks cannot be asked of a peer that has not
/// finished its handshake.
///
/// # Driving it
/// Inputs (any order, as things happen): [`Session::handle_input`] or
/// [`Session::recv_buffer`] + [`Session::handle_received`] with bytes from
/// the socket; mutators with the torrent's orders ([`Session::request`],
/// [`Session::set_choking`], [`Session::have`], ...);
/// [`Session::handle_timeout`] when [`Session::poll_timeout`] is reached
/// (an early or extra call is harmless).
///
/// Then drain, in this order:
/// 1. [`Session::poll_action`]: blocks to serve; answer each with
///    [`Session::send_block`] (which adds to the bytes to send);
/// 2. [`Session::poll_event`]: what the torrent must hear;
/// 3. [`Session::poll_transmit`]: the bytes to write (after the actions,
///    so served blocks go out in the same write);
/// 4. [`Session::poll_timeout`]: when to call `handle_timeout` next (last,
///    since sending moves the keep-alive deadline).
///
/// Backpressure: what one peer makes the session queue is bounded by
/// [`SessionConfig::max_transmit_buffer`]. While the transmit buffer is
/// full, `poll_action` hands out nothing and `ut_metadata` requests wait;
/// once the driver has written what `poll_transmit` gave, it drains again
/// at once if [`Session::has_deferred_output`] says so, without waiting for
/// input. The driver reads the socket only while [`Session::wants_input`]:
/// a peer that does not read what it asked for is then not read either.
///
/// Any error ends the session: the driver closes the connection.
///
/// ```
/// use std::time::Instant;
/// use rustico_peer_wire::{
///     BlockRequest, Content, Event, Action, Geometry, Bitfield, Handshake, Handshaking,
///     Progress, Reserved, Session, SessionConfig,
/// };
///
/// let now = Instant::now();
/// let geometry = Geometry::new(40_000, 16_384)?;
/// let info_hash = [7; 20];
/// let start = |peer_id: [u8; 20], have: Bitfield| {
///     let ours = Handshake::new(Reserved::supported(), info_hash, peer_id);
///     let content = Content::torrent(geometry, have).unwrap();
///     Handshaking::new(ours, content, SessionConfig::default(), now)
/// };
/// let mut seed = start([1; 20], Bitfield::full(3));
/// let mut leech = start([2; 20], Bitfield::new(3));
///
/// // Each side's handshake goes to the other; both become sessions.
/// let (mut a, mut b) = (Vec::new(), Vec::new());
/// seed.poll_transmit(&mut a, now);
/// leech.poll_transmit(&mut b, now);
/// let Progress::Established(mut seed) = seed.handle_input(&b, now)? else { unreachable!() };
/// let Progress::Established(mut leech) = leech.handle_input(&a, now)? else { unreachable!() };
///
/// // Pass bytes both ways until neither side has anything to say.
/// fn pump(from: &mut Session, to: &mut Session, now: Instant) -> Result<bool, Box<dyn std::error::Error>> {
///     while let Some(Action::Serve(req)) = from.poll_action() {
///         let data = vec![0xab; req.length as usize]; // from storage
///         from.send_block(req, &data);
///     }
///     let mut wire = Vec::new();
///     from.poll_transmit(&mut wire, now);
///     to.handle_input(&wire, now)?;
///     Ok(!wire.is_empty())
/// }
/// let mut events = Vec::new();
/// let mut asked = false;
/// loop {
///     let moved = pump(&mut seed, &mut leech, now)? | pump(&mut leech, &mut seed, now)?;
///     while let Some(event) = leech.poll_event() {
///         if event == Event::HaveAll { leech.set_interested(true); }
///         events.push(event);
///     }
///     while let Some(event) = seed.poll_event() {
///         if event == Event::Interested { seed.set_choking(false); }
///     }
///     if leech.is_unchoked() && !asked {
///         leech.request(BlockRequest { piece: 2, offset: 0, length: 40_000 - 32_768 }, now);
///         asked = true;
///     }
///     if !moved && seed.poll_action().is_none() { break; }
/// }
/// assert!(events.contains(&Event::HaveAll));
/// assert!(events.contains(&Event::Block {
///     req: BlockRequest { piece: 2, offset: 0, length: 7_232 },
///     data: vec![0xab; 7_232],
/// }));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Session {
    framer: Framer,
    st: State,
}

/// Everything but the framer, so that a message borrowed from the framer
/// can be handled with `&mut State`.
#[derive(Debug)]
struct State {
    config: SessionConfig,
    content: Content,
    peer: Handshake,
    fast: bool,
    extended: bool,
    /// Our extension ids (what the peer sends under) and the peer's.
    ext: ExtensionMap,
    /// Encoded bytes waiting for [`Session::poll_transmit`].
    out: Vec<u8>,
    events: VecDeque<Event>,
    actions: VecDeque<Action>,
    timers: TimerTable,
    am_choking: bool,
    am_interested: bool,
    peer_choking: bool,
    peer_interested: bool,
    peer_pieces: PeerPieces,
    /// Our pieces the peer was not told of because it had them; told once
    /// we complete (see [`Session::have`]).
    untold: Option<Bitfield>,
    /// Whether the peer announced its pieces (bitfield, have all/none).
    peer_announced: bool,
    /// An [`Event::Bitfield`] is queued: a placeholder, filled with the
    /// peer's pieces when polled, so any number of bitfields between two
    /// polls cost one copy.
    bitfield_queued: bool,
    /// The peer's latest extension handshake and DHT port, reported by a
    /// queued placeholder filled when polled (`Some` while one is queued):
    /// repeating these messages costs one queued event.
    latest_extensions: Option<PeerExtensions>,
    latest_dht_port: Option<u16>,
    /// Our requests to the peer, not yet answered.
    requested: HashSet<BlockRequest>,
    /// Requests reported [`Event::Stalled`] and not cancelled: the peer
    /// may still send them (a slow link can take longer than the time-out
    /// for one block), and such a block is still reported, not wasted.
    /// At most [`MAX_LATE`]; cleared when it would grow past that.
    late: HashSet<BlockRequest>,
    /// Serves handed to the driver by `poll_action`, not yet answered.
    awaiting: Vec<BlockRequest>,
    /// `ut_metadata` pieces the peer asked for, answered while the
    /// transmit buffer has room; at most [`MAX_METADATA_QUEUE`].
    metadata_queue: VecDeque<u32>,
    /// Pieces the peer lets us request while choked.
    allowed_in: Vec<u32>,
    /// Pieces we let the peer request while choked.
    allowed_out: Vec<u32>,
    /// Our BEP 52 hash requests not answered yet (at most
    /// [`MAX_HASH_REQUESTS`]).
    hash_requests: Vec<HashRequest>,
    down: u64,
    up: u64,
    failed: Option<SessionError>,
}

impl Session {
    /// Called by [`Handshaking`] with the peer's handshake; queues our
    /// extension handshake and our pieces after whatever handshake bytes
    /// are still unsent.
    fn establish(
        config: SessionConfig,
        content: Content,
        ours: &Handshake,
        peer: Handshake,
        out: Vec<u8>,
        now: Instant,
    ) -> Session {
        let common = ours.reserved.common(&peer.reserved);
        let limits = content
            .num_pieces()
            .map_or_else(Limits::default, Limits::for_torrent);
        let mut names = Vec::new();
        if content.metadata.is_some() || content.torrent.is_none() {
            names.push(UT_METADATA);
        }
        if config.pex {
            names.push(UT_PEX);
        }
        let mut st = State {
            fast: common.fast(),
            extended: common.extension_protocol(),
            ext: ExtensionMap::new(&names),
            out,
            events: VecDeque::new(),
            actions: VecDeque::new(),
            timers: TimerTable::default(),
            am_choking: true,
            am_interested: false,
            peer_choking: true,
            peer_interested: false,
            peer_pieces: PeerPieces::Nothing,
            untold: None,
            peer_announced: false,
            bitfield_queued: false,
            latest_extensions: None,
            latest_dht_port: None,
            requested: HashSet::new(),
            late: HashSet::new(),
            awaiting: Vec::new(),
            metadata_queue: VecDeque::new(),
            allowed_in: Vec::new(),
            allowed_out: Vec::new(),
            hash_requests: Vec::new(),
            down: 0,
            up: 0,
            failed: None,
            config,
            content,
            peer,
        };
        st.timers
            .set(Timer::KeepAlive, now + st.config.keep_alive_interval);
        st.timers.set(Timer::Idle, now + st.config.idle_timeout);
        if let Some(every) = st.config.stats_interval {
            st.timers.set(Timer::Stats, now + every);
        }
        // Our pieces come first: BEP 3 allows a bitfield only as the first
        // message, and BEP 6's have-all/have-none take its place.
        match st.content.have() {
            Some(have) if st.fast && have.is_complete() => Message::HaveAll.encode(&mut st.out),
            Some(have) if st.fast && have.is_clear() => Message::HaveNone.encode(&mut st.out),
            Some(have) if !have.is_clear() => Message::Bitfield(have.as_wire()).encode(&mut st.out),
            Some(_) => {}
            None if st.fast => Message::HaveNone.encode(&mut st.out),
            None => {}
        }
        if st.extended {
            let mut hs = st.ext.handshake();
            hs.reqq = u32::try_from(st.config.max_peer_requests).ok();
            hs.client = st.config.client.clone();
            hs.listen_port = st.config.listen_port;
            hs.metadata_size = st.content.metadata.as_ref().map(|m| m.metadata_size());
            hs.encode_message(&mut st.out);
        }
        if let (Some(port), true) = (st.config.dht_port, common.dht()) {
            Message::Port(port).encode(&mut st.out);
        }
        Session {
            framer: Framer::with_limits(limits),
            st,
        }
    }

    // ----- getters -----

    /// The peer's handshake.
    pub fn peer_handshake(&self) -> &Handshake {
        &self.st.peer
    }

    /// Both sides speak the fast extension (BEP 6).
    pub fn fast(&self) -> bool {
        self.st.fast
    }

    /// Both sides speak the extension protocol (BEP 10).
    pub fn extended(&self) -> bool {
        self.st.extended
    }

    /// What the session knows of the torrent.
    pub fn content(&self) -> &Content {
        &self.st.content
    }

    /// We choke the peer (the initial state).
    pub fn am_choking(&self) -> bool {
        self.st.am_choking
    }

    /// We told the peer we are interested.
    pub fn am_interested(&self) -> bool {
        self.st.am_interested
    }

    /// The peer unchoked us: requests will be served.
    pub fn is_unchoked(&self) -> bool {
        !self.st.peer_choking
    }

    /// The peer is interested in our pieces.
    pub fn peer_interested(&self) -> bool {
        self.st.peer_interested
    }

    /// The peer's pieces as far as known.
    pub fn peer_pieces(&self) -> &PeerPieces {
        &self.st.peer_pieces
    }

    /// Whether the peer has `piece`.
    pub fn peer_has(&self, piece: u32) -> bool {
        match &self.st.peer_pieces {
            PeerPieces::Nothing => false,
            PeerPieces::All => self.st.content.num_pieces().is_some_and(|n| piece < n),
            PeerPieces::Some(bits) => bits.get(piece),
        }
    }

    /// Pieces the peer lets us request while it chokes us (BEP 6).
    pub fn allowed_fast(&self) -> &[u32] {
        &self.st.allowed_in
    }

    /// Our requests not yet answered.
    pub fn outstanding(&self) -> usize {
        self.st.requested.len()
    }

    /// The peer's requests waiting for us: in the action queue, or handed
    /// out and not yet answered with [`Session::send_block`].
    pub fn queued_serves(&self) -> usize {
        self.st.actions.len() + self.st.awaiting.len()
    }

    /// The deadline of one timer.
    pub fn timer(&self, timer: Timer) -> Option<Instant> {
        self.st.timers.get(timer)
    }

    /// The error that ended the session, if one did.
    pub fn error(&self) -> Option<&SessionError> {
        self.st.failed.as_ref()
    }

    /// Bytes queued for [`Session::poll_transmit`].
    pub fn pending_transmit(&self) -> usize {
        self.st.out.len()
    }

    /// Bytes received and not yet handled (part of a message).
    pub fn pending_input(&self) -> usize {
        self.framer.buffered()
    }

    /// Whether the driver should read more from the peer: `false` while
    /// the transmit buffer holds [`SessionConfig::max_transmit_buffer`]
    /// bytes or more (the peer is not reading what it asked for). Reading
    /// anyway is allowed; it only lets the peer queue more small answers.
    pub fn wants_input(&self) -> bool {
        self.st.failed.is_none() && !self.st.out_full()
    }

    /// Work held back only by a full transmit buffer: blocks to serve or
    /// `ut_metadata` requests to answer. After writing what
    /// [`Session::poll_transmit`] gave, the driver drains
    /// [`Session::poll_action`] again without waiting for input.
    pub fn has_deferred_output(&self) -> bool {
        self.st.failed.is_none()
            && (!self.st.actions.is_empty() || !self.st.metadata_queue.is_empty())
    }

    // ----- input -----

    /// Bytes from the socket, in any split. An error ends the session.
    /// Whole messages are read where they lie in `bytes`; only the start
    /// of one cut off at the end is copied, to wait for its rest.
    pub fn handle_input(&mut self, mut bytes: &[u8], now: Instant) -> Result<(), SessionError> {
        self.st.check()?;
        self.st.touch(now);
        while !bytes.is_empty() {
            // Whole messages are handled where they lie; only a partial
            // one is copied, to wait in the framer for its rest.
            let offset = self.framer.position();
            match self.framer.next_message_in(bytes) {
                Ok(Some((message, used))) => {
                    if let Err(violation) = self.st.handle_message(message, now) {
                        let err = SessionError::Violation { offset, violation };
                        return Err(self.st.fail(err));
                    }
                    bytes = bytes.get(used..).unwrap_or(&[]);
                    continue;
                }
                Ok(None) => {}
                Err(e) => return Err(self.st.fail(e.into())),
            }
            let took = self.framer.feed(bytes);
            if took == 0 {
                // Every complete message is handled after each feed, so
                // the framer always has room for the rest of a frame.
                debug_assert!(false, "framer full after handling its messages");
                return Err(self.st.fail(SessionError::Internal("framer full")));
            }
            bytes = bytes.get(took..).unwrap_or(&[]);
            self.process(now)?;
        }
        Ok(())
    }

    /// Free space in the framer to read the socket straight into (no
    /// intermediate buffer); then call [`Session::handle_received`] with
    /// the count read. Never empty while the session is healthy.
    pub fn recv_buffer(&mut self) -> &mut [u8] {
        self.framer.spare_mut()
    }

    /// `n` bytes were read into [`Session::recv_buffer`].
    pub fn handle_received(&mut self, n: usize, now: Instant) -> Result<(), SessionError> {
        self.st.check()?;
        self.st.touch(now);
        self.framer.commit(n);
        self.process(now)
    }

    fn process(&mut self, now: Instant) -> Result<(), SessionError> {
        loop {
            let offset = self.framer.position();
            let message = match self.framer.next_message() {
                Ok(Some(message)) => message,
                Ok(None) => return Ok(()),
                Err(e) => return Err(self.st.fail(e.into())),
            };
            if let Err(violation) = self.st.handle_message(message, now) {
                let err = SessionError::Violation { offset, violation };
                return Err(self.st.fail(err));
            }
        }
    }

    /// Runs the timers due at `now`. Early or repeated calls do nothing.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), SessionError> {
        self.st.check()?;
        let st = &mut self.st;
        if st.timers.is_due(Timer::Idle, now) {
            let since = st
                .timers
                .get(Timer::Idle)
                .map_or(st.config.idle_timeout, |at| {
                    st.config.idle_timeout + now.saturating_duration_since(at)
                });
            return Err(st.fail(SessionError::Idle(since)));
        }
        if st.timers.is_due(Timer::KeepAlive, now) {
            if st.out.is_empty() {
                Message::KeepAlive.encode(&mut st.out);
            }
            // Sending resets it too; until then, not again.
            st.timers
                .set(Timer::KeepAlive, now + st.config.keep_alive_interval);
        }
        if st.timers.is_due(Timer::Requests, now) {
            st.timers.stop(Timer::Requests);
            if !st.requested.is_empty() {
                let mut stalled: Vec<_> = st.requested.drain().collect();
                stalled.sort_unstable();
                if st.late.len() + stalled.len() > MAX_LATE {
                    st.late.clear();
                }
                st.late.extend(stalled.iter().take(MAX_LATE).copied());
                st.events.push_back(Event::Stalled(stalled));
            }
        }
        if st.timers.is_due(Timer::Stats, now) {
            match st.config.stats_interval {
                Some(every) => st.timers.set(Timer::Stats, now + every),
                None => st.timers.stop(Timer::Stats),
            }
            let (down, up) = (std::mem::take(&mut st.down), std::mem::take(&mut st.up));
            st.events.push_back(Event::Stats { down, up });
        }
        Ok(())
    }

    // ----- mutators: the torrent's orders -----

    /// Asks the peer for a block. Without effect for a block already
    /// outstanding; reported at once as [`Event::Dropped`] when the peer
    /// chokes us (and has not allowed the piece fast), or when the block
    /// lies outside the torrent. A block asked for again after it stalled
    /// is not sent for twice: the peer still holds the first request, and
    /// each copy would cost its uplink a block.
    pub fn request(&mut self, req: BlockRequest, now: Instant) {
        let st = &mut self.st;
        let valid = st.content.geometry().is_some_and(|g| g.contains(req));
        let allowed = !st.peer_choking || (st.fast && st.allowed_in.contains(&req.piece));
        if !valid || !allowed {
            st.events.push_back(Event::Dropped(vec![req]));
            return;
        }
        if st.requested.is_empty() {
            st.timers
                .set(Timer::Requests, now + st.config.request_timeout);
        }
        let asked_before = st.late.remove(&req);
        if st.requested.insert(req) && !asked_before {
            Message::Request(req).encode(&mut st.out);
        }
    }

    /// Withdraws a request (another peer delivered the block). A block
    /// that arrives anyway is ignored.
    pub fn cancel(&mut self, req: BlockRequest) {
        let st = &mut self.st;
        if st.late.remove(&req) {
            // Stalled, so still wanted by nobody here: tell the peer.
            Message::Cancel(req).encode(&mut st.out);
        }
        if st.requested.remove(&req) {
            Message::Cancel(req).encode(&mut st.out);
            if st.requested.is_empty() {
                st.timers.stop(Timer::Requests);
            }
        }
    }

    /// We now have `piece` (verified, on disk): the peer is told at once
    /// if it lacks the piece. A `have` for a piece the peer has changes
    /// nothing it decides until we complete (it never asks for a piece it
    /// has), and such haves were most of a swarm's messages, so they wait:
    /// the piece that completes us sends them all, and a peer that is not
    /// a seed itself then counts us as one.
    pub fn have(&mut self, piece: u32) {
        let st = &mut self.st;
        let Some((_, have)) = st.content.torrent.as_mut() else {
            return;
        };
        if piece >= have.len() || !have.set(piece) {
            return;
        }
        // Stalled requests for the piece are still queued at the peer
        // (nobody cancels them otherwise): its uplink would go to blocks
        // we no longer want.
        if !st.late.is_empty() {
            let out = &mut st.out;
            st.late.retain(|r| {
                let keep = r.piece != piece;
                if !keep {
                    Message::Cancel(*r).encode(out);
                }
                keep
            });
        }
        let (peer_has, peer_is_seed) = match &st.peer_pieces {
            PeerPieces::Nothing => (false, false),
            PeerPieces::All => (true, true),
            PeerPieces::Some(bits) => (bits.get(piece), bits.is_complete()),
        };
        if !peer_has {
            Message::Have(piece).encode(&mut st.out);
        } else if !peer_is_seed {
            st.untold
                .get_or_insert_with(|| Bitfield::new(have.len()))
                .set(piece);
        }
        if peer_is_seed || !have.is_complete() {
            return;
        }
        if let Some(untold) = st.untold.take() {
            for piece in untold.iter_set() {
                Message::Have(piece).encode(&mut st.out);
            }
        }
    }

    /// Chokes (`true`) or unchokes the peer. Choking drops the peer's
    /// queued requests (rejecting them under the fast extension), except
    /// for pieces allowed fast.
    pub fn set_choking(&mut self, choke: bool) {
        let st = &mut self.st;
        if choke == st.am_choking {
            return;
        }
        st.am_choking = choke;
        if !choke {
            Message::Unchoke.encode(&mut st.out);
            return;
        }
        Message::Choke.encode(&mut st.out);
        let (fast, allowed) = (st.fast, &st.allowed_out);
        let out = &mut st.out;
        st.actions.retain(|Action::Serve(req)| {
            let keep = allowed.contains(&req.piece);
            if !keep && fast {
                Message::RejectRequest(*req).encode(out);
            }
            keep
        });
    }

    /// Tells the peer whether we want anything from it.
    pub fn set_interested(&mut self, interested: bool) {
        let st = &mut self.st;
        if interested != st.am_interested {
            st.am_interested = interested;
            let message = if interested {
                Message::Interested
            } else {
                Message::NotInterested
            };
            message.encode(&mut st.out);
        }
    }

    /// Lets the peer request `piece` while we choke it (BEP 6 `allowed
    /// fast`; see [`allowed_fast_set`](crate::allowed_fast_set)). Returns
    /// whether it was sent: only under the fast extension, once per piece,
    /// for a piece of the torrent.
    pub fn allow_fast(&mut self, piece: u32) -> bool {
        let st = &mut self.st;
        let in_range = st.content.num_pieces().is_some_and(|n| piece < n);
        if !st.fast || !in_range || st.allowed_out.contains(&piece) {
            return false;
        }
        st.allowed_out.push(piece);
        Message::AllowedFast(piece).encode(&mut st.out);
        true
    }

    /// Sends a `ut_pex` message. Returns `false` (nothing sent) unless PEX
    /// is allowed and the peer speaks `ut_pex`.
    pub fn send_pex(&mut self, message: &PexMessage) -> bool {
        let st = &mut self.st;
        match st.ext.remote_id(UT_PEX).filter(|_| st.config.pex) {
            Some(remote) => {
                message.encode_message(remote, &mut st.out);
                true
            }
            None => false,
        }
    }

    /// Asks the peer for a piece of the info dictionary (BEP 9). Returns
    /// `false` (nothing sent) if the peer does not speak `ut_metadata`.
    pub fn request_metadata(&mut self, piece: u32) -> bool {
        let st = &mut self.st;
        match st.ext.remote_id(UT_METADATA) {
            Some(remote) => {
                MetadataMessage::Request { piece }.encode_message(remote, &mut st.out);
                true
            }
            None => false,
        }
    }

    /// Answers an [`Action::Serve`] with the block's bytes.
    pub fn send_block(&mut self, req: BlockRequest, data: &[u8]) -> Served {
        self.send_block_with(req, |out| {
            out.extend_from_slice(data);
            Ok::<(), ()>(())
        })
    }

    /// Answers an [`Action::Serve`] by letting `fill` append the block's
    /// bytes straight after the message header in the transmit buffer (no
    /// intermediate copy). If `fill` fails or appends the wrong length,
    /// the block is refused as by [`Session::refuse_block`].
    pub fn send_block_with<E>(
        &mut self,
        req: BlockRequest,
        fill: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    ) -> Served {
        let st = &mut self.st;
        let Some(at) = st.awaiting.iter().position(|r| *r == req) else {
            debug_assert!(false, "send_block for {req:?}, which was not handed out");
            return Served::NotAwaited;
        };
        st.awaiting.swap_remove(at);
        if st.am_choking && !st.allowed_out.contains(&req.piece) {
            st.reject(req);
            return Served::Refused;
        }
        let start = st.out.len();
        st.out
            .extend_from_slice(&piece_header(req.piece, req.offset, req.length));
        let data_start = st.out.len();
        match fill(&mut st.out) {
            Ok(()) if st.out.len() - data_start == req.length as usize => {
                st.up += u64::from(req.length);
                Served::Sent
            }
            _ => {
                st.out.truncate(start);
                st.reject(req);
                Served::Refused
            }
        }
    }

    /// Answers an [`Action::Serve`] that cannot be served (storage failed):
    /// rejected under the fast extension, else silently dropped.
    pub fn refuse_block(&mut self, req: BlockRequest) -> Served {
        let st = &mut self.st;
        let Some(at) = st.awaiting.iter().position(|r| *r == req) else {
            debug_assert!(false, "refuse_block for {req:?}, which was not handed out");
            return Served::NotAwaited;
        };
        st.awaiting.swap_remove(at);
        st.reject(req);
        Served::Refused
    }

    /// Payload bytes received and sent since the last [`Event::Stats`],
    /// resetting the counters (for a last report when the connection ends).
    pub fn take_stats(&mut self) -> (u64, u64) {
        (
            std::mem::take(&mut self.st.down),
            std::mem::take(&mut self.st.up),
        )
    }

    // ----- outputs -----

    /// The next block the driver must serve; `None` while the transmit
    /// buffer is full (see [`SessionConfig::max_transmit_buffer`]). Also
    /// answers queued `ut_metadata` requests while there is room.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.st.answer_metadata();
        if self.st.out_full() {
            return None;
        }
        let action = self.st.actions.pop_front()?;
        let Action::Serve(req) = action;
        self.st.awaiting.push(req);
        Some(action)
    }

    /// The next thing the torrent must hear.
    pub fn poll_event(&mut self) -> Option<Event> {
        let st = &mut self.st;
        loop {
            // Placeholders are filled with the latest state.
            let filled = match st.events.pop_front()? {
                Event::Bitfield(_) => {
                    st.bitfield_queued = false;
                    match &st.peer_pieces {
                        PeerPieces::Some(bits) => Some(Event::Bitfield(bits.clone())),
                        // A `have all` came after the bitfield: its own
                        // event is queued behind this one and says it all.
                        PeerPieces::All => None,
                        PeerPieces::Nothing => {
                            debug_assert!(false, "a bitfield event without pieces");
                            None
                        }
                    }
                }
                Event::Extensions(_) => {
                    let latest = st.latest_extensions.take();
                    debug_assert!(latest.is_some(), "an extensions event without a handshake");
                    latest.map(Event::Extensions)
                }
                Event::DhtPort(_) => {
                    let latest = st.latest_dht_port.take();
                    debug_assert!(latest.is_some(), "a DHT port event without a port");
                    latest.map(Event::DhtPort)
                }
                event => Some(event),
            };
            if filled.is_some() {
                return filled;
            }
        }
    }

    /// Moves the bytes to send into `buf` (appended; the caller writes
    /// them all, in order). Returns how many. Sending moves the keep-alive
    /// deadline.
    pub fn poll_transmit(&mut self, buf: &mut Vec<u8>, now: Instant) -> usize {
        let st = &mut self.st;
        let n = st.out.len();
        if n == 0 {
            return 0;
        }
        if buf.is_empty() {
            std::mem::swap(buf, &mut st.out);
        } else {
            buf.append(&mut st.out);
        }
        st.timers
            .set(Timer::KeepAlive, now + st.config.keep_alive_interval);
        n
    }

    /// When [`Session::handle_timeout`] must be called next: the earliest
    /// timer of the table. `None` once the session has failed.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.st.failed.is_some() {
            return None;
        }
        self.st.timers.next()
    }
}

impl State {
    fn check(&self) -> Result<(), SessionError> {
        match &self.failed {
            Some(err) => Err(err.clone()),
            None => Ok(()),
        }
    }

    fn fail(&mut self, err: SessionError) -> SessionError {
        self.failed = Some(err.clone());
        err
    }

    /// Something arrived: the idle clock restarts.
    fn touch(&mut self, now: Instant) {
        self.timers.set(Timer::Idle, now + self.config.idle_timeout);
    }

    /// The transmit buffer holds its bound or more.
    fn out_full(&self) -> bool {
        self.out.len() >= self.config.max_transmit_buffer
    }

    /// Answers queued `ut_metadata` requests while the transmit buffer has
    /// room.
    fn answer_metadata(&mut self) {
        // Called on every `poll_action`: nothing queued (nearly always)
        // costs no lookup of the extension's id by name.
        if self.metadata_queue.is_empty() {
            return;
        }
        let Some(remote) = self.ext.remote_id(UT_METADATA) else {
            self.metadata_queue.clear();
            return;
        };
        while !self.out_full() {
            let Some(piece) = self.metadata_queue.pop_front() else {
                return;
            };
            let request = MetadataMessage::Request { piece };
            match self
                .content
                .metadata
                .as_ref()
                .and_then(|m| m.answer(request))
            {
                Some(answer) => answer.encode_message(remote, &mut self.out),
                None => MetadataMessage::Reject { piece }.encode_message(remote, &mut self.out),
            }
        }
    }

    /// Reports a change of one of the peer's two-valued states
    /// (interested, choking). A change that undoes the last event still
    /// queued removes it instead: a peer flipping a state as fast as it
    /// can costs one queued event, not one per message.
    fn push_flip(&mut self, event: Event, undoes: &Event) {
        if self.events.back() == Some(undoes) {
            self.events.pop_back();
        } else {
            self.events.push_back(event);
        }
    }

    fn reject(&mut self, req: BlockRequest) {
        if self.fast {
            Message::RejectRequest(req).encode(&mut self.out);
        }
    }

    fn need_fast(&self, id: u8) -> Result<(), Violation> {
        if self.fast {
            Ok(())
        } else {
            Err(Violation::NeedsFast { id })
        }
    }

    fn piece_in_range(&self, id: u8, piece: u32) -> Result<bool, Violation> {
        match self.content.num_pieces() {
            Some(n) if piece >= n => Err(Violation::PieceOutOfRange {
                id,
                piece,
                num_pieces: n,
            }),
            Some(_) => Ok(true),
            // A magnet session cannot check, and has no use for it.
            None => Ok(false),
        }
    }

    fn handle_message(&mut self, message: Message<'_>, now: Instant) -> Result<(), Violation> {
        match message {
            Message::KeepAlive | Message::Port(0) => {}
            Message::Unknown { id, payload } => self.handle_unknown(id, payload)?,
            Message::Port(port) => {
                if self.latest_dht_port.replace(port).is_none() {
                    self.events.push_back(Event::DhtPort(0));
                }
            }
            Message::Choke => {
                if !self.peer_choking {
                    self.peer_choking = true;
                    self.push_flip(Event::Choked, &Event::Unchoked);
                }
                if !self.fast && !self.requested.is_empty() {
                    let mut voided: Vec<_> = self.requested.drain().collect();
                    voided.sort_unstable();
                    self.events.push_back(Event::Dropped(voided));
                    self.timers.stop(Timer::Requests);
                }
            }
            Message::Unchoke => {
                if self.peer_choking {
                    self.peer_choking = false;
                    self.push_flip(Event::Unchoked, &Event::Choked);
                    if !self.requested.is_empty() {
                        self.timers
                            .set(Timer::Requests, now + self.config.request_timeout);
                    }
                }
            }
            Message::Interested => {
                if !self.peer_interested {
                    self.peer_interested = true;
                    self.push_flip(Event::Interested, &Event::NotInterested);
                }
            }
            Message::NotInterested => {
                if self.peer_interested {
                    self.peer_interested = false;
                    self.push_flip(Event::NotInterested, &Event::Interested);
                }
            }
            Message::Have(piece) => {
                if !self.piece_in_range(id::HAVE, piece)? {
                    return Ok(());
                }
                let n = self.content.num_pieces().unwrap_or(0);
                let new = match &mut self.peer_pieces {
                    PeerPieces::All => false,
                    PeerPieces::Some(bits) => bits.set(piece),
                    nothing @ PeerPieces::Nothing => {
                        let mut bits = Bitfield::new(n);
                        bits.set(piece);
                        *nothing = PeerPieces::Some(bits);
                        true
                    }
                };
                if new {
                    self.events.push_back(Event::Have(piece));
                }
            }
            Message::Bitfield(wire) => {
                // BEP 3 wants it first, but some clients (aria2 after
                // have-none) send it later: merged, never shrinking.
                let Some(n) = self.content.num_pieces() else {
                    return Ok(());
                };
                let mut bits = Bitfield::from_wire(wire, n).map_err(Violation::Bitfield)?;
                self.peer_announced = true;
                match &mut self.peer_pieces {
                    PeerPieces::All => return Ok(()),
                    PeerPieces::Some(known) if !known.lacks_any_of(&bits) => return Ok(()),
                    PeerPieces::Some(known) => {
                        bits.union_with(known);
                        *known = bits;
                    }
                    PeerPieces::Nothing => self.peer_pieces = PeerPieces::Some(bits),
                }
                // One queued report however many bitfields arrive before
                // the next poll (each would otherwise copy the whole set).
                if !self.bitfield_queued {
                    self.bitfield_queued = true;
                    self.events.push_back(Event::Bitfield(Bitfield::new(0)));
                }
            }
            Message::HaveAll => {
                self.need_fast(id::HAVE_ALL)?;
                self.peer_announced = true;
                if self.peer_pieces != PeerPieces::All {
                    // O(1): the bitfield (if any) is dropped, not filled.
                    self.peer_pieces = PeerPieces::All;
                    self.events.push_back(Event::HaveAll);
                }
            }
            Message::HaveNone => {
                self.need_fast(id::HAVE_NONE)?;
                // Pieces are never lost: only a first announcement counts.
                if !self.peer_announced && self.peer_pieces == PeerPieces::Nothing {
                    self.events.push_back(Event::HaveNone);
                }
                self.peer_announced = true;
            }
            Message::Request(req) => self.handle_request(req)?,
            Message::Cancel(req) => {
                // Withdrawn before the driver saw it: dropped here. BEP 6
                // wants an answer to every request, so a reject goes back.
                if let Some(at) = self.actions.iter().position(|a| *a == Action::Serve(req)) {
                    self.actions.remove(at);
                    self.reject(req);
                }
            }
            Message::Piece { index, begin, data } => {
                let req = BlockRequest {
                    piece: index,
                    offset: begin,
                    length: data.len() as u32,
                };
                self.down += data.len() as u64;
                // A block we did not ask for (or cancelled) is ignored: in
                // end-game several peers race for one block. One that
                // arrives after its request stalled is still reported.
                if self.late.remove(&req) {
                    self.events.push_back(Event::Block {
                        req,
                        data: data.to_vec(),
                    });
                } else if self.requested.remove(&req) {
                    if self.requested.is_empty() {
                        self.timers.stop(Timer::Requests);
                    } else {
                        self.timers
                            .set(Timer::Requests, now + self.config.request_timeout);
                    }
                    self.events.push_back(Event::Block {
                        req,
                        data: data.to_vec(),
                    });
                }
            }
            Message::RejectRequest(req) => {
                self.need_fast(id::REJECT_REQUEST)?;
                if self.requested.remove(&req) {
                    if self.requested.is_empty() {
                        self.timers.stop(Timer::Requests);
                    }
                    self.events.push_back(Event::Dropped(vec![req]));
                }
            }
            Message::SuggestPiece(piece) => {
                self.need_fast(id::SUGGEST_PIECE)?;
                self.piece_in_range(id::SUGGEST_PIECE, piece)?;
            }
            Message::AllowedFast(piece) => {
                self.need_fast(id::ALLOWED_FAST)?;
                if self.piece_in_range(id::ALLOWED_FAST, piece)?
                    && self.allowed_in.len() < self.config.max_allowed_fast
                    && !self.allowed_in.contains(&piece)
                {
                    self.allowed_in.push(piece);
                    self.events.push_back(Event::AllowedFast(piece));
                }
            }
            Message::Extended { id, payload } => self.handle_extended(id, payload),
        }
        Ok(())
    }

    fn handle_request(&mut self, req: BlockRequest) -> Result<(), Violation> {
        let Some((geometry, have)) = self.content.torrent.as_ref() else {
            return Err(Violation::RequestForMissingPiece(req));
        };
        let end = req.offset.checked_add(req.length);
        let in_torrent = geometry
            .piece_size(req.piece)
            .is_some_and(|size| end.is_some_and(|end| end <= size));
        if !in_torrent {
            return Err(Violation::RequestOutOfRange(req));
        }
        if !have.get(req.piece) {
            return Err(Violation::RequestForMissingPiece(req));
        }
        // A request the peer repeats while the first is queued: the block
        // goes once, and answers both (a reject would void the first).
        if self.actions.contains(&Action::Serve(req)) || self.awaiting.contains(&req) {
            return Ok(());
        }
        let too_big = req.length == 0 || req.length > BLOCK_LEN;
        let choked = self.am_choking && !self.allowed_out.contains(&req.piece);
        let full = self.actions.len() + self.awaiting.len() >= self.config.max_peer_requests;
        if too_big || choked || full {
            self.reject(req);
        } else {
            self.actions.push_back(Action::Serve(req));
        }
        Ok(())
    }

    fn handle_extended(&mut self, ext_id: u8, payload: &[u8]) {
        if ext_id == 0 {
            // Lenient: a bad extension handshake leaves us without the
            // peer's extensions, which the rest of the protocol survives.
            let Ok(theirs) = ExtensionHandshake::decode(payload) else {
                return;
            };
            self.ext.handle_remote_handshake(&theirs);
            let info = PeerExtensions {
                listen_port: theirs.listen_port.filter(|&p| p != 0),
                reqq: theirs.reqq,
                metadata_size: theirs.metadata_size,
                ut_metadata: self.ext.remote_id(UT_METADATA).is_some(),
                ut_pex: self.config.pex && self.ext.remote_id(UT_PEX).is_some(),
                your_ip: theirs.your_ip,
                client: theirs.client,
            };
            if self.latest_extensions.replace(info).is_none() {
                self.events
                    .push_back(Event::Extensions(PeerExtensions::default()));
            }
            return;
        }
        match self.ext.local_name(ext_id) {
            Some(UT_PEX) if self.config.pex => {
                // A malformed PEX message is ignored, not fatal: the peer
                // list is advice.
                if let Ok(message) = PexMessage::decode(payload) {
                    self.events.push_back(Event::Pex(message));
                }
            }
            Some(UT_METADATA) => self.handle_metadata(payload),
            _ => {}
        }
    }

    fn handle_metadata(&mut self, payload: &[u8]) {
        // Undecodable messages are ignored, as BEP 9 allows.
        let Ok(message) = MetadataMessage::decode(payload) else {
            return;
        };
        let fetching = self.content.torrent.is_none();
        match message {
            MetadataMessage::Request { piece } => {
                let Some(remote) = self.ext.remote_id(UT_METADATA) else {
                    return;
                };
                // Answered from `poll_action` while the transmit buffer has
                // room, so a peer that asks and never reads pins a bounded
                // amount; beyond the queue, a (small) reject at once.
                if self.content.metadata.is_some() && self.metadata_queue.len() < MAX_METADATA_QUEUE
                {
                    self.metadata_queue.push_back(piece);
                } else {
                    MetadataMessage::Reject { piece }.encode_message(remote, &mut self.out);
                }
            }
            MetadataMessage::Data {
                piece,
                total_size,
                data,
            } if fetching => self.events.push_back(Event::MetadataPiece {
                piece,
                total_size,
                data: data.to_vec(),
            }),
            MetadataMessage::Reject { piece } if fetching => {
                self.events.push_back(Event::MetadataRejected { piece });
            }
            MetadataMessage::Data { .. } | MetadataMessage::Reject { .. } => {}
        }
    }
}
