//! The MSE/PE handshake (`mse::Responder` and `mse::Initiator`) against a
//! hostile peer's bytes, fed in chunks whose sizes the input picks.
//! Properties: no panic; an error is final (the next call returns one
//! too); what either side holds of the peer's input stays within the
//! handshake's bound (96 + 532 bytes, or a 68-byte initial payload); and
//! what it sends stays small (no amplification).
#![no_main]

use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use rustico_peer_wire::mse::{Initiator, MseConfig, Progress, Responder, SEED_LEN};

/// The most either side may hold of the peer's input.
const MAX_HELD: usize = 96 + 532 + 68;
/// The most either side may send: its public key, padding and answer.
const MAX_SENT: usize = 96 + 512 + 8 + 4 + 2 + 512 + 2 + 68;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let now = Instant::now();
    let seed = [7u8; SEED_LEN];
    let config = MseConfig::default();
    let chunk = usize::from(pick % 64) + 1;
    if pick & 0x80 == 0 {
        let Ok(mut r) = Responder::new(&config, &seed, now) else {
            return;
        };
        let mut sent = Vec::new();
        let mut failed = false;
        for piece in rest.chunks(chunk) {
            let outcome = r.handle_input(piece);
            r.poll_transmit(&mut sent);
            assert!(r.buffered_len() <= MAX_HELD, "holds {}", r.buffered_len());
            assert!(sent.len() <= MAX_SENT, "sent {}", sent.len());
            match outcome {
                Err(_) => failed = true,
                Ok(_) if failed => panic!("an error was not final"),
                Ok(Progress::NeedInfoHash { .. }) | Ok(Progress::Done { .. }) => return,
                Ok(_) => {}
            }
        }
    } else {
        let ia = [0x13u8; 68];
        let Ok(mut i) = Initiator::new([1; 20], &config, &ia, &seed, now) else {
            return;
        };
        let mut sent = Vec::new();
        i.poll_transmit(&mut sent);
        let first = sent.len();
        let mut failed = false;
        for piece in rest.chunks(chunk) {
            let outcome = i.handle_input(piece);
            i.poll_transmit(&mut sent);
            assert!(i.buffered_len() <= MAX_HELD, "holds {}", i.buffered_len());
            assert!(sent.len() <= first + MAX_SENT, "sent {}", sent.len());
            match outcome {
                Err(_) => failed = true,
                Ok(_) if failed => panic!("an error was not final"),
                Ok(Progress::Done { .. }) => return,
                Ok(_) => {}
            }
        }
    }
});
