//! MSE/PE interop on loopback with a real libtorrent 2.0 (Debian's Python
//! bindings) whose encryption policy is `forced`: our [`Initiator`] over a
//! std `TcpStream` downloads a block from a libtorrent seed that allows
//! RC4 only, then plaintext only; a forced libtorrent dials our
//! [`Responder`]. Every byte on the wire is recorded to show what was, and
//! was not, encrypted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use rustico_peer_wire::mse::{
    detect, Cipher, CryptoMethod, Incoming, Initiator, MseConfig, Policy, Progress, Responder,
};
use rustico_peer_wire::*;

/// Seeds `DIR/data.bin` (v1-only, 32 KiB pieces) on 127.0.0.1:PORT with
/// `in_enc_policy` and `out_enc_policy` forced and `allowed_enc_level`
/// LEVEL; prints `READY <info-hash hex> <pieces> <piece length> <port>`;
/// if DIAL is not 0, keeps asking libtorrent to connect to
/// 127.0.0.1:DIAL. Stays up until killed (two minutes at most).
const SEED_SCRIPT: &str = r#"
import libtorrent as lt, sys, os, time
d, port, level, dial = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
fs = lt.file_storage()
lt.add_files(fs, os.path.join(d, "data.bin"))
ct = lt.create_torrent(fs, 32768, flags=lt.create_torrent.v1_only)
lt.set_piece_hashes(ct, d)
ti = lt.torrent_info(lt.bencode(ct.generate()))
ses = lt.session({
    "listen_interfaces": "127.0.0.1:%d" % port,
    "enable_dht": False, "enable_lsd": False, "enable_upnp": False, "enable_natpmp": False,
    "enable_outgoing_utp": False, "enable_incoming_utp": False,
    "allow_multiple_connections_per_ip": True,
    "out_enc_policy": int(lt.enc_policy.forced),
    "in_enc_policy": int(lt.enc_policy.forced),
    "allowed_enc_level": level,
    "alert_mask": lt.alert.category_t.error_notification | lt.alert.category_t.peer_notification,
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
print("READY %s %d %d %d" % (str(ti.info_hash()), ti.num_pieces(), ti.piece_length(), ses.listen_port()), flush=True)
end = time.monotonic() + 120
next_dial = 0
while time.monotonic() < end:
    if dial and time.monotonic() >= next_dial and not h.get_peer_info():
        h.connect_peer(("127.0.0.1", dial))
        next_dial = time.monotonic() + 2
    time.sleep(0.1)
    for a in ses.pop_alerts():
        print("libtorrent:", a.what(), a.message(), file=sys.stderr, flush=True)
"#;

struct Seed {
    _child: rustico_testkit::ChildGuard,
    _dir: rustico_testkit::TempDir,
    file: Vec<u8>,
    info_hash: [u8; 20],
    piece_count: u32,
    piece_len: usize,
    addr: SocketAddr,
}

fn unhex(hex: &str) -> [u8; 20] {
    let mut out = [0u8; 20];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
    }
    out
}

fn start_seed(level: u8, dial: u16) -> Seed {
    let dir = rustico_testkit::temp_dir().unwrap();
    let file = rustico_testkit::pseudo_random_bytes(16, 100_000);
    std::fs::write(dir.path().join("data.bin"), &file).unwrap();
    let port = rustico_testkit::free_port();
    let mut child = rustico_testkit::spawn_python(
        SEED_SCRIPT,
        &[
            dir.path().to_str().unwrap(),
            &port.to_string(),
            &level.to_string(),
            &dial.to_string(),
        ],
    )
    .unwrap();
    let mut line = String::new();
    BufReader::new(child.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(fields.first(), Some(&"READY"), "seed said {line:?}");
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    Seed {
        _child: child,
        _dir: dir,
        file,
        info_hash: unhex(fields[1]),
        piece_count: fields[2].parse().unwrap(),
        piece_len: fields[3].parse().unwrap(),
        addr,
    }
}

/// A socket that keeps a copy of every byte that crossed it.
struct Recorded {
    stream: TcpStream,
    sent: Vec<u8>,
    received: Vec<u8>,
}

impl Recorded {
    fn new(stream: TcpStream) -> Recorded {
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        stream
            .set_write_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        Recorded {
            stream,
            sent: Vec::new(),
            received: Vec::new(),
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
        self.sent.extend_from_slice(bytes);
    }

    /// Reads what is there (at least one byte; panics on EOF).
    fn read(&mut self, buf: &mut [u8]) -> usize {
        let n = self.stream.read(buf).unwrap();
        assert!(n > 0, "peer closed the connection");
        self.received.extend_from_slice(&buf[..n]);
        n
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn our_handshake(info_hash: [u8; 20]) -> Handshake {
    Handshake::new(Reserved::supported(), info_hash, *b"-RS0001-msetest00000")
}

/// Decrypted payload stream: the peer's handshake, then framed messages.
struct Payload {
    cipher: Cipher,
    plain: Vec<u8>,
    handshake: Option<Handshake>,
    framer: Framer,
}

impl Payload {
    fn new(cipher: Cipher, mut leftover: Vec<u8>, piece_count: u32) -> Payload {
        let mut cipher = cipher;
        cipher.decrypt_in_place(&mut leftover);
        Payload {
            cipher,
            plain: leftover,
            handshake: None,
            framer: Framer::with_limits(Limits::for_torrent(piece_count)),
        }
    }

    fn send(&mut self, wire: &mut Recorded, mut bytes: Vec<u8>) {
        self.cipher.encrypt_in_place(&mut bytes);
        wire.send(&bytes);
    }

    /// The next message (reading and decrypting as needed).
    fn next(&mut self, wire: &mut Recorded, deadline: Instant) -> OwnedMessage {
        loop {
            assert!(Instant::now() < deadline, "timed out waiting for a message");
            if self.handshake.is_none() {
                if let Status::Complete(hs, used) = Handshake::decode(&self.plain).unwrap() {
                    self.handshake = Some(hs);
                    self.plain.drain(..used);
                }
            }
            if self.handshake.is_some() {
                // The framer's buffer grows with use: feed until it has a
                // message or everything decrypted so far.
                loop {
                    let fed = self.framer.feed(&self.plain);
                    self.plain.drain(..fed);
                    if let Some(message) = self.framer.next_message().unwrap() {
                        return message.to_owned();
                    }
                    if self.plain.is_empty() {
                        break;
                    }
                }
            }
            let mut buf = [0u8; 16384];
            let n = wire.read(&mut buf);
            let mut fresh = buf[..n].to_vec();
            self.cipher.decrypt_in_place(&mut fresh);
            self.plain.extend_from_slice(&fresh);
        }
    }
}

/// Our initiator against the forced libtorrent seed: MSE, BitTorrent
/// handshake in the initial payload, have-all, unchoke, one block.
fn download_block_over_mse(level: u8, expected: CryptoMethod) -> Recorded {
    let seed = start_seed(level, 0);
    rustico_testkit::wait_for_tcp(seed.addr, Duration::from_secs(10)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut wire = Recorded::new(TcpStream::connect(seed.addr).unwrap());

    let config = Policy::Prefer.mse_config().unwrap();
    let ia = our_handshake(seed.info_hash).to_bytes();
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&(level as u64 * 7919).to_be_bytes());
    let mut hs = Initiator::new(seed.info_hash, &config, &ia, &seed_bytes, Instant::now()).unwrap();
    let mut out = Vec::new();
    let leftover = loop {
        hs.poll_transmit(&mut out);
        wire.send(&out);
        out.clear();
        hs.handle_timeout(Instant::now()).unwrap();
        let mut buf = [0u8; 4096];
        let n = wire.read(&mut buf);
        match hs.handle_input(&buf[..n]).unwrap() {
            Progress::NeedInput => {}
            Progress::Done { used } => break buf[used..n].to_vec(),
            other => panic!("initiator returned {other:?}"),
        }
    };
    let established = hs.finish(&mut out).unwrap();
    wire.send(&out);
    assert_eq!(established.cipher.method(), expected);
    assert!(established.initial_payload.is_empty());

    let mut payload = Payload::new(established.cipher, leftover, seed.piece_count);
    let mut have_all = false;
    while !have_all {
        match payload.next(&mut wire, deadline).as_message() {
            Message::HaveAll => have_all = true,
            Message::Bitfield(bits) => {
                have_all = Bitfield::from_wire(bits, seed.piece_count)
                    .unwrap()
                    .is_complete()
            }
            _ => {}
        }
    }
    let theirs = payload.handshake.unwrap();
    assert_eq!(theirs.info_hash, seed.info_hash);

    let mut msg = Vec::new();
    Message::Interested.encode(&mut msg);
    payload.send(&mut wire, msg);
    while payload.next(&mut wire, deadline).as_message() != Message::Unchoke {}
    let wanted = BlockRequest {
        piece: 2,
        offset: BLOCK_LEN,
        length: BLOCK_LEN,
    };
    let mut msg = Vec::new();
    Message::Request(wanted).encode(&mut msg);
    payload.send(&mut wire, msg);
    loop {
        match payload.next(&mut wire, deadline).as_message() {
            Message::Piece { index, begin, data } => {
                assert_eq!((index, begin), (wanted.piece, wanted.offset));
                let start = 2 * seed.piece_len + BLOCK_LEN as usize;
                assert!(
                    data == &seed.file[start..start + BLOCK_LEN as usize],
                    "block differs from the file"
                );
                break;
            }
            Message::RejectRequest(r) => panic!("libtorrent rejected {r:?}"),
            Message::Choke => panic!("libtorrent choked us"),
            _ => {}
        }
    }
    // The block itself crossed the wire: 16 KiB of file bytes.
    assert!(wire.received.len() > BLOCK_LEN as usize);
    wire
}

#[test]
fn rc4_download_from_forced_libtorrent() {
    if !rustico_testkit::require_libtorrent() {
        return;
    }
    let wire = download_block_over_mse(2, CryptoMethod::Rc4);
    // Encrypted both ways: neither handshake, nor the file's bytes, in
    // the clear.
    assert!(!contains(&wire.sent, PROTOCOL));
    assert!(!contains(&wire.received, PROTOCOL));
    let seed_file = rustico_testkit::pseudo_random_bytes(16, 100_000);
    let block = &seed_file[2 * 32768 + 16384..][..64];
    assert!(!contains(&wire.received, block));
}

#[test]
fn plaintext_after_mse_with_libtorrent_allowing_only_plaintext() {
    if !rustico_testkit::require_libtorrent() {
        return;
    }
    let wire = download_block_over_mse(1, CryptoMethod::Plaintext);
    // Our BitTorrent handshake went in the (always RC4) initial payload;
    // libtorrent's came after the MSE handshake, in the clear.
    assert!(!contains(&wire.sent, PROTOCOL));
    assert!(contains(&wire.received, PROTOCOL));
    let seed_file = rustico_testkit::pseudo_random_bytes(16, 100_000);
    let block = &seed_file[2 * 32768 + 16384..][..64];
    assert!(contains(&wire.received, block));
}

#[test]
fn forced_libtorrent_refuses_a_plaintext_handshake() {
    // The seed above really requires encryption: a plain handshake is
    // dropped without an answer.
    if !rustico_testkit::require_libtorrent() {
        return;
    }
    let seed = start_seed(2, 0);
    rustico_testkit::wait_for_tcp(seed.addr, Duration::from_secs(10)).unwrap();
    let mut stream = TcpStream::connect(seed.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream
        .write_all(&our_handshake(seed.info_hash).to_bytes())
        .unwrap();
    let mut buf = [0u8; 256];
    // Closed (or reset), not merely silent until our read timeout.
    match stream.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("libtorrent answered a plaintext handshake with {other:?}"),
    }
}

#[test]
fn forced_libtorrent_dials_our_responder() {
    if !rustico_testkit::require_libtorrent() {
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let our_port = listener.local_addr().unwrap().port();
    let seed = start_seed(2, our_port);
    let deadline = Instant::now() + Duration::from_secs(40);
    let (stream, _) = listener.accept().unwrap();
    let mut wire = Recorded::new(stream);

    let config = MseConfig::default();
    let mut hs = Responder::new(&config, &[0x3c; 32], Instant::now()).unwrap();
    let mut out = Vec::new();
    let mut decided = false;
    let leftover = 'handshake: loop {
        assert!(Instant::now() < deadline, "handshake took too long");
        let mut buf = [0u8; 4096];
        let n = wire.read(&mut buf);
        if !decided {
            // What a listener does with a connection's first bytes.
            match detect(&wire.received) {
                Some(kind) => {
                    assert_eq!(kind, Incoming::Encrypted);
                    assert!(Policy::Prefer.accepts(kind));
                    decided = true;
                }
                None => panic!("a forced libtorrent sent {:?}", &wire.received),
            }
        }
        let mut at = 0;
        loop {
            match hs.handle_input(&buf[at..n]).unwrap() {
                Progress::NeedInput => break,
                Progress::NeedInfoHash { skey_hash, used } => {
                    assert_eq!(
                        skey_hash,
                        rustico_peer_wire::mse::skey_hash(&seed.info_hash)
                    );
                    at += used;
                    assert_eq!(
                        hs.select_from(&[[9; 20], seed.info_hash]),
                        Ok(seed.info_hash)
                    );
                }
                Progress::Done { used } => break 'handshake buf[at + used..n].to_vec(),
            }
        }
        hs.poll_transmit(&mut out);
        wire.send(&out);
        out.clear();
    };
    let established = hs.finish(&mut out).unwrap();
    wire.send(&out);
    assert_eq!(established.info_hash, seed.info_hash);
    assert_eq!(established.cipher.method(), CryptoMethod::Rc4);
    // The initial payload is libtorrent's BitTorrent handshake.
    let Status::Complete(theirs, used) = Handshake::decode(&established.initial_payload).unwrap()
    else {
        panic!(
            "IA is not a whole handshake: {:?}",
            established.initial_payload
        )
    };
    assert_eq!(used, HANDSHAKE_LEN);
    assert_eq!(theirs.info_hash, seed.info_hash);
    assert!(theirs.reserved.extension_protocol());
    assert!(!contains(&wire.received, PROTOCOL));

    // Answer with ours, encrypted; libtorrent (a seed) then tells us what
    // it has, through the same RC4 stream.
    let mut payload = Payload::new(established.cipher, leftover, seed.piece_count);
    payload.handshake = Some(theirs);
    payload.send(&mut wire, our_handshake(seed.info_hash).to_bytes().to_vec());
    loop {
        match payload.next(&mut wire, deadline).as_message() {
            Message::HaveAll => break,
            Message::Bitfield(bits) => {
                assert!(Bitfield::from_wire(bits, seed.piece_count)
                    .unwrap()
                    .is_complete());
                break;
            }
            _ => {}
        }
    }
    assert!(!contains(&wire.sent, PROTOCOL));
    assert!(!contains(&wire.received, PROTOCOL));
    drop(seed);
}
