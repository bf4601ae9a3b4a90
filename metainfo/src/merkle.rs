//! BEP 52 merkle trees: SHA-256 over 16 KiB blocks, the one place in
//! rustico that builds and checks them (storage verifies pieces with it,
//! the creator builds piece layers with it, a swarm checks the proofs of
//! `hashes` messages with it).
//!
//! A file's tree has one leaf per 16 KiB block (the last block may be
//! short and is hashed as it is), padded with all-zero leaves up to a
//! power of two. The *piece layer* is the layer whose nodes each cover
//! one piece; past the file's last piece it is padded with
//! [`pad_hash`]`(height)`, the root of a subtree of zero leaves.
//!
//! ```
//! use rustico_metainfo::merkle::{self, BLOCK_LEN};
//!
//! // A 40 KiB file in 32 KiB pieces: three blocks, two pieces.
//! let data = vec![7u8; 40 * 1024];
//! let leaves = merkle::block_hashes(&data);
//! assert_eq!(leaves.len(), 3);
//! let layer = merkle::piece_layer(&leaves, 32 * 1024)?;
//! assert_eq!(layer.len(), 2);
//! let root = merkle::root_from_layer(&layer, 32 * 1024)?;
//! assert_eq!(root, merkle::root_of_leaves(&leaves));
//! // Each piece checks against its layer hash.
//! assert_eq!(merkle::piece_hash(&data[32 * 1024..], 32 * 1024)?, layer[1]);
//! # let _ = BLOCK_LEN;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use sha2::{Digest, Sha256};

/// A node of a merkle tree: 32 bytes of SHA-256.
pub type Hash = [u8; 32];

/// The leaf size of every BEP 52 tree: 16 KiB.
pub const BLOCK_LEN: usize = 16 * 1024;

/// The smallest v2 piece length (one block).
pub const MIN_PIECE_LENGTH: u32 = BLOCK_LEN as u32;

/// Why a merkle computation was refused: its arguments break BEP 52's
/// shape rules (they come from a torrent or a peer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MerkleError {
    /// A piece length that is not a power of two of at least 16 KiB.
    #[error("piece length {piece_length} is not a power of two of at least 16 KiB")]
    BadPieceLength {
        /// The length given.
        piece_length: u64,
    },
    /// More data than one piece.
    #[error("{len} bytes do not fit in a piece of {piece_length}")]
    TooLong {
        /// Bytes given.
        len: usize,
        /// The piece length.
        piece_length: u64,
    },
    /// A layer with no hashes.
    #[error("an empty layer has no root")]
    EmptyLayer,
    /// A proof that does not fit the tree (wrong count, index or base).
    #[error("a proof of {hashes} hashes at index {index} does not fit a tree of height {height}")]
    BadProofShape {
        /// Hashes given (the run, not the uncles).
        hashes: usize,
        /// Index of the first hash in its layer.
        index: u64,
        /// Height of the tree above the given layer.
        height: u32,
    },
}

/// SHA-256 of one block (at most [`BLOCK_LEN`] bytes).
pub fn hash_block(block: &[u8]) -> Hash {
    debug_assert!(block.len() <= BLOCK_LEN);
    Sha256::digest(block).into()
}

/// The parent of two nodes: SHA-256 of their concatenation.
pub fn hash_pair(left: &Hash, right: &Hash) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update(left);
    hasher.update(right);
    hasher.finalize().into()
}

/// The root of a subtree of `2^height` zero leaves (height 0: the zero
/// leaf itself): what pads a layer `height` levels above the leaves.
pub fn pad_hash(height: u32) -> Hash {
    let mut node = [0u8; 32];
    for _ in 0..height {
        node = hash_pair(&node, &node);
    }
    node
}

/// The leaf hashes of `data`: one per 16 KiB block, the last possibly
/// short. Empty data has no leaves.
pub fn block_hashes(data: &[u8]) -> Vec<Hash> {
    data.chunks(BLOCK_LEN).map(hash_block).collect()
}

