//! `Torrent::from_info_bytes` (metadata fetched from peers, BEP 9).
//! Properties: an accepted dictionary is consistent (see `check_torrent`),
//! is kept byte for byte, and its info-hash is the SHA-1 of the input (the
//! truncated SHA-256 for a v2-only dictionary).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rustico_metainfo::{InfoHash, InfoHashV2, Torrent};

fuzz_target!(|data: &[u8]| {
    let Ok(torrent) = Torrent::from_info_bytes(data) else {
        return;
    };
    rustico_fuzz::check_torrent(&torrent);
    assert_eq!(torrent.info_bytes(), data);
    // The v1 hash (SHA-1) for v1 and hybrid dictionaries; a v2-only one is
    // known by its SHA-256, truncated to 20 bytes.
    let expected = if torrent.has_v1() {
        InfoHash::of_info_bytes(data)
    } else {
        InfoHashV2::of_info_bytes(data).truncated()
    };
    assert_eq!(torrent.info_hash(), expected);
});
