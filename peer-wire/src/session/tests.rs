#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::{PexFlags, PexPeer, Reserved};
use proptest::prelude::*;

const HASH: [u8; 20] = [0xaa; 20];
const US: [u8; 20] = *b"-RS0001-us0000000000";
const THEM: [u8; 20] = *b"-XX0001-them00000000";

/// A torrent of `num_pieces` pieces of 64 KiB (the last one 4 bytes).
fn geometry(num_pieces: u32) -> Geometry {
    Geometry::new(u64::from(num_pieces - 1) * 65_536 + 4, 65_536).unwrap()
}

fn content(num_pieces: u32, ours: &[u32]) -> Content {
    let mut have = Bitfield::new(num_pieces);
    for &i in ours {
        have.set(i);
    }
    Content::torrent(geometry(num_pieces), have).unwrap()
}

fn reserved(fast: bool, extended: bool) -> Reserved {
    Reserved::default()
        .with_fast(fast)
        .with_extension_protocol(extended)
}

fn handshaking(content: Content, config: SessionConfig, now: Instant) -> Handshaking {
    let ours = Reserved::supported().with_dht(config.dht_port.is_some());
    Handshaking::new(Handshake::new(ours, HASH, US), content, config, now)
}

/// A session whose peer sent a handshake with the given bits; our own
/// handshake already drained.
fn session_with(
    content: Content,
    config: SessionConfig,
    theirs: Reserved,
    now: Instant,
) -> Session {
    let mut hs = handshaking(content, config, now);
    let mut sink = Vec::new();
    hs.poll_transmit(&mut sink, now);
    let peer = Handshake::new(theirs, HASH, THEM).to_bytes();
    match hs.handle_input(&peer, now).unwrap() {
        Progress::Established(s) => s,
        Progress::Handshaking(_) => panic!("68 bytes should finish the handshake"),
    }
}

fn session(num_pieces: u32, ours: &[u32], fast: bool) -> Session {
    session_with(
        content(num_pieces, ours),
        SessionConfig::default(),
        reserved(fast, false),
        Instant::now(),
    )
}

