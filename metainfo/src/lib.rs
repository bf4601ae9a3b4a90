//! `.torrent` files, info-hashes, magnet links and torrent creation, for
//! BitTorrent v1 (BEP 3), v2 (BEP 52) and hybrid v1+v2 torrents.
//!
//! ```
//! use std::sync::atomic::AtomicBool;
//! use rustico_metainfo::{Magnet, Torrent, TorrentBuilder, TorrentVersion};
//!
//! // Create a torrent from a folder...
//! let dir = std::env::temp_dir().join(format!("rustico-metainfo-doc-{}", std::process::id()));
//! std::fs::create_dir_all(dir.join("album/disc 1"))?;
//! std::fs::write(dir.join("album/disc 1/track.ogg"), vec![1u8; 40_000])?;
//! std::fs::write(dir.join("album/cover.jpg"), vec![2u8; 3_000])?;
//! let created = TorrentBuilder::new(dir.join("album"))
//!     .tracker("http://127.0.0.1:6969/announce")?
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
//!
//! // The same folder as a hybrid v1+v2 torrent (BEP 52): two info-hashes,
//! // padding files, merkle roots per file.
//! let hybrid = TorrentBuilder::new(dir.join("album"))
//!     .version(TorrentVersion::Hybrid)
//!     .piece_length(16 * 1024)
//!     .build(|_progress| {}, &AtomicBool::new(false))?;
//! let hashes = hybrid.info_hashes();
//! assert!(hashes.v1.is_some() && hashes.v2.is_some());
//! assert!(hybrid.files().iter().any(|f| f.is_padding()));
//! let magnet: Magnet = hybrid.magnet().to_string().parse()?; // btih and btmh
//! assert_eq!(magnet.info_hashes(), hashes);
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Map
//! - [`Torrent`]: parse (`from_bytes`, `from_vec`, `from_file`,
//!   `from_info_bytes`), then read fields and derived views: [`FileEntry`]
//!   with byte offsets and BEP 47 [`Attributes`], piece lengths and
//!   hashes, tracker tiers, web seeds, unknown keys. Errors are an
//!   [`Error`] naming the key and byte offset. The file list is read one
//!   file at a time and kept compact: a million files cost about 165 bytes
//!   each (the README has the figures).
//! - [`InfoHash`] (v1, SHA-1): hex, base32, URL-encoded forms;
//!   [`InfoHashV2`] (SHA-256) and its 20-byte truncation; [`InfoHashes`],
//!   both of a torrent ([`Torrent::info_hashes`]).
//! - [`Magnet`]: BEP 9 links, parse and print; `btih`, `btmh` or both.
//! - [`TorrentBuilder`]: create a v1, v2 or hybrid torrent
//!   ([`TorrentVersion`]) from a file or a folder, hashing on all cores,
//!   with progress and cancel ([`Progress`], [`CreateError`]).
//! - [`merkle`]: BEP 52 merkle trees (block hashes, piece layers, roots,
//!   proof checks), used by the reader, the creator and storage.
//! - [`PieceLayerFetch`] and [`HashServer`]: a magnet link's piece layers
//!   asked of peers, and served to them (BEP 52 hash requests).
//! - [`BlockLayers`] and [`PieceBlocks`]: a v2 piece's block hashes, to
//!   name the block (and so the peer) that broke a piece.
//!
//! # Validation policy
//! Refuse what cannot be downloaded or is self-contradictory; load
//! leniently what mainstream clients (libtorrent, so qBittorrent and
//! Deluge; Transmission) load, and say what was changed in
//! [`Torrent::warnings`].
//! - **Piece length**: 0, negative or above [`MAX_PIECE_LENGTH`] (512 MiB,
//!   about what libtorrent loads) is an error. A length that is not a
//!   power of two, or is below 16 KiB, is accepted with a [`Warning`]
//!   (old torrents have them and they still download; BEP 52 only
//!   requires powers of two for v2).
//! - **Pieces**: `info.pieces` must be a multiple of 20 bytes and hold
//!   exactly `ceil(total length / piece length)` hashes.
//! - **Lengths**: negative lengths and totals above 2^63 - 1 are errors;
//!   nothing is allocated from a claimed length. A total of 0 is
//!   [`Error::EmptyTorrent`] (nothing to download; libtorrent refuses it too).
//! - **Types**: every key this crate reads must have its BEP type, even
//!   optional ones (`comment` as an integer is an error, not ignored),
//!   except `url-list`: an entry that is not a string (or a `url-list`
//!   that is neither a string nor a list) is dropped with
//!   [`Warning::WebSeedIgnored`], since web seeds are an optional extra
//!   and libtorrent drops them the same way.
//! - **BEP 47 entries**: a symlink (`attr` has `l`) may lack `length` (it
//!   is 0); a padding file (`attr` has `p`) may lack `path` (it is named
//!   `.pad/<length>`). Padding files stay in [`Torrent::files`], flagged by
//!   [`FileEntry::is_padding`], since they occupy bytes of the piece stream.
//! - **v2 and hybrid** (BEP 52): `meta version` above 2 is an error; `meta
//!   version` 2 and a `file tree` come together or not at all; the piece
//!   length must be a power of two of at least 16 KiB. Every node
//!   of the `file tree` must be a valid file (`{"": {length, pieces
//!   root}}`, `pieces root` 32 bytes unless empty) or a non-empty folder,
//!   and no key may be empty, `.`, `..` or hold `/`, `\` or NUL
//!   ([`Error::InvalidFileTree`], with the byte offset). Each `piece
//!   layers` entry must belong to a file of more than one piece, hold one
//!   hash per piece and hash up to the file's `pieces root`
//!   ([`Error::Invalid`]); a missing layer is allowed (peers supply it;
//!   [`Torrent::has_piece_layers`]). A hybrid's tree must list the same
//!   files, lengths and order as the v1 `files`, padding aside, each on a
//!   piece boundary ([`Error::HybridMismatch`]): otherwise v1 and v2 peers
//!   would be swapping different content under one torrent. A v2-only
//!   torrent's [`Torrent::files`] gets padding entries as libtorrent lists
//!   them, so every file starts on a piece boundary.
//! - **Bencode** is read leniently (unsorted keys are common), at most 256
//!   levels deep; the info-hash always hashes the info dictionary's bytes
//!   as they are in the file.
//!
//! # Paths are sanitised, never refused
//! A torrent whose names are unsafe or not portable still loads (as in
//! libtorrent, qBittorrent and Transmission), with names made safe, one
//! [`Warning`] per changed name, and the original kept
//! ([`FileEntry::original_path`], [`Torrent::original_name`]). Each path
//! element (and `name`) goes through, in order:
//! 1. bytes that are not UTF-8 become U+FFFD;
//! 2. `/`, `\`, NUL and control characters (U+0001-U+001F,
//!    U+007F-U+009F) become `_` (`abc/../../def` -> `abc_.._.._def`, so no
//!    element can name a parent or an absolute path);
//! 3. a drive prefix loses its colon (`C:x` -> `C_x`);
//! 4. a Windows device name (`CON`, `PRN`, `AUX`, `NUL`, `COM1`-`COM9`,
//!    `LPT1`-`LPT9`, `COM¹²³`, `LPT¹²³`, `CONIN$`, `CONOUT$`, any case, any
//!    extension) gets `_` after its stem (`con.txt` -> `con_.txt`);
//! 5. an element over [`MAX_ELEMENT_LENGTH`] (255) bytes is cut on a
//!    character boundary, keeping its extension if that is at most
//!    [`MAX_KEPT_EXTENSION`] bytes;
//! 6. trailing dots and spaces are removed (Windows ignores them, so `a.`
//!    and `a` would be one file there);
//! 7. an element with nothing left (empty, `.`, `..`, only dots and
//!    spaces) is dropped; a file path with no element left is `_`, a
//!    `name` with nothing left is the info-hash in hex (libtorrent's choice).
//!
//! The same rules apply on every platform, so a torrent lands under the
//! same names everywhere. Then **duplicates** are renamed, in torrent
//! order: every folder of every file claims its path first, then each
//! file claims its own; a file whose path is taken, compared ignoring
//! ASCII case (two names that one file system tells apart may be one file
//! on Windows or macOS), gets the first free `base.N.ext` from N = 1:
//! `bar.txt` -> `bar.1.txt`, `a` (when `a/b` exists) -> `a.1`, `.bashrc`
//! -> `.1.bashrc`: exactly libtorrent's rule and names. Padding files are
//! never renamed and never collide: they are never on disk (two of equal
//! size share `.pad/N` legitimately). Past [`MAX_DUPLICATE_NAMES`]
//! renames the torrent is refused ([`Error::TooManyDuplicateNames`]).
//!
//! So every [`FileEntry::path`] is non-empty, each element
//! ([`FileEntry::path_elements`]; they are joined with `/`) is non-empty,
//! not `.` or `..`, free of `/`, `\`, NUL and control characters, not a
//! Windows device name, at most 255 bytes, and no path equals another
//! or a folder of another: joined below a download folder, nothing can
//! be written outside it, and no two files share bytes on disk.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

