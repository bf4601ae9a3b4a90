//! Known answers for the primitives, replays of recorded handshakes in
//! every two-way split, and crafted hostile messages that reach each
//! error.

use std::time::{Duration, Instant};

use crypto_bigint::U768;
use rc4::{KeyInit, Rc4, StreamCipher};
use sha1::{Digest, Sha1};

use super::crypto::{hash, KeyPair, Keys, Keystream, PUBLIC_KEY_LEN};
use super::*;

const INFO_HASH: [u8; 20] = [0x42; 20];

fn seed(n: u8) -> [u8; SEED_LEN] {
    let mut s = [0u8; SEED_LEN];
    for (i, b) in s.iter_mut().enumerate() {
        *b = n.wrapping_mul(31).wrapping_add(i as u8).wrapping_mul(197);
    }
    s
}

fn private(n: u64) -> [u8; 20] {
    let mut p = [0u8; 20];
    p[12..].copy_from_slice(&n.to_be_bytes());
    p
}

fn config(methods: CryptoSet, prefer_rc4: bool) -> MseConfig {
    MseConfig {
        methods,
        prefer_rc4,
        timeout: DEFAULT_TIMEOUT,
    }
}

fn bt_handshake() -> Vec<u8> {
    let mut out = Vec::new();
    crate::Handshake::new(
        crate::Reserved::supported(),
        INFO_HASH,
        *b"-RS0001-unit-tests00",
    )
    .encode(&mut out);
    out
}

// ---------------------------------------------------------------- known answers

#[test]
fn dh_public_keys_match_powers_of_two_computed_by_hand() {
    // 2^1 = 2.
    let mut two = [0u8; PUBLIC_KEY_LEN];
    two[95] = 2;
    assert_eq!(KeyPair::new(&private(1)).unwrap().public(), &two);
    // 2^767 < P: a single top bit.
    let mut top = [0u8; PUBLIC_KEY_LEN];
    top[0] = 0x80;
    assert_eq!(KeyPair::new(&private(767)).unwrap().public(), &top);
    // P < 2^768 < 2P, so 2^768 mod P = 2^768 - P: P's two's complement.
    let expected = crypto::prime().wrapping_neg().to_be_bytes();
    assert_eq!(KeyPair::new(&private(768)).unwrap().public(), &expected);
    // The largest private key still works (160 bits, all ones).
    let big = KeyPair::new(&[0xff; 20]).unwrap();
    assert_ne!(big.public(), &[0u8; PUBLIC_KEY_LEN]);
}

#[test]
fn dh_both_sides_derive_the_same_secret() {
    for (a, b) in [
        (seed(1), seed(2)),
        (seed(3), seed(4)),
        ([0xff; 32], [0x01; 32]),
    ] {
        let a = KeyPair::new(a[..20].try_into().unwrap()).unwrap();
        let b = KeyPair::new(b[..20].try_into().unwrap()).unwrap();
        let s_a = a.shared_secret(b.public()).unwrap();
        let s_b = b.shared_secret(a.public()).unwrap();
        assert_eq!(s_a, s_b);
        assert_ne!(s_a, *a.public());
    }
    // With x = 1 the secret is the peer's key itself.
    let one = KeyPair::new(&private(1)).unwrap();
    let other = KeyPair::new(&seed(9)[..20].try_into().unwrap()).unwrap();
    assert_eq!(one.shared_secret(other.public()).unwrap(), *other.public());
}

#[test]
fn dh_refuses_degenerate_public_keys() {
    let pair = KeyPair::new(&seed(1)[..20].try_into().unwrap()).unwrap();
    let p = crypto::prime();
    let mut one = [0u8; PUBLIC_KEY_LEN];
    one[95] = 1;
    let cases = [
        [0u8; PUBLIC_KEY_LEN],
        one,
        p.wrapping_sub(&U768::ONE).to_be_bytes(),
        p.to_be_bytes(),
        [0xff; PUBLIC_KEY_LEN],
    ];
    for y in cases {
        assert_eq!(pair.shared_secret(&y), Err(MseError::BadPublicKey));
    }
    let mut two = [0u8; PUBLIC_KEY_LEN];
    two[95] = 2;
    assert!(pair.shared_secret(&two).is_ok());
    assert!(pair
        .shared_secret(&p.wrapping_sub(&U768::from_u8(2)).to_be_bytes())
        .is_ok());
}

