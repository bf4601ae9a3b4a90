//! [`InfoHash`] (the SHA-1 that names a v1 torrent), [`InfoHashV2`] (the
//! SHA-256 of BEP 52) and [`InfoHashes`] (both, for hybrids).

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
    #[error("an info-hash is 40 hex or 32 base32 characters (v2: 64 hex), not {len}")]
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
    /// A `btmh` multihash that is not SHA-256 (does not start with `1220`).
    #[error("not a SHA-256 multihash (must start with `1220`)")]
    NotSha256Multihash,
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

/// The v2 info-hash (BEP 52): SHA-256 of the bencoded info dictionary,
/// exactly as the bytes appear in the `.torrent` file.
///
/// Prints as 64 lowercase hex digits. On the wire (handshake, tracker,
/// DHT) it is [`truncated`](InfoHashV2::truncated) to its first 20 bytes.
///
/// ```
/// use rustico_metainfo::{InfoHash, InfoHashV2};
///
/// let hash = InfoHashV2::of_info_bytes(b"d4:name1:ae");
/// let again: InfoHashV2 = hash.to_string().parse()?;
/// assert_eq!(hash, again);
/// assert_eq!(hash.to_string().len(), 64);
/// assert_eq!(hash.truncated().as_bytes()[..], hash.as_bytes()[..20]);
/// assert_eq!(hash.to_multihash_hex(), format!("1220{hash}"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct InfoHashV2(pub [u8; 32]);

impl InfoHashV2 {
    /// The v2 info-hash with these 32 bytes.
    pub const fn new(bytes: [u8; 32]) -> InfoHashV2 {
        InfoHashV2(bytes)
    }

    /// SHA-256 of `info_bytes`, the bencoded info dictionary.
    pub fn of_info_bytes(info_bytes: &[u8]) -> InfoHashV2 {
        InfoHashV2(<sha2::Sha256 as sha2::Digest>::digest(info_bytes).into())
    }

    /// The 32 bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The first 20 bytes: what a v2 torrent's handshake, tracker
    /// announces and DHT lookups carry (BEP 52), as an [`InfoHash`].
    pub fn truncated(&self) -> InfoHash {
        let mut out = [0u8; 20];
        out.copy_from_slice(&self.0[..20]);
        InfoHash(out)
    }

    /// Parses 64 hex digits (either case).
    pub fn from_hex(text: &str) -> Result<InfoHashV2, ParseInfoHashError> {
        let bytes = text.as_bytes();
        if bytes.len() != 64 {
            return Err(ParseInfoHashError::BadLength { len: bytes.len() });
        }
        let mut out = [0u8; 32];
        for (i, pair) in bytes.chunks_exact(2).enumerate() {
            let hi = hex_value(pair[0]).ok_or(ParseInfoHashError::BadHexDigit { offset: 2 * i })?;
            let lo =
                hex_value(pair[1]).ok_or(ParseInfoHashError::BadHexDigit { offset: 2 * i + 1 })?;
            out[i] = (hi << 4) | lo;
        }
        Ok(InfoHashV2(out))
    }

    /// Parses the multihash hex of a `btmh` magnet link: `1220` (SHA-256,
    /// 32 bytes) followed by 64 hex digits.
    pub fn from_multihash_hex(text: &str) -> Result<InfoHashV2, ParseInfoHashError> {
        match text.get(..4) {
            Some("1220") => {
                InfoHashV2::from_hex(text.get(4..).unwrap_or_default()).map_err(|e| match e {
                    ParseInfoHashError::BadHexDigit { offset } => {
                        ParseInfoHashError::BadHexDigit { offset: offset + 4 }
                    }
                    ParseInfoHashError::BadLength { .. } => {
                        ParseInfoHashError::BadLength { len: text.len() }
                    }
                    other => other,
                })
            }
            _ if text.len() != 68 => Err(ParseInfoHashError::BadLength { len: text.len() }),
            _ => Err(ParseInfoHashError::NotSha256Multihash),
        }
    }

    /// `1220` followed by the 64 hex digits: the multihash form of a
    /// `btmh` magnet link.
    pub fn to_multihash_hex(&self) -> String {
        format!("1220{self}")
    }
}

impl FromStr for InfoHashV2 {
    type Err = ParseInfoHashError;

    /// 64 hex digits, or 68 starting with the multihash prefix `1220`.
    fn from_str(text: &str) -> Result<InfoHashV2, ParseInfoHashError> {
        match text.len() {
            68 => InfoHashV2::from_multihash_hex(text),
            _ => InfoHashV2::from_hex(text),
        }
    }
}

impl fmt::Display for InfoHashV2 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&Hex(&self.0), f)
    }
}

