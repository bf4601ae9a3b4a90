//! The 68-byte handshake that opens every peer connection (BEP 3), with the
//! reserved bits of BEP 5 (DHT), BEP 6 (fast extension) and BEP 10
//! (extension protocol).

use crate::Status;

/// The protocol string every BitTorrent handshake starts with.
pub const PROTOCOL: &[u8; 19] = b"BitTorrent protocol";

/// Length of an encoded handshake: 1 + 19 + 8 + 20 + 20.
pub const HANDSHAKE_LEN: usize = 68;

/// The 8 reserved bytes of the handshake: capability bits.
///
/// Bits this crate knows have named accessors; all others are kept as
/// received, so a handshake re-encodes to the same bytes.
///
/// ```
/// use rustico_peer_wire::Reserved;
///
/// let reserved = Reserved::default().with_extension_protocol(true).with_fast(true);
/// assert_eq!(reserved.0, [0, 0, 0, 0, 0, 0x10, 0, 0x04]);
/// assert!(reserved.extension_protocol() && reserved.fast() && !reserved.dht());
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Reserved(pub [u8; 8]);

impl Reserved {
    /// BEP 10 extension protocol: byte 5, bit 0x10.
    const EXTENSION: (usize, u8) = (5, 0x10);
    /// BEP 6 fast extension: byte 7, bit 0x04.
    const FAST: (usize, u8) = (7, 0x04);
    /// BEP 5 DHT (the peer sends `port` messages): byte 7, bit 0x01.
    const DHT: (usize, u8) = (7, 0x01);

    /// The bits this crate supports: extension protocol and fast extension.
    pub fn supported() -> Reserved {
        Reserved::default()
            .with_extension_protocol(true)
            .with_fast(true)
    }

    fn get(&self, (byte, mask): (usize, u8)) -> bool {
        self.0[byte] & mask != 0
    }

    fn with(mut self, (byte, mask): (usize, u8), on: bool) -> Reserved {
        if on {
            self.0[byte] |= mask;
        } else {
            self.0[byte] &= !mask;
        }
        self
    }

    /// Whether the extension protocol (BEP 10) bit is set.
    pub fn extension_protocol(&self) -> bool {
        self.get(Self::EXTENSION)
    }

    /// Whether the fast extension (BEP 6) bit is set.
    pub fn fast(&self) -> bool {
        self.get(Self::FAST)
    }

    /// Whether the DHT (BEP 5) bit is set.
    pub fn dht(&self) -> bool {
        self.get(Self::DHT)
    }

    /// Sets or clears the extension protocol bit.
    pub fn with_extension_protocol(self, on: bool) -> Reserved {
        self.with(Self::EXTENSION, on)
    }

    /// Sets or clears the fast extension bit.
    pub fn with_fast(self, on: bool) -> Reserved {
        self.with(Self::FAST, on)
    }

    /// Sets or clears the DHT bit.
    pub fn with_dht(self, on: bool) -> Reserved {
        self.with(Self::DHT, on)
    }

    /// The bits both sides set: what a connection may use.
    pub fn common(&self, other: &Reserved) -> Reserved {
        let mut out = [0; 8];
        for (o, (a, b)) in out.iter_mut().zip(self.0.iter().zip(other.0.iter())) {
            *o = a & b;
        }
        Reserved(out)
    }
}

/// A handshake: capability bits, the torrent's info-hash and the peer id.
///
/// ```
/// use rustico_peer_wire::{Handshake, Reserved, Status};
///
/// let ours = Handshake::new(Reserved::supported(), [0xaa; 20], *b"-RS0001-123456789012");
/// let mut wire = Vec::new();
/// ours.encode(&mut wire);
/// assert_eq!(wire.len(), 68);
///
/// // Decoding is incremental: a short input asks for more, bad bytes fail at once.
/// assert_eq!(Handshake::decode(&wire[..30])?, Status::Incomplete);
/// assert_eq!(Handshake::decode(&wire)?, Status::Complete(ours, 68));
/// assert!(Handshake::decode(b"\x13BitTorrent protocoX").is_err());
/// # Ok::<(), rustico_peer_wire::HandshakeError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Handshake {
    /// Capability bits.
    pub reserved: Reserved,
    /// The torrent's v1 info-hash (SHA-1 of its info dictionary).
    pub info_hash: [u8; 20],
    /// The sender's peer id.
    pub peer_id: [u8; 20],
}

