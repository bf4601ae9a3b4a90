//! A fixed-size set of piece indices (our pieces, a peer's pieces), with
//! the wire form of the `bitfield` message (high bit first, spare bits zero).

/// Which of `len` pieces are present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bits {
    words: Vec<u64>,
    len: u32,
    count: usize,
}

impl Bits {
    /// No piece of `len`.
    pub fn new(len: u32) -> Bits {
        Bits {
            words: vec![0; (len as usize).div_ceil(64)],
            len,
            count: 0,
        }
    }

    /// Number of pieces present.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Every piece is present.
    pub fn is_full(&self) -> bool {
        self.count == self.len as usize
    }

    /// Whether piece `i` is present (false when out of range).
    pub fn get(&self, i: u32) -> bool {
        i < self.len
            && self
                .words
                .get((i / 64) as usize)
                .is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    /// Adds piece `i` (ignored when out of range).
    pub fn set(&mut self, i: u32) {
        if i >= self.len {
            return;
        }
        if let Some(w) = self.words.get_mut((i / 64) as usize) {
            let bit = 1 << (i % 64);
            if *w & bit == 0 {
                *w |= bit;
                self.count += 1;
            }
        }
    }

    /// Adds every piece.
    pub fn set_all(&mut self) {
        for i in 0..self.len {
            self.set(i);
        }
    }

    /// Present pieces in increasing order.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        (0..self.len).filter(|&i| self.get(i))
    }

    /// The `bitfield` message payload.
    pub fn to_wire(&self) -> Vec<u8> {
        let mut out = vec![0u8; (self.len as usize).div_ceil(8)];
        for i in self.iter() {
            if let Some(b) = out.get_mut((i / 8) as usize) {
                *b |= 0x80 >> (i % 8);
            }
        }
        out
    }

    /// Parses a `bitfield` payload for `len` pieces; `None` when its size is
    /// wrong or a spare bit is set.
    pub fn from_wire(wire: &[u8], len: u32) -> Option<Bits> {
        if wire.len() != (len as usize).div_ceil(8) {
            return None;
        }
        let mut bits = Bits::new(len);
        for (byte_index, &byte) in wire.iter().enumerate() {
            for bit in 0..8u32 {
                if byte & (0x80 >> bit) != 0 {
                    let i = byte_index as u32 * 8 + bit;
                    if i >= len {
                        return None;
                    }
                    bits.set(i);
                }
            }
        }
        Some(bits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_round_trip_and_spare_bits() {
        let mut b = Bits::new(10);
        b.set(0);
        b.set(9);
        b.set(9);
        assert_eq!(b.count(), 2);
        assert_eq!(b.to_wire(), [0x80, 0x40]);
        assert_eq!(Bits::from_wire(&[0x80, 0x40], 10), Some(b));
        assert_eq!(Bits::from_wire(&[0x80, 0x20], 10), None, "spare bit set");
        assert_eq!(Bits::from_wire(&[0x80], 10), None, "too short");
        let mut all = Bits::new(70);
        all.set_all();
        assert!(all.is_full());
        assert!(!all.get(70));
    }
}
