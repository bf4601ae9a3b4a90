//! [`Storage`]: the torrent's pieces on disk.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use rustico_metainfo::merkle;
use rustico_pieces::{Bitfield, PieceData, Progress};
use sha1::{Digest, Sha1};

use crate::cache::PieceCache;
use crate::error::{
    FileError, FlushError, OpenError, ReadError, RecheckError, ResumeError, SpanError, WriteError,
};
use crate::files::{read_exact_at, write_all_vectored_at, Allocation, FileStamp, Files};
use crate::layout::{Layout, PieceBytes};
use crate::resume;

/// How a [`Storage`] behaves. `Options::default()` suits a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Sparse or preallocated files.
    pub allocation: Allocation,
    /// Memory bound of the read cache in bytes (0 disables it). Default 64 MiB.
    pub read_cache_bytes: usize,
    /// At most this many files are kept open at once (least recently used
    /// closed first). Default 128; must be at least 1.
    pub max_open_files: usize,
    /// Threads a recheck uses; 0 means one per core. Default 0.
    pub recheck_threads: usize,
    /// Once this many bytes were written since the last flush, the write
    /// that crosses it flushes (see [`Storage::write_piece`]); 0 leaves
    /// every flush to the caller. Default 32 MiB.
    pub writeback_bytes: u64,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            allocation: Allocation::Sparse,
            read_cache_bytes: 64 << 20,
            max_open_files: 128,
            recheck_threads: 0,
            writeback_bytes: 32 << 20,
        }
    }
}

/// Read-cache counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheStats {
    /// Block reads served from memory.
    pub hits: u64,
    /// Block reads that went to disk.
    pub misses: u64,
    /// Pieces held now.
    pub pieces: usize,
    /// Bytes held now.
    pub bytes: usize,
}

/// What [`Storage::load_resume`] concluded from a resume file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumeCheck {
    /// Pieces the resume file says are on disk, and whose files all match
    /// their recorded size, modification time and inode.
    pub have: Bitfield,
    /// Pieces that touch a file that changed since the resume file was
    /// written: their state is unknown and must be rechecked.
    pub needs_recheck: Bitfield,
    /// Indices of the files that changed.
    pub changed_files: Vec<usize>,
}

/// What [`Storage::resume_or_recheck`] found.
#[derive(Debug)]
pub struct Resumed {
    /// Pieces on disk and valid.
    pub have: Bitfield,
    /// Pieces that were hashed (all of them when the resume file was unusable).
    pub pieces_rechecked: u32,
    /// Why the resume file was not used, if it was not.
    pub resume_unusable: Option<ResumeError>,
}

/// A torrent's pieces on disk. `Send + Sync`: share it in an `Arc` between
/// the threads that write downloaded pieces and those that serve peers.
///
/// See the [crate docs](crate) for an example.
pub struct Storage {
    layout: Layout,
    root: PathBuf,
    files: Files,
    options: Options,
    cache: Mutex<PieceCache>,
    hits: AtomicU64,
    misses: AtomicU64,
    empty_files_created: AtomicBool,
    /// Bytes written since the last flush.
    unflushed: AtomicU64,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage")
            .field("root", &self.root)
            .field("files", &self.layout.files().len())
            .field("pieces", &self.layout.num_pieces())
            .field("options", &self.options)
            .finish()
    }
}

impl Storage {
    /// Opens storage for `layout` under the download folder `root` (created
    /// if missing). No torrent file is created or opened until it is needed.
    pub fn open(
        root: impl Into<PathBuf>,
        layout: Layout,
        options: Options,
    ) -> Result<Storage, OpenError> {
        let root = root.into();
        if options.max_open_files == 0 {
            return Err(OpenError::InvalidOption(
                "max_open_files must be at least 1",
            ));
        }
        std::fs::create_dir_all(&root).map_err(|source| OpenError::Root {
            path: root.clone(),
            source,
        })?;
        let files = Files::new(
            root.clone(),
            &layout,
            options.allocation,
            options.max_open_files,
        );
        Ok(Storage {
            cache: Mutex::new(PieceCache::new(options.read_cache_bytes)),
            layout,
            root,
            files,
            options,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            empty_files_created: AtomicBool::new(false),
            unflushed: AtomicU64::new(0),
        })
    }

