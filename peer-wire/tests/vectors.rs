//! Byte-exact vectors, computed by hand from BEP 3, 5, 6, 9, 10 and 11,
//! and the errors (with offsets) that bad input gets.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr};

use rustico_peer_wire::*;

const REQ: BlockRequest = BlockRequest {
    piece: 1,
    offset: 0x4000,
    length: 0x4000,
};

fn vectors() -> Vec<(Message<'static>, Vec<u8>)> {
    let block = |id: u8| vec![0, 0, 0, 13, id, 0, 0, 0, 1, 0, 0, 0x40, 0, 0, 0, 0x40, 0];
    vec![
        (Message::KeepAlive, vec![0, 0, 0, 0]),
        (Message::Choke, vec![0, 0, 0, 1, 0]),
        (Message::Unchoke, vec![0, 0, 0, 1, 1]),
        (Message::Interested, vec![0, 0, 0, 1, 2]),
        (Message::NotInterested, vec![0, 0, 0, 1, 3]),
        (Message::Have(0x0102_0304), vec![0, 0, 0, 5, 4, 1, 2, 3, 4]),
        (
            Message::Bitfield(&[0xff, 0x80]),
            vec![0, 0, 0, 3, 5, 0xff, 0x80],
        ),
        (Message::Request(REQ), block(6)),
        (
            Message::Piece {
                index: 1,
                begin: 0x4000,
                data: b"abc",
            },
            vec![0, 0, 0, 12, 7, 0, 0, 0, 1, 0, 0, 0x40, 0, b'a', b'b', b'c'],
        ),
        (Message::Cancel(REQ), block(8)),
        // 6881 = 0x1ae1
        (Message::Port(6881), vec![0, 0, 0, 3, 9, 0x1a, 0xe1]),
        (Message::SuggestPiece(5), vec![0, 0, 0, 5, 13, 0, 0, 0, 5]),
        (Message::HaveAll, vec![0, 0, 0, 1, 14]),
        (Message::HaveNone, vec![0, 0, 0, 1, 15]),
        (Message::RejectRequest(REQ), block(16)),
        // 1059 = 0x0423
        (
            Message::AllowedFast(1059),
            vec![0, 0, 0, 5, 17, 0, 0, 4, 0x23],
        ),
        (
            Message::Extended {
                id: 0,
                payload: b"de",
            },
            vec![0, 0, 0, 4, 20, 0, b'd', b'e'],
        ),
        (
            Message::Extended {
                id: 3,
                payload: b"",
            },
            vec![0, 0, 0, 2, 20, 3],
        ),
        (
            Message::Unknown {
                id: 99,
                payload: &[1, 2],
            },
            vec![0, 0, 0, 3, 99, 1, 2],
        ),
    ]
}

#[test]
fn every_message_encodes_and_decodes_to_its_vector() {
    let limits = Limits::default();
    for (message, bytes) in vectors() {
        let mut out = Vec::new();
        message.encode(&mut out);
        assert_eq!(out, bytes, "encoding {message:?}");
        assert_eq!(message.encoded_len(), bytes.len());
        assert_eq!(
            decode_frame(&bytes, &limits).unwrap(),
            Status::Complete(message, bytes.len()),
            "decoding {bytes:?}"
        );
        assert_eq!(Message::decode(&bytes[4..]).unwrap(), message);
        assert_eq!(message.to_owned().as_message(), message);
        // Every proper prefix asks for more.
        for cut in 0..bytes.len() {
            assert_eq!(
                decode_frame(&bytes[..cut], &limits).unwrap(),
                Status::Incomplete
            );
        }
    }
}

#[test]
fn the_whole_vector_stream_frames_back() {
    let vectors = vectors();
    let stream: Vec<u8> = vectors.iter().flat_map(|(_, b)| b.clone()).collect();
    let mut framer = Framer::new();
    assert_eq!(framer.feed(&stream), stream.len());
    for (message, _) in &vectors {
        assert_eq!(framer.next_message().unwrap(), Some(*message));
    }
    assert_eq!(framer.next_message().unwrap(), None);
    assert_eq!(framer.position(), stream.len() as u64);
}

#[test]
fn piece_header_matches_encoded_piece() {
    let mut out = Vec::new();
    Message::Piece {
        index: 7,
        begin: 32768,
        data: &[9; 100],
    }
    .encode(&mut out);
    assert_eq!(out[..13], piece_header(7, 32768, 100));
}

