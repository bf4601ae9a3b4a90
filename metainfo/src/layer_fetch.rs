//! Fetching a v2 torrent's piece layers from peers (BEP 52).
//!
//! A torrent made from a `btmh` magnet link has its info dictionary but
//! not the top-level `piece layers`: for every file of more than one
//! piece, the merkle hashes of its pieces must come from peers, in
//! `hash request` / `hashes` messages. [`PieceLayerFetch`] is the sans-IO
//! plan for that: which ranges of which layer to ask for, and the check
//! of every answer against the file's `pieces root` before it is kept,
//! so that a peer that sends a wrong hash or a wrong proof is caught at
//! once (and can be dropped) rather than after a whole piece failed.

use crate::merkle::{self, Hash};
use crate::{Error, Torrent};

/// Hashes of a piece layer asked for in one request at most: libtorrent
/// asks for 512 and refuses answers of other sizes for long layers.
pub const MAX_HASHES_PER_REQUEST: u32 = 512;

/// One `hash request` for part of a file's piece layer, in BEP 52's
/// terms (peer-wire's `HashRequest` carries the same five numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LayerRange {
    /// The file's `pieces root`.
    pub pieces_root: Hash,
    /// The piece layer's height above the 16 KiB block hashes:
    /// `log2(piece length / 16 KiB)`.
    pub base_layer: u32,
    /// The first hash asked for, a multiple of `length`.
    pub index: u32,
    /// How many hashes: a power of two (the layer padded with pad
    /// hashes where it ends), at most [`MAX_HASHES_PER_REQUEST`].
    pub length: u32,
    /// BEP 52 `proof layers`, as libtorrent counts them: asking for
    /// `log2(length) - 1` gets no uncle (the hashes prove their own
    /// subtree), each layer more one uncle more. libtorrent refuses a
    /// request for more uncles than the tree has.
    pub proof_layers: u32,
}

impl LayerRange {
    /// How many uncle hashes the answer carries after the `length`
    /// hashes (0 for a length that is not a power of two).
    pub fn uncles(&self) -> u32 {
        (self.proof_layers + 1).saturating_sub(self.length.trailing_zeros())
    }
}

/// Why an answer was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LayerFetchError {
    /// An answer to a range that was not asked for (or was answered).
    #[error("hashes for a range not asked for (root {root}, index {index})", root = crate::hex(&.pieces_root[..]))]
    NotRequested {
        /// The file's root in the answer.
        pieces_root: Hash,
        /// The first index in the answer.
        index: u32,
    },
    /// The answer holds the wrong number of hashes.
    #[error("{found} hashes where {expected} were due (the range and its proof)")]
    WrongCount {
        /// Hashes due.
        expected: usize,
        /// Hashes found.
        found: usize,
    },
    /// The hashes and their proof do not lead to the file's root: the
    /// peer sent a wrong hash or a wrong proof.
    #[error("the hashes do not lead to the file's pieces root (index {index})")]
    BadProof {
        /// The first index in the answer.
        index: u32,
    },
    /// A hash past the file's last piece is not the padding hash.
    #[error("hash {at} is past the file's last piece but is not the padding hash")]
    BadPadding {
        /// Its index in the layer.
        at: u32,
    },
}

#[derive(Debug, Clone)]
enum Chunk {
    Wanted,
    Asked,
    Have(Vec<Hash>),
}

#[derive(Debug, Clone)]
struct FileLayer {
    root: Hash,
    /// Pieces of the file: real hashes in its layer.
    pieces: u32,
    /// log2 of the layer's width padded to a power of two.
    height: u32,
    /// Hashes per request for this file.
    per_request: u32,
    chunks: Vec<Chunk>,
}

