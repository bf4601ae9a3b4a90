//! The 16 KiB block hashes of one v2 piece: how to ask a peer for them,
//! how to check its answer, and which blocks of a failed copy they show
//! to be corrupt.
//!
//! A v2 piece is checked against one hash (its piece-layer entry, or the
//! `pieces root` of a file of at most one piece), so a piece that fails
//! says only that some block is wrong. The blocks' own hashes sit one
//! level below, in the file's merkle tree: a peer that has the piece
//! sends them for a BEP 52 `hash request` on layer 0, they are checked
//! against the piece's hash, and every block of the failed copy whose
//! SHA-256 differs names the peer that sent it.

use std::collections::HashMap;

use crate::merkle::{self, Hash, BLOCK_LEN};
use crate::{LayerRange, Torrent};

/// One v2 file's part of the piece stream.
#[derive(Debug)]
struct V2File {
    root: Hash,
    first_piece: u32,
    length: u64,
    /// Its piece layer; empty for a file of at most one piece, whose
    /// root is its one piece's hash.
    layer: Vec<Hash>,
}

/// A torrent's v2 files, indexed to plan and answer block-hash requests.
///
/// ```
/// use std::sync::atomic::AtomicBool;
/// use rustico_metainfo::{merkle, BlockLayers, TorrentBuilder, TorrentVersion};
///
/// # let dir = std::env::temp_dir().join(format!("rustico-blocks-doc-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir)?;
/// let content: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
/// std::fs::write(dir.join("a.bin"), &content)?;
/// let torrent = TorrentBuilder::new(dir.join("a.bin"))
///     .version(TorrentVersion::V2)
///     .piece_length(65536)
///     .build(|_| {}, &AtomicBool::new(false))?;
/// let layers = BlockLayers::new(&torrent);
/// let piece = layers.piece(1).expect("a piece of four blocks");
///
/// // A seed answers from its good copy; the downloader checks the answer
/// // and compares it with the copy that failed.
/// let good = &content[65536..131072];
/// let answer = piece.hashes_of(good).expect("the good copy");
/// assert_eq!(layers.for_request(piece.range()), Some(piece.clone()));
/// assert!(piece.check(&answer));
/// let mut bad = good.to_vec();
/// bad[40_000] ^= 1; // in block 2
/// assert_eq!(piece.corrupt_blocks(&answer, &piece.copy_hashes(&bad)), [2]);
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Default)]
pub struct BlockLayers {
    piece_length: u32,
    /// Non-empty v2 files in stream order (padding has no root).
    files: Vec<V2File>,
    by_root: HashMap<Hash, usize>,
}

impl BlockLayers {
    /// The index of `torrent`'s v2 files (empty for a v1-only torrent,
    /// and without the files whose piece layer is missing).
    pub fn new(torrent: &Torrent) -> BlockLayers {
        let piece_length = torrent.piece_length();
        let mut files = Vec::new();
        for (index, file) in torrent.files().iter().enumerate() {
            let Some(root) = file.pieces_root() else {
                continue;
            };
            let layer: Vec<Hash> = match torrent.piece_layer(index) {
                Some(bytes) => bytes
                    .chunks_exact(32)
                    .filter_map(|h| h.try_into().ok())
                    .collect(),
                None if file.length <= u64::from(piece_length) => Vec::new(),
                None => continue,
            };
            let Ok(first_piece) = u32::try_from(file.offset / u64::from(piece_length)) else {
                continue;
            };
            files.push(V2File {
                root,
                first_piece,
                length: file.length,
                layer,
            });
        }
        let by_root = files.iter().enumerate().map(|(i, f)| (f.root, i)).collect();
        BlockLayers {
            piece_length,
            files,
            by_root,
        }
    }

    /// The block hashes of piece `piece`, or `None` when they cannot
    /// blame anyone: a v1-only torrent, a piece past the end or of
    /// padding only, or a piece of a single block (its one sender is
    /// known already).
    pub fn piece(&self, piece: u32) -> Option<PieceBlocks> {
        let at = self.files.partition_point(|f| f.first_piece <= piece);
        let file = self.files.get(at.checked_sub(1)?)?;
        self.blocks_of(file, piece - file.first_piece)
    }

    /// The piece whose block hashes `range` asks for, when it asks for
    /// exactly what [`PieceBlocks::range`] would (layer 0, one piece's
    /// blocks, no proof); `None` for any other range.
    pub fn for_request(&self, range: &LayerRange) -> Option<PieceBlocks> {
        let file = self.files.get(*self.by_root.get(&range.pieces_root)?)?;
        if range.base_layer != 0 || range.length == 0 {
            return None;
        }
        let in_file = range.index / range.length;
        let blocks = self.blocks_of(file, in_file)?;
        (blocks.range == *range).then_some(blocks)
    }

