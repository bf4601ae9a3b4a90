//! Scenarios driven through the sans-IO interface alone, time moved by hand.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use rustico_peer_wire::{PexFlags, PexMessage, PexPeer};
use rustico_swarm::{
    BanReason, Bitfield, CloseReason, Disconnect, Event, PeerCommand, PeerEvent, PeerKey,
    PeerSource, Refusal, Remote, SwarmError,
};

#[test]
fn a_choke_without_the_fast_extension_voids_requests_and_they_go_to_another_peer() {
    let mut cfg = config(40); // 80 blocks
    cfg.picker.end_game_max_duplicates = 0;
    let mut h = Harness::new(cfg, Bitfield::new(40));
    let a = h.seed(1, false);
    let first = requests_to(&h.commands(), a);
    assert_eq!(first.len(), 64, "a fresh peer gets the start pipeline");
    let b = h.seed(2, false);
    let to_b = requests_to(&h.commands(), b);
    assert_eq!(to_b.len(), 16, "the rest");

    h.event(a, PeerEvent::Choked(true));
    assert_eq!(h.swarm.requests_in_flight(a).count(), 0, "voided");
    let commands = h.commands();
    assert!(
        requests_to(&commands, a).is_empty(),
        "nothing asked while choked"
    );
    let to_b: HashSet<_> = requests_to(&commands, b).into_iter().collect();
    assert_eq!(to_b.len(), 48, "b's pipeline refills");
    assert!(
        to_b.iter().all(|r| first.contains(r)),
        "with a's voided blocks"
    );

    // Unchoked again: a is asked again, once the hold after the void is
    // over (the next tick), not on the unchoke itself.
    h.event(a, PeerEvent::Choked(false));
    assert!(requests_to(&h.commands(), a).is_empty(), "held");
    h.advance(Duration::from_millis(1100));
    assert!(!requests_to(&h.commands(), a).is_empty());
}

/// Issue #20: a peer without the fast extension that answers every round
/// of requests with choke + unchoke. Each round voided without a block
/// doubles the hold and the pipeline drops to the minimum: over a minute
/// it gets a few rounds, not one per flip (before: a full pipeline for
/// every ten bytes it sent).
#[test]
fn a_peer_flipping_choke_gets_ever_fewer_requests() {
    let mut h = Harness::new(config(400), Bitfield::new(400));
    let a = h.seed(1, false);
    let mut asked = requests_to(&h.commands(), a).len();
    assert_eq!(asked, 64);
    let mut rounds = 1;
    for _ in 0..600 {
        // Flip at once, whatever arrived; then 100 ms pass.
        if h.swarm.requests_in_flight(a).count() > 0 {
            h.event(a, PeerEvent::Choked(true));
            h.event(a, PeerEvent::Choked(false));
        }
        h.advance(Duration::from_millis(100));
        let now = requests_to(&h.commands(), a).len();
        if now > 0 {
            rounds += 1;
        }
        asked += now;
    }
    // Holds of 1, 2, 4, 8, 16, 32 s: in 60 s at most 7 rounds, from the
    // third on at the minimal pipeline (measured: 112 requests in 7
    // rounds; before the back-off, 601 rounds, a pipeline on every unchoke).
    assert!(rounds <= 7, "{rounds} rounds of requests in 60 s");
    assert!(asked <= 2 * 64, "{asked} requests in 60 s");

    // A block ends the streak.
    h.advance(Duration::from_secs(40));
    let reqs: Vec<_> = h.swarm.requests_in_flight(a).collect();
    assert!(!reqs.is_empty());
    h.deliver(a, reqs[0]);
    h.commands();
    h.event(a, PeerEvent::Choked(true));
    h.event(a, PeerEvent::Choked(false));
    h.advance(Duration::from_millis(1100));
    assert!(
        !requests_to(&h.commands(), a).is_empty(),
        "one second's hold"
    );
}

#[test]
fn a_choke_with_the_fast_extension_keeps_requests_until_they_are_rejected() {
    let mut cfg = config(40);
    cfg.picker.end_game_max_duplicates = 0;
    let mut h = Harness::new(cfg, Bitfield::new(40));
    let a = h.seed(1, true);
    let first = requests_to(&h.commands(), a);
    let b = h.seed(2, true);
    h.commands();
    h.event(a, PeerEvent::Choked(true));
    assert_eq!(
        h.swarm.requests_in_flight(a).count(),
        first.len(),
        "still pending"
    );
    assert!(h.commands().is_empty(), "nothing moves on a fast choke");

    // BEP 6: the choke is followed by a reject of each pending request.
    h.event(a, PeerEvent::Rejected(first.clone()));
    let commands = h.commands();
    assert!(requests_to(&commands, a).is_empty());
    let to_b = requests_to(&commands, b);
    assert!(!to_b.is_empty() && to_b.iter().all(|r| first.contains(r)));
}

