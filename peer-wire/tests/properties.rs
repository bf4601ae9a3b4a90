//! Property tests: every message, the handshake and the extension
//! payloads round-trip; the framer gives the same messages for every split
//! of a stream; arbitrary bytes never panic and never grow the framer past
//! its capacity.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};

use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use rustico_peer_wire::*;

fn block() -> impl Strategy<Value = BlockRequest> {
    (any::<u32>(), any::<u32>(), any::<u32>()).prop_map(|(index, begin, length)| BlockRequest {
        piece: index,
        offset: begin,
        length,
    })
}

// 21 to 23 are BEP 52 hash messages: fixed lengths, decoded by `HashMessage`.
const KNOWN_IDS: [u8; 19] = [
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 13, 14, 15, 16, 17, 20, 21, 22, 23,
];

/// Any message, owned so the strategy can hold it. Payloads stay within
/// the default limits.
fn message() -> impl Strategy<Value = OwnedMessage> {
    let fixed = prop_oneof![
        Just(Message::KeepAlive),
        Just(Message::Choke),
        Just(Message::Unchoke),
        Just(Message::Interested),
        Just(Message::NotInterested),
        any::<u32>().prop_map(Message::Have),
        block().prop_map(Message::Request),
        block().prop_map(Message::Cancel),
        any::<u16>().prop_map(Message::Port),
        any::<u32>().prop_map(Message::SuggestPiece),
        Just(Message::HaveAll),
        Just(Message::HaveNone),
        block().prop_map(Message::RejectRequest),
        any::<u32>().prop_map(Message::AllowedFast),
    ]
    .prop_map(OwnedMessage::Fixed);
    prop_oneof![
        4 => fixed,
        1 => vec(any::<u8>(), 0..64).prop_map(OwnedMessage::Bitfield),
        1 => (any::<u32>(), any::<u32>(), vec(any::<u8>(), 0..300))
            .prop_map(|(index, begin, data)| OwnedMessage::Piece { index, begin, data }),
        1 => (any::<u8>(), vec(any::<u8>(), 0..64))
            .prop_map(|(id, payload)| OwnedMessage::Extended { id, payload }),
        1 => (any::<u8>().prop_filter("unknown id", |id| !KNOWN_IDS.contains(id)), vec(any::<u8>(), 0..64))
            .prop_map(|(id, payload)| OwnedMessage::Unknown { id, payload }),
    ]
}

fn encode_all(messages: &[OwnedMessage]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in messages {
        m.as_message().encode(&mut out);
    }
    out
}

/// Feeds `stream` in the given chunk sizes (cycled) to a framer with
/// `limits`; with `in_place`, whole messages at the front of each chunk
/// are first taken where they lie (`next_message_in`). Returns the
/// messages and the error that ended the stream, if any. The framer never
/// holds more than its capacity.
fn frame_stream(
    stream: &[u8],
    chunks: &[usize],
    limits: Limits,
    in_place: bool,
) -> (Vec<OwnedMessage>, Option<FrameError>) {
    let mut framer = Framer::with_limits(limits);
    let mut out = Vec::new();
    let mut rest = stream;
    let mut sizes = chunks.iter().copied().cycle();
    while !rest.is_empty() {
        let size = sizes.next().unwrap_or(1).clamp(1, rest.len());
        let mut chunk = &rest[..size];
        while !chunk.is_empty() {
            if in_place {
                match framer.next_message_in(chunk) {
                    Ok(Some((m, used))) => {
                        out.push(m.to_owned());
                        chunk = &chunk[used..];
                        continue;
                    }
                    Ok(None) => {}
                    Err(e) => return (out, Some(e)),
                }
            }
            let took = framer.feed(chunk);
            chunk = &chunk[took..];
            loop {
                match framer.next_message() {
                    Ok(Some(m)) => out.push(m.to_owned()),
                    Ok(None) => break,
                    Err(e) => return (out, Some(e)),
                }
            }
            assert!(took > 0, "framer stalled");
        }
        rest = &rest[size..];
        assert!(framer.buffered() <= framer.capacity());
    }
    (out, None)
}

/// Bytes that look like frames (small length prefixes, any id, payloads
/// that may not match), so the framer gets past the first prefix that
/// pure noise would make it refuse.
fn plausible_garbage() -> impl Strategy<Value = Vec<u8>> {
    vec(
        (0u32..40, any::<u8>(), vec(any::<u8>(), 0..40)).prop_map(|(len, id, payload)| {
            let mut frame = len.to_be_bytes().to_vec();
            frame.push(id);
            frame.extend(payload);
            frame
        }),
        0..60,
    )
    .prop_map(|frames| frames.concat())
}

fn socket_addr() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<u16>())
            .prop_map(|(ip, port)| SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), port)),
        (any::<[u8; 16]>(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::V6(SocketAddrV6::new(
            Ipv6Addr::from(ip),
            port,
            0,
            0
        ))),
    ]
}

