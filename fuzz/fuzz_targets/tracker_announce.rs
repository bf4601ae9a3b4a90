//! `parse_announce_response` (HTTP announce body, BEP 3/23). Property: no
//! more peers than the body has room for.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rustico_tracker_client::parse_announce_response;

fuzz_target!(|data: &[u8]| {
    let Ok(response) = parse_announce_response(data) else {
        return;
    };
    assert!(6 * response.peers.len() <= data.len());
});
