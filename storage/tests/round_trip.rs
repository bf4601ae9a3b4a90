//! Round trips from several threads, the read cache's behaviour, and the
//! typed errors of writes and reads.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use common::{disk_bytes, layout_over, no_progress, piece_of, small_options};
use rustico_storage::{Allocation, FileError, Options, ReadError, Storage, WriteError};

fn assert_send_sync<T: Send + Sync>() {}

#[test]
fn storage_is_send_and_sync() {
    assert_send_sync::<Storage>();
}

/// A deterministic shuffle (Fisher-Yates over splitmix64).
fn shuffled(count: u32, seed: u64) -> Vec<u32> {
    let mut order: Vec<u32> = (0..count).collect();
    let mut state = seed;
    for i in (1..order.len()).rev() {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        order.swap(i, (z % (i as u64 + 1)) as usize);
    }
    order
}

fn threaded_round_trip(allocation: Allocation) {
    let lengths = [
        0, 5000, 1, 70_000, 0, 12_345, 300_000, 7, 0, 65_536, 100_000, 0,
    ];
    let (layout, data) = layout_over(&lengths, 16 * 1024, 42);
    let dir = tempfile::tempdir().unwrap();
    let options = Options {
        allocation,
        max_open_files: 3,
        read_cache_bytes: 4 * 16 * 1024,
        ..Options::default()
    };
    let storage = Arc::new(Storage::open(dir.path(), layout.clone(), options).unwrap());
    let order = shuffled(layout.num_pieces(), 7);
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                while let Some(&piece) = order.get(next.fetch_add(1, Ordering::Relaxed)) {
                    storage
                        .write_piece(piece, piece_of(&layout, &data, piece))
                        .unwrap();
                }
            });
        }
    });
    storage.flush().unwrap();
    assert_eq!(disk_bytes(&storage), data);
    // Read back from several threads too, in another random order, in
    // 16 KiB-or-smaller blocks through the (small) cache.
    let order = shuffled(layout.num_pieces(), 8);
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                while let Some(&piece) = order.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let expected = piece_of(&layout, &data, piece);
                    let mut got = Vec::new();
                    let mut offset = 0u32;
                    while (offset as usize) < expected.len() {
                        let take = 5000.min(expected.len() as u32 - offset);
                        storage.read_block(piece, offset, take, &mut got).unwrap();
                        offset += take;
                    }
                    assert_eq!(got, expected, "piece {piece}");
                }
            });
        }
    });
    let have = storage
        .recheck(&no_progress, &AtomicBool::new(false))
        .unwrap();
    assert!(have.is_complete());
}

#[test]
fn random_order_from_several_threads_sparse() {
    threaded_round_trip(Allocation::Sparse);
}

#[test]
fn random_order_from_several_threads_preallocated() {
    threaded_round_trip(Allocation::Preallocate);
}

#[test]
fn preallocation_gives_files_their_full_length_at_first_write() {
    let (layout, data) = layout_over(&[100, 3000], 64, 5);
    let dir = tempfile::tempdir().unwrap();
    let options = Options {
        allocation: Allocation::Preallocate,
        ..Options::default()
    };
    let storage = Storage::open(dir.path(), layout.clone(), options).unwrap();
    storage.write_piece(2, piece_of(&layout, &data, 2)).unwrap();
    assert_eq!(std::fs::metadata(storage.file_path(1)).unwrap().len(), 3000);
    // Pieces 0 and 1 lie in file 0 and before piece 2's bytes: zero-filled.
    assert!(std::fs::read(storage.file_path(1)).unwrap()[28 + 64..]
        .iter()
        .all(|&b| b == 0));
}

#[test]
fn sixteen_blocks_of_a_piece_cost_one_disk_read() {
    let (layout, data) = layout_over(&[4 * 256 * 1024], 256 * 1024, 9);
    let dir = tempfile::tempdir().unwrap();
    let options = Options {
        read_cache_bytes: 2 * 256 * 1024,
        ..Options::default()
    };
    let storage = Storage::open(dir.path(), layout.clone(), options).unwrap();
    common::write_pieces(&storage, &data, |_| true);
    let mut out = Vec::new();
    for block in 0..16 {
        storage
            .read_block(1, block * 16384, 16384, &mut out)
            .unwrap();
    }
    assert_eq!(out, piece_of(&layout, &data, 1));
    let stats = storage.cache_stats();
    assert_eq!((stats.hits, stats.misses), (15, 1));
    assert_eq!((stats.pieces, stats.bytes), (1, 256 * 1024));

    // Bound: three pieces through a two-piece cache evicts the least
    // recently used one.
    let mut sink = Vec::new();
    storage.read_block(2, 0, 1, &mut sink).unwrap(); // miss
    storage.read_block(1, 0, 1, &mut sink).unwrap(); // hit: 2 is now oldest
    storage.read_block(3, 0, 1, &mut sink).unwrap(); // miss, evicts 2
    storage.read_block(1, 0, 1, &mut sink).unwrap(); // hit
    storage.read_block(2, 0, 1, &mut sink).unwrap(); // miss again
    let stats = storage.cache_stats();
    assert_eq!((stats.hits, stats.misses), (17, 4));
    assert!(stats.bytes <= 2 * 256 * 1024);

    // A write drops the cached copy, so nothing stale is served.
    storage.write_piece(1, piece_of(&layout, &data, 1)).unwrap();
    storage.read_block(1, 0, 1, &mut sink).unwrap();
    assert_eq!(storage.cache_stats().misses, 5);
}