/// The root of the tree over `nodes`, padded with `pad` up to `width`
/// nodes (`width` a power of two, at least `nodes.len()`). Reduces in
/// place in one buffer.
pub fn root_padded(nodes: &[Hash], width: usize, pad: Hash) -> Hash {
    debug_assert!(width.is_power_of_two() && width >= nodes.len());
    let mut level: Vec<Hash> = nodes.to_vec();
    let mut pad = pad;
    let mut width = width.max(1);
    while width > 1 {
        let next_len = level.len().div_ceil(2);
        for i in 0..next_len {
            let left = level[2 * i];
            let right = level.get(2 * i + 1).copied().unwrap_or(pad);
            level[i] = hash_pair(&left, &right);
        }
        level.truncate(next_len);
        pad = hash_pair(&pad, &pad);
        width /= 2;
    }
    level.first().copied().unwrap_or(pad)
}

/// The root over `leaves` padded with zero leaves to the next power of
/// two: a file's `pieces root` from its block hashes. Zero leaves give
/// the zero hash (an empty file has no root in a torrent).
pub fn root_of_leaves(leaves: &[Hash]) -> Hash {
    root_padded(leaves, leaves.len().next_power_of_two(), [0; 32])
}

/// `log2(piece_length / 16 KiB)`: the height of a piece's subtree.
pub fn piece_height(piece_length: u64) -> Result<u32, MerkleError> {
    if !piece_length.is_power_of_two() || piece_length < BLOCK_LEN as u64 {
        return Err(MerkleError::BadPieceLength { piece_length });
    }
    Ok((piece_length / BLOCK_LEN as u64).trailing_zeros())
}

/// The piece-layer hash of one piece's bytes (at most `piece_length`;
/// the last piece of a file is short and padded with zero leaves).
pub fn piece_hash(piece: &[u8], piece_length: u64) -> Result<Hash, MerkleError> {
    let height = piece_height(piece_length)?;
    if piece.len() as u64 > piece_length {
        return Err(MerkleError::TooLong {
            len: piece.len(),
            piece_length,
        });
    }
    Ok(root_padded(&block_hashes(piece), 1 << height, [0; 32]))
}

/// The piece layer from a file's leaf hashes: one hash per piece, the
/// last piece's subtree padded with zero leaves.
pub fn piece_layer(leaves: &[Hash], piece_length: u64) -> Result<Vec<Hash>, MerkleError> {
    let height = piece_height(piece_length)?;
    let per_piece = 1usize << height;
    Ok(leaves
        .chunks(per_piece)
        .map(|chunk| root_padded(chunk, per_piece, [0; 32]))
        .collect())
}

/// A file's `pieces root` from its piece layer: the layer padded with
/// [`pad_hash`] of the piece height up to a power of two, reduced.
pub fn root_from_layer(layer: &[Hash], piece_length: u64) -> Result<Hash, MerkleError> {
    let height = piece_height(piece_length)?;
    if layer.is_empty() {
        return Err(MerkleError::EmptyLayer);
    }
    Ok(root_padded(
        layer,
        layer.len().next_power_of_two(),
        pad_hash(height),
    ))
}

