//! BitTorrent v2 (BEP 52) on the wire: the `hash request`, `hashes` and
//! `hash reject` messages (ids 21 to 23) and the v2 handshake (the
//! truncated info-hash, and the reserved bit that upgrades a hybrid
//! torrent's connection to v2).
//!
//! The messages arrive from the framer as [`Message::Unknown`] with ids
//! 21 to 23 (their lengths already checked by [`Limits`](crate::Limits));
//! [`HashMessage::from_message`] decodes them, [`HashMessage::encode`]
//! writes them. Checking the hashes against a file's `pieces root` is
//! `rustico_metainfo::merkle::verify_hashes`, the one place merkle proofs
//! are verified.
//!
//! ```
//! use rustico_peer_wire::{decode_frame, HashMessage, HashRequest, Limits, Status};
//!
//! let request = HashRequest { pieces_root: [7; 32], base_layer: 2, index: 0, length: 4, proof_layers: 3 };
//! let hashes = HashMessage::Hashes { request, hashes: vec![[1; 32]; 6] };
//! let mut wire = Vec::new();
//! hashes.encode(&mut wire);
//! let Status::Complete(message, used) = decode_frame(&wire, &Limits::default())? else { unreachable!() };
//! assert_eq!(used, wire.len());
//! let decoded = HashMessage::from_message(&message).unwrap()?;
//! assert_eq!(decoded, hashes);
//! if let HashMessage::Hashes { hashes, .. } = &decoded {
//!     let (base, uncles) = decoded.split_hashes().unwrap();
//!     assert_eq!((base.len(), uncles.len()), (4, 2));
//!     assert_eq!(hashes.len(), 6);
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::message::Message;
use crate::{Handshake, Reserved};

/// A 32-byte merkle node.
pub type Hash32 = [u8; 32];

/// BEP 52 `hash request` message id.
pub const HASH_REQUEST: u8 = 21;
/// BEP 52 `hashes` message id.
pub const HASHES: u8 = 22;
/// BEP 52 `hash reject` message id.
pub const HASH_REJECT: u8 = 23;

/// The fixed part of all three messages: root and four integers.
pub const HASH_REQUEST_LEN: usize = 32 + 4 * 4;

/// Most hashes one `hashes` message may carry: 512 of the requested layer
/// (libtorrent asks for piece layers 512 at a time) and up to 64 uncles.
pub const MAX_HASHES_PER_MESSAGE: usize = 512 + 64;

/// The largest `hashes` payload after the id, which the framer allows.
pub(crate) const MAX_HASHES_PAYLOAD: u32 = (HASH_REQUEST_LEN + 32 * MAX_HASHES_PER_MESSAGE) as u32;

/// Which hashes of which file's merkle tree: the header of all three
/// BEP 52 hash messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HashRequest {
    /// The file's `pieces root`.
    pub pieces_root: [u8; 32],
    /// The layer the hashes are from: 0 for the 16 KiB block hashes,
    /// `log2(piece length / 16 KiB)` for the piece layer.
    pub base_layer: u32,
    /// Index of the first hash in its layer (a multiple of `length`).
    pub index: u32,
    /// How many hashes of the base layer (a power of two).
    pub length: u32,
    /// How many layers of uncle hashes above them to include (the proof).
    pub proof_layers: u32,
}

/// A BEP 52 hash message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HashMessage {
    /// Id 21: asks for hashes.
    Request(HashRequest),
    /// Id 22: the requested hashes, then the uncle hashes of the proof,
    /// bottom layer first.
    Hashes {
        /// What they answer.
        request: HashRequest,
        /// `request.length` base hashes followed by the proof's uncles.
        hashes: Vec<[u8; 32]>,
    },
    /// Id 23: the sender will not answer this request.
    Reject(HashRequest),
}

