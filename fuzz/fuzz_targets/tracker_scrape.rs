//! `parse_scrape_response` (HTTP scrape body, BEP 48). Property: no more
//! torrents than the body has room for.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rustico_tracker_client::parse_scrape_response;

fuzz_target!(|data: &[u8]| {
    let Ok(response) = parse_scrape_response(data) else {
        return;
    };
    assert!(23 * response.files.len() <= data.len());
});