/// How far hashing has come (the same type a storage recheck reports).
pub use rustico_pieces::Progress;

mod block_layer;
mod create;
mod error;
mod info_hash;
mod layer_fetch;
mod magnet;
pub mod merkle;
mod sanitize;
mod scan;
mod torrent;
mod v2;

pub use block_layer::{BlockLayers, PieceBlocks};
pub use create::{
    auto_piece_length, BadNameProblem, CreateError, TorrentBuilder, TorrentVersion, UrlProblem,
    MAX_AUTO_PIECE_LENGTH, MIN_AUTO_PIECE_LENGTH, TARGET_PIECE_COUNT,
};
pub use error::{Error, PathProblem, Warning};
pub use info_hash::{hex, Hex, InfoHash, InfoHashV2, InfoHashes, ParseInfoHashError};
pub use layer_fetch::{
    HashServer, LayerFetchError, LayerRange, PieceLayerFetch, MAX_HASHES_PER_REQUEST,
};
pub use magnet::{Magnet, MagnetError};
pub use sanitize::{MAX_DUPLICATE_NAMES, MAX_ELEMENT_LENGTH, MAX_KEPT_EXTENSION};
pub use torrent::{Attributes, FileEntry, Torrent, V2PieceHash, MAX_PIECE_LENGTH};

/// The bencode types that appear in this crate's API (unknown keys are
/// [`OwnedDict`]s of [`OwnedValue`]s; [`Error::Bencode`] wraps a
/// [`BencodeError`]), so users need not depend on `rustico-bencode`.
pub use rustico_bencode::{Error as BencodeError, OwnedDict, OwnedValue};
