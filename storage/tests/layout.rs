//! Layout edge cases (one file, many files, zero-length files, pieces over
//! three files, a short last piece) written and read through `Storage`, and
//! hostile layouts refused with typed errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::AtomicBool;

use common::{disk_bytes, layout_over, no_progress, piece_of, small_options, write_pieces};
use proptest::prelude::*;
use rustico_storage::{FileEntry, Layout, LayoutError, Options, Storage, MAX_PIECE_LENGTH};

/// Writes every piece, then checks the files on disk, every block read back,
/// every zero-length file existing, and a recheck finding all pieces.
fn round_trip(lengths: &[u64], piece_length: u64) {
    let (layout, data) = layout_over(lengths, piece_length, lengths.len() as u64);
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(dir.path(), layout.clone(), small_options()).unwrap();
    write_pieces(&storage, &data, |_| true);
    assert_eq!(disk_bytes(&storage), data, "layout {lengths:?}");
    for (file, entry) in layout.files().iter().enumerate() {
        let meta = std::fs::metadata(storage.file_path(file)).unwrap();
        assert_eq!(meta.len(), entry.length);
    }
    for piece in 0..layout.num_pieces() {
        let expected = piece_of(&layout, &data, piece);
        assert_eq!(storage.read_piece(piece).unwrap(), expected);
        let mut blocks = Vec::new();
        let len = expected.len() as u32;
        let mut offset = 0;
        while offset < len {
            let take = 3.min(len - offset);
            storage
                .read_block(piece, offset, take, &mut blocks)
                .unwrap();
            offset += take;
        }
        assert_eq!(blocks, expected);
    }
    let have = storage
        .recheck(&no_progress, &AtomicBool::new(false))
        .unwrap();
    assert!(have.is_complete());
}

#[test]
fn one_file() {
    round_trip(&[100], 16);
}

#[test]
fn one_file_exact_multiple_of_piece_length() {
    round_trip(&[64], 16);
}

#[test]
fn many_files() {
    round_trip(&[7, 30, 1, 16, 9, 40, 2], 16);
}

#[test]
fn zero_length_files_at_start_middle_and_end() {
    round_trip(&[0, 0, 20, 0, 13, 0, 0, 5, 0], 8);
}

#[test]
fn piece_spanning_three_files() {
    let (layout, _) = layout_over(&[6, 3, 0, 5, 10], 16, 1);
    let spans: Vec<_> = layout
        .piece_spans(0)
        .map(|s| (s.file, s.file_offset, s.len))
        .collect();
    assert_eq!(spans, [(0, 0, 6), (1, 0, 3), (3, 0, 5), (4, 0, 2)]);
    let spans: Vec<_> = layout
        .piece_spans(1)
        .map(|s| (s.file, s.file_offset, s.len))
        .collect();
    assert_eq!(spans, [(4, 2, 8)]);
    round_trip(&[6, 3, 0, 5, 10], 16);
}

#[test]
fn last_piece_shorter() {
    let (layout, _) = layout_over(&[10, 11], 8, 2);
    assert_eq!(layout.num_pieces(), 3);
    assert_eq!(layout.piece_size(2), Some(5));
    assert_eq!(layout.piece_size(3), None);
    round_trip(&[10, 11], 8);
}

#[test]
fn piece_larger_than_the_whole_torrent() {
    round_trip(&[3, 4], 1024);
}

fn entry(path: &[&str], length: u64) -> FileEntry {
    FileEntry::new(path.iter().copied(), length)
}

/// Files, piece length, hashes, and the error expected.
type HostileCase = (Vec<FileEntry>, u32, Vec<[u8; 20]>, LayoutError);

