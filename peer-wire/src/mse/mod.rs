//! Message Stream Encryption (MSE, also called PE or protocol encryption):
//! the obfuscated handshake that Vuze and libtorrent speak before the
//! BitTorrent handshake, as a sans-IO state machine for both roles.
//!
//! ```
//! use std::time::Instant;
//! use rustico_peer_wire::mse::{
//!     CryptoMethod, Initiator, MseConfig, Policy, Progress, Responder,
//! };
//! use rustico_peer_wire::{Handshake, Reserved};
//!
//! let now = Instant::now();
//! let info_hash = [0x5a; 20];
//! let config = Policy::Prefer.mse_config().ok_or("Prefer speaks MSE")?;
//! // The BitTorrent handshake travels (encrypted) in the initial payload.
//! let mut bt = Vec::new();
//! Handshake::new(Reserved::supported(), info_hash, *b"-RS0001-mseexample00").encode(&mut bt);
//! // Randomness is an input (use a CSPRNG in real code): replays exactly.
//! let mut a = Initiator::new(info_hash, &config, &bt, &[1; 32], now)?;
//! let mut b = Responder::new(&config, &[2; 32], now)?;
//!
//! // Shuttle bytes until both are done; each side only says what to send.
//! let (mut a_to_b, mut b_to_a) = (Vec::new(), Vec::new());
//! let (mut a_done, mut b_done) = (false, false);
//! while !(a_done && b_done) {
//!     a.poll_transmit(&mut a_to_b);
//!     if !b_done {
//!         match b.handle_input(&a_to_b)? {
//!             Progress::NeedInput => a_to_b.clear(),
//!             Progress::NeedInfoHash { used, .. } => {
//!                 // The receiver learns which torrent from HASH('req2', SKEY).
//!                 a_to_b.drain(..used);
//!                 b.select_from(&[[0x11; 20], info_hash])?;
//!             }
//!             Progress::Done { used } => { a_to_b.drain(..used); b_done = true; }
//!         }
//!     }
//!     b.poll_transmit(&mut b_to_a);
//!     if !a_done {
//!         match a.handle_input(&b_to_a)? {
//!             Progress::Done { used } => { b_to_a.drain(..used); a_done = true; }
//!             _ => b_to_a.clear(),
//!         }
//!     }
//! }
//! let mut a = a.finish(&mut a_to_b)?;
//! let mut b = b.finish(&mut b_to_a)?;
//! assert_eq!(b.info_hash, info_hash);
//! assert_eq!(b.initial_payload, bt); // the initiator's BitTorrent handshake
//! assert_eq!(a.cipher.method(), CryptoMethod::Rc4); // Prefer selects RC4
//!
//! // From here on the cipher is a layer under the framer.
//! let mut wire = b"\x00\x00\x00\x01\x02".to_vec(); // `interested`
//! b.cipher.encrypt_in_place(&mut wire);
//! assert_ne!(wire, b"\x00\x00\x00\x01\x02");
//! a.cipher.decrypt_in_place(&mut wire);
//! assert_eq!(wire, b"\x00\x00\x00\x01\x02");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # The protocol
//!
//! A is the initiator (it dialled), B the receiver; SKEY is the torrent's
//! info-hash, S the Diffie-Hellman secret, `ENCRYPT` RC4 keyed with
//! `SHA1('keyA', S, SKEY)` (A to B) or `SHA1('keyB', S, SKEY)` (B to A)
//! with the first 1024 keystream bytes discarded, `VC` eight zero bytes.
//!
//! 1. A → B: Ya (96 bytes), PadA (0..=512 random bytes).
//! 2. B → A: Yb, PadB.
//! 3. A → B: `HASH('req1', S)`, `HASH('req2', SKEY) xor HASH('req3', S)`,
//!    `ENCRYPT(VC, crypto_provide, len(PadC), PadC, len(IA), IA)`.
//! 4. B → A: `ENCRYPT(VC, crypto_select, len(PadD), PadD)`, then the
//!    payload stream under the selected method.
//!
//! Padding lengths are random in 0..=512 (PadA/PadB are random bytes,
//! PadC/PadD zeros under RC4). The receiver finds step 3 by searching for
//! `HASH('req1', S)`, which must end within 628 bytes of the start of A's
//! stream (96 + 512 + 20); the initiator finds step 4 by searching for
//! `ENCRYPT(VC)`, which must end within 616 bytes of the start of B's
//! stream (96 + 512 + 8). Past those bounds the handshake fails
//! ([`MseError::SyncHashNotFound`], [`MseError::VcNotFound`]), so a state
//! machine never holds more than 96 + 532 bytes of its peer's input plus
//! an initial payload of at most [`MAX_IA_LEN`] bytes.
//!
//! The initial payload (IA) is always RC4-encrypted, whatever is
//! selected. It is limited to [`MAX_IA_LEN`] = 68 bytes, a BitTorrent
//! handshake, as libtorrent and aria2 do (both refuse more).
//!
//! # Using it
//!
//! - [`Initiator`] (we dialled) and [`Responder`] (we accepted) are the
//!   handshake in progress. Drive them with `handle_input` (bytes that
//!   arrived), `handle_timeout` and `handle_eof`; drain `poll_transmit`
//!   after each call and send what it gives; `poll_timeout` is the
//!   deadline. `handle_input` consumes only the handshake's own bytes:
//!   [`Progress::Done`]`{ used }` says where the payload stream starts in
//!   that input.
//! - A [`Responder`] does not know the torrent in advance: it stops with
//!   [`Progress::NeedInfoHash`] carrying `HASH('req2', SKEY)` (see
//!   [`skey_hash`]); answer with [`Responder::select_info_hash`] or
//!   [`Responder::select_from`], then feed the rest of the input.
//! - `finish` turns a completed handshake into [`Established`]: the
//!   [`Cipher`] (plaintext or RC4 both ways), the info-hash and the
//!   initial payload the receiver got.
//! - [`detect`] tells a plaintext BitTorrent handshake from anything else
//!   (possibly MSE) on an incoming connection, from at most
//!   [`DETECT_LEN`] = 20 bytes.
//! - [`Policy`] is the setting a driver exposes (`disable`, `prefer`,
//!   `require`); [`Policy::mse_config`] gives the handshake's
//!   [`MseConfig`].
//!
//! MSE obfuscates; it does not authenticate. Anyone who knows the
//! info-hash can be the other end, and RC4 is a weak cipher. It exists to
//! get past middleboxes that throttle recognisable BitTorrent traffic.

