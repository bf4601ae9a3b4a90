//! BEP 47 padding files: virtual zeros, never on disk, never colliding.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::sync::atomic::AtomicBool;

use common::no_progress;
use rustico_storage::{FileEntry, Layout, LayoutError, Options, PieceData, Storage};
use sha1::{Digest, Sha1};

const PIECE: u32 = 64 * 1024;

/// libtorrent's shape: three files of 100,000 bytes in `album`, each but
/// the last followed by a `.pad/<size>` entry up to the next piece; both
/// pads have the same size, so the same path. Returns the layout and the
/// byte stream (pads as zeros).
fn album() -> (Layout, Vec<u8>) {
    let pad = u64::from(PIECE) * 2 - 100_000;
    let mut files = Vec::new();
    let mut stream = Vec::new();
    for i in 0..3u8 {
        files.push(FileEntry::new(
            ["album".to_string(), format!("{i}.bin")],
            100_000,
        ));
        stream.extend(std::iter::repeat_n(i + 1, 100_000));
        if i < 2 {
            files.push(FileEntry::padding(["album", ".pad", &pad.to_string()], pad));
            stream.extend(std::iter::repeat_n(0, pad as usize));
        }
    }
    let hashes = stream
        .chunks(PIECE as usize)
        .map(|piece| Sha1::digest(piece).into())
        .collect();
    (Layout::new(files, PIECE, hashes).unwrap(), stream)
}

fn tree(root: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            found.push(path.strip_prefix(root).unwrap().display().to_string());
            if path.is_dir() {
                stack.push(path);
            }
        }
    }
    found.sort();
    found
}

#[test]
fn duplicate_padding_paths_are_accepted_and_real_collisions_refused() {
    let (layout, _) = album();
    assert_eq!(layout.files().len(), 5);
    assert_eq!(layout.content_length(), 300_000);
    assert!(layout.total_length() > layout.content_length());

    // A real file colliding with another real file is still refused...
    let hashes = vec![[0; 20]; 1];
    let twice = vec![
        FileEntry::new(["a", "x"], 10),
        FileEntry::new(["a", "x"], 10),
    ];
    assert_eq!(
        Layout::new(twice, PIECE, hashes.clone()),
        Err(LayoutError::PathConflict { file: 1, other: 0 })
    );
    // ...and so is a real file under a real file's path.
    let nested = vec![FileEntry::new(["a"], 10), FileEntry::new(["a", "x"], 10)];
    assert!(matches!(
        Layout::new(nested, PIECE, hashes.clone()),
        Err(LayoutError::PathConflict { .. })
    ));
    // A pad sharing a real file's path, or with an empty path, is fine.
    let shadow = vec![
        FileEntry::new(["a", "x"], 10),
        FileEntry::padding(["a", "x"], 10),
        FileEntry::padding(Vec::<String>::new(), 10),
    ];
    assert!(Layout::new(shadow, PIECE, hashes).is_ok());
}

#[test]
fn padding_is_written_nowhere_and_read_as_zeros() {
    let (layout, stream) = album();
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(dir.path(), layout.clone(), Options::default()).unwrap();
    // Pieces in 16 KiB blocks, as downloaded: the pads inside them are
    // skipped across block boundaries.
    for (piece, data) in (0..).zip(stream.chunks(PIECE as usize)) {
        let blocks = data.chunks(16 * 1024).map(<[u8]>::to_vec).collect();
        storage
            .write_piece_data(piece, &PieceData::from_chunks(blocks))
            .unwrap();
    }
    storage.flush().unwrap();
    assert_eq!(
        tree(dir.path()),
        ["album", "album/0.bin", "album/1.bin", "album/2.bin"]
    );
    for i in 0..3u8 {
        let file = std::fs::read(dir.path().join(format!("album/{i}.bin"))).unwrap();
        assert!(file.len() == 100_000 && file.iter().all(|&b| b == i + 1));
    }
    // Pieces that end in padding read back whole, the pad as zeros.
    for (piece, expected) in (0..).zip(stream.chunks(PIECE as usize)) {
        assert_eq!(
            storage.read_piece(piece).unwrap(),
            expected,
            "piece {piece}"
        );
        let mut block = Vec::new();
        storage
            .read_block(piece, 0, expected.len() as u32, &mut block)
            .unwrap();
        assert_eq!(block, expected);
    }
    let have = storage
        .recheck(&no_progress, &AtomicBool::new(false))
        .unwrap();
    assert!(have.is_complete());
    // A resume round trip keeps it all, and still creates no pad.
    let resume = dir.path().join("r.resume");
    storage.save_resume(&resume, &have).unwrap();
    assert!(storage.load_resume(&resume).unwrap().have.is_complete());
    assert!(!dir.path().join("album/.pad").exists());
}

#[test]
fn recheck_of_original_content_without_pads_is_complete() {
    // The content as its creator had it: three files, no `.pad` anywhere.
    let (layout, stream) = album();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("album")).unwrap();
    for i in 0..3u8 {
        std::fs::write(
            dir.path().join(format!("album/{i}.bin")),
            vec![i + 1; 100_000],
        )
        .unwrap();
    }
    let storage = Storage::open(dir.path(), layout, Options::default()).unwrap();
    let have = storage
        .recheck(&no_progress, &AtomicBool::new(false))
        .unwrap();
    assert_eq!(
        have.count(),
        have.len(),
        "every piece verifies, pads read as zeros"
    );
    let mut block = Vec::new();
    storage.read_block(1, 0, PIECE, &mut block).unwrap();
    assert_eq!(block, &stream[PIECE as usize..2 * PIECE as usize]);
    assert_eq!(
        tree(dir.path()),
        ["album", "album/0.bin", "album/1.bin", "album/2.bin"]
    );
}
