//! The side that dialled: sends Ya and step 3, finds the receiver's
//! `ENCRYPT(VC)` and reads `crypto_select`.

use std::time::Instant;

use super::crypto::{hash, skey_hash, Cipher, Entropy, KeyPair, Keys, PUBLIC_KEY_LEN};
use super::{
    array, xor20, CryptoMethod, CryptoSet, Cursor, Established, Lifecycle, MseConfig, MseError,
    Pad, Phase, Progress, Sync, INITIATOR_SYNC_LIMIT, MAX_IA_LEN, MAX_PAD_LEN, SEED_LEN,
};

/// Bytes after Yb in which `ENCRYPT(VC)` must end: PadB 512 + VC 8.
const WINDOW: usize = INITIATOR_SYNC_LIMIT - PUBLIC_KEY_LEN;

/// `crypto_select` (4) and `len(PadD)` (2).
const SELECT_LEN: usize = 6;

enum State {
    /// Collecting Yb.
    PublicKey(Vec<u8>),
    /// Searching for `ENCRYPT(VC)` in what follows Yb.
    Sync {
        window: Vec<u8>,
        marker: [u8; 8],
    },
    /// Reading `crypto_select` and `len(PadD)`.
    Select(Vec<u8>),
    /// Skipping PadD.
    PadD {
        left: usize,
    },
    Done,
}

/// The MSE handshake of a connection we dialled, in progress.
///
/// Created with the torrent's info-hash (SKEY) and the initial payload,
/// normally our 68-byte BitTorrent handshake; it queues Ya and PadA at
/// once. Drive it as the [module docs](super) show: after every
/// `handle_*` call, drain [`Initiator::poll_transmit`] and send it; when
/// [`Initiator::handle_input`] returns [`Progress::Done`], call
/// [`Initiator::finish`]. The bytes of that input past `used` are the
/// start of the peer's payload stream: decrypt them with the
/// [`Cipher`](super::Cipher) and give them to the framer.
///
/// Never returns [`Progress::NeedInfoHash`]. Memory: at most 96 + 520
/// bytes of the peer's input, and our own few hundred bytes to send.
pub struct Initiator {
    state: State,
    info_hash: [u8; 20],
    provide: CryptoSet,
    keypair: KeyPair,
    entropy: Entropy,
    initial_payload: Vec<u8>,
    keys: Option<Keys>,
    selected: Option<CryptoMethod>,
    life: Lifecycle,
}

impl std::fmt::Debug for Initiator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Initiator")
            .field("phase", &self.phase())
            .field("received", &self.life.received)
            .field("selected", &self.selected)
            .finish_non_exhaustive()
    }
}

impl Initiator {
    /// Starts a handshake for the torrent `info_hash`, offering
    /// `config.methods` and carrying `initial_payload` (at most
    /// [`MAX_IA_LEN`] bytes, may be empty), with randomness from `seed`
    /// (it must come from a cryptographic RNG; bytes 0..20 become the
    /// private key, which must not be all zero). Ya and PadA are queued
    /// for `poll_transmit`.
    pub fn new(
        info_hash: [u8; 20],
        config: &MseConfig,
        initial_payload: &[u8],
        seed: &[u8; SEED_LEN],
        now: Instant,
    ) -> Result<Initiator, MseError> {
        if config.methods.is_empty() {
            return Err(MseError::InvalidConfig {
                what: "no method to provide",
            });
        }
        if initial_payload.len() > MAX_IA_LEN {
            return Err(MseError::InvalidConfig {
                what: "initial payload longer than 68 bytes",
            });
        }
        let (mut entropy, private) = Entropy::new(seed)?;
        let keypair = KeyPair::new(&private)?;
        let mut out = Vec::with_capacity(PUBLIC_KEY_LEN + MAX_PAD_LEN);
        out.extend_from_slice(keypair.public());
        let pad_a = entropy.pad_len();
        entropy.fill(&mut out, pad_a);
        Ok(Initiator {
            state: State::PublicKey(Vec::with_capacity(PUBLIC_KEY_LEN)),
            info_hash,
            provide: config.methods,
            keypair,
            entropy,
            initial_payload: initial_payload.to_vec(),
            keys: None,
            selected: None,
            life: Lifecycle::new(out, now + config.timeout),
        })
    }

