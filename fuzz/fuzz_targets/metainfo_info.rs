//! `Torrent::from_info_bytes` (metadata fetched from peers, BEP 9).
//! Properties: an accepted dictionary is consistent (see `check_torrent`),
//! is kept byte for byte, and its info-hash is the SHA-1 of the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rustico_metainfo::{InfoHash, Torrent};

fuzz_target!(|data: &[u8]| {
    let Ok(torrent) = Torrent::from_info_bytes(data) else {
        return;
    };
    rustico_fuzz::check_torrent(&torrent);
    assert_eq!(torrent.info_bytes(), data);
    assert_eq!(torrent.info_hash(), InfoHash::of_info_bytes(data));
});
