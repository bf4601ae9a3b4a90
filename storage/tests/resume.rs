//! Resume: half the pieces written, storage dropped and reopened; the same
//! pieces are found by recheck and by the resume file; a changed file is not
//! trusted by the fast path.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use common::{layout_over, no_progress, piece_of, write_pieces};
use rustico_storage::{Bitfield, Options, RecheckError, ResumeError, Storage};

const LENGTHS: [u64; 5] = [30_000, 0, 50_000, 1, 40_000];
const PIECE: u64 = 4096;

fn half(piece: u32) -> bool {
    piece % 2 == 0 || piece % 7 == 3
}

fn written_half() -> (
    tempfile::TempDir,
    rustico_storage::Layout,
    Vec<u8>,
    Bitfield,
) {
    let (layout, data) = layout_over(&LENGTHS, PIECE, 21);
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(dir.path().join("dl"), layout.clone(), Options::default()).unwrap();
    write_pieces(&storage, &data, half);
    let have: Bitfield = (0..layout.num_pieces()).map(half).collect();
    storage
        .save_resume(&dir.path().join("resume"), &have)
        .unwrap();
    drop(storage);
    (dir, layout, data, have)
}

#[test]
fn reopened_storage_finds_exactly_the_written_pieces_both_ways() {
    let (dir, layout, _data, have) = written_half();
    let storage = Storage::open(dir.path().join("dl"), layout, Options::default()).unwrap();

    let calls = AtomicU32::new(0);
    let last_total = AtomicU32::new(0);
    let progress = |p: rustico_storage::Progress| {
        calls.fetch_add(1, Ordering::Relaxed);
        last_total.store(p.num_pieces, Ordering::Relaxed);
        assert!(p.pieces_done <= p.num_pieces && p.bytes_done <= p.total_bytes);
    };
    let rechecked = storage.recheck(&progress, &AtomicBool::new(false)).unwrap();
    assert_eq!(rechecked, have);
    assert_eq!(calls.load(Ordering::Relaxed), storage.layout().num_pieces());
    assert_eq!(
        last_total.load(Ordering::Relaxed),
        storage.layout().num_pieces()
    );

    let check = storage.load_resume(&dir.path().join("resume")).unwrap();
    assert_eq!(check.have, have);
    assert!(check.changed_files.is_empty());
    assert!(check.needs_recheck.is_clear());

    let resumed = storage
        .resume_or_recheck(
            &dir.path().join("resume"),
            &no_progress,
            &AtomicBool::new(false),
        )
        .unwrap();
    assert_eq!(resumed.have, have);
    assert_eq!(resumed.pieces_rechecked, 0);
    assert!(resumed.resume_unusable.is_none());
}

#[test]
fn a_corrupted_file_is_not_trusted_by_the_fast_path() {
    let (dir, layout, data, have) = written_half();
    // Let the file-system clock move past the resume file's stamps (its
    // granularity is a few milliseconds), as any later edit would.
    std::thread::sleep(Duration::from_millis(30));
    let storage = Storage::open(dir.path().join("dl"), layout.clone(), Options::default()).unwrap();
    // Corrupt one byte in file 2 (bytes 30_000..80_000 of the torrent) that
    // belongs to a written piece.
    let victim_piece = (0..layout.num_pieces())
        .find(|&p| have.get(p) && u64::from(p) * PIECE >= 31_000)
        .unwrap();
    let offset_in_file = u64::from(victim_piece) * PIECE - 30_000 + 5;
    {
        use std::os::unix::fs::FileExt;
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(storage.file_path(2))
            .unwrap();
        let original = data[(30_000 + offset_in_file) as usize];
        file.write_at(&[original ^ 0xff], offset_in_file).unwrap();
    }
    let check = storage.load_resume(&dir.path().join("resume")).unwrap();
    assert_eq!(check.changed_files, [2]);
    let (first, last) = layout.pieces_of_file(2).unwrap();
    for piece in 0..layout.num_pieces() {
        let in_file_2 = (first..=last).contains(&piece);
        assert_eq!(check.needs_recheck.get(piece), in_file_2, "piece {piece}");
        let trusted = have.get(piece) && !in_file_2;
        assert_eq!(check.have.get(piece), trusted, "piece {piece}");
    }
    let resumed = storage
        .resume_or_recheck(
            &dir.path().join("resume"),
            &no_progress,
            &AtomicBool::new(false),
        )
        .unwrap();
    let mut expected = have.clone();
    expected.clear(victim_piece);
    assert_eq!(resumed.have, expected);
    assert_eq!(resumed.pieces_rechecked, last - first + 1);
    // A fresh full recheck agrees.
    assert_eq!(
        storage
            .recheck(&no_progress, &AtomicBool::new(false))
            .unwrap(),
        expected
    );
    // After fixing the piece and saving again, the fast path trusts it all.
    storage
        .write_piece(victim_piece, piece_of(&layout, &data, victim_piece))
        .unwrap();
    storage
        .save_resume(&dir.path().join("resume"), &have)
        .unwrap();
    let check = storage.load_resume(&dir.path().join("resume")).unwrap();
    assert!(check.changed_files.is_empty());
    assert_eq!(check.have, have);
}

