//! Peer ids in the usual (Azureus) style: `-XXvvvv-` then random characters.

/// The prefix rustico's own client uses: `RS`, version 0.1.0.0.
pub const RUSTICO_PEER_ID_PREFIX: [u8; 8] = *b"-RS0100-";

/// A 20-byte peer id: `prefix` (by convention `-`, two letters naming the
/// client, four version characters, `-`) followed by 12 characters from
/// `[0-9a-z]`, drawn from `seed`. The same seed gives the same id, so a test
/// or a simulation can replay; a client seeds it from something that
/// differs between runs.
///
/// ```
/// use rustico_peer_wire::{generate_peer_id, RUSTICO_PEER_ID_PREFIX};
/// let id = generate_peer_id(RUSTICO_PEER_ID_PREFIX, 42);
/// assert!(id.starts_with(b"-RS0100-"));
/// assert!(id[8..].iter().all(|b| b.is_ascii_digit() || b.is_ascii_lowercase()));
/// assert_ne!(id, generate_peer_id(RUSTICO_PEER_ID_PREFIX, 43));
/// ```
pub fn generate_peer_id(prefix: [u8; 8], seed: u64) -> [u8; 20] {
    const ALPHABET: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut id = [0u8; 20];
    id[..8].copy_from_slice(&prefix);
    let mut state = seed;
    for byte in &mut id[8..] {
        state = splitmix64(state);
        *byte = ALPHABET[(state % 36) as usize];
    }
    id
}

/// One step of splitmix64: a well-mixed sequence from any seed (not for
/// secrets: a peer id is public).
fn splitmix64(state: u64) -> u64 {
    let mut z = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
