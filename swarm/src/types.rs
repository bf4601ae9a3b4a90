//! The values that go into a [`Swarm`](crate::Swarm) and come out of it.

use std::fmt;
use std::net::SocketAddr;

use rustico_peer_wire::PexMessage;
use rustico_piece_picker::PeerKey;
use rustico_pieces::{Bitfield, BlockRequest, PieceData};

/// Who a peer is: an address, or a web seed (BEP 19) by its index in the
/// torrent's `url-list` (the driver knows the URL).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Remote {
    /// A BitTorrent peer at this address (for an incoming peer, the
    /// connection's address).
    Addr(SocketAddr),
    /// Web seed number `n` of the torrent.
    WebSeed(usize),
}

impl fmt::Display for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Remote::Addr(addr) => write!(f, "{addr}"),
            Remote::WebSeed(n) => write!(f, "web seed #{n}"),
        }
    }
}

/// Where an address to dial came from. When slots are scarce the policy
/// dials, among addresses with as few failed attempts, the best source
/// first: what the user gave (the command line, a magnet link's `x.pe`,
/// peers that already answered), then trackers, then the DHT, then PEX.
/// So a tracker or DHT answer full of dead addresses cannot push an
/// address the user asked for to the back of a long queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PeerSource {
    /// Given by the user, or known to have answered before.
    User,
    /// A tracker's announce response.
    Tracker,
    /// A DHT lookup (BEP 5).
    Dht,
    /// Another peer's PEX message (BEP 11): the least trusted.
    Pex,
}

/// What the handshake told about a peer, for
/// [`Swarm::handle_connected`](crate::Swarm::handle_connected).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeInfo {
    /// The peer id from its handshake.
    pub peer_id: [u8; 20],
    /// Both sides speak the fast extension (BEP 6).
    pub fast: bool,
    /// The peer's client, for display.
    pub client: String,
    /// The link is encrypted (MSE with RC4), for display.
    pub encrypted: bool,
}

/// Something a connected peer did, as its session reports it, for
/// [`Swarm::handle_peer_event`](crate::Swarm::handle_peer_event).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerEvent {
    /// The peer's pieces (a bitfield, have-all or have-none), everything
    /// it has so far.
    Pieces(Bitfield),
    /// The peer has a new piece.
    Have(u32),
    /// The peer choked (true) or unchoked (false) us.
    Choked(bool),
    /// The peer is interested in our pieces (true) or not.
    Interested(bool),
    /// A block arrived.
    Block {
        /// Which block.
        req: BlockRequest,
        /// Its bytes.
        data: Vec<u8>,
    },
    /// The peer will not serve these requests: rejected (BEP 6), or voided
    /// by a choke without the fast extension.
    Rejected(Vec<BlockRequest>),
    /// The session gave up waiting for these requests (its own time-out).
    Stalled(Vec<BlockRequest>),
    /// The peer's extension handshake: how many requests it queues.
    Reqq(usize),
    /// The peer's extension handshake: its listen port, and whether it
    /// speaks `ut_pex`.
    ExtensionInfo {
        /// The `p` it announced.
        listen_port: Option<u16>,
        /// It takes `ut_pex` messages.
        pex: bool,
    },
    /// A `ut_pex` message from the peer.
    Pex(PexMessage),
    /// BEP 6 `allowed fast`: the peer serves this piece even while it
    /// chokes us (fast extension only; at most 32 grants are kept).
    AllowedFast(u32),
    /// The peer did not give the block hashes of this piece that
    /// [`PeerCommand::RequestBlockHashes`] asked for (it rejected the
    /// request, or its answer failed the check): another peer is asked.
    BlockHashesRefused(u32),
    /// Payload bytes moved since the previous report.
    Transferred {
        /// Bytes received.
        down: u64,
        /// Bytes sent.
        up: u64,
    },
}