/// Why the payload of message 21, 22 or 23 is malformed. Offsets count
/// from the first byte after the message id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HashMessageError {
    /// A `hash request` or `hash reject` that is not exactly 48 bytes, or
    /// a `hashes` shorter than 48.
    #[error("message id {id}: payload of {len} bytes, expected {expected}")]
    BadLength {
        /// The message id.
        id: u8,
        /// Payload length.
        len: usize,
        /// 48 (exact for requests and rejects, the minimum for hashes).
        expected: usize,
    },
    /// `hashes` whose hash list is not a whole number of 32-byte hashes.
    #[error("`hashes` list of {len} bytes is not a multiple of 32 (from byte {offset})")]
    RaggedHashes {
        /// Bytes after the header.
        len: usize,
        /// Where the list starts.
        offset: usize,
    },
    /// `hashes` with fewer hashes than the request's `length`.
    #[error("`hashes` carries {found} hashes but answers a request for {length}")]
    TooFewHashes {
        /// `length` of the request.
        length: u32,
        /// Hashes present.
        found: usize,
    },
    /// `hashes` with more uncle hashes than `proof_layers` allows.
    #[error("`hashes` carries {found} proof hashes but the request allows {proof_layers}")]
    TooManyProofHashes {
        /// `proof_layers` of the request.
        proof_layers: u32,
        /// Uncle hashes present.
        found: usize,
    },
    /// More hashes than [`MAX_HASHES_PER_MESSAGE`].
    #[error("`hashes` carries {found} hashes, more than {max}")]
    TooManyHashes {
        /// Hashes present.
        found: usize,
        /// The cap.
        max: usize,
    },
}

fn be32(bytes: &[u8], at: usize) -> u32 {
    match bytes.get(at..at + 4) {
        Some(&[a, b, c, d]) => u32::from_be_bytes([a, b, c, d]),
        _ => 0,
    }
}

impl HashRequest {
    fn decode(payload: &[u8]) -> Option<HashRequest> {
        let pieces_root = payload.get(..32)?.try_into().ok()?;
        payload.get(..HASH_REQUEST_LEN)?;
        Some(HashRequest {
            pieces_root,
            base_layer: be32(payload, 32),
            index: be32(payload, 36),
            length: be32(payload, 40),
            proof_layers: be32(payload, 44),
        })
    }

    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.pieces_root);
        for n in [self.base_layer, self.index, self.length, self.proof_layers] {
            out.extend_from_slice(&n.to_be_bytes());
        }
    }
}

impl HashMessage {
    /// The message id.
    pub fn id(&self) -> u8 {
        match self {
            HashMessage::Request(_) => HASH_REQUEST,
            HashMessage::Hashes { .. } => HASHES,
            HashMessage::Reject(_) => HASH_REJECT,
        }
    }

    /// The request the message carries or answers.
    pub fn request(&self) -> &HashRequest {
        match self {
            HashMessage::Request(r) | HashMessage::Reject(r) => r,
            HashMessage::Hashes { request, .. } => request,
        }
    }

    /// Decodes the payload (after the id) of message `id`; `None` when
    /// `id` is not 21, 22 or 23.
    pub fn decode(id: u8, payload: &[u8]) -> Option<Result<HashMessage, HashMessageError>> {
        let bad_length = |expected| HashMessageError::BadLength {
            id,
            len: payload.len(),
            expected,
        };
        let fixed = |payload: &[u8]| match payload.len() {
            HASH_REQUEST_LEN => HashRequest::decode(payload).ok_or(bad_length(HASH_REQUEST_LEN)),
            _ => Err(bad_length(HASH_REQUEST_LEN)),
        };
        Some(match id {
            HASH_REQUEST => fixed(payload).map(HashMessage::Request),
            HASH_REJECT => fixed(payload).map(HashMessage::Reject),
            HASHES => Self::decode_hashes(payload),
            _ => return None,
        })
    }

    fn decode_hashes(payload: &[u8]) -> Result<HashMessage, HashMessageError> {
        let request = HashRequest::decode(payload).ok_or(HashMessageError::BadLength {
            id: HASHES,
            len: payload.len(),
            expected: HASH_REQUEST_LEN,
        })?;
        let list = payload.get(HASH_REQUEST_LEN..).unwrap_or_default();
        if list.len() % 32 != 0 {
            return Err(HashMessageError::RaggedHashes {
                len: list.len(),
                offset: HASH_REQUEST_LEN,
            });
        }
        let found = list.len() / 32;
        if found > MAX_HASHES_PER_MESSAGE {
            return Err(HashMessageError::TooManyHashes {
                found,
                max: MAX_HASHES_PER_MESSAGE,
            });
        }
        if (found as u64) < u64::from(request.length) {
            return Err(HashMessageError::TooFewHashes {
                length: request.length,
                found,
            });
        }
        let uncles = found - request.length as usize;
        if uncles as u64 > u64::from(request.proof_layers) {
            return Err(HashMessageError::TooManyProofHashes {
                proof_layers: request.proof_layers,
                found: uncles,
            });
        }
        let hashes = list
            .chunks_exact(32)
            .filter_map(|h| <[u8; 32]>::try_from(h).ok())
            .collect();
        Ok(HashMessage::Hashes { request, hashes })
    }

