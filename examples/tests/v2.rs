//! BitTorrent v2 (BEP 52) torrents between rustico and libtorrent on
//! 127.0.0.1, through opentracker: v2-only both ways. The swarm of a
//! v2-only torrent goes by the truncated SHA-256 info-hash; pieces are
//! checked against merkle roots.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;

/// `argv`: folder, tracker URL, output path. Writes libtorrent's v2-only
/// torrent of the folder (32 KiB pieces).
const CREATE_V2: &str = r#"
import libtorrent as lt, sys, os
src, tracker, out = sys.argv[1:4]
fs = lt.file_storage()
lt.add_files(fs, src)
ct = lt.create_torrent(fs, 32768, flags=lt.create_torrent.v2_only)
ct.add_tracker(tracker)
lt.set_piece_hashes(ct, os.path.dirname(src))
open(out, "wb").write(lt.bencode(ct.generate()))
"#;

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
    rustico_testkit::run_python(
        CREATE_V2,
        &[
            seed_dir.join("v2").to_str().unwrap(),
            &url,
            torrent.to_str().unwrap(),
        ],
    )
    .unwrap();
    assert!(is_v2_only(&torrent), "libtorrent wrote no v2-only torrent");
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
