//! The side that accepted: answers Ya with Yb, finds `HASH('req1', S)`,
//! learns the torrent from its caller, selects a method and reads the
//! initial payload.

use std::time::Instant;

use super::crypto::{hash, skey_hash, Cipher, Entropy, KeyPair, Keys, PUBLIC_KEY_LEN};
use super::{
    array, xor20, CryptoMethod, CryptoSet, Cursor, Established, Lifecycle, MseConfig, MseError,
    Pad, Phase, Progress, Sync, MAX_IA_LEN, MAX_PAD_LEN, RESPONDER_SYNC_LIMIT, SEED_LEN,
};

/// Bytes after Ya in which `HASH('req1', S)` must end: PadA 512 + 20.
const WINDOW: usize = RESPONDER_SYNC_LIMIT - PUBLIC_KEY_LEN;

/// VC (8), `crypto_provide` (4), `len(PadC)` (2).
const PROVIDE_LEN: usize = 14;

enum State {
    /// Collecting Ya.
    PublicKey(Vec<u8>),
    /// Searching for `HASH('req1', S)` in what follows Ya.
    Sync {
        window: Vec<u8>,
        marker: [u8; 20],
    },
    /// Reading `HASH('req2', SKEY) xor HASH('req3', S)`.
    SkeyHash(Vec<u8>),
    /// Waiting for the caller to name the torrent.
    NeedInfoHash {
        skey_hash: [u8; 20],
        offset: u64,
    },
    /// Reading VC, `crypto_provide` and `len(PadC)`.
    Provide(Vec<u8>),
    /// Skipping PadC.
    PadC {
        left: usize,
    },
    /// Reading `len(IA)`.
    IaLen(Vec<u8>),
    /// Reading the initial payload.
    Ia {
        len: usize,
    },
    Done,
}

/// The MSE handshake of a connection we accepted, in progress.
///
/// Feed it the connection's first bytes (after [`detect`](super::detect)
/// said they are not a plaintext handshake). It answers Ya with Yb and
/// PadB, then stops with [`Progress::NeedInfoHash`]: the initiator names
/// its torrent only as `HASH('req2', SKEY)`, so the caller says which
/// torrent that is ([`Responder::select_info_hash`], or
/// [`Responder::select_from`] a list). It then selects a method, queues
/// its answer and reads the initial payload, which
/// [`Established::initial_payload`] returns (normally the initiator's
/// BitTorrent handshake: answer it with ours, encrypted).
///
/// Memory: at most 96 + 532 bytes of the peer's input, plus an initial
/// payload of at most [`MAX_IA_LEN`] bytes.
pub struct Responder {
    state: State,
    accept: CryptoSet,
    prefer_rc4: bool,
    keypair: KeyPair,
    entropy: Entropy,
    secret: Option<[u8; PUBLIC_KEY_LEN]>,
    info_hash: Option<[u8; 20]>,
    keys: Option<Keys>,
    selected: Option<CryptoMethod>,
    initial_payload: Vec<u8>,
    life: Lifecycle,
}

impl std::fmt::Debug for Responder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Responder")
            .field("phase", &self.phase())
            .field("received", &self.life.received)
            .field("selected", &self.selected)
            .finish_non_exhaustive()
    }
}

impl Responder {
    /// Waits for an initiator's Ya; selects among `config.methods`, with
    /// randomness from `seed` (from a cryptographic RNG; bytes 0..20
    /// become the private key, which must not be all zero).
    pub fn new(
        config: &MseConfig,
        seed: &[u8; SEED_LEN],
        now: Instant,
    ) -> Result<Responder, MseError> {
        if config.methods.is_empty() {
            return Err(MseError::InvalidConfig {
                what: "no method to accept",
            });
        }
        let (entropy, private) = Entropy::new(seed)?;
        Ok(Responder {
            state: State::PublicKey(Vec::with_capacity(PUBLIC_KEY_LEN)),
            accept: config.methods,
            prefer_rc4: config.prefer_rc4,
            keypair: KeyPair::new(&private)?,
            entropy,
            secret: None,
            info_hash: None,
            keys: None,
            selected: None,
            initial_payload: Vec::new(),
            life: Lifecycle::new(Vec::new(), now + config.timeout),
        })
    }