#[test]
fn a_rejected_block_is_not_asked_again_of_the_same_peer_in_a_hot_loop() {
    let mut h = Harness::leecher(1); // one piece, two blocks
    let a = h.seed(1, true);
    let reqs = requests_to(&h.commands(), a);
    assert_eq!(reqs.len(), 2);
    let mut asked_again = 0;
    // The peer rejects everything, a hundred times within the hold time.
    for _ in 0..100 {
        let pending: Vec<_> = h.swarm.requests_in_flight(a).collect();
        if !pending.is_empty() {
            h.event(a, PeerEvent::Rejected(pending));
        }
        asked_again += requests_to(&h.commands(), a).len();
        h.now += Duration::from_millis(5);
    }
    assert_eq!(asked_again, 0, "held back for the reject hold");
    // Once the hold has passed, the only peer is asked again.
    h.advance(Duration::from_secs(2));
    assert_eq!(requests_to(&h.commands(), a).len(), 2);
}

#[test]
fn a_stalled_peer_loses_its_requests_to_another_peer() {
    let mut cfg = config(8); // 16 blocks: one peer takes them all
    cfg.picker.end_game_max_duplicates = 0;
    let mut h = Harness::new(cfg, Bitfield::new(8));
    let slow = h.seed(1, false);
    let held = requests_to(&h.commands(), slow);
    assert_eq!(held.len(), 16);
    let fast = h.seed(2, false);
    assert!(
        requests_to(&h.commands(), fast).is_empty(),
        "nothing left yet"
    );

    h.advance(Duration::from_secs(14));
    let c = h.commands();
    assert!(requests_to(&c, fast).is_empty(), "not stalled before 15 s");
    assert!(!orders_to(&c, slow)
        .iter()
        .any(|o| matches!(o, PeerCommand::Cancel(_))));

    h.advance(Duration::from_secs(1));
    let c = h.commands();
    let cancels = orders_to(&c, slow)
        .into_iter()
        .filter(|o| matches!(o, PeerCommand::Cancel(_)))
        .count();
    assert_eq!(cancels, 16, "the stalled requests are withdrawn");
    // The other peer gets them (as many as its pipeline takes: with no
    // measured rate it shrank to the minimum meanwhile).
    let moved = requests_to(&c, fast);
    assert!(moved.len() >= 4, "{moved:?}");
    assert!(moved.iter().all(|r| held.contains(r)));
    assert!(h.swarm.peer_stats(slow).unwrap().snubbed);
    assert!(requests_to(&c, slow).is_empty());
    // Later the snubbed peer gets a minimal pipeline of what is left.
    h.advance(Duration::from_secs(2));
    let again = requests_to(&h.commands(), slow);
    assert!(again.len() <= 4, "{again:?}");
}

#[test]
fn smart_ban_names_the_sender_of_a_corrupt_block_once_a_good_copy_arrives() {
    let mut h = Harness::leecher(4);
    let honest = h.seed(1, true);
    let liar = h.seed(2, true);
    h.commands();
    // Piece 0: block 0 from the honest peer, block 1 corrupted by the liar.
    let b0 = rustico_swarm::BlockRequest {
        piece: 0,
        offset: 0,
        length: 16384,
    };
    let b1 = rustico_swarm::BlockRequest {
        piece: 0,
        offset: 16384,
        length: 16384,
    };
    h.deliver(honest, b0);
    let mut bad = block_data(b1);
    bad[100] ^= 0xff;
    h.event(liar, PeerEvent::Block { req: b1, data: bad });
    assert_eq!(h.hash_pieces(), (0, 1));
    let events = h.drain_events();
    assert!(events.contains(&Event::HashFailed {
        piece: 0,
        senders: vec![Remote::Addr(addr(1)), Remote::Addr(addr(2))]
    }));
    assert!(
        !events.iter().any(|e| matches!(e, Event::Banned { .. })),
        "not yet: two senders"
    );

    // The honest peer sends the piece again: the good copy proves the liar.
    h.commands();
    h.deliver(honest, b0);
    h.deliver(honest, b1);
    assert_eq!(h.hash_pieces(), (1, 0));
    let events = h.drain_events();
    assert!(events.contains(&Event::Banned {
        remote: Remote::Addr(addr(2)),
        reason: BanReason::CorruptBlock
    }));
    assert!(orders_to(&h.commands(), liar).contains(&PeerCommand::Close(CloseReason::Banned)));
    assert!(h.swarm.is_banned(addr(2), h.now));
    assert!(!h.swarm.is_banned(addr(1), h.now));
    h.disconnect(liar);
    assert_eq!(
        h.swarm.handle_incoming(addr(2), h.now),
        Err(Refusal::Banned)
    );
    h.swarm
        .handle_candidates([addr(2)], PeerSource::Tracker, h.now);
    assert!(
        h.swarm.poll_dial().is_none(),
        "a banned peer is not dialled"
    );
}

