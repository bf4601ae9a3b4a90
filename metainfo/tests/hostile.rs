//! Hostile and malformed `.torrent` files: every one is an error (with the
//! right kind), never a panic; plus the parts of parsing that are about
//! exactness rather than errors (unknown keys, non-canonical info-hash,
//! v2 detection, `from_info_bytes`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use rustico_bencode::{encode, OwnedValue};
use rustico_metainfo::{merkle, Error, Torrent, Warning};
use sha1::{Digest, Sha1};

/// A valid multi-file torrent with every optional key set.
fn valid_multi() -> OwnedValue {
    let file = |len: i64, path: &[&str]| {
        OwnedValue::dict([
            ("length", OwnedValue::from(len)),
            (
                "path",
                OwnedValue::list(path.iter().map(|c| OwnedValue::from(*c))),
            ),
            ("attr", OwnedValue::from("x")),
        ])
    };
    OwnedValue::dict([
        ("announce", OwnedValue::from("http://127.0.0.1:1/announce")),
        (
            "announce-list",
            OwnedValue::list([OwnedValue::list([OwnedValue::from(
                "http://127.0.0.1:1/announce",
            )])]),
        ),
        (
            "url-list",
            OwnedValue::list([OwnedValue::from("http://127.0.0.1:2/")]),
        ),
        ("creation date", OwnedValue::from(1_700_000_000)),
        ("comment", OwnedValue::from("c")),
        ("created by", OwnedValue::from("me")),
        ("encoding", OwnedValue::from("UTF-8")),
        (
            "info",
            OwnedValue::dict([
                ("name", OwnedValue::from("folder")),
                ("piece length", OwnedValue::from(16384)),
                ("pieces", OwnedValue::bytes(vec![9u8; 40])),
                ("private", OwnedValue::from(1)),
                (
                    "files",
                    OwnedValue::list([
                        file(0, &["empty"]),
                        file(20000, &["sub", "a.bin"]),
                        file(100, &["b"]),
                    ]),
                ),
            ]),
        ),
    ])
}

fn valid_single() -> OwnedValue {
    OwnedValue::dict([(
        "info",
        OwnedValue::dict([
            ("name", OwnedValue::from("file.bin")),
            ("name.utf-8", OwnedValue::from("file.bin")),
            ("length", OwnedValue::from(16385)),
            ("piece length", OwnedValue::from(16384)),
            ("pieces", OwnedValue::bytes(vec![1u8; 40])),
            ("meta version", OwnedValue::from(1)),
        ]),
    )])
}

#[derive(Clone, Copy, Debug)]
enum Step {
    Key(&'static str),
    Index(usize),
}
use Step::{Index, Key};

fn at<'a>(value: &'a mut OwnedValue, path: &[Step]) -> &'a mut OwnedValue {
    path.iter().fold(value, |v, step| match (step, v) {
        (Key(k), OwnedValue::Dict(d)) => d.get_mut(k.as_bytes()).unwrap(),
        (Index(i), OwnedValue::List(l)) => &mut l[*i],
        (step, v) => panic!("{step:?} does not apply to {v:?}"),
    })
}

fn remove(value: &mut OwnedValue, path: &[Step]) {
    let (last, parent) = path.split_last().unwrap();
    match (last, at(value, parent)) {
        (Key(k), OwnedValue::Dict(d)) => {
            d.remove(k.as_bytes()).unwrap();
        }
        _ => panic!("cannot remove {last:?}"),
    }
}

fn parse(value: &OwnedValue) -> Result<Torrent, Error> {
    Torrent::from_bytes(&encode(value))
}

#[test]
fn the_valid_bases_parse() {
    let t = parse(&valid_multi()).unwrap();
    assert_eq!(t.files().len(), 3);
    assert_eq!(t.files()[1].offset, 0);
    assert_eq!(t.files()[2].offset, 20000);
    assert!(t.files()[1].is_executable());
    assert_eq!(t.encoding(), Some("UTF-8"));
    assert_eq!(t.creation_date(), Some(1_700_000_000));
    let s = parse(&valid_single()).unwrap();
    assert!(!s.is_multi_file());
    assert!(!s.is_hybrid(), "meta version 1 is not hybrid");
}

