//! Messages after the handshake (BEP 3, BEP 5's `port`, BEP 6, BEP 10's
//! envelope), their limits, and decoding one frame from a byte slice.

use std::fmt;

use crate::Status;
use rustico_pieces::{BlockRequest, BLOCK_LEN};

/// Message ids (the byte after the length prefix).
pub mod id {
    /// BEP 3 `choke`.
    pub const CHOKE: u8 = 0;
    /// BEP 3 `unchoke`.
    pub const UNCHOKE: u8 = 1;
    /// BEP 3 `interested`.
    pub const INTERESTED: u8 = 2;
    /// BEP 3 `not interested`.
    pub const NOT_INTERESTED: u8 = 3;
    /// BEP 3 `have`.
    pub const HAVE: u8 = 4;
    /// BEP 3 `bitfield`.
    pub const BITFIELD: u8 = 5;
    /// BEP 3 `request`.
    pub const REQUEST: u8 = 6;
    /// BEP 3 `piece`.
    pub const PIECE: u8 = 7;
    /// BEP 3 `cancel`.
    pub const CANCEL: u8 = 8;
    /// BEP 5 `port` (the sender's DHT port).
    pub const PORT: u8 = 9;
    /// BEP 6 `suggest piece`.
    pub const SUGGEST_PIECE: u8 = 13;
    /// BEP 6 `have all`.
    pub const HAVE_ALL: u8 = 14;
    /// BEP 6 `have none`.
    pub const HAVE_NONE: u8 = 15;
    /// BEP 6 `reject request`.
    pub const REJECT_REQUEST: u8 = 16;
    /// BEP 6 `allowed fast`.
    pub const ALLOWED_FAST: u8 = 17;
    /// BEP 10 extended message.
    pub const EXTENDED: u8 = 20;
    /// BEP 52 `hash request` (decoded by [`HashMessage`](crate::HashMessage)).
    pub const HASH_REQUEST: u8 = 21;
    /// BEP 52 `hashes` (decoded by [`HashMessage`](crate::HashMessage)).
    pub const HASHES: u8 = 22;
    /// BEP 52 `hash reject` (decoded by [`HashMessage`](crate::HashMessage)).
    pub const HASH_REJECT: u8 = 23;
}

/// One peer wire message. Variable-length payloads borrow from the input
/// (the [`Framer`](crate::Framer)'s buffer or the slice given to
/// [`decode_frame`]); [`Message::to_owned`] keeps one.
///
/// ```
/// use rustico_peer_wire::{Message, BlockRequest};
///
/// let mut out = Vec::new();
/// Message::Have(7).encode(&mut out);
/// Message::Request(BlockRequest { piece: 1, offset: 0x4000, length: 0x4000 }).encode(&mut out);
/// assert_eq!(out[..9], [0, 0, 0, 5, 4, 0, 0, 0, 7]);
/// assert_eq!(out.len(), 9 + 17);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub enum Message<'a> {
    /// A zero-length message: keeps an idle connection open.
    KeepAlive,
    /// The sender will not answer requests.
    Choke,
    /// The sender will answer requests.
    Unchoke,
    /// The sender wants pieces the receiver has.
    Interested,
    /// The sender wants nothing from the receiver.
    NotInterested,
    /// The sender has (verified) the piece with this index.
    Have(u32),
    /// The pieces the sender has, as wire bytes (see
    /// [`Bitfield::from_wire`](crate::Bitfield::from_wire) to check them).
    Bitfield(&'a [u8]),
    /// The sender asks for a block.
    Request(BlockRequest),
    /// A block of data.
    Piece {
        /// Piece index.
        index: u32,
        /// Byte offset within the piece.
        begin: u32,
        /// The block's bytes, borrowed.
        data: &'a [u8],
    },
    /// The sender withdraws a request.
    Cancel(BlockRequest),
    /// BEP 5: the sender's DHT port.
    Port(u16),
    /// BEP 6: the sender suggests downloading this piece.
    SuggestPiece(u32),
    /// BEP 6: the sender has every piece (instead of a bitfield).
    HaveAll,
    /// BEP 6: the sender has no piece (instead of a bitfield).
    HaveNone,
    /// BEP 6: the sender will not serve this request.
    RejectRequest(BlockRequest),
    /// BEP 6: the receiver may request this piece even while choked.
    AllowedFast(u32),
    /// BEP 10: an extended message. `id` 0 is the extension handshake;
    /// other ids are the ones the receiver assigned in its handshake.
    Extended {
        /// Extended message id.
        id: u8,
        /// The payload after the id (bencode, maybe followed by raw data).
        payload: &'a [u8],
    },
    /// A message id this crate does not know; its payload is skipped intact.
    Unknown {
        /// The message id.
        id: u8,
        /// The payload after the id.
        payload: &'a [u8],
    },
}

