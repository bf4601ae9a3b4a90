//! Error types. Every error that comes from the file system names the file
//! and the offset inside it.

use std::io;
use std::path::PathBuf;

/// A file-system failure on one of the torrent's files.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The disk (or quota) is full.
    #[error("disk full writing {} at offset {offset}", path.display())]
    DiskFull {
        /// The file.
        path: PathBuf,
        /// Offset inside the file.
        offset: u64,
    },
    /// The operating system refused access.
    #[error("permission denied on {} at offset {offset}", path.display())]
    PermissionDenied {
        /// The file.
        path: PathBuf,
        /// Offset inside the file.
        offset: u64,
    },
    /// The file does not exist.
    #[error("{} does not exist", path.display())]
    Missing {
        /// The file.
        path: PathBuf,
    },
    /// The file ends before the data that was asked for.
    #[error("{} ends at byte {len}, before offset {offset} that was needed", path.display())]
    ShortFile {
        /// The file.
        path: PathBuf,
        /// Offset of the first byte that was missing.
        offset: u64,
        /// The file's length on disk.
        len: u64,
    },
    /// The file on disk is not the one this storage opened (deleted,
    /// replaced, or a different inode), so writes may have gone nowhere.
    #[error("{} was replaced or deleted while in use", path.display())]
    Replaced {
        /// The file.
        path: PathBuf,
    },
    /// A path inside the download folder is a symbolic link or not a regular
    /// file/folder, so following it could leave the folder.
    #[error("{} is a symbolic link or not a regular file or folder; refused", path.display())]
    NotRegular {
        /// The refused path.
        path: PathBuf,
    },
    /// A broken invariant of this crate or of the operating system's
    /// calls (a file index outside the layout, a read that reports more
    /// bytes than asked for): a bug, which debug builds panic on.
    #[error("internal error on {} at offset {offset}: {what}", path.display())]
    Internal {
        /// The file (the download folder when the index is unknown).
        path: PathBuf,
        /// Offset inside the file.
        offset: u64,
        /// The invariant that did not hold.
        what: &'static str,
    },
    /// Any other I/O error.
    #[error("I/O error on {} at offset {offset}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Offset inside the file (0 when the error is not about an offset).
        offset: u64,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

impl FileError {
    /// Classifies an `io::Error` on `path` at `offset`.
    pub(crate) fn from_io(source: io::Error, path: PathBuf, offset: u64) -> FileError {
        match source.kind() {
            io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => {
                FileError::DiskFull { path, offset }
            }
            io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => {
                FileError::PermissionDenied { path, offset }
            }
            io::ErrorKind::NotFound => FileError::Missing { path },
            _ => FileError::Io {
                path,
                offset,
                source,
            },
        }
    }

    /// Whether the error means the data simply is not there (missing or
    /// short file), which a recheck counts as "piece missing", not failure.
    pub fn is_absent_data(&self) -> bool {
        matches!(
            self,
            FileError::Missing { .. } | FileError::ShortFile { .. }
        )
    }
}

/// Why [`Storage::open`](crate::Storage::open) failed.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The download folder could not be created or is not a folder.
    #[error("download folder {}: {source}", path.display())]
    Root {
        /// The download folder.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// An option is out of range.
    #[error("invalid option: {0}")]
    InvalidOption(&'static str),
}

/// Why a piece was not written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// No such piece.
    #[error("piece {piece} is out of range ({num_pieces} pieces)")]
    PieceOutOfRange {
        /// The piece asked for.
        piece: u32,
        /// Number of pieces in the torrent.
        num_pieces: u32,
    },
    /// The data is not the piece's length.
    #[error("piece {piece} is {expected} bytes, got {actual}")]
    WrongLength {
        /// The piece.
        piece: u32,
        /// Its length.
        expected: u32,
        /// Length of the data given.
        actual: usize,
    },
    /// The SHA-1 of the data does not match; nothing was written.
    #[error("piece {piece} failed its hash check; nothing written")]
    HashMismatch {
        /// The piece.
        piece: u32,
    },
    /// The hash matched but the file system failed; the piece may be partly written.
    #[error("writing piece {piece}: {source}")]
    File {
        /// The piece.
        piece: u32,
        /// What failed, where.
        #[source]
        source: FileError,
    },
    /// A broken invariant of this crate (a bug; debug builds panic
    /// instead): the piece may be partly written.
    #[error("writing piece {piece}: internal error: {what}")]
    Internal {
        /// The piece.
        piece: u32,
        /// The invariant that did not hold.
        what: &'static str,
    },
}