/// A handshake that is not a BitTorrent handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// The first byte (length of the protocol string) is not 19.
    #[error("protocol string length is {found}, expected 19 (at byte 0)")]
    BadProtocolLength {
        /// The byte received.
        found: u8,
    },
    /// The protocol string is not `BitTorrent protocol`.
    #[error("protocol string is not \"BitTorrent protocol\": byte 0x{found:02x} at byte {offset}")]
    BadProtocol {
        /// Offset of the first differing byte in the handshake.
        offset: usize,
        /// The byte received there.
        found: u8,
    },
}

impl Handshake {
    /// A handshake from its parts.
    pub fn new(reserved: Reserved, info_hash: [u8; 20], peer_id: [u8; 20]) -> Handshake {
        Handshake {
            reserved,
            info_hash,
            peer_id,
        }
    }

    /// Appends the 68 bytes of the handshake to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.reserve(HANDSHAKE_LEN);
        out.push(PROTOCOL.len() as u8);
        out.extend_from_slice(PROTOCOL);
        out.extend_from_slice(&self.reserved.0);
        out.extend_from_slice(&self.info_hash);
        out.extend_from_slice(&self.peer_id);
    }

    /// The 68 bytes of the handshake.
    pub fn to_bytes(&self) -> [u8; HANDSHAKE_LEN] {
        let mut out = [0; HANDSHAKE_LEN];
        out[0] = PROTOCOL.len() as u8;
        out[1..20].copy_from_slice(PROTOCOL);
        out[20..28].copy_from_slice(&self.reserved.0);
        out[28..48].copy_from_slice(&self.info_hash);
        out[48..68].copy_from_slice(&self.peer_id);
        out
    }

    /// Decodes a handshake from the start of `input`.
    ///
    /// Whatever part of the handshake is present is checked, so a peer
    /// that is not speaking BitTorrent is rejected from its first bytes.
    /// Returns [`Status::Incomplete`] until all 68 bytes are there, then
    /// the handshake and the 68 bytes it used; bytes after it (the first
    /// messages) are left for the [`Framer`](crate::Framer).
    pub fn decode(input: &[u8]) -> Result<Status<Handshake>, HandshakeError> {
        if let Some(&first) = input.first() {
            if usize::from(first) != PROTOCOL.len() {
                return Err(HandshakeError::BadProtocolLength { found: first });
            }
        }
        let proto_seen = input.get(1..).unwrap_or(&[]);
        for (i, (&got, &want)) in proto_seen.iter().zip(PROTOCOL.iter()).enumerate() {
            if got != want {
                return Err(HandshakeError::BadProtocol {
                    offset: i + 1,
                    found: got,
                });
            }
        }
        let Some(bytes) = input.get(..HANDSHAKE_LEN) else {
            return Ok(Status::Incomplete);
        };
        let mut handshake = Handshake::new(Reserved::default(), [0; 20], [0; 20]);
        handshake.reserved.0.copy_from_slice(&bytes[20..28]);
        handshake.info_hash.copy_from_slice(&bytes[28..48]);
        handshake.peer_id.copy_from_slice(&bytes[48..68]);
        Ok(Status::Complete(handshake, HANDSHAKE_LEN))
    }

    /// How many bytes are needed to see the info-hash (48): an accepting
    /// side reads this much to decide which torrent the peer wants before
    /// it answers with its own handshake.
    pub const INFO_HASH_END: usize = 48;

    /// The info-hash from a partial handshake, once its first 48 bytes are
    /// there (checked like [`Handshake::decode`]).
    pub fn peek_info_hash(input: &[u8]) -> Result<Option<[u8; 20]>, HandshakeError> {
        Handshake::decode(input)?;
        Ok(input
            .get(28..Self::INFO_HASH_END)
            .and_then(|s| <[u8; 20]>::try_from(s).ok()))
    }
}
