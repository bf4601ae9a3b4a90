//! rustico against real peers on 127.0.0.1, through a real opentracker:
//! libtorrent seeds and rustico downloads; rustico seeds and aria2c and
//! libtorrent download. Every byte is compared.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::*;

/// Creates a torrent of `argv[1]` (a folder) announcing to `argv[2]`,
/// written to `argv[3]`; `argv[4]` is "v1" for a v1-only torrent, else
/// libtorrent's default hybrid v1+v2 (with padding files). Prints the v1
/// info-hash.
const CREATE_SCRIPT: &str = r#"
import libtorrent as lt, sys, os
src, tracker, out, kind = sys.argv[1:5]
fs = lt.file_storage()
lt.add_files(fs, src)
flags = lt.create_torrent.v1_only if kind == "v1" else 0
ct = lt.create_torrent(fs, 32768, flags=flags)
ct.add_tracker(tracker)
lt.set_piece_hashes(ct, os.path.dirname(src))
data = lt.bencode(ct.generate())
open(out, "wb").write(data)
# `info_hash()` is the best hash: v2 (truncated) for a hybrid torrent.
print(lt.torrent_info(out).info_hashes().v1)
"#;

fn unhex(hex: &str) -> [u8; 20] {
    let mut out = [0u8; 20];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
    }
    out
}

fn libtorrent_create(src: &Path, tracker: &str, out: &Path, kind: &str) -> [u8; 20] {
    let hex = rustico_testkit::run_python(
        CREATE_SCRIPT,
        &[src.to_str().unwrap(), tracker, out.to_str().unwrap(), kind],
    )
    .unwrap();
    unhex(hex.trim())
}

fn download_through_tracker(torrent: &Path, out_dir: &Path, config: &Path) {
    let mut cmd = rustico();
    cmd.arg("download")
        .arg(torrent)
        .arg("-o")
        .arg(out_dir)
        .args(["--port", "0"])
        .arg("--config")
        .arg(config);
    let out = output_with_timeout(cmd, Duration::from_secs(120), "rustico download");
    assert!(
        out.status.success(),
        "download failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn libtorrent_seeds_and_rustico_downloads(kind: &str) {
    if !rustico_testkit::require_libtorrent() || !rustico_testkit::require("opentracker") {
        return;
    }
    let dir = rustico_testkit::temp_dir().unwrap();
    let seed_dir = dir.path().join("seed");
    let files = content(
        11,
        &[
            ("one.bin", 1_000_000),
            ("sub/two.bin", 2_345_678),
            ("sub/three.txt", 5),
        ],
    );
    write_files(&seed_dir.join("multi"), &files);
    // The torrent names the tracker's port; the tracker whitelists the hash.
    let port = rustico_testkit::free_port();
    let url = format!("http://127.0.0.1:{port}/announce");
    let torrent = dir.path().join("multi.torrent");
    let hash = libtorrent_create(&seed_dir.join("multi"), &url, &torrent, kind);
    let tracker = start_tracker_on(port, &[hash]);
    let lt_port = rustico_testkit::free_port();
    let _seed = libtorrent_peer(&torrent, &seed_dir, lt_port, "seed");
    let config = config_in(dir.path());
    let out_dir = dir.path().join("download");
    download_through_tracker(&torrent, &out_dir, &config);
    assert_files(&out_dir.join("multi"), &files);
    drop(tracker);
}

/// Opentracker on a chosen port (the torrent names it before it starts).
fn start_tracker_on(port: u16, hashes: &[[u8; 20]]) -> rustico_testkit::Opentracker {
    rustico_testkit::Opentracker::start_on(([127, 0, 0, 1], port).into(), hashes).unwrap()
}

#[test]
fn libtorrent_seeds_a_v1_multi_file_torrent_and_rustico_downloads_it() {
    libtorrent_seeds_and_rustico_downloads("v1");
}

#[test]
fn libtorrent_seeds_a_hybrid_torrent_with_padding_and_rustico_downloads_it() {
    libtorrent_seeds_and_rustico_downloads("hybrid");
}

#[test]
fn rustico_seeds_and_aria2c_and_libtorrent_download() {
    let have_aria2 = rustico_testkit::require("aria2c");
    let have_lt = rustico_testkit::require_libtorrent();
    if !rustico_testkit::require("opentracker") || !(have_aria2 || have_lt) {
        return;
    }
    let dir = rustico_testkit::temp_dir().unwrap();
    let seed_dir = dir.path().join("seed");
    let files = content(21, &[("big.bin", 6_000_000), ("small/x.txt", 77)]);
    write_files(&seed_dir.join("share"), &files);
    let port = rustico_testkit::free_port();
    let url = format!("http://127.0.0.1:{port}/announce");
    let torrent = create_torrent(
        &seed_dir.join("share"),
        &dir.path().join("share.torrent"),
        &["--tracker", &url, "--piece-length", "65536"],
    );
    let _tracker = start_tracker_on(port, &[info_hash(&torrent)]);
    let config = config_in(dir.path());
    let (_seeder, _) = start_seeder(&torrent, &seed_dir, &config);

    let aria_dir = dir.path().join("aria2");
    let aria = have_aria2.then(|| {
        std::process::Command::new("aria2c")
            .arg(format!("--dir={}", aria_dir.display()))
            .args([
                "--seed-time=0",
                "--enable-dht=false",
                "--enable-dht6=false",
                "--bt-enable-lpd=false",
                "--enable-peer-exchange=false",
                "--file-allocation=none",
                "--summary-interval=0",
                "--console-log-level=warn",
            ])
            .arg(format!("--listen-port={}", rustico_testkit::free_port()))
            .arg(&torrent)
            .stdout(Stdio::null())
            .spawn()
            .unwrap()
    });
    let lt_dir = dir.path().join("libtorrent");
    let lt = have_lt.then(|| {
        std::fs::create_dir_all(&lt_dir).unwrap();
        rustico_testkit::spawn_python(
            LIBTORRENT_PEER,
            &[
                torrent.to_str().unwrap(),
                lt_dir.to_str().unwrap(),
                &rustico_testkit::free_port().to_string(),
                "leech",
            ],
        )
        .unwrap()
    });
    if let Some(mut lt) = lt {
        wait_for_line(&mut lt, "READY");
        wait_for_line(&mut lt, "DONE");
        assert_files(&lt_dir.join("share"), &files);
    }
    if let Some(mut aria) = aria {
        let status = wait_with_timeout(&mut aria, Duration::from_secs(120), "aria2c");
        assert!(status.success(), "aria2c exited with {status}");
        assert_files(&aria_dir.join("share"), &files);
    }
}

/// libtorrent's default torrent of four files of 100,000 bytes: a hybrid
/// v1+v2 torrent whose three padding files all have the same size, so the
/// same path `.pad/31072`.
/// Files of a torrent, `(relative path, bytes)`.
type Files = Vec<(String, Vec<u8>)>;

fn album_with_equal_pads(dir: &Path, tracker_port: u16) -> (Files, PathBuf, [u8; 20]) {
    let files = content(
        31,
        &[
            ("a.bin", 100_000),
            ("b.bin", 100_000),
            ("c.bin", 100_000),
            ("d.bin", 100_000),
        ],
    );
    write_files(&dir.join("seed").join("album"), &files);
    let url = format!("http://127.0.0.1:{tracker_port}/announce");
    let torrent = dir.join("album.torrent");
    let hash = libtorrent_create(&dir.join("seed").join("album"), &url, &torrent, "hybrid");
    let info = rustico()
        .args(["info", "--json"])
        .arg(&torrent)
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    let pads: Vec<&str> = json["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["path"].as_str())
        .filter(|p| p.contains(".pad/"))
        .collect();
    assert!(pads.is_empty(), "info lists padding as files: {pads:?}");
    (files, torrent, hash)
}

/// Panics if any `.pad` file or folder exists below `root`.
fn assert_no_pad(root: &Path) {
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            assert!(
                !path
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with(".pad"),
                "padding on disk: {}",
                path.display()
            );
            if path.is_dir() {
                stack.push(path);
            }
        }
    }
}

