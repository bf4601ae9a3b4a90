//! `ut_metadata` with a real libtorrent peer on loopback, both ways:
//! `MetadataDownload` fetches a two-piece info dictionary from a
//! libtorrent seed, and a libtorrent client given only a magnet link
//! fetches one from `MetadataServer`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

mod common;

use common::*;
use rustico_peer_wire::*;
use sha1::{Digest, Sha1};

/// Seeds `DIR/data.bin` (v1-only, 16 KiB pieces) on 127.0.0.1:PORT,
/// prints `READY <info-hash hex> <pieces>`, stays up for two minutes at
/// most.
const SEED_SCRIPT: &str = r#"
import libtorrent as lt, sys, os, time
d, port = sys.argv[1], int(sys.argv[2])
fs = lt.file_storage()
lt.add_files(fs, os.path.join(d, "data.bin"))
ct = lt.create_torrent(fs, 16384, flags=lt.create_torrent.v1_only)
lt.set_piece_hashes(ct, d)
ti = lt.torrent_info(lt.bencode(ct.generate()))
ses = lt.session({
    "listen_interfaces": "127.0.0.1:%d" % port,
    "enable_dht": False, "enable_lsd": False, "enable_upnp": False, "enable_natpmp": False,
    "enable_outgoing_utp": False, "enable_incoming_utp": False,
    "allow_multiple_connections_per_ip": True,
    "alert_mask": lt.alert.category_t.error_notification,
})
atp = lt.add_torrent_params()
atp.ti = ti
atp.save_path = d
atp.flags |= lt.torrent_flags.seed_mode
atp.flags &= ~(lt.torrent_flags.auto_managed | lt.torrent_flags.paused)
h = ses.add_torrent(atp)
deadline = time.monotonic() + 30
while time.monotonic() < deadline and not (
        ses.is_listening() and h.status().state == lt.torrent_status.seeding
        and not h.status().paused):
    time.sleep(0.05)
print("READY %s %d" % (str(ti.info_hash()), ti.num_pieces()), flush=True)
end = time.monotonic() + 120
while time.monotonic() < end:
    time.sleep(0.2)
    for a in ses.pop_alerts():
        print("libtorrent:", a.what(), a.message(), file=sys.stderr, flush=True)
"#;

/// Adds the magnet link ARGV[2] (no trackers) saving into ARGV[1],
/// connects to 127.0.0.1:ARGV[3], and prints
/// `METADATA <name> <pieces> <total size> <info-hash hex>` once it has
/// the info dictionary, or `TIMEOUT` after 60 s.
const MAGNET_SCRIPT: &str = r#"
import libtorrent as lt, sys, time
d, uri, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
ses = lt.session({
    "listen_interfaces": "127.0.0.1:0",
    "enable_dht": False, "enable_lsd": False, "enable_upnp": False, "enable_natpmp": False,
    "enable_outgoing_utp": False, "enable_incoming_utp": False,
    "allow_multiple_connections_per_ip": True,
    "alert_mask": lt.alert.category_t.error_notification | lt.alert.category_t.peer_notification,
    # Plain BitTorrent: outgoing connections would try MSE/PE first.
    "out_enc_policy": 2, "in_enc_policy": 2,
})
atp = lt.parse_magnet_uri(uri)
atp.save_path = d
atp.flags &= ~(lt.torrent_flags.auto_managed | lt.torrent_flags.paused)
h = ses.add_torrent(atp)
end = time.monotonic() + 60
connected = False
while time.monotonic() < end:
    if not connected and ses.is_listening():
        h.connect_peer(("127.0.0.1", port), 0)
        connected = True
    s = h.status()
    if s.has_metadata:
        ti = h.torrent_file()
        print("METADATA %s %d %d %s" % (ti.name(), ti.num_pieces(), ti.total_size(), str(ti.info_hash())), flush=True)
        sys.exit(0)
    for a in ses.pop_alerts():
        print("libtorrent:", a.what(), a.message(), file=sys.stderr, flush=True)
    time.sleep(0.05)
print("TIMEOUT", flush=True)
"#;

fn unhex(hex: &str) -> [u8; 20] {
    let mut out = [0u8; 20];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
    }
    out
}

fn timeouts() -> Timeouts {
    Timeouts {
        read: Some(Duration::from_secs(20)),
        write: Some(Duration::from_secs(20)),
    }
}

