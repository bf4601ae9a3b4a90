//! `PexMessage::decode` (BEP 11 `ut_pex`). Properties: no more peers than
//! the payload has room for, and a decoded message encodes to a payload
//! that decodes to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rustico_peer_wire::PexMessage;

fuzz_target!(|data: &[u8]| {
    let Ok(message) = PexMessage::decode(data) else {
        return;
    };
    assert!(6 * (message.added.len() + message.dropped.len()) <= data.len());
    let mut payload = Vec::new();
    message.encode(&mut payload);
    assert_eq!(PexMessage::decode(&payload), Ok(message));
});
