//! Test support shared by the rustico crates' integration tests.
//!
//! Only tests depend on this crate (as a dev-dependency). It starts the real
//! peers and trackers of `../shared/INTEROP.md` on 127.0.0.1, hands out free
//! ports, and decides what a test does when a tool it needs is missing:
//! skip with a message locally, **fail** under `CI=true`.
//!
//! ```no_run
//! if !rustico_testkit::require("opentracker") {
//!     return; // skipped locally; under CI=true `require` panics instead
//! }
//! let tracker = rustico_testkit::Opentracker::start(&[[0xab; 20]]).unwrap();
//! println!("announce to {}", tracker.http_announce_url());
//! ```
#![forbid(unsafe_code)]

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub use tempfile::TempDir;

/// The Python interpreter that sees Debian's `python3-libtorrent`
/// (another `python3` earlier on `PATH` may not).
pub const SYSTEM_PYTHON: &str = "/usr/bin/python3";

/// True when running under CI (`CI=true`), where missing tools are failures.
pub fn in_ci() -> bool {
    std::env::var("CI")
        .map(|v| v == "true" || v == "1")
        .unwrap_or(false)
}

/// Whether `tool` is an executable on `PATH` (or an existing absolute path).
pub fn tool_exists(tool: &str) -> bool {
    let candidate = Path::new(tool);
    if candidate.is_absolute() {
        return candidate.is_file();
    }
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()))
        .unwrap_or(false)
}

/// Returns true when `tool` is installed. Otherwise: under CI panics (a test
/// that needs a missing tool fails), locally prints why and returns false so
/// the test can return early.
pub fn require(tool: &str) -> bool {
    if tool_exists(tool) {
        return true;
    }
    missing(&format!(
        "`{tool}` is not installed (run scripts/install-test-deps)"
    ))
}

/// Like [`require`], for Debian's Python bindings of libtorrent.
pub fn require_libtorrent() -> bool {
    let ok = Command::new(SYSTEM_PYTHON)
        .args(["-c", "import libtorrent"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if ok {
        return true;
    }
    missing("python3-libtorrent is not installed (run scripts/install-test-deps)")
}

fn missing(why: &str) -> bool {
    if in_ci() {
        panic!("required test tool missing under CI: {why}");
    }
    eprintln!("SKIPPED (not under CI): {why}");
    false
}

/// A port on 127.0.0.1 that is free for both TCP and UDP right now, and
/// not handed out before by this process (two calls never give the same
/// port).
///
/// The port lies below the system's ephemeral range
/// (`/proc/sys/net/ipv4/ip_local_port_range`). Ports from `bind(0)` were
/// ephemeral ones, and any outgoing connection of any process could take
/// one between this call and the caller's bind: a CI run lost a test that
/// way. Below the range only an explicit bind can take it. Each process
/// starts its scan at a place set by its id, so test binaries run side by
/// side rarely try the same ports. `--port 0` avoids choosing altogether.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let (low, high) = ports_below_ephemeral();
    let span = u32::from(high - low);
    let start = std::process::id().wrapping_mul(7919) % span;
    for step in 0..span {
        let Ok(port) = u16::try_from(u32::from(low) + (start + step) % span) else {
            continue;
        };
        if given.contains(&port) {
            continue;
        }
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        // Both at once: a port free for TCP only is no use to a DHT node.
        let free = TcpListener::bind(addr).is_ok_and(|_tcp| UdpSocket::bind(addr).is_ok());
        if free {
            given.push(port);
            return port;
        }
    }
    panic!("no free port on 127.0.0.1 in {low}..{high}");
}

/// Ports tests may choose from: from 10000 up to the start of the
/// ephemeral range, or the 10000 above it when that start is too low.
fn ports_below_ephemeral() -> (u16, u16) {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| {
            let mut it = text.split_whitespace().map(|n| n.parse::<u16>().ok());
            Some((it.next()??, it.next()??))
        });
    match range {
        Some((first, _)) if first > 11_000 => (10_000, first),
        Some((_, last)) if last < 55_000 => (last + 1, last + 10_001),
        _ => (20_000, 30_000),
    }
}