/// A [`Message`] that owns its payload, to keep past the buffer it was
/// decoded from.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum OwnedMessage {
    /// A message without a borrowed payload.
    Fixed(Message<'static>),
    /// [`Message::Bitfield`].
    Bitfield(Vec<u8>),
    /// [`Message::Piece`].
    Piece {
        /// Piece index.
        index: u32,
        /// Byte offset within the piece.
        begin: u32,
        /// The block's bytes.
        data: Vec<u8>,
    },
    /// [`Message::Extended`].
    Extended {
        /// Extended message id.
        id: u8,
        /// Payload after the id.
        payload: Vec<u8>,
    },
    /// [`Message::Unknown`].
    Unknown {
        /// Message id.
        id: u8,
        /// Payload after the id.
        payload: Vec<u8>,
    },
}

/// Payloads show as their length (a log wants `Piece { index: 3, begin:
/// 16384, len: 16384 }`, not 16 KiB of numbers).
impl fmt::Debug for Message<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Message::KeepAlive => f.write_str("KeepAlive"),
            Message::Choke => f.write_str("Choke"),
            Message::Unchoke => f.write_str("Unchoke"),
            Message::Interested => f.write_str("Interested"),
            Message::NotInterested => f.write_str("NotInterested"),
            Message::Have(piece) => f.debug_tuple("Have").field(piece).finish(),
            Message::Bitfield(bytes) => f
                .debug_struct("Bitfield")
                .field("len", &bytes.len())
                .finish(),
            Message::Request(block) => f.debug_tuple("Request").field(block).finish(),
            Message::Piece { index, begin, data } => f
                .debug_struct("Piece")
                .field("index", index)
                .field("begin", begin)
                .field("len", &data.len())
                .finish(),
            Message::Cancel(block) => f.debug_tuple("Cancel").field(block).finish(),
            Message::Port(port) => f.debug_tuple("Port").field(port).finish(),
            Message::SuggestPiece(piece) => f.debug_tuple("SuggestPiece").field(piece).finish(),
            Message::HaveAll => f.write_str("HaveAll"),
            Message::HaveNone => f.write_str("HaveNone"),
            Message::RejectRequest(block) => f.debug_tuple("RejectRequest").field(block).finish(),
            Message::AllowedFast(piece) => f.debug_tuple("AllowedFast").field(piece).finish(),
            Message::Extended { id, payload } => f
                .debug_struct("Extended")
                .field("id", id)
                .field("len", &payload.len())
                .finish(),
            Message::Unknown { id, payload } => f
                .debug_struct("Unknown")
                .field("id", id)
                .field("len", &payload.len())
                .finish(),
        }
    }
}

impl fmt::Debug for OwnedMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.as_message().fmt(f)
    }
}

impl OwnedMessage {
    /// The borrowed form, to encode or match on.
    pub fn as_message(&self) -> Message<'_> {
        match self {
            OwnedMessage::Fixed(m) => *m,
            OwnedMessage::Bitfield(b) => Message::Bitfield(b),
            OwnedMessage::Piece { index, begin, data } => Message::Piece {
                index: *index,
                begin: *begin,
                data,
            },
            OwnedMessage::Extended { id, payload } => Message::Extended { id: *id, payload },
            OwnedMessage::Unknown { id, payload } => Message::Unknown { id: *id, payload },
        }
    }
}