#[test]
fn v2_block_hashes_name_the_sender_of_a_corrupt_block_at_once() {
    let mut cfg = config(4);
    cfg.block_hashes = true;
    let mut h = Harness::new(cfg, Bitfield::new(4));
    let honest = h.seed(1, true);
    let liar = h.seed(2, true);
    let third = h.seed(3, true);
    h.commands();
    let block = |offset| rustico_swarm::BlockRequest {
        piece: 0,
        offset,
        length: 16384,
    };
    h.deliver(honest, block(0));
    let mut bad = block_data(block(16384));
    bad[100] ^= 0xff;
    h.event(
        liar,
        PeerEvent::Block {
            req: block(16384),
            data: bad,
        },
    );
    assert_eq!(h.hash_pieces(), (0, 1));
    let asks = |c: &[(rustico_swarm::PeerKey, PeerCommand)]| -> Vec<rustico_swarm::PeerKey> {
        c.iter()
            .filter(|(_, o)| *o == PeerCommand::RequestBlockHashes(0))
            .map(|(k, _)| *k)
            .collect()
    };
    // Two peers are asked at once, first one that sent none of the
    // failed copy.
    let first = asks(&h.commands());
    assert_eq!(first.len(), 2, "{first:?}");
    assert_eq!(first[0], third);
    // One refuses: the last peer with the piece is asked too.
    h.event(third, PeerEvent::BlockHashesRefused(0));
    let next = asks(&h.commands());
    assert_eq!(next.len(), 1);
    assert!(!first.contains(&next[0]));
    // Nobody is left to ask.
    h.event(next[0], PeerEvent::BlockHashesRefused(0));
    assert!(asks(&h.commands()).is_empty());
    // The hashes prove block 1 wrong: its sender is banned before any
    // good copy of the piece arrives.
    h.swarm.handle_corrupt_blocks(0, &[1], h.now);
    let events = h.drain_events();
    assert!(events.contains(&Event::Banned {
        remote: Remote::Addr(addr(2)),
        reason: BanReason::BlockHashMismatch
    }));
    assert!(!h.swarm.is_banned(addr(1), h.now));
    assert!(orders_to(&h.commands(), liar).contains(&PeerCommand::Close(CloseReason::Banned)));
    // A late second answer bans nobody else.
    h.swarm.handle_corrupt_blocks(0, &[0], h.now);
    assert!(!h.swarm.is_banned(addr(1), h.now));
}

/// Thousands of idle torrents in one process must not wake up every
/// second each: a swarm without peers arms no timer until a peer comes.
#[test]
fn a_swarm_without_peers_arms_no_timer_until_one_comes() {
    let mut h = Harness::leecher(4);
    assert!(h.swarm.poll_timeout().is_some(), "the first tick is armed");
    h.advance(Duration::from_secs(11));
    assert_eq!(h.swarm.poll_timeout(), None);
    h.swarm.handle_incoming(addr(7), h.now).unwrap();
    let next = h.swarm.poll_timeout().expect("a peer arms the tick");
    assert!(next <= h.now + Duration::from_secs(1));
}

#[test]
fn a_choking_fast_peer_is_asked_only_for_the_pieces_it_allows_fast() {
    let mut h = Harness::leecher(8);
    let fast = h.dial(1, 1, true);
    h.event(fast, PeerEvent::Pieces(Bitfield::full(8)));
    let plain = h.dial(2, 2, false);
    h.event(plain, PeerEvent::Pieces(Bitfield::full(8)));
    assert!(requests_to(&h.commands(), fast).is_empty(), "both choke us");
    h.event(fast, PeerEvent::AllowedFast(5));
    h.event(fast, PeerEvent::AllowedFast(99)); // out of range: ignored
    h.event(plain, PeerEvent::AllowedFast(5)); // no fast extension: ignored
    let c = h.commands();
    let asked = requests_to(&c, fast);
    assert!(!asked.is_empty());
    assert!(asked.iter().all(|r| r.piece == 5), "{asked:?}");
    assert!(requests_to(&c, plain).is_empty());
    // Piece 5 done, nothing else is allowed: nothing more is asked.
    for r in asked {
        h.deliver(fast, r);
    }
    assert_eq!(h.hash_pieces(), (1, 0));
    h.advance(Duration::from_secs(2));
    assert!(requests_to(&h.commands(), fast).is_empty());
    // Unchoked, it is asked for anything.
    h.event(fast, PeerEvent::Choked(false));
    let asked = requests_to(&h.commands(), fast);
    assert!(asked.iter().any(|r| r.piece != 5), "{asked:?}");
}

