//! BEP 11 `ut_pex`: peers telling each other about other peers.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use rustico_bencode::{encode, Value};

use crate::extension::{bytes_of, dict, encode_extended, ExtensionError};

/// The flag byte BEP 11 gives each added peer.
///
/// ```
/// use rustico_peer_wire::PexFlags;
/// let flags = PexFlags(PexFlags::SEED | PexFlags::REACHABLE);
/// assert!(flags.seed() && flags.reachable() && !flags.utp());
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct PexFlags(pub u8);

impl PexFlags {
    /// The peer prefers encrypted connections.
    pub const PREFERS_ENCRYPTION: u8 = 0x01;
    /// The peer is a seed (or upload-only).
    pub const SEED: u8 = 0x02;
    /// The peer supports uTP.
    pub const UTP: u8 = 0x04;
    /// The peer supports `ut_holepunch`.
    pub const HOLEPUNCH: u8 = 0x08;
    /// The sender reached the peer with an outgoing connection.
    pub const REACHABLE: u8 = 0x10;

    /// [`PexFlags::PREFERS_ENCRYPTION`] is set.
    pub fn prefers_encryption(&self) -> bool {
        self.0 & Self::PREFERS_ENCRYPTION != 0
    }
    /// [`PexFlags::SEED`] is set.
    pub fn seed(&self) -> bool {
        self.0 & Self::SEED != 0
    }
    /// [`PexFlags::UTP`] is set.
    pub fn utp(&self) -> bool {
        self.0 & Self::UTP != 0
    }
    /// [`PexFlags::HOLEPUNCH`] is set.
    pub fn holepunch(&self) -> bool {
        self.0 & Self::HOLEPUNCH != 0
    }
    /// [`PexFlags::REACHABLE`] is set.
    pub fn reachable(&self) -> bool {
        self.0 & Self::REACHABLE != 0
    }
}

/// A peer in a `ut_pex` message's added list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PexPeer {
    /// The peer's address (IPv6 ones carry no flow info or scope).
    pub addr: SocketAddr,
    /// What the sender knows about it.
    pub flags: PexFlags,
}

/// A `ut_pex` message: peers connected and dropped since the last one.
///
/// ```
/// use rustico_peer_wire::{PexFlags, PexMessage, PexPeer};
///
/// let message = PexMessage {
///     added: vec![PexPeer { addr: "10.0.0.1:6881".parse()?, flags: PexFlags(PexFlags::SEED) }],
///     dropped: vec!["[::1]:51413".parse()?],
/// };
/// let mut payload = Vec::new();
/// message.encode(&mut payload);
/// assert_eq!(PexMessage::decode(&payload)?, message);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct PexMessage {
    /// `added` and `added6`, with flags from `added.f` and `added6.f`.
    pub added: Vec<PexPeer>,
    /// `dropped` and `dropped6`.
    pub dropped: Vec<SocketAddr>,
}

impl PexMessage {
    /// Decodes an extended payload sent under our `ut_pex` id. Missing
    /// keys are empty lists; a flags string shorter than its peer list
    /// (some clients omit it) leaves the other flags empty.
    pub fn decode(payload: &[u8]) -> Result<PexMessage, ExtensionError> {
        let root = rustico_bencode::decode(payload)?;
        dict(&root)?;
        let mut out = PexMessage::default();
        for (key, flags_key, width) in [("added", "added.f", 6), ("added6", "added6.f", 18)] {
            let addrs = compact(&root, key, width)?;
            let flags = bytes_of(&root, flags_key)?.unwrap_or(&[]);
            for (i, addr) in addrs.into_iter().enumerate() {
                out.added.push(PexPeer {
                    addr,
                    flags: PexFlags(flags.get(i).copied().unwrap_or(0)),
                });
            }
        }
        out.dropped = compact(&root, "dropped", 6)?;
        out.dropped.extend(compact(&root, "dropped6", 18)?);
        Ok(out)
    }

    /// Appends the bencoded payload (all six keys, canonical order) to
    /// `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let v4 = |a: &SocketAddr| a.is_ipv4();
        let v6 = |a: &SocketAddr| a.is_ipv6();
        out.push(b'd');
        for (key, flags_key, is_family, width) in [
            (
                &b"added"[..],
                &b"added.f"[..],
                &v4 as &dyn Fn(&SocketAddr) -> bool,
                6,
            ),
            (b"added6", b"added6.f", &v6, 18),
        ] {
            let peers = || self.added.iter().filter(|p| is_family(&p.addr));
            encode::bytes(out, key);
            write_compact(out, peers().map(|p| p.addr), width);
            encode::bytes(out, flags_key);
            write_len(out, peers().count());
            out.extend(peers().map(|p| p.flags.0));
        }
        for (key, is_family, width) in [
            (&b"dropped"[..], &v4 as &dyn Fn(&SocketAddr) -> bool, 6),
            (b"dropped6", &v6, 18),
        ] {
            encode::bytes(out, key);
            write_compact(
                out,
                self.dropped.iter().copied().filter(|a| is_family(a)),
                width,
            );
        }
        out.push(b'e');
    }

    /// Appends the whole extended message, sent under the peer's `ut_pex`
    /// id.
    pub fn encode_message(&self, remote_id: u8, out: &mut Vec<u8>) {
        encode_extended(out, remote_id, |out| self.encode(out));
    }
}

fn write_len(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(n.to_string().as_bytes());
    out.push(b':');
}

fn write_compact(out: &mut Vec<u8>, addrs: impl Iterator<Item = SocketAddr> + Clone, width: usize) {
    write_len(out, addrs.clone().count() * width);
    for addr in addrs {
        match addr.ip() {
            IpAddr::V4(ip) => out.extend_from_slice(&ip.octets()),
            IpAddr::V6(ip) => out.extend_from_slice(&ip.octets()),
        }
        out.extend_from_slice(&addr.port().to_be_bytes());
    }
}

/// Compact peers (BEP 23 style): 4 or 16 address bytes, then a port.
fn compact(
    root: &Value<'_>,
    key: &'static str,
    width: usize,
) -> Result<Vec<SocketAddr>, ExtensionError> {
    let Some(bytes) = bytes_of(root, key)? else {
        return Ok(Vec::new());
    };
    if bytes.len() % width != 0 {
        return Err(ExtensionError::BadValue {
            key,
            offset: root.get(key.as_bytes()).map_or(0, |v| v.offset()),
            why: if width == 6 {
                "length is not a multiple of 6"
            } else {
                "length is not a multiple of 18"
            },
        });
    }
    Ok(bytes
        .chunks_exact(width)
        .map(|chunk| {
            let (ip, port) = chunk.split_at(width - 2);
            let port = u16::from_be_bytes([port[0], port[1]]);
            match <[u8; 4]>::try_from(ip) {
                Ok(v4) => SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(v4), port)),
                Err(_) => {
                    let mut v6 = [0u8; 16];
                    v6.copy_from_slice(ip);
                    SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::from(v6), port, 0, 0))
                }
            }
        })
        .collect())
}