/// The piece layers a torrent still lacks, and the checked hashes
/// received so far: which ranges of which layer to ask peers for, and
/// the check of every answer against its file's `pieces root` before it
/// is kept, so a peer that sends a wrong hash or proof is caught on that
/// answer.
///
/// ```
/// use std::sync::atomic::AtomicBool;
/// use rustico_metainfo::{merkle, PieceLayerFetch, Torrent, TorrentBuilder, TorrentVersion};
///
/// # let dir = std::env::temp_dir().join(format!("rustico-fetch-doc-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir)?;
/// std::fs::write(dir.join("a.bin"), vec![7u8; 200_000])?;
/// let full = TorrentBuilder::new(dir.join("a.bin"))
///     .version(TorrentVersion::V2)
///     .piece_length(32768)
///     .build(|_| {}, &AtomicBool::new(false))?;
/// // What a magnet link's peers give: the info dictionary alone.
/// let bare = Torrent::from_info_bytes(full.info_bytes())?;
/// let mut fetch = PieceLayerFetch::new(&bare);
/// while let Some(range) = fetch.poll_request() {
///     // Over the wire: a `hash request` for `range`, a `hashes` back. A
///     // seed answers from its layer, padded to a power of two.
///     let layer: Vec<merkle::Hash> = full
///         .piece_layer(0)
///         .unwrap()
///         .chunks(32)
///         .map(|h| h.try_into().unwrap())
///         .collect();
///     let mut hashes = layer.clone();
///     hashes.resize(range.length as usize, merkle::pad_hash(1));
///     fetch.handle_hashes(&range, &hashes)?;
/// }
/// let complete = fetch.complete(&bare)?;
/// assert!(complete.has_piece_layers());
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct PieceLayerFetch {
    base_layer: u32,
    pad: Hash,
    files: Vec<FileLayer>,
}

impl PieceLayerFetch {
    /// The plan for `torrent`: every file of more than one piece whose
    /// layer it lacks. Empty (and complete) for a v1-only torrent or one
    /// with all its layers.
    pub fn new(torrent: &Torrent) -> PieceLayerFetch {
        let piece_length = u64::from(torrent.piece_length());
        let height = merkle::piece_height(piece_length).unwrap_or(0);
        let pad = merkle::pad_hash(height);
        let mut files = Vec::new();
        for (index, file) in torrent.files().iter().enumerate() {
            let Some(root) = file.pieces_root() else {
                continue;
            };
            if file.length <= piece_length || torrent.piece_layer(index).is_some() {
                continue;
            }
            let pieces = u32::try_from(file.length.div_ceil(piece_length)).unwrap_or(u32::MAX);
            let width = pieces.checked_next_power_of_two().unwrap_or(1 << 31);
            let per_request = width.min(MAX_HASHES_PER_REQUEST);
            // Ranges wholly past the last piece are padding: known.
            let chunks = (0..width / per_request)
                .map(|n| match n * per_request >= pieces {
                    true => Chunk::Have(vec![pad; per_request as usize]),
                    false => Chunk::Wanted,
                })
                .collect();
            files.push(FileLayer {
                root,
                pieces,
                height: width.trailing_zeros(),
                per_request,
                chunks,
            });
        }
        PieceLayerFetch {
            base_layer: height,
            pad,
            files,
        }
    }

    /// Whether every layer is in.
    pub fn is_complete(&self) -> bool {
        self.files
            .iter()
            .all(|f| f.chunks.iter().all(|c| matches!(c, Chunk::Have(_))))
    }

    /// The next range to ask a peer for, `None` when every missing one
    /// is asked for already. A range whose peer rejected it or left goes
    /// back with [`release`](Self::release).
    pub fn poll_request(&mut self) -> Option<LayerRange> {
        let base_layer = self.base_layer;
        for file in &mut self.files {
            for (n, chunk) in file.chunks.iter_mut().enumerate() {
                if matches!(chunk, Chunk::Wanted) {
                    *chunk = Chunk::Asked;
                    let length = file.per_request;
                    // Uncles from the chunk's subtree up to the root.
                    let uncles = file.height - length.trailing_zeros();
                    return Some(LayerRange {
                        pieces_root: file.root,
                        base_layer,
                        index: n as u32 * length,
                        length,
                        proof_layers: (uncles + length.trailing_zeros()).saturating_sub(1),
                    });
                }
            }
        }
        None
    }