mod crypto;
mod initiator;
mod responder;

use std::time::{Duration, Instant};

pub use crypto::{skey_hash, Cipher, HalfCipher, Keystream, PUBLIC_KEY_LEN};
pub use initiator::Initiator;
pub use responder::Responder;

use crate::PROTOCOL;

/// Length of the seed a handshake draws its randomness from: 20 bytes of
/// private key, 12 bytes that key the padding generator.
pub const SEED_LEN: usize = 32;

/// Longest padding (PadA, PadB, PadC, PadD) the specification allows.
pub const MAX_PAD_LEN: usize = 512;

/// Longest initial payload accepted or sent: one BitTorrent handshake.
pub const MAX_IA_LEN: usize = 68;

/// The initiator's `ENCRYPT(VC)` must end within this many bytes of the
/// start of the receiver's stream (Yb 96 + PadB 512 + VC 8).
pub const INITIATOR_SYNC_LIMIT: usize = PUBLIC_KEY_LEN + MAX_PAD_LEN + 8;

/// The receiver's `HASH('req1', S)` must end within this many bytes of the
/// start of the initiator's stream (Ya 96 + PadA 512 + hash 20).
pub const RESPONDER_SYNC_LIMIT: usize = PUBLIC_KEY_LEN + MAX_PAD_LEN + 20;

