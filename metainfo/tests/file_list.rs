//! `info.files`, read one file dictionary at a time (issue 20): every
//! field of every entry, and errors that name the file and the byte where
//! its problem is, as when the whole list was decoded at once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use rustico_metainfo::{Attributes, Error, Torrent, Warning};

/// A multi-file torrent named `t` around the bencoded file dictionaries
/// `files` (each `d...e`), with the right number of piece hashes for
/// `total` bytes in pieces of 16 KiB.
fn torrent(files: &[&str], total: u64) -> Vec<u8> {
    let pieces = total.div_ceil(16384) as usize;
    let mut out = format!("d8:announce9:http://t/4:infod5:filesl{}e", files.concat()).into_bytes();
    out.extend_from_slice(
        format!("4:name1:t12:piece lengthi16384e6:pieces{}:", pieces * 20).as_bytes(),
    );
    out.extend(std::iter::repeat_n(b'h', pieces * 20));
    out.extend_from_slice(b"ee");
    out
}

/// Where `needle` first occurs in `haystack`.
fn find(haystack: &[u8], needle: &str) -> usize {
    haystack
        .windows(needle.len())
        .position(|w| w == needle.as_bytes())
        .unwrap()
}

#[test]
fn every_field_of_every_file() {
    let bytes = torrent(
        &[
            "d6:lengthi3e4:pathl1:a1:b5:c.txtee",
            // `path.utf-8` wins over `path`.
            "d6:lengthi2e4:pathl3:bade10:path.utf-8l2:\u{fc}1:xee",
            // Padding without a path, and an executable, hidden file with
            // keys of its own.
            "d4:attr1:p6:lengthi16379ee",
            "d4:attr2:xh6:lengthi5e6:md5sum3:abc4:pathl1:eee",
            // A traversal, sanitised.
            "d6:lengthi1e4:pathl2:..3:etc6:passwdee",
            // A duplicate of file 0 in another case, renamed.
            "d6:lengthi1e4:pathl1:A1:B5:C.TXTee",
        ],
        3 + 2 + 16379 + 5 + 1 + 1,
    );
    let t = Torrent::from_bytes(&bytes).unwrap();
    let files = t.files();
    let paths: Vec<&str> = files.iter().map(|f| f.path()).collect();
    assert_eq!(
        paths,
        [
            "a/b/c.txt",
            "\u{fc}/x",
            ".pad/16379",
            "e",
            "etc/passwd",
            "A/B/C.1.TXT"
        ]
    );
    let offsets: Vec<u64> = files.iter().map(|f| f.offset).collect();
    assert_eq!(offsets, [0, 3, 5, 16384, 16389, 16390]);
    assert_eq!(
        files[0].path_elements().collect::<Vec<_>>(),
        ["a", "b", "c.txt"]
    );
    assert_eq!(files[0].attributes(), Attributes::default());
    assert!(files[2].is_padding() && files[2].original_path().is_empty());
    assert!(files[3].is_executable() && files[3].is_hidden() && !files[3].is_symlink());
    assert_eq!(files[3].attributes().to_string(), "xh");
    assert_eq!(
        files[3]
            .extra()
            .get(&b"md5sum"[..])
            .and_then(|v| v.as_bytes()),
        Some(&b"abc"[..])
    );
    assert!(files[0].extra().is_empty());
    assert_eq!(files[4].original_path(), "../etc/passwd");
    assert_eq!(files[5].original_path(), "A/B/C.TXT");
    assert!(files.iter().all(|f| f.pieces_root().is_none()));
    assert_eq!(t.content_length(), 3 + 2 + 5 + 1 + 1);
    assert_eq!(t.total_length(), 16390 + 1);
    assert_eq!(
        t.warnings(),
        [
            Warning::PathSanitized {
                file: 4,
                original: "../etc/passwd".into(),
                sanitized: "etc/passwd".into()
            },
            Warning::DuplicateRenamed {
                file: 5,
                original: "A/B/C.TXT".into(),
                renamed: "A/B/C.1.TXT".into()
            }
        ]
    );
    // The same files through the info dictionary alone and through `from_vec`.
    let info = Torrent::from_info_bytes(t.info_bytes()).unwrap();
    assert_eq!(info.files(), t.files());
    let owned = Torrent::from_vec(bytes.clone()).unwrap();
    assert_eq!(owned.files(), t.files());
    assert_eq!(owned.as_bytes(), &bytes[..]);
    assert_eq!(owned.info_hash(), t.info_hash());
    assert_eq!(t.file_path(&files[0]), std::path::Path::new("t/a/b/c.txt"));
}