#[test]
fn rc4_keys_discard_1024_bytes_like_the_rc4_crate_used_directly() {
    let secret = KeyPair::new(&seed(5)[..20].try_into().unwrap())
        .unwrap()
        .shared_secret(
            KeyPair::new(&seed(6)[..20].try_into().unwrap())
                .unwrap()
                .public(),
        )
        .unwrap();
    let skey = [0x17; 20];
    for (initiator, send_label, recv_label) in [(true, b"keyA", b"keyB"), (false, b"keyB", b"keyA")]
    {
        let mut keys = Keys::derive(&secret, &skey, initiator).unwrap();
        for (ours, label) in [(&mut keys.send, send_label), (&mut keys.recv, recv_label)] {
            let mut h = Sha1::new();
            h.update(label);
            h.update(secret);
            h.update(skey);
            let key: [u8; 20] = h.finalize().into();
            let mut reference = Rc4::new_from_slice(&key).unwrap();
            let mut expected = vec![0u8; 1024 + 300];
            reference.apply_keystream(&mut expected);
            let mut got = vec![0u8; 300];
            ours.apply(&mut got[..100]);
            ours.skip(50);
            ours.apply(&mut got[150..]);
            assert_eq!(got[..100], expected[1024..1124]);
            assert_eq!(got[150..], expected[1174..]);
        }
    }
}

#[test]
fn skey_hash_is_sha1_of_req2_and_the_info_hash() {
    let mut h = Sha1::new();
    h.update(b"req2");
    h.update(INFO_HASH);
    let expected: [u8; 20] = h.finalize().into();
    assert_eq!(skey_hash(&INFO_HASH), expected);
}

#[test]
fn detect_decides_at_the_first_differing_byte() {
    let plain = bt_handshake();
    for n in 0..DETECT_LEN {
        assert_eq!(detect(&plain[..n]), None, "prefix of {n} bytes");
    }
    assert_eq!(detect(&plain[..DETECT_LEN]), Some(Incoming::Plaintext));
    assert_eq!(detect(&plain), Some(Incoming::Plaintext));
    for n in 0..DETECT_LEN {
        let mut other = plain[..=n].to_vec();
        other[n] ^= 0x20;
        assert_eq!(
            detect(&other),
            Some(Incoming::Encrypted),
            "byte {n} differs"
        );
    }
    // A real MSE stream.
    let mut ya = Vec::new();
    Initiator::new(
        INFO_HASH,
        &MseConfig::default(),
        &[],
        &seed(1),
        Instant::now(),
    )
    .unwrap()
    .poll_transmit(&mut ya);
    assert_eq!(detect(&ya), Some(Incoming::Encrypted));
}

// ---------------------------------------------------------------- replays

/// Both sides run to completion exchanging whole messages; returns what
/// each sent during the handshake (A's stream, B's stream) and the
/// results.
fn record(
    a_config: &MseConfig,
    b_config: &MseConfig,
    ia: &[u8],
) -> (Vec<u8>, Vec<u8>, Established, Established) {
    let now = Instant::now();
    let mut a = Initiator::new(INFO_HASH, a_config, ia, &seed(1), now).unwrap();
    let mut b = Responder::new(b_config, &seed(2), now).unwrap();
    let (mut a_stream, mut b_stream) = (Vec::new(), Vec::new());
    let (mut a_at, mut b_at) = (0, 0);
    let (mut a_done, mut b_done) = (false, false);
    for _ in 0..10 {
        a.poll_transmit(&mut a_stream);
        if !b_done {
            loop {
                match b.handle_input(&a_stream[b_at..]).unwrap() {
                    Progress::NeedInput => {
                        b_at = a_stream.len();
                        break;
                    }
                    Progress::NeedInfoHash { used, .. } => {
                        b_at += used;
                        b.select_from(&[INFO_HASH]).unwrap();
                    }
                    Progress::Done { used } => {
                        b_at += used;
                        b_done = true;
                        break;
                    }
                }
            }
        }
        b.poll_transmit(&mut b_stream);
        if !a_done {
            match a.handle_input(&b_stream[a_at..]).unwrap() {
                Progress::Done { used } => {
                    a_at += used;
                    a_done = true;
                }
                Progress::NeedInput => a_at = b_stream.len(),
                other => panic!("initiator returned {other:?}"),
            }
        }
        if a_done && b_done {
            break;
        }
    }
    assert!(a_done && b_done);
    assert_eq!((a_at, b_at), (b_stream.len(), a_stream.len()));
    let a = a.finish(&mut a_stream).unwrap();
    let b = b.finish(&mut b_stream).unwrap();
    (a_stream, b_stream, a, b)
}

