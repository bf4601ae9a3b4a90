//! The primitives MSE is built from, all from other crates: the 768-bit
//! Diffie-Hellman group (crypto-bigint's constant-time Montgomery
//! exponentiation), SHA-1 (`sha1`) and RC4 (`rc4`). This file only
//! wires them together as the specification says.

use std::sync::OnceLock;

use crypto_bigint::modular::{MontyForm, MontyParams};
use crypto_bigint::{Odd, U192, U768};
use rc4::{KeyInit, Rc4, StreamCipher};
use sha1::{Digest, Sha1};

use super::{CryptoMethod, MseError};

/// Length of a Diffie-Hellman public key or shared secret on the wire.
pub const PUBLIC_KEY_LEN: usize = 96;

/// Bits of the private exponent (the specification asks for 160).
#[cfg(not(fuzzing))]
const PRIVATE_KEY_BITS: u32 = 160;

/// Fuzzing builds (`cargo fuzz` sets `--cfg fuzzing`) use only the low
/// 8 bits of the exponent. The fuzz targets exercise the handshake's
/// parsing and state, not crypto-bigint's arithmetic, and two 160-bit
/// exponentiations a run (about 0.7 ms) would cap a target at about
/// 1,500 runs a second. Keys stay in range and the handshake stays
/// complete: both sides still agree on the secret.
#[cfg(fuzzing)]
const PRIVATE_KEY_BITS: u32 = 8;

/// RC4 keystream bytes thrown away before the first byte is used.
pub(super) const RC4_DISCARD: usize = 1024;

/// The specification's prime: 2^768 - 2^704 - 1 + 2^64 * (2^638 * pi + 149686).
const PRIME_HEX: &str = "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A63A36210000000000090563";

pub(super) fn prime() -> U768 {
    U768::from_be_hex(PRIME_HEX)
}

/// The Montgomery parameters of the prime, computed once per process:
/// they cost more than a short exponentiation, and every handshake
/// needs them twice.
fn params() -> Result<MontyParams<{ U768::LIMBS }>, MseError> {
    static PARAMS: OnceLock<Option<MontyParams<{ U768::LIMBS }>>> = OnceLock::new();
    let params = PARAMS.get_or_init(|| {
        let odd: Option<Odd<U768>> = Odd::new(prime()).into();
        odd.map(MontyParams::new)
    });
    match params {
        Some(p) => Ok(*p),
        None => {
            debug_assert!(false, "the MSE prime is odd");
            Err(MseError::Internal {
                what: "the MSE prime is not odd",
            })
        }
    }
}

/// A Diffie-Hellman key pair: the 160-bit private exponent and
/// `2^x mod P`.
pub(super) struct KeyPair {
    private: U192,
    public: [u8; PUBLIC_KEY_LEN],
}

impl KeyPair {
    /// `private` is the caller's 20 random bytes, big-endian.
    pub(super) fn new(private: &[u8; 20]) -> Result<KeyPair, MseError> {
        if private == &[0u8; 20] {
            // 2^0 = 1: a public key every peer must refuse.
            return Err(MseError::InvalidConfig {
                what: "the seed's first 20 bytes (the private key) are all zero",
            });
        }
        let mut wide = [0u8; 24];
        wide[4..].copy_from_slice(private);
        let private = U192::from_be_slice(&wide);
        let base = MontyForm::new(&U768::from_u8(2), params()?);
        let public = base
            .pow_bounded_exp(&private, PRIVATE_KEY_BITS)
            .retrieve()
            .to_be_bytes();
        Ok(KeyPair { private, public })
    }

    pub(super) fn public(&self) -> &[u8; PUBLIC_KEY_LEN] {
        &self.public
    }

    /// The shared secret S = Y^x mod P, from the peer's public key `y`
    /// (received at stream offset 0, where errors point). Keys outside
    /// 2..=P-2 are refused: 0, 1 and P-1 would give a secret an
    /// eavesdropper knows.
    pub(super) fn shared_secret(
        &self,
        y: &[u8; PUBLIC_KEY_LEN],
    ) -> Result<[u8; PUBLIC_KEY_LEN], MseError> {
        let y = U768::from_be_slice(y);
        let p = prime();
        let two = U768::from_u8(2);
        if y < two || y > p.wrapping_sub(&two) {
            return Err(MseError::BadPublicKey);
        }
        let base = MontyForm::new(&y, params()?);
        Ok(base
            .pow_bounded_exp(&self.private, PRIVATE_KEY_BITS)
            .retrieve()
            .to_be_bytes())
    }
}

