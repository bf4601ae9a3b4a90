//! Which pieces a peer has: the `bitfield` message as a checked type.

/// A set of piece indices `0..len`, stored as the wire format of the
/// `bitfield` message (piece 0 is the high bit of byte 0).
///
/// Queries and updates are O(1); the number of pieces set is kept up to
/// date, so [`Bitfield::is_complete`] is too.
///
/// ```
/// use rustico_pieces::Bitfield;
///
/// let mut have = Bitfield::from_wire(&[0b1010_0000], 3)?;
/// assert!(have.get(0) && !have.get(1) && have.get(2));
/// assert!(have.set(1));
/// assert!(have.is_complete());
/// assert_eq!(have.as_wire(), &[0b1110_0000]);
///
/// // Spare bits after the last piece must be zero.
/// assert!(Bitfield::from_wire(&[0b1111_0000], 3).is_err());
/// # Ok::<(), rustico_pieces::BitfieldError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Bitfield {
    bytes: Vec<u8>,
    len: u32,
    ones: u32,
}

/// A `bitfield` payload that does not fit the torrent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BitfieldError {
    /// The payload is not `ceil(pieces / 8)` bytes long.
    #[error("bitfield has {found} bytes, expected {expected} for {pieces} pieces")]
    WrongLength {
        /// Bytes received.
        found: usize,
        /// Bytes the piece count requires.
        expected: usize,
        /// The torrent's piece count.
        pieces: u32,
    },
    /// A bit past the last piece is set.
    #[error("spare bit set after the last piece (piece {bit}) in byte {offset}")]
    SpareBitSet {
        /// The bit's index, as if it were a piece.
        bit: u64,
        /// Byte offset of it in the payload.
        offset: usize,
    },
}

impl Bitfield {
    /// An empty set for `len` pieces.
    pub fn new(len: u32) -> Bitfield {
        Bitfield {
            bytes: vec![0; len.div_ceil(8) as usize],
            len,
            ones: 0,
        }
    }

    /// A full set: every one of `len` pieces.
    pub fn full(len: u32) -> Bitfield {
        let mut bytes = vec![0xff; len.div_ceil(8) as usize];
        if let Some(last) = bytes.last_mut() {
            *last = spare_mask_keep(len);
        }
        Bitfield {
            bytes,
            len,
            ones: len,
        }
    }

    /// Checks a `bitfield` payload against the torrent's piece count.
    pub fn from_wire(bytes: &[u8], len: u32) -> Result<Bitfield, BitfieldError> {
        let expected = len.div_ceil(8) as usize;
        if bytes.len() != expected {
            return Err(BitfieldError::WrongLength {
                found: bytes.len(),
                expected,
                pieces: len,
            });
        }
        if let Some(&last) = bytes.last() {
            let spare = last & !spare_mask_keep(len);
            if spare != 0 {
                let bit_in_byte = spare.leading_zeros();
                return Err(BitfieldError::SpareBitSet {
                    bit: (expected as u64 - 1) * 8 + u64::from(bit_in_byte),
                    offset: expected - 1,
                });
            }
        }
        let ones = bytes.iter().map(|b| b.count_ones()).sum();
        Ok(Bitfield {
            bytes: bytes.to_vec(),
            len,
            ones,
        })
    }

    /// The payload of a `bitfield` message.
    pub fn as_wire(&self) -> &[u8] {
        &self.bytes
    }

    /// The piece count.
    pub fn len(&self) -> u32 {
        self.len
    }

    /// Whether the torrent has no pieces at all.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How many pieces are set.
    pub fn count(&self) -> u32 {
        self.ones
    }

    /// Whether every piece is set.
    pub fn is_complete(&self) -> bool {
        self.ones == self.len
    }

    /// Whether no piece is set.
    pub fn is_clear(&self) -> bool {
        self.ones == 0
    }

    /// Whether piece `index` is set (false when out of range).
    #[inline]
    pub fn get(&self, index: u32) -> bool {
        self.bytes
            .get((index / 8) as usize)
            .is_some_and(|b| b & bit(index) != 0)
    }

    /// Sets piece `index`; returns whether it changed (false when already
    /// set or out of range).
    #[inline]
    pub fn set(&mut self, index: u32) -> bool {
        if index >= self.len {
            return false;
        }
        match self.bytes.get_mut((index / 8) as usize) {
            Some(b) if *b & bit(index) == 0 => {
                *b |= bit(index);
                self.ones += 1;
                true
            }
            _ => false,
        }
    }

    /// Clears piece `index`; returns whether it changed.
    #[inline]
    pub fn clear(&mut self, index: u32) -> bool {
        match self.bytes.get_mut((index / 8) as usize) {
            Some(b) if *b & bit(index) != 0 => {
                *b &= !bit(index);
                self.ones -= 1;
                true
            }
            _ => false,
        }
    }

    /// Sets every piece (after a BEP 6 `have all`).
    pub fn set_all(&mut self) {
        *self = Bitfield::full(self.len);
    }

    /// Clears every piece.
    pub fn clear_all(&mut self) {
        self.bytes.fill(0);
        self.ones = 0;
    }

    /// The set pieces, in increasing order.
    pub fn iter_set(&self) -> impl Iterator<Item = u32> + '_ {
        self.bytes.iter().enumerate().flat_map(|(i, &byte)| {
            let base = i as u32 * 8;
            (0..8u32)
                .filter(move |b| byte & (0x80 >> b) != 0)
                .map(move |b| base + b)
        })
    }

    /// Every piece's flag, in piece order (`len()` items).
    pub fn iter(&self) -> impl Iterator<Item = bool> + '_ {
        (0..self.len).map(|piece| self.get(piece))
    }

    /// Adds every piece of `other` to this set (pieces past this set's
    /// length are ignored).
    pub fn union_with(&mut self, other: &Bitfield) {
        for piece in other.iter_set() {
            self.set(piece);
        }
    }

    /// Removes every piece of `other` from this set.
    pub fn subtract(&mut self, other: &Bitfield) {
        for piece in other.iter_set() {
            self.clear(piece);
        }
    }

    /// Whether `other` has a piece this set lacks (am I interested in a
    /// peer that has `other`?). Sets of different lengths compare over the
    /// shorter one.
    pub fn lacks_any_of(&self, other: &Bitfield) -> bool {
        self.bytes
            .iter()
            .zip(other.bytes.iter())
            .any(|(mine, theirs)| theirs & !mine != 0)
    }
}

/// A set from one flag per piece, in piece order.
///
/// ```
/// use rustico_pieces::Bitfield;
/// let set: Bitfield = [true, false, true].into_iter().collect();
/// assert_eq!(set.len(), 3);
/// assert_eq!(set.iter_set().collect::<Vec<_>>(), [0, 2]);
/// ```
impl FromIterator<bool> for Bitfield {
    fn from_iter<I: IntoIterator<Item = bool>>(flags: I) -> Bitfield {
        let mut bytes = Vec::new();
        let mut len = 0u32;
        let mut ones = 0u32;
        for flag in flags {
            if len % 8 == 0 {
                bytes.push(0);
            }
            if flag {
                if let Some(byte) = bytes.last_mut() {
                    *byte |= bit(len);
                }
                ones += 1;
            }
            len += 1;
        }
        Bitfield { bytes, len, ones }
    }
}

#[inline]
fn bit(index: u32) -> u8 {
    0x80 >> (index % 8)
}

/// The mask of valid bits in the last byte for `len` pieces.
fn spare_mask_keep(len: u32) -> u8 {
    match len % 8 {
        0 => 0xff,
        used => !(0xffu8 >> used),
    }
}