/// A frame that breaks the protocol or a limit. `offset` is where the
/// frame's length prefix starts: in the input of [`decode_frame`], or in
/// the whole stream for a [`Framer`](crate::Framer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The length prefix is larger than any message allowed by the limits.
    /// Reported from the 4 prefix bytes alone, before any payload is kept.
    #[error("message length {len} exceeds the limit of {max} (frame at byte {offset})")]
    TooLong {
        /// The length prefix.
        len: u32,
        /// The largest length allowed.
        max: u32,
        /// Stream offset of the length prefix.
        offset: u64,
    },
    /// A message whose length is over the limit for its id (a bitfield
    /// bigger than the torrent, a block bigger than the block limit).
    #[error(
        "message id {id} with length {len} exceeds its limit of {max} (frame at byte {offset})"
    )]
    TooLongForId {
        /// The message id.
        id: u8,
        /// The length prefix.
        len: u32,
        /// The largest length allowed for this id.
        max: u32,
        /// Stream offset of the length prefix.
        offset: u64,
    },
    /// A fixed-size message with the wrong length, or a variable-size one
    /// shorter than its header.
    #[error("message id {id} has length {len}, expected {expected} (frame at byte {offset})")]
    BadLength {
        /// The message id.
        id: u8,
        /// The length prefix.
        len: u32,
        /// What the id requires: the exact length, or the minimum for
        /// `piece` (9) and `extended` (2).
        expected: u32,
        /// Stream offset of the length prefix.
        offset: u64,
    },
}

impl FrameError {
    /// The same error with its offset moved by `base` (for callers that
    /// decode from a slice of a longer stream).
    pub fn shifted(self, base: u64) -> FrameError {
        match self {
            FrameError::TooLong { len, max, offset } => FrameError::TooLong {
                len,
                max,
                offset: offset + base,
            },
            FrameError::TooLongForId {
                id,
                len,
                max,
                offset,
            } => FrameError::TooLongForId {
                id,
                len,
                max,
                offset: offset + base,
            },
            FrameError::BadLength {
                id,
                len,
                expected,
                offset,
            } => FrameError::BadLength {
                id,
                len,
                expected,
                offset: offset + base,
            },
        }
    }

    /// Stream offset of the offending frame's length prefix.
    pub fn offset(&self) -> u64 {
        match self {
            FrameError::TooLong { offset, .. }
            | FrameError::TooLongForId { offset, .. }
            | FrameError::BadLength { offset, .. } => *offset,
        }
    }
}

/// How big a message may be, per kind. Every limit counts payload bytes
/// after the message's fixed header; checks happen on the length prefix,
/// before the payload is buffered.
///
/// The defaults fit any torrent whose peers use 16 KiB blocks and have at
/// most 131 072 pieces; [`Limits::for_torrent`] tightens the bitfield to
/// the torrent's exact size once it is known. BEP 52 hash messages
/// (ids 21 to 23) have fixed bounds: 48 bytes after the id for a request
/// or reject, at most [`MAX_HASHES_PER_MESSAGE`](crate::MAX_HASHES_PER_MESSAGE)
/// hashes after those for `hashes`.
///
/// ```
/// use rustico_peer_wire::Limits;
///
/// let limits = Limits::for_torrent(1313);
/// assert_eq!(limits.max_bitfield_bytes, 165);
/// // The largest frame: a `hashes` message of 576 hashes.
/// assert_eq!(Limits::default().max_frame_len(), 1 + 48 + 576 * 32);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest block in a `piece` message (default 16 KiB). The message
    /// may be 9 bytes longer (id, index, begin).
    pub max_block: u32,
    /// Largest `bitfield` payload in bytes (default 16 KiB: 131 072 pieces).
    pub max_bitfield_bytes: u32,
    /// Largest extended-message payload after the extended id (default
    /// 16 KiB + 500: a `ut_metadata` data message is a 16 KiB piece of
    /// metadata behind a short dictionary).
    pub max_extended_payload: u32,
    /// Largest payload of a message with an unknown id (default 16 KiB).
    pub max_unknown_payload: u32,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_block: BLOCK_LEN,
            max_bitfield_bytes: BLOCK_LEN,
            max_extended_payload: BLOCK_LEN + 500,
            max_unknown_payload: BLOCK_LEN,
        }
    }
}