#[test]
fn a_replaced_or_deleted_file_is_not_trusted() {
    let (dir, layout, _data, have) = written_half();
    let storage = Storage::open(dir.path().join("dl"), layout.clone(), Options::default()).unwrap();
    // Same bytes, new inode (copied over): not trusted.
    let path = storage.file_path(0);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    std::fs::write(&path, &bytes).unwrap();
    // File 4 deleted: not trusted, its pieces are missing after recheck.
    std::fs::remove_file(storage.file_path(4)).unwrap();
    let check = storage.load_resume(&dir.path().join("resume")).unwrap();
    assert_eq!(check.changed_files, [0, 4]);
    let resumed = storage
        .resume_or_recheck(
            &dir.path().join("resume"),
            &no_progress,
            &AtomicBool::new(false),
        )
        .unwrap();
    let (first4, _) = layout.pieces_of_file(4).unwrap();
    for piece in 0..layout.num_pieces() {
        // The piece straddling files 2 and 4 also loses its bytes in file 4.
        let expected = have.get(piece) && piece < first4;
        assert_eq!(resumed.have.get(piece), expected, "piece {piece}");
    }
}

#[test]
fn an_unusable_resume_file_falls_back_to_a_full_recheck() {
    let (dir, layout, _data, have) = written_half();
    let storage = Storage::open(dir.path().join("dl"), layout.clone(), Options::default()).unwrap();
    let resume = dir.path().join("resume");
    let cancel = AtomicBool::new(false);

    // Missing.
    let resumed = storage
        .resume_or_recheck(&dir.path().join("nope"), &no_progress, &cancel)
        .unwrap();
    assert_eq!(resumed.have, have);
    assert_eq!(resumed.pieces_rechecked, layout.num_pieces());
    assert!(matches!(
        resumed.resume_unusable,
        Some(ResumeError::File(_))
    ));

    // Corrupted: one byte of the bitfield flipped fails the checksum.
    let mut bytes = std::fs::read(&resume).unwrap();
    bytes[40] ^= 0x80;
    std::fs::write(&resume, &bytes).unwrap();
    assert!(matches!(
        storage.load_resume(&resume),
        Err(ResumeError::Malformed { .. })
    ));
    let resumed = storage
        .resume_or_recheck(&resume, &no_progress, &cancel)
        .unwrap();
    assert_eq!(resumed.have, have);

    // Another torrent's resume file.
    let (other_layout, _) = layout_over(&LENGTHS, PIECE, 22);
    let other = Storage::open(dir.path().join("dl"), other_layout, Options::default()).unwrap();
    other.save_resume(&resume, &have).unwrap();
    assert!(matches!(
        storage.load_resume(&resume),
        Err(ResumeError::OtherLayout { .. })
    ));

    // Too long: refused before reading it all.
    std::fs::write(&resume, vec![0u8; 1 << 20]).unwrap();
    assert!(matches!(
        storage.load_resume(&resume),
        Err(ResumeError::Malformed { .. })
    ));

    // Wrong bitfield length when saving.
    assert!(matches!(
        storage.save_resume(&resume, &Bitfield::full(1)),
        Err(ResumeError::BitfieldLength { actual: 1, .. })
    ));
}

#[test]
fn recheck_can_be_cancelled_and_checks_only_what_is_asked() {
    let (dir, layout, _data, have) = written_half();
    let storage = Storage::open(dir.path().join("dl"), layout.clone(), Options::default()).unwrap();
    let cancel = AtomicBool::new(false);
    let cancel_after_three = |p: rustico_storage::Progress| {
        if p.pieces_done >= 3 {
            cancel.store(true, Ordering::Relaxed);
        }
    };
    assert!(matches!(
        storage.recheck(&cancel_after_three, &cancel),
        Err(RecheckError::Cancelled)
    ));
    let mut which = Bitfield::new(layout.num_pieces());
    which.set(0);
    which.set(1);
    let got = storage
        .recheck_pieces(&which, &no_progress, &AtomicBool::new(false))
        .unwrap();
    assert_eq!(got.get(0), have.get(0));
    assert!(got.iter_set().all(|piece| piece < 2));
    assert!(matches!(
        storage.recheck_pieces(&Bitfield::full(1), &no_progress, &AtomicBool::new(false)),
        Err(RecheckError::MaskLength { .. })
    ));
}

#[test]
fn recheck_of_an_empty_folder_creates_nothing() {
    let (layout, _) = layout_over(&LENGTHS, PIECE, 23);
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(dir.path(), layout, Options::default()).unwrap();
    let have = storage
        .recheck(&no_progress, &AtomicBool::new(false))
        .unwrap();
    assert!(have.is_clear());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}
