//! [`TorrentBuilder`]: make a v1, v2 or hybrid `.torrent` from a file or
//! a folder.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;

use rustico_bencode::{encode, OwnedDict, OwnedValue};
use rustico_pieces::Progress;
use sha1::{Digest, Sha1};

use crate::merkle::{self, Hash};
use crate::sanitize::check_element;
use crate::torrent::Torrent;
use crate::PathProblem;

/// The smallest piece length [`auto_piece_length`] picks: 16 KiB, the
/// block size peers request.
pub const MIN_AUTO_PIECE_LENGTH: u32 = 16 * 1024;
/// The largest piece length [`auto_piece_length`] picks: 16 MiB.
pub const MAX_AUTO_PIECE_LENGTH: u32 = 16 * 1024 * 1024;
/// The piece count [`auto_piece_length`] aims to stay under.
pub const TARGET_PIECE_COUNT: u64 = 2048;

/// The piece length chosen when none is given: the smallest power of two
/// from 16 KiB to 16 MiB that cuts `total_length` into at most 2048
/// pieces (so `pieces` stays under 40 KiB); 16 MiB for anything over 32 GiB.
///
/// ```
/// use rustico_metainfo::auto_piece_length;
/// assert_eq!(auto_piece_length(0), 16 * 1024);
/// assert_eq!(auto_piece_length(1 << 30), 512 * 1024); // 1 GiB: 2048 pieces
/// assert_eq!(auto_piece_length((1 << 30) + 1), 1024 * 1024);
/// assert_eq!(auto_piece_length(1 << 40), 16 * 1024 * 1024);
/// ```
pub fn auto_piece_length(total_length: u64) -> u32 {
    let mut piece_length = MIN_AUTO_PIECE_LENGTH;
    while piece_length < MAX_AUTO_PIECE_LENGTH
        && total_length.div_ceil(u64::from(piece_length)) > TARGET_PIECE_COUNT
    {
        piece_length *= 2;
    }
    piece_length
}

/// Which parts a created torrent has ([`TorrentBuilder::version`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TorrentVersion {
    /// BEP 3 only: `pieces` (SHA-1), no padding.
    #[default]
    V1,
    /// BEP 52 only: `meta version` 2, `file tree` and `piece layers`.
    V2,
    /// Both, for v1 and v2 peers: the v1 `files` list gets BEP 47
    /// padding files (`.pad/N`, `attr` `p`) after every file that does
    /// not end on a piece boundary, so every file starts on one, as
    /// libtorrent writes them.
    Hybrid,
}

impl TorrentVersion {
    fn has_v1(self) -> bool {
        self != TorrentVersion::V2
    }

    fn has_v2(self) -> bool {
        self != TorrentVersion::V1
    }
}

/// Why a torrent could not be created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CreateError {
    /// Reading the source failed.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// A file got shorter while it was being hashed.
    #[error("{} changed while hashing", path.display())]
    FileChanged {
        /// The file.
        path: PathBuf,
    },
    /// A file or folder name that is not UTF-8, or that the path policy
    /// rejects (the torrent would be refused by readers).
    #[error("cannot put {} in a torrent: {problem}", path.display())]
    BadName {
        /// The file.
        path: PathBuf,
        /// Why.
        problem: BadNameProblem,
    },
    /// The folder holds no files (after the hidden-files rule).
    #[error("{} holds no files", path.display())]
    NoFiles {
        /// The folder.
        path: PathBuf,
    },
    /// The given piece length is not a power of two from 16 KiB to
    /// [`MAX_PIECE_LENGTH`](crate::MAX_PIECE_LENGTH).
    #[error("piece length {0} is not a power of two from 16 KiB to 512 MiB")]
    BadPieceLength(u32),
    /// The files hold no data (all empty): such a torrent has no piece,
    /// and readers refuse it.
    #[error("{} holds no data (every file is empty)", path.display())]
    EmptyContent {
        /// The file or folder.
        path: PathBuf,
    },
    /// A tracker or web seed URL that a client could not use.
    #[error("bad {what} URL {url:?}: {problem}")]
    BadUrl {
        /// `tracker` or `web seed`.
        what: &'static str,
        /// The URL given.
        url: String,
        /// What is wrong with it.
        problem: UrlProblem,
    },
    /// More pieces than fit a `u32` index.
    #[error("too many pieces; use a larger piece length")]
    TooManyPieces,
    /// The cancel flag was set.
    #[error("cancelled")]
    Cancelled,
}

