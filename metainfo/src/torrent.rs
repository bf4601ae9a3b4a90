//! [`Torrent`]: a parsed, validated v1 (or hybrid) `.torrent` file.

use std::ops::Range;
use std::path::{Path, PathBuf};

use rustico_bencode::{Decoder, Kind, OwnedDict, Value};

use crate::error::{Error, PathProblem, Warning};
use crate::info_hash::InfoHash;

/// The largest piece length accepted: 256 MiB (mktorrent's limit too).
/// Larger pieces would make a client buffer hundreds of megabytes on the
/// word of an untrusted file.
pub const MAX_PIECE_LENGTH: u64 = 256 * 1024 * 1024;

/// Bencode nesting allowed in a `.torrent`: real ones need 4 levels
/// (v2 file trees more, bounded by folder depth).
const MAX_DEPTH: usize = 256;

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
];

const FILE_KEYS: &[&[u8]] = &[b"length", b"path", b"path.utf-8", b"attr"];

/// One file of a torrent, where it sits in the torrent's byte stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// Path components below the torrent's folder (`["sub", "a.txt"]`);
    /// for a single-file torrent, just the torrent's name. Every
    /// component passed the path policy (no `..`, separators, NUL,
    /// reserved names). `path.utf-8` is preferred over `path`; bytes that
    /// are not UTF-8 become U+FFFD.
    pub path: Vec<String>,
    /// Length in bytes.
    pub length: u64,
    /// Offset of the file's first byte in the concatenation of all files,
    /// which the pieces cut into `piece length` slices.
    pub offset: u64,
    /// BEP 47 attributes (`attr`), as given: `p` padding, `x` executable,
    /// `h` hidden, `l` symlink. Empty when absent.
    pub attr: String,
    /// Keys of the file's dictionary this crate does not interpret
    /// (`md5sum`, `sha1`, ...).
    pub extra: OwnedDict,
}

impl FileEntry {
    /// A BEP 47 padding file (`attr` contains `p`): its bytes are zeros
    /// that occupy room in the piece stream so the next file starts on a
    /// piece boundary. It is a real entry of the v1 file list (the piece
    /// hashes cover its zeros), but a client need not create it on disk.
    pub fn is_padding(&self) -> bool {
        self.attr.contains('p')
    }

    /// BEP 47: `attr` contains `x`.
    pub fn is_executable(&self) -> bool {
        self.attr.contains('x')
    }

    /// BEP 47: `attr` contains `h`.
    pub fn is_hidden(&self) -> bool {
        self.attr.contains('h')
    }

    /// The path components joined with `/`, as shown to users.
    pub fn path_string(&self) -> String {
        self.path.join("/")
    }

