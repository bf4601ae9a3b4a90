//! Helpers shared by the `rustico` binary's integration tests: run the
//! built binary, make content, compare folders.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

pub use rustico_testkit::ChildGuard;

/// The `rustico` binary under test. Its default config (used when a test
/// gives no `--config`) turns the DHT off, so no test ever contacts the
/// public DHT routers, and its state folder is a temporary one.
pub fn rustico() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rustico"));
    c.stdin(Stdio::null())
        .env("XDG_CONFIG_HOME", default_config_home())
        .env("XDG_DATA_HOME", default_config_home().join("data"));
    c
}

fn default_config_home() -> &'static Path {
    static HOME: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    HOME.get_or_init(|| {
        let home = std::env::temp_dir().join(format!("rustico-test-config-{}", std::process::id()));
        std::fs::create_dir_all(home.join("rustico")).unwrap();
        std::fs::write(home.join("rustico/config.toml"), "dht = false\n").unwrap();
        home
    })
}

/// Writes a config file that keeps logs inside `dir`; returns its path.
pub fn config_in(dir: &Path) -> PathBuf {
    let path = dir.join("config.toml");
    let logs = dir.join("logs");
    std::fs::write(
        &path,
        format!(
            "log_dir = {:?}\npeers_per_torrent = 50\nupload_slots = 8\ndht = false\nstate_dir = {:?}\n",
            logs,
            dir.join("state")
        ),
    )
    .unwrap();
    path
}

/// The log file a config from [`config_in`] makes rustico write.
pub fn log_file(dir: &Path) -> PathBuf {
    dir.join("logs").join("rustico.log")
}

/// Files of a multi-file torrent: `(relative path, bytes)`.
pub fn content(seed: u64, sizes: &[(&str, usize)]) -> Vec<(String, Vec<u8>)> {
    sizes
        .iter()
        .enumerate()
        .map(|(i, (name, len))| {
            (
                name.to_string(),
                rustico_testkit::pseudo_random_bytes(seed + i as u64, *len),
            )
        })
        .collect()
}

/// Writes `files` under `root`.
pub fn write_files(root: &Path, files: &[(String, Vec<u8>)]) {
    for (name, bytes) in files {
        let path = root.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
}

/// Asserts that `root` holds exactly these bytes for every file.
pub fn assert_files(root: &Path, files: &[(String, Vec<u8>)]) {
    for (name, bytes) in files {
        let path = root.join(name);
        let got = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            got == *bytes,
            "{} differs from the original ({} vs {} bytes)",
            path.display(),
            got.len(),
            bytes.len()
        );
    }
}

/// `rustico create SRC -o OUT [extra...]`; returns the torrent's path.
pub fn create_torrent(src: &Path, out: &Path, extra: &[&str]) -> PathBuf {
    let status = rustico()
        .arg("create")
        .arg(src)
        .arg("-o")
        .arg(out)
        .args(extra)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "rustico create failed");
    out.to_path_buf()
}

/// The 20-byte info-hash a torrent's swarm goes by, via `rustico info
/// --json`: the v1 hash, or for a v2-only torrent the truncated v2 hash.
pub fn info_hash(torrent: &Path) -> [u8; 20] {
    let out = rustico()
        .arg("info")
        .arg(torrent)
        .arg("--json")
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let hex = v["info_hash"]
        .as_str()
        .or_else(|| v["info_hash_v2"].as_str())
        .unwrap();
    let mut hash = [0u8; 20];
    for (i, b) in hash.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
    }
    hash
}

/// Waits for `child` at most `timeout`; kills it and panics on timeout.
pub fn wait_with_timeout(child: &mut Child, timeout: Duration, what: &str) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs a command to its end (at most `timeout`), capturing its output.
pub fn output_with_timeout(mut cmd: Command, timeout: Duration, what: &str) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let out_thread = std::thread::spawn(move || read_all(stdout));
    let err_thread = std::thread::spawn(move || read_all(stderr));
    let status = wait_with_timeout(&mut child, timeout, what);
    Output {
        status,
        stdout: out_thread.join().unwrap(),
        stderr: err_thread.join().unwrap(),
    }
}