/// What is wrong with a name (see [`CreateError::BadName`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BadNameProblem {
    /// Not valid UTF-8.
    #[error("the name is not UTF-8")]
    NotUtf8,
    /// Breaks the path policy.
    #[error("{0}")]
    Path(PathProblem),
}

/// What is wrong with a URL given to [`TorrentBuilder::tracker`] or
/// [`TorrentBuilder::web_seed`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UrlProblem {
    /// Not a URL at all (the `url` crate's reason).
    #[error("not a URL: {0}")]
    Syntax(String),
    /// A scheme clients do not announce to (or fetch from).
    #[error("scheme `{scheme}` is not one of {allowed}")]
    Scheme {
        /// The scheme given.
        scheme: String,
        /// The schemes accepted.
        allowed: &'static str,
    },
    /// No host.
    #[error("no host")]
    NoHost,
    /// A UDP tracker without a port (BEP 15 has no default port).
    #[error("a UDP tracker needs a port")]
    NoPort,
}

/// Checks a tracker URL: `http`, `https` or `udp` (with a port), with a host.
fn check_tracker_url(url: &str) -> Result<(), CreateError> {
    check_url(
        url,
        "tracker",
        &["http", "https", "udp"],
        "http, https, udp",
    )
}

/// Checks a web seed URL: `http` or `https`, with a host.
fn check_web_seed_url(url: &str) -> Result<(), CreateError> {
    check_url(url, "web seed", &["http", "https"], "http, https")
}

fn check_url(
    text: &str,
    what: &'static str,
    schemes: &[&str],
    allowed: &'static str,
) -> Result<(), CreateError> {
    let bad = |problem| CreateError::BadUrl {
        what,
        url: text.to_string(),
        problem,
    };
    let url = url::Url::parse(text).map_err(|e| bad(UrlProblem::Syntax(e.to_string())))?;
    if !schemes.contains(&url.scheme()) {
        return Err(bad(UrlProblem::Scheme {
            scheme: url.scheme().to_string(),
            allowed,
        }));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad(UrlProblem::NoHost));
    }
    if url.scheme() == "udp" && url.port().is_none() {
        return Err(bad(UrlProblem::NoPort));
    }
    Ok(())
}

/// Builds a v1 `.torrent` from a file or a folder.
///
/// Rules:
/// - **A file** gives a single-file torrent (`info.length`); **a folder**
///   gives a multi-file torrent (`info.files`), even with one file inside.
/// - **Order**: files are sorted by their path components compared as
///   bytes (`a/x` before `a.txt`, since `a` < `a.txt`), the order of BEP
///   52 file trees. mktorrent compares whole path strings instead, so it
///   orders `a.txt` before `a/x`; where no such pair exists the two agree.
/// - **Hidden files** (names starting with `.`) are included, as
///   libtorrent and mktorrent do; [`skip_hidden`](TorrentBuilder::skip_hidden)
///   leaves them (and hidden folders) out.
/// - **Symlinks** to files are followed; symlinks to folders are not (no
///   loops). Other special files are skipped. Empty folders leave no trace.
/// - **Piece length**: given, or [`auto_piece_length`] of the total.
/// - **Output** is canonical bencode: `announce` (first tracker),
///   `announce-list` only with more than one tracker URL, `comment`,
///   `created by`, `creation date` (only when set: without it output is
///   reproducible), `info` (`files`/`length`, `name`, `piece length`,
///   `pieces`, `private` only when set), `url-list` (a string for one web
///   seed, a list for several). This is what libtorrent's `create_torrent`
///   writes with `v1_only` for the same input. No padding files and no
///   BEP 47 `attr`.
///
/// Hashing runs on all cores (or [`threads`](TorrentBuilder::threads)):
/// each thread reads whole pieces with its own file handles and hashes
/// them, so memory is one piece buffer per thread whatever the torrent's size.
///
/// ```
/// use std::sync::atomic::AtomicBool;
/// use rustico_metainfo::TorrentBuilder;
///
/// let dir = std::env::temp_dir().join(format!("rustico-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// std::fs::write(dir.join("hello.txt"), b"hello")?;
/// let torrent = TorrentBuilder::new(dir.join("hello.txt"))
///     .tracker("http://127.0.0.1:6969/announce")?
///     .build(|_progress| {}, &AtomicBool::new(false))?;
/// // A URL no client could announce to fails at once, not at announce time.
/// assert!(TorrentBuilder::new(dir.join("hello.txt")).tracker("not a url").is_err());
/// assert_eq!(torrent.name(), "hello.txt");
/// assert_eq!(torrent.total_length(), 5);
/// // torrent.as_bytes() is the .torrent file to save.
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct TorrentBuilder {
    version: TorrentVersion,
    source: PathBuf,
    trackers: Vec<Vec<String>>,
    web_seeds: Vec<String>,
    comment: Option<String>,
    created_by: Option<String>,
    creation_date: Option<i64>,
    private: bool,
    piece_length: Option<u32>,
    threads: Option<usize>,
    skip_hidden: bool,
}

