//! Open files: lazily opened, cached with a bound, positional I/O.
//!
//! One mutex guards the table of open handles; it is held only to look a
//! handle up (or to open one). Reads and writes use `read_at`/`write_at` on a
//! shared `Arc<File>` outside the lock, so threads never race on a seek
//! position and never wait for each other's I/O.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::error::FileError;
use crate::layout::{FileEntry, Layout};

/// How files are given their length when first created for writing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Allocation {
    /// Set the length only (`set_len`): a sparse file, disk blocks are taken
    /// as pieces arrive. Fast to create; "disk full" can appear mid-download.
    #[default]
    Sparse,
    /// Write zeros over the whole file when it is created, so the space is
    /// taken up front and "disk full" shows on the first write to the file.
    /// (Portable std-only code: there is no `fallocate` without `unsafe`/libc.)
    Preallocate,
}

/// Identity of a file on disk: device, inode and birth time. Inode numbers
/// are reused as soon as a file is deleted, so a file deleted and created
/// again often gets the same one; its birth time (where the file system
/// records one) tells them apart.
type Identity = (u64, u64, Option<std::time::Duration>);

fn identity_of(meta: &fs::Metadata) -> Identity {
    let born = meta
        .created()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
    (meta.dev(), meta.ino(), born)
}

struct OpenFile {
    file: Arc<File>,
    writable: bool,
    last_used: u64,
}

struct Table {
    open: HashMap<usize, OpenFile>,
    /// The inode each file had when this storage first opened it; a
    /// different one later means the file was replaced under us.
    identity: Vec<Option<Identity>>,
    /// Whether the file has been given its length (created for writing).
    prepared: Vec<bool>,
    tick: u64,
}

pub(crate) struct Files {
    root: PathBuf,
    /// The layout's files (shared, not copied): paths below `root`.
    files: Arc<[FileEntry]>,
    lengths: Vec<u64>,
    allocation: Allocation,
    max_open: usize,
    table: Mutex<Table>,
    dirty: Vec<AtomicBool>,
}

impl Files {
    pub(crate) fn new(
        root: PathBuf,
        layout: &Layout,
        allocation: Allocation,
        max_open: usize,
    ) -> Files {
        let count = layout.files().len();
        Files {
            root,
            files: layout.shared_files(),
            lengths: layout.files().iter().map(|f| f.length).collect(),
            allocation,
            max_open: max_open.max(1),
            table: Mutex::new(Table {
                open: HashMap::new(),
                identity: vec![None; count],
                prepared: vec![false; count],
                tick: 0,
            }),
            dirty: (0..count).map(|_| AtomicBool::new(false)).collect(),
        }
    }

