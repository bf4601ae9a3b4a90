//! The torrent's file layout: which bytes of which file make up each piece.
//!
//! A [`Layout`] is validated once, when it is built, so the rest of the crate
//! can map pieces to file spans without re-checking paths or lengths.

use std::hash::{BuildHasher, RandomState};
use std::path::PathBuf;
use std::sync::Arc;

use hashbrown::HashTable;

use rustico_metainfo::merkle;
pub use rustico_metainfo::V2PieceHash;
use rustico_pieces::{Geometry, PieceData, BLOCK_LEN};

/// Largest piece length accepted (512 MiB, as libtorrent). Pieces are held whole in memory
/// while they are verified and cached, so an absurd length is refused up front.
pub const MAX_PIECE_LENGTH: u32 = 512 * 1024 * 1024;

/// Largest total length accepted (1 PiB): far above any real torrent, far
/// below the point where offsets could overflow.
pub const MAX_TOTAL_LENGTH: u64 = 1 << 50;

/// Longest path component accepted, in bytes (the usual file-name limit).
pub const MAX_COMPONENT_LENGTH: usize = 255;

/// One file of a torrent, in the order the torrent lists it.
///
/// Kept small (a torrent may list a million): the path is one string.
///
/// ```
/// use rustico_storage::FileEntry;
/// let file = FileEntry::new(["name", "dir", "a.txt"], 5);
/// assert_eq!(file.path(), "name/dir/a.txt");
/// assert_eq!(file.components().collect::<Vec<_>>(), ["name", "dir", "a.txt"]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// See [`FileEntry::path`].
    path: Box<str>,
    /// Length in bytes (may be zero).
    pub length: u64,
    /// A BEP 47 padding file: zeros that push the next file to a piece
    /// boundary. Padding is virtual: it is read as zeros, never created,
    /// read or written on disk, and its path is neither checked nor
    /// compared with others (libtorrent names every pad `.pad/<size>`, so
    /// two pads of one size share a path).
    pub padding: bool,
}

impl FileEntry {
    /// A file entry from path components and a length. The components
    /// are joined with `/`, so a `/` inside one separates two (each is
    /// checked when the [`Layout`] is built).
    pub fn new<S: AsRef<str>>(path: impl IntoIterator<Item = S>, length: u64) -> FileEntry {
        let mut joined = String::new();
        for (index, component) in path.into_iter().enumerate() {
            if index > 0 {
                joined.push('/');
            }
            joined.push_str(component.as_ref());
        }
        FileEntry {
            path: joined.into_boxed_str(),
            length,
            padding: false,
        }
    }

    /// The path below the download folder, components joined with `/`
    /// (`name/dir/a.txt`; a single-file torrent's is its name).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The path's components (`["name", "dir", "a.txt"]`).
    pub fn components(&self) -> std::str::Split<'_, char> {
        self.path.split('/')
    }

    /// A padding entry of `length` zeros (see [`FileEntry::padding`]).
    pub fn padding<S: AsRef<str>>(path: impl IntoIterator<Item = S>, length: u64) -> FileEntry {
        FileEntry {
            padding: true,
            ..FileEntry::new(path, length)
        }
    }

    /// The path relative to the download folder.
    pub fn relative_path(&self) -> PathBuf {
        self.components().collect()
    }
}

