//! `rustico daemon`: restart from its state folder, Transmission's RPC
//! driven by Debian's `transmission-remote`, and hostile requests. The
//! peers are libtorrent seeders on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::*;
use serde_json::{json, Value};

/// `argv`: port, upload limit (bytes/s, 0: none), the daemon's peer port
/// (0: never dial it), then pairs of torrent and save path. Seeds every
/// torrent with libtorrent on 127.0.0.1, prints READY, and dials the
/// daemon every second while it has no peer (so a restarted daemon is
/// found again).
const SEEDER: &str = r#"
import libtorrent as lt, sys, time
port, limit, target = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
ses = lt.session({
    "listen_interfaces": "127.0.0.1:%d" % port,
    "enable_dht": False, "enable_lsd": False, "enable_upnp": False, "enable_natpmp": False,
    "enable_outgoing_utp": False, "enable_incoming_utp": False,
    "allow_multiple_connections_per_ip": True, "upload_rate_limit": limit,
    # Dialling a daemon that does not have the torrent yet fails; retry soon.
    "min_reconnect_time": 1, "max_failcount": 1000,
    "alert_mask": lt.alert.category_t.error_notification,
})
handles = []
args = sys.argv[4:]
for i in range(0, len(args), 2):
    atp = lt.add_torrent_params()
    atp.ti = lt.torrent_info(args[i])
    atp.save_path = args[i + 1]
    atp.flags |= lt.torrent_flags.seed_mode
    atp.flags &= ~(lt.torrent_flags.auto_managed | lt.torrent_flags.paused)
    h = ses.add_torrent(atp)
    if limit:
        # Session limits skip peers on the local network; a torrent's do not.
        h.set_upload_limit(limit)
    handles.append(h)
print("READY", flush=True)
end = time.monotonic() + 300
while time.monotonic() < end:
    for h in handles:
        if target and h.status().num_peers == 0:
            try:
                h.connect_peer(("127.0.0.1", target))
            except Exception as e:
                print("connect:", e, file=sys.stderr, flush=True)
    time.sleep(1)
"#;

/// `argv`: folder, piece length, out, tracker ("" for none). A v1 torrent
/// of the folder's single file or folder, made by libtorrent; prints the
/// info-hash.
const CREATE: &str = r#"
import libtorrent as lt, sys, os
src, piece, out, tracker = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
fs = lt.file_storage()
lt.add_files(fs, src)
ct = lt.create_torrent(fs, piece, flags=lt.create_torrent.v1_only)
if tracker:
    ct.add_tracker(tracker)
lt.set_piece_hashes(ct, os.path.dirname(src))
open(out, "wb").write(lt.bencode(ct.generate()))
print(lt.torrent_info(out).info_hashes().v1)
"#;

fn make_torrent(src: &Path, piece: u32, out: &Path, tracker: &str) -> String {
    rustico_testkit::run_python(
        CREATE,
        &[
            src.to_str().unwrap(),
            &piece.to_string(),
            out.to_str().unwrap(),
            tracker,
        ],
    )
    .unwrap()
    .trim()
    .to_string()
}

/// A libtorrent seeder of `torrents` (torrent, save path) that keeps
/// dialling the daemon's peer port.
fn start_seeder(
    limit: u64,
    daemon_peer_port: u16,
    torrents: &[(&Path, &Path)],
) -> (ChildGuard, u16) {
    let port = rustico_testkit::free_port();
    (
        start_seeder_at(port, limit, daemon_peer_port, torrents),
        port,
    )
}