impl Limits {
    /// Default limits with the bitfield sized exactly for `piece_count`
    /// pieces.
    pub fn for_torrent(piece_count: u32) -> Limits {
        Limits {
            max_bitfield_bytes: piece_count.div_ceil(8),
            ..Limits::default()
        }
    }

    /// The largest length prefix any message may have under these limits.
    pub fn max_frame_len(&self) -> u32 {
        let piece = self.max_block.saturating_add(9);
        let bitfield = self.max_bitfield_bytes.saturating_add(1);
        let extended = self.max_extended_payload.saturating_add(2);
        let unknown = self.max_unknown_payload.saturating_add(1);
        let hashes = crate::message_v2::MAX_HASHES_PAYLOAD + 1;
        piece
            .max(bitfield)
            .max(extended)
            .max(unknown)
            .max(hashes)
            .max(13)
    }

    /// Checks a length prefix and, when known, the id after it.
    /// `offset` is the frame's position, for the error.
    #[inline]
    pub(crate) fn check(
        &self,
        len: u32,
        id: Option<u8>,
        max_frame: u32,
        offset: u64,
    ) -> Result<(), FrameError> {
        if len > max_frame {
            let max = max_frame;
            return Err(FrameError::TooLong { len, max, offset });
        }
        let Some(id) = id else { return Ok(()) };
        let (min, max) = match id {
            id::CHOKE
            | id::UNCHOKE
            | id::INTERESTED
            | id::NOT_INTERESTED
            | id::HAVE_ALL
            | id::HAVE_NONE => (1, 1),
            id::HAVE | id::SUGGEST_PIECE | id::ALLOWED_FAST => (5, 5),
            id::REQUEST | id::CANCEL | id::REJECT_REQUEST => (13, 13),
            id::PORT => (3, 3),
            id::PIECE => (9, self.max_block.saturating_add(9)),
            id::BITFIELD => (1, self.max_bitfield_bytes.saturating_add(1)),
            id::EXTENDED => (2, self.max_extended_payload.saturating_add(2)),
            id::HASH_REQUEST | id::HASH_REJECT => {
                let len = crate::HASH_REQUEST_LEN as u32 + 1;
                (len, len)
            }
            id::HASHES => (
                crate::HASH_REQUEST_LEN as u32 + 1,
                crate::message_v2::MAX_HASHES_PAYLOAD + 1,
            ),
            _ => (1, self.max_unknown_payload.saturating_add(1)),
        };
        if len < min || (min == max && len != min) {
            return Err(FrameError::BadLength {
                id,
                len,
                expected: min,
                offset,
            });
        }
        if len > max {
            return Err(FrameError::TooLongForId {
                id,
                len,
                max,
                offset,
            });
        }
        Ok(())
    }
}

#[inline]
fn be32(bytes: &[u8], at: usize) -> u32 {
    match bytes.get(at..at + 4) {
        Some(&[a, b, c, d]) => u32::from_be_bytes([a, b, c, d]),
        _ => 0,
    }
}

#[inline]
fn block(body: &[u8]) -> BlockRequest {
    BlockRequest {
        piece: be32(body, 1),
        offset: be32(body, 5),
        length: be32(body, 9),
    }
}