/// Why a layout was refused. Indices count files from 0 in torrent order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    /// The layout lists no files, or only empty ones.
    #[error("the layout has no data (no files, or only empty ones)")]
    Empty,
    /// A file has no path components.
    #[error("file {file} has an empty path")]
    EmptyPath {
        /// Index of the file.
        file: usize,
    },
    /// A path component would escape the download folder or is not a plain name
    /// (`..`, `.`, empty, or containing `/` or a NUL byte).
    #[error("file {file} has an unsafe path component {component:?}")]
    UnsafeComponent {
        /// Index of the file.
        file: usize,
        /// The refused component.
        component: String,
    },
    /// A path component is longer than [`MAX_COMPONENT_LENGTH`] bytes.
    #[error("file {file} has a path component of {len} bytes (max {MAX_COMPONENT_LENGTH})")]
    ComponentTooLong {
        /// Index of the file.
        file: usize,
        /// Length of the component in bytes.
        len: usize,
    },
    /// Two files have the same path, or one file's path is a folder of another.
    #[error("file {file} collides with file {other} (same path, or one is a folder of the other)")]
    PathConflict {
        /// Index of the later file.
        file: usize,
        /// Index of the earlier file it collides with.
        other: usize,
    },
    /// The sum of file lengths exceeds [`MAX_TOTAL_LENGTH`] (or overflows).
    #[error("total length exceeds {MAX_TOTAL_LENGTH} bytes at file {file}")]
    TotalTooLong {
        /// Index of the file whose length pushed the total over.
        file: usize,
    },
    /// The piece length is zero.
    #[error("piece length is zero")]
    ZeroPieceLength,
    /// The piece length exceeds [`MAX_PIECE_LENGTH`].
    #[error("piece length {0} exceeds {MAX_PIECE_LENGTH}")]
    PieceLengthTooLong(u32),
    /// The number of piece hashes does not match the total length.
    #[error("{actual} piece hashes given, the total length needs {expected}")]
    PieceCountMismatch {
        /// Pieces needed by the total length and piece length.
        expected: u64,
        /// Hashes given.
        actual: usize,
    },
    /// A v2 layout (BEP 52) whose piece length is not a power of two of
    /// at least 16 KiB.
    #[error("piece length {0} is not a power of two of at least 16 KiB, as v2 needs")]
    V2PieceLength(u32),
    /// A v2 layout in which a file does not start on a piece boundary
    /// (BEP 52: every file starts a new piece).
    #[error("file {file} starts at byte {offset}, not on a piece boundary, as v2 needs")]
    V2Misaligned {
        /// Index of the file.
        file: usize,
        /// Its offset in the byte stream.
        offset: u64,
    },
    /// A v2 torrent without the piece layer of a file of more than one
    /// piece (fetch it from peers first).
    #[error("the piece layer of file {file} is missing")]
    MissingPieceLayer {
        /// Index of the file.
        file: usize,
    },
}

/// A validated file layout: files, piece length and piece hashes.
///
/// ```
/// use rustico_storage::{FileEntry, Layout};
/// let layout = Layout::new(
///     vec![FileEntry::new(["t", "a"], 3), FileEntry::new(["t", "b"], 5)],
///     4,
///     vec![[0; 20]; 2],
/// )?;
/// assert_eq!(layout.total_length(), 8);
/// assert_eq!(layout.piece_size(1), Some(4));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// Shared: a clone of a layout (one per storage, one kept by the
    /// client) does not copy a million paths.
    files: Arc<[FileEntry]>,
    /// Offset of each file's first byte in the torrent's byte stream.
    starts: Arc<[u64]>,
    geometry: Geometry,
    piece_hashes: Vec<[u8; 20]>,
    /// BEP 52: per piece, its merkle hash and how many of its bytes are
    /// the file's (the rest is padding, left out of the v2 tree).
    v2: Option<Vec<(V2PieceHash, u32)>>,
}

/// A part of a piece or block that lies in one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileSpan {
    /// Index of the file.
    pub file: usize,
    /// Offset inside the file.
    pub file_offset: u64,
    /// Offset inside the caller's buffer (the piece or block).
    pub buf_offset: usize,
    /// Number of bytes.
    pub len: usize,
    /// The file is padding: these bytes are zeros and touch no disk.
    pub padding: bool,
}

