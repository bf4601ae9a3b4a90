//! The swarm's error type: what a driver got wrong, or a broken invariant.
//! A misbehaving *peer* never produces one: the swarm closes its connection
//! with [`CloseReason::ProtocolViolation`](crate::CloseReason) instead.

use rustico_piece_picker::{PeerKey, PickerError};
use rustico_pieces::GeometryError;

/// What was wrong with a call into a [`Swarm`](crate::Swarm).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SwarmError {
    /// The torrent's lengths cannot describe a torrent.
    #[error("invalid torrent geometry: {0}")]
    Geometry(#[from] GeometryError),
    /// The piece picker refused the configuration.
    #[error("invalid piece picker configuration: {0}")]
    Picker(PickerError),
    /// The bitfield of pieces we have does not fit the torrent.
    #[error("our bitfield has {actual} pieces, the torrent {expected}")]
    HaveLength {
        /// Pieces in the torrent.
        expected: u32,
        /// Pieces in the bitfield given.
        actual: u32,
    },
    /// The handle was never issued, or its peer was disconnected since
    /// (events may race with a close: a driver can ignore this).
    #[error("unknown or disconnected peer {peer}")]
    UnknownPeer {
        /// The stale handle.
        peer: PeerKey,
    },
    /// An event for a peer whose handshake was not reported yet.
    #[error("peer {peer} has not completed its handshake")]
    NotConnected {
        /// The peer.
        peer: PeerKey,
    },
    /// A second handshake reported for the same peer.
    #[error("peer {peer} is already connected")]
    AlreadyConnected {
        /// The peer.
        peer: PeerKey,
    },
    /// [`Swarm::handle_dial_deferred`](crate::Swarm::handle_dial_deferred)
    /// for a peer that is not a dial in progress (an incoming peer, a web
    /// seed, or a connection already established).
    #[error("peer {peer} is not a dial in progress")]
    NotADial {
        /// The peer.
        peer: PeerKey,
    },
    /// A save result for a piece that was not handed out with
    /// [`Swarm::poll_piece`](crate::Swarm::poll_piece), or reported twice.
    #[error("piece {piece} was not handed out to be saved")]
    NotSaving {
        /// The piece.
        piece: u32,
    },
    /// A state the swarm should never reach (a bug): the picker disagreed
    /// with the swarm's bookkeeping.
    #[error("internal error at piece {piece}: {source}")]
    Internal {
        /// The piece concerned.
        piece: u32,
        /// What the picker said.
        source: PickerError,
    },
}
