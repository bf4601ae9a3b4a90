//! `ExtensionHandshake::decode` (BEP 10). Property: a decoded handshake
//! encodes to a payload that decodes to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rustico_peer_wire::ExtensionHandshake;

fuzz_target!(|data: &[u8]| {
    let Ok(handshake) = ExtensionHandshake::decode(data) else {
        return;
    };
    let mut payload = Vec::new();
    handshake.encode(&mut payload);
    assert_eq!(ExtensionHandshake::decode(&payload), Ok(handshake));
});
