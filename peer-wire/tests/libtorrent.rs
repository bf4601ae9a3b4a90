//! Interop on loopback with a real libtorrent seed (Debian's Python
//! bindings): handshake, read its have-all/bitfield and extension
//! handshake, get unchoked, and download one block, checking its bytes.
//! And with a libtorrent leecher: the haves the session holds back reach
//! it when we complete, and it counts us as a seed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

mod common;

use common::*;
use rustico_peer_wire::*;

/// Seeds `DIR/data.bin` as a v1-only torrent with 32 KiB pieces on
/// 127.0.0.1:PORT (no uTP, DHT, LSD, UPnP or NAT-PMP), prints
/// `READY <info-hash hex> <pieces> <piece length> <port>`, then stays up
/// until killed (or for two minutes at most). With a third argument, the
/// pieces it lists (`2,3`) are spoiled on disk once the torrent is made:
/// libtorrent checks the file and is a leecher without them, and prints
/// `PEER <pieces> <seed>` whenever its view of its peer changes (how many
/// pieces it counts for it, and whether it takes it for a seed).
const SEED_SCRIPT: &str = r#"
import libtorrent as lt, sys, os, time
d, port = sys.argv[1], int(sys.argv[2])
spoil = [int(p) for p in sys.argv[3].split(",") if p] if len(sys.argv) > 3 else []
path = os.path.join(d, "data.bin")
fs = lt.file_storage()
lt.add_files(fs, path)
ct = lt.create_torrent(fs, 32768, flags=lt.create_torrent.v1_only)
lt.set_piece_hashes(ct, d)
ti = lt.torrent_info(lt.bencode(ct.generate()))
with open(path, "r+b") as f:
    for piece in spoil:
        f.seek(piece * 32768)
        f.write(b"\0" * 16)
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
if not spoil:
    atp.flags |= lt.torrent_flags.seed_mode
# Not auto-managed: an auto-managed torrent starts paused, and a session
# with no active torrent refuses incoming peers.
atp.flags &= ~(lt.torrent_flags.auto_managed | lt.torrent_flags.paused)
h = ses.add_torrent(atp)
want = lt.torrent_status.downloading if spoil else lt.torrent_status.seeding
deadline = time.monotonic() + 30
# Incoming peers are refused until the torrent is up (and checked).
while time.monotonic() < deadline and not (
        ses.is_listening() and h.status().state == want
        and h.status().num_pieces == ti.num_pieces() - len(spoil)
        and not h.status().paused):
    time.sleep(0.05)
print("READY %s %d %d %d" % (str(ti.info_hash()), ti.num_pieces(), ti.piece_length(), ses.listen_port()), flush=True)
last = None
end = time.monotonic() + 120
while time.monotonic() < end:
    time.sleep(0.05)
    for p in h.get_peer_info() if spoil else []:
        seen = (p.num_pieces, 1 if p.flags & lt.peer_info.seed else 0)
        if seen != last:
            print("PEER %d %d" % seen, flush=True)
            last = seen
    for a in ses.pop_alerts():
        # On stderr, which the test inherits: why libtorrent dropped us.
        print("libtorrent:", a.what(), a.message(), file=sys.stderr, flush=True)
"#;

fn unhex(hex: &str) -> [u8; 20] {
    let mut out = [0u8; 20];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
    }
    out
}

/// Dials libtorrent at `addr` and completes the handshake: a session over
/// `content`, on a socket whose reads give up after 100 ms.
fn open_session(
    addr: SocketAddr,
    info_hash: [u8; 20],
    peer_id: [u8; 20],
    content: Content,
    config: SessionConfig,
) -> (std::net::TcpStream, Session) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let now = Instant::now();
    let ours = Handshake::new(Reserved::supported(), info_hash, peer_id);
    let mut hs = Handshaking::new(ours, content, config, now);
    let mut out = Vec::new();
    hs.poll_transmit(&mut out, now);
    stream.write_all(&out).unwrap();
    let mut chunk = [0u8; 68];
    loop {
        let n = stream.read(&mut chunk[..68 - hs.received()]).unwrap();
        assert!(n > 0, "libtorrent closed during the handshake");
        match hs.handle_input(&chunk[..n], Instant::now()).unwrap() {
            Progress::Handshaking(next) => hs = next,
            Progress::Established(session) => return (stream, session),
        }
    }
}