#[test]
fn libtorrent_hybrid_with_equal_pads_rechecks_whole_and_rustico_seeds_it_to_libtorrent() {
    if !rustico_testkit::require_libtorrent() || !rustico_testkit::require("opentracker") {
        return;
    }
    let dir = rustico_testkit::temp_dir().unwrap();
    let port = rustico_testkit::free_port();
    let (files, torrent, hash) = album_with_equal_pads(dir.path(), port);
    let _tracker = start_tracker_on(port, &[hash]);
    let config = config_in(dir.path());
    let seed_dir = dir.path().join("seed");

    // A recheck of the original content (which has no `.pad` files) finds
    // every piece: `download` into it has nothing to fetch and exits 0.
    download_through_tracker(&torrent, &seed_dir, &config);
    let log = std::fs::read_to_string(log_file(dir.path())).unwrap();
    let line = log
        .lines()
        .find(|l| l.contains("pieces already on disk"))
        .unwrap_or_else(|| panic!("no recheck line in {log}"));
    let counts: Vec<u32> = line
        .split("album: ")
        .nth(1)
        .unwrap_or_default()
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    // "album: 16 of 16 pieces already on disk (16 rechecked ...)".
    assert!(
        counts.len() >= 2 && counts[0] == counts[1] && counts[0] == 16,
        "{line}"
    );
    assert_no_pad(&seed_dir);

    let (_seeder, _) = start_seeder(&torrent, &seed_dir, &config);
    let lt_dir = libtorrent_downloads(&torrent, dir.path());
    assert_files(&lt_dir.join("album"), &files);
    assert_no_pad(&seed_dir);
}

#[test]
fn libtorrent_seeds_a_hybrid_with_equal_pads_and_rustico_downloads_no_pad_on_disk() {
    if !rustico_testkit::require_libtorrent() || !rustico_testkit::require("opentracker") {
        return;
    }
    let dir = rustico_testkit::temp_dir().unwrap();
    let port = rustico_testkit::free_port();
    let (files, torrent, hash) = album_with_equal_pads(dir.path(), port);
    let _tracker = start_tracker_on(port, &[hash]);
    let _seed = libtorrent_peer(
        &torrent,
        &dir.path().join("seed"),
        rustico_testkit::free_port(),
        "seed",
    );
    let config = config_in(dir.path());
    let out_dir = dir.path().join("download");
    download_through_tracker(&torrent, &out_dir, &config);
    assert_files(&out_dir.join("album"), &files);
    assert_no_pad(&out_dir);
}
