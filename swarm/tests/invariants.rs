//! Random event sequences into a swarm; invariants checked after every step.
// `run` is called from the proptest cases: a failed call must stop them.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use common::*;
use proptest::prelude::*;
use rustico_swarm::{
    Bitfield, BlockRequest, Disconnect, PeerCommand, PeerEvent, PeerKey, PeerSource,
};

const PIECES: u32 = 6;

#[derive(Debug, Clone)]
enum Op {
    Dial(u8),
    /// A dial the driver has no slot for: deferred by this many ms.
    DeferDial(u8, u16),
    Incoming(u8),
    Disconnect(u8),
    Pieces(u8, u8),
    Have(u8, u32),
    Choke(u8, bool),
    Interested(u8, bool),
    /// Deliver the n-th in-flight block, corrupt or not.
    Deliver(u8, u8, bool),
    Reject(u8, u8),
    Transferred(u8, u16, u16),
    Advance(u16),
    Hash,
    /// The peer grants an allowed-fast piece (BEP 6).
    AllowedFast(u8, u32),
}

fn op() -> impl Strategy<Value = Op> {
    let p = 0u8..5;
    prop_oneof![
        1 => p.clone().prop_map(Op::Dial),
        1 => (p.clone(), 0u16..5000).prop_map(|(a, ms)| Op::DeferDial(a, ms)),
        1 => p.clone().prop_map(Op::Incoming),
        1 => p.clone().prop_map(Op::Disconnect),
        1 => (p.clone(), any::<u8>()).prop_map(|(a, b)| Op::Pieces(a, b)),
        1 => (p.clone(), 0..PIECES).prop_map(|(a, b)| Op::Have(a, b)),
        1 => (p.clone(), any::<bool>()).prop_map(|(a, b)| Op::Choke(a, b)),
        1 => (p.clone(), any::<bool>()).prop_map(|(a, b)| Op::Interested(a, b)),
        4 => (p.clone(), any::<u8>(), prop::bool::weighted(0.1)).prop_map(|(a, b, c)| Op::Deliver(a, b, c)),
        1 => (p.clone(), any::<u8>()).prop_map(|(a, b)| Op::Reject(a, b)),
        1 => (p.clone(), any::<u16>(), any::<u16>()).prop_map(|(a, b, c)| Op::Transferred(a, b, c)),
        1 => (0u16..20_000).prop_map(Op::Advance),
        2 => Just(Op::Hash),
        1 => (p.clone(), 0..PIECES).prop_map(|(a, b)| Op::AllowedFast(a, b)),
    ]
}

/// What the test, as driver and as the peers, knows.
#[derive(Default)]
struct Model {
    /// Slot -> connected peer handle.
    peers: HashMap<u8, PeerKey>,
    /// Peers that choke us.
    choking: HashSet<PeerKey>,
    /// Allowed-fast pieces each fast peer granted.
    allowed: HashMap<PeerKey, HashSet<u32>>,
    down: u64,
    up: u64,
    saved: u32,
}

