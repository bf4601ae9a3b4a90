//! Differential tests against libtorrent 2.0 (Debian's `python3-libtorrent`)
//! for BitTorrent v2 (BEP 52): for each shape, libtorrent creates a
//! v2-only and a hybrid torrent; we parse each with libtorrent's v1 and v2
//! info-hashes, files (padding included), offsets, piece count and every
//! file's `pieces root`; every piece of the data checks against our v2
//! piece hash; and our builder, given the same files, piece length and
//! creation date, writes the same bytes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use rustico_metainfo::{Magnet, Torrent, TorrentBuilder, TorrentVersion, V2PieceHash};
use rustico_testkit::{hex, pseudo_random_bytes};

const SCRIPT: &str = r#"
import sys
import libtorrent as lt

src, out, piece_length, kind = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
fs = lt.file_storage()
lt.add_files(fs, src)
flags = lt.create_torrent.v2_only if kind == "v2" else 0
ct = lt.create_torrent(fs, piece_length, flags=flags)
import os
lt.set_piece_hashes(ct, os.path.dirname(src))
e = ct.generate()
with open(out, "wb") as f:
    f.write(lt.bencode(e))
ti = lt.torrent_info(out)
hs = ti.info_hashes()
fs = ti.files()
print("T\t%s\t%s\t%d\t%d\t%d" % (str(hs.v1) if hs.has_v1() else "-", str(hs.v2), ti.num_pieces(),
      ti.total_size(), e[b"creation date"]))
print("M\t%s" % lt.make_magnet_uri(ti))
for i in range(fs.num_files()):
    pad = 1 if fs.file_flags(i) & lt.file_storage.flag_pad_file else 0
    root = fs.root(i).to_bytes().hex() if fs.file_size(i) > 0 and not pad else "-"
    print("F\t%s\t%d\t%d\t%d\t%s" % (fs.file_path(i).encode().hex(), fs.file_size(i), fs.file_offset(i), pad, root))
"#;

const K16: usize = 16 * 1024;

fn write(path: &Path, len: usize, seed: u64) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, pseudo_random_bytes(seed, len)).unwrap();
}

/// (label, source, piece length)
fn shapes(root: &Path) -> Vec<(&'static str, PathBuf, u32)> {
    let mut out = Vec::new();
    let p = root.join("single/big.bin");
    write(&p, 5 * 32 * 1024 + 1000, 1);
    out.push(("single file", p, 32 * 1024));

    let d = root.join("many");
    for i in 0..12 {
        write(
            &d.join(format!("f{i:02}.dat")),
            7_000 * i + 13,
            10 + i as u64,
        );
    }
    out.push(("many files", d, K16 as u32));

    let d = root.join("tiny");
    write(&d.join("small.txt"), 100, 30);
    write(&d.join("z.bin"), 3 * K16, 31);
    out.push(("a file smaller than a block", d, 2 * K16 as u32));

    let d = root.join("empty");
    write(&d.join("a.bin"), 40_000, 40);
    write(&d.join("b/empty"), 0, 41);
    write(&d.join("c.bin"), 20_000, 42);
    out.push(("an empty file", d, K16 as u32));

    let d = root.join("exact");
    write(&d.join("one-piece.bin"), 64 * 1024, 50);
    write(&d.join("two-pieces.bin"), 128 * 1024, 51);
    write(&d.join("tail.bin"), 5, 52);
    out.push(("a file exactly one piece long", d, 64 * 1024));

    let d = root.join("deep");
    let mut p = d.clone();
    for level in 0..12 {
        p = p.join(format!("level{level}"));
        write(&p.join("x.bin"), 9_000 + level * 1000, 60 + level as u64);
    }
    out.push(("deep folders", d, K16 as u32));

    let d = root.join("ünïcödé");
    write(&d.join("日本語/ファイル.txt"), 50_000, 70);
    write(&d.join("Ελληνικά.bin"), 17_000, 71);
    write(&d.join("emoji 🎵/♫.ogg"), 1, 72);
    out.push(("non-ASCII names", d, K16 as u32));
    out
}

struct Reported {
    v1: Option<String>,
    v2: String,
    num_pieces: u32,
    total: u64,
    creation_date: i64,
    magnet: String,
    /// (path, size, offset, pad, root)
    files: Vec<(String, u64, u64, bool, Option<String>)>,
}

fn parse_report(out: &str) -> Reported {
    let mut lines = out.lines();
    let t: Vec<&str> = lines.next().unwrap().split('\t').collect();
    assert_eq!(t[0], "T", "{out}");
    Reported {
        v1: (t[1] != "-").then(|| t[1].to_string()),
        v2: t[2].to_string(),
        num_pieces: t[3].parse().unwrap(),
        total: t[4].parse().unwrap(),
        creation_date: t[5].parse().unwrap(),
        magnet: lines
            .next()
            .unwrap()
            .strip_prefix("M\t")
            .unwrap()
            .to_string(),
        files: lines
            .map(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                assert_eq!(f[0], "F", "{out}");
                let path = String::from_utf8(
                    (0..f[1].len())
                        .step_by(2)
                        .map(|i| u8::from_str_radix(&f[1][i..i + 2], 16).unwrap())
                        .collect(),
                )
                .unwrap();
                (
                    path,
                    f[2].parse().unwrap(),
                    f[3].parse().unwrap(),
                    f[4] == "1",
                    (f[5] != "-").then(|| f[5].to_string()),
                )
            })
            .collect(),
    }
}

