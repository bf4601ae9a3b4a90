//! Shared by the hostile-tracker tests: short timeouts so each case ends
//! fast, one announce request, and a time-bound check.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use rustico_tracker_client::{AnnounceRequest, Event, TransportConfig};

pub const TIMEOUT: Duration = Duration::from_millis(700);

pub fn config() -> TransportConfig {
    let mut config = TransportConfig {
        timeout: TIMEOUT,
        connect_timeout: TIMEOUT,
        ..TransportConfig::default()
    };
    config.udp.retransmit_base = Duration::from_millis(50);
    config.udp.max_retransmits = 2; // 50 + 100 + 200 ms
    config
}

pub fn request() -> AnnounceRequest {
    AnnounceRequest {
        left: 5,
        event: Event::Started,
        ..AnnounceRequest::new([0xab; 20], *b"-RS0100-hostile00000", 6881)
    }
}

/// Runs `call` and checks it ended within `bound`.
pub fn timed<T>(bound: Duration, call: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let result = call();
    let elapsed = started.elapsed();
    assert!(elapsed <= bound, "took {elapsed:?}, bound {bound:?}");
    result
}