    /// Decodes a framed message if it is one of ids 21 to 23 (which the
    /// framer hands out as [`Message::Unknown`]); `None` for any other.
    pub fn from_message(message: &Message<'_>) -> Option<Result<HashMessage, HashMessageError>> {
        match message {
            Message::Unknown { id, payload } => HashMessage::decode(*id, payload),
            _ => None,
        }
    }

    /// For `hashes`: the base hashes and the uncle hashes of the proof.
    pub fn split_hashes(&self) -> Option<(&[Hash32], &[Hash32])> {
        match self {
            HashMessage::Hashes { request, hashes } => {
                Some(hashes.split_at((request.length as usize).min(hashes.len())))
            }
            _ => None,
        }
    }

    /// Size of the encoded message, length prefix included.
    pub fn encoded_len(&self) -> usize {
        let hashes = match self {
            HashMessage::Hashes { hashes, .. } => hashes.len() * 32,
            _ => 0,
        };
        4 + 1 + HASH_REQUEST_LEN + hashes
    }

    /// Appends the framed message (length prefix included) to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let len = (self.encoded_len() - 4) as u32;
        out.reserve(self.encoded_len());
        out.extend_from_slice(&len.to_be_bytes());
        out.push(self.id());
        self.request().write(out);
        if let HashMessage::Hashes { hashes, .. } = self {
            for hash in hashes {
                out.extend_from_slice(hash);
            }
        }
    }
}

impl Reserved {
    /// BEP 52: byte 7, bit 0x10: the sender supports v2, so a hybrid
    /// torrent's connection may be upgraded to its v2 info-hash.
    const V2: (usize, u8) = (7, 0x10);

    /// Whether the v2 upgrade bit (BEP 52: byte 7, bit 0x10) is set.
    pub fn v2_upgrade(&self) -> bool {
        self.0[Self::V2.0] & Self::V2.1 != 0
    }

    /// With the v2 upgrade bit set or cleared.
    ///
    /// ```
    /// use rustico_peer_wire::Reserved;
    /// let r = Reserved::default().with_v2_upgrade(true);
    /// assert_eq!(r.0, [0, 0, 0, 0, 0, 0, 0, 0x10]);
    /// assert!(r.v2_upgrade() && !Reserved::supported().v2_upgrade());
    /// ```
    pub fn with_v2_upgrade(mut self, on: bool) -> Reserved {
        if on {
            self.0[Self::V2.0] |= Self::V2.1;
        } else {
            self.0[Self::V2.0] &= !Self::V2.1;
        }
        self
    }
}