impl TorrentBuilder {
    /// A builder for the file or folder at `source`.
    pub fn new(source: impl Into<PathBuf>) -> TorrentBuilder {
        TorrentBuilder {
            version: TorrentVersion::V1,
            source: source.into(),
            trackers: Vec::new(),
            web_seeds: Vec::new(),
            comment: None,
            created_by: None,
            creation_date: None,
            private: false,
            piece_length: None,
            threads: None,
            skip_hidden: false,
        }
    }

    /// Adds a tracker in a tier of its own (after the existing tiers).
    ///
    /// The URL must parse (with the `url` crate) and be `http`, `https`
    /// or `udp` (with a port) with a host; otherwise
    /// [`CreateError::BadUrl`], here rather than at announce time.
    pub fn tracker(mut self, url: impl Into<String>) -> Result<TorrentBuilder, CreateError> {
        let url = url.into();
        check_tracker_url(&url)?;
        self.trackers.push(vec![url]);
        Ok(self)
    }

    /// Adds a tier of trackers (BEP 12), tried in order after the earlier
    /// tiers. Each URL is checked as in [`tracker`](TorrentBuilder::tracker).
    pub fn tracker_tier<I, S>(mut self, urls: I) -> Result<TorrentBuilder, CreateError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let tier: Vec<String> = urls.into_iter().map(Into::into).collect();
        for url in &tier {
            check_tracker_url(url)?;
        }
        if !tier.is_empty() {
            self.trackers.push(tier);
        }
        Ok(self)
    }

    /// Adds a BEP 19 web seed. The URL must parse and be `http` or
    /// `https` with a host; otherwise [`CreateError::BadUrl`].
    pub fn web_seed(mut self, url: impl Into<String>) -> Result<TorrentBuilder, CreateError> {
        let url = url.into();
        check_web_seed_url(&url)?;
        self.web_seeds.push(url);
        Ok(self)
    }

    /// Sets `comment`.
    pub fn comment(mut self, comment: impl Into<String>) -> TorrentBuilder {
        self.comment = Some(comment.into());
        self
    }

    /// Sets `created by`.
    pub fn created_by(mut self, creator: impl Into<String>) -> TorrentBuilder {
        self.created_by = Some(creator.into());
        self
    }

    /// Sets `creation date` (seconds since the Unix epoch). Unset by default
    /// so that the same input gives the same bytes.
    pub fn creation_date(mut self, seconds: i64) -> TorrentBuilder {
        self.creation_date = Some(seconds);
        self
    }

    /// Sets the BEP 27 private flag.
    pub fn private(mut self, private: bool) -> TorrentBuilder {
        self.private = private;
        self
    }

    /// Sets the nominal piece length: a power of two from 16 KiB to
    /// [`MAX_PIECE_LENGTH`](crate::MAX_PIECE_LENGTH) (512 MiB). Without
    /// it, [`auto_piece_length`] decides.
    pub fn piece_length(mut self, piece_length: u32) -> TorrentBuilder {
        self.piece_length = Some(piece_length);
        self
    }

    /// Number of hashing threads (default: all cores).
    pub fn threads(mut self, threads: usize) -> TorrentBuilder {
        self.threads = Some(threads.max(1));
        self
    }

    /// Which BitTorrent versions the torrent is for (default
    /// [`TorrentVersion::V1`]; libtorrent 2 creates hybrids by default).
    pub fn version(mut self, version: TorrentVersion) -> TorrentBuilder {
        self.version = version;
        self
    }

    /// Leaves out files and folders whose names start with `.`.
    pub fn skip_hidden(mut self, skip: bool) -> TorrentBuilder {
        self.skip_hidden = skip;
        self
    }

    /// Lists the files, hashes them and returns the torrent
    /// ([`Torrent::as_bytes`] is the file to write).
    ///
    /// `progress` is called on the calling thread as pieces finish (in no
    /// particular order); `cancel`, when set by another thread, stops the
    /// work soon with [`CreateError::Cancelled`].
    pub fn build(
        &self,
        mut progress: impl FnMut(Progress),
        cancel: &AtomicBool,
    ) -> Result<Torrent, CreateError> {
        let io_error = |path: &Path| {
            let path = path.to_path_buf();
            move |source| CreateError::Io { path, source }
        };
        let meta = std::fs::metadata(&self.source).map_err(io_error(&self.source))?;
        let name = file_name(&self.source)?;
        let files = if meta.is_dir() {
            let mut files = Vec::new();
            self.walk(&self.source, &mut Vec::new(), &mut files)?;
            files.sort_by(|a, b| a.components.cmp(&b.components));
            if files.is_empty() {
                return Err(CreateError::NoFiles {
                    path: self.source.clone(),
                });
            }
            files
        } else {
            vec![SourceFile {
                path: self.source.clone(),
                components: Vec::new(),
                length: meta.len(),
                pad: false,
            }]
        };
        let total: u64 = files.iter().map(|f| f.length).sum();
        if total == 0 {
            return Err(CreateError::EmptyContent {
                path: self.source.clone(),
            });
        }
        let piece_length = match self.piece_length {
            Some(p)
                if p.is_power_of_two() && (16 * 1024..=crate::MAX_PIECE_LENGTH).contains(&p) =>
            {
                p
            }
            Some(p) => return Err(CreateError::BadPieceLength(p)),
            None => auto_piece_length(total),
        };
        // v2 and hybrid: every file starts on a piece boundary. The pads
        // are zeros in the hashed stream (a hybrid lists them in `files`).
        let stream = if self.version.has_v2() && meta.is_dir() {
            let mut stream = Vec::with_capacity(files.len() * 2);
            for file in files.iter() {
                stream.push(file.clone());
                let tail = file.length % u64::from(piece_length);
                if tail != 0 {
                    let pad = u64::from(piece_length) - tail;
                    stream.push(SourceFile {
                        path: PathBuf::new(),
                        components: vec![".pad".into(), pad.to_string()],
                        length: pad,
                        pad: true,
                    });
                }
            }
            stream
        } else {
            files.clone()
        };
        let total: u64 = stream.iter().map(|f| f.length).sum();
        let threads = self
            .threads
            .or_else(|| std::thread::available_parallelism().ok().map(usize::from))
            .unwrap_or(1);
        let hashes = hash_pieces(
            &stream,
            total,
            u64::from(piece_length),
            threads,
            self.version,
            &mut progress,
            cancel,
        )?;

        let mut info = OwnedDict::new();
        let mut layers = OwnedDict::new();
        if self.version.has_v2() {
            let tree = file_tree(
                &stream,
                &name,
                meta.is_dir(),
                u64::from(piece_length),
                &hashes,
                &mut layers,
            )
            .map_err(|e| CreateError::Io {
                path: self.source.clone(),
                source: io::Error::other(format!("merkle tree: {e}")),
            })?;
            info.insert(b"file tree".to_vec(), tree);
            info.insert(b"meta version".to_vec(), OwnedValue::Integer(2));
        }
        if self.version.has_v1() {
            if meta.is_dir() {
                let list = stream
                    .iter()
                    .map(|f| {
                        let mut entry = vec![
                            ("length", OwnedValue::Integer(len_i64(f.length))),
                            (
                                "path",
                                OwnedValue::list(
                                    f.components.iter().map(|c| OwnedValue::from(c.as_str())),
                                ),
                            ),
                        ];
                        if f.pad {
                            entry.push(("attr", OwnedValue::from("p")));
                        }
                        OwnedValue::dict(entry)
                    })
                    .collect();
                info.insert(b"files".to_vec(), OwnedValue::List(list));
            } else {
                info.insert(b"length".to_vec(), OwnedValue::Integer(len_i64(total)));
            }
            info.insert(b"pieces".to_vec(), OwnedValue::Bytes(hashes.v1));
        }
        info.insert(b"name".to_vec(), OwnedValue::from(name));
        info.insert(
            b"piece length".to_vec(),
            OwnedValue::Integer(i64::from(piece_length)),
        );
        if self.private {
            info.insert(b"private".to_vec(), OwnedValue::Integer(1));
        }

        let mut root = OwnedDict::new();
        let urls: Vec<&String> = self.trackers.iter().flatten().collect();
        if let Some(first) = urls.first() {
            root.insert(b"announce".to_vec(), OwnedValue::from(first.as_str()));
        }
        if urls.len() > 1 {
            let tiers = self
                .trackers
                .iter()
                .map(|tier| OwnedValue::list(tier.iter().map(|u| OwnedValue::from(u.as_str()))))
                .collect();
            root.insert(b"announce-list".to_vec(), OwnedValue::List(tiers));
        }
        if let Some(comment) = &self.comment {
            root.insert(b"comment".to_vec(), OwnedValue::from(comment.as_str()));
        }
        if let Some(creator) = &self.created_by {
            root.insert(b"created by".to_vec(), OwnedValue::from(creator.as_str()));
        }
        if let Some(date) = self.creation_date {
            root.insert(b"creation date".to_vec(), OwnedValue::Integer(date));
        }
        root.insert(b"info".to_vec(), OwnedValue::Dict(info));
        if !layers.is_empty() {
            root.insert(b"piece layers".to_vec(), OwnedValue::Dict(layers));
        }
        match self.web_seeds.as_slice() {
            [] => {}
            [one] => {
                root.insert(b"url-list".to_vec(), OwnedValue::from(one.as_str()));
            }
            many => {
                root.insert(
                    b"url-list".to_vec(),
                    OwnedValue::list(many.iter().map(|u| OwnedValue::from(u.as_str()))),
                );
            }
        }
        let bytes = encode(&OwnedValue::Dict(root));
        // Our own output must read back; a failure here is a bug in this
        // module, reported as data rather than a panic.
        Torrent::from_bytes(&bytes).map_err(|e| CreateError::Io {
            path: self.source.clone(),
            source: io::Error::other(format!("created torrent does not parse: {e}")),
        })
    }

    fn walk(
        &self,
        dir: &Path,
        prefix: &mut Vec<String>,
        out: &mut Vec<SourceFile>,
    ) -> Result<(), CreateError> {
        let io_error = |path: &Path| {
            let path = path.to_path_buf();
            move |source| CreateError::Io { path, source }
        };
        for entry in std::fs::read_dir(dir).map_err(io_error(dir))? {
            let entry = entry.map_err(io_error(dir))?;
            let path = entry.path();
            let name = file_name(&path)?;
            if self.skip_hidden && name.starts_with('.') {
                continue;
            }
            let link_meta = entry.metadata().map_err(io_error(&path))?;
            if link_meta.is_dir() {
                prefix.push(name);
                self.walk(&path, prefix, out)?;
                prefix.pop();
                continue;
            }
            // `entry.metadata()` does not follow symlinks: follow to files only.
            let meta = if link_meta.file_type().is_symlink() {
                match std::fs::metadata(&path) {
                    Ok(m) if m.is_file() => m,
                    _ => continue,
                }
            } else if link_meta.is_file() {
                link_meta
            } else {
                continue;
            };
            let mut components = prefix.clone();
            components.push(name);
            out.push(SourceFile {
                path,
                components,
                length: meta.len(),
                pad: false,
            });
        }
        Ok(())
    }
}