impl fmt::Debug for InfoHashV2 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InfoHashV2({self})")
    }
}

impl From<[u8; 32]> for InfoHashV2 {
    fn from(bytes: [u8; 32]) -> InfoHashV2 {
        InfoHashV2(bytes)
    }
}

impl AsRef<[u8]> for InfoHashV2 {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// The info-hashes of one torrent: v1 (SHA-1) for v1 and hybrid torrents,
/// v2 (SHA-256) for v2 and hybrid torrents. At least one is present.
///
/// ```
/// use rustico_metainfo::{InfoHash, InfoHashV2, InfoHashes};
///
/// let v2 = InfoHashV2::of_info_bytes(b"d4:name1:ae");
/// let v2_only = InfoHashes { v1: None, v2: Some(v2) };
/// // The swarm of a v2-only torrent is found under the truncated v2 hash.
/// assert_eq!(v2_only.swarm_hashes(), vec![v2.truncated()]);
/// let hybrid = InfoHashes { v1: Some(InfoHash::of_info_bytes(b"d4:name1:ae")), v2: Some(v2) };
/// assert_eq!(hybrid.swarm_hashes().len(), 2);
/// assert_eq!(hybrid.primary(), hybrid.v1.unwrap());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct InfoHashes {
    /// SHA-1 of the info dictionary, for a torrent with a v1 part.
    pub v1: Option<InfoHash>,
    /// SHA-256 of the info dictionary, for a torrent with a v2 part.
    pub v2: Option<InfoHashV2>,
}

impl InfoHashes {
    /// Both hashes of an info dictionary's bytes, keeping those the
    /// torrent has (`v1`, `v2` say which parts it has).
    pub fn of_info_bytes(info_bytes: &[u8], v1: bool, v2: bool) -> InfoHashes {
        InfoHashes {
            v1: v1.then(|| InfoHash::of_info_bytes(info_bytes)),
            v2: v2.then(|| InfoHashV2::of_info_bytes(info_bytes)),
        }
    }

    /// The 20-byte hash that names the torrent where only one fits: the
    /// v1 hash when there is one (v1 and hybrid torrents), else the
    /// truncated v2 hash. (libtorrent 2's `info_hash()` differs: it
    /// prefers the truncated v2 hash for hybrids.)
    pub fn primary(&self) -> InfoHash {
        match (self.v1, self.v2) {
            (Some(v1), _) => v1,
            (None, Some(v2)) => v2.truncated(),
            (None, None) => InfoHash::default(),
        }
    }

    /// Every 20-byte hash the torrent's swarm is known under, v1 first:
    /// a hybrid torrent announces under both (BEP 52).
    pub fn swarm_hashes(&self) -> Vec<InfoHash> {
        self.v1
            .into_iter()
            .chain(self.v2.map(|v2| v2.truncated()))
            .collect()
    }

    /// Whether `hash` (from a handshake or a tracker) names this torrent:
    /// the v1 hash or the truncated v2 hash.
    pub fn matches(&self, hash: &InfoHash) -> bool {
        self.v1.as_ref() == Some(hash) || self.v2.is_some_and(|v2| v2.truncated() == *hash)
    }
}

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
    fn v2_hex_and_multihash() {
        let h = InfoHashV2([0xcd; 32]);
        assert_eq!(h.to_string(), "cd".repeat(32));
        assert_eq!("CD".repeat(32).parse::<InfoHashV2>(), Ok(h));
        assert_eq!(h.to_multihash_hex().parse::<InfoHashV2>(), Ok(h));
        assert_eq!(h.truncated(), InfoHash([0xcd; 20]));
        assert_eq!(
            InfoHashV2::from_multihash_hex(&format!("1114{}", "cd".repeat(32))),
            Err(ParseInfoHashError::NotSha256Multihash)
        );
        assert_eq!(
            InfoHashV2::from_multihash_hex(&format!("1220{}", "cd".repeat(31))),
            Err(ParseInfoHashError::BadLength { len: 66 })
        );
        assert_eq!(
            InfoHashV2::from_multihash_hex(&format!("1220x{}", "d".repeat(63))),
            Err(ParseInfoHashError::BadHexDigit { offset: 4 })
        );
        let both = InfoHashes {
            v1: Some(InfoHash([1; 20])),
            v2: Some(h),
        };
        assert!(both.matches(&InfoHash([1; 20])));
        assert!(both.matches(&InfoHash([0xcd; 20])));
        assert!(!both.matches(&InfoHash([2; 20])));
        assert_eq!(
            both.swarm_hashes(),
            [InfoHash([1; 20]), InfoHash([0xcd; 20])]
        );
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