#[test]
fn wrong_types_for_every_key_are_errors() {
    // (path, a base where it exists, the types that are right for it)
    let multi: &[(&[Step], &[&str])] = &[
        (&[], &["dictionary"]),
        (&[Key("announce")], &["byte string"]),
        (&[Key("announce-list")], &["list"]),
        (&[Key("announce-list"), Index(0)], &["list"]),
        (
            &[Key("announce-list"), Index(0), Index(0)],
            &["byte string"],
        ),
        (&[Key("creation date")], &["integer"]),
        (&[Key("comment")], &["byte string"]),
        (&[Key("created by")], &["byte string"]),
        (&[Key("encoding")], &["byte string"]),
        (&[Key("info")], &["dictionary"]),
        (&[Key("info"), Key("name")], &["byte string"]),
        (&[Key("info"), Key("piece length")], &["integer"]),
        (&[Key("info"), Key("pieces")], &["byte string"]),
        (&[Key("info"), Key("private")], &["integer"]),
        (&[Key("info"), Key("files")], &["list"]),
        (&[Key("info"), Key("files"), Index(1)], &["dictionary"]),
        (
            &[Key("info"), Key("files"), Index(1), Key("length")],
            &["integer"],
        ),
        (
            &[Key("info"), Key("files"), Index(1), Key("path")],
            &["list"],
        ),
        (
            &[Key("info"), Key("files"), Index(1), Key("path"), Index(0)],
            &["byte string"],
        ),
        (
            &[Key("info"), Key("files"), Index(1), Key("attr")],
            &["byte string"],
        ),
    ];
    let single: &[(&[Step], &[&str])] = &[
        (&[Key("info"), Key("length")], &["integer"]),
        (&[Key("info"), Key("name.utf-8")], &["byte string"]),
        (&[Key("info"), Key("meta version")], &["integer"]),
    ];
    let replacements = [
        ("integer", OwnedValue::from(7)),
        ("byte string", OwnedValue::from("text")),
        ("list", OwnedValue::list([OwnedValue::from(1)])),
        ("dictionary", OwnedValue::dict([("k", OwnedValue::from(1))])),
    ];
    let mut checked = 0;
    for (base, cases) in [(valid_multi(), multi), (valid_single(), single)] {
        for (path, right) in cases {
            for (type_name, replacement) in &replacements {
                if right.contains(type_name) {
                    continue;
                }
                let mut value = base.clone();
                *at(&mut value, path) = replacement.clone();
                let err = parse(&value).expect_err(&format!("{path:?} as {type_name}"));
                assert!(
                    matches!(&err, Error::WrongType { found, .. } if found == type_name),
                    "{path:?} as {type_name}: {err}"
                );
                checked += 1;
            }
        }
    }
    // `url-list` is not here: a bad web seed is ignored with a warning.
    assert_eq!(checked, 69);
}

#[test]
fn missing_required_keys_are_errors() {
    for path in [
        &[Key("info")][..],
        &[Key("info"), Key("name")],
        &[Key("info"), Key("piece length")],
        &[Key("info"), Key("pieces")],
        &[Key("info"), Key("files")],
        &[Key("info"), Key("files"), Index(1), Key("length")],
        &[Key("info"), Key("files"), Index(1), Key("path")],
    ] {
        let mut value = valid_multi();
        remove(&mut value, path);
        let err = parse(&value).unwrap_err();
        assert!(matches!(err, Error::MissingKey { .. }), "{path:?}: {err}");
    }
}

