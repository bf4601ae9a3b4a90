//! [`InfoHash`]: the SHA-1 that names a v1 torrent.

use std::fmt;
use std::str::FromStr;

use sha1::{Digest, Sha1};

/// The v1 info-hash: SHA-1 of the bencoded info dictionary, exactly as the
/// bytes appear in the `.torrent` file.
///
/// Prints as 40 lowercase hex digits; parses from hex (either case) or from
/// the 32-character base32 form that some magnet links use.
///
/// ```
/// use rustico_metainfo::InfoHash;
///
/// let hash: InfoHash = "c12fe1c06bba254a9dc9f519b335aa7c1367a88a".parse()?;
/// assert_eq!(hash.to_string(), "c12fe1c06bba254a9dc9f519b335aa7c1367a88a");
/// assert_eq!(hash.as_bytes()[0], 0xc1);
/// let same: InfoHash = "YEX6DQDLXISUVHOJ6UM3GNNKPQJWPKEK".parse()?;
/// assert_eq!(hash, same);
/// assert!(hash.url_encoded().starts_with("%c1%2f%e1%c0k%ba"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct InfoHash(pub [u8; 20]);

/// Why a string is not an info-hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseInfoHashError {
    /// Neither 40 (hex) nor 32 (base32) characters.
    #[error("an info-hash is 40 hex or 32 base32 characters, not {len}")]
    BadLength {
        /// The length given, in bytes.
        len: usize,
    },
    /// A character that is not a hex digit.
    #[error("not a hex digit at character {offset}")]
    BadHexDigit {
        /// Byte offset of the character.
        offset: usize,
    },
    /// A character outside the base32 alphabet (`A`-`Z`, `2`-`7`, either case).
    #[error("not a base32 character at character {offset}")]
    BadBase32Char {
        /// Byte offset of the character.
        offset: usize,
    },
}

impl InfoHash {
    /// The info-hash with these 20 bytes.
    pub const fn new(bytes: [u8; 20]) -> InfoHash {
        InfoHash(bytes)
    }

    /// SHA-1 of `info_bytes`, the bencoded info dictionary.
    pub fn of_info_bytes(info_bytes: &[u8]) -> InfoHash {
        InfoHash(Sha1::digest(info_bytes).into())
    }

    /// The 20 bytes (as sent in handshakes and tracker requests).
    pub const fn as_bytes(&self) -> &[u8; 20] {
        &self.0
    }

    /// Parses 40 hex digits (either case).
    pub fn from_hex(text: &str) -> Result<InfoHash, ParseInfoHashError> {
        let bytes = text.as_bytes();
        if bytes.len() != 40 {
            return Err(ParseInfoHashError::BadLength { len: bytes.len() });
        }
        let mut out = [0u8; 20];
        for (i, pair) in bytes.chunks_exact(2).enumerate() {
            let hi = hex_value(pair[0]).ok_or(ParseInfoHashError::BadHexDigit { offset: 2 * i })?;
            let lo =
                hex_value(pair[1]).ok_or(ParseInfoHashError::BadHexDigit { offset: 2 * i + 1 })?;
            out[i] = (hi << 4) | lo;
        }
        Ok(InfoHash(out))
    }

    /// Parses 32 base32 characters (RFC 4648 alphabet, either case, no padding).
    pub fn from_base32(text: &str) -> Result<InfoHash, ParseInfoHashError> {
        let bytes = text.as_bytes();
        if bytes.len() != 32 {
            return Err(ParseInfoHashError::BadLength { len: bytes.len() });
        }
        let mut out = [0u8; 20];
        // 32 characters of 5 bits are exactly 160 bits: 8 characters per 5 bytes.
        for (group, chars) in bytes.chunks_exact(8).enumerate() {
            let mut acc: u64 = 0;
            for (i, &c) in chars.iter().enumerate() {
                let v = base32_value(c).ok_or(ParseInfoHashError::BadBase32Char {
                    offset: group * 8 + i,
                })?;
                acc = (acc << 5) | u64::from(v);
            }
            let five = acc.to_be_bytes();
            out[group * 5..group * 5 + 5].copy_from_slice(&five[3..8]);
        }
        Ok(InfoHash(out))
    }

