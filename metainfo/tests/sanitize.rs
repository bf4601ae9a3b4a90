//! Issue 21: torrents that mainstream clients load, loaded here with names
//! made safe; torrents that cannot be downloaded consistently, refused. One
//! test per rule, on torrents written in the test, and a property test
//! over arbitrary path lists.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use common::assert_safe;

use proptest::prelude::*;
use rustico_bencode::encode;
use rustico_metainfo::{
    Error, InfoHash, Magnet, OwnedValue, Torrent, Warning, MAX_DUPLICATE_NAMES,
};

/// A file entry: path elements as bytes, length, attr.
fn entry(path: &[&[u8]], length: i64, attr: &str) -> OwnedValue {
    let mut pairs = vec![
        ("length", OwnedValue::from(length)),
        (
            "path",
            OwnedValue::list(path.iter().map(|e| OwnedValue::bytes(e.to_vec()))),
        ),
    ];
    if !attr.is_empty() {
        pairs.push(("attr", OwnedValue::from(attr)));
    }
    OwnedValue::dict(pairs)
}

fn file(path: &[&str], length: i64) -> OwnedValue {
    let path: Vec<&[u8]> = path.iter().map(|e| e.as_bytes()).collect();
    entry(&path, length, "")
}

const PIECE: i64 = 16384;

/// A multi-file torrent named `name` with these entries (and the right
/// number of piece hashes for them).
fn multi(name: &[u8], files: Vec<OwnedValue>) -> Vec<u8> {
    let total: i64 = files
        .iter()
        .map(|f| {
            f.get(b"length")
                .and_then(OwnedValue::as_integer)
                .unwrap_or(0)
        })
        .sum();
    let pieces = (total + PIECE - 1) / PIECE;
    encode(&OwnedValue::dict([(
        "info",
        OwnedValue::dict([
            ("name", OwnedValue::bytes(name.to_vec())),
            ("piece length", OwnedValue::from(PIECE)),
            ("pieces", OwnedValue::bytes(vec![7u8; pieces as usize * 20])),
            ("files", OwnedValue::List(files)),
        ]),
    )]))
}

fn single(name: &[u8], length: i64) -> Vec<u8> {
    let pieces = (length + PIECE - 1) / PIECE;
    encode(&OwnedValue::dict([(
        "info",
        OwnedValue::dict([
            ("name", OwnedValue::bytes(name.to_vec())),
            ("piece length", OwnedValue::from(PIECE)),
            ("pieces", OwnedValue::bytes(vec![7u8; pieces as usize * 20])),
            ("length", OwnedValue::from(length)),
        ]),
    )]))
}

fn paths(t: &Torrent) -> Vec<String> {
    t.files().iter().map(|f| f.path_string()).collect()
}

#[test]
fn unsafe_names_are_sanitised() {
    for (name, expected) in [
        (&b"temp/../../abc"[..], "temp_.._.._abc"),
        (b"abc/../../def", "abc_.._.._def"),
        (b"/foobar", "_foobar"),
        (b"/", "_"),
        (b"\\", "_"),
        (b"C:\\Windows", "C__Windows"),
        (b"con", "con_"),
        (b"dots...", "dots"),
    ] {
        let t = Torrent::from_bytes(&single(name, 10)).unwrap();
        assert_eq!(t.name(), expected, "{name:?}");
        assert_eq!(t.original_name(), String::from_utf8_lossy(name));
        assert_eq!(t.files()[0].path(), expected);
        assert_eq!(t.files()[0].original_path(), t.original_name());
        assert_eq!(
            t.warnings(),
            [Warning::NameSanitized {
                original: String::from_utf8_lossy(name).into_owned(),
                sanitized: expected.into(),
            }]
        );
        // The same name for a folder.
        let m = Torrent::from_bytes(&multi(name, vec![file(&["a"], 5)])).unwrap();
        assert_eq!(m.file_path(&m.files()[0]), Path::new(expected).join("a"));
    }
    // Nothing left of the name: the info-hash names the torrent.
    for name in [&b".."[..], b".", b"", b" . "] {
        let t = Torrent::from_bytes(&multi(name, vec![file(&["a"], 5)])).unwrap();
        assert_eq!(t.name(), t.info_hash().to_string(), "{name:?}");
    }
    // A safe name is left alone, with no warning.
    let t = Torrent::from_bytes(&single(b"fine name.iso", 10)).unwrap();
    assert_eq!(t.original_name(), "fine name.iso");
    assert!(t.warnings().is_empty() && !t.files()[0].was_renamed());
}

