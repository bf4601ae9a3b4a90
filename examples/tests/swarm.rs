//! rustico in harder swarms: one seed and four leechers trading pieces
//! through opentracker; a download killed with SIGKILL and resumed; a fake
//! peer sending corrupt pieces next to an honest one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use rustico_peer_wire::{Framer, Handshake, Limits, Message, Reserved};

/// Pieces a rustico log says are complete (`piece N complete (x/y)` lines).
fn pieces_in_log(log: &Path) -> HashSet<u32> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let rest = l.split(": piece ").nth(1)?;
            let (n, tail) = rest.split_once(' ')?;
            tail.starts_with("complete (")
                .then(|| n.parse().ok())
                .flatten()
        })
        .collect()
}

fn download_cmd(
    torrent: &Path,
    out: &Path,
    config: &Path,
    extra: &[String],
) -> std::process::Command {
    let mut cmd = rustico();
    cmd.arg("download")
        .arg(torrent)
        .arg("-o")
        .arg(out)
        .args(["--port", "0"])
        .arg("--config")
        .arg(config)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

#[test]
fn one_seed_and_four_leechers_trade_pieces_through_opentracker() {
    if !rustico_testkit::require("opentracker") {
        return;
    }
    let dir = rustico_testkit::temp_dir().unwrap();
    let seed_dir = dir.path().join("seed");
    let files = content(31, &[("swarm.bin", 12_000_000)]);
    write_files(&seed_dir, &files);
    // Torrent first (it names the tracker), then the tracker (it needs the hash).
    let port = rustico_testkit::free_port();
    // UDP this time (the other interop tests use HTTP).
    let url = format!("udp://127.0.0.1:{port}/announce");
    let torrent = create_torrent(
        &seed_dir.join("swarm.bin"),
        &dir.path().join("swarm.torrent"),
        &["--tracker", &url, "--piece-length", "65536"],
    );
    let hash = info_hash(&torrent);
    let _tracker = start_tracker_on(port, hash);
    // One upload slot: the seed serves one leecher at a time, so the others
    // must get pieces from each other.
    let seed_cfg_dir = dir.path().join("seed-cfg");
    std::fs::create_dir_all(&seed_cfg_dir).unwrap();
    let seed_cfg = seed_cfg_dir.join("config.toml");
    std::fs::write(
        &seed_cfg,
        format!(
            "log_dir = {:?}\nupload_slots = 1\ndht = false\n",
            seed_cfg_dir.join("logs")
        ),
    )
    .unwrap();
    let mut seeder = Some(start_seeder(&torrent, &seed_dir, &seed_cfg).0);

    let num_pieces = 12_000_000usize.div_ceil(65536);
    let mut leechers = Vec::new();
    for i in 0..4 {
        let cfg_dir = dir.path().join(format!("leecher-{i}"));
        std::fs::create_dir_all(&cfg_dir).unwrap();
        let cfg = config_in(&cfg_dir);
        let out = cfg_dir.join("data");
        let child = download_cmd(&torrent, &out, &cfg, &["--seed".to_string()])
            .spawn()
            .unwrap();
        leechers.push((ChildGuard(child), log_file(&cfg_dir), out));
        std::thread::sleep(Duration::from_millis(300));
    }
    let start = Instant::now();
    let mut seed_stopped_at = None;
    loop {
        assert!(
            start.elapsed() < Duration::from_secs(150),
            "swarm did not complete"
        );
        let held: Vec<HashSet<u32>> = leechers
            .iter()
            .map(|(_, log, _)| pieces_in_log(log))
            .collect();
        let union: HashSet<u32> = held.iter().flatten().copied().collect();
        if seeder.is_some() && union.len() == num_pieces {
            seeder = None; // killed: the leechers hold every piece among them
            seed_stopped_at = Some(held.iter().map(HashSet::len).collect::<Vec<_>>());
        }
        if seeder.is_none() && held.iter().all(|h| h.len() == num_pieces) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("pieces per leecher when the seed stopped: {seed_stopped_at:?} of {num_pieces}");
    for (_, _, out) in &leechers {
        assert_files(out, &files);
    }
    // Proof of trading: stop each leecher cleanly (SIGTERM), so it logs
    // every connection it closes with the bytes it uploaded; a leecher
    // only uploads to other leechers (the seed wants nothing), so some
    // upload above zero means pieces moved between leechers.
    let mut uploaded_lines = Vec::new();
    for (guard, log, _) in &mut leechers {
        let pid = guard.0.id().to_string();
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status();
        wait_with_timeout(&mut guard.0, Duration::from_secs(30), "a leecher stopping");
        let text = std::fs::read_to_string(&*log).unwrap_or_default();
        uploaded_lines.extend(
            text.lines()
                .filter(|l| l.contains(" left: ") && !l.ends_with(" up 0 B)"))
                .map(String::from),
        );
    }
    assert!(
        !uploaded_lines.is_empty(),
        "no leecher uploaded anything to another: the leechers did not trade"
    );
    eprintln!("uploads between leechers: {uploaded_lines:#?}");
}

/// Opentracker on a chosen port, whitelisting one hash.
fn start_tracker_on(port: u16, hash: [u8; 20]) -> rustico_testkit::Opentracker {
    rustico_testkit::Opentracker::start_on(([127, 0, 0, 1], port).into(), &[hash]).unwrap()
}

/// A libtorrent seed limited to `rate` bytes per second, so a download
/// can be interrupted halfway.
const SLOW_SEED: &str = r#"
import libtorrent as lt, sys, time
torrent, save, port, rate = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
ses = lt.session({
    "listen_interfaces": "127.0.0.1:%d" % port,
    "enable_dht": False, "enable_lsd": False, "enable_upnp": False, "enable_natpmp": False,
    "enable_outgoing_utp": False, "enable_incoming_utp": False,
    "allow_multiple_connections_per_ip": True,
    "upload_rate_limit": rate,
    "ignore_limits_on_local_network": False,
})
atp = lt.add_torrent_params()
atp.ti = lt.torrent_info(torrent)
atp.save_path = save
atp.flags |= lt.torrent_flags.seed_mode
atp.flags &= ~(lt.torrent_flags.auto_managed | lt.torrent_flags.paused)
h = ses.add_torrent(atp)
deadline = time.monotonic() + 30
while time.monotonic() < deadline and not (ses.is_listening() and h.status().state == lt.torrent_status.seeding):
    time.sleep(0.05)
print("READY", flush=True)
time.sleep(170)
"#;

#[test]
fn a_download_killed_with_sigkill_resumes_without_fetching_verified_pieces() {
    if !rustico_testkit::require_libtorrent() {
        return;
    }
    let dir = rustico_testkit::temp_dir().unwrap();
    let seed_dir = dir.path().join("seed");
    let files = content(41, &[("resume.bin", 8_000_000)]);
    write_files(&seed_dir, &files);
    let torrent = create_torrent(
        &seed_dir.join("resume.bin"),
        &dir.path().join("resume.torrent"),
        &["--piece-length", "32768"],
    );
    let num_pieces = 8_000_000usize.div_ceil(32768);
    let lt_port = rustico_testkit::free_port();
    let mut seed = rustico_testkit::spawn_python(
        SLOW_SEED,
        &[
            torrent.to_str().unwrap(),
            seed_dir.to_str().unwrap(),
            &lt_port.to_string(),
            "2000000",
        ],
    )
    .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(seed.0.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "READY");

    let cfg = config_in(dir.path());
    let out = dir.path().join("download");
    let peer = vec!["--peer".to_string(), format!("127.0.0.1:{lt_port}")];
    let mut first = ChildGuard(download_cmd(&torrent, &out, &cfg, &peer).spawn().unwrap());
    let start = Instant::now();
    while pieces_in_log(&log_file(dir.path())).len() < num_pieces / 2 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "first run made no progress"
        );
        assert!(
            first.0.try_wait().unwrap().is_none(),
            "first run ended early"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    first.0.kill().unwrap(); // SIGKILL
    first.0.wait().unwrap();
    let had = pieces_in_log(&log_file(dir.path())).len();
    assert!(
        had < num_pieces,
        "the first run finished before it was killed"
    );

    let mut second = download_cmd(&torrent, &out, &cfg, &peer);
    second.stderr(Stdio::piped());
    let result = output_with_timeout(second, Duration::from_secs(90), "second run");
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    assert_files(&out, &files);
    let log = std::fs::read_to_string(log_file(dir.path())).unwrap();
    let resumed_line = log
        .lines()
        .rfind(|l| l.contains("already on disk"))
        .unwrap();
    let on_disk: usize = resumed_line
        .split(": ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    // At most the pieces in flight at the kill are lost.
    assert!(
        on_disk + 8 >= had,
        "{on_disk} pieces found on disk, {had} were reported complete"
    );
    let fetched_again = num_pieces - on_disk;
    eprintln!(
        "killed with {had} pieces reported, {on_disk} found on disk, {fetched_again} fetched again"
    );
    assert!(
        fetched_again * 100 < num_pieces * 60,
        "second run fetched {fetched_again} of {num_pieces} pieces"
    );
}

/// A peer that claims every piece and answers every request with garbage.
/// Counts the connections it accepts.
fn spawn_liar(listener: TcpListener, num_pieces: u32, connections: Arc<AtomicUsize>) {
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            connections.fetch_add(1, Ordering::SeqCst);
            std::thread::spawn(move || {
                let _ = lie(stream, num_pieces);
            });
        }
    });
}