/// Decodes the frame at the start of `input`: a 4-byte big-endian length,
/// then that many bytes of message.
///
/// Returns [`Status::Incomplete`] while the frame is not all there (after
/// checking whatever header bytes are), or the message and the number of
/// bytes it used. Nothing is copied: payloads borrow from `input`. Offsets
/// in errors are relative to `input`.
///
/// ```
/// use rustico_peer_wire::{decode_frame, Limits, Message, Status};
///
/// let stream = [0, 0, 0, 5, 4, 0, 0, 0, 9, 0, 0];
/// let limits = Limits::default();
/// assert_eq!(decode_frame(&stream, &limits)?, Status::Complete(Message::Have(9), 9));
/// assert_eq!(decode_frame(&stream[9..], &limits)?, Status::Incomplete);
/// assert!(decode_frame(&[0xff, 0, 0, 0], &limits).is_err()); // too long, known at once
/// # Ok::<(), rustico_peer_wire::FrameError>(())
/// ```
#[inline]
pub fn decode_frame<'a>(
    input: &'a [u8],
    limits: &Limits,
) -> Result<Status<Message<'a>>, FrameError> {
    match frame_len(input, limits, limits.max_frame_len(), 0)? {
        Status::Incomplete => Ok(Status::Incomplete),
        Status::Complete(_, used) => {
            let body = input.get(4..used).unwrap_or(&[]);
            Ok(Status::Complete(Message::from_checked_body(body), used))
        }
    }
}

/// Checks the header of the frame at the start of `input` and says whether
/// all of it is there, and its total size (prefix included).
#[inline]
pub(crate) fn frame_len(
    input: &[u8],
    limits: &Limits,
    max_frame: u32,
    offset: u64,
) -> Result<Status<()>, FrameError> {
    let Some(&[a, b, c, d]) = input.get(..4) else {
        return Ok(Status::Incomplete);
    };
    let len = u32::from_be_bytes([a, b, c, d]);
    // A keep-alive has no id: the byte after it belongs to the next frame.
    let id = if len == 0 {
        None
    } else {
        input.get(4).copied()
    };
    limits.check(len, id, max_frame, offset)?;
    let total = 4 + len as usize;
    if input.len() < total {
        Ok(Status::Incomplete)
    } else {
        Ok(Status::Complete((), total))
    }
}