fn wire(messages: &[Message<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in messages {
        m.encode(&mut out);
    }
    out
}

fn sent(s: &mut Session, now: Instant) -> Vec<u8> {
    let mut buf = Vec::new();
    s.poll_transmit(&mut buf, now);
    buf
}

fn events(s: &mut Session) -> Vec<Event> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

fn actions(s: &mut Session) -> Vec<Action> {
    std::iter::from_fn(|| s.poll_action()).collect()
}

/// A session with none of the 4 pieces, unchoked by the peer (fast
/// extension on): ready to request.
fn unchoked_leecher(now: Instant) -> Session {
    let mut s = session(4, &[], true);
    s.handle_input(&wire(&[Message::Unchoke]), now).unwrap();
    s
}

fn block(piece: u32, offset: u32) -> BlockRequest {
    BlockRequest {
        piece,
        offset,
        length: 4,
    }
}

// ----- the handshake: one type per state -----

#[test]
fn handshaking_becomes_a_session_only_with_the_whole_handshake() {
    let now = Instant::now();
    let mut hs = handshaking(content(4, &[0]), SessionConfig::default(), now);
    let mut ours = Vec::new();
    assert_eq!(hs.poll_transmit(&mut ours, now), 68);
    assert_eq!(
        ours,
        Handshake::new(Reserved::supported(), HASH, US).to_bytes()
    );
    assert_eq!(hs.poll_transmit(&mut ours, now), 0, "sent once");

    // The peer's handshake and its first messages in one read, split
    // inside the handshake.
    let mut theirs = Handshake::new(reserved(true, false), HASH, THEM)
        .to_bytes()
        .to_vec();
    theirs.extend(wire(&[Message::HaveAll, Message::Unchoke]));
    let mut hs = match hs.handle_input(&theirs[..50], now).unwrap() {
        Progress::Handshaking(hs) => hs,
        Progress::Established(_) => panic!("50 bytes are not a handshake"),
    };
    assert_eq!(hs.received(), 50);
    hs.handle_timeout(now).unwrap();
    let Progress::Established(mut s) = hs.handle_input(&theirs[50..], now).unwrap() else {
        panic!("the rest of the handshake is in")
    };
    assert_eq!(s.peer_handshake().peer_id, THEM);
    assert!(s.fast() && !s.extended());
    // What followed the handshake was handled by the session.
    assert_eq!(events(&mut s), [Event::HaveAll, Event::Unchoked]);
    assert_eq!(
        s.timer(Timer::Handshake),
        None,
        "no handshake timer after it"
    );
    assert_eq!(sent(&mut s, now), wire(&[Message::Bitfield(&[0x80])]));
}

#[test]
fn a_wrong_handshake_never_becomes_a_session() {
    let now = Instant::now();
    let start = || handshaking(content(4, &[]), SessionConfig::default(), now);
    let other_torrent = Handshake::new(Reserved::supported(), [1; 20], THEM).to_bytes();
    assert!(matches!(
        start().handle_input(&other_torrent, now),
        Err(SessionError::InfoHashMismatch { found, .. }) if found == [1; 20]
    ));
    let ourselves = Handshake::new(Reserved::supported(), HASH, US).to_bytes();
    assert!(matches!(
        start().handle_input(&ourselves, now),
        Err(SessionError::OwnPeerId)
    ));
    assert!(matches!(
        start().handle_input(b"GET / HTTP/1.1\r\n", now),
        Err(SessionError::Handshake(_))
    ));
    // Garbage right after a good handshake fails the new session.
    let mut bad = Handshake::new(Reserved::supported(), HASH, THEM)
        .to_bytes()
        .to_vec();
    bad.extend_from_slice(&[0xff, 0, 0, 0]);
    assert!(matches!(
        start().handle_input(&bad, now),
        Err(SessionError::Frame(FrameError::TooLong { offset: 0, .. }))
    ));
}

#[test]
fn the_handshake_deadline_is_its_only_timer() {
    let t0 = Instant::now();
    let config = SessionConfig::default();
    let mut hs = handshaking(content(4, &[]), config.clone(), t0);
    let deadline = t0 + config.handshake_timeout;
    assert_eq!(hs.poll_timeout(), Some(deadline));
    for timer in Timer::ALL {
        let expected = (timer == Timer::Handshake).then_some(deadline);
        assert_eq!(hs.timer(timer), expected, "{timer:?}");
    }
    hs.handle_timeout(t0).unwrap();
    hs.handle_timeout(deadline - Duration::from_millis(1))
        .unwrap();
    assert_eq!(
        hs.handle_timeout(deadline),
        Err(SessionError::HandshakeTimeout(config.handshake_timeout))
    );
}

// ----- pieces -----

#[test]
fn announces_pieces_with_bitfield_or_fast_shortcuts() {
    let now = Instant::now();
    let mut s = session(10, &[0, 9], false);
    assert_eq!(sent(&mut s, now), wire(&[Message::Bitfield(&[0x80, 0x40])]));
    let mut s = session(2, &[0, 1], true);
    assert_eq!(sent(&mut s, now), wire(&[Message::HaveAll]));
    let mut s = session(2, &[], true);
    assert_eq!(sent(&mut s, now), wire(&[Message::HaveNone]));
    let mut s = session(2, &[], false);
    assert_eq!(sent(&mut s, now), b"", "nothing to announce without fast");
}

#[test]
fn peer_pieces_merge_and_never_shrink() {
    let now = Instant::now();
    let mut s = session(10, &[], true);
    let input = wire(&[
        Message::HaveNone,
        Message::Have(3),
        Message::Bitfield(&[0x80, 0x00]),
        Message::Bitfield(&[0x80, 0x00]),
        Message::Have(3),
        Message::HaveNone,
    ]);
    s.handle_input(&input, now).unwrap();
    let mut both = Bitfield::new(10);
    both.set(0);
    both.set(3);
    assert_eq!(
        events(&mut s),
        [
            Event::HaveNone,
            Event::Have(3),
            Event::Bitfield(both.clone())
        ]
    );
    assert_eq!(s.peer_pieces(), &PeerPieces::Some(both));
    assert!(s.peer_has(0) && s.peer_has(3) && !s.peer_has(1));
    s.handle_input(&wire(&[Message::HaveAll, Message::Have(5)]), now)
        .unwrap();
    assert_eq!(events(&mut s), [Event::HaveAll]);
    assert!(s.peer_has(9) && !s.peer_has(10));
}

#[test]
fn haves_for_pieces_the_peer_has_wait_until_we_complete() {
    let now = Instant::now();
    let mut s = session(4, &[], false);
    s.handle_input(&wire(&[Message::Have(0), Message::Have(2)]), now)
        .unwrap();
    s.have(1);
    assert_eq!(sent(&mut s, now), wire(&[Message::Have(1)]));
    s.have(0);
    s.have(1);
    assert_eq!(sent(&mut s, now), b"", "the peer has piece 0; 1 was said");
    s.have(2);
    assert_eq!(sent(&mut s, now), b"", "the peer has piece 2");
    s.have(3);
    assert_eq!(
        sent(&mut s, now),
        wire(&[Message::Have(3), Message::Have(0), Message::Have(2)]),
        "piece 3 completes us: the peer learns every piece, so we count as a seed"
    );

    // A seed needs none of our haves, not even at the end.
    let mut seed = session(2, &[], true);
    seed.handle_input(&wire(&[Message::HaveAll]), now).unwrap();
    assert_eq!(sent(&mut seed, now), wire(&[Message::HaveNone]));
    seed.have(0);
    seed.have(1);
    assert_eq!(sent(&mut seed, now), b"");
    // Nor a peer that completed while we downloaded.
    let mut done = session(2, &[], false);
    done.handle_input(&wire(&[Message::Have(0)]), now).unwrap();
    done.have(0);
    done.handle_input(&wire(&[Message::Have(1)]), now).unwrap();
    done.have(1);
    assert_eq!(sent(&mut done, now), b"");
}

#[test]
fn bad_piece_messages_are_violations_with_their_offset() {
    let now = Instant::now();
    let mut s = session(10, &[], true);
    let input = wire(&[Message::Have(1), Message::Have(10)]);
    let err = s.handle_input(&input, now).unwrap_err();
    assert_eq!(
        err,
        SessionError::Violation {
            offset: 9,
            violation: Violation::PieceOutOfRange {
                id: id::HAVE,
                piece: 10,
                num_pieces: 10
            }
        }
    );
    let mut s = session(10, &[], false);
    let err = s.handle_input(&wire(&[Message::HaveAll]), now).unwrap_err();
    assert!(
        matches!(
            err,
            SessionError::Violation {
                violation: Violation::NeedsFast { id: 14 },
                ..
            }
        ),
        "{err}"
    );
    let mut s = session(10, &[], true);
    let err = s
        .handle_input(&wire(&[Message::Bitfield(&[0xff, 0xff])]), now)
        .unwrap_err();
    assert!(
        matches!(
            err,
            SessionError::Violation {
                violation: Violation::Bitfield(_),
                ..
            }
        ),
        "{err}"
    );
}

// ----- our requests -----

#[test]
fn requested_blocks_arrive_and_unrequested_ones_are_ignored() {
    let now = Instant::now();
    let mut s = session(4, &[], true);
    let _ = sent(&mut s, now);
    s.handle_input(&wire(&[Message::HaveAll, Message::Unchoke]), now)
        .unwrap();
    s.request(block(1, 0), now);
    s.request(block(1, 0), now);
    assert_eq!(sent(&mut s, now), wire(&[Message::Request(block(1, 0))]));
    assert_eq!(s.outstanding(), 1);
    let input = wire(&[
        Message::Piece {
            index: 2,
            begin: 0,
            data: b"evil",
        },
        Message::Piece {
            index: 1,
            begin: 0,
            data: b"good",
        },
    ]);
    // Split anywhere: the framer reassembles.
    let (a, b) = input.split_at(7);
    s.handle_input(a, now).unwrap();
    s.handle_input(b, now).unwrap();
    assert_eq!(
        events(&mut s),
        [
            Event::HaveAll,
            Event::Unchoked,
            Event::Block {
                req: block(1, 0),
                data: b"good".to_vec()
            }
        ]
    );
    assert_eq!(s.outstanding(), 0);
    assert_eq!(s.timer(Timer::Requests), None, "nothing outstanding");
}

#[test]
fn requests_while_choked_are_dropped_unless_allowed_fast() {
    let now = Instant::now();
    let mut s = session(4, &[], true);
    let _ = sent(&mut s, now);
    s.request(block(1, 0), now);
    assert_eq!(events(&mut s), [Event::Dropped(vec![block(1, 0)])]);
    s.handle_input(&wire(&[Message::AllowedFast(1)]), now)
        .unwrap();
    assert_eq!(events(&mut s), [Event::AllowedFast(1)]);
    assert_eq!(s.allowed_fast(), [1]);
    s.request(block(1, 0), now);
    assert_eq!(sent(&mut s, now), wire(&[Message::Request(block(1, 0))]));
    // Outside the torrent: never sent.
    s.request(block(4, 0), now);
    assert_eq!(events(&mut s), [Event::Dropped(vec![block(4, 0)])]);
}

#[test]
fn a_choke_voids_requests_without_the_fast_extension_and_rejects_drop_them() {
    let now = Instant::now();
    let mut s = session(4, &[], false);
    s.handle_input(&wire(&[Message::Unchoke]), now).unwrap();
    assert_eq!(events(&mut s), [Event::Unchoked]);
    s.request(block(1, 0), now);
    s.request(block(1, 4), now);
    s.handle_input(&wire(&[Message::Choke]), now).unwrap();
    assert_eq!(
        events(&mut s),
        [
            Event::Choked,
            Event::Dropped(vec![block(1, 0), block(1, 4)])
        ]
    );
    assert_eq!(s.outstanding(), 0);

    let mut s = unchoked_leecher(now);
    assert_eq!(events(&mut s), [Event::Unchoked]);
    s.request(block(1, 0), now);
    s.request(block(1, 4), now);
    s.handle_input(
        &wire(&[Message::Choke, Message::RejectRequest(block(1, 4))]),
        now,
    )
    .unwrap();
    assert_eq!(
        events(&mut s),
        [Event::Choked, Event::Dropped(vec![block(1, 4)])]
    );
    assert_eq!(s.outstanding(), 1, "with fast, a choke voids nothing");
    s.cancel(block(1, 0));
    assert_eq!(s.outstanding(), 0);
}

// ----- the peer's requests -----

#[test]
fn the_peers_requests_go_to_the_driver_queue_not_the_event_queue() {
    let now = Instant::now();
    let mut s = session(4, &[0], true);
    let _ = sent(&mut s, now);
    s.set_choking(false);
    s.handle_input(
        &wire(&[Message::Interested, Message::Request(block(0, 4))]),
        now,
    )
    .unwrap();
    assert_eq!(events(&mut s), [Event::Interested]);
    assert_eq!(actions(&mut s), [Action::Serve(block(0, 4))]);
    assert_eq!(s.queued_serves(), 1, "handed out, not yet answered");
    assert_eq!(
        s.send_block_with(block(0, 4), |out: &mut Vec<u8>| {
            out.extend_from_slice(b"data");
            Ok::<(), ()>(())
        }),
        Served::Sent
    );
    assert_eq!(s.queued_serves(), 0);
    assert_eq!(
        sent(&mut s, now),
        wire(&[
            Message::Unchoke,
            Message::Piece {
                index: 0,
                begin: 4,
                data: b"data"
            }
        ])
    );
    assert_eq!(s.take_stats(), (0, 4));
}

#[test]
fn choked_requests_are_rejected_with_fast_and_requests_must_fit_the_geometry() {
    let now = Instant::now();
    let mut s = session(4, &[0, 3], true);
    let _ = sent(&mut s, now);
    s.handle_input(&wire(&[Message::Request(block(0, 0))]), now)
        .unwrap();
    assert_eq!(actions(&mut s), []);
    assert_eq!(
        sent(&mut s, now),
        wire(&[Message::RejectRequest(block(0, 0))])
    );
    // Unchoked: larger than 16 KiB is refused, within limits served.
    s.set_choking(false);
    let big = BlockRequest {
        piece: 0,
        offset: 0,
        length: BLOCK_LEN + 1,
    };
    s.handle_input(&wire(&[Message::Request(big)]), now)
        .unwrap();
    assert_eq!(
        sent(&mut s, now),
        wire(&[Message::Unchoke, Message::RejectRequest(big)])
    );
    // Past the end of the short last piece: a violation.
    let err = s
        .handle_input(&wire(&[Message::Request(block(3, 1))]), now)
        .unwrap_err();
    assert!(
        matches!(
            err,
            SessionError::Violation {
                violation: Violation::RequestOutOfRange(_),
                offset: 34
            }
        ),
        "{err}"
    );
}

#[test]
fn requests_for_pieces_we_lack_drop_the_peer_and_it_stays_dropped() {
    let now = Instant::now();
    let mut s = session(4, &[0], false);
    s.set_choking(false);
    s.handle_input(&wire(&[Message::Request(block(0, 0))]), now)
        .unwrap();
    assert_eq!(actions(&mut s), [Action::Serve(block(0, 0))]);
    let err = s
        .handle_input(&wire(&[Message::Request(block(2, 0))]), now)
        .unwrap_err();
    assert!(
        matches!(
            err,
            SessionError::Violation {
                violation: Violation::RequestForMissingPiece(_),
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(s.handle_input(&[], now), Err(err.clone()));
    assert_eq!(s.handle_timeout(now), Err(err.clone()));
    assert_eq!(s.error(), Some(&err));
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn cancels_and_chokes_withdraw_queued_serves() {
    let now = Instant::now();
    let mut s = session(4, &[0, 1], true);
    let _ = sent(&mut s, now);
    s.set_choking(false);
    assert!(s.allow_fast(1));
    assert!(!s.allow_fast(1), "once per piece");
    let _ = sent(&mut s, now);
    s.handle_input(
        &wire(&[
            Message::Request(block(0, 0)),
            Message::Request(block(0, 4)),
            Message::Request(block(1, 0)),
            Message::Cancel(block(0, 0)),
        ]),
        now,
    )
    .unwrap();
    assert_eq!(
        sent(&mut s, now),
        wire(&[Message::RejectRequest(block(0, 0))])
    );
    s.set_choking(true);
    assert_eq!(
        sent(&mut s, now),
        wire(&[Message::Choke, Message::RejectRequest(block(0, 4))])
    );
    // The allowed-fast piece is still served while choked.
    assert_eq!(actions(&mut s), [Action::Serve(block(1, 0))]);
    assert_eq!(s.send_block(block(1, 0), b"abcd"), Served::Sent);
}

// ----- hostile input -----

#[test]
fn a_request_flood_is_bounded_by_the_queue() {
    let now = Instant::now();
    for fast in [true, false] {
        let mut s = session(4, &[0, 1, 2, 3], fast);
        s.set_choking(false);
        let _ = sent(&mut s, now);
        let mut input = Vec::new();
        for i in 0..10_000u32 {
            // All different: a repeated request is not queued twice.
            Message::Request(BlockRequest {
                piece: i % 3,
                offset: i / 3,
                length: BLOCK_LEN,
            })
            .encode(&mut input);
        }
        s.handle_input(&input, now).unwrap();
        let max = SessionConfig::default().max_peer_requests;
        assert_eq!(s.queued_serves(), max);
        let rejects = sent(&mut s, now);
        let expected = if fast { (10_000 - max) * 17 } else { 0 };
        assert_eq!(rejects.len(), expected, "fast {fast}");
        assert!(s.pending_input() < 17);
    }
}

#[test]
fn have_all_repeated_ten_thousand_times_costs_nothing_more() {
    let now = Instant::now();
    let mut s = session(100_000, &[], true);
    let _ = sent(&mut s, now);
    let mut input = Vec::new();
    for i in 0..10_000 {
        let m = if i % 2 == 0 {
            Message::HaveAll
        } else {
            Message::HaveNone
        };
        m.encode(&mut input);
    }
    s.handle_input(&input, now).unwrap();
    // One event, no bitfield of 100 000 pieces built or kept.
    assert_eq!(events(&mut s), [Event::HaveAll]);
    assert_eq!(s.peer_pieces(), &PeerPieces::All);
    assert_eq!(s.pending_transmit(), 0);
    assert_eq!(s.pending_input(), 0);
    assert!(s.peer_has(99_999));
}

#[test]
fn repeated_state_messages_give_one_event_each_change() {
    let now = Instant::now();
    let mut s = session(4, &[], true);
    let mut input = Vec::new();
    for _ in 0..1000 {
        Message::Interested.encode(&mut input);
        Message::Unchoke.encode(&mut input);
        Message::Have(2).encode(&mut input);
    }
    s.handle_input(&input, now).unwrap();
    assert_eq!(
        events(&mut s),
        [Event::Interested, Event::Unchoked, Event::Have(2)]
    );
}

#[test]
fn oversized_messages_are_an_error_before_buffering() {
    let now = Instant::now();
    let mut s = session(4, &[], false);
    let err = s.handle_input(&[0x10, 0, 0, 0, 7], now).unwrap_err();
    assert!(matches!(err, SessionError::Frame(_)), "{err}");
}

// ----- timers, driven by hand -----

#[test]
fn timers_send_keep_alives_report_stalls_and_drop_silent_peers() {
    let t0 = Instant::now();
    let config = SessionConfig::default();
    let mut s = session_with(content(4, &[]), config.clone(), reserved(true, false), t0);
    let _ = sent(&mut s, t0);
    assert_eq!(
        s.timer(Timer::KeepAlive),
        Some(t0 + config.keep_alive_interval)
    );
    assert_eq!(s.timer(Timer::Idle), Some(t0 + config.idle_timeout));
    assert_eq!(s.timer(Timer::Requests), None);
    assert_eq!(s.timer(Timer::Handshake), None);
    let stats = config.stats_interval.unwrap();
    assert_eq!(s.poll_timeout(), Some(t0 + stats));

    s.handle_input(&wire(&[Message::HaveAll, Message::Unchoke]), t0)
        .unwrap();
    s.request(block(2, 0), t0);
    let _ = sent(&mut s, t0);
    let _ = events(&mut s);
    assert_eq!(s.timer(Timer::Requests), Some(t0 + config.request_timeout));

    // An early call does nothing.
    s.handle_timeout(t0).unwrap();
    assert_eq!(events(&mut s), []);
    assert_eq!(s.pending_transmit(), 0);

    let t1 = t0 + stats;
    s.handle_timeout(t1).unwrap();
    assert_eq!(events(&mut s), [Event::Stats { down: 0, up: 0 }]);
    assert_eq!(s.timer(Timer::Stats), Some(t1 + stats));

    let t2 = t0 + config.request_timeout;
    s.handle_timeout(t2).unwrap();
    let got = events(&mut s);
    assert!(got.contains(&Event::Stalled(vec![block(2, 0)])), "{got:?}");
    assert_eq!(s.outstanding(), 0);
    assert_eq!(s.timer(Timer::Requests), None);

    let t3 = t0 + config.keep_alive_interval;
    s.handle_timeout(t3).unwrap();
    assert_eq!(sent(&mut s, t3), wire(&[Message::KeepAlive]));
    assert_eq!(
        s.timer(Timer::KeepAlive),
        Some(t3 + config.keep_alive_interval)
    );
    // A second call at the same instant sends nothing more.
    s.handle_timeout(t3).unwrap();
    assert_eq!(sent(&mut s, t3), b"");

    // Input moves the idle deadline; silence past it ends the session.
    let t4 = t0 + Duration::from_secs(100);
    s.handle_input(&wire(&[Message::KeepAlive]), t4).unwrap();
    assert_eq!(s.timer(Timer::Idle), Some(t4 + config.idle_timeout));
    s.handle_timeout(t0 + config.idle_timeout).unwrap();
    let err = s.handle_timeout(t4 + config.idle_timeout).unwrap_err();
    assert_eq!(err, SessionError::Idle(config.idle_timeout));
}

#[test]
fn a_block_restarts_the_stall_clock() {
    let t0 = Instant::now();
    let config = SessionConfig::default();
    let mut s = unchoked_leecher(t0);
    s.request(block(1, 0), t0);
    s.request(block(1, 4), t0);
    let t1 = t0 + Duration::from_secs(10);
    let piece = Message::Piece {
        index: 1,
        begin: 0,
        data: b"abcd",
    };
    s.handle_input(&wire(&[piece]), t1).unwrap();
    assert_eq!(s.timer(Timer::Requests), Some(t1 + config.request_timeout));
    s.handle_timeout(t0 + config.request_timeout).unwrap();
    assert_eq!(s.outstanding(), 1, "not stalled: a block came 10 s ago");
}

/// Found by the simulator (`rustico-sim`, seed 4 with the shape of seed
/// 3): behind a link of 600 bytes/s a block takes longer than the stall
/// time-out, so every block arrived after its request had stalled and was
/// thrown away: no piece ever completed.
#[test]
fn a_block_that_arrives_after_its_request_stalled_is_still_reported() {
    let t0 = Instant::now();
    let config = SessionConfig::default();
    let mut s = unchoked_leecher(t0);
    s.request(block(1, 0), t0);
    s.request(block(2, 0), t0);
    let _ = sent(&mut s, t0);
    s.handle_timeout(t0 + config.request_timeout).unwrap();
    assert!(events(&mut s).contains(&Event::Stalled(vec![block(1, 0), block(2, 0)])));
    // Block 2 is cancelled (it went to another peer); block 1 comes late.
    s.cancel(block(2, 0));
    assert_eq!(sent(&mut s, t0), wire(&[Message::Cancel(block(2, 0))]));
    let late = |piece| Message::Piece {
        index: piece,
        begin: 0,
        data: b"late",
    };
    let t1 = t0 + config.request_timeout * 2;
    s.handle_input(&wire(&[late(1), late(2), late(1)]), t1)
        .unwrap();
    assert_eq!(
        events(&mut s),
        [Event::Block {
            req: block(1, 0),
            data: b"late".to_vec()
        }],
        "the late block once; the cancelled one and the repeat ignored"
    );
}

/// Found by the simulator (seed 7065): behind a 2.3 KB/s uplink every
/// block stalled, the swarm asked for it again every 16 s, and each time
/// the peer queued another copy (251 serves for 2 blocks wanted), so its
/// uplink went to copies and the piece never came.
#[test]
fn a_stalled_block_asked_for_again_is_not_requested_twice() {
    let t0 = Instant::now();
    let config = SessionConfig::default();
    let mut s = unchoked_leecher(t0);
    let _ = sent(&mut s, t0);
    s.request(block(1, 0), t0);
    assert_eq!(sent(&mut s, t0), wire(&[Message::Request(block(1, 0))]));
    let t1 = t0 + config.request_timeout;
    s.handle_timeout(t1).unwrap();
    assert!(events(&mut s).contains(&Event::Stalled(vec![block(1, 0)])));
    s.request(block(1, 0), t1);
    assert_eq!(
        sent(&mut s, t1),
        b"",
        "the peer still holds the first request"
    );
    assert_eq!(s.outstanding(), 1);
    // It stalls again, and the block still counts when it comes.
    s.handle_timeout(t1 + config.request_timeout).unwrap();
    assert!(events(&mut s).contains(&Event::Stalled(vec![block(1, 0)])));
    let piece = Message::Piece {
        index: 1,
        begin: 0,
        data: b"slow",
    };
    s.handle_input(&wire(&[piece]), t1 + config.request_timeout * 2)
        .unwrap();
    assert_eq!(
        events(&mut s),
        [Event::Block {
            req: block(1, 0),
            data: b"slow".to_vec()
        }]
    );
}

/// Same seed: requests that stalled and were then got elsewhere stayed
/// queued at the slow peer, which sent them long after.
#[test]
fn having_a_piece_cancels_its_stalled_requests() {
    let t0 = Instant::now();
    let config = SessionConfig::default();
    let mut s = unchoked_leecher(t0);
    s.request(block(1, 0), t0);
    s.request(block(1, 4), t0);
    s.request(block(2, 0), t0);
    let _ = sent(&mut s, t0);
    s.handle_timeout(t0 + config.request_timeout).unwrap();
    let _ = events(&mut s);
    s.have(1);
    let mut cancels = sent(&mut s, t0);
    let have = wire(&[Message::Have(1)]);
    assert!(cancels.ends_with(&have), "{cancels:?}");
    cancels.truncate(cancels.len() - have.len());
    let one = wire(&[Message::Cancel(block(1, 0))]);
    let other = wire(&[Message::Cancel(block(1, 4))]);
    assert!(
        cancels == [one.clone(), other.clone()].concat() || cancels == [other, one].concat(),
        "{cancels:?}"
    );
    // Piece 2's request stays: its block is still wanted.
    let piece = Message::Piece {
        index: 2,
        begin: 0,
        data: b"late",
    };
    s.handle_input(&wire(&[piece]), t0 + config.request_timeout * 2)
        .unwrap();
    assert_eq!(events(&mut s).len(), 1);
}

/// The serving side of the same bug, against peers that repeat requests:
/// a copy of a queued request is not queued again.
#[test]
fn a_repeated_request_is_served_once() {
    let now = Instant::now();
    let mut s = session(4, &[0, 1], true);
    s.set_choking(false);
    let _ = sent(&mut s, now);
    let twice = wire(&[
        Message::Request(block(0, 0)),
        Message::Request(block(0, 4)),
        Message::Request(block(0, 0)),
    ]);
    s.handle_input(&twice, now).unwrap();
    assert_eq!(s.queued_serves(), 2);
    assert_eq!(sent(&mut s, now), b"", "no reject: the first is answered");
    // Also while the driver holds it, between poll_action and send_block.
    assert_eq!(s.poll_action(), Some(Action::Serve(block(0, 0))));
    s.handle_input(&wire(&[Message::Request(block(0, 0))]), now)
        .unwrap();
    assert_eq!(s.queued_serves(), 2);
}

#[test]
fn no_stats_timer_when_disabled() {
    let now = Instant::now();
    let config = SessionConfig {
        stats_interval: None,
        ..SessionConfig::default()
    };
    let s = session_with(content(4, &[]), config.clone(), reserved(true, false), now);
    assert_eq!(s.timer(Timer::Stats), None);
    assert_eq!(s.poll_timeout(), Some(now + config.keep_alive_interval));
}

// ----- extensions -----

fn extended_config() -> SessionConfig {
    SessionConfig {
        client: Some("test".into()),
        ..SessionConfig::default()
    }
}

#[test]
fn the_extension_handshake_is_sent_and_the_peers_reported() {
    let now = Instant::now();
    let mut s = session_with(
        content(4, &[]),
        extended_config(),
        reserved(true, true),
        now,
    );
    let ours = sent(&mut s, now);
    // Our pieces first (BEP 3: a bitfield only as the first message), then
    // the extension handshake.
    assert!(ours.starts_with(&wire(&[Message::HaveNone])));
    assert_eq!(
        ours.get(9..11),
        Some(&[20u8, 0][..]),
        "extension handshake second"
    );
    let text = String::from_utf8_lossy(&ours);
    assert!(
        text.contains("4:reqqi500e") && text.contains("1:v4:test"),
        "{text}"
    );
    let payload = b"d1:md11:ut_metadatai3ee1:pi6881e4:reqqi42e1:v2:xxe";
    s.handle_input(&wire(&[Message::Extended { id: 0, payload }]), now)
        .unwrap();
    assert_eq!(
        events(&mut s),
        [Event::Extensions(PeerExtensions {
            client: Some("xx".into()),
            listen_port: Some(6881),
            reqq: Some(42),
            metadata_size: None,
            ut_metadata: true,
            ut_pex: false,
            your_ip: None,
        })]
    );
    assert!(s.request_metadata(0));
}

#[test]
fn metadata_is_served_to_peers_that_ask() {
    let now = Instant::now();
    let info: Vec<u8> = (0..20_000u32).map(|i| i as u8).collect();
    let content =
        content(4, &[0, 1, 2, 3]).with_metadata(Arc::new(MetadataServer::new(info.clone())));
    let mut s = session_with(content, extended_config(), reserved(true, true), now);
    let ours = sent(&mut s, now);
    let text = String::from_utf8_lossy(&ours);
    assert!(text.contains("11:ut_metadatai1e"), "{text}");
    assert!(text.contains("13:metadata_sizei20000e"), "{text}");
    let theirs = b"d1:md11:ut_metadatai7eee";
    let mut ask = Vec::new();
    MetadataMessage::Request { piece: 1 }.encode(&mut ask);
    let mut past_end = Vec::new();
    MetadataMessage::Request { piece: 2 }.encode(&mut past_end);
    let mut data = Vec::new();
    MetadataMessage::Data {
        piece: 0,
        total_size: 5,
        data: b"hello",
    }
    .encode(&mut data);
    s.handle_input(
        &wire(&[
            Message::Extended {
                id: 0,
                payload: theirs,
            },
            Message::Extended {
                id: 1,
                payload: &ask,
            },
            Message::Extended {
                id: 1,
                payload: &past_end,
            },
            // Metadata data to a session that has it: ignored.
            Message::Extended {
                id: 1,
                payload: &data,
            },
        ]),
        now,
    )
    .unwrap();
    let mut expected = Vec::new();
    MetadataMessage::Data {
        piece: 1,
        total_size: 20_000,
        data: &info[16_384..],
    }
    .encode_message(7, &mut expected);
    MetadataMessage::Reject { piece: 2 }.encode_message(7, &mut expected);
    // Answered when the driver drains its actions (room permitting).
    assert_eq!(sent(&mut s, now), b"");
    assert!(s.has_deferred_output());
    assert_eq!(actions(&mut s), []);
    assert!(!s.has_deferred_output());
    assert_eq!(sent(&mut s, now), expected);
    assert!(events(&mut s)
        .iter()
        .all(|e| matches!(e, Event::Extensions(_))));
}

#[test]
fn a_magnet_session_fetches_metadata_and_serves_no_blocks() {
    let now = Instant::now();
    let mut s = session_with(
        Content::magnet(),
        extended_config(),
        reserved(true, true),
        now,
    );
    let ours = sent(&mut s, now);
    let text = String::from_utf8_lossy(&ours);
    assert!(text.contains("11:ut_metadatai1e"), "{text}");
    assert!(!text.contains("metadata_size"), "{text}");
    assert!(ours.starts_with(&wire(&[Message::HaveNone])), "{text}");
    assert!(!s.request_metadata(0), "the peer's id is unknown yet");
    let mut data = Vec::new();
    MetadataMessage::Data {
        piece: 0,
        total_size: 5,
        data: b"hello",
    }
    .encode(&mut data);
    let mut reject = Vec::new();
    MetadataMessage::Reject { piece: 1 }.encode(&mut reject);
    let mut ask = Vec::new();
    MetadataMessage::Request { piece: 0 }.encode(&mut ask);
    s.handle_input(
        &wire(&[
            Message::Extended {
                id: 0,
                payload: b"d1:md11:ut_metadatai3ee13:metadata_sizei5ee",
            },
            Message::HaveAll,
            Message::Have(7),
            Message::Extended {
                id: 1,
                payload: &data,
            },
            Message::Extended {
                id: 1,
                payload: &reject,
            },
            Message::Extended {
                id: 1,
                payload: &ask,
            },
        ]),
        now,
    )
    .unwrap();
    let got = events(&mut s);
    assert!(
        matches!(&got[0], Event::Extensions(e) if e.metadata_size == Some(5) && e.ut_metadata),
        "{got:?}"
    );
    assert_eq!(
        got[1..],
        [
            Event::HaveAll,
            Event::MetadataPiece {
                piece: 0,
                total_size: 5,
                data: b"hello".to_vec()
            },
            Event::MetadataRejected { piece: 1 }
        ]
    );
    assert!(s.request_metadata(1));
    let mut expected = Vec::new();
    MetadataMessage::Reject { piece: 0 }.encode_message(3, &mut expected);
    MetadataMessage::Request { piece: 1 }.encode_message(3, &mut expected);
    assert_eq!(sent(&mut s, now), expected, "nothing to serve yet: reject");
    let err = s
        .handle_input(&wire(&[Message::Request(block(0, 0))]), now)
        .unwrap_err();
    assert!(
        matches!(
            err,
            SessionError::Violation {
                violation: Violation::RequestForMissingPiece(_),
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn pex_is_advertised_received_and_sent_only_when_allowed() {
    let now = Instant::now();
    let message = PexMessage {
        added: vec![PexPeer {
            addr: "10.1.2.3:6881".parse().unwrap(),
            flags: PexFlags(0),
        }],
        dropped: vec![],
    };
    let mut payload = Vec::new();
    message.encode(&mut payload);
    for allowed in [true, false] {
        let config = SessionConfig {
            pex: allowed,
            listen_port: Some(7000),
            ..extended_config()
        };
        let mut s = session_with(content(4, &[]), config, reserved(true, true), now);
        let text = String::from_utf8_lossy(&sent(&mut s, now)).into_owned();
        assert_eq!(text.contains("6:ut_pexi1e"), allowed, "{text}");
        assert!(text.contains("1:pi7000e"), "{text}");
        s.handle_input(
            &wire(&[
                Message::Extended {
                    id: 0,
                    payload: b"d1:md6:ut_pexi5ee1:pi6881ee",
                },
                Message::Extended {
                    id: 1,
                    payload: &payload,
                },
            ]),
            now,
        )
        .unwrap();
        let got = events(&mut s);
        assert!(
            matches!(&got[0], Event::Extensions(e) if e.ut_pex == allowed && e.listen_port == Some(6881)),
            "{got:?}"
        );
        assert_eq!(
            got.contains(&Event::Pex(message.clone())),
            allowed,
            "{got:?}"
        );
        assert_eq!(s.send_pex(&message), allowed);
        let mut expected = Vec::new();
        if allowed {
            message.encode_message(5, &mut expected);
        }
        assert_eq!(sent(&mut s, now), expected);
    }
}

#[test]
fn reading_straight_into_the_framer_gives_the_same_messages() {
    let now = Instant::now();
    let mut s = unchoked_leecher(now);
    s.request(block(1, 0), now);
    let input = wire(&[
        Message::HaveAll,
        Message::Piece {
            index: 1,
            begin: 0,
            data: b"good",
        },
    ]);
    let mut rest = &input[..];
    while !rest.is_empty() {
        let spare = s.recv_buffer();
        assert!(!spare.is_empty());
        let n = spare.len().min(rest.len()).min(5);
        spare[..n].copy_from_slice(&rest[..n]);
        s.handle_received(n, now).unwrap();
        rest = &rest[n..];
    }
    assert_eq!(
        events(&mut s),
        [
            Event::Unchoked,
            Event::HaveAll,
            Event::Block {
                req: block(1, 0),
                data: b"good".to_vec()
            }
        ]
    );
}

// ----- properties -----

proptest! {
    /// Arbitrary bytes after a handshake, in arbitrary splits, with time
    /// passing: no panic, bounded queues and buffers, a timer never left
    /// in the past, and an error that sticks.
    #[test]
    fn arbitrary_input_never_panics(
        chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 0..20),
        fast in any::<bool>(),
        extended in any::<bool>(),
        step_ms in 0u64..200_000,
    ) {
        let t0 = Instant::now();
        let config = SessionConfig { max_peer_requests: 8, ..extended_config() };
        let mut s = session_with(content(20, &[1, 2, 19]), config, reserved(fast, extended), t0);
        s.set_choking(false);
        let mut now = t0;
        let mut failed = None;
        for chunk in &chunks {
            now += Duration::from_millis(step_ms);
            let result = s.handle_input(chunk, now).and_then(|()| s.handle_timeout(now));
            while let Some(Action::Serve(req)) = s.poll_action() {
                prop_assert!(req.length <= BLOCK_LEN && [1, 2, 19].contains(&req.piece));
                s.send_block(req, &vec![0; req.length as usize]);
            }
            while s.poll_event().is_some() {}
            let _ = sent(&mut s, now);
            prop_assert!(s.queued_serves() <= 8);
            prop_assert!(s.pending_input() <= s.framer.capacity());
            match result {
                Ok(()) => {
                    prop_assert!(failed.is_none());
                    let next = s.poll_timeout();
                    prop_assert!(next.is_some_and(|t| t > now), "{next:?} not after {now:?}");
                }
                Err(e) => {
                    if let Some(first) = &failed {
                        prop_assert_eq!(first, &e);
                    }
                    failed = Some(e);
                    prop_assert_eq!(s.poll_timeout(), None);
                }
            }
        }
    }

    /// Any sequence of handshake bytes: a session only from a complete
    /// handshake for our torrent.
    #[test]
    fn handshakes_in_any_split(split in 0usize..=68, tail in proptest::collection::vec(any::<u8>(), 0..8)) {
        let now = Instant::now();
        let hs = handshaking(content(4, &[]), SessionConfig::default(), now);
        let mut theirs = Handshake::new(Reserved::supported(), HASH, THEM).to_bytes().to_vec();
        theirs.extend_from_slice(&tail);
        let (a, b) = theirs.split_at(split);
        let hs = match hs.handle_input(a, now).unwrap() {
            Progress::Handshaking(hs) => hs,
            Progress::Established(_) => { prop_assert_eq!(split, 68); return Ok(()); }
        };
        prop_assert!(split < 68);
        match hs.handle_input(b, now) {
            Ok(Progress::Established(s)) => prop_assert_eq!(s.peer_handshake().peer_id, THEM),
            Ok(Progress::Handshaking(_)) => prop_assert!(false, "68 bytes given"),
            // The tail is arbitrary: it may be a bad frame.
            Err(e) => prop_assert!(matches!(e, SessionError::Frame(_) | SessionError::Violation { .. }), "{e}"),
        }
    }
}

#[test]
fn port_messages_go_both_ways_only_when_both_set_the_dht_bit() {
    let now = Instant::now();
    let config = SessionConfig {
        dht_port: Some(6881),
        ..SessionConfig::default()
    };
    // The peer set the DHT bit: our `port` follows the bitfield.
    let dht = reserved(true, true).with_dht(true);
    let mut s = session_with(content(4, &[]), config.clone(), dht, now);
    let ours = sent(&mut s, now);
    assert!(ours.ends_with(&wire(&[Message::Port(6881)])));
    s.handle_input(&wire(&[Message::Port(7000), Message::Port(0)]), now)
        .unwrap();
    let events: Vec<_> = std::iter::from_fn(|| s.poll_event()).collect();
    assert!(events.contains(&Event::DhtPort(7000)), "{events:?}");
    assert!(!events.contains(&Event::DhtPort(0)), "{events:?}");
    // The peer did not: no `port` from us.
    let mut s = session_with(content(4, &[]), config, reserved(true, true), now);
    let ours = sent(&mut s, now);
    assert!(!ours.ends_with(&wire(&[Message::Port(6881)])));
}

// ----- what a hostile peer can make the session hold (issue #20) -----

fn full_block(piece: u32, offset: u32) -> BlockRequest {
    BlockRequest {
        piece,
        offset,
        length: BLOCK_LEN,
    }
}

#[test]
fn a_peer_that_asks_and_never_reads_pins_at_most_the_transmit_bound() {
    let now = Instant::now();
    let config = SessionConfig::default();
    let bound = config.max_transmit_buffer;
    let mut s = session_with(content(4, &[0, 1, 2]), config, reserved(true, false), now);
    let _ = sent(&mut s, now);
    s.set_choking(false);
    let asks: Vec<Message<'_>> = (0..500)
        .map(|i| Message::Request(full_block(i % 3, i / 3 * 64)))
        .collect();
    s.handle_input(&wire(&asks), now).unwrap();
    assert_eq!(s.queued_serves(), 500);
    // The driver serves what it is handed and never gets to write.
    let mut served = 0;
    while let Some(Action::Serve(req)) = s.poll_action() {
        assert_eq!(s.send_block(req, &[7; BLOCK_LEN as usize]), Served::Sent);
        served += 1;
    }
    let block_message = BLOCK_LEN as usize + 13;
    assert!(served < 500, "all {served} served into the buffer");
    assert!(s.pending_transmit() >= bound);
    assert!(s.pending_transmit() < bound + block_message);
    assert!(!s.wants_input());
    assert!(s.has_deferred_output());
    // Written: the rest comes, a buffer at a time, every block once.
    let mut total = served;
    while s.has_deferred_output() {
        let wrote = sent(&mut s, now);
        assert!(wrote.len() < bound + block_message);
        assert!(s.wants_input());
        while let Some(Action::Serve(req)) = s.poll_action() {
            s.send_block(req, &[7; BLOCK_LEN as usize]);
            total += 1;
        }
    }
    assert_eq!(total, 500);
}

#[test]
fn a_metadata_flood_is_answered_only_as_the_transmit_buffer_drains() {
    let now = Instant::now();
    let info: Vec<u8> = (0..40_000u32).map(|i| i as u8).collect();
    let content = content(4, &[0]).with_metadata(Arc::new(MetadataServer::new(info)));
    let config = extended_config();
    let bound = config.max_transmit_buffer;
    let mut s = session_with(content, config, reserved(true, true), now);
    let _ = sent(&mut s, now);
    let mut ask = Vec::new();
    MetadataMessage::Request { piece: 0 }.encode(&mut ask);
    let mut input = wire(&[Message::Extended {
        id: 0,
        payload: b"d1:md11:ut_metadatai7eee",
    }]);
    let one = wire(&[Message::Extended {
        id: 1,
        payload: &ask,
    }]);
    for _ in 0..6000 {
        input.extend_from_slice(&one);
    }
    s.handle_input(&input, now).unwrap();
    let _ = actions(&mut s);
    // Before: 6,000 answers of 16 KiB (94 MiB). Now at most the bound and
    // one answer, plus small rejects in proportion to the input.
    assert!(
        s.pending_transmit() < bound + 16_500 + input.len(),
        "{} bytes queued",
        s.pending_transmit()
    );
    let mut answers = 0;
    loop {
        let wrote = sent(&mut s, now);
        answers += wrote.windows(11).filter(|w| w == b"msg_typei1e").count();
        if !s.has_deferred_output() {
            break;
        }
        let _ = actions(&mut s);
    }
    assert_eq!(answers, MAX_METADATA_QUEUE);
}

#[test]
fn interest_and_choke_flips_coalesce_into_at_most_one_queued_event() {
    let now = Instant::now();
    let mut s = session(4, &[0], true);
    let mut flips = Vec::new();
    for _ in 0..50_000 {
        flips.extend(wire(&[Message::Interested, Message::NotInterested]));
        flips.extend(wire(&[Message::Unchoke, Message::Choke]));
    }
    s.handle_input(&flips, now).unwrap();
    assert_eq!(events(&mut s), []);
    s.handle_input(&flips, now).unwrap();
    s.handle_input(&wire(&[Message::Interested, Message::Unchoke]), now)
        .unwrap();
    assert_eq!(events(&mut s), [Event::Interested, Event::Unchoked]);
    assert!(s.peer_interested() && s.is_unchoked());
    // Polled, then undone: the undoing is reported.
    s.handle_input(&wire(&[Message::NotInterested]), now)
        .unwrap();
    assert_eq!(events(&mut s), [Event::NotInterested]);
}

#[test]
fn repeated_have_all_and_bitfields_report_only_what_is_new() {
    let now = Instant::now();
    let n = 131_072;
    let geometry = Geometry::new(u64::from(n) * 16_384, 16_384).unwrap();
    let content = Content::torrent(geometry, Bitfield::new(n)).unwrap();
    let mut s = session_with(
        content,
        SessionConfig::default(),
        reserved(true, false),
        now,
    );
    // 300 bitfields of 16 KiB, each adding a piece, between interest flips.
    let mut bits = Bitfield::new(n);
    let mut input = Vec::new();
    for piece in 0..300 {
        bits.set(piece * 7);
        input.extend(wire(&[
            Message::Bitfield(bits.as_wire()),
            Message::Interested,
            Message::NotInterested,
        ]));
    }
    input.extend(wire(&[Message::Bitfield(bits.as_wire()), Message::Have(5)]));
    s.handle_input(&input, now).unwrap();
    // One copy of the set, with everything known when polled.
    let got = events(&mut s);
    assert_eq!(
        got.len(),
        2,
        "{:?}",
        got.iter().map(std::mem::discriminant).collect::<Vec<_>>()
    );
    let Event::Bitfield(reported) = &got[0] else {
        panic!("{:?}", std::mem::discriminant(&got[0]));
    };
    assert_eq!(reported.count(), 301);
    assert!(reported.get(5) && reported.get(7 * 299));
    assert_eq!(got[1], Event::Have(5));

    let mut input = Vec::new();
    for _ in 0..12_000 {
        input.extend(wire(&[Message::HaveAll]));
    }
    for piece in 0..1000 {
        input.extend(wire(&[
            Message::Have(piece),
            Message::Bitfield(bits.as_wire()),
        ]));
    }
    s.handle_input(&input, now).unwrap();
    assert_eq!(events(&mut s), [Event::HaveAll]);
    assert_eq!(s.peer_pieces(), &PeerPieces::All);

    // A bitfield then a have-all before the poll: only the have-all.
    let content = Content::torrent(geometry, Bitfield::new(n)).unwrap();
    let mut s = session_with(
        content,
        SessionConfig::default(),
        reserved(true, false),
        now,
    );
    s.handle_input(
        &wire(&[Message::Bitfield(bits.as_wire()), Message::HaveAll]),
        now,
    )
    .unwrap();
    assert_eq!(events(&mut s), [Event::HaveAll]);
}

#[test]
fn repeated_extension_handshakes_and_port_messages_queue_one_event_each() {
    let now = Instant::now();
    let config = SessionConfig {
        dht_port: Some(6881),
        ..extended_config()
    };
    let theirs = reserved(true, true).with_dht(true);
    let mut s = session_with(content(4, &[0]), config, theirs, now);
    let mut input = Vec::new();
    for i in 0..10_000u32 {
        let payload = format!("d1:pi{}ee", 1000 + i % 7);
        input.extend(wire(&[
            Message::Extended {
                id: 0,
                payload: payload.as_bytes(),
            },
            Message::Port(7000 + (i % 5) as u16),
        ]));
    }
    input.extend(wire(&[Message::Extended {
        id: 0,
        payload: b"d1:pi4242ee",
    }]));
    s.handle_input(&input, now).unwrap();
    let got = events(&mut s);
    assert_eq!(got.len(), 2);
    assert!(matches!(&got[0], Event::Extensions(e) if e.listen_port == Some(4242)));
    assert_eq!(got[1], Event::DhtPort(7000 + 9_999 % 5));
    // Polled, then again: reported again.
    s.handle_input(&wire(&[Message::Port(7001)]), now).unwrap();
    assert_eq!(events(&mut s), [Event::DhtPort(7001)]);
}