    /// The layout this storage was opened with.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The download folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Full path of one of the torrent's files.
    pub fn file_path(&self, file: usize) -> PathBuf {
        self.files.path(file)
    }

    /// Whether `data` is piece `piece`: right length and right hashes
    /// (SHA-1, merkle or both; see [`Layout::verify_piece`]).
    pub fn verify_piece(&self, piece: u32, data: &[u8]) -> bool {
        self.layout.verify_piece(piece, data)
    }

    /// Verifies a complete piece and writes it; refuses with
    /// [`WriteError::HashMismatch`] (writing nothing) when its SHA-1 (v1)
    /// or merkle hash (v2, over the file's bytes; the padding of a v2
    /// piece is never written) differs.
    ///
    /// The data is in the operating system's cache when this returns, not yet
    /// durable: call [`flush`](Self::flush) (or [`save_resume`](Self::save_resume),
    /// which flushes first) before telling anyone it is saved.
    ///
    /// Every [`Options::writeback_bytes`] written, the write that crosses
    /// the mark flushes too, on the caller's thread, so that dirty data
    /// never piles up in the cache for one long `fsync` at the end (1 GiB
    /// took 0.5 s here, after a download of 1.3 s). A failure of that flush
    /// is not this write's: the files stay marked and the next
    /// [`flush`](Self::flush) reports it.
    pub fn write_piece(&self, piece: u32, data: &[u8]) -> Result<(), WriteError> {
        self.write_bytes(piece, &data)
    }

    /// [`write_piece`](Self::write_piece) for a piece kept in the buffers
    /// its blocks arrived in: hashed and written chunk by chunk, never
    /// joined into one buffer.
    pub fn write_piece_data(&self, piece: u32, data: &PieceData) -> Result<(), WriteError> {
        self.write_bytes(piece, data)
    }

    fn write_bytes(&self, piece: u32, data: &dyn PieceBytes) -> Result<(), WriteError> {
        let expected = self.piece_size_for_write(piece)?;
        if data.byte_len() != expected as usize {
            return Err(WriteError::WrongLength {
                piece,
                expected,
                actual: data.byte_len(),
            });
        }
        if !self.layout.verify_bytes(piece, data) {
            return Err(WriteError::HashMismatch { piece });
        }
        let fail = |source| WriteError::File { piece, source };
        if !self.empty_files_created.load(Ordering::Acquire) {
            self.create_empty_files().map_err(fail)?;
        }
        for span in self.layout.piece_spans(piece).filter(|span| !span.padding) {
            let handle = self.files.handle(span.file, true).map_err(fail)?;
            let path = self.files.path(span.file);
            let bufs: Vec<&[u8]> = data.slices(span.buf_offset, span.len).collect();
            // The spans of a piece lie inside its length, which `data` has.
            if bufs.iter().map(|b| b.len()).sum::<usize>() != span.len {
                debug_assert!(false, "a span of piece {piece} lies outside the piece");
                return Err(WriteError::Internal {
                    piece,
                    what: "a span of the piece lies outside the piece",
                });
            }
            let written = write_all_vectored_at(&handle, &path, bufs, span.file_offset);
            // Marked even on failure: part of the span may be in the page cache.
            self.files.mark_dirty(span.file);
            written.map_err(fail)?;
        }
        self.lock_cache().remove(piece);
        self.write_back(data.byte_len() as u64);
        Ok(())
    }

    fn write_back(&self, written: u64) {
        let mark = self.options.writeback_bytes;
        let before = self.unflushed.fetch_add(written, Ordering::AcqRel);
        if mark > 0 && before < mark && before + written >= mark {
            // Errors stay with the files' marks, for the caller's flush.
            let _ = self.flush();
        }
    }

    /// Zero-length files hold no piece bytes, so no write would create
    /// them; they are created with the first piece written.
    fn create_empty_files(&self) -> Result<(), FileError> {
        for (file, entry) in self.layout.files().iter().enumerate() {
            if entry.length == 0 && !entry.padding {
                self.files.handle(file, true)?;
            }
        }
        self.empty_files_created.store(true, Ordering::Release);
        Ok(())
    }

    fn piece_size_for_write(&self, piece: u32) -> Result<u32, WriteError> {
        self.layout
            .piece_size(piece)
            .ok_or(WriteError::PieceOutOfRange {
                piece,
                num_pieces: self.layout.num_pieces(),
            })
    }

