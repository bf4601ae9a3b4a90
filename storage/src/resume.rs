//! The resume file: which pieces were on disk, and the size, modification
//! time and inode of every file when that was recorded.
//!
//! Format (all integers little-endian), version 1:
//!
//! | bytes | field |
//! |---|---|
//! | 8 | magic `RSTRSUM1` |
//! | 20 | layout fingerprint (SHA-1 over file lengths, paths, piece length and hashes) |
//! | 4 | number of pieces `n` |
//! | ceil(n/8) | bitfield, high bit of byte 0 is piece 0 |
//! | 4 | number of files `f` |
//! | 37 × f | per file: exists (1), length (8), mtime seconds (8, signed), mtime nanoseconds (4), device (8), inode (8) |
//! | 20 | SHA-1 of everything before it |
//!
//! The trailing checksum makes a torn or corrupted file a typed error rather
//! than a wrong bitfield. Counts are compared with the layout before any
//! allocation, so a hostile file cannot make us allocate by its numbers.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use sha1::{Digest, Sha1};

use crate::error::{FileError, ResumeError};
use crate::files::FileStamp;
use rustico_pieces::Bitfield;

const MAGIC: &[u8; 8] = b"RSTRSUM1";
const FILE_RECORD_LEN: usize = 1 + 8 + 8 + 4 + 8 + 8;

pub(crate) struct ResumeData {
    pub(crate) have: Bitfield,
    pub(crate) stamps: Vec<FileStamp>,
}

/// Exact length of the resume file for this many pieces and files.
pub(crate) fn encoded_len(num_pieces: usize, num_files: usize) -> usize {
    8 + 20 + 4 + num_pieces.div_ceil(8) + 4 + num_files * FILE_RECORD_LEN + 20
}

pub(crate) fn encode(fingerprint: &[u8; 20], have: &Bitfield, stamps: &[FileStamp]) -> Vec<u8> {
    let mut out = Vec::with_capacity(encoded_len(have.len() as usize, stamps.len()));
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(fingerprint);
    out.extend_from_slice(&have.len().to_le_bytes());
    // The bitfield message's layout: piece 0 is the high bit of byte 0.
    out.extend_from_slice(have.as_wire());
    out.extend_from_slice(&(stamps.len() as u32).to_le_bytes());
    for stamp in stamps {
        out.push(u8::from(stamp.exists));
        out.extend_from_slice(&stamp.len.to_le_bytes());
        out.extend_from_slice(&stamp.mtime_sec.to_le_bytes());
        out.extend_from_slice(&stamp.mtime_nsec.to_le_bytes());
        out.extend_from_slice(&stamp.dev.to_le_bytes());
        out.extend_from_slice(&stamp.ino.to_le_bytes());
    }
    let checksum: [u8; 20] = Sha1::digest(&out).into();
    out.extend_from_slice(&checksum);
    out
}

struct Reader<'a> {
    bytes: &'a [u8],
    offset: usize,
    path: &'a Path,
}

impl<'a> Reader<'a> {
    fn malformed(&self, what: &'static str) -> ResumeError {
        ResumeError::Malformed {
            path: self.path.to_path_buf(),
            offset: self.offset,
            what,
        }
    }