#[test]
fn cache_disabled_still_reads_blocks() {
    let (layout, data) = layout_over(&[1000], 256, 10);
    let dir = tempfile::tempdir().unwrap();
    let options = Options {
        read_cache_bytes: 0,
        ..Options::default()
    };
    let storage = Storage::open(dir.path(), layout.clone(), options).unwrap();
    common::write_pieces(&storage, &data, |_| true);
    let mut out = Vec::new();
    storage.read_block(3, 10, 200, &mut out).unwrap();
    storage.read_block(3, 10, 200, &mut out).unwrap();
    assert_eq!(out[..200], data[768 + 10..768 + 210]);
    assert_eq!(out[200..], data[768 + 10..768 + 210]);
    assert_eq!(storage.cache_stats().hits, 0);
    assert_eq!(storage.cache_stats().misses, 2);
}

/// A read that fails leaves the caller's buffer as it was, with or
/// without the read cache (no zeros standing in for the missing bytes).
#[test]
fn a_failed_block_read_appends_nothing() {
    let (layout, _) = layout_over(&[1000], 256, 13);
    for read_cache_bytes in [0, 64 * 1024] {
        let dir = tempfile::tempdir().unwrap();
        let options = Options {
            read_cache_bytes,
            ..Options::default()
        };
        let storage = Storage::open(dir.path(), layout.clone(), options).unwrap();
        let mut out = b"kept".to_vec();
        let err = storage.read_block(2, 16, 100, &mut out).unwrap_err();
        assert!(
            matches!(&err, ReadError::File { piece: 2, source: FileError::Missing { path } } if path.ends_with("t/f0")),
            "{err:?}"
        );
        assert_eq!(out, b"kept", "cache of {read_cache_bytes} bytes");
    }
}

#[test]
fn bad_piece_is_refused_and_nothing_is_written() {
    let (layout, data) = layout_over(&[50, 50], 32, 11);
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(dir.path(), layout.clone(), small_options()).unwrap();
    let mut bad = piece_of(&layout, &data, 1).to_vec();
    bad[3] ^= 1;
    assert!(!storage.verify_piece(1, &bad));
    assert!(matches!(
        storage.write_piece(1, &bad),
        Err(WriteError::HashMismatch { piece: 1 })
    ));
    assert!(
        !dir.path().join("t").exists(),
        "a refused piece created files"
    );
    assert!(matches!(
        storage.write_piece(1, &bad[..10]),
        Err(WriteError::WrongLength {
            piece: 1,
            expected: 32,
            actual: 10
        })
    ));
    assert!(matches!(
        storage.write_piece(4, &bad),
        Err(WriteError::PieceOutOfRange {
            piece: 4,
            num_pieces: 4
        })
    ));
    assert!(storage.verify_piece(1, piece_of(&layout, &data, 1)));
    assert!(!storage.verify_piece(9, &bad));
}

