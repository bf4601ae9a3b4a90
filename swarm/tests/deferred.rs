//! Dials the driver could not make for want of a process-wide connection
//! slot: undone without counting against the peer, retried later.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use rustico_swarm::{Bitfield, Dial, Disconnect, PeerSource, Remote, SwarmError};

fn dials(h: &mut Harness) -> Vec<Dial> {
    std::iter::from_fn(|| h.swarm.poll_dial()).collect()
}

fn addrs(dials: &[Dial]) -> HashSet<SocketAddr> {
    dials
        .iter()
        .map(|d| match d.remote {
            Remote::Addr(a) => a,
            Remote::WebSeed(n) => panic!("web seed {n}"),
        })
        .collect()
}

#[test]
fn a_deferred_dial_holds_every_dial_until_the_retry_time() {
    let mut cfg = config(4);
    cfg.max_half_open = 3;
    let mut h = Harness::new(cfg, Bitfield::new(4));
    h.swarm
        .handle_candidates((1..=10).map(addr), PeerSource::Tracker, h.now);
    let first = dials(&mut h);
    assert_eq!(first.len(), 3);
    let retry = h.now + Duration::from_secs(2);
    h.swarm
        .handle_dial_deferred(first[0].peer, retry, h.now)
        .unwrap();
    // The other two (handed out already) are deferred by the driver too.
    for d in &first[1..] {
        h.swarm.handle_dial_deferred(d.peer, retry, h.now).unwrap();
    }
    assert_eq!(h.swarm.stats().connecting, 0, "no dial left in the table");
    // New candidates, failures of others, timers: nothing is dialled
    // before the retry time.
    h.swarm
        .handle_candidates((11..=20).map(addr), PeerSource::User, h.now);
    assert!(dials(&mut h).is_empty());
    assert!(h.swarm.poll_timeout().unwrap() <= retry);
    h.advance(Duration::from_millis(1999));
    assert!(dials(&mut h).is_empty(), "held until the retry time");
    h.advance(Duration::from_millis(1));
    let again = dials(&mut h);
    assert_eq!(again.len(), 3, "dials resume at the retry time");
}

#[test]
fn a_deferred_address_is_not_backed_off_as_a_failure() {
    let mut cfg = config(4);
    cfg.max_half_open = 1;
    let mut h = Harness::new(cfg, Bitfield::new(4));
    h.swarm
        .handle_candidates([addr(1)], PeerSource::Tracker, h.now);
    // Deferred ten times in a row: each time it comes back as soon as the
    // hold ends, never after a growing backoff (which would reach 5 s,
    // 10 s, ... after failures).
    for _ in 0..10 {
        let d = dials(&mut h);
        assert_eq!(addrs(&d), HashSet::from([addr(1)]));
        let retry = h.now + Duration::from_millis(100);
        h.swarm
            .handle_dial_deferred(d[0].peer, retry, h.now)
            .unwrap();
        h.advance(Duration::from_millis(100));
    }
    // A real failure now backs off by the base time only (no failure was
    // counted before).
    let d = dials(&mut h);
    assert_eq!(d.len(), 1);
    h.swarm
        .handle_disconnected(d[0].peer, Disconnect::Failed, h.now)
        .unwrap();
    let base = h.swarm.config().base_backoff;
    h.advance(base * 2 - Duration::from_millis(1));
    assert!(dials(&mut h).is_empty());
    h.advance(Duration::from_millis(1));
    assert_eq!(dials(&mut h).len(), 1);
}

#[test]
fn queued_dials_are_taken_back_with_the_deferred_one() {
    let mut cfg = config(4);
    cfg.max_half_open = 4;
    let mut h = Harness::new(cfg, Bitfield::new(4));
    h.swarm
        .handle_candidates((1..=4).map(addr), PeerSource::Tracker, h.now);
    let first = h.swarm.poll_dial().unwrap();
    let retry = h.now + Duration::from_secs(1);
    h.swarm
        .handle_dial_deferred(first.peer, retry, h.now)
        .unwrap();
    assert!(h.swarm.poll_dial().is_none(), "the queue was emptied");
    assert_eq!(h.swarm.stats().connecting, 0);
    h.advance(Duration::from_secs(1));
    let all = dials(&mut h);
    assert_eq!(addrs(&all), (1..=4).map(addr).collect::<HashSet<_>>());
}

#[test]
fn only_a_dial_in_progress_can_be_deferred() {
    let mut h = Harness::leecher(4);
    let later = h.now + Duration::from_secs(1);
    let incoming = h.swarm.handle_incoming(addr(50), h.now).unwrap();
    assert_eq!(
        h.swarm.handle_dial_deferred(incoming, later, h.now),
        Err(SwarmError::NotADial { peer: incoming })
    );
    let connected = h.dial(1, 1, true);
    assert_eq!(
        h.swarm.handle_dial_deferred(connected, later, h.now),
        Err(SwarmError::NotADial { peer: connected })
    );
    h.disconnect(connected);
    assert_eq!(
        h.swarm.handle_dial_deferred(connected, later, h.now),
        Err(SwarmError::UnknownPeer { peer: connected })
    );
    // The refused calls changed nothing: the incoming peer is still there.
    assert!(h.swarm.peer_stats(incoming).is_some());
}
