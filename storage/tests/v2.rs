//! BitTorrent v2 (BEP 52) storage: every file on a piece boundary, pieces
//! checked by SHA-256 merkle roots of 16 KiB blocks against the piece
//! layer (or a small file's `pieces root`), recheck and resume.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::sync::atomic::AtomicBool;

use common::no_progress;
use rustico_metainfo::{merkle, Torrent, TorrentBuilder, TorrentVersion};
use rustico_storage::{
    FileEntry, Layout, LayoutError, Options, PieceData, Storage, V2PieceHash, WriteError,
};
use rustico_testkit::pseudo_random_bytes;

const PIECE: u32 = 64 * 1024;

/// Files that exercise the v2 rules: a file of five pieces with a short
/// last one (its layer needs padding hashes up to eight), a file smaller
/// than a block, an empty file, a file of exactly one piece, a file of
/// exactly two pieces.
fn make_source(dir: &Path) -> std::path::PathBuf {
    let src = dir.join("src/content");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    let write = |name: &str, len: usize, seed| {
        std::fs::write(src.join(name), pseudo_random_bytes(seed, len)).unwrap()
    };
    write("a-five-pieces.bin", 4 * PIECE as usize + 20_000, 1);
    write("b-tiny.txt", 100, 2);
    write("c-empty", 0, 3);
    write("d-one-piece.bin", PIECE as usize, 4);
    write("sub/e-two-pieces.bin", 2 * PIECE as usize, 5);
    src
}

fn torrent(src: &Path, version: TorrentVersion) -> Torrent {
    let built = TorrentBuilder::new(src)
        .piece_length(PIECE)
        .version(version)
        .build(|_| {}, &AtomicBool::new(false))
        .unwrap();
    Torrent::from_bytes(built.as_bytes()).unwrap()
}

/// The piece-indexed byte stream (padding as zeros) of the torrent's files
/// below `root`.
fn stream(t: &Torrent, root: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    for f in t.files() {
        if f.is_padding() {
            out.extend(std::iter::repeat_n(0u8, f.length as usize));
        } else {
            out.extend(std::fs::read(root.join(t.file_path(f))).unwrap());
        }
    }
    out
}

fn piece(stream: &[u8], layout: &Layout, index: u32) -> Vec<u8> {
    let start = index as usize * layout.piece_length() as usize;
    let len = layout.piece_size(index).unwrap() as usize;
    stream[start..start + len].to_vec()
}

/// `data` in chunks of `len` bytes, as a downloaded piece holds it.
fn split(data: &[u8], len: usize) -> PieceData {
    PieceData::from_chunks(data.chunks(len).map(<[u8]>::to_vec).collect())
}