#[test]
fn responder_gives_the_same_result_for_every_two_way_split() {
    let ia = bt_handshake();
    let (a_stream, b_stream, _, b_ref) = record(&MseConfig::default(), &MseConfig::default(), &ia);
    assert_eq!(b_ref.initial_payload, ia);
    for split in 0..=a_stream.len() {
        let mut b = Responder::new(&MseConfig::default(), &seed(2), Instant::now()).unwrap();
        let mut fed = 0;
        let mut out = Vec::new();
        for part in [&a_stream[..split], &a_stream[split..]] {
            let mut at = 0;
            loop {
                match b.handle_input(&part[at..]).unwrap() {
                    Progress::NeedInput => break,
                    Progress::NeedInfoHash { used, skey_hash: h } => {
                        assert_eq!(h, skey_hash(&INFO_HASH));
                        at += used;
                        b.select_info_hash(INFO_HASH).unwrap();
                    }
                    Progress::Done { used } => {
                        at += used;
                        assert_eq!(at, part.len(), "nothing follows the IA");
                        break;
                    }
                }
                assert!(b.buffered_len() <= RESPONDER_SYNC_LIMIT);
            }
            fed += part.len();
            b.poll_transmit(&mut out);
        }
        assert_eq!(fed, a_stream.len());
        let b = b.finish(&mut out).unwrap();
        assert_eq!(out, b_stream, "split at {split}");
        assert_eq!(b.initial_payload, ia);
        assert_eq!(b.cipher.method(), CryptoMethod::Rc4);
    }
}

#[test]
fn initiator_gives_the_same_result_for_every_two_way_split() {
    let (a_stream, b_stream, a_ref, _) = record(&MseConfig::default(), &MseConfig::default(), &[]);
    assert_eq!(a_ref.cipher.method(), CryptoMethod::Rc4);
    // The receiver's stream followed by payload: the split must leave the
    // payload to the caller, unconsumed.
    let mut wire = b_stream.clone();
    wire.extend_from_slice(b"payload after the handshake");
    for split in 0..=wire.len() {
        let mut a = Initiator::new(
            INFO_HASH,
            &MseConfig::default(),
            &[],
            &seed(1),
            Instant::now(),
        )
        .unwrap();
        let mut out = Vec::new();
        let mut leftover = Vec::new();
        let mut done = false;
        for part in [&wire[..split], &wire[split..]] {
            if done {
                leftover.extend_from_slice(part);
                continue;
            }
            match a.handle_input(part).unwrap() {
                Progress::NeedInput => {}
                Progress::Done { used } => {
                    done = true;
                    leftover.extend_from_slice(&part[used..]);
                }
                other => panic!("{other:?}"),
            }
            assert!(a.buffered_len() <= INITIATOR_SYNC_LIMIT);
            a.poll_transmit(&mut out);
        }
        assert!(done, "split at {split}");
        a.finish(&mut out).unwrap();
        assert_eq!(out, a_stream, "split at {split}");
        assert_eq!(leftover, b"payload after the handshake");
    }
}

#[test]
fn the_initial_payload_is_encrypted_even_when_plaintext_is_selected() {
    let ia = bt_handshake();
    let plain = config(CryptoSet::PLAINTEXT, false);
    let (a_stream, _, mut a, mut b) = record(&plain, &plain, &ia);
    assert_eq!(b.initial_payload, ia);
    assert!(!a_stream.windows(19).any(|w| w == crate::PROTOCOL));
    let mut msg = b"after".to_vec();
    a.cipher.encrypt_in_place(&mut msg);
    assert_eq!(msg, b"after", "plaintext after the handshake");
    b.cipher.decrypt_in_place(&mut msg);
    assert_eq!(msg, b"after");
}

