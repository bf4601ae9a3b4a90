//! The command line on its own and rustico talking to rustico: `info
//! --json`, `create`, `demo`, and `download` from a `seed` on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;

#[test]
fn info_json_has_every_documented_field() {
    let dir = rustico_testkit::temp_dir().unwrap();
    let src = dir.path().join("album");
    let files = content(1, &[("b.bin", 40_000), ("sub/a.txt", 1_000)]);
    write_files(&src, &files);
    let torrent = create_torrent(
        &src,
        &dir.path().join("album.torrent"),
        &[
            "--tracker",
            "http://127.0.0.1:1/announce",
            "--tracker",
            "udp://127.0.0.1:2/announce",
            "--private",
            "--piece-length",
            "16384",
        ],
    );
    let out = rustico()
        .arg("info")
        .arg(&torrent)
        .arg("--json")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let hash = v["info_hash"].as_str().unwrap();
    assert_eq!(hash.len(), 40);
    assert!(hash
        .chars()
        .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)));
    assert_eq!(v["name"], "album");
    assert_eq!(v["total_length"], 41_000);
    assert_eq!(v["piece_length"], 16384);
    assert_eq!(v["num_pieces"], 3);
    assert_eq!(v["private"], true);
    assert_eq!(
        v["trackers"],
        serde_json::json!([
            ["http://127.0.0.1:1/announce"],
            ["udp://127.0.0.1:2/announce"]
        ])
    );
    assert_eq!(
        v["files"],
        serde_json::json!([{ "path": "b.bin", "length": 40_000 }, { "path": "sub/a.txt", "length": 1_000 }])
    );

    // libtorrent, a reference nobody here wrote, agrees on the info-hash.
    if rustico_testkit::require_libtorrent() {
        let theirs = rustico_testkit::run_python(
            "import sys, libtorrent as lt; print(lt.torrent_info(sys.argv[1]).info_hash())",
            &[torrent.to_str().unwrap()],
        )
        .unwrap();
        assert_eq!(theirs.trim(), hash);
    }
}

