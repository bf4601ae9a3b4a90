//! Two peer sessions against each other in memory: a seed and a leecher
//! transfer a whole torrent, with bytes delivered in odd-sized chunks and
//! the leecher reading straight into its session's buffer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use rustico_peer_wire::{
    Action, Bitfield, Content, Event, Geometry, Handshake, Handshaking, Progress, Reserved, Served,
    Session, SessionConfig, Timer,
};

const INFO_HASH: [u8; 20] = [0x5e; 20];

fn start(peer_id: u8, content: Content, now: Instant) -> Handshaking {
    let ours = Handshake::new(Reserved::supported(), INFO_HASH, [peer_id; 20]);
    let config = SessionConfig {
        client: Some(format!("pair {peer_id}")),
        ..SessionConfig::default()
    };
    Handshaking::new(ours, content, config, now)
}

/// Delivers `bytes` in chunks of `chunk`, reading straight into the
/// session's buffer.
fn deliver(to: &mut Session, mut bytes: &[u8], chunk: usize, now: Instant) {
    while !bytes.is_empty() {
        let spare = to.recv_buffer();
        let n = spare.len().min(chunk).min(bytes.len());
        spare[..n].copy_from_slice(&bytes[..n]);
        to.handle_received(n, now).unwrap();
        bytes = &bytes[n..];
    }
}

#[test]
fn a_seed_and_a_leecher_transfer_a_whole_torrent() {
    let t0 = Instant::now();
    let geometry = Geometry::new(5 * 32_768 + 1_000, 32_768).unwrap();
    let n = geometry.num_pieces();
    let data: Vec<u8> = (0..geometry.total_length())
        .map(|i| (i * 31 % 251) as u8)
        .collect();
    let seed = start(
        1,
        Content::torrent(geometry, Bitfield::full(n)).unwrap(),
        t0,
    );
    let leech = start(2, Content::torrent(geometry, Bitfield::new(n)).unwrap(), t0);

    // Handshakes cross; each side becomes a session on the other's bytes.
    let (mut seed, mut leech) = (seed, leech);
    let (mut a, mut b) = (Vec::new(), Vec::new());
    seed.poll_transmit(&mut a, t0);
    leech.poll_transmit(&mut b, t0);
    let Progress::Established(mut seed) = seed.handle_input(&b, t0).unwrap() else {
        panic!("the leecher's handshake is whole")
    };
    // The leecher gets the seed's handshake in two parts.
    let leech = match leech.handle_input(&a[..20], t0).unwrap() {
        Progress::Handshaking(hs) => hs,
        Progress::Established(_) => panic!("20 bytes are not a handshake"),
    };
    let Progress::Established(mut leech) = leech.handle_input(&a[20..], t0).unwrap() else {
        panic!("the rest is in")
    };
    assert!(seed.fast() && seed.extended() && leech.fast() && leech.extended());

    let mut received = vec![0u8; data.len()];
    let mut got_blocks = 0;
    let total_blocks: usize = (0..n).map(|p| geometry.blocks(p).count()).sum();
    let mut asked = false;
    let mut now = t0;
    for round in 0..1000 {
        now += Duration::from_millis(10);
        // The seed: serve from "storage", unchoke whoever is interested.
        while let Some(Action::Serve(req)) = seed.poll_action() {
            let start = geometry.piece_offset(req.piece) as usize + req.offset as usize;
            let block = &data[start..start + req.length as usize];
            assert_eq!(seed.send_block(req, block), Served::Sent);
        }
        while let Some(event) = seed.poll_event() {
            if event == Event::Interested {
                seed.set_choking(false);
            }
        }
        let mut wire = Vec::new();
        seed.poll_transmit(&mut wire, now);
        deliver(&mut leech, &wire, 1_000 + round % 7_000, now);

        // The leecher: interested in a seed, asks for everything once
        // unchoked, stores blocks, announces pieces.
        while let Some(event) = leech.poll_event() {
            match event {
                Event::HaveAll => leech.set_interested(true),
                Event::Unchoked => {}
                Event::Block { req, data: bytes } => {
                    let start = geometry.piece_offset(req.piece) as usize + req.offset as usize;
                    received[start..start + bytes.len()].copy_from_slice(&bytes);
                    got_blocks += 1;
                    if req.offset + req.length == geometry.piece_size(req.piece).unwrap() {
                        leech.have(req.piece);
                    }
                }
                Event::Extensions(ext) => assert_eq!(ext.client.as_deref(), Some("pair 1")),
                other => panic!("unexpected {other:?}"),
            }
        }
        if leech.is_unchoked() && !asked {
            asked = true;
            for piece in 0..n {
                for req in geometry.blocks(piece) {
                    leech.request(req, now);
                }
            }
            assert_eq!(leech.outstanding(), total_blocks);
            assert!(leech.timer(Timer::Requests).is_some());
        }
        let mut wire = Vec::new();
        leech.poll_transmit(&mut wire, now);
        seed.handle_input(&wire, now).unwrap();
        if got_blocks == total_blocks {
            break;
        }
    }
    assert_eq!(got_blocks, total_blocks);
    assert!(received == data, "the leecher's copy differs");
    assert_eq!(leech.outstanding(), 0);
    assert_eq!(leech.timer(Timer::Requests), None);
    // A seed has every piece: it needs none of the leecher's haves.
    assert!((0..n).all(|p| !seed.peer_has(p)), "the seed heard no have");
    let (down, up) = leech.take_stats();
    assert_eq!(down, data.len() as u64);
    assert_eq!(up, 0);
    assert_eq!(seed.take_stats().1, data.len() as u64);
    // Nothing left in flight either way.
    assert_eq!(seed.queued_serves(), 0);
    assert!(seed.poll_timeout().is_some_and(|t| t > now));
}
