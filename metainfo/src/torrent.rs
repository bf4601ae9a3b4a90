//! [`Torrent`]: a parsed, validated v1, v2 or hybrid `.torrent` file.

use std::ops::Range;
use std::path::{Path, PathBuf};

use rustico_bencode::{Kind, OwnedDict, Value};

use crate::error::{Error, Warning};
use crate::info_hash::{InfoHash, InfoHashV2, InfoHashes};
use crate::merkle;
use crate::sanitize::{resolve_duplicates, sanitize_element, sanitize_path};
use crate::scan::{decode_at, scan, value_end, Field, Fields};
use crate::v2;

/// The largest piece length accepted: 512 MiB. libtorrent loads up to
/// about this much (32,767 blocks of 16 KiB and a little more), so
/// torrents it opens open here too; larger pieces would make a client
/// buffer gigabytes on the word of an untrusted file.
pub const MAX_PIECE_LENGTH: u32 = 512 * 1024 * 1024;

/// Bencode nesting allowed in a `.torrent`: real ones need 4 levels
/// (v2 file trees more, bounded by folder depth).
pub(crate) const MAX_DEPTH: usize = 256;

const TOP_LEVEL_KEYS: &[&[u8]] = &[
    b"announce",
    b"announce-list",
    b"url-list",
    b"info",
    b"creation date",
    b"comment",
    b"comment.utf-8",
    b"created by",
    b"created by.utf-8",
    b"encoding",
    b"piece layers",
];

const INFO_KEYS: &[&[u8]] = &[
    b"name",
    b"name.utf-8",
    b"piece length",
    b"pieces",
    b"length",
    b"files",
    b"private",
    b"meta version",
    b"file tree",
];

const FILE_KEYS: &[&[u8]] = &[b"length", b"path", b"path.utf-8", b"attr"];

/// What a v2 piece is checked against ([`Torrent::v2_piece_hash`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum V2PieceHash {
    /// A piece-layer hash: the root of the piece's blocks padded with
    /// zero leaves to a whole piece ([`merkle::piece_hash`]).
    Layer([u8; 32]),
    /// The `pieces root` of a file of at most one piece: the root of its
    /// blocks padded only to the next power of two
    /// ([`merkle::root_of_leaves`]).
    Root([u8; 32]),
}

impl V2PieceHash {
    /// Whether `piece` (the piece's bytes, without padding) matches.
    pub fn matches(&self, piece: &[u8], piece_length: u32) -> bool {
        piece.len() as u64 <= u64::from(piece_length)
            && self.matches_leaves(&merkle::block_hashes(piece), piece_length)
    }

    /// Whether the block hashes of a piece (see [`merkle::block_hashes`];
    /// a caller streaming the piece from disk hashes blocks as they come)
    /// match.
    pub fn matches_leaves(&self, leaves: &[merkle::Hash], piece_length: u32) -> bool {
        let Ok(height) = merkle::piece_height(u64::from(piece_length)) else {
            return false;
        };
        let per_piece = 1usize << height;
        if leaves.len() > per_piece {
            return false;
        }
        match self {
            V2PieceHash::Layer(hash) => merkle::root_padded(leaves, per_piece, [0; 32]) == *hash,
            V2PieceHash::Root(root) => merkle::root_of_leaves(leaves) == *root,
        }
    }
}

/// One file of a torrent, where it sits in the torrent's byte stream.
///
/// Kept small, since a torrent may list a million of these: the path is
/// one string (elements joined with `/`), the BEP 47 attributes one byte,
/// and what most files lack (a v2 `pieces root`, unknown keys, the path
/// as written before sanitising) costs one pointer each when absent.
///
/// ```
/// use rustico_metainfo::Torrent;
///
/// let mut file = b"d4:infod5:filesld6:lengthi3e4:pathl3:sub5:a.txteed4:attr1:x6:lengthi2e4:pathl5:b.binee".to_vec();
/// file.extend_from_slice(b"e4:name1:t12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaaee");
/// let torrent = Torrent::from_bytes(&file)?;
/// let [a, b] = torrent.files() else { panic!("two files") };
/// assert_eq!(a.path(), "sub/a.txt");
/// assert_eq!(a.path_elements().collect::<Vec<_>>(), ["sub", "a.txt"]);
/// assert_eq!((b.offset, b.length), (3, 2));
/// assert!(b.is_executable() && !b.is_padding());
/// assert!(a.extra().is_empty() && !a.was_renamed());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// See [`FileEntry::path`].
    path: Box<str>,
    /// Length in bytes.
    pub length: u64,
    /// Offset of the file's first byte in the concatenation of all files,
    /// which the pieces cut into `piece length` slices.
    pub offset: u64,
    attributes: Attributes,
    /// A padding file the torrent gave no path (named `.pad/N` here, its
    /// original path empty): common in v2 torrents, so not in `rare`.
    unnamed: bool,
    pieces_root: Option<Box<[u8; 32]>>,
    rare: Option<Box<Rare>>,
}

/// What few files have: kept behind one pointer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Rare {
    /// Keys of the file's dictionary this crate does not interpret.
    extra: OwnedDict,
    /// The path as the torrent wrote it, when sanitising or renaming
    /// changed it (empty for a padding file that had none).
    original_path: Option<Box<str>>,
}

/// No unknown keys.
static NO_EXTRA: OwnedDict = OwnedDict::new();

/// BEP 47 file attributes (`attr`): which of `p` (padding), `x`
/// (executable), `h` (hidden) and `l` (symlink) a file has. Other letters
/// are ignored, as BEP 47 asks of readers. Prints as the letters it has,
/// in that order.
///
/// ```
/// use rustico_metainfo::Attributes;
///
/// let attr = Attributes::from_bytes(b"xhq");
/// assert!(attr.is_executable() && attr.is_hidden() && !attr.is_padding());
/// assert_eq!(attr.to_string(), "xh");
/// assert_eq!(Attributes::default().to_string(), "");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Attributes(u8);

impl Attributes {
    const LETTERS: [(u8, u8); 4] = [(b'p', 1), (b'x', 2), (b'h', 4), (b'l', 8)];

    /// The attributes an `attr` value names.
    pub fn from_bytes(attr: &[u8]) -> Attributes {
        let mut bits = 0;
        for &(letter, bit) in &Attributes::LETTERS {
            if attr.contains(&letter) {
                bits |= bit;
            }
        }
        Attributes(bits)
    }

    /// `p`: a padding file.
    pub fn is_padding(self) -> bool {
        self.0 & 1 != 0
    }

    /// `x`: executable.
    pub fn is_executable(self) -> bool {
        self.0 & 2 != 0
    }

    /// `h`: hidden.
    pub fn is_hidden(self) -> bool {
        self.0 & 4 != 0
    }

    /// `l`: a symbolic link.
    pub fn is_symlink(self) -> bool {
        self.0 & 8 != 0
    }
}

impl std::fmt::Display for Attributes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for &(letter, bit) in &Attributes::LETTERS {
            if self.0 & bit != 0 {
                write!(f, "{}", char::from(letter))?;
            }
        }
        Ok(())
    }
}

impl FileEntry {
    /// An entry without attributes, root or extras.
    pub(crate) fn new(path: String, length: u64, offset: u64) -> FileEntry {
        FileEntry {
            path: path.into_boxed_str(),
            length,
            offset,
            attributes: Attributes::default(),
            unnamed: false,
            pieces_root: None,
            rare: None,
        }
    }