#[test]
fn hostile_layouts_are_refused_with_typed_errors() {
    let one = vec![[0u8; 20]];
    let cases: Vec<HostileCase> = vec![
        (
            vec![entry(&["t", "..", "etc"], 1)],
            16,
            one.clone(),
            LayoutError::UnsafeComponent {
                file: 0,
                component: "..".into(),
            },
        ),
        (
            vec![entry(&["ok", "a"], 1), entry(&["/etc/passwd"], 1)],
            16,
            one.clone(),
            // Components are joined with `/`: a `/` inside one starts
            // another, here an empty one (the root).
            LayoutError::UnsafeComponent {
                file: 1,
                component: "".into(),
            },
        ),
        (
            vec![entry(&["a/../../b"], 1)],
            16,
            one.clone(),
            LayoutError::UnsafeComponent {
                file: 0,
                component: "..".into(),
            },
        ),
        (
            vec![entry(&["."], 1)],
            16,
            one.clone(),
            LayoutError::UnsafeComponent {
                file: 0,
                component: ".".into(),
            },
        ),
        (
            vec![entry(&["t", ""], 1)],
            16,
            one.clone(),
            LayoutError::UnsafeComponent {
                file: 0,
                component: "".into(),
            },
        ),
        (
            vec![entry(&["nul\0byte"], 1)],
            16,
            one.clone(),
            LayoutError::UnsafeComponent {
                file: 0,
                component: "nul\0byte".into(),
            },
        ),
        (
            vec![entry(&[], 1)],
            16,
            one.clone(),
            LayoutError::EmptyPath { file: 0 },
        ),
        (
            vec![entry(&[&"x".repeat(256)], 1)],
            16,
            one.clone(),
            LayoutError::ComponentTooLong { file: 0, len: 256 },
        ),
        (
            vec![entry(&["a"], 1), entry(&["a"], 1)],
            16,
            one.clone(),
            LayoutError::PathConflict { file: 1, other: 0 },
        ),
        (
            vec![entry(&["a"], 1), entry(&["a", "b"], 1)],
            16,
            one.clone(),
            LayoutError::PathConflict { file: 1, other: 0 },
        ),
        (
            vec![entry(&["a", "b"], 1), entry(&["a"], 1)],
            16,
            one.clone(),
            LayoutError::PathConflict { file: 1, other: 0 },
        ),
        (
            vec![entry(&["a"], 1)],
            0,
            one.clone(),
            LayoutError::ZeroPieceLength,
        ),
        (
            vec![entry(&["a"], 1)],
            MAX_PIECE_LENGTH + 1,
            one.clone(),
            LayoutError::PieceLengthTooLong(MAX_PIECE_LENGTH + 1),
        ),
        (
            vec![entry(&["a"], u64::MAX), entry(&["b"], 2)],
            16,
            one.clone(),
            LayoutError::TotalTooLong { file: 0 },
        ),
        (
            vec![entry(&["a"], u64::MAX / 2), entry(&["b"], u64::MAX / 2 + 5)],
            16,
            one.clone(),
            LayoutError::TotalTooLong { file: 0 },
        ),
        (
            vec![entry(&["a"], 1 << 40), entry(&["b"], 1 << 60)],
            1 << 20,
            one.clone(),
            LayoutError::TotalTooLong { file: 1 },
        ),
        (
            vec![entry(&["a"], 33)],
            16,
            one.clone(),
            LayoutError::PieceCountMismatch {
                expected: 3,
                actual: 1,
            },
        ),
        (vec![], 16, vec![], LayoutError::Empty),
        (vec![entry(&["a"], 0)], 16, vec![], LayoutError::Empty),
    ];
    for (files, piece_length, hashes, expected) in cases {
        let got = Layout::new(files.clone(), piece_length, hashes);
        assert_eq!(got, Err(expected.clone()), "layout {files:?}");
        // Every error says something readable.
        assert!(!expected.to_string().is_empty());
    }
}

#[test]
fn symlink_inside_the_download_folder_is_not_followed() {
    let outside = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (layout, data) = layout_over(&[10], 16, 3);
    // `t` is the torrent's folder; make it a link to somewhere else.
    std::os::unix::fs::symlink(outside.path(), dir.path().join("t")).unwrap();
    let storage = Storage::open(dir.path(), layout.clone(), Options::default()).unwrap();
    let err = storage
        .write_piece(0, piece_of(&layout, &data, 0))
        .unwrap_err();
    assert!(
        matches!(
            err,
            rustico_storage::WriteError::File {
                source: rustico_storage::FileError::NotRegular { .. },
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// For any file lengths and piece length, each piece's spans tile the
    /// piece exactly, in order, inside the files' bounds.
    #[test]
    fn spans_tile_every_piece(
        lengths in proptest::collection::vec(prop_oneof![Just(0u64), 1u64..50], 1..12),
        piece_length in 1u32..40,
    ) {
        let total: u64 = lengths.iter().sum();
        prop_assume!(total > 0);
        let files = lengths
            .iter()
            .enumerate()
            .map(|(i, &len)| FileEntry::new([format!("f{i}")], len))
            .collect();
        let layout = Layout::new(files, piece_length, vec![[0; 20]; total.div_ceil(u64::from(piece_length)) as usize]).unwrap();
        let mut covered = 0u64;
        for piece in 0..layout.num_pieces() {
            let mut at = 0usize;
            for span in layout.piece_spans(piece) {
                prop_assert_eq!(span.buf_offset, at);
                prop_assert!(span.len > 0);
                let start = layout.file_offset(span.file).unwrap();
                prop_assert_eq!(start + span.file_offset, covered);
                prop_assert!(span.file_offset + span.len as u64 <= lengths[span.file]);
                at += span.len;
                covered += span.len as u64;
            }
            prop_assert_eq!(at, layout.piece_size(piece).unwrap() as usize);
        }
        prop_assert_eq!(covered, total);
    }
}