#[test]
fn unsafe_path_elements_are_sanitised() {
    let long = format!("{}.mkv", "é".repeat(200));
    let cases: &[(&[&[u8]], &str)] = &[
        (&[b"..", b"..", b"etc", b"passwd"], "etc/passwd"),
        (&[b".", b"a", b".", b"b"], "a/b"),
        (&[b"", b"a", b""], "a"),
        (&[b"a/b", b"c"], "a_b/c"),
        (&[b"a\\..\\..\\b"], "a_.._.._b"),
        (&[b"/etc/passwd"], "_etc_passwd"),
        (&[b"/"], "_"),
        (&[b"\\"], "_"),
        (&[b".."], "_"),
        (&[], "_"),
        (
            &[b"CON", b"aux.txt", b"Com1.tar.gz", b"lpt9"],
            "CON_/aux_.txt/Com1_.tar.gz/lpt9_",
        ),
        (&[b"C:", b"x"], "C_/x"),
        (&[b"bell\x07\x00\x1b[0m"], "bell___[0m"),
        (&[b"trailing. . "], "trailing"),
        (&[long.as_bytes()], ""),
    ];
    for (raw, expected) in cases {
        let t = Torrent::from_bytes(&multi(b"t", vec![entry(raw, 5, "")])).unwrap();
        let f = &t.files()[0];
        if raw.first() == Some(&long.as_bytes()) {
            let name = f.path();
            assert_eq!(
                name.len(),
                254,
                "two-byte chars cut on a boundary: 250 + .mkv"
            );
            assert!(name.ends_with("éé.mkv"));
        } else {
            assert_eq!(f.path_string(), *expected, "{raw:?}");
        }
        let original: Vec<String> = raw
            .iter()
            .map(|e| String::from_utf8_lossy(e).into())
            .collect();
        assert_eq!(f.original_path(), original.join("/"));
        assert!(f.was_renamed());
        assert_eq!(
            t.warnings(),
            [Warning::PathSanitized {
                file: 0,
                original: original.join("/"),
                sanitized: f.path_string(),
            }],
            "{raw:?}"
        );
        assert!(t.warnings()[0].to_string().starts_with("file 0: path "));
    }
}

#[test]
fn duplicates_are_renamed_as_libtorrent_does() {
    let t = Torrent::from_bytes(&multi(
        b"t",
        vec![
            file(&["bar.txt"], 1),
            file(&["bar.txt"], 1),
            file(&["bar.txt"], 1),
            file(&["x.tar.gz"], 1),
            file(&["X.TAR.GZ"], 1),
            file(&[".bashrc"], 1),
            file(&[".bashrc"], 1),
            file(&["noext"], 1),
            file(&["noext"], 1),
        ],
    ))
    .unwrap();
    assert_eq!(
        paths(&t),
        [
            "bar.txt",
            "bar.1.txt",
            "bar.2.txt",
            "x.tar.gz",
            "X.TAR.1.GZ",
            ".bashrc",
            ".1.bashrc",
            "noext",
            "noext.1"
        ]
    );
    assert_eq!(t.files()[1].original_path(), "bar.txt");
    assert_eq!(
        t.warnings()[0],
        Warning::DuplicateRenamed {
            file: 1,
            original: "bar.txt".into(),
            renamed: "bar.1.txt".into()
        }
    );
    assert_eq!(
        t.warnings()[0].to_string(),
        "file 1: path \"bar.txt\" is taken; renamed to \"bar.1.txt\""
    );
    // A name the torrent itself uses later is skipped, never reused.
    let t = Torrent::from_bytes(&multi(
        b"t",
        vec![
            file(&["a"], 1),
            file(&["a.1"], 1),
            file(&["a"], 1),
            file(&["a.2"], 1),
        ],
    ))
    .unwrap();
    // `a.2` splits as `a` + `.2`, so its duplicate is `a.1.2`.
    assert_eq!(paths(&t), ["a", "a.1", "a.2", "a.1.2"]);
    // Sanitising can make duplicates too: `a/b` and `a_b`.
    let t = Torrent::from_bytes(&multi(
        b"t",
        vec![file(&["a_b"], 1), entry(&[b"a/b"], 1, "")],
    ))
    .unwrap();
    assert_eq!(paths(&t), ["a_b", "a_b.1"]);
    assert_eq!(t.warnings().len(), 2, "sanitised, then renamed");
}