#[test]
fn fetch_metadata_from_libtorrent() {
    if !rustico_testkit::require_libtorrent() {
        return;
    }
    let dir = rustico_testkit::temp_dir().unwrap();
    // 900 pieces: 18 000 bytes of hashes, so the metadata has two pieces.
    let file = vec![0x5a_u8; 900 * 16384];
    std::fs::write(dir.path().join("data.bin"), &file).unwrap();
    let port = rustico_testkit::free_port();
    let mut seed = rustico_testkit::spawn_python(
        SEED_SCRIPT,
        &[dir.path().to_str().unwrap(), &port.to_string()],
    )
    .unwrap();
    let mut line = String::new();
    BufReader::new(seed.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(fields.first(), Some(&"READY"), "seed said {line:?}");
    let info_hash = unhex(fields[1]);
    assert_eq!(fields[2], "900");

    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    rustico_testkit::wait_for_tcp(addr, Duration::from_secs(10)).unwrap();
    let stream = connect(addr, Duration::from_secs(5), timeouts()).unwrap();
    let ours = Handshake::new(Reserved::supported(), info_hash, *b"-RS0001-metadatatest");
    let mut peer = Connection::initiate(stream, &ours).unwrap();
    peer.set_limits(Limits::for_torrent(900));
    let mut map = ExtensionMap::new(&[UT_METADATA]);
    map.handshake().encode_message(peer.queue_raw());
    peer.flush().unwrap();

    let our_id = map.local_id(UT_METADATA).unwrap();
    let mut download = MetadataDownload::new(info_hash);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut requested = 0;
    let info = loop {
        assert!(Instant::now() < deadline, "no metadata in time");
        // Ask for all we may, then wait for an answer.
        while let Some(piece) = download.poll_request(0_u8, Instant::now()) {
            let remote = map.remote_id(UT_METADATA).unwrap();
            MetadataMessage::Request { piece }.encode_message(remote, peer.queue_raw());
            requested += 1;
        }
        peer.flush().unwrap();
        match peer.receive().unwrap() {
            Message::Extended {
                id: HANDSHAKE_ID,
                payload,
            } => {
                let ext = ExtensionHandshake::decode(payload).unwrap();
                map.handle_remote_handshake(&ext);
                assert!(map.remote_id(UT_METADATA).is_some(), "{ext:?}");
                let size = ext.metadata_size.unwrap();
                assert!(size > 16384, "two metadata pieces: {size}");
                download.handle_metadata_size(0, size).unwrap();
            }
            Message::Extended { id, payload } if id == our_id => {
                match MetadataMessage::decode(payload).unwrap() {
                    MetadataMessage::Data {
                        piece,
                        total_size,
                        data,
                    } => {
                        let outcome = download.handle_data(0, piece, total_size, data).unwrap();
                        if outcome == DataOutcome::Complete {
                            break download.poll_complete().unwrap();
                        }
                        assert_eq!(outcome, DataOutcome::Stored);
                    }
                    other => panic!("libtorrent answered {other:?}"),
                }
            }
            _ => {}
        }
    };
    assert_eq!(requested, 2);
    assert_eq!(<[u8; 20]>::from(Sha1::digest(&info)), info_hash);
    let dict = rustico_bencode::decode(&info).unwrap();
    assert_eq!(
        dict.get(b"pieces")
            .and_then(|p| p.as_bytes())
            .map(<[u8]>::len),
        Some(900 * 20)
    );
    assert_eq!(
        dict.get(b"name").and_then(|p| p.as_bytes()),
        Some(&b"data.bin"[..])
    );
}

#[test]
fn libtorrent_fetches_metadata_from_us() {
    if !rustico_testkit::require_libtorrent() {
        return;
    }
    // A valid info dictionary of 1 000 pieces (two metadata pieces),
    // bencoded by hand in canonical key order.
    let pieces = rustico_testkit::pseudo_random_bytes(9, 1000 * 20);
    let mut info = Vec::new();
    info.extend_from_slice(
        b"d6:lengthi16384000e4:name8:magnetic12:piece lengthi16384e6:pieces20000:",
    );
    info.extend_from_slice(&pieces);
    info.push(b'e');
    let info_hash: [u8; 20] = Sha1::digest(&info).into();
    let server = MetadataServer::new(info);

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let dir = rustico_testkit::temp_dir().unwrap();
    let uri = format!("magnet:?xt=urn:btih:{}", rustico_testkit::hex(&info_hash));
    let mut client = rustico_testkit::spawn_python(
        MAGNET_SCRIPT,
        &[dir.path().to_str().unwrap(), &uri, &port.to_string()],
    )
    .unwrap();
    let stdout = client.0.stdout.take().unwrap();

    // Serve on a thread while the test waits for libtorrent's verdict.
    let serving = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        timeouts().apply(&stream).unwrap();
        let mut peer = Connection::respond(stream, |theirs| {
            assert_eq!(theirs.info_hash, info_hash);
            Some(Handshake::new(
                Reserved::supported(),
                info_hash,
                *b"-RS0001-metadataseed",
            ))
        })
        .unwrap();
        let mut map = ExtensionMap::new(&[UT_METADATA]);
        let mut ours = map.handshake();
        ours.metadata_size = Some(server.metadata_size());
        ours.encode_message(peer.queue_raw());
        peer.flush().unwrap();
        let our_id = map.local_id(UT_METADATA).unwrap();
        let mut answered = Vec::new();
        loop {
            let message = match peer.receive() {
                Ok(message) => message,
                // libtorrent hangs up once it has what it wanted.
                Err(_) => return answered,
            };
            match message {
                Message::Extended {
                    id: HANDSHAKE_ID,
                    payload,
                } => map.handle_remote_handshake(&ExtensionHandshake::decode(payload).unwrap()),
                Message::Extended { id, payload } if id == our_id => {
                    let request = MetadataMessage::decode(payload).unwrap();
                    let reply = server.answer(request).unwrap();
                    if let MetadataMessage::Request { piece } = request {
                        answered.push(piece);
                    }
                    reply.encode_message(map.remote_id(UT_METADATA).unwrap(), peer.queue_raw());
                    if peer.flush().is_err() {
                        return answered;
                    }
                }
                _ => {}
            }
        }
    });

    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(
        fields,
        [
            "METADATA",
            "magnetic",
            "1000",
            "16384000",
            &rustico_testkit::hex(&info_hash)
        ],
        "libtorrent said {line:?}"
    );
    drop(client);
    let mut answered = serving.join().unwrap();
    answered.sort_unstable();
    answered.dedup();
    assert_eq!(answered, [0, 1]);
}
