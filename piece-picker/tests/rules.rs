//! One test per picking rule and per event, on small torrents where the
//! expected answer can be worked out by hand.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use rustico_piece_picker::{
    BlockRequest, PeerKey, PickMode, PickerConfig, PickerError, PiecePicker, PieceState, SpeedClass,
};

/// `pieces` pieces of 4 one-byte blocks; no random-first, no speed rule.
fn config(pieces: u64) -> PickerConfig {
    let mut c = PickerConfig::new(pieces * 4, 4);
    c.block_size = 1;
    c.random_first_pieces = 0;
    c.fastest_peer_first = false;
    c
}

fn bitfield(n: u32, has: impl Fn(u32) -> bool) -> Vec<u8> {
    let mut bytes = vec![0u8; n.div_ceil(8) as usize];
    for p in (0..n).filter(|&p| has(p)) {
        bytes[(p / 8) as usize] |= 0x80 >> (p % 8);
    }
    bytes
}

fn pick(picker: &mut PiecePicker, peer: PeerKey, max: usize) -> Vec<BlockRequest> {
    let mut out = Vec::new();
    picker.pick(peer, max, &mut out).unwrap();
    out
}

fn pieces_of(blocks: &[BlockRequest]) -> BTreeSet<u32> {
    blocks.iter().map(|b| b.piece).collect()
}

fn receive_all(picker: &mut PiecePicker, peer: PeerKey, blocks: &[BlockRequest]) -> Vec<PeerKey> {
    let mut cancel = Vec::new();
    for &b in blocks {
        let outcome = picker.block_received(peer, b, &mut cancel).unwrap();
        assert!(outcome.accepted);
        if outcome.piece_complete {
            picker.piece_verified(b.piece).unwrap();
        }
    }
    cancel
}

#[test]
fn rarest_piece_first_with_random_ties() {
    let mut chosen = BTreeSet::new();
    for seed in 0..32 {
        let mut c = config(10);
        c.seed = seed;
        let mut picker = PiecePicker::new(c).unwrap();
        let a = picker.add_peer();
        picker.peer_bitfield(a, &bitfield(10, |_| true)).unwrap();
        let b = picker.add_peer();
        picker.peer_bitfield(b, &bitfield(10, |p| p < 5)).unwrap();
        let c = picker.add_peer();
        picker.peer_bitfield(c, &bitfield(10, |p| p < 2)).unwrap();
        assert_eq!(picker.availability(0), 3);
        assert_eq!(picker.availability(9), 1);
        let got = pick(&mut picker, a, 4);
        assert_eq!(got.len(), 4, "one whole piece");
        let piece = got[0].piece;
        assert!(
            (5..10).contains(&piece),
            "picked {piece}, not one of the rarest"
        );
        chosen.insert(piece);
        // b has only pieces 0..5: the rarest of those are 2..5.
        let got = pick(&mut picker, b, 4);
        assert!((2..5).contains(&got[0].piece));
    }
    assert!(chosen.len() >= 3, "ties are broken at random: {chosen:?}");
}

#[test]
fn same_seed_same_picks() {
    let run = |seed| {
        let mut c = config(64);
        c.seed = seed;
        let mut picker = PiecePicker::new(c).unwrap();
        let peers: Vec<_> = (0..4).map(|_| picker.add_peer()).collect();
        for (i, &p) in peers.iter().enumerate() {
            picker
                .peer_bitfield(p, &bitfield(64, |x| (x as usize + i) % 3 != 0))
                .unwrap();
        }
        let mut all = Vec::new();
        for _ in 0..5 {
            for &p in &peers {
                all.extend(pick(&mut picker, p, 5));
            }
        }
        all
    };
    assert_eq!(run(1), run(1));
    assert_ne!(run(1), run(2));
}

#[test]
fn partial_pieces_are_finished_before_new_ones() {
    let mut picker = PiecePicker::new(config(8)).unwrap();
    let a = picker.add_peer();
    picker.peer_has_all(a).unwrap();
    let b = picker.add_peer();
    picker.peer_has_all(b).unwrap();
    let first = pick(&mut picker, a, 2);
    assert_eq!(pieces_of(&first).len(), 1);
    let second = pick(&mut picker, b, 2);
    assert_eq!(
        pieces_of(&second),
        pieces_of(&first),
        "b completes a's piece"
    );
    assert_eq!(picker.downloading_count(), 1);
}

