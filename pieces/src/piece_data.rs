//! A piece's bytes, kept in the buffers its blocks arrived in.

/// The bytes of one piece as a list of chunks, in order: a downloaded piece
/// keeps the buffer each block arrived in, so that no copy joins them
/// before hashing and writing, which read the chunks in turn.
///
/// ```
/// use rustico_pieces::PieceData;
///
/// let piece = PieceData::from_chunks(vec![b"hello ".to_vec(), b"world".to_vec()]);
/// assert_eq!(piece.len(), 11);
/// // A range may span chunks; it comes back as the slices that hold it.
/// let middle: Vec<&[u8]> = piece.range(4, 4).collect();
/// assert_eq!(middle, [&b"o "[..], &b"wo"[..]]);
/// assert_eq!(piece.to_vec(), b"hello world");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PieceData {
    chunks: Vec<Vec<u8>>,
    len: usize,
}

impl PieceData {
    /// The piece made of `chunks`, in order (empty chunks are allowed).
    pub fn from_chunks(chunks: Vec<Vec<u8>>) -> PieceData {
        let len = chunks.iter().map(Vec::len).sum();
        PieceData { chunks, len }
    }

    /// The piece as one chunk.
    pub fn from_vec(data: Vec<u8>) -> PieceData {
        PieceData::from_chunks(vec![data])
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds no byte.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Its chunks, in order.
    pub fn chunks(&self) -> &[Vec<u8>] {
        &self.chunks
    }

    /// Its chunks back, to reuse their buffers.
    pub fn into_chunks(self) -> Vec<Vec<u8>> {
        self.chunks
    }

    /// The `len` bytes from `start`, as the slices of the chunks that hold
    /// them, in order; cut short at the end of the piece.
    pub fn range(&self, start: usize, len: usize) -> impl Iterator<Item = &[u8]> {
        let end = start.saturating_add(len).min(self.len);
        let mut offset = 0usize;
        self.chunks.iter().filter_map(move |chunk| {
            let (from, to) = (offset, offset + chunk.len());
            offset = to;
            let (a, b) = (start.max(from), end.min(to));
            (a < b).then(|| chunk.get(a - from..b - from)).flatten()
        })
    }

    /// Whether the `len` bytes from `start` are the same here and in
    /// `other` (false if either piece is shorter).
    pub fn range_eq(&self, other: &PieceData, start: usize, len: usize) -> bool {
        let end = start.saturating_add(len);
        if end > self.len || end > other.len {
            return false;
        }
        let mut theirs = other.range(start, len);
        let mut pending: &[u8] = &[];
        for mut ours in self.range(start, len) {
            while !ours.is_empty() {
                if pending.is_empty() {
                    match theirs.next() {
                        Some(next) => pending = next,
                        None => return false,
                    }
                }
                let n = ours.len().min(pending.len());
                if ours[..n] != pending[..n] {
                    return false;
                }
                ours = &ours[n..];
                pending = &pending[n..];
            }
        }
        true
    }

    /// Its bytes joined in one buffer (a copy).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len);
        for chunk in &self.chunks {
            out.extend_from_slice(chunk);
        }
        out
    }
}

impl From<Vec<u8>> for PieceData {
    fn from(data: Vec<u8>) -> PieceData {
        PieceData::from_vec(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any range of any split is the same bytes as in the joined piece.
        #[test]
        fn ranges_match_the_joined_bytes(
            chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..8),
            start in 0usize..300,
            len in 0usize..300,
        ) {
            let piece = PieceData::from_chunks(chunks);
            let joined = piece.to_vec();
            prop_assert_eq!(joined.len(), piece.len());
            let got: Vec<u8> = piece.range(start, len).flatten().copied().collect();
            let end = (start + len).min(joined.len());
            let want = joined.get(start.min(end)..end).unwrap_or_default();
            prop_assert_eq!(&got[..], want);
            prop_assert!(piece.range(start, len).all(|s| !s.is_empty()));
            let other = PieceData::from_vec(joined.clone());
            prop_assert_eq!(piece.range_eq(&other, start, len), start + len <= joined.len());
        }
    }

    #[test]
    fn a_differing_byte_makes_ranges_differ() {
        let a = PieceData::from_chunks(vec![vec![1, 2, 3], vec![4, 5]]);
        let b = PieceData::from_chunks(vec![vec![1, 2], vec![3, 4, 6]]);
        assert!(a.range_eq(&b, 0, 4));
        assert!(!a.range_eq(&b, 3, 2));
        assert!(!a.range_eq(&b, 4, 2), "past the end");
    }
}