#[test]
fn bad_input_is_a_clear_error_not_a_panic() {
    let dir = rustico_testkit::temp_dir().unwrap();
    let junk = dir.path().join("junk.torrent");
    std::fs::write(&junk, b"d4:infoi3ee").unwrap();
    let out = rustico().arg("info").arg(&junk).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("junk.torrent"), "{err}");
    let magnet = "magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567";
    let out = rustico().args(["info", magnet]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("names no peers (x.pe) and no trackers"),
        "{err}"
    );
    let out = rustico()
        .args(["info", "magnet:?xt=urn:btih:nothex"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad magnet link"), "{err}");
    let out = rustico()
        .args(["download", "missing.torrent"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let out = rustico().arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for command in ["info", "create", "download", "seed", "demo"] {
        assert!(help.contains(command), "--help lists {command}: {help}");
    }
}

#[test]
fn demo_runs_a_swarm_and_checks_every_byte() {
    let out = output_with_timeout(
        {
            let mut c = rustico();
            c.args(["demo", "--size", "4", "--leechers", "2"]);
            c
        },
        Duration::from_secs(120),
        "rustico demo",
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("every byte checked"), "{err}");
}

#[test]
fn rustico_downloads_from_a_rustico_seed() {
    let dir = rustico_testkit::temp_dir().unwrap();
    let seed_dir = dir.path().join("seed");
    let files = content(
        7,
        &[
            ("a.bin", 700_000),
            ("empty", 0),
            ("nested/b.bin", 1_300_001),
        ],
    );
    write_files(&seed_dir.join("pack"), &files);
    let torrent = create_torrent(
        &seed_dir.join("pack"),
        &dir.path().join("pack.torrent"),
        &["--piece-length", "32768"],
    );
    let config = config_in(dir.path());
    let (_seeder, port) = start_seeder(&torrent, &seed_dir, &config);

    let out_dir = dir.path().join("download");
    let mut cmd = rustico();
    cmd.arg("download")
        .arg(&torrent)
        .arg("-o")
        .arg(&out_dir)
        .args(["--port", "0"])
        .args(["--peer", &format!("127.0.0.1:{port}")])
        .arg("--config")
        .arg(&config);
    let out = output_with_timeout(cmd, Duration::from_secs(90), "rustico download");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "download failed: {err}");
    assert_files(&out_dir.join("pack"), &files);
    assert!(err.contains("complete"), "a summary is printed: {err}");

    let log = std::fs::read_to_string(log_file(dir.path())).unwrap();
    let pieces = log
        .lines()
        .filter(|l| l.contains(": piece ") && l.ends_with(')'))
        .count();
    assert!(
        pieces >= 61,
        "one log line per completed piece, got {pieces}:\n{log}"
    );
    assert!(log.contains("connected"), "{log}");
    assert!(
        log.contains("left:"),
        "peers leaving are logged with a reason: {log}"
    );

    // A second run finds everything on disk and downloads nothing.
    let mut again = rustico();
    again
        .arg("download")
        .arg(&torrent)
        .arg("-o")
        .arg(&out_dir)
        .args(["--port", "0"])
        .arg("--config")
        .arg(&config);
    let out = output_with_timeout(again, Duration::from_secs(30), "second download");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn one_process_serves_two_torrents_on_one_port() {
    let dir = rustico_testkit::temp_dir().unwrap();
    let shared = dir.path().join("shared");
    let first = content(81, &[("first.bin", 500_000)]);
    let second = content(82, &[("second.bin", 700_000)]);
    write_files(&shared, &first);
    write_files(&shared, &second);
    let t1 = create_torrent(
        &shared.join("first.bin"),
        &dir.path().join("first.torrent"),
        &[],
    );
    let t2 = create_torrent(
        &shared.join("second.bin"),
        &dir.path().join("second.torrent"),
        &[],
    );
    let config = config_in(dir.path());
    // `download --seed` with the data already present: both torrents are
    // complete at once and served on one port.
    let _server = ChildGuard(
        rustico()
            .arg("download")
            .arg(&t1)
            .arg(&t2)
            .arg("-o")
            .arg(&shared)
            .args(["--seed", "--port", "0", "--config"])
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let port = listening_port(&log_file(dir.path()));
    rustico_testkit::wait_for_tcp(([127, 0, 0, 1], port).into(), Duration::from_secs(20)).unwrap();
    for (torrent, files, name) in [(&t1, &first, "one"), (&t2, &second, "two")] {
        let out = dir.path().join(name);
        let mut cmd = rustico();
        cmd.arg("download")
            .arg(torrent)
            .arg("-o")
            .arg(&out)
            .args([
                "--port",
                "0",
                "--peer",
                &format!("127.0.0.1:{port}"),
                "--config",
            ])
            .arg(&config);
        let result =
            output_with_timeout(cmd, Duration::from_secs(60), "download from a shared port");
        assert!(
            result.status.success(),
            "{}",
            String::from_utf8_lossy(&result.stderr)
        );
        assert_files(&out, files);
    }
}

#[test]
fn the_config_file_sets_port_and_folder_and_flags_override_it() {
    let dir = rustico_testkit::temp_dir().unwrap();
    let shared = dir.path().join("shared");
    let files = content(91, &[("cfg.bin", 300_000)]);
    write_files(&shared, &files);
    let torrent = create_torrent(
        &shared.join("cfg.bin"),
        &dir.path().join("cfg.torrent"),
        &[],
    );
    let port = rustico_testkit::free_port();
    let cfg = |name: &str, folder: &Path| {
        let path = dir.path().join(name);
        std::fs::write(
            &path,
            format!(
                "listen_port = {port}\ndownload_dir = {:?}\nlog_dir = {:?}\ndht = false\n",
                folder,
                dir.path().join("logs")
            ),
        )
        .unwrap();
        path
    };
    // The seeder takes its port and folder from the config alone.
    let seed_cfg = cfg("seed.toml", &shared);
    let _seeder = ChildGuard(
        rustico()
            .arg("download")
            .arg(&torrent)
            .arg("--seed")
            .arg("--config")
            .arg(&seed_cfg)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    rustico_testkit::wait_for_tcp(([127, 0, 0, 1], port).into(), Duration::from_secs(20)).unwrap();
    // The leecher's config names the same (taken) port: --port wins, and
    // the files land in the configured folder.
    let landing = dir.path().join("landing");
    let leech_cfg = cfg("leech.toml", &landing);
    let mut cmd = rustico();
    cmd.arg("download")
        .arg(&torrent)
        .args(["--port", "0"])
        .args(["--peer", &format!("127.0.0.1:{port}")])
        .arg("--config")
        .arg(&leech_cfg);
    let out = output_with_timeout(cmd, Duration::from_secs(60), "download with a config");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_files(&landing, &files);
}