#[test]
fn handshake_vector() {
    let reserved = Reserved::default()
        .with_extension_protocol(true)
        .with_fast(true)
        .with_dht(true);
    let handshake = Handshake::new(reserved, [0x11; 20], *b"-RS0001-abcdefghijkl");
    let mut expected = vec![19];
    expected.extend_from_slice(b"BitTorrent protocol");
    expected.extend_from_slice(&[0, 0, 0, 0, 0, 0x10, 0, 0x05]);
    expected.extend_from_slice(&[0x11; 20]);
    expected.extend_from_slice(b"-RS0001-abcdefghijkl");
    let mut out = Vec::new();
    handshake.encode(&mut out);
    assert_eq!(out, expected);
    assert_eq!(handshake.to_bytes()[..], expected[..]);
    assert_eq!(
        Handshake::decode(&expected).unwrap(),
        Status::Complete(handshake, 68)
    );
    // Trailing messages are not part of the handshake.
    expected.extend_from_slice(&[0, 0, 0, 1, 14]);
    assert_eq!(
        Handshake::decode(&expected).unwrap(),
        Status::Complete(handshake, 68)
    );
    assert_eq!(Handshake::peek_info_hash(&expected[..47]).unwrap(), None);
    assert_eq!(
        Handshake::peek_info_hash(&expected[..48]).unwrap(),
        Some([0x11; 20])
    );
    for cut in 0..68 {
        assert_eq!(
            Handshake::decode(&expected[..cut]).unwrap(),
            Status::Incomplete
        );
    }
}

#[test]
fn reserved_flags_are_the_bep_bits() {
    assert_eq!(
        Reserved::default().with_extension_protocol(true).0,
        [0, 0, 0, 0, 0, 0x10, 0, 0]
    );
    assert_eq!(
        Reserved::default().with_fast(true).0,
        [0, 0, 0, 0, 0, 0, 0, 0x04]
    );
    assert_eq!(
        Reserved::default().with_dht(true).0,
        [0, 0, 0, 0, 0, 0, 0, 0x01]
    );
    let all = Reserved([0xff; 8]);
    assert!(all.extension_protocol() && all.fast() && all.dht());
    assert_eq!(all.with_fast(false).0[7], 0xfb);
    assert_eq!(
        Reserved::supported().common(&Reserved::default().with_fast(true)),
        Reserved::default().with_fast(true)
    );
}

#[test]
fn handshake_errors_say_where() {
    assert_eq!(
        Handshake::decode(&[18]).unwrap_err(),
        HandshakeError::BadProtocolLength { found: 18 }
    );
    assert_eq!(
        Handshake::decode(b"\x13BitTorrent Protocol").unwrap_err(),
        HandshakeError::BadProtocol {
            offset: 12,
            found: b'P'
        }
    );
    // An HTTP request is rejected from its first byte.
    assert!(Handshake::decode(b"G").is_err());
    let text = Handshake::decode(b"\x13BitTorrent protocoX")
        .unwrap_err()
        .to_string();
    assert!(text.contains("at byte 19"), "{text}");
}

#[test]
fn frame_errors_say_what_and_where() {
    let limits = Limits::default();
    // A 1 MiB length prefix is refused from its 4 bytes.
    assert_eq!(
        decode_frame(&[0, 0x10, 0, 0], &limits).unwrap_err(),
        FrameError::TooLong {
            len: 0x10_0000,
            max: limits.max_frame_len(),
            offset: 0
        }
    );
    // A `have` must be 5 bytes long.
    assert_eq!(
        decode_frame(&[0, 0, 0, 6, 4], &limits).unwrap_err(),
        FrameError::BadLength {
            id: 4,
            len: 6,
            expected: 5,
            offset: 0
        }
    );
    // A piece shorter than its header.
    assert!(matches!(
        decode_frame(&[0, 0, 0, 8, 7], &limits),
        Err(FrameError::BadLength {
            id: 7,
            expected: 9,
            ..
        })
    ));
    // A bitfield too big for the torrent, refused from its header alone.
    let small = Limits::for_torrent(16);
    assert_eq!(
        decode_frame(&[0, 0, 0, 4, 5], &small).unwrap_err(),
        FrameError::TooLongForId {
            id: 5,
            len: 4,
            max: 3,
            offset: 0
        }
    );
    // The framer reports stream offsets.
    let mut framer = Framer::new();
    framer.feed(&[0, 0, 0, 1, 1, 0, 0, 0, 2, 2]);
    assert_eq!(framer.next_message().unwrap(), Some(Message::Unchoke));
    let err = framer.next_message().unwrap_err();
    assert_eq!(
        err,
        FrameError::BadLength {
            id: 2,
            len: 2,
            expected: 1,
            offset: 5
        }
    );
    assert!(err.to_string().contains("at byte 5"), "{err}");
    // And stays failed.
    assert_eq!(framer.next_message().unwrap_err(), err);
}

