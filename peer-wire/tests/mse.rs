//! Properties of the MSE handshake through the public API: both roles
//! against each other with the byte streams cut into arbitrary chunks,
//! every combination of provided and accepted methods, with and without
//! an initial payload, payload following the handshake in the same
//! chunk; and arbitrary bytes that never panic nor grow the state past
//! the specification's bounds.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use proptest::prelude::*;
use rustico_peer_wire::mse::{
    CryptoMethod, CryptoSet, Established, Initiator, MseConfig, MseError, Progress, Responder,
    DEFAULT_TIMEOUT, INITIATOR_SYNC_LIMIT, MAX_IA_LEN, RESPONDER_SYNC_LIMIT,
};

const INFO_HASH: [u8; 20] = [0xc3; 20];

enum Side<H> {
    Handshake(H),
    Done { est: Established, received: Vec<u8> },
}

/// Takes the next chunk (sizes cycle) off the front of `wire`.
fn next_chunk(wire: &mut Vec<u8>, sizes: &[usize], turn: &mut usize) -> Vec<u8> {
    let size = sizes[*turn % sizes.len()];
    *turn += 1;
    wire.drain(..size.min(wire.len())).collect()
}

struct Outcome {
    a: Established,
    b: Established,
    a_received: Vec<u8>,
    b_received: Vec<u8>,
}

/// Runs both roles to the end, each sending its payload as soon as its
/// handshake completes. `Err` is the first handshake error.
#[allow(clippy::too_many_arguments)]
fn run(
    a_config: &MseConfig,
    b_config: &MseConfig,
    a_seed: [u8; 32],
    b_seed: [u8; 32],
    ia: &[u8],
    a_payload: &[u8],
    b_payload: &[u8],
    a_sizes: &[usize],
    b_sizes: &[usize],
) -> Result<Outcome, MseError> {
    let now = Instant::now();
    let mut a = Side::Handshake(Initiator::new(INFO_HASH, a_config, ia, &a_seed, now)?);
    let mut b = Side::Handshake(Responder::new(b_config, &b_seed, now)?);
    let (mut a2b, mut b2a) = (Vec::new(), Vec::new());
    let (mut a_turn, mut b_turn) = (0, 0);
    for _ in 0..10_000 {
        // A speaks, B hears.
        if let Side::Handshake(hs) = &mut a {
            hs.poll_transmit(&mut a2b);
        }
        let chunk = next_chunk(&mut a2b, a_sizes, &mut a_turn);
        b = match b {
            Side::Handshake(mut hs) => {
                let mut at = 0;
                loop {
                    match hs.handle_input(&chunk[at..])? {
                        Progress::NeedInput => break Side::Handshake(hs),
                        Progress::NeedInfoHash { used, .. } => {
                            at += used;
                            hs.select_from(&[[0; 20], INFO_HASH])?;
                        }
                        Progress::Done { used } => {
                            assert!(hs.buffered_len() <= RESPONDER_SYNC_LIMIT);
                            let mut est = hs.finish(&mut b2a)?;
                            let mut received = chunk[at + used..].to_vec();
                            est.cipher.decrypt_in_place(&mut received);
                            let mut payload = b_payload.to_vec();
                            est.cipher.encrypt_in_place(&mut payload);
                            b2a.extend_from_slice(&payload);
                            break Side::Done { est, received };
                        }
                    }
                    assert!(hs.buffered_len() <= RESPONDER_SYNC_LIMIT);
                }
            }
            Side::Done {
                mut est,
                mut received,
            } => {
                let mut fresh = chunk;
                est.cipher.decrypt_in_place(&mut fresh);
                received.extend_from_slice(&fresh);
                Side::Done { est, received }
            }
        };
        // B speaks, A hears.
        if let Side::Handshake(hs) = &mut b {
            hs.poll_transmit(&mut b2a);
        }
        let chunk = next_chunk(&mut b2a, b_sizes, &mut b_turn);
        a = match a {
            Side::Handshake(mut hs) => match hs.handle_input(&chunk)? {
                Progress::NeedInput => {
                    assert!(hs.buffered_len() <= INITIATOR_SYNC_LIMIT);
                    Side::Handshake(hs)
                }
                Progress::Done { used } => {
                    let mut est = hs.finish(&mut a2b)?;
                    let mut received = chunk[used..].to_vec();
                    est.cipher.decrypt_in_place(&mut received);
                    let mut payload = a_payload.to_vec();
                    est.cipher.encrypt_in_place(&mut payload);
                    a2b.extend_from_slice(&payload);
                    Side::Done { est, received }
                }
                other => panic!("an initiator returned {other:?}"),
            },
            Side::Done {
                mut est,
                mut received,
            } => {
                let mut fresh = chunk;
                est.cipher.decrypt_in_place(&mut fresh);
                received.extend_from_slice(&fresh);
                Side::Done { est, received }
            }
        };
        let both_done = matches!((&a, &b), (Side::Done { .. }, Side::Done { .. }));
        if both_done && a2b.is_empty() && b2a.is_empty() {
            let (
                Side::Done {
                    est: a,
                    received: a_received,
                },
                Side::Done {
                    est: b,
                    received: b_received,
                },
            ) = (a, b)
            else {
                unreachable!("both sides are done")
            };
            return Ok(Outcome {
                a,
                b,
                a_received,
                b_received,
            });
        }
    }
    panic!("the handshake did not finish in 10 000 turns");
}

fn methods() -> impl Strategy<Value = CryptoSet> {
    prop_oneof![
        Just(CryptoSet::PLAINTEXT),
        Just(CryptoSet::RC4),
        Just(CryptoSet::BOTH)
    ]
}