    /// Where the handshake is.
    pub fn phase(&self) -> Phase {
        match self.state {
            State::PublicKey(_) => Phase::PublicKey,
            State::Sync { .. } => Phase::Sync,
            State::Select(_) => Phase::Negotiation,
            State::PadD { .. } => Phase::Padding,
            State::Done => Phase::Done,
        }
    }

    /// Bytes of the peer's input held while waiting for the rest of a
    /// field or for the sync marker (bounded by 96 + 520).
    pub fn buffered_len(&self) -> usize {
        match &self.state {
            State::PublicKey(buf) | State::Select(buf) => buf.len(),
            State::Sync { window, .. } => window.len(),
            State::PadD { .. } | State::Done => 0,
        }
    }

    /// The bytes received from the peer so far that belonged to the
    /// handshake.
    pub fn received(&self) -> u64 {
        self.life.received
    }

    /// Appends what must be sent to the peer now to `out`.
    pub fn poll_transmit(&mut self, out: &mut Vec<u8>) {
        out.append(&mut self.life.out);
    }

    /// When [`Initiator::handle_timeout`] should be called, unless the
    /// handshake finished or failed.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.life.poll_timeout(matches!(self.state, State::Done))
    }

    /// Fails the handshake with [`MseError::Timeout`] if its deadline has
    /// passed; an early call is harmless.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), MseError> {
        let (done, phase) = (matches!(self.state, State::Done), self.phase());
        self.life.handle_timeout(now, done, phase)
    }

    /// The peer closed the connection: a typed error unless the handshake
    /// had finished.
    pub fn handle_eof(&mut self) -> Result<(), MseError> {
        let (done, phase) = (matches!(self.state, State::Done), self.phase());
        self.life.handle_eof(done, phase)
    }

    /// Bytes that arrived from the peer. Consumes every byte until the
    /// handshake completes and none after it. An error is final: later
    /// calls return it again.
    pub fn handle_input(&mut self, input: &[u8]) -> Result<Progress, MseError> {
        self.life.check()?;
        let mut cursor = Cursor::new(input, self.life.received);
        let result = self.advance(&mut cursor);
        self.life.finish_input(&cursor, result)
    }

    /// Turns the completed handshake into the negotiated [`Cipher`],
    /// appending anything still unsent to `out` (send it before any
    /// payload). [`MseError::Misuse`] before [`Progress::Done`].
    pub fn finish(mut self, out: &mut Vec<u8>) -> Result<Established, MseError> {
        if !matches!(self.state, State::Done) || self.life.error.is_some() {
            return Err(MseError::Misuse {
                what: "finish before the handshake completed",
            });
        }
        out.append(&mut self.life.out);
        let cipher = match (self.selected, self.keys) {
            (Some(CryptoMethod::Plaintext), _) => Cipher::Plaintext,
            (Some(CryptoMethod::Rc4), Some(keys)) => Cipher::Rc4 {
                send: keys.send,
                recv: keys.recv,
            },
            _ => {
                debug_assert!(false, "done without a method or keys");
                return Err(MseError::Internal {
                    what: "handshake done without a method or keys",
                });
            }
        };
        Ok(Established {
            cipher,
            info_hash: self.info_hash,
            initial_payload: Vec::new(),
        })
    }

    fn advance(&mut self, cursor: &mut Cursor<'_>) -> Result<Progress, MseError> {
        loop {
            match &mut self.state {
                State::PublicKey(buf) => {
                    if !cursor.fill(buf, PUBLIC_KEY_LEN) {
                        return Ok(Progress::NeedInput);
                    }
                    let yb: [u8; PUBLIC_KEY_LEN] = array(buf)?;
                    let marker = self.send_step3(&yb)?;
                    self.state = State::Sync {
                        window: Vec::with_capacity(WINDOW),
                        marker,
                    };
                }
                State::Sync { window, marker } => match cursor.sync(window, marker, WINDOW) {
                    Sync::Found => self.state = State::Select(Vec::with_capacity(SELECT_LEN)),
                    Sync::NeedMore => return Ok(Progress::NeedInput),
                    Sync::Exhausted => {
                        return Err(MseError::VcNotFound {
                            offset: cursor.offset(),
                        })
                    }
                },
                State::Select(buf) => {
                    let start = cursor.offset() - buf.len() as u64;
                    if !cursor.fill(buf, SELECT_LEN) {
                        return Ok(Progress::NeedInput);
                    }
                    let mut field: [u8; SELECT_LEN] = array(buf)?;
                    self.recv_keys()?.recv.apply(&mut field);
                    let [s0, s1, s2, s3, p0, p1] = field;
                    let selected = u32::from_be_bytes([s0, s1, s2, s3]);
                    let method = match selected {
                        0x01 => Some(CryptoMethod::Plaintext),
                        0x02 => Some(CryptoMethod::Rc4),
                        _ => None,
                    };
                    let Some(method) = method.filter(|m| self.provide.contains(*m)) else {
                        return Err(MseError::BadCryptoSelect {
                            selected,
                            provided: self.provide.bits(),
                            offset: start,
                        });
                    };
                    let len = u16::from_be_bytes([p0, p1]);
                    if usize::from(len) > MAX_PAD_LEN {
                        return Err(MseError::PadTooLong {
                            pad: Pad::D,
                            len,
                            offset: start + 4,
                        });
                    }
                    self.selected = Some(method);
                    self.state = State::PadD {
                        left: usize::from(len),
                    };
                }
                State::PadD { left } => {
                    let skipped = cursor.take(*left).len();
                    *left -= skipped;
                    let done = *left == 0;
                    self.recv_keys()?.recv.skip(skipped);
                    if !done {
                        return Ok(Progress::NeedInput);
                    }
                    self.state = State::Done;
                }
                State::Done => return Ok(Progress::Done { used: cursor.used }),
            }
        }
    }

    fn recv_keys(&mut self) -> Result<&mut Keys, MseError> {
        match self.keys.as_mut() {
            Some(keys) => Ok(keys),
            None => {
                debug_assert!(false, "keys are derived with Yb");
                Err(MseError::Internal {
                    what: "RC4 keys missing after the public key",
                })
            }
        }
    }

    /// Derives S and the keys from Yb, queues step 3 and returns the
    /// `ENCRYPT(VC)` to look for.
    fn send_step3(&mut self, yb: &[u8; PUBLIC_KEY_LEN]) -> Result<[u8; 8], MseError> {
        let secret = self.keypair.shared_secret(yb)?;
        let mut keys = Keys::derive(&secret, &self.info_hash, true)?;
        let mut marker = [0u8; 8];
        keys.recv.apply(&mut marker);

        self.life.out.extend_from_slice(&hash(&[b"req1", &secret]));
        self.life.out.extend_from_slice(&xor20(
            &skey_hash(&self.info_hash),
            &hash(&[b"req3", &secret]),
        ));
        let start = self.life.out.len();
        let pad_c = self.entropy.pad_len();
        self.life.out.extend_from_slice(&[0u8; 8]); // VC
        self.life
            .out
            .extend_from_slice(&self.provide.bits().to_be_bytes());
        self.life
            .out
            .extend_from_slice(&(pad_c as u16).to_be_bytes());
        self.life.out.resize(self.life.out.len() + pad_c, 0);
        self.life
            .out
            .extend_from_slice(&(self.initial_payload.len() as u16).to_be_bytes());
        self.life.out.extend_from_slice(&self.initial_payload);
        if let Some(tail) = self.life.out.get_mut(start..) {
            keys.send.apply(tail);
        }
        self.keys = Some(keys);
        Ok(marker)
    }
}