/// At most this many first bytes of an incoming connection decide
/// [`detect`]: the length of `\x13BitTorrent protocol`.
pub const DETECT_LEN: usize = 20;

/// The default time a handshake may take before `handle_timeout` fails
/// it (libtorrent's `handshake_timeout` is 10 s; we allow for slow links).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);

/// What follows the handshake, as `crypto_provide`/`crypto_select` name
/// it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CryptoMethod {
    /// 0x01: the payload stream is not encrypted.
    Plaintext,
    /// 0x02: the payload stream is RC4-encrypted.
    Rc4,
}

impl CryptoMethod {
    /// The method's bit in `crypto_provide`/`crypto_select`.
    pub const fn bit(self) -> u32 {
        match self {
            CryptoMethod::Plaintext => 0x01,
            CryptoMethod::Rc4 => 0x02,
        }
    }
}

/// A set of [`CryptoMethod`]s: what an initiator provides, what a
/// receiver accepts.
///
/// ```
/// use rustico_peer_wire::mse::{CryptoMethod, CryptoSet};
///
/// assert_eq!(CryptoSet::BOTH.bits(), 0x03);
/// assert!(CryptoSet::RC4.contains(CryptoMethod::Rc4));
/// assert_eq!(CryptoSet::from_bits(0xff), CryptoSet::BOTH); // unknown bits dropped
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CryptoSet(u32);

impl CryptoSet {
    /// No method.
    pub const NONE: CryptoSet = CryptoSet(0);
    /// Plaintext only.
    pub const PLAINTEXT: CryptoSet = CryptoSet(0x01);
    /// RC4 only.
    pub const RC4: CryptoSet = CryptoSet(0x02);
    /// Plaintext and RC4.
    pub const BOTH: CryptoSet = CryptoSet(0x03);

    /// The methods named by `bits`; bits this crate does not know are
    /// dropped.
    pub const fn from_bits(bits: u32) -> CryptoSet {
        CryptoSet(bits & 0x03)
    }

