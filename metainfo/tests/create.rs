//! The torrent builder on its own: piece hashes checked against a plain
//! in-memory SHA-1 of the concatenated files, file order, the hidden-files
//! and symlink rules, progress, cancel, and its errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use rustico_metainfo::{auto_piece_length, CreateError, Progress, TorrentBuilder};
use sha1::{Digest, Sha1};

fn write(path: &Path, data: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, data).unwrap();
}

#[test]
fn piece_hashes_match_a_serial_hash_of_the_stream() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("set");
    // Sizes chosen so pieces span files and files span pieces.
    let sizes = [0usize, 1, 16383, 16384, 16385, 0, 50_000, 3, 70_001];
    let mut stream = Vec::new();
    for (i, size) in sizes.iter().enumerate() {
        let data = rustico_testkit::pseudo_random_bytes(i as u64, *size);
        write(&root.join(format!("f{i}")), &data);
        stream.extend_from_slice(&data);
    }
    for threads in [1, 2, 3, 8] {
        for piece_length in [16384u32, 32768, 1 << 20] {
            let t = TorrentBuilder::new(&root)
                .piece_length(piece_length)
                .threads(threads)
                .build(|_| {}, &AtomicBool::new(false))
                .unwrap();
            assert_eq!(t.total_length(), stream.len() as u64);
            let expected: Vec<u8> = stream
                .chunks(piece_length as usize)
                .flat_map(|piece| <[u8; 20]>::from(Sha1::digest(piece)))
                .collect();
            assert_eq!(
                t.piece_hashes(),
                expected.as_slice(),
                "{threads} threads, {piece_length}"
            );
            let names: Vec<String> = t.files().iter().map(|f| f.path_string()).collect();
            assert_eq!(
                names,
                (0..sizes.len())
                    .map(|i| format!("f{i}"))
                    .collect::<Vec<_>>()
            );
        }
    }
}

#[test]
fn order_hidden_files_and_symlinks() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("tree");
    for name in [
        "a.txt",
        "a/x",
        "B",
        "b",
        ".hidden/h",
        ".dotfile",
        "sub/.inner",
        "é",
    ] {
        write(&root.join(name), name.as_bytes());
    }
    std::fs::create_dir_all(root.join("empty-dir")).unwrap();
    write(&dir.path().join("outside.bin"), b"outside");
    std::os::unix::fs::symlink(dir.path().join("outside.bin"), root.join("link-to-file")).unwrap();
    std::os::unix::fs::symlink(&root, root.join("link-to-dir")).unwrap();

    let paths = |skip_hidden: bool| -> Vec<String> {
        let t = TorrentBuilder::new(&root)
            .skip_hidden(skip_hidden)
            .build(|_| {}, &AtomicBool::new(false))
            .unwrap();
        // The file list as written: the reader renames `b` (it collides
        // with `B` on case-insensitive file systems, as libtorrent sees it).
        t.files()
            .iter()
            .map(|f| f.original_path().to_string())
            .collect()
    };
    assert_eq!(
        paths(false),
        [
            ".dotfile",
            ".hidden/h",
            "B",
            "a/x",
            "a.txt",
            "b",
            "link-to-file",
            "sub/.inner",
            "é"
        ]
    );
    assert_eq!(paths(true), ["B", "a/x", "a.txt", "b", "link-to-file", "é"]);
    let t = TorrentBuilder::new(&root)
        .build(|_| {}, &AtomicBool::new(false))
        .unwrap();
    assert_eq!(t.files()[5].path_string(), "b.1");
}

#[test]
fn fields_and_automatic_piece_length() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("data.bin");
    write(&file, &rustico_testkit::pseudo_random_bytes(1, 100_000));
    let t = TorrentBuilder::new(&file)
        .tracker_tier(["http://127.0.0.1:1/a", "http://127.0.0.1:2/a"])
        .unwrap()
        .tracker("udp://127.0.0.1:3/a")
        .unwrap()
        .web_seed("http://127.0.0.1:4/")
        .unwrap()
        .comment("hi")
        .created_by("rustico")
        .creation_date(1234)
        .private(true)
        .build(|_| {}, &AtomicBool::new(false))
        .unwrap();
    assert_eq!(t.piece_length(), auto_piece_length(100_000));
    assert_eq!(t.num_pieces(), 7);
    assert_eq!(t.trackers().len(), 2);
    assert_eq!(t.trackers()[0].len(), 2);
    assert_eq!(t.web_seeds(), ["http://127.0.0.1:4/"]);
    assert_eq!(
        (t.comment(), t.created_by(), t.creation_date()),
        (Some("hi"), Some("rustico"), Some(1234))
    );
    assert!(t.is_private() && !t.is_multi_file());
    // Canonical: re-encoding the parse changes nothing.
    let decoded = rustico_bencode::decode_strict(t.as_bytes()).unwrap();
    assert_eq!(rustico_bencode::encode(&decoded), t.as_bytes());
    // Reproducible without a date.
    let a = TorrentBuilder::new(&file)
        .build(|_| {}, &AtomicBool::new(false))
        .unwrap();
    let b = TorrentBuilder::new(&file)
        .threads(1)
        .build(|_| {}, &AtomicBool::new(false))
        .unwrap();
    assert_eq!(a.as_bytes(), b.as_bytes());
    assert!(a.creation_date().is_none());
}

