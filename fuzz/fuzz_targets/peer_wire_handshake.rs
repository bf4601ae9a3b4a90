//! `Handshake::decode` and `Handshake::peek_info_hash`. Properties: a
//! decoded handshake encodes back to its 68 bytes, shorter input is
//! incomplete, and the peek agrees with the full decode.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rustico_peer_wire::{Handshake, Status, HANDSHAKE_LEN};

fuzz_target!(|data: &[u8]| {
    let peeked = Handshake::peek_info_hash(data);
    match Handshake::decode(data) {
        Ok(Status::Complete(handshake, used)) => {
            assert_eq!(used, HANDSHAKE_LEN);
            assert_eq!(handshake.to_bytes(), data[..HANDSHAKE_LEN]);
            assert_eq!(peeked, Ok(Some(handshake.info_hash)));
        }
        Ok(Status::Incomplete) => {
            assert!(data.len() < HANDSHAKE_LEN);
            assert_eq!(
                peeked.map(|hash| hash.is_some()),
                Ok(data.len() >= Handshake::INFO_HASH_END)
            );
        }
        Err(err) => assert_eq!(peeked, Err(err)),
    }
});
