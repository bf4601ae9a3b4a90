//! [`Magnet`]: BEP 9 magnet links.

use std::fmt;
use std::str::FromStr;

use url::form_urlencoded;

use crate::info_hash::{InfoHash, InfoHashV2, InfoHashes, ParseInfoHashError};

/// A magnet link (BEP 9): an info-hash plus hints for finding peers.
/// BEP 52 links name a v2 torrent with `xt=urn:btmh:1220<64 hex>`, alone
/// (v2-only) or beside `xt=urn:btih:` (hybrid).
///
/// ```
/// use rustico_metainfo::Magnet;
///
/// let link = "magnet:?xt=urn:btih:c12fe1c06bba254a9dc9f519b335aa7c1367a88a\
///             &dn=Some+Name&tr=http%3A%2F%2F127.0.0.1%3A6969%2Fannounce&x.pe=127.0.0.1:6881";
/// let magnet = Magnet::parse(link)?;
/// assert_eq!(magnet.display_name.as_deref(), Some("Some Name"));
/// assert_eq!(magnet.trackers, ["http://127.0.0.1:6969/announce"]);
/// assert_eq!(magnet.peers, ["127.0.0.1:6881"]);
/// assert_eq!(Magnet::parse(&magnet.to_string())?, magnet);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Magnet {
    /// From `xt=urn:btih:` (40 hex or 32 base32 characters); for a link
    /// with only `xt=urn:btmh:` (a v2-only torrent), the v2 hash
    /// truncated to 20 bytes, the name its swarm is found under.
    pub info_hash: InfoHash,
    /// From `xt=urn:btmh:` (multihash `1220` and 64 hex digits): the
    /// BEP 52 v2 info-hash.
    pub info_hash_v2: Option<InfoHashV2>,
    /// `dn`: a name to show until the metadata arrives.
    pub display_name: Option<String>,
    /// Every `tr` (and `tr.N`), in order.
    pub trackers: Vec<String>,
    /// Every `x.pe`: `host:port`, `1.2.3.4:port` or `[::1]:port`.
    pub peers: Vec<String>,
    /// Every `ws`: BEP 19 web seeds.
    pub web_seeds: Vec<String>,
}

impl Magnet {
    /// A magnet link naming the torrent by these hashes: `btih` for v1,
    /// `btmh` for v2, both for a hybrid. `info_hash` becomes
    /// [`InfoHashes::primary`].
    pub fn from_hashes(hashes: InfoHashes) -> Magnet {
        let mut magnet = Magnet::new(hashes.primary());
        magnet.info_hash_v2 = hashes.v2;
        magnet
    }

    /// The hashes the link names: `v1` when it has `xt=urn:btih:`, `v2`
    /// when it has `xt=urn:btmh:`.
    pub fn info_hashes(&self) -> InfoHashes {
        let v2_only = self
            .info_hash_v2
            .is_some_and(|v2| v2.truncated() == self.info_hash);
        InfoHashes {
            v1: (!v2_only).then_some(self.info_hash),
            v2: self.info_hash_v2,
        }
    }
}

/// Why a magnet link was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MagnetError {
    /// Does not start with `magnet:?`.
    #[error("not a magnet link (must start with `magnet:?`)")]
    NotMagnet,
    /// No `xt=urn:btih:` or `xt=urn:btmh:` parameter.
    #[error("no `xt=urn:btih:` or `xt=urn:btmh:` info-hash")]
    MissingInfoHash,
    /// An `xt=urn:btmh:` value that is not a SHA-256 multihash.
    #[error("bad v2 info-hash `{value}`: {source}")]
    BadInfoHashV2 {
        /// The value given.
        value: String,
        /// Why it is not a v2 info-hash.
        source: ParseInfoHashError,
    },
    /// Two different `urn:btmh:` hashes.
    #[error("two different v2 info-hashes: {first} and {second}")]
    ConflictingInfoHashesV2 {
        /// The first.
        first: InfoHashV2,
        /// The other.
        second: InfoHashV2,
    },
    /// An `xt=urn:btih:` value that is not an info-hash.
    #[error("bad info-hash `{value}`: {source}")]
    BadInfoHash {
        /// The value given.
        value: String,
        /// Why it is not an info-hash.
        source: ParseInfoHashError,
    },
    /// Two different `urn:btih:` hashes.
    #[error("two different info-hashes: {first} and {second}")]
    ConflictingInfoHashes {
        /// The first.
        first: InfoHash,
        /// The other.
        second: InfoHash,
    },
    /// An `x.pe` value that is not `host:port`.
    #[error("bad peer address `{value}` (expected host:port)")]
    BadPeer {
        /// The value given.
        value: String,
    },
}

impl Magnet {
    /// A magnet link with only an info-hash.
    pub fn new(info_hash: InfoHash) -> Magnet {
        Magnet {
            info_hash,
            info_hash_v2: None,
            display_name: None,
            trackers: Vec::new(),
            peers: Vec::new(),
            web_seeds: Vec::new(),
        }
    }