fn len_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn file_name(path: &Path) -> Result<String, CreateError> {
    let bad = |problem| CreateError::BadName {
        path: path.to_path_buf(),
        problem,
    };
    // `Path::file_name` is `None` for `..` or `/`; canonicalizing gives the real name.
    let owned;
    let name = match path.file_name() {
        Some(n) => n,
        None => {
            owned = std::fs::canonicalize(path).map_err(|source| CreateError::Io {
                path: path.to_path_buf(),
                source,
            })?;
            owned
                .file_name()
                .ok_or(bad(BadNameProblem::Path(PathProblem::Empty)))?
        }
    };
    let name = name.to_str().ok_or(bad(BadNameProblem::NotUtf8))?;
    check_element(name).map_err(|p| bad(BadNameProblem::Path(p)))?;
    Ok(name.to_string())
}

#[derive(Clone)]
struct SourceFile {
    path: PathBuf,
    components: Vec<String>,
    length: u64,
    /// A BEP 47 padding file: zeros, not read from disk.
    pad: bool,
}

/// One piece's hashes.
struct PieceHashes {
    /// SHA-1 of the whole piece, pads included (v1 and hybrid).
    v1: Option<[u8; 20]>,
    /// The piece-layer hash of the file's blocks in the piece (v2 and
    /// hybrid), and for a file of at most one piece its `pieces root`.
    v2: Option<(Hash, Option<Hash>)>,
}