    /// The path below the torrent's folder, elements joined with `/`
    /// (`sub/a.txt`); for a single-file torrent, just the torrent's name.
    /// Sanitised (crate docs, "Paths are sanitised"): never empty, every
    /// element a safe file name (so never holding `/`), no two files at
    /// the same path. This is where the file goes on disk.
    /// `path.utf-8` is preferred over `path`; bytes that are not UTF-8
    /// become U+FFFD.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The path's elements (`["sub", "a.txt"]`), never empty.
    pub fn path_elements(&self) -> std::str::Split<'_, char> {
        self.path.split('/')
    }

    /// The path as a `String`, as shown to users: [`path`](FileEntry::path).
    pub fn path_string(&self) -> String {
        self.path.to_string()
    }

    /// BEP 47 attributes (`attr`); none when absent.
    pub fn attributes(&self) -> Attributes {
        self.attributes
    }

    /// Keys of the file's dictionary this crate does not interpret
    /// (`md5sum`, `sha1`, `symlink path`, ...).
    pub fn extra(&self) -> &OwnedDict {
        self.rare.as_ref().map_or(&NO_EXTRA, |r| &r.extra)
    }

    /// BEP 52 `pieces root`: the merkle root of the file's 16 KiB
    /// blocks, for a non-empty file of a v2 or hybrid torrent (`None`
    /// for v1-only torrents, empty files and padding).
    pub fn pieces_root(&self) -> Option<[u8; 32]> {
        self.pieces_root.as_deref().copied()
    }

    /// A BEP 47 padding file (`attr` contains `p`): its bytes are zeros
    /// that occupy room in the piece stream so the next file starts on a
    /// piece boundary. It is a real entry of the v1 file list (the piece
    /// hashes cover its zeros), but a client need not create it on disk.
    pub fn is_padding(&self) -> bool {
        self.attributes.is_padding()
    }

    /// BEP 47: `attr` contains `x`.
    pub fn is_executable(&self) -> bool {
        self.attributes.is_executable()
    }

    /// BEP 47: `attr` contains `h`.
    pub fn is_hidden(&self) -> bool {
        self.attributes.is_hidden()
    }

    /// BEP 47: `attr` contains `l`, a symbolic link (its target is the
    /// `symlink path` key, in [`extra`](FileEntry::extra)). Its length
    /// may be absent in the torrent, and is then 0.
    pub fn is_symlink(&self) -> bool {
        self.attributes.is_symlink()
    }

    /// The path as the torrent wrote it (elements lossily decoded, joined
    /// with `/`), before sanitising and duplicate renaming; the same as
    /// [`path`](FileEntry::path) when nothing was changed. Empty for a
    /// padding file that had no `path`. For display only: never use it
    /// to name a file on disk (an element may hold `/` itself).
    pub fn original_path(&self) -> &str {
        if self.unnamed {
            return "";
        }
        self.rare
            .as_ref()
            .and_then(|r| r.original_path.as_deref())
            .unwrap_or(&self.path)
    }

    /// Whether sanitising or duplicate renaming changed the path.
    pub fn was_renamed(&self) -> bool {
        self.unnamed
            || self
                .rare
                .as_ref()
                .is_some_and(|r| r.original_path.is_some())
    }

    /// The byte range of this file in the torrent's byte stream.
    pub fn byte_range(&self) -> Range<u64> {
        self.offset..self.offset + self.length
    }

    /// Replaces the path (duplicate renaming), keeping the first one as
    /// the original.
    pub(crate) fn rename(&mut self, path: String) {
        if !self.was_renamed() {
            let original = std::mem::take(&mut self.path);
            self.rare.get_or_insert_with(Default::default).original_path = Some(original);
        }
        self.path = path.into_boxed_str();
    }

    pub(crate) fn set_original_path(&mut self, original: String) {
        self.rare.get_or_insert_with(Default::default).original_path =
            Some(original.into_boxed_str());
    }

    pub(crate) fn set_attributes(&mut self, attributes: Attributes) {
        self.attributes = attributes;
    }

    pub(crate) fn set_pieces_root(&mut self, root: Option<[u8; 32]>) {
        self.pieces_root = root.map(Box::new);
    }

    pub(crate) fn set_extra(&mut self, extra: OwnedDict) {
        if !extra.is_empty() {
            self.rare.get_or_insert_with(Default::default).extra = extra;
        }
    }
}

/// A parsed and validated BitTorrent v1 torrent (or the v1 part of a
/// hybrid v1+v2 torrent). Owns its bytes; cheap to keep for a session.
///
/// ```
/// use rustico_metainfo::Torrent;
///
/// let pieces = [7u8; 40];
/// let mut file = b"d8:announce16:http://t.invalid4:infod6:lengthi20000e4:name5:a.bin12:piece lengthi16384e6:pieces40:".to_vec();
/// file.extend_from_slice(&pieces);
/// file.extend_from_slice(b"ee");
/// let torrent = Torrent::from_bytes(&file)?;
/// assert_eq!(torrent.name(), "a.bin");
/// assert_eq!(torrent.num_pieces(), 2);
/// assert_eq!(torrent.piece_length(), 16384);
/// assert_eq!(torrent.piece_size(1), Some(20000 - 16384));
/// assert_eq!(torrent.trackers(), [vec!["http://t.invalid".to_string()]]);
/// println!("{}", torrent.info_hash());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Torrent {
    bytes: Vec<u8>,
    info_range: Range<usize>,
    pieces_range: Range<usize>,
    info_hash: InfoHash,
    info_hashes: InfoHashes,
    name: String,
    original_name: Option<String>,
    piece_length: u32,
    total_length: u64,
    num_pieces: u32,
    files: Vec<FileEntry>,
    /// Where each file's piece layer is in `bytes`, for the files that
    /// have one (a map, not a slot per file: most files have none).
    layers: Layers,
    multi_file: bool,
    private: bool,
    hybrid: bool,
    trackers: Vec<Vec<String>>,
    web_seeds: Vec<String>,
    creation_date: Option<i64>,
    comment: Option<String>,
    created_by: Option<String>,
    encoding: Option<String>,
    extra: OwnedDict,
    info_extra: OwnedDict,
    warnings: Vec<Warning>,
}

impl Torrent {
    /// Parses a `.torrent` file.
    ///
    /// The bencode is read leniently (unsorted keys and other
    /// non-canonical forms are accepted) and the info-hash is the SHA-1 of
    /// the info dictionary's bytes exactly as they are in `bytes`.
    pub fn from_bytes(bytes: &[u8]) -> Result<Torrent, Error> {
        let parts = Torrent::parse(bytes)?;
        let kept = bytes.get(..parts.used).unwrap_or(bytes).to_vec();
        Ok(parts.finish(kept))
    }

    /// [`from_bytes`](Torrent::from_bytes) for bytes the torrent may keep:
    /// they are not copied (a large `.torrent` is not in memory twice).
    pub fn from_vec(mut bytes: Vec<u8>) -> Result<Torrent, Error> {
        let parts = Torrent::parse(&bytes)?;
        bytes.truncate(parts.used);
        Ok(parts.finish(bytes))
    }

    /// Everything of a `.torrent` but its bytes.
    fn parse(bytes: &[u8]) -> Result<Parts, Error> {
        // One pass of the pull parser checks the whole file; values are
        // then decoded one at a time, never the whole file as a tree.
        let scanned = scan(bytes, Some(b"info"))?;
        let used = scanned.end;
        let Some(root) = scanned.root else {
            let root = decode_at(bytes, 0, 0)?;
            return Err(wrong_type("(top level)", "a dictionary", &root));
        };
        let Some(info_field) = root.field(b"info") else {
            return Err(Error::MissingKey {
                key: "info".into(),
                offset: root.offset(),
            });
        };
        let Some(info) = scanned.inner else {
            return Err(wrong_type(
                "info",
                "a dictionary",
                &root.decode(info_field)?,
            ));
        };
        let mut parsed = Parsed::default();
        parse_info(&info, &mut parsed)?;

        let announce = optional_text(&root, b"announce", "announce")?;
        let mut trackers = Vec::new();
        if let Some(list) = root.get(b"announce-list")? {
            let tiers = list
                .as_list()
                .ok_or_else(|| wrong_type("announce-list", "a list of lists", &list))?;
            for (t, tier) in tiers.iter().enumerate() {
                let urls = tier
                    .as_list()
                    .ok_or_else(|| wrong_type(&format!("announce-list[{t}]"), "a list", tier))?;
                let mut out = Vec::new();
                for (u, url) in urls.iter().enumerate() {
                    let text = url.as_bytes().ok_or_else(|| {
                        wrong_type(&format!("announce-list[{t}][{u}]"), "a byte string", url)
                    })?;
                    if !text.is_empty() {
                        out.push(String::from_utf8_lossy(text).into_owned());
                    }
                }
                if !out.is_empty() {
                    trackers.push(out);
                }
            }
        }
        // BEP 12: a client that understands announce-list ignores announce.
        if trackers.is_empty() {
            if let Some(url) = announce.filter(|u| !u.is_empty()) {
                trackers.push(vec![url]);
            }
        }

        // Web seeds are optional: a malformed entry is dropped with a
        // warning, as libtorrent does, rather than losing the torrent.
        let mut web_seeds = Vec::new();
        if let Some(seeds) = root.get(b"url-list")? {
            let mut add = |key: String, url: &Value<'_>| match url.as_bytes() {
                Some(text) if !text.is_empty() => {
                    web_seeds.push(String::from_utf8_lossy(text).into_owned());
                }
                Some(_) => {}
                None => parsed.warnings.push(Warning::WebSeedIgnored {
                    key,
                    found: url.type_name(),
                }),
            };
            match seeds.kind() {
                Kind::List(urls) => {
                    for (u, url) in urls.iter().enumerate() {
                        add(format!("url-list[{u}]"), url);
                    }
                }
                _ => add("url-list".into(), &seeds),
            }
        }