    /// Parses a magnet link. Parameters are percent-decoded (`+` is a
    /// space); unknown parameters are ignored; indexed forms such as
    /// `tr.1` and `xt.1` count as their base name.
    pub fn parse(link: &str) -> Result<Magnet, MagnetError> {
        let query = link
            .get(..8)
            .filter(|scheme| scheme.eq_ignore_ascii_case("magnet:?"))
            .and_then(|_| link.get(8..))
            .ok_or(MagnetError::NotMagnet)?;
        let mut info_hash: Option<InfoHash> = None;
        let mut info_hash_v2: Option<InfoHashV2> = None;
        let mut magnet = Magnet::new(InfoHash::default());
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            // `tr.1`, `xt.2`: BEP 9 allows numbered copies of a key.
            let base = match key.split_once('.') {
                Some((base, index)) if index.bytes().all(|b| b.is_ascii_digit()) => base,
                _ => &key,
            };
            match base {
                "xt" => {
                    if let Some(hash) = strip_prefix_ignore_case(&value, "urn:btih:") {
                        let hash = hash.parse::<InfoHash>().map_err(|source| {
                            MagnetError::BadInfoHash {
                                value: hash.to_string(),
                                source,
                            }
                        })?;
                        match info_hash {
                            Some(first) if first != hash => {
                                return Err(MagnetError::ConflictingInfoHashes {
                                    first,
                                    second: hash,
                                })
                            }
                            _ => info_hash = Some(hash),
                        }
                    } else if let Some(hash) = strip_prefix_ignore_case(&value, "urn:btmh:") {
                        let hash = InfoHashV2::from_multihash_hex(hash).map_err(|source| {
                            MagnetError::BadInfoHashV2 {
                                value: hash.to_string(),
                                source,
                            }
                        })?;
                        match info_hash_v2 {
                            Some(first) if first != hash => {
                                return Err(MagnetError::ConflictingInfoHashesV2 {
                                    first,
                                    second: hash,
                                })
                            }
                            _ => info_hash_v2 = Some(hash),
                        }
                    }
                }
                "dn" => magnet.display_name = Some(value.into_owned()),
                "tr" => magnet.trackers.push(value.into_owned()),
                "ws" => magnet.web_seeds.push(value.into_owned()),
                "x.pe" => {
                    if !is_peer_address(&value) {
                        return Err(MagnetError::BadPeer {
                            value: value.into_owned(),
                        });
                    }
                    magnet.peers.push(value.into_owned());
                }
                _ => {}
            }
        }
        magnet.info_hash_v2 = info_hash_v2;
        magnet.info_hash = match (info_hash, info_hash_v2) {
            (Some(hash), _) => hash,
            (None, Some(v2)) => v2.truncated(),
            (None, None) => return Err(MagnetError::MissingInfoHash),
        };
        Ok(magnet)
    }
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| text.get(prefix.len()..))
        .flatten()
}

/// `host:port` with a non-empty host and a port from 1 to 65535; an IPv6
/// host is bracketed.
fn is_peer_address(text: &str) -> bool {
    let Some((host, port)) = text.rsplit_once(':') else {
        return false;
    };
    let port_ok = port.parse::<u16>().is_ok_and(|p| p != 0);
    let host_ok = if let Some(inner) = host.strip_prefix('[') {
        inner
            .strip_suffix(']')
            .is_some_and(|ip| ip.parse::<std::net::Ipv6Addr>().is_ok())
    } else {
        !host.is_empty() && !host.contains(':') && !host.contains(char::is_whitespace)
    };
    port_ok && host_ok
}

impl FromStr for Magnet {
    type Err = MagnetError;

    fn from_str(link: &str) -> Result<Magnet, MagnetError> {
        Magnet::parse(link)
    }
}