#[test]
fn fast_peers_get_pieces_of_their_own_and_slow_peers_stay_off_them() {
    let mut c = config(8);
    c.fastest_peer_first = true;
    c.whole_piece_seconds = 1; // fast: >= 4 bytes per second
    let mut picker = PiecePicker::new(c).unwrap();
    let fast1 = picker.add_peer();
    let fast2 = picker.add_peer();
    let slow1 = picker.add_peer();
    let slow2 = picker.add_peer();
    for (p, rate) in [(fast1, 100), (fast2, 100), (slow1, 1), (slow2, 1)] {
        picker.peer_has_all(p).unwrap();
        picker.set_peer_rate(p, rate).unwrap();
    }
    assert_eq!(picker.speed_class(fast1), Some(SpeedClass::Fast));
    assert_eq!(picker.speed_class(slow1), Some(SpeedClass::Slow));

    let f1 = pieces_of(&pick(&mut picker, fast1, 2));
    let f2 = pieces_of(&pick(&mut picker, fast2, 2));
    assert!(
        f1.is_disjoint(&f2),
        "a fast peer does not join another fast peer's piece"
    );
    let s1 = pieces_of(&pick(&mut picker, slow1, 2));
    assert!(
        s1.is_disjoint(&f1) && s1.is_disjoint(&f2),
        "slow peers stay off fast pieces"
    );
    let s2 = pieces_of(&pick(&mut picker, slow2, 2));
    assert_eq!(s2, s1, "slow peers share a slow piece");
    // A peer continues the piece it started.
    assert_eq!(pieces_of(&pick(&mut picker, fast1, 2)), f1);
}

#[test]
fn abandoned_partial_piece_is_taken_over() {
    let mut c = config(8);
    c.fastest_peer_first = true;
    c.whole_piece_seconds = 1;
    let mut picker = PiecePicker::new(c).unwrap();
    let a = picker.add_peer();
    let b = picker.add_peer();
    for p in [a, b] {
        picker.peer_has_all(p).unwrap();
        picker.set_peer_rate(p, 100).unwrap();
    }
    let got = pick(&mut picker, a, 2);
    receive_all(&mut picker, a, &got[..1]);
    picker.peer_choked(a).unwrap();
    assert_eq!(picker.in_flight_count(a), 0);
    let taken = pick(&mut picker, b, 3);
    assert_eq!(pieces_of(&taken), pieces_of(&got));
    assert_eq!(taken.len(), 3, "the three blocks not received");
}

#[test]
fn random_first_pieces_then_rarest() {
    let rarest_first_pick = |random_first: u32, seed: u64| {
        let mut c = config(32);
        c.seed = seed;
        c.random_first_pieces = random_first;
        let mut picker = PiecePicker::new(c).unwrap();
        let everything = picker.add_peer();
        picker
            .peer_bitfield(everything, &bitfield(32, |_| true))
            .unwrap();
        let common = picker.add_peer();
        picker
            .peer_bitfield(common, &bitfield(32, |p| p != 31))
            .unwrap();
        // Piece 31 is the only rarest piece.
        pick(&mut picker, everything, 1)[0].piece
    };
    assert!((0..16).all(|seed| rarest_first_pick(0, seed) == 31));
    let random: BTreeSet<u32> = (0..16).map(|seed| rarest_first_pick(2, seed)).collect();
    assert!(random.len() > 3, "random first pieces: {random:?}");
}

#[test]
fn random_first_ends_after_that_many_pieces() {
    let mut c = config(32);
    c.random_first_pieces = 1;
    let mut picker = PiecePicker::new(c).unwrap();
    let a = picker.add_peer();
    picker.peer_bitfield(a, &bitfield(32, |_| true)).unwrap();
    let b = picker.add_peer();
    picker.peer_bitfield(b, &bitfield(32, |p| p != 31)).unwrap();
    picker.we_have(0).unwrap();
    assert_eq!(pick(&mut picker, a, 1)[0].piece, 31);
}