#[test]
fn without_block_hashes_or_with_one_sender_nobody_is_asked() {
    for (block_hashes, senders) in [(false, 2), (true, 1)] {
        let mut cfg = config(4);
        cfg.block_hashes = block_hashes;
        let mut h = Harness::new(cfg, Bitfield::new(4));
        let a = h.seed(1, true);
        let b = h.seed(2, true);
        h.seed(3, true);
        h.commands();
        for (i, offset) in [0, 16384].into_iter().enumerate() {
            let req = rustico_swarm::BlockRequest {
                piece: 0,
                offset,
                length: 16384,
            };
            let from = if i == 1 && senders == 2 { b } else { a };
            h.event(
                from,
                PeerEvent::Block {
                    req,
                    data: vec![0; 16384],
                },
            );
        }
        assert_eq!(h.hash_pieces(), (0, 1));
        assert!(
            !h.commands()
                .iter()
                .any(|(_, o)| matches!(o, PeerCommand::RequestBlockHashes(_))),
            "block_hashes {block_hashes}, {senders} senders"
        );
    }
}

/// `liar`, the only source, sends zeros for pieces 0 and 1: both fail.
fn send_two_bad_pieces(h: &mut Harness, liar: PeerKey) {
    let reqs = requests_to(&h.commands(), liar);
    for req in reqs.iter().filter(|r| r.piece < 2) {
        h.event(
            liar,
            PeerEvent::Block {
                req: *req,
                data: vec![0; req.length as usize],
            },
        );
    }
    assert_eq!(h.hash_pieces(), (0, 2));
}

#[test]
fn a_peer_that_alone_sends_bad_pieces_twice_is_banned() {
    let mut h = Harness::leecher(4);
    let liar = h.seed(1, true);
    send_two_bad_pieces(&mut h, liar);
    let events = h.drain_events();
    assert!(events.contains(&Event::Banned {
        remote: Remote::Addr(addr(1)),
        reason: BanReason::FailedPieces
    }));
    assert!(orders_to(&h.commands(), liar).contains(&PeerCommand::Close(CloseReason::Banned)));
}

#[test]
fn end_game_asks_twice_and_cancels_the_duplicate() {
    let mut h = Harness::leecher(4); // 8 blocks
    let a = h.seed(1, true);
    let to_a = requests_to(&h.commands(), a);
    assert_eq!(to_a.len(), 8);
    let b = h.seed(2, true);
    let to_b = requests_to(&h.commands(), b);
    assert!(h.swarm.stats().end_game);
    assert!(
        !to_b.is_empty() && to_b.iter().all(|r| to_a.contains(r)),
        "duplicates"
    );
    let dup = to_b[0];
    h.deliver(a, dup);
    let c = h.commands();
    assert!(orders_to(&c, b).contains(&PeerCommand::Cancel(dup)));
    assert!(!h.swarm.requests_in_flight(b).any(|r| r == dup));
    // The late duplicate from b is not used twice.
    h.deliver(b, dup);
    for req in to_a.iter().filter(|r| **r != dup) {
        h.deliver(a, *req);
    }
    assert_eq!(h.hash_pieces(), (4, 0));
    assert!(h.swarm.is_complete());
}

#[test]
fn duplicate_connections_keep_the_established_useful_one() {
    let mut h = Harness::leecher(4);
    let out = h.seed(1, true); // outgoing, interested: useful
    h.commands();
    let inc = h.swarm.handle_incoming(addr(40000), h.now).unwrap();
    h.handshake(inc, 1, true); // same peer id
    let c = h.commands();
    assert_eq!(
        orders_to(&c, inc),
        [PeerCommand::Close(CloseReason::Duplicate)]
    );
    assert!(orders_to(&c, out).is_empty());
}

#[test]
fn duplicate_connections_neither_useful_follow_the_peer_ids() {
    // Our id (0xff..) is above theirs: both sides keep the connection
    // the lower id dialled, which is the one they dialled to us.
    let mut h = Harness::leecher(4);
    let out = h.dial(1, 1, true);
    let inc = h.swarm.handle_incoming(addr(40000), h.now).unwrap();
    h.handshake(inc, 1, true);
    let c = h.commands();
    assert_eq!(
        orders_to(&c, out),
        [PeerCommand::Close(CloseReason::Duplicate)]
    );
    assert!(orders_to(&c, inc).is_empty());
}

#[test]
fn duplicate_connections_are_found_by_address_too() {
    let mut h = Harness::leecher(4);
    let out = h.seed(1, true); // dialled 10.0.0.1:1
    h.commands();
    // The same host dials us with another peer id and says it listens on 1.
    let inc = h.swarm.handle_incoming(addr(40000), h.now).unwrap();
    h.handshake(inc, 9, true);
    h.event(
        inc,
        PeerEvent::ExtensionInfo {
            listen_port: Some(1),
            pex: false,
        },
    );
    let c = h.commands();
    assert_eq!(
        orders_to(&c, inc),
        [PeerCommand::Close(CloseReason::Duplicate)]
    );
    assert!(!orders_to(&c, out).contains(&PeerCommand::Close(CloseReason::Duplicate)));
    // And an address we are connected to is not dialled again.
    h.swarm
        .handle_candidates([addr(1)], PeerSource::Tracker, h.now);
    assert!(h.swarm.poll_dial().is_none());
}