        let creation_date = match root.get(b"creation date")? {
            Some(v) => Some(
                v.as_integer()
                    .ok_or_else(|| wrong_type("creation date", "an integer", &v))?,
            ),
            None => None,
        };
        let comment = preferred_text(&root, b"comment", b"comment.utf-8", "comment")?;
        let created_by = preferred_text(&root, b"created by", b"created by.utf-8", "created by")?;
        let encoding = optional_text(&root, b"encoding", "encoding")?;
        let extra = unknown_fields(&root, TOP_LEVEL_KEYS)?;

        if used < bytes.len() {
            parsed.warnings.push(Warning::TrailingBytes {
                count: bytes.len() - used,
            });
        }
        let info_start = info.offset();
        let info_range = info_start..info_start + info.raw().len();
        let layers = if parsed.info_hashes.v2.is_some() {
            parse_piece_layers(
                root.get(b"piece layers")?.as_ref(),
                &parsed.files,
                parsed.piece_length,
            )?
        } else {
            Layers::new()
        };
        Ok(Parts {
            parsed,
            used,
            info_range,
            header: Header {
                trackers,
                web_seeds,
                creation_date,
                comment,
                created_by,
                encoding,
                extra,
            },
            layers,
        })
    }

    /// Reads and parses a `.torrent` file from disk.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Torrent, Error> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Torrent::from_vec(bytes)
    }

    /// A torrent from the bencoded info dictionary alone, as fetched from
    /// peers for a magnet link (BEP 9). It has no trackers, web seeds or
    /// other top-level fields; the caller checks
    /// [`info_hash`](Torrent::info_hash) against the magnet's. Bytes after
    /// the dictionary are an error here (the metadata must be exactly the
    /// dictionary).
    pub fn from_info_bytes(info_bytes: &[u8]) -> Result<Torrent, Error> {
        let scanned = scan(info_bytes, None)?;
        let used = scanned.end;
        if used != info_bytes.len() {
            return Err(Error::Invalid {
                key: "info".into(),
                reason: format!("{} bytes after the dictionary", info_bytes.len() - used),
                offset: used,
            });
        }
        let Some(info) = scanned.root else {
            return Err(wrong_type(
                "info",
                "a dictionary",
                &decode_at(info_bytes, 0, 0)?,
            ));
        };
        let mut parsed = Parsed::default();
        parse_info(&info, &mut parsed)?;
        Ok(parsed.finish(
            info_bytes.to_vec(),
            0..info_bytes.len(),
            Header::default(),
            Layers::new(),
        ))
    }

    /// The `.torrent` of a magnet link whose info dictionary was fetched
    /// from peers (BEP 9): checks that `info_bytes` hashes to the link's
    /// info-hashes (SHA-1 for `btih`, SHA-256 for `btmh`; both for a
    /// hybrid link), then writes a torrent file around those exact
    /// bytes, announcing to the link's trackers (`tr`, one tier each, in
    /// order) with its web seeds (`ws`) as `url-list`, and parses it.
    /// [`as_bytes`](Torrent::as_bytes) is the file to save.
    ///
    /// ```
    /// use rustico_metainfo::{InfoHash, Magnet, Torrent};
    ///
    /// let info = b"d6:lengthi5e4:name3:abc12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaae";
    /// let mut magnet = Magnet::new(InfoHash::of_info_bytes(info));
    /// magnet.trackers.push("http://127.0.0.1:6969/announce".into());
    /// magnet.web_seeds.push("http://127.0.0.1:8080/files/".into());
    /// let torrent = Torrent::from_magnet_and_info(&magnet, info)?;
    /// assert_eq!(torrent.info_hash(), magnet.info_hash);
    /// assert_eq!(torrent.info_bytes(), info);
    /// assert_eq!(torrent.trackers(), [vec!["http://127.0.0.1:6969/announce".to_string()]]);
    /// assert_eq!(torrent.web_seeds(), ["http://127.0.0.1:8080/files/"]);
    /// // Bytes that do not hash to the link's info-hash are refused.
    /// assert!(Torrent::from_magnet_and_info(&Magnet::new(InfoHash::default()), info).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_magnet_and_info(
        magnet: &crate::Magnet,
        info_bytes: &[u8],
    ) -> Result<Torrent, Error> {
        let wanted = magnet.info_hashes();
        if let Some(expected) = wanted.v1 {
            let found = InfoHash::of_info_bytes(info_bytes);
            if found != expected {
                return Err(Error::InfoHashMismatch { expected, found });
            }
        }
        if let Some(expected) = wanted.v2 {
            let found = InfoHashV2::of_info_bytes(info_bytes);
            if found != expected {
                return Err(Error::InfoHashV2Mismatch { expected, found });
            }
        }
        // Exactly one value: what follows it would become part of the
        // top-level dictionary below.
        let used = value_end(info_bytes)?;
        if used != info_bytes.len() {
            return Err(Error::Invalid {
                key: "info".into(),
                reason: format!("{} bytes after the dictionary", info_bytes.len() - used),
                offset: used,
            });
        }
        // Keys in sorted order: announce, announce-list, info, url-list.
        let trackers: Vec<&String> = magnet.trackers.iter().filter(|t| !t.is_empty()).collect();
        let mut out = Vec::with_capacity(info_bytes.len() + 256);
        out.push(b'd');
        if let Some(first) = trackers.first() {
            rustico_bencode::encode::bytes(&mut out, b"announce");
            rustico_bencode::encode::bytes(&mut out, first.as_bytes());
            rustico_bencode::encode::bytes(&mut out, b"announce-list");
            out.push(b'l');
            for url in &trackers {
                out.push(b'l');
                rustico_bencode::encode::bytes(&mut out, url.as_bytes());
                out.push(b'e');
            }
            out.push(b'e');
        }
        rustico_bencode::encode::bytes(&mut out, b"info");
        out.extend_from_slice(info_bytes);
        if !magnet.web_seeds.is_empty() {
            rustico_bencode::encode::bytes(&mut out, b"url-list");
            out.push(b'l');
            for url in &magnet.web_seeds {
                rustico_bencode::encode::bytes(&mut out, url.as_bytes());
            }
            out.push(b'e');
        }
        out.push(b'e');
        let torrent = Torrent::from_vec(out)?;
        // A link may name only one half of a hybrid, but not a half
        // the dictionary does not have.
        if wanted.v1.is_some() && torrent.info_hashes.v1.is_none() {
            return Err(Error::Invalid {
                key: "info".into(),
                reason: "a `btih` link for an info dictionary without v1 `pieces`".into(),
                offset: 0,
            });
        }
        if wanted.v2.is_some() && torrent.info_hashes.v2.is_none() {
            return Err(Error::Invalid {
                key: "info".into(),
                reason: "a `btmh` link for an info dictionary without a v2 `file tree`".into(),
                offset: 0,
            });
        }
        Ok(torrent)
    }

    /// The 20-byte info-hash that names the torrent where one is needed:
    /// the v1 (SHA-1) hash of a v1 or hybrid torrent, the truncated v2
    /// hash of a v2-only torrent (what its handshakes and announces
    /// carry). [`info_hashes`](Torrent::info_hashes) has both.
    pub fn info_hash(&self) -> InfoHash {
        self.info_hash
    }

    /// The v1 and v2 info-hashes: `v1` for v1 and hybrid torrents, `v2`
    /// (SHA-256 of the info dictionary) for v2 and hybrid torrents.
    pub fn info_hashes(&self) -> InfoHashes {
        self.info_hashes
    }

    /// Whether the torrent has a v1 part (`info.pieces`, SHA-1 pieces).
    pub fn has_v1(&self) -> bool {
        self.info_hashes.v1.is_some()
    }

    /// Whether the torrent has a v2 part (BEP 52 `file tree`, merkle pieces).
    pub fn has_v2(&self) -> bool {
        self.info_hashes.v2.is_some()
    }

    /// BEP 52 piece layer of file `index` (of [`files`](Torrent::files)):
    /// its pieces' merkle hashes, 32 bytes each, checked against the
    /// file's `pieces root` when parsed. `None` for a file of at most one
    /// piece (its root is its piece hash), for a v1 file, and when the
    /// `.torrent` left the layer out (a client then fetches it from peers).
    pub fn piece_layer(&self, index: usize) -> Option<&[u8]> {
        let range = self.layers.get(&index)?.clone();
        self.bytes.get(range)
    }

    /// The same torrent with more BEP 52 piece layers, as fetched from
    /// peers with `hash request`s for a torrent that lacked them (one
    /// made from a `btmh` magnet link, say): each `(pieces root, layer)`
    /// is added to the top-level `piece layers` (the info dictionary's
    /// bytes, hence the info-hashes, stay as they are) and checked like
    /// a layer read from a file: it must belong to a file of more than
    /// one piece, hold one hash per piece and hash up to the root.
    /// [`as_bytes`](Torrent::as_bytes) is then the complete `.torrent`.
    ///
    /// ```
    /// use std::sync::atomic::AtomicBool;
    /// use rustico_metainfo::{Torrent, TorrentBuilder, TorrentVersion};
    ///
    /// let dir = std::env::temp_dir().join(format!("rustico-layers-doc-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// std::fs::write(dir.join("a.bin"), vec![1u8; 50_000])?;
    /// let full = TorrentBuilder::new(dir.join("a.bin"))
    ///     .version(TorrentVersion::V2)
    ///     .piece_length(16384)
    ///     .build(|_| {}, &AtomicBool::new(false))?;
    /// // Only the info dictionary, as a magnet link's peers send it.
    /// let bare = Torrent::from_info_bytes(full.info_bytes())?;
    /// assert!(!bare.has_piece_layers());
    /// let root = full.files()[0].pieces_root().unwrap();
    /// let layer = full.piece_layer(0).unwrap();
    /// let complete = bare.with_piece_layers([(&root, layer)])?;
    /// assert!(complete.has_piece_layers());
    /// assert_eq!(complete.info_hashes(), full.info_hashes());
    /// // A layer that does not lead to the root is refused.
    /// assert!(bare.with_piece_layers([(&root, &layer[32..])]).is_err());
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_piece_layers<'a>(
        &self,
        layers: impl IntoIterator<Item = (&'a [u8; 32], &'a [u8])>,
    ) -> Result<Torrent, Error> {
        use std::collections::BTreeMap;
        if !self.has_v2() {
            return Err(Error::Invalid {
                key: "piece layers".into(),
                reason: "a v1-only torrent has no merkle trees".into(),
                offset: 0,
            });
        }
        let mut all: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        for (&index, range) in &self.layers {
            let root = self.files.get(index).and_then(FileEntry::pieces_root);
            if let (Some(root), Some(bytes)) = (root, self.bytes.get(range.clone())) {
                all.insert(root.to_vec(), bytes.to_vec());
            }
        }
        for (root, layer) in layers {
            all.insert(root.to_vec(), layer.to_vec());
        }
        // The top level's entries as written (raw values, so the info
        // dictionary keeps its exact bytes), `piece layers` replaced.
        let whole_is_info = self.info_range == (0..self.bytes.len());
        let mut entries: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        if whole_is_info {
            entries.insert(b"info".to_vec(), self.bytes.clone());
        } else {
            if let Some(root) = scan(&self.bytes, None)?.root {
                for field in root.entries() {
                    if let Some(raw) = self.bytes.get(field.span.clone()) {
                        entries.insert(field.key.to_vec(), raw.to_vec());
                    }
                }
            }
        }
        let mut layers_dict = vec![b'd'];
        for (root, layer) in &all {
            rustico_bencode::encode::bytes(&mut layers_dict, root);
            rustico_bencode::encode::bytes(&mut layers_dict, layer);
        }
        layers_dict.push(b'e');
        entries.insert(b"piece layers".to_vec(), layers_dict);
        let mut out = vec![b'd'];
        for (key, raw) in &entries {
            rustico_bencode::encode::bytes(&mut out, key);
            out.extend_from_slice(raw);
        }
        out.push(b'e');
        let torrent = Torrent::from_vec(out)?;
        debug_assert_eq!(torrent.info_hashes, self.info_hashes);
        Ok(torrent)
    }

    /// Whether every file of more than one piece has its piece layer
    /// (always true for a v1-only torrent, which has none).
    pub fn has_piece_layers(&self) -> bool {
        let piece_length = u64::from(self.piece_length);
        self.files.iter().enumerate().all(|(index, file)| {
            file.pieces_root.is_none()
                || file.length <= piece_length
                || self.layers.contains_key(&index)
        })
    }

    /// The expected v2 hash of piece `index`: the piece-layer hash, or
    /// for a file of at most one piece its `pieces root` (over that
    /// file's blocks only, see [`V2PieceHash`]). `None` for a v1-only
    /// torrent, past the end, a padding-only piece, or a missing layer.
    pub fn v2_piece_hash(&self, index: u32) -> Option<V2PieceHash> {
        if !self.has_v2() || index >= self.num_pieces {
            return None;
        }
        let piece_length = u64::from(self.piece_length);
        let start = u64::from(index) * piece_length;
        let file_index = self.file_index_at(start)?;
        let file = self.files.get(file_index)?;
        let root = file.pieces_root()?;
        if file.length <= piece_length {
            return Some(V2PieceHash::Root(root));
        }
        let in_file = usize::try_from((start - file.offset) / piece_length).ok()?;
        let layer = self.piece_layer(file_index)?;
        let hash = layer.get(in_file * 32..in_file * 32 + 32)?;
        Some(V2PieceHash::Layer(hash.try_into().ok()?))
    }

    /// The info dictionary's exact bytes (what the info-hash hashes, and
    /// what BEP 9 `ut_metadata` serves to peers).
    pub fn info_bytes(&self) -> &[u8] {
        &self.bytes[self.info_range.clone()]
    }

    /// The whole `.torrent` file as parsed (for
    /// [`from_info_bytes`](Torrent::from_info_bytes), just the info
    /// dictionary). Write this to save the torrent.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// `info.name` (`name.utf-8` preferred), sanitised like a path
    /// element: the file name of a single-file torrent, the folder name of
    /// a multi-file one. When nothing of it is left (`..`, `/`), the
    /// info-hash in hex, as libtorrent does.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `info.name` as the torrent wrote it (lossily decoded), before
    /// sanitising. For display only.
    pub fn original_name(&self) -> &str {
        self.original_name.as_deref().unwrap_or(&self.name)
    }

    /// `info.piece length`, the nominal piece length: the length of every
    /// piece but the last. At most [`MAX_PIECE_LENGTH`].
    pub fn piece_length(&self) -> u32 {
        self.piece_length
    }

    /// The length of piece `index` (the last one may be shorter than
    /// [`piece_length`](Torrent::piece_length)), or `None` past the end.
    pub fn piece_size(&self, index: u32) -> Option<u32> {
        if index >= self.num_pieces {
            return None;
        }
        let piece_length = u64::from(self.piece_length);
        let start = u64::from(index) * piece_length;
        let size = self.total_length.checked_sub(start)?.min(piece_length);
        u32::try_from(size).ok()
    }

    /// The SHA-1 of piece `index`, or `None` past the end.
    pub fn piece_hash(&self, index: u32) -> Option<&[u8; 20]> {
        if index >= self.num_pieces {
            return None;
        }
        let start = self.pieces_range.start + usize::try_from(index).ok()? * 20;
        self.bytes.get(start..start + 20)?.try_into().ok()
    }

    /// The concatenated piece hashes (`info.pieces`), 20 bytes each.
    pub fn piece_hashes(&self) -> &[u8] {
        &self.bytes[self.pieces_range.clone()]
    }

    /// Number of pieces.
    pub fn num_pieces(&self) -> u32 {
        self.num_pieces
    }

    /// Sum of all file lengths, padding files included: the length of the
    /// byte stream the pieces cut up (`num_pieces` is
    /// `ceil(total_length / piece_length)`). Never 0.
    pub fn total_length(&self) -> u64 {
        self.total_length
    }

    /// Sum of the lengths of the real files, padding files left out: the
    /// bytes a client writes to disk and shows as the torrent's size.
    /// Equal to [`total_length`](Torrent::total_length) for a torrent
    /// without BEP 47 padding.
    pub fn content_length(&self) -> u64 {
        self.files
            .iter()
            .filter(|f| !f.is_padding())
            .map(|f| f.length)
            .sum()
    }

    /// The files in torrent order, padding files included (see
    /// [`FileEntry::is_padding`]). A single-file torrent has one entry
    /// named after the torrent.
    pub fn files(&self) -> &[FileEntry] {
        &self.files
    }

    /// Whether the torrent has `info.files` (a folder) rather than
    /// `info.length` (one file).
    pub fn is_multi_file(&self) -> bool {
        self.multi_file
    }

    /// Where `file` goes below a download folder: `name/path...` for a
    /// multi-file torrent, `name` for a single file.
    pub fn file_path(&self, file: &FileEntry) -> PathBuf {
        let mut path = PathBuf::new();
        if self.multi_file {
            path.push(&self.name);
        }
        path.extend(file.path_elements());
        path
    }

    /// Index of the file holding byte `offset` of the torrent's byte
    /// stream (zero-length files hold no byte), or `None` past the end.
    pub fn file_index_at(&self, offset: u64) -> Option<usize> {
        if offset >= self.total_length {
            return None;
        }
        let after = self.files.partition_point(|f| f.offset <= offset);
        // The last file starting at or before `offset` that is not empty.
        (0..after).rev().find(|&i| self.files[i].length > 0)
    }

    /// BEP 27 `info.private`: peers only from the trackers (no DHT, PEX, LSD).
    pub fn is_private(&self) -> bool {
        self.private
    }

    /// Whether the info dictionary carries both v1 `pieces` and BEP 52
    /// v2 data (`meta version` 2 and a `file tree`, checked to describe
    /// the same files, each on a piece boundary): a hybrid torrent.
    pub fn is_hybrid(&self) -> bool {
        self.hybrid
    }

    /// Tracker tiers (BEP 12): `announce-list` when present and non-empty,
    /// otherwise a single tier holding `announce`. Empty URLs are dropped.
    pub fn trackers(&self) -> &[Vec<String>] {
        &self.trackers
    }

    /// BEP 19 web seeds (`url-list`, a string or a list; entries that are
    /// not strings are left out with a [`Warning::WebSeedIgnored`]).
    pub fn web_seeds(&self) -> &[String] {
        &self.web_seeds
    }

    /// `creation date`, seconds since the Unix epoch.
    pub fn creation_date(&self) -> Option<i64> {
        self.creation_date
    }

    /// `comment` (`comment.utf-8` preferred).
    pub fn comment(&self) -> Option<&str> {
        self.comment.as_deref()
    }

    /// `created by` (`created by.utf-8` preferred).
    pub fn created_by(&self) -> Option<&str> {
        self.created_by.as_deref()
    }

    /// `encoding`: the character set of the non-`.utf-8` strings, when declared.
    pub fn encoding(&self) -> Option<&str> {
        self.encoding.as_deref()
    }

    /// Top-level keys this crate does not interpret (`nodes`,
    /// `httpseeds`, `piece layers`, ...), in canonical order.
    pub fn extra_fields(&self) -> &OwnedDict {
        &self.extra
    }

    /// Keys of the info dictionary this crate does not interpret
    /// (`source`, `md5sum`, a hybrid torrent's `file tree`, ...).
    pub fn info_extra_fields(&self) -> &OwnedDict {
        &self.info_extra
    }

    /// Things accepted but worth telling the user, in the order found: a
    /// piece length that is not a power of two, trailing bytes, each
    /// sanitised name or renamed duplicate, each ignored web seed. Each
    /// prints as one line ([`Warning`] is `Display`).
    pub fn warnings(&self) -> &[Warning] {
        &self.warnings
    }

    /// A magnet link for this torrent: info-hash, name, trackers and web seeds.
    pub fn magnet(&self) -> crate::Magnet {
        crate::Magnet {
            info_hash: self.info_hash,
            info_hash_v2: self.info_hashes.v2,
            display_name: Some(self.name.clone()),
            trackers: self.trackers.iter().flatten().cloned().collect(),
            peers: Vec::new(),
            web_seeds: self.web_seeds.clone(),
        }
    }
}

