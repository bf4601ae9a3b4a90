//! The limits a user sets in the config hold, measured on whole rustico
//! processes on 127.0.0.1: the global upload and download rates (timed
//! with a monotonic clock) and the global connection limit, both for
//! dialled peers and incoming ones (read from the logs).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;

const MIB: u64 = 1 << 20;

/// A config in `dir` (logs in `dir/logs`, no DHT) with `extra` lines.
fn config_with(dir: &Path, extra: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("config.toml");
    std::fs::write(
        &path,
        format!(
            "log_dir = {:?}\ndht = false\nstate_dir = {:?}\n{extra}\n",
            dir.join("logs"),
            dir.join("state")
        ),
    )
    .unwrap();
    path
}

/// `rustico -vv seed TORRENT DIR --port 0 --config CFG` (debug lines in its
/// log), and the port it says it got.
fn seeder(torrent: &Path, dir: &Path, config: &Path) -> (ChildGuard, u16) {
    start_seeder_with(&["-vv"], torrent, dir, config)
}

/// `rustico -vv download TORRENT -o OUT --port 0 --config CFG --peer ...`.
fn download(torrent: &Path, out: &Path, config: &Path, peers: &[u16]) -> std::process::Command {
    let mut cmd = rustico();
    cmd.arg("-vv")
        .arg("download")
        .arg(torrent)
        .arg("-o")
        .arg(out)
        .args(["--port", "0"])
        .arg("--config")
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for port in peers {
        cmd.args(["--peer", &format!("127.0.0.1:{port}")]);
    }
    cmd
}

/// A torrent of one file of `len` bytes in `dir/src`; returns the torrent
/// and the files.
fn make_torrent(dir: &Path, seed: u64, len: usize) -> (PathBuf, Vec<(String, Vec<u8>)>) {
    make_named_torrent(dir, "limits.bin", seed, len)
}

/// A torrent of one file `name` of `len` bytes in `dir/src`.
fn make_named_torrent(
    dir: &Path,
    name: &str,
    seed: u64,
    len: usize,
) -> (PathBuf, Vec<(String, Vec<u8>)>) {
    let src = dir.join("src");
    let files = content(seed, &[(name, len)]);
    write_files(&src, &files);
    let torrent = create_torrent(
        &src.join(name),
        &dir.join(format!("{name}.torrent")),
        &["--piece-length", "262144"],
    );
    (torrent, files)
}

/// `n` seeders of `torrent`, each with its own copy of `files` (and its
/// own resume file) under `dir/NAME-i`; their ports.
fn seeders(
    dir: &Path,
    torrent: &Path,
    files: &[(String, Vec<u8>)],
    n: usize,
) -> (Vec<ChildGuard>, Vec<u16>) {
    let name = torrent.file_stem().unwrap().to_str().unwrap();
    (0..n)
        .map(|i| {
            let seed_dir = dir.join(format!("{name}-{i}"));
            write_files(&seed_dir.join("data"), files);
            let cfg = config_with(&seed_dir, "");
            seeder(torrent, &seed_dir.join("data"), &cfg)
        })
        .unzip()
}

/// Runs `cmd` to a successful end; returns how long it took.
fn timed_download(mut cmd: std::process::Command, what: &str) -> Duration {
    let start = Instant::now();
    let mut child = ChildGuard(cmd.spawn().unwrap());
    let status = wait_with_timeout(&mut child.0, Duration::from_secs(60), what);
    assert!(status.success(), "{what}: {status}");
    start.elapsed()
}

