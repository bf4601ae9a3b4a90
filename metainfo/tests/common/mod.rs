//! Shapes of test data shared by the differential tests: files and folders
//! written into a temporary directory, with the fields a torrent of them
//! should carry.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use rustico_metainfo::{Torrent, TorrentBuilder, MAX_ELEMENT_LENGTH};

/// One input for the torrent creators, and the fields to give them.
#[derive(Debug, Clone)]
pub struct Shape {
    /// Short name for messages.
    pub label: &'static str,
    /// The file or folder to make a torrent of.
    pub source: PathBuf,
    pub piece_length: u32,
    pub private: bool,
    pub tiers: Vec<Vec<String>>,
    pub web_seeds: Vec<String>,
    pub comment: Option<String>,
    pub creator: Option<String>,
}

impl Shape {
    /// Our builder with this shape's fields.
    pub fn builder(&self) -> TorrentBuilder {
        let mut builder = TorrentBuilder::new(&self.source)
            .piece_length(self.piece_length)
            .private(self.private);
        for tier in &self.tiers {
            builder = builder.tracker_tier(tier.clone()).unwrap();
        }
        for seed in &self.web_seeds {
            builder = builder.web_seed(seed.clone()).unwrap();
        }
        if let Some(c) = &self.comment {
            builder = builder.comment(c.clone());
        }
        if let Some(c) = &self.creator {
            builder = builder.created_by(c.clone());
        }
        builder
    }
}

fn write(path: &Path, len: usize, seed: u64) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, rustico_testkit::pseudo_random_bytes(seed, len)).unwrap();
}

const K16: u32 = 16 * 1024;

/// Writes the shapes below `root`. `mktorrent_safe` leaves out names whose
/// order differs between per-component and whole-path sorting.
pub fn make_shapes(root: &Path, mktorrent_safe: bool) -> Vec<Shape> {
    let tracker = "http://127.0.0.1:6969/announce".to_string();
    let plain = |label, source: PathBuf, piece_length| Shape {
        label,
        source,
        piece_length,
        private: false,
        tiers: vec![vec![tracker.clone()]],
        web_seeds: Vec::new(),
        comment: None,
        creator: None,
    };
    let mut shapes = Vec::new();

    let p = root.join("s1/one-byte.bin");
    write(&p, 1, 1);
    shapes.push(plain("single file of one byte", p, K16));

    let p = root.join("s2/over.bin");
    write(&p, 3 * K16 as usize + 1, 2);
    shapes.push(plain("single file one byte over a piece boundary", p, K16));

    let p = root.join("s3/under.bin");
    write(&p, 3 * 32 * 1024 - 1, 3);
    shapes.push(plain(
        "single file one byte under a piece boundary",
        p,
        32 * 1024,
    ));

    let d = root.join("s4/nested");
    write(&d.join("a/b/c/deep.txt"), 40_000, 4);
    write(&d.join("a/empty.txt"), 0, 0);
    write(&d.join("z-empty"), 0, 0);
    write(&d.join("mid/exact.bin"), 2 * K16 as usize, 5);
    write(&d.join("mid/small.bin"), 7, 6);
    write(&d.join("ünïcødé/日本語.txt"), 5000, 7);
    write(&d.join("Ω.bin"), 17, 8);
    write(&d.join(".hidden/h.txt"), 300, 9);
    if !mktorrent_safe {
        // `a.txt` sorts after the folder `a` per component, before it per whole path.
        write(&d.join("a.txt"), 123, 10);
    }
    shapes.push(plain("nested folders, empty files, unicode names", d, K16));

    let d = root.join("s5/one-in-folder");
    write(&d.join("only.bin"), 2 * 64 * 1024, 11);
    shapes.push(plain(
        "folder with one file of exactly two pieces",
        d,
        64 * 1024,
    ));

    let d = root.join("s6/mib");
    write(&d.join("x.bin"), 1024 * 1024 + 1, 12);
    write(&d.join("y.bin"), 512 * 1024 - 1, 13);
    shapes.push(plain("1 MiB pieces", d, 1024 * 1024));

    let p = root.join("s7/big-pieces.bin");
    write(&p, 100_000, 14);
    shapes.push(plain("16 MiB pieces, small data", p, 16 * 1024 * 1024));

    let d = root.join("s8/fields");
    write(&d.join("f1"), 50_000, 15);
    write(&d.join("f2"), 50_001, 16);
    shapes.push(Shape {
        label: "private, tiers, web seeds, comment, creator",
        source: d,
        piece_length: 256 * 1024,
        private: true,
        tiers: vec![
            vec![tracker.clone(), "udp://127.0.0.1:6969/announce".into()],
            vec!["http://127.0.0.2:80/announce".into()],
        ],
        web_seeds: vec![
            "http://127.0.0.1:8080/seed/".into(),
            "http://127.0.0.1:8081/".into(),
        ],
        comment: Some("a comment, with ünïcode".into()),
        creator: Some("rustico test".into()),
    });

    let d = root.join("s9/many");
    for i in 0..40 {
        write(
            &d.join(format!("dir{}/file{i:02}", i % 4)),
            (i * 997) % 5000,
            100 + i as u64,
        );
    }
    shapes.push(Shape {
        web_seeds: vec!["http://127.0.0.1:8080/one".into()],
        ..plain("40 small files spanning pieces", d, K16)
    });
    shapes
}

/// Lowercase hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    rustico_testkit::hex(bytes)
}

/// Bytes from lowercase hex.
pub fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

/// A JSON string literal.
pub fn json_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The properties every sanitised path has, checked from outside: each
/// element a safe portable name, every file inside the download folder,
/// no two files (ignoring ASCII case) at one path or at a folder of another.
pub fn assert_safe(t: &Torrent) {
    let reserved = |e: &str| {
        let stem = e
            .split('.')
            .next()
            .unwrap()
            .trim_end_matches(' ')
            .to_ascii_uppercase();
        ["CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"].contains(&stem.as_str())
            || ((stem.starts_with("COM") || stem.starts_with("LPT"))
                && ["1", "2", "3", "4", "5", "6", "7", "8", "9", "¹", "²", "³"]
                    .contains(&&stem[3..]))
    };
    let root = Path::new("/download");
    let mut seen = std::collections::HashSet::new();
    let mut folders = std::collections::HashSet::new();
    for f in t.files() {
        assert!(!f.path().is_empty());
        let name = t.name().to_string();
        for e in f.path_elements().chain([name.as_str()]) {
            assert!(!e.is_empty() && e != "." && e != "..", "{e:?}");
            assert!(!e.contains(['/', '\\', '\0']), "{e:?}");
            assert!(!e.chars().any(char::is_control), "{e:?}");
            assert!(!reserved(e), "{e:?}");
            assert!(e.len() <= MAX_ELEMENT_LENGTH, "{e:?}");
            assert!(!e.ends_with(['.', ' ']), "{e:?}");
        }
        let on_disk = root.join(t.file_path(f));
        assert!(on_disk.starts_with(root));
        assert!(t
            .file_path(f)
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_))));
        if !f.is_padding() {
            let key = f.path_string().to_ascii_lowercase();
            assert!(seen.insert(key.clone()), "two files at {key}");
            let elements: Vec<&str> = f.path_elements().collect();
            for cut in 1..elements.len() {
                folders.insert(elements[..cut].join("/").to_ascii_lowercase());
            }
        }
    }
    for key in &seen {
        assert!(!folders.contains(key), "{key} is a file and a folder");
    }
}
