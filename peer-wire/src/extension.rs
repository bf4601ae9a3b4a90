//! BEP 10, the extension protocol: the extension handshake and the
//! mapping between extension names and message ids in both directions.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use rustico_bencode::{encode, Value};

use crate::message::id;

/// Extended message id of the extension handshake.
pub const HANDSHAKE_ID: u8 = 0;

/// BEP 9's extension name.
pub const UT_METADATA: &str = "ut_metadata";

/// BEP 11's extension name.
pub const UT_PEX: &str = "ut_pex";

/// A bad extension payload (handshake, `ut_metadata` or `ut_pex`).
/// Offsets count from the start of the extension payload (after the
/// extended id byte).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExtensionError {
    /// The payload is not bencode.
    #[error("bad bencode in extension payload: {0}")]
    Bencode(#[from] rustico_bencode::Error),
    /// The payload is bencode but not a dictionary.
    #[error("extension payload is a {found}, expected a dictionary (at byte 0)")]
    NotADict {
        /// The type found.
        found: &'static str,
    },
    /// A required key is absent.
    #[error("extension payload lacks required key {key:?}")]
    MissingKey {
        /// The key.
        key: &'static str,
    },
    /// A key whose value has the wrong type or is out of range.
    #[error("extension key {key:?} has a bad value at byte {offset}: {why}")]
    BadValue {
        /// The key.
        key: &'static str,
        /// Byte offset of the value in the payload.
        offset: usize,
        /// What was expected.
        why: &'static str,
    },
    /// A `ut_metadata` message type this crate does not know (BEP 9 says
    /// to ignore these).
    #[error("unknown ut_metadata msg_type {msg_type}")]
    UnknownMetadataType {
        /// The `msg_type` value.
        msg_type: i64,
    },
}

pub(crate) fn dict<'v, 'a>(
    value: &'v Value<'a>,
) -> Result<&'v rustico_bencode::Dict<'a>, ExtensionError> {
    value.as_dict().ok_or(ExtensionError::NotADict {
        found: value.type_name(),
    })
}

/// An integer value of `key` in `[min, max]`, or `None` when absent.
pub(crate) fn int_in(
    value: &Value<'_>,
    key: &'static str,
    min: i64,
    max: i64,
) -> Result<Option<i64>, ExtensionError> {
    let Some(v) = value.get(key.as_bytes()) else {
        return Ok(None);
    };
    match v.as_integer() {
        Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
        Some(_) => Err(ExtensionError::BadValue {
            key,
            offset: v.offset(),
            why: "integer out of range",
        }),
        None => Err(ExtensionError::BadValue {
            key,
            offset: v.offset(),
            why: "expected an integer",
        }),
    }
}

/// A byte-string value of `key`, or `None` when absent.
pub(crate) fn bytes_of<'a>(
    value: &Value<'a>,
    key: &'static str,
) -> Result<Option<&'a [u8]>, ExtensionError> {
    let Some(v) = value.get(key.as_bytes()) else {
        return Ok(None);
    };
    v.as_bytes().map(Some).ok_or(ExtensionError::BadValue {
        key,
        offset: v.offset(),
        why: "expected a byte string",
    })
}

/// Appends a whole extended message (length prefix, id 20, `ext_id`, then
/// what `payload` writes) to `out`, without an intermediate buffer.
pub fn encode_extended(out: &mut Vec<u8>, ext_id: u8, payload: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[0, 0, 0, 0, id::EXTENDED, ext_id]);
    payload(out);
    let len = (out.len() - start - 4) as u32;
    out[start..start + 4].copy_from_slice(&len.to_be_bytes());
}

