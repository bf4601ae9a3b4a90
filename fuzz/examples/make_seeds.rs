//! Writes the seeds that our own encoders make: peer wire messages,
//! extension payloads, bitfields and a resume file. The seeds made by other
//! tools (torrents, magnets, tracker answers) come from `seeds/make_seeds.py`.
//!
//!     cargo run --manifest-path fuzz/Cargo.toml --example make_seeds
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};

use rustico_bencode::{encode, OwnedValue};
use rustico_peer_wire::{
    BlockRequest, ExtensionMap, Handshake, Message, MetadataMessage, PexFlags, PexMessage, PexPeer,
    Reserved,
};
use rustico_storage::{Bitfield, FileEntry, Layout, Options, Storage};

fn put(target: &str, name: &str, bytes: &[u8]) {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("seeds")
        .join(target);
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join(name), bytes).unwrap();
}

fn with(prefix: &[u8], bytes: &[u8]) -> Vec<u8> {
    [prefix, bytes].concat()
}

fn main() {
    let block = BlockRequest {
        piece: 3,
        offset: 16384,
        length: 16384,
    };
    let messages = [
        Message::KeepAlive,
        Message::Choke,
        Message::Unchoke,
        Message::Interested,
        Message::NotInterested,
        Message::Have(1312),
        Message::Bitfield(&[0xff, 0xfe, 0x80]),
        Message::Request(block),
        Message::Piece {
            index: 3,
            begin: 16384,
            data: b"block bytes",
        },
        Message::Cancel(block),
        Message::Port(6881),
        Message::SuggestPiece(7),
        Message::HaveAll,
        Message::HaveNone,
        Message::RejectRequest(block),
        Message::AllowedFast(9),
        Message::Extended {
            id: 1,
            payload: b"d8:msg_typei0e5:piecei0ee",
        },
        Message::Unknown {
            id: 99,
            payload: b"?",
        },
    ];
    let mut stream = Vec::new();
    for message in &messages {
        message.encode(&mut stream);
    }
    // Options 0: default limits, `feed`; 2: `spare_mut`; 1: small limits.
    put(
        "peer_wire_framer",
        "all-messages-small-chunks",
        &with(&[0, 0x13, 0x57, 0x9b, 0xdf], &stream),
    );
    put(
        "peer_wire_framer",
        "all-messages-spare-mut",
        &with(&[2, 0x40, 0x04, 0x81, 0x00], &stream),
    );
    put(
        "peer_wire_framer",
        "all-messages-small-limits",
        &with(&[0x31, 0xff, 0xff, 0xff, 0xff], &stream),
    );
    for (name, message) in [
        ("piece", messages[8]),
        ("bitfield", messages[6]),
        ("request", messages[7]),
        ("extended", messages[16]),
    ] {
        let mut frame = Vec::new();
        message.encode(&mut frame);
        put("peer_wire_decode_frame", name, &with(&[0], &frame));
    }

    let handshake = Handshake::new(Reserved::supported(), [0xaa; 20], *b"-RS0100-abcdefghijkl");
    put("peer_wire_handshake", "handshake", &handshake.to_bytes());
    put(
        "peer_wire_handshake",
        "handshake-then-messages",
        &with(&handshake.to_bytes(), &stream[..40]),
    );
    put(
        "peer_wire_handshake",
        "first-48-bytes",
        &handshake.to_bytes()[..48],
    );

    let mut map = ExtensionMap::new(&["ut_metadata", "ut_pex"]).handshake();
    map.metadata_size = Some(31_337);
    map.listen_port = Some(6881);
    map.client = Some("rustico 0.1".into());
    map.reqq = Some(250);
    map.your_ip = Some("127.0.0.1".parse().unwrap());
    let mut payload = Vec::new();
    map.encode(&mut payload);
    put("peer_wire_extension_handshake", "full", &payload);
    put("bencode_decode", "extension-handshake", &payload);
    map.your_ip = Some("::1".parse().unwrap());
    map.metadata_size = None;
    payload.clear();
    map.encode(&mut payload);
    put("peer_wire_extension_handshake", "ipv6", &payload);

    for (name, message) in [
        ("request", MetadataMessage::Request { piece: 0 }),
        (
            "data",
            MetadataMessage::Data {
                piece: 1,
                total_size: 16400,
                data: b"d6:lengthi3e4:name1:ae",
            },
        ),
        ("reject", MetadataMessage::Reject { piece: 2 }),
    ] {
        let mut payload = Vec::new();
        message.encode(&mut payload);
        put("peer_wire_metadata", name, &payload);
    }

    let pex = PexMessage {
        added: vec![
            PexPeer {
                addr: "127.0.0.1:6881".parse().unwrap(),
                flags: PexFlags(PexFlags::SEED | PexFlags::REACHABLE),
            },
            PexPeer {
                addr: "[::1]:51413".parse().unwrap(),
                flags: PexFlags(PexFlags::UTP),
            },
        ],
        dropped: vec![
            "127.0.0.2:6882".parse().unwrap(),
            "[::2]:6883".parse().unwrap(),
        ],
    };
    let mut payload = Vec::new();
    pex.encode(&mut payload);
    put("peer_wire_pex", "added-and-dropped", &payload);
    put("bencode_decode_strict", "pex", &payload);
    put(
        "bencode_tokens",
        "strict-depth-32-pex",
        &with(&[0x41], &payload),
    );

    // 21 pieces: three bytes, three spare bits (choice 3 = 24 - 21).
    let mut have = Bitfield::new(21);
    for piece in [0, 5, 20] {
        have.set(piece);
    }
    put(
        "peer_wire_bitfield",
        "21-pieces",
        &with(&[3], have.as_wire()),
    );
    put(
        "peer_wire_bitfield",
        "16-pieces-full",
        &with(&[0], Bitfield::full(16).as_wire()),
    );

    // The resume target's layout; flag 3: the harness writes the
    // fingerprint and the checksum, so the seed leaves the checksum off.
    let dir = std::env::temp_dir().join(format!("rustico-make-seeds-{}", std::process::id()));
    let files = vec![
        FileEntry::new(["t", "a.bin"], 100),
        FileEntry::padding(["t", ".pad", "28"], 28),
        FileEntry::new(["t", "c.bin"], 35),
    ];
    let layout = Layout::new(files, 8, vec![[0; 20]; 21]).unwrap();
    let storage = Storage::open(&dir, layout, Options::default()).unwrap();
    std::fs::create_dir_all(dir.join("t")).unwrap();
    std::fs::write(storage.file_path(0), [0u8; 100]).unwrap();
    let resume: PathBuf = dir.join("t.resume");
    storage.save_resume(&resume, &have).unwrap();
    let saved = std::fs::read(&resume).unwrap();
    put(
        "storage_resume",
        "saved",
        &with(&[3], &saved[..saved.len() - 20]),
    );
    put("storage_resume", "saved-with-checksum", &with(&[0], &saved));
    std::fs::remove_dir_all(&dir).unwrap();

    // A small bencode document with every kind, for the strict decoder.
    let doc = OwnedValue::dict([
        ("int", OwnedValue::from(-42)),
        (
            "list",
            OwnedValue::list([OwnedValue::from("a"), OwnedValue::from(0)]),
        ),
        (
            "nested",
            OwnedValue::dict([("empty", OwnedValue::list([]))]),
        ),
    ]);
    put("bencode_decode_strict", "every-kind", &encode(&doc));

    // The hostile peer's stream after the handshake (issue #20). Byte 0:
    // 1 fast, 2 extensions, 4 we serve metadata, 8 we unchoke, 16 write
    // every chunk; byte 1: chunk size (0: 256).
    let mut requests = Vec::new();
    for i in 0..600u32 {
        Message::Request(BlockRequest {
            piece: i % 40,
            offset: 0,
            length: 16384,
        })
        .encode(&mut requests);
    }
    put(
        "peer_wire_session",
        "request-flood",
        &with(&[1 | 8, 0], &requests),
    );
    let mut metadata = Vec::new();
    Message::Extended {
        id: 0,
        payload: b"d1:md11:ut_metadatai7eee",
    }
    .encode(&mut metadata);
    for piece in 0..40u32 {
        let mut ask = Vec::new();
        MetadataMessage::Request { piece: piece % 3 }.encode(&mut ask);
        Message::Extended {
            id: 1,
            payload: &ask,
        }
        .encode(&mut metadata);
    }
    put(
        "peer_wire_session",
        "metadata-flood",
        &with(&[1 | 2 | 4, 0], &metadata),
    );
    let mut flips = Vec::new();
    for _ in 0..50 {
        for m in [
            Message::Interested,
            Message::NotInterested,
            Message::Unchoke,
            Message::Choke,
            Message::HaveAll,
        ] {
            m.encode(&mut flips);
        }
    }
    put("peer_wire_session", "flips", &with(&[1 | 16, 7], &flips));
    put(
        "peer_wire_session",
        "all-messages",
        &with(&[1 | 2 | 8 | 16, 13], &stream),
    );
    put(
        "bencode_tokens",
        "lenient-every-kind",
        &with(&[0x10], &encode(&doc)),
    );
}
