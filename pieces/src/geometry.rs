//! Piece and block arithmetic: how a torrent's bytes are cut.

/// The usual block size, and the largest block most clients request.
pub const BLOCK_LEN: u32 = 16 * 1024;

/// The most pieces a torrent may have: piece indices are `u32` on the wire.
pub const MAX_PIECES: u64 = u32::MAX as u64;

/// One block: `length` bytes at `offset` within `piece`. The `request`,
/// `cancel` and `reject request` messages name one of these (BEP 3 calls
/// the fields `index`, `begin` and `length`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlockRequest {
    /// Piece index.
    pub piece: u32,
    /// Byte offset of the block within the piece.
    pub offset: u32,
    /// Length of the block in bytes.
    pub length: u32,
}

impl BlockRequest {
    /// The block's index within its piece, for blocks of [`BLOCK_LEN`].
    pub fn block_index(&self) -> u32 {
        self.offset / BLOCK_LEN
    }
}

/// Why a [`Geometry`] was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum GeometryError {
    /// The piece length is zero.
    #[error("piece length is zero")]
    ZeroPieceLength,
    /// The total length needs more pieces than a `u32` can index.
    #[error("{total_length} bytes in pieces of {piece_length} need more than {MAX_PIECES} pieces")]
    TooManyPieces {
        /// The total length.
        total_length: u64,
        /// The nominal piece length.
        piece_length: u32,
    },
}

/// The shape of a torrent's byte stream: its total length cut into pieces
/// of `piece_length` (the last may be shorter), each cut into blocks of
/// [`BLOCK_LEN`] (the last may be shorter).
///
/// ```
/// use rustico_pieces::Geometry;
/// let geometry = Geometry::new(40_000, 16_384)?;
/// assert_eq!(geometry.num_pieces(), 3);
/// assert_eq!(geometry.piece_size(2), Some(40_000 - 2 * 16_384));
/// assert_eq!(geometry.piece_size(3), None);
/// assert_eq!(geometry.piece_offset(2), 32_768);
/// # Ok::<(), rustico_pieces::GeometryError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Geometry {
    total_length: u64,
    piece_length: u32,
    num_pieces: u32,
}

impl Geometry {
    /// The geometry of `total_length` bytes in pieces of `piece_length`.
    pub fn new(total_length: u64, piece_length: u32) -> Result<Geometry, GeometryError> {
        if piece_length == 0 {
            return Err(GeometryError::ZeroPieceLength);
        }
        let num_pieces =
            u32::try_from(total_length.div_ceil(u64::from(piece_length))).map_err(|_| {
                GeometryError::TooManyPieces {
                    total_length,
                    piece_length,
                }
            })?;
        Ok(Geometry {
            total_length,
            piece_length,
            num_pieces,
        })
    }

    /// The total length in bytes.
    pub fn total_length(&self) -> u64 {
        self.total_length
    }

    /// The nominal piece length (every piece but possibly the last).
    pub fn piece_length(&self) -> u32 {
        self.piece_length
    }

    /// How many pieces there are.
    pub fn num_pieces(&self) -> u32 {
        self.num_pieces
    }

    /// Offset of a piece's first byte in the torrent's byte stream.
    pub fn piece_offset(&self, piece: u32) -> u64 {
        u64::from(piece) * u64::from(self.piece_length)
    }

    /// The length of piece `piece` (the last may be shorter); `None` past
    /// the end.
    pub fn piece_size(&self, piece: u32) -> Option<u32> {
        if piece >= self.num_pieces {
            return None;
        }
        let rest = self.total_length - self.piece_offset(piece);
        // At most piece_length, which is a u32.
        Some(rest.min(u64::from(self.piece_length)) as u32)
    }

    /// How many blocks of [`BLOCK_LEN`] piece `piece` has (0 past the end).
    pub fn num_blocks(&self, piece: u32) -> u32 {
        self.piece_size(piece)
            .map_or(0, |size| size.div_ceil(BLOCK_LEN))
    }

    /// The blocks of piece `piece`, in order (none past the end).
    pub fn blocks(&self, piece: u32) -> Blocks {
        Blocks {
            piece,
            offset: 0,
            piece_size: self.piece_size(piece).unwrap_or(0),
        }
    }

    /// Whether `block` lies inside its piece: a known piece, a non-empty
    /// length of at most [`BLOCK_LEN`], and an end inside the piece. The
    /// offset need not be a multiple of [`BLOCK_LEN`] (peers may ask for
    /// any range).
    pub fn contains(&self, block: BlockRequest) -> bool {
        self.piece_size(block.piece).is_some_and(|size| {
            block.length > 0
                && block.length <= BLOCK_LEN
                && block
                    .offset
                    .checked_add(block.length)
                    .is_some_and(|end| end <= size)
        })
    }
}

/// The blocks of one piece, from [`Geometry::blocks`].
#[derive(Debug, Clone)]
pub struct Blocks {
    piece: u32,
    offset: u32,
    piece_size: u32,
}

impl Iterator for Blocks {
    type Item = BlockRequest;

    fn next(&mut self) -> Option<BlockRequest> {
        if self.offset >= self.piece_size {
            return None;
        }
        let length = (self.piece_size - self.offset).min(BLOCK_LEN);
        let block = BlockRequest {
            piece: self.piece,
            offset: self.offset,
            length,
        };
        self.offset += length;
        Some(block)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = (self.piece_size.saturating_sub(self.offset)).div_ceil(BLOCK_LEN) as usize;
        (left, Some(left))
    }
}

impl ExactSizeIterator for Blocks {}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn refuses_zero_piece_length_and_too_many_pieces() {
        assert_eq!(Geometry::new(10, 0), Err(GeometryError::ZeroPieceLength));
        assert!(matches!(
            Geometry::new(u64::MAX, 1),
            Err(GeometryError::TooManyPieces { .. })
        ));
    }

    #[test]
    fn empty_torrent_has_no_pieces() {
        let g = Geometry::new(0, 16_384).unwrap();
        assert_eq!(g.num_pieces(), 0);
        assert_eq!(g.piece_size(0), None);
        assert_eq!(g.blocks(0).count(), 0);
    }

    #[test]
    fn contains_checks_bounds() {
        let g = Geometry::new(20_000, 16_384).unwrap();
        let ok = BlockRequest {
            piece: 1,
            offset: 0,
            length: 20_000 - 16_384,
        };
        assert!(g.contains(ok));
        assert!(!g.contains(BlockRequest {
            length: ok.length + 1,
            ..ok
        }));
        assert!(!g.contains(BlockRequest { length: 0, ..ok }));
        assert!(!g.contains(BlockRequest { piece: 2, ..ok }));
        assert!(!g.contains(BlockRequest {
            offset: u32::MAX,
            ..ok
        }));
    }

    proptest! {
        /// The blocks of every piece tile it exactly, and the pieces tile
        /// the torrent.
        #[test]
        fn blocks_tile_pieces(total in 1u64..5_000_000, piece_kib in 1u32..600) {
            let g = Geometry::new(total, piece_kib * 1024).unwrap();
            let mut sum = 0u64;
            for piece in 0..g.num_pieces() {
                let size = g.piece_size(piece).unwrap();
                let mut next = 0;
                for block in g.blocks(piece) {
                    prop_assert_eq!(block.offset, next);
                    prop_assert!(g.contains(block));
                    next += block.length;
                }
                prop_assert_eq!(next, size);
                prop_assert_eq!(g.blocks(piece).len() as u32, g.num_blocks(piece));
                sum += u64::from(size);
            }
            prop_assert_eq!(sum, total);
        }
    }
}