/// PEX encodes IPv4 peers before IPv6 ones; generate them in that order.
fn family_sorted<T>(mut items: Vec<T>, addr: impl Fn(&T) -> SocketAddr) -> Vec<T> {
    items.sort_by_key(|item| addr(item).is_ipv6());
    items
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_message_round_trips(owned in message()) {
        let message = owned.as_message();
        let mut out = Vec::new();
        message.encode(&mut out);
        prop_assert_eq!(out.len(), message.encoded_len());
        prop_assert_eq!(decode_frame(&out, &Limits::default()).unwrap(), Status::Complete(message, out.len()));
        prop_assert_eq!(Message::decode(&out[4..]).unwrap(), message);
    }

    #[test]
    fn handshake_round_trips(reserved in any::<[u8; 8]>(), info_hash in any::<[u8; 20]>(), peer_id in any::<[u8; 20]>()) {
        let handshake = Handshake::new(Reserved(reserved), info_hash, peer_id);
        let bytes = handshake.to_bytes();
        prop_assert_eq!(Handshake::decode(&bytes).unwrap(), Status::Complete(handshake, 68));
    }

    #[test]
    fn framer_gives_the_same_messages_for_any_split(
        messages in vec(message(), 0..20),
        chunks in vec(1usize..100, 1..10),
    ) {
        let stream = encode_all(&messages);
        let whole = [stream.len().max(1)];
        for split in [&chunks[..], &[1], &whole] {
            for in_place in [false, true] {
                let (framed, err) = frame_stream(&stream, split, Limits::default(), in_place);
                prop_assert_eq!(&framed, &messages);
                prop_assert_eq!(err, None);
            }
        }
    }

    #[test]
    fn reading_in_place_gives_what_feeding_gives_even_for_garbage(
        bytes in prop_oneof![vec(any::<u8>(), 0..2000), plausible_garbage()],
        chunks in vec(1usize..300, 1..8),
    ) {
        let limits = Limits::for_torrent(100);
        prop_assert_eq!(
            frame_stream(&bytes, &chunks, limits, true),
            frame_stream(&bytes, &chunks, limits, false)
        );
    }

    #[test]
    fn framer_bytes_arbitrary_never_panic_or_overgrow(
        bytes in prop_oneof![vec(any::<u8>(), 0..2000), plausible_garbage()],
        chunks in vec(1usize..300, 1..8),
    ) {
        let mut framer = Framer::with_limits(Limits::for_torrent(100));
        let mut rest = &bytes[..];
        let mut sizes = chunks.iter().copied().cycle();
        'outer: while !rest.is_empty() {
            let size = sizes.next().unwrap_or(1).min(rest.len());
            let took = framer.feed(&rest[..size]);
            rest = &rest[took..];
            prop_assert!(framer.buffered() <= framer.capacity());
            loop {
                match framer.next_message() {
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(_) => break 'outer,
                }
            }
            if took == 0 {
                // Full of an incomplete frame cannot happen: capacity
                // holds two of the largest frames.
                prop_assert!(false, "framer stalled with {} bytes", framer.buffered());
            }
        }
    }

    #[test]
    fn decoders_never_panic_on_arbitrary_bytes(bytes in vec(any::<u8>(), 0..200), pieces in 0u32..2000) {
        let _ = Message::decode(&bytes);
        let _ = decode_frame(&bytes, &Limits::default());
        let _ = Handshake::decode(&bytes);
        let _ = Bitfield::from_wire(&bytes, pieces);
        let _ = ExtensionHandshake::decode(&bytes);
        let _ = MetadataMessage::decode(&bytes);
        let _ = PexMessage::decode(&bytes);
    }

    #[test]
    fn bitfield_round_trips_and_counts(pieces in 0u32..500, picks in vec(any::<u32>(), 0..100)) {
        let mut bits = Bitfield::new(pieces);
        let mut model = std::collections::BTreeSet::new();
        for p in picks {
            let p = if pieces == 0 { p } else { p % (pieces + 1) }; // sometimes out of range
            prop_assert_eq!(bits.set(p), p < pieces && model.insert(p));
        }
        prop_assert_eq!(bits.count() as usize, model.len());
        prop_assert_eq!(bits.iter_set().collect::<Vec<_>>(), model.iter().copied().collect::<Vec<_>>());
        let back = Bitfield::from_wire(bits.as_wire(), pieces).unwrap();
        prop_assert_eq!(&back, &bits);
        let mut wire = Message::Bitfield(bits.as_wire()).to_owned();
        if let OwnedMessage::Bitfield(b) = &mut wire {
            prop_assert_eq!(b.len() as u32, pieces.div_ceil(8));
        }
    }

    #[test]
    fn extension_handshake_round_trips(
        extensions in btree_map("[a-z_]{1,12}", any::<u8>(), 0..5),
        listen_port in any::<Option<u16>>(),
        client in proptest::option::of("[ -~]{0,20}"),
        your_ip in proptest::option::of(socket_addr().prop_map(|a| a.ip())),
        reqq in any::<Option<u32>>(),
        metadata_size in proptest::option::of(0u64..=i64::MAX as u64),
    ) {
        let handshake = ExtensionHandshake { extensions, listen_port, client, your_ip, reqq, metadata_size };
        let mut payload = Vec::new();
        handshake.encode(&mut payload);
        // Canonical: the bencode crate's strict decoder accepts it.
        prop_assert!(rustico_bencode::decode_strict(&payload).is_ok());
        prop_assert_eq!(ExtensionHandshake::decode(&payload).unwrap(), handshake);
    }

    #[test]
    fn metadata_messages_round_trip(kind in 0u8..3, piece in any::<u32>(), total_size in 0u64..=i64::MAX as u64, data in vec(any::<u8>(), 0..100)) {
        let message = match kind {
            0 => MetadataMessage::Request { piece },
            1 => MetadataMessage::Data { piece, total_size, data: &data },
            _ => MetadataMessage::Reject { piece },
        };
        let mut payload = Vec::new();
        message.encode(&mut payload);
        prop_assert_eq!(MetadataMessage::decode(&payload).unwrap(), message);
    }

    #[test]
    fn pex_round_trips(
        added in vec((socket_addr(), any::<u8>()), 0..20),
        dropped in vec(socket_addr(), 0..20),
    ) {
        let added = family_sorted(added, |(a, _)| *a)
            .into_iter()
            .map(|(addr, flags)| PexPeer { addr, flags: PexFlags(flags) })
            .collect();
        let message = PexMessage { added, dropped: family_sorted(dropped, |a| *a) };
        let mut payload = Vec::new();
        message.encode(&mut payload);
        prop_assert!(rustico_bencode::decode_strict(&payload).is_ok());
        prop_assert_eq!(PexMessage::decode(&payload).unwrap(), message);
    }
}