#[test]
fn unsafe_paths_are_sanitised_not_rejected() {
    // (where, what, the path of file 1 that results)
    let cases: &[(&[Step], OwnedValue, &str)] = &[
        (
            &[Key("info"), Key("files"), Index(1), Key("path")],
            OwnedValue::list([
                OwnedValue::from(".."),
                OwnedValue::from("etc"),
                OwnedValue::from("passwd"),
            ]),
            "etc/passwd",
        ),
        (
            &[Key("info"), Key("files"), Index(1), Key("path")],
            OwnedValue::list([OwnedValue::from("a/../../b")]),
            "a_.._.._b",
        ),
        (
            &[Key("info"), Key("files"), Index(1), Key("path")],
            OwnedValue::list([OwnedValue::from("..\\..\\windows")]),
            ".._.._windows",
        ),
        (
            &[Key("info"), Key("files"), Index(1), Key("path")],
            OwnedValue::list([OwnedValue::from("C:"), OwnedValue::from("x")]),
            "C_/x",
        ),
        (
            &[Key("info"), Key("files"), Index(1), Key("path")],
            OwnedValue::list([OwnedValue::bytes(b"a\0b".to_vec())]),
            "a_b",
        ),
        (
            &[Key("info"), Key("files"), Index(1), Key("path")],
            OwnedValue::list([OwnedValue::from("NUL.txt")]),
            "NUL_.txt",
        ),
        (
            &[Key("info"), Key("files"), Index(1), Key("path")],
            OwnedValue::list([]),
            "_",
        ),
        (
            &[Key("info"), Key("files"), Index(1), Key("path")],
            OwnedValue::list([OwnedValue::from("a"), OwnedValue::from("")]),
            "a",
        ),
    ];
    for (path, replacement, expected) in cases {
        let mut value = valid_multi();
        *at(&mut value, path) = replacement.clone();
        let t = parse(&value).unwrap();
        assert_eq!(t.files()[1].path_string(), *expected, "{replacement:?}");
        assert!(t.files()[1].was_renamed());
        assert!(
            t.warnings()
                .iter()
                .any(|w| matches!(w, Warning::PathSanitized { file: 1, .. })),
            "{:?}",
            t.warnings()
        );
    }
    // `path.utf-8` is preferred, so a safe `path` does not hide an unsafe one.
    let mut value = valid_multi();
    let OwnedValue::Dict(file) = at(&mut value, &[Key("info"), Key("files"), Index(1)]) else {
        unreachable!()
    };
    file.insert(
        b"path.utf-8".to_vec(),
        OwnedValue::list([OwnedValue::from(".."), OwnedValue::from("x")]),
    );
    let t = parse(&value).unwrap();
    assert_eq!(t.files()[1].path(), "x");
    assert_eq!(t.files()[1].original_path(), "../x");
}

#[test]
fn lengths_and_pieces_are_checked() {
    let length = &[Key("info"), Key("files"), Index(1), Key("length")][..];
    let mut value = valid_multi();
    *at(&mut value, length) = OwnedValue::from(-1);
    assert!(matches!(parse(&value), Err(Error::Invalid { .. })));

    let mut value = valid_multi();
    *at(&mut value, length) = OwnedValue::Integer(i64::MAX);
    *at(
        &mut value,
        &[Key("info"), Key("files"), Index(2), Key("length")],
    ) = OwnedValue::Integer(i64::MAX);
    assert!(matches!(
        parse(&value),
        Err(Error::TotalLengthOverflow { .. })
    ));

    // A huge claimed length with a handful of hashes: caught, nothing allocated.
    let mut value = valid_multi();
    *at(&mut value, length) = OwnedValue::Integer(1 << 60);
    assert!(matches!(
        parse(&value),
        Err(Error::PieceCountMismatch { .. })
    ));

    let mut value = valid_multi();
    *at(&mut value, &[Key("info"), Key("pieces")]) = OwnedValue::bytes(vec![0u8; 39]);
    assert!(matches!(parse(&value), Err(Error::Invalid { .. })));

    let mut value = valid_multi();
    *at(&mut value, &[Key("info"), Key("pieces")]) = OwnedValue::bytes(vec![0u8; 60]);
    assert!(matches!(
        parse(&value),
        Err(Error::PieceCountMismatch {
            expected: 2,
            found: 3,
            ..
        })
    ));

    let mut value = valid_multi();
    *at(&mut value, &[Key("info"), Key("files")]) = OwnedValue::list([]);
    assert!(matches!(parse(&value), Err(Error::Invalid { .. })));

    let mut value = valid_multi();
    let OwnedValue::Dict(info) = at(&mut value, &[Key("info")]) else {
        unreachable!()
    };
    info.insert(b"length".to_vec(), OwnedValue::from(5));
    assert!(
        matches!(parse(&value), Err(Error::Invalid { .. })),
        "length and files"
    );
}

