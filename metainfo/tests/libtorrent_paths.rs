//! Differential test against libtorrent 2.0 (issue 21): a few hundred
//! generated torrents with hostile path lists (`..`, separators, control
//! bytes, device names, over-long and duplicate names, padding files,
//! random bytes), loaded by libtorrent in one Python process and here.
//! Whenever libtorrent loads one, we load it too, with every path safe
//! and inside the torrent's folder; and when no name needed sanitising,
//! our duplicate renaming gives exactly libtorrent's paths.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use rustico_bencode::{encode, OwnedValue};
use rustico_metainfo::{Torrent, Warning};

const SCRIPT: &str = r#"
import sys
import libtorrent as lt

for i, path in enumerate(open(sys.argv[1]).read().split("\n")):
    try:
        ti = lt.torrent_info(path)
    except Exception as e:
        print("E\t%d\t%s" % (i, str(e).replace("\t", " ")))
        continue
    fs = ti.files()
    print("T\t%d\t%d" % (i, fs.num_files()))
    for f in range(fs.num_files()):
        try:
            name = fs.file_path(f).encode("utf-8", "surrogateescape").hex()
        except Exception:
            name = "-"
        pad = 1 if fs.file_flags(f) & lt.file_storage.flag_pad_file else 0
        print("F\t%s\t%d" % (name, pad))
"#;

/// A small seeded generator (SplitMix64), so every run tests the same cases.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Names that are already safe, chosen to collide (case, extensions,
/// numbered names, a file where another file has a folder).
const PLAIN: &[&str] = &[
    "a",
    "A",
    "b",
    "a.txt",
    "A.TXT",
    "bar.txt",
    "bar.1.txt",
    "bar.2.txt",
    "d",
    "D",
    "x.tar.gz",
    "X.tar.gz",
    "é",
    "É",
    ".bashrc",
    "a.1",
    "a.2",
    "noext",
];

/// Names that need sanitising.
const HOSTILE: &[&[u8]] = &[
    b"..",
    b".",
    b"",
    b"/",
    b"\\",
    b"/etc",
    b"a/../../b",
    b"..\\..\\w",
    b"C:",
    b"c:x",
    b"CON",
    b"con.txt",
    b"LPT1",
    b"aux .c",
    b"a\x01b",
    b"a\x00b",
    b"\x7f",
    b"x. ",
    b"y...",
    b" ",
    b"\xff\xfe",
    b"COM9.tar",
];

fn element(rng: &mut Rng, hostile: bool) -> Vec<u8> {
    if !hostile {
        return rng.pick(PLAIN).as_bytes().to_vec();
    }
    match rng.below(5) {
        0 | 1 => rng.pick(HOSTILE).to_vec(),
        2 => rng.pick(PLAIN).as_bytes().to_vec(),
        3 => (0..rng.below(6)).map(|_| rng.next() as u8).collect(),
        _ => {
            let stem = "n".repeat(240 + rng.below(40));
            format!("{stem}{}", rng.pick(&["", ".txt", ".mkv"])).into_bytes()
        }
    }
}

/// One generated torrent; `hostile` chooses the name pools.
fn generate(rng: &mut Rng, hostile: bool) -> Vec<u8> {
    let name = if hostile && rng.below(3) == 0 {
        element(rng, true)
    } else {
        b"torrent".to_vec()
    };
    let mut info = vec![
        ("name", OwnedValue::bytes(name)),
        ("piece length", OwnedValue::from(16384)),
    ];
    let total: i64;
    if hostile && rng.below(8) == 0 {
        total = 1 + rng.below(100) as i64;
        info.push(("length", OwnedValue::from(total)));
    } else {
        let mut files = Vec::new();
        let mut sum = 0;
        for _ in 0..1 + rng.below(10) {
            // An empty path list is rare: libtorrent refuses it.
            let depth = match rng.below(40) {
                0 if hostile => 0,
                _ => 1 + rng.below(if hostile { 4 } else { 3 }),
            };
            let path: Vec<OwnedValue> = (0..depth)
                .map(|_| OwnedValue::bytes(element(rng, hostile)))
                .collect();
            let length = rng.below(4) as i64;
            let mut entry = vec![
                ("length", OwnedValue::from(length)),
                ("path", OwnedValue::List(path)),
            ];
            if hostile && rng.below(6) == 0 {
                entry.push(("attr", OwnedValue::from("p")));
            }
            sum += length;
            files.push(OwnedValue::dict(entry));
        }
        if sum == 0 {
            // libtorrent and we refuse empty torrents; make this one count.
            files.push(OwnedValue::dict([
                ("length", OwnedValue::from(1)),
                ("path", OwnedValue::list([OwnedValue::from("last")])),
            ]));
            sum = 1;
        }
        total = sum;
        info.push(("files", OwnedValue::List(files)));
    }
    let pieces = (total + 16383) / 16384;
    info.push(("pieces", OwnedValue::bytes(vec![3u8; pieces as usize * 20])));
    encode(&OwnedValue::dict([("info", OwnedValue::dict(info))]))
}