/// A worker's report: a piece's hashes, or why it stopped.
type Report = Result<(u32, PieceHashes), CreateError>;

/// Every piece's hashes, in piece order.
struct AllHashes {
    /// Concatenated SHA-1s (empty for v2-only).
    v1: Vec<u8>,
    /// Per piece: its layer hash and, for a file of at most one piece,
    /// the file's root (zeros for v1-only).
    v2: Vec<(Hash, Option<Hash>)>,
}

/// The BEP 52 `file tree` of the (aligned) stream, filling `layers`
/// with the piece layer of each file of more than one piece.
fn file_tree(
    stream: &[SourceFile],
    name: &str,
    multi_file: bool,
    piece_length: u64,
    hashes: &AllHashes,
    layers: &mut OwnedDict,
) -> Result<OwnedValue, merkle::MerkleError> {
    let mut tree = OwnedDict::new();
    let mut offset = 0u64;
    for file in stream {
        let start = offset;
        offset += file.length;
        if file.pad {
            continue;
        }
        let mut leaf = OwnedDict::new();
        leaf.insert(
            b"length".to_vec(),
            OwnedValue::Integer(len_i64(file.length)),
        );
        if file.length > 0 {
            let first = (start / piece_length) as usize;
            let count = file.length.div_ceil(piece_length) as usize;
            let pieces = hashes.v2.get(first..first + count).unwrap_or_default();
            let root = if count == 1 {
                pieces.first().and_then(|(_, root)| *root)
            } else {
                let layer: Vec<Hash> = pieces.iter().map(|(h, _)| *h).collect();
                let root = merkle::root_from_layer(&layer, piece_length)?;
                layers.insert(root.to_vec(), OwnedValue::Bytes(layer.concat()));
                Some(root)
            };
            // Every piece was hashed (or build failed); a gap is a bug here.
            debug_assert!(root.is_some() && pieces.len() == count);
            let root = root.ok_or(merkle::MerkleError::EmptyLayer)?;
            leaf.insert(b"pieces root".to_vec(), OwnedValue::Bytes(root.to_vec()));
        }
        let mut path: Vec<&str> = if multi_file {
            file.components.iter().map(String::as_str).collect()
        } else {
            vec![name]
        };
        // Walk down (creating folders) to the file's own dictionary.
        let last = path.pop().unwrap_or(name);
        let mut node = &mut tree;
        for element in path {
            let child = node
                .entry(element.as_bytes().to_vec())
                .or_insert_with(|| OwnedValue::Dict(OwnedDict::new()));
            let OwnedValue::Dict(dict) = child else {
                // Source paths come from a folder walk: a name is a file
                // or a folder, never both.
                debug_assert!(false, "a file where a folder is expected");
                return Err(merkle::MerkleError::EmptyLayer);
            };
            node = dict;
        }
        node.insert(
            last.as_bytes().to_vec(),
            OwnedValue::dict([("", OwnedValue::Dict(leaf))]),
        );
    }
    Ok(OwnedValue::Dict(tree))
}