impl std::fmt::Debug for Torrent {
    /// The identifying fields only: the bytes and piece hashes would drown them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Torrent")
            .field("info_hash", &self.info_hash)
            .field("name", &self.name)
            .field("total_length", &self.total_length)
            .field("piece_length", &self.piece_length)
            .field("num_pieces", &self.num_pieces)
            .field("files", &self.files.len())
            .field("private", &self.private)
            .field("hybrid", &self.hybrid)
            .field("trackers", &self.trackers)
            .finish_non_exhaustive()
    }
}

/// What the info dictionary yields.
#[derive(Default)]
struct Parsed {
    info_hash: InfoHash,
    info_hashes: InfoHashes,
    name: String,
    original_name: Option<String>,
    piece_length: u32,
    total_length: u64,
    num_pieces: u32,
    pieces_offset: usize,
    pieces_len: usize,
    files: Vec<FileEntry>,
    multi_file: bool,
    private: bool,
    hybrid: bool,
    info_extra: OwnedDict,
    warnings: Vec<Warning>,
}

/// Where the piece layers are in a torrent's bytes, by file index.
type Layers = std::collections::BTreeMap<usize, Range<usize>>;

/// A parsed `.torrent` waiting for its bytes.
struct Parts {
    parsed: Parsed,
    /// How many bytes the top-level dictionary took.
    used: usize,
    info_range: Range<usize>,
    header: Header,
    layers: Layers,
}