    /// Where the handshake is.
    pub fn phase(&self) -> Phase {
        match self.state {
            State::PublicKey(_) => Phase::PublicKey,
            State::Sync { .. } => Phase::Sync,
            State::SkeyHash(_) | State::NeedInfoHash { .. } => Phase::InfoHash,
            State::Provide(_) => Phase::Negotiation,
            State::PadC { .. } => Phase::Padding,
            State::IaLen(_) | State::Ia { .. } => Phase::InitialPayload,
            State::Done => Phase::Done,
        }
    }

    /// Bytes of the peer's input held while waiting for the rest of a
    /// field or for the sync marker (bounded by 96 + 532, or the initial
    /// payload's 68).
    pub fn buffered_len(&self) -> usize {
        match &self.state {
            State::PublicKey(buf)
            | State::SkeyHash(buf)
            | State::Provide(buf)
            | State::IaLen(buf) => buf.len(),
            State::Sync { window, .. } => window.len(),
            State::Ia { .. } => self.initial_payload.len(),
            State::NeedInfoHash { .. } | State::PadC { .. } | State::Done => 0,
        }
    }

    /// The bytes received from the peer so far that belonged to the
    /// handshake.
    pub fn received(&self) -> u64 {
        self.life.received
    }

    /// The method selected, once `crypto_provide` was read.
    pub fn selected(&self) -> Option<CryptoMethod> {
        self.selected
    }

    /// Appends what must be sent to the peer now to `out`.
    pub fn poll_transmit(&mut self, out: &mut Vec<u8>) {
        out.append(&mut self.life.out);
    }

    /// When [`Responder::handle_timeout`] should be called, unless the
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
    /// handshake stops for the info-hash or completes, and none after
    /// that. An error is final: later calls return it again.
    pub fn handle_input(&mut self, input: &[u8]) -> Result<Progress, MseError> {
        self.life.check()?;
        let mut cursor = Cursor::new(input, self.life.received);
        let result = self.advance(&mut cursor);
        self.life.finish_input(&cursor, result)
    }

    /// Answers [`Progress::NeedInfoHash`] with the torrent whose
    /// [`skey_hash`] was asked for. [`MseError::InfoHashMismatch`] (and
    /// no change) if it is another one; [`MseError::Misuse`] if no
    /// torrent was asked for.
    pub fn select_info_hash(&mut self, info_hash: [u8; 20]) -> Result<(), MseError> {
        let State::NeedInfoHash {
            skey_hash: asked, ..
        } = self.state
        else {
            return Err(MseError::Misuse {
                what: "select_info_hash when no info-hash was asked for",
            });
        };
        if skey_hash(&info_hash) != asked {
            return Err(MseError::InfoHashMismatch);
        }
        let Some(secret) = self.secret else {
            debug_assert!(false, "S is derived with Ya");
            return Err(self.life.fail(MseError::Internal {
                what: "shared secret missing after the public key",
            }));
        };
        self.keys = Some(Keys::derive(&secret, &info_hash, false)?);
        self.info_hash = Some(info_hash);
        self.state = State::Provide(Vec::with_capacity(PROVIDE_LEN));
        Ok(())
    }

    /// Answers [`Progress::NeedInfoHash`] from a list of the torrents we
    /// serve, returning the one asked for; [`MseError::UnknownInfoHash`]
    /// (final) when none is.
    pub fn select_from(&mut self, candidates: &[[u8; 20]]) -> Result<[u8; 20], MseError> {
        let State::NeedInfoHash {
            skey_hash: asked,
            offset,
        } = self.state
        else {
            return Err(MseError::Misuse {
                what: "select_from when no info-hash was asked for",
            });
        };
        match candidates.iter().find(|c| skey_hash(c) == asked) {
            Some(found) => {
                self.select_info_hash(*found)?;
                Ok(*found)
            }
            None => Err(self.life.fail(MseError::UnknownInfoHash { offset })),
        }
    }