impl PeerEvent {
    /// Turns what a peer-wire session reported into the swarm's events,
    /// appended to `batch` (a driver hands them over in order); returns
    /// the event back when it is the driver's own business (a DHT port,
    /// metadata, hashes). An extension handshake gives two events (the
    /// peer's `reqq`, then its listen port and PEX support); rejects that
    /// follow one another are merged into one [`PeerEvent::Rejected`].
    pub fn from_session(
        event: rustico_peer_wire::Event,
        num_pieces: u32,
        batch: &mut Vec<PeerEvent>,
    ) -> Option<rustico_peer_wire::Event> {
        use rustico_peer_wire::Event as Wire;
        let event = match event {
            Wire::Bitfield(bits) => PeerEvent::Pieces(bits),
            // Once per connection: the session reports `have all` only when
            // it changes what the peer has.
            Wire::HaveAll => PeerEvent::Pieces(Bitfield::full(num_pieces)),
            Wire::HaveNone => PeerEvent::Pieces(Bitfield::new(num_pieces)),
            Wire::Have(piece) => PeerEvent::Have(piece),
            Wire::Choked => PeerEvent::Choked(true),
            Wire::Unchoked => PeerEvent::Choked(false),
            Wire::Interested => PeerEvent::Interested(true),
            Wire::NotInterested => PeerEvent::Interested(false),
            Wire::Block { req, data } => PeerEvent::Block { req, data },
            Wire::Dropped(reqs) => {
                if let Some(PeerEvent::Rejected(previous)) = batch.last_mut() {
                    previous.extend(reqs);
                    return None;
                }
                PeerEvent::Rejected(reqs)
            }
            Wire::Stalled(reqs) => PeerEvent::Stalled(reqs),
            Wire::Extensions(ext) => {
                if let Some(reqq) = ext.reqq {
                    batch.push(PeerEvent::Reqq(reqq.clamp(1, MAX_REQQ) as usize));
                }
                PeerEvent::ExtensionInfo {
                    listen_port: ext.listen_port,
                    pex: ext.ut_pex,
                }
            }
            Wire::Pex(message) => PeerEvent::Pex(message),
            Wire::Stats { down, up } => PeerEvent::Transferred { down, up },
            Wire::AllowedFast(piece) => PeerEvent::AllowedFast(piece),
            other @ (Wire::DhtPort(_)
            | Wire::MetadataPiece { .. }
            | Wire::MetadataRejected { .. }
            | Wire::Hashes { .. }
            | Wire::HashesRejected(_)) => return Some(other),
        };
        batch.push(event);
        None
    }
}

/// The most requests a peer's `reqq` is taken to allow: a peer that
/// announces more gets this many (a pipeline is sized by rate anyway).
const MAX_REQQ: u32 = 2000;

/// Why the swarm closes a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloseReason {
    /// The peer is banned (corrupt data).
    Banned,
    /// We and the peer both have everything: nothing to trade.
    BothSeeding,
    /// Another connection with the same peer is kept instead.
    Duplicate,
    /// The peer broke the protocol (a piece index out of range, a bitfield
    /// of the wrong length, a block of the wrong size).
    ProtocolViolation,
    /// The torrent is stopping.
    Shutdown,
    /// Neither side was interested, or no payload moved, for too long
    /// ([`SwarmConfig::idle_timeout`](crate::SwarmConfig::idle_timeout),
    /// [`SwarmConfig::inactivity_timeout`](crate::SwarmConfig::inactivity_timeout)).
    Idle,
    /// Its slot went to a newcomer: every slot was taken and it moved no
    /// payload for longer than
    /// [`SwarmConfig::eviction_grace`](crate::SwarmConfig::eviction_grace).
    Evicted,
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CloseReason::Banned => "banned",
            CloseReason::BothSeeding => "both seeding",
            CloseReason::Duplicate => "duplicate connection",
            CloseReason::ProtocolViolation => "protocol violation",
            CloseReason::Shutdown => "shutting down",
            CloseReason::Idle => "idle",
            CloseReason::Evicted => "slot given to another peer",
        })
    }
}

/// An order for one peer's connection, from
/// [`Swarm::poll_command`](crate::Swarm::poll_command).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerCommand {
    /// Ask the peer for these blocks.
    Request(Vec<BlockRequest>),
    /// Withdraw a request (another peer delivered the block, or this one
    /// sat on it too long).
    Cancel(BlockRequest),
    /// We now have this piece (on disk). The session tells a peer that
    /// has the piece only once we complete ([`Session::have`]).
    ///
    /// [`Session::have`]: rustico_peer_wire::session::Session::have
    Have(u32),
    /// Choke (true) or unchoke (false) the peer.
    Choke(bool),
    /// Tell the peer whether we want anything from it.
    Interested(bool),
    /// Send this `ut_pex` message.
    Pex(PexMessage),
    /// Close the connection; report
    /// [`Swarm::handle_disconnected`](crate::Swarm::handle_disconnected)
    /// once it is closed.
    Close(CloseReason),
    /// A v2 torrent's piece from several peers failed its hash check
    /// ([`SwarmConfig::block_hashes`](crate::SwarmConfig::block_hashes)):
    /// ask this peer for the piece's 16 KiB block hashes (a BEP 52 hash
    /// request on layer 0). Check its answer against the piece's hash,
    /// compare it with the failed copy and report the blocks that differ
    /// to [`Swarm::handle_corrupt_blocks`](crate::Swarm::handle_corrupt_blocks);
    /// report a reject, or an answer that fails the check, as
    /// [`PeerEvent::BlockHashesRefused`].
    RequestBlockHashes(u32),
    /// Web seeds only: the data it sent failed the hash check; stop
    /// fetching from it for a while (report `Choked(true)` and the
    /// dropped requests, then `Choked(false)` when ready again).
    BackOff,
}