    /// 32 uppercase base32 characters.
    pub fn to_base32(&self) -> String {
        const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        let mut out = String::with_capacity(32);
        for five in self.0.chunks_exact(5) {
            let mut acc = [0u8; 8];
            acc[3..].copy_from_slice(five);
            let acc = u64::from_be_bytes(acc);
            for i in (0..8).rev() {
                out.push(char::from(ALPHABET[((acc >> (5 * i)) & 31) as usize]));
            }
        }
        out
    }

    /// The bytes percent-encoded for a tracker's `info_hash=` query
    /// parameter: unreserved characters (`A-Z a-z 0-9 - . _ ~`) as they
    /// are, every other byte as `%xx` (lowercase hex).
    pub fn url_encoded(&self) -> String {
        let mut out = String::with_capacity(60);
        for &b in &self.0 {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                out.push(char::from(b));
            } else {
                out.push('%');
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 15)]));
            }
        }
        out
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn base32_value(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a'),
        b'2'..=b'7' => Some(c - b'2' + 26),
        _ => None,
    }
}

impl FromStr for InfoHash {
    type Err = ParseInfoHashError;

    /// 40 characters are read as hex, 32 as base32.
    fn from_str(text: &str) -> Result<InfoHash, ParseInfoHashError> {
        match text.len() {
            32 => InfoHash::from_base32(text),
            _ => InfoHash::from_hex(text),
        }
    }
}

/// Bytes shown as lowercase hex digits, two per byte, with no allocation:
/// `format!("{}", hex(&bytes))`. For a bare hash (a piece hash, a peer
/// id) where an [`InfoHash`] would mislabel it.
///
/// ```
/// use rustico_metainfo::hex;
/// assert_eq!(hex(&[0x00, 0xab, 0x7f]).to_string(), "00ab7f");
/// assert_eq!(format!("{:?}", hex(b"\x01")), "01");
/// ```
pub fn hex(bytes: &[u8]) -> Hex<'_> {
    Hex(bytes)
}

/// What [`hex`] returns: `Display` (and `Debug`) as lowercase hex.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Hex<'a>(pub &'a [u8]);

impl fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for InfoHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&Hex(&self.0), f)
    }
}

impl fmt::Debug for InfoHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InfoHash({self})")
    }
}

impl From<[u8; 20]> for InfoHash {
    fn from(bytes: [u8; 20]) -> InfoHash {
        InfoHash(bytes)
    }
}

impl From<InfoHash> for [u8; 20] {
    fn from(hash: InfoHash) -> [u8; 20] {
        hash.0
    }
}

impl AsRef<[u8]> for InfoHash {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn hex_round_trip_and_errors() {
        let h = InfoHash([0xab; 20]);
        assert_eq!(h.to_string(), "ab".repeat(20));
        assert_eq!("AB".repeat(20).parse::<InfoHash>(), Ok(h));
        assert_eq!(
            InfoHash::from_hex(&"ab".repeat(19)),
            Err(ParseInfoHashError::BadLength { len: 38 })
        );
        let mut bad = "ab".repeat(20);
        bad.replace_range(7..8, "g");
        assert_eq!(
            InfoHash::from_hex(&bad),
            Err(ParseInfoHashError::BadHexDigit { offset: 7 })
        );
        assert_eq!(
            InfoHash::from_base32(&"A".repeat(31)),
            Err(ParseInfoHashError::BadLength { len: 31 })
        );
        assert_eq!(
            InfoHash::from_base32(&format!("{}1", "A".repeat(31))),
            Err(ParseInfoHashError::BadBase32Char { offset: 31 })
        );
        // A multi-byte character must not panic on a char boundary.
        assert!(InfoHash::from_hex(&"é".repeat(20)).is_err());
    }

    #[test]
    fn url_encoding_keeps_only_unreserved() {
        let mut bytes = [0u8; 20];
        bytes[..6].copy_from_slice(b"aZ9-~ ");
        assert_eq!(&InfoHash(bytes).url_encoded()[..8], "aZ9-~%20");
    }

    proptest! {
        #[test]
        fn base32_and_hex_round_trip(bytes in any::<[u8; 20]>()) {
            let h = InfoHash(bytes);
            prop_assert_eq!(InfoHash::from_base32(&h.to_base32()), Ok(h));
            prop_assert_eq!(InfoHash::from_base32(&h.to_base32().to_lowercase()), Ok(h));
            prop_assert_eq!(h.to_string().parse::<InfoHash>(), Ok(h));
        }

        #[test]
        fn parsing_never_panics(text in ".{0,50}") {
            let _ = text.parse::<InfoHash>();
        }
    }
}