    fn piece_size_for_read(&self, piece: u32) -> Result<u32, ReadError> {
        self.layout
            .piece_size(piece)
            .ok_or(ReadError::PieceOutOfRange {
                piece,
                num_pieces: self.layout.num_pieces(),
            })
    }

    /// Reads a whole piece from disk (or from the read cache if it is there;
    /// a piece read this way is not added to the cache).
    pub fn read_piece(&self, piece: u32) -> Result<Vec<u8>, ReadError> {
        let len = self.piece_size_for_read(piece)?;
        if let Some(cached) = self.lock_cache().get(piece) {
            return Ok(cached.to_vec());
        }
        let mut buf = vec![0u8; len as usize];
        self.read_span(piece, 0, &mut buf)
            .map_err(|e| e.read(piece))?;
        Ok(buf)
    }

    /// Appends `len` bytes at `offset` inside `piece` to `out`, through the
    /// read cache: on a miss the whole piece is read once and kept, so the
    /// following blocks of that piece cost no disk read.
    ///
    /// Only pieces the caller knows are complete should be read: the cache
    /// keeps what it read until the piece is written again or evicted.
    pub fn read_block(
        &self,
        piece: u32,
        offset: u32,
        len: u32,
        out: &mut Vec<u8>,
    ) -> Result<(), ReadError> {
        let piece_len = self.piece_size_for_read(piece)?;
        let end = u64::from(offset) + u64::from(len);
        if end > u64::from(piece_len) {
            return Err(ReadError::BlockOutOfRange {
                piece,
                offset,
                len,
                piece_len,
            });
        }
        let range = offset as usize..end as usize;
        // The block lies inside the piece (checked above), and the cache
        // holds whole pieces.
        let outside = || {
            debug_assert!(false, "a cached piece {piece} is shorter than the piece");
            ReadError::Internal {
                piece,
                what: "a cached piece is shorter than the piece",
            }
        };
        let cached = self.lock_cache().get(piece);
        if let Some(data) = cached {
            self.hits.fetch_add(1, Ordering::Relaxed);
            out.extend_from_slice(data.get(range).ok_or_else(outside)?);
            return Ok(());
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        if !self.lock_cache().fits(piece_len as usize) {
            let start = out.len();
            out.resize(start + len as usize, 0);
            let read = match out.get_mut(start..) {
                Some(target) => self.read_span(piece, offset, target),
                None => Err(SpanError::Internal("a resized buffer is shorter")),
            };
            if let Err(e) = read {
                // Nothing of a failed read is left in the caller's buffer.
                out.truncate(start);
                return Err(e.read(piece));
            }
            return Ok(());
        }
        // Two threads missing the same piece at once both read it; the
        // second insert replaces the first. Rare, and cheaper than a lock
        // held across disk I/O.
        let mut whole = self.lock_cache().take_buffer(piece_len as usize);
        self.read_span(piece, 0, &mut whole)
            .map_err(|e| e.read(piece))?;
        out.extend_from_slice(whole.get(range).ok_or_else(outside)?);
        self.lock_cache().insert(piece, Arc::new(whole));
        Ok(())
    }

    /// Read-cache counters.
    pub fn cache_stats(&self) -> CacheStats {
        let cache = self.lock_cache();
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            pieces: cache.len(),
            bytes: cache.used_bytes(),
        }
    }

    fn lock_cache(&self) -> MutexGuard<'_, PieceCache> {
        // Every cache mutation leaves it consistent, so a panic elsewhere
        // while the lock was held does not make it unusable.
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads `buf.len()` bytes from `offset` inside `piece`, file by file.
    fn read_span(&self, piece: u32, offset: u32, buf: &mut [u8]) -> Result<(), SpanError> {
        let start = self.layout.piece_offset(piece) + u64::from(offset);
        for span in self.layout.spans(start, buf.len()) {
            // `spans` cuts `buf.len()` bytes into pieces of `buf`.
            let Some(target) = buf.get_mut(span.buf_offset..span.buf_offset + span.len) else {
                debug_assert!(false, "a span lies outside the buffer it was made for");
                return Err(SpanError::Internal(
                    "a span lies outside the buffer it was made for",
                ));
            };
            if span.padding {
                target.fill(0);
                continue;
            }
            let handle = self.files.handle(span.file, false)?;
            let path = self.files.path(span.file);
            read_exact_at(&handle, &path, target, span.file_offset)?;
        }
        Ok(())
    }