#[test]
fn selection_follows_both_sides_settings() {
    let sets = [CryptoSet::PLAINTEXT, CryptoSet::RC4, CryptoSet::BOTH];
    for provide in sets {
        for accept in sets {
            for prefer_rc4 in [false, true] {
                let common = provide.bits() & accept.bits();
                let expected = match common {
                    0x03 if prefer_rc4 => Some(CryptoMethod::Rc4),
                    0x03 | 0x01 => Some(CryptoMethod::Plaintext),
                    0x02 => Some(CryptoMethod::Rc4),
                    _ => None,
                };
                let a_config = config(provide, true);
                let b_config = config(accept, prefer_rc4);
                if let Some(method) = expected {
                    let (_, _, a, b) = record(&a_config, &b_config, &[]);
                    assert_eq!(a.cipher.method(), method, "{provide:?} {accept:?}");
                    assert_eq!(b.cipher.method(), method);
                } else {
                    let err = hostile_responder_error(&a_config, &b_config, Instant::now());
                    assert!(
                        matches!(err, MseError::NoCommonMethod { provided, accepted, offset }
                            if provided == provide.bits() && accepted == accept.bits() && offset > 96),
                        "{err:?}"
                    );
                }
            }
        }
    }
}

/// Runs a real initiator against a responder until the responder fails.
fn hostile_responder_error(a_config: &MseConfig, b_config: &MseConfig, now: Instant) -> MseError {
    let mut a = Initiator::new(INFO_HASH, a_config, &[], &seed(1), now).unwrap();
    let mut b = Responder::new(b_config, &seed(2), now).unwrap();
    for _ in 0..4 {
        let mut wire = Vec::new();
        a.poll_transmit(&mut wire);
        let mut at = 0;
        loop {
            match b.handle_input(&wire[at..]) {
                Err(e) => return e,
                Ok(Progress::NeedInfoHash { used, .. }) => {
                    at += used;
                    b.select_info_hash(INFO_HASH).unwrap();
                }
                Ok(_) => break,
            }
        }
        let mut back = Vec::new();
        b.poll_transmit(&mut back);
        a.handle_input(&back).unwrap();
    }
    panic!("the responder did not fail")
}

// ---------------------------------------------------------------- hostile peers

/// A hand-made initiator: Ya from a known key, then step 3 with whatever
/// fields a test wants.
struct Forger {
    secret: [u8; PUBLIC_KEY_LEN],
    keys: Keys,
}

impl Forger {
    /// Plays the initiator against `b` up to its Yb.
    fn against(b: &mut Responder, pad_a: usize) -> (Forger, Vec<u8>) {
        let pair = KeyPair::new(&seed(7)[..20].try_into().unwrap()).unwrap();
        let mut wire = pair.public().to_vec();
        wire.resize(96 + pad_a, 0xab);
        assert_eq!(b.handle_input(&wire).unwrap(), Progress::NeedInput);
        let mut yb = Vec::new();
        b.poll_transmit(&mut yb);
        let secret = pair.shared_secret(yb[..96].try_into().unwrap()).unwrap();
        let keys = Keys::derive(&secret, &INFO_HASH, true).unwrap();
        (Forger { secret, keys }, wire)
    }

    /// Step 3 with chosen fields (encrypted as the spec says).
    fn step3(&mut self, vc: [u8; 8], provide: u32, pad_c: u16, ia_len: u16, ia: &[u8]) -> Vec<u8> {
        let mut out = hash(&[b"req1", &self.secret]).to_vec();
        out.extend_from_slice(&xor20(
            &skey_hash(&INFO_HASH),
            &hash(&[b"req3", &self.secret]),
        ));
        let mut plain = vc.to_vec();
        plain.extend_from_slice(&provide.to_be_bytes());
        plain.extend_from_slice(&pad_c.to_be_bytes());
        plain.resize(plain.len() + usize::from(pad_c).min(600), 0);
        plain.extend_from_slice(&ia_len.to_be_bytes());
        plain.extend_from_slice(ia);
        self.keys.send.apply(&mut plain);
        out.extend_from_slice(&plain);
        out
    }
}

fn responder() -> Responder {
    Responder::new(&MseConfig::default(), &seed(2), Instant::now()).unwrap()
}