#[test]
fn v2_and_hybrid_write_verify_and_recheck() {
    let dir = tempfile::tempdir().unwrap();
    let src = make_source(dir.path());
    for version in [TorrentVersion::V2, TorrentVersion::Hybrid] {
        let t = torrent(&src, version);
        let layout = Layout::from_torrent(&t).unwrap();
        assert!(layout.has_v2());
        assert_eq!(layout.has_v1(), version == TorrentVersion::Hybrid);
        let bytes = stream(&t, src.parent().unwrap());
        // Every file starts on a piece boundary.
        for (i, f) in layout.files().iter().enumerate() {
            if !f.padding && f.length > 0 {
                assert_eq!(layout.file_offset(i).unwrap() % u64::from(PIECE), 0);
            }
        }

        let out = dir.path().join(format!("out-{version:?}"));
        let storage = Storage::open(&out, layout.clone(), Options::default()).unwrap();
        for index in 0..layout.num_pieces() {
            let mut data = piece(&bytes, &layout, index);
            let (hash, covered) = layout.v2_piece_hash(index).unwrap();
            // A flipped bit in any block is refused, nothing written; for
            // the last piece of a file that is a piece past its end.
            // Chunks as blocks arrive (16 KiB) or at odd places (joined
            // for their leaf hashes) give the same verdicts.
            let chunk = if index % 2 == 0 {
                merkle::BLOCK_LEN
            } else {
                7_001
            };
            for block in (0..covered as usize).step_by(merkle::BLOCK_LEN) {
                data[block] ^= 0x80;
                assert!(
                    matches!(
                        storage.write_piece(index, &data),
                        Err(WriteError::HashMismatch { .. })
                    ),
                    "{version:?} piece {index} block at {block}"
                );
                assert!(!layout.verify_piece_data(index, &split(&data, chunk)));
                data[block] ^= 0x80;
            }
            // A file of at most one piece is checked against its root, a
            // longer file's pieces against the layer.
            let file = t
                .file_index_at(u64::from(index) * u64::from(PIECE))
                .unwrap();
            let small = t.files()[file].length <= u64::from(PIECE);
            assert_eq!(matches!(hash, V2PieceHash::Root(_)), small, "piece {index}");
            storage
                .write_piece_data(index, &split(&data, chunk))
                .unwrap();
        }
        // The files are the source's, byte for byte; pads never on disk.
        for f in t.files().iter().filter(|f| !f.is_padding()) {
            assert_eq!(
                std::fs::read(out.join(t.file_path(f))).unwrap(),
                std::fs::read(src.parent().unwrap().join(t.file_path(f))).unwrap(),
                "{}",
                f.path_string()
            );
        }
        assert!(!out.join("content/.pad").exists());

        let have = storage
            .recheck(&no_progress, &AtomicBool::new(false))
            .unwrap();
        assert!(have.is_complete(), "{version:?}");

        // One changed byte in the five-piece file's fourth piece: only
        // that piece fails the recheck.
        let path = out.join("content/a-five-pieces.bin");
        let mut data = std::fs::read(&path).unwrap();
        data[3 * PIECE as usize + 5] ^= 1;
        std::fs::write(&path, &data).unwrap();
        let have = storage
            .recheck(&no_progress, &AtomicBool::new(false))
            .unwrap();
        assert_eq!(have.iter_set().count() as u32, layout.num_pieces() - 1);
        assert!(!have.get(3));

        // Resume: saved, loaded, and a changed file sends its pieces to a recheck.
        let resume = out.join("resume");
        storage.save_resume(&resume, &have).unwrap();
        let check = storage.load_resume(&resume).unwrap();
        assert_eq!(check.have, have);
        assert!(check.changed_files.is_empty());
        let resumed = storage
            .resume_or_recheck(&resume, &no_progress, &AtomicBool::new(false))
            .unwrap();
        assert_eq!(resumed.have, have);
        assert_eq!(resumed.pieces_rechecked, 0);
    }
}

#[test]
fn a_hybrid_piece_must_pass_both_hashes() {
    // Right SHA-1, wrong merkle hash: refused; and the other way round.
    let data = pseudo_random_bytes(11, 2 * PIECE as usize);
    let files = vec![FileEntry::new(["h.bin"], data.len() as u64)];
    let sha1 = |p: &[u8]| -> [u8; 20] {
        use sha1::Digest;
        sha1::Sha1::digest(p).into()
    };
    let good_v1: Vec<[u8; 20]> = data.chunks(PIECE as usize).map(sha1).collect();
    let good_v2: Vec<V2PieceHash> = data
        .chunks(PIECE as usize)
        .map(|p| V2PieceHash::Layer(merkle::piece_hash(p, u64::from(PIECE)).unwrap()))
        .collect();
    let mut bad_v2 = good_v2.clone();
    bad_v2[1] = V2PieceHash::Layer([7; 32]);
    let mut bad_v1 = good_v1.clone();
    bad_v1[1] = [7; 20];
    let piece1 = &data[PIECE as usize..];
    let both = |v1: &[[u8; 20]], v2: &[V2PieceHash]| {
        Layout::new(files.clone(), PIECE, v1.to_vec())
            .unwrap()
            .with_v2(v2.to_vec())
            .unwrap()
    };
    assert!(both(&good_v1, &good_v2).verify_piece(1, piece1));
    assert!(!both(&good_v1, &bad_v2).verify_piece(1, piece1));
    assert!(!both(&bad_v1, &good_v2).verify_piece(1, piece1));
    assert!(both(&good_v1, &bad_v2).verify_piece(0, &data[..PIECE as usize]));
}

