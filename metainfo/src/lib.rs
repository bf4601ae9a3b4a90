//! `.torrent` files, info-hashes, magnet links and torrent creation, for
//! BitTorrent v1 (BEP 3) and the v1 part of hybrid v1+v2 torrents (BEP 52).
//!
//! ```
//! use std::sync::atomic::AtomicBool;
//! use rustico_metainfo::{Magnet, Torrent, TorrentBuilder};
//!
//! // Create a torrent from a folder...
//! let dir = std::env::temp_dir().join(format!("rustico-metainfo-doc-{}", std::process::id()));
//! std::fs::create_dir_all(dir.join("album/disc 1"))?;
//! std::fs::write(dir.join("album/disc 1/track.ogg"), vec![1u8; 40_000])?;
//! std::fs::write(dir.join("album/cover.jpg"), vec![2u8; 3_000])?;
//! let created = TorrentBuilder::new(dir.join("album"))
//!     .tracker("http://127.0.0.1:6969/announce")
//!     .piece_length(16 * 1024)
//!     .build(|_progress| {}, &AtomicBool::new(false))?;
//!
//! // ...read it back from its bytes, as a client would from a file.
//! let torrent = Torrent::from_bytes(created.as_bytes())?;
//! assert_eq!(torrent.info_hash(), created.info_hash());
//! assert_eq!(torrent.num_pieces(), 3); // 43,000 bytes in 16 KiB pieces
//! let files: Vec<(String, u64, u64)> = torrent
//!     .files()
//!     .iter()
//!     .map(|f| (f.path_string(), f.offset, f.length))
//!     .collect();
//! assert_eq!(files, [("cover.jpg".into(), 0, 3_000), ("disc 1/track.ogg".into(), 3_000, 40_000)]);
//!
//! // A magnet link names the same torrent.
//! let magnet: Magnet = torrent.magnet().to_string().parse()?;
//! assert_eq!(magnet.info_hash, torrent.info_hash());
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Map
//! - [`Torrent`]: parse (`from_bytes`, `from_file`, `from_info_bytes`),
//!   then read fields and derived views: [`FileEntry`] with byte offsets,
//!   piece lengths and hashes, tracker tiers, web seeds, unknown keys.
//!   Errors are an [`Error`] naming the key and byte offset.
//! - [`InfoHash`]: hex, base32, URL-encoded forms.
//! - [`Magnet`]: BEP 9 links, parse and print.
//! - [`TorrentBuilder`]: create a torrent from a file or a folder, hashing
//!   on all cores, with progress and cancel ([`Progress`], [`CreateError`]).
//!
//! # Validation policy
//! - **Piece length**: 0, negative or above [`MAX_PIECE_LENGTH`] (256 MiB)
//!   is an error. A length that is not a power of two, or is below 16 KiB,
//!   is accepted with a [`Warning`] (old torrents have them and they still
//!   download; BEP 52 only requires powers of two for v2).
//! - **Pieces**: `info.pieces` must be a multiple of 20 bytes and hold
//!   exactly `ceil(total length / piece length)` hashes.
//! - **Lengths**: negative lengths and totals above 2^63 - 1 are errors;
//!   nothing is allocated from a claimed length.
//! - **Types**: every key this crate reads must have its BEP type, even
//!   optional ones (`comment` as an integer is an error, not ignored).
//! - **Paths are rejected, not sanitized**: a `name` or `path` component
//!   that is empty, `.`, `..`, contains `/`, `\` or NUL, starts with a
//!   drive prefix (`C:`), or is a Windows device name (`CON`, `nul.txt`,
//!   `COM1`...) makes the whole torrent an error ([`PathProblem`]). So no
//!   torrent that parses can name a file outside its folder. Invalid
//!   UTF-8 in names is the one thing sanitized (to U+FFFD); `name.utf-8`
//!   and `path.utf-8` are preferred where present.
//! - **v2**: a v2-only torrent is [`Error::UnsupportedV2`]; a hybrid one
//!   opens through its v1 keys ([`Torrent::is_hybrid`]), and its BEP 47
//!   padding files stay in [`Torrent::files`], flagged by
//!   [`FileEntry::is_padding`], since they occupy bytes of the piece stream.
//! - **Bencode** is read leniently (unsorted keys are common), at most 256
//!   levels deep; the info-hash always hashes the info dictionary's bytes
//!   as they are in the file.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod create;
mod error;
mod info_hash;
mod magnet;
mod torrent;

pub use create::{
    auto_piece_length, BadNameProblem, CreateError, Progress, TorrentBuilder,
    MAX_AUTO_PIECE_LENGTH, MIN_AUTO_PIECE_LENGTH, TARGET_PIECE_COUNT,
};
pub use error::{Error, PathProblem, Warning};
pub use info_hash::{InfoHash, ParseInfoHashError};
pub use magnet::{Magnet, MagnetError};
pub use torrent::{FileEntry, Torrent, MAX_PIECE_LENGTH};