#[test]
fn truncated_and_deeply_nested_inputs_are_errors() {
    let bytes = encode(&valid_multi());
    for end in 0..bytes.len() {
        assert!(
            Torrent::from_bytes(&bytes[..end]).is_err(),
            "prefix of {end} bytes"
        );
    }
    let deep = vec![b'l'; 10 * 1024 * 1024];
    assert!(matches!(Torrent::from_bytes(&deep), Err(Error::Bencode(_))));
    let mut deep_info = b"d4:info".to_vec();
    deep_info.extend(std::iter::repeat_n(b'd', 10 * 1024 * 1024));
    assert!(matches!(
        Torrent::from_bytes(&deep_info),
        Err(Error::Bencode(_))
    ));
    assert!(Torrent::from_info_bytes(&deep).is_err());
    assert!(matches!(
        Torrent::from_bytes(b"i3e"),
        Err(Error::WrongType { .. })
    ));
    assert!(Torrent::from_file("/nonexistent/rustico.torrent").is_err());
}

#[test]
fn v2_only_and_hybrid_open() {
    let tree = |name: &str, length: i64| {
        OwnedValue::dict([(
            name,
            OwnedValue::dict([(
                "",
                OwnedValue::dict([
                    ("length", OwnedValue::from(length)),
                    ("pieces root", OwnedValue::bytes(vec![0u8; 32])),
                ]),
            )]),
        )])
    };
    let v2_only = OwnedValue::dict([(
        "info",
        OwnedValue::dict([
            ("name", OwnedValue::from("a.bin")),
            ("piece length", OwnedValue::from(16384)),
            ("meta version", OwnedValue::from(2)),
            ("file tree", tree("a.bin", 5)),
        ]),
    )]);
    let t = parse(&v2_only).unwrap();
    assert!(t.has_v2() && !t.has_v1() && !t.is_hybrid());
    assert_eq!(t.info_hash(), t.info_hashes().v2.unwrap().truncated());
    assert_eq!(t.files()[0].pieces_root(), Some([0; 32]));

    let mut hybrid = valid_single();
    let OwnedValue::Dict(info) = at(&mut hybrid, &[Key("info")]) else {
        unreachable!()
    };
    info.insert(b"meta version".to_vec(), OwnedValue::from(2));
    info.insert(b"file tree".to_vec(), tree("file.bin", 16385));
    let t = parse(&hybrid).unwrap();
    assert!(t.is_hybrid());
    assert!(t.has_v1() && t.has_v2());
    // `file tree` is read now, so no longer an unknown key.
    assert!(!t.info_extra_fields().contains_key(&b"file tree"[..]));
}

#[test]
fn unknown_keys_stay_reachable() {
    let mut value = valid_multi();
    let OwnedValue::Dict(root) = &mut value else {
        unreachable!()
    };
    root.insert(
        b"x-custom".to_vec(),
        OwnedValue::list([OwnedValue::from(1)]),
    );
    let OwnedValue::Dict(info) = at(&mut value, &[Key("info")]) else {
        unreachable!()
    };
    info.insert(b"source".to_vec(), OwnedValue::from("TRACKER"));
    let OwnedValue::Dict(file) = at(&mut value, &[Key("info"), Key("files"), Index(2)]) else {
        unreachable!()
    };
    file.insert(b"md5sum".to_vec(), OwnedValue::from("d41d8cd9"));
    let t = parse(&value).unwrap();
    assert_eq!(
        t.extra_fields().get(&b"x-custom"[..]),
        Some(&OwnedValue::list([OwnedValue::from(1)]))
    );
    assert_eq!(
        t.info_extra_fields().get(&b"source"[..]),
        Some(&OwnedValue::from("TRACKER"))
    );
    assert_eq!(
        t.files()[2].extra().get(&b"md5sum"[..]),
        Some(&OwnedValue::from("d41d8cd9"))
    );
}