/// The most peers a log shows connected at once over all its torrents,
/// from its `NAME: peer A connected (...)` and `NAME: peer A left: ...`
/// lines, and how many connected in all.
fn peak_connections(log: &Path) -> (usize, usize) {
    let text = std::fs::read_to_string(log).unwrap();
    let mut now = HashSet::new();
    let (mut peak, mut total) = (0, 0);
    for line in text.lines() {
        let Some((head, rest)) = line.split_once(": peer ") else {
            continue;
        };
        let torrent = head.split_whitespace().last().unwrap_or_default();
        let Some((addr, tail)) = rest.split_once(' ') else {
            continue;
        };
        let key = (torrent.to_string(), addr.to_string());
        if tail.starts_with("connected (") {
            assert!(now.insert(key), "{torrent}: {addr} connected twice");
            total += 1;
            peak = peak.max(now.len());
        } else if tail.starts_with("left: ") {
            now.remove(&key);
        }
    }
    (peak, total)
}

/// 12 MiB at 2 MiB/s, less the limit's burst (a quarter second of it):
/// no faster than this however fast the link.
fn least_time_at_2_mib(len: u64) -> Duration {
    Duration::from_secs_f64((len - MIB / 2) as f64 / (2 * MIB) as f64)
}

#[test]
fn a_seeders_upload_limit_holds() {
    let dir = rustico_testkit::temp_dir().unwrap();
    let len = 12 * MIB;
    let (torrent, files) = make_torrent(dir.path(), 41, len as usize);
    let seed_cfg = config_with(
        &dir.path().join("seeder"),
        &format!("max_upload_rate = {}", 2 * MIB),
    );
    let (_seeder, port) = seeder(&torrent, &dir.path().join("src"), &seed_cfg);
    let leech_cfg = config_with(&dir.path().join("leecher"), "");
    let out = dir.path().join("out");
    let took = timed_download(
        download(&torrent, &out, &leech_cfg, &[port]),
        "a download from a seeder limited to 2 MiB/s",
    );
    assert_files(&out, &files);
    eprintln!("12 MiB from a seeder at max_upload_rate = 2 MiB/s: {took:?}");
    let least = least_time_at_2_mib(len);
    assert!(
        took >= least,
        "{took:?} < {least:?}: the upload limit did not hold"
    );
    // Generous: the limit must not slow it far below the rate either.
    assert!(took < least * 3, "{took:?}: far slower than 2 MiB/s");
}

#[test]
fn a_leechers_download_limit_holds() {
    let dir = rustico_testkit::temp_dir().unwrap();
    let len = 12 * MIB;
    let (torrent, files) = make_torrent(dir.path(), 42, len as usize);
    let seed_cfg = config_with(&dir.path().join("seeder"), "");
    let (_seeder, port) = seeder(&torrent, &dir.path().join("src"), &seed_cfg);
    let leech_cfg = config_with(
        &dir.path().join("leecher"),
        &format!("max_download_rate = {}", 2 * MIB),
    );
    let out = dir.path().join("out");
    let took = timed_download(
        download(&torrent, &out, &leech_cfg, &[port]),
        "a download limited to 2 MiB/s",
    );
    assert_files(&out, &files);
    eprintln!("12 MiB at max_download_rate = 2 MiB/s: {took:?}");
    let least = least_time_at_2_mib(len);
    assert!(
        took >= least,
        "{took:?} < {least:?}: the download limit did not hold"
    );
    assert!(took < least * 3, "{took:?}: far slower than 2 MiB/s");
}