/// libtorrent's verdict on one torrent: `None` if it refused it, else
/// (path hex or "-", padding) for each file.
type Verdict = Option<Vec<(String, bool)>>;

fn parse_verdicts(out: &str, count: usize) -> Vec<Verdict> {
    let mut verdicts: Vec<Verdict> = vec![None; count];
    let mut errors = std::collections::BTreeMap::new();
    let mut current = None;
    for line in out.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        match f[0] {
            "E" => {
                *errors.entry(f[2].to_string()).or_insert(0) += 1;
                current = None;
            }
            "T" => {
                let i: usize = f[1].parse().unwrap();
                verdicts[i] = Some(Vec::new());
                current = Some(i);
            }
            "F" => {
                let i = current.unwrap();
                verdicts[i]
                    .as_mut()
                    .unwrap()
                    .push((f[1].to_string(), f[2] == "1"));
            }
            other => panic!("unexpected line {other:?}"),
        }
    }
    eprintln!("libtorrent refused: {errors:?}");
    verdicts
}

#[test]
fn whatever_libtorrent_loads_we_load_safely() {
    if !rustico_testkit::require_libtorrent() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(0x5eed_0021);
    let cases: Vec<(Vec<u8>, bool)> = (0..400)
        .map(|i| {
            let hostile = i % 4 != 0;
            (generate(&mut rng, hostile), hostile)
        })
        .collect();
    let mut paths = Vec::new();
    for (i, (bytes, _)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("{i}.torrent"));
        std::fs::write(&path, bytes).unwrap();
        paths.push(path.to_str().unwrap().to_string());
    }
    let list = dir.path().join("list.txt");
    std::fs::write(&list, paths.join("\n")).unwrap();
    let out = rustico_testkit::run_python(SCRIPT, &[list.to_str().unwrap()]).unwrap();
    let verdicts = parse_verdicts(&out, cases.len());

    let (mut loaded_by_both, mut compared_exactly, mut renamed_seen, mut sanitised_seen) =
        (0, 0, 0, 0);
    for (i, ((bytes, hostile), verdict)) in cases.iter().zip(&verdicts).enumerate() {
        let ours = Torrent::from_bytes(bytes);
        let Some(theirs) = verdict else {
            if let Ok(t) = &ours {
                common::assert_safe(t);
            }
            continue;
        };
        let t = ours.unwrap_or_else(|e| panic!("case {i}: libtorrent loads it, we say {e}"));
        common::assert_safe(&t);
        loaded_by_both += 1;
        assert_eq!(t.files().len(), theirs.len(), "case {i}");
        let sanitised = t.warnings().iter().any(|w| {
            matches!(
                w,
                Warning::NameSanitized { .. } | Warning::PathSanitized { .. }
            )
        });
        sanitised_seen += usize::from(sanitised);
        renamed_seen += usize::from(
            t.warnings()
                .iter()
                .any(|w| matches!(w, Warning::DuplicateRenamed { .. })),
        );
        let pads = t.files().iter().any(|f| f.is_padding());
        // Bytes that are not UTF-8: U+FFFD here, `_` in libtorrent.
        let not_utf8 = t.original_name().contains('\u{fffd}')
            || t.files()
                .iter()
                .any(|f| f.original_path().contains('\u{fffd}'));
        if !sanitised && !pads && !not_utf8 {
            // Same names in, same names out: the duplicate rule is libtorrent's.
            let ours: Vec<String> = t
                .files()
                .iter()
                .map(|f| rustico_testkit::hex(t.file_path(f).to_str().unwrap().as_bytes()))
                .collect();
            let theirs: Vec<String> = theirs.iter().map(|(p, _)| p.clone()).collect();
            assert_eq!(ours, theirs, "case {i} (hostile: {hostile})");
            compared_exactly += 1;
        }
    }
    eprintln!(
        "{} cases: {loaded_by_both} loaded by both, {compared_exactly} with identical paths, \
         {renamed_seen} with duplicates renamed, {sanitised_seen} with names sanitised",
        cases.len()
    );
    // The generator must exercise what it claims to.
    assert!(loaded_by_both >= 300, "{loaded_by_both}");
    assert!(compared_exactly >= 100, "{compared_exactly}");
    assert!(renamed_seen >= 50, "{renamed_seen}");
    assert!(sanitised_seen >= 100, "{sanitised_seen}");
}
