//! Hostile trackers (issue #20, class 5 and the compact-list weaker spot)
//! against a real `rustico download` on loopback: a dead or garbage UDP
//! tracker in tier 1 must not keep the honest HTTP tracker in tier 2 from
//! handing out the seeder, and an odd-length compact peer list must not
//! cost us its whole entries. While each download runs, its thread count,
//! RSS and CPU time are read from `/proc` and bounded.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;

/// `argv`: seeder port, mode. An HTTP tracker on 127.0.0.1 (port printed as
/// `READY PORT`) whose every announce lists the seeder 127.0.0.1:SEEDER as
/// one compact entry. Mode `odd` appends three stray bytes to that compact
/// string (9 bytes, not a multiple of 6), as a sloppy tracker might.
const HTTP_TRACKER: &str = r#"
import http.server, socket, struct, sys
seeder, mode = int(sys.argv[1]), sys.argv[2]
peers = socket.inet_aton("127.0.0.1") + struct.pack(">H", seeder)
if mode == "odd":
    peers += b"\x7f\x00\x00"
body = b"d8:intervali60e5:peers%d:%se" % (len(peers), peers)
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
print("READY %d" % srv.server_address[1], flush=True)
srv.serve_forever()
"#;

/// A UDP "tracker" on 127.0.0.1 (port printed as `READY PORT`) that never
/// answers properly: every request gets 20 datagrams back whose
/// transaction id is the request's with bits flipped, and a thread floods
/// every client it has seen with short datagrams, connect answers and
/// announce answers of other transaction ids, about 20 per millisecond.
const GARBAGE_UDP_TRACKER: &str = r#"
import os, socket, struct, sys, threading, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
print("READY %d" % s.getsockname()[1], flush=True)
clients = {}
lock = threading.Lock()
def flood():
    n = 0
    while True:
        with lock:
            targets = list(clients.items())
        for addr, tid in targets:
            for _ in range(20):
                n += 1
                wrong = tid ^ (1 + n % 0xffff)
                kind = n % 3
                if kind == 0:
                    d = b"\x00\x00\x00"
                elif kind == 1:
                    d = struct.pack(">IIQ", 0, wrong, n)
                else:
                    d = struct.pack(">IIIII", 1, wrong, 60, 1, 1) + os.urandom(6 * (n % 8))
                try:
                    s.sendto(d, addr)
                except OSError:
                    pass
        time.sleep(0.001)
threading.Thread(target=flood, daemon=True).start()
while True:
    try:
        data, addr = s.recvfrom(65536)
    except OSError:
        continue
    tid = struct.unpack(">I", data[12:16])[0] if len(data) >= 16 else 0
    with lock:
        clients[addr] = tid
    for i in range(20):
        try:
            s.sendto(struct.pack(">II", 0, tid ^ 0xffffffff) + os.urandom(8), addr)
        except OSError:
            pass
"#;