    /// Bytes written since the last flush (the caller's, or the one
    /// [`Options::writeback_bytes`] makes): at most what a crash now could
    /// lose from the cache.
    pub fn unflushed_bytes(&self) -> u64 {
        self.unflushed.load(Ordering::Acquire)
    }

    /// Makes every write so far durable (`fsync` of each file written since
    /// the last flush) and checks no file was replaced under us.
    pub fn flush(&self) -> Result<(), FlushError> {
        self.unflushed.store(0, Ordering::Release);
        self.files.flush().map_err(FlushError)
    }

    /// Hashes every piece, in parallel on all cores (or
    /// [`Options::recheck_threads`]), and returns which are valid. Memory
    /// stays bounded: each thread streams its piece through a 1 MiB buffer.
    /// Missing or short files make their pieces invalid; other I/O errors
    /// stop the recheck. `progress` is called (from worker threads) after
    /// each piece; raising `cancel` stops it with [`RecheckError::Cancelled`].
    pub fn recheck(
        &self,
        progress: &(dyn Fn(Progress) + Sync),
        cancel: &AtomicBool,
    ) -> Result<Bitfield, RecheckError> {
        let all = Bitfield::full(self.layout.num_pieces());
        self.recheck_pieces(&all, progress, cancel)
    }

    /// Like [`recheck`](Self::recheck), hashing only the pieces in
    /// `which`; the others are reported missing.
    pub fn recheck_pieces(
        &self,
        which: &Bitfield,
        progress: &(dyn Fn(Progress) + Sync),
        cancel: &AtomicBool,
    ) -> Result<Bitfield, RecheckError> {
        let num_pieces = self.layout.num_pieces() as usize;
        if which.len() as usize != num_pieces {
            return Err(RecheckError::MaskLength {
                expected: num_pieces,
                actual: which.len() as usize,
            });
        }
        let targets: Vec<u32> = which.iter_set().collect();
        let total = targets.len() as u32;
        let total_bytes: u64 = targets
            .iter()
            .filter_map(|&p| self.layout.piece_size(p))
            .map(u64::from)
            .sum();
        let bytes_done = AtomicU64::new(0);
        let threads = match self.options.recheck_threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
        .min(targets.len())
        .max(1);
        let chunk = (self.layout.piece_length() as usize).min(1 << 20);
        let valid: Vec<AtomicBool> = (0..num_pieces).map(|_| AtomicBool::new(false)).collect();
        let next = AtomicUsize::new(0);
        let checked = AtomicU32::new(0);
        let stop = AtomicBool::new(false);
        let failure: Mutex<Option<RecheckError>> = Mutex::new(None);
        let worker = || {
            let mut buf = vec![0u8; chunk];
            loop {
                if cancel.load(Ordering::Relaxed) || stop.load(Ordering::Relaxed) {
                    return;
                }
                let Some(&piece) = targets.get(next.fetch_add(1, Ordering::Relaxed)) else {
                    return;
                };
                let failed = match self.hash_matches(piece, &mut buf) {
                    Ok(ok) => {
                        // `which` has one bit per piece (checked above).
                        match valid.get(piece as usize) {
                            Some(flag) => {
                                flag.store(ok, Ordering::Relaxed);
                                None
                            }
                            None => {
                                debug_assert!(false, "piece {piece} beyond the mask");
                                Some(RecheckError::Internal {
                                    piece,
                                    what: "a piece to check is beyond the torrent",
                                })
                            }
                        }
                    }
                    Err(SpanError::File(source)) if source.is_absent_data() => None,
                    Err(SpanError::File(source)) => Some(RecheckError::File { piece, source }),
                    Err(SpanError::Internal(what)) => Some(RecheckError::Internal { piece, what }),
                };
                if let Some(error) = failed {
                    stop.store(true, Ordering::Relaxed);
                    let mut slot = failure.lock().unwrap_or_else(|e| e.into_inner());
                    slot.get_or_insert(error);
                    return;
                }
                // Only progress figures: every piece of `which` has a size.
                let size = u64::from(self.layout.piece_size(piece).unwrap_or(0));
                let bytes_now = bytes_done.fetch_add(size, Ordering::Relaxed) + size;
                let checked_now = checked.fetch_add(1, Ordering::Relaxed) + 1;
                progress(Progress {
                    pieces_done: checked_now,
                    num_pieces: total,
                    bytes_done: bytes_now,
                    total_bytes,
                });
            }
        };
        std::thread::scope(|scope| {
            for _ in 1..threads {
                scope.spawn(worker);
            }
            worker();
        });
        if let Some(error) = failure.into_inner().unwrap_or_else(|e| e.into_inner()) {
            return Err(error);
        }
        if cancel.load(Ordering::Relaxed) && checked.load(Ordering::Relaxed) < total {
            return Err(RecheckError::Cancelled);
        }
        let mut have = Bitfield::new(self.layout.num_pieces());
        for (piece, flag) in (0..).zip(valid) {
            if flag.into_inner() {
                have.set(piece);
            }
        }
        Ok(have)
    }