/// SHA-1 of the concatenated parts.
pub(super) fn hash(parts: &[&[u8]]) -> [u8; 20] {
    let mut h = Sha1::new();
    for part in parts {
        h.update(part);
    }
    h.finalize().into()
}

/// `HASH('req2', SKEY)`: what a receiver recovers from the initiator's
/// third message, for an info-hash `skey`.
///
/// A listener that serves many torrents can index them by this value and
/// answer [`Responder`](super::Responder)'s
/// [`Progress::NeedInfoHash`](super::Progress::NeedInfoHash) with a map
/// lookup.
///
/// ```
/// use rustico_peer_wire::mse::skey_hash;
///
/// let info_hash = [0xaa; 20];
/// assert_ne!(skey_hash(&info_hash), info_hash);
/// assert_eq!(skey_hash(&info_hash), skey_hash(&[0xaa; 20]));
/// ```
pub fn skey_hash(info_hash: &[u8; 20]) -> [u8; 20] {
    hash(&[b"req2", info_hash])
}

/// One direction of an RC4 stream: `Keystream::apply` XORs the next bytes
/// of keystream into a buffer, which encrypts or decrypts.
///
/// Made by the handshake with MSE's key (`SHA1('keyA' or 'keyB', S,
/// SKEY)`) after the first 1024 bytes of keystream were discarded, and
/// already advanced past the handshake bytes it protected.
pub struct Keystream {
    // Boxed: 258 bytes of state would make `Cipher::Plaintext` as large.
    rc4: Box<Rc4>,
}

impl std::fmt::Debug for Keystream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The cipher state is a secret: never print it.
        f.write_str("Keystream { .. }")
    }
}

impl Keystream {
    /// RC4 keyed with `key`, its first 1024 bytes discarded.
    pub(super) fn new(key: &[u8]) -> Result<Keystream, MseError> {
        let Ok(mut rc4) = Rc4::new_from_slice(key) else {
            debug_assert!(false, "RC4 takes keys of 1..=256 bytes");
            return Err(MseError::Internal {
                what: "RC4 refused the key length",
            });
        };
        let mut discard = [0u8; RC4_DISCARD];
        rc4.write_keystream(&mut discard);
        Ok(Keystream { rc4: Box::new(rc4) })
    }

    /// XORs the next `buf.len()` keystream bytes into `buf` (encrypting
    /// and decrypting are the same operation).
    pub fn apply(&mut self, buf: &mut [u8]) {
        self.rc4.apply_keystream(buf);
    }

    /// Advances the keystream by `n` bytes, as if `n` bytes had been
    /// decrypted and thrown away.
    pub(super) fn skip(&mut self, mut n: usize) {
        let mut scratch = [0u8; 256];
        while n > 0 {
            let step = n.min(scratch.len());
            if let Some(chunk) = scratch.get_mut(..step) {
                self.rc4.write_keystream(chunk);
            }
            n -= step;
        }
    }
}

/// The two RC4 streams of a connection from one side's point of view.
pub(super) struct Keys {
    pub(super) send: Keystream,
    pub(super) recv: Keystream,
}

impl Keys {
    /// The keys of the initiator (`initiator = true`, sends with keyA) or
    /// of the receiver (sends with keyB).
    pub(super) fn derive(
        secret: &[u8; PUBLIC_KEY_LEN],
        skey: &[u8; 20],
        initiator: bool,
    ) -> Result<Keys, MseError> {
        let key_a = hash(&[b"keyA", secret, skey]);
        let key_b = hash(&[b"keyB", secret, skey]);
        let (send, recv) = if initiator {
            (key_a, key_b)
        } else {
            (key_b, key_a)
        };
        Ok(Keys {
            send: Keystream::new(&send)?,
            recv: Keystream::new(&recv)?,
        })
    }
}

