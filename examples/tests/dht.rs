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

/// A private DHT of four libtorrent nodes on 127.0.0.1, in one process:
/// the first bootstraps from nothing, the others from it. Prints `NET
/// PORT` (the first node's UDP port) once every node has a neighbour, then
/// runs until killed.
///
/// Why libtorrent nodes and not a `mainline` testnet: `mainline` 8.0.1
/// drops every query whose transaction id is not exactly 4 bytes, and
/// libtorrent sends 2-byte ids, so a network of `mainline` nodes never
/// answers libtorrent (seen in a capture: libtorrent's `get_peers` to the
/// testnet went unanswered and its table stayed empty). Our node, as the
/// one asking, gets its own 4-byte ids echoed and works with libtorrent's
/// nodes; so does libtorrent with them.
const LT_DHT_NET: &str = r#"
import libtorrent as lt, sys, time
def node(port, boot):
    return lt.session({
        "listen_interfaces": "127.0.0.1:%d" % port,
        "enable_dht": True, "dht_bootstrap_nodes": boot,
        "enable_lsd": False, "enable_upnp": False, "enable_natpmp": False,
        "alert_mask": 0,
    })
ports = [int(p) for p in sys.argv[1:]]
first = node(ports[0], "")
boot = "127.0.0.1:%d" % ports[0]
others = [node(p, boot) for p in ports[1:]]
end = time.monotonic() + 60
while time.monotonic() < end:
    if all(s.status().dht_nodes > 0 for s in [first] + others):
        break
    time.sleep(0.1)
print("NET", ports[0], flush=True)
time.sleep(3600)
"#;

/// `argv`: torrent, save path, port, bootstrap `HOST:PORT`, mode ("seed"
/// or "leech"; leech reads `argv[6]`, a bare magnet link, instead of the
/// torrent). libtorrent with its DHT on, bootstrapped from the test's own
/// node. Prints READY once its DHT has bootstrapped and the torrent is
/// added, DONE once it has every piece (leech mode exits).
///
/// What libtorrent 2.0.8 needs for a DHT on loopback, found by taking
/// each setting away (in these tests and in a libtorrent-only run of the
/// same shape): only `enable_dht` and `dht_bootstrap_nodes`. The five
/// settings INTEROP.md lists (`dht_restrict_routing_ips`,
/// `dht_restrict_search_ips`, `dht_ignore_dark_internet`,
/// `dht_enforce_node_id`, `dht_prefer_verified_node_ids`, all off) were
/// each, and all together, unnecessary, and so was `force_dht_announce`:
/// libtorrent announces a torrent added after its DHT bootstrapped. What
/// did matter is who the other nodes are (see [`LT_DHT_NET`]).
const LT_DHT_SCRIPT: &str = r#"
import libtorrent as lt, sys, time
torrent, save, port, boot, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
ses = lt.session({
    "listen_interfaces": "127.0.0.1:%d" % port,
    "enable_dht": True, "dht_bootstrap_nodes": boot,
    "enable_lsd": False, "enable_upnp": False, "enable_natpmp": False,
    "enable_outgoing_utp": False, "enable_incoming_utp": False,
    "allow_multiple_connections_per_ip": True,
    "alert_mask": lt.alert.category_t.dht_notification | lt.alert.category_t.error_notification,
})
end = time.monotonic() + 60
booted = False
while not booted and time.monotonic() < end:
    ses.wait_for_alert(500)
    for a in ses.pop_alerts():
        if isinstance(a, lt.dht_bootstrap_alert):
            booted = True
if not booted:
    print("NO-BOOTSTRAP", flush=True)
    sys.exit(1)
if mode == "seed":
    atp = lt.add_torrent_params()
    atp.ti = lt.torrent_info(torrent)
    atp.flags |= lt.torrent_flags.seed_mode
else:
    atp = lt.parse_magnet_uri(sys.argv[6])
atp.save_path = save
atp.flags &= ~(lt.torrent_flags.auto_managed | lt.torrent_flags.paused)
h = ses.add_torrent(atp)
print("READY", flush=True)
end = time.monotonic() + 170
while time.monotonic() < end:
    time.sleep(0.1)
    ses.pop_alerts()

    s = h.status()
    if mode == "leech" and s.is_seeding:
        print("DONE", flush=True)
        break