#[test]
fn a_file_where_another_file_needs_a_folder_is_renamed() {
    // Either order: the folder wins, the file moves aside (libtorrent's rule).
    for files in [
        vec![file(&["a"], 1), file(&["a", "b"], 1)],
        vec![file(&["a", "b"], 1), file(&["a"], 1)],
    ] {
        let t = Torrent::from_bytes(&multi(b"t", files)).unwrap();
        let mut got = paths(&t);
        got.sort();
        assert_eq!(got, ["a.1", "a/b"]);
    }
    let t = Torrent::from_bytes(&multi(
        b"t",
        vec![file(&["d", "e"], 1), file(&["D", "E", "f"], 1)],
    ))
    .unwrap();
    assert_eq!(
        paths(&t),
        ["d/e.1", "D/E/f"],
        "folders compare ignoring case"
    );
}

#[test]
fn padding_files_are_never_renamed_and_never_collide() {
    let t = Torrent::from_bytes(&multi(
        b"t",
        vec![
            file(&["a"], 1),
            entry(&[b".pad", b"16383"], 16383, "p"),
            file(&["b"], 1),
            entry(&[b".pad", b"16383"], 16383, "p"),
            entry(&[b"a"], 0, "p"),
            file(&["c"], 1),
        ],
    ))
    .unwrap();
    assert_eq!(paths(&t), ["a", ".pad/16383", "b", ".pad/16383", "a", "c"]);
    assert!(t.warnings().is_empty(), "{:?}", t.warnings());
    assert_eq!(t.total_length(), 3 + 2 * 16383);
    assert_eq!(t.content_length(), 3);
    // A padding file without a path is named after its length.
    let mut pad = entry(&[], 16383, "p");
    pad.as_dict_mut().unwrap().remove(&b"path"[..]);
    let t = Torrent::from_bytes(&multi(b"t", vec![file(&["a"], 1), pad, file(&["b"], 1)])).unwrap();
    assert_eq!(paths(&t), ["a", ".pad/16383", "b"]);
    assert!(t.files()[1].original_path().is_empty());
    // Without a path a real file is still an error.
    let mut nameless = file(&["x"], 1);
    nameless.as_dict_mut().unwrap().remove(&b"path"[..]);
    let err = Torrent::from_bytes(&multi(b"t", vec![nameless])).unwrap_err();
    assert!(matches!(err, Error::MissingKey { .. }), "{err}");
}

#[test]
fn duplicates_past_the_cap_are_refused() {
    let at_cap: Vec<_> = (0..=MAX_DUPLICATE_NAMES)
        .map(|_| file(&["same"], 1))
        .collect();
    let t = Torrent::from_bytes(&multi(b"t", at_cap)).unwrap();
    assert_eq!(
        t.files().last().unwrap().path_string(),
        format!("same.{MAX_DUPLICATE_NAMES}")
    );
    let past: Vec<_> = (0..=MAX_DUPLICATE_NAMES + 1)
        .map(|_| file(&["same"], 1))
        .collect();
    let err = Torrent::from_bytes(&multi(b"t", past)).unwrap_err();
    assert!(
        matches!(err, Error::TooManyDuplicateNames { max: MAX_DUPLICATE_NAMES, file } if file == MAX_DUPLICATE_NAMES + 1),
        "{err}"
    );
}