/// Feeds a forged step 3 and returns the error.
fn forged_step3_error(vc: [u8; 8], provide: u32, pad_c: u16, ia_len: u16) -> MseError {
    let mut b = responder();
    let (mut forger, _) = Forger::against(&mut b, 0);
    let step3 = forger.step3(vc, provide, pad_c, ia_len, &[]);
    match b.handle_input(&step3).unwrap() {
        Progress::NeedInfoHash { used, .. } => {
            b.select_info_hash(INFO_HASH).unwrap();
            b.handle_input(&step3[used..]).unwrap_err()
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn forged_step3_fields_give_typed_errors_with_offsets() {
    // Step 3 starts at 96 (no PadA): req1 20, skey 20, VC at 136,
    // crypto_provide at 144, len(PadC) at 148, len(IA) after PadC.
    assert_eq!(
        forged_step3_error([1, 0, 0, 0, 0, 0, 0, 0], 0x02, 0, 0),
        MseError::BadVc { offset: 136 }
    );
    assert_eq!(
        forged_step3_error([0; 8], 0x02, 513, 0),
        MseError::PadTooLong {
            pad: Pad::C,
            len: 513,
            offset: 148
        }
    );
    assert_eq!(
        forged_step3_error([0; 8], 0x02, 0, 69),
        MseError::IaTooLong {
            len: 69,
            max: MAX_IA_LEN,
            offset: 150
        }
    );
    assert_eq!(
        forged_step3_error([0; 8], 0x02, 10, 0xffff),
        MseError::IaTooLong {
            len: 0xffff,
            max: MAX_IA_LEN,
            offset: 160
        }
    );
    assert_eq!(
        forged_step3_error([0; 8], 0x04 | 0x80, 0, 0),
        MseError::NoCommonMethod {
            provided: 0x84,
            accepted: 0x03,
            offset: 144
        }
    );
    // The largest legal values pass.
    let mut b = responder();
    let (mut forger, _) = Forger::against(&mut b, 512);
    let ia = bt_handshake();
    let step3 = forger.step3([0; 8], 0x03, 512, 68, &ia);
    let Progress::NeedInfoHash { used, .. } = b.handle_input(&step3).unwrap() else {
        panic!()
    };
    b.select_info_hash(INFO_HASH).unwrap();
    assert_eq!(
        b.handle_input(&step3[used..]).unwrap(),
        Progress::Done {
            used: step3.len() - used
        }
    );
    assert_eq!(b.finish(&mut Vec::new()).unwrap().initial_payload, ia);
}

#[test]
fn the_sync_hash_must_end_within_628_bytes() {
    // PadA of 512 is the most allowed: the hash ends at exactly 628.
    let mut b = responder();
    let (mut forger, _) = Forger::against(&mut b, 512);
    let step3 = forger.step3([0; 8], 0x02, 0, 0, &[]);
    assert!(matches!(
        b.handle_input(&step3).unwrap(),
        Progress::NeedInfoHash { used: 40, .. }
    ));

    // One byte more and it is refused, at 628, having buffered no more.
    let mut b = responder();
    let (mut forger, _) = Forger::against(&mut b, 513);
    let step3 = forger.step3([0; 8], 0x02, 0, 0, &[]);
    assert_eq!(
        b.handle_input(&step3),
        Err(MseError::SyncHashNotFound { offset: 628 })
    );
    assert!(b.buffered_len() <= RESPONDER_SYNC_LIMIT);
    // The error is final.
    assert_eq!(
        b.handle_input(b"more"),
        Err(MseError::SyncHashNotFound { offset: 628 })
    );
}

#[test]
fn garbage_after_a_valid_key_is_refused_within_the_bound_fed_any_way() {
    let garbage: Vec<u8> = (0..100_000u32).map(|i| (i * 7919 % 251) as u8).collect();
    // All at once: consumes only up to the bound.
    let mut b = responder();
    let (_, _) = Forger::against(&mut b, 0);
    assert_eq!(
        b.handle_input(&garbage),
        Err(MseError::SyncHashNotFound { offset: 628 })
    );
    assert_eq!(b.received(), 628);
    // One byte at a time: the buffer never exceeds the bound.
    let mut b = responder();
    Forger::against(&mut b, 0);
    let mut result = Ok(Progress::NeedInput);
    for byte in &garbage {
        result = b.handle_input(std::slice::from_ref(byte));
        assert!(b.buffered_len() <= WINDOW_B);
        if result.is_err() {
            break;
        }
    }
    assert_eq!(result, Err(MseError::SyncHashNotFound { offset: 628 }));

    // The initiator: a valid Yb then garbage.
    let mut a = Initiator::new(
        INFO_HASH,
        &MseConfig::default(),
        &[],
        &seed(1),
        Instant::now(),
    )
    .unwrap();
    let mut wire = KeyPair::new(&private(12345)).unwrap().public().to_vec();
    wire.extend_from_slice(&garbage);
    assert_eq!(
        a.handle_input(&wire),
        Err(MseError::VcNotFound { offset: 616 })
    );
    assert_eq!(a.received(), 616);
}

const WINDOW_B: usize = RESPONDER_SYNC_LIMIT - PUBLIC_KEY_LEN;

#[test]
fn bad_public_keys_are_refused_by_both_roles() {
    let mut b = responder();
    assert_eq!(b.handle_input(&[0u8; 96]), Err(MseError::BadPublicKey));
    let mut a = Initiator::new(
        INFO_HASH,
        &MseConfig::default(),
        &[],
        &seed(1),
        Instant::now(),
    )
    .unwrap();
    assert_eq!(a.handle_input(&[0xff; 200]), Err(MseError::BadPublicKey));
    assert_eq!(a.received(), 96);
}

/// A hand-made receiver: answers an initiator's Ya, then step 4 with
/// chosen fields.
fn forged_step4_error(provide: CryptoSet, select: u32, pad_d: u16) -> MseError {
    let now = Instant::now();
    let mut a = Initiator::new(INFO_HASH, &config(provide, true), &[], &seed(1), now).unwrap();
    let mut ya = Vec::new();
    a.poll_transmit(&mut ya);
    let pair = KeyPair::new(&seed(8)[..20].try_into().unwrap()).unwrap();
    let secret = pair.shared_secret(ya[..96].try_into().unwrap()).unwrap();
    let mut keys = Keys::derive(&secret, &INFO_HASH, false).unwrap();
    let mut wire = pair.public().to_vec();
    wire.extend_from_slice(&[0x5c; 37]); // PadB
    let mut step4 = vec![0u8; 8];
    step4.extend_from_slice(&select.to_be_bytes());
    step4.extend_from_slice(&pad_d.to_be_bytes());
    keys.send.apply(&mut step4);
    wire.extend_from_slice(&step4);
    a.handle_input(&wire).unwrap_err()
}

#[test]
fn forged_step4_fields_give_typed_errors_with_offsets() {
    // Yb 96 + PadB 37 + VC 8: crypto_select at 141, len(PadD) at 145.
    for (provide, select) in [
        (CryptoSet::BOTH, 0x03),
        (CryptoSet::BOTH, 0x00),
        (CryptoSet::BOTH, 0x04),
        (CryptoSet::RC4, 0x01),
        (CryptoSet::PLAINTEXT, 0x02),
    ] {
        assert_eq!(
            forged_step4_error(provide, select, 0),
            MseError::BadCryptoSelect {
                selected: select,
                provided: provide.bits(),
                offset: 141
            }
        );
    }
    assert_eq!(
        forged_step4_error(CryptoSet::BOTH, 0x02, 513),
        MseError::PadTooLong {
            pad: Pad::D,
            len: 513,
            offset: 145
        }
    );
}

#[test]
fn the_receiver_learns_the_torrent_only_from_its_caller() {
    let mut b = responder();
    let (mut forger, _) = Forger::against(&mut b, 3);
    let step3 = forger.step3([0; 8], 0x02, 0, 0, &[]);
    let Progress::NeedInfoHash {
        skey_hash: asked,
        used,
    } = b.handle_input(&step3).unwrap()
    else {
        panic!()
    };
    assert_eq!(asked, skey_hash(&INFO_HASH));
    // Asking again consumes nothing and asks the same.
    assert_eq!(
        b.handle_input(&step3[used..]).unwrap(),
        Progress::NeedInfoHash {
            skey_hash: asked,
            used: 0
        }
    );
    // A wrong torrent is refused without harm; the right one continues.
    assert_eq!(
        b.select_info_hash([0x43; 20]),
        Err(MseError::InfoHashMismatch)
    );
    assert_eq!(b.phase(), Phase::InfoHash);
    assert_eq!(b.select_from(&[[1; 20], INFO_HASH, [2; 20]]), Ok(INFO_HASH));
    assert_eq!(
        b.select_info_hash(INFO_HASH),
        Err(MseError::Misuse {
            what: "select_info_hash when no info-hash was asked for"
        })
    );
    assert!(matches!(
        b.handle_input(&step3[used..]).unwrap(),
        Progress::Done { .. }
    ));

    // No candidate matches: a final error pointing at the obfuscated hash
    // (after Ya 96 + PadA 3 + req1 20).
    let mut b = responder();
    let (mut forger, _) = Forger::against(&mut b, 3);
    let step3 = forger.step3([0; 8], 0x02, 0, 0, &[]);
    b.handle_input(&step3).unwrap();
    assert_eq!(
        b.select_from(&[[1; 20]]),
        Err(MseError::UnknownInfoHash { offset: 119 })
    );
    assert_eq!(
        b.handle_input(&step3),
        Err(MseError::UnknownInfoHash { offset: 119 })
    );
}

#[test]
fn silence_and_truncation_are_typed_errors() {
    let start = Instant::now();
    let mut b = Responder::new(&MseConfig::default(), &seed(2), start).unwrap();
    assert_eq!(b.poll_timeout(), Some(start + DEFAULT_TIMEOUT));
    assert_eq!(b.handle_timeout(start + Duration::from_secs(1)), Ok(()));
    b.handle_input(&[7; 50]).unwrap();
    assert_eq!(
        b.handle_timeout(start + DEFAULT_TIMEOUT),
        Err(MseError::Timeout {
            phase: Phase::PublicKey,
            received: 50
        })
    );
    assert_eq!(b.poll_timeout(), None);

    // A stream cut anywhere ends in UnexpectedEof naming the phase.
    let ia = bt_handshake();
    let (a_stream, b_stream, _, _) = record(&MseConfig::default(), &MseConfig::default(), &ia);
    let mut phases = std::collections::HashSet::new();
    for cut in 0..a_stream.len() {
        let mut b = responder();
        let mut at = 0;
        while let Ok(Progress::NeedInfoHash { used, .. }) = b.handle_input(&a_stream[at..cut]) {
            at += used;
            b.select_info_hash(INFO_HASH).unwrap();
        }
        let Err(MseError::UnexpectedEof { phase, received }) = b.handle_eof() else {
            panic!("cut at {cut}")
        };
        assert_eq!(received, cut as u64);
        phases.insert(phase);
    }
    assert_eq!(phases.len(), 6, "{phases:?}");
    for cut in 0..b_stream.len() {
        let mut a = Initiator::new(INFO_HASH, &MseConfig::default(), &ia, &seed(1), start).unwrap();
        assert_eq!(a.handle_input(&b_stream[..cut]), Ok(Progress::NeedInput));
        assert!(
            matches!(a.handle_eof(), Err(MseError::UnexpectedEof { received, .. }) if received == cut as u64)
        );
    }
}

#[test]
fn misuse_and_bad_settings_are_typed_errors() {
    let now = Instant::now();
    assert_eq!(
        Initiator::new(
            INFO_HASH,
            &config(CryptoSet::NONE, true),
            &[],
            &seed(1),
            now
        )
        .unwrap_err(),
        MseError::InvalidConfig {
            what: "no method to provide"
        }
    );
    assert!(matches!(
        Initiator::new(INFO_HASH, &MseConfig::default(), &[0; 69], &seed(1), now),
        Err(MseError::InvalidConfig { .. })
    ));
    assert!(matches!(
        Responder::new(&config(CryptoSet::NONE, true), &seed(1), now),
        Err(MseError::InvalidConfig { .. })
    ));
    let a = Initiator::new(INFO_HASH, &MseConfig::default(), &[], &seed(1), now).unwrap();
    assert!(matches!(
        a.finish(&mut Vec::new()),
        Err(MseError::Misuse { .. })
    ));
    let mut zero_key = [0x55; SEED_LEN];
    zero_key[..20].fill(0);
    assert!(matches!(
        Responder::new(&MseConfig::default(), &zero_key, now),
        Err(MseError::InvalidConfig { .. })
    ));
    let mut b = responder();
    assert!(matches!(
        b.select_from(&[INFO_HASH]),
        Err(MseError::Misuse { .. })
    ));
    assert!(matches!(
        b.finish(&mut Vec::new()),
        Err(MseError::Misuse { .. })
    ));
}

#[test]
fn keystream_debug_hides_the_state() {
    let ks = Keystream::new(b"key").unwrap();
    assert_eq!(format!("{ks:?}"), "Keystream { .. }");
}