    /// `range` will not be answered (rejected, or its peer left): it is
    /// asked for again by the next [`poll_request`](Self::poll_request).
    pub fn release(&mut self, range: &LayerRange) {
        if let Some(chunk) = self.chunk_mut(range) {
            if matches!(chunk, Chunk::Asked) {
                *chunk = Chunk::Wanted;
            }
        }
    }

    /// The file `range` is in, if it is one of the ranges handed out.
    fn file_of(&mut self, range: &LayerRange) -> Option<&mut FileLayer> {
        let base_layer = self.base_layer;
        self.files.iter_mut().find(|f| {
            f.root == range.pieces_root
                && f.per_request == range.length
                && range.base_layer == base_layer
                && range.index % f.per_request == 0
        })
    }

    fn chunk_mut(&mut self, range: &LayerRange) -> Option<&mut Chunk> {
        let file = self.file_of(range)?;
        let n = (range.index / file.per_request) as usize;
        file.chunks.get_mut(n)
    }

    /// The answer to `range`: `hashes` holds its `length` hashes, then
    /// its uncles (bottom first). Checked against the file's root before
    /// it is kept; an error means the peer lied (drop it) and the range
    /// is asked for again.
    pub fn handle_hashes(
        &mut self,
        range: &LayerRange,
        hashes: &[Hash],
    ) -> Result<(), LayerFetchError> {
        let pad = self.pad;
        let not_requested = LayerFetchError::NotRequested {
            pieces_root: range.pieces_root,
            index: range.index,
        };
        let Some(file) = self.file_of(range) else {
            return Err(not_requested);
        };
        let n = (range.index / file.per_request) as usize;
        if !matches!(file.chunks.get(n), Some(Chunk::Asked)) {
            return Err(not_requested);
        }
        let uncles = (file.height - file.per_request.trailing_zeros()) as usize;
        let expected = file.per_request as usize + uncles;
        let checked = check(file, range.index, hashes, expected, pad);
        if let Some(chunk) = file.chunks.get_mut(n) {
            *chunk = match &checked {
                Ok(()) => Chunk::Have(hashes[..file.per_request as usize].to_vec()),
                Err(_) => Chunk::Wanted,
            };
        }
        checked
    }

    /// The torrent with the fetched layers added (see
    /// [`Torrent::with_piece_layers`]), once [`is_complete`](Self::is_complete).
    pub fn complete(&self, torrent: &Torrent) -> Result<Torrent, Error> {
        let layers: Vec<(Hash, Vec<u8>)> = self
            .files
            .iter()
            .map(|file| {
                let mut bytes = Vec::with_capacity(file.pieces as usize * 32);
                for chunk in &file.chunks {
                    if let Chunk::Have(hashes) = chunk {
                        for hash in hashes {
                            bytes.extend_from_slice(hash);
                        }
                    }
                }
                bytes.truncate(file.pieces as usize * 32);
                (file.root, bytes)
            })
            .collect();
        torrent.with_piece_layers(layers.iter().map(|(root, layer)| (root, layer.as_slice())))
    }
}

/// Answers peers' hash requests for a torrent's piece layers (the seed's
/// side of [`PieceLayerFetch`]): the requested run of a file's padded
/// piece layer and the uncles up to its `pieces root`. A file's merkle
/// tree above its layer is built on its first request and kept.
///
/// ```
/// use std::sync::atomic::AtomicBool;
/// use rustico_metainfo::{HashServer, PieceLayerFetch, Torrent, TorrentBuilder, TorrentVersion};
///
/// # let dir = std::env::temp_dir().join(format!("rustico-serve-doc-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir)?;
/// std::fs::write(dir.join("a.bin"), vec![3u8; 700 * 16384])?;
/// let full = TorrentBuilder::new(dir.join("a.bin"))
///     .version(TorrentVersion::V2)
///     .piece_length(16384)
///     .build(|_| {}, &AtomicBool::new(false))?;
/// let server = HashServer::new(&full);
/// let bare = Torrent::from_info_bytes(full.info_bytes())?;
/// let mut fetch = PieceLayerFetch::new(&bare);
/// while let Some(range) = fetch.poll_request() {
///     let answer = server.answer(&range).expect("a range of a layer it has");
///     fetch.handle_hashes(&range, &answer)?;
/// }
/// assert!(fetch.complete(&bare)?.has_piece_layers());
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct HashServer {
    base_layer: u32,
    pad: Hash,
    files: Vec<ServedFile>,
}