/// One round with libtorrent: what the session has to send, what arrived
/// (waiting up to the read time-out), the timers.
fn exchange(stream: &mut std::net::TcpStream, session: &mut Session) {
    use std::io::{Read, Write};
    let mut out = Vec::new();
    session.poll_transmit(&mut out, Instant::now());
    stream.write_all(&out).unwrap();
    match stream.read(session.recv_buffer()) {
        Ok(0) => panic!("libtorrent closed the connection"),
        Ok(n) => session.handle_received(n, Instant::now()).unwrap(),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
        Err(e) => panic!("read: {e}"),
    }
    session.handle_timeout(Instant::now()).unwrap();
}

/// A libtorrent seed of 100,000 pseudo-random bytes (from `seed`) in
/// pieces of 32 KiB, listening on 127.0.0.1 and ready for a connection.
struct Seed {
    _dir: tempfile::TempDir,
    _child: rustico_testkit::ChildGuard,
    file: Vec<u8>,
    addr: SocketAddr,
    info_hash: [u8; 20],
    piece_count: u32,
    piece_len: usize,
    /// What the script prints after `READY`.
    lines: Option<std::io::Lines<BufReader<std::process::ChildStdout>>>,
}

fn start_seed(seed: u64) -> Seed {
    start_libtorrent(seed, "")
}

/// The same with the pieces in `spoil` (`"2,3"`) spoiled: a leecher.
fn start_libtorrent(seed: u64, spoil: &str) -> Seed {
    let dir = rustico_testkit::temp_dir().unwrap();
    let file = rustico_testkit::pseudo_random_bytes(seed, 100_000);
    std::fs::write(dir.path().join("data.bin"), &file).unwrap();
    let port = rustico_testkit::free_port();
    let mut child = rustico_testkit::spawn_python(
        SEED_SCRIPT,
        &[dir.path().to_str().unwrap(), &port.to_string(), spoil],
    )
    .unwrap();
    let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
    let line = lines.next().unwrap().unwrap();
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(fields.first(), Some(&"READY"), "libtorrent said {line:?}");
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    rustico_testkit::wait_for_tcp(addr, Duration::from_secs(10)).unwrap();
    Seed {
        _dir: dir,
        _child: child,
        file,
        addr,
        info_hash: unhex(fields[1]),
        piece_count: fields[2].parse().unwrap(),
        piece_len: fields[3].parse().unwrap(),
        lines: Some(lines),
    }
}

