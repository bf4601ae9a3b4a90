//! The read cache: whole pieces, least recently used evicted first, bounded
//! by bytes.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

struct Entry {
    data: Arc<[u8]>,
    last_used: u64,
}

/// Whole verified-on-write pieces read from disk for seeding. `get` and
/// `insert` are O(log n): a `BTreeMap` keyed by a use counter orders entries
/// by recency.
pub(crate) struct PieceCache {
    capacity: usize,
    used: usize,
    tick: u64,
    entries: HashMap<u32, Entry>,
    by_age: BTreeMap<u64, u32>,
}

impl PieceCache {
    pub(crate) fn new(capacity: usize) -> PieceCache {
        PieceCache {
            capacity,
            used: 0,
            tick: 0,
            entries: HashMap::new(),
            by_age: BTreeMap::new(),
        }
    }

    pub(crate) fn get(&mut self, piece: u32) -> Option<Arc<[u8]>> {
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

    pub(crate) fn insert(&mut self, piece: u32, data: Arc<[u8]>) {
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

    fn piece(len: usize, fill: u8) -> Arc<[u8]> {
        vec![fill; len].into()
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
    }

    #[test]
    fn refuses_pieces_larger_than_the_bound_and_replaces_on_reinsert() {
        let mut cache = PieceCache::new(16);
        cache.insert(1, piece(17, 1));
        assert!(cache.get(1).is_none());
        cache.insert(2, piece(8, 2));
        cache.insert(2, piece(8, 9));
        assert_eq!(cache.used_bytes(), 8);
        assert_eq!(cache.get(2).as_deref(), Some(&[9u8; 8][..]));
        cache.remove(2);
        assert_eq!(cache.used_bytes(), 0);
        let mut off = PieceCache::new(0);
        off.insert(1, piece(1, 1));
        assert_eq!(off.len(), 0);
    }
}
