//! Protocol encryption (MSE/PE) against the real implementations, both
//! directions, on 127.0.0.1 through a real opentracker: libtorrent with
//! `out_enc_policy`/`in_enc_policy` forced and aria2 with
//! `--bt-require-crypto`, against rustico with `--encryption require`.
//! Each transfer is captured with tcpdump, and the test checks that it was
//! really encrypted: no `\x13BitTorrent protocol` and no slice of the
//! content anywhere in the capture, though more bytes than the content
//! crossed the wire. The default policy is checked against a forced and a
//! plaintext-only libtorrent; hostile handshakes against a seeder.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use rustico_testkit::{Capture, ChildGuard, Opentracker};

/// One transfer's setting: content, torrent, tracker, config.
struct Fixture {
    dir: tempfile::TempDir,
    files: Vec<(String, Vec<u8>)>,
    torrent: PathBuf,
    config: PathBuf,
    _tracker: Opentracker,
}

impl Fixture {
    fn new(seed: u64) -> Fixture {
        let dir = rustico_testkit::temp_dir().unwrap();
        let files = content(seed, &[("secret.bin", 3_000_000), ("notes.txt", 4321)]);
        write_files(&dir.path().join("src").join("share"), &files);
        let port = rustico_testkit::free_port();
        let url = format!("http://127.0.0.1:{port}/announce");
        let torrent = create_torrent(
            &dir.path().join("src").join("share"),
            &dir.path().join("share.torrent"),
            &["--tracker", &url, "--piece-length", "65536"],
        );
        let tracker =
            Opentracker::start_on(([127, 0, 0, 1], port).into(), &[info_hash(&torrent)]).unwrap();
        let config = config_in(dir.path());
        Fixture {
            files,
            torrent,
            config,
            _tracker: tracker,
            dir,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A folder holding the complete content, for a seeder.
    fn seed_dir(&self) -> PathBuf {
        self.path("src")
    }
}

fn libtorrent(fx: &Fixture, save: &Path, port: u16, mode: &str, enc: &str) -> ChildGuard {
    std::fs::create_dir_all(save).unwrap();
    let mut guard = rustico_testkit::spawn_python(
        LIBTORRENT_PEER,
        &[
            fx.torrent.to_str().unwrap(),
            save.to_str().unwrap(),
            &port.to_string(),
            mode,
            enc,
        ],
    )
    .unwrap();
    wait_for_line(&mut guard, "READY");
    guard
}

/// aria2c requiring RC4 (`--bt-require-crypto`), seeding the content
/// already in `dir` (checked first) or downloading into it.
fn aria2(fx: &Fixture, dir: &Path, port: u16) -> ChildGuard {
    ChildGuard(
        Command::new("aria2c")
            .arg(format!("--dir={}", dir.display()))
            .args([
                "--check-integrity=true",
                "--seed-ratio=0.0",
                "--enable-dht=false",
                "--enable-dht6=false",
                "--bt-enable-lpd=false",
                "--enable-peer-exchange=false",
                "--file-allocation=none",
                "--summary-interval=0",
                "--console-log-level=warn",
                "--bt-require-crypto=true",
                "--bt-min-crypto-level=arc4",
            ])
            .arg(format!("--listen-port={port}"))
            .arg(&fx.torrent)
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// `rustico download` with `--encryption POLICY`, to completion.
fn rustico_download(fx: &Fixture, out: &Path, port: u16, policy: &str) {
    let mut cmd = rustico();
    cmd.arg("download")
        .arg(&fx.torrent)
        .arg("-o")
        .arg(out)
        .args(["--port", &port.to_string(), "--encryption", policy])
        .arg("--config")
        .arg(&fx.config);
    let got = output_with_timeout(cmd, Duration::from_secs(120), "rustico download");
    assert!(
        got.status.success(),
        "download failed: {}",
        String::from_utf8_lossy(&got.stderr)
    );
    assert_files(&out.join("share"), &fx.files);
}

/// `rustico seed` with `--encryption POLICY`, listening once it returns.
fn rustico_seed(fx: &Fixture, port: u16, policy: &str) -> ChildGuard {
    let child = rustico()
        .arg("seed")
        .arg(&fx.torrent)
        .arg(fx.seed_dir())
        .args(["--port", &port.to_string(), "--encryption", policy])
        .arg("--config")
        .arg(&fx.config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let guard = ChildGuard(child);
    rustico_testkit::wait_for_tcp(([127, 0, 0, 1], port).into(), Duration::from_secs(20)).unwrap();
    guard
}

/// One capture at a time: several tcpdumps on a busy loopback drop
/// packets.
static CAPTURING: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    CAPTURING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn capture_ports(fx: &Fixture, ports: [u16; 2]) -> Capture {
    let filter = format!("tcp port {} or tcp port {}", ports[0], ports[1]);
    let probe = ([127, 0, 0, 1], rustico_testkit::free_port()).into();
    Capture::start(None, "lo", &filter, probe, &fx.path("wire.pcap")).unwrap()
}

/// The capture shows an encrypted transfer of `files`: it holds most of
/// the transfer (a loaded machine may drop a few packets from a capture),
/// yet neither the BitTorrent handshake nor any of 16 slices of the
/// content appear in it.
fn assert_encrypted(pcap: &[u8], files: &[(String, Vec<u8>)]) {
    let content: usize = files.iter().map(|(_, b)| b.len()).sum();
    assert!(
        pcap.len() > content / 10 * 9,
        "the capture holds {} bytes, less than 90% of the {content} bytes of content: it missed the transfer",
        pcap.len()
    );
    assert!(
        !rustico_testkit::contains(pcap, b"\x13BitTorrent protocol"),
        "a plaintext BitTorrent handshake crossed the wire"
    );
    let big = &files[0].1;
    for i in 0..16 {
        let at = i * (big.len() - 64) / 15;
        assert!(
            !rustico_testkit::contains(pcap, &big[at..at + 64]),
            "content bytes {at}..{} crossed the wire in plaintext",
            at + 64
        );
    }
}

/// The same checks would fail on a plaintext transfer (the test of the
/// test): the handshake shows in a capture of `--encryption disable`.
fn assert_plaintext(pcap: &[u8]) {
    assert!(rustico_testkit::contains(pcap, b"\x13BitTorrent protocol"));
}

fn have_tools(libtorrent: bool, aria2: bool) -> bool {
    let mut ok = rustico_testkit::require("opentracker") && rustico_testkit::require("tcpdump");
    if libtorrent {
        ok &= rustico_testkit::require_libtorrent();
    }
    if aria2 {
        ok &= rustico_testkit::require("aria2c");
    }
    ok
}

#[test]
fn libtorrent_forced_seeds_and_rustico_requiring_encryption_downloads() {
    if !have_tools(true, false) {
        return;
    }
    let _one = one_at_a_time();
    let fx = Fixture::new(71);
    let (lt_port, our_port) = (rustico_testkit::free_port(), rustico_testkit::free_port());
    let capture = capture_ports(&fx, [lt_port, our_port]);
    let _seed = libtorrent(&fx, &fx.seed_dir(), lt_port, "seed", "forced");
    rustico_download(&fx, &fx.path("out"), our_port, "require");
    assert_encrypted(&capture.finish().unwrap(), &fx.files);
}

#[test]
fn rustico_requiring_encryption_seeds_and_libtorrent_forced_downloads() {
    if !have_tools(true, false) {
        return;
    }
    let _one = one_at_a_time();
    let fx = Fixture::new(72);
    let (lt_port, our_port) = (rustico_testkit::free_port(), rustico_testkit::free_port());
    let capture = capture_ports(&fx, [lt_port, our_port]);
    let _seed = rustico_seed(&fx, our_port, "require");
    let mut lt = libtorrent(&fx, &fx.path("lt"), lt_port, "leech", "forced");
    wait_for_line(&mut lt, "DONE");
    assert_files(&fx.path("lt").join("share"), &fx.files);
    assert_encrypted(&capture.finish().unwrap(), &fx.files);
}

#[test]
fn aria2_requiring_crypto_seeds_and_rustico_requiring_encryption_downloads() {
    if !have_tools(false, true) {
        return;
    }
    let _one = one_at_a_time();
    let fx = Fixture::new(73);
    let (aria_port, our_port) = (rustico_testkit::free_port(), rustico_testkit::free_port());
    let capture = capture_ports(&fx, [aria_port, our_port]);
    let _seed = aria2(&fx, &fx.seed_dir(), aria_port);
    rustico_download(&fx, &fx.path("out"), our_port, "require");
    assert_encrypted(&capture.finish().unwrap(), &fx.files);
}

#[test]
fn rustico_requiring_encryption_seeds_and_aria2_requiring_crypto_downloads() {
    if !have_tools(false, true) {
        return;
    }
    let _one = one_at_a_time();
    let fx = Fixture::new(74);
    let (aria_port, our_port) = (rustico_testkit::free_port(), rustico_testkit::free_port());
    let capture = capture_ports(&fx, [aria_port, our_port]);
    let _seed = rustico_seed(&fx, our_port, "require");
    let out = fx.path("aria2");
    let _aria = aria2(&fx, &out, aria_port);
    wait_until_complete(&out.join("share"), &fx.files, "aria2c");
    assert_encrypted(&capture.finish().unwrap(), &fx.files);
}

fn wait_until_complete(root: &Path, files: &[(String, Vec<u8>)], who: &str) {
    let start = Instant::now();
    while !files
        .iter()
        .all(|(name, bytes)| std::fs::read(root.join(name)).is_ok_and(|got| got == *bytes))
    {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "{who} did not complete the download"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The default policy (`prefer`) talks to a peer that forces encryption
/// and to one that refuses it (the encrypted dial fails, the plaintext
/// redial works); with `disable` the same capture shows the plaintext
/// handshake, so the capture checks above can fail.
#[test]
fn default_policy_downloads_from_forced_and_from_plaintext_only_libtorrent() {
    if !have_tools(true, false) {
        return;
    }
    let _one = one_at_a_time();
    for (seed, lt_enc, ours, encrypted) in [
        (75, "forced", "prefer", true),
        (76, "disabled", "prefer", false),
        (77, "enabled", "disable", false),
    ] {
        let fx = Fixture::new(seed);
        let (lt_port, our_port) = (rustico_testkit::free_port(), rustico_testkit::free_port());
        let capture = capture_ports(&fx, [lt_port, our_port]);
        let _seed = libtorrent(&fx, &fx.seed_dir(), lt_port, "seed", lt_enc);
        rustico_download(&fx, &fx.path("out"), our_port, ours);
        let pcap = capture.finish().unwrap();
        if encrypted {
            assert_encrypted(&pcap, &fx.files);
        } else {
            assert_plaintext(&pcap);
        }
    }
}

/// `argv`: port. From 127.0.0.2, opens hostile handshakes to
/// 127.0.0.1:PORT: three silent sockets, 2,000 bytes of garbage, a valid
/// 96-byte key followed by 600 bytes with no sync marker, and a key sent a
/// byte a second. Prints, for each, the seconds until the other end
/// closed it (or "open" after 60 s).
const HOSTILE_SCRIPT: &str = r#"
import socket, sys, threading, time, os
port = int(sys.argv[1])
results = {}
def attack(name, payload, trickle):
    s = socket.socket()
    s.bind(("127.0.0.2", 0))
    s.connect(("127.0.0.1", port))
    start = time.monotonic()
    try:
        if trickle:
            for b in payload:
                s.send(bytes([b]))
                time.sleep(1)
        elif payload:
            s.sendall(payload)
        s.settimeout(60)
        while s.recv(4096):
            pass
        results[name] = "%.1f" % (time.monotonic() - start)
    except (socket.timeout, TimeoutError):
        results[name] = "open"
    except OSError:
        results[name] = "%.1f" % (time.monotonic() - start)
key = (2).to_bytes(96, "big")
attacks = [("silent%d" % i, b"", False) for i in range(3)]
attacks += [("garbage", os.urandom(2000), False),
            ("no-sync-marker", key + bytes(600), False),
            ("trickle", key[:40], True)]
threads = [threading.Thread(target=attack, args=a) for a in attacks]
for t in threads: t.start()
print("STARTED", flush=True)
for t in threads: t.join()
for name, took in sorted(results.items()):
    print(name, took, flush=True)
"#;

/// Hostile handshakes against a seeder that requires encryption, from
/// 127.0.0.2: silence, garbage, a key with no sync marker after it, and a
/// handshake that trickles a byte a second. Each is closed within the
/// handshake deadline (10 s), and meanwhile an honest libtorrent (forced)
/// from 127.0.0.1 downloads everything.
#[test]
fn hostile_handshakes_end_and_do_not_keep_an_honest_peer_out() {
    if !have_tools(true, false) {
        return;
    }
    let _one = one_at_a_time();
    let fx = Fixture::new(78);
    let our_port = rustico_testkit::free_port();
    let _seed = rustico_seed(&fx, our_port, "require");
    let mut hostile =
        rustico_testkit::spawn_python(HOSTILE_SCRIPT, &[&our_port.to_string()]).unwrap();
    wait_for_line(&mut hostile, "STARTED");
    let mut lt = libtorrent(
        &fx,
        &fx.path("lt"),
        rustico_testkit::free_port(),
        "leech",
        "forced",
    );
    wait_for_line(&mut lt, "DONE");
    assert_files(&fx.path("lt").join("share"), &fx.files);
    let mut report = String::new();
    std::io::Read::read_to_string(hostile.0.stdout.as_mut().unwrap(), &mut report).unwrap();
    let lines: Vec<&str> = report.lines().collect();
    assert_eq!(lines.len(), 6, "hostile script said {report:?}");
    for line in lines {
        let (name, took) = line.split_once(' ').unwrap();
        let secs: f64 = took
            .parse()
            .unwrap_or_else(|_| panic!("{name} was never closed: {line}"));
        // The deadline is 10 s for the whole handshake; the trickle's 40
        // bytes would take 40 s.
        assert!(secs < 15.0, "{name} stayed open {secs} s");
    }
}