/// The same on a given port.
fn start_seeder_at(
    port: u16,
    limit: u64,
    daemon_peer_port: u16,
    torrents: &[(&Path, &Path)],
) -> ChildGuard {
    let mut args = vec![
        port.to_string(),
        limit.to_string(),
        daemon_peer_port.to_string(),
    ];
    for (t, dir) in torrents {
        args.push(t.to_str().unwrap().to_string());
        args.push(dir.to_str().unwrap().to_string());
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut guard = rustico_testkit::spawn_python(SEEDER, &refs).unwrap();
    let mut line = String::new();
    BufReader::new(guard.0.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "READY", "libtorrent did not start");
    guard
}

/// A running daemon and its RPC port.
struct Daemon {
    child: ChildGuard,
    rpc_port: u16,
}

/// Starts `rustico daemon --state STATE --rpc-port 0 --port PEER_PORT`
/// with the config `config` and reads the RPC port it prints.
fn start_daemon(state: &Path, peer_port: u16, config: &Path) -> Daemon {
    let mut child = rustico()
        .arg("daemon")
        .arg("--state")
        .arg(state)
        .args(["--rpc-port", "0", "--port", &peer_port.to_string()])
        .arg("--config")
        .arg(config)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    let rpc_port = line
        .trim()
        .strip_prefix("rpc listening on 127.0.0.1:")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .parse()
        .unwrap();
    Daemon {
        child: ChildGuard(child),
        rpc_port,
    }
}

impl Daemon {
    /// SIGTERM, then waits for a clean exit.
    fn stop(mut self) {
        let t0 = Instant::now();
        let status = Command::new("kill")
            .args(["-TERM", &self.child.0.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let exit = wait_with_timeout(&mut self.child.0, Duration::from_secs(30), "daemon stop");
        assert!(exit.success(), "daemon exited with {exit}");
        eprintln!("stop took {:?}", t0.elapsed());
    }

    fn remote(&self, args: &[&str]) -> String {
        let mut cmd = Command::new("transmission-remote");
        cmd.arg(format!("127.0.0.1:{}", self.rpc_port)).args(args);
        let out = output_with_timeout(cmd, Duration::from_secs(30), "transmission-remote");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success(),
            "transmission-remote {args:?} failed: {text}"
        );
        text
    }

    /// One RPC call with a fresh session id; returns the answer.
    fn rpc(&self, request: Value) -> Value {
        let id = session_id(self.rpc_port);
        let (status, _, body) = http(
            self.rpc_port,
            "POST",
            "/transmission/rpc",
            &[("X-Transmission-Session-Id", &id)],
            request.to_string().as_bytes(),
        );
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        serde_json::from_slice(&body).unwrap()
    }

    fn torrent(&self, id: u64, fields: &[&str]) -> Value {
        let answer = self
            .rpc(json!({"method": "torrent-get", "arguments": {"ids": [id], "fields": fields}}));
        assert_eq!(answer["result"], "success", "{answer}");
        answer["arguments"]["torrents"][0].clone()
    }

    /// Polls `torrent-get` until `done` holds, at most `timeout`.
    fn wait_for(
        &self,
        id: u64,
        what: &str,
        timeout: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let start = Instant::now();
        loop {
            let t = self.torrent(
                id,
                &[
                    "percentDone",
                    "haveValid",
                    "status",
                    "peers",
                    "name",
                    "error",
                    "errorString",
                ],
            );
            if done(&t) {
                eprintln!("{what} after {:?}", start.elapsed());
                return t;
            }
            assert!(
                start.elapsed() < timeout,
                "{what}: not within {timeout:?}; last {t}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// One HTTP/1.1 exchange on a fresh connection: (status, head, body).
fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    let mut has_host = false;
    let mut request = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    for (name, value) in headers {
        has_host |= name.eq_ignore_ascii_case("host");
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if !has_host {
        request.push_str(&format!("Host: 127.0.0.1:{port}\r\n"));
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    // The server may answer (413) and close before taking the whole body.
    let _ = stream.write_all(body);
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP answer: {:?}", String::from_utf8_lossy(&raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head, raw[split + 4..].to_vec())
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// The session id from a 409 answer.
fn session_id(port: u16) -> String {
    let (status, head, _) = http(port, "POST", "/transmission/rpc", &[], b"{}");
    assert_eq!(status, 409);
    header(&head, "X-Transmission-Session-Id")
        .unwrap()
        .to_string()
}

fn config(dir: &Path, extra: &str) -> PathBuf {
    let path = config_in(dir);
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(extra);
    std::fs::write(&path, text).unwrap();
    path
}

fn b64(path: &Path) -> String {
    base64::engine::general_purpose::STANDARD.encode(std::fs::read(path).unwrap())
}

#[test]
fn a_daemon_stopped_halfway_resumes_from_its_state_folder_without_downloading_again() {
    if !rustico_testkit::require_libtorrent() {
        return;
    }
    let dir = rustico_testkit::temp_dir().unwrap();
    let total: u64 = 8 << 20;
    let piece: u64 = 65536;
    let data = rustico_testkit::pseudo_random_bytes(19, total as usize);
    let seed_dir = dir.path().join("seed");
    std::fs::create_dir_all(&seed_dir).unwrap();
    std::fs::write(seed_dir.join("half.bin"), &data).unwrap();
    let torrent = dir.path().join("half.torrent");
    make_torrent(&seed_dir.join("half.bin"), piece as u32, &torrent, "");
    let state = dir.path().join("state");
    let config = config(dir.path(), "");
    let peer_port = rustico_testkit::free_port();
    // 2 MB/s: the download takes about 4 s, time enough to stop halfway.
    let (slow, _) = start_seeder(2_000_000, peer_port, &[(&torrent, &seed_dir)]);

    let daemon = start_daemon(&state, peer_port, &config);
    let added =
        daemon.rpc(json!({"method": "torrent-add", "arguments": {"metainfo": b64(&torrent)}}));
    assert_eq!(added["result"], "success", "{added}");
    let id = added["arguments"]["torrent-added"]["id"].as_u64().unwrap();
    // A second torrent (same file, other pieces), added paused: it must
    // come back paused.
    let other = dir.path().join("other.torrent");
    make_torrent(&seed_dir.join("half.bin"), 32768, &other, "");
    let paused = daemon.rpc(json!({"method": "torrent-add", "arguments": {
        "metainfo": b64(&other), "paused": true, "download-dir": dir.path().join("other").to_str().unwrap()}}));
    let paused_id = paused["arguments"]["torrent-added"]["id"].as_u64().unwrap();
    assert_ne!(paused_id, id);
    let before = daemon.wait_for(id, "a third downloaded", Duration::from_secs(60), |t| {
        t["haveValid"].as_u64().unwrap() >= total / 3
    });
    let have_before = before["haveValid"].as_u64().unwrap();
    assert!(
        have_before < total,
        "finished before the stop: slow the seeder down"
    );
    daemon.stop();
    // A fresh seeder at full speed for the second run.
    drop(slow);
    let (_fast, _) = start_seeder(0, peer_port, &[(&torrent, &seed_dir)]);

    let daemon = start_daemon(&state, peer_port, &config);
    let first = daemon.torrent(id, &["name", "haveValid", "downloadDir"]);
    assert_eq!(
        first["name"], "half.bin",
        "the restart lost the torrent: {first}"
    );
    let done = daemon.wait_for(id, "complete", Duration::from_secs(60), |t| {
        t["percentDone"] == 1.0
    });
    assert_eq!(done["haveValid"].as_u64().unwrap(), total);
    let stats = daemon.rpc(json!({"method": "session-stats"}));
    let again = stats["arguments"]["current-stats"]["downloadedBytes"]
        .as_u64()
        .unwrap();
    // What was on disk at the stop is not fetched again; allow the pieces
    // in flight at the stop and end-game duplicates.
    assert!(
        again <= total - have_before + 4 * piece,
        "the second run downloaded {again} bytes, but only {} were missing",
        total - have_before
    );
    eprintln!("restart: {have_before} of {total} bytes on disk at the stop; the second run downloaded {again}");
    assert!(
        again > 0,
        "the second run downloaded nothing: was it complete already?"
    );
    let cumulative = stats["arguments"]["cumulative-stats"]["sessionCount"]
        .as_u64()
        .unwrap();
    assert_eq!(cumulative, 2);
    let got = std::fs::read(state.join("downloads/half.bin")).unwrap();
    assert!(got == data, "the downloaded file differs");
    let back = daemon.torrent(paused_id, &["status", "downloadDir", "haveValid"]);
    assert_eq!(
        back["status"], 0,
        "the paused torrent came back running: {back}"
    );
    assert!(
        back["downloadDir"].as_str().unwrap().ends_with("other"),
        "{back}"
    );
    daemon.wait_for(id, "seeding", Duration::from_secs(30), |t| t["status"] == 6);
    daemon.stop();

    // A third run: the complete torrent seeds at once, nothing downloaded.
    let daemon = start_daemon(&state, peer_port, &config);
    let t = daemon.wait_for(id, "seeding again", Duration::from_secs(30), |t| {
        t["status"] == 6
    });
    assert_eq!(t["haveValid"].as_u64().unwrap(), total);
    let stats = daemon.rpc(json!({"method": "session-stats"}));
    assert_eq!(stats["arguments"]["current-stats"]["downloadedBytes"], 0);
    assert_eq!(stats["arguments"]["cumulative-stats"]["sessionCount"], 3);
    assert_eq!(stats["arguments"]["torrentCount"], 2);
    daemon.stop();
}

/// Polls `transmission-remote ARGS` until its output satisfies `done`.
fn remote_until(d: &Daemon, args: &[&str], what: &str, done: impl Fn(&str) -> bool) -> String {
    let start = Instant::now();
    loop {
        let out = d.remote(args);
        if done(&out) {
            return out;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{what}: not within 60 s; last output:\n{out}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The `-l` row of the torrent named `name`.
fn row<'a>(list: &'a str, name: &str) -> Option<&'a str> {
    list.lines()
        .find(|l| l.trim_end().ends_with(&format!(" {name}")))
}

#[test]
fn transmission_remote_drives_the_daemon_end_to_end() {
    if !rustico_testkit::require_libtorrent() || !rustico_testkit::require("transmission-remote") {
        return;
    }
    let dir = rustico_testkit::temp_dir().unwrap();
    let seed_dir = dir.path().join("seed");
    let files = content(23, &[("one.bin", 3_000_000), ("sub/two.bin", 1_500_000)]);
    write_files(&seed_dir.join("album"), &files);
    let single = rustico_testkit::pseudo_random_bytes(29, 2_000_000);
    std::fs::write(seed_dir.join("b.bin"), &single).unwrap();
    let album = dir.path().join("album.torrent");
    // A tracker nobody answers on: -it shows it and the failed announce.
    let tracker = "http://127.0.0.1:1/announce";
    make_torrent(&seed_dir.join("album"), 32768, &album, tracker);
    let b_torrent = dir.path().join("b.torrent");
    let b_hash = make_torrent(&seed_dir.join("b.bin"), 32768, &b_torrent, "");
    let state = dir.path().join("state");
    let config = config(dir.path(), "");
    let peer_port = rustico_testkit::free_port();
    // 3 MB/s, so the peer list can be read while the download runs.
    let (slow, _) = start_seeder(3_000_000, peer_port, &[(&album, &seed_dir)]);
    let daemon = start_daemon(&state, peer_port, &config);

    // -a by path (transmission-remote sends the file as base64 metainfo).
    let out = daemon.remote(&["-a", album.to_str().unwrap()]);
    assert!(out.contains("success"), "{out}");
    // -ip: the libtorrent peer, with its address and client name.
    let peers = remote_until(&daemon, &["-t", "1", "-ip"], "a libtorrent peer row", |o| {
        o.lines()
            .any(|l| l.starts_with("127.0.0.1") && l.contains("libtorrent"))
    });
    assert!(peers.contains("Client"), "{peers}");
    // -l: 100%.
    let list = remote_until(&daemon, &["-l"], "album at 100%", |o| {
        row(o, "album").is_some_and(|r| r.contains("100%"))
    });
    assert!(list.contains("Sum:"), "{list}");
    // The rest from a seeder at full speed (a rate-limited libtorrent was
    // seen to send nothing to a peer that reconnected).
    drop(slow);
    let (seeder, seeder_port) = start_seeder(
        0,
        peer_port,
        &[(&album, &seed_dir), (&b_torrent, &seed_dir)],
    );
    // -i: details.
    let info = daemon.remote(&["-t", "1", "-i"]);
    for want in ["Name: album", "Percent Done: 100%", "Total size: 4.50 MB"] {
        assert!(info.contains(want), "-i lacks {want:?}:\n{info}");
    }
    // -if: both files, complete.
    let files_out = daemon.remote(&["-t", "1", "-if"]);
    assert!(files_out.contains("album (2 files)"), "{files_out}");
    for name in ["album/one.bin", "album/sub/two.bin"] {
        let line = files_out
            .lines()
            .find(|l| l.ends_with(name))
            .unwrap_or_else(|| panic!("{name} missing:\n{files_out}"));
        assert!(line.contains("100%"), "{line}");
    }
    // -it: the tracker and its failed announce.
    let trackers = remote_until(&daemon, &["-t", "1", "-it"], "a tracker announce", |o| {
        o.contains("error")
    });
    assert!(trackers.contains("127.0.0.1:1"), "{trackers}");

    // -a by magnet link: metadata from the link's x.pe peer.
    let magnet = format!("magnet:?xt=urn:btih:{b_hash}&dn=b.bin&x.pe=127.0.0.1:{seeder_port}");
    let out = daemon.remote(&["-a", &magnet]);
    assert!(out.contains("success"), "{out}");
    remote_until(&daemon, &["-l"], "b.bin at 100%", |o| {
        row(o, "b.bin").is_some_and(|r| r.contains("100%"))
    });
    assert!(std::fs::read(state.join("downloads/b.bin")).unwrap() == single);
    assert_files(&state.join("downloads/album"), &files);

    // -S and -s.
    daemon.remote(&["-t", "1", "-S"]);
    remote_until(&daemon, &["-l"], "album stopped", |o| {
        row(o, "album").is_some_and(|r| r.contains("Stopped"))
    });
    daemon.remote(&["-t", "1", "-s"]);
    remote_until(&daemon, &["-l"], "album started", |o| {
        row(o, "album").is_some_and(|r| !r.contains("Stopped") && r.contains("100%"))
    });

    // -v after damage on disk: the recheck finds it, the piece comes again.
    // From a seeder that never dials: the restarted torrent must dial it
    // from the peers its last run knew (b.bin's seeder is one the daemon
    // dialled, the magnet's x.pe). The same seeder dialling in is not
    // enough: libtorrent, a seed that took us for a seed, does not dial
    // us back (with album, whose seeder only ever dialled in, the repair
    // hung 1 run in 10 under load).
    drop(seeder);
    let quiet = start_seeder_at(
        seeder_port,
        0,
        0,
        &[(&album, &seed_dir), (&b_torrent, &seed_dir)],
    );
    let damaged = state.join("downloads/b.bin");
    let mut bytes = std::fs::read(&damaged).unwrap();
    bytes[1000] ^= 0xff;
    std::fs::write(&damaged, &bytes).unwrap();
    daemon.remote(&["-t", "2", "-v"]);
    remote_until(&daemon, &["-l"], "b.bin repaired", |o| {
        row(o, "b.bin").is_some_and(|r| r.contains("100%"))
    });
    assert!(std::fs::read(&damaged).unwrap() == single);
    let got = daemon.torrent(2, &["downloadedEver", "totalSize"]);
    let total = got["totalSize"].as_u64().unwrap();
    assert!(
        got["downloadedEver"].as_u64().unwrap() > total,
        "the damaged piece was not fetched again: {got}"
    );

    // -si and -st.
    let si = daemon.remote(&["-si"]);
    for want in [
        "RPC version: 15",
        &format!("Listenport: {peer_port}"),
        "Daemon version: rustico",
    ] {
        assert!(si.contains(want), "-si lacks {want:?}:\n{si}");
    }
    let st = daemon.remote(&["-st"]);
    let current = st.split("TOTAL").next().unwrap();
    let downloaded = current
        .lines()
        .find(|l| l.trim_start().starts_with("Downloaded:"))
        .unwrap();
    assert!(!downloaded.contains("None"), "{st}");
    assert!(st.contains("Started 1 times"), "{st}");

    // -r keeps the data; -rad deletes it.
    daemon.remote(&["-t", "2", "-r"]);
    let list = daemon.remote(&["-l"]);
    assert!(row(&list, "b.bin").is_none(), "{list}");
    assert!(state.join("downloads/b.bin").exists());
    daemon.remote(&["-t", "1", "-rad"]);
    let list = daemon.remote(&["-l"]);
    assert!(row(&list, "album").is_none(), "{list}");
    assert!(
        !state.join("downloads/album").exists(),
        "-rad left the data"
    );
    drop(quiet);
    daemon.stop();
}

fn rpc_raw(d: &Daemon, id: &str, body: &[u8]) -> (u16, Value) {
    let (status, _, answer) = http(
        d.rpc_port,
        "POST",
        "/transmission/rpc",
        &[("X-Transmission-Session-Id", id)],
        body,
    );
    let value = serde_json::from_slice(&answer).unwrap_or(Value::Null);
    (status, value)
}

fn result_of(answer: &Value) -> &str {
    answer["result"]
        .as_str()
        .unwrap_or_else(|| panic!("no result in {answer}"))
}

#[test]
fn hostile_requests_get_the_right_status_or_rpc_error_and_the_daemon_keeps_serving() {
    let dir = rustico_testkit::temp_dir().unwrap();
    let web = dir.path().join("web");
    std::fs::create_dir_all(&web).unwrap();
    std::fs::write(web.join("index.html"), "web root page").unwrap();
    std::fs::write(dir.path().join("secret.txt"), "secret").unwrap();
    let config = config(
        dir.path(),
        &format!("[daemon]\nrpc_max_body = 4096\nweb_root = {:?}\n", web),
    );
    let d = start_daemon(&dir.path().join("state"), 0, &config);
    let port = d.rpc_port;

    // No session id, or a wrong one: 409 with the right one.
    let (status, head, _) = http(
        port,
        "POST",
        "/transmission/rpc",
        &[],
        b"{\"method\":\"session-get\"}",
    );
    assert_eq!(status, 409);
    let id = header(&head, "X-Transmission-Session-Id")
        .unwrap()
        .to_string();
    assert!(id.len() >= 32, "short session id {id}");
    let (status, head, _) = rpc_raw_head(port, "not-the-id");
    assert_eq!(status, 409);
    assert_eq!(
        header(&head, "X-Transmission-Session-Id"),
        Some(id.as_str())
    );

    // A wrong Host (DNS rebinding), even with the right session id.
    for host in [
        "evil.example",
        "evil.example:9091",
        "127.0.0.1.evil.example",
    ] {
        let (status, _, _) = http(
            port,
            "POST",
            "/transmission/rpc",
            &[("Host", host), ("X-Transmission-Session-Id", &id)],
            b"{\"method\":\"session-get\"}",
        );
        assert_eq!(status, 421, "Host {host}");
        let (status, _, _) = http(port, "GET", "/", &[("Host", host)], b"");
        assert_eq!(status, 421, "page with Host {host}");
    }
    let (status, _, _) = http(port, "GET", "/", &[("Host", "localhost:1")], b"");
    assert_eq!(status, 200);

    // Oversized body: 413, whatever it holds.
    let big = vec![b' '; 10_000];
    let (status, _) = rpc_raw(&d, &id, &big);
    assert_eq!(status, 413);
    // A huge declared length with a tiny body (the process must not try
    // to make room for it), and a chunked body.
    for extra in [
        "Content-Length: 100000000000000\r\n",
        "Content-Length: 18446744073709551616\r\n",
        "Transfer-Encoding: chunked\r\n",
    ] {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let head = format!(
            "POST /transmission/rpc HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Transmission-Session-Id: {id}\r\n{extra}\r\n{{}}"
        );
        s.write_all(head.as_bytes()).unwrap();
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        let want = if extra.starts_with("Transfer") {
            " 501 "
        } else {
            " 4"
        };
        assert!(
            answer.starts_with("HTTP/1.1") && answer.contains(want),
            "{extra}: {answer}"
        );
    }
    // A head too large.
    let huge_header = "x".repeat(20_000);
    let (status, _, _) = http(port, "GET", "/", &[("X-Big", &huge_header)], b"");
    assert_eq!(status, 431);

    // Malformed JSON: 400 with a JSON result saying so.
    for body in [&b"{"[..], b"not json", b"\xff\xfe", b""] {
        let (status, answer) = rpc_raw(&d, &id, body);
        assert_eq!(status, 400, "{body:?}");
        assert!(result_of(&answer).starts_with("malformed JSON"), "{answer}");
    }

    // Wrong types and unknown names: 200 with an RPC error.
    let cases: &[(Value, &str)] = &[
        (json!([1, 2]), "malformed request"),
        (json!({"method": 5}), "malformed request"),
        (json!({"arguments": {}}), "malformed request"),
        (
            json!({"method": "no-such-method"}),
            "method name not recognized",
        ),
        (
            json!({"method": "torrent-get", "arguments": []}),
            "invalid argument 'arguments'",
        ),
        (
            json!({"method": "torrent-get", "arguments": {"fields": "name"}}),
            "invalid argument 'fields'",
        ),
        (
            json!({"method": "torrent-get", "arguments": {"fields": [1]}}),
            "invalid argument 'fields'",
        ),
        (
            json!({"method": "torrent-get", "arguments": {"fields": ["nameX"]}}),
            "unknown field 'nameX'",
        ),
        (
            json!({"method": "torrent-get", "arguments": {"fields": ["name"], "ids": [999]}}),
            "no torrent with id 999",
        ),
        (
            json!({"method": "torrent-get", "arguments": {"fields": ["name"], "ids": [true]}}),
            "invalid argument 'ids'",
        ),
        (
            json!({"method": "torrent-get", "arguments": {"fields": ["name"], "ids": -1}}),
            "invalid argument 'ids'",
        ),
        (
            json!({"method": "torrent-stop", "arguments": {"ids": ["00112233445566778899aabbccddeeff00112233"]}}),
            "no torrent with id 00112233445566778899aabbccddeeff00112233",
        ),
        (
            json!({"method": "torrent-remove", "arguments": {"ids": [], "delete-local-data": "yes"}}),
            "invalid argument 'delete-local-data'",
        ),
        (
            json!({"method": "torrent-add", "arguments": {"metainfo": "!!!"}}),
            "invalid argument 'metainfo'",
        ),
        (
            json!({"method": "torrent-add", "arguments": {"metainfo": "aGVsbG8="}}),
            "invalid or corrupt torrent file",
        ),
        (
            json!({"method": "torrent-add", "arguments": {"filename": 7}}),
            "invalid argument 'filename'",
        ),
        (
            json!({"method": "torrent-add", "arguments": {"filename": "/no/such/file.torrent"}}),
            "invalid argument 'filename'",
        ),
        (
            json!({"method": "torrent-add", "arguments": {"filename": "magnet:?xt=urn:btih:zz"}}),
            "invalid magnet link",
        ),
        (
            json!({"method": "session-get", "arguments": {"fields": ["no-such-setting"]}}),
            "unknown field 'no-such-setting'",
        ),
        (
            json!({"method": "session-set", "arguments": {"peer-port": 1}}),
            "not supported",
        ),
    ];
    for (request, want) in cases {
        let (status, answer) = rpc_raw(&d, &id, request.to_string().as_bytes());
        assert_eq!(status, 200, "{request}");
        assert!(result_of(&answer).contains(want), "{request}: {answer}");
    }
    // The tag comes back.
    let (_, answer) = rpc_raw(&d, &id, br#"{"method":"session-stats","tag":77}"#);
    assert_eq!(
        (result_of(&answer), answer["tag"].as_u64()),
        ("success", Some(77))
    );

    // Static files: the web root, never outside it.
    let (status, _, body) = http(port, "GET", "/transmission/web/", &[], b"");
    assert_eq!((status, body.as_slice()), (200, &b"web root page"[..]));
    for path in [
        "/transmission/web/../secret.txt",
        "/transmission/web/%2e%2e/secret.txt",
        "/transmission/web/..%2fsecret.txt",
        "/transmission/web/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/etc/passwd",
        "/../../etc/passwd",
    ] {
        let (status, _, body) = http(port, "GET", path, &[], b"");
        assert!(status == 404 || status == 400, "{path}: {status}");
        assert!(!String::from_utf8_lossy(&body).contains("secret"), "{path}");
    }

    // 1,000 requests in a tight loop, each on its own connection.
    for i in 0..1000u32 {
        let request = json!({"method": "session-stats", "tag": i});
        let (status, answer) = rpc_raw(&d, &id, request.to_string().as_bytes());
        assert_eq!(status, 200);
        assert_eq!(answer["tag"].as_u64(), Some(u64::from(i)));
    }
    // Still serving.
    let (status, answer) = rpc_raw(&d, &id, br#"{"method":"session-get"}"#);
    assert_eq!((status, result_of(&answer)), (200, "success"));
    d.stop();
}

fn rpc_raw_head(port: u16, id: &str) -> (u16, String, Vec<u8>) {
    http(
        port,
        "POST",
        "/transmission/rpc",
        &[("X-Transmission-Session-Id", id)],
        b"{\"method\":\"session-get\"}",
    )
}

#[test]
fn basic_authentication_guards_everything_and_is_required_beyond_loopback() {
    let dir = rustico_testkit::temp_dir().unwrap();
    let config = config(
        dir.path(),
        "[daemon]\nrpc_username = \"ana\"\nrpc_password = \"s3cret\"\n",
    );
    let d = start_daemon(&dir.path().join("state"), 0, &config);
    let port = d.rpc_port;
    let basic = |user_pass: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(user_pass)
        )
    };
    for auth in [
        None,
        Some(basic("ana:wrong")),
        Some(basic("bob:s3cret")),
        Some("Basic !!".to_string()),
        Some("Bearer x".to_string()),
    ] {
        let headers: Vec<(&str, &str)> =
            auth.iter().map(|a| ("Authorization", a.as_str())).collect();
        for path in ["/", "/transmission/rpc"] {
            let (status, head, _) = http(port, "POST", path, &headers, b"{}");
            assert_eq!(status, 401, "{auth:?} {path}");
            assert!(header(&head, "WWW-Authenticate").is_some_and(|v| v.starts_with("Basic")));
            assert!(
                header(&head, "X-Transmission-Session-Id").is_none(),
                "the session id leaked"
            );
        }
    }
    let good = basic("ana:s3cret");
    let (status, head, _) = http(
        port,
        "POST",
        "/transmission/rpc",
        &[("Authorization", &good)],
        b"{}",
    );
    assert_eq!(status, 409);
    let id = header(&head, "X-Transmission-Session-Id")
        .unwrap()
        .to_string();
    let (status, _, body) = http(
        port,
        "POST",
        "/transmission/rpc",
        &[("Authorization", &good), ("X-Transmission-Session-Id", &id)],
        br#"{"method":"session-get","arguments":{"fields":["rpc-authentication-required"]}}"#,
    );
    assert_eq!(status, 200);
    let answer: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(answer["arguments"]["rpc-authentication-required"], true);
    let out = Command::new("transmission-remote");
    if rustico_testkit::tool_exists("transmission-remote") {
        let mut out = out;
        out.arg(format!("127.0.0.1:{port}"))
            .args(["--auth", "ana:s3cret", "-l"]);
        let o = output_with_timeout(out, Duration::from_secs(30), "transmission-remote");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    d.stop();

    // Anything but loopback without a password: refused at start.
    let open = config_in(dir.path());
    let mut text = std::fs::read_to_string(&open).unwrap();
    text.push_str("[daemon]\nrpc_bind = \"0.0.0.0\"\n");
    std::fs::write(&open, text).unwrap();
    let mut cmd = rustico();
    cmd.arg("daemon")
        .arg("--state")
        .arg(dir.path().join("state2"))
        .args(["--rpc-port", "0", "--port", "0", "--config"])
        .arg(&open);
    let out = output_with_timeout(cmd, Duration::from_secs(30), "daemon on 0.0.0.0");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("without authentication"), "{err}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("rpc listening"));
}

/// Debian's chromium, driven over WebDriver by `daemon_browser.py`: the
/// page adds a torrent, shows it complete with a peer row and a full piece
/// map, pauses and resumes it, logs no console error; Transmission's own
/// web client, served from the web root, lists the same torrent at 100%.
#[test]
fn a_real_browser_uses_the_page_and_transmissions_web_client() {
    const WEB: &str = "/usr/share/transmission/web";
    if !rustico_testkit::require_libtorrent()
        || !rustico_testkit::require("chromium")
        || !rustico_testkit::require("chromedriver")
    {
        return;
    }
    if !Path::new(WEB).join("index.html").exists() {
        assert!(
            !rustico_testkit::in_ci(),
            "{WEB} missing: install transmission-common"
        );
        eprintln!("skipping: {WEB} missing");
        return;
    }
    let dir = rustico_testkit::temp_dir().unwrap();
    let seed_dir = dir.path().join("seed");
    let files = content(
        31,
        &[("movie.bin", 5_000_000), ("extras/notes.txt", 20_000)],
    );
    write_files(&seed_dir.join("holiday"), &files);
    let torrent = dir.path().join("holiday.torrent");
    make_torrent(
        &seed_dir.join("holiday"),
        32768,
        &torrent,
        "http://127.0.0.1:1/announce",
    );
    let config = config(dir.path(), &format!("[daemon]\nweb_root = {WEB:?}\n"));
    let peer_port = rustico_testkit::free_port();
    // 1 MB/s: the page has a few seconds to show the peer while it sends.
    let (_seeder, _) = start_seeder(1_000_000, peer_port, &[(&torrent, &seed_dir)]);
    let daemon = start_daemon(&dir.path().join("state"), peer_port, &config);
    let shot = dir.path().join("daemon-page.png");
    let mut cmd = Command::new("/usr/bin/python3");
    cmd.arg(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/daemon_browser.py"
    ))
    .arg(format!("http://127.0.0.1:{}", daemon.rpc_port))
    .arg(&torrent)
    .arg("holiday")
    .arg(&shot)
    .arg(rustico_testkit::free_port().to_string());
    let out = output_with_timeout(cmd, Duration::from_secs(240), "the browser script");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "browser script failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = |key: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(key).map(str::trim))
            .unwrap_or_else(|| panic!("no {key} line in:\n{stdout}"))
            .to_string()
    };
    assert_eq!(line("ADDED"), "Added holiday");
    let peer = line("PEER");
    assert!(peer.starts_with("127.0.0.1:"), "{peer}");
    assert!(peer.contains("| libtorrent"), "{peer}");
    // The screenshot of the page during the download (the README's, when
    // DAEMON_SCREENSHOT names where to keep it).
    let png = std::fs::read(&shot).unwrap();
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    if let Some(keep) = std::env::var_os("DAEMON_SCREENSHOT") {
        std::fs::write(keep, &png).unwrap();
    }
    assert_eq!(line("PROGRESS"), "100.0%");
    let piece_line = line("PIECES");
    let expected = (5_020_000u64).div_ceil(32768);
    assert!(
        piece_line.starts_with(&format!("{expected} of {expected} pixels")),
        "{piece_line}"
    );
    assert_eq!(line("PAUSED"), "Stopped");
    assert_eq!(line("RESUMED"), "Seeding");
    assert!(
        line("CONSOLE_ERRORS").starts_with("0 "),
        "{}",
        line("CONSOLE_ERRORS")
    );
    let web = line("TRANSMISSION_WEB");
    assert!(
        web.starts_with("holiday |") && web.contains("100%"),
        "{web}"
    );
    assert_files(&dir.path().join("state/downloads/holiday"), &files);
    daemon.stop();
}