#[test]
fn errors_name_the_file_and_the_byte() {
    let good = "d6:lengthi1e4:pathl1:aee";
    // (files, key, offset of: the needle found after the file list starts)
    let cases: [(Vec<&str>, &str, &str); 7] = [
        (
            vec![good, "d6:lengthi1e4:pathl1:bi5eee"],
            "info.files[1].path[1]",
            "i5e",
        ),
        (vec![good, "i7e"], "info.files[1]", "i7e"),
        (
            vec![good, good, "d6:lengthi-1e4:pathl1:cee"],
            "info.files[2].length",
            "i-1e",
        ),
        (vec!["d4:pathl1:aee"], "info.files[0].length", "d4:path"),
        (
            vec![good, "d6:lengthi1e4:path3:abce"],
            "info.files[1].path",
            "3:abc",
        ),
        (
            vec![good, "d4:attri9e6:lengthi1e4:pathl1:xee"],
            "info.files[1].attr",
            "i9e",
        ),
        (
            vec![good, "d6:lengthi1e10:path.utf-8l1:xi0eee"],
            "info.files[1].path.utf-8[1]",
            "i0e",
        ),
    ];
    for (files, key, needle) in cases {
        let bytes = torrent(&files, 1);
        let list = find(&bytes, "5:filesl") + 7;
        let at = list + find(&bytes[list..], needle);
        let err = Torrent::from_bytes(&bytes).unwrap_err();
        let (got_key, offset) = match &err {
            Error::WrongType { key, offset, .. }
            | Error::Invalid { key, offset, .. }
            | Error::MissingKey { key, offset } => (key.clone(), *offset),
            other => panic!("{files:?}: unexpected {other}"),
        };
        assert_eq!((got_key.as_str(), offset), (key, at), "{files:?}: {err}");
    }

    // Lengths that overflow, at the length that does it.
    let huge = format!("d6:lengthi{}e4:pathl1:bee", i64::MAX);
    let bytes = torrent(&["d6:lengthi1e4:pathl1:aee", &huge], 1);
    match Torrent::from_bytes(&bytes).unwrap_err() {
        Error::TotalLengthOverflow { key, offset } => {
            assert_eq!(key, "info.files[1].length");
            assert_eq!(offset, find(&bytes, &format!("i{}e", i64::MAX)));
        }
        other => panic!("unexpected {other}"),
    }
    // `files` that is not a list, or an empty one.
    let bytes = b"d4:infod5:filesi1e4:name1:t12:piece lengthi16384e6:pieces0:ee";
    match Torrent::from_bytes(bytes).unwrap_err() {
        Error::WrongType { key, offset, .. } => {
            assert_eq!((key.as_str(), offset), ("info.files", 15))
        }
        other => panic!("unexpected {other}"),
    }
    let bytes = b"d4:infod5:filesle4:name1:t12:piece lengthi16384e6:pieces0:ee";
    match Torrent::from_bytes(bytes).unwrap_err() {
        Error::Invalid { key, offset, .. } => {
            assert_eq!((key.as_str(), offset), ("info.files", 15))
        }
        other => panic!("unexpected {other}"),
    }
    // Broken bencode inside one file dictionary: the decoder's error and
    // offset, whichever file it is in.
    let mut bytes = torrent(&["d6:lengthi1e4:pathl1:aee", "d6:lengthi1e4:pathl1:bee"], 2);
    let at = find(&bytes, "i1e4:pathl1:b") + 1;
    bytes[at] = b'x';
    match Torrent::from_bytes(&bytes).unwrap_err() {
        Error::Bencode(e) => assert_eq!(e.offset, at),
        other => panic!("unexpected {other}"),
    }
}

#[test]
fn a_hundred_thousand_files_in_folders() {
    let n = 100_000;
    let files: Vec<String> = (0..n)
        .map(|i| format!("d6:lengthi{}e4:pathl4:d{:03}6:f{:05}ee", i % 3, i / 1000, i))
        .collect();
    let refs: Vec<&str> = files.iter().map(String::as_str).collect();
    let total: u64 = (0..n).map(|i| i % 3).sum();
    let t = Torrent::from_bytes(&torrent(&refs, total)).unwrap();
    assert_eq!(t.files().len(), n as usize);
    assert_eq!(t.total_length(), total);
    assert!(t.warnings().is_empty());
    let last = t.files().last().unwrap();
    assert_eq!(last.path(), "d099/f99999");
    assert_eq!(last.offset, total - last.length);
}

/// A v2 `file tree` node for a file of `length` bytes.
fn v2_file(length: u64) -> String {
    format!(
        "d0:d6:lengthi{length}e11:pieces root32:{}ee",
        "r".repeat(32)
    )
}

#[test]
fn v2_file_trees_are_walked_in_order_with_padding() {
    let tree = format!(
        "d1:ad1:b{}1:c{}e1:d{}e",
        v2_file(3),
        v2_file(16384),
        v2_file(5)
    );
    let info = format!("d9:file tree{tree}12:meta versioni2e4:name1:t12:piece lengthi16384ee");
    let t = Torrent::from_info_bytes(info.as_bytes()).unwrap();
    let files: Vec<(&str, u64, u64, bool)> = t
        .files()
        .iter()
        .map(|f| (f.path(), f.offset, f.length, f.is_padding()))
        .collect();
    assert_eq!(
        files,
        [
            ("a/b", 0, 3, false),
            (".pad/16381", 3, 16381, true),
            ("a/c", 16384, 16384, false),
            ("d", 32768, 5, false),
            (".pad/16379", 32773, 16379, true),
        ]
    );
    assert!(t.is_multi_file());
    assert_eq!(t.files()[0].pieces_root(), Some([b'r'; 32]));
    assert!(t.files()[1].pieces_root().is_none() && t.files()[1].original_path().is_empty());
    assert_eq!(t.num_pieces(), 3);

    // One file named like the torrent: a single-file torrent, whose file
    // takes the torrent's sanitised name (and warns once, for the name).
    let info = format!(
        "d9:file treed3:CON{}e12:meta versioni2e4:name3:CON12:piece lengthi16384ee",
        v2_file(7)
    );
    let t = Torrent::from_info_bytes(info.as_bytes()).unwrap();
    assert!(!t.is_multi_file());
    assert_eq!(t.files()[0].path(), "CON_");
    assert_eq!(t.files()[0].original_path(), "CON");
    assert_eq!(t.warnings().len(), 1, "{:?}", t.warnings());
    // The same file under another name: a folder of one file.
    let info = format!(
        "d9:file treed3:CON{}e12:meta versioni2e4:name1:t12:piece lengthi16384ee",
        v2_file(7)
    );
    let t = Torrent::from_info_bytes(info.as_bytes()).unwrap();
    assert!(t.is_multi_file());
    assert_eq!(t.files()[0].path(), "CON_");
}