    /// The set as `crypto_provide` bits.
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// Whether `method` is in the set.
    pub const fn contains(self, method: CryptoMethod) -> bool {
        self.0 & method.bit() != 0
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// The encryption setting a driver offers its user, as libtorrent's
/// `out_enc_policy`/`in_enc_policy`.
///
/// | policy | we dial | `crypto_provide` | we select (receiver) | incoming plaintext handshake | after a failed MSE dial |
/// |---|---|---|---|---|---|
/// | `Disable` | plaintext | — | — (MSE refused) | accepted | — |
/// | `Prefer` (default) | MSE | RC4 + plaintext | RC4 if provided, else plaintext | accepted | may redial in plaintext |
/// | `Require` | MSE | RC4 | RC4 only | refused | give up |
///
/// The default offers both methods and selects RC4 when the initiator
/// provides it: a peer that accepts either gets an encrypted stream.
/// (libtorrent 2.0's defaults also provide both, but with `prefer_rc4`
/// off its receiver selects plaintext when both are provided; its
/// `allowed_enc_level` is our [`MseConfig::methods`].)
///
/// ```
/// use rustico_peer_wire::mse::{CryptoSet, Incoming, Policy};
///
/// let policy = Policy::default();
/// assert_eq!(policy, Policy::Prefer);
/// assert_eq!(policy.mse_config().map(|c| c.methods), Some(CryptoSet::BOTH));
/// assert!(policy.accepts(Incoming::Plaintext) && policy.plaintext_fallback());
/// assert!(!Policy::Require.accepts(Incoming::Plaintext));
/// assert!(Policy::Disable.mse_config().is_none());
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Policy {
    /// Never encrypt: dial with a plain BitTorrent handshake and refuse
    /// incoming MSE.
    Disable,
    /// Encrypt when the peer can: dial with MSE providing RC4 and
    /// plaintext, select RC4; accept plaintext peers too.
    #[default]
    Prefer,
    /// Only RC4-encrypted connections, both ways.
    Require,
}

impl Policy {
    /// The handshake settings for this policy, or `None` for
    /// [`Policy::Disable`] (no MSE at all).
    pub fn mse_config(self) -> Option<MseConfig> {
        match self {
            Policy::Disable => None,
            Policy::Prefer => Some(MseConfig {
                methods: CryptoSet::BOTH,
                prefer_rc4: true,
                timeout: DEFAULT_TIMEOUT,
            }),
            Policy::Require => Some(MseConfig {
                methods: CryptoSet::RC4,
                prefer_rc4: true,
                timeout: DEFAULT_TIMEOUT,
            }),
        }
    }

    /// Whether outgoing connections start with MSE.
    pub fn dial_encrypted(self) -> bool {
        self != Policy::Disable
    }

    /// Whether a driver whose MSE dial failed (the peer closed or sent
    /// garbage: it may not speak MSE) may dial again with a plain
    /// BitTorrent handshake.
    pub fn plaintext_fallback(self) -> bool {
        self == Policy::Prefer
    }

    /// Whether an incoming connection of this kind (see [`detect`]) is
    /// accepted.
    pub fn accepts(self, incoming: Incoming) -> bool {
        !matches!(
            (self, incoming),
            (Policy::Disable, Incoming::Encrypted) | (Policy::Require, Incoming::Plaintext)
        )
    }
}

/// Settings of one handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MseConfig {
    /// Initiator: the `crypto_provide` it sends. Receiver: the methods it
    /// may select. Must not be empty.
    pub methods: CryptoSet,
    /// Receiver: when the initiator provides both methods and both are in
    /// `methods`, select RC4 (`true`) or plaintext (`false`).
    pub prefer_rc4: bool,
    /// How long the whole handshake may take (see `poll_timeout`).
    pub timeout: Duration,
}

impl Default for MseConfig {
    /// [`Policy::Prefer`]'s settings.
    fn default() -> MseConfig {
        MseConfig {
            methods: CryptoSet::BOTH,
            prefer_rc4: true,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// What an incoming connection starts with, from [`detect`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Incoming {
    /// `\x13BitTorrent protocol`: a plain BitTorrent handshake.
    Plaintext,
    /// Anything else: hand the bytes to a [`Responder`] (it rejects
    /// garbage soon enough).
    Encrypted,
}

/// Tells a plaintext BitTorrent handshake from MSE on an incoming
/// connection, from its first bytes (which it does not consume: give the
/// same bytes to the handshake decoder or the [`Responder`]).
///
/// Returns `None` while every byte so far matches
/// `\x13BitTorrent protocol` and fewer than [`DETECT_LEN`] = 20 bytes are
/// there; it decides at the first byte that differs, so MSE (whose first
/// byte is random) is usually known from one byte. A random Ya looks like
/// the plaintext prefix with probability 2^-160.
///
/// ```
/// use rustico_peer_wire::mse::{detect, Incoming};
///
/// assert_eq!(detect(b"\x13BitTorrent protocol\0\0"), Some(Incoming::Plaintext));
/// assert_eq!(detect(b"\x13BitTor"), None); // could still be either
/// assert_eq!(detect(&[0x8f, 0x21]), Some(Incoming::Encrypted));
/// assert_eq!(detect(b""), None);
/// ```
pub fn detect(first_bytes: &[u8]) -> Option<Incoming> {
    let prefix = [19u8].iter().chain(PROTOCOL.iter());
    let mut matched = 0;
    for (got, want) in first_bytes.iter().zip(prefix) {
        if got != want {
            return Some(Incoming::Encrypted);
        }
        matched += 1;
    }
    (matched == DETECT_LEN).then_some(Incoming::Plaintext)
}

/// How far a handshake got, named in errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Waiting for the peer's 96-byte public key.
    PublicKey,
    /// Searching for the synchronisation marker after the peer's key.
    Sync,
    /// Receiver: reading the obfuscated info-hash, or waiting for the
    /// caller to name the torrent.
    InfoHash,
    /// Reading VC and `crypto_provide`/`crypto_select` with a pad length.
    Negotiation,
    /// Skipping PadC (receiver) or PadD (initiator).
    Padding,
    /// Receiver: reading the initial payload and its length.
    InitialPayload,
    /// The handshake is complete.
    Done,
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Phase::PublicKey => "the public key",
            Phase::Sync => "synchronisation",
            Phase::InfoHash => "the info-hash",
            Phase::Negotiation => "the method negotiation",
            Phase::Padding => "padding",
            Phase::InitialPayload => "the initial payload",
            Phase::Done => "the payload stream",
        })
    }
}