impl Layout {
    /// Validates and builds a layout.
    ///
    /// Refuses unsafe or colliding paths, a zero or huge piece length, an
    /// absurd total length, and a piece-hash count that does not match the
    /// total length.
    pub fn new(
        files: Vec<FileEntry>,
        piece_length: u32,
        piece_hashes: Vec<[u8; 20]>,
    ) -> Result<Layout, LayoutError> {
        if piece_length == 0 {
            return Err(LayoutError::ZeroPieceLength);
        }
        if piece_length > MAX_PIECE_LENGTH {
            return Err(LayoutError::PieceLengthTooLong(piece_length));
        }

        let mut starts = Vec::with_capacity(files.len());
        let mut total: u64 = 0;
        for (index, file) in files.iter().enumerate() {
            if !file.padding {
                check_path(index, file)?;
            }
            starts.push(total);
            total = total
                .checked_add(file.length)
                .filter(|t| *t <= MAX_TOTAL_LENGTH)
                .ok_or(LayoutError::TotalTooLong { file: index })?;
        }
        check_conflicts(&files)?;
        if total == 0 {
            return Err(LayoutError::Empty);
        }
        let expected = total.div_ceil(u64::from(piece_length));
        let geometry = Geometry::new(total, piece_length)
            .ok()
            .filter(|g| u64::from(g.num_pieces()) == piece_hashes.len() as u64)
            .ok_or(LayoutError::PieceCountMismatch {
                expected,
                actual: piece_hashes.len(),
            })?;
        Ok(Layout {
            files: files.into(),
            starts: starts.into(),
            geometry,
            piece_hashes,
            v2: None,
        })
    }