#[test]
fn lenient_fields() {
    // url-list entries that are not strings are dropped with a warning.
    let mut value = rustico_bencode::decode(&single(b"a", 10))
        .unwrap()
        .to_owned_value();
    value.as_dict_mut().unwrap().insert(
        b"url-list".to_vec(),
        OwnedValue::list([
            OwnedValue::from("http://127.0.0.1:1/"),
            OwnedValue::from(5),
            OwnedValue::list([OwnedValue::from("http://nested/")]),
            OwnedValue::from("http://127.0.0.1:2/"),
        ]),
    );
    let t = Torrent::from_bytes(&encode(&value)).unwrap();
    assert_eq!(
        t.web_seeds(),
        ["http://127.0.0.1:1/", "http://127.0.0.1:2/"]
    );
    assert_eq!(
        t.warnings(),
        [
            Warning::WebSeedIgnored {
                key: "url-list[1]".into(),
                found: "integer"
            },
            Warning::WebSeedIgnored {
                key: "url-list[2]".into(),
                found: "list"
            },
        ]
    );
    assert_eq!(
        t.warnings()[0].to_string(),
        "`url-list[1]` is not a URL but a bencode integer; ignored"
    );
    value
        .as_dict_mut()
        .unwrap()
        .insert(b"url-list".to_vec(), OwnedValue::from(7));
    let t = Torrent::from_bytes(&encode(&value)).unwrap();
    assert!(t.web_seeds().is_empty() && t.warnings().len() == 1);

    // A symlink without `length` is 0 bytes long.
    let mut link = entry(&[b"link"], 0, "l");
    link.as_dict_mut().unwrap().remove(&b"length"[..]);
    link.as_dict_mut().unwrap().insert(
        b"symlink path".to_vec(),
        OwnedValue::list([OwnedValue::from("a")]),
    );
    let t = Torrent::from_bytes(&multi(b"t", vec![file(&["a"], 5), link])).unwrap();
    assert_eq!(t.files()[1].length, 0);
    assert!(t.files()[1].is_symlink());
    assert!(t.files()[1].extra().contains_key(&b"symlink path"[..]));
    // Not a symlink: `length` is required.
    let mut plain = file(&["b"], 1);
    plain.as_dict_mut().unwrap().remove(&b"length"[..]);
    assert!(Torrent::from_bytes(&multi(b"t", vec![file(&["a"], 5), plain])).is_err());
}

#[test]
fn zero_total_length_is_refused() {
    let err = Torrent::from_bytes(&single(b"a", 0)).unwrap_err();
    assert!(matches!(err, Error::EmptyTorrent { .. }), "{err}");
    let err =
        Torrent::from_bytes(&multi(b"t", vec![file(&["a"], 0), file(&["b"], 0)])).unwrap_err();
    assert!(matches!(err, Error::EmptyTorrent { .. }), "{err}");
}

/// A v2 file node.
fn node(length: i64) -> OwnedValue {
    let mut meta = vec![("length", OwnedValue::from(length))];
    if length > 0 {
        meta.push(("pieces root", OwnedValue::bytes(vec![1u8; 32])));
    }
    OwnedValue::dict([("", OwnedValue::dict(meta))])
}

/// A hybrid torrent: v1 `files` as given, v2 `file tree` as given.
fn hybrid(files: Vec<OwnedValue>, tree: OwnedValue) -> Vec<u8> {
    let mut value = rustico_bencode::decode(&multi(b"t", files))
        .unwrap()
        .to_owned_value();
    let info = value.as_dict_mut().unwrap().get_mut(&b"info"[..]).unwrap();
    let info = info.as_dict_mut().unwrap();
    info.insert(b"meta version".to_vec(), OwnedValue::from(2));
    info.insert(b"file tree".to_vec(), tree);
    encode(&value)
}