    /// The byte range of this file in the torrent's byte stream.
    pub fn byte_range(&self) -> Range<u64> {
        self.offset..self.offset + self.length
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
/// assert_eq!(torrent.piece_length(1), Some(20000 - 16384));
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
    name: String,
    piece_length: u64,
    total_length: u64,
    num_pieces: u32,
    files: Vec<FileEntry>,
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
        let (root, used) = Decoder::new().max_depth(MAX_DEPTH).decode_prefix(bytes)?;
        let Some(root_dict) = root.as_dict() else {
            return Err(wrong_type("(top level)", "a dictionary", &root));
        };
        let info = root_dict.get(b"info").ok_or_else(|| Error::MissingKey {
            key: "info".into(),
            offset: root.offset(),
        })?;
        let mut parsed = Parsed::default();
        parse_info(info, &mut parsed)?;

        let announce = optional_text(&root, b"announce", "announce")?;
        let mut trackers = Vec::new();
        if let Some(list) = root.get(b"announce-list") {
            let tiers = list
                .as_list()
                .ok_or_else(|| wrong_type("announce-list", "a list of lists", list))?;
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

        let mut web_seeds = Vec::new();
        if let Some(seeds) = root.get(b"url-list") {
            match seeds.kind() {
                Kind::Bytes(url) => {
                    if !url.is_empty() {
                        web_seeds.push(String::from_utf8_lossy(url).into_owned());
                    }
                }
                Kind::List(urls) => {
                    for (u, url) in urls.iter().enumerate() {
                        let text = url.as_bytes().ok_or_else(|| {
                            wrong_type(&format!("url-list[{u}]"), "a byte string", url)
                        })?;
                        if !text.is_empty() {
                            web_seeds.push(String::from_utf8_lossy(text).into_owned());
                        }
                    }
                }
                _ => return Err(wrong_type("url-list", "a byte string or a list", seeds)),
            }
        }

        let creation_date = match root.get(b"creation date") {
            Some(v) => Some(
                v.as_integer()
                    .ok_or_else(|| wrong_type("creation date", "an integer", v))?,
            ),
            None => None,
        };
        let comment = preferred_text(&root, b"comment", b"comment.utf-8", "comment")?;
        let created_by = preferred_text(&root, b"created by", b"created by.utf-8", "created by")?;
        let encoding = optional_text(&root, b"encoding", "encoding")?;
        let extra = unknown_keys(&root, TOP_LEVEL_KEYS);

        if used < bytes.len() {
            parsed.warnings.push(Warning::TrailingBytes {
                count: bytes.len() - used,
            });
        }
        let info_start = info.offset();
        let info_range = info_start..info_start + info.raw().len();
        Ok(parsed.finish(
            bytes[..used].to_vec(),
            info_range,
            Header {
                trackers,
                web_seeds,
                creation_date,
                comment,
                created_by,
                encoding,
                extra,
            },
        ))
    }

    /// Reads and parses a `.torrent` file from disk.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Torrent, Error> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Torrent::from_bytes(&bytes)
    }

    /// A torrent from the bencoded info dictionary alone, as fetched from
    /// peers for a magnet link (BEP 9). It has no trackers, web seeds or
    /// other top-level fields; the caller checks
    /// [`info_hash`](Torrent::info_hash) against the magnet's. Bytes after
    /// the dictionary are an error here (the metadata must be exactly the
    /// dictionary).
    pub fn from_info_bytes(info_bytes: &[u8]) -> Result<Torrent, Error> {
        let (info, used) = Decoder::new()
            .max_depth(MAX_DEPTH)
            .decode_prefix(info_bytes)?;
        if used != info_bytes.len() {
            return Err(Error::Invalid {
                key: "info".into(),
                reason: format!("{} bytes after the dictionary", info_bytes.len() - used),
                offset: used,
            });
        }
        let mut parsed = Parsed::default();
        parse_info(&info, &mut parsed)?;
        Ok(parsed.finish(info_bytes.to_vec(), 0..info_bytes.len(), Header::default()))
    }