#[test]
fn every_two_way_split_of_a_mixed_stream() {
    let messages = vec![
        OwnedMessage::Fixed(Message::HaveAll),
        OwnedMessage::Piece {
            index: 1,
            begin: 0,
            data: (0..=255).collect(),
        },
        OwnedMessage::Fixed(Message::KeepAlive),
        OwnedMessage::Extended {
            id: 0,
            payload: b"d1:md6:ut_pexi1eee".to_vec(),
        },
        OwnedMessage::Fixed(Message::Request(BlockRequest {
            piece: 2,
            offset: 3,
            length: 4,
        })),
    ];
    let stream = encode_all(&messages);
    for cut in 0..=stream.len() {
        let mut framer = Framer::new();
        let mut seen = Vec::new();
        for part in [&stream[..cut], &stream[cut..]] {
            assert_eq!(framer.feed(part), part.len());
            while let Some(m) = framer.next_message().unwrap() {
                seen.push(m.to_owned());
            }
        }
        assert_eq!(seen, messages, "split at {cut}");
    }
}

#[test]
fn full_size_pieces_stream_through_a_bounded_buffer() {
    // Many maximum-size frames fed in one go: the framer takes what fits,
    // the caller drains and feeds the rest.
    let data = rustico_testkit::pseudo_random_bytes(7, BLOCK_LEN as usize);
    let mut stream = Vec::new();
    for i in 0..20 {
        Message::Piece {
            index: i,
            begin: 0,
            data: &data,
        }
        .encode(&mut stream);
    }
    let mut framer = Framer::new();
    let mut rest = &stream[..];
    let mut count = 0;
    while !rest.is_empty() {
        let took = framer.feed(rest);
        assert!(took > 0);
        rest = &rest[took..];
        assert!(framer.buffered() <= framer.capacity());
        while let Some(m) = framer.next_message().unwrap() {
            let Message::Piece {
                index, data: got, ..
            } = m
            else {
                panic!("{m:?}")
            };
            assert_eq!(index, count);
            assert_eq!(got, &data[..]);
            count += 1;
        }
    }
    assert_eq!(count, 20);
    assert!(
        framer.capacity() < 40 * 1024,
        "capacity {}",
        framer.capacity()
    );
}

#[test]
fn reading_into_spare_space_works_like_feed() {
    let mut stream = Vec::new();
    for i in 0..1000u32 {
        Message::Have(i).encode(&mut stream);
    }
    let mut framer = Framer::new();
    let mut rest = &stream[..];
    let mut next = 0;
    while !rest.is_empty() {
        let spare = framer.spare_mut();
        let n = spare.len().min(rest.len()).min(777);
        spare[..n].copy_from_slice(&rest[..n]);
        framer.commit(n);
        rest = &rest[n..];
        while let Some(m) = framer.next_message().unwrap() {
            assert_eq!(m, Message::Have(next));
            next += 1;
        }
    }
    assert_eq!(next, 1000);
}

#[test]
fn limits_can_change_mid_stream() {
    let mut framer = Framer::new();
    let big = vec![0u8; 100];
    let mut stream = Vec::new();
    Message::Bitfield(&big).encode(&mut stream);
    framer.feed(&stream[..50]);
    framer.set_limits(Limits::for_torrent(800));
    framer.feed(&stream[50..]);
    assert_eq!(
        framer.next_message().unwrap(),
        Some(Message::Bitfield(&big))
    );
    framer.set_limits(Limits::for_torrent(8));
    framer.feed(&stream);
    assert!(matches!(
        framer.next_message(),
        Err(FrameError::TooLongForId { id: 5, .. })
    ));
}