impl Parts {
    fn finish(self, bytes: Vec<u8>) -> Torrent {
        self.parsed
            .finish(bytes, self.info_range, self.header, self.layers)
    }
}

/// What the top level yields besides the info dictionary.
#[derive(Default)]
struct Header {
    trackers: Vec<Vec<String>>,
    web_seeds: Vec<String>,
    creation_date: Option<i64>,
    comment: Option<String>,
    created_by: Option<String>,
    encoding: Option<String>,
    extra: OwnedDict,
}

impl Parsed {
    fn finish(
        self,
        bytes: Vec<u8>,
        info_range: Range<usize>,
        header: Header,
        layers: Layers,
    ) -> Torrent {
        // `pieces_offset` is an offset in the decoded input, which
        // `bytes` starts with.
        let pieces_range = self.pieces_offset..self.pieces_offset + self.pieces_len;
        Torrent {
            bytes,
            info_range,
            pieces_range,
            info_hash: self.info_hash,
            info_hashes: self.info_hashes,
            name: self.name,
            original_name: self.original_name,
            piece_length: self.piece_length,
            total_length: self.total_length,
            num_pieces: self.num_pieces,
            files: self.files,
            layers,
            multi_file: self.multi_file,
            private: self.private,
            hybrid: self.hybrid,
            trackers: header.trackers,
            web_seeds: header.web_seeds,
            creation_date: header.creation_date,
            comment: header.comment,
            created_by: header.created_by,
            encoding: header.encoding,
            extra: header.extra,
            info_extra: self.info_extra,
            warnings: self.warnings,
        }
    }
}