    /// A v2-only layout (BEP 52): `files` with padding entries so that
    /// every file starts on a piece boundary (as
    /// `rustico_metainfo::Torrent::files` lists a v2 torrent), and one
    /// merkle hash per piece. Pieces are checked by SHA-256 merkle roots
    /// of their 16 KiB blocks, the padding left out.
    ///
    /// ```
    /// use rustico_metainfo::merkle;
    /// use rustico_storage::{FileEntry, Layout, V2PieceHash};
    ///
    /// let data: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8).collect();
    /// // Three pieces of 16 KiB, each with its piece-layer hash.
    /// let hashes = data
    ///     .chunks(16384)
    ///     .map(|p| merkle::piece_hash(p, 16384).map(V2PieceHash::Layer))
    ///     .collect::<Result<_, _>>()?;
    /// let layout = Layout::new_v2(vec![FileEntry::new(["a.bin"], 40_000)], 16384, hashes)?;
    /// assert!(layout.verify_piece(2, &data[32768..]));
    /// assert!(!layout.verify_piece(1, &data[..16384]));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new_v2(
        files: Vec<FileEntry>,
        piece_length: u32,
        hashes: Vec<V2PieceHash>,
    ) -> Result<Layout, LayoutError> {
        let mut layout = Layout::new(files, piece_length, vec![[0; 20]; hashes.len()])?;
        layout.piece_hashes = Vec::new();
        layout.set_v2(hashes)?;
        Ok(layout)
    }

    /// Adds v2 hashes to a v1 layout: a hybrid torrent's pieces are then
    /// checked against both (SHA-1 over the piece with its padding,
    /// merkle over the file's bytes), as libtorrent does.
    pub fn with_v2(mut self, hashes: Vec<V2PieceHash>) -> Result<Layout, LayoutError> {
        self.set_v2(hashes)?;
        Ok(self)
    }

    fn set_v2(&mut self, hashes: Vec<V2PieceHash>) -> Result<(), LayoutError> {
        let piece_length = self.piece_length();
        if merkle::piece_height(u64::from(piece_length)).is_err() {
            return Err(LayoutError::V2PieceLength(piece_length));
        }
        if hashes.len() != self.num_pieces() as usize {
            return Err(LayoutError::PieceCountMismatch {
                expected: u64::from(self.num_pieces()),
                actual: hashes.len(),
            });
        }
        for (file, entry) in self.files.iter().enumerate() {
            let offset = self.starts.get(file).copied().unwrap_or(0);
            if !entry.padding && entry.length > 0 && offset % u64::from(piece_length) != 0 {
                return Err(LayoutError::V2Misaligned { file, offset });
            }
        }
        let v2 = hashes
            .into_iter()
            .zip(0..)
            .map(|(hash, piece)| {
                let data: usize = self
                    .piece_spans(piece)
                    .take_while(|span| !span.padding)
                    .map(|span| span.len)
                    .sum();
                (hash, data as u32)
            })
            .collect();
        self.v2 = Some(v2);
        Ok(())
    }

    /// Whether pieces are checked by v1 SHA-1 hashes.
    pub fn has_v1(&self) -> bool {
        !self.piece_hashes.is_empty()
    }

    /// Whether pieces are checked by v2 merkle hashes.
    pub fn has_v2(&self) -> bool {
        self.v2.is_some()
    }

    /// The v2 hash of a piece and how many of its bytes (from its start)
    /// the hash covers (the rest is padding); `None` without v2 hashes or
    /// past the end.
    pub fn v2_piece_hash(&self, piece: u32) -> Option<(V2PieceHash, u32)> {
        self.v2.as_ref()?.get(piece as usize).copied()
    }

    /// The files, in torrent order.
    pub fn files(&self) -> &[FileEntry] {
        &self.files
    }

    /// The files, shared with this layout (no copy).
    pub(crate) fn shared_files(&self) -> Arc<[FileEntry]> {
        Arc::clone(&self.files)
    }

    /// Sum of all file lengths, padding included: the length of the byte
    /// stream the pieces cut.
    pub fn total_length(&self) -> u64 {
        self.geometry.total_length()
    }

    /// Sum of the lengths of the real files (padding left out): what
    /// ends up on disk.
    pub fn content_length(&self) -> u64 {
        self.files
            .iter()
            .filter(|f| !f.padding)
            .map(|f| f.length)
            .sum()
    }

    /// The piece and block geometry of the byte stream.
    pub fn geometry(&self) -> Geometry {
        self.geometry
    }

    /// Nominal piece length (every piece but possibly the last).
    pub fn piece_length(&self) -> u32 {
        self.geometry.piece_length()
    }

    /// Number of pieces.
    pub fn num_pieces(&self) -> u32 {
        self.geometry.num_pieces()
    }

    /// The expected SHA-1 of every piece (empty for a v2-only layout).
    pub fn piece_hashes(&self) -> &[[u8; 20]] {
        &self.piece_hashes
    }

    /// Whether `data` is piece `piece`: the right length, the right SHA-1
    /// (v1 and hybrid) and the right merkle hash of the file's bytes in
    /// it (v2 and hybrid). Needs no files: a client can check a piece
    /// before it decides where (or whether) to store it.
    pub fn verify_piece(&self, piece: u32, data: &[u8]) -> bool {
        self.verify_bytes(piece, &data)
    }

    /// [`verify_piece`](Self::verify_piece) for a piece kept in the
    /// buffers its blocks arrived in: hashed chunk by chunk, never joined.
    pub fn verify_piece_data(&self, piece: u32, data: &PieceData) -> bool {
        self.verify_bytes(piece, data)
    }

    pub(crate) fn verify_bytes(&self, piece: u32, data: &dyn PieceBytes) -> bool {
        use sha1::{Digest, Sha1};
        let Some(len) = self.piece_size(piece) else {
            return false;
        };
        if data.byte_len() != len as usize {
            return false;
        }
        if self.has_v1() {
            let mut sha1 = Sha1::new();
            for slice in data.slices(0, len as usize) {
                sha1.update(slice);
            }
            match self.piece_hash(piece) {
                Some(expected) if sha1.finalize().as_slice() == expected => {}
                _ => return false,
            }
        }
        match &self.v2 {
            Some(v2) => match v2.get(piece as usize) {
                Some((hash, covered)) => {
                    *covered <= len
                        && hash.matches_leaves(
                            &block_hashes(data, *covered as usize),
                            self.piece_length(),
                        )
                }
                None => false,
            },
            None => self.has_v1(),
        }
    }

    /// Expected SHA-1 of one piece, `None` if out of range.
    pub fn piece_hash(&self, piece: u32) -> Option<&[u8; 20]> {
        self.piece_hashes.get(piece as usize)
    }

    /// Length of one piece (the last may be shorter), `None` if out of range.
    pub fn piece_size(&self, piece: u32) -> Option<u32> {
        self.geometry.piece_size(piece)
    }

    /// Offset of a piece's first byte in the torrent's byte stream.
    pub(crate) fn piece_offset(&self, piece: u32) -> u64 {
        self.geometry.piece_offset(piece)
    }

    /// Offset of a file's first byte in the torrent's byte stream.
    pub fn file_offset(&self, file: usize) -> Option<u64> {
        self.starts.get(file).copied()
    }

    /// Range of pieces `[first, last]` that hold bytes of `file`; `None` for
    /// an empty file (it holds no bytes) or an index out of range.
    pub fn pieces_of_file(&self, file: usize) -> Option<(u32, u32)> {
        let entry = self.files.get(file)?;
        if entry.length == 0 {
            return None;
        }
        let start = *self.starts.get(file)?;
        let end = start + entry.length - 1;
        let pl = u64::from(self.piece_length());
        Some(((start / pl) as u32, (end / pl) as u32))
    }

    /// The file spans covering `len` bytes from torrent offset `offset`, in
    /// order, skipping zero-length files. The caller has checked the range is
    /// inside the torrent.
    pub fn spans(&self, offset: u64, len: usize) -> impl Iterator<Item = FileSpan> + '_ {
        // First file whose end is past `offset`; zero-length files end where
        // they start, so they are skipped naturally.
        let first = self
            .starts
            .partition_point(|&start| start <= offset)
            .saturating_sub(1);
        let end = offset + len as u64;
        let mut cursor = offset;
        let mut file = first;
        std::iter::from_fn(move || {
            while cursor < end {
                let entry = self.files.get(file)?;
                let start = *self.starts.get(file)?;
                let file_end = start + entry.length;
                if file_end <= cursor {
                    file += 1;
                    continue;
                }
                let take = (file_end.min(end) - cursor) as usize;
                let span = FileSpan {
                    file,
                    file_offset: cursor - start,
                    buf_offset: (cursor - offset) as usize,
                    len: take,
                    padding: entry.padding,
                };
                cursor += take as u64;
                file += 1;
                return Some(span);
            }
            None
        })
    }

    /// The file spans of a whole piece.
    pub fn piece_spans(&self, piece: u32) -> impl Iterator<Item = FileSpan> + '_ {
        let len = self.piece_size(piece).unwrap_or(0) as usize;
        self.spans(self.piece_offset(piece), len)
    }

    /// A short fingerprint of the layout (SHA-1 over lengths, paths, piece
    /// length and hashes), so a resume file is never applied to another torrent.
    pub(crate) fn fingerprint(&self) -> [u8; 20] {
        use sha1::{Digest, Sha1};
        let mut hasher = Sha1::new();
        hasher.update(u64::from(self.piece_length()).to_le_bytes());
        hasher.update((self.files.len() as u64).to_le_bytes());
        for file in self.files.iter() {
            hasher.update(file.length.to_le_bytes());
            hasher.update([u8::from(file.padding)]);
            hasher.update((file.components().count() as u64).to_le_bytes());
            for component in file.components() {
                hasher.update((component.len() as u64).to_le_bytes());
                hasher.update(component.as_bytes());
            }
        }
        for hash in &self.piece_hashes {
            hasher.update(hash);
        }
        // Added only for v2, so v1 fingerprints (and resume files) stay.
        for (hash, covered) in self.v2.iter().flatten() {
            let (kind, bytes) = match hash {
                V2PieceHash::Layer(h) => (b'L', h),
                V2PieceHash::Root(h) => (b'R', h),
            };
            hasher.update([kind]);
            hasher.update(bytes);
            hasher.update(covered.to_le_bytes());
        }
        hasher.finalize().into()
    }
}

