//! BEP 52 hash messages: `HashMessage::decode` on any id and payload.
//! Properties: ids other than 21-23 are not ours (`None`); a decoded
//! message encodes back to exactly the framed bytes it came from; a
//! `hashes` never holds more than `MAX_HASHES_PER_MESSAGE`, and its base
//! hashes and uncles add up.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rustico_peer_wire::{HashMessage, HASHES, HASH_REJECT, HASH_REQUEST};

const MAX_HASHES: usize = rustico_peer_wire::MAX_HASHES_PER_MESSAGE;

fuzz_target!(|data: &[u8]| {
    let Some((&id, payload)) = data.split_first() else {
        return;
    };
    let Some(decoded) = HashMessage::decode(id, payload) else {
        assert!(![HASH_REQUEST, HASHES, HASH_REJECT].contains(&id));
        return;
    };
    let Ok(message) = decoded else {
        return;
    };
    let mut wire = Vec::new();
    message.encode(&mut wire);
    assert_eq!(&wire[4..], data, "encode(decode(x)) != x");
    assert_eq!(wire.len(), message.encoded_len());
    if let HashMessage::Hashes { request, hashes } = &message {
        assert!(hashes.len() <= MAX_HASHES);
        let (base, uncles) = message.split_hashes().unwrap_or_default();
        assert_eq!(base.len(), request.length as usize);
        assert_eq!(base.len() + uncles.len(), hashes.len());
    }
});
