//! The DHT (BEP 5) on a private network of `mainline` nodes on 127.0.0.1:
//! a seeder announces, a bare magnet link finds it, a private torrent makes
//! no DHT lookup, and the routing table outlives a run. No test here (or
//! anywhere) contacts the public DHT: every node is given its bootstrap.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;

/// A config with the DHT on, logs and state inside `dir`.
fn dht_config(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(
        &path,
        format!(
            "log_dir = {:?}\nstate_dir = {:?}\ndht = true\n",
            dir.join(format!("{name}-logs")),
            dir.join(format!("{name}-state"))
        ),
    )
    .unwrap();
    path
}

fn log_of(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(format!("{name}-logs")).join("rustico.log"))
        .unwrap_or_default()
}

/// Waits until `name`'s log contains `needle`.
fn wait_for_log(dir: &Path, name: &str, needle: &str, timeout: Duration) {
    let start = Instant::now();
    while !log_of(dir, name).contains(needle) {
        assert!(
            start.elapsed() < timeout,
            "{name} never logged {needle:?}: {}",
            log_of(dir, name)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn hex(hash: &[u8; 20]) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

fn seed(torrent: &Path, dir: &Path, config: &Path, bootstrap: &str) -> ChildGuard {
    ChildGuard(
        rustico()
            .arg("seed")
            .arg(torrent)
            .arg(dir)
            .args(["--port", &rustico_testkit::free_port().to_string()])
            .args(["--dht-bootstrap", bootstrap])
            .arg("--config")
            .arg(config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    )
}

fn download_magnet(magnet: &str, out: &Path, config: &Path, bootstrap: &str) -> String {
    let mut cmd = rustico();
    cmd.arg("download")
        .arg(magnet)
        .arg("-o")
        .arg(out)
        .args(["--port", &rustico_testkit::free_port().to_string()])
        .args(["--dht-bootstrap", bootstrap])
        .arg("--config")
        .arg(config);
    let out = output_with_timeout(cmd, Duration::from_secs(90), "rustico download");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "download failed: {err}");
    err
}

#[test]
fn a_bare_magnet_link_is_found_through_the_dht_and_the_table_is_kept() {
    let testnet = mainline::Testnet::builder(6).build().unwrap();
    let bootstrap = testnet.bootstrap[0].clone();
    let dir = rustico_testkit::temp_dir().unwrap();
    let files = content(41, &[("x.bin", 900_000), ("y/z.bin", 300_001)]);
    write_files(&dir.path().join("seed").join("share"), &files);
    // No tracker, no web seed: the DHT is the only way to the seeder.
    let torrent = create_torrent(
        &dir.path().join("seed").join("share"),
        &dir.path().join("share.torrent"),
        &["--piece-length", "65536"],
    );
    let hash = info_hash(&torrent);
    let seed_config = dht_config(dir.path(), "seeder");
    let _seeder = seed(&torrent, &dir.path().join("seed"), &seed_config, &bootstrap);
    wait_for_log(
        dir.path(),
        "seeder",
        &format!("DHT: announced {}", hex(&hash)),
        Duration::from_secs(60),
    );

    // xt alone: no tr, no x.pe, no --peer.
    let magnet = format!("magnet:?xt=urn:btih:{}", hex(&hash));
    let leech_config = dht_config(dir.path(), "leecher");
    let out = dir.path().join("download");
    download_magnet(&magnet, &out, &leech_config, &bootstrap);
    assert_files(&out.join("share"), &files);
    let log = log_of(dir.path(), "leecher");
    assert!(log.contains("magnet: 1 peers from the DHT"), "{log}");

    // The leecher saved its routing table when it stopped...
    let table = dir.path().join("leecher-state").join("dht-nodes");
    let saved = std::fs::read_to_string(&table).unwrap();
    assert!(saved.lines().count() >= 3, "routing table: {saved:?}");
    // ...and a second run, whose configured bootstrap node is dead, joins
    // the network through that table alone and finds the seeder again.
    let dead = UdpSocket::bind("127.0.0.1:0").unwrap();
    let dead_addr = dead.local_addr().unwrap().to_string();
    drop(dead);
    let again = dir.path().join("again");
    download_magnet(&magnet, &again, &leech_config, &dead_addr);
    assert_files(&again.join("share"), &files);
    let log = log_of(dir.path(), "leecher");
    let restart = log
        .lines()
        .rfind(|l| l.contains("bootstrapping from"))
        .unwrap()
        .to_string();
    assert!(!restart.contains("from 0 saved"), "{restart}");
}

/// Records every datagram sent to it, and answers none.
struct Recorder {
    socket: UdpSocket,
}

impl Recorder {
    fn start() -> Recorder {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        Recorder { socket }
    }

    fn addr(&self) -> String {
        self.socket.local_addr().unwrap().to_string()
    }

    /// Every datagram received within `window`.
    fn collect(&self, window: Duration) -> Vec<Vec<u8>> {
        let start = Instant::now();
        let mut got = Vec::new();
        let mut buf = [0u8; 2048];
        while start.elapsed() < window {
            if let Ok(n) = self.socket.recv(&mut buf) {
                got.push(buf[..n].to_vec());
            }
        }
        got
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Seeds `torrent` with the recorder as the only DHT node for a few seconds;
/// returns whether any datagram named the torrent's info-hash.
fn dht_queries_name_the_torrent(private: bool) -> (bool, usize) {
    let recorder = Recorder::start();
    let dir = rustico_testkit::temp_dir().unwrap();
    let files = content(43, &[("p.bin", 100_000)]);
    write_files(&dir.path().join("seed").join("p"), &files);
    let mut extra = vec!["--piece-length", "16384"];
    if private {
        extra.push("--private");
    }
    let torrent = create_torrent(
        &dir.path().join("seed").join("p"),
        &dir.path().join("p.torrent"),
        &extra,
    );
    let hash = info_hash(&torrent);
    let config = dht_config(dir.path(), "seeder");
    let _seeder = seed(
        &torrent,
        &dir.path().join("seed"),
        &config,
        &recorder.addr(),
    );
    let datagrams = recorder.collect(Duration::from_secs(6));
    let named = datagrams.iter().any(|d| contains(d, &hash));
    (named, datagrams.len())
}

#[test]
fn a_private_torrent_makes_no_dht_traffic_for_its_hash() {
    // The control: a public torrent's hash reaches the only node we know.
    let (named, count) = dht_queries_name_the_torrent(false);
    assert!(count > 0, "the recorder heard nothing at all");
    assert!(named, "a public torrent is looked up on the DHT");
    // A private one: the node may bootstrap, but never names the hash.
    let (named, count) = dht_queries_name_the_torrent(true);
    assert!(count > 0, "the node still bootstraps through the recorder");
    assert!(!named, "a private torrent's hash went to the DHT");
}

/// BEP 5 `port` messages: a seeder and a downloader, both with the DHT on
/// but bootstrapping from a closed port (so their routing tables stay
/// empty), meet through `--peer`. Each handshake sets the DHT bit, each
/// side sends its DHT port, and the downloader's saved state then holds
/// the seeder's DHT node, learned only from that message.
#[test]
fn dht_nodes_are_learned_from_port_messages_and_saved() {
    let dir = rustico_testkit::temp_dir().unwrap();
    let files = content(43, &[("p.bin", 300_000)]);
    write_files(&dir.path().join("src").join("p"), &files);
    let torrent = create_torrent(
        &dir.path().join("src").join("p"),
        &dir.path().join("p.torrent"),
        &[],
    );
    // Nothing answers on this UDP port: no node gets into either table.
    let closed = UdpSocket::bind("127.0.0.1:0").unwrap();
    let nowhere = closed.local_addr().unwrap().to_string();
    drop(closed);
    let seed_config = dht_config(dir.path(), "seed");
    let (seed_port, seed_dht) = (rustico_testkit::free_port(), rustico_testkit::free_port());
    let _seed = ChildGuard(
        rustico()
            .arg("seed")
            .arg(&torrent)
            .arg(dir.path().join("src"))
            .args(["--port", &seed_port.to_string()])
            .args(["--dht-port", &seed_dht.to_string()])
            .args(["--dht-bootstrap", &nowhere])
            .arg("--config")
            .arg(&seed_config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    rustico_testkit::wait_for_tcp(([127, 0, 0, 1], seed_port).into(), Duration::from_secs(20))
        .unwrap();
    let config = dht_config(dir.path(), "leech");
    let mut cmd = rustico();
    cmd.arg("download")
        .arg(&torrent)
        .arg("-o")
        .arg(dir.path().join("out"))
        .args(["--port", &rustico_testkit::free_port().to_string()])
        .args(["--peer", &format!("127.0.0.1:{seed_port}")])
        .args(["--dht-bootstrap", &nowhere])
        .arg("--config")
        .arg(&config);
    let out = output_with_timeout(cmd, Duration::from_secs(60), "rustico download");
    assert!(
        out.status.success(),
        "download failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_files(&dir.path().join("out").join("p"), &files);
    let saved = std::fs::read_to_string(dir.path().join("leech-state").join("dht-nodes"))
        .expect("the downloader saved its DHT nodes");
    assert!(
        saved.lines().any(|l| l == format!("127.0.0.1:{seed_dht}")),
        "the seeder's DHT node 127.0.0.1:{seed_dht} is not in the saved nodes: {saved:?}"
    );
}
