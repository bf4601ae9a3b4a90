//! `Magnet::parse` on the input as UTF-8 (invalid sequences replaced).
//! Property: a parsed link prints to a link that parses to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rustico_metainfo::Magnet;

fuzz_target!(|data: &[u8]| {
    let Ok(magnet) = Magnet::parse(&String::from_utf8_lossy(data)) else {
        return;
    };
    let link = magnet.to_string();
    assert_eq!(Magnet::parse(&link), Ok(magnet), "{link}");
});