fn hash_pieces(
    files: &[SourceFile],
    total: u64,
    piece_length: u64,
    threads: usize,
    version: TorrentVersion,
    progress: &mut dyn FnMut(Progress),
    cancel: &AtomicBool,
) -> Result<AllHashes, CreateError> {
    let num_pieces =
        u32::try_from(total.div_ceil(piece_length)).map_err(|_| CreateError::TooManyPieces)?;
    let mut hashes = AllHashes {
        v1: vec![
            0u8;
            if version.has_v1() {
                num_pieces as usize * 20
            } else {
                0
            }
        ],
        v2: vec![
            ([0; 32], None);
            if version.has_v2() {
                num_pieces as usize
            } else {
                0
            }
        ],
    };
    if num_pieces == 0 {
        return Ok(hashes);
    }
    let next_piece = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let threads = threads.min(num_pieces as usize).max(1);
    let starts = files
        .iter()
        .scan(0u64, |offset, f| {
            let start = *offset;
            *offset += f.length;
            Some(start)
        })
        .collect();
    let job = Job {
        files,
        starts,
        total,
        piece_length,
        num_pieces,
        version,
        next_piece: &next_piece,
        stop: &stop,
        cancel,
    };
    let mut first_error = None;
    std::thread::scope(|scope| {
        let (sender, receiver) = mpsc::channel::<Report>();
        for _ in 0..threads {
            let sender = sender.clone();
            let job = &job;
            scope.spawn(move || job.run(&sender));
        }
        drop(sender);
        let mut done = Progress {
            bytes_done: 0,
            total_bytes: total,
            pieces_done: 0,
            num_pieces,
        };
        for report in receiver {
            match report {
                // After a cancel, reports already queued are dropped unseen.
                Ok(_) if cancel.load(Ordering::Relaxed) => stop.store(true, Ordering::Relaxed),
                Ok((index, piece)) => {
                    let at = index as usize * 20;
                    if let (Some(hash), Some(slot)) = (piece.v1, hashes.v1.get_mut(at..at + 20)) {
                        slot.copy_from_slice(&hash);
                    }
                    if let (Some(v2), Some(slot)) = (piece.v2, hashes.v2.get_mut(index as usize)) {
                        *slot = v2;
                    }
                    done.pieces_done += 1;
                    done.bytes_done += piece_size(index, piece_length, total);
                    progress(done);
                }
                Err(e) => {
                    stop.store(true, Ordering::Relaxed);
                    first_error.get_or_insert(e);
                }
            }
        }
    });
    if let Some(e) = first_error {
        return Err(e);
    }
    if cancel.load(Ordering::Relaxed) {
        return Err(CreateError::Cancelled);
    }
    Ok(hashes)
}

