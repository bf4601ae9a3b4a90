//! Open pieces of one priority level, kept in one array sorted by
//! availability, with the start of each availability bucket recorded.
//!
//! ```text
//! order: [ 7 3 | 9 0 4 | 1 | 8 2 ]      availability 2 | 3 | 4 | 6
//! start: [0 0 0 2 5 6 6 8]              start[a] = first slot of bucket a, last = len
//! ```
//!
//! Changing a piece's availability by one moves it across exactly one
//! boundary: swap it with the last (or first) element of its bucket and move
//! the boundary, O(1). Inserting or removing a piece walks the boundaries
//! above its bucket, O(highest availability - its availability); that happens
//! once per piece start/finish, not per `have`.

/// One priority level's ordered open pieces.
#[derive(Clone, Debug)]
pub(crate) struct Buckets {
    /// Piece indices, ascending availability.
    pub(crate) order: Vec<u32>,
    /// `start[a]` is the first slot of bucket `a`; the last entry is
    /// `order.len()`, so bucket `a` is `start[a]..start[a + 1]`.
    pub(crate) start: Vec<u32>,
}

impl Default for Buckets {
    fn default() -> Self {
        Self {
            order: Vec::new(),
            start: vec![0, 0],
        }
    }
}

impl Buckets {
    /// Highest availability that has a bucket.
    fn top(&self) -> usize {
        self.start.len() - 2
    }

    /// The slots of the bucket holding availability `a`.
    pub(crate) fn bucket(&self, a: u32) -> (usize, usize) {
        let a = a as usize;
        (self.start[a] as usize, self.start[a + 1] as usize)
    }

    fn swap(&mut self, pos: &mut [u32], i: usize, j: usize) {
        if i != j {
            self.order.swap(i, j);
            pos[self.order[i] as usize] = i as u32;
            pos[self.order[j] as usize] = j as u32;
        }
    }

    fn grow_to(&mut self, a: usize) {
        while self.top() < a {
            let end = self.order.len() as u32;
            self.start.push(end);
        }
    }

    /// `piece` (in this level, availability `old`) gains one peer.
    pub(crate) fn increment(&mut self, pos: &mut [u32], piece: u32, old: u32) {
        let a = old as usize;
        self.grow_to(a + 1);
        let i = pos[piece as usize] as usize;
        let last = self.start[a + 1] as usize - 1;
        self.swap(pos, i, last);
        self.start[a + 1] -= 1;
    }

    /// `piece` (in this level, availability `old >= 1`) loses one peer.
    pub(crate) fn decrement(&mut self, pos: &mut [u32], piece: u32, old: u32) {
        let a = old as usize;
        let i = pos[piece as usize] as usize;
        let first = self.start[a] as usize;
        self.swap(pos, i, first);
        self.start[a] += 1;
    }

    /// Adds `piece` with availability `avail`.
    pub(crate) fn insert(&mut self, pos: &mut [u32], piece: u32, avail: u32) {
        let a = avail as usize;
        self.grow_to(a);
        let mut i = self.order.len();
        self.order.push(piece);
        pos[piece as usize] = i as u32;
        let sentinel = self.start.len() - 1;
        self.start[sentinel] += 1;
        // The piece sits in the top bucket; walk it down to bucket `a`.
        for j in (a + 1..sentinel).rev() {
            let first = self.start[j] as usize;
            self.swap(pos, i, first);
            self.start[j] += 1;
            i = first;
        }
    }

    /// Removes `piece` (availability `avail`).
    pub(crate) fn remove(&mut self, pos: &mut [u32], piece: u32, avail: u32) {
        let a = avail as usize;
        let mut i = pos[piece as usize] as usize;
        // Walk the piece up past every boundary to the end, then drop it.
        for j in a + 1..self.start.len() {
            let last = self.start[j] as usize - 1;
            self.swap(pos, i, last);
            self.start[j] -= 1;
            i = last;
        }
        self.order.pop();
    }

    /// Rebuilds from scratch with a counting sort: `pieces` yields
    /// `(piece, availability)` for every open piece of this level.
    pub(crate) fn rebuild(&mut self, pos: &mut [u32], pieces: &[(u32, u32)]) {
        let max = pieces.iter().map(|&(_, a)| a as usize).max().unwrap_or(0);
        self.start.clear();
        self.start.resize(max + 2, 0);
        for &(_, a) in pieces {
            self.start[a as usize + 1] += 1;
        }
        for a in 1..self.start.len() {
            self.start[a] += self.start[a - 1];
        }
        self.order.clear();
        self.order.resize(pieces.len(), 0);
        let mut next: Vec<u32> = self.start[..=max].to_vec();
        for &(p, a) in pieces {
            let slot = next[a as usize] as usize;
            next[a as usize] += 1;
            self.order[slot] = p;
            pos[p as usize] = slot as u32;
        }
    }

    /// Checks the structure against `avail` and `pos` (tests only).
    pub(crate) fn check(&self, pos: &[u32], avail: &[u32]) -> Result<(), String> {
        if self.start.len() < 2 || self.start[0] != 0 {
            return Err("bucket start malformed".into());
        }
        if *self.start.last().unwrap_or(&0) as usize != self.order.len() {
            return Err("bucket sentinel != len".into());
        }
        for a in 0..self.start.len() - 1 {
            let (s, e) = (self.start[a] as usize, self.start[a + 1] as usize);
            if s > e {
                return Err(format!("bucket {a} has start {s} > end {e}"));
            }
            for (i, &p) in self.order.iter().enumerate().take(e).skip(s) {
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
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_keep_buckets_sorted() {
        let mut avail = vec![0u32; 10];
        let mut pos = vec![0u32; 10];
        let mut b = Buckets::default();
        for p in 0..10 {
            b.insert(&mut pos, p, 0);
        }
        b.check(&pos, &avail).unwrap();
        for (p, times) in [(3u32, 3), (5, 1), (7, 5), (3, 1)] {
            for _ in 0..times {
                b.increment(&mut pos, p, avail[p as usize]);
                avail[p as usize] += 1;
                b.check(&pos, &avail).unwrap();
            }
        }
        b.decrement(&mut pos, 7, avail[7]);
        avail[7] -= 1;
        b.check(&pos, &avail).unwrap();
        b.remove(&mut pos, 3, avail[3]);
        avail[3] = 99; // no longer tracked
        let tracked: Vec<u32> = (0..10).filter(|&p| p != 3).collect();
        assert_eq!(b.order.len(), 9);
        for &p in &tracked {
            assert_eq!(b.order[pos[p as usize] as usize], p);
        }
        avail[3] = 2;
        b.insert(&mut pos, 3, 2);
        b.check(&pos, &avail).unwrap();
        let firsts: Vec<u32> = b.order.iter().map(|&p| avail[p as usize]).collect();
        assert!(firsts.windows(2).all(|w| w[0] <= w[1]), "{firsts:?}");
        let mut rebuilt = Buckets::default();
        let pieces: Vec<(u32, u32)> = (0..10).map(|p| (p, avail[p as usize])).collect();
        rebuilt.rebuild(&mut pos, &pieces);
        rebuilt.check(&pos, &avail).unwrap();
    }
}