/// Waits until something accepts TCP connections on `addr`.
pub fn wait_for_tcp(addr: SocketAddr, timeout: Duration) -> io::Result<()> {
    let start = Instant::now();
    loop {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            Ok(_) => return Ok(()),
            Err(e) if start.elapsed() > timeout => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// A child process killed (and reaped) when dropped, so a failing test
/// leaves no peer behind.
#[derive(Debug)]
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A real opentracker on 127.0.0.1 (HTTP and UDP on one port), started in
/// whitelist mode for the given info-hashes (Debian's build only serves
/// whitelisted torrents). Killed when dropped.
#[derive(Debug)]
pub struct Opentracker {
    port: u16,
    _child: ChildGuard,
    _dir: TempDir,
}

impl Opentracker {
    /// Starts opentracker on a free port of 127.0.0.1 and waits until it
    /// serves the whitelisted torrents.
    pub fn start(info_hashes: &[[u8; 20]]) -> io::Result<Opentracker> {
        Opentracker::start_on(([127, 0, 0, 1], free_port()).into(), info_hashes)
    }

    /// Starts opentracker on a given address (a port a torrent already
    /// names, or a test's own network namespace address) and waits until it
    /// serves the whitelisted torrents.
    pub fn start_on(addr: SocketAddr, info_hashes: &[[u8; 20]]) -> io::Result<Opentracker> {
        let dir = tempfile::tempdir()?;
        // opentracker chroots to its working directory and drops to `nobody`.
        set_mode(dir.path(), 0o755)?;
        let whitelist = dir.path().join("whitelist");
        let mut text = String::new();
        for hash in info_hashes {
            text.push_str(&hex(hash));
            text.push('\n');
        }
        std::fs::write(&whitelist, text)?;
        set_mode(&whitelist, 0o644)?;
        let port = addr.port().to_string();
        let child = Command::new("opentracker")
            .current_dir(dir.path())
            .args(["-i", &addr.ip().to_string(), "-p", &port, "-P", &port])
            .arg("-w")
            .arg(&whitelist)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let tracker = Opentracker {
            port: addr.port(),
            _child: ChildGuard(child),
            _dir: dir,
        };
        wait_for_tcp(addr, Duration::from_secs(10))?;
        // opentracker accepts connections before it has read its whitelist,
        // and refuses every torrent until then: wait until it knows ours.
        if let Some(hash) = info_hashes.first() {
            wait_for_whitelist(addr, hash, Duration::from_secs(10))?;
        }
        Ok(tracker)
    }

    /// The tracker's port (TCP and UDP).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT/announce`
    pub fn http_announce_url(&self) -> String {
        format!("http://127.0.0.1:{}/announce", self.port)
    }

    /// `udp://127.0.0.1:PORT/announce`
    pub fn udp_announce_url(&self) -> String {
        format!("udp://127.0.0.1:{}/announce", self.port)
    }
}

/// Announces `stopped` for a throwaway peer until the tracker stops
/// answering "not authorized" (a stopped announce leaves no peer behind).
fn wait_for_whitelist(addr: SocketAddr, info_hash: &[u8; 20], timeout: Duration) -> io::Result<()> {
    use std::io::{Read, Write};
    let start = Instant::now();
    let encoded: String = info_hash.iter().map(|b| format!("%{b:02x}")).collect();
    let request = format!(
        "GET /announce?info_hash={encoded}&peer_id=-TK0000-testkitwaits&port=9&uploaded=0\
         &downloaded=0&left=0&event=stopped&compact=1 HTTP/1.0\r\nHost: {addr}\r\n\r\n"
    );
    loop {
        let mut body = Vec::new();
        let answered =
            TcpStream::connect_timeout(&addr, Duration::from_secs(1)).and_then(|mut s| {
                s.set_read_timeout(Some(Duration::from_secs(2)))?;
                s.write_all(request.as_bytes())?;
                s.read_to_end(&mut body)
            });
        let refused = String::from_utf8_lossy(&body).contains("not authorized");
        if answered.is_ok() && !body.is_empty() && !refused {
            return Ok(());
        }
        if start.elapsed() > timeout {
            return Err(io::Error::other(
                "opentracker never accepted the whitelisted torrent",
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

/// Lowercase hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs a Python script with the system interpreter (libtorrent available)
/// and returns its stdout; a non-zero exit is an error carrying stderr.
pub fn run_python(script: &str, args: &[&str]) -> io::Result<String> {
    let out = Command::new(SYSTEM_PYTHON)
        .arg("-c")
        .arg(script)
        .args(args)
        .output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "python exited with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Spawns a long-running Python script (a libtorrent peer, say) with stdout
/// piped so the test can read what it reports.
pub fn spawn_python(script: &str, args: &[&str]) -> io::Result<ChildGuard> {
    let child = Command::new(SYSTEM_PYTHON)
        .arg("-u")
        .arg("-c")
        .arg(script)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    Ok(ChildGuard(child))
}

/// Deterministic pseudo-random bytes (splitmix64), for test data that is
/// the same on every run without a random-number crate.
pub fn pseudo_random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        out.extend_from_slice(&z.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A fresh temporary directory readable by other users (opentracker and
/// some peers drop privileges).
pub fn temp_dir() -> io::Result<TempDir> {
    let dir = tempfile::tempdir()?;
    set_mode(dir.path(), 0o755)?;
    Ok(dir)
}

/// Path of a file in the workspace's `target/` folder, for artefacts tests
/// want to keep for inspection.
pub fn target_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target")
}

/// A packet capture by `tcpdump` (full packets, written as they come), to
/// check what really crossed the wire. Stopped and read with
/// [`Capture::finish`]; killed when dropped.
#[derive(Debug)]
pub struct Capture {
    child: ChildGuard,
    file: PathBuf,
}

impl Capture {
    /// Starts capturing on `interface` what matches the pcap `filter`
    /// (e.g. `tcp port 6881`), into `file`, and returns once packets are
    /// really being captured: UDP probes to `probe` (an address whose
    /// packets cross `interface`) are sent until one shows in the file.
    /// `netns`: run tcpdump inside that network namespace.
    pub fn start(
        netns: Option<&str>,
        interface: &str,
        filter: &str,
        probe: SocketAddr,
        file: &Path,
    ) -> io::Result<Capture> {
        let filter = format!("({filter}) or (udp port {})", probe.port());
        let mut cmd = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "tcpdump"]);
                c
            }
            None => Command::new("tcpdump"),
        };
        // A 64 MiB kernel buffer: loopback packets are up to 64 KiB, and
        // the default 2 MiB drops some during a fast transfer.
        cmd.args(["-i", interface, "-s", "0", "-B", "65536", "-U", "-n", "-w"])
            .arg(file)
            .arg(filter)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = ChildGuard(cmd.spawn()?);
        let stderr = child
            .0
            .stderr
            .take()
            .ok_or_else(|| io::Error::other("tcpdump without stderr"))?;
        let mut lines = io::BufRead::lines(io::BufReader::new(stderr));
        loop {
            match lines.next() {
                Some(Ok(line)) if line.contains("listening on") => break,
                Some(Ok(_)) => {}
                _ => return Err(io::Error::other("tcpdump exited before listening")),
            }
        }
        // Keep draining its stderr so it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        // "listening on" comes before the filter is attached: probe until
        // a packet is written (past the 24-byte pcap header).
        let socket = UdpSocket::bind(SocketAddr::new(
            if probe.is_ipv4() {
                std::net::Ipv4Addr::UNSPECIFIED.into()
            } else {
                std::net::Ipv6Addr::UNSPECIFIED.into()
            },
            0,
        ))?;
        let start = Instant::now();
        loop {
            let _ = socket.send_to(b"capture probe", probe);
            std::thread::sleep(Duration::from_millis(50));
            if std::fs::metadata(file).map(|m| m.len()).unwrap_or(0) > 24 {
                break;
            }
            if start.elapsed() > Duration::from_secs(10) {
                return Err(io::Error::other("tcpdump captured no probe in 10 s"));
            }
        }
        Ok(Capture {
            child,
            file: file.to_path_buf(),
        })
    }

    /// Stops the capture (SIGINT, so tcpdump flushes) and returns the pcap
    /// file's bytes.
    pub fn finish(mut self) -> io::Result<Vec<u8>> {
        // Let tcpdump write what the kernel still holds: wait until the
        // file stops growing.
        let mut size = 0;
        let settle = Instant::now();
        while settle.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(300));
            let now = std::fs::metadata(&self.file).map(|m| m.len()).unwrap_or(0);
            if now == size {
                break;
            }
            size = now;
        }
        let pid = self.child.0.id().to_string();
        let _ = Command::new("kill").args(["-INT", &pid]).status();
        let start = std::time::Instant::now();
        while self.child.0.try_wait()?.is_none() && start.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(20));
        }
        std::fs::read(&self.file)
    }
}

/// Whether `needle` occurs in `haystack`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    #[test]
    fn free_ports_are_never_handed_out_twice() {
        let mut ports: Vec<u16> = (0..200).map(|_| super::free_port()).collect();
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), 200);
    }

    /// An outgoing connection takes an ephemeral port; a port handed out
    /// here must never be one of those.
    #[test]
    fn free_ports_lie_outside_the_ephemeral_range() {
        let text =
            std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap_or_default();
        let range: Vec<u16> = text
            .split_whitespace()
            .filter_map(|n| n.parse().ok())
            .collect();
        let [first, last] = range[..] else {
            return; // Not Linux: nothing to compare with.
        };
        for _ in 0..50 {
            let port = super::free_port();
            assert!(!(first..=last).contains(&port), "{port} is ephemeral");
        }
    }
}