    /// Turns the completed handshake into the negotiated [`Cipher`] and
    /// the initial payload, appending anything still unsent to `out`
    /// (send it before any payload). [`MseError::Misuse`] before
    /// [`Progress::Done`].
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
        let Some(info_hash) = self.info_hash else {
            debug_assert!(false, "done without an info-hash");
            return Err(MseError::Internal {
                what: "handshake done without an info-hash",
            });
        };
        Ok(Established {
            cipher,
            info_hash,
            initial_payload: self.initial_payload,
        })
    }

    fn keys(&mut self) -> Result<&mut Keys, MseError> {
        match self.keys.as_mut() {
            Some(keys) => Ok(keys),
            None => {
                debug_assert!(false, "keys are derived with the info-hash");
                Err(MseError::Internal {
                    what: "RC4 keys missing after the info-hash",
                })
            }
        }
    }

    fn advance(&mut self, cursor: &mut Cursor<'_>) -> Result<Progress, MseError> {
        loop {
            match &mut self.state {
                State::PublicKey(buf) => {
                    if !cursor.fill(buf, PUBLIC_KEY_LEN) {
                        return Ok(Progress::NeedInput);
                    }
                    let ya: [u8; PUBLIC_KEY_LEN] = array(buf)?;
                    let secret = self.keypair.shared_secret(&ya)?;
                    self.secret = Some(secret);
                    // Step 2: Yb and PadB.
                    self.life.out.extend_from_slice(self.keypair.public());
                    let pad_b = self.entropy.pad_len();
                    self.entropy.fill(&mut self.life.out, pad_b);
                    self.state = State::Sync {
                        window: Vec::with_capacity(WINDOW),
                        marker: hash(&[b"req1", &secret]),
                    };
                }
                State::Sync { window, marker } => match cursor.sync(window, marker, WINDOW) {
                    Sync::Found => self.state = State::SkeyHash(Vec::with_capacity(20)),
                    Sync::NeedMore => return Ok(Progress::NeedInput),
                    Sync::Exhausted => {
                        return Err(MseError::SyncHashNotFound {
                            offset: cursor.offset(),
                        })
                    }
                },
                State::SkeyHash(buf) => {
                    let offset = cursor.offset() - buf.len() as u64;
                    if !cursor.fill(buf, 20) {
                        return Ok(Progress::NeedInput);
                    }
                    let obfuscated: [u8; 20] = array(buf)?;
                    let Some(secret) = self.secret else {
                        debug_assert!(false, "S is derived with Ya");
                        return Err(MseError::Internal {
                            what: "shared secret missing after the public key",
                        });
                    };
                    let skey_hash = xor20(&obfuscated, &hash(&[b"req3", &secret]));
                    self.state = State::NeedInfoHash { skey_hash, offset };
                }
                State::NeedInfoHash { skey_hash, .. } => {
                    return Ok(Progress::NeedInfoHash {
                        skey_hash: *skey_hash,
                        used: cursor.used,
                    })
                }
                State::Provide(buf) => {
                    let start = cursor.offset() - buf.len() as u64;
                    if !cursor.fill(buf, PROVIDE_LEN) {
                        return Ok(Progress::NeedInput);
                    }
                    let mut field: [u8; PROVIDE_LEN] = array(buf)?;
                    self.keys()?.recv.apply(&mut field);
                    let [v0, v1, v2, v3, v4, v5, v6, v7, c0, c1, c2, c3, p0, p1] = field;
                    if [v0, v1, v2, v3, v4, v5, v6, v7] != [0; 8] {
                        return Err(MseError::BadVc { offset: start });
                    }
                    let provided = u32::from_be_bytes([c0, c1, c2, c3]);
                    let common = CryptoSet::from_bits(provided & self.accept.bits());
                    let method = if common == CryptoSet::BOTH {
                        if self.prefer_rc4 {
                            CryptoMethod::Rc4
                        } else {
                            CryptoMethod::Plaintext
                        }
                    } else if common == CryptoSet::RC4 {
                        CryptoMethod::Rc4
                    } else if common == CryptoSet::PLAINTEXT {
                        CryptoMethod::Plaintext
                    } else {
                        return Err(MseError::NoCommonMethod {
                            provided,
                            accepted: self.accept.bits(),
                            offset: start + 8,
                        });
                    };
                    let len = u16::from_be_bytes([p0, p1]);
                    if usize::from(len) > MAX_PAD_LEN {
                        return Err(MseError::PadTooLong {
                            pad: Pad::C,
                            len,
                            offset: start + 12,
                        });
                    }
                    self.selected = Some(method);
                    self.send_step4(method)?;
                    self.state = State::PadC {
                        left: usize::from(len),
                    };
                }
                State::PadC { left } => {
                    let skipped = cursor.take(*left).len();
                    *left -= skipped;
                    let done = *left == 0;
                    self.keys()?.recv.skip(skipped);
                    if !done {
                        return Ok(Progress::NeedInput);
                    }
                    self.state = State::IaLen(Vec::with_capacity(2));
                }
                State::IaLen(buf) => {
                    let start = cursor.offset() - buf.len() as u64;
                    if !cursor.fill(buf, 2) {
                        return Ok(Progress::NeedInput);
                    }
                    let mut field: [u8; 2] = array(buf)?;
                    self.keys()?.recv.apply(&mut field);
                    let len = u16::from_be_bytes(field);
                    if usize::from(len) > MAX_IA_LEN {
                        return Err(MseError::IaTooLong {
                            len,
                            max: MAX_IA_LEN,
                            offset: start,
                        });
                    }
                    self.initial_payload = Vec::with_capacity(usize::from(len));
                    self.state = State::Ia {
                        len: usize::from(len),
                    };
                }
                State::Ia { len } => {
                    let len = *len;
                    let before = self.initial_payload.len();
                    if !cursor.fill(&mut self.initial_payload, len) {
                        self.decrypt_ia_from(before)?;
                        return Ok(Progress::NeedInput);
                    }
                    self.decrypt_ia_from(before)?;
                    self.state = State::Done;
                }
                State::Done => return Ok(Progress::Done { used: cursor.used }),
            }
        }
    }

    /// Decrypts the initial payload bytes that arrived since `from`.
    fn decrypt_ia_from(&mut self, from: usize) -> Result<(), MseError> {
        let Some(keys) = self.keys.as_mut() else {
            debug_assert!(false, "keys are derived with the info-hash");
            return Err(MseError::Internal {
                what: "RC4 keys missing after the info-hash",
            });
        };
        if let Some(fresh) = self.initial_payload.get_mut(from..) {
            keys.recv.apply(fresh);
        }
        Ok(())
    }

    /// Queues step 4: `ENCRYPT(VC, crypto_select, len(PadD), PadD)`.
    fn send_step4(&mut self, method: CryptoMethod) -> Result<(), MseError> {
        let pad_d = self.entropy.pad_len();
        let start = self.life.out.len();
        self.life.out.extend_from_slice(&[0u8; 8]);
        self.life.out.extend_from_slice(&method.bit().to_be_bytes());
        self.life
            .out
            .extend_from_slice(&(pad_d as u16).to_be_bytes());
        self.life.out.resize(self.life.out.len() + pad_d, 0);
        let Some(keys) = self.keys.as_mut() else {
            debug_assert!(false, "keys are derived with the info-hash");
            return Err(MseError::Internal {
                what: "RC4 keys missing after the info-hash",
            });
        };
        if let Some(tail) = self.life.out.get_mut(start..) {
            keys.send.apply(tail);
        }
        Ok(())
    }
}