#[test]
fn sequential_mode_goes_in_order_over_what_the_peer_has() {
    let mut c = config(200);
    c.mode = PickMode::Sequential;
    c.random_first_pieces = 10; // ignored in sequential mode
    let mut picker = PiecePicker::new(c).unwrap();
    let seed = picker.add_peer();
    picker.peer_has_all(seed).unwrap();
    let got = pick(&mut picker, seed, 12);
    assert_eq!(pieces_of(&got), BTreeSet::from([0, 1, 2]));
    let sparse = picker.add_peer();
    picker
        .peer_bitfield(sparse, &bitfield(200, |p| p % 70 == 0 || p == 150))
        .unwrap();
    let got = pick(&mut picker, sparse, 12);
    assert_eq!(pieces_of(&got), BTreeSet::from([70, 140, 150]));
}

#[test]
fn priorities_higher_first_and_zero_skipped() {
    let mut picker = PiecePicker::new(config(10)).unwrap();
    let a = picker.add_peer();
    picker.peer_has_all(a).unwrap();
    let b = picker.add_peer();
    picker.peer_bitfield(b, &bitfield(10, |p| p != 3)).unwrap();
    // Piece 3 is the rarest, but 7 has a higher priority.
    picker.set_piece_priority(7, 7).unwrap();
    assert_eq!(pick(&mut picker, a, 4)[0].piece, 7);
    assert_eq!(pick(&mut picker, a, 4)[0].piece, 3);
    let mut prios = vec![1u8; 10];
    prios[5] = 0;
    picker.set_priorities(&prios).unwrap();
    let rest = pieces_of(&pick(&mut picker, a, 100));
    assert!(!rest.contains(&5), "priority 0 is never picked");
    assert_eq!(rest.len(), 7);
    assert_eq!(picker.piece_state(5), Some(PieceState::Skipped));
    assert_eq!(
        picker.set_piece_priority(0, 8),
        Err(PickerError::PriorityOutOfRange { priority: 8 })
    );
    assert!(matches!(
        picker.set_priorities(&[1]),
        Err(PickerError::PrioritiesLength { .. })
    ));
}

#[test]
fn end_game_duplicates_and_cancels() {
    let mut c = config(1);
    c.end_game_max_duplicates = 1;
    let mut picker = PiecePicker::new(c).unwrap();
    let peers: Vec<_> = (0..3).map(|_| picker.add_peer()).collect();
    for &p in &peers {
        picker.peer_has_all(p).unwrap();
    }
    let first = pick(&mut picker, peers[0], 4);
    assert_eq!(first.len(), 4);
    assert!(!picker.in_end_game());
    let dup = pick(&mut picker, peers[1], 4);
    assert!(picker.in_end_game());
    assert_eq!(dup, first, "every block asked again once");
    assert!(
        pick(&mut picker, peers[2], 4).is_empty(),
        "at most one duplicate per block"
    );
    let mut cancel = Vec::new();
    let outcome = picker
        .block_received(peers[1], dup[0], &mut cancel)
        .unwrap();
    assert!(outcome.accepted);
    assert_eq!(cancel, vec![peers[0]]);
    assert_eq!(
        picker.in_flight_count(peers[0]),
        3,
        "the cancelled request is forgotten"
    );
    // A late copy from the cancelled peer is not accepted.
    cancel.clear();
    let late = picker
        .block_received(peers[0], dup[0], &mut cancel)
        .unwrap();
    assert!(!late.accepted && cancel.is_empty());
    // Peer 2 may now duplicate the blocks left with one requester.
    picker.peer_choked(peers[1]).unwrap();
    assert_eq!(pick(&mut picker, peers[2], 4).len(), 3);
}

#[test]
fn end_game_disabled_gives_nothing_more() {
    let mut c = config(1);
    c.end_game_max_duplicates = 0;
    let mut picker = PiecePicker::new(c).unwrap();
    let a = picker.add_peer();
    let b = picker.add_peer();
    picker.peer_has_all(a).unwrap();
    picker.peer_has_all(b).unwrap();
    assert_eq!(pick(&mut picker, a, 4).len(), 4);
    assert!(pick(&mut picker, b, 4).is_empty());
    assert!(!picker.in_end_game());
}

#[test]
fn choke_and_reject_return_blocks() {
    let mut picker = PiecePicker::new(config(4)).unwrap();
    let a = picker.add_peer();
    let b = picker.add_peer();
    picker.peer_has_all(a).unwrap();
    picker.peer_has_all(b).unwrap();
    let got = pick(&mut picker, a, 6);
    assert_eq!(picker.in_flight(a).collect::<Vec<_>>(), got);
    picker.block_rejected(a, got[5]).unwrap();
    assert_eq!(picker.in_flight_count(a), 5);
    assert_eq!(pick(&mut picker, b, 1), vec![got[5]]);
    picker.peer_choked(a).unwrap();
    assert_eq!(picker.in_flight_count(a), 0);
    let again: BTreeSet<_> = pick(&mut picker, b, 100).into_iter().collect();
    assert_eq!(
        again.len(),
        15,
        "every block but the one b already has in flight"
    );
    assert!(got[..5].iter().all(|blk| again.contains(blk)));
}

