//! Shared helpers for the storage integration tests: layouts over known data.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use rustico_storage::{FileEntry, Layout, Options, Storage};
use sha1::{Digest, Sha1};

/// A layout of files named `t/f<i>` with the given lengths, over
/// deterministic pseudo-random data, plus that data.
pub fn layout_over(lengths: &[u64], piece_length: u64, seed: u64) -> (Layout, Vec<u8>) {
    let total: u64 = lengths.iter().sum();
    let data = rustico_testkit::pseudo_random_bytes(seed, total as usize);
    let hashes = data
        .chunks(piece_length as usize)
        .map(|piece| Sha1::digest(piece).into())
        .collect();
    let files = lengths
        .iter()
        .enumerate()
        .map(|(i, &len)| FileEntry::new(["t".to_string(), format!("f{i}")], len))
        .collect();
    (
        Layout::new(files, piece_length as u32, hashes).unwrap(),
        data,
    )
}

/// The bytes of piece `index` in `data`.
pub fn piece_of<'a>(layout: &Layout, data: &'a [u8], index: u32) -> &'a [u8] {
    let start = index as usize * layout.piece_length() as usize;
    let len = layout.piece_size(index).unwrap() as usize;
    &data[start..start + len]
}

/// Writes every piece whose `which` entry is true.
pub fn write_pieces(storage: &Storage, data: &[u8], which: impl Fn(u32) -> bool) {
    let layout = storage.layout().clone();
    for piece in 0..layout.num_pieces() {
        if which(piece) {
            storage
                .write_piece(piece, piece_of(&layout, data, piece))
                .unwrap();
        }
    }
}

/// Concatenation of all files on disk, in layout order.
pub fn disk_bytes(storage: &Storage) -> Vec<u8> {
    let mut out = Vec::new();
    for file in 0..storage.layout().files().len() {
        out.extend(std::fs::read(storage.file_path(file)).unwrap());
    }
    out
}

/// Small options: tiny cache, few open files, so eviction paths run.
pub fn small_options() -> Options {
    Options {
        read_cache_bytes: 64 * 1024,
        max_open_files: 2,
        ..Options::default()
    }
}

/// A no-op progress callback.
pub fn no_progress(_: rustico_storage::Progress) {}