#[test]
fn info_hash_hashes_the_bytes_as_written() {
    // Unsorted keys and a leading-zero integer: not canonical, still read,
    // and hashed as written.
    let mut info = b"d12:piece lengthi16384e4:name1:a6:lengthi010e6:pieces20:".to_vec();
    info.extend_from_slice(&[3u8; 20]);
    info.push(b'e');
    let mut file = b"d4:info".to_vec();
    file.extend_from_slice(&info);
    file.extend_from_slice(b"8:announce3:urle");
    let t = Torrent::from_bytes(&file).unwrap();
    let expected: [u8; 20] = Sha1::digest(&info).into();
    assert_eq!(t.info_hash().as_bytes(), &expected);
    assert_eq!(t.info_bytes(), info.as_slice());
    assert_eq!(t.total_length(), 10);
    assert_eq!(t.trackers(), [vec!["url".to_string()]]);

    // The same info dictionary alone (a magnet link's metadata).
    let from_info = Torrent::from_info_bytes(&info).unwrap();
    assert_eq!(from_info.info_hash(), t.info_hash());
    assert_eq!(from_info.files(), t.files());
    assert!(from_info.trackers().is_empty());
    let mut trailing = info.clone();
    trailing.push(b'x');
    assert!(matches!(
        Torrent::from_info_bytes(&trailing),
        Err(Error::Invalid { .. })
    ));
}

#[test]
fn pieces_spanning_files_and_zero_length_files() {
    let t = parse(&valid_multi()).unwrap();
    // Files: empty (0 bytes @0), sub/a.bin (20000 @0), b (100 @20000); pieces of 16384.
    assert_eq!(t.total_length(), 20100);
    assert_eq!(t.piece_length(), 16384);
    assert_eq!(t.piece_size(0), Some(16384));
    assert_eq!(t.piece_size(1), Some(20100 - 16384));
    assert_eq!(t.file_index_at(0), Some(1), "the empty file holds no byte");
    assert_eq!(
        t.file_index_at(16384),
        Some(1),
        "piece 1 starts inside a.bin"
    );
    assert_eq!(t.file_index_at(20000), Some(2));
    assert_eq!(
        t.file_path(&t.files()[1]),
        std::path::Path::new("folder/sub/a.bin")
    );
}

/// A valid torrent mutated at random: flips, insertions, deletions, cuts.
/// A valid v2-only torrent: `big.bin` (40,000 bytes, three pieces of
/// 16 KiB, with its piece layer) and `d/small.bin` (100 bytes, no layer).
fn valid_v2() -> OwnedValue {
    let big: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8).collect();
    let leaves = merkle::block_hashes(&big);
    let layer = merkle::piece_layer(&leaves, 16384).unwrap();
    let big_root = merkle::root_from_layer(&layer, 16384).unwrap();
    let small_root = merkle::root_of_leaves(&merkle::block_hashes(&[7u8; 100]));
    let leaf = |len: i64, root: [u8; 32]| {
        OwnedValue::dict([(
            "",
            OwnedValue::dict([
                ("length", OwnedValue::from(len)),
                ("pieces root", OwnedValue::bytes(root.to_vec())),
            ]),
        )])
    };
    OwnedValue::dict([
        (
            "info",
            OwnedValue::dict([
                ("name", OwnedValue::from("v2")),
                ("piece length", OwnedValue::from(16384)),
                ("meta version", OwnedValue::from(2)),
                (
                    "file tree",
                    OwnedValue::dict([
                        ("big.bin", leaf(40_000, big_root)),
                        (
                            "d",
                            OwnedValue::dict([("small.bin", leaf(100, small_root))]),
                        ),
                    ]),
                ),
            ]),
        ),
        (
            "piece layers",
            OwnedValue::Dict(
                [(big_root.to_vec(), OwnedValue::bytes(layer.concat()))]
                    .into_iter()
                    .collect(),
            ),
        ),
    ])
}