#[test]
fn hash_failure_resets_piece_and_names_senders() {
    let mut picker = PiecePicker::new(config(2)).unwrap();
    let a = picker.add_peer();
    let b = picker.add_peer();
    picker.peer_has_all(a).unwrap();
    picker.peer_has_all(b).unwrap();
    let from_a = pick(&mut picker, a, 2);
    let from_b = pick(&mut picker, b, 2);
    assert_eq!(pieces_of(&from_a), pieces_of(&from_b));
    let piece = from_a[0].piece;
    let mut cancel = Vec::new();
    for &blk in &from_a {
        assert!(
            !picker
                .block_received(a, blk, &mut cancel)
                .unwrap()
                .piece_complete
        );
    }
    assert_eq!(
        picker.piece_hash_failed(piece, &mut Vec::new()),
        Err(PickerError::PieceNotComplete { piece })
    );
    let last = picker.block_received(b, from_b[0], &mut cancel).unwrap();
    assert!(!last.piece_complete);
    assert!(
        picker
            .block_received(b, from_b[1], &mut cancel)
            .unwrap()
            .piece_complete
    );
    assert_eq!(picker.piece_state(piece), Some(PieceState::Complete));
    let mut senders = Vec::new();
    picker.piece_hash_failed(piece, &mut senders).unwrap();
    senders.sort();
    assert_eq!(senders, vec![a, b]);
    assert_eq!(picker.piece_state(piece), Some(PieceState::Open));
    let retry = pick(&mut picker, a, 8);
    assert!(
        pieces_of(&retry).contains(&piece),
        "a failed piece can be picked again"
    );
}

#[test]
fn verified_piece_is_never_picked_again() {
    let mut picker = PiecePicker::new(config(3)).unwrap();
    let a = picker.add_peer();
    picker.peer_has_all(a).unwrap();
    let got = pick(&mut picker, a, 4);
    receive_all(&mut picker, a, &got);
    assert!(picker.have(got[0].piece));
    let rest = pick(&mut picker, a, 100);
    assert_eq!(rest.len(), 8);
    assert!(!pieces_of(&rest).contains(&got[0].piece));
    receive_all(&mut picker, a, &rest);
    assert!(picker.is_complete() && picker.is_finished());
    assert!(pick(&mut picker, a, 100).is_empty());
    assert!(!picker.interesting(a));
}

#[test]
fn removed_peer_holds_nothing_and_its_handle_dies() {
    let mut picker = PiecePicker::new(config(4)).unwrap();
    let a = picker.add_peer();
    picker.peer_bitfield(a, &bitfield(4, |p| p < 3)).unwrap();
    let got = pick(&mut picker, a, 5);
    assert_eq!(got.len(), 5);
    picker.remove_peer(a).unwrap();
    assert_eq!(picker.availability(0), 0);
    assert_eq!(picker.in_flight_count(a), 0);
    assert_eq!(
        picker.peer_has(a, 0),
        Err(PickerError::UnknownPeer { peer: a })
    );
    let b = picker.add_peer();
    assert_eq!(b.index(), a.index(), "slot reused");
    assert_ne!(b, a, "with a new generation");
    picker.peer_has_all(b).unwrap();
    assert_eq!(
        pick(&mut picker, b, 16).len(),
        16,
        "every block is pickable again"
    );
    picker.debug_check_invariants().unwrap();
}

#[test]
fn seeds_are_counted_once() {
    let mut picker = PiecePicker::new(config(100)).unwrap();
    let s = picker.add_peer();
    picker.peer_has(s, 3).unwrap();
    picker.peer_has_all(s).unwrap();
    assert_eq!(picker.num_seeds(), 1);
    assert!((0..100).all(|p| picker.availability(p) == 1));
    picker.peer_has(s, 3).unwrap();
    assert_eq!(
        picker.availability(3),
        1,
        "have from a seed changes nothing"
    );
    picker.remove_peer(s).unwrap();
    assert_eq!(picker.num_seeds(), 0);
    assert!((0..100).all(|p| picker.availability(p) == 0));
    picker.debug_check_invariants().unwrap();
}