/// The BEP 10 extension handshake (extended message id 0).
///
/// Unknown keys are ignored; keys this type knows must have the right
/// type, or decoding fails with the key and its byte offset.
///
/// ```
/// use rustico_peer_wire::ExtensionHandshake;
///
/// let mut ours = ExtensionHandshake::default();
/// ours.extensions.insert("ut_metadata".into(), 1);
/// ours.client = Some("rustico 0.1".into());
/// let mut payload = Vec::new();
/// ours.encode(&mut payload);
/// assert_eq!(payload, b"d1:md11:ut_metadatai1ee1:v11:rustico 0.1e");
/// assert_eq!(ExtensionHandshake::decode(&payload)?, ours);
/// # Ok::<(), rustico_peer_wire::ExtensionError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtensionHandshake {
    /// `m`: extension names and the ids the sender wants to receive them
    /// under. Id 0 means the sender disables that extension.
    pub extensions: BTreeMap<String, u8>,
    /// `p`: the sender's TCP listen port.
    pub listen_port: Option<u16>,
    /// `v`: the sender's client name and version.
    pub client: Option<String>,
    /// `yourip`: the receiver's address as the sender sees it.
    pub your_ip: Option<IpAddr>,
    /// `reqq`: how many outstanding requests the sender accepts.
    pub reqq: Option<u32>,
    /// `metadata_size` (BEP 9): size of the info dictionary in bytes.
    pub metadata_size: Option<u64>,
}

impl ExtensionHandshake {
    /// Decodes the payload of extended message 0.
    pub fn decode(payload: &[u8]) -> Result<ExtensionHandshake, ExtensionError> {
        let root = rustico_bencode::decode(payload)?;
        dict(&root)?;
        let mut out = ExtensionHandshake::default();
        if let Some(m) = root.get(b"m") {
            let entries = m.as_dict().ok_or(ExtensionError::BadValue {
                key: "m",
                offset: m.offset(),
                why: "expected a dictionary",
            })?;
            for (name, value) in entries.iter() {
                // Lenient: an entry we cannot read (non-UTF-8 name, id out
                // of range) names an extension we cannot use anyway.
                let (Ok(name), Some(id)) = (
                    std::str::from_utf8(name),
                    value.as_integer().and_then(|n| u8::try_from(n).ok()),
                ) else {
                    continue;
                };
                out.extensions.insert(name.to_owned(), id);
            }
        }
        out.listen_port = int_in(&root, "p", 0, 65535)?.map(|p| p as u16);
        out.reqq = int_in(&root, "reqq", 0, i64::from(u32::MAX))?.map(|n| n as u32);
        out.metadata_size = int_in(&root, "metadata_size", 0, i64::MAX)?.map(|n| n as u64);
        out.client = bytes_of(&root, "v")?.map(|v| String::from_utf8_lossy(v).into_owned());
        if let Some(ip) = bytes_of(&root, "yourip")? {
            out.your_ip = Some(match ip {
                &[a, b, c, d] => IpAddr::V4(Ipv4Addr::new(a, b, c, d)),
                _ => match <[u8; 16]>::try_from(ip) {
                    Ok(v6) => IpAddr::V6(Ipv6Addr::from(v6)),
                    Err(_) => {
                        return Err(ExtensionError::BadValue {
                            key: "yourip",
                            offset: root.get(b"yourip").map_or(0, |v| v.offset()),
                            why: "expected 4 or 16 bytes",
                        })
                    }
                },
            });
        }
        Ok(out)
    }