"#;

fn lt_line(guard: &mut ChildGuard, want: &str) {
    use std::io::BufRead;
    let stdout = guard.0.stdout.as_mut().unwrap();
    let mut reader = std::io::BufReader::new(stdout);
    let mut line = String::new();
    loop {
        line.clear();
        let n = reader.read_line(&mut line).unwrap();
        assert!(n > 0, "libtorrent exited before printing {want}");
        assert_ne!(
            line.trim(),
            "NO-BOOTSTRAP",
            "libtorrent's DHT did not bootstrap"
        );
        if line.trim() == want {
            return;
        }
    }
}

/// Starts [`LT_DHT_NET`]; returns it and its bootstrap `HOST:PORT`.
fn libtorrent_dht_net() -> (ChildGuard, String) {
    let ports: Vec<String> = (0..4)
        .map(|_| rustico_testkit::free_port().to_string())
        .collect();
    let args: Vec<&str> = ports.iter().map(String::as_str).collect();
    let mut net = rustico_testkit::spawn_python(LT_DHT_NET, &args).unwrap();
    let mut line = String::new();
    {
        use std::io::BufRead;
        let stdout = net.0.stdout.as_mut().unwrap();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .unwrap();
    }
    let port = line
        .trim()
        .strip_prefix("NET ")
        .expect("the DHT network started");
    (net, format!("127.0.0.1:{port}"))
}

/// libtorrent seeds with its DHT bootstrapped into a private network of
/// libtorrent nodes; rustico finds it from a bare magnet link.
#[test]
fn libtorrent_seeds_through_its_dht_and_rustico_finds_it_from_a_bare_magnet() {
    if !rustico_testkit::require_libtorrent() {
        return;
    }
    let (_net, bootstrap) = libtorrent_dht_net();
    let dir = rustico_testkit::temp_dir().unwrap();
    let files = content(44, &[("lt.bin", 700_000)]);
    write_files(&dir.path().join("seed").join("lt"), &files);
    let torrent = create_torrent(
        &dir.path().join("seed").join("lt"),
        &dir.path().join("lt.torrent"),
        &[],
    );
    let hash = info_hash(&torrent);
    let mut lt = rustico_testkit::spawn_python(
        LT_DHT_SCRIPT,
        &[
            torrent.to_str().unwrap(),
            dir.path().join("seed").to_str().unwrap(),
            &rustico_testkit::free_port().to_string(),
            &bootstrap,
            "seed",
        ],
    )
    .unwrap();
    lt_line(&mut lt, "READY");
    let magnet = format!("magnet:?xt=urn:btih:{}", hex(&hash));
    let config = dht_config(dir.path(), "leecher");
    let out = dir.path().join("download");
    download_magnet(&magnet, &out, &config, &bootstrap);
    assert_files(&out.join("lt"), &files);
}

/// rustico seeds and announces into a private network of libtorrent
/// nodes; libtorrent, bootstrapped into the same network, finds it from a
/// bare magnet link and downloads.
#[test]
fn rustico_seeds_through_the_dht_and_libtorrent_finds_it_from_a_bare_magnet() {
    if !rustico_testkit::require_libtorrent() {
        return;
    }
    let (_net, bootstrap) = libtorrent_dht_net();
    let dir = rustico_testkit::temp_dir().unwrap();
    let files = content(45, &[("ours.bin", 700_000)]);
    write_files(&dir.path().join("seed").join("ours"), &files);
    let torrent = create_torrent(
        &dir.path().join("seed").join("ours"),
        &dir.path().join("ours.torrent"),
        &[],
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
    let magnet = format!("magnet:?xt=urn:btih:{}", hex(&hash));
    let save = dir.path().join("lt");
    std::fs::create_dir_all(&save).unwrap();
    let mut lt = rustico_testkit::spawn_python(
        LT_DHT_SCRIPT,
        &[
            torrent.to_str().unwrap(),
            save.to_str().unwrap(),
            &rustico_testkit::free_port().to_string(),
            &bootstrap,
            "leech",
            &magnet,
        ],
    )
    .unwrap();
    lt_line(&mut lt, "READY");
    lt_line(&mut lt, "DONE");
    assert_files(&save.join("ours"), &files);
}