#[test]
fn duplicate_have_is_counted_once() {
    let mut picker = PiecePicker::new(config(10)).unwrap();
    let a = picker.add_peer();
    picker.peer_has(a, 4).unwrap();
    picker.peer_has(a, 4).unwrap();
    picker
        .peer_bitfield(a, &bitfield(10, |p| p == 4 || p == 5))
        .unwrap();
    assert_eq!(picker.availability(4), 1);
    assert_eq!(picker.availability(5), 1);
    picker.debug_check_invariants().unwrap();
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    let mut picker = PiecePicker::new(config(10)).unwrap();
    let a = picker.add_peer();
    assert_eq!(
        picker.peer_has(a, 10),
        Err(PickerError::PieceOutOfRange {
            piece: 10,
            num_pieces: 10
        })
    );
    assert_eq!(
        picker.peer_bitfield(a, &[0xff]),
        Err(PickerError::BitfieldLength {
            expected: 2,
            actual: 1
        })
    );
    assert_eq!(
        picker.peer_bitfield(a, &[0xff, 0xe0]),
        Err(PickerError::BitfieldSpareBits { byte_offset: 1 })
    );
    picker.peer_bitfield(a, &[0xff, 0xc0]).unwrap();
    let mut cancel = Vec::new();
    for bad in [
        BlockRequest {
            piece: 0,
            offset: 4,
            length: 1,
        },
        BlockRequest {
            piece: 0,
            offset: 0,
            length: 2,
        },
        BlockRequest {
            piece: 11,
            offset: 0,
            length: 1,
        },
    ] {
        assert!(picker.block_received(a, bad, &mut cancel).is_err());
        assert!(picker.block_rejected(a, bad).is_err());
    }
    let stranger = PiecePicker::new(config(10)).unwrap().add_peer();
    let mut other = PiecePicker::new(config(10)).unwrap();
    assert!(matches!(
        other.pick(stranger, 1, &mut Vec::new()),
        Err(PickerError::UnknownPeer { .. })
    ));
    assert!(PiecePicker::new(PickerConfig::new(0, 4)).is_err());
    assert!(PiecePicker::new(PickerConfig::new(10, 0)).is_err());
    assert!(picker.piece_verified(0).is_err());
    let message = PickerError::BitfieldSpareBits { byte_offset: 1 }.to_string();
    assert!(message.contains("byte 1"), "{message}");
}

#[test]
fn block_geometry_with_short_last_piece() {
    // 2 pieces of 40 KiB with 16 KiB blocks, the last piece 20 KiB + 1.
    let mut c = PickerConfig::new(40 * 1024 + 20 * 1024 + 1, 40 * 1024);
    c.random_first_pieces = 0;
    c.mode = PickMode::Sequential;
    let mut picker = PiecePicker::new(c).unwrap();
    assert_eq!(picker.blocks_in_piece(0), 3);
    assert_eq!(picker.blocks_in_piece(1), 2);
    let s = picker.add_peer();
    picker.peer_has_all(s).unwrap();
    let got = pick(&mut picker, s, 10);
    let lengths: Vec<u32> = got.iter().map(|b| b.length).collect();
    assert_eq!(lengths, vec![16384, 16384, 8192, 16384, 4097]);
    assert_eq!(got[2].offset, 32768);
}

#[test]
fn unrequested_block_is_accepted_once() {
    let mut picker = PiecePicker::new(config(2)).unwrap();
    let a = picker.add_peer();
    let block = BlockRequest {
        piece: 1,
        offset: 2,
        length: 1,
    };
    let mut cancel = Vec::new();
    assert!(
        picker
            .block_received(a, block, &mut cancel)
            .unwrap()
            .accepted
    );
    assert!(
        !picker
            .block_received(a, block, &mut cancel)
            .unwrap()
            .accepted
    );
    assert_eq!(picker.piece_state(1), Some(PieceState::Downloading));
    picker.peer_has_all(a).unwrap();
    let got = pick(&mut picker, a, 3);
    assert!(
        got.iter().all(|b| b.piece == 1 && b.offset != 2),
        "partial first: {got:?}"
    );
    picker.debug_check_invariants().unwrap();
}

