//! `MetadataMessage::decode` (BEP 9 `ut_metadata`). Property: a decoded
//! message encodes to a payload that decodes to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rustico_peer_wire::MetadataMessage;

fuzz_target!(|data: &[u8]| {
    let Ok(message) = MetadataMessage::decode(data) else {
        return;
    };
    if let MetadataMessage::Data { data: piece, .. } = message {
        assert!(data.ends_with(piece));
    }
    let mut payload = Vec::new();
    message.encode(&mut payload);
    assert_eq!(MetadataMessage::decode(&payload), Ok(message));
});
