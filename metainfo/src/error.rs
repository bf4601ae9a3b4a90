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
    /// A file path (or the torrent's name) that could write outside the
    /// torrent's folder or is not a portable file name. Such torrents are
    /// rejected, not sanitized: see the crate docs for the policy.
    #[error("unsafe path `{path}` in `{key}` at byte {offset}: {problem}")]
    UnsafePath {
        /// Path of the key.
        key: String,
        /// The offending component, lossily decoded.
        path: String,
        /// What is wrong with it.
        problem: PathProblem,
        /// Offset of the component.
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
    /// A BitTorrent v2-only torrent (BEP 52): no v1 `pieces`, only a
    /// `file tree`. This crate reads v1 and the v1 part of hybrid torrents.
    #[error("BitTorrent v2-only torrents are not supported (info dictionary at byte {offset})")]
    UnsupportedV2 {
        /// Offset of the info dictionary.
        offset: usize,
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

/// What is wrong with a path component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathProblem {
    /// An empty component, or a file with an empty `path` list.
    #[error("empty")]
    Empty,
    /// `.` or `..`.
    #[error("`.` or `..`")]
    DotComponent,
    /// Contains `/` or `\` (so is really several components, or absolute).
    #[error("contains a path separator")]
    Separator,
    /// Contains a NUL byte.
    #[error("contains NUL")]
    Nul,
    /// Starts with a drive prefix such as `C:`, absolute on Windows.
    #[error("starts with a drive prefix")]
    DrivePrefix,
    /// A Windows device name (`CON`, `NUL`, `COM1`, `LPT1.txt`, ...).
    #[error("a reserved device name")]
    ReservedName,
}

/// Something accepted but worth telling the user (see [`Torrent::warnings`](crate::Torrent::warnings)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Warning {
    /// The piece length is not a power of two, which BEP 3 recommends and
    /// BEP 52 requires. Downloads still work.
    PieceLengthNotPowerOfTwo {
        /// The piece length.
        piece_length: u64,
    },
    /// The piece length is below 16 KiB, the block size peers request.
    PieceLengthBelow16KiB {
        /// The piece length.
        piece_length: u64,
    },
    /// Bytes after the top-level dictionary, ignored.
    TrailingBytes {
        /// How many.
        count: usize,
    },
}