#[test]
fn layer_padding_hashes_and_roots() {
    // Five pieces: the layer is padded with three pad hashes (of a
    // 64 KiB subtree of zero leaves) up to eight before the root.
    let data = pseudo_random_bytes(9, 4 * PIECE as usize + 20_000);
    let leaves = merkle::block_hashes(&data);
    let layer = merkle::piece_layer(&leaves, u64::from(PIECE)).unwrap();
    assert_eq!(layer.len(), 5);
    let pad = merkle::pad_hash(2);
    let mut padded = layer.clone();
    padded.extend([pad; 3]);
    let level1: Vec<_> = padded
        .chunks(2)
        .map(|p| merkle::hash_pair(&p[0], &p[1]))
        .collect();
    let level2: Vec<_> = level1
        .chunks(2)
        .map(|p| merkle::hash_pair(&p[0], &p[1]))
        .collect();
    let root = merkle::hash_pair(&level2[0], &level2[1]);
    assert_eq!(
        merkle::root_from_layer(&layer, u64::from(PIECE)).unwrap(),
        root
    );
    assert_eq!(merkle::root_of_leaves(&leaves), root);
    // The last piece (20,000 bytes: two blocks, the second short) is
    // padded with zero leaves to four, not with hashes of zero blocks.
    let last = &data[4 * PIECE as usize..];
    let zero_block = merkle::hash_block(&[0u8; merkle::BLOCK_LEN]);
    let wrong = merkle::root_padded(
        &[
            merkle::hash_block(&last[..16384]),
            merkle::hash_block(&last[16384..]),
            zero_block,
            zero_block,
        ],
        4,
        [0; 32],
    );
    assert_ne!(layer[4], wrong);
    assert_eq!(
        layer[4],
        merkle::piece_hash(last, u64::from(PIECE)).unwrap()
    );
}

#[test]
fn v2_layouts_are_checked() {
    let hashes = vec![V2PieceHash::Layer([0; 32]); 2];
    assert_eq!(
        Layout::new_v2(
            vec![FileEntry::new(["a"], 2 * 24576)],
            24576,
            hashes.clone()
        ),
        Err(LayoutError::V2PieceLength(24576))
    );
    assert_eq!(
        Layout::new_v2(
            vec![
                FileEntry::new(["t", "a"], 100),
                FileEntry::new(["t", "b"], 16384)
            ],
            16384,
            hashes.clone()
        ),
        Err(LayoutError::V2Misaligned {
            file: 1,
            offset: 100
        })
    );
    assert!(matches!(
        Layout::new_v2(vec![FileEntry::new(["a"], 16384)], 16384, hashes),
        Err(LayoutError::PieceCountMismatch {
            expected: 1,
            actual: 2
        })
    ));

    // A v2-only torrent without its piece layers cannot be verified yet;
    // a hybrid one falls back to SHA-1.
    let dir = tempfile::tempdir().unwrap();
    let src = make_source(dir.path());
    let t = torrent(&src, TorrentVersion::V2);
    let bare = Torrent::from_info_bytes(t.info_bytes()).unwrap();
    assert!(!bare.has_piece_layers());
    assert_eq!(
        Layout::from_torrent(&bare),
        Err(LayoutError::MissingPieceLayer { file: 0 })
    );
    let h = torrent(&src, TorrentVersion::Hybrid);
    let bare = Torrent::from_info_bytes(h.info_bytes()).unwrap();
    let layout = Layout::from_torrent(&bare).unwrap();
    assert!(layout.has_v1() && !layout.has_v2());
    // v1 and v2 layouts of the same files do not share resume files.
    let full = Layout::from_torrent(&h).unwrap();
    let dir2 = tempfile::tempdir().unwrap();
    let a = Storage::open(dir2.path(), layout.clone(), Options::default()).unwrap();
    let b = Storage::open(dir2.path(), full, Options::default()).unwrap();
    let resume = dir2.path().join("r");
    a.save_resume(
        &resume,
        &rustico_storage::Bitfield::new(layout.num_pieces()),
    )
    .unwrap();
    assert!(b.load_resume(&resume).is_err());
}

#[test]
fn libtorrent_v2_torrent_rechecks_complete() {
    if !rustico_testkit::require_libtorrent() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = make_source(dir.path());
    let out = dir.path().join("lt.torrent");
    rustico_testkit::run_python(
        r#"
import os, sys
import libtorrent as lt
fs = lt.file_storage()
lt.add_files(fs, sys.argv[1])
ct = lt.create_torrent(fs, 65536, flags=lt.create_torrent.v2_only)
lt.set_piece_hashes(ct, os.path.dirname(sys.argv[1]))
open(sys.argv[2], "wb").write(lt.bencode(ct.generate()))
"#,
        &[src.to_str().unwrap(), out.to_str().unwrap()],
    )
    .unwrap();
    let t = Torrent::from_file(&out).unwrap();
    let layout = Layout::from_torrent(&t).unwrap();
    assert!(layout.has_v2() && !layout.has_v1());
    let storage = Storage::open(src.parent().unwrap(), layout, Options::default()).unwrap();
    let have = storage
        .recheck(&no_progress, &AtomicBool::new(false))
        .unwrap();
    assert!(have.is_complete());
}