#[test]
fn oversized_prefix_is_refused_before_buffering_its_payload() {
    let mut framer = Framer::new();
    assert_eq!(framer.feed(&[0x7f, 0xff, 0xff]), 3);
    assert_eq!(framer.next_message().unwrap(), None);
    framer.feed(&[0xff]);
    assert!(matches!(
        framer.next_message(),
        Err(FrameError::TooLong {
            len: 0x7fff_ffff,
            ..
        })
    ));
    assert_eq!(framer.buffered(), 4);
}

#[test]
fn unknown_ids_are_reported_as_unknown() {
    let mut framer = Framer::new();
    framer.feed(&[0, 0, 0, 4, 42, 1, 2, 3, 0, 0, 0, 1, 2]);
    assert_eq!(
        framer.next_message().unwrap(),
        Some(Message::Unknown {
            id: 42,
            payload: &[1, 2, 3]
        })
    );
    assert_eq!(framer.next_message().unwrap(), Some(Message::Interested));
}

#[test]
fn keep_alive_does_not_swallow_the_next_id() {
    // A keep-alive followed by a message whose id would be illegal for
    // length 0 must not be checked as one frame.
    let mut framer = Framer::new();
    framer.feed(&[0, 0, 0, 0, 0, 0, 0, 5, 4, 0, 0, 0, 1]);
    assert_eq!(framer.next_message().unwrap(), Some(Message::KeepAlive));
    assert_eq!(framer.next_message().unwrap(), Some(Message::Have(1)));
}

#[test]
fn bep6_allowed_fast_example() {
    let ip = Ipv4Addr::new(80, 4, 4, 200);
    assert_eq!(
        allowed_fast_set(ip, &[0xaa; 20], 1313, 7),
        [1059, 431, 808, 1217, 287, 376, 1188]
    );
    assert_eq!(
        allowed_fast_set(ip, &[0xaa; 20], 1313, 9),
        [1059, 431, 808, 1217, 287, 376, 1188, 353, 508]
    );
    // Only the /24 counts.
    assert_eq!(
        allowed_fast_set(Ipv4Addr::new(80, 4, 4, 1), &[0xaa; 20], 1313, 9),
        allowed_fast_set(ip, &[0xaa; 20], 1313, 9)
    );
    // k larger than the torrent: every piece once, and it ends.
    let mut small = allowed_fast_set(ip, &[0xaa; 20], 3, 10);
    small.sort_unstable();
    assert_eq!(small, [0, 1, 2]);
    assert!(allowed_fast_set(ip, &[0xaa; 20], 0, 10).is_empty());
}

#[test]
fn bitfield_checks_and_updates() {
    assert_eq!(
        Bitfield::from_wire(&[0xff, 0xc1], 10).unwrap_err(),
        BitfieldError::SpareBitSet { bit: 15, offset: 1 }
    );
    assert_eq!(
        Bitfield::from_wire(&[0xff], 10).unwrap_err(),
        BitfieldError::WrongLength {
            found: 1,
            expected: 2,
            pieces: 10
        }
    );
    let mut bits = Bitfield::from_wire(&[0x81, 0x40], 10).unwrap();
    assert_eq!(bits.count(), 3);
    assert_eq!(bits.iter_set().collect::<Vec<_>>(), [0, 7, 9]);
    assert!(!bits.set(10), "out of range");
    assert!(!bits.set(0), "already set");
    assert!(bits.set(8));
    assert!(bits.clear(0));
    assert!(!bits.clear(0));
    assert_eq!(bits.as_wire(), &[0x01, 0xc0]);
    assert_eq!(bits.count(), 3);
    let full = Bitfield::full(10);
    assert_eq!(full.as_wire(), &[0xff, 0xc0]);
    assert!(full.is_complete());
    assert!(bits.lacks_any_of(&full));
    assert!(!full.lacks_any_of(&bits));
    bits.set_all();
    assert_eq!(bits, full);
    bits.clear_all();
    assert!(bits.is_clear());
    assert_eq!(Bitfield::full(16).as_wire(), &[0xff, 0xff]);
    assert!(Bitfield::from_wire(&[], 0).unwrap().is_complete());
}

