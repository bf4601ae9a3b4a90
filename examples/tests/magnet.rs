//! Magnet links (BEP 9) on 127.0.0.1: libtorrent seeds and rustico
//! downloads from a magnet link alone (peer in `x.pe`, or found through
//! opentracker from `tr`); rustico seeds and libtorrent downloads from a
//! magnet link (it fetches the metadata from rustico); fake peers with
//! hostile metadata are rejected and the download continues from an
//! honest peer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use rustico_metainfo::Torrent;
use rustico_peer_wire::MetadataMessage;

/// `argv`: torrent, save path, port. Seeds with libtorrent on 127.0.0.1
/// (plain connections only: rustico has no MSE/PE); prints READY.
const LT_SEED_SCRIPT: &str = r#"
import libtorrent as lt, sys, time
torrent, save, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
ses = lt.session({
    "listen_interfaces": "127.0.0.1:%d" % port,
    "enable_dht": False, "enable_lsd": False, "enable_upnp": False, "enable_natpmp": False,
    "enable_outgoing_utp": False, "enable_incoming_utp": False,
    "allow_multiple_connections_per_ip": True,
    "out_enc_policy": 2, "in_enc_policy": 2,
})
atp = lt.add_torrent_params()
atp.ti = lt.torrent_info(torrent)
atp.save_path = save
atp.flags |= lt.torrent_flags.seed_mode
atp.flags &= ~(lt.torrent_flags.auto_managed | lt.torrent_flags.paused)
h = ses.add_torrent(atp)
print("READY", flush=True)
time.sleep(170)
"#;

/// `argv`: magnet link, save path. Downloads with libtorrent from the
/// link alone; prints METADATA once it has the info dictionary, DONE once
/// it has every piece.
const LT_MAGNET_SCRIPT: &str = r#"
import libtorrent as lt, sys, time
uri, save = sys.argv[1], sys.argv[2]
ses = lt.session({
    "listen_interfaces": "127.0.0.1:0",
    "enable_dht": False, "enable_lsd": False, "enable_upnp": False, "enable_natpmp": False,
    "enable_outgoing_utp": False, "enable_incoming_utp": False,
    "allow_multiple_connections_per_ip": True,
    "out_enc_policy": 2, "in_enc_policy": 2,
})
atp = lt.parse_magnet_uri(uri)
atp.save_path = save
atp.flags &= ~(lt.torrent_flags.auto_managed | lt.torrent_flags.paused)
h = ses.add_torrent(atp)
end = time.monotonic() + 90
said = False
while time.monotonic() < end:
    time.sleep(0.1)
    s = h.status()
    if s.has_metadata and not said:
        said = True
        print("METADATA", s.name, flush=True)
    if s.is_seeding:
        print("DONE", flush=True)
        sys.exit(0)
print("TIMEOUT", flush=True)
sys.exit(1)
"#;

fn magnet(hash: &[u8; 20], extra: &str) -> String {
    format!("magnet:?xt=urn:btih:{}{extra}", rustico_testkit::hex(hash))
}

/// A multi-file torrent in 16 KiB pieces; `big` makes it 18.3 MB, 1118
/// pieces, so its info dictionary (22 KB) takes two `ut_metadata` pieces.
fn make_share(
    dir: &Path,
    tracker: Option<&str>,
    big: bool,
) -> (Vec<(String, Vec<u8>)>, std::path::PathBuf) {
    let first = if big { 17_000_000 } else { 2_000_000 };
    let files = content(
        91,
        &[("a.bin", first), ("sub/b.bin", 1_300_000), ("c.txt", 9)],
    );
    write_files(&dir.join("seed").join("share"), &files);
    let mut extra = vec!["--piece-length", "16384"];
    if let Some(url) = tracker {
        extra.extend(["--tracker", url]);
    }
    let torrent = create_torrent(
        &dir.join("seed").join("share"),
        &dir.join("share.torrent"),
        &extra,
    );
    (files, torrent)
}