    fn blocks_of(&self, file: &V2File, in_file: u32) -> Option<PieceBlocks> {
        let piece_length = u64::from(self.piece_length);
        let start = u64::from(in_file) * piece_length;
        if start >= file.length {
            return None;
        }
        let file_bytes = u32::try_from((file.length - start).min(piece_length)).ok()?;
        let (expected, width) = if file.layer.is_empty() {
            // A file of at most one piece: its root covers its blocks
            // padded to the next power of two only.
            let blocks = file_bytes.div_ceil(BLOCK_LEN as u32);
            (file.root, blocks.checked_next_power_of_two()?)
        } else {
            let hash = *file.layer.get(usize::try_from(in_file).ok()?)?;
            (hash, self.piece_length / BLOCK_LEN as u32)
        };
        if width < 2 {
            return None;
        }
        Some(PieceBlocks {
            piece: file.first_piece.checked_add(in_file)?,
            range: LayerRange {
                pieces_root: file.root,
                base_layer: 0,
                index: in_file.checked_mul(width)?,
                length: width,
                // libtorrent's count: log2(length) - 1 asks for no uncle
                // (the piece's hash checks the run).
                proof_layers: width.trailing_zeros() - 1,
            },
            file_bytes,
            expected,
        })
    }
}

/// The block hashes of one v2 piece: the request for them, the check of
/// an answer, and the comparison with a copy of the piece.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PieceBlocks {
    piece: u32,
    range: LayerRange,
    file_bytes: u32,
    expected: Hash,
}

impl PieceBlocks {
    /// The piece.
    pub fn piece(&self) -> u32 {
        self.piece
    }

    /// The `hash request` that asks a peer for the piece's block hashes:
    /// layer 0 of the file's tree, the piece's run of leaves, no proof.
    pub fn range(&self) -> &LayerRange {
        &self.range
    }

    /// Whether `hashes` (a peer's answer to [`range`](Self::range)) are
    /// the piece's block hashes: as many as asked for, zero past the end
    /// of the file, and leading to the piece's hash.
    pub fn check(&self, hashes: &[Hash]) -> bool {
        let blocks = self.file_bytes.div_ceil(BLOCK_LEN as u32) as usize;
        hashes.len() == self.range.length as usize
            && hashes.iter().skip(blocks).all(|h| *h == [0; 32])
            && merkle::root_padded(hashes, hashes.len(), [0; 32]) == self.expected
    }

    /// The answer to [`range`](Self::range) from a copy of the piece (its
    /// bytes; in a hybrid torrent, padding past the file's end may follow
    /// or not), or `None` when the copy is not the piece: a server must
    /// not send hashes it cannot prove.
    pub fn hashes_of(&self, data: &[u8]) -> Option<Vec<Hash>> {
        let bytes = data.get(..self.file_bytes as usize)?;
        let mut hashes = merkle::block_hashes(bytes);
        hashes.resize(self.range.length as usize, [0; 32]);
        self.check(&hashes).then_some(hashes)
    }

    /// The block hashes of a copy of the piece, which may be corrupt:
    /// one per 16 KiB of the file's bytes in it (padding past the file's
    /// end left out). Keep these of a copy that failed, to compare with
    /// a peer's answer in [`corrupt_blocks`](Self::corrupt_blocks).
    pub fn copy_hashes(&self, data: &[u8]) -> Vec<Hash> {
        let end = data.len().min(self.file_bytes as usize);
        merkle::block_hashes(&data[..end])
    }

