//! What a torrent is cut into: pieces, blocks, and sets of pieces.
//!
//! The vocabulary the other rustico crates share, so that one type stands
//! for one concept everywhere: the wire protocol, the piece picker, the
//! swarm and storage all name a block with the same [`BlockRequest`] and a
//! set of pieces with the same [`Bitfield`].
//!
//! ```
//! use rustico_pieces::{Bitfield, BlockRequest, Geometry, BLOCK_LEN};
//!
//! // 100,000 bytes in pieces of 32 KiB: three full pieces and a short one.
//! let geometry = Geometry::new(100_000, 32 * 1024)?;
//! assert_eq!(geometry.num_pieces(), 4);
//! assert_eq!(geometry.piece_size(3), Some(100_000 - 3 * 32 * 1024));
//!
//! // Each piece in blocks of 16 KiB, the last block of the last piece short.
//! let blocks: Vec<BlockRequest> = geometry.blocks(3).collect();
//! assert_eq!(blocks, [BlockRequest { piece: 3, offset: 0, length: 1_696 }]);
//! assert_eq!(geometry.blocks(0).count(), 2);
//! assert!(geometry.blocks(0).all(|b| b.length == BLOCK_LEN));
//!
//! // Which pieces we have, in the wire format of the `bitfield` message.
//! let mut have = Bitfield::new(geometry.num_pieces());
//! have.set(1);
//! assert_eq!(have.as_wire(), &[0b0100_0000]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Map
//! - [`Geometry`]: the total length and the nominal piece length; how many
//!   pieces, the size of each ([`Geometry::piece_size`]), and its blocks.
//! - [`BlockRequest`], [`BLOCK_LEN`]: one block of one piece, as the
//!   `request`, `cancel` and `reject` messages name it.
//! - [`Bitfield`]: a set of pieces, stored as the `bitfield` message's bytes.
//! - [`PieceData`]: a piece's bytes in the buffers its blocks arrived in.
//! - [`Progress`]: how far a long piece-by-piece job (hashing a new torrent,
//!   rechecking files) has come.
//!
//! # Names
//! Across rustico, `piece_length` is always the nominal length of a piece
//! (every piece but possibly the last), a `u32`; `piece_size(i)` is the
//! length of piece `i`; lengths of whole torrents and files are `u64`.
#![forbid(unsafe_code)]

mod bitfield;
mod geometry;
mod piece_data;

pub use bitfield::{Bitfield, BitfieldError};
pub use geometry::{BlockRequest, Blocks, Geometry, GeometryError, BLOCK_LEN, MAX_PIECES};
pub use piece_data::PieceData;

/// How far a long job over pieces has come: passed to the progress callback
/// of torrent creation (hashing) and of a storage recheck.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Progress {
    /// Pieces done so far.
    pub pieces_done: u32,
    /// Pieces in all.
    pub num_pieces: u32,
    /// Bytes done so far.
    pub bytes_done: u64,
    /// Bytes in all.
    pub total_bytes: u64,
}

impl Progress {
    /// The fraction done, from 0.0 to 1.0 (1.0 when there is nothing to do).
    pub fn fraction(&self) -> f64 {
        if self.total_bytes == 0 {
            1.0
        } else {
            self.bytes_done as f64 / self.total_bytes as f64
        }
    }
}