#[test]
fn progress_counts_up_to_the_total_and_cancel_stops() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("big.bin");
    write(&file, &rustico_testkit::pseudo_random_bytes(2, 4 << 20));
    let mut seen: Vec<Progress> = Vec::new();
    let t = TorrentBuilder::new(&file)
        .piece_length(16384)
        .build(|p| seen.push(p), &AtomicBool::new(false))
        .unwrap();
    assert_eq!(seen.len(), t.num_pieces() as usize);
    assert!(seen.windows(2).all(|w| w[0].bytes_done < w[1].bytes_done));
    let last = seen.last().unwrap();
    assert_eq!((last.bytes_done, last.pieces_done), (4 << 20, 256));
    assert_eq!((last.total_bytes, last.num_pieces), (4 << 20, 256));

    // Cancelled from the progress callback, as a Ctrl-C handler would.
    let cancel = AtomicBool::new(false);
    let mut calls = 0;
    let result = TorrentBuilder::new(&file).piece_length(16384).build(
        |_| {
            calls += 1;
            cancel.store(true, Ordering::Relaxed);
        },
        &cancel,
    );
    assert!(matches!(result, Err(CreateError::Cancelled)));
    assert_eq!(calls, 1, "no progress is reported after a cancel");
}

#[test]
fn builder_errors() {
    let dir = tempfile::tempdir().unwrap();
    let none = AtomicBool::new(false);
    let missing = TorrentBuilder::new(dir.path().join("nope")).build(|_| {}, &none);
    assert!(matches!(missing, Err(CreateError::Io { .. })));
    std::fs::create_dir_all(dir.path().join("empty/inner")).unwrap();
    let empty = TorrentBuilder::new(dir.path().join("empty")).build(|_| {}, &none);
    assert!(matches!(empty, Err(CreateError::NoFiles { .. })));
    write(&dir.path().join("f"), b"x");
    for bad in [0, 1000, 8192, 1 << 30, 3 << 20] {
        let r = TorrentBuilder::new(dir.path().join("f"))
            .piece_length(bad)
            .build(|_| {}, &none);
        assert!(matches!(r, Err(CreateError::BadPieceLength(p)) if p == bad));
    }
    write(&dir.path().join("bad/con"), b"x");
    let r = TorrentBuilder::new(dir.path().join("bad")).build(|_| {}, &none);
    assert!(matches!(r, Err(CreateError::BadName { .. })), "{r:?}");
    // Only zero-length files: no data, which readers refuse.
    write(&dir.path().join("zeros/a"), b"");
    let r = TorrentBuilder::new(dir.path().join("zeros")).build(|_| {}, &none);
    assert!(matches!(r, Err(CreateError::EmptyContent { .. })), "{r:?}");
}

#[test]
fn tracker_and_web_seed_urls_fail_early() {
    let b = || TorrentBuilder::new("unused");
    for good in [
        "http://127.0.0.1:6969/announce",
        "https://tracker.invalid/announce?passkey=x",
        "udp://127.0.0.1:6969/announce",
        "udp://[::1]:6969",
    ] {
        assert!(b().tracker(good).is_ok(), "{good}");
    }
    for (bad, problem) in [
        ("not a url", "not a URL"),
        ("", "not a URL"),
        ("ftp://127.0.0.1/announce", "scheme `ftp`"),
        ("udp://127.0.0.1/announce", "needs a port"),
        ("udp:/announce", "no host"),
        ("file:///etc/passwd", "scheme `file`"),
    ] {
        let err = b().tracker(bad).unwrap_err();
        assert!(
            matches!(&err, CreateError::BadUrl { what: "tracker", url, .. } if url == bad),
            "{bad}: {err:?}"
        );
        assert!(err.to_string().contains(problem), "{bad}: {err}");
        assert!(
            b().tracker_tier(["http://127.0.0.1:1/", bad]).is_err(),
            "{bad}"
        );
    }
    assert!(b().web_seed("https://127.0.0.1/files/").is_ok());
    for bad in ["not a url", "udp://127.0.0.1:1/", "ftp://127.0.0.1/"] {
        assert!(
            matches!(
                b().web_seed(bad),
                Err(CreateError::BadUrl {
                    what: "web seed",
                    ..
                })
            ),
            "{bad}"
        );
    }
}
