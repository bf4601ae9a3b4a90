//! BEP 52 `hashes` messages end to end: a piece layer with its proof is
//! encoded, framed, decoded and checked against the file's `pieces root`
//! with `rustico_metainfo::merkle::verify_hashes`; a changed hash or
//! uncle fails the check.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use rustico_metainfo::merkle;
use rustico_peer_wire::{Framer, HashMessage, HashRequest};

#[test]
fn a_piece_layer_with_its_proof_checks_against_the_root() {
    // A file of 11 pieces of 64 KiB (4 blocks each): its piece layer
    // padded to 16 with pad hashes, the root over that.
    let data: Vec<u8> = (0..11 * 65536u32).map(|i| (i % 253) as u8).collect();
    let leaves = merkle::block_hashes(&data);
    let layer = merkle::piece_layer(&leaves, 65536).unwrap();
    let root = merkle::root_from_layer(&layer, 65536).unwrap();
    let pad = merkle::pad_hash(2);
    let mut padded = layer.clone();
    padded.resize(16, pad);
    // Nodes 8..12 (pieces 8, 9, 10 and a pad), with their uncles: the
    // subtree of nodes 12..16 (all pads), then that of nodes 0..8.
    let uncles = [
        merkle::root_padded(&padded[12..16], 4, pad),
        merkle::root_padded(&padded[..8], 8, pad),
    ];
    let request = HashRequest {
        pieces_root: root,
        base_layer: 2,
        index: 8,
        length: 4,
        proof_layers: 2,
    };
    let mut hashes = padded[8..12].to_vec();
    hashes.extend(uncles);
    let message = HashMessage::Hashes { request, hashes };
    let mut wire = Vec::new();
    message.encode(&mut wire);

    let mut framer = Framer::new();
    assert_eq!(framer.feed(&wire), wire.len());
    let framed = framer.next_message().unwrap().unwrap();
    let decoded = HashMessage::from_message(&framed).unwrap().unwrap();
    let (base, uncles) = decoded.split_hashes().unwrap();
    let req = decoded.request();
    assert_eq!(req.pieces_root, root);
    // The layer of 16 nodes is 4 levels below the root.
    assert!(merkle::verify_hashes(&root, 4, u64::from(req.index), base, uncles).unwrap());

    let mut bad = base.to_vec();
    bad[1][0] ^= 1;
    assert!(!merkle::verify_hashes(&root, 4, 8, &bad, uncles).unwrap());
    let mut bad_uncles = uncles.to_vec();
    bad_uncles[1][31] ^= 1;
    assert!(!merkle::verify_hashes(&root, 4, 8, base, &bad_uncles).unwrap());
}