#[test]
fn pex_tells_peers_about_each_other_and_learns_addresses() {
    let mut h = Harness::leecher(4);
    let a = h.dial(1, 1, true);
    let b = h.dial(2, 2, true);
    h.commands();
    h.event(
        a,
        PeerEvent::ExtensionInfo {
            listen_port: Some(1),
            pex: true,
        },
    );
    let c = h.commands();
    let Some(PeerCommand::Pex(message)) = orders_to(&c, a).into_iter().next() else {
        panic!("no PEX message to a: {c:?}");
    };
    assert_eq!(message.added.len(), 1);
    assert_eq!(message.added[0].addr, addr(2), "b, not a itself");
    assert!(message.added[0].flags.reachable());
    assert!(orders_to(&c, b).is_empty(), "b does not speak ut_pex");

    // a tells us of a new peer: we dial it.
    let learned = PexMessage {
        added: vec![
            PexPeer {
                addr: addr(3),
                flags: PexFlags(0),
            },
            PexPeer {
                addr: addr(2),
                flags: PexFlags(0),
            },
        ],
        dropped: vec![],
    };
    h.event(a, PeerEvent::Pex(learned));
    assert_eq!(
        h.swarm.poll_dial().map(|d| d.remote),
        Some(Remote::Addr(addr(3)))
    );
    assert!(h.swarm.poll_dial().is_none(), "b is connected already");
    assert!(h.drain_events().contains(&Event::PexReceived {
        peer: a,
        learned: 1,
        listed: 2
    }));

    // A new peer connects: a hears of it, but not before a minute passed.
    let _c = h.dial(4, 4, true);
    assert!(!orders_to(&h.commands(), a)
        .iter()
        .any(|o| matches!(o, PeerCommand::Pex(_))));
    h.advance(Duration::from_secs(61));
    let c = h.commands();
    assert!(orders_to(&c, a)
        .iter()
        .any(|o| matches!(o, PeerCommand::Pex(m) if m.added.iter().any(|p| p.addr == addr(4)))));
}

#[test]
fn a_private_torrent_never_exchanges_peers() {
    let mut cfg = config(4);
    cfg.private = true;
    let mut h = Harness::new(cfg, Bitfield::new(4));
    let a = h.dial(1, 1, true);
    let _b = h.dial(2, 2, true);
    h.event(
        a,
        PeerEvent::ExtensionInfo {
            listen_port: Some(1),
            pex: true,
        },
    );
    let message = PexMessage {
        added: vec![PexPeer {
            addr: addr(3),
            flags: PexFlags(0),
        }],
        dropped: vec![],
    };
    h.event(a, PeerEvent::Pex(message));
    h.advance(Duration::from_secs(120));
    assert!(!h
        .commands()
        .iter()
        .any(|(_, c)| matches!(c, PeerCommand::Pex(_))));
    assert!(h.swarm.poll_dial().is_none());
}

/// A seed of 4 pieces with two upload slots, and `leechers` peers that
/// have nothing and are interested. The harness serves no blocks, so
/// peers that take nothing are neither dropped nor passed over within an
/// hour.
fn seed_with_interested_leechers(leechers: u16) -> (Harness, Vec<PeerKey>) {
    let mut cfg = config(4);
    cfg.upload_slots = 2;
    cfg.max_peers = 20;
    cfg.inactivity_timeout = Duration::from_secs(3600);
    cfg.unused_unchoke_timeout = Duration::from_secs(3600);
    let mut h = Harness::new(cfg, Bitfield::full(4));
    let keys: Vec<_> = (1..=leechers).map(|p| h.dial(p, p as u8, true)).collect();
    for &k in &keys {
        h.event(k, PeerEvent::Pieces(Bitfield::new(4)));
        h.event(k, PeerEvent::Interested(true));
    }
    (h, keys)
}

#[test]
fn the_optimistic_unchoke_rotates_over_time() {
    let (mut h, keys) = seed_with_interested_leechers(8);
    // Peer 1 downloads fastest from us: it keeps the regular slot.
    h.event(
        keys[0],
        PeerEvent::Transferred {
            down: 0,
            up: 1 << 20,
        },
    );
    let mut optimistic = HashSet::new();
    for _ in 0..12 {
        h.advance(Duration::from_secs(30));
        h.event(
            keys[0],
            PeerEvent::Transferred {
                down: 0,
                up: 1 << 20,
            },
        );
        let unchoked: Vec<_> = keys
            .iter()
            .filter(|k| !h.swarm.peer_stats(**k).unwrap().am_choking)
            .copied()
            .collect();
        assert_eq!(unchoked.len(), 2, "two slots");
        assert!(unchoked.contains(&keys[0]), "the best stays unchoked");
        optimistic.extend(unchoked.into_iter().filter(|k| *k != keys[0]));
    }
    assert!(
        optimistic.len() >= 3,
        "rotation visits several peers: {}",
        optimistic.len()
    );
}

