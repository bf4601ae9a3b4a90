//! `Torrent::from_bytes`. Properties: an accepted torrent is consistent
//! (see `check_torrent`), its info dictionary parses alone to the same
//! info-hash and files, and its saved bytes parse again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rustico_metainfo::Torrent;

fuzz_target!(|data: &[u8]| {
    let Ok(torrent) = Torrent::from_bytes(data) else {
        return;
    };
    rustico_fuzz::check_torrent(&torrent);
    let info =
        Torrent::from_info_bytes(torrent.info_bytes()).expect("the info dictionary parses alone");
    assert_eq!(info.info_hash(), torrent.info_hash());
    assert_eq!(info.files(), torrent.files());
    let saved = Torrent::from_bytes(torrent.as_bytes()).expect("saved bytes parse");
    assert_eq!(saved.info_hash(), torrent.info_hash());
});