    /// Streams a piece from disk through SHA-1 (v1, hybrid) and the 16 KiB
    /// leaf hashes of its file bytes (v2, hybrid) and compares with the
    /// piece's hashes.
    fn hash_matches(&self, piece: u32, buf: &mut [u8]) -> Result<bool, SpanError> {
        let mut v1 = match self.layout.has_v1() {
            true => match self.layout.piece_hash(piece) {
                Some(expected) => Some((Sha1::new(), expected)),
                None => return Ok(false),
            },
            false => None,
        };
        let v2 = self.layout.v2_piece_hash(piece);
        if v1.is_none() && v2.is_none() {
            return Ok(false);
        }
        let covered = v2.map_or(0, |(_, covered)| covered as usize);
        let mut leaves = Vec::new();
        for span in self.layout.piece_spans(piece) {
            if span.padding {
                if let Some((hasher, _)) = v1.as_mut() {
                    hash_zeros(hasher, span.len);
                }
                continue;
            }
            let handle = self.files.handle(span.file, false)?;
            let path = self.files.path(span.file);
            let mut done = 0usize;
            while done < span.len {
                let take = (span.len - done).min(buf.len());
                // `take` is at most `buf.len()`.
                let Some(target) = buf.get_mut(..take) else {
                    debug_assert!(false, "a read longer than its buffer");
                    return Err(SpanError::Internal("a read longer than its buffer"));
                };
                read_exact_at(&handle, &path, target, span.file_offset + done as u64)?;
                if let Some((hasher, _)) = v1.as_mut() {
                    hasher.update(&*target);
                }
                // The v2 bytes are the piece's first `covered` bytes, one
                // file from a piece boundary; `buf` is a whole number of
                // 16 KiB blocks for v2 piece lengths, so blocks never
                // straddle two reads.
                let at = span.buf_offset + done;
                if at < covered {
                    // At most `take` bytes, which `target` holds.
                    let Some(mine) = target.get(..(covered - at).min(take)) else {
                        debug_assert!(false, "v2 bytes beyond the read");
                        return Err(SpanError::Internal("v2 bytes beyond the read"));
                    };
                    leaves.extend(mine.chunks(merkle::BLOCK_LEN).map(merkle::hash_block));
                }
                done += take;
            }
        }
        if let Some((hasher, expected)) = v1 {
            if hasher.finalize().as_slice() != expected {
                return Ok(false);
            }
        }
        Ok(match v2 {
            Some((hash, _)) => hash.matches_leaves(&leaves, self.layout.piece_length()),
            None => true,
        })
    }

    /// Records `have` (which pieces are on disk) in a resume file at `path`,
    /// with each file's size, modification time and inode.
    ///
    /// Durability rule: every write made so far is flushed (`fsync`) before
    /// the resume file is written, and the resume file replaces the old one
    /// atomically (temporary file, `fsync`, rename, `fsync` of the folder).
    /// So after a crash a piece is marked done only if its bytes are on disk.
    pub fn save_resume(&self, path: &Path, have: &Bitfield) -> Result<(), ResumeError> {
        let num_pieces = self.layout.num_pieces() as usize;
        if have.len() as usize != num_pieces {
            return Err(ResumeError::BitfieldLength {
                expected: num_pieces,
                actual: have.len() as usize,
            });
        }
        self.files.flush()?;
        let stamps = self.stamps()?;
        let bytes = resume::encode(&self.layout.fingerprint(), have, &stamps);
        resume::write_atomically(path, &bytes)?;
        Ok(())
    }

