//! The read cache: whole pieces, least recently used evicted first, bounded
//! by bytes.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

struct Entry {
    data: Arc<Vec<u8>>,
    last_used: u64,
}

/// Whole pieces read from disk for seeding. `get` and `insert` are
/// O(log n): a `BTreeMap` keyed by a use counter orders entries by recency.
///
/// The buffer of one evicted piece is kept (outside the byte bound) and
/// handed out for the next miss: a fresh allocation of a piece costs page
/// faults on every page, a reused one costs nothing.
pub(crate) struct PieceCache {
    capacity: usize,
    used: usize,
    tick: u64,
    entries: HashMap<u32, Entry>,
    by_age: BTreeMap<u64, u32>,
    spare: Option<Vec<u8>>,
}

impl PieceCache {
    pub(crate) fn new(capacity: usize) -> PieceCache {
        PieceCache {
            capacity,
            used: 0,
            tick: 0,
            entries: HashMap::new(),
            by_age: BTreeMap::new(),
            spare: None,
        }
    }

    /// A buffer of exactly `len` bytes (contents unspecified), reusing an
    /// evicted piece's buffer when there is one.
    pub(crate) fn take_buffer(&mut self, len: usize) -> Vec<u8> {
        match self.spare.take() {
            Some(mut buf) => {
                buf.resize(len, 0);
                buf
            }
            None => vec![0; len],
        }
    }

    fn recycle(&mut self, data: Arc<Vec<u8>>) {
        // Only when no reader still holds it.
        if let Ok(buf) = Arc::try_unwrap(data) {
            self.spare = Some(buf);
        }
    }

    pub(crate) fn get(&mut self, piece: u32) -> Option<Arc<Vec<u8>>> {
        self.tick += 1;
        let tick = self.tick;
        let entry = self.entries.get_mut(&piece)?;
        self.by_age.remove(&entry.last_used);
        entry.last_used = tick;
        self.by_age.insert(tick, piece);
        Some(Arc::clone(&entry.data))
    }

    /// Whether a piece of `len` bytes can be cached at all.
    pub(crate) fn fits(&self, len: usize) -> bool {
        len > 0 && len <= self.capacity
    }

    pub(crate) fn insert(&mut self, piece: u32, data: Arc<Vec<u8>>) {
        if !self.fits(data.len()) {
            return;
        }
        self.remove(piece);
        while self.used + data.len() > self.capacity {
            let Some((_, oldest)) = self.by_age.pop_first() else {
                break;
            };
            if let Some(entry) = self.entries.remove(&oldest) {
                self.used -= entry.data.len();
                self.recycle(entry.data);
            }
        }
        self.tick += 1;
        self.used += data.len();
        self.by_age.insert(self.tick, piece);
        self.entries.insert(
            piece,
            Entry {
                data,
                last_used: self.tick,
            },
        );
    }

    pub(crate) fn remove(&mut self, piece: u32) {
        if let Some(entry) = self.entries.remove(&piece) {
            self.by_age.remove(&entry.last_used);
            self.used -= entry.data.len();
            self.recycle(entry.data);
        }
    }

    pub(crate) fn used_bytes(&self) -> usize {
        self.used
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn piece(len: usize, fill: u8) -> Arc<Vec<u8>> {
        Arc::new(vec![fill; len])
    }

    #[test]
    fn evicts_least_recently_used_within_the_byte_bound() {
        let mut cache = PieceCache::new(30);
        cache.insert(1, piece(10, 1));
        cache.insert(2, piece(10, 2));
        cache.insert(3, piece(10, 3));
        assert!(cache.get(1).is_some()); // 2 is now the oldest
        cache.insert(4, piece(10, 4));
        assert!(cache.get(2).is_none());
        assert!(cache.get(1).is_some());
        assert!(cache.get(3).is_some());
        assert!(cache.get(4).is_some());
        assert_eq!(cache.used_bytes(), 30);
        assert_eq!(cache.len(), 3);
        // Piece 2's buffer was evicted with no reader holding it: reused.
        let reused = cache.take_buffer(12);
        assert_eq!(&reused[..10], &[2u8; 10]);
        assert_eq!(reused.len(), 12);
        assert_eq!(cache.take_buffer(4), [0u8; 4]);
    }

    #[test]
    fn refuses_pieces_larger_than_the_bound_and_replaces_on_reinsert() {
        let mut cache = PieceCache::new(16);
        cache.insert(1, piece(17, 1));
        assert!(cache.get(1).is_none());
        cache.insert(2, piece(8, 2));
        cache.insert(2, piece(8, 9));
        assert_eq!(cache.used_bytes(), 8);
        assert_eq!(
            cache.get(2).as_deref().map(Vec::as_slice),
            Some(&[9u8; 8][..])
        );
        cache.remove(2);
        assert_eq!(cache.used_bytes(), 0);
        let mut off = PieceCache::new(0);
        off.insert(1, piece(1, 1));
        assert_eq!(off.len(), 0);
    }
}
