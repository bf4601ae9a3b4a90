//! `decode_frame` and `Message::decode`. Properties: a decoded frame
//! encodes back to exactly its bytes, and the body alone decodes to the
//! same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rustico_peer_wire::{decode_frame, Limits, Message, Status};

fuzz_target!(|data: &[u8]| {
    let Some((&options, input)) = data.split_first() else {
        return;
    };
    let limits = match options {
        0..=127 => Limits::default(),
        _ => Limits::for_torrent(u32::from(options) * 8),
    };
    match decode_frame(input, &limits) {
        Ok(Status::Complete(message, used)) => {
            assert_eq!(message.encoded_len(), used);
            let mut out = Vec::new();
            message.encode(&mut out);
            assert_eq!(out, &input[..used]);
            assert_eq!(Message::decode(&input[4..used]), Ok(message));
            assert_eq!(message.to_owned().as_message(), message);
        }
        Ok(Status::Incomplete) => {}
        Err(err) => assert_eq!(err.offset(), 0),
    }
    let _ = Message::decode(input);
});