fn lie(stream: TcpStream, num_pieces: u32) -> std::io::Result<()> {
    let garbage = rustico_testkit::pseudo_random_bytes(99, 16384);
    let greeting = |out: &mut Vec<u8>| {
        let mut bits = vec![0xffu8; (num_pieces as usize).div_ceil(8)];
        let spare = bits.len() * 8 - num_pieces as usize;
        if let Some(last) = bits.last_mut() {
            *last &= 0xffu8 << spare;
        }
        Message::Bitfield(&bits).encode(out);
        Message::Unchoke.encode(out);
    };
    play_peer(
        stream,
        num_pieces,
        (Reserved::default(), *b"-XX0001-liarliarliar"),
        greeting,
        |r, out| {
            Message::Piece {
                index: r.piece,
                begin: r.offset,
                data: &garbage[..r.length as usize],
            }
            .encode(out)
        },
    )
}

/// Reads a peer's handshake, answers with ours (`who`: reserved bits and
/// peer id) and what `greeting` writes, then answers each request with
/// what `answer` writes, until the peer hangs up.
fn play_peer(
    mut stream: TcpStream,
    num_pieces: u32,
    who: (Reserved, [u8; 20]),
    greeting: impl FnOnce(&mut Vec<u8>),
    mut answer: impl FnMut(rustico_peer_wire::BlockRequest, &mut Vec<u8>),
) -> std::io::Result<()> {
    let mut theirs = [0u8; 68];
    stream.read_exact(&mut theirs)?;
    let Ok(rustico_peer_wire::Status::Complete(h, _)) = Handshake::decode(&theirs) else {
        return Ok(());
    };
    let mut out = Handshake::new(who.0, h.info_hash, who.1)
        .to_bytes()
        .to_vec();
    greeting(&mut out);
    stream.write_all(&out)?;
    let mut framer = Framer::with_limits(Limits::for_torrent(num_pieces));
    let mut buf = vec![0u8; 65536];
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        framer.feed(&buf[..n]);
        let mut reply = Vec::new();
        while let Some(m) = framer.next_message().map_err(std::io::Error::other)? {
            if let Message::Request(r) = m {
                answer(r, &mut reply);
            }
        }
        stream.write_all(&reply)?;
    }
}

