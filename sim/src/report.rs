//! What a run measured, and how a run fails.

use std::time::Duration;

use rustico_swarm::{BanReason, SwarmError};

use crate::Faults;

/// Piece availability at one moment: copies among the honest peers online.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Availability {
    /// Simulated time since the start.
    pub at: Duration,
    /// Copies per piece, on average.
    pub mean: f64,
    /// Copies of the rarest piece.
    pub min: u32,
}

/// The figures of a finished run.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The seed that made the run.
    pub seed: u64,
    /// The faults that were on.
    pub faults: Faults,
    /// Simulated time until every honest leecher completed.
    pub sim_time: Duration,
    /// Events processed (deliveries, timers, joins, leaves, checks).
    pub events: u64,
    /// A hash of every event in order: the same seed gives the same trace
    /// (0 unless [`SimConfig::trace`](crate::SimConfig::trace) is on).
    pub trace: u64,
    /// Per honest leecher, from its first join to its last piece.
    pub download_times: Vec<Duration>,
    /// Payload bytes the initial seed uploaded.
    pub seed_uploaded: u64,
    /// Payload bytes all peers downloaded.
    pub downloaded: u64,
    /// Piece availability, sampled every simulated second.
    pub availability: Vec<Availability>,
    /// Pieces that failed their hash check, over all peers.
    pub hash_failures: u64,
    /// Bans, over all peers.
    pub bans: u64,
    /// Connections cut by the network.
    pub cuts: u64,
    /// Times a peer left (churn and the seed leaving).
    pub leaves: u64,
    /// The initial seed left once every piece was on an honest leecher.
    pub seed_left: bool,
    /// Longest time no honest leecher saved a piece while some were
    /// incomplete (sampled every simulated second).
    pub max_idle: Duration,
    /// Requests given up by a session's time-out (stalled peers).
    pub stalls: u64,
    /// Connections that delivered one byte at a time.
    pub byte_links: u64,
    /// Choke flips by flapping peers.
    pub flaps: u64,
    /// Handshakes completed, counted at each end: a connection between
    /// two simulated peers counts twice.
    pub connections: u64,
    /// Most connections made between one pair of peers while both were
    /// seeds (nothing to trade). Seeds that redial each other push it up.
    pub max_seed_pair_connections: u32,
    /// Largest count of pieces being assembled at one peer.
    pub max_partial_pieces: usize,
    /// Largest count of suspect pieces kept for smart ban at one peer.
    pub max_suspect_pieces: usize,
    /// Largest count of our requests outstanding on one connection.
    pub max_in_flight: usize,
    /// Largest count of a peer's requests waiting to be served on one
    /// connection.
    pub max_queued_serves: usize,
    /// The honest peers' upload rates (the seed's included) added up, in
    /// bytes per second: no swarm moves its payload faster.
    pub upload_capacity: u64,
}

/// An invariant that a run broke.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Invariant {
    /// A request for a piece the peer does not have.
    #[error("peer {node} requested piece {piece} from peer {from}, which does not have it")]
    RequestedMissing {
        /// Who asked.
        node: usize,
        /// Whom.
        from: usize,
        /// The piece.
        piece: u32,
    },
    /// A request to a peer that chokes us, for a piece not allowed fast.
    #[error("peer {node} requested piece {piece} from peer {from}, which chokes it")]
    RequestedWhileChoked {
        /// Who asked.
        node: usize,
        /// Whom.
        from: usize,
        /// The piece.
        piece: u32,
    },
    /// The swarm ordered something for a connection whose handshake is not
    /// done.
    #[error("peer {node}: swarm order for a connection not established")]
    OrderBeforeHandshake {
        /// The peer.
        node: usize,
    },
    /// A peer was asked to serve a piece it does not have.
    #[error("peer {node} was asked to serve piece {piece}, which it does not have")]
    ServedMissing {
        /// The peer.
        node: usize,
        /// The piece.
        piece: u32,
    },
    /// An honest peer did not complete.
    #[error("honest peer {node} has {have} of {pieces} pieces at the end")]
    NotCompleted {
        /// The peer.
        node: usize,
        /// Pieces it has.
        have: u32,
        /// Pieces in the torrent.
        pieces: u32,
    },
    /// A saved piece does not match the torrent's hash, or the swarm and
    /// the storage disagree about which pieces are saved.
    #[error("peer {node}: piece {piece} saved but not verified")]
    Unverified {
        /// The peer.
        node: usize,
        /// The piece.
        piece: u32,
    },
    /// A corrupt peer that spoiled a piece was not banned.
    #[error("peer {node} got a bad piece from corrupt peer {corrupt} and did not ban it")]
    NotBanned {
        /// The honest peer.
        node: usize,
        /// The corrupt one.
        corrupt: usize,
    },
    /// An honest peer was banned for sending bad data.
    #[error("peer {node} banned honest peer {honest}: {reason}")]
    HonestBanned {
        /// Who banned.
        node: usize,
        /// Whom.
        honest: usize,
        /// Why.
        reason: BanReason,
    },
    /// Blocks were requested from a peer during its ban (it got a
    /// connection again).
    #[error("peer {node} requested blocks from peer {banned}, which it banned")]
    BannedReconnected {
        /// Who banned.
        node: usize,
        /// Whom.
        banned: usize,
    },
    /// No honest peer saved a piece for too long (livelock).
    #[error("no piece saved for {idle:?} while honest peers are incomplete")]
    NoProgress {
        /// How long.
        idle: Duration,
    },
    /// The time limit passed with honest peers incomplete.
    #[error("time limit reached with {incomplete} honest peers incomplete")]
    TimeLimit {
        /// How many.
        incomplete: usize,
    },
    /// A per-peer queue or store grew past its bound.
    #[error("peer {node}: {what} is {value}, above its bound {bound}")]
    Memory {
        /// The peer.
        node: usize,
        /// Which queue.
        what: &'static str,
        /// Its size.
        value: usize,
        /// Its bound.
        bound: usize,
    },
    /// The simulator's own bookkeeping broke (a simulator bug), e.g. a
    /// delivery with no bytes queued for it.
    #[error("simulator bug: {0}")]
    Internal(&'static str),
    /// The swarm refused something the simulator reported (a driver or
    /// swarm bug).
    #[error("peer {node}: the swarm refused a report: {source}")]
    Swarm {
        /// The peer.
        node: usize,
        /// What it said.
        source: SwarmError,
    },
}

/// A run that broke an invariant: the seed replays it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("seed {seed}, at {at:?} of simulated time: {invariant}")]
pub struct SimError {
    /// The seed of the run.
    pub seed: u64,
    /// When.
    pub at: Duration,
    /// What broke.
    pub invariant: Invariant,
}