/// A choked peer losing interest frees no slot, so it makes no choke
/// decision: between two periodic rechokes, flipping its interest cannot
/// re-roll the optimistic slot (with 2 slots and 3 peers, each loss left
/// room for all, which cleared the optimistic pick; the next gain drew it
/// again, a coin toss per flip).
#[test]
fn a_choked_peer_flipping_interest_cannot_reroll_the_optimistic_slot() {
    let (mut h, keys) = seed_with_interested_leechers(3);
    // The three interests make one decision at 0.2 s (the quick-rechoke
    // gap); periodic ones follow at 10.2 s and 20.2 s, the optimistic
    // slot moving at 30.2 s.
    h.advance(Duration::from_secs(11));
    h.commands();
    let choked = |h: &Harness, k: PeerKey| h.swarm.peer_stats(k).unwrap().am_choking;
    let (optimistic, waiting) = if choked(&h, keys[1]) {
        (keys[2], keys[1])
    } else {
        (keys[1], keys[2])
    };
    assert!(!choked(&h, keys[0]) && !choked(&h, optimistic) && choked(&h, waiting));
    // 14 flips between 11 s and 19.4 s.
    for _ in 0..14 {
        h.event(waiting, PeerEvent::Interested(false));
        h.advance(Duration::from_millis(300));
        h.event(waiting, PeerEvent::Interested(true));
        h.advance(Duration::from_millis(300));
        assert!(!choked(&h, optimistic), "the optimistic slot was re-rolled");
        assert!(choked(&h, waiting));
    }
}

#[test]
fn a_seed_serves_leechers_and_hangs_up_on_seeds() {
    let mut h = Harness::new(config(4), Bitfield::full(4));
    assert!(h.swarm.is_complete());
    let leecher = h.dial(1, 1, true);
    h.event(leecher, PeerEvent::Pieces(Bitfield::new(4)));
    h.event(leecher, PeerEvent::Interested(true));
    let c = h.commands();
    assert_eq!(
        orders_to(&c, leecher),
        [PeerCommand::Choke(false)],
        "a free slot at once"
    );
    let seed = h.dial(2, 2, true);
    h.event(seed, PeerEvent::Pieces(Bitfield::full(4)));
    let c = h.commands();
    assert_eq!(
        orders_to(&c, seed),
        [PeerCommand::Close(CloseReason::BothSeeding)]
    );
    assert!(!c
        .iter()
        .any(|(_, o)| matches!(o, PeerCommand::Interested(true) | PeerCommand::Request(_))));
    // Nothing to trade: a seed is not dialled again while we seed, though
    // other addresses still are.
    h.swarm
        .handle_disconnected(seed, Disconnect::Closed, h.now)
        .unwrap();
    h.advance(Duration::from_secs(3600));
    assert!(h.swarm.poll_dial().is_none(), "the seed was dialled again");
    h.swarm
        .handle_candidates([addr(2), addr(3)], PeerSource::Tracker, h.now);
    assert_eq!(
        h.swarm.poll_dial().map(|d| d.remote),
        Some(Remote::Addr(addr(3)))
    );
    assert!(h.swarm.poll_dial().is_none());
}

#[test]
fn a_finished_leecher_dials_no_seed_it_knows_of() {
    let mut h = Harness::leecher(1);
    let a = h.dial(1, 1, true);
    h.event(a, PeerEvent::Pieces(Bitfield::new(1)));
    h.event(
        a,
        PeerEvent::ExtensionInfo {
            listen_port: Some(1),
            pex: true,
        },
    );
    // A seed named by PEX, and one that showed its bitfield.
    let by_pex = PexMessage {
        added: vec![PexPeer {
            addr: addr(2),
            flags: PexFlags(PexFlags::SEED),
        }],
        dropped: vec![],
    };
    h.event(a, PeerEvent::Pex(by_pex));
    let pex_seed = h.swarm.poll_dial().expect("a leecher dials seeds");
    assert_eq!(pex_seed.remote, Remote::Addr(addr(2)));
    h.swarm
        .handle_disconnected(pex_seed.peer, Disconnect::Failed, h.now)
        .unwrap();
    let seed = h.seed(3, true);
    h.swarm
        .handle_candidates([addr(4)], PeerSource::Tracker, h.now);
    let leecher = h.swarm.poll_dial().expect("a dial of the leecher");
    assert_eq!(leecher.remote, Remote::Addr(addr(4)));
    h.handshake(leecher.peer, 4, true);
    h.event(leecher.peer, PeerEvent::Pieces(Bitfield::new(1)));

    for req in requests_to(&h.commands(), seed) {
        h.deliver(seed, req);
    }
    assert_eq!(h.hash_pieces(), (1, 0));
    assert!(h.swarm.is_complete());
    let c = h.commands();
    assert_eq!(
        orders_to(&c, seed).last(),
        Some(&PeerCommand::Close(CloseReason::BothSeeding))
    );
    h.swarm
        .handle_disconnected(seed, Disconnect::Closed, h.now)
        .unwrap();
    h.swarm
        .handle_disconnected(leecher.peer, Disconnect::Closed, h.now)
        .unwrap();
    // An hour on, every backoff long over, and a new address to make the
    // swarm dial: the leechers, not the seeds.
    h.advance(Duration::from_secs(3600));
    h.swarm
        .handle_candidates([addr(5)], PeerSource::Tracker, h.now);
    let mut dialled = HashSet::new();
    while let Some(d) = h.swarm.poll_dial() {
        dialled.insert(d.remote);
    }
    assert_eq!(
        dialled,
        HashSet::from([Remote::Addr(addr(4)), Remote::Addr(addr(5))])
    );
}