/// What protects the payload stream once the handshake is done: nothing
/// (the peer and we agreed on plaintext) or one RC4 stream each way.
///
/// A driver applies it under the framer: [`Cipher::decrypt_in_place`] on
/// bytes as they come off the socket, before they are fed to a
/// [`Framer`](crate::Framer); [`Cipher::encrypt_in_place`] on encoded
/// messages just before they are written. Every byte must pass exactly
/// once, in stream order. A driver that reads and writes on different
/// threads uses [`Cipher::split`].
#[derive(Debug)]
pub enum Cipher {
    /// The payload stream is sent as is (`crypto_select` = 0x01). Only
    /// the handshake itself, including the initial payload, was
    /// encrypted.
    Plaintext,
    /// RC4 both ways (`crypto_select` = 0x02).
    Rc4 {
        /// Encrypts what we send.
        send: Keystream,
        /// Decrypts what we receive.
        recv: Keystream,
    },
}

impl Cipher {
    /// The method the handshake selected.
    pub fn method(&self) -> CryptoMethod {
        match self {
            Cipher::Plaintext => CryptoMethod::Plaintext,
            Cipher::Rc4 { .. } => CryptoMethod::Rc4,
        }
    }

    /// Encrypts bytes we are about to send (nothing to do for
    /// plaintext).
    pub fn encrypt_in_place(&mut self, buf: &mut [u8]) {
        if let Cipher::Rc4 { send, .. } = self {
            send.apply(buf);
        }
    }

    /// Decrypts bytes we received (nothing to do for plaintext).
    pub fn decrypt_in_place(&mut self, buf: &mut [u8]) {
        if let Cipher::Rc4 { recv, .. } = self {
            recv.apply(buf);
        }
    }

    /// The two directions apart, `(send, recv)`, for a driver whose
    /// reader and writer are separate.
    pub fn split(self) -> (HalfCipher, HalfCipher) {
        match self {
            Cipher::Plaintext => (HalfCipher::Plaintext, HalfCipher::Plaintext),
            Cipher::Rc4 { send, recv } => (HalfCipher::Rc4(send), HalfCipher::Rc4(recv)),
        }
    }
}

/// One direction of a [`Cipher`], from [`Cipher::split`].
#[derive(Debug)]
pub enum HalfCipher {
    /// Bytes pass unchanged.
    Plaintext,
    /// RC4.
    Rc4(Keystream),
}

impl HalfCipher {
    /// Encrypts (send half) or decrypts (receive half) `buf` in place.
    pub fn apply(&mut self, buf: &mut [u8]) {
        if let HalfCipher::Rc4(stream) = self {
            stream.apply(buf);
        }
    }
}

/// The random bytes a handshake needs, all drawn from the caller's seed so
/// a test replays exactly: the private key is the seed's first 20 bytes;
/// padding lengths and PadA/PadB's contents come from RC4 keyed with its
/// last 12 bytes (a separate key, so nothing sent on the wire is derived
/// from the private key).
pub(super) struct Entropy {
    stream: Keystream,
}

impl Entropy {
    pub(super) fn new(seed: &[u8; super::SEED_LEN]) -> Result<(Entropy, [u8; 20]), MseError> {
        let (private, pad_key) = seed.split_at(20);
        let mut key = [0u8; 20];
        key.copy_from_slice(private);
        Ok((
            Entropy {
                stream: Keystream::new(pad_key)?,
            },
            key,
        ))
    }

    /// A padding length in 0..=512.
    pub(super) fn pad_len(&mut self) -> usize {
        let mut two = [0u8; 2];
        self.stream.rc4.write_keystream(&mut two);
        usize::from(u16::from_be_bytes(two)) % (super::MAX_PAD_LEN + 1)
    }

    /// Appends `len` random bytes to `out`.
    pub(super) fn fill(&mut self, out: &mut Vec<u8>, len: usize) {
        let start = out.len();
        out.resize(start + len, 0);
        if let Some(tail) = out.get_mut(start..) {
            self.stream.rc4.write_keystream(tail);
        }
    }
}