#[test]
fn v2_and_hybrid_torrents_match_libtorrent() {
    if !rustico_testkit::require_libtorrent() {
        return;
    }
    let dir = rustico_testkit::temp_dir().unwrap();
    let mut checked = 0;
    for (label, source, piece_length) in shapes(dir.path()) {
        for (kind, version) in [
            ("v2", TorrentVersion::V2),
            ("hybrid", TorrentVersion::Hybrid),
        ] {
            let what = format!("{label} ({kind})");
            let out = dir.path().join(format!("{}-{kind}.torrent", checked));
            let report = rustico_testkit::run_python(
                SCRIPT,
                &[
                    source.to_str().unwrap(),
                    out.to_str().unwrap(),
                    &piece_length.to_string(),
                    kind,
                ],
            )
            .unwrap();
            let theirs = parse_report(&report);
            let bytes = std::fs::read(&out).unwrap();
            let t = Torrent::from_bytes(&bytes).unwrap_or_else(|e| panic!("{what}: {e}"));

            // Info-hashes equal libtorrent's `info_hashes()`.
            let hashes = t.info_hashes();
            assert_eq!(hashes.v1.map(|h| h.to_string()), theirs.v1, "{what}");
            assert_eq!(hashes.v2.unwrap().to_string(), theirs.v2, "{what}");
            assert_eq!(t.is_hybrid(), kind == "hybrid", "{what}");
            assert_eq!(t.num_pieces(), theirs.num_pieces, "{what}");
            assert_eq!(t.total_length(), theirs.total, "{what}");
            assert!(t.has_piece_layers(), "{what}");

            // libtorrent's magnet link (`btmh`, with `btih` for a hybrid)
            // names the same hashes, and its info dictionary completes it.
            let magnet = Magnet::parse(&theirs.magnet).unwrap();
            assert_eq!(magnet.info_hashes(), hashes, "{what}: {}", theirs.magnet);
            let from_magnet = Torrent::from_magnet_and_info(&magnet, t.info_bytes()).unwrap();
            assert_eq!(from_magnet.info_hashes(), hashes, "{what}");
            assert_eq!(
                Magnet::parse(&t.magnet().to_string())
                    .unwrap()
                    .info_hashes(),
                hashes
            );
            let mut wrong = magnet.clone();
            wrong.info_hash_v2 = Some(rustico_metainfo::InfoHashV2([0; 32]));
            assert!(Torrent::from_magnet_and_info(&wrong, t.info_bytes()).is_err());

            // Files, padding and roots as libtorrent lists them.
            let ours: Vec<_> = t
                .files()
                .iter()
                .map(|f| {
                    let mut path = t.file_path(f);
                    if f.is_padding() {
                        // libtorrent puts a single file's pad below its name.
                        path = Path::new(t.name()).join(f.path());
                    }
                    (
                        path.to_str().unwrap().to_string(),
                        f.length,
                        f.offset,
                        f.is_padding(),
                        f.pieces_root().map(|r| hex(&r)),
                    )
                })
                .collect();
            assert_eq!(ours, theirs.files, "{what}");

            // Every piece of the real data checks against our v2 hash, and
            // a changed byte does not.
            let root = source.parent().unwrap().to_path_buf();
            for piece in 0..t.num_pieces() {
                let start = u64::from(piece) * u64::from(t.piece_length());
                let index = t.file_index_at(start).unwrap();
                let file = &t.files()[index];
                let expected: V2PieceHash = t.v2_piece_hash(piece).unwrap();
                let data = std::fs::read(root.join(t.file_path(file))).unwrap();
                let from = (start - file.offset) as usize;
                let to = (from + t.piece_length() as usize).min(data.len());
                let mut piece_data = data[from..to].to_vec();
                assert!(
                    expected.matches(&piece_data, t.piece_length()),
                    "{what}: piece {piece}"
                );
                piece_data[0] ^= 1;
                assert!(
                    !expected.matches(&piece_data, t.piece_length()),
                    "{what}: piece {piece}"
                );
            }

            // Our creator writes the same bytes.
            let built = TorrentBuilder::new(&source)
                .piece_length(piece_length)
                .version(version)
                .creation_date(theirs.creation_date)
                .threads(2)
                .build(|_| {}, &AtomicBool::new(false))
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(built.info_hashes(), hashes, "{what}");
            assert!(built.as_bytes() == bytes.as_slice(), "{what}: bytes differ");
            checked += 1;
        }
    }
    assert_eq!(checked, 14);
}