#[test]
fn hybrid_torrents_must_describe_one_content() {
    let v1 = || {
        vec![
            file(&["a"], 5),
            entry(&[b".pad", b"16379"], 16379, "p"),
            file(&["d", "b"], 7),
        ]
    };
    let tree = |a: &str, a_len: i64, b_len: i64| {
        OwnedValue::dict([
            (a, node(a_len)),
            ("d", OwnedValue::dict([("b", node(b_len))])),
        ])
    };
    // Padding aside, the same files: loads.
    let t = Torrent::from_bytes(&hybrid(v1(), tree("a", 5, 7))).unwrap();
    assert!(t.is_hybrid());
    // Another name, another length, another order, another count: refused.
    for (bytes, what) in [
        (hybrid(v1(), tree("z", 5, 7)), "a name"),
        (hybrid(v1(), tree("a", 6, 7)), "a length"),
        (hybrid(v1(), tree("a", 5, 8)), "the last length"),
        (
            hybrid(vec![file(&["d", "b"], 7), file(&["a"], 5)], tree("a", 5, 7)),
            "the order",
        ),
        (
            hybrid(v1(), OwnedValue::dict([("a", node(5))])),
            "a missing v2 file",
        ),
        (
            hybrid(
                vec![file(&["a"], 5), file(&["d", "b"], 7), file(&["e"], 1)],
                tree("a", 5, 7),
            ),
            "an extra v1 file",
        ),
    ] {
        let err = Torrent::from_bytes(&bytes).unwrap_err();
        assert!(matches!(err, Error::HybridMismatch { .. }), "{what}: {err}");
    }
    // `meta version` 2 without a tree, a tree without `meta version` 2,
    // and an unknown meta version.
    let mut value = rustico_bencode::decode(&hybrid(v1(), tree("a", 5, 7)))
        .unwrap()
        .to_owned_value();
    let info = value
        .as_dict_mut()
        .unwrap()
        .get_mut(&b"info"[..])
        .unwrap()
        .as_dict_mut()
        .unwrap();
    info.remove(&b"file tree"[..]);
    assert!(matches!(
        Torrent::from_bytes(&encode(&value)),
        Err(Error::MissingKey { .. })
    ));
    let mut value = rustico_bencode::decode(&hybrid(v1(), tree("a", 5, 7)))
        .unwrap()
        .to_owned_value();
    let info = value
        .as_dict_mut()
        .unwrap()
        .get_mut(&b"info"[..])
        .unwrap()
        .as_dict_mut()
        .unwrap();
    info.remove(&b"meta version"[..]);
    assert!(matches!(
        Torrent::from_bytes(&encode(&value)),
        Err(Error::Invalid { .. })
    ));
    let info = value
        .as_dict_mut()
        .unwrap()
        .get_mut(&b"info"[..])
        .unwrap()
        .as_dict_mut()
        .unwrap();
    info.insert(b"meta version".to_vec(), OwnedValue::from(3));
    assert!(matches!(
        Torrent::from_bytes(&encode(&value)),
        Err(Error::Invalid { .. })
    ));
}

#[test]
fn v2_file_entries_must_be_valid_nodes() {
    let v1 = || vec![file(&["a"], 5)];
    for (tree, reason) in [
        (
            OwnedValue::dict([("a", OwnedValue::from(5))]),
            "not a dictionary",
        ),
        (
            OwnedValue::dict([("a", OwnedValue::dict([("", OwnedValue::from(5))]))]),
            "the file's `\"\"` entry is not a dictionary",
        ),
        (
            OwnedValue::dict([(
                "a",
                OwnedValue::dict([(
                    "",
                    OwnedValue::dict([("pieces root", OwnedValue::bytes(vec![0u8; 32]))]),
                )]),
            )]),
            "a file without `length`",
        ),
        (
            OwnedValue::dict([(
                "a",
                OwnedValue::dict([("", OwnedValue::dict([("length", OwnedValue::from(5))]))]),
            )]),
            "a non-empty file without `pieces root`",
        ),
        (
            OwnedValue::dict([(
                "a",
                OwnedValue::dict([(
                    "",
                    OwnedValue::dict([
                        ("length", OwnedValue::from(5)),
                        ("pieces root", OwnedValue::bytes(vec![0u8; 31])),
                    ]),
                )]),
            )]),
            "`pieces root` is not 32 bytes",
        ),
        (
            OwnedValue::dict([(
                "a",
                OwnedValue::dict([("", OwnedValue::dict([("length", OwnedValue::from(-5))]))]),
            )]),
            "`length` is not a non-negative integer",
        ),
        (
            OwnedValue::dict([("a", OwnedValue::Dict(Default::default()))]),
            "an empty folder",
        ),
        (
            OwnedValue::dict([(
                "a",
                OwnedValue::dict([("", node(5).get(b"").unwrap().clone()), ("x", node(1))]),
            )]),
            "both a file and a folder",
        ),
        (OwnedValue::from("a tree"), "not a dictionary"),
    ] {
        let err = Torrent::from_bytes(&hybrid(v1(), tree)).unwrap_err();
        assert!(
            matches!(&err, Error::InvalidFileTree { reason: r, .. } if *r == reason),
            "{reason}: {err}"
        );
    }
}

