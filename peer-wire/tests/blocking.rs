//! The blocking layer over real TCP sockets on 127.0.0.1: both handshake
//! roles, a declined torrent, a read timeout that loses nothing, and a
//! peer that is not speaking BitTorrent.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::Duration;

mod common;

use common::*;
use rustico_peer_wire::*;

fn pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let timeouts = Timeouts {
        read: Some(Duration::from_secs(10)),
        write: Some(Duration::from_secs(10)),
    };
    let client = connect(addr, Duration::from_secs(5), timeouts).unwrap();
    let (server, _) = listener.accept().unwrap();
    timeouts.apply(&server).unwrap();
    (client, server)
}

#[test]
fn initiate_and_respond_then_exchange_messages() {
    let (client, server) = pair();
    let server_side = thread::spawn(move || {
        let mut peer = Connection::respond(server, |theirs| {
            (theirs.info_hash == [1; 20])
                .then(|| Handshake::new(Reserved::supported(), [1; 20], [b's'; 20]))
        })
        .unwrap();
        assert_eq!(peer.peer_handshake().peer_id, [b'c'; 20]);
        peer.send(&Message::HaveAll).unwrap();
        let Message::Request(r) = peer.receive().unwrap() else {
            panic!("expected a request")
        };
        let data = vec![0x5a; r.length as usize];
        peer.send(&Message::Piece {
            index: r.piece,
            begin: r.offset,
            data: &data,
        })
        .unwrap();
    });
    let ours = Handshake::new(Reserved::supported(), [1; 20], [b'c'; 20]);
    let mut peer = Connection::initiate(client, &ours).unwrap();
    assert_eq!(peer.peer_handshake().peer_id, [b's'; 20]);
    assert_eq!(peer.receive().unwrap(), Message::HaveAll);
    peer.send(&Message::Request(BlockRequest {
        piece: 2,
        offset: 0,
        length: BLOCK_LEN,
    }))
    .unwrap();
    match peer.receive().unwrap() {
        Message::Piece { index, data, .. } => {
            assert_eq!(index, 2);
            assert_eq!(data, &vec![0x5a; BLOCK_LEN as usize][..]);
        }
        other => panic!("{other:?}"),
    }
    server_side.join().unwrap();
    // The server hung up.
    assert!(matches!(
        peer.receive(),
        Err(ConnectionError::Closed { mid_message: false })
    ));
}

#[test]
fn a_declined_or_mismatched_torrent_fails_the_handshake() {
    let (client, server) = pair();
    let server_side = thread::spawn(move || {
        let err = Connection::respond(server, |_| None).unwrap_err();
        assert!(matches!(err, ConnectionError::Declined));
    });
    let ours = Handshake::new(Reserved::default(), [1; 20], [0; 20]);
    assert!(Connection::initiate(client, &ours).is_err());
    server_side.join().unwrap();

    let (client, server) = pair();
    let server_side = thread::spawn(move || {
        Connection::respond(server, |_| {
            Some(Handshake::new(Reserved::default(), [2; 20], [0; 20]))
        })
        .unwrap();
    });
    let err = Connection::initiate(client, &ours).unwrap_err();
    assert!(
        matches!(err, ConnectionError::InfoHashMismatch { expected, found } if expected == [1; 20] && found == [2; 20])
    );
    server_side.join().unwrap();
}

#[test]
fn a_read_timeout_keeps_the_partial_message() {
    let (client, mut server) = pair();
    client
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let mut peer = Connection::after_handshake(
        client,
        Handshake::new(Reserved::default(), [0; 20], [0; 20]),
    );
    let mut wire = Vec::new();
    Message::Have(77).encode(&mut wire);
    server.write_all(&wire[..3]).unwrap();
    assert!(matches!(peer.receive(), Err(ConnectionError::TimedOut)));
    server.write_all(&wire[3..]).unwrap();
    assert_eq!(peer.receive().unwrap(), Message::Have(77));
}

#[test]
fn http_instead_of_a_handshake_is_a_handshake_error() {
    let (client, mut server) = pair();
    server.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    let ours = Handshake::new(Reserved::default(), [1; 20], [0; 20]);
    let err = Connection::initiate(client, &ours).unwrap_err();
    assert!(matches!(
        err,
        ConnectionError::Handshake(HandshakeError::BadProtocolLength { found: b'G' })
    ));
}

#[test]
fn an_oversized_frame_from_the_socket_is_refused() {
    let (client, mut server) = pair();
    let mut peer = Connection::after_handshake(
        client,
        Handshake::new(Reserved::default(), [0; 20], [0; 20]),
    );
    server.write_all(&[0, 0x20, 0, 0, 7]).unwrap();
    assert!(matches!(
        peer.receive(),
        Err(ConnectionError::Frame(FrameError::TooLong {
            len: 0x20_0000,
            ..
        }))
    ));
}