#[test]
fn reads_out_of_range_and_of_missing_or_short_files_are_typed_errors() {
    let (layout, data) = layout_over(&[40, 60], 32, 12);
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(dir.path(), layout.clone(), small_options()).unwrap();
    let mut out = Vec::new();
    assert!(matches!(
        storage.read_block(3, 0, 5, &mut out),
        Err(ReadError::BlockOutOfRange {
            piece: 3,
            offset: 0,
            len: 5,
            piece_len: 4
        })
    ));
    assert!(matches!(
        storage.read_block(3, u32::MAX, u32::MAX, &mut out),
        Err(ReadError::BlockOutOfRange { .. })
    ));
    assert!(matches!(
        storage.read_piece(4),
        Err(ReadError::PieceOutOfRange { .. })
    ));
    // Nothing written yet: the file is missing, and reading does not create it.
    let err = storage.read_block(0, 0, 4, &mut out).unwrap_err();
    assert!(
        matches!(&err, ReadError::File { piece: 0, source: FileError::Missing { path } } if path.ends_with("t/f0")),
        "{err:?}"
    );
    assert!(!storage.file_path(0).exists());

    common::write_pieces(&storage, &data, |_| true);
    // Someone truncates file 1 to 10 bytes: reading piece 2 (file 1 from
    // byte 24) reports the file, the offset, and the length found.
    std::fs::OpenOptions::new()
        .write(true)
        .open(storage.file_path(1))
        .unwrap()
        .set_len(10)
        .unwrap();
    let err = storage.read_piece(2).unwrap_err();
    match err {
        ReadError::File {
            piece: 2,
            source: FileError::ShortFile { path, offset, len },
        } => {
            assert!(path.ends_with("t/f1"));
            assert_eq!((offset, len), (24, 10));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(err_text_names_file(
        &storage.read_piece(2).unwrap_err().to_string()
    ));
}

fn err_text_names_file(text: &str) -> bool {
    text.contains("t/f1") && text.contains("24")
}

#[test]
fn a_file_replaced_under_us_is_reported_on_flush() {
    let (layout, data) = layout_over(&[64, 64], 32, 13);
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(dir.path(), layout.clone(), small_options()).unwrap();
    storage.write_piece(0, piece_of(&layout, &data, 0)).unwrap();
    let path = storage.file_path(0);
    std::fs::remove_file(&path).unwrap();
    std::fs::write(&path, vec![0u8; 64]).unwrap();
    let err = storage.flush().unwrap_err();
    assert!(
        matches!(&err.0, FileError::Replaced { path: p } if *p == path),
        "{err:?}"
    );
    // Deleted outright: also reported, and the resume file is not written.
    storage.write_piece(2, piece_of(&layout, &data, 2)).unwrap();
    std::fs::remove_file(storage.file_path(1)).unwrap();
    let resume = dir.path().join("resume");
    let err = storage
        .save_resume(&resume, &rustico_storage::Bitfield::full(4))
        .unwrap_err();
    assert!(err.to_string().contains("replaced"), "{err}");
    assert!(!resume.exists());
}

#[test]
fn a_file_deleted_after_its_handle_was_closed_is_reported_on_flush() {
    let (layout, data) = layout_over(&[64, 64, 64], 64, 15);
    let dir = tempfile::tempdir().unwrap();
    let options = Options {
        max_open_files: 1,
        ..Options::default()
    };
    let storage = Storage::open(dir.path(), layout.clone(), options).unwrap();
    storage.write_piece(0, piece_of(&layout, &data, 0)).unwrap();
    // Writing pieces 1 and 2 closes file 0's handle (one open file at most).
    storage.write_piece(1, piece_of(&layout, &data, 1)).unwrap();
    storage.write_piece(2, piece_of(&layout, &data, 2)).unwrap();
    std::fs::remove_file(storage.file_path(0)).unwrap();
    let err = storage.flush().unwrap_err();
    assert!(
        matches!(&err.0, FileError::Replaced { path } if path.ends_with("t/f0")),
        "{err:?}"
    );
    // Recreated by someone else: a different inode, also refused on write.
    std::fs::write(storage.file_path(0), vec![0u8; 64]).unwrap();
    let err = storage
        .write_piece(0, piece_of(&layout, &data, 0))
        .unwrap_err();
    assert!(
        matches!(
            err,
            WriteError::File {
                source: FileError::Replaced { .. },
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn a_folder_where_a_file_should_be_is_refused_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let (layout, data) = layout_over(&[10], 16, 14);
    std::fs::create_dir_all(dir.path().join("t/f0")).unwrap();
    let storage = Storage::open(dir.path(), layout.clone(), Options::default()).unwrap();
    let err = storage
        .write_piece(0, piece_of(&layout, &data, 0))
        .unwrap_err();
    assert!(
        matches!(&err, WriteError::File { source: FileError::NotRegular { path }, .. } if path.ends_with("t/f0")),
        "{err:?}"
    );
}

/// Dirty data is flushed every `writeback_bytes` written, so it never
/// piles up for one long `fsync` at the end; 0 leaves flushes to the
/// caller.
#[test]
fn writes_flush_every_writeback_bytes() {
    let piece = 16 * 1024;
    let (layout, data) = layout_over(&[10 * piece], piece, 3);
    for (mark, expected) in [
        (3 * piece, [1, 2, 0, 1, 2, 0, 1]),
        (0, [1, 2, 3, 4, 5, 6, 7]),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let options = Options {
            writeback_bytes: mark,
            ..Options::default()
        };
        let storage = Storage::open(dir.path(), layout.clone(), options).unwrap();
        let seen: Vec<u64> = (0..7)
            .map(|p| {
                storage.write_piece(p, piece_of(&layout, &data, p)).unwrap();
                storage.unflushed_bytes() / piece
            })
            .collect();
        assert_eq!(seen, expected, "writeback every {mark} bytes");
        storage.flush().unwrap();
        assert_eq!(storage.unflushed_bytes(), 0);
    }
}