    fn take(&mut self, len: usize, what: &'static str) -> Result<&'a [u8], ResumeError> {
        let end = self
            .offset
            .checked_add(len)
            .ok_or_else(|| self.malformed(what))?;
        let slice = self
            .bytes
            .get(self.offset..end)
            .ok_or_else(|| self.malformed(what))?;
        self.offset = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], ResumeError> {
        let slice = self.take(N, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(slice);
        Ok(out)
    }
}

pub(crate) fn decode(
    bytes: &[u8],
    path: &Path,
    fingerprint: &[u8; 20],
    num_pieces: usize,
    num_files: usize,
) -> Result<ResumeData, ResumeError> {
    let mut r = Reader {
        bytes,
        offset: 0,
        path,
    };
    if r.take(8, "truncated magic")? != MAGIC {
        r.offset = 0;
        return Err(r.malformed("not a rustico resume file (bad magic)"));
    }
    let body_len = bytes.len().saturating_sub(20);
    // `body_len` is at most the length: the split cannot fail.
    let (body, checksum) = bytes.split_at(body_len);
    let sum: [u8; 20] = Sha1::digest(body).into();
    if body_len < 8 || checksum != &sum[..] {
        r.offset = body_len;
        return Err(r.malformed("checksum mismatch (torn or corrupted file)"));
    }
    if &r.array::<20>("truncated fingerprint")? != fingerprint {
        return Err(ResumeError::OtherLayout {
            path: path.to_path_buf(),
        });
    }
    let pieces = u32::from_le_bytes(r.array("truncated piece count")?) as usize;
    if pieces != num_pieces {
        return Err(r.malformed("piece count differs from the layout"));
    }
    let bits = r.take(pieces.div_ceil(8), "truncated bitfield")?;
    // `pieces` equals the layout's piece count, a u32.
    let have = Bitfield::from_wire(bits, pieces as u32)
        .map_err(|_| r.malformed("bitfield has a bit set past the last piece"))?;
    let files = u32::from_le_bytes(r.array("truncated file count")?) as usize;
    if files != num_files {
        return Err(r.malformed("file count differs from the layout"));
    }
    let mut stamps = Vec::with_capacity(files);
    for _ in 0..files {
        let exists = match r.array::<1>("truncated file record")? {
            [0] => false,
            [1] => true,
            _ => return Err(r.malformed("file record flag is not 0 or 1")),
        };
        stamps.push(FileStamp {
            exists,
            len: u64::from_le_bytes(r.array("truncated file record")?),
            mtime_sec: i64::from_le_bytes(r.array("truncated file record")?),
            mtime_nsec: u32::from_le_bytes(r.array("truncated file record")?),
            dev: u64::from_le_bytes(r.array("truncated file record")?),
            ino: u64::from_le_bytes(r.array("truncated file record")?),
        });
    }
    if r.offset != body_len {
        return Err(r.malformed("trailing bytes after the file records"));
    }
    Ok(ResumeData { have, stamps })
}

/// Replaces `path` with `bytes` atomically: write a temporary file beside
/// it, `fsync` it, rename it over `path`, `fsync` the folder. A crash at any
/// point leaves either the old file or the new one, never a torn one.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), FileError> {
    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = folder.join(format!(".{name}.tmp-{}", std::process::id()));
    let io = |e, p: &Path| FileError::from_io(e, p.to_path_buf(), 0);
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&temp)
        .map_err(|e| io(e, &temp))?;
    let written = file
        .write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| io(e, &temp));
    drop(file);
    if let Err(e) = written {
        let _ = fs::remove_file(&temp);
        return Err(e);
    }
    if let Err(e) = fs::rename(&temp, path) {
        let _ = fs::remove_file(&temp);
        return Err(io(e, path));
    }
    File::open(&folder)
        .and_then(|dir| dir.sync_all())
        .map_err(|e| io(e, &folder))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(n: u64) -> FileStamp {
        FileStamp {
            exists: n % 2 == 0,
            len: n,
            mtime_sec: -(n as i64),
            mtime_nsec: n as u32,
            dev: n * 3,
            ino: n * 7,
        }
    }

    #[test]
    fn round_trips_and_rejects_every_single_byte_flip() {
        let have: Bitfield = [
            true, false, true, true, false, false, false, true, true, false,
        ]
        .into_iter()
        .collect();
        let stamps = vec![stamp(1), stamp(2), stamp(3)];
        let bytes = encode(&[7; 20], &have, &stamps);
        let path = Path::new("r");
        assert_eq!(bytes.len(), encoded_len(10, 3));
        let back = decode(&bytes, path, &[7; 20], 10, 3).unwrap();
        assert_eq!(back.have, have);
        assert_eq!(back.stamps, stamps);
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x10;
            assert!(decode(&bad, path, &[7; 20], 10, 3).is_err(), "flip at {i}");
        }
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut], path, &[7; 20], 10, 3).is_err());
        }
        assert!(matches!(
            decode(&bytes, path, &[8; 20], 10, 3),
            Err(ResumeError::OtherLayout { .. })
        ));
        assert!(decode(&bytes, path, &[7; 20], 11, 3).is_err());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            let _ = decode(&bytes, Path::new("r"), &[0; 20], 3, 1);
        }
    }
}
