//! The one error type of the picker: every input a peer or caller can get
//! wrong is reported here with the value that was wrong.

use std::fmt;

use crate::PeerKey;

/// What was wrong with a call into the [`PiecePicker`](crate::PiecePicker).
///
/// Inputs that come from the network (piece indices, block offsets and
/// lengths, bitfields) are checked before use, so a misbehaving peer produces
/// one of these values, never a panic.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PickerError {
    /// The [`PickerConfig`](crate::PickerConfig) cannot describe a torrent.
    InvalidConfig {
        /// Which field was wrong and why.
        reason: &'static str,
    },
    /// The peer handle was never issued or its peer was removed.
    UnknownPeer {
        /// The stale or foreign handle.
        peer: PeerKey,
    },
    /// A piece index at or beyond the number of pieces.
    PieceOutOfRange {
        /// The index given.
        piece: u32,
        /// How many pieces the torrent has.
        num_pieces: u32,
    },
    /// A block that does not lie on the block grid of its piece (offset not a
    /// multiple of the block size, past the piece end, or wrong length).
    BadBlock {
        /// Piece index of the block.
        piece: u32,
        /// Byte offset of the block within its piece.
        offset: u32,
        /// Length of the block in bytes.
        length: u32,
    },
    /// A BitTorrent bitfield whose byte length is not `ceil(num_pieces / 8)`.
    BitfieldLength {
        /// The length the torrent requires.
        expected: usize,
        /// The length received.
        actual: usize,
    },
    /// A bitfield with a bit set past the last piece (BEP 3 requires zeros).
    BitfieldSpareBits {
        /// Offset of the offending byte within the bitfield.
        byte_offset: usize,
    },
    /// A hash result was reported for a piece that has not received all its
    /// blocks.
    PieceNotComplete {
        /// The piece index.
        piece: u32,
    },
    /// A piece priority above [`MAX_PRIORITY`](crate::MAX_PRIORITY).
    PriorityOutOfRange {
        /// The priority given.
        priority: u8,
    },
    /// A priority list whose length is not the number of pieces.
    PrioritiesLength {
        /// The number of pieces.
        expected: usize,
        /// The length given.
        actual: usize,
    },
}

impl fmt::Display for PickerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidConfig { reason } => write!(f, "invalid picker config: {reason}"),
            Self::UnknownPeer { peer } => write!(f, "unknown or removed peer {peer}"),
            Self::PieceOutOfRange { piece, num_pieces } => {
                write!(
                    f,
                    "piece {piece} out of range (torrent has {num_pieces} pieces)"
                )
            }
            Self::BadBlock {
                piece,
                offset,
                length,
            } => write!(
                f,
                "block at offset {offset} length {length} is not a block of piece {piece}"
            ),
            Self::BitfieldLength { expected, actual } => {
                write!(f, "bitfield is {actual} bytes, expected {expected}")
            }
            Self::BitfieldSpareBits { byte_offset } => {
                write!(f, "bitfield has a spare bit set in byte {byte_offset}")
            }
            Self::PieceNotComplete { piece } => {
                write!(f, "piece {piece} has not received all its blocks")
            }
            Self::PriorityOutOfRange { priority } => write!(
                f,
                "priority {priority} out of range (max {})",
                crate::MAX_PRIORITY
            ),
            Self::PrioritiesLength { expected, actual } => {
                write!(f, "{actual} priorities given for {expected} pieces")
            }
        }
    }
}

impl std::error::Error for PickerError {}
