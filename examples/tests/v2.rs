//! BitTorrent v2 (BEP 52) torrents between rustico and libtorrent on
//! 127.0.0.1, through opentracker: v2-only both ways. The swarm of a
//! v2-only torrent goes by the truncated SHA-256 info-hash; pieces are
//! checked against merkle roots.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;

/// `argv`: folder, tracker URL, output path, piece length. Writes
/// libtorrent's v2-only torrent of the folder; prints its v2 info-hash.
const CREATE_V2: &str = r#"
import libtorrent as lt, sys, os
src, tracker, out, piece = sys.argv[1:5]
fs = lt.file_storage()
lt.add_files(fs, src)
ct = lt.create_torrent(fs, int(piece), flags=lt.create_torrent.v2_only)
ct.add_tracker(tracker)
lt.set_piece_hashes(ct, os.path.dirname(src))
open(out, "wb").write(lt.bencode(ct.generate()))
print(lt.torrent_info(out).info_hashes().v2)
"#;

/// libtorrent's v2-only torrent of `src` at `out`; returns its v2
/// info-hash in hex.
fn libtorrent_create_v2(src: &Path, tracker: &str, out: &Path, piece_length: u32) -> String {
    let hex = rustico_testkit::run_python(
        CREATE_V2,
        &[
            src.to_str().unwrap(),
            tracker,
            out.to_str().unwrap(),
            &piece_length.to_string(),
        ],
    )
    .unwrap();
    assert!(is_v2_only(out), "libtorrent wrote no v2-only torrent");
    hex.trim().to_string()
}

fn files() -> Vec<(String, Vec<u8>)> {
    // A file of several pieces (a piece layer), one of less than a block,
    // one of exactly one piece (no layer) and a last piece cut short.
    content(
        52,
        &[
            ("big.bin", 300_001),
            ("tiny.txt", 100),
            ("sub/one-piece.bin", 32_768),
            ("sub/odd.bin", 70_000),
        ],
    )
}