#[test]
fn download_one_block_from_libtorrent() {
    if !rustico_testkit::require_libtorrent() {
        return;
    }
    let seed = start_seed(4);
    let (file, addr, info_hash) = (&seed.file, seed.addr, seed.info_hash);
    let (piece_count, piece_len) = (seed.piece_count, seed.piece_len);
    assert_eq!((piece_count, piece_len), (4, 32768));
    let timeouts = Timeouts {
        read: Some(Duration::from_secs(20)),
        write: Some(Duration::from_secs(20)),
    };
    let stream = connect(addr, Duration::from_secs(5), timeouts).unwrap();
    let ours = Handshake::new(Reserved::supported(), info_hash, *b"-RS0001-peerwiretest");
    let mut peer = Connection::initiate(stream, &ours).unwrap();
    let theirs = *peer.peer_handshake();
    assert_eq!(theirs.info_hash, info_hash);
    assert!(
        theirs.reserved.extension_protocol(),
        "libtorrent speaks BEP 10"
    );
    assert!(theirs.reserved.fast(), "libtorrent speaks BEP 6");
    peer.set_limits(Limits::for_torrent(piece_count));

    let mut map = ExtensionMap::new(&[UT_METADATA, UT_PEX]);
    let mut our_ext = map.handshake();
    our_ext.client = Some("rustico-peer-wire test".into());
    our_ext.reqq = Some(16);
    our_ext.encode_message(peer.queue_raw());
    peer.flush().unwrap();

    // Collect what a seed says first: its pieces and its extensions.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut have: Option<Bitfield> = None;
    let mut ext: Option<ExtensionHandshake> = None;
    while have.is_none() || ext.is_none() {
        assert!(
            Instant::now() < deadline,
            "no bitfield/extension handshake in time"
        );
        match peer.receive().unwrap() {
            Message::HaveAll => have = Some(Bitfield::full(piece_count)),
            Message::Bitfield(bits) => have = Some(Bitfield::from_wire(bits, piece_count).unwrap()),
            Message::Extended {
                id: HANDSHAKE_ID,
                payload,
            } => {
                ext = Some(ExtensionHandshake::decode(payload).unwrap());
            }
            _ => {}
        }
    }
    let have = have.unwrap();
    assert!(have.is_complete(), "a seed has every piece: {have:?}");
    let ext = ext.unwrap();
    map.handle_remote_handshake(&ext);
    assert!(
        map.remote_id(UT_METADATA).is_some(),
        "libtorrent offers ut_metadata: {ext:?}"
    );
    assert_eq!(ext.metadata_size.map(|s| s > 0), Some(true), "{ext:?}");
    assert!(
        ext.client.as_deref().unwrap_or("").contains("libtorrent"),
        "{ext:?}"
    );
    assert_eq!(ext.your_ip, Some("127.0.0.1".parse().unwrap()));

    peer.send(&Message::Interested).unwrap();
    loop {
        assert!(Instant::now() < deadline, "not unchoked in time");
        if peer.receive().unwrap() == Message::Unchoke {
            break;
        }
    }

    let wanted = BlockRequest {
        piece: 1,
        offset: BLOCK_LEN,
        length: BLOCK_LEN,
    };
    peer.send(&Message::Request(wanted)).unwrap();
    let start = piece_len + BLOCK_LEN as usize;
    let expected = &file[start..start + BLOCK_LEN as usize];
    loop {
        assert!(Instant::now() < deadline, "no piece in time");
        match peer.receive().unwrap() {
            Message::Piece { index, begin, data } => {
                assert_eq!((index, begin), (wanted.piece, wanted.offset));
                assert_eq!(data.len(), expected.len());
                assert!(data == expected, "block bytes differ from the file");
                break;
            }
            Message::RejectRequest(r) => panic!("libtorrent rejected {r:?}"),
            Message::Choke => panic!("libtorrent choked us"),
            _ => {}
        }
    }

    // The last, short piece works too (100 000 - 3 * 32 768 = 1 696 bytes).
    let tail = BlockRequest {
        piece: 3,
        offset: 0,
        length: (file.len() - 3 * piece_len) as u32,
    };
    peer.send(&Message::Request(tail)).unwrap();
    loop {
        assert!(Instant::now() < deadline, "no tail piece in time");
        if let Message::Piece { index, data, .. } = peer.receive().unwrap() {
            assert_eq!(index, 3);
            assert!(data == &file[3 * piece_len..]);
            break;
        }
    }
}

