//! BitTorrent v2 (BEP 52) torrents between rustico and libtorrent on
//! 127.0.0.1, through opentracker: v2-only both ways. The swarm of a
//! v2-only torrent goes by the truncated SHA-256 info-hash; pieces are
//! checked against merkle roots.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;

/// `argv`: folder, tracker URL, output path, piece length. Writes
/// libtorrent's v2-only torrent of the folder; prints its v2 info-hash.
const CREATE_V2: &str = r#"
import libtorrent as lt, sys, os
src, tracker, out, piece = sys.argv[1:5]
fs = lt.file_storage()
lt.add_files(fs, src)
ct = lt.create_torrent(fs, int(piece), flags=lt.create_torrent.v2_only)
ct.add_tracker(tracker)
lt.set_piece_hashes(ct, os.path.dirname(src))
open(out, "wb").write(lt.bencode(ct.generate()))
print(lt.torrent_info(out).info_hashes().v2)
"#;

/// libtorrent's v2-only torrent of `src` at `out`; returns its v2
/// info-hash in hex.
fn libtorrent_create_v2(src: &Path, tracker: &str, out: &Path, piece_length: u32) -> String {
    let hex = rustico_testkit::run_python(
        CREATE_V2,
        &[
            src.to_str().unwrap(),
            tracker,
            out.to_str().unwrap(),
            &piece_length.to_string(),
        ],
    )
    .unwrap();
    assert!(is_v2_only(out), "libtorrent wrote no v2-only torrent");
    hex.trim().to_string()
}

fn files() -> Vec<(String, Vec<u8>)> {
    // A file of several pieces (a piece layer), one of less than a block,
    // one of exactly one piece (no layer) and a last piece cut short.
    content(
        52,
        &[
            ("big.bin", 300_001),
            ("tiny.txt", 100),
            ("sub/one-piece.bin", 32_768),
            ("sub/odd.bin", 70_000),
        ],
    )
}