fn parse_info(info: &Fields<'_>, out: &mut Parsed) -> Result<(), Error> {
    let meta_version = match info.get(b"meta version")? {
        Some(v) => Some(
            v.as_integer()
                .ok_or_else(|| wrong_type("info.meta version", "an integer", &v))?,
        ),
        None => None,
    };
    let file_tree = info.field(b"file tree");
    let pieces = info.get(b"pieces")?;
    if pieces.is_none() && file_tree.is_none() && meta_version != Some(2) {
        return Err(missing_in("info.pieces", info));
    }
    // BEP 52: a later meta version is an incompatible format.
    if let Some(version) = meta_version.filter(|v| *v > 2) {
        return Err(Error::Invalid {
            key: "info.meta version".into(),
            reason: format!("unknown meta version {version}"),
            offset: info
                .field(b"meta version")
                .map_or(info.offset(), |f| f.span.start),
        });
    }
    match (meta_version == Some(2), file_tree) {
        (true, None) => return Err(missing_in("info.file tree", info)),
        (false, Some(tree)) => {
            return Err(Error::Invalid {
                key: "info.file tree".into(),
                reason: "a v2 file tree without `meta version` 2".into(),
                offset: tree.span.start,
            })
        }
        _ => {}
    }
    out.hybrid = file_tree.is_some() && pieces.is_some();
    out.info_hashes = InfoHashes::of_info_bytes(info.raw(), pieces.is_some(), file_tree.is_some());
    out.info_hash = out.info_hashes.primary();

    let name_bytes = preferred_name(info)?;
    match sanitize_element(name_bytes) {
        Some(name) if name.as_bytes() == name_bytes => out.name = name,
        sanitized => {
            // Nothing left (`..`, `/`): the info-hash names the torrent.
            let name = sanitized.unwrap_or_else(|| out.info_hash.to_string());
            let original = String::from_utf8_lossy(name_bytes).into_owned();
            if name != original {
                out.warnings.push(Warning::NameSanitized {
                    original: original.clone(),
                    sanitized: name.clone(),
                });
                out.original_name = Some(original);
            }
            out.name = name;
        }
    }

    let piece_length_value = info
        .get(b"piece length")?
        .ok_or_else(|| missing_in("info.piece length", info))?;
    let piece_length = piece_length_value
        .as_integer()
        .ok_or_else(|| wrong_type("info.piece length", "an integer", &piece_length_value))?;
    let piece_length = u32::try_from(piece_length)
        .ok()
        .filter(|p| (1..=MAX_PIECE_LENGTH).contains(p))
        .ok_or_else(|| Error::Invalid {
            key: "info.piece length".into(),
            reason: format!("{piece_length} is not between 1 and {MAX_PIECE_LENGTH}"),
            offset: piece_length_value.offset(),
        })?;
    if !piece_length.is_power_of_two() {
        out.warnings
            .push(Warning::PieceLengthNotPowerOfTwo { piece_length });
    }
    if piece_length < 16 * 1024 {
        out.warnings
            .push(Warning::PieceLengthBelow16KiB { piece_length });
    }
    // BEP 52: v2 pieces are subtrees of 16 KiB leaves.
    if file_tree.is_some() && merkle::piece_height(u64::from(piece_length)).is_err() {
        return Err(Error::Invalid {
            key: "info.piece length".into(),
            reason: format!(
                "{piece_length} is not a power of two of at least 16 KiB, as v2 torrents need"
            ),
            offset: piece_length_value.offset(),
        });
    }
    out.piece_length = piece_length;

    let Some(pieces) = pieces else {
        // A v2-only torrent: `meta version` 2 and a `file tree` (checked above).
        let tree = info
            .field(b"file tree")
            .ok_or_else(|| missing_in("info.file tree", info))?;
        return parse_v2_only(info, tree, out);
    };

    let piece_bytes = pieces
        .as_bytes()
        .ok_or_else(|| wrong_type("info.pieces", "a byte string", &pieces))?;
    if piece_bytes.len() % 20 != 0 {
        return Err(Error::Invalid {
            key: "info.pieces".into(),
            reason: format!("length {} is not a multiple of 20", piece_bytes.len()),
            offset: pieces.offset(),
        });
    }
    // The content follows the `<len>:` prefix inside the raw span.
    out.pieces_offset = pieces.offset() + (pieces.raw().len() - piece_bytes.len());
    out.pieces_len = piece_bytes.len();

    // The v1 paths as written, for the comparison with the v2 file tree
    // (`None` for padding files, which the tree leaves out); kept only
    // for a hybrid torrent.
    let hybrid = file_tree.is_some();
    let raw_paths: Vec<Option<Vec<&[u8]>>> = match (info.field(b"length"), info.field(b"files")) {
        (Some(_), Some(files)) => {
            return Err(Error::Invalid {
                key: "info".into(),
                reason: "has both `length` and `files`".into(),
                offset: files.span.start,
            })
        }
        (None, None) => return Err(missing_in("info.length", info)),
        (Some(length), None) => {
            let length = non_negative(&info.decode(length)?, || "info.length".to_string())?;
            out.total_length = length;
            let mut file = FileEntry::new(out.name.clone(), length, 0);
            if let Some(original) = &out.original_name {
                file.set_original_path(original.clone());
            }
            out.files.push(file);
            vec![Some(vec![name_bytes])]
        }
        (None, Some(files)) => {
            out.multi_file = true;
            parse_files(info, files, hybrid, out)?
        }
    };
    if out.total_length == 0 {
        return Err(Error::EmptyTorrent {
            offset: info.offset(),
        });
    }

    let expected = out.total_length.div_ceil(u64::from(piece_length));
    let found = (piece_bytes.len() / 20) as u64;
    if expected != found {
        return Err(Error::PieceCountMismatch {
            expected,
            found,
            offset: pieces.offset(),
        });
    }
    out.num_pieces = u32::try_from(found).map_err(|_| Error::Invalid {
        key: "info.pieces".into(),
        reason: "more than 2^32 - 1 pieces".into(),
        offset: pieces.offset(),
    })?;

    if let Some(tree) = info.field(b"file tree") {
        compare_v1_v2(info, tree, &raw_paths, &mut out.files)?;
        for (file, raw) in out.files.iter().zip(&raw_paths) {
            if raw.is_none() {
                continue;
            }
            // BEP 52: in a hybrid, padding puts every file on a piece
            // boundary, so v1 and v2 pieces are the same bytes.
            if file.length > 0 && file.offset % u64::from(piece_length) != 0 {
                return Err(Error::HybridMismatch {
                    file: 0,
                    reason: format!(
                        "{:?} starts at byte {}, not on a piece boundary",
                        file.path(),
                        file.offset
                    ),
                });
            }
        }
    }
    finish_info(info, out)
}

/// What v1, v2 and hybrid info dictionaries share at the end: duplicate
/// renaming, `private`, unknown keys.
fn finish_info(info: &Fields<'_>, out: &mut Parsed) -> Result<(), Error> {
    if out.multi_file {
        resolve_duplicates(&mut out.files, &mut out.warnings)?;
    }

    out.private = match info.get(b"private")? {
        Some(v) => {
            v.as_integer()
                .ok_or_else(|| wrong_type("info.private", "an integer", &v))?
                != 0
        }
        None => false,
    };
    out.info_extra = unknown_fields(info, INFO_KEYS)?;
    Ok(())
}

/// A v2-only info dictionary: the files come from the `file tree`, each
/// starting on a piece boundary. Padding entries (`.pad/N`, `attr` `p`)
/// follow each file that does not end on a boundary, the last one too,
/// exactly as libtorrent lists a v2 torrent's files, so
/// [`Torrent::files`] tiles the same piece-indexed byte stream as a
/// hybrid torrent's v1 list (and the last piece is a whole piece).
fn parse_v2_only(info: &Fields<'_>, tree: &Field<'_>, out: &mut Parsed) -> Result<(), Error> {
    let piece_length = u64::from(out.piece_length);
    let warnings_before = out.warnings.len();
    let mut total: u64 = 0;
    let mut count = 0usize;
    // The only element of the first file's path, if it has one element.
    let mut first_alone: Option<&[u8]> = None;
    // Every file as in a multi-file torrent; a single-file one is
    // recognised at the end.
    v2::walk_file_tree(info.input(), tree.span.start, info.depth(), |file| {
        let i = count;
        count += 1;
        if i == 0 {
            first_alone = match file.path {
                [only] => Some(only),
                _ => None,
            };
        }
        let overflow = || Error::TotalLengthOverflow {
            key: format!("info.file tree ({})", show_path(file.path)),
            offset: file.offset,
        };
        let offset = total;
        let path = sanitize_path(file.path.iter().copied());
        let original = show_path(file.path);
        let mut entry = FileEntry::new(path, file.length, offset);
        if original != entry.path() {
            out.warnings.push(Warning::PathSanitized {
                file: i,
                original: original.clone(),
                sanitized: entry.path_string(),
            });
            entry.set_original_path(original);
        }
        total = total
            .checked_add(file.length)
            .filter(|t| *t <= i64::MAX as u64)
            .ok_or_else(overflow)?;
        entry.set_pieces_root(file.pieces_root);
        out.files.push(entry);
        let tail = file.length % piece_length;
        if tail != 0 {
            let pad = piece_length - tail;
            let offset = total;
            total = total
                .checked_add(pad)
                .filter(|t| *t <= i64::MAX as u64)
                .ok_or_else(overflow)?;
            out.files.push(padding_entry(pad, offset));
        }
        Ok(())
    })?;
    let name_bytes = preferred_name(info)?;
    // BEP 52: a single-file torrent's tree holds one file named `name`;
    // that file takes the torrent's (sanitised) name.
    out.multi_file = !(count == 1 && first_alone == Some(name_bytes));
    if !out.multi_file {
        out.warnings.truncate(warnings_before);
        if let Some(first) = out.files.first_mut() {
            let mut entry = FileEntry::new(out.name.clone(), first.length, 0);
            entry.set_pieces_root(first.pieces_root());
            if let Some(original) = &out.original_name {
                entry.set_original_path(original.clone());
            }
            *first = entry;
        }
    }
    out.total_length = total;
    if total == 0 {
        return Err(Error::EmptyTorrent {
            offset: info.offset(),
        });
    }
    out.num_pieces = u32::try_from(total.div_ceil(piece_length)).map_err(|_| Error::Invalid {
        key: "info.file tree".into(),
        reason: "more than 2^32 - 1 pieces".into(),
        offset: tree.span.start,
    })?;
    finish_info(info, out)
}