    /// The v1 info-hash.
    pub fn info_hash(&self) -> InfoHash {
        self.info_hash
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

    /// `info.name` (`name.utf-8` preferred): the file name of a
    /// single-file torrent, the folder name of a multi-file one.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `info.piece length`: the length of every piece but the last.
    pub fn nominal_piece_length(&self) -> u64 {
        self.piece_length
    }

    /// The length of piece `index` (the last one may be shorter), or
    /// `None` past the end.
    pub fn piece_length(&self, index: u32) -> Option<u64> {
        if index >= self.num_pieces {
            return None;
        }
        let start = u64::from(index) * self.piece_length;
        Some((self.total_length - start).min(self.piece_length))
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

    /// Sum of all file lengths, padding files included.
    pub fn total_length(&self) -> u64 {
        self.total_length
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
        path.extend(&file.path);
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

    /// Whether the info dictionary also carries BEP 52 v2 data (`meta
    /// version` 2 or a `file tree`): a hybrid torrent, read through its v1
    /// part.
    pub fn is_hybrid(&self) -> bool {
        self.hybrid
    }

    /// Tracker tiers (BEP 12): `announce-list` when present and non-empty,
    /// otherwise a single tier holding `announce`. Empty URLs are dropped.
    pub fn trackers(&self) -> &[Vec<String>] {
        &self.trackers
    }

    /// BEP 19 web seeds (`url-list`, a string or a list).
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

    /// Things accepted but unusual (a piece length that is not a power of
    /// two, trailing bytes...).
    pub fn warnings(&self) -> &[Warning] {
        &self.warnings
    }

    /// A magnet link for this torrent: info-hash, name, trackers and web seeds.
    pub fn magnet(&self) -> crate::Magnet {
        crate::Magnet {
            info_hash: self.info_hash,
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
    name: String,
    piece_length: u64,
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
    fn finish(self, bytes: Vec<u8>, info_range: Range<usize>, header: Header) -> Torrent {
        // `pieces_offset` is an offset in the decoded input, which
        // `bytes` starts with.
        let pieces_range = self.pieces_offset..self.pieces_offset + self.pieces_len;
        Torrent {
            bytes,
            info_range,
            pieces_range,
            info_hash: self.info_hash,
            name: self.name,
            piece_length: self.piece_length,
            total_length: self.total_length,
            num_pieces: self.num_pieces,
            files: self.files,
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

fn parse_info(info: &Value<'_>, out: &mut Parsed) -> Result<(), Error> {
    if info.as_dict().is_none() {
        return Err(wrong_type("info", "a dictionary", info));
    }
    out.info_hash = InfoHash::of_info_bytes(info.raw());

    let meta_version = match info.get(b"meta version") {
        Some(v) => Some(
            v.as_integer()
                .ok_or_else(|| wrong_type("info.meta version", "an integer", v))?,
        ),
        None => None,
    };
    let has_file_tree = info.get(b"file tree").is_some();
    let Some(pieces) = info.get(b"pieces") else {
        if has_file_tree || meta_version.is_some_and(|v| v >= 2) {
            return Err(Error::UnsupportedV2 {
                offset: info.offset(),
            });
        }
        return Err(missing("info.pieces", info));
    };
    out.hybrid = has_file_tree || meta_version.is_some_and(|v| v >= 2);

    out.name = preferred_name(info)?;

    let piece_length_value = info
        .get(b"piece length")
        .ok_or_else(|| missing("info.piece length", info))?;
    let piece_length = piece_length_value
        .as_integer()
        .ok_or_else(|| wrong_type("info.piece length", "an integer", piece_length_value))?;
    if piece_length <= 0 || piece_length.unsigned_abs() > MAX_PIECE_LENGTH {
        return Err(Error::Invalid {
            key: "info.piece length".into(),
            reason: format!("{piece_length} is not between 1 and {MAX_PIECE_LENGTH}"),
            offset: piece_length_value.offset(),
        });
    }
    let piece_length = piece_length.unsigned_abs();
    if !piece_length.is_power_of_two() {
        out.warnings
            .push(Warning::PieceLengthNotPowerOfTwo { piece_length });
    }
    if piece_length < 16 * 1024 {
        out.warnings
            .push(Warning::PieceLengthBelow16KiB { piece_length });
    }
    out.piece_length = piece_length;

    let piece_bytes = pieces
        .as_bytes()
        .ok_or_else(|| wrong_type("info.pieces", "a byte string", pieces))?;
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

    match (info.get(b"length"), info.get(b"files")) {
        (Some(_), Some(files)) => {
            return Err(Error::Invalid {
                key: "info".into(),
                reason: "has both `length` and `files`".into(),
                offset: files.offset(),
            })
        }
        (None, None) => return Err(missing("info.length", info)),
        (Some(length), None) => {
            let length = non_negative(length, || "info.length".to_string())?;
            out.total_length = length;
            out.files.push(FileEntry {
                path: vec![out.name.clone()],
                length,
                offset: 0,
                attr: String::new(),
                extra: OwnedDict::new(),
            });
        }
        (None, Some(files)) => {
            out.multi_file = true;
            parse_files(files, out)?;
        }
    }

    let expected = out.total_length.div_ceil(piece_length);
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

    out.private = match info.get(b"private") {
        Some(v) => {
            v.as_integer()
                .ok_or_else(|| wrong_type("info.private", "an integer", v))?
                != 0
        }
        None => false,
    };
    out.info_extra = unknown_keys(info, INFO_KEYS);
    Ok(())
}

fn parse_files(files: &Value<'_>, out: &mut Parsed) -> Result<(), Error> {
    let list = files
        .as_list()
        .ok_or_else(|| wrong_type("info.files", "a list", files))?;
    if list.is_empty() {
        return Err(Error::Invalid {
            key: "info.files".into(),
            reason: "no files".into(),
            offset: files.offset(),
        });
    }
    out.files.reserve(list.len());
    let mut total: u64 = 0;
    for (i, file) in list.iter().enumerate() {
        let key = |k: &str| format!("info.files[{i}].{k}");
        if file.as_dict().is_none() {
            return Err(wrong_type(
                &format!("info.files[{i}]"),
                "a dictionary",
                file,
            ));
        }
        let length_value = file
            .get(b"length")
            .ok_or_else(|| missing(&key("length"), file))?;
        let length = non_negative(length_value, || key("length"))?;
        let path_value = match file.get(b"path.utf-8") {
            Some(p) => (p, "path.utf-8"),
            None => (
                file.get(b"path")
                    .ok_or_else(|| missing(&key("path"), file))?,
                "path",
            ),
        };
        let components = path_value
            .0
            .as_list()
            .ok_or_else(|| wrong_type(&key(path_value.1), "a list", path_value.0))?;
        if components.is_empty() {
            return Err(Error::UnsafePath {
                key: key(path_value.1),
                path: String::new(),
                problem: PathProblem::Empty,
                offset: path_value.0.offset(),
            });
        }
        let mut path = Vec::with_capacity(components.len());
        for (c, component) in components.iter().enumerate() {
            let key = || format!("info.files[{i}].{}[{c}]", path_value.1);
            let bytes = component
                .as_bytes()
                .ok_or_else(|| wrong_type(&key(), "a byte string", component))?;
            path.push(safe_component(bytes, component.offset(), key)?);
        }
        let attr = match file.get(b"attr") {
            Some(a) => String::from_utf8_lossy(
                a.as_bytes()
                    .ok_or_else(|| wrong_type(&key("attr"), "a byte string", a))?,
            )
            .into_owned(),
            None => String::new(),
        };
        let offset = total;
        total = total
            .checked_add(length)
            .filter(|t| *t <= i64::MAX as u64)
            .ok_or_else(|| Error::TotalLengthOverflow {
                key: key("length"),
                offset: length_value.offset(),
            })?;
        out.files.push(FileEntry {
            path,
            length,
            offset,
            attr,
            extra: unknown_keys(file, FILE_KEYS),
        });
    }
    out.total_length = total;
    Ok(())
}

fn preferred_name(info: &Value<'_>) -> Result<String, Error> {
    let (value, key) = match info.get(b"name.utf-8") {
        Some(v) => (v, "info.name.utf-8"),
        None => (
            info.get(b"name")
                .ok_or_else(|| missing("info.name", info))?,
            "info.name",
        ),
    };
    let bytes = value
        .as_bytes()
        .ok_or_else(|| wrong_type(key, "a byte string", value))?;
    safe_component(bytes, value.offset(), || key.to_string())
}

/// Applies the path policy to one component: reject, never rewrite (a
/// rewritten name could collide with another file, and a torrent built to
/// escape its folder is hostile, not sloppy). Invalid UTF-8 is the one
/// thing sanitized (to U+FFFD), since it cannot escape a folder.
fn safe_component(
    bytes: &[u8],
    offset: usize,
    key: impl FnOnce() -> String,
) -> Result<String, Error> {
    match check_component(bytes) {
        Ok(()) => Ok(String::from_utf8_lossy(bytes).into_owned()),
        Err(problem) => Err(Error::UnsafePath {
            key: key(),
            path: String::from_utf8_lossy(bytes).into_owned(),
            problem,
            offset,
        }),
    }
}

/// Checks one path component against the policy of the crate docs.
pub(crate) fn check_component(bytes: &[u8]) -> Result<(), PathProblem> {
    if bytes.is_empty() {
        return Err(PathProblem::Empty);
    }
    if bytes == b"." || bytes == b".." {
        return Err(PathProblem::DotComponent);
    }
    // One pass over the name: separators and NUL all sort at or below
    // the backslash, so lowercase letters cost one comparison each.
    for &b in bytes {
        if b <= b'\\' {
            match b {
                b'/' | b'\\' => return Err(PathProblem::Separator),
                0 => return Err(PathProblem::Nul),
                _ => {}
            }
        }
    }
    if bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':' {
        return Err(PathProblem::DrivePrefix);
    }
    // Windows reserves device names with any extension, and ignores
    // trailing dots and spaces: `con`, `CON.txt`, `lpt1 .log`.
    let stem = bytes.split(|&b| b == b'.').next().unwrap_or(bytes);
    let stem = stem.trim_ascii_end();
    let reserved = match stem.len() {
        3 => [&b"CON"[..], b"PRN", b"AUX", b"NUL"]
            .iter()
            .any(|name| stem.eq_ignore_ascii_case(name)),
        4 => {
            (stem[..3].eq_ignore_ascii_case(b"COM") || stem[..3].eq_ignore_ascii_case(b"LPT"))
                && (b'1'..=b'9').contains(&stem[3])
        }
        _ => false,
    };
    if reserved {
        return Err(PathProblem::ReservedName);
    }
    Ok(())
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

fn optional_text(dict: &Value<'_>, key: &[u8], name: &str) -> Result<Option<String>, Error> {
    match dict.get(key) {
        Some(v) => {
            let bytes = v
                .as_bytes()
                .ok_or_else(|| wrong_type(name, "a byte string", v))?;
            Ok(Some(String::from_utf8_lossy(bytes).into_owned()))
        }
        None => Ok(None),
    }
}

fn preferred_text(
    dict: &Value<'_>,
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
    fn piece_lengths_of_single_file() {
        let t = Torrent::from_bytes(&single(16384 * 2 + 1, 16384, 3)).unwrap();
        assert_eq!(t.num_pieces(), 3);
        assert_eq!(t.piece_length(0), Some(16384));
        assert_eq!(t.piece_length(2), Some(1));
        assert_eq!(t.piece_length(3), None);
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
        for bad in [0, -16384, (MAX_PIECE_LENGTH * 2) as i64] {
            let err = Torrent::from_bytes(&single(10, bad, 1)).unwrap_err();
            assert!(
                matches!(&err, Error::Invalid { key, .. } if key == "info.piece length"),
                "{err}"
            );
        }
        let t = Torrent::from_bytes(&single(10, 1000, 1)).unwrap();
        assert_eq!(
            t.warnings(),
            [
                Warning::PieceLengthNotPowerOfTwo { piece_length: 1000 },
                Warning::PieceLengthBelow16KiB { piece_length: 1000 }
            ]
        );
    }

    #[test]
    fn component_policy() {
        for (name, problem) in [
            (&b""[..], PathProblem::Empty),
            (b".", PathProblem::DotComponent),
            (b"..", PathProblem::DotComponent),
            (b"/etc", PathProblem::Separator),
            (b"a\\b", PathProblem::Separator),
            (b"a\0", PathProblem::Nul),
            (b"C:x", PathProblem::DrivePrefix),
            (b"con", PathProblem::ReservedName),
            (b"LPT1.txt", PathProblem::ReservedName),
            (b"aux .c", PathProblem::ReservedName),
        ] {
            assert_eq!(check_component(name), Err(problem), "{name:?}");
        }
        for ok in [
            &b"..."[..],
            b".hidden",
            b"console",
            b"com10",
            b"ab:c",
            "é".as_bytes(),
        ] {
            assert_eq!(check_component(ok), Ok(()), "{ok:?}");
        }
    }
}
