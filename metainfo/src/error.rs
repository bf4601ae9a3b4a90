//! Why a `.torrent` file (or an info dictionary) was rejected.

use std::path::PathBuf;

/// Why [`Torrent::from_bytes`](crate::Torrent::from_bytes) and friends
/// rejected their input. Every variant says which key (as a path such as
/// `info.files[3].length`) and at which byte offset of the input.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input is not valid bencode (truncated, nested too deep, ...).
    #[error("not valid bencode: {0}")]
    Bencode(#[from] rustico_bencode::Error),
    /// A required key is absent.
    #[error("missing `{key}` in the dictionary at byte {offset}")]
    MissingKey {
        /// Path of the missing key.
        key: String,
        /// Offset of the dictionary that should hold it.
        offset: usize,
    },
    /// A value of the wrong bencode type.
    #[error("`{key}` should be {expected} but is a {found} at byte {offset}")]
    WrongType {
        /// Path of the key.
        key: String,
        /// What BEP 3 (or the BEP defining the key) asks for.
        expected: &'static str,
        /// What the file has.
        found: &'static str,
        /// Offset of the value.
        offset: usize,
    },
    /// A value of the right type that breaks a rule.
    #[error("`{key}` is invalid at byte {offset}: {reason}")]
    Invalid {
        /// Path of the key.
        key: String,
        /// The rule broken.
        reason: String,
        /// Offset of the value.
        offset: usize,
    },
    /// The file lengths add up to more than 2^63 - 1 bytes.
    #[error("total length overflows at `{key}` (byte {offset})")]
    TotalLengthOverflow {
        /// Path of the length that overflowed the sum.
        key: String,
        /// Its offset.
        offset: usize,
    },
    /// `info.pieces` does not hold one 20-byte hash per piece of the total length.
    #[error(
        "`info.pieces` holds {found} hashes but the total length needs {expected} (byte {offset})"
    )]
    PieceCountMismatch {
        /// `ceil(total length / piece length)`.
        expected: u64,
        /// `pieces.len() / 20`.
        found: u64,
        /// Offset of `info.pieces`.
        offset: usize,
    },
    /// The files add up to zero bytes: there is nothing to download (and
    /// no piece to hash).
    #[error("the torrent holds no data (total length 0; info dictionary at byte {offset})")]
    EmptyTorrent {
        /// Offset of the info dictionary.
        offset: usize,
    },
    /// More files than [`MAX_DUPLICATE_NAMES`](crate::MAX_DUPLICATE_NAMES)
    /// had to be renamed because their path was taken.
    #[error("more than {max} files have a duplicate path (reached at file {file})")]
    TooManyDuplicateNames {
        /// The cap.
        max: usize,
        /// Index (in `info.files`) of the file past the cap.
        file: usize,
    },
    /// A node of a BEP 52 `file tree` that is neither a valid file
    /// (`{"": {"length": N, "pieces root": 32 bytes}}`) nor a non-empty folder.
    #[error("`info.file tree` entry `{path}` at byte {offset}: {reason}")]
    InvalidFileTree {
        /// The node's path in the tree, `/`-separated (empty for the root).
        path: String,
        /// What is wrong with it.
        reason: &'static str,
        /// Offset of the node.
        offset: usize,
    },
    /// A hybrid torrent whose v1 `files` (padding aside) and v2 `file
    /// tree` describe different content; v1 and v2 peers would be
    /// downloading different bytes under one torrent.
    #[error("the v1 and v2 file lists disagree at file {file}: {reason}")]
    HybridMismatch {
        /// Index of the first file that differs (padding files not counted).
        file: usize,
        /// What differs.
        reason: String,
    },
    /// The info dictionary given with a magnet link does not hash to the
    /// link's info-hash.
    #[error("the info dictionary hashes to {found}, not the magnet link's {expected}")]
    InfoHashMismatch {
        /// The link's info-hash.
        expected: crate::InfoHash,
        /// SHA-1 of the bytes given.
        found: crate::InfoHash,
    },
    /// The info dictionary given with a `btmh` magnet link does not hash
    /// (SHA-256) to the link's v2 info-hash.
    #[error("the info dictionary hashes to {found}, not the magnet link's {expected}")]
    InfoHashV2Mismatch {
        /// The link's v2 info-hash.
        expected: crate::InfoHashV2,
        /// SHA-256 of the bytes given.
        found: crate::InfoHashV2,
    },
    /// Reading the file failed.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
}

