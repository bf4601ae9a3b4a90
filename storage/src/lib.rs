//! Pieces on disk: file layout, positional I/O, hash checks, read cache, resume.
//!
//! ```
//! use std::sync::atomic::AtomicBool;
//! use rustico_storage::{Bitfield, FileEntry, Layout, Options, Storage};
//! use sha1::{Digest, Sha1};
//!
//! let data = b"hello, storage!".to_vec(); // 15 bytes, pieces of 8
//! let hashes = data.chunks(8).map(|p| Sha1::digest(p).into()).collect();
//! let layout = Layout::new(
//!     vec![FileEntry::new(["demo", "a.txt"], 5), FileEntry::new(["demo", "b.txt"], 10)],
//!     8,
//!     hashes,
//! )?;
//! let dir = tempfile::tempdir()?;
//! let storage = Storage::open(dir.path(), layout, Options::default())?;
//!
//! storage.write_piece(1, &data[8..])?; // verified, then written
//! assert!(storage.write_piece(0, b"garbage!").is_err()); // wrong hash: nothing written
//!
//! let mut block = Vec::new();
//! storage.read_block(1, 2, 3, &mut block)?; // through the read cache
//! assert_eq!(block, &data[10..13]);
//!
//! let resume = dir.path().join("demo.resume");
//! let mut have = Bitfield::new(2);
//! have.set(1);
//! storage.save_resume(&resume, &have)?; // fsyncs data first
//! let check = storage.load_resume(&resume)?;
//! assert_eq!(check.have, have);
//!
//! let rechecked = storage.recheck(&|_progress| {}, &AtomicBool::new(false))?;
//! assert_eq!(rechecked, have);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Map
//! - [`Layout`], [`FileEntry`]: the validated file list, piece length and
//!   hashes ([`LayoutError`] for hostile ones); maps pieces to [`FileSpan`]s.
//!   `Layout::from_torrent` (feature `metainfo`, on by default) builds one
//!   from a parsed `.torrent`. BEP 47 padding files are virtual: read as
//!   zeros, never created on disk, exempt from the path checks.
//! - [`Bitfield`] (sets of pieces: recheck results, resume state) and
//!   [`Progress`] (recheck progress) come from `rustico-pieces`.
//! - [`Storage`]: `Send + Sync`, `&self` methods; [`Storage::write_piece`]
//!   (verify then write), [`Storage::read_block`] (read cache, see
//!   [`CacheStats`]), [`Storage::read_piece`], [`Storage::flush`],
//!   [`Storage::recheck`] (parallel), [`Storage::save_resume`],
//!   [`Storage::load_resume`], [`Storage::resume_or_recheck`].
//! - [`Options`], [`Allocation`]: sparse or preallocated files, cache size,
//!   open-file bound, recheck threads.
//! - Errors, one per operation: [`OpenError`], [`WriteError`], [`ReadError`],
//!   [`FlushError`], [`RecheckError`], [`ResumeError`]; file-system failures
//!   are a [`FileError`] naming the file and the offset.
//!
//! # Read cache
//! Whole pieces, least recently used evicted first, bounded by
//! [`Options::read_cache_bytes`]. Only [`Storage::read_block`] fills it (a
//! recheck or a `read_piece` does not, so a scan does not push out what peers
//! are downloading); writing a piece drops its cached copy.
//!
//! # Durability
//! `write_piece` leaves the bytes in the operating system's cache;
//! [`Storage::flush`] `fsync`s every file written since the last flush;
//! [`Storage::save_resume`] flushes first and then replaces the resume file
//! atomically, so a resume file never marks a piece done that is not on
//! disk. [`Storage::load_resume`] trusts a file only if its size,
//! modification time and inode are as recorded; pieces touching any other
//! file are left for a recheck. Dropping a `Storage` does not `fsync`.
#![forbid(unsafe_code)]

mod cache;
mod error;
mod files;
mod layout;
mod resume;
mod storage;

pub use error::{
    FileError, FlushError, OpenError, ReadError, RecheckError, ResumeError, WriteError,
};
pub use files::Allocation;
pub use layout::{
    FileEntry, FileSpan, Layout, LayoutError, V2PieceHash, MAX_COMPONENT_LENGTH, MAX_PIECE_LENGTH,
    MAX_TOTAL_LENGTH,
};
pub use rustico_pieces::{Bitfield, PieceData, Progress};
pub use storage::{CacheStats, Options, ResumeCheck, Resumed, Storage};