/// Spawns a helper script and returns it with the port it printed as
/// `READY PORT`.
fn spawn_server(script: &str, args: &[&str]) -> (ChildGuard, u16) {
    let mut guard = rustico_testkit::spawn_python(script, args).unwrap();
    let stdout = guard.0.stdout.as_mut().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let port = line
        .trim()
        .strip_prefix("READY ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("helper printed {line:?}, not READY PORT"));
    (guard, port)
}

/// A UDP port with nothing listening on 127.0.0.1: a datagram sent there
/// comes back as ICMP port unreachable.
fn dead_udp_port() -> u16 {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.local_addr().unwrap().port()
}

/// What the victim used while it ran.
#[derive(Debug)]
struct Usage {
    elapsed: Duration,
    threads: usize,
    rss_kib: u64,
    cpu: Duration,
}

/// Runs `rustico download TORRENT` (no `--peer`: its only source of peers
/// is the trackers) until it exits, at most `bound`, sampling its threads,
/// RSS and CPU time every 20 ms. Panics with its log if it does not finish.
fn download_via_trackers(dir: &Path, torrent: impl AsRef<OsStr>, bound: Duration) -> Usage {
    let log_path = dir.join("download.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut download = ChildGuard(
        rustico()
            .arg("download")
            .arg(torrent)
            .arg("-o")
            .arg(dir.join("out"))
            .args(["--port", "0"])
            .arg("--config")
            .arg(config_in(dir))
            .arg("-v")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let pid = download.0.id();
    let start = Instant::now();
    let mut usage = Usage {
        elapsed: Duration::ZERO,
        threads: 0,
        rss_kib: 0,
        cpu: Duration::ZERO,
    };
    loop {
        usage.threads = usage.threads.max(proc_status(pid, "Threads:") as usize);
        usage.rss_kib = usage.rss_kib.max(proc_status(pid, "VmRSS:"));
        usage.cpu = usage.cpu.max(cpu_time(pid));
        if let Some(status) = download.0.try_wait().unwrap() {
            usage.elapsed = start.elapsed();
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            assert!(status.success(), "download failed: {status}; log:\n{log}");
            return usage;
        }
        if start.elapsed() >= bound {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            let records: Vec<&str> = log
                .lines()
                .filter(|l| l.contains("tracker"))
                .take(40)
                .collect();
            panic!(
                "the download did not finish within {bound:?} ({usage:?}); tracker log:\n{}",
                records.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts the honest HTTP tracker for `seed_port` in `mode`; returns it
/// with its announce URL.
fn http_tracker(seed_port: u16, mode: &str) -> (ChildGuard, String) {
    let (guard, port) = spawn_server(HTTP_TRACKER, &[&seed_port.to_string(), mode]);
    (guard, format!("http://127.0.0.1:{port}/announce"))
}

/// A torrent's files: `(relative path, bytes)`.
type Files = Vec<(String, Vec<u8>)>;

/// Makes content, starts an honest seeder for it (which announces to no
/// tracker) and builds the downloader's torrent from the same files with
/// `trackers` as its tiers, in order. Returns the files, the torrent and
/// the helpers to keep alive.
fn setup(
    dir: &Path,
    seed: u64,
    tier1: impl FnOnce() -> (Option<ChildGuard>, String),
    mode: &str,
) -> (Files, std::path::PathBuf, Vec<ChildGuard>) {
    let files = content(seed, &[("t.bin", 600_000), ("u/v.bin", 300_000)]);
    let src = dir.join("src").join("t");
    write_files(&src, &files);
    let seeder_torrent = create_torrent(&src, &dir.join("seeder.torrent"), &[]);
    let seeder_dir = dir.join("seeder");
    std::fs::create_dir_all(&seeder_dir).unwrap();
    let (seeder, seed_port) =
        start_seeder(&seeder_torrent, &dir.join("src"), &config_in(&seeder_dir));
    let mut keep = vec![seeder];
    let (tier1_guard, tier1_url) = tier1();
    keep.extend(tier1_guard);
    let (tracker, tier2_url) = http_tracker(seed_port, mode);
    keep.push(tracker);
    // Trackers are not part of the info dictionary: same info-hash.
    let torrent = create_torrent(
        &src,
        &dir.join("t.torrent"),
        &["--tracker", &tier1_url, "--tracker", &tier2_url],
    );
    assert_eq!(info_hash(&torrent), info_hash(&seeder_torrent));
    (files, torrent, keep)
}

/// (a) Tier 1 is a UDP tracker on a port where nothing listens (every
/// datagram comes back as ICMP port unreachable), tier 2 an honest HTTP
/// tracker. Before the fix the refusals were ignored and BEP 15's 15·2ⁿ s
/// schedule kept tier 2 waiting about two hours: the download did not finish
/// in 25 s. Now the refusal fails the attempt at once (the log says so) and
/// tier 2 starts right after. Measured in 5 runs: done in 0.06 to 0.17 s,
/// at most 10 threads, 16 MiB RSS, 20 ms CPU. Bounds: 12 s (below the 14 s a
/// timed-out UDP attempt would take), 30 threads, 100 MiB, 3 s CPU.
#[test]
fn a_refused_udp_tier_does_not_hold_up_the_next_tier() {
    let dir = rustico_testkit::temp_dir().unwrap();
    let port = dead_udp_port();
    let (files, torrent, _keep) = setup(
        dir.path(),
        501,
        || (None, format!("udp://127.0.0.1:{port}/announce")),
        "plain",
    );
    let usage = download_via_trackers(dir.path(), &torrent, Duration::from_secs(25));
    eprintln!("refused tier 1: {usage:?}");
    assert_files(&dir.path().join("out").join("t"), &files);
    assert_bounds(&usage, Duration::from_secs(12), Duration::from_secs(3));
    let log = std::fs::read_to_string(dir.path().join("download.log")).unwrap();
    assert!(
        log.contains("ICMP port unreachable"),
        "the refusal is not what ended tier 1's attempt:\n{log}"
    );
}

/// (b) Tier 1 is a UDP "tracker" that answers every request with
/// datagrams of the wrong transaction id and floods the client with more,
/// about 20 per millisecond; tier 2 is an honest HTTP tracker. Before the
/// fix the retransmission schedule (15·2ⁿ s, 8 retransmissions) kept tier 2
/// waiting: the download did not finish in 25 s, and the flood had cost it
/// 1.05 s of CPU by then. Now tier 2 starts 3 s after tier 1 (the announce
/// pass's stagger) while tier 1's attempt runs out its 15 s deadline, which
/// the flood cannot extend; the `completed` and `stopped` announces then go
/// to tier 2 first. Measured in 5 runs: done in 3.1 s, at most 10 threads,
/// 16 MiB RSS, 0.19 s CPU. Bounds: 12 s (below the 14 s of tier 1's UDP
/// attempt, so only the stagger can meet it), 30 threads, 100 MiB, 3 s CPU.
#[test]
fn a_garbage_udp_tier_does_not_hold_up_the_next_tier() {
    let dir = rustico_testkit::temp_dir().unwrap();
    let (files, torrent, _keep) = setup(
        dir.path(),
        502,
        || {
            let (guard, port) = spawn_server(GARBAGE_UDP_TRACKER, &[]);
            (Some(guard), format!("udp://127.0.0.1:{port}/announce"))
        },
        "plain",
    );
    let usage = download_via_trackers(dir.path(), &torrent, Duration::from_secs(25));
    eprintln!("garbage tier 1: {usage:?}");
    assert_files(&dir.path().join("out").join("t"), &files);
    assert_bounds(&usage, Duration::from_secs(12), Duration::from_secs(3));
}

/// (b') The same garbage tier 1 in front of the honest tracker, in a
/// magnet link (`tr=udp...&tr=http...`, no `x.pe`): the metadata fetch
/// announces as the torrent does, so the seeder is found after the stagger.
/// Before the fix the link's trackers were asked one after another, so
/// tier 1's attempt (then 14 s with the new UDP defaults, two hours with the
/// old) came first: the download took 17.2 s (0.9 s CPU). Measured in 5
/// runs now: done in 6.2 s (the stagger once for the metadata, once more
/// for the download's own first announce), 13 threads, 17 MiB RSS, at most
/// 0.56 s CPU. Bounds as (b).
#[test]
fn a_garbage_udp_tracker_does_not_hold_up_a_magnet_link() {
    let dir = rustico_testkit::temp_dir().unwrap();
    let mut tier1 = String::new();
    let (files, torrent, _keep) = setup(
        dir.path(),
        504,
        || {
            let (guard, port) = spawn_server(GARBAGE_UDP_TRACKER, &[]);
            tier1 = format!("udp://127.0.0.1:{port}/announce");
            (Some(guard), tier1.clone())
        },
        "plain",
    );
    let json = rustico()
        .arg("info")
        .arg(&torrent)
        .arg("--json")
        .output()
        .unwrap();
    let info: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let tier2 = info["trackers"][1][0].as_str().unwrap().to_string();
    assert_eq!(info["trackers"][0][0].as_str(), Some(tier1.as_str()));
    let encode = |url: &str| url.replace(':', "%3A").replace('/', "%2F");
    let link = format!(
        "magnet:?xt=urn:btih:{}&tr={}&tr={}",
        info["info_hash"].as_str().unwrap(),
        encode(&tier1),
        encode(&tier2)
    );
    let usage = download_via_trackers(dir.path(), &link, Duration::from_secs(25));
    eprintln!("garbage tracker in a magnet link: {usage:?}");
    assert_files(&dir.path().join("out").join("t"), &files);
    assert_bounds(&usage, Duration::from_secs(12), Duration::from_secs(3));
}

/// (c) The only tracker's compact `peers` string is 9 bytes: the seeder's
/// 6-byte entry and 3 stray bytes. Before the fix the whole answer was
/// rejected (`CompactPeersLength`), so the download never heard of the
/// seeder and did not finish in 25 s. Now the whole entries are kept and the
/// stray bytes are reported in the log. Measured in 5 runs: done in 0.08 to
/// 0.27 s, 9 threads, 16 MiB RSS, 30 ms CPU. Bounds as (a).
#[test]
fn an_odd_length_compact_peer_list_keeps_its_whole_entries() {
    let dir = rustico_testkit::temp_dir().unwrap();
    let files = content(503, &[("t.bin", 600_000), ("u/v.bin", 300_000)]);
    let src = dir.path().join("src").join("t");
    write_files(&src, &files);
    let seeder_torrent = create_torrent(&src, &dir.path().join("seeder.torrent"), &[]);
    let seeder_dir = dir.path().join("seeder");
    std::fs::create_dir_all(&seeder_dir).unwrap();
    let (_seeder, seed_port) = start_seeder(
        &seeder_torrent,
        &dir.path().join("src"),
        &config_in(&seeder_dir),
    );
    let (_tracker, url) = http_tracker(seed_port, "odd");
    let torrent = create_torrent(&src, &dir.path().join("t.torrent"), &["--tracker", &url]);
    let usage = download_via_trackers(dir.path(), &torrent, Duration::from_secs(25));
    eprintln!("odd compact list: {usage:?}");
    assert_files(&dir.path().join("out").join("t"), &files);
    assert_bounds(&usage, Duration::from_secs(12), Duration::from_secs(3));
    let log = std::fs::read_to_string(dir.path().join("download.log")).unwrap();
    assert!(
        log.contains("3 stray bytes"),
        "the stray bytes are not reported in the log:\n{log}"
    );
}

/// The bounds every test here shares: at most 30 threads and 100 MiB RSS
/// (measured: 10 and 17 MiB), the download done within `elapsed`, at most
/// `cpu` of CPU time.
fn assert_bounds(usage: &Usage, elapsed: Duration, cpu: Duration) {
    assert!(
        usage.elapsed <= elapsed,
        "took {:?}: {usage:?}",
        usage.elapsed
    );
    assert!(usage.threads <= 30, "{} threads: {usage:?}", usage.threads);
    assert!(
        usage.rss_kib <= 100 * 1024,
        "{} KiB RSS: {usage:?}",
        usage.rss_kib
    );
    assert!(usage.cpu <= cpu, "{:?} CPU: {usage:?}", usage.cpu);
}