fn rustico_download(link: &str, out_dir: &Path, config: &Path) -> std::process::Output {
    let mut cmd = rustico();
    cmd.arg("-v")
        .arg("download")
        .arg(link)
        .arg("-o")
        .arg(out_dir)
        .args(["--port", "0"])
        .arg("--config")
        .arg(config);
    output_with_timeout(cmd, Duration::from_secs(120), "rustico download")
}

fn assert_saved_torrent(out_dir: &Path, hash: &[u8; 20]) {
    let saved = Torrent::from_file(out_dir.join("share.torrent")).unwrap();
    assert_eq!(
        &saved.info_hash().0,
        hash,
        "saved .torrent has another info-hash"
    );
}

fn start_libtorrent_seed(torrent: &Path, seed_dir: &Path) -> (ChildGuard, u16) {
    let lt_port = rustico_testkit::free_port();
    let mut seed = rustico_testkit::spawn_python(
        LT_SEED_SCRIPT,
        &[
            torrent.to_str().unwrap(),
            seed_dir.to_str().unwrap(),
            &lt_port.to_string(),
        ],
    )
    .unwrap();
    wait_for_line(&mut seed, "READY");
    rustico_testkit::wait_for_tcp(([127, 0, 0, 1], lt_port).into(), Duration::from_secs(20))
        .unwrap();
    (seed, lt_port)
}

#[test]
fn libtorrent_seeds_and_rustico_downloads_from_a_magnet_link_with_x_pe() {
    if !rustico_testkit::require_libtorrent() {
        return;
    }
    let dir = rustico_testkit::temp_dir().unwrap();
    let (files, torrent) = make_share(dir.path(), None, true);
    let hash = info_hash(&torrent);
    let (_seed, lt_port) = start_libtorrent_seed(&torrent, &dir.path().join("seed"));
    let link = magnet(&hash, &format!("&dn=share&x.pe=127.0.0.1:{lt_port}"));

    // `info` fetches and prints the metadata.
    let mut info = rustico();
    info.args(["info", &link, "--json", "--timeout", "30"]);
    let out = output_with_timeout(info, Duration::from_secs(60), "rustico info");
    assert!(
        out.status.success(),
        "info failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["info_hash"], rustico_testkit::hex(&hash));
    assert_eq!(v["name"], "share");
    assert_eq!(v["total_length"], 18_300_009);

    let config = config_in(dir.path());
    let out_dir = dir.path().join("download");
    let out = rustico_download(&link, &out_dir, &config);
    assert!(
        out.status.success(),
        "download failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_files(&out_dir.join("share"), &files);
    assert_saved_torrent(&out_dir, &hash);
    let log = std::fs::read_to_string(log_file(dir.path())).unwrap();
    assert!(log.contains("metadata complete and verified"), "{log}");

    // A second run finds the saved .torrent (the link has `dn`) and the
    // data: nothing is fetched, not even the metadata.
    let out = rustico_download(&link, &out_dir, &config);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = std::fs::read_to_string(log_file(dir.path())).unwrap();
    assert!(log.contains("(saved earlier)"), "{log}");
}

#[test]
fn info_on_a_magnet_link_gives_up_after_its_timeout() {
    // A listener that never answers the handshake.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let link = magnet(&[7; 20], &format!("&x.pe=127.0.0.1:{port}"));
    let started = Instant::now();
    let mut info = rustico();
    info.args(["info", &link, "--timeout", "2"]);
    let out = output_with_timeout(info, Duration::from_secs(30), "rustico info");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("timed out fetching the metadata"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(15));
    drop(silent);
}

#[test]
fn libtorrent_seeds_and_rustico_downloads_from_a_magnet_link_with_a_tracker() {
    if !rustico_testkit::require_libtorrent() || !rustico_testkit::require("opentracker") {
        return;
    }
    let dir = rustico_testkit::temp_dir().unwrap();
    let port = rustico_testkit::free_port();
    let url = format!("http://127.0.0.1:{port}/announce");
    let (files, torrent) = make_share(dir.path(), Some(&url), false);
    let hash = info_hash(&torrent);
    let _tracker =
        rustico_testkit::Opentracker::start_on(([127, 0, 0, 1], port).into(), &[hash]).unwrap();
    let (_seed, _) = start_libtorrent_seed(&torrent, &dir.path().join("seed"));
    // The link names only the tracker.
    let link = magnet(&hash, &format!("&tr={url}"));
    let config = config_in(dir.path());
    let out_dir = dir.path().join("download");
    let out = rustico_download(&link, &out_dir, &config);
    assert!(
        out.status.success(),
        "download failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_files(&out_dir.join("share"), &files);
    assert_saved_torrent(&out_dir, &hash);
    let saved = Torrent::from_file(out_dir.join("share.torrent")).unwrap();
    assert_eq!(saved.trackers(), [vec![url]]);
}

#[test]
fn rustico_seeds_and_libtorrent_downloads_from_a_magnet_link() {
    if !rustico_testkit::require_libtorrent() {
        return;
    }
    let dir = rustico_testkit::temp_dir().unwrap();
    let (files, torrent) = make_share(dir.path(), None, true);
    let hash = info_hash(&torrent);
    let config = config_in(dir.path());
    let (_seeder, seed_port) = start_seeder(&torrent, &dir.path().join("seed"), &config);
    let link = magnet(&hash, &format!("&x.pe=127.0.0.1:{seed_port}"));
    let lt_dir = dir.path().join("libtorrent");
    let out =
        rustico_testkit::run_python(LT_MAGNET_SCRIPT, &[&link, lt_dir.to_str().unwrap()]).unwrap();
    assert!(out.contains("METADATA share"), "{out}");
    assert!(out.contains("DONE"), "{out}");
    assert_files(&lt_dir.join("share"), &files);
}

/// How a fake peer lies about the metadata.
#[derive(Clone, Copy)]
enum Lie {
    /// Right size, but a flipped byte: the SHA-1 check fails.
    WrongHash,
    /// Claims a 1 GB info dictionary.
    HugeSize,
    /// Answers every request with a piece past the end.
    OutOfRange,
}

/// A fake peer on a free port: completes the handshake, announces
/// `ut_metadata` and lies as told. Returns its port.
fn fake_peer(info: Vec<u8>, lie: Lie) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let info = info.clone();
            std::thread::spawn(move || {
                let _ = serve_lies(stream, &info, lie);
            });
        }
    });
    port
}