fn leech(torrent: &Path, out_dir: &Path, config: &Path) {
    let mut cmd = rustico();
    cmd.arg("download")
        .arg(torrent)
        .arg("-o")
        .arg(out_dir)
        .args(["--port", "0"])
        .arg("--config")
        .arg(config);
    let out = output_with_timeout(cmd, Duration::from_secs(90), "rustico download");
    assert!(
        out.status.success(),
        "download failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn is_v2_only(torrent: &Path) -> bool {
    let t = rustico_metainfo::Torrent::from_file(torrent).unwrap();
    t.has_v2() && !t.has_v1()
}

#[test]
fn libtorrent_seeds_a_v2_only_torrent_and_rustico_downloads_it() {
    if !rustico_testkit::require_libtorrent() || !rustico_testkit::require("opentracker") {
        return;
    }
    let dir = rustico_testkit::temp_dir().unwrap();
    let seed_dir = dir.path().join("seed");
    let files = files();
    write_files(&seed_dir.join("v2"), &files);
    let port = rustico_testkit::free_port();
    let url = format!("http://127.0.0.1:{port}/announce");
    let torrent = dir.path().join("v2.torrent");
    libtorrent_create_v2(&seed_dir.join("v2"), &url, &torrent, 32768);
    let _tracker = rustico_testkit::Opentracker::start_on(
        ([127, 0, 0, 1], port).into(),
        &[info_hash(&torrent)],
    )
    .unwrap();
    let mut seed = rustico_testkit::spawn_python(
        LIBTORRENT_PEER,
        &[
            torrent.to_str().unwrap(),
            seed_dir.to_str().unwrap(),
            &rustico_testkit::free_port().to_string(),
            "seed",
        ],
    )
    .unwrap();
    wait_for_line(&mut seed, "READY");
    let out_dir = dir.path().join("download");
    leech(&torrent, &out_dir, &config_in(dir.path()));
    assert_files(&out_dir.join("v2"), &files);
}

#[test]
fn rustico_seeds_a_v2_only_torrent_it_created_and_libtorrent_downloads_it() {
    if !rustico_testkit::require_libtorrent() || !rustico_testkit::require("opentracker") {
        return;
    }
    let dir = rustico_testkit::temp_dir().unwrap();
    let seed_dir = dir.path().join("seed");
    let files = files();
    write_files(&seed_dir.join("v2"), &files);
    let port = rustico_testkit::free_port();
    let url = format!("http://127.0.0.1:{port}/announce");
    let torrent = create_torrent(
        &seed_dir.join("v2"),
        &dir.path().join("v2.torrent"),
        &[
            "--tracker",
            &url,
            "--format",
            "v2",
            "--piece-length",
            "32768",
        ],
    );
    assert!(is_v2_only(&torrent));
    let _tracker = rustico_testkit::Opentracker::start_on(
        ([127, 0, 0, 1], port).into(),
        &[info_hash(&torrent)],
    )
    .unwrap();
    let (_seeder, _) = start_seeder(&torrent, &seed_dir, &config_in(dir.path()));
    let lt_dir = dir.path().join("libtorrent");
    std::fs::create_dir_all(&lt_dir).unwrap();
    let mut lt = rustico_testkit::spawn_python(
        LIBTORRENT_PEER,
        &[
            torrent.to_str().unwrap(),
            lt_dir.to_str().unwrap(),
            &rustico_testkit::free_port().to_string(),
            "leech",
        ],
    )
    .unwrap();
    wait_for_line(&mut lt, "READY");
    wait_for_line(&mut lt, "DONE");
    assert_files(&lt_dir.join("v2"), &files);
}

/// A `btmh`-only magnet link: the info dictionary comes by `ut_metadata`
/// (checked against the SHA-256 info-hash), then the piece layers by BEP
/// 52 hash requests, checked against each file's pieces root, from a
/// libtorrent seed. One file has 601 pieces, so its layer comes 512
/// hashes at a time with their proofs. The saved `.torrent` holds the
/// layers, and the content matches.
#[test]
fn rustico_downloads_a_v2_only_torrent_from_a_btmh_magnet_link_served_by_libtorrent() {
    if !rustico_testkit::require_libtorrent() {
        return;
    }
    let dir = rustico_testkit::temp_dir().unwrap();
    let seed_dir = dir.path().join("seed");
    let files = content(
        53,
        &[
            ("long.bin", 601 * 16_384 - 100),
            ("short.bin", 3 * 16_384 + 1),
            ("one.bin", 9_000),
        ],
    );
    write_files(&seed_dir.join("mag"), &files);
    let torrent = dir.path().join("mag.torrent");
    let v2 = libtorrent_create_v2(
        &seed_dir.join("mag"),
        "http://127.0.0.1:9/announce",
        &torrent,
        16_384,
    );
    assert_eq!(v2.len(), 64, "{v2}");
    let lt_port = rustico_testkit::free_port();
    let mut seed = rustico_testkit::spawn_python(
        LIBTORRENT_PEER,
        &[
            torrent.to_str().unwrap(),
            seed_dir.to_str().unwrap(),
            &lt_port.to_string(),
            "seed",
        ],
    )
    .unwrap();
    wait_for_line(&mut seed, "READY");
    let link = format!("magnet:?xt=urn:btmh:1220{v2}&x.pe=127.0.0.1:{lt_port}");
    let out_dir = dir.path().join("download");
    let mut cmd = rustico();
    cmd.arg("-v")
        .arg("download")
        .arg(&link)
        .arg("-o")
        .arg(&out_dir)
        .args(["--port", "0"])
        .arg("--config")
        .arg(config_in(dir.path()));
    let out = output_with_timeout(cmd, Duration::from_secs(90), "rustico download");
    assert!(
        out.status.success(),
        "download failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_files(&out_dir.join("mag"), &files);
    let saved = rustico_metainfo::Torrent::from_file(out_dir.join("mag.torrent")).unwrap();
    let original = rustico_metainfo::Torrent::from_file(&torrent).unwrap();
    assert!(saved.has_piece_layers());
    assert_eq!(saved.info_hashes(), original.info_hashes());
    for piece in 0..original.num_pieces() {
        assert_eq!(saved.v2_piece_hash(piece), original.v2_piece_hash(piece));
    }
}