impl fmt::Display for Magnet {
    /// `magnet:?xt=urn:btih:<hex>` and/or `xt=urn:btmh:1220<hex>` (v1
    /// first, as libtorrent writes them), then `dn`, every `tr`, `ws`
    /// and `x.pe`, each percent-encoded.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hashes = self.info_hashes();
        f.write_str("magnet:?")?;
        match (hashes.v1, hashes.v2) {
            (Some(v1), Some(v2)) => write!(f, "xt=urn:btih:{v1}&xt=urn:btmh:1220{v2}")?,
            (None, Some(v2)) => write!(f, "xt=urn:btmh:1220{v2}")?,
            _ => write!(f, "xt=urn:btih:{}", self.info_hash)?,
        }
        let mut param = |key: &str, value: &str| -> fmt::Result {
            write!(f, "&{key}=")?;
            for piece in form_urlencoded::byte_serialize(value.as_bytes()) {
                f.write_str(piece)?;
            }
            Ok(())
        };
        if let Some(name) = &self.display_name {
            param("dn", name)?;
        }
        for tracker in &self.trackers {
            param("tr", tracker)?;
        }
        for seed in &self.web_seeds {
            param("ws", seed)?;
        }
        // Peer addresses go out as written (libtorrent does not
        // percent-decode `x.pe`); anything outside host characters, `:`
        // and brackets is escaped, so a link stays one link.
        for peer in &self.peers {
            f.write_str("&x.pe=")?;
            for &b in peer.as_bytes() {
                if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':' | b'[' | b']')
                {
                    write!(f, "{}", char::from(b))?;
                } else {
                    write!(f, "%{b:02X}")?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const HEX: &str = "c12fe1c06bba254a9dc9f519b335aa7c1367a88a";

    #[test]
    fn base32_hash_and_indexed_keys() {
        let hash: InfoHash = HEX.parse().unwrap();
        let link = format!(
            "MAGNET:?xt.1=urn:BTIH:{}&tr.1=udp%3A%2F%2Fa%3A1&tr.2=http://b/&ws=http://w/&x.pe=[::1]:5&x.pe=host:7",
            hash.to_base32()
        );
        let m = Magnet::parse(&link).unwrap();
        assert_eq!(m.info_hash, hash);
        assert_eq!(m.trackers, ["udp://a:1", "http://b/"]);
        assert_eq!(m.web_seeds, ["http://w/"]);
        assert_eq!(m.peers, ["[::1]:5", "host:7"]);
        assert_eq!(m.display_name, None);
    }

    #[test]
    fn errors() {
        assert_eq!(Magnet::parse("http://x"), Err(MagnetError::NotMagnet));
        assert_eq!(
            Magnet::parse("magnet:?dn=x"),
            Err(MagnetError::MissingInfoHash)
        );
        let v2_only =
            Magnet::parse(&format!("magnet:?xt=urn:btmh:1220{}", "ab".repeat(32))).unwrap();
        assert_eq!(v2_only.info_hash_v2, Some(InfoHashV2([0xab; 32])));
        assert_eq!(v2_only.info_hash, InfoHash([0xab; 20]));
        assert_eq!(v2_only.info_hashes().v1, None);
        assert_eq!(Magnet::parse(&v2_only.to_string()), Ok(v2_only));
        assert!(matches!(
            Magnet::parse(&format!("magnet:?xt=urn:btmh:1114{}", "ab".repeat(32))),
            Err(MagnetError::BadInfoHashV2 {
                source: ParseInfoHashError::NotSha256Multihash,
                ..
            })
        ));
        assert!(matches!(
            Magnet::parse(&format!(
                "magnet:?xt=urn:btmh:1220{}&xt=urn:btmh:1220{}",
                "ab".repeat(32),
                "cd".repeat(32)
            )),
            Err(MagnetError::ConflictingInfoHashesV2 { .. })
        ));
        assert!(matches!(
            Magnet::parse("magnet:?xt=urn:btih:abc"),
            Err(MagnetError::BadInfoHash { .. })
        ));
        assert!(matches!(
            Magnet::parse(&format!(
                "magnet:?xt=urn:btih:{HEX}&xt=urn:btih:{}",
                "00".repeat(20)
            )),
            Err(MagnetError::ConflictingInfoHashes { .. })
        ));
        for bad in ["1.2.3.4", "host:0", ":80", "[::1:80", "a b:1", "::1:80"] {
            assert_eq!(
                Magnet::parse(&format!("magnet:?xt=urn:btih:{HEX}&x.pe={bad}")),
                Err(MagnetError::BadPeer { value: bad.into() }),
                "{bad}"
            );
        }
        // Hybrid magnet links carry both; the v1 hash is used.
        let both = format!(
            "magnet:?xt=urn:btih:{HEX}&xt=urn:btmh:1220{}",
            "ab".repeat(32)
        );
        let both = Magnet::parse(&both).unwrap();
        assert_eq!(both.info_hash.to_string(), HEX);
        assert_eq!(both.info_hashes().v1, Some(HEX.parse().unwrap()));
        assert_eq!(both.info_hashes().v2, Some(InfoHashV2([0xab; 32])));
        assert_eq!(Magnet::parse(&both.to_string()), Ok(both));
    }

    proptest! {
        #[test]
        fn display_parse_round_trip(
            bytes in any::<[u8; 20]>(),
            v2 in proptest::option::of(any::<[u8; 32]>()),
            name in proptest::option::of(".{0,20}"),
            trackers in proptest::collection::vec(".{0,20}", 0..3),
            seeds in proptest::collection::vec(".{0,20}", 0..3),
            ports in proptest::collection::vec(1u16.., 0..3),
        ) {
            let magnet = Magnet {
                info_hash: InfoHash(bytes),
                info_hash_v2: v2.map(InfoHashV2),
                display_name: name,
                trackers,
                peers: ports.iter().map(|p| format!("127.0.0.1:{p}")).collect(),
                web_seeds: seeds,
            };
            prop_assert_eq!(Magnet::parse(&magnet.to_string()), Ok(magnet));
        }

        #[test]
        fn arbitrary_text_never_panics(text in "magnet:\\?.{0,80}") {
            let _ = Magnet::parse(&text);
        }
    }
}