#[test]
fn a_peer_sending_corrupt_pieces_is_banned_and_the_download_completes() {
    corrupt_pieces_get_the_liar_banned("v1");
}

/// The same with a v2-only torrent: its pieces fail the merkle check
/// against the piece layer instead of SHA-1.
#[test]
fn a_peer_sending_blocks_that_fail_the_merkle_check_is_banned_and_the_download_completes() {
    corrupt_pieces_get_the_liar_banned("v2");
}

fn corrupt_pieces_get_the_liar_banned(format: &str) {
    let dir = rustico_testkit::temp_dir().unwrap();
    let seed_dir = dir.path().join("seed");
    let files = content(51, &[("honest.bin", 3_000_000)]);
    write_files(&seed_dir, &files);
    let torrent: PathBuf = create_torrent(
        &seed_dir.join("honest.bin"),
        &dir.path().join("honest.torrent"),
        &["--piece-length", "32768", "--format", format],
    );
    let liar = TcpListener::bind("127.0.0.1:0").unwrap();
    let liar_addr = liar.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    spawn_liar(liar, 3_000_000u32.div_ceil(32768), connections.clone());

    // The download starts with the liar as its only peer, so every bad
    // piece is the liar's alone and it is banned after two.
    let cfg = config_in(dir.path());
    let out = dir.path().join("download");
    let mut download = ChildGuard(
        rustico()
            .arg("-vv")
            .arg("download")
            .arg(&torrent)
            .arg("-o")
            .arg(&out)
            .args(["--port", "0"])
            .args(["--peer", &liar_addr.to_string()])
            .arg("--config")
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let download_port = listening_port(&log_file(dir.path()));
    let banned = format!("banning peer {liar_addr}");
    let start = Instant::now();
    while !std::fs::read_to_string(log_file(dir.path()))
        .unwrap_or_default()
        .contains(&banned)
    {
        if start.elapsed() > Duration::from_secs(60) {
            let log = std::fs::read_to_string(log_file(dir.path())).unwrap_or_default();
            panic!("the liar was not banned in 60 s; the downloader's log:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // Then an honest seed dials the downloader, which completes from it.
    let seed_cfg_dir = dir.path().join("seed-cfg");
    std::fs::create_dir_all(&seed_cfg_dir).unwrap();
    let _seeder = ChildGuard(
        rustico()
            .arg("-vv")
            .arg("seed")
            .arg(&torrent)
            .arg(&seed_dir)
            .args([
                "--port",
                "0",
                "--peer",
                &format!("127.0.0.1:{download_port}"),
            ])
            .arg("--config")
            .arg(config_in(&seed_cfg_dir))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let start = Instant::now();
    let status = loop {
        if let Some(status) = download.0.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(60) {
            let log = std::fs::read_to_string(log_file(dir.path())).unwrap_or_default();
            let seed_log = std::fs::read_to_string(log_file(&seed_cfg_dir)).unwrap_or_default();
            panic!("download did not finish after the ban\n--- downloader:\n{log}\n--- seeder:\n{seed_log}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "download exited with {status}");
    assert_files(&out, &files);
    let log = std::fs::read_to_string(log_file(dir.path())).unwrap();
    assert!(
        log.contains(&format!("banning peer {liar_addr}")),
        "the liar is banned:\n{log}"
    );
    assert!(log.contains("failed its hash check"), "{log}");
    assert!(
        connections.load(Ordering::SeqCst) <= 2,
        "a banned peer is not dialled again"
    );
}

/// A peer with the fast extension that claims every piece, sends garbage
/// for the second block of each piece and rejects every other request,
/// so that each piece it touches also holds blocks from an honest peer.
/// It never answers hash requests.
fn lie_about_one_block(stream: TcpStream, num_pieces: u32) -> std::io::Result<()> {
    let garbage = rustico_testkit::pseudo_random_bytes(98, 16384);
    play_peer(
        stream,
        num_pieces,
        (
            Reserved::default().with_fast(true),
            *b"-XX0001-blockliar000",
        ),
        |out| {
            Message::HaveAll.encode(out);
            Message::Unchoke.encode(out);
        },
        |r, out| {
            if r.offset == 16384 {
                Message::Piece {
                    index: r.piece,
                    begin: r.offset,
                    data: &garbage[..r.length as usize],
                }
                .encode(out)
            } else {
                Message::RejectRequest(r).encode(out)
            }
        },
    )
}

/// BEP 52: a v2 piece that fails with blocks from two peers is traced to
/// the block, through the merkle tree. The downloader asks a peer for the
/// piece's block hashes (the honest seed answers them from its disk; the
/// liar never does), checks them against the piece layer, and bans the
/// sender of the block whose hash differs at once: the ban names the
/// merkle proof, not a good copy or a count of failed pieces.
#[test]
fn a_corrupt_v2_block_is_traced_through_the_merkle_tree_to_its_sender() {
    let dir = rustico_testkit::temp_dir().unwrap();
    let seed_dir = dir.path().join("seed");
    let files = content(52, &[("v2.bin", 2_000_000)]);
    write_files(&seed_dir, &files);
    let torrent: PathBuf = create_torrent(
        &seed_dir.join("v2.bin"),
        &dir.path().join("v2.torrent"),
        &["--piece-length", "65536", "--format", "v2"],
    );
    let seed_cfg_dir = dir.path().join("seed-cfg");
    std::fs::create_dir_all(&seed_cfg_dir).unwrap();
    let (_seeder, seed_port) = start_seeder(&torrent, &seed_dir, &config_in(&seed_cfg_dir));
    let liar = TcpListener::bind("127.0.0.1:0").unwrap();
    let liar_addr = liar.local_addr().unwrap();
    let num_pieces = 2_000_000u32.div_ceil(65536);
    std::thread::spawn(move || {
        for stream in liar.incoming() {
            let Ok(stream) = stream else { return };
            std::thread::spawn(move || {
                let _ = lie_about_one_block(stream, num_pieces);
            });
        }
    });

    let out = dir.path().join("download");
    let mut download = rustico();
    download
        .arg("-vv")
        .arg("download")
        .arg(&torrent)
        .arg("-o")
        .arg(&out)
        .args(["--port", "0"])
        .args(["--peer", &liar_addr.to_string()])
        .args(["--peer", &format!("127.0.0.1:{seed_port}")])
        .arg("--config")
        .arg(config_in(dir.path()))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut download = ChildGuard(download.spawn().unwrap());
    let start = Instant::now();
    let status = loop {
        if let Some(status) = download.0.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(60) {
            let log = std::fs::read_to_string(log_file(dir.path())).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            panic!(
                "download did not finish in 60 s; the log ends:\n{}",
                tail.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let log = std::fs::read_to_string(log_file(dir.path())).unwrap_or_default();
    assert!(status.success(), "download failed:\n{log}");
    assert_files(&out, &files);
    assert!(
        log.contains(&format!(
            "banning peer {liar_addr}: sent a block its merkle hash refutes"
        )),
        "the liar is banned on the merkle proof:\n{log}"
    );
    assert!(log.contains("proved corrupt by their hashes"), "{log}");
    assert!(
        !log.contains(&format!("banning peer 127.0.0.1:{seed_port}")),
        "the honest seed is not banned:\n{log}"
    );
}