/// A padding file with no `path` of its own: `.pad/<length>`.
fn padding_entry(length: u64, offset: u64) -> FileEntry {
    let mut entry = FileEntry::new(format!(".pad/{length}"), length, offset);
    entry.set_attributes(Attributes::from_bytes(b"p"));
    entry.unnamed = true;
    entry
}

fn show_path(path: &[&[u8]]) -> String {
    let mut out = String::new();
    for (i, element) in path.iter().enumerate() {
        if i > 0 {
            out.push('/');
        }
        out.push_str(&String::from_utf8_lossy(element));
    }
    out
}

/// Checks the top-level `piece layers` of a v2 or hybrid torrent against
/// its files and returns, per file, where its layer is in the input.
/// BEP 52: each key is the `pieces root` of a file longer than one piece
/// and its value that file's piece hashes, one per piece, which must
/// hash up to the root. A file of at most one piece has no layer (its
/// root is its only piece hash). Missing layers are allowed (a client
/// then asks peers for them); a layer for no such file, of the wrong
/// length, or not leading to its root is an error.
fn parse_piece_layers(
    layers: Option<&Value<'_>>,
    files: &[FileEntry],
    piece_length: u32,
) -> Result<Layers, Error> {
    let mut out = Layers::new();
    let Some(layers) = layers else {
        return Ok(out);
    };
    let dict = layers
        .as_dict()
        .ok_or_else(|| wrong_type("piece layers", "a dictionary", layers))?;
    let piece_length = u64::from(piece_length);
    // The files by root, so that each layer finds its files (several may
    // share a root) without a scan of every file: that was quadratic.
    let mut by_root: Vec<([u8; 32], usize)> = Vec::new();
    if !dict.is_empty() {
        by_root = files
            .iter()
            .enumerate()
            .filter_map(|(index, f)| Some((f.pieces_root()?, index)))
            .collect();
        by_root.sort_unstable();
    }
    for (key, value) in dict.iter() {
        let invalid = |reason: String| Error::Invalid {
            key: format!("piece layers.{}", crate::hex(key)),
            reason,
            offset: value.offset(),
        };
        let layer = value
            .as_bytes()
            .ok_or_else(|| wrong_type("piece layers value", "a byte string", value))?;
        let root: [u8; 32] = key
            .try_into()
            .map_err(|_| invalid(format!("a key of {} bytes, not a 32-byte root", key.len())))?;
        let from = by_root.partition_point(|(r, _)| *r < root);
        let owners = by_root
            .get(from..)
            .unwrap_or_default()
            .iter()
            .take_while(|(r, _)| *r == root)
            .map(|&(_, index)| index);
        let Some(first) = owners.clone().next().and_then(|index| files.get(index)) else {
            return Err(invalid("the root of no file".into()));
        };
        if first.length <= piece_length {
            return Err(invalid(format!(
                "a layer for a file of {} bytes, at most one piece, which has none",
                first.length
            )));
        }
        let expected = first.length.div_ceil(piece_length) * 32;
        if layer.len() as u64 != expected {
            return Err(invalid(format!(
                "{} bytes, but a file of {} bytes in pieces of {piece_length} needs {expected}",
                layer.len(),
                first.length
            )));
        }
        let hashes: Vec<merkle::Hash> = layer
            .chunks_exact(32)
            .filter_map(|h| h.try_into().ok())
            .collect();
        if merkle::root_from_layer(&hashes, piece_length).ok() != Some(root) {
            return Err(invalid(
                "the hashes do not lead to the file's pieces root".into(),
            ));
        }
        let start = value.offset() + (value.raw().len() - layer.len());
        for index in owners {
            out.insert(index, start..start + layer.len());
        }
    }
    Ok(out)
}

/// Checks that a hybrid torrent's v1 files (padding left out) and v2
/// file tree name the same files, with the same lengths, in the same
/// order, walking the tree once; gives each v1 file its `pieces root`.
fn compare_v1_v2(
    info: &Fields<'_>,
    tree: &Field<'_>,
    raw_paths: &[Option<Vec<&[u8]>>],
    files: &mut [FileEntry],
) -> Result<(), Error> {
    let mut v1 = raw_paths
        .iter()
        .zip(files.iter_mut())
        .filter_map(|(path, file)| Some((path.as_ref()?, file)));
    let mut tree_count = 0;
    let mut compared = 0;
    v2::walk_file_tree(info.input(), tree.span.start, info.depth(), |theirs| {
        let index = tree_count;
        tree_count += 1;
        let Some((path, file)) = v1.next() else {
            // More files in v2: counted, refused below.
            return Ok(());
        };
        compared += 1;
        if path.as_slice() != theirs.path {
            return Err(Error::HybridMismatch {
                file: index,
                reason: format!(
                    "v1 path {:?}, v2 path {:?}",
                    show_path(path),
                    show_path(theirs.path)
                ),
            });
        }
        if file.length != theirs.length {
            return Err(Error::HybridMismatch {
                file: index,
                reason: format!(
                    "{:?} is {} bytes in v1, {} in v2",
                    show_path(path),
                    file.length,
                    theirs.length
                ),
            });
        }
        file.set_pieces_root(theirs.pieces_root);
        Ok(())
    })?;
    let v1_count = raw_paths.iter().filter(|p| p.is_some()).count();
    if v1_count != tree_count {
        return Err(Error::HybridMismatch {
            file: compared,
            reason: format!("{v1_count} files in v1, {tree_count} in v2"),
        });
    }
    Ok(())
}

/// Parses `info.files` one file dictionary at a time (the list is never
/// decoded whole: see [`crate::scan`]), sanitising each path. For a
/// hybrid torrent, returns each file's path as written (`None` for
/// padding files, which the v2 tree leaves out); otherwise nothing.
fn parse_files<'a>(
    info: &Fields<'a>,
    files: &Field<'a>,
    hybrid: bool,
    out: &mut Parsed,
) -> Result<Vec<Option<Vec<&'a [u8]>>>, Error> {
    let input = info.input();
    if input.get(files.span.start) != Some(&b'l') {
        return Err(wrong_type("info.files", "a list", &info.decode(files)?));
    }
    if files.children == 0 {
        return Err(Error::Invalid {
            key: "info.files".into(),
            reason: "no files".into(),
            offset: files.span.start,
        });
    }
    out.files.reserve_exact(files.children);
    let mut raw_paths = Vec::new();
    let mut total: u64 = 0;
    // Each item starts where the one before ended; the list's `e` ends it.
    let mut at = files.span.start + 1;
    // The items are 2 levels below the info dictionary's values.
    let depth = info.depth() + 1;
    for i in 0..files.children {
        let file = decode_at(input, at, depth)?;
        at = file.offset() + file.raw().len();
        let (entry, raw) = parse_file(i, &file, total, out)?;
        total = total
            .checked_add(entry.length)
            .filter(|t| *t <= i64::MAX as u64)
            .ok_or_else(|| Error::TotalLengthOverflow {
                key: format!("info.files[{i}].length"),
                offset: file.get(b"length").map_or(file.offset(), Value::offset),
            })?;
        if hybrid {
            raw_paths.push((!entry.is_padding()).then_some(raw));
        }
        out.files.push(entry);
    }
    debug_assert_eq!(input.get(at), Some(&b'e'));
    out.total_length = total;
    Ok(raw_paths)
}

