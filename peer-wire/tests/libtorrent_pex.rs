//! `ut_pex` with a real libtorrent seed on loopback, both ways: it tells
//! us about another peer connected to it, and it connects to a peer it
//! learned of from a message `PexState` produced.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

mod common;

use common::*;
use rustico_peer_wire::*;

/// Seeds `DIR/data.bin` on 127.0.0.1:PORT with plain (unencrypted)
/// connections, prints `READY <info-hash hex>`, stays up for two minutes
/// at most.
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
    "out_enc_policy": 2, "in_enc_policy": 2,
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
print("READY %s" % str(ti.info_hash()), flush=True)
end = time.monotonic() + 120
while time.monotonic() < end:
    time.sleep(0.2)
    for a in ses.pop_alerts():
        print("libtorrent:", a.what(), a.message(), file=sys.stderr, flush=True)
"#;

fn unhex(hex: &str) -> [u8; 20] {
    let mut out = [0u8; 20];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
    }
    out
}

/// A connection to the seed that announced `listen_port` and `ut_pex`,
/// with the seed's extension handshake applied to `map`.
fn join(
    seed: SocketAddr,
    info_hash: [u8; 20],
    peer_id: &[u8; 20],
    listen_port: u16,
    map: &mut ExtensionMap,
) -> Connection<std::net::TcpStream> {
    let timeouts = Timeouts {
        read: Some(Duration::from_secs(20)),
        write: Some(Duration::from_secs(20)),
    };
    let stream = connect(seed, Duration::from_secs(5), timeouts).unwrap();
    let ours = Handshake::new(Reserved::supported(), info_hash, *peer_id);
    let mut peer = Connection::initiate(stream, &ours).unwrap();
    peer.set_limits(Limits::for_torrent(64));
    let mut ext = map.handshake();
    ext.listen_port = Some(listen_port);
    ext.encode_message(peer.queue_raw());
    peer.flush().unwrap();
    loop {
        if let Message::Extended {
            id: HANDSHAKE_ID,
            payload,
        } = peer.receive().unwrap()
        {
            map.handle_remote_handshake(&ExtensionHandshake::decode(payload).unwrap());
            assert!(map.remote_id(UT_PEX).is_some(), "libtorrent offers ut_pex");
            return peer;
        }
    }
}

#[test]
fn pex_with_libtorrent() {
    if !rustico_testkit::require_libtorrent() {
        return;
    }
    let dir = rustico_testkit::temp_dir().unwrap();
    std::fs::write(
        dir.path().join("data.bin"),
        rustico_testkit::pseudo_random_bytes(5, 64 * 16384),
    )
    .unwrap();
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
    let seed_addr: SocketAddr = ([127, 0, 0, 1], port).into();
    rustico_testkit::wait_for_tcp(seed_addr, Duration::from_secs(10)).unwrap();

    // Peer B connects first and says where it listens; peer A joins next
    // and should hear of B in libtorrent's first ut_pex message.
    let b_listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let b_listen = b_listener.local_addr().unwrap();
    let mut b_map = ExtensionMap::new(&[UT_PEX]);
    let _b = join(
        seed_addr,
        info_hash,
        b"-RS0001-pexpeer-bbbb",
        b_listen.port(),
        &mut b_map,
    );
    let third = TcpListener::bind("127.0.0.1:0").unwrap();
    third.set_nonblocking(true).unwrap();
    let a_listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut a_map = ExtensionMap::new(&[UT_PEX]);
    let mut a = join(
        seed_addr,
        info_hash,
        b"-RS0001-pexpeer-aaaa",
        a_listener.local_addr().unwrap().port(),
        &mut a_map,
    );

    // Ours to libtorrent: a peer it does not know, at `third`.
    let mut pex = PexState::new(seed_addr, PexConfig::default());
    pex.set_connected([
        PexPeer {
            addr: third.local_addr().unwrap(),
            flags: PexFlags(PexFlags::REACHABLE),
        },
        PexPeer {
            addr: seed_addr,
            flags: PexFlags(PexFlags::SEED),
        },
    ]);
    let message = pex.poll_message(Instant::now()).unwrap();
    assert_eq!(message.added.len(), 1, "never the seed itself");
    message.encode_message(a_map.remote_id(UT_PEX).unwrap(), a.queue_raw());
    a.flush().unwrap();

    // Theirs to us: B, at its listen address.
    let our_pex = a_map.local_id(UT_PEX).unwrap();
    let mut receiver = PexState::new(seed_addr, PexConfig::default());
    let deadline = Instant::now() + Duration::from_secs(30);
    let heard = loop {
        assert!(Instant::now() < deadline, "no ut_pex from libtorrent");
        if let Message::Extended { id, payload } = a.receive().unwrap() {
            if id == our_pex {
                let message = PexMessage::decode(payload).unwrap();
                break receiver.handle_incoming(message, Instant::now());
            }
        }
    };
    assert!(!heard.too_soon);
    assert!(
        heard.added.iter().any(|p| p.addr == b_listen),
        "libtorrent told us {heard:?}, B listens at {b_listen}"
    );

    // And libtorrent acts on ours: it connects to `third`.
    let deadline = Instant::now() + Duration::from_secs(30);
    let stream = loop {
        match third.accept() {
            Ok((stream, _)) => break stream,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(
                    Instant::now() < deadline,
                    "libtorrent never dialled the PEX peer"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("accept: {e}"),
        }
    };
    stream.set_nonblocking(false).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let connection = Connection::respond(stream, |theirs| {
        Some(Handshake::new(
            Reserved::supported(),
            theirs.info_hash,
            *b"-RS0001-pexpeer-cccc",
        ))
    })
    .unwrap();
    assert_eq!(connection.peer_handshake().info_hash, info_hash);
}