    fn stamps(&self) -> Result<Vec<FileStamp>, FileError> {
        self.layout
            .files()
            .iter()
            .enumerate()
            .map(|(file, entry)| {
                if entry.padding {
                    // Never on disk: a stamp of its own, stable across runs.
                    Ok(FileStamp::MISSING)
                } else {
                    FileStamp::of(&self.files.path(file))
                }
            })
            .collect()
    }

    /// Reads a resume file and compares it with the files on disk.
    ///
    /// A file is trusted only if it still has the size, modification time
    /// and inode recorded (or is still missing, as recorded). Pieces touching
    /// only trusted files take their state from the resume file; pieces
    /// touching a changed file are reported in
    /// [`ResumeCheck::needs_recheck`] instead.
    pub fn load_resume(&self, path: &Path) -> Result<ResumeCheck, ResumeError> {
        let num_pieces = self.layout.num_pieces() as usize;
        let expected_len = resume::encoded_len(num_pieces, self.layout.files().len());
        let bytes = read_bounded(path, expected_len)?;
        let saved = resume::decode(
            &bytes,
            path,
            &self.layout.fingerprint(),
            num_pieces,
            self.layout.files().len(),
        )?;
        let now = self.stamps()?;
        let mut changed_files = Vec::new();
        let mut needs_recheck = Bitfield::new(self.layout.num_pieces());
        for file in 0..self.layout.files().len() {
            // Unchanged includes "missing then, missing now": the resume
            // file's bits for its pieces (false) still hold.
            if saved.stamps.get(file) == now.get(file) {
                continue;
            }
            changed_files.push(file);
            if let Some((first, last)) = self.layout.pieces_of_file(file) {
                for piece in first..=last {
                    needs_recheck.set(piece);
                }
            }
        }
        let mut have = saved.have;
        for piece in needs_recheck.iter_set() {
            have.clear(piece);
        }
        Ok(ResumeCheck {
            have,
            needs_recheck,
            changed_files,
        })
    }

    /// Finds which pieces are on disk: from the resume file at `path` when
    /// it is usable (rechecking only pieces of files that changed), else by
    /// a full recheck.
    pub fn resume_or_recheck(
        &self,
        path: &Path,
        progress: &(dyn Fn(Progress) + Sync),
        cancel: &AtomicBool,
    ) -> Result<Resumed, RecheckError> {
        match self.load_resume(path) {
            Ok(check) => {
                let rechecked = self.recheck_pieces(&check.needs_recheck, progress, cancel)?;
                let mut have = check.have;
                for piece in rechecked.iter_set() {
                    have.set(piece);
                }
                Ok(Resumed {
                    have,
                    pieces_rechecked: check.needs_recheck.count(),
                    resume_unusable: None,
                })
            }
            Err(error) => Ok(Resumed {
                have: self.recheck(progress, cancel)?,
                pieces_rechecked: self.layout.num_pieces(),
                resume_unusable: Some(error),
            }),
        }
    }
}

/// Feeds `len` zero bytes (a padding file's) to `hasher`.
fn hash_zeros(hasher: &mut Sha1, len: usize) {
    static ZEROS: [u8; 16 * 1024] = [0; 16 * 1024];
    let mut left = len;
    while left > 0 {
        let take = left.min(ZEROS.len());
        hasher.update(&ZEROS[..take]);
        left -= take;
    }
}

/// Reads a file of at most `limit` bytes; a longer one is malformed (its
/// length is not trusted for an allocation).
fn read_bounded(path: &Path, limit: usize) -> Result<Vec<u8>, ResumeError> {
    use std::io::Read;
    let file =
        std::fs::File::open(path).map_err(|e| FileError::from_io(e, path.to_path_buf(), 0))?;
    let mut bytes = Vec::with_capacity(limit);
    file.take(limit as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| FileError::from_io(e, path.to_path_buf(), 0))?;
    if bytes.len() > limit {
        return Err(ResumeError::Malformed {
            path: path.to_path_buf(),
            offset: limit,
            what: "longer than this layout's resume file",
        });
    }
    Ok(bytes)
}