fn check_path(file: usize, entry: &FileEntry) -> Result<(), LayoutError> {
    if entry.path.is_empty() {
        return Err(LayoutError::EmptyPath { file });
    }
    for component in entry.components() {
        let unsafe_name = component.is_empty()
            || component == "."
            || component == ".."
            || component.contains('/')
            || component.contains('\0');
        if unsafe_name {
            return Err(LayoutError::UnsafeComponent {
                file,
                component: component.to_string(),
            });
        }
        if component.len() > MAX_COMPONENT_LENGTH {
            return Err(LayoutError::ComponentTooLong {
                file,
                len: component.len(),
            });
        }
    }
    Ok(())
}

/// Refuses duplicate paths and a file whose path is a folder of another file.
///
/// The tables hold file numbers and prefix lengths, hashed and compared
/// through the paths themselves: no key is copied, and a million files
/// cost about 10 MB here rather than 50 with a map of `&str` keys.
fn check_conflicts(files: &[FileEntry]) -> Result<(), LayoutError> {
    let state = RandomState::new();
    let path_of = |index: u32| files.get(index as usize).map_or("", FileEntry::path);
    // A folder: the first `len` bytes of file `index`'s path.
    let folder_of = |(index, len): (u32, u32)| path_of(index).get(..len as usize).unwrap_or("");
    let mut file_paths: HashTable<u32> = HashTable::with_capacity(files.len());
    let mut folders: HashTable<(u32, u32)> = HashTable::new();
    for (index, file) in files.iter().enumerate().filter(|(_, f)| !f.padding) {
        // More than 2^32 files could not be in memory: only a bug gets here.
        let small =
            |n: usize| u32::try_from(n).map_err(|_| LayoutError::TotalTooLong { file: index });
        let path = file.path();
        let hash = state.hash_one(path);
        let taken = file_paths
            .find(hash, |&other| path_of(other) == path)
            .copied()
            .or_else(|| {
                folders
                    .find(hash, |&folder| folder_of(folder) == path)
                    .map(|&(other, _)| other)
            });
        if let Some(other) = taken {
            return Err(LayoutError::PathConflict {
                file: index,
                other: other as usize,
            });
        }
        for (cut, _) in path.match_indices('/') {
            let folder = &path[..cut];
            let folder_hash = state.hash_one(folder);
            if let Some(&other) = file_paths.find(folder_hash, |&other| path_of(other) == folder) {
                return Err(LayoutError::PathConflict {
                    file: index,
                    other: other as usize,
                });
            }
            if folders
                .find(folder_hash, |&f| folder_of(f) == folder)
                .is_none()
            {
                folders.insert_unique(folder_hash, (small(index)?, small(cut)?), |&f| {
                    state.hash_one(folder_of(f))
                });
            }
        }
        file_paths.insert_unique(hash, small(index)?, |&other| state.hash_one(path_of(other)));
    }
    Ok(())
}