fn leech(torrent: &Path, out_dir: &Path, config: &Path) {
    let mut cmd = rustico();
    cmd.arg("download")
        .arg(torrent)
        .arg("-o")
        .arg(out_dir)
        .args(["--port", "0"])
        .arg("--config")
        .arg(config);
    let out = output_with_timeout(cmd, Duration::from_secs(90), "rustico download");
    assert!(
        out.status.success(),
        "download failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn is_v2_only(torrent: &Path) -> bool {
    let t = rustico_metainfo::Torrent::from_file(torrent).unwrap();
    t.has_v2() && !t.has_v1()
}

#[test]
fn libtorrent_seeds_a_v2_only_torrent_and_rustico_downloads_it() {
    if !rustico_testkit::require_libtorrent() || !rustico_testkit::require("opentracker") {
        return;
    }
    let dir = rustico_testkit::temp_dir().unwrap();
    let seed_dir = dir.path().join("seed");
    let files = files();
    write_files(&seed_dir.join("v2"), &files);
    let port = rustico_testkit::free_port();
    let url = format!("http://127.0.0.1:{port}/announce");
    let torrent = dir.path().join("v2.torrent");
    libtorrent_create_v2(&seed_dir.join("v2"), &url, &torrent, 32768);
    let _tracker = rustico_testkit::Opentracker::start_on(
        ([127, 0, 0, 1], port).into(),
        &[info_hash(&torrent)],
    )
    .unwrap();
    let _seed = libtorrent_peer(&torrent, &seed_dir, rustico_testkit::free_port(), "seed");
    let out_dir = dir.path().join("download");
    leech(&torrent, &out_dir, &config_in(dir.path()));
    assert_files(&out_dir.join("v2"), &files);
}

#[test]
fn rustico_seeds_a_v2_only_torrent_it_created_and_libtorrent_downloads_it() {
    if !rustico_testkit::require_libtorrent() || !rustico_testkit::require("opentracker") {
        return;
    }
    let dir = rustico_testkit::temp_dir().unwrap();
    let seed_dir = dir.path().join("seed");
    let files = files();
    write_files(&seed_dir.join("v2"), &files);
    let port = rustico_testkit::free_port();
    let url = format!("http://127.0.0.1:{port}/announce");
    let torrent = create_torrent(
        &seed_dir.join("v2"),
        &dir.path().join("v2.torrent"),
        &[
            "--tracker",
            &url,
            "--format",
            "v2",
            "--piece-length",
            "32768",
        ],
    );
    assert!(is_v2_only(&torrent));
    let _tracker = rustico_testkit::Opentracker::start_on(
        ([127, 0, 0, 1], port).into(),
        &[info_hash(&torrent)],
    )
    .unwrap();
    let (_seeder, _) = start_seeder(&torrent, &seed_dir, &config_in(dir.path()));
    let lt_dir = libtorrent_downloads(&torrent, dir.path());
    assert_files(&lt_dir.join("v2"), &files);
}

/// A `btmh`-only magnet link: the info dictionary comes by `ut_metadata`
/// (checked against the SHA-256 info-hash), then the piece layers by BEP
/// 52 hash requests, checked against each file's pieces root, from a
/// libtorrent seed. One file has 601 pieces, so its layer comes 512
/// hashes at a time with their proofs. The saved `.torrent` holds the
/// layers, and the content matches.
#[test]
fn rustico_downloads_a_v2_only_torrent_from_a_btmh_magnet_link_served_by_libtorrent() {
    if !rustico_testkit::require_libtorrent() {
        return;
    }
    let dir = rustico_testkit::temp_dir().unwrap();
    let seed_dir = dir.path().join("seed");
    let files = content(
        53,
        &[
            ("long.bin", 601 * 16_384 - 100),
            ("short.bin", 3 * 16_384 + 1),
            ("one.bin", 9_000),
        ],
    );
    write_files(&seed_dir.join("mag"), &files);
    let torrent = dir.path().join("mag.torrent");
    let v2 = libtorrent_create_v2(
        &seed_dir.join("mag"),
        "http://127.0.0.1:9/announce",
        &torrent,
        16_384,
    );
    assert_eq!(v2.len(), 64, "{v2}");
    let lt_port = rustico_testkit::free_port();
    let _seed = libtorrent_peer(&torrent, &seed_dir, lt_port, "seed");
    let link = format!("magnet:?xt=urn:btmh:1220{v2}&x.pe=127.0.0.1:{lt_port}");
    let out_dir = dir.path().join("download");
    let mut cmd = rustico();
    cmd.arg("-v")
        .arg("download")
        .arg(&link)
        .arg("-o")
        .arg(&out_dir)
        .args(["--port", "0"])
        .arg("--config")
        .arg(config_in(dir.path()));
    let out = output_with_timeout(cmd, Duration::from_secs(90), "rustico download");
    assert!(
        out.status.success(),
        "download failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_files(&out_dir.join("mag"), &files);
    let saved = rustico_metainfo::Torrent::from_file(out_dir.join("mag.torrent")).unwrap();
    let original = rustico_metainfo::Torrent::from_file(&torrent).unwrap();
    assert!(saved.has_piece_layers());
    assert_eq!(saved.info_hashes(), original.info_hashes());
    for piece in 0..original.num_pieces() {
        assert_eq!(saved.v2_piece_hash(piece), original.v2_piece_hash(piece));
    }
}

/// `argv`: magnet link, save path, peer port. libtorrent fetches the
/// link from the rustico peer on 127.0.0.1:PORT (it dials under the hash
/// the link names) and downloads it; prints DONE once it has every piece.
const LIBTORRENT_MAGNET: &str = r#"
import libtorrent as lt, sys, time
link, save, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
ses = lt.session({
    "listen_interfaces": "127.0.0.1:0",
    "enable_dht": False, "enable_lsd": False, "enable_upnp": False, "enable_natpmp": False,
    "enable_outgoing_utp": False, "enable_incoming_utp": False,
    "allow_multiple_connections_per_ip": True,
    "alert_mask": lt.alert.category_t.error_notification,
})
atp = lt.parse_magnet_uri(link)
atp.save_path = save
atp.flags &= ~(lt.torrent_flags.auto_managed | lt.torrent_flags.paused)
h = ses.add_torrent(atp)
end = time.monotonic() + 80
while time.monotonic() < end:
    if not h.status().has_metadata or h.status().num_peers == 0:
        h.connect_peer(("127.0.0.1", port))
    time.sleep(0.2)
    for a in ses.pop_alerts():
        print("libtorrent:", a.what(), a.message(), file=sys.stderr, flush=True)
    if h.status().is_seeding:
        print("DONE", flush=True)
        break
"#;

/// rustico seeds a torrent it created with `--format FORMAT`; libtorrent
/// downloads it from a magnet link naming only the v2 hash (`btmh`), so
/// it greets rustico under the truncated v2 hash, fetches the info
/// dictionary, and (for its v2 verification) the piece layers by hash
/// requests that rustico answers.
fn libtorrent_downloads_from_a_btmh_link_rustico_serves(format: &str) {
    if !rustico_testkit::require_libtorrent() {
        return;
    }
    let dir = rustico_testkit::temp_dir().unwrap();
    let seed_dir = dir.path().join("seed");
    let files = content(
        54,
        &[("long.bin", 700 * 16_384 + 5), ("short.bin", 3 * 16_384)],
    );
    write_files(&seed_dir.join("share"), &files);
    let torrent = create_torrent(
        &seed_dir.join("share"),
        &dir.path().join("share.torrent"),
        &["--format", format, "--piece-length", "16384"],
    );
    let t = rustico_metainfo::Torrent::from_file(&torrent).unwrap();
    let v2 = t.info_hashes().v2.unwrap();
    assert_eq!(t.has_v1(), format == "hybrid");
    let (_seeder, port) = start_seeder(&torrent, &seed_dir, &config_in(dir.path()));
    let link = format!("magnet:?xt=urn:btmh:1220{v2}");
    let lt_dir = dir.path().join("libtorrent");
    std::fs::create_dir_all(&lt_dir).unwrap();
    let mut lt = rustico_testkit::spawn_python(
        LIBTORRENT_MAGNET,
        &[&link, lt_dir.to_str().unwrap(), &port.to_string()],
    )
    .unwrap();
    wait_for_line(&mut lt, "DONE");
    assert_files(&lt_dir.join("share"), &files);
}

#[test]
fn libtorrent_downloads_a_v2_only_torrent_from_a_btmh_link_served_by_rustico() {
    libtorrent_downloads_from_a_btmh_link_rustico_serves("v2");
}

/// The hybrid case: libtorrent knows only the v2 hash, so the connection
/// is in the hybrid's v2 swarm.
#[test]
fn libtorrent_joins_a_hybrid_on_its_v2_hash_and_rustico_seeds_it() {
    libtorrent_downloads_from_a_btmh_link_rustico_serves("hybrid");
}

/// `argv`: port, swarm hash (hex), a file's pieces root (hex). Greets the
/// peer on 127.0.0.1:PORT as a v2 peer, asks for the two halves of the
/// file's 1,024-wide piece layer (512 hashes each, one uncle: `proof
/// layers` 9 as libtorrent counts), and checks that each half's uncle is
/// the other half's root and that both lead to the pieces root. Prints OK.
const HASH_PROBE: &str = r#"
import hashlib, socket, struct, sys
port, ih, root = int(sys.argv[1]), bytes.fromhex(sys.argv[2]), bytes.fromhex(sys.argv[3])
s = socket.create_connection(("127.0.0.1", port))
s.settimeout(20)
reserved = bytearray(8)
reserved[5] |= 0x10
reserved[7] |= 0x10 | 0x04
s.sendall(bytes([19]) + b"BitTorrent protocol" + bytes(reserved) + ih + b"-XX0001-123456789012")
def read(n):
    b = b""
    while len(b) < n:
        x = s.recv(n - len(b))
        if not x:
            sys.exit("closed by the peer")
        b += x
    return b
assert read(68)[28:48] == ih
for index in (0, 512):
    s.sendall(struct.pack(">IB", 49, 21) + root + struct.pack(">IIII", 0, index, 512, 9))
answers = {}
while len(answers) < 2:
    n = struct.unpack(">I", read(4))[0]
    body = read(n) if n else b""
    if not body:
        continue
    if body[0] == 23:
        sys.exit("hash request rejected")
    if body[0] == 22:
        index = struct.unpack(">I", body[37:41])[0]
        answers[index] = [body[49 + 32 * i:81 + 32 * i] for i in range((n - 49) // 32)]
def up(nodes):
    while len(nodes) > 1:
        nodes = [hashlib.sha256(nodes[i] + nodes[i + 1]).digest() for i in range(0, len(nodes), 2)]
    return nodes[0]
assert all(len(a) == 513 for a in answers.values()), [len(a) for a in answers.values()]
left, right = up(answers[0][:512]), up(answers[512][:512])
assert answers[0][512] == right and answers[512][512] == left, "wrong uncles"
assert hashlib.sha256(left + right).digest() == root, "does not lead to the root"
print("OK", flush=True)
"#;

/// rustico answers BEP 52 hash requests from its piece layers: a raw
/// v2 peer asks for a 700-piece file's layer in two halves with their
/// proofs and checks them against the file's pieces root.
#[test]
fn rustico_answers_hash_requests_with_hashes_that_lead_to_the_root() {
    let dir = rustico_testkit::temp_dir().unwrap();
    let seed_dir = dir.path().join("seed");
    let files = content(55, &[("long.bin", 700 * 16_384 + 5)]);
    write_files(&seed_dir.join("probe"), &files);
    let torrent = create_torrent(
        &seed_dir.join("probe"),
        &dir.path().join("probe.torrent"),
        &["--format", "v2", "--piece-length", "16384"],
    );
    let t = rustico_metainfo::Torrent::from_file(&torrent).unwrap();
    let root = t.files()[0].pieces_root().unwrap();
    let hex = |bytes: &[u8]| rustico_metainfo::hex(bytes).to_string();
    let (_seeder, port) = start_seeder(&torrent, &seed_dir, &config_in(dir.path()));
    let out = rustico_testkit::run_python(
        HASH_PROBE,
        &[&port.to_string(), &hex(&t.info_hash().0), &hex(&root)],
    )
    .unwrap();
    assert_eq!(out.trim(), "OK");
}

/// A hybrid torrent is announced in its v2 swarm too: the tracker knows
/// only the truncated v2 hash (opentracker's whitelist), so libtorrent can
/// find rustico's seed only there.
#[test]
fn a_hybrid_is_announced_under_its_v2_hash_and_libtorrent_finds_it_there() {
    if !rustico_testkit::require_libtorrent() || !rustico_testkit::require("opentracker") {
        return;
    }
    let dir = rustico_testkit::temp_dir().unwrap();
    let seed_dir = dir.path().join("seed");
    let files = files();
    write_files(&seed_dir.join("hyb"), &files);
    let port = rustico_testkit::free_port();
    let url = format!("http://127.0.0.1:{port}/announce");
    let torrent = create_torrent(
        &seed_dir.join("hyb"),
        &dir.path().join("hyb.torrent"),
        &[
            "--tracker",
            &url,
            "--format",
            "hybrid",
            "--piece-length",
            "32768",
        ],
    );
    let t = rustico_metainfo::Torrent::from_file(&torrent).unwrap();
    let v2_swarm = t.info_hashes().v2.unwrap().truncated().0;
    assert_ne!(v2_swarm, t.info_hash().0);
    let _tracker =
        rustico_testkit::Opentracker::start_on(([127, 0, 0, 1], port).into(), &[v2_swarm]).unwrap();
    let (_seeder, _) = start_seeder(&torrent, &seed_dir, &config_in(dir.path()));
    let lt_dir = libtorrent_downloads(&torrent, dir.path());
    assert_files(&lt_dir.join("hyb"), &files);
}
