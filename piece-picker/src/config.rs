//! What the picker needs to know about the torrent and which rules to apply.

use crate::PickerError;

/// The standard request size (BEP 3 clients use 16 KiB blocks).
pub const DEFAULT_BLOCK_SIZE: u32 = rustico_pieces::BLOCK_LEN;

/// Highest piece priority; 0 means "do not download", 1..=7 higher first.
pub const MAX_PRIORITY: u8 = 7;

/// Priority every piece starts with.
pub const DEFAULT_PRIORITY: u8 = 4;

/// How new pieces are chosen once partial pieces are taken care of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PickMode {
    /// Least available piece first, ties broken at random (the default).
    #[default]
    RarestFirst,
    /// Any piece the peer has, uniformly at random (a baseline).
    Random,
    /// Lowest piece index first, for streaming.
    Sequential,
}

/// Configuration of a [`PiecePicker`](crate::PiecePicker).
///
/// Build one with [`PickerConfig::new`] and adjust the public fields.
#[derive(Clone, Debug)]
pub struct PickerConfig {
    /// Bytes in the torrent (sum of file lengths).
    pub total_length: u64,
    /// Bytes per piece (the last piece may be shorter).
    pub piece_length: u32,
    /// Bytes per request; the last block of a piece may be shorter.
    pub block_size: u32,
    /// Seed of the tie-breaking generator: same seed and same events give
    /// the same picks.
    pub seed: u64,
    /// Strategy for starting new pieces.
    pub mode: PickMode,
    /// While fewer than this many pieces are verified, new pieces are chosen
    /// at random instead of rarest first, so a newcomer soon has something
    /// to trade (a rare piece takes longest to get). 0 disables.
    pub random_first_pieces: u32,
    /// How many extra peers may be asked for the same block in end-game.
    /// 0 disables end-game.
    pub end_game_max_duplicates: u8,
    /// Give fast peers whole pieces of their own and keep slow peers off
    /// pieces that fast peers are downloading (see the crate docs).
    pub fastest_peer_first: bool,
    /// A peer is *fast* when its reported rate could download a whole piece
    /// within this many seconds.
    pub whole_piece_seconds: u32,
}

impl PickerConfig {
    /// A configuration with the defaults: 16 KiB blocks, rarest first, 4
    /// random first pieces, end-game with 1 duplicate per block, fastest
    /// peer first with a 10 second whole-piece threshold, seed 0.
    pub fn new(total_length: u64, piece_length: u32) -> Self {
        Self {
            total_length,
            piece_length,
            block_size: DEFAULT_BLOCK_SIZE,
            seed: 0,
            mode: PickMode::RarestFirst,
            random_first_pieces: 4,
            end_game_max_duplicates: 1,
            fastest_peer_first: true,
            whole_piece_seconds: 10,
        }
    }

    /// Number of pieces `ceil(total_length / piece_length)`.
    pub fn num_pieces(&self) -> u64 {
        if self.piece_length == 0 {
            return 0;
        }
        self.total_length.div_ceil(u64::from(self.piece_length))
    }

    pub(crate) fn geometry(&self) -> Result<Geometry, PickerError> {
        let bad = |reason| Err(PickerError::InvalidConfig { reason });
        if self.piece_length == 0 {
            return bad("piece_length is 0");
        }
        if self.block_size == 0 {
            return bad("block_size is 0");
        }
        if self.total_length == 0 {
            return bad("total_length is 0");
        }
        let n = self.num_pieces();
        if n >= u64::from(u32::MAX) {
            return bad("more than 2^32 - 2 pieces");
        }
        let n = n as u32;
        let last = self.total_length - u64::from(self.piece_length) * u64::from(n - 1);
        Ok(Geometry {
            num_pieces: n,
            piece_length: self.piece_length,
            last_piece_length: last as u32,
            block_size: self.block_size,
        })
    }
}

/// Piece and block sizes derived from the config.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Geometry {
    pub(crate) num_pieces: u32,
    pub(crate) piece_length: u32,
    pub(crate) last_piece_length: u32,
    pub(crate) block_size: u32,
}

impl Geometry {
    pub(crate) fn piece_len(&self, piece: u32) -> u32 {
        if piece + 1 == self.num_pieces {
            self.last_piece_length
        } else {
            self.piece_length
        }
    }

    pub(crate) fn blocks_in(&self, piece: u32) -> u32 {
        self.piece_len(piece).div_ceil(self.block_size)
    }

    pub(crate) fn block_len(&self, piece: u32, block: u32) -> u32 {
        let offset = block * self.block_size;
        (self.piece_len(piece) - offset).min(self.block_size)
    }
}