fn read_all(r: impl std::io::Read) -> Vec<u8> {
    let mut out = Vec::new();
    for line in BufReader::new(r).split(b'\n') {
        let Ok(line) = line else { break };
        out.extend_from_slice(&line);
        out.push(b'\n');
    }
    out
}

/// Starts `rustico seed TORRENT DIR --port 0` and returns it with the port
/// it says it got (no free-port race).
pub fn start_seeder(torrent: &Path, dir: &Path, config: &Path) -> (ChildGuard, u16) {
    start_seeder_with(&[], torrent, dir, config)
}

/// [`start_seeder`] with global flags before `seed` (`-vv` for debug lines
/// in its log).
pub fn start_seeder_with(
    flags: &[&str],
    torrent: &Path,
    dir: &Path,
    config: &Path,
) -> (ChildGuard, u16) {
    let mut cmd = rustico();
    cmd.args(flags)
        .arg("seed")
        .arg(torrent)
        .arg(dir)
        .args(["--port", "0"])
        .arg("--config")
        .arg(config);
    spawn_seeder(cmd)
}

/// Spawns `cmd`, a `rustico seed … --port 0` (possibly behind a wrapper
/// such as `prlimit`), and returns it with the port it says it got.
pub fn spawn_seeder(mut cmd: Command) -> (ChildGuard, u16) {
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut guard = ChildGuard(child);
    let stderr = guard.0.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let port = loop {
        let line = lines
            .next()
            .expect("the seeder exited before saying its port")
            .unwrap();
        // "seeding NAME on port N"
        if let Some(port) = line
            .strip_prefix("seeding ")
            .and_then(|rest| rest.rsplit_once(" on port "))
            .and_then(|(_, port)| port.trim().parse::<u16>().ok())
        {
            break port;
        }
    };
    // Keep reading, so the seeder never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (guard, port)
}