fn piece_size(index: u32, piece_length: u64, total: u64) -> u64 {
    (total - u64::from(index) * piece_length).min(piece_length)
}

/// What every hashing thread shares.
struct Job<'a> {
    files: &'a [SourceFile],
    /// Offset of each file's first byte in the torrent's byte stream.
    starts: Vec<u64>,
    total: u64,
    piece_length: u64,
    num_pieces: u32,
    version: TorrentVersion,
    next_piece: &'a AtomicU64,
    stop: &'a AtomicBool,
    cancel: &'a AtomicBool,
}

impl Job<'_> {
    /// Claims pieces one at a time until none are left, reading each with
    /// this thread's own buffer and file handle.
    fn run(&self, sender: &mpsc::Sender<Report>) {
        // A small torrent with big pieces needs no more than its total.
        let mut buffer = vec![0u8; self.piece_length.min(self.total) as usize];
        let mut open: Option<(usize, File)> = None;
        loop {
            if self.stop.load(Ordering::Relaxed) || self.cancel.load(Ordering::Relaxed) {
                return;
            }
            let index = self.next_piece.fetch_add(1, Ordering::Relaxed);
            if index >= u64::from(self.num_pieces) {
                return;
            }
            let index = index as u32;
            let report = self
                .read_piece(index, &mut buffer, &mut open)
                .map(|len| (index, self.hash_piece(index, &buffer[..len])));
            let failed = report.is_err();
            if sender.send(report).is_err() || failed {
                return;
            }
        }
    }

    fn hash_piece(&self, index: u32, piece: &[u8]) -> PieceHashes {
        let v1 = self.version.has_v1().then(|| Sha1::digest(piece).into());
        let v2 = self.version.has_v2().then(|| {
            // Files start on piece boundaries: the piece is the bytes of
            // the file holding its first byte, then padding.
            let start = u64::from(index) * self.piece_length;
            let holder = (0..self.files.len())
                .rev()
                .find(|&i| self.starts[i] <= start && self.files[i].length > 0);
            let (data_len, small) = match holder.and_then(|i| Some((self.files.get(i)?, i))) {
                Some((file, i)) if !file.pad => {
                    let end = self.starts[i] + file.length;
                    let len = (end - start).min(piece.len() as u64) as usize;
                    (len, file.length <= self.piece_length)
                }
                _ => (0, false),
            };
            let leaves = merkle::block_hashes(&piece[..data_len]);
            let per_piece = (self.piece_length as usize / merkle::BLOCK_LEN).max(1);
            let layer = merkle::root_padded(&leaves, per_piece, [0; 32]);
            (layer, small.then(|| merkle::root_of_leaves(&leaves)))
        });
        PieceHashes { v1, v2 }
    }

    fn read_piece(
        &self,
        index: u32,
        buffer: &mut [u8],
        open: &mut Option<(usize, File)>,
    ) -> Result<usize, CreateError> {
        let start = u64::from(index) * self.piece_length;
        let len = piece_size(index, self.piece_length, self.total) as usize;
        let mut filled = 0usize;
        let mut offset = start;
        // The last file starting at or before `start` holds its first byte
        // (zero-length files at the same offset come before it).
        let mut file_index = self
            .starts
            .partition_point(|&s| s <= start)
            .saturating_sub(1);
        let mut file_start = self.starts.get(file_index).copied().unwrap_or(0);
        while filled < len {
            let Some(file) = self.files.get(file_index) else {
                return Err(CreateError::FileChanged {
                    path: self
                        .files
                        .last()
                        .map(|f| f.path.clone())
                        .unwrap_or_default(),
                });
            };
            let within = offset - file_start;
            let want = ((file.length - within) as usize).min(len - filled);
            if want > 0 && file.pad {
                buffer[filled..filled + want].fill(0);
                filled += want;
                offset += want as u64;
            } else if want > 0 {
                let handle = match open {
                    Some((i, handle)) if *i == file_index => handle,
                    _ => {
                        let handle = File::open(&file.path).map_err(|source| CreateError::Io {
                            path: file.path.clone(),
                            source,
                        })?;
                        &mut open.insert((file_index, handle)).1
                    }
                };
                let target = &mut buffer[filled..filled + want];
                handle
                    .seek(SeekFrom::Start(within))
                    .and_then(|_| handle.read_exact(target))
                    .map_err(|source| {
                        if source.kind() == io::ErrorKind::UnexpectedEof {
                            CreateError::FileChanged {
                                path: file.path.clone(),
                            }
                        } else {
                            CreateError::Io {
                                path: file.path.clone(),
                                source,
                            }
                        }
                    })?;
                filled += want;
                offset += want as u64;
            }
            file_start += file.length;
            file_index += 1;
        }
        Ok(len)
    }
}