fn layer_error(value: &OwnedValue) -> String {
    match parse(value) {
        Err(Error::Invalid { key, reason, .. }) if key.starts_with("piece layers") => reason,
        other => panic!("expected a piece layers error, got {other:?}"),
    }
}

#[test]
fn v2_rules_are_checked() {
    let t = parse(&valid_v2()).unwrap();
    assert!(t.has_v2() && !t.has_v1());
    assert!(t.has_piece_layers());
    // big.bin, its pad to 48 KiB, d/small.bin, its pad.
    let files: Vec<(String, u64, u64)> = t
        .files()
        .iter()
        .map(|f| (f.path_string(), f.length, f.offset))
        .collect();
    assert_eq!(
        files,
        [
            ("big.bin".into(), 40_000, 0),
            (".pad/9152".into(), 9152, 40_000),
            ("d/small.bin".into(), 100, 49_152),
            (".pad/16284".into(), 16284, 49_252),
        ]
    );
    assert_eq!(t.num_pieces(), 4);
    assert_eq!(t.piece_layer(0).unwrap().len(), 3 * 32);
    assert_eq!(t.piece_layer(2), None);
    assert!(t.v2_piece_hash(3).unwrap().matches(&[7u8; 100], 16384));

    // Piece length: a power of two of at least 16 KiB.
    for bad in [8192, 3 * 16384] {
        let mut v = valid_v2();
        *at(&mut v, &[Key("info"), Key("piece length")]) = OwnedValue::from(bad);
        assert!(
            matches!(parse(&v), Err(Error::Invalid { ref key, .. }) if key == "info.piece length"),
            "{bad}"
        );
    }

    // Layers: wrong length, for a small file, for no file, not leading
    // to the root, a key that is not 32 bytes.
    let big_root = t.files()[0].pieces_root().unwrap();
    let small_root = t.files()[2].pieces_root().unwrap();
    let layer = t.piece_layer(0).unwrap().to_vec();
    let with_layers = |entries: Vec<(Vec<u8>, Vec<u8>)>| {
        let mut v = valid_v2();
        *at(&mut v, &[Key("piece layers")]) = OwnedValue::Dict(
            entries
                .into_iter()
                .map(|(k, l)| (k, OwnedValue::bytes(l)))
                .collect(),
        );
        v
    };
    assert!(layer_error(&with_layers(vec![(
        big_root.to_vec(),
        layer[..64].to_vec()
    )]))
    .contains("needs 96"));
    assert!(layer_error(&with_layers(vec![
        (big_root.to_vec(), layer.clone()),
        (small_root.to_vec(), vec![1; 32]),
    ]))
    .contains("at most one piece"));
    assert!(
        layer_error(&with_layers(vec![([9u8; 32].to_vec(), layer.clone())])).contains("no file")
    );
    let mut flipped = layer.clone();
    flipped[40] ^= 1;
    assert!(layer_error(&with_layers(vec![(big_root.to_vec(), flipped)])).contains("do not lead"));
    assert!(layer_error(&with_layers(vec![(vec![1; 20], layer.clone())])).contains("32-byte"));
    // A missing layer is allowed (peers supply it), and reported.
    let t = parse(&with_layers(Vec::new())).unwrap();
    assert!(!t.has_piece_layers());
    assert_eq!(t.v2_piece_hash(0), None);

    // Traversal names in the tree are errors with the offset.
    for bad in ["..", ".", "a/b", "a\\b", "nul\0"] {
        let mut v = valid_v2();
        let OwnedValue::Dict(tree) = at(&mut v, &[Key("info"), Key("file tree")]) else {
            unreachable!()
        };
        let entry = tree.remove(&b"big.bin"[..]).unwrap();
        tree.insert(bad.as_bytes().to_vec(), entry);
        let err = parse(&v).unwrap_err();
        assert!(
            matches!(err, Error::InvalidFileTree { offset, .. } if offset > 0),
            "{bad}: {err}"
        );
    }

    // Lengths whose pieces overflow 2^32 - 1 or whose total overflows.
    let mut v = valid_v2();
    *at(
        &mut v,
        &[
            Key("info"),
            Key("file tree"),
            Key("big.bin"),
            Key(""),
            Key("length"),
        ],
    ) = OwnedValue::from(1i64 << 62);
    assert!(
        matches!(parse(&v), Err(Error::Invalid { .. })),
        "{:?}",
        parse(&v)
    );
    let mut v = valid_v2();
    *at(
        &mut v,
        &[
            Key("info"),
            Key("file tree"),
            Key("big.bin"),
            Key(""),
            Key("length"),
        ],
    ) = OwnedValue::from(i64::MAX - 10);
    assert!(matches!(parse(&v), Err(Error::TotalLengthOverflow { .. })));

    // Deep nesting: a typed bencode error, not a stack overflow.
    let mut deep = b"d4:infod4:name1:a12:piece lengthi16384e12:meta versioni2e9:file tree".to_vec();
    for _ in 0..100_000 {
        deep.extend_from_slice(b"d1:a");
    }
    assert!(matches!(Torrent::from_bytes(&deep), Err(Error::Bencode(_))));

    // Many files: each one is checked and listed, nothing panics.
    let mut v = valid_v2();
    let OwnedValue::Dict(tree) = at(&mut v, &[Key("info"), Key("file tree")]) else {
        unreachable!()
    };
    for i in 0..20_000 {
        tree.insert(
            format!("e{i}").into_bytes(),
            OwnedValue::dict([("", OwnedValue::dict([("length", OwnedValue::from(0))]))]),
        );
    }
    assert_eq!(parse(&v).unwrap().files().len(), 20_004);
}