#[test]
fn extension_handshake_vector() {
    let mut handshake = ExtensionHandshake::default();
    handshake.extensions.insert("ut_metadata".into(), 3);
    handshake.extensions.insert("ut_pex".into(), 1);
    handshake.metadata_size = Some(31235);
    handshake.listen_port = Some(6881);
    handshake.reqq = Some(250);
    handshake.client = Some("rustico".into());
    handshake.your_ip = Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let expected: &[u8] = b"d1:md11:ut_metadatai3e6:ut_pexi1ee13:metadata_sizei31235e1:pi6881e4:reqqi250e1:v7:rustico6:yourip4:\x7f\x00\x00\x01e";
    let mut out = Vec::new();
    handshake.encode(&mut out);
    assert_eq!(out, expected);
    assert_eq!(ExtensionHandshake::decode(expected).unwrap(), handshake);

    let mut message = Vec::new();
    handshake.encode_message(&mut message);
    assert_eq!(message[..6], [0, 0, 0, (expected.len() + 2) as u8, 20, 0]);
    assert_eq!(&message[6..], expected);
}

#[test]
fn bep10_example_handshake_decodes() {
    // The example in BEP 10, with its strings in UTF-8 (the BEP counts
    // "µT_PEX" as 6 bytes, as if in Latin-1, but "µTorrent 1.2" as 13).
    let payload = "d1:md11:LT_metadatai1e7:µT_PEXi2ee1:pi6881e1:v13:µTorrent 1.2e";
    let handshake = ExtensionHandshake::decode(payload.as_bytes()).unwrap();
    assert_eq!(handshake.extensions["LT_metadata"], 1);
    assert_eq!(handshake.extensions["µT_PEX"], 2);
    assert_eq!(handshake.listen_port, Some(6881));
    assert_eq!(handshake.client.as_deref(), Some("µTorrent 1.2"));
    assert_eq!(handshake.your_ip, None);
}

#[test]
fn extension_errors_say_where() {
    assert_eq!(
        ExtensionHandshake::decode(b"d1:pi70000ee").unwrap_err(),
        ExtensionError::BadValue {
            key: "p",
            offset: 4,
            why: "integer out of range"
        }
    );
    assert!(matches!(
        ExtensionHandshake::decode(b"d6:yourip3:abce"),
        Err(ExtensionError::BadValue {
            key: "yourip",
            offset: 9,
            ..
        })
    ));
    assert_eq!(
        ExtensionHandshake::decode(b"li1ee").unwrap_err(),
        ExtensionError::NotADict { found: "list" }
    );
    assert!(matches!(
        ExtensionHandshake::decode(b"d1:m"),
        Err(ExtensionError::Bencode(_))
    ));
    // Disabled (0) and unreadable entries.
    let h = ExtensionHandshake::decode(b"d1:md1:ai0e1:bi300e1:c1:xee").unwrap();
    assert_eq!(h.extensions.len(), 1);
    assert_eq!(h.extensions["a"], 0);
}

#[test]
fn extension_ids_map_both_ways() {
    let mut map = ExtensionMap::new(&[UT_METADATA, UT_PEX]);
    assert_eq!(map.local_id(UT_METADATA), Some(1));
    assert_eq!(map.local_id(UT_PEX), Some(2));
    assert_eq!(map.local_name(2), Some(UT_PEX));
    assert_eq!(map.local_name(0), None);
    assert_eq!(map.local_name(3), None);
    let mut theirs = ExtensionHandshake::default();
    theirs.extensions.insert(UT_METADATA.into(), 7);
    theirs.extensions.insert(UT_PEX.into(), 9);
    map.handle_remote_handshake(&theirs);
    assert_eq!(map.remote_id(UT_METADATA), Some(7));
    // A later handshake disables ut_pex and leaves ut_metadata alone.
    let mut update = ExtensionHandshake::default();
    update.extensions.insert(UT_PEX.into(), 0);
    map.handle_remote_handshake(&update);
    assert_eq!(map.remote_id(UT_PEX), None);
    assert_eq!(map.remote_id(UT_METADATA), Some(7));
}

