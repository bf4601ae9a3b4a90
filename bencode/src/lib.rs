//! Bencode, the encoding of `.torrent` files, tracker responses and
//! extension messages: a zero-copy decoder that remembers where every value
//! came from, and an encoder that always writes canonical bytes.
//!
//! ```
//! use rustico_bencode::{decode, encode, OwnedValue};
//!
//! // Decode: byte strings borrow from the input, and every value keeps its
//! // exact input bytes (a .torrent's info-hash is the SHA-1 of these).
//! let torrent = b"d4:infod6:lengthi12e4:name5:a.txtee";
//! let root = decode(torrent)?;
//! let info = root.get(b"info").ok_or("no info")?;
//! assert_eq!(info.raw(), b"d6:lengthi12e4:name5:a.txte");
//! assert_eq!(info.get(b"name").and_then(|v| v.as_str()), Some("a.txt"));
//!
//! // Build owned values and encode them canonically (keys sorted).
//! let handshake = OwnedValue::dict([
//!     ("v", OwnedValue::from("rustico 0.1")),
//!     ("m", OwnedValue::dict([("ut_metadata", OwnedValue::from(1))])),
//! ]);
//! assert_eq!(encode(&handshake), b"d1:md11:ut_metadatai1ee1:v11:rustico 0.1e");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Map
//! - [`decode`], [`decode_strict`], [`decode_prefix`] and [`Decoder`]:
//!   bytes to a borrowed [`Value`] tree; lenient or strict, with a nesting
//!   limit. Errors are an [`Error`]: an [`ErrorKind`] and a byte offset.
//! - [`Value`], [`Kind`], [`Dict`]: the borrowed tree.
//! - [`Decoder::tokens`], [`Tokens`], [`Token`]: the same decoder as a pull
//!   parser that builds nothing, for hot paths and validation.
//! - [`OwnedValue`]: values to build and keep.
//! - [`encode()`], [`encode_into`], [`Encode`] and the item writers
//!   [`encode::integer`] and [`encode::bytes`]: canonical output.
//!
//! No I/O, no `unsafe`, no dependencies beyond `thiserror`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod decode;
pub mod encode;
mod error;
mod owned;
mod tokens;
mod value;

pub use decode::{decode, decode_prefix, decode_strict, Decoder, DEFAULT_MAX_DEPTH, MAX_DEPTH_CAP};
pub use encode::{encode, encode_into, Encode};
pub use error::{Error, ErrorKind};
pub use owned::{OwnedDict, OwnedValue};
pub use tokens::{Token, Tokens};
pub use value::{Dict, Kind, Value};

/// Shows bytes as a string where printable, escaped elsewhere.
pub(crate) struct DebugBytes<'a>(pub(crate) &'a [u8]);

impl std::fmt::Debug for DebugBytes<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("b\"")?;
        for chunk in self.0.utf8_chunks() {
            for c in chunk.valid().chars() {
                write!(f, "{}", c.escape_debug())?;
            }
            for byte in chunk.invalid() {
                write!(f, "\\x{byte:02x}")?;
            }
        }
        f.write_str("\"")
    }
}