#[test]
fn two_torrents_never_have_more_peers_than_max_connections_together() {
    let dir = rustico_testkit::temp_dir().unwrap();
    // Two torrents of 1.5 MiB with three seeders each, downloaded by one
    // process at 1 MiB/s: about 3 s with peers to spare the whole time.
    let (one, one_files) = make_named_torrent(dir.path(), "one.bin", 43, 3 * MIB as usize / 2);
    let (two, two_files) = make_named_torrent(dir.path(), "two.bin", 44, 3 * MIB as usize / 2);
    let (_one_seeders, mut ports) = seeders(dir.path(), &one, &one_files, 3);
    let (_two_seeders, two_ports) = seeders(dir.path(), &two, &two_files, 3);
    ports.extend(two_ports);
    let leech_dir = dir.path().join("leecher");
    let leech_cfg = config_with(
        &leech_dir,
        &format!("max_connections = 2\nmax_download_rate = {MIB}"),
    );
    let out = dir.path().join("out");
    // Both torrents are given all six seeders (three of them the wrong
    // torrent's: those dials take a slot and fail).
    let mut cmd = download(&one, &out, &leech_cfg, &ports);
    cmd.arg(&two);
    timed_download(cmd, "two downloads with max_connections = 2");
    assert_files(&out, &one_files);
    assert_files(&out, &two_files);
    let log = log_file(&leech_dir);
    let (peak, total) = peak_connections(&log);
    eprintln!(
        "max_connections = 2, 2 torrents, 6 seeders: peak {peak}, {total} connections in all"
    );
    assert!(total >= 2, "fewer peers than torrents connected");
    assert!(peak <= 2, "{peak} peers at once with max_connections = 2");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("no connection slot for 127.0.0.1:"),
        "no dial was ever held back:\n{text}"
    );
}

#[test]
fn a_torrent_never_has_more_peers_than_peers_per_torrent() {
    let dir = rustico_testkit::temp_dir().unwrap();
    let (torrent, files) = make_torrent(dir.path(), 45, 2 * MIB as usize);
    let (_seeders, ports) = seeders(dir.path(), &torrent, &files, 4);
    let leech_dir = dir.path().join("leecher");
    let leech_cfg = config_with(
        &leech_dir,
        &format!("peers_per_torrent = 2\nmax_download_rate = {MIB}"),
    );
    let out = dir.path().join("out");
    timed_download(
        download(&torrent, &out, &leech_cfg, &ports),
        "a download with peers_per_torrent = 2",
    );
    assert_files(&out, &files);
    let (peak, total) = peak_connections(&log_file(&leech_dir));
    eprintln!("peers_per_torrent = 2, 4 seeders: peak {peak}, {total} connections in all");
    assert!(total >= 1, "no peer connected");
    assert!(peak <= 2, "{peak} peers at once with peers_per_torrent = 2");
}

#[test]
fn incoming_peers_over_max_connections_are_refused() {
    let dir = rustico_testkit::temp_dir().unwrap();
    // 2 MiB at 1 MiB/s: the first leecher holds the one slot for ~2 s.
    let (torrent, files) = make_torrent(dir.path(), 44, 2 * MIB as usize);
    let seed_dir = dir.path().join("seeder");
    let seed_cfg = config_with(
        &seed_dir,
        &format!("max_connections = 1\nmax_upload_rate = {MIB}"),
    );
    let (_seeder, port) = seeder(&torrent, &dir.path().join("src"), &seed_cfg);
    let seed_log = log_file(&seed_dir);
    let mut leechers = Vec::new();
    for i in 0..2 {
        let cfg = config_with(&dir.path().join(format!("leecher-{i}")), "");
        let out = dir.path().join(format!("out-{i}"));
        let child = download(&torrent, &out, &cfg, &[port]).spawn().unwrap();
        leechers.push((ChildGuard(child), out));
        if i == 0 {
            // The second dials once the first holds the slot.
            let start = Instant::now();
            while peak_connections(&seed_log).1 == 0 {
                assert!(
                    start.elapsed() < Duration::from_secs(20),
                    "nobody connected"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
    for (guard, out) in &mut leechers {
        let status = wait_with_timeout(&mut guard.0, Duration::from_secs(60), "a leecher");
        assert!(status.success());
        assert_files(out, &files);
    }
    let (peak, total) = peak_connections(&seed_log);
    eprintln!("seeder with max_connections = 1: peak {peak}, {total} connections in all");
    assert_eq!(total, 2, "both leechers were served");
    assert_eq!(peak, 1, "two peers at once with max_connections = 1");
    let text = std::fs::read_to_string(&seed_log).unwrap();
    assert!(
        text.contains("connection slots taken"),
        "the second leecher was never refused:\n{text}"
    );
}