#[cfg(feature = "metainfo")]
impl Layout {
    /// The layout of a parsed torrent: its files below the download folder
    /// (`name/...` for a multi-file torrent, `name` for a single file), its
    /// padding files as virtual [`FileEntry::padding`] entries, its piece
    /// length and piece hashes: SHA-1 for v1, merkle for v2, both for a
    /// hybrid. A v2-only torrent must have its piece layers
    /// ([`LayoutError::MissingPieceLayer`]); a hybrid without them is
    /// checked by SHA-1 alone.
    ///
    /// ```
    /// use std::sync::atomic::AtomicBool;
    /// use rustico_metainfo::{Torrent, TorrentBuilder};
    /// use rustico_storage::{Layout, Options, Storage};
    ///
    /// // Some content, and a torrent of it.
    /// let dir = tempfile::tempdir()?;
    /// std::fs::create_dir(dir.path().join("album"))?;
    /// std::fs::write(dir.path().join("album/a.flac"), vec![1u8; 40_000])?;
    /// std::fs::write(dir.path().join("album/b.flac"), vec![2u8; 30_000])?;
    /// let torrent = TorrentBuilder::new(dir.path().join("album"))
    ///     .piece_length(16_384)
    ///     .build(|_| {}, &AtomicBool::new(false))?;
    /// let torrent = Torrent::from_bytes(torrent.as_bytes())?; // as a user reads it
    ///
    /// // Storage over the folder that holds `album/`, and a recheck.
    /// let layout = Layout::from_torrent(&torrent)?;
    /// assert_eq!(layout.files()[0].path(), "album/a.flac");
    /// let storage = Storage::open(dir.path(), layout, Options::default())?;
    /// let have = storage.recheck(&|_progress| {}, &AtomicBool::new(false))?;
    /// assert!(have.is_complete());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_torrent(torrent: &rustico_metainfo::Torrent) -> Result<Layout, LayoutError> {
        let files = torrent
            .files()
            .iter()
            .map(|file| {
                let path = if torrent.is_multi_file() {
                    format!("{}/{}", torrent.name(), file.path())
                } else {
                    file.path().to_string()
                };
                FileEntry {
                    path: path.into_boxed_str(),
                    length: file.length,
                    padding: file.is_padding(),
                }
            })
            .collect();
        let piece_length = torrent.piece_length();
        let hashes = torrent
            .piece_hashes()
            .chunks_exact(20)
            .map(|hash| {
                let mut array = [0u8; 20];
                array.copy_from_slice(hash);
                array
            })
            .collect();
        let v2 = if torrent.has_v2() {
            match (0..torrent.num_pieces())
                .map(|piece| torrent.v2_piece_hash(piece).ok_or(piece))
                .collect::<Result<Vec<_>, u32>>()
            {
                Ok(v2) => Some(v2),
                Err(_) if torrent.has_v1() => None,
                Err(piece) => {
                    let offset = u64::from(piece) * u64::from(piece_length);
                    return Err(LayoutError::MissingPieceLayer {
                        file: torrent.file_index_at(offset).unwrap_or(0),
                    });
                }
            }
        } else {
            None
        };
        match v2 {
            Some(v2) if !torrent.has_v1() => Layout::new_v2(files, piece_length, v2),
            Some(v2) => Layout::new(files, piece_length, hashes)?.with_v2(v2),
            None => Layout::new(files, piece_length, hashes),
        }
    }
}

