//! Open pieces of one priority level, grouped by availability.
//!
//! ```text
//! bucket 2: [7 3]    bucket 3: [9 0 4]    bucket 4: [1]    bucket 6: [8 2]
//! non-empty: 0b1011100 (bit a set when bucket a has pieces)
//! pos[piece] = its slot inside its bucket
//! ```
//!
//! Every change is O(1): a piece whose availability moves by one is
//! swap-removed from its bucket and pushed onto the next; starting or
//! finishing a piece is one swap-remove or one push. The pick walks the
//! non-empty buckets from the least available up, finding each with a
//! trailing-zeros scan of the `non_empty` bitset.

/// One priority level's open pieces, bucketed by availability.
#[derive(Clone, Debug, Default)]
pub(crate) struct Buckets {
    /// `buckets[a]`: open pieces with availability `a`, in no order.
    pub(crate) buckets: Vec<Vec<u32>>,
    /// Bit `a` is set when `buckets[a]` is not empty.
    non_empty: Vec<u64>,
    /// Total pieces in all buckets.
    pub(crate) len: usize,
}

impl Buckets {
    /// First non-empty bucket at availability `from` or above.
    #[inline]
    pub(crate) fn next_non_empty(&self, from: usize) -> Option<usize> {
        let mut w = from / 64;
        let mut word = *self.non_empty.get(w)? & (u64::MAX << (from % 64));
        loop {
            if word != 0 {
                return Some(w * 64 + word.trailing_zeros() as usize);
            }
            w += 1;
            word = *self.non_empty.get(w)?;
        }
    }

    #[inline]
    fn put(&mut self, pos: &mut [u32], piece: u32, avail: u32) {
        let a = avail as usize;
        if a >= self.buckets.len() {
            self.buckets.resize_with(a + 1, Vec::new);
            self.non_empty.resize((a + 1).div_ceil(64), 0);
        }
        let bucket = &mut self.buckets[a];
        if bucket.is_empty() {
            self.non_empty[a / 64] |= 1u64 << (a % 64);
        }
        pos[piece as usize] = bucket.len() as u32;
        bucket.push(piece);
        self.len += 1;
    }

    #[inline]
    fn take(&mut self, pos: &mut [u32], piece: u32, avail: u32) {
        let a = avail as usize;
        let bucket = &mut self.buckets[a];
        let i = pos[piece as usize] as usize;
        bucket.swap_remove(i);
        if let Some(&moved) = bucket.get(i) {
            pos[moved as usize] = i as u32;
        }
        if bucket.is_empty() {
            self.non_empty[a / 64] &= !(1u64 << (a % 64));
        }
        self.len -= 1;
    }

    /// `piece` (in this level, availability `old`) gains one peer.
    #[inline]
    pub(crate) fn increment(&mut self, pos: &mut [u32], piece: u32, old: u32) {
        self.take(pos, piece, old);
        self.put(pos, piece, old + 1);
    }

    /// `piece` (in this level, availability `old >= 1`) loses one peer.
    #[inline]
    pub(crate) fn decrement(&mut self, pos: &mut [u32], piece: u32, old: u32) {
        self.take(pos, piece, old);
        self.put(pos, piece, old - 1);
    }

    /// Adds `piece` with availability `avail`.
    pub(crate) fn insert(&mut self, pos: &mut [u32], piece: u32, avail: u32) {
        self.put(pos, piece, avail);
    }

    /// Removes `piece` (availability `avail`).
    pub(crate) fn remove(&mut self, pos: &mut [u32], piece: u32, avail: u32) {
        self.take(pos, piece, avail);
    }

    /// Rebuilds from `(piece, availability)` pairs. O(pieces + buckets).
    pub(crate) fn rebuild(&mut self, pos: &mut [u32], pieces: &[(u32, u32)]) {
        for b in &mut self.buckets {
            b.clear();
        }
        self.non_empty.iter_mut().for_each(|w| *w = 0);
        self.len = 0;
        for &(p, a) in pieces {
            self.put(pos, p, a);
        }
    }

    /// Checks the structure against `avail` and `pos` (tests only).
    pub(crate) fn check(&self, pos: &[u32], avail: &[u32]) -> Result<(), String> {
        let mut total = 0;
        for (a, bucket) in self.buckets.iter().enumerate() {
            let flagged = self.non_empty[a / 64] & (1u64 << (a % 64)) != 0;
            if flagged == bucket.is_empty() {
                return Err(format!("bucket {a}: non-empty bit wrong"));
            }
            for (i, &p) in bucket.iter().enumerate() {
                if avail[p as usize] as usize != a {
                    return Err(format!(
                        "piece {p} in bucket {a} has availability {}",
                        avail[p as usize]
                    ));
                }
                if pos[p as usize] as usize != i {
                    return Err(format!(
                        "piece {p} at slot {i} but pos says {}",
                        pos[p as usize]
                    ));
                }
            }
            total += bucket.len();
        }
        if total != self.len {
            return Err("bucket len wrong".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_keep_buckets_consistent() {
        let mut avail = vec![0u32; 10];
        let mut pos = vec![0u32; 10];
        let mut b = Buckets::default();
        for p in 0..10 {
            b.insert(&mut pos, p, 0);
        }
        b.check(&pos, &avail).unwrap();
        for (p, times) in [(3u32, 3), (5, 1), (7, 70), (3, 1)] {
            for _ in 0..times {
                b.increment(&mut pos, p, avail[p as usize]);
                avail[p as usize] += 1;
                b.check(&pos, &avail).unwrap();
            }
        }
        assert_eq!(b.next_non_empty(0), Some(0));
        assert_eq!(b.next_non_empty(1), Some(1));
        assert_eq!(b.next_non_empty(5), Some(70));
        assert_eq!(b.next_non_empty(71), None);
        b.decrement(&mut pos, 7, avail[7]);
        avail[7] -= 1;
        b.check(&pos, &avail).unwrap();
        b.remove(&mut pos, 3, avail[3]);
        assert_eq!(b.len, 9);
        avail[3] = 2;
        b.insert(&mut pos, 3, 2);
        b.check(&pos, &avail).unwrap();
        let mut rebuilt = Buckets::default();
        let pieces: Vec<(u32, u32)> = (0..10).map(|p| (p, avail[p as usize])).collect();
        rebuilt.rebuild(&mut pos, &pieces);
        rebuilt.check(&pos, &avail).unwrap();
        assert_eq!(rebuilt.len, 10);
    }
}
