//! The BEP 6 allowed-fast set: pieces a peer may download while choked.

use sha1::{Digest, Sha1};
use std::net::Ipv4Addr;

/// The `k` pieces of a torrent with `piece_count` pieces that a peer at
/// `ip` may request while choked, by BEP 6's canonical algorithm (the
/// uploader computes it, then sends `allowed fast` for each).
///
/// The set depends only on the peer's /24 network and the info-hash, so
/// reconnecting does not earn a peer a new set. `k` is capped at
/// `piece_count` (the BEP's loop would not end otherwise). BEP 6 defines
/// the algorithm for IPv4 only.
///
/// ```
/// use std::net::Ipv4Addr;
/// // BEP 6's example.
/// let set = rustico_peer_wire::allowed_fast_set(Ipv4Addr::new(80, 4, 4, 200), &[0xaa; 20], 1313, 7);
/// assert_eq!(set, [1059, 431, 808, 1217, 287, 376, 1188]);
/// ```
pub fn allowed_fast_set(
    ip: Ipv4Addr,
    info_hash: &[u8; 20],
    piece_count: u32,
    k: usize,
) -> Vec<u32> {
    let k = k.min(piece_count as usize);
    let mut set = Vec::with_capacity(k);
    let network = u32::from(ip) & 0xffff_ff00;
    let mut seed = [0u8; 24];
    seed[..4].copy_from_slice(&network.to_be_bytes());
    seed[4..].copy_from_slice(info_hash);
    let mut x: [u8; 20] = Sha1::digest(seed).into();
    loop {
        for word in x.chunks_exact(4) {
            if set.len() >= k {
                return set;
            }
            let y = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
            let index = y % piece_count;
            if !set.contains(&index) {
                set.push(index);
            }
        }
        if set.len() >= k {
            return set;
        }
        x = Sha1::digest(x).into();
    }
}