/// A piece's bytes, contiguous or in chunks, as verifying and writing read
/// them: in order, a range at a time.
pub(crate) trait PieceBytes {
    /// Length in bytes.
    fn byte_len(&self) -> usize;
    /// The `len` bytes from `start` as consecutive slices.
    fn slices(&self, start: usize, len: usize) -> Box<dyn Iterator<Item = &[u8]> + '_>;
}

impl PieceBytes for &[u8] {
    fn byte_len(&self) -> usize {
        self.len()
    }

    fn slices(&self, start: usize, len: usize) -> Box<dyn Iterator<Item = &[u8]> + '_> {
        let end = start.saturating_add(len).min(self.len());
        Box::new(self.get(start.min(end)..end).into_iter())
    }
}

impl PieceBytes for PieceData {
    fn byte_len(&self) -> usize {
        self.len()
    }

    fn slices(&self, start: usize, len: usize) -> Box<dyn Iterator<Item = &[u8]> + '_> {
        Box::new(self.range(start, len))
    }
}

/// The BEP 52 leaf hashes of the first `covered` bytes: one per 16 KiB
/// block. A block lying in one slice (as downloaded blocks do) is hashed
/// where it is; one split across slices is joined first.
fn block_hashes(data: &dyn PieceBytes, covered: usize) -> Vec<merkle::Hash> {
    let mut leaves = Vec::with_capacity(covered.div_ceil(BLOCK_LEN as usize));
    let mut start = 0;
    while start < covered {
        let len = (BLOCK_LEN as usize).min(covered - start);
        let mut slices = data.slices(start, len);
        match (slices.next(), slices.next()) {
            (Some(block), None) if block.len() == len => leaves.push(merkle::hash_block(block)),
            _ => {
                let mut joined = Vec::with_capacity(len);
                for slice in data.slices(start, len) {
                    joined.extend_from_slice(slice);
                }
                leaves.push(merkle::hash_block(&joined));
            }
        }
        start += len;
    }
    leaves
}