/// Which padding a length belonged to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Pad {
    /// PadC, in the initiator's third message.
    C,
    /// PadD, in the receiver's answer.
    D,
}

/// What `handle_input` did with the bytes it was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Progress {
    /// Every byte was consumed and more are needed (send what
    /// `poll_transmit` gives first).
    NeedInput,
    /// Receiver only: the initiator asked for the torrent whose
    /// [`skey_hash`] is `skey_hash`. The first `used` bytes were
    /// consumed; call [`Responder::select_info_hash`] or
    /// [`Responder::select_from`], then feed the rest.
    NeedInfoHash {
        /// `HASH('req2', SKEY)` of the torrent asked for.
        skey_hash: [u8; 20],
        /// Bytes of this input consumed.
        used: usize,
    },
    /// The handshake is complete: the first `used` bytes of this input
    /// were its last; the rest is the payload stream, under the
    /// negotiated cipher. Drain `poll_transmit`, then call `finish`.
    Done {
        /// Bytes of this input consumed.
        used: usize,
    },
}

/// A completed handshake, from `finish`.
#[derive(Debug)]
pub struct Established {
    /// What protects the payload stream from now on.
    pub cipher: Cipher,
    /// The torrent (SKEY): the initiator's own, or the one the receiver
    /// selected.
    pub info_hash: [u8; 20],
    /// Receiver: the initial payload the initiator sent (decrypted), as a
    /// prefix of the payload stream (normally its BitTorrent handshake);
    /// empty for the initiator and when none was sent.
    pub initial_payload: Vec<u8>,
}

