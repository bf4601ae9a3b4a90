//! Every non-seed peer's bitfield in one table, laid out so that the bits of
//! one piece for all peers sit close together.
//!
//! ```text
//! chunk 0 (pieces 0..512)   chunk 1 (pieces 512..1024)   ...
//! [row 0: 8 words][row 1: 8 words]...[row 0: 8 words][row 1: 8 words]...
//! ```
//!
//! A row is one peer; a chunk is one cache line (8 words, 512 pieces) of
//! every row, rows side by side. A pick asks many different peers about the
//! same few pieces (the rarest, the partial ones): with one allocation per
//! peer each question lands in a different page (a TLB miss at 100,000
//! pieces and more); here they land in the same few pages. A scan of one
//! peer's pieces reads one line per chunk instead of a contiguous run,
//! which the O(pieces / 64) paths can afford.

/// Words per line: a row's words within one chunk.
const LINE: usize = 8;

/// The bitfields, one row per non-seed peer that reported a piece.
#[derive(Clone, Debug, Default)]
pub(crate) struct PeerBits {
    /// Words per row (pieces / 64, rounded up).
    words: usize,
    /// Rows allocated in `data`.
    capacity: usize,
    /// Rows handed out so far (freed ones are in `free`).
    high_water: usize,
    free: Vec<u32>,
    data: Vec<u64>,
}

impl PeerBits {
    pub(crate) fn new(words: usize) -> Self {
        Self {
            words,
            ..Self::default()
        }
    }

    #[inline]
    fn index(&self, row: u32, w: usize) -> usize {
        ((w / LINE) * self.capacity + row as usize) * LINE + w % LINE
    }

    /// Word `w` of `row`.
    #[inline]
    pub(crate) fn word(&self, row: u32, w: usize) -> u64 {
        self.data[self.index(row, w)]
    }

    /// Word `w` of `row`, to change.
    #[inline]
    pub(crate) fn word_mut(&mut self, row: u32, w: usize) -> &mut u64 {
        let i = self.index(row, w);
        &mut self.data[i]
    }

    /// Whether `row` has `piece`.
    #[inline]
    pub(crate) fn has(&self, row: u32, piece: u32) -> bool {
        self.word(row, (piece >> 6) as usize) & (1u64 << (piece & 63)) != 0
    }

    /// A row of zeros. Doubles the table when full: O(pieces / 64) per row
    /// handed out, amortized.
    pub(crate) fn alloc(&mut self) -> u32 {
        if let Some(row) = self.free.pop() {
            return row;
        }
        if self.high_water == self.capacity {
            let capacity = (self.capacity * 2).max(LINE);
            let chunks = self.words.div_ceil(LINE);
            let old = self.capacity * LINE;
            let mut data = vec![0u64; chunks * capacity * LINE];
            if old > 0 {
                for (c, src) in self.data.chunks(old).enumerate() {
                    data[c * capacity * LINE..][..old].copy_from_slice(src);
                }
            }
            self.data = data;
            self.capacity = capacity;
        }
        self.high_water += 1;
        (self.high_water - 1) as u32
    }

    /// Copies `row` into `out` (replacing its contents), zeroes the row and
    /// returns it to the free list.
    pub(crate) fn release(&mut self, row: u32, out: &mut Vec<u64>) {
        out.clear();
        for w in 0..self.words {
            let word = self.word_mut(row, w);
            out.push(*word);
            *word = 0;
        }
        self.free.push(row);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_survive_growth_and_come_back_zeroed() {
        // 20 words: 3 chunks, the last one partial.
        let mut bits = PeerBits::new(20);
        let rows: Vec<u32> = (0..20).map(|_| bits.alloc()).collect();
        assert_eq!(rows, (0..20).collect::<Vec<_>>());
        for &r in &rows {
            for w in 0..20 {
                *bits.word_mut(r, w) = u64::from(r) << 32 | w as u64;
            }
        }
        let more: Vec<u32> = (0..30).map(|_| bits.alloc()).collect();
        for &r in &rows {
            for w in 0..20 {
                assert_eq!(bits.word(r, w), u64::from(r) << 32 | w as u64);
            }
        }
        assert!(more.iter().all(|&r| (0..20).all(|w| bits.word(r, w) == 0)));
        *bits.word_mut(25, 19) |= 1 << 5;
        assert!(bits.has(25, 19 * 64 + 5));
        assert!(!bits.has(25, 19 * 64 + 4));
        assert!(!bits.has(26, 19 * 64 + 5));
        assert!(!bits.has(24, 19 * 64 + 5));
        let mut out = Vec::new();
        bits.release(7, &mut out);
        assert_eq!(out.len(), 20);
        assert_eq!(out[3], 7u64 << 32 | 3);
        assert_eq!(bits.alloc(), 7);
        assert!((0..20).all(|w| bits.word(7, w) == 0));
        assert_eq!(bits.word(8, 3), 8u64 << 32 | 3, "neighbours untouched");
    }
}