fn mutated() -> impl Strategy<Value = Vec<u8>> {
    let mut hybrid = valid_single();
    let OwnedValue::Dict(info) = at(&mut hybrid, &[Key("info")]) else {
        unreachable!()
    };
    info.insert(b"meta version".to_vec(), OwnedValue::from(2));
    info.insert(
        b"file tree".to_vec(),
        OwnedValue::dict([(
            "file.bin",
            OwnedValue::dict([(
                "",
                OwnedValue::dict([
                    ("length", OwnedValue::from(16385)),
                    ("pieces root", OwnedValue::bytes(vec![0u8; 32])),
                ]),
            )]),
        )]),
    );
    let bases = [
        encode(&valid_multi()),
        encode(&valid_single()),
        encode(&hybrid),
        encode(&valid_v2()),
    ];
    let longest = bases.iter().map(Vec::len).max().unwrap();
    let edits = proptest::collection::vec((0..longest, any::<u8>(), 0u8..4), 1..6);
    (0..bases.len(), edits).prop_map(move |(which, edits)| {
        let mut bytes = bases[which].clone();
        for (at, byte, op) in edits {
            let at = at % (bytes.len() + 1);
            match op {
                0 if at < bytes.len() => bytes[at] = byte,
                1 => bytes.insert(at, byte),
                2 if at < bytes.len() => {
                    bytes.remove(at);
                }
                _ => bytes.truncate(at),
            }
        }
        bytes
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn mutated_torrents_never_panic(bytes in mutated()) {
        if let Ok(t) = Torrent::from_bytes(&bytes) {
            // Whatever parses is internally consistent.
            let sum: u64 = t.files().iter().map(|f| f.length).sum();
            prop_assert_eq!(sum, t.total_length());
            prop_assert_eq!(u64::from(t.num_pieces()), t.total_length().div_ceil(u64::from(t.piece_length())));
            if t.has_v1() {
                prop_assert_eq!(t.piece_hashes().len(), t.num_pieces() as usize * 20);
            } else {
                prop_assert!(t.piece_hashes().is_empty());
            }
            for piece in 0..t.num_pieces() {
                let _ = t.v2_piece_hash(piece);
            }
            for f in t.files() {
                prop_assert!(!f.path().is_empty());
                for c in f.path_elements() {
                    prop_assert!(!c.is_empty() && c != "." && c != ".." && !c.contains(['/', '\\', '\0']));
                }
            }
            let _ = Torrent::from_info_bytes(t.info_bytes()).unwrap();
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = Torrent::from_bytes(&bytes);
        let _ = Torrent::from_info_bytes(&bytes);
    }
}
