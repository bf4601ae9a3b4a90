//! One peer connection after the handshake, as a sans-IO state machine.
//!
//! The driver thread owns the socket and calls, in this order, as things
//! happen: [`PeerSession::handle_input`] with bytes read,
//! [`PeerSession::handle_command`] with the torrent manager's orders,
//! [`PeerSession::handle_timeout`] when [`PeerSession::poll_timeout`] is
//! reached; then drains [`PeerSession::poll_event`] (to the manager, or a
//! block to read from storage and give back with
//! [`PeerSession::send_block`]) and [`PeerSession::poll_transmit`] (bytes
//! to write). Time is always a parameter.

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

use std::sync::Arc;

use rustico_peer_wire::{
    BlockRequest, ExtensionHandshake, FrameError, Framer, Limits, Message, MetadataMessage,
    MetadataServer, PexMessage,
};

use rustico_peer_wire::Bitfield as Bits;

/// Send a keep-alive after this long without sending anything.
pub const KEEP_ALIVE_EVERY: Duration = Duration::from_secs(90);
/// Drop a peer that sent nothing (not even a keep-alive) for this long.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(180);
/// A peer that holds our requests this long without sending a block is
/// stalled: its blocks go back to the pool for other peers.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// How often transfer counters are reported to the manager.
pub const STATS_EVERY: Duration = Duration::from_secs(1);
/// Requests from the peer we queue (what we advertise as `reqq`).
pub const OUR_REQQ: usize = 500;
/// The largest block we serve.
pub const MAX_SERVED_BLOCK: u32 = 128 * 1024;

/// What the session knows of the torrent and the handshake.
#[derive(Debug, Clone)]
pub struct SessionSetup {
    /// Pieces in the torrent.
    pub num_pieces: u32,
    /// Both sides set the fast extension bit (BEP 6).
    pub fast: bool,
    /// Both sides set the extension protocol bit (BEP 10).
    pub extended: bool,
    /// Pieces we have now (the bitfield we announce).
    pub ours: Bits,
    /// Our client name for the extension handshake.
    pub client: String,
    /// The info dictionary, served with `ut_metadata` (BEP 9) to peers
    /// that fetch it from a magnet link.
    pub metadata: Option<Arc<MetadataServer>>,
    /// Peer exchange (BEP 11) is allowed: the torrent is not private.
    pub pex: bool,
    /// Our listen port, announced as `p` (so that a peer we dialled, or
    /// that learns of us through PEX, knows where to reach us).
    pub listen_port: Option<u16>,
}

/// Our id for `ut_metadata` messages (what we announce in `m`).
pub const OUR_UT_METADATA: u8 = 1;
/// Our id for `ut_pex` messages.
pub const OUR_UT_PEX: u8 = 2;

/// Orders from the torrent manager.
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
}

/// What happened, for the manager (or the driver, for [`Event::Serve`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The peer's pieces, from a bitfield or have-all/have-none.
    Pieces(Bits),
    /// The peer has a new piece.
    Have(u32),
    /// The peer choked (true) or unchoked (false) us. On choke without the
    /// fast extension every request we sent is void.
    Choked(bool),
    /// The peer is interested in our pieces (true) or not.
    Interested(bool),
    /// A requested block arrived.
    Block {
        /// The block.
        req: BlockRequest,
        /// Its bytes.
        data: Vec<u8>,
    },
    /// The peer will not serve these requests (rejected, or voided by a
    /// choke): the manager returns them to the pool.
    Dropped(Vec<BlockRequest>),
    /// The peer asked for a block we have: read it and call
    /// [`PeerSession::send_block`].
    Serve(BlockRequest),
    /// The peer's extension handshake said how many requests it queues.
    Reqq(usize),
    /// The peer's extension handshake: its listen port, and whether it
    /// speaks `ut_pex` (only reported true when PEX is allowed).
    PeerInfo {
        /// The `p` it announced.
        listen_port: Option<u16>,
        /// It takes `ut_pex` messages and we may send them.
        pex: bool,
    },
    /// A `ut_pex` message from the peer (PEX allowed only).
    Pex(PexMessage),
    /// Our outstanding requests got no answer for [`REQUEST_TIMEOUT`];
    /// they are listed and forgotten here, so another peer may get them.
    Stalled(Vec<BlockRequest>),
    /// Payload counters, every [`STATS_EVERY`]: bytes received and sent
    /// since the previous report.
    Stats {
        /// Payload bytes received.
        down: u64,
        /// Payload bytes sent.
        up: u64,
    },
}