/// Why a handshake failed. Offsets count bytes received from the peer,
/// from the first byte of the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MseError {
    /// The peer's public key is 0, 1, P-1 or not below P.
    #[error("the peer's Diffie-Hellman public key (bytes 0..96) is outside 2..=P-2")]
    BadPublicKey,
    /// Initiator: no `ENCRYPT(VC)` ended within
    /// [`INITIATOR_SYNC_LIMIT`] bytes of the receiver's stream.
    #[error("no encrypted verification constant within the receiver's first {offset} bytes")]
    VcNotFound {
        /// Bytes searched, counted from the start of the stream.
        offset: u64,
    },
    /// Receiver: no `HASH('req1', S)` ended within
    /// [`RESPONDER_SYNC_LIMIT`] bytes of the initiator's stream.
    #[error("no HASH('req1', S) within the initiator's first {offset} bytes")]
    SyncHashNotFound {
        /// Bytes searched, counted from the start of the stream.
        offset: u64,
    },
    /// Receiver: VC did not decrypt to zeros (the initiator used another
    /// info-hash or secret than the one selected).
    #[error("the verification constant at byte {offset} does not decrypt to zeros")]
    BadVc {
        /// Where VC starts.
        offset: u64,
    },
    /// A padding length above [`MAX_PAD_LEN`].
    #[error("Pad{pad:?} length {len} at byte {offset} exceeds 512")]
    PadTooLong {
        /// Which padding.
        pad: Pad,
        /// The length received.
        len: u16,
        /// Where the length field starts.
        offset: u64,
    },
    /// Receiver: an initial payload longer than [`MAX_IA_LEN`].
    #[error("initial payload length {len} at byte {offset} exceeds {max}")]
    IaTooLong {
        /// The length received.
        len: u16,
        /// [`MAX_IA_LEN`].
        max: usize,
        /// Where the length field starts.
        offset: u64,
    },
    /// Receiver: the initiator provides no method we accept.
    #[error("crypto_provide {provided:#x} at byte {offset} has none of the accepted methods {accepted:#x}")]
    NoCommonMethod {
        /// `crypto_provide` as received.
        provided: u32,
        /// Our [`MseConfig::methods`] bits.
        accepted: u32,
        /// Where `crypto_provide` starts.
        offset: u64,
    },
    /// Initiator: `crypto_select` is not exactly one of the methods we
    /// provided.
    #[error("crypto_select {selected:#x} at byte {offset} is not one of the provided methods {provided:#x}")]
    BadCryptoSelect {
        /// `crypto_select` as received.
        selected: u32,
        /// The `crypto_provide` we sent.
        provided: u32,
        /// Where `crypto_select` starts.
        offset: u64,
    },
    /// Receiver: none of the candidates given to
    /// [`Responder::select_from`] is the torrent asked for.
    #[error("no known torrent matches the obfuscated info-hash at byte {offset}")]
    UnknownInfoHash {
        /// Where the obfuscated info-hash starts.
        offset: u64,
    },
    /// Receiver: [`Responder::select_info_hash`] was given an info-hash
    /// whose [`skey_hash`] is not the one asked for. The handshake is
    /// unchanged and waits for the right one.
    #[error("the info-hash given is not the torrent the initiator asked for")]
    InfoHashMismatch,
    /// The connection closed before the handshake finished.
    #[error("connection closed during {phase} after {received} bytes")]
    UnexpectedEof {
        /// What was awaited.
        phase: Phase,
        /// Bytes received in total.
        received: u64,
    },
    /// The deadline of [`MseConfig::timeout`] passed first (silence, or
    /// a peer trickling bytes).
    #[error("handshake timed out during {phase} after {received} bytes")]
    Timeout {
        /// What was awaited.
        phase: Phase,
        /// Bytes received in total.
        received: u64,
    },
    /// The configuration or arguments cannot make a handshake.
    #[error("invalid handshake settings: {what}")]
    InvalidConfig {
        /// What is wrong.
        what: &'static str,
    },
    /// A method was called in a state where it has no meaning (`finish`
    /// before [`Progress::Done`], selecting a torrent when none was asked
    /// for).
    #[error("called out of order: {what}")]
    Misuse {
        /// What was called when.
        what: &'static str,
    },
    /// A bug: a branch that cannot be taken was.
    #[error("internal error: {what}")]
    Internal {
        /// What went wrong.
        what: &'static str,
    },
}

/// What both roles track the same way around their own states: bytes to
/// send, how much of the peer's stream the handshake has read, the
/// deadline, and the first error (final: every later call returns it).
struct Lifecycle {
    out: Vec<u8>,
    received: u64,
    deadline: Instant,
    error: Option<MseError>,
}

impl Lifecycle {
    fn new(out: Vec<u8>, deadline: Instant) -> Lifecycle {
        Lifecycle {
            out,
            received: 0,
            deadline,
            error: None,
        }
    }

    /// The error that ended the handshake, if one did.
    fn check(&self) -> Result<(), MseError> {
        match &self.error {
            Some(error) => Err(error.clone()),
            None => Ok(()),
        }
    }

    fn fail(&mut self, error: MseError) -> MseError {
        self.error = Some(error.clone());
        error
    }

    fn poll_timeout(&self, done: bool) -> Option<Instant> {
        (!done && self.error.is_none()).then_some(self.deadline)
    }

