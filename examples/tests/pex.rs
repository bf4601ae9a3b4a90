//! Peer exchange (BEP 11) between three rustico processes on 127.0.0.1:
//! a seed A, a leecher B that knows A, a leecher C that knows only B. C
//! learns A from B's `ut_pex` message and connects to it. For a private
//! torrent (BEP 27) nothing is exchanged and C never meets A.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::*;

/// A leecher that seeds once complete; what it prints goes to `stderr`
/// (a process that cannot start says why there, not in its log).
fn leecher(
    torrent: &Path,
    out: &Path,
    (port, peer): (u16, u16),
    config: &Path,
    stderr: &Path,
) -> ChildGuard {
    let stderr = std::fs::File::create(stderr).unwrap();
    let child = rustico()
        .arg("download")
        .arg(torrent)
        .arg("-o")
        .arg(out)
        .arg("--seed")
        .args(["--port", &port.to_string()])
        .args(["--peer", &format!("127.0.0.1:{peer}")])
        .arg("--config")
        .arg(config)
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap();
    ChildGuard(child)
}

fn wait_for_log(path: &Path, want: &str, timeout: Duration) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < timeout {
        if std::fs::read_to_string(path)
            .unwrap_or_default()
            .contains(want)
        {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// Runs A, B, C; returns C's log once C is complete.
fn three_peers(private: bool) -> (String, u16) {
    let dir = rustico_testkit::temp_dir().unwrap();
    let files = content(5, &[("pex.bin", 30_000_000)]);
    write_files(&dir.path().join("a"), &files);
    let mut extra = vec!["--piece-length", "262144"];
    if private {
        extra.push("--private");
    }
    let torrent = create_torrent(
        &dir.path().join("a").join("pex.bin"),
        &dir.path().join("pex.torrent"),
        &extra,
    );
    let config = |name: &str| {
        let d = dir.path().join(format!("cfg-{name}"));
        std::fs::create_dir_all(&d).unwrap();
        (config_in(&d), log_file(&d))
    };
    let (config_a, _) = config("a");
    let (config_b, log_b) = config("b");
    let (config_c, log_c) = config("c");
    let [port_a, port_b] = [(); 2].map(|()| rustico_testkit::free_port());
    let stderr = |name: &str| dir.path().join(format!("{name}.stderr"));
    let _a = start_seeder_on(&torrent, &dir.path().join("a"), port_a, &config_a);
    let _b = leecher(
        &torrent,
        &dir.path().join("b"),
        (port_b, port_a),
        &config_b,
        &stderr("b"),
    );
    // C's first dial must find B listening (a refused dial backs off
    // 10 s, by which time B is a seed and their link closes before any
    // PEX message).
    assert!(
        wait_for_log(&log_b, "listening on port", Duration::from_secs(20)),
        "B never started listening"
    );
    // Nobody dials C, so it listens where the system says: a port picked
    // in advance can be taken before C binds it (one CI run's C never
    // started, its log empty).
    let _c = leecher(
        &torrent,
        &dir.path().join("c"),
        (0, port_b),
        &config_c,
        &stderr("c"),
    );
    assert!(
        wait_for_log(&log_c, "complete and verified", Duration::from_secs(60)),
        "C never completed:\n{}\n--- C's stderr:\n{}\n--- B's log:\n{}",
        std::fs::read_to_string(&log_c).unwrap_or_default(),
        std::fs::read_to_string(stderr("c")).unwrap_or_default(),
        std::fs::read_to_string(&log_b).unwrap_or_default()
    );
    assert_files(&dir.path().join("c"), &files);
    if !private {
        // Give C the moment it needs to dial A if it finished first.
        wait_for_log(
            &log_c,
            &format!("peer 127.0.0.1:{port_a} connected"),
            Duration::from_secs(10),
        );
    }
    (std::fs::read_to_string(&log_c).unwrap(), port_a)
}

#[test]
fn a_leecher_finds_the_third_peer_through_pex() {
    let (log, port_a) = three_peers(false);
    assert!(log.contains("PEX from 127.0.0.1:"), "{log}");
    assert!(
        log.contains(&format!("peer 127.0.0.1:{port_a} connected (outgoing")),
        "C never connected to A:\n{log}"
    );
}

#[test]
fn a_private_torrent_exchanges_no_peers() {
    let (log, port_a) = three_peers(true);
    assert!(!log.contains("PEX from"), "{log}");
    assert!(
        !log.contains(&format!("peer 127.0.0.1:{port_a} connected")),
        "C met A of a private torrent:\n{log}"
    );
}
