//! `Framer` fed the stream in arbitrary splits. Input: one byte choosing the
//! limits and the feeding API, four bytes whose nibbles are the chunk sizes
//! (cycled; 0 = the rest at once), then the stream. Property: the framer
//! yields exactly the messages and the error that `decode_frame` finds
//! walking the whole stream, and keeps the incomplete tail buffered.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rustico_peer_wire::{decode_frame, Framer, Limits, OwnedMessage, Status};

fuzz_target!(|data: &[u8]| {
    let Some((&[options, a, b, c, d], stream)) = data.split_first_chunk::<5>() else {
        return;
    };
    let limits = if options & 1 == 0 {
        Limits::default()
    } else {
        // Small limits: a small buffer that fills up and must be drained.
        Limits {
            max_block: 40,
            max_bitfield_bytes: u32::from(options >> 4),
            max_extended_payload: 60,
            max_unknown_payload: 8,
        }
    };
    // The reference: decode_frame over the whole stream.
    let (mut expected, mut pos) = (Vec::new(), 0);
    let expected_error = loop {
        match decode_frame(&stream[pos..], &limits) {
            Ok(Status::Complete(message, used)) => {
                expected.push(message.to_owned());
                pos += used;
            }
            Ok(Status::Incomplete) => break None,
            Err(err) => break Some(err.shifted(pos as u64)),
        }
    };
    let sizes = [
        a >> 4,
        a & 15,
        b >> 4,
        b & 15,
        c >> 4,
        c & 15,
        d >> 4,
        d & 15,
    ];
    let mut framer = Framer::with_limits(limits);
    let mut got: Vec<OwnedMessage> = Vec::new();
    let mut fed = 0;
    for size in sizes.iter().cycle() {
        if fed == stream.len() {
            break;
        }
        let rest = &stream[fed..];
        let chunk = &rest[..if *size == 0 {
            rest.len()
        } else {
            rest.len().min(usize::from(*size))
        }];
        let took = if options & 2 == 0 {
            framer.feed(chunk)
        } else {
            let spare = framer.spare_mut();
            let n = spare.len().min(chunk.len());
            spare[..n].copy_from_slice(&chunk[..n]);
            framer.commit(n);
            n
        };
        assert!(framer.buffered() <= framer.capacity());
        fed += took;
        let before = got.len();
        loop {
            match framer.next_message() {
                Ok(Some(message)) => got.push(message.to_owned()),
                Ok(None) => break,
                Err(err) => {
                    assert_eq!(Some(err), expected_error);
                    assert_eq!(got, expected[..got.len()]);
                    return;
                }
            }
        }
        assert!(
            took > 0 || got.len() > before,
            "the framer took nothing and gave nothing"
        );
    }
    assert_eq!(got, expected);
    assert_eq!(expected_error, None, "the framer missed an error");
    assert_eq!(framer.position(), pos as u64);
    assert_eq!(framer.pending(), &stream[pos..]);
});