/// Why a path element is not already a safe file name (see
/// [`CreateError::BadName`](crate::CreateError::BadName)). The reader
/// sanitises such elements instead (crate docs, "Paths are sanitised").
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathProblem {
    /// An empty element.
    #[error("empty")]
    Empty,
    /// `.` or `..`.
    #[error("`.` or `..`")]
    DotComponent,
    /// Contains `/` or `\` (so is really several elements, or absolute).
    #[error("contains a path separator")]
    Separator,
    /// Contains a NUL byte.
    #[error("contains NUL")]
    Nul,
    /// Contains another control character (U+0001 to U+001F, U+007F to U+009F).
    #[error("contains a control character")]
    ControlCharacter,
    /// Starts with a drive prefix such as `C:`, absolute on Windows.
    #[error("starts with a drive prefix")]
    DrivePrefix,
    /// Ends with `.` or a space, which Windows drops.
    #[error("ends with a dot or a space")]
    TrailingDotOrSpace,
    /// Longer than [`MAX_ELEMENT_LENGTH`](crate::MAX_ELEMENT_LENGTH) bytes.
    #[error("longer than 255 bytes")]
    TooLong,
    /// A Windows device name (`CON`, `NUL`, `COM1`, `LPT1.txt`, ...).
    #[error("a reserved device name")]
    ReservedName,
}

/// Something accepted but worth telling the user (see
/// [`Torrent::warnings`](crate::Torrent::warnings)). `Display` gives one
/// line for a person.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Warning {
    /// The piece length is not a power of two, which BEP 3 recommends and
    /// BEP 52 requires. Downloads still work.
    PieceLengthNotPowerOfTwo {
        /// The piece length.
        piece_length: u32,
    },
    /// The piece length is below 16 KiB, the block size peers request.
    PieceLengthBelow16KiB {
        /// The piece length.
        piece_length: u32,
    },
    /// Bytes after the top-level dictionary, ignored.
    TrailingBytes {
        /// How many.
        count: usize,
    },
    /// The torrent's `name` was not a safe file name and was sanitised.
    NameSanitized {
        /// The name as in the torrent (lossily decoded).
        original: String,
        /// The name used.
        sanitized: String,
    },
    /// A file's path was not made of safe file names and was sanitised.
    PathSanitized {
        /// Index of the file in [`Torrent::files`](crate::Torrent::files).
        file: usize,
        /// The path as in the torrent, elements joined with `/`.
        original: String,
        /// The path used.
        sanitized: String,
    },
    /// A file's path was taken by an earlier file, or is a folder of
    /// another file, so the file was renamed.
    DuplicateRenamed {
        /// Index of the file in [`Torrent::files`](crate::Torrent::files).
        file: usize,
        /// The path it would have had.
        original: String,
        /// The path used.
        renamed: String,
    },
    /// An entry of `url-list` (or `url-list` itself) that is not a byte
    /// string, ignored.
    WebSeedIgnored {
        /// The key, such as `url-list[2]`.
        key: String,
        /// Its bencode type.
        found: &'static str,
    },
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Warning::PieceLengthNotPowerOfTwo { piece_length } => {
                write!(f, "piece length {piece_length} is not a power of two")
            }
            Warning::PieceLengthBelow16KiB { piece_length } => {
                write!(f, "piece length {piece_length} is below 16 KiB")
            }
            Warning::TrailingBytes { count } => {
                write!(f, "{count} bytes after the torrent's dictionary ignored")
            }
            Warning::NameSanitized {
                original,
                sanitized,
            } => {
                write!(
                    f,
                    "name {original:?} is not a safe file name; using {sanitized:?}"
                )
            }
            Warning::PathSanitized {
                file,
                original,
                sanitized,
            } => write!(
                f,
                "file {file}: path {original:?} is not made of safe file names; using {sanitized:?}"
            ),
            Warning::DuplicateRenamed {
                file,
                original,
                renamed,
            } => write!(
                f,
                "file {file}: path {original:?} is taken; renamed to {renamed:?}"
            ),
            Warning::WebSeedIgnored { key, found } => {
                write!(f, "`{key}` is not a URL but a bencode {found}; ignored")
            }
        }
    }
}
