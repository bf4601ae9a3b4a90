//! BEP 9 `ut_metadata`: fetching a torrent's info dictionary from peers,
//! in 16 KiB pieces.

use rustico_bencode::encode;

use crate::extension::{dict, encode_extended, int_in, ExtensionError};

/// Size of every metadata piece but the last.
pub const METADATA_PIECE_LEN: u32 = 16 * 1024;

/// How many pieces metadata of `size` bytes has.
pub fn metadata_piece_count(size: u64) -> u64 {
    size.div_ceil(u64::from(METADATA_PIECE_LEN))
}

/// One `ut_metadata` message.
///
/// ```
/// use rustico_peer_wire::MetadataMessage;
///
/// let payload = b"d8:msg_typei1e5:piecei0e10:total_sizei5eeHELLO";
/// let message = MetadataMessage::decode(payload)?;
/// assert_eq!(message, MetadataMessage::Data { piece: 0, total_size: 5, data: b"HELLO" });
///
/// let mut out = Vec::new();
/// message.encode(&mut out);
/// assert_eq!(out, payload);
/// # Ok::<(), rustico_peer_wire::ExtensionError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetadataMessage<'a> {
    /// `msg_type` 0: asks for a piece of the metadata.
    Request {
        /// Metadata piece index.
        piece: u32,
    },
    /// `msg_type` 1: a piece of the metadata, after the dictionary.
    Data {
        /// Metadata piece index.
        piece: u32,
        /// Size of the whole info dictionary.
        total_size: u64,
        /// The piece's bytes (borrowed from the payload).
        data: &'a [u8],
    },
    /// `msg_type` 2: the sender will not send this piece.
    Reject {
        /// Metadata piece index.
        piece: u32,
    },
}

impl<'a> MetadataMessage<'a> {
    /// Decodes an extended payload sent under our `ut_metadata` id.
    /// Bytes after the dictionary are the data of a `Data` message and
    /// are ignored for the other types.
    pub fn decode(payload: &'a [u8]) -> Result<MetadataMessage<'a>, ExtensionError> {
        let (root, used) = rustico_bencode::decode_prefix(payload)?;
        dict(&root)?;
        let msg_type = int_in(&root, "msg_type", i64::MIN, i64::MAX)?
            .ok_or(ExtensionError::MissingKey { key: "msg_type" })?;
        let piece = int_in(&root, "piece", 0, i64::from(u32::MAX))?
            .ok_or(ExtensionError::MissingKey { key: "piece" })? as u32;
        match msg_type {
            0 => Ok(MetadataMessage::Request { piece }),
            1 => {
                let total_size = int_in(&root, "total_size", 0, i64::MAX)?
                    .ok_or(ExtensionError::MissingKey { key: "total_size" })?
                    as u64;
                Ok(MetadataMessage::Data {
                    piece,
                    total_size,
                    data: payload.get(used..).unwrap_or(&[]),
                })
            }
            2 => Ok(MetadataMessage::Reject { piece }),
            msg_type => Err(ExtensionError::UnknownMetadataType { msg_type }),
        }
    }

    /// Appends the payload (dictionary, then data for `Data`) to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let (msg_type, piece) = match self {
            MetadataMessage::Request { piece } => (0, piece),
            MetadataMessage::Data { piece, .. } => (1, piece),
            MetadataMessage::Reject { piece } => (2, piece),
        };
        out.push(b'd');
        encode::bytes(out, b"msg_type");
        encode::integer(out, msg_type);
        encode::bytes(out, b"piece");
        encode::integer(out, i64::from(*piece));
        if let MetadataMessage::Data {
            total_size, data, ..
        } = self
        {
            encode::bytes(out, b"total_size");
            encode::integer(out, (*total_size).min(i64::MAX as u64) as i64);
            out.push(b'e');
            out.extend_from_slice(data);
        } else {
            out.push(b'e');
        }
    }

    /// Appends the whole extended message, sent under the peer's
    /// `ut_metadata` id.
    pub fn encode_message(&self, remote_id: u8, out: &mut Vec<u8>) {
        encode_extended(out, remote_id, |out| self.encode(out));
    }
}