fn config(methods: CryptoSet, prefer_rc4: bool) -> MseConfig {
    MseConfig {
        methods,
        prefer_rc4,
        timeout: DEFAULT_TIMEOUT,
    }
}

fn expected(provide: CryptoSet, accept: CryptoSet, prefer_rc4: bool) -> Option<CryptoMethod> {
    let common = CryptoSet::from_bits(provide.bits() & accept.bits());
    if common == CryptoSet::BOTH {
        Some(if prefer_rc4 {
            CryptoMethod::Rc4
        } else {
            CryptoMethod::Plaintext
        })
    } else if common == CryptoSet::RC4 {
        Some(CryptoMethod::Rc4)
    } else if common == CryptoSet::PLAINTEXT {
        Some(CryptoMethod::Plaintext)
    } else {
        None
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn both_roles_agree_under_any_chunking(
        a_seed in any::<[u8; 32]>(),
        b_seed in any::<[u8; 32]>(),
        provide in methods(),
        accept in methods(),
        prefer_rc4 in any::<bool>(),
        ia in prop_oneof![Just(Vec::new()), prop::collection::vec(any::<u8>(), 0..=MAX_IA_LEN)],
        a_payload in prop::collection::vec(any::<u8>(), 0..300),
        b_payload in prop::collection::vec(any::<u8>(), 0..300),
        a_sizes in prop::collection::vec(1usize..700, 1..12),
        b_sizes in prop::collection::vec(1usize..700, 1..12),
    ) {
        let outcome = run(
            &config(provide, true),
            &config(accept, prefer_rc4),
            a_seed,
            b_seed,
            &ia,
            &a_payload,
            &b_payload,
            &a_sizes,
            &b_sizes,
        );
        match expected(provide, accept, prefer_rc4) {
            Some(method) => {
                let outcome = outcome.unwrap();
                prop_assert_eq!(outcome.a.cipher.method(), method);
                prop_assert_eq!(outcome.b.cipher.method(), method);
                prop_assert_eq!(outcome.b.info_hash, INFO_HASH);
                prop_assert_eq!(&outcome.b.initial_payload, &ia);
                prop_assert!(outcome.a.initial_payload.is_empty());
                // Payload sent right behind the handshake arrives intact.
                prop_assert_eq!(&outcome.a_received, &b_payload);
                prop_assert_eq!(&outcome.b_received, &a_payload);
            }
            None => {
                let err = outcome.err().unwrap();
                prop_assert!(
                    matches!(err, MseError::NoCommonMethod { provided, .. } if provided == provide.bits()),
                    "{:?}", err
                );
            }
        }
    }

    #[test]
    fn rc4_hides_the_payload_and_plaintext_does_not(
        a_seed in any::<[u8; 32]>(),
        b_seed in any::<[u8; 32]>(),
        prefer_rc4 in any::<bool>(),
    ) {
        let text = b"interested, then a request for piece 7".to_vec();
        let mut out = run(
            &config(CryptoSet::BOTH, true),
            &config(CryptoSet::BOTH, prefer_rc4),
            a_seed, b_seed, &[], &text, &text, &[1000], &[1000],
        ).unwrap();
        let mut wire = text.clone();
        out.a.cipher.encrypt_in_place(&mut wire);
        prop_assert_eq!(wire != text, prefer_rc4);
        out.b.cipher.decrypt_in_place(&mut wire);
        prop_assert_eq!(wire, text);
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_stay_bounded(
        seed in any::<[u8; 32]>(),
        bytes in prop::collection::vec(any::<u8>(), 0..2000),
        sizes in prop::collection::vec(1usize..300, 1..8),
        ask_for in any::<bool>(),
    ) {
        let now = Instant::now();
        let mut b = Responder::new(&MseConfig::default(), &seed, now).unwrap();
        let mut a = Initiator::new(INFO_HASH, &MseConfig::default(), &[], &seed, now).unwrap();
        let mut at = 0;
        let mut turn = 0;
        let (mut a_failed, mut b_failed) = (false, false);
        while at < bytes.len() {
            let size = sizes[turn % sizes.len()];
            turn += 1;
            let chunk = &bytes[at..(at + size).min(bytes.len())];
            at += chunk.len();
            if !b_failed {
                match b.handle_input(chunk) {
                    Ok(Progress::NeedInfoHash { .. }) => {
                        if ask_for {
                            // A random hash names no torrent we have.
                            prop_assert!(b.select_from(&[INFO_HASH]).is_err());
                        }
                        b_failed = true;
                    }
                    Ok(_) => {}
                    Err(_) => b_failed = true,
                }
                prop_assert!(b.buffered_len() <= RESPONDER_SYNC_LIMIT);
                prop_assert!(b.received() <= RESPONDER_SYNC_LIMIT as u64);
            }
            if !a_failed {
                if a.handle_input(chunk).is_err() {
                    a_failed = true;
                }
                prop_assert!(a.buffered_len() <= INITIATOR_SYNC_LIMIT);
                prop_assert!(a.received() <= INITIATOR_SYNC_LIMIT as u64);
            }
        }
        // Random bytes never complete a handshake: a truncated stream is
        // a typed error.
        if !a_failed {
            prop_assert!(
                matches!(a.handle_eof(), Err(MseError::UnexpectedEof { .. })),
                "initiator at EOF"
            );
        }
        if !b_failed {
            prop_assert!(
                matches!(b.handle_eof(), Err(MseError::UnexpectedEof { .. })),
                "responder at EOF"
            );
        }
    }
}