#[test]
fn completing_announces_have_and_asks_for_a_resume_snapshot() {
    let mut h = Harness::leecher(2);
    let a = h.seed(1, true);
    let b = h.dial(2, 2, true);
    h.event(b, PeerEvent::Pieces(Bitfield::new(2)));
    let reqs = requests_to(&h.commands(), a);
    for r in reqs.iter().filter(|r| r.piece == 0) {
        h.deliver(a, *r);
    }
    h.hash_pieces();
    assert!(orders_to(&h.commands(), b).contains(&PeerCommand::Have(0)));
    assert!(!h
        .drain_events()
        .iter()
        .any(|e| matches!(e, Event::SaveResume(_))));
    h.advance(Duration::from_secs(5));
    let events = h.drain_events();
    let Some(Event::SaveResume(snapshot)) =
        events.iter().find(|e| matches!(e, Event::SaveResume(_)))
    else {
        panic!("no snapshot after 5 s: {events:?}");
    };
    assert!(snapshot.get(0) && !snapshot.get(1));
    for r in reqs.iter().filter(|r| r.piece == 1) {
        h.deliver(a, *r);
    }
    h.hash_pieces();
    let events = h.drain_events();
    assert!(events.contains(&Event::Complete));
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::SaveResume(s) if s.is_complete())));
    assert!(orders_to(&h.commands(), a).contains(&PeerCommand::Close(CloseReason::BothSeeding)));
}

/// The driver gave a new connection the bitfield of when it was made;
/// a piece saved during its handshake must still be announced to it (the
/// binary's private PEX test lost a leecher's last pieces that way).
#[test]
fn a_piece_saved_during_a_handshake_is_announced_when_it_completes() {
    let mut h = Harness::leecher(2);
    let a = h.seed(1, true);
    let incoming = h.swarm.handle_incoming(addr(9), h.now).unwrap();
    let reqs = requests_to(&h.commands(), a);
    for r in reqs.iter().filter(|r| r.piece == 1) {
        h.deliver(a, *r);
    }
    h.hash_pieces();
    assert!(
        !orders_to(&h.commands(), incoming).contains(&PeerCommand::Have(1)),
        "nothing is ordered before the handshake"
    );
    h.handshake(incoming, 9, true);
    assert_eq!(
        orders_to(&h.commands(), incoming)
            .iter()
            .filter(|o| matches!(o, PeerCommand::Have(_)))
            .collect::<Vec<_>>(),
        [&PeerCommand::Have(1)]
    );
}

#[test]
fn web_seeds_start_after_the_delay_when_peers_are_few() {
    let mut cfg = config(4);
    cfg.web_seeds = 2;
    let mut h = Harness::new(cfg, Bitfield::new(4));
    assert!(h.swarm.poll_dial().is_none());
    h.advance(Duration::from_millis(1100));
    let dials: Vec<_> = std::iter::from_fn(|| h.swarm.poll_dial())
        .map(|d| d.remote)
        .collect();
    assert_eq!(dials, [Remote::WebSeed(0), Remote::WebSeed(1)]);
}

#[test]
fn stale_handles_are_refused_not_mistaken() {
    let mut h = Harness::leecher(4);
    let a = h.dial(1, 1, true);
    h.disconnect(a);
    let b = h.dial(2, 2, true);
    assert_eq!(a.index(), b.index(), "the slot is reused");
    assert_eq!(
        h.swarm.handle_peer_event(a, PeerEvent::Have(0), h.now),
        Err(SwarmError::UnknownPeer { peer: a })
    );
    assert_eq!(
        h.swarm.handle_piece_saved(0, vec![0; 10].into(), h.now),
        Err(SwarmError::NotSaving { piece: 0 })
    );
}