impl<'a> Message<'a> {
    /// Decodes a message body (what follows the length prefix; empty for
    /// keep-alive), checking that its length suits its id. No size limit
    /// beyond the body itself applies; the framer enforces [`Limits`].
    ///
    /// ```
    /// use rustico_peer_wire::Message;
    /// assert_eq!(Message::decode(&[4, 0, 0, 1, 0])?, Message::Have(256));
    /// assert!(Message::decode(&[4, 0, 0]).is_err());
    /// # Ok::<(), rustico_peer_wire::FrameError>(())
    /// ```
    pub fn decode(body: &'a [u8]) -> Result<Message<'a>, FrameError> {
        let unlimited = Limits {
            max_block: u32::MAX,
            max_bitfield_bytes: u32::MAX,
            max_extended_payload: u32::MAX,
            max_unknown_payload: u32::MAX,
        };
        let len = u32::try_from(body.len()).unwrap_or(u32::MAX);
        unlimited.check(len, body.first().copied(), u32::MAX, 0)?;
        Ok(Message::from_checked_body(body))
    }

    /// Builds the message from a body whose length [`Limits::check`] has
    /// accepted for its id.
    #[inline]
    pub(crate) fn from_checked_body(body: &'a [u8]) -> Message<'a> {
        let Some((&id, rest)) = body.split_first() else {
            return Message::KeepAlive;
        };
        match id {
            id::CHOKE => Message::Choke,
            id::UNCHOKE => Message::Unchoke,
            id::INTERESTED => Message::Interested,
            id::NOT_INTERESTED => Message::NotInterested,
            id::HAVE => Message::Have(be32(body, 1)),
            id::BITFIELD => Message::Bitfield(rest),
            id::REQUEST => Message::Request(block(body)),
            id::PIECE => Message::Piece {
                index: be32(body, 1),
                begin: be32(body, 5),
                data: body.get(9..).unwrap_or(&[]),
            },
            id::CANCEL => Message::Cancel(block(body)),
            id::PORT => Message::Port(match rest {
                &[a, b] => u16::from_be_bytes([a, b]),
                _ => 0,
            }),
            id::SUGGEST_PIECE => Message::SuggestPiece(be32(body, 1)),
            id::HAVE_ALL => Message::HaveAll,
            id::HAVE_NONE => Message::HaveNone,
            id::REJECT_REQUEST => Message::RejectRequest(block(body)),
            id::ALLOWED_FAST => Message::AllowedFast(be32(body, 1)),
            id::EXTENDED => match rest.split_first() {
                Some((&ext, payload)) => Message::Extended { id: ext, payload },
                None => Message::Unknown { id, payload: rest },
            },
            _ => Message::Unknown { id, payload: rest },
        }
    }

    /// The message id, or `None` for keep-alive.
    pub fn id(&self) -> Option<u8> {
        Some(match self {
            Message::KeepAlive => return None,
            Message::Choke => id::CHOKE,
            Message::Unchoke => id::UNCHOKE,
            Message::Interested => id::INTERESTED,
            Message::NotInterested => id::NOT_INTERESTED,
            Message::Have(_) => id::HAVE,
            Message::Bitfield(_) => id::BITFIELD,
            Message::Request(_) => id::REQUEST,
            Message::Piece { .. } => id::PIECE,
            Message::Cancel(_) => id::CANCEL,
            Message::Port(_) => id::PORT,
            Message::SuggestPiece(_) => id::SUGGEST_PIECE,
            Message::HaveAll => id::HAVE_ALL,
            Message::HaveNone => id::HAVE_NONE,
            Message::RejectRequest(_) => id::REJECT_REQUEST,
            Message::AllowedFast(_) => id::ALLOWED_FAST,
            Message::Extended { .. } => id::EXTENDED,
            Message::Unknown { id, .. } => *id,
        })
    }

    /// Size of the encoded message, length prefix included.
    pub fn encoded_len(&self) -> usize {
        4 + match self {
            Message::KeepAlive => 0,
            Message::Choke
            | Message::Unchoke
            | Message::Interested
            | Message::NotInterested
            | Message::HaveAll
            | Message::HaveNone => 1,
            Message::Have(_) | Message::SuggestPiece(_) | Message::AllowedFast(_) => 5,
            Message::Request(_) | Message::Cancel(_) | Message::RejectRequest(_) => 13,
            Message::Port(_) => 3,
            Message::Bitfield(b) => 1 + b.len(),
            Message::Piece { data, .. } => 9 + data.len(),
            Message::Extended { payload, .. } => 2 + payload.len(),
            Message::Unknown { payload, .. } => 1 + payload.len(),
        }
    }

    /// Appends the encoded message (length prefix included) to `out`. No
    /// allocation beyond growing `out`.
    ///
    /// A payload longer than the 4-byte length prefix can say (4 GiB) is
    /// a caller bug; its length is written truncated.
    #[inline]
    pub fn encode(&self, out: &mut Vec<u8>) {
        #[inline]
        fn with_u32(out: &mut Vec<u8>, id: u8, n: u32) {
            let [a, b, c, d] = n.to_be_bytes();
            out.extend_from_slice(&[0, 0, 0, 5, id, a, b, c, d]);
        }
        #[inline]
        fn with_block(out: &mut Vec<u8>, id: u8, r: &BlockRequest) {
            let i = r.piece.to_be_bytes();
            let b = r.offset.to_be_bytes();
            let l = r.length.to_be_bytes();
            out.extend_from_slice(&[
                0, 0, 0, 13, id, i[0], i[1], i[2], i[3], b[0], b[1], b[2], b[3], l[0], l[1], l[2],
                l[3],
            ]);
        }
        fn with_payload(out: &mut Vec<u8>, header: &[u8], payload: &[u8]) {
            let len = (header.len() + payload.len()) as u32;
            out.reserve(4 + len as usize);
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(header);
            out.extend_from_slice(payload);
        }
        match self {
            Message::KeepAlive => out.extend_from_slice(&[0, 0, 0, 0]),
            Message::Choke => out.extend_from_slice(&[0, 0, 0, 1, id::CHOKE]),
            Message::Unchoke => out.extend_from_slice(&[0, 0, 0, 1, id::UNCHOKE]),
            Message::Interested => out.extend_from_slice(&[0, 0, 0, 1, id::INTERESTED]),
            Message::NotInterested => out.extend_from_slice(&[0, 0, 0, 1, id::NOT_INTERESTED]),
            Message::HaveAll => out.extend_from_slice(&[0, 0, 0, 1, id::HAVE_ALL]),
            Message::HaveNone => out.extend_from_slice(&[0, 0, 0, 1, id::HAVE_NONE]),
            Message::Have(i) => with_u32(out, id::HAVE, *i),
            Message::SuggestPiece(i) => with_u32(out, id::SUGGEST_PIECE, *i),
            Message::AllowedFast(i) => with_u32(out, id::ALLOWED_FAST, *i),
            Message::Request(r) => with_block(out, id::REQUEST, r),
            Message::Cancel(r) => with_block(out, id::CANCEL, r),
            Message::RejectRequest(r) => with_block(out, id::REJECT_REQUEST, r),
            Message::Port(p) => {
                let [a, b] = p.to_be_bytes();
                out.extend_from_slice(&[0, 0, 0, 3, id::PORT, a, b]);
            }
            Message::Bitfield(bits) => with_payload(out, &[id::BITFIELD], bits),
            Message::Piece { index, begin, data } => {
                out.extend_from_slice(&piece_header(*index, *begin, data.len() as u32));
                out.extend_from_slice(data);
            }
            Message::Extended { id: ext, payload } => {
                with_payload(out, &[id::EXTENDED, *ext], payload)
            }
            Message::Unknown { id, payload } => with_payload(out, &[*id], payload),
        }
    }

    /// A copy that owns its payload.
    pub fn to_owned(&self) -> OwnedMessage {
        match *self {
            Message::Bitfield(b) => OwnedMessage::Bitfield(b.to_vec()),
            Message::Piece { index, begin, data } => OwnedMessage::Piece {
                index,
                begin,
                data: data.to_vec(),
            },
            Message::Extended { id, payload } => OwnedMessage::Extended {
                id,
                payload: payload.to_vec(),
            },
            Message::Unknown { id, payload } => OwnedMessage::Unknown {
                id,
                payload: payload.to_vec(),
            },
            Message::KeepAlive => OwnedMessage::Fixed(Message::KeepAlive),
            Message::Choke => OwnedMessage::Fixed(Message::Choke),
            Message::Unchoke => OwnedMessage::Fixed(Message::Unchoke),
            Message::Interested => OwnedMessage::Fixed(Message::Interested),
            Message::NotInterested => OwnedMessage::Fixed(Message::NotInterested),
            Message::Have(i) => OwnedMessage::Fixed(Message::Have(i)),
            Message::Request(r) => OwnedMessage::Fixed(Message::Request(r)),
            Message::Cancel(r) => OwnedMessage::Fixed(Message::Cancel(r)),
            Message::Port(p) => OwnedMessage::Fixed(Message::Port(p)),
            Message::SuggestPiece(i) => OwnedMessage::Fixed(Message::SuggestPiece(i)),
            Message::HaveAll => OwnedMessage::Fixed(Message::HaveAll),
            Message::HaveNone => OwnedMessage::Fixed(Message::HaveNone),
            Message::RejectRequest(r) => OwnedMessage::Fixed(Message::RejectRequest(r)),
            Message::AllowedFast(i) => OwnedMessage::Fixed(Message::AllowedFast(i)),
        }
    }
}

/// The 13-byte header of a `piece` message carrying `data_len` bytes, for
/// senders that write the block straight from their own buffer (a read
/// cache, a file) after it, without copying it into a message first.
///
/// ```
/// let header = rustico_peer_wire::piece_header(1, 0x4000, 3);
/// assert_eq!(header, [0, 0, 0, 12, 7, 0, 0, 0, 1, 0, 0, 0x40, 0]);
/// ```
pub fn piece_header(index: u32, begin: u32, data_len: u32) -> [u8; 13] {
    let l = data_len.wrapping_add(9).to_be_bytes();
    let i = index.to_be_bytes();
    let b = begin.to_be_bytes();
    [
        l[0],
        l[1],
        l[2],
        l[3],
        id::PIECE,
        i[0],
        i[1],
        i[2],
        i[3],
        b[0],
        b[1],
        b[2],
        b[3],
    ]
}