/// Checks a run of hashes from one layer of a tree against its root, as
/// the BEP 52 `hashes` message carries them.
///
/// - `root`: the file's `pieces root`;
/// - `tree_height`: how many levels the tree has above the layer of
///   `hashes` (the layer holds `2^tree_height` nodes, padding included);
/// - `index`: position of the first hash in its layer, a multiple of
///   `hashes.len()`;
/// - `hashes`: a power of two of them (padding hashes included);
/// - `uncles`: the sibling of each node on the path from the run's
///   subtree root up to `root`, bottom first (the proof layers).
///
/// Returns `Ok(true)` when the hashes and uncles lead to `root`.
///
/// ```
/// use rustico_metainfo::merkle;
///
/// let leaves: Vec<merkle::Hash> = (0u8..8).map(|i| merkle::hash_block(&[i])).collect();
/// let root = merkle::root_of_leaves(&leaves);
/// // Leaves 4..6 with their uncles: the pair 6..8, then the half 0..4.
/// let uncles = [
///     merkle::hash_pair(&leaves[6], &leaves[7]),
///     merkle::root_of_leaves(&leaves[..4]),
/// ];
/// assert!(merkle::verify_hashes(&root, 3, 4, &leaves[4..6], &uncles)?);
/// assert!(!merkle::verify_hashes(&root, 3, 4, &leaves[2..4], &uncles)?);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn verify_hashes(
    root: &Hash,
    tree_height: u32,
    index: u64,
    hashes: &[Hash],
    uncles: &[Hash],
) -> Result<bool, MerkleError> {
    let shape = MerkleError::BadProofShape {
        hashes: hashes.len(),
        index,
        height: tree_height,
    };
    if hashes.is_empty() || !hashes.len().is_power_of_two() || tree_height > 63 {
        return Err(shape);
    }
    let run_height = hashes.len().trailing_zeros();
    let count = hashes.len() as u64;
    if run_height > tree_height
        || index % count != 0
        || index >= 1u64 << tree_height
        || uncles.len() != (tree_height - run_height) as usize
    {
        return Err(shape);
    }
    let mut node = root_padded(hashes, hashes.len(), [0; 32]);
    let mut position = index / count;
    for uncle in uncles {
        node = if position % 2 == 0 {
            hash_pair(&node, uncle)
        } else {
            hash_pair(uncle, &node)
        };
        position /= 2;
    }
    Ok(node == *root)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_block_root_is_its_hash() {
        let leaves = block_hashes(b"abc");
        assert_eq!(root_of_leaves(&leaves), hash_block(b"abc"));
    }

    #[test]
    fn layer_root_equals_leaf_root() {
        // 5 pieces of 64 KiB (4 leaves each) and a short last piece.
        for len in [
            64 * 1024usize + 1,
            3 * 64 * 1024,
            5 * 64 * 1024 - 7,
            9 * 64 * 1024,
        ] {
            let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let leaves = block_hashes(&data);
            let layer = piece_layer(&leaves, 64 * 1024).unwrap();
            assert_eq!(layer.len(), len.div_ceil(64 * 1024));
            assert_eq!(
                root_from_layer(&layer, 64 * 1024).unwrap(),
                root_of_leaves(&leaves),
                "{len}"
            );
            for (i, piece) in data.chunks(64 * 1024).enumerate() {
                assert_eq!(piece_hash(piece, 64 * 1024).unwrap(), layer[i]);
            }
        }
    }

    #[test]
    fn pad_hash_is_root_of_zero_leaves() {
        assert_eq!(pad_hash(0), [0; 32]);
        assert_eq!(pad_hash(2), root_of_leaves(&[[0; 32]; 4]));
    }

    #[test]
    fn bad_shapes() {
        assert_eq!(
            piece_height(3 * 16384),
            Err(MerkleError::BadPieceLength {
                piece_length: 3 * 16384
            })
        );
        assert_eq!(
            piece_height(8192),
            Err(MerkleError::BadPieceLength { piece_length: 8192 })
        );
        assert!(matches!(
            piece_hash(&[0; 20000], 16384),
            Err(MerkleError::TooLong { .. })
        ));
        let h = [[1; 32]; 2];
        assert!(verify_hashes(&[0; 32], 3, 1, &h, &[[0; 32]; 2]).is_err());
        assert!(verify_hashes(&[0; 32], 3, 0, &h, &[[0; 32]; 1]).is_err());
        assert!(verify_hashes(&[0; 32], 3, 0, &h[..0], &[]).is_err());
        assert!(verify_hashes(&[0; 32], 3, 8, &h, &[[0; 32]; 2]).is_err());
    }

    #[test]
    fn every_run_verifies_and_a_flipped_bit_does_not() {
        let leaves: Vec<Hash> = (0u8..16).map(|i| hash_block(&[i])).collect();
        let root = root_of_leaves(&leaves);
        for run_height in 0..=4u32 {
            let count = 1usize << run_height;
            for start in (0..16).step_by(count) {
                // Uncles: sibling subtrees of growing size.
                let mut uncles = Vec::new();
                let mut size = count;
                let mut pos = start / count;
                while size < 16 {
                    let sibling = pos ^ 1;
                    uncles.push(root_of_leaves(
                        &leaves[sibling * size..(sibling + 1) * size],
                    ));
                    pos /= 2;
                    size *= 2;
                }
                let run = &leaves[start..start + count];
                assert!(verify_hashes(&root, 4, start as u64, run, &uncles).unwrap());
                let mut bad = run.to_vec();
                bad[0][5] ^= 1;
                assert!(!verify_hashes(&root, 4, start as u64, &bad, &uncles).unwrap());
            }
        }
    }
}