/// The sans-IO `Session` driven over a blocking socket by this test alone
/// (reads go straight into the session's buffer): handshake, the seed's
/// pieces and extensions as events, interest, unchoke, two blocks through
/// `request`, checked against the file.
#[test]
fn a_session_downloads_blocks_from_libtorrent() {
    if !rustico_testkit::require_libtorrent() {
        return;
    }
    let seed = start_seed(5);
    let (file, addr, info_hash) = (&seed.file, seed.addr, seed.info_hash);
    let geometry = Geometry::new(file.len() as u64, 32_768).unwrap();
    assert_eq!(seed.piece_count, geometry.num_pieces());
    let content = Content::torrent(geometry, Bitfield::new(geometry.num_pieces())).unwrap();
    let config = SessionConfig {
        client: Some("rustico-peer-wire session test".into()),
        ..SessionConfig::default()
    };
    let (mut stream, mut session) =
        open_session(addr, info_hash, *b"-RS0001-sessiontest0", content, config);
    assert!(session.fast() && session.extended());

    let wanted = [
        BlockRequest {
            piece: 1,
            offset: BLOCK_LEN,
            length: BLOCK_LEN,
        },
        // The last, short piece: 100 000 - 3 * 32 768 = 1 696 bytes.
        BlockRequest {
            piece: 3,
            offset: 0,
            length: 1_696,
        },
    ];
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut got = Vec::new();
    let mut extensions = None;
    while got.len() < wanted.len() {
        assert!(Instant::now() < deadline, "no blocks in time: {got:?}");
        while let Some(event) = session.poll_event() {
            match event {
                Event::HaveAll => session.set_interested(true),
                Event::Bitfield(bits) if bits.is_complete() => session.set_interested(true),
                Event::Extensions(ext) => extensions = Some(ext),
                Event::Unchoked => {
                    for req in wanted {
                        session.request(req, Instant::now());
                    }
                }
                Event::Block { req, data } => got.push((req, data)),
                Event::Dropped(reqs) => panic!("libtorrent dropped {reqs:?}"),
                _ => {}
            }
        }
        exchange(&mut stream, &mut session);
    }
    let ext = extensions.expect("libtorrent sends an extension handshake");
    assert!(
        ext.ut_metadata && ext.metadata_size.is_some_and(|s| s > 0),
        "{ext:?}"
    );
    assert!(
        ext.client.as_deref().unwrap_or("").contains("libtorrent"),
        "{ext:?}"
    );
    for (req, data) in got {
        let start = geometry.piece_offset(req.piece) as usize + req.offset as usize;
        assert!(
            data == file[start..start + req.length as usize],
            "block {req:?} differs from the file"
        );
    }
    assert_eq!(session.outstanding(), 0);
}

/// A `have` for a piece the peer has waits until we complete; then the
/// session sends them all, and libtorrent, a leecher itself, counts us
/// as a seed. We hold pieces 2 and 3, libtorrent 0 and 1; we then get 0
/// (libtorrent must still count 2 pieces for us) and 1 (it must count 4
/// and call us a seed).
#[test]
fn libtorrent_counts_us_a_seed_once_we_complete_though_haves_waited() {
    if !rustico_testkit::require_libtorrent() {
        return;
    }
    let mut leecher = start_libtorrent(6, "2,3");
    let (file, addr, info_hash) = (&leecher.file, leecher.addr, leecher.info_hash);
    let lines = leecher.lines.take().unwrap();
    // Its view of us, as it changes, from a thread: reads block.
    let (views, seen) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            let f: Vec<u32> = line
                .split_whitespace()
                .skip(1)
                .filter_map(|x| x.parse().ok())
                .collect();
            if let [pieces, seed] = f[..] {
                if views.send((pieces, seed == 1)).is_err() {
                    return;
                }
            }
        }
    });

    let geometry = Geometry::new(file.len() as u64, 32_768).unwrap();
    let mut ours = Bitfield::new(geometry.num_pieces());
    ours.set(2);
    ours.set(3);
    let content = Content::torrent(geometry, ours).unwrap();
    let (mut stream, mut session) = open_session(
        addr,
        info_hash,
        *b"-RS0001-havetest0000",
        content,
        SessionConfig::default(),
    );

    // Runs the session until libtorrent's view of us is `want`, or the
    // deadline; returns the last view seen.
    let mut last = (0, false);
    let mut step = |session: &mut Session, want: Option<(u32, bool)>, for_at_most: Duration| {
        let deadline = Instant::now() + for_at_most;
        while Instant::now() < deadline {
            while session.poll_event().is_some() {}
            exchange(&mut stream, session);
            while let Ok(view) = seen.try_recv() {
                last = view;
            }
            if Some(last) == want {
                break;
            }
        }
        last
    };
    let first = step(&mut session, Some((2, false)), Duration::from_secs(30));
    assert_eq!(first, (2, false), "libtorrent never saw our bitfield");
    assert!(session.peer_has(0) && session.peer_has(1) && !session.peer_has(2));
    session.have(0);
    let held_back = step(&mut session, None, Duration::from_secs(2));
    assert_eq!(
        held_back,
        (2, false),
        "libtorrent heard of piece 0 before we completed"
    );
    session.have(1);
    let done = step(&mut session, Some((4, true)), Duration::from_secs(30));
    assert_eq!(done, (4, true), "libtorrent does not count us as a seed");
}