#[derive(Debug)]
struct ServedFile {
    root: Hash,
    /// The piece layer, unpadded.
    layer: Vec<Hash>,
    /// Every level of the tree from the padded layer up to the root.
    tree: std::sync::OnceLock<Vec<Vec<Hash>>>,
}

impl HashServer {
    /// The server of `torrent`'s piece layers (none for a v1-only
    /// torrent, or one whose layers are missing).
    pub fn new(torrent: &Torrent) -> HashServer {
        let height = merkle::piece_height(u64::from(torrent.piece_length())).unwrap_or(0);
        let files = torrent
            .files()
            .iter()
            .enumerate()
            .filter_map(|(index, file)| {
                let layer = torrent.piece_layer(index)?;
                Some(ServedFile {
                    root: file.pieces_root()?,
                    layer: layer
                        .chunks_exact(32)
                        .filter_map(|h| h.try_into().ok())
                        .collect(),
                    tree: std::sync::OnceLock::new(),
                })
            })
            .collect();
        HashServer {
            base_layer: height,
            pad: merkle::pad_hash(height),
            files,
        }
    }

    /// The hashes and proof for `range`, or `None` when it is not a
    /// well-formed request for a layer this torrent has (the session
    /// then sends a `hash reject`): another base layer, a length that is
    /// not a power of two or is over [`MAX_HASHES_PER_REQUEST`], an index
    /// past the layer or not a multiple of the length, or more uncles
    /// than the tree has.
    pub fn answer(&self, range: &LayerRange) -> Option<Vec<Hash>> {
        let file = self.files.iter().find(|f| f.root == range.pieces_root)?;
        let width = u32::try_from(file.layer.len())
            .ok()?
            .checked_next_power_of_two()?;
        let length = range.length;
        let fits = range.base_layer == self.base_layer
            && length.is_power_of_two()
            && length <= MAX_HASHES_PER_REQUEST
            && range.index % length == 0
            && range.index.checked_add(length)? <= width;
        let uncles = range.uncles();
        if !fits || uncles > width.trailing_zeros() - length.trailing_zeros() {
            return None;
        }
        let tree = file.tree.get_or_init(|| {
            let mut level = file.layer.clone();
            level.resize(width as usize, self.pad);
            let mut levels = vec![level];
            while levels.last().is_some_and(|l| l.len() > 1) {
                let below = levels.last().map(Vec::as_slice).unwrap_or_default();
                let up = below
                    .chunks_exact(2)
                    .map(|pair| merkle::hash_pair(&pair[0], &pair[1]))
                    .collect();
                levels.push(up);
            }
            levels
        });
        let start = range.index as usize;
        let mut out = tree.first()?.get(start..start + length as usize)?.to_vec();
        // The uncle at each level above the run's subtree root.
        let first = length.trailing_zeros() as usize;
        let mut position = start / length as usize;
        for level in first..first + uncles as usize {
            out.push(*tree.get(level)?.get(position ^ 1)?);
            position /= 2;
        }
        Some(out)
    }
}