fn serve_lies(mut stream: TcpStream, info: &[u8], lie: Lie) -> std::io::Result<()> {
    let mut theirs = [0u8; 68];
    stream.read_exact(&mut theirs)?;
    // A plaintext-only peer, as real ones are: anything but a BitTorrent
    // handshake (rustico's encrypted dial) is hung up on, and rustico
    // dials again in plaintext.
    if !theirs.starts_with(b"\x13BitTorrent protocol") {
        return Ok(());
    }
    let mut ours = Vec::new();
    ours.push(19);
    ours.extend_from_slice(b"BitTorrent protocol");
    ours.extend_from_slice(&[0, 0, 0, 0, 0, 0x10, 0, 0]);
    ours.extend_from_slice(&theirs[28..48]);
    ours.extend_from_slice(b"-FK0001-liarliarliar");
    let size = match lie {
        Lie::HugeSize => 1_000_000_000,
        _ => info.len(),
    };
    let payload = format!("d1:md11:ut_metadatai3ee13:metadata_sizei{size}ee");
    extended(&mut ours, 0, payload.as_bytes());
    stream.write_all(&ours)?;
    let mut corrupt = info.to_vec();
    corrupt[info.len() / 2] ^= 0xff;
    loop {
        let mut len = [0u8; 4];
        stream.read_exact(&mut len)?;
        let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
        stream.read_exact(&mut body)?;
        // Our ut_metadata id is 3; rustico's requests come under it.
        if body.len() < 2 || body[0] != 20 || body[1] != 3 {
            continue;
        }
        let Ok(MetadataMessage::Request { piece }) = MetadataMessage::decode(&body[2..]) else {
            continue;
        };
        let start = piece as usize * 16384;
        let end = (start + 16384).min(info.len());
        let answer = match lie {
            Lie::WrongHash => {
                // Slowly, so the other liars are asked too.
                std::thread::sleep(Duration::from_millis(500));
                MetadataMessage::Data {
                    piece,
                    total_size: info.len() as u64,
                    data: &corrupt[start..end],
                }
            }
            Lie::OutOfRange => MetadataMessage::Data {
                piece: piece + 1000,
                total_size: info.len() as u64,
                data: &info[start..end],
            },
            Lie::HugeSize => MetadataMessage::Reject { piece },
        };
        let mut out = Vec::new();
        // rustico announces ut_metadata as 1.
        answer.encode_message(1, &mut out);
        stream.write_all(&out)?;
    }
}