#[test]
fn bep9_vectors() {
    let cases: Vec<(MetadataMessage<'_>, &[u8])> = vec![
        (
            MetadataMessage::Request { piece: 0 },
            b"d8:msg_typei0e5:piecei0ee",
        ),
        (
            MetadataMessage::Data {
                piece: 0,
                total_size: 34256,
                data: b"xxxxxxxx",
            },
            b"d8:msg_typei1e5:piecei0e10:total_sizei34256eexxxxxxxx",
        ),
        (
            MetadataMessage::Reject { piece: 0 },
            b"d8:msg_typei2e5:piecei0ee",
        ),
    ];
    for (message, bytes) in cases {
        let mut out = Vec::new();
        message.encode(&mut out);
        assert_eq!(out, bytes);
        assert_eq!(MetadataMessage::decode(bytes).unwrap(), message);
    }
    let mut framed = Vec::new();
    MetadataMessage::Request { piece: 2 }.encode_message(3, &mut framed);
    assert_eq!(
        Message::decode(&framed[4..]).unwrap(),
        Message::Extended {
            id: 3,
            payload: b"d8:msg_typei0e5:piecei2ee"
        }
    );
    assert_eq!(
        MetadataMessage::decode(b"d8:msg_typei7e5:piecei0ee").unwrap_err(),
        ExtensionError::UnknownMetadataType { msg_type: 7 }
    );
    assert_eq!(
        MetadataMessage::decode(b"d8:msg_typei1e5:piecei0ee").unwrap_err(),
        ExtensionError::MissingKey { key: "total_size" }
    );
    assert_eq!(metadata_piece_count(34256), 3);
    assert_eq!(metadata_piece_count(32768), 2);
}

#[test]
fn bep11_vector() {
    let message = PexMessage {
        added: vec![
            PexPeer {
                addr: "1.2.3.4:6881".parse().unwrap(),
                flags: PexFlags(0x12),
            },
            PexPeer {
                addr: "[::1]:6881".parse().unwrap(),
                flags: PexFlags(0x01),
            },
        ],
        dropped: vec!["5.6.7.8:80".parse().unwrap()],
    };
    let mut expected = Vec::new();
    expected.extend_from_slice(b"d5:added6:\x01\x02\x03\x04\x1a\xe17:added.f1:\x12");
    expected.extend_from_slice(b"6:added618:");
    expected.extend_from_slice(&[0; 15]);
    expected.extend_from_slice(b"\x01\x1a\xe18:added6.f1:\x01");
    expected.extend_from_slice(b"7:dropped6:\x05\x06\x07\x08\x00\x508:dropped60:e");
    let mut out = Vec::new();
    message.encode(&mut out);
    assert_eq!(out, expected);
    assert_eq!(PexMessage::decode(&expected).unwrap(), message);

    // Missing flags default to none; a ragged compact list is an error.
    let lean = PexMessage::decode(b"d5:added6:\x01\x02\x03\x04\x1a\xe1e").unwrap();
    assert_eq!(lean.added[0].flags, PexFlags(0));
    assert!(matches!(
        PexMessage::decode(b"d7:dropped5:\x01\x02\x03\x04\x1ae"),
        Err(ExtensionError::BadValue {
            key: "dropped",
            offset: 10,
            ..
        })
    ));
}

#[test]
fn debug_shows_payload_lengths_not_payloads() {
    let data = vec![0xabu8; 16384];
    let piece = Message::Piece {
        index: 3,
        begin: 16384,
        data: &data,
    };
    assert_eq!(
        format!("{piece:?}"),
        "Piece { index: 3, begin: 16384, len: 16384 }"
    );
    let owned = piece.to_owned();
    assert_eq!(format!("{owned:?}"), format!("{piece:?}"));
    assert_eq!(
        format!("{:?}", Message::Bitfield(&[0xff; 100])),
        "Bitfield { len: 100 }"
    );
}