/// Checks one answer: its size, the padding past the last piece, and the
/// proof up to the root.
fn check(
    file: &FileLayer,
    index: u32,
    hashes: &[Hash],
    expected: usize,
    pad: Hash,
) -> Result<(), LayerFetchError> {
    if hashes.len() != expected {
        return Err(LayerFetchError::WrongCount {
            expected,
            found: hashes.len(),
        });
    }
    let (run, uncles) = hashes.split_at(file.per_request as usize);
    for (at, hash) in (index..).zip(run) {
        if at >= file.pieces && *hash != pad {
            return Err(LayerFetchError::BadPadding { at });
        }
    }
    match merkle::verify_hashes(&file.root, file.height, u64::from(index), run, uncles) {
        Ok(true) => Ok(()),
        _ => Err(LayerFetchError::BadProof { index }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{TorrentBuilder, TorrentVersion};
    use std::sync::atomic::AtomicBool;

    /// A v2 torrent of files of these lengths with 16 KiB pieces, and
    /// the same torrent without its piece layers.
    fn torrents(lengths: &[usize]) -> (Torrent, Torrent, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("t");
        std::fs::create_dir_all(&folder).unwrap();
        for (i, len) in lengths.iter().enumerate() {
            let data: Vec<u8> = (0..*len)
                .map(|b| (b * 31 + i * 7 + b / 4099) as u8)
                .collect();
            std::fs::write(folder.join(format!("f{i}")), data).unwrap();
        }
        let full = TorrentBuilder::new(&folder)
            .version(TorrentVersion::V2)
            .piece_length(16384)
            .build(|_| {}, &AtomicBool::new(false))
            .unwrap();
        let bare = Torrent::from_info_bytes(full.info_bytes()).unwrap();
        (full, bare, dir)
    }

    /// What an honest seed answers: the range of the padded layer, then
    /// the uncles from the range's subtree up to the root.
    fn answer(full: &Torrent, range: &LayerRange) -> Vec<Hash> {
        let index = full
            .files()
            .iter()
            .position(|f| f.pieces_root() == Some(range.pieces_root))
            .unwrap();
        let mut layer: Vec<Hash> = full
            .piece_layer(index)
            .unwrap()
            .chunks(32)
            .map(|h| h.try_into().unwrap())
            .collect();
        let pad = merkle::pad_hash(range.base_layer);
        layer.resize(layer.len().next_power_of_two(), pad);
        let start = range.index as usize;
        let mut out = layer[start..start + range.length as usize].to_vec();
        // Climb from the range's subtree: at each level, the sibling
        // subtree's root.
        let mut width = range.length as usize;
        let mut position = start / width;
        for _ in 0..range.uncles() {
            let sibling = position ^ 1;
            let nodes = &layer[sibling * width..(sibling + 1) * width];
            out.push(merkle::root_padded(nodes, width, pad));
            width *= 2;
            position /= 2;
        }
        out
    }

    #[test]
    fn layers_of_short_and_long_files_are_fetched_and_checked() {
        // 3 pieces (one request, no proof), one piece (no layer), and
        // 1,300 pieces (three requests of 512 with one uncle each).
        let (full, bare, _dir) = torrents(&[40_000, 16_384, 1_300 * 16_384 - 5]);
        assert!(!bare.has_piece_layers());
        let mut fetch = PieceLayerFetch::new(&bare);
        let mut ranges = Vec::new();
        while let Some(range) = fetch.poll_request() {
            ranges.push(range);
        }
        let shapes: Vec<(u32, u32, u32)> = ranges
            .iter()
            .map(|r| (r.index, r.length, r.uncles()))
            .collect();
        assert_eq!(
            shapes,
            [(0, 4, 0), (0, 512, 2), (512, 512, 2), (1024, 512, 2)]
        );
        assert!(ranges.iter().all(|r| r.base_layer == 0));
        assert!(!fetch.is_complete());
        for range in &ranges {
            fetch.handle_hashes(range, &answer(&full, range)).unwrap();
        }
        assert!(fetch.is_complete());
        let complete = fetch.complete(&bare).unwrap();
        assert!(complete.has_piece_layers());
        for piece in 0..full.num_pieces() {
            assert_eq!(complete.v2_piece_hash(piece), full.v2_piece_hash(piece));
        }
    }

    #[test]
    fn a_wrong_hash_proof_count_or_padding_is_refused_and_asked_again() {
        let (full, bare, _dir) = torrents(&[3 * 16_384, 1_100 * 16_384]);
        let mut fetch = PieceLayerFetch::new(&bare);
        let short = fetch.poll_request().unwrap();
        let long = fetch.poll_request().unwrap();
        assert_eq!((short.length, short.uncles()), (4, 0));
        assert_eq!((long.length, long.uncles()), (512, 2));

        let mut bad = answer(&full, &long);
        bad[7][0] ^= 1;
        assert_eq!(
            fetch.handle_hashes(&long, &bad),
            Err(LayerFetchError::BadProof { index: 0 })
        );
        let mut bad = answer(&full, &long);
        *bad.last_mut().unwrap() = [0; 32];
        assert_eq!(
            fetch.handle_hashes(&long, &bad),
            Err(LayerFetchError::NotRequested {
                pieces_root: long.pieces_root,
                index: 0
            }),
            "a refused range is not asked for until handed out again"
        );
        // Handed out again, then a wrong uncle.
        let again = loop {
            let r = fetch.poll_request().unwrap();
            if r == long {
                break r;
            }
        };
        assert_eq!(
            fetch.handle_hashes(&again, &bad),
            Err(LayerFetchError::BadProof { index: 0 })
        );

        // The fourth hash of the 3-piece file is padding.
        let mut bad = answer(&full, &short);
        bad[3] = bad[0];
        assert_eq!(
            fetch.handle_hashes(&short, &bad),
            Err(LayerFetchError::BadPadding { at: 3 })
        );
        let short = fetch.poll_request().unwrap();
        let mut wrong = answer(&full, &short);
        wrong.push([1; 32]);
        assert!(matches!(
            fetch.handle_hashes(&short, &wrong),
            Err(LayerFetchError::WrongCount {
                expected: 4,
                found: 5
            })
        ));
        assert!(!fetch.is_complete());
    }

    #[test]
    fn a_released_range_is_asked_again_and_unknown_ones_are_refused() {
        let (full, bare, _dir) = torrents(&[5 * 16_384]);
        let mut fetch = PieceLayerFetch::new(&bare);
        let range = fetch.poll_request().unwrap();
        assert_eq!(fetch.poll_request(), None);
        fetch.release(&range);
        assert_eq!(fetch.poll_request(), Some(range));
        let mut other = range;
        other.pieces_root[0] ^= 1;
        assert!(matches!(
            fetch.handle_hashes(&other, &answer(&full, &range)),
            Err(LayerFetchError::NotRequested { .. })
        ));
        fetch.handle_hashes(&range, &answer(&full, &range)).unwrap();
        assert!(matches!(
            fetch.handle_hashes(&range, &answer(&full, &range)),
            Err(LayerFetchError::NotRequested { .. })
        ));
        assert!(fetch.is_complete());
        // Nothing to fetch for a torrent with its layers.
        assert!(PieceLayerFetch::new(&full).is_complete());
    }

    #[test]
    fn the_server_answers_what_the_fetch_asks_and_refuses_the_rest() {
        let (full, bare, _dir) = torrents(&[40_000, 1_300 * 16_384 - 5]);
        let server = HashServer::new(&full);
        let mut fetch = PieceLayerFetch::new(&bare);
        let mut ranges = Vec::new();
        while let Some(range) = fetch.poll_request() {
            assert_eq!(server.answer(&range), Some(answer(&full, &range)));
            ranges.push(range);
        }
        let long = ranges[1];
        let refused = [
            LayerRange {
                base_layer: 1,
                ..long
            },
            LayerRange {
                length: 500,
                ..long
            },
            LayerRange {
                length: 1024,
                ..long
            },
            LayerRange { index: 256, ..long },
            LayerRange {
                index: 2048,
                ..long
            },
            // 3 uncles where the tree above a run of 512 has 2 levels.
            LayerRange {
                proof_layers: 11,
                ..long
            },
            LayerRange {
                pieces_root: [7; 32],
                ..long
            },
        ];
        for range in refused {
            assert_eq!(server.answer(&range), None, "{range:?}");
        }
        // Fewer uncles than the fetch asks for is a valid request too.
        let bare_run = LayerRange {
            proof_layers: 8,
            ..long
        };
        assert_eq!(server.answer(&bare_run).map(|h| h.len()), Some(512));
        // A torrent without layers serves nothing.
        assert_eq!(HashServer::new(&bare).answer(&long), None);
    }
}