    /// The blocks whose hash in `copy` (from
    /// [`copy_hashes`](Self::copy_hashes)) differs from `hashes` (an
    /// answer that passed [`check`](Self::check)). A block missing from
    /// a short copy is corrupt too.
    pub fn corrupt_blocks(&self, hashes: &[Hash], copy: &[Hash]) -> Vec<u32> {
        let blocks = self.file_bytes.div_ceil(BLOCK_LEN as u32);
        (0..blocks)
            .filter(|&i| copy.get(i as usize) != hashes.get(i as usize))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{TorrentBuilder, TorrentVersion};
    use std::sync::atomic::AtomicBool;

    /// A torrent of files of these lengths (contents from the index),
    /// with 64 KiB pieces, and each file's bytes.
    fn torrent(version: TorrentVersion, lengths: &[usize]) -> (Torrent, Vec<Vec<u8>>) {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("t");
        std::fs::create_dir_all(&folder).unwrap();
        let mut contents = Vec::new();
        for (i, len) in lengths.iter().enumerate() {
            let data: Vec<u8> = (0..*len)
                .map(|b| (b * 13 + i * 5 + b / 997) as u8)
                .collect();
            std::fs::write(folder.join(format!("f{i}")), &data).unwrap();
            contents.push(data);
        }
        let t = TorrentBuilder::new(&folder)
            .version(version)
            .piece_length(65536)
            .build(|_| {}, &AtomicBool::new(false))
            .unwrap();
        (t, contents)
    }

    /// The piece's file bytes: every piece of a v2 torrent holds one
    /// file's bytes only.
    fn piece_bytes(t: &Torrent, contents: &[Vec<u8>], piece: u32) -> Vec<u8> {
        let start = u64::from(piece) * 65536;
        let index = t.file_index_at(start).unwrap();
        let file = &t.files()[index];
        let from = (start - file.offset) as usize;
        let name: usize = file.path_elements().next_back().unwrap()[1..]
            .parse()
            .unwrap();
        let data = &contents[name];
        data[from..(from + 65536).min(data.len())].to_vec()
    }

    #[test]
    fn every_piece_of_many_shapes_checks_and_names_the_corrupt_block() {
        // A 3-piece file with a short last piece, a file of one block,
        // a file of two and a half blocks, an empty file, a file of
        // exactly one piece.
        for version in [TorrentVersion::V2, TorrentVersion::Hybrid] {
            let (t, contents) = torrent(version, &[150_000, 1000, 40_000, 0, 65536]);
            let layers = BlockLayers::new(&t);
            let mut checked = 0;
            for piece in 0..t.num_pieces() {
                let Some(blocks) = layers.piece(piece) else {
                    continue;
                };
                assert_eq!(blocks.piece(), piece);
                assert_eq!(layers.for_request(blocks.range()).as_ref(), Some(&blocks));
                let good = piece_bytes(&t, &contents, piece);
                let answer = blocks
                    .hashes_of(&good)
                    .unwrap_or_else(|| panic!("{version:?} piece {piece} {blocks:?}"));
                assert!(blocks.check(&answer));
                assert!(blocks
                    .corrupt_blocks(&answer, &blocks.copy_hashes(&good))
                    .is_empty());
                let mut bad = good.clone();
                let last = bad.len() - 1;
                bad[last] ^= 0x40;
                assert_eq!(
                    blocks.corrupt_blocks(&answer, &blocks.copy_hashes(&bad)),
                    [(last / BLOCK_LEN) as u32],
                    "{version:?} piece {piece}"
                );
                assert_eq!(
                    blocks.hashes_of(&bad),
                    None,
                    "a server proves what it sends"
                );
                checked += 1;
            }
            // 3 pieces of the first file, the 2.5-block file, the
            // one-piece file; the one-block file has a single sender.
            assert_eq!(checked, 5, "{version:?}");
        }
    }

    #[test]
    fn a_wrong_answer_is_refused() {
        let (t, contents) = torrent(TorrentVersion::V2, &[150_000]);
        let layers = BlockLayers::new(&t);
        let blocks = layers.piece(2).unwrap();
        let good = blocks.hashes_of(&piece_bytes(&t, &contents, 2)).unwrap();
        // The last piece has 18,928 bytes: two blocks, two zero leaves.
        assert_eq!(blocks.range().length, 4);
        assert_eq!(blocks.range().index, 8);
        assert_eq!(blocks.range().proof_layers, 1);
        let mut swapped = good.clone();
        swapped.swap(0, 1);
        let mut padded = good.clone();
        padded[3] = [1; 32];
        for wrong in [&good[..3], &swapped[..], &padded[..]] {
            assert!(!blocks.check(wrong));
        }
        // Another piece's answer proves nothing here.
        let other = layers
            .piece(0)
            .unwrap()
            .hashes_of(&piece_bytes(&t, &contents, 0))
            .unwrap();
        assert!(!blocks.check(&other));
    }

    #[test]
    fn only_the_exact_request_of_a_piece_is_recognised() {
        let (t, _) = torrent(TorrentVersion::V2, &[150_000]);
        let layers = BlockLayers::new(&t);
        let range = *layers.piece(1).unwrap().range();
        assert_eq!(layers.for_request(&range).map(|b| b.piece()), Some(1));
        let wrong = [
            LayerRange {
                base_layer: 1,
                ..range
            },
            LayerRange { index: 5, ..range },
            LayerRange { length: 2, ..range },
            LayerRange { index: 12, ..range },
            LayerRange {
                pieces_root: [9; 32],
                ..range
            },
        ];
        for range in wrong {
            assert_eq!(layers.for_request(&range), None, "{range:?}");
        }
        assert!(BlockLayers::new(&torrent(TorrentVersion::V1, &[150_000]).0)
            .piece(0)
            .is_none());
    }
}