    fn handle_timeout(&mut self, now: Instant, done: bool, phase: Phase) -> Result<(), MseError> {
        self.check()?;
        if done || now < self.deadline {
            return Ok(());
        }
        Err(self.fail(MseError::Timeout {
            phase,
            received: self.received,
        }))
    }

    fn handle_eof(&mut self, done: bool, phase: Phase) -> Result<(), MseError> {
        self.check()?;
        if done {
            return Ok(());
        }
        Err(self.fail(MseError::UnexpectedEof {
            phase,
            received: self.received,
        }))
    }

    /// Records how far one `handle_input` call read, and its error if any.
    fn finish_input(
        &mut self,
        cursor: &Cursor<'_>,
        result: Result<Progress, MseError>,
    ) -> Result<Progress, MseError> {
        self.received = cursor.offset();
        result.map_err(|error| self.fail(error))
    }
}

/// The unconsumed part of one `handle_input` call, and where it sits in
/// the peer's stream.
struct Cursor<'a> {
    rest: &'a [u8],
    used: usize,
    base: u64,
}

impl<'a> Cursor<'a> {
    fn new(input: &'a [u8], base: u64) -> Cursor<'a> {
        Cursor {
            rest: input,
            used: 0,
            base,
        }
    }

    /// Stream offset of the next unconsumed byte.
    fn offset(&self) -> u64 {
        self.base + self.used as u64
    }

    /// Takes up to `max` bytes.
    fn take(&mut self, max: usize) -> &'a [u8] {
        let (head, tail) = self.rest.split_at(max.min(self.rest.len()));
        self.rest = tail;
        self.used += head.len();
        head
    }

    /// Moves bytes into `buf` until it holds `want`; true once it does.
    fn fill(&mut self, buf: &mut Vec<u8>, want: usize) -> bool {
        let missing = want.saturating_sub(buf.len());
        let got = self.take(missing);
        buf.extend_from_slice(got);
        buf.len() >= want
    }

    /// Moves bytes into `window` (which grows to at most `limit`) until it
    /// ends with `marker`, consuming no byte past the marker.
    fn sync(&mut self, window: &mut Vec<u8>, marker: &[u8], limit: usize) -> Sync {
        let old = window.len();
        let room = limit.saturating_sub(old);
        let fresh = self.rest.get(..room.min(self.rest.len())).unwrap_or(&[]);
        window.extend_from_slice(fresh);
        // Only windows that include a new byte can hold a new match.
        let from = old.saturating_sub(marker.len() - 1);
        let found = window
            .get(from..)
            .and_then(|tail| tail.windows(marker.len()).position(|w| w == marker));
        match found {
            Some(pos) => {
                let end = from + pos + marker.len();
                // The match ends on a new byte: `end > old`.
                let needed = end.saturating_sub(old);
                self.take(needed);
                window.truncate(end);
                Sync::Found
            }
            None => {
                self.take(fresh.len());
                if window.len() >= limit {
                    Sync::Exhausted
                } else {
                    Sync::NeedMore
                }
            }
        }
    }
}

enum Sync {
    Found,
    NeedMore,
    Exhausted,
}

/// The first `N` bytes of a buffer that was filled to at least `N`.
fn array<const N: usize>(buf: &[u8]) -> Result<[u8; N], MseError> {
    match buf.get(..N).and_then(|head| <[u8; N]>::try_from(head).ok()) {
        Some(array) => Ok(array),
        None => {
            debug_assert!(false, "buffer of {} bytes read as {N}", buf.len());
            Err(MseError::Internal {
                what: "a handshake field was read before it was complete",
            })
        }
    }
}

fn xor20(a: &[u8; 20], b: &[u8; 20]) -> [u8; 20] {
    let mut out = [0u8; 20];
    for ((o, x), y) in out.iter_mut().zip(a).zip(b) {
        *o = x ^ y;
    }
    out
}

#[cfg(test)]
mod tests;