    pub(crate) fn path(&self, file: usize) -> PathBuf {
        match self.files.get(file) {
            Some(entry) => self.root.join(entry.relative_path()),
            None => self.root.clone(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        // A panic while holding the lock leaves the table consistent (every
        // mutation is a single insert/remove), so a poisoned lock is usable.
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A handle to `file`, opened for writing (created, with its folders and
    /// length) when `write` is true, else opened without creating anything.
    pub(crate) fn handle(&self, file: usize, write: bool) -> Result<Arc<File>, FileError> {
        if file >= self.files.len() {
            debug_assert!(false, "file {file} of {}", self.files.len());
            return Err(FileError::Internal {
                path: self.root.clone(),
                offset: 0,
                what: "a file index outside the layout",
            });
        }
        let mut table = self.lock();
        table.tick += 1;
        let tick = table.tick;
        if let Some(entry) = table.open.get_mut(&file) {
            if entry.writable || !write {
                entry.last_used = tick;
                return Ok(Arc::clone(&entry.file));
            }
        }
        let path = self.path(file);
        self.check_no_links(file)?;
        let (handle, writable) = if write {
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent).map_err(|e| FileError::from_io(e, path.clone(), 0))?;
            }
            let handle = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(|e| FileError::from_io(e, path.clone(), 0))?;
            (handle, true)
        } else {
            match OpenOptions::new().read(true).write(true).open(&path) {
                Ok(handle) => (handle, true),
                Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                    // Seeding from a read-only folder is legitimate.
                    let handle =
                        File::open(&path).map_err(|e| FileError::from_io(e, path.clone(), 0))?;
                    (handle, false)
                }
                Err(e) => return Err(FileError::from_io(e, path, 0)),
            }
        };
        let meta = handle
            .metadata()
            .map_err(|e| FileError::from_io(e, path.clone(), 0))?;
        if !meta.is_file() {
            return Err(FileError::NotRegular { path });
        }
        let identity = identity_of(&meta);
        let known = table.identity.get(file).copied().flatten();
        match known {
            Some(seen) if seen != identity => return Err(FileError::Replaced { path }),
            _ => {
                if let Some(slot) = table.identity.get_mut(file) {
                    *slot = Some(identity);
                }
            }
        }
        if write && !table.prepared.get(file).copied().unwrap_or(true) {
            let want = self.lengths.get(file).copied().unwrap_or(0);
            if meta.len() < want {
                self.allocate(&handle, &path, meta.len(), want)?;
            }
            if let Some(slot) = table.prepared.get_mut(file) {
                *slot = true;
            }
        }
        // A read-only handle being upgraded is replaced, not counted twice.
        table.open.remove(&file);
        if table.open.len() >= self.max_open {
            let oldest = table
                .open
                .iter()
                .min_by_key(|(_, entry)| entry.last_used)
                .map(|(&index, _)| index);
            if let Some(index) = oldest {
                table.open.remove(&index);
            }
        }
        let handle = Arc::new(handle);
        table.open.insert(
            file,
            OpenFile {
                file: Arc::clone(&handle),
                writable,
                last_used: tick,
            },
        );
        Ok(handle)
    }

    fn allocate(&self, handle: &File, path: &Path, from: u64, to: u64) -> Result<(), FileError> {
        match self.allocation {
            Allocation::Sparse => handle
                .set_len(to)
                .map_err(|e| FileError::from_io(e, path.to_path_buf(), to)),
            Allocation::Preallocate => {
                const CHUNK: usize = 1 << 20;
                let zeros = vec![0u8; CHUNK];
                let mut offset = from;
                while offset < to {
                    let take = (to - offset).min(CHUNK as u64) as usize;
                    // `take` is at most `CHUNK`, the length of `zeros`.
                    let Some(chunk) = zeros.get(..take) else {
                        debug_assert!(false, "{take} zeros of {CHUNK}");
                        return Err(FileError::Internal {
                            path: path.to_path_buf(),
                            offset,
                            what: "a chunk of zeros longer than the buffer",
                        });
                    };
                    write_all_at(handle, path, chunk, offset)?;
                    offset += take as u64;
                }
                Ok(())
            }
        }
    }

    /// Refuses a symbolic link (or other non-regular entry) anywhere on the
    /// path below the download folder: following one could leave the folder.
    fn check_no_links(&self, file: usize) -> Result<(), FileError> {
        let Some(relative) = self.files.get(file).map(FileEntry::relative_path) else {
            return Ok(());
        };
        let mut path = self.root.clone();
        let count = relative.components().count();
        for (index, component) in relative.components().enumerate() {
            path.push(component);
            match fs::symlink_metadata(&path) {
                Ok(meta) => {
                    let last = index + 1 == count;
                    let fine = if last { meta.is_file() } else { meta.is_dir() };
                    if !fine {
                        return Err(FileError::NotRegular { path });
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(FileError::from_io(e, path, 0)),
            }
        }
        Ok(())
    }

    pub(crate) fn mark_dirty(&self, file: usize) {
        if let Some(flag) = self.dirty.get(file) {
            flag.store(true, Ordering::Release);
        }
    }

    /// `fsync`s every file written since the last flush, and checks each is
    /// still the file we opened (not replaced or deleted under us).
    pub(crate) fn flush(&self) -> Result<(), FileError> {
        for (file, flag) in self.dirty.iter().enumerate() {
            if !flag.swap(false, Ordering::AcqRel) {
                continue;
            }
            let result = self.sync_one(file);
            if result.is_err() {
                flag.store(true, Ordering::Release);
            }
            result?;
        }
        Ok(())
    }

    fn sync_one(&self, file: usize) -> Result<(), FileError> {
        let path = self.path(file);
        // We wrote to this file: if it is gone now, it was deleted under us.
        let handle = self.handle(file, false).map_err(|e| match e {
            FileError::Missing { path } => FileError::Replaced { path },
            other => other,
        })?;
        handle
            .sync_all()
            .map_err(|e| FileError::from_io(e, path.clone(), 0))?;
        let on_disk = fs::symlink_metadata(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => FileError::Replaced { path: path.clone() },
            _ => FileError::from_io(e, path.clone(), 0),
        })?;
        let ours = handle
            .metadata()
            .map_err(|e| FileError::from_io(e, path.clone(), 0))?;
        if (on_disk.dev(), on_disk.ino()) != (ours.dev(), ours.ino()) {
            return Err(FileError::Replaced { path });
        }
        Ok(())
    }
}

/// Reads exactly `buf.len()` bytes at `offset`; a file that ends first is a
/// [`FileError::ShortFile`].
pub(crate) fn read_exact_at(
    file: &File,
    path: &Path,
    mut buf: &mut [u8],
    mut offset: u64,
) -> Result<(), FileError> {
    while !buf.is_empty() {
        match file.read_at(buf, offset) {
            Ok(0) => {
                let len = file.metadata().map(|m| m.len()).unwrap_or(0);
                return Err(FileError::ShortFile {
                    path: path.to_path_buf(),
                    offset,
                    len,
                });
            }
            Ok(n) => {
                // `read_at` reads at most `buf.len()` bytes.
                let Some(rest) = buf.get_mut(n..) else {
                    debug_assert!(false, "read_at returned {n} for a shorter buffer");
                    return Err(FileError::Internal {
                        path: path.to_path_buf(),
                        offset,
                        what: "a read reported more bytes than asked for",
                    });
                };
                buf = rest;
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(FileError::from_io(e, path.to_path_buf(), offset)),
        }
    }
    Ok(())
}

/// Writes all of `buf` at `offset`.
pub(crate) fn write_all_at(
    file: &File,
    path: &Path,
    buf: &[u8],
    offset: u64,
) -> Result<(), FileError> {
    write_all_vectored_at(file, path, vec![buf], offset)
}

/// Most slices one `pwritev` takes (Linux's `IOV_MAX`).
const MAX_SLICES: usize = 1024;

/// Writes all of `bufs`, one after the other, from `offset`: one
/// `pwritev` for a whole piece kept as its blocks, where `write_at` would
/// make a system call per block.
pub(crate) fn write_all_vectored_at(
    file: &File,
    path: &Path,
    mut bufs: Vec<&[u8]>,
    mut offset: u64,
) -> Result<(), FileError> {
    let mut first = 0;
    loop {
        while bufs.get(first).is_some_and(|b| b.is_empty()) {
            first += 1;
        }
        let rest = bufs.get(first..).unwrap_or_default();
        if rest.is_empty() {
            return Ok(());
        }
        let slices: Vec<io::IoSlice<'_>> = rest
            .iter()
            .take(MAX_SLICES)
            .map(|b| io::IoSlice::new(b))
            .collect();
        match rustix::io::pwritev(file, &slices, offset) {
            Ok(0) => {
                return Err(FileError::from_io(
                    io::Error::from(io::ErrorKind::WriteZero),
                    path.to_path_buf(),
                    offset,
                ))
            }
            Ok(written) => {
                offset += written as u64;
                let mut left = written;
                while left > 0 {
                    // `pwritev` writes at most the slices' total.
                    let Some(buf) = bufs.get_mut(first) else {
                        debug_assert!(false, "pwritev returned {written}, more than given");
                        return Err(FileError::Internal {
                            path: path.to_path_buf(),
                            offset,
                            what: "a write reported more bytes than given",
                        });
                    };
                    let whole: &[u8] = buf;
                    if left >= whole.len() {
                        left -= whole.len();
                        first += 1;
                    } else {
                        *buf = whole.get(left..).unwrap_or_default();
                        left = 0;
                    }
                }
            }
            Err(e) if e == rustix::io::Errno::INTR => {}
            Err(e) => return Err(FileError::from_io(e.into(), path.to_path_buf(), offset)),
        }
    }
}

/// A file's size, modification time and identity, as a resume file records them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileStamp {
    pub(crate) exists: bool,
    pub(crate) len: u64,
    pub(crate) mtime_sec: i64,
    pub(crate) mtime_nsec: u32,
    pub(crate) dev: u64,
    pub(crate) ino: u64,
}

impl FileStamp {
    pub(crate) const MISSING: FileStamp = FileStamp {
        exists: false,
        len: 0,
        mtime_sec: 0,
        mtime_nsec: 0,
        dev: 0,
        ino: 0,
    };

    pub(crate) fn of(path: &Path) -> Result<FileStamp, FileError> {
        match fs::symlink_metadata(path) {
            Ok(meta) if meta.is_file() => Ok(FileStamp {
                exists: true,
                len: meta.len(),
                mtime_sec: meta.mtime(),
                mtime_nsec: u32::try_from(meta.mtime_nsec()).unwrap_or(0),
                dev: meta.dev(),
                ino: meta.ino(),
            }),
            // A folder or link where a file should be matches nothing.
            Ok(_) => Ok(FileStamp {
                len: u64::MAX,
                ..FileStamp::MISSING
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(FileStamp::MISSING),
            Err(e) => Err(FileError::from_io(e, path.to_path_buf(), 0)),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// More slices than one `pwritev` takes, empty ones among them, land
    /// in order at the offset.
    #[test]
    fn a_vectored_write_writes_every_slice_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let file = File::options()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        let chunks: Vec<Vec<u8>> = (0..3000u32)
            .map(|i| vec![(i % 251) as u8; (i % 5) as usize])
            .collect();
        let bufs: Vec<&[u8]> = chunks.iter().map(Vec::as_slice).collect();
        write_all_vectored_at(&file, &path, bufs, 7).unwrap();
        let mut expected = vec![0u8; 7];
        expected.extend(chunks.concat());
        assert_eq!(fs::read(&path).unwrap(), expected);
    }
}