#[test]
fn interest_follows_what_we_still_want() {
    let mut picker = PiecePicker::new(config(4)).unwrap();
    let a = picker.add_peer();
    assert!(!picker.interesting(a));
    picker.peer_has(a, 2).unwrap();
    assert!(picker.interesting(a));
    picker.set_piece_priority(2, 0).unwrap();
    assert!(!picker.interesting(a));
    picker.set_piece_priority(2, 1).unwrap();
    assert!(picker.interesting(a));
    picker.we_have(2).unwrap();
    assert!(!picker.interesting(a));
    let s = picker.add_peer();
    picker.peer_has_all(s).unwrap();
    assert!(picker.interesting(s));
    for p in [0, 1, 3] {
        picker.we_have(p).unwrap();
    }
    assert!(!picker.interesting(s));
    assert!(picker.is_complete());
}

#[test]
fn we_have_drops_requests_for_that_piece() {
    let mut picker = PiecePicker::new(config(2)).unwrap();
    let a = picker.add_peer();
    picker.peer_has_all(a).unwrap();
    let got = pick(&mut picker, a, 4);
    picker.we_have(got[0].piece).unwrap();
    assert_eq!(picker.in_flight_count(a), 0);
    let mut cancel = Vec::new();
    assert!(
        !picker
            .block_received(a, got[0], &mut cancel)
            .unwrap()
            .accepted
    );
    picker.debug_check_invariants().unwrap();
}

#[test]
fn peer_with_few_pieces_among_many_is_found() {
    // Exercises the word-wise fallback: the peer has 2 of 100k open pieces.
    let mut c = config(100_000);
    c.seed = 3;
    let mut picker = PiecePicker::new(c).unwrap();
    let crowd = picker.add_peer();
    picker
        .peer_bitfield(crowd, &bitfield(100_000, |p| p % 2 == 0))
        .unwrap();
    let sparse = picker.add_peer();
    picker.peer_has(sparse, 99_998).unwrap();
    picker.peer_has(sparse, 77_777).unwrap();
    // 77_777 is odd: availability 1 versus 2 for 99_998.
    assert_eq!(pick(&mut picker, sparse, 4)[0].piece, 77_777);
    assert_eq!(pick(&mut picker, sparse, 4)[0].piece, 99_998);
    assert!(pick(&mut picker, sparse, 4).is_empty());
}

#[test]
fn random_mode_ignores_rarity_but_not_priority() {
    let first_piece = |seed| {
        let mut c = config(64);
        c.seed = seed;
        c.mode = PickMode::Random;
        let mut picker = PiecePicker::new(c).unwrap();
        let a = picker.add_peer();
        picker.peer_has_all(a).unwrap();
        let b = picker.add_peer();
        picker.peer_bitfield(b, &bitfield(64, |p| p != 63)).unwrap();
        picker.set_piece_priority(10, 0).unwrap();
        let got = pick(&mut picker, a, 4 * 63);
        assert!(
            !pieces_of(&got).contains(&10),
            "priority 0 is skipped in random mode too"
        );
        assert_eq!(pieces_of(&got).len(), 63);
        got[0].piece
    };
    let firsts: BTreeSet<u32> = (0..16).map(first_piece).collect();
    assert!(
        firsts.len() > 4,
        "random, not rarest (63) first: {firsts:?}"
    );

    let mut c = config(64);
    c.mode = PickMode::Random;
    let mut picker = PiecePicker::new(c).unwrap();
    let a = picker.add_peer();
    picker.peer_has_all(a).unwrap();
    picker.set_piece_priority(40, 6).unwrap();
    assert_eq!(
        pick(&mut picker, a, 4)[0].piece,
        40,
        "higher priority first"
    );
}

#[test]
fn fast_peer_helps_slow_pieces_when_nothing_new_is_left() {
    let mut c = config(1);
    c.fastest_peer_first = true;
    c.whole_piece_seconds = 1;
    c.end_game_max_duplicates = 0;
    let mut picker = PiecePicker::new(c).unwrap();
    let slow = picker.add_peer();
    let fast = picker.add_peer();
    for (p, rate) in [(slow, 1), (fast, 100)] {
        picker.peer_has_all(p).unwrap();
        picker.set_peer_rate(p, rate).unwrap();
    }
    assert_eq!(pick(&mut picker, slow, 2).len(), 2);
    let helped = pick(&mut picker, fast, 4);
    assert_eq!(helped.len(), 2, "the two blocks the slow peer left open");
    assert!(!picker.in_end_game());
}