/// Why a session ended.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum SessionError {
    /// Malformed or oversized framing.
    #[error("protocol error: {0}")]
    Frame(#[from] FrameError),
    /// A message that makes no sense here.
    #[error("protocol violation: {0}")]
    Violation(String),
    /// The peer was silent for too long.
    #[error("peer silent for {0:?}")]
    Idle(Duration),
}

/// One peer connection's protocol state.
pub struct PeerSession {
    setup: SessionSetup,
    framer: Framer,
    out: Vec<u8>,
    events: VecDeque<Event>,
    peer_choking: bool,
    am_choking: bool,
    am_interested: bool,
    peer_pieces: Option<Bits>,
    outstanding: HashSet<BlockRequest>,
    queued_serves: usize,
    last_received: Instant,
    last_sent: Instant,
    last_block: Instant,
    next_stats: Instant,
    down: u64,
    up: u64,
    /// The peer's id for `ut_metadata`, from its extension handshake.
    remote_ut_metadata: Option<u8>,
    /// The peer's id for `ut_pex`.
    remote_ut_pex: Option<u8>,
    failed: Option<SessionError>,
}

impl PeerSession {
    /// A session just after both handshakes; queues our bitfield (or
    /// have-all/have-none) and extension handshake.
    pub fn new(setup: SessionSetup, now: Instant) -> PeerSession {
        let framer = Framer::with_limits(Limits::for_torrent(setup.num_pieces));
        let mut s = PeerSession {
            framer,
            out: Vec::with_capacity(64 * 1024),
            events: VecDeque::new(),
            peer_choking: true,
            am_choking: true,
            am_interested: false,
            peer_pieces: None,
            outstanding: HashSet::new(),
            queued_serves: 0,
            last_received: now,
            last_sent: now,
            last_block: now,
            next_stats: now + STATS_EVERY,
            down: 0,
            up: 0,
            remote_ut_metadata: None,
            remote_ut_pex: None,
            failed: None,
            setup,
        };
        if s.setup.extended {
            let mut ours = ExtensionHandshake {
                reqq: Some(OUR_REQQ as u32),
                client: Some(s.setup.client.clone()),
                ..ExtensionHandshake::default()
            };
            if let Some(server) = &s.setup.metadata {
                ours.extensions
                    .insert("ut_metadata".into(), OUR_UT_METADATA);
                ours.metadata_size = Some(server.metadata_size());
            }
            if s.setup.pex {
                ours.extensions.insert("ut_pex".into(), OUR_UT_PEX);
            }
            ours.listen_port = s.setup.listen_port;
            let mut payload = Vec::new();
            ours.encode(&mut payload);
            s.send(Message::Extended {
                id: 0,
                payload: &payload,
            });
        }
        let have = s.setup.ours.count();
        if s.setup.fast && have == s.setup.num_pieces {
            s.send(Message::HaveAll);
        } else if s.setup.fast && have == 0 {
            s.send(Message::HaveNone);
        } else if have > 0 {
            let wire = s.setup.ours.as_wire().to_vec();
            s.send(Message::Bitfield(&wire));
        }
        s
    }

    /// Whether we are choking the peer.
    #[cfg(test)]
    pub fn am_choking(&self) -> bool {
        self.am_choking
    }

    /// Requests sent and not yet answered.
    #[cfg(test)]
    pub fn outstanding(&self) -> usize {
        self.outstanding.len()
    }

    fn send(&mut self, message: Message<'_>) {
        message.encode(&mut self.out);
    }