fn run(ops: Vec<Op>, end_game: bool) -> Result<(), TestCaseError> {
    let mut cfg = config(PIECES);
    cfg.max_peers = 4;
    if !end_game {
        cfg.picker.end_game_max_duplicates = 0;
    }
    let mut h = Harness::new(cfg, Bitfield::new(PIECES));
    let mut m = Model::default();
    for op in ops {
        let now = h.now;
        match op {
            Op::Dial(slot) | Op::Incoming(slot) if !m.peers.contains_key(&slot) => {
                let key = if matches!(op, Op::Dial(_)) {
                    h.swarm.handle_candidates(
                        [addr(u16::from(slot) + 1)],
                        PeerSource::Tracker,
                        now,
                    );
                    match h.swarm.poll_dial() {
                        Some(d) => d.peer,
                        None => continue,
                    }
                } else {
                    match h.swarm.handle_incoming(addr(50_000 + u16::from(slot)), now) {
                        Ok(k) => k,
                        Err(_) => continue,
                    }
                };
                h.handshake(key, slot + 1, slot % 2 == 0);
                m.peers.insert(slot, key);
                m.choking.insert(key);
            }
            Op::DeferDial(slot, ms) => {
                h.swarm
                    .handle_candidates([addr(u16::from(slot) + 1)], PeerSource::Tracker, now);
                if let Some(d) = h.swarm.poll_dial() {
                    let retry = now + Duration::from_millis(u64::from(ms));
                    h.swarm.handle_dial_deferred(d.peer, retry, now).unwrap();
                    prop_assert!(h.swarm.poll_dial().is_none(), "dials after a deferral");
                }
            }
            Op::Disconnect(slot) => {
                if let Some(key) = m.peers.remove(&slot) {
                    h.swarm
                        .handle_disconnected(key, Disconnect::Closed, now)
                        .unwrap();
                    m.choking.remove(&key);
                    m.allowed.remove(&key);
                }
            }
            Op::Pieces(slot, bits) => {
                if let Some(&key) = m.peers.get(&slot) {
                    let mut b = Bitfield::new(PIECES);
                    (0..PIECES).filter(|i| bits & (1 << i) != 0).for_each(|i| {
                        b.set(i);
                    });
                    h.event(key, PeerEvent::Pieces(b));
                }
            }
            Op::Have(slot, piece) => {
                if let Some(&key) = m.peers.get(&slot) {
                    h.event(key, PeerEvent::Have(piece));
                }
            }
            Op::Choke(slot, on) => {
                if let Some(&key) = m.peers.get(&slot) {
                    h.event(key, PeerEvent::Choked(on));
                    if on {
                        m.choking.insert(key);
                    } else {
                        m.choking.remove(&key);
                    }
                }
            }
            Op::Interested(slot, on) => {
                if let Some(&key) = m.peers.get(&slot) {
                    h.event(key, PeerEvent::Interested(on));
                }
            }
            Op::Deliver(slot, n, corrupt) => {
                if let Some(&key) = m.peers.get(&slot) {
                    let pending: Vec<BlockRequest> = h.swarm.requests_in_flight(key).collect();
                    if !pending.is_empty() {
                        let req = pending[n as usize % pending.len()];
                        let mut data = block_data(req);
                        if corrupt {
                            data[0] ^= 1;
                        }
                        h.event(key, PeerEvent::Block { req, data });
                    }
                }
            }
            Op::Reject(slot, n) => {
                if let Some(&key) = m.peers.get(&slot) {
                    let pending: Vec<BlockRequest> = h.swarm.requests_in_flight(key).collect();
                    if !pending.is_empty() {
                        let req = pending[n as usize % pending.len()];
                        h.event(key, PeerEvent::Rejected(vec![req]));
                    }
                }
            }
            Op::Transferred(slot, down, up) => {
                if let Some(&key) = m.peers.get(&slot) {
                    h.event(
                        key,
                        PeerEvent::Transferred {
                            down: down.into(),
                            up: up.into(),
                        },
                    );
                    m.down += u64::from(down);
                    m.up += u64::from(up);
                }
            }
            Op::AllowedFast(slot, piece) => {
                if let Some(&key) = m.peers.get(&slot) {
                    h.event(key, PeerEvent::AllowedFast(piece));
                    // Only a peer with the fast extension (even slots) may
                    // grant; the swarm ignores the others.
                    if slot % 2 == 0 {
                        m.allowed.entry(key).or_default().insert(piece);
                    }
                }
            }
            Op::Advance(ms) => h.advance(Duration::from_millis(ms.into())),
            Op::Hash => m.saved += h.hash_pieces().0,
            _ => {}
        }
        // Carry out the commands like a driver would, checking each request.
        for (key, command) in h.commands() {
            match command {
                PeerCommand::Request(reqs) => {
                    prop_assert!(
                        m.peers.values().any(|k| *k == key),
                        "request to an unknown peer"
                    );
                    for r in &reqs {
                        prop_assert!(
                            !m.choking.contains(&key)
                                || m.allowed.get(&key).is_some_and(|a| a.contains(&r.piece)),
                            "{r:?} from a peer that chokes us and did not allow it fast"
                        );
                    }
                    for r in reqs {
                        prop_assert!(
                            h.swarm.peer_has_piece(key, r.piece),
                            "{r:?} from a peer without it"
                        );
                        prop_assert!(!h.swarm.have().get(r.piece), "{r:?} of a piece we have");
                    }
                }
                PeerCommand::Close(_) => {
                    // The connection closes at once: one of the model's
                    // peers, or a dial the swarm started on its own (a
                    // redial the model left hanging), which a driver
                    // abandons and reports just the same.
                    if let Some(slot) = m.peers.iter().find(|(_, k)| **k == key).map(|(s, _)| *s) {
                        m.peers.remove(&slot);
                    }
                    m.choking.remove(&key);
                    m.allowed.remove(&key);
                    h.swarm
                        .handle_disconnected(key, Disconnect::Closed, h.now)
                        .unwrap();
                }
                _ => {}
            }
        }
        while h.swarm.poll_dial().is_some() {}
        h.drain_events();

        // Invariants.
        let mut seen: HashMap<BlockRequest, usize> = HashMap::new();
        for key in m.peers.values() {
            for r in h.swarm.requests_in_flight(*key) {
                *seen.entry(r).or_default() += 1;
            }
        }
        let most = seen.values().copied().max().unwrap_or(0);
        if end_game {
            prop_assert!(most <= 2, "a block asked of {most} peers");
        } else {
            prop_assert!(most <= 1, "a block outstanding twice outside end-game");
        }
        let stats = h.swarm.stats();
        prop_assert_eq!(stats.downloaded, m.down);
        prop_assert_eq!(stats.uploaded, m.up);
        prop_assert_eq!(stats.peers, m.peers.len());
        prop_assert_eq!(stats.pieces_have, m.saved);
        prop_assert_eq!(stats.pieces_have, h.swarm.have().count());
        prop_assert!(
            stats.peers + stats.connecting <= 4,
            "over the connection limit"
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn invariants_hold_without_end_game(ops in prop::collection::vec(op(), 1..150)) {
        run(ops, false)?;
    }

    #[test]
    fn invariants_hold_with_end_game(ops in prop::collection::vec(op(), 1..150)) {
        run(ops, true)?;
    }
}

/// Found by CI (proptest, ae6f285): an incoming peer evicted a redial the
/// model had left hanging, and the model ignored the order to close it,
/// so the count stayed over the limit. A bug of the model (a driver
/// reports every closed connection), fixed there; kept as a regression.
#[test]
fn a_returning_peer_does_not_go_over_the_connection_limit() {
    use Op::*;
    let ops = vec![
        Dial(0),
        Dial(1),
        Choke(1, false),
        Have(1, 0),
        Deliver(1, 0, false),
        Deliver(1, 0, true),
        Incoming(2),
        Hash,
        Deliver(1, 0, false),
        Dial(0),
        Deliver(1, 0, false),
        Disconnect(1),
        Advance(5000),
        Incoming(1),
        Hash,
        Incoming(3),
    ];
    run(ops, false).unwrap();
}