/// One dictionary of `info.files`, the `i`th, starting at byte `offset`
/// of the torrent's byte stream; with its path as written.
fn parse_file<'a>(
    i: usize,
    file: &Value<'a>,
    offset: u64,
    out: &mut Parsed,
) -> Result<(FileEntry, Vec<&'a [u8]>), Error> {
    let key = |k: &str| format!("info.files[{i}].{k}");
    if file.as_dict().is_none() {
        return Err(wrong_type(
            &format!("info.files[{i}]"),
            "a dictionary",
            file,
        ));
    }
    let attributes = match file.get(b"attr") {
        Some(a) => Attributes::from_bytes(
            a.as_bytes()
                .ok_or_else(|| wrong_type(&key("attr"), "a byte string", a))?,
        ),
        None => Attributes::default(),
    };
    let padding = attributes.is_padding();
    // BEP 47 symlinks carry no data; some creators leave out `length`.
    let length = match file.get(b"length") {
        Some(v) => non_negative(v, || key("length"))?,
        None if attributes.is_symlink() => 0,
        None => return Err(missing(&key("length"), file)),
    };
    let path_value = match file.get(b"path.utf-8") {
        Some(p) => Some((p, "path.utf-8")),
        None => file.get(b"path").map(|p| (p, "path")),
    };
    let mut raw: Vec<&'a [u8]> = Vec::new();
    match path_value {
        Some((value, name)) => {
            let elements = value
                .as_list()
                .ok_or_else(|| wrong_type(&key(name), "a list", value))?;
            raw.reserve_exact(elements.len());
            for (c, element) in elements.iter().enumerate() {
                let bytes = element.as_bytes().ok_or_else(|| {
                    wrong_type(
                        &format!("info.files[{i}].{name}[{c}]"),
                        "a byte string",
                        element,
                    )
                })?;
                raw.push(bytes);
            }
        }
        // A padding file's name does not matter: it is never on disk.
        None if padding => {}
        None => return Err(missing(&key("path"), file)),
    }
    let mut entry = if padding && path_value.is_none() {
        padding_entry(length, offset)
    } else {
        let path = sanitize_path(raw.iter().copied());
        let mut entry = FileEntry::new(path, length, offset);
        let same = entry.path_elements().count() == raw.len()
            && entry
                .path_elements()
                .zip(&raw)
                .all(|(p, r)| p.as_bytes() == *r);
        if !same {
            let original = show_path(&raw);
            // Only invalid UTF-8 (to U+FFFD) is not worth a warning.
            if original != entry.path() {
                out.warnings.push(Warning::PathSanitized {
                    file: i,
                    original: original.clone(),
                    sanitized: entry.path_string(),
                });
                entry.set_original_path(original);
            }
        }
        entry
    };
    entry.set_attributes(attributes);
    entry.set_extra(unknown_keys(file, FILE_KEYS));
    Ok((entry, raw))
}

/// `info.name.utf-8` or `info.name`, as bytes.
fn preferred_name<'a>(info: &Fields<'a>) -> Result<&'a [u8], Error> {
    let (value, key) = match info.get(b"name.utf-8")? {
        Some(v) => (v, "info.name.utf-8"),
        None => (
            info.get(b"name")?
                .ok_or_else(|| missing_in("info.name", info))?,
            "info.name",
        ),
    };
    let bytes = value
        .as_bytes()
        .ok_or_else(|| wrong_type(key, "a byte string", &value))?;
    Ok(bytes)
}

fn non_negative(value: &Value<'_>, key: impl Fn() -> String) -> Result<u64, Error> {
    let n = value
        .as_integer()
        .ok_or_else(|| wrong_type(&key(), "an integer", value))?;
    u64::try_from(n).map_err(|_| Error::Invalid {
        key: key(),
        reason: format!("negative length {n}"),
        offset: value.offset(),
    })
}

fn optional_text(dict: &Fields<'_>, key: &[u8], name: &str) -> Result<Option<String>, Error> {
    match dict.get(key)? {
        Some(v) => {
            let bytes = v
                .as_bytes()
                .ok_or_else(|| wrong_type(name, "a byte string", &v))?;
            Ok(Some(String::from_utf8_lossy(bytes).into_owned()))
        }
        None => Ok(None),
    }
}

fn preferred_text(
    dict: &Fields<'_>,
    key: &[u8],
    utf8_key: &[u8],
    name: &str,
) -> Result<Option<String>, Error> {
    let plain = optional_text(dict, key, name)?;
    let utf8 = optional_text(dict, utf8_key, &format!("{name}.utf-8"))?;
    Ok(utf8.or(plain))
}

fn unknown_keys(dict: &Value<'_>, known: &[&[u8]]) -> OwnedDict {
    let mut out = OwnedDict::new();
    if let Some(dict) = dict.as_dict() {
        for (key, value) in dict.iter() {
            if !known.contains(&key) && !out.contains_key(key) {
                out.insert(key.to_vec(), value.to_owned_value());
            }
        }
    }
    out
}

/// [`unknown_keys`] of a dictionary read one level deep.
fn unknown_fields(dict: &Fields<'_>, known: &[&[u8]]) -> Result<OwnedDict, Error> {
    let mut out = OwnedDict::new();
    for field in dict.entries() {
        if !known.contains(&field.key) && !out.contains_key(field.key) {
            out.insert(field.key.to_vec(), dict.decode(field)?.to_owned_value());
        }
    }
    Ok(out)
}

fn wrong_type(key: &str, expected: &'static str, found: &Value<'_>) -> Error {
    Error::WrongType {
        key: key.into(),
        expected,
        found: found.type_name(),
        offset: found.offset(),
    }
}

fn missing(key: &str, dict: &Value<'_>) -> Error {
    Error::MissingKey {
        key: key.into(),
        offset: dict.offset(),
    }
}

fn missing_in(key: &str, dict: &Fields<'_>) -> Error {
    Error::MissingKey {
        key: key.into(),
        offset: dict.offset(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn single(length: i64, piece_length: i64, pieces: usize) -> Vec<u8> {
        let mut out = format!(
            "d4:infod6:lengthi{length}e4:name1:a12:piece lengthi{piece_length}e6:pieces{}:",
            pieces * 20
        )
        .into_bytes();
        out.extend(std::iter::repeat_n(b'h', pieces * 20));
        out.extend_from_slice(b"ee");
        out
    }

    #[test]
    fn piece_sizes_of_single_file() {
        let t = Torrent::from_bytes(&single(16384 * 2 + 1, 16384, 3)).unwrap();
        assert_eq!(t.num_pieces(), 3);
        assert_eq!(t.piece_length(), 16384);
        assert_eq!(t.piece_size(0), Some(16384));
        assert_eq!(t.piece_size(2), Some(1));
        assert_eq!(t.piece_size(3), None);
        assert_eq!(t.piece_hash(2), Some(&[b'h'; 20]));
        assert_eq!(t.piece_hash(3), None);
        assert!(t.warnings().is_empty());
        assert_eq!(t.file_index_at(0), Some(0));
        assert_eq!(t.file_index_at(16384 * 2 + 1), None);
    }

    #[test]
    fn piece_count_must_match() {
        let err = Torrent::from_bytes(&single(16384 * 2 + 1, 16384, 2)).unwrap_err();
        assert!(
            matches!(
                err,
                Error::PieceCountMismatch {
                    expected: 3,
                    found: 2,
                    ..
                }
            ),
            "{err}"
        );
        let err = Torrent::from_bytes(&single(1 << 62, 16384, 1)).unwrap_err();
        assert!(matches!(err, Error::PieceCountMismatch { .. }), "{err}");
    }

    #[test]
    fn piece_length_rules() {
        let max = i64::from(MAX_PIECE_LENGTH);
        for bad in [0, -16384, max + 1, max * 2, i64::from(u32::MAX) + 1] {
            let err = Torrent::from_bytes(&single(10, bad, 1)).unwrap_err();
            assert!(
                matches!(&err, Error::Invalid { key, .. } if key == "info.piece length"),
                "{err}"
            );
        }
        // libtorrent loads pieces up to 512 MiB; so do we.
        let t = Torrent::from_bytes(&single(10, max, 1)).unwrap();
        assert_eq!(t.piece_length(), 512 * 1024 * 1024);
        let t = Torrent::from_bytes(&single(10, 1000, 1)).unwrap();
        assert_eq!(
            t.warnings(),
            [
                Warning::PieceLengthNotPowerOfTwo { piece_length: 1000 },
                Warning::PieceLengthBelow16KiB { piece_length: 1000 }
            ]
        );
        assert_eq!(
            t.warnings()[0].to_string(),
            "piece length 1000 is not a power of two"
        );
    }

    #[test]
    fn zero_total_length_is_refused() {
        let err = Torrent::from_bytes(&single(0, 16384, 0)).unwrap_err();
        assert!(matches!(err, Error::EmptyTorrent { .. }), "{err}");
    }
}
