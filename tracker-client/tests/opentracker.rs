//! Against a real opentracker on 127.0.0.1, over HTTP and over UDP: two
//! clients announcing one info-hash see each other, scrape counts match,
//! `stopped` removes a peer, and a torrent the tracker does not serve is a
//! failure carrying the tracker's text.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rustico_testkit::Opentracker;
use rustico_tracker_client::udp::UdpError;
use rustico_tracker_client::{AnnounceRequest, Client, Error, Event, TransportConfig};

const INFO_HASH: [u8; 20] = *b"rustico-tracker-test";

fn config() -> TransportConfig {
    let mut config = TransportConfig {
        timeout: Duration::from_secs(5),
        ..TransportConfig::default()
    };
    config.udp.retransmit_base = Duration::from_millis(250);
    config.udp.max_retransmits = 3;
    config
}

fn request(peer: u8, port: u16, left: u64, event: Event) -> AnnounceRequest {
    let mut peer_id = *b"-RS0100-000000000000";
    peer_id[19] = peer;
    AnnounceRequest {
        left,
        event,
        numwant: Some(50),
        key: Some(u32::from(peer)),
        ..AnnounceRequest::new(INFO_HASH, peer_id, port)
    }
}

/// Starts opentracker and waits until it serves `INFO_HASH`: it starts
/// listening before it has read its whitelist, and until then refuses every
/// torrent. The probe peer leaves with `stopped`, so counts start at zero.
fn start_tracker() -> Opentracker {
    let tracker = Opentracker::start(&[INFO_HASH]).unwrap();
    let url = tracker.udp_announce_url();
    let probe_port = rustico_testkit::free_port();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match rustico_tracker_client::announce(
            &url,
            &request(b'P', probe_port, 0, Event::Started),
            &config(),
        ) {
            Ok(_) => break,
            Err(e) if Instant::now() < deadline => {
                eprintln!("opentracker not ready yet: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("opentracker never served the torrent: {e}"),
        }
    }
    rustico_tracker_client::announce(
        &url,
        &request(b'P', probe_port, 0, Event::Stopped),
        &config(),
    )
    .unwrap();
    tracker
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// The whole scenario over one tracker URL.
fn swarm_scenario(url: &str) {
    let seeder_port = rustico_testkit::free_port();
    let leecher_port = rustico_testkit::free_port();
    // Separate clients, as two programs would be (separate UDP sockets and
    // connection ids).
    let mut seeder = Client::new(config());
    let mut leecher = Client::new(config());

    let first = seeder
        .announce(url, &request(b'S', seeder_port, 0, Event::Started))
        .unwrap();
    assert!(first.interval > Duration::ZERO);
    assert!(!first.peers.contains(&addr(leecher_port)));

    let second = leecher
        .announce(url, &request(b'L', leecher_port, 1000, Event::Started))
        .unwrap();
    assert!(
        second.peers.contains(&addr(seeder_port)),
        "leecher sees the seeder: {:?}",
        second.peers
    );
    assert_eq!(second.complete, Some(1));
    assert_eq!(second.incomplete, Some(1));

    let again = seeder
        .announce(url, &request(b'S', seeder_port, 0, Event::None))
        .unwrap();
    assert!(
        again.peers.contains(&addr(leecher_port)),
        "seeder sees the leecher: {:?}",
        again.peers
    );

    let counts = seeder.scrape(url, &[INFO_HASH]).unwrap();
    let stats = counts.files.get(&INFO_HASH).copied().unwrap_or_default();
    assert_eq!((stats.complete, stats.incomplete), (1, 1), "{counts:?}");

    leecher
        .announce(url, &request(b'L', leecher_port, 1000, Event::Stopped))
        .unwrap();
    let after = seeder
        .announce(url, &request(b'S', seeder_port, 0, Event::None))
        .unwrap();
    assert!(
        !after.peers.contains(&addr(leecher_port)),
        "stopped peer is gone: {:?}",
        after.peers
    );
    assert_eq!(after.incomplete, Some(0));
    let counts = leecher.scrape(url, &[INFO_HASH]).unwrap();
    let stats = counts.files.get(&INFO_HASH).copied().unwrap_or_default();
    assert_eq!((stats.complete, stats.incomplete), (1, 0), "{counts:?}");
}

#[cfg(feature = "http")]
#[test]
fn http_swarm() {
    if !rustico_testkit::require("opentracker") {
        return;
    }
    let tracker = start_tracker();
    swarm_scenario(&tracker.http_announce_url());
}

#[test]
fn udp_swarm() {
    if !rustico_testkit::require("opentracker") {
        return;
    }
    let tracker = start_tracker();
    swarm_scenario(&tracker.udp_announce_url());
}

#[test]
fn unlisted_torrent_is_a_failure_with_the_trackers_text() {
    if !rustico_testkit::require("opentracker") {
        return;
    }
    let tracker = start_tracker();
    let mut unlisted = request(b'X', 7000, 0, Event::Started);
    unlisted.info_hash = [0x55; 20];
    #[cfg(feature = "http")]
    match rustico_tracker_client::announce(&tracker.http_announce_url(), &unlisted, &config()) {
        Err(Error::Failure { reason }) => {
            assert!(reason.contains("not authorized"), "{reason}")
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    // Over UDP opentracker answers an unlisted torrent with a bare 8-byte
    // announce header: a truncated answer, reported at once (no waiting
    // for retransmissions, which would take 0.25 + 0.5 + 1 + 2 s here).
    let started = Instant::now();
    let result =
        rustico_tracker_client::announce(&tracker.udp_announce_url(), &unlisted, &config());
    assert!(
        matches!(
            result,
            Err(Error::Udp(UdpError::Truncated { len: 8, min: 20 }))
        ),
        "{result:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}