#[test]
fn magnet_and_info_make_a_torrent() {
    let info = b"d6:lengthi5e4:name3:abc12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaae";
    let mut magnet = Magnet::new(InfoHash::of_info_bytes(info));
    magnet.trackers = vec![
        "http://127.0.0.1:1/a".into(),
        String::new(),
        "udp://127.0.0.1:2".into(),
    ];
    magnet.web_seeds = vec!["http://127.0.0.1:3/x".into()];
    let t = Torrent::from_magnet_and_info(&magnet, info).unwrap();
    assert_eq!(t.info_hash(), magnet.info_hash);
    assert_eq!(
        t.trackers(),
        [
            vec!["http://127.0.0.1:1/a".to_string()],
            vec!["udp://127.0.0.1:2".to_string()]
        ]
    );
    assert_eq!(t.web_seeds(), ["http://127.0.0.1:3/x"]);
    // The file written is canonical bencode and reads back the same.
    let again = Torrent::from_bytes(t.as_bytes()).unwrap();
    assert_eq!(again.info_bytes(), info);
    assert_eq!(
        rustico_bencode::encode(&rustico_bencode::decode_strict(t.as_bytes()).unwrap()),
        t.as_bytes()
    );
    // No trackers, no web seeds: just the info dictionary.
    let bare = Torrent::from_magnet_and_info(&Magnet::new(magnet.info_hash), info).unwrap();
    assert!(bare.trackers().is_empty() && bare.web_seeds().is_empty());
    // Wrong bytes for the hash; bytes after the dictionary.
    let err = Torrent::from_magnet_and_info(&Magnet::new(InfoHash::default()), info).unwrap_err();
    assert!(matches!(err, Error::InfoHashMismatch { .. }), "{err}");
    let mut trailing = info.to_vec();
    trailing.extend_from_slice(b"1:x");
    let err =
        Torrent::from_magnet_and_info(&Magnet::new(InfoHash::of_info_bytes(&trailing)), &trailing)
            .unwrap_err();
    assert!(matches!(err, Error::Invalid { .. }), "{err}");
}

fn hostile_element() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..12),
        proptest::sample::select(vec![
            &b".."[..],
            b".",
            b"",
            b"/",
            b"\\",
            b"a",
            b"A",
            b"a.txt",
            b"CON",
            b"lpt1.x",
            b"C:",
            b"x. ",
            b"/etc",
            b"a/b",
            b"a_b",
        ])
        .prop_map(|e| e.to_vec()),
        "[a-zA-Z.]{250,260}".prop_map(String::into_bytes),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_path_list_loads_safely(
        name in hostile_element(),
        files in proptest::collection::vec(
            (proptest::collection::vec(hostile_element(), 0..5), 1i64..3, any::<bool>()),
            1..12,
        ),
    ) {
        let entries: Vec<OwnedValue> = files
            .iter()
            .map(|(path, len, pad)| {
                let path: Vec<&[u8]> = path.iter().map(Vec::as_slice).collect();
                entry(&path, *len, if *pad { "p" } else { "" })
            })
            .collect();
        let t = Torrent::from_bytes(&multi(&name, entries)).unwrap();
        assert_safe(&t);
        prop_assert_eq!(t.files().len(), files.len());
        let t = Torrent::from_bytes(&single(&name, 3)).unwrap();
        assert_safe(&t);
    }
}