#[test]
fn end_game_asks_least_duplicated_blocks_first() {
    let mut c = config(1);
    c.end_game_max_duplicates = 2;
    let mut picker = PiecePicker::new(c).unwrap();
    let peers: Vec<_> = (0..3).map(|_| picker.add_peer()).collect();
    for &p in &peers {
        picker.peer_has_all(p).unwrap();
    }
    assert_eq!(pick(&mut picker, peers[0], 4).len(), 4);
    let second = pick(&mut picker, peers[1], 2);
    assert_eq!(second.len(), 2);
    // Peer 2 first takes the two blocks requested once, then duplicates.
    let third = pick(&mut picker, peers[2], 2);
    assert!(
        third.iter().all(|b| !second.contains(b)),
        "{third:?} vs {second:?}"
    );
    picker.debug_check_invariants().unwrap();
}

#[test]
fn block_returned_below_later_requests_is_picked_next() {
    // One piece of 8 blocks handed out one at a time: the picker resumes
    // after the last block it gave, yet a block returned from earlier in
    // the piece comes back first.
    let mut c = PickerConfig::new(8, 8);
    c.block_size = 1;
    c.random_first_pieces = 0;
    let mut picker = PiecePicker::new(c).unwrap();
    let a = picker.add_peer();
    picker.peer_has_all(a).unwrap();
    let offsets = |blocks: Vec<BlockRequest>| blocks.iter().map(|b| b.offset).collect::<Vec<_>>();
    for expected in 0..5 {
        assert_eq!(offsets(pick(&mut picker, a, 1)), vec![expected]);
    }
    let block2 = BlockRequest {
        piece: 0,
        offset: 2,
        length: 1,
    };
    picker.block_rejected(a, block2).unwrap();
    assert_eq!(offsets(pick(&mut picker, a, 1)), vec![2]);
    assert_eq!(offsets(pick(&mut picker, a, 2)), vec![5, 6]);
    let mut cancel = Vec::new();
    let unrequested = BlockRequest {
        piece: 0,
        offset: 7,
        length: 1,
    };
    assert!(
        picker
            .block_received(a, unrequested, &mut cancel)
            .unwrap()
            .accepted
    );
    assert!(
        pick(&mut picker, a, 4).is_empty(),
        "nothing left to ask for"
    );
    picker.peer_choked(a).unwrap();
    assert_eq!(offsets(pick(&mut picker, a, 8)), vec![0, 1, 2, 3, 4, 5, 6]);
    picker.debug_check_invariants().unwrap();
}

#[test]
fn pick_in_takes_only_the_listed_pieces_the_peer_has_and_we_want() {
    let mut picker = PiecePicker::new(config(8)).unwrap();
    let a = picker.add_peer();
    picker.peer_bitfield(a, &bitfield(8, |p| p != 5)).unwrap();
    let b = picker.add_peer();
    picker.peer_has_all(b).unwrap();
    // Piece 2 is under way with b, one block left open; piece 3 is ours.
    let mut started = Vec::new();
    picker.pick_in(b, &[2], 3, &mut started).unwrap();
    assert_eq!(started.len(), 3);
    let three = pick_in(&mut picker, b, &[3], 4);
    receive_all(&mut picker, b, &three);
    assert_eq!(picker.piece_state(3), Some(PieceState::Have));
    picker.set_piece_priority(6, 0).unwrap();
    // 5: a lacks it; 3: ours; 6: not wanted; 9: out of range.
    let got = pick_in(&mut picker, a, &[5, 3, 6, 9, 2, 7], 10);
    assert_eq!(
        got.iter().map(|r| (r.piece, r.offset)).collect::<Vec<_>>(),
        [(2, 3), (7, 0), (7, 1), (7, 2), (7, 3)],
        "the open block of 2, then all of 7, and nothing else"
    );
    assert!(
        pick_in(&mut picker, a, &[2, 7], 10).is_empty(),
        "no duplicates"
    );
    assert_eq!(picker.in_flight_count(a), 5);
}

fn pick_in(
    picker: &mut PiecePicker,
    peer: PeerKey,
    pieces: &[u32],
    max: usize,
) -> Vec<BlockRequest> {
    let mut out = Vec::new();
    picker.pick_in(peer, pieces, max, &mut out).unwrap();
    out
}