/// How a connection ended, for
/// [`Swarm::handle_disconnected`](crate::Swarm::handle_disconnected).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disconnect {
    /// Connecting, the handshake or the protocol failed: the address is
    /// backed off longer with each failure.
    Failed,
    /// A normal end (the peer hung up, or we closed it).
    Closed,
}

/// Why [`Swarm::handle_incoming`](crate::Swarm::handle_incoming) refused a
/// connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The address is banned.
    #[error("banned")]
    Banned,
    /// The torrent has as many peers as it may, none of which may be
    /// replaced.
    #[error("too many peers")]
    TooManyPeers,
    /// The peer's IP address has as many connections as one address may
    /// ([`SwarmConfig::max_peers_per_ip`](crate::SwarmConfig::max_peers_per_ip)).
    #[error("too many connections from this address")]
    TooManyFromAddress,
}

/// A connection the driver should make, from
/// [`Swarm::poll_dial`](crate::Swarm::poll_dial).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dial {
    /// The handle the swarm gave the connection-to-be: report its
    /// handshake or its failure under it.
    pub peer: PeerKey,
    /// Whom to connect to.
    pub remote: Remote,
}

/// A piece whose blocks have all arrived, from
/// [`Swarm::poll_piece`](crate::Swarm::poll_piece): hash it, write it if it
/// matches, then report
/// [`Swarm::handle_piece_saved`](crate::Swarm::handle_piece_saved) or
/// [`Swarm::handle_piece_failed`](crate::Swarm::handle_piece_failed) with
/// the same bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletedPiece {
    /// The piece index.
    pub piece: u32,
    /// Its bytes, in the buffers its blocks arrived in.
    pub data: PieceData,
}

/// Why a peer was banned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BanReason {
    /// It alone sent pieces that failed their hash check, too often.
    FailedPieces,
    /// It took part in too many pieces that failed their hash check.
    SharedFailedPieces,
    /// A good copy of a failed piece proved one of its blocks wrong.
    CorruptBlock,
    /// A v2 piece's block hashes, from the merkle tree, proved one of
    /// its blocks wrong.
    BlockHashMismatch,
}

impl fmt::Display for BanReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BanReason::FailedPieces => "sent pieces that failed the hash check",
            BanReason::SharedFailedPieces => {
                "took part in too many pieces that failed the hash check"
            }
            BanReason::CorruptBlock => "sent a corrupt block",
            BanReason::BlockHashMismatch => "sent a block its merkle hash refutes",
        })
    }
}

/// Something the torrent's driver (or its user) should know, from
/// [`Swarm::poll_event`](crate::Swarm::poll_event).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A piece was verified and saved (announced to peers with `have`).
    PieceSaved {
        /// The piece.
        piece: u32,
    },
    /// A piece failed its hash check; these sent its blocks.
    HashFailed {
        /// The piece.
        piece: u32,
        /// Who sent its blocks, each once.
        senders: Vec<Remote>,
    },
    /// Every piece is verified and saved (announce `completed`).
    Complete,
    /// A peer is banned; its connections are closed (a web seed is backed
    /// off instead).
    Banned {
        /// Who.
        remote: Remote,
        /// Why.
        reason: BanReason,
    },
    /// Save this resume snapshot of our pieces now.
    SaveResume(Bitfield),
    /// A `ut_pex` message from a peer was taken.
    PexReceived {
        /// The peer that sent it.
        peer: PeerKey,
        /// Addresses that were new to us.
        learned: usize,
        /// Addresses it listed.
        listed: usize,
    },
}