/// The handshake of a BitTorrent v2 connection (BEP 52): the v2
/// info-hash truncated to 20 bytes, and the v2 upgrade bit set in
/// `reserved`. A hybrid torrent's peer may also be greeted under the v1
/// hash with the bit set, telling it we could switch to v2.
///
/// ```
/// use rustico_peer_wire::{v2_handshake, Reserved};
///
/// let v2 = [0xab; 32];
/// let h = v2_handshake(Reserved::supported(), &v2, *b"-RS0001-123456789012");
/// assert_eq!(h.info_hash, [0xab; 20]);
/// assert!(h.reserved.v2_upgrade() && h.reserved.fast());
/// ```
pub fn v2_handshake(reserved: Reserved, info_hash_v2: &[u8; 32], peer_id: [u8; 20]) -> Handshake {
    let mut truncated = [0u8; 20];
    truncated.copy_from_slice(&info_hash_v2[..20]);
    Handshake::new(reserved.with_v2_upgrade(true), truncated, peer_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{decode_frame, Limits, Status};
    use proptest::prelude::*;

    fn request() -> impl Strategy<Value = HashRequest> {
        (
            any::<[u8; 32]>(),
            any::<u32>(),
            any::<u32>(),
            any::<u32>(),
            any::<u32>(),
        )
            .prop_map(|(pieces_root, base_layer, index, length, proof_layers)| {
                HashRequest {
                    pieces_root,
                    base_layer,
                    index,
                    length,
                    proof_layers,
                }
            })
    }

    fn message() -> impl Strategy<Value = HashMessage> {
        prop_oneof![
            request().prop_map(HashMessage::Request),
            request().prop_map(HashMessage::Reject),
            (request(), 0usize..40, 0usize..10, any::<[u8; 32]>()).prop_map(
                |(mut request, base, uncles, seed)| {
                    request.length = base as u32;
                    request.proof_layers = request.proof_layers.max(uncles as u32);
                    let hashes = (0..base + uncles)
                        .map(|i| {
                            let mut h = seed;
                            h[0] = i as u8;
                            h
                        })
                        .collect();
                    HashMessage::Hashes { request, hashes }
                }
            ),
        ]
    }

    proptest! {
        #[test]
        fn round_trips_through_the_framer(message in message()) {
            let mut wire = Vec::new();
            message.encode(&mut wire);
            prop_assert_eq!(wire.len(), message.encoded_len());
            let Status::Complete(framed, used) = decode_frame(&wire, &Limits::default()).unwrap() else {
                panic!("incomplete");
            };
            prop_assert_eq!(used, wire.len());
            prop_assert_eq!(framed.id(), Some(message.id()));
            prop_assert_eq!(HashMessage::from_message(&framed), Some(Ok(message)));
        }

        #[test]
        fn arbitrary_payloads_never_panic(id in 21u8..24, payload in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = HashMessage::decode(id, &payload);
            let mut frame = ((payload.len() + 1) as u32).to_be_bytes().to_vec();
            frame.push(id);
            frame.extend_from_slice(&payload);
            if let Ok(Status::Complete(m, _)) = decode_frame(&frame, &Limits::default()) {
                let _ = HashMessage::from_message(&m);
            }
        }
    }

    #[test]
    fn typed_errors() {
        let r = HashRequest {
            pieces_root: [1; 32],
            base_layer: 0,
            index: 0,
            length: 4,
            proof_layers: 1,
        };
        let mut payload = Vec::new();
        r.write(&mut payload);
        assert_eq!(
            HashMessage::decode(HASH_REQUEST, &payload),
            Some(Ok(HashMessage::Request(r)))
        );
        assert_eq!(HashMessage::decode(7, &payload), None);
        assert_eq!(
            HashMessage::decode(HASH_REJECT, &payload[..47]),
            Some(Err(HashMessageError::BadLength {
                id: 23,
                len: 47,
                expected: 48
            }))
        );
        let with = |n: usize, extra: usize| {
            let mut p = payload.clone();
            p.extend(std::iter::repeat_n(9u8, n * 32 + extra));
            HashMessage::decode(HASHES, &p)
        };
        assert_eq!(
            with(4, 5),
            Some(Err(HashMessageError::RaggedHashes {
                len: 133,
                offset: 48
            }))
        );
        assert_eq!(
            with(3, 0),
            Some(Err(HashMessageError::TooFewHashes {
                length: 4,
                found: 3
            }))
        );
        assert_eq!(
            with(6, 0),
            Some(Err(HashMessageError::TooManyProofHashes {
                proof_layers: 1,
                found: 2
            }))
        );
        assert!(matches!(with(5, 0), Some(Ok(HashMessage::Hashes { .. }))));
        assert_eq!(
            with(MAX_HASHES_PER_MESSAGE + 1, 0),
            Some(Err(HashMessageError::TooManyHashes {
                found: 577,
                max: 576
            }))
        );
        // The framer checks lengths first: a short request, an oversized list.
        let mut short = vec![0, 0, 0, 40, HASH_REQUEST];
        short.extend([0; 39]);
        assert!(decode_frame(&short, &Limits::default()).is_err());
        let huge = (MAX_HASHES_PAYLOAD + 2).to_be_bytes();
        assert!(decode_frame(
            &[huge[0], huge[1], huge[2], huge[3], HASHES],
            &Limits::default()
        )
        .is_err());
    }
}