    /// Appends the bencoded handshake (keys in canonical order) to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(b'd');
        if !self.extensions.is_empty() {
            encode::bytes(out, b"m");
            out.push(b'd');
            for (name, id) in &self.extensions {
                encode::bytes(out, name.as_bytes());
                encode::integer(out, i64::from(*id));
            }
            out.push(b'e');
        }
        if let Some(size) = self.metadata_size {
            encode::bytes(out, b"metadata_size");
            encode::integer(out, size.min(i64::MAX as u64) as i64);
        }
        if let Some(port) = self.listen_port {
            encode::bytes(out, b"p");
            encode::integer(out, i64::from(port));
        }
        if let Some(reqq) = self.reqq {
            encode::bytes(out, b"reqq");
            encode::integer(out, i64::from(reqq));
        }
        if let Some(client) = &self.client {
            encode::bytes(out, b"v");
            encode::bytes(out, client.as_bytes());
        }
        match self.your_ip {
            Some(IpAddr::V4(ip)) => {
                encode::bytes(out, b"yourip");
                encode::bytes(out, &ip.octets());
            }
            Some(IpAddr::V6(ip)) => {
                encode::bytes(out, b"yourip");
                encode::bytes(out, &ip.octets());
            }
            None => {}
        }
        out.push(b'e');
    }

    /// Appends the whole extended message (length prefix, ids, payload).
    pub fn encode_message(&self, out: &mut Vec<u8>) {
        encode_extended(out, HANDSHAKE_ID, |out| self.encode(out));
    }
}

/// Extension names and ids in both directions of one connection.
///
/// Under BEP 10 each side picks the ids it wants to *receive* an
/// extension's messages under, and announces them in its handshake's `m`.
/// So incoming extended messages carry our ids ([`ExtensionMap::local_name`])
/// and outgoing ones must carry the peer's ([`ExtensionMap::remote_id`]).
///
/// ```
/// use rustico_peer_wire::{ExtensionHandshake, ExtensionMap};
///
/// let mut map = ExtensionMap::new(&["ut_metadata", "ut_pex"]);
/// let ours = map.handshake();
/// assert_eq!(ours.extensions["ut_pex"], 2);
///
/// let mut theirs = ExtensionHandshake::default();
/// theirs.extensions.insert("ut_metadata".into(), 3);
/// map.handle_remote_handshake(&theirs);
/// assert_eq!(map.remote_id("ut_metadata"), Some(3)); // send with 3
/// assert_eq!(map.remote_id("ut_pex"), None); // peer lacks it
/// assert_eq!(map.local_name(1), Some("ut_metadata")); // receive 1
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtensionMap {
    /// Our extensions; the id of `local[i]` is `i + 1`.
    local: Vec<String>,
    remote: BTreeMap<String, u8>,
}

impl ExtensionMap {
    /// A map for the extensions we support, given ids 1, 2, ... in order.
    /// At most 255 names are used.
    pub fn new(local: &[&str]) -> ExtensionMap {
        ExtensionMap {
            local: local.iter().take(255).map(|s| (*s).to_owned()).collect(),
            remote: BTreeMap::new(),
        }
    }

    /// Our id for an extension (what the peer sends it under).
    pub fn local_id(&self, name: &str) -> Option<u8> {
        let i = self.local.iter().position(|n| n == name)?;
        u8::try_from(i + 1).ok()
    }

    /// Which of our extensions an incoming extended message id means.
    pub fn local_name(&self, id: u8) -> Option<&str> {
        let i = usize::from(id).checked_sub(1)?;
        self.local.get(i).map(String::as_str)
    }

    /// The id to send an extension's messages to the peer with, if the
    /// peer supports it.
    pub fn remote_id(&self, name: &str) -> Option<u8> {
        self.remote.get(name).copied()
    }

    /// A handshake announcing our extensions (other fields empty; fill
    /// them in before sending).
    pub fn handshake(&self) -> ExtensionHandshake {
        let mut out = ExtensionHandshake::default();
        for name in &self.local {
            if let Some(id) = self.local_id(name) {
                out.extensions.insert(name.clone(), id);
            }
        }
        out
    }

    /// Records the peer's handshake. BEP 10 lets a peer send more than
    /// one: later ones update only the names they mention, and id 0
    /// disables an extension.
    pub fn handle_remote_handshake(&mut self, theirs: &ExtensionHandshake) {
        for (name, &id) in &theirs.extensions {
            if id == 0 {
                self.remote.remove(name);
            } else {
                self.remote.insert(name.clone(), id);
            }
        }
    }
}