/// Per-peer figures for a user interface, from
/// [`Swarm::peer_stats`](crate::Swarm::peer_stats).
#[derive(Debug, Clone, PartialEq)]
pub struct PeerStats {
    /// Who.
    pub remote: Remote,
    /// Where it accepts connections, when known.
    pub listen_addr: Option<SocketAddr>,
    /// We dialled it.
    pub outgoing: bool,
    /// Its handshake is done.
    pub connected: bool,
    /// Its client, from the handshake.
    pub client: String,
    /// Its link is encrypted (as the driver reported at the handshake).
    pub encrypted: bool,
    /// We choke it.
    pub am_choking: bool,
    /// We are interested in it.
    pub am_interested: bool,
    /// It chokes us.
    pub peer_choking: bool,
    /// It is interested in us.
    pub peer_interested: bool,
    /// It sat on our requests past the time-out and has not sent a block
    /// since.
    pub snubbed: bool,
    /// Download rate from it, bytes per second.
    pub down_rate: f64,
    /// Upload rate to it, bytes per second.
    pub up_rate: f64,
    /// Payload bytes received from it.
    pub downloaded: u64,
    /// Payload bytes sent to it.
    pub uploaded: u64,
    /// How many pieces it has.
    pub pieces: u32,
    /// Requests sent to it and not yet answered.
    pub requests_in_flight: usize,
}

/// Whole-torrent figures for a user interface, from
/// [`Swarm::stats`](crate::Swarm::stats).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SwarmStats {
    /// Pieces verified and saved.
    pub pieces_have: u32,
    /// Pieces in the torrent.
    pub num_pieces: u32,
    /// Bytes verified and saved.
    pub have_bytes: u64,
    /// Bytes in the torrent.
    pub total_bytes: u64,
    /// Payload bytes received (as reported in
    /// [`PeerEvent::Transferred`]).
    pub downloaded: u64,
    /// Payload bytes sent.
    pub uploaded: u64,
    /// Download rate, bytes per second, all peers together.
    pub down_rate: f64,
    /// Upload rate, bytes per second.
    pub up_rate: f64,
    /// Peers with a completed handshake (web seeds included).
    pub peers: usize,
    /// Connections being dialled or handshaking.
    pub connecting: usize,
    /// Addresses known as candidates.
    pub candidates: usize,
    /// Pieces handed out to be verified and saved, not yet reported.
    pub pieces_saving: usize,
    /// The picker hands out duplicate requests (end-game).
    pub end_game: bool,
    /// Pieces being assembled: a buffer each, holding the blocks received
    /// so far.
    pub partial_pieces: usize,
    /// Failed pieces whose per-block hashes smart ban keeps (at most
    /// [`SwarmConfig::max_suspect_pieces`](crate::SwarmConfig::max_suspect_pieces)).
    pub suspect_pieces: usize,
    /// Orders for peers not yet taken with
    /// [`Swarm::poll_command`](crate::Swarm::poll_command).
    pub queued_commands: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustico_peer_wire::{Event as Wire, PeerExtensions};

    fn req(offset: u32) -> BlockRequest {
        BlockRequest {
            piece: 0,
            offset,
            length: 16384,
        }
    }

    #[test]
    fn session_events_become_the_swarms_in_order() {
        let mut batch = Vec::new();
        let ext = PeerExtensions {
            reqq: Some(1_000_000),
            listen_port: Some(6881),
            ut_pex: true,
            ..PeerExtensions::default()
        };
        for event in [
            Wire::HaveAll,
            Wire::Extensions(ext),
            Wire::Dropped(vec![req(0)]),
            Wire::Dropped(vec![req(16384)]),
            Wire::Unchoked,
        ] {
            assert_eq!(PeerEvent::from_session(event, 3, &mut batch), None);
        }
        assert_eq!(
            batch,
            [
                PeerEvent::Pieces(Bitfield::full(3)),
                PeerEvent::Reqq(MAX_REQQ as usize),
                PeerEvent::ExtensionInfo {
                    listen_port: Some(6881),
                    pex: true
                },
                PeerEvent::Rejected(vec![req(0), req(16384)]),
                PeerEvent::Choked(false),
            ]
        );
        // The driver's own events come back untouched.
        let back = PeerEvent::from_session(Wire::DhtPort(6881), 3, &mut batch);
        assert_eq!(back, Some(Wire::DhtPort(6881)));
        assert_eq!(batch.len(), 5);
    }
}