/// Why a block or piece could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// No such piece.
    #[error("piece {piece} is out of range ({num_pieces} pieces)")]
    PieceOutOfRange {
        /// The piece asked for.
        piece: u32,
        /// Number of pieces in the torrent.
        num_pieces: u32,
    },
    /// The block does not lie inside the piece.
    #[error("block at offset {offset} length {len} is outside piece {piece} ({piece_len} bytes)")]
    BlockOutOfRange {
        /// The piece.
        piece: u32,
        /// Offset asked for inside the piece.
        offset: u32,
        /// Length asked for.
        len: u32,
        /// The piece's length.
        piece_len: u32,
    },
    /// The file system failed.
    #[error("reading piece {piece}: {source}")]
    File {
        /// The piece.
        piece: u32,
        /// What failed, where.
        #[source]
        source: FileError,
    },
    /// A broken invariant of this crate (a bug; debug builds panic
    /// instead): nothing was appended to the caller's buffer.
    #[error("reading piece {piece}: internal error: {what}")]
    Internal {
        /// The piece.
        piece: u32,
        /// The invariant that did not hold.
        what: &'static str,
    },
}

/// Why flushing to disk failed.
#[derive(Debug, thiserror::Error)]
#[error("flushing: {0}")]
pub struct FlushError(#[from] pub FileError);

/// Why a recheck stopped.
#[derive(Debug, thiserror::Error)]
pub enum RecheckError {
    /// The cancel flag was raised.
    #[error("recheck cancelled")]
    Cancelled,
    /// The mask of pieces to check has the wrong length.
    #[error("piece mask has {actual} entries, the torrent has {expected} pieces")]
    MaskLength {
        /// Number of pieces.
        expected: usize,
        /// Entries given.
        actual: usize,
    },
    /// A file-system error other than a missing or short file.
    #[error("rechecking piece {piece}: {source}")]
    File {
        /// The piece being checked.
        piece: u32,
        /// What failed, where.
        #[source]
        source: FileError,
    },
    /// A broken invariant of this crate (a bug; debug builds panic
    /// instead).
    #[error("rechecking piece {piece}: internal error: {what}")]
    Internal {
        /// The piece being checked.
        piece: u32,
        /// The invariant that did not hold.
        what: &'static str,
    },
}

/// Why reading a piece's bytes from its files failed, inside the crate:
/// the file system, or a span of the layout outside the buffer it
/// describes (a bug).
#[derive(Debug)]
pub(crate) enum SpanError {
    /// The file system failed.
    File(FileError),
    /// A broken invariant (the span and the buffer disagree).
    Internal(&'static str),
}

impl From<FileError> for SpanError {
    fn from(e: FileError) -> SpanError {
        SpanError::File(e)
    }
}

impl SpanError {
    /// As a [`ReadError`] of `piece`.
    pub(crate) fn read(self, piece: u32) -> ReadError {
        match self {
            SpanError::File(source) => ReadError::File { piece, source },
            SpanError::Internal(what) => ReadError::Internal { piece, what },
        }
    }
}

/// Why a resume file could not be saved or loaded.
#[derive(Debug, thiserror::Error)]
pub enum ResumeError {
    /// Reading or writing the resume file (or syncing data first) failed.
    #[error(transparent)]
    File(#[from] FileError),
    /// The resume file is not one of ours, is corrupt or truncated.
    #[error("resume file {} is malformed at byte {offset}: {what}", path.display())]
    Malformed {
        /// The resume file.
        path: PathBuf,
        /// Byte offset where decoding failed.
        offset: usize,
        /// What was wrong.
        what: &'static str,
    },
    /// The resume file belongs to another torrent or layout.
    #[error("resume file {} is for a different layout", path.display())]
    OtherLayout {
        /// The resume file.
        path: PathBuf,
    },
    /// The bitfield given to save has the wrong length.
    #[error("bitfield has {actual} entries, the torrent has {expected} pieces")]
    BitfieldLength {
        /// Number of pieces.
        expected: usize,
        /// Entries given.
        actual: usize,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    // Running as root in a container, a real EACCES or ENOSPC is hard to
    // provoke portably; the classification is what the callers rely on.
    #[test]
    fn io_errors_are_classified_with_file_and_offset() {
        let path = PathBuf::from("dl/a.bin");
        let full = FileError::from_io(
            io::Error::from(io::ErrorKind::StorageFull),
            path.clone(),
            77,
        );
        assert!(matches!(&full, FileError::DiskFull { offset: 77, .. }));
        assert_eq!(full.to_string(), "disk full writing dl/a.bin at offset 77");
        let denied = FileError::from_io(io::Error::from_raw_os_error(13), path.clone(), 5);
        assert!(matches!(
            denied,
            FileError::PermissionDenied { offset: 5, .. }
        ));
        let missing = FileError::from_io(io::Error::from(io::ErrorKind::NotFound), path.clone(), 0);
        assert!(missing.is_absent_data());
        let other = FileError::from_io(io::Error::from_raw_os_error(5), path, 9);
        assert!(matches!(other, FileError::Io { offset: 9, .. }));
        assert!(other.to_string().contains("dl/a.bin at offset 9"));
    }
}