#[test]
fn a_peer_breaking_the_protocol_is_closed() {
    let mut h = Harness::leecher(4);
    let a = h.dial(1, 1, true);
    h.event(a, PeerEvent::Have(99));
    assert_eq!(
        orders_to(&h.commands(), a),
        [PeerCommand::Close(CloseReason::ProtocolViolation)]
    );
    let b = h.dial(2, 2, true);
    h.event(b, PeerEvent::Pieces(Bitfield::new(5)));
    assert_eq!(
        orders_to(&h.commands(), b),
        [PeerCommand::Close(CloseReason::ProtocolViolation)]
    );
}

/// Found by the simulator (seeds 0, 4, 5, 7, 8, 10, 12, 15 of
/// `rustico-sim`'s seeds test): a banned peer that dials us again comes
/// from a new port, which the address ban did not cover, and got blocks
/// requested again. It is known by its peer id and its listen address.
#[test]
fn a_banned_peer_dialling_again_from_a_new_port_is_closed() {
    let mut h = Harness::leecher(4);
    let liar = h.seed(1, true);
    let reqs = requests_to(&h.commands(), liar);
    for req in reqs.iter().filter(|r| r.piece < 2) {
        h.event(
            liar,
            PeerEvent::Block {
                req: *req,
                data: vec![0; req.length as usize],
            },
        );
    }
    assert_eq!(h.hash_pieces(), (0, 2));
    assert!(h
        .drain_events()
        .iter()
        .any(|e| matches!(e, Event::Banned { .. })));
    h.commands();
    h.disconnect(liar);

    // Same peer id, from port 40001 of the same host: closed at once.
    let back = h.swarm.handle_incoming(addr(40_001), h.now).unwrap();
    h.handshake(back, 1, true);
    assert_eq!(
        orders_to(&h.commands(), back),
        vec![PeerCommand::Close(CloseReason::Banned)]
    );
    h.disconnect(back);

    // A new peer id, but the listen address it announces is banned.
    let again = h.swarm.handle_incoming(addr(40_002), h.now).unwrap();
    h.handshake(again, 9, true);
    h.event(
        again,
        PeerEvent::ExtensionInfo {
            listen_port: Some(1),
            pex: false,
        },
    );
    assert!(orders_to(&h.commands(), again).contains(&PeerCommand::Close(CloseReason::Banned)));
}

/// Issue #20 class 8: a peer flipping interest as fast as it can makes the
/// choker decide a few times a second, not once per flip; the last state
/// still wins within the gap.
#[test]
fn interest_flipping_costs_a_bounded_number_of_choke_decisions() {
    let mut h = Harness::new(config(40), Bitfield::full(40));
    let a = h.dial(1, 1, true);
    h.event(a, PeerEvent::Pieces(Bitfield::new(40)));
    h.commands();
    for i in 0..10_000 {
        h.event(a, PeerEvent::Interested(i % 2 == 0));
    }
    let chokes = |commands: &[(rustico_swarm::PeerKey, PeerCommand)]| {
        commands
            .iter()
            .filter(|(k, c)| *k == a && matches!(c, PeerCommand::Choke(_)))
            .count()
    };
    // The first flip unchokes at once; the other 9,999 wait for the gap.
    assert_eq!(chokes(&h.commands()), 1);
    // Ends not interested: choked again by the timer, once.
    h.advance(Duration::from_millis(300));
    let commands = h.commands();
    assert_eq!(chokes(&commands), 1);
    assert!(commands.contains(&(a, PeerCommand::Choke(true))));
}

#[test]
fn an_incoming_peer_is_dialled_back_where_it_listens_after_it_leaves() {
    let mut h = Harness::leecher(4);
    let inc = h.swarm.handle_incoming(addr(40000), h.now).unwrap();
    h.handshake(inc, 9, true);
    h.event(
        inc,
        PeerEvent::ExtensionInfo {
            listen_port: Some(7),
            pex: false,
        },
    );
    h.event(inc, PeerEvent::Pieces(Bitfield::full(4)));
    h.commands();
    assert!(h.swarm.poll_dial().is_none(), "not while it is connected");
    assert_eq!(h.swarm.known_addrs(h.now), [addr(7)]);
    h.disconnect(inc);
    assert!(
        h.swarm.poll_dial().is_none(),
        "not at once: a normal backoff"
    );
    h.advance(Duration::from_secs(60));
    let dial = h.swarm.poll_dial().expect("a dial back");
    assert_eq!(dial.remote, rustico_swarm::Remote::Addr(addr(7)));
}

#[test]
fn known_addrs_are_every_address_heard_of_but_the_banned() {
    let mut h = Harness::leecher(4);
    let liar = h.seed(1, true);
    h.swarm
        .handle_candidates([addr(8), addr(2)], PeerSource::Tracker, h.now);
    send_two_bad_pieces(&mut h, liar);
    assert_eq!(
        h.swarm.known_addrs(h.now),
        [addr(2), addr(8)],
        "1 is banned"
    );
}