/// The port a rustico process started with `--port 0` listens on, from
/// the `listening on port N` record of its log file; waits up to 20 s.
pub fn listening_port(log: &Path) -> u16 {
    let start = std::time::Instant::now();
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(port) = text.lines().find_map(|line| {
            let (_, rest) = line.split_once("listening on port ")?;
            rest.trim().parse::<u16>().ok()
        }) {
            return port;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no 'listening on port' in {} within 20 s:\n{text}",
            log.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts `rustico seed TORRENT DIR --port PORT` on a port chosen before
/// (for tests that must name it first) and waits until it listens.
pub fn start_seeder_on(torrent: &Path, dir: &Path, port: u16, config: &Path) -> ChildGuard {
    let child = rustico()
        .arg("seed")
        .arg(torrent)
        .arg(dir)
        .args(["--port", &port.to_string()])
        .arg("--config")
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let guard = ChildGuard(child);
    rustico_testkit::wait_for_tcp(([127, 0, 0, 1], port).into(), Duration::from_secs(20)).unwrap();
    guard
}

/// A libtorrent peer on 127.0.0.1. `argv`: torrent, save path, port, mode
/// ("seed" or "leech"), and optionally the encryption policy for both
/// directions ("forced": RC4 only; "enabled", the default: either;
/// "disabled"). Prints READY once listening, DONE once it has every piece
/// (leech mode then exits); its alerts go to stderr.
pub const LIBTORRENT_PEER: &str = r#"
import libtorrent as lt, sys, time
torrent, save, port, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
enc = sys.argv[5] if len(sys.argv) > 5 else "enabled"
policy = getattr(lt.enc_policy, enc)
ses = lt.session({
    "listen_interfaces": "127.0.0.1:%d" % port,
    "enable_dht": False, "enable_lsd": False, "enable_upnp": False, "enable_natpmp": False,
    "enable_outgoing_utp": False, "enable_incoming_utp": False,
    "allow_multiple_connections_per_ip": True,
    "announce_to_all_trackers": True,
    "out_enc_policy": policy, "in_enc_policy": policy,
    "allowed_enc_level": lt.enc_level.rc4 if enc == "forced" else lt.enc_level.both,
    "alert_mask": lt.alert.category_t.error_notification,
})
atp = lt.add_torrent_params()
atp.ti = lt.torrent_info(torrent)
atp.save_path = save
if mode == "seed":
    atp.flags |= lt.torrent_flags.seed_mode
atp.flags &= ~(lt.torrent_flags.auto_managed | lt.torrent_flags.paused)
h = ses.add_torrent(atp)
# add_torrent returns before the torrent is started: a peer dialling now
# can find no torrent for its obfuscated info-hash and be hung up on.
ready = time.monotonic() + 30
while time.monotonic() < ready and not (ses.is_listening() and h.status().state in
        (lt.torrent_status.seeding, lt.torrent_status.downloading, lt.torrent_status.finished)):
    time.sleep(0.02)
print("READY", flush=True)
end = time.monotonic() + 170
done = False
while time.monotonic() < end:
    time.sleep(0.1)
    for a in ses.pop_alerts():
        print("libtorrent:", a.what(), a.message(), file=sys.stderr, flush=True)
    s = h.status()
    if not done and s.is_seeding:
        done = True
        print("DONE", flush=True)
        if mode == "leech":
            break
"#;

/// A [`LIBTORRENT_PEER`] for `torrent`, its files under `save`, on
/// 127.0.0.1:`port` in `mode` ("seed" or "leech"); returns once it
/// listens (READY).
pub fn libtorrent_peer(torrent: &Path, save: &Path, port: u16, mode: &str) -> ChildGuard {
    let mut peer = rustico_testkit::spawn_python(
        LIBTORRENT_PEER,
        &[
            torrent.to_str().unwrap(),
            save.to_str().unwrap(),
            &port.to_string(),
            mode,
        ],
    )
    .unwrap();
    wait_for_line(&mut peer, "READY");
    peer
}

/// libtorrent downloads `torrent` into `DIR/libtorrent` (from whatever
/// peers its trackers give) and has every piece; returns that folder.
pub fn libtorrent_downloads(torrent: &Path, dir: &Path) -> PathBuf {
    let lt_dir = dir.join("libtorrent");
    std::fs::create_dir_all(&lt_dir).unwrap();
    let mut lt = libtorrent_peer(torrent, &lt_dir, rustico_testkit::free_port(), "leech");
    wait_for_line(&mut lt, "DONE");
    lt_dir
}

/// Reads a child's stdout until a line equal to `want` (a helper script's
/// READY or DONE); panics if it exits first.
pub fn wait_for_line(guard: &mut ChildGuard, want: &str) {
    read_until(guard, want, |line| (line == want).then_some(()));
}

/// Reads a child's stdout up to a line starting with `prefix` (an attack
/// script's `HOLDING N`, a helper's `READY A B`); returns the rest of that
/// line, trimmed. Panics if the child exits first.
pub fn read_line_starting(guard: &mut ChildGuard, prefix: &str) -> String {
    read_until(guard, prefix, |line| {
        line.strip_prefix(prefix)
            .map(|rest| rest.trim().to_string())
    })
}

/// Reads a child's stdout, line by line (trimmed), until `pick` takes one.
fn read_until<T>(guard: &mut ChildGuard, what: &str, mut pick: impl FnMut(&str) -> Option<T>) -> T {
    let stdout = guard.0.stdout.as_mut().unwrap();
    let mut reader = BufReader::new(stdout);
    let mut line = String::new();
    loop {
        line.clear();
        let n = reader.read_line(&mut line).unwrap();
        assert!(n > 0, "the child exited before printing {what}");
        if let Some(found) = pick(line.trim()) {
            return found;
        }
    }
}

/// A numeric field of `/proc/PID/status` (`Threads:`, or `VmRSS:` in kB);
/// 0 once the process is gone.
pub fn proc_status(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// User plus system CPU time of process `pid` so far; zero once it is gone.
pub fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) in parentheses.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return Duration::ZERO;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime: fields 14 and 15 of the line, 12 and 13 after the
    // name; 100 clock ticks a second on Linux.
    let tick = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Duration::from_millis((tick(11) + tick(12)) * 10)
}