    fn fail(&mut self, err: SessionError) -> Result<(), SessionError> {
        self.failed = Some(err.clone());
        Err(err)
    }

    /// Bytes from the socket. An error ends the session.
    pub fn handle_input(&mut self, mut bytes: &[u8], now: Instant) -> Result<(), SessionError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        self.last_received = now;
        while !bytes.is_empty() {
            let took = self.framer.feed(bytes);
            bytes = bytes.get(took..).unwrap_or(&[]);
            loop {
                let message = match self.framer.next_message() {
                    Ok(Some(m)) => m,
                    Ok(None) => break,
                    Err(e) => return self.fail(e.into()),
                };
                let mut st = StateRef {
                    out: &mut self.out,
                    events: &mut self.events,
                    peer_choking: &mut self.peer_choking,
                    am_choking: self.am_choking,
                    peer_pieces: &mut self.peer_pieces,
                    outstanding: &mut self.outstanding,
                    queued_serves: &mut self.queued_serves,
                    last_block: &mut self.last_block,
                    down: &mut self.down,
                    remote_ut_metadata: &mut self.remote_ut_metadata,
                    remote_ut_pex: &mut self.remote_ut_pex,
                };
                if let Err(e) = Self::handle_message(&mut self.setup, &mut st, message, now) {
                    return self.fail(e);
                }
            }
            if took == 0 && !self.framer.has_message()? {
                return self.fail(SessionError::Violation(
                    "framer full without a message".into(),
                ));
            }
        }
        Ok(())
    }

    fn handle_message(
        setup: &mut SessionSetup,
        st: &mut StateRef<'_>,
        message: Message<'_>,
        now: Instant,
    ) -> Result<(), SessionError> {
        let n = setup.num_pieces;
        let violation = |what: String| Err(SessionError::Violation(what));
        match message {
            Message::KeepAlive
            | Message::Port(_)
            | Message::SuggestPiece(_)
            | Message::AllowedFast(_) => {}
            Message::Unknown { .. } => {}
            Message::Choke => {
                *st.peer_choking = true;
                st.events.push_back(Event::Choked(true));
                if !setup.fast && !st.outstanding.is_empty() {
                    let voided: Vec<_> = st.outstanding.drain().collect();
                    st.events.push_back(Event::Dropped(voided));
                }
            }
            Message::Unchoke => {
                *st.peer_choking = false;
                *st.last_block = now;
                st.events.push_back(Event::Choked(false));
            }
            Message::Interested => st.events.push_back(Event::Interested(true)),
            Message::NotInterested => st.events.push_back(Event::Interested(false)),
            Message::Have(index) => {
                if index >= n {
                    return violation(format!("have {index} of {n} pieces"));
                }
                let pieces = st.peer_pieces.get_or_insert_with(|| Bits::new(n));
                if !pieces.get(index) {
                    pieces.set(index);
                    st.events.push_back(Event::Have(index));
                }
            }
            Message::Bitfield(wire) => {
                // BEP 3 wants it first, but some clients (aria2 after
                // have-none) send it later: merge rather than drop them.
                let mut bits = Bits::from_wire(wire, n)
                    .map_err(|e| SessionError::Violation(format!("bad bitfield: {e}")))?;
                if let Some(known) = st.peer_pieces.as_ref() {
                    for i in known.iter_set() {
                        bits.set(i);
                    }
                }
                *st.peer_pieces = Some(bits.clone());
                st.events.push_back(Event::Pieces(bits));
            }
            Message::HaveAll | Message::HaveNone => {
                if !setup.fast {
                    return violation("have-all/have-none without the fast extension".into());
                }
                let mut bits = Bits::new(n);
                if message == Message::HaveAll {
                    bits.set_all();
                }
                *st.peer_pieces = Some(bits.clone());
                st.events.push_back(Event::Pieces(bits));
            }
            Message::Request(req) => {
                if req.piece >= n || !setup.ours.get(req.piece) {
                    return violation(format!("request for piece {} we do not have", req.piece));
                }
                if req.length == 0 || req.length > MAX_SERVED_BLOCK {
                    return violation(format!("request of {} bytes", req.length));
                }
                if st.am_choking || *st.queued_serves >= OUR_REQQ {
                    if setup.fast {
                        Message::RejectRequest(req).encode(st.out);
                    }
                } else {
                    *st.queued_serves += 1;
                    st.events.push_back(Event::Serve(req));
                }
            }
            Message::Piece { index, begin, data } => {
                let req = BlockRequest {
                    piece: index,
                    offset: begin,
                    length: data.len() as u32,
                };
                *st.down += data.len() as u64;
                // A block we did not ask for (or cancelled) is ignored: in
                // end-game several peers race for one block.
                if st.outstanding.remove(&req) {
                    *st.last_block = now;
                    st.events.push_back(Event::Block {
                        req,
                        data: data.to_vec(),
                    });
                }
            }
            Message::Cancel(_) => {
                // Requests are served as soon as they arrive, so there is
                // nothing queued to withdraw.
            }
            Message::RejectRequest(req) => {
                if !setup.fast {
                    return violation("reject without the fast extension".into());
                }
                if st.outstanding.remove(&req) {
                    st.events.push_back(Event::Dropped(vec![req]));
                }
            }
            Message::Extended { id, payload } => {
                if id == 0 {
                    if let Ok(theirs) = ExtensionHandshake::decode(payload) {
                        if let Some(reqq) = theirs.reqq {
                            st.events
                                .push_back(Event::Reqq(reqq.clamp(1, 2000) as usize));
                        }
                        if let Some(&remote) = theirs.extensions.get("ut_metadata") {
                            *st.remote_ut_metadata = (remote != 0).then_some(remote);
                        }
                        if let Some(&remote) = theirs.extensions.get("ut_pex") {
                            *st.remote_ut_pex = (remote != 0 && setup.pex).then_some(remote);
                        }
                        st.events.push_back(Event::PeerInfo {
                            listen_port: theirs.listen_port.filter(|&p| p != 0),
                            pex: st.remote_ut_pex.is_some(),
                        });
                    }
                } else if id == OUR_UT_PEX && setup.pex {
                    // A malformed PEX message is ignored, not fatal: the
                    // peer list is advice.
                    if let Ok(message) = PexMessage::decode(payload) {
                        st.events.push_back(Event::Pex(message));
                    }
                } else if id == OUR_UT_METADATA {
                    let (Some(server), Some(remote)) = (&setup.metadata, *st.remote_ut_metadata)
                    else {
                        return Ok(());
                    };
                    // Only requests are answered; anything else under this
                    // id (or undecodable) is ignored, as BEP 9 allows.
                    if let Ok(message) = MetadataMessage::decode(payload) {
                        if let Some(answer) = server.answer(message) {
                            answer.encode_message(remote, st.out);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// An order from the manager.
    pub fn handle_command(&mut self, command: Command, now: Instant) {
        match command {
            Command::Request(reqs) => {
                // The stall clock starts when requests start waiting.
                if self.outstanding.is_empty() {
                    self.last_block = now;
                }
                for req in reqs {
                    if self.outstanding.insert(req) {
                        self.send(Message::Request(req));
                    }
                }
                if self.peer_choking && !self.setup.fast {
                    // Sent while choked: the peer ignores them; give them back.
                    let voided: Vec<_> = self.outstanding.drain().collect();
                    self.events.push_back(Event::Dropped(voided));
                }
            }
            Command::Cancel(req) => {
                if self.outstanding.remove(&req) {
                    self.send(Message::Cancel(req));
                }
            }
            Command::Have(index) => {
                if index < self.setup.num_pieces && !self.setup.ours.get(index) {
                    self.setup.ours.set(index);
                    self.send(Message::Have(index));
                }
            }
            Command::Choke(choke) => {
                if choke != self.am_choking {
                    self.am_choking = choke;
                    self.send(if choke {
                        Message::Choke
                    } else {
                        Message::Unchoke
                    });
                }
            }
            Command::Interested(on) => {
                if on != self.am_interested {
                    self.am_interested = on;
                    self.send(if on {
                        Message::Interested
                    } else {
                        Message::NotInterested
                    });
                }
            }
            Command::Pex(message) => {
                if let Some(remote) = self.remote_ut_pex {
                    message.encode_message(remote, &mut self.out);
                }
            }
        }
    }

    /// Serves a block asked for with [`Event::Serve`] by letting `fill`
    /// append its bytes straight after the message header in the transmit
    /// buffer (no intermediate copy). `fill` fails (storage could not read
    /// it): the request is rejected if the peer speaks fast, else skipped.
    pub fn send_block_with<E>(
        &mut self,
        req: BlockRequest,
        fill: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    ) {
        if self.am_choking {
            self.send_block(req, None);
            return;
        }
        let start = self.out.len();
        self.out.extend_from_slice(&rustico_peer_wire::piece_header(
            req.piece, req.offset, req.length,
        ));
        let data_start = self.out.len();
        match fill(&mut self.out) {
            Ok(()) if self.out.len() - data_start == req.length as usize => {
                self.queued_serves = self.queued_serves.saturating_sub(1);
                self.up += u64::from(req.length);
            }
            _ => {
                self.out.truncate(start);
                self.send_block(req, None);
            }
        }
    }

    /// The bytes of a block asked for with [`Event::Serve`] (`None` when it
    /// could not be read: rejected if the peer speaks fast, else skipped).
    pub fn send_block(&mut self, req: BlockRequest, data: Option<&[u8]>) {
        self.queued_serves = self.queued_serves.saturating_sub(1);
        match data {
            Some(data) if !self.am_choking => {
                self.up += data.len() as u64;
                self.send(Message::Piece {
                    index: req.piece,
                    begin: req.offset,
                    data,
                });
            }
            _ if self.setup.fast => self.send(Message::RejectRequest(req)),
            _ => {}
        }
    }

    /// The next deadline: keep-alive, idle drop, stalled requests, stats.
    pub fn poll_timeout(&self) -> Instant {
        let mut t = (self.last_sent + KEEP_ALIVE_EVERY)
            .min(self.last_received + IDLE_TIMEOUT)
            .min(self.next_stats);
        if !self.outstanding.is_empty() {
            t = t.min(self.last_block + REQUEST_TIMEOUT);
        }
        t
    }

    /// Runs the timers due at `now` (an early call does nothing harmful).
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), SessionError> {
        if now.duration_since(self.last_received) >= IDLE_TIMEOUT {
            return self.fail(SessionError::Idle(now.duration_since(self.last_received)));
        }
        if now.duration_since(self.last_sent) >= KEEP_ALIVE_EVERY && self.out.is_empty() {
            self.send(Message::KeepAlive);
        }
        if !self.outstanding.is_empty() && now.duration_since(self.last_block) >= REQUEST_TIMEOUT {
            let stalled: Vec<_> = self.outstanding.drain().collect();
            self.events.push_back(Event::Stalled(stalled));
        }
        if now >= self.next_stats {
            self.next_stats = now + STATS_EVERY;
            let (down, up) = (std::mem::take(&mut self.down), std::mem::take(&mut self.up));
            self.events.push_back(Event::Stats { down, up });
        }
        Ok(())
    }

    /// Payload bytes received and sent since the last [`Event::Stats`],
    /// resetting the counters (for a final report when the connection ends).
    pub fn take_stats(&mut self) -> (u64, u64) {
        (std::mem::take(&mut self.down), std::mem::take(&mut self.up))
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Moves the bytes to send into `buf` (which should be empty); the
    /// caller writes them all.
    pub fn poll_transmit(&mut self, buf: &mut Vec<u8>, now: Instant) {
        if self.out.is_empty() {
            return;
        }
        self.last_sent = now;
        if buf.is_empty() {
            std::mem::swap(buf, &mut self.out);
        } else {
            buf.append(&mut self.out);
        }
    }
}

/// Split borrows of the session for the message handler.
struct StateRef<'a> {
    out: &'a mut Vec<u8>,
    events: &'a mut VecDeque<Event>,
    peer_choking: &'a mut bool,
    am_choking: bool,
    peer_pieces: &'a mut Option<Bits>,
    outstanding: &'a mut HashSet<BlockRequest>,
    queued_serves: &'a mut usize,
    last_block: &'a mut Instant,
    down: &'a mut u64,
    remote_ut_metadata: &'a mut Option<u8>,
    remote_ut_pex: &'a mut Option<u8>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup(num_pieces: u32, ours: &[u32], fast: bool) -> SessionSetup {
        let mut bits = Bits::new(num_pieces);
        for &i in ours {
            bits.set(i);
        }
        SessionSetup {
            num_pieces,
            fast,
            extended: false,
            ours: bits,
            client: "test".into(),
            metadata: None,
            pex: false,
            listen_port: None,
        }
    }

    fn wire(messages: &[Message<'_>]) -> Vec<u8> {
        let mut out = Vec::new();
        for m in messages {
            m.encode(&mut out);
        }
        out
    }

    fn sent(s: &mut PeerSession, now: Instant) -> Vec<u8> {
        let mut buf = Vec::new();
        s.poll_transmit(&mut buf, now);
        buf
    }

    fn events(s: &mut PeerSession) -> Vec<Event> {
        std::iter::from_fn(|| s.poll_event()).collect()
    }

    fn block(index: u32, begin: u32) -> BlockRequest {
        BlockRequest {
            piece: index,
            offset: begin,
            length: 4,
        }
    }

    #[test]
    fn announces_pieces_with_bitfield_or_fast_shortcuts() {
        let now = Instant::now();
        let mut s = PeerSession::new(setup(10, &[0, 9], false), now);
        assert_eq!(sent(&mut s, now), wire(&[Message::Bitfield(&[0x80, 0x40])]));
        let mut s = PeerSession::new(setup(2, &[0, 1], true), now);
        assert_eq!(sent(&mut s, now), wire(&[Message::HaveAll]));
        let mut s = PeerSession::new(setup(2, &[], true), now);
        assert_eq!(sent(&mut s, now), wire(&[Message::HaveNone]));
    }

    #[test]
    fn requested_blocks_arrive_and_unrequested_ones_are_ignored() {
        let now = Instant::now();
        let mut s = PeerSession::new(setup(4, &[], true), now);
        let _ = sent(&mut s, now);
        s.handle_input(&wire(&[Message::HaveAll, Message::Unchoke]), now)
            .unwrap();
        s.handle_command(Command::Request(vec![block(1, 0)]), now);
        assert_eq!(sent(&mut s, now), wire(&[Message::Request(block(1, 0))]));
        assert_eq!(s.outstanding(), 1);
        let input = wire(&[
            Message::Piece {
                index: 2,
                begin: 0,
                data: b"evil",
            },
            Message::Piece {
                index: 1,
                begin: 0,
                data: b"good",
            },
        ]);
        // Split anywhere: the framer reassembles.
        let (a, b) = input.split_at(7);
        s.handle_input(a, now).unwrap();
        s.handle_input(b, now).unwrap();
        let got = events(&mut s);
        assert!(matches!(got[0], Event::Pieces(ref b) if b.is_complete()));
        assert_eq!(got[1], Event::Choked(false));
        assert_eq!(
            got[2],
            Event::Block {
                req: block(1, 0),
                data: b"good".to_vec()
            }
        );
        assert_eq!(got.len(), 3);
        assert_eq!(s.outstanding(), 0);
    }

    #[test]
    fn requests_for_pieces_we_lack_drop_the_peer() {
        let now = Instant::now();
        let mut s = PeerSession::new(setup(4, &[0], false), now);
        s.handle_command(Command::Choke(false), now);
        s.handle_input(&wire(&[Message::Request(block(0, 0))]), now)
            .unwrap();
        assert!(events(&mut s).contains(&Event::Serve(block(0, 0))));
        let err = s
            .handle_input(&wire(&[Message::Request(block(3, 0))]), now)
            .unwrap_err();
        assert!(matches!(err, SessionError::Violation(_)), "{err}");
        assert!(
            s.handle_input(&[], now).is_err(),
            "a failed session stays failed"
        );
    }

    #[test]
    fn oversized_messages_are_an_error_before_buffering() {
        let now = Instant::now();
        let mut s = PeerSession::new(setup(4, &[], false), now);
        let err = s.handle_input(&[0x10, 0, 0, 0, 7], now).unwrap_err();
        assert!(matches!(err, SessionError::Frame(_)), "{err}");
    }

    #[test]
    fn choked_requests_are_rejected_with_fast_and_served_when_unchoked() {
        let now = Instant::now();
        let mut s = PeerSession::new(setup(4, &[0], true), now);
        let _ = sent(&mut s, now);
        assert!(s.am_choking());
        s.handle_input(&wire(&[Message::Request(block(0, 0))]), now)
            .unwrap();
        assert_eq!(
            sent(&mut s, now),
            wire(&[Message::RejectRequest(block(0, 0))])
        );
        s.handle_command(Command::Choke(false), now);
        s.handle_input(&wire(&[Message::Request(block(0, 4))]), now)
            .unwrap();
        assert_eq!(events(&mut s), [Event::Serve(block(0, 4))]);
        s.send_block_with(block(0, 4), |out: &mut Vec<u8>| {
            out.extend_from_slice(b"data");
            Ok::<(), ()>(())
        });
        assert_eq!(
            sent(&mut s, now),
            wire(&[
                Message::Unchoke,
                Message::Piece {
                    index: 0,
                    begin: 4,
                    data: b"data"
                }
            ])
        );
    }

    #[test]
    fn a_choke_voids_requests_without_the_fast_extension() {
        let now = Instant::now();
        let mut s = PeerSession::new(setup(4, &[], false), now);
        s.handle_input(&wire(&[Message::Unchoke]), now).unwrap();
        s.handle_command(Command::Request(vec![block(1, 0), block(1, 4)]), now);
        s.handle_input(&wire(&[Message::Choke]), now).unwrap();
        let got = events(&mut s);
        let Some(Event::Dropped(mut dropped)) = got.last().cloned() else {
            panic!("{got:?}")
        };
        dropped.sort();
        assert_eq!(dropped, [block(1, 0), block(1, 4)]);
        assert_eq!(s.outstanding(), 0);
    }

    #[test]
    fn timers_send_keep_alives_report_stalls_and_drop_silent_peers() {
        let t0 = Instant::now();
        let mut s = PeerSession::new(setup(4, &[], true), t0);
        let _ = sent(&mut s, t0);
        s.handle_input(&wire(&[Message::HaveAll, Message::Unchoke]), t0)
            .unwrap();
        s.handle_command(Command::Request(vec![block(2, 0)]), t0);
        let _ = sent(&mut s, t0);
        let _ = events(&mut s);
        assert_eq!(s.poll_timeout(), t0 + STATS_EVERY);
        let t1 = t0 + REQUEST_TIMEOUT;
        s.handle_timeout(t1).unwrap();
        assert!(events(&mut s).contains(&Event::Stalled(vec![block(2, 0)])));
        let t2 = t0 + KEEP_ALIVE_EVERY;
        s.handle_timeout(t2).unwrap();
        assert_eq!(sent(&mut s, t2), wire(&[Message::KeepAlive]));
        let err = s.handle_timeout(t0 + IDLE_TIMEOUT).unwrap_err();
        assert!(matches!(err, SessionError::Idle(_)));
    }

    #[test]
    fn the_extension_handshake_reports_reqq() {
        let now = Instant::now();
        let mut st = setup(4, &[], true);
        st.extended = true;
        let mut s = PeerSession::new(st, now);
        let ours = sent(&mut s, now);
        assert_eq!(
            ours.get(4..6),
            Some(&[20u8, 0][..]),
            "extension handshake first"
        );
        let payload = b"d4:reqqi42ee";
        s.handle_input(&wire(&[Message::Extended { id: 0, payload }]), now)
            .unwrap();
        assert_eq!(
            events(&mut s),
            [
                Event::Reqq(42),
                Event::PeerInfo {
                    listen_port: None,
                    pex: false
                }
            ]
        );
    }

    #[test]
    fn metadata_is_served_to_peers_that_ask() {
        let now = Instant::now();
        let mut st = setup(4, &[0, 1, 2, 3], true);
        st.extended = true;
        let info: Vec<u8> = (0..20_000u32).map(|i| i as u8).collect();
        st.metadata = Some(Arc::new(MetadataServer::new(info.clone())));
        let mut s = PeerSession::new(st, now);
        let ours = sent(&mut s, now);
        let text = String::from_utf8_lossy(&ours);
        assert!(text.contains("11:ut_metadatai1e"), "{text}");
        assert!(text.contains("13:metadata_sizei20000e"), "{text}");
        let theirs = b"d1:md11:ut_metadatai7eee";
        let mut ask = Vec::new();
        MetadataMessage::Request { piece: 1 }.encode(&mut ask);
        let mut past_end = Vec::new();
        MetadataMessage::Request { piece: 2 }.encode(&mut past_end);
        s.handle_input(
            &wire(&[
                Message::Extended {
                    id: 0,
                    payload: theirs,
                },
                Message::Extended {
                    id: OUR_UT_METADATA,
                    payload: &ask,
                },
                Message::Extended {
                    id: OUR_UT_METADATA,
                    payload: &past_end,
                },
            ]),
            now,
        )
        .unwrap();
        let mut expected = Vec::new();
        MetadataMessage::Data {
            piece: 1,
            total_size: 20_000,
            data: &info[16_384..],
        }
        .encode_message(7, &mut expected);
        MetadataMessage::Reject { piece: 2 }.encode_message(7, &mut expected);
        assert_eq!(sent(&mut s, now), expected);
    }

    #[test]
    fn pex_is_advertised_received_and_sent_only_when_allowed() {
        use rustico_peer_wire::{PexFlags, PexPeer};
        let now = Instant::now();
        let message = PexMessage {
            added: vec![PexPeer {
                addr: "10.1.2.3:6881".parse().unwrap(),
                flags: PexFlags(0),
            }],
            dropped: vec![],
        };
        let mut payload = Vec::new();
        message.encode(&mut payload);
        for allowed in [true, false] {
            let mut st = setup(4, &[], true);
            st.extended = true;
            st.pex = allowed;
            st.listen_port = Some(7000);
            let mut s = PeerSession::new(st, now);
            let text = String::from_utf8_lossy(&sent(&mut s, now)).into_owned();
            assert_eq!(text.contains("6:ut_pexi2e"), allowed, "{text}");
            assert!(text.contains("1:pi7000e"), "{text}");
            s.handle_input(
                &wire(&[
                    Message::Extended {
                        id: 0,
                        payload: b"d1:md6:ut_pexi5ee1:pi6881ee",
                    },
                    Message::Extended {
                        id: OUR_UT_PEX,
                        payload: &payload,
                    },
                ]),
                now,
            )
            .unwrap();
            let got = events(&mut s);
            assert!(
                got.contains(&Event::PeerInfo {
                    listen_port: Some(6881),
                    pex: allowed
                }),
                "{got:?}"
            );
            assert_eq!(
                got.contains(&Event::Pex(message.clone())),
                allowed,
                "{got:?}"
            );
            s.handle_command(Command::Pex(message.clone()), now);
            let mut expected = Vec::new();
            if allowed {
                message.encode_message(5, &mut expected);
            }
            assert_eq!(sent(&mut s, now), expected);
        }
    }

    #[test]
    fn arbitrary_input_never_panics() {
        let now = Instant::now();
        let mut state = 1u64;
        for _ in 0..300 {
            let mut s = PeerSession::new(setup(20, &[1, 2], true), now);
            let mut bytes = Vec::new();
            for _ in 0..64 {
                state = crate::engine::splitmix(state);
                bytes.push((state >> 24) as u8 % 24);
            }
            let _ = s.handle_input(&bytes, now);
        }
    }
}