fn extended(out: &mut Vec<u8>, id: u8, payload: &[u8]) {
    out.extend_from_slice(&(payload.len() as u32 + 2).to_be_bytes());
    out.push(20);
    out.push(id);
    out.extend_from_slice(payload);
}

fn wait_for_log(path: &Path, want: &str, timeout: Duration) -> String {
    let start = Instant::now();
    loop {
        let log = std::fs::read_to_string(path).unwrap_or_default();
        if log.contains(want) {
            return log;
        }
        assert!(start.elapsed() < timeout, "log never said {want:?}:\n{log}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn hostile_metadata_is_rejected_and_the_download_continues_from_an_honest_peer() {
    let dir = rustico_testkit::temp_dir().unwrap();
    let (files, torrent) = make_share(dir.path(), None, true);
    let hash = info_hash(&torrent);
    let info = Torrent::from_file(&torrent).unwrap().info_bytes().to_vec();
    let liars = [
        fake_peer(info.clone(), Lie::WrongHash),
        fake_peer(info.clone(), Lie::HugeSize),
        fake_peer(info.clone(), Lie::OutOfRange),
    ];
    // The honest seeder's port is in the link from the start but it only
    // starts once the liars are found out, so they are the only sources
    // at first (rustico dials again addresses that refused).
    let seed_port = rustico_testkit::free_port();
    let mut link = magnet(&hash, "");
    for port in liars.iter().chain([&seed_port]) {
        link.push_str(&format!("&x.pe=127.0.0.1:{port}"));
    }
    let config = config_in(dir.path());
    let out_dir = dir.path().join("download");
    let mut cmd = rustico();
    cmd.arg("download")
        .arg(&link)
        .arg("-o")
        .arg(&out_dir)
        .args(["--port", "0"])
        .arg("--config")
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut download = ChildGuard(cmd.spawn().unwrap());
    let log_path = log_file(dir.path());
    wait_for_log(
        &log_path,
        "does not match the info-hash",
        Duration::from_secs(60),
    );
    let seed_config_dir = dir.path().join("seeder");
    std::fs::create_dir_all(&seed_config_dir).unwrap();
    let seed_config = config_in(&seed_config_dir);
    let _seeder = start_seeder_on(&torrent, &dir.path().join("seed"), seed_port, &seed_config);
    let status = wait_with_timeout(&mut download.0, Duration::from_secs(90), "rustico download");
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(status.success(), "download failed:\n{log}");
    assert_files(&out_dir.join("share"), &files);
    assert_saved_torrent(&out_dir, &hash);
    let liar = |port: u16| format!("127.0.0.1:{port}");
    assert!(
        log.contains(&format!(
            "metadata peer {}: rejected: metadata_size 1000000000 announced",
            liar(liars[1])
        )),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "metadata peer {}: rejected metadata piece: metadata piece 1000 out of range",
            liar(liars[2])
        )),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "dropping the peers that sent it: {}",
            liar(liars[0])
        )),
        "{log}"
    );
}
