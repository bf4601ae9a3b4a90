//! Hostile peers and trackers against a real rustico process, on loopback:
//! while each attack runs, an honest transfer still completes, and the
//! victim's threads and CPU time stay within bounds read from `/proc`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use rustico_testkit::ChildGuard;

/// `argv`: port, count. Opens `count` connections to 127.0.0.1:PORT from
/// 127.0.0.2, 127.0.0.3, ... (four per address) and keeps them silent.
/// Prints OPEN once they are made, then holds them until killed.
const SILENT_SOCKETS: &str = r#"
import socket, sys, time
port, count = int(sys.argv[1]), int(sys.argv[2])
held = []
for i in range(count):
    s = socket.socket()
    s.bind(("127.0.%d.%d" % (1 + i // 1000, 2 + (i // 4) % 250), 0))
    s.settimeout(2)
    try:
        s.connect(("127.0.0.1", port))
        held.append(s)
    except OSError:
        pass
print("OPEN", flush=True)
time.sleep(3600)
"#;

/// Class 11: out of file descriptors. A seeder limited to 64 descriptors
/// gets 300 silent connections from 75 addresses; `accept` fails with
/// EMFILE until handshakes time out. It must not spin: at most 0.5 s of CPU
/// over the next 3 s (before the fix it took a whole core). Then a
/// download from it still completes within 60 s.
#[test]
fn out_of_file_descriptors_the_listener_pauses_instead_of_spinning() {
    if !rustico_testkit::require("prlimit") {
        return;
    }
    let dir = rustico_testkit::temp_dir().unwrap();
    let files = content(91, &[("fd.bin", 500_000)]);
    write_files(&dir.path().join("src").join("fd"), &files);
    let torrent = create_torrent(
        &dir.path().join("src").join("fd"),
        &dir.path().join("fd.torrent"),
        &[],
    );
    let config = config_in(dir.path());
    let mut cmd = Command::new("prlimit");
    cmd.arg("--nofile=64:64")
        .arg(env!("CARGO_BIN_EXE_rustico"))
        .arg("seed")
        .arg(&torrent)
        .arg(dir.path().join("src"))
        .args(["--port", "0"])
        .arg("--config")
        .arg(&config)
        .env("XDG_CONFIG_HOME", dir.path());
    let (seeder, port) = spawn_seeder(cmd);
    rustico_testkit::wait_for_tcp(([127, 0, 0, 1], port).into(), Duration::from_secs(20)).unwrap();
    let pid = seeder.0.id();
    let mut attack =
        rustico_testkit::spawn_python(SILENT_SOCKETS, &[&port.to_string(), "300"]).unwrap();
    wait_for_line(&mut attack, "OPEN");
    let before = cpu_time(pid);
    let start = Instant::now();
    std::thread::sleep(Duration::from_secs(3));
    let used = cpu_time(pid) - before;
    let took = start.elapsed();
    assert!(
        used < Duration::from_millis(500),
        "the seeder used {used:?} of CPU in {took:?} while out of descriptors"
    );
    let mut cmd = rustico();
    cmd.arg("download")
        .arg(&torrent)
        .arg("-o")
        .arg(dir.path().join("out"))
        .args(["--port", "0", "--peer", &format!("127.0.0.1:{port}")])
        .arg("--config")
        .arg(&config);
    let out = output_with_timeout(cmd, Duration::from_secs(60), "rustico download");
    assert!(
        out.status.success(),
        "download during the attack failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_files(&dir.path().join("out").join("fd"), &files);
}

/// `argv`: count. An HTTP tracker on 127.0.0.1 whose every announce
/// answers `count` compact peers 127.0.X.Y:HANGING; a listener on
/// 0.0.0.0:HANGING that never accepts, so those connections hang. Both
/// ports are the system's choice (no free-port race); prints
/// `READY TRACKER_PORT HANGING_PORT`.
const HANGING_TRACKER: &str = r#"
import http.server, socket, struct, sys, threading
count = int(sys.argv[1])
hang = socket.socket()
hang.bind(("0.0.0.0", 0))
hang.listen(1)
hport = hang.getsockname()[1]
peers = b"".join(socket.inet_aton("127.0.%d.%d" % (2 + i // 250, 1 + i % 250)) + struct.pack(">H", hport)
                 for i in range(count))
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
print("READY %d %d" % (srv.server_address[1], hport), flush=True)
srv.serve_forever()
"#;

/// Class 10: a tracker answers a magnet link with 3,000 peers that all
/// hang. The metadata fetch must not start a thread per address: the
/// downloader stays under 100 threads, and the honest seeder in the link's
/// `x.pe` still gives it the metadata and the content within 90 s.
#[test]
fn a_tracker_full_of_hanging_peers_does_not_start_a_thread_each() {
    let dir = rustico_testkit::temp_dir().unwrap();
    let files = content(92, &[("m.bin", 400_000)]);
    write_files(&dir.path().join("src").join("m"), &files);
    let torrent = create_torrent(
        &dir.path().join("src").join("m"),
        &dir.path().join("m.torrent"),
        &[],
    );
    let hash = info_hash(&torrent);
    let seed_config_dir = dir.path().join("seeder");
    std::fs::create_dir_all(&seed_config_dir).unwrap();
    let (_seeder, seed_port) = start_seeder(
        &torrent,
        &dir.path().join("src"),
        &config_in(&seed_config_dir),
    );
    let mut tracker = rustico_testkit::spawn_python(HANGING_TRACKER, &["3000"]).unwrap();
    let (tracker_port, _hanging_port) = ready_ports(&mut tracker);
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    // The tracker first, so its 3,000 addresses come before the seeder's.
    let link = format!(
        "magnet:?xt=urn:btih:{hex}&tr=http%3A%2F%2F127.0.0.1%3A{tracker_port}%2Fannounce&x.pe=127.0.0.1:{seed_port}"
    );
    let config = config_in(dir.path());
    // The log goes to a file so that a failure can say where it stuck.
    let log_path = dir.path().join("download.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut download = ChildGuard(
        rustico()
            .arg("download")
            .arg(&link)
            .arg("-o")
            .arg(dir.path().join("out"))
            .args(["--port", "0"])
            .arg("--config")
            .arg(&config)
            .arg("-v")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let pid = download.0.id();
    let start = Instant::now();
    let mut most = 0;
    let status = loop {
        most = most.max(proc_status(pid, "Threads:"));
        if let Some(status) = download.0.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() >= Duration::from_secs(90) {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            // Log records only, not progress lines.
            let records: Vec<&str> = log
                .lines()
                .filter(|l| l.trim_start().starts_with(|c: char| c.is_ascii_digit()))
                .take(60)
                .collect();
            panic!(
                "the download did not finish (at most {most} threads); its log:\n{}",
                records.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "download failed: {status}");
    assert_files(&dir.path().join("out").join("m"), &files);
    assert!(most < 100, "the downloader ran {most} threads at once");
}

/// Reads a helper script's `READY A B` line: the two ports it bound.
fn ready_ports(guard: &mut ChildGuard) -> (u16, u16) {
    let ports = read_line_starting(guard, "READY ");
    let (a, b) = ports.split_once(' ').unwrap();
    (a.parse().unwrap(), b.trim().parse().unwrap())
}
