//! Property tests of the BEP 9 and BEP 11 bookkeeping: any sequence of
//! `ut_metadata` events never panics and completes only with bytes whose
//! SHA-1 is the info-hash (and an honest peer can always finish the job);
//! PEX diffs applied by a receiver rebuild the sender's peer set, within
//! the rate and size limits; incoming PEX filtering keeps its caps.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use proptest::collection::{btree_set, vec};
use proptest::prelude::*;
use rustico_peer_wire::*;
use sha1::{Digest, Sha1};

#[derive(Debug, Clone)]
enum Event {
    /// A peer announces a size: the true one, or any other.
    Announce {
        peer: u8,
        size: Option<u64>,
    },
    /// Time passes, then a peer asks for work and, maybe, answers it.
    Poll {
        peer: u8,
        advance: u64,
        answer: Answer,
    },
    /// Unsolicited data for any piece.
    Data {
        peer: u8,
        piece: u32,
        total_size: Option<u64>,
        honest: bool,
        len: usize,
    },
    Reject {
        peer: u8,
        piece: u32,
    },
    Gone {
        peer: u8,
    },
}

#[derive(Debug, Clone, Copy)]
enum Answer {
    Nothing,
    Honest,
    Garbage,
    Reject,
}

fn event() -> impl Strategy<Value = Event> {
    let peer = 0u8..6;
    prop_oneof![
        (
            peer.clone(),
            prop_oneof![
                Just(None),
                Just(Some(0)),
                (1u64..70_000).prop_map(Some),
                any::<u64>().prop_map(Some)
            ]
        )
            .prop_map(|(peer, size)| Event::Announce { peer, size }),
        (
            peer.clone(),
            0u64..40,
            prop_oneof![
                Just(Answer::Nothing),
                Just(Answer::Honest),
                Just(Answer::Honest),
                Just(Answer::Garbage),
                Just(Answer::Reject)
            ]
        )
            .prop_map(|(peer, advance, answer)| Event::Poll {
                peer,
                advance,
                answer
            }),
        (
            peer.clone(),
            prop_oneof![0u32..6, any::<u32>()],
            prop_oneof![Just(None), any::<u64>().prop_map(Some)],
            any::<bool>(),
            0usize..20_000
        )
            .prop_map(|(peer, piece, total_size, honest, len)| Event::Data {
                peer,
                piece,
                total_size,
                honest,
                len
            }),
        (peer.clone(), prop_oneof![0u32..6, any::<u32>()])
            .prop_map(|(peer, piece)| Event::Reject { peer, piece }),
        peer.prop_map(|peer| Event::Gone { peer }),
    ]
}

fn metadata_piece(info: &[u8], piece: u32) -> Option<&[u8]> {
    let start = piece as usize * 16384;
    info.get(start..(start + 16384).min(info.len()))
}

/// Feeds one answer and checks what completes.
fn check_outcome(
    download: &mut MetadataDownload<u8>,
    outcome: Result<DataOutcome<u8>, MetadataError>,
    info: &[u8],
    hash: [u8; 20],
) -> bool {
    if let Ok(DataOutcome::Complete) = outcome {
        let bytes = download.poll_complete().expect("complete gives bytes");
        assert_eq!(<[u8; 20]>::from(Sha1::digest(&bytes)), hash);
        assert_eq!(bytes, info);
        return true;
    }
    assert_eq!(download.poll_complete(), None);
    false
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn metadata_download_survives_anything(
        info in vec(any::<u8>(), 1..50_000),
        events in vec(event(), 0..80),
    ) {
        let hash: [u8; 20] = Sha1::digest(&info).into();
        let server = MetadataServer::new(info.clone());
        let mut download = MetadataDownload::<u8>::new(hash);
        let mut now = Instant::now();
        let mut done = false;
        for event in events {
            match event {
                Event::Announce { peer, size } => {
                    let size = size.unwrap_or(info.len() as u64);
                    let result = download.handle_metadata_size(peer, size);
                    prop_assert_eq!(result.is_ok(), size > 0 && size <= 16 << 20);
                }
                Event::Poll { peer, advance, answer } => {
                    now += Duration::from_secs(advance);
                    let Some(piece) = download.poll_request(peer, now) else { continue };
                    prop_assert!(!done, "no requests after completion");
                    let size = download.size().expect("a request means a size");
                    prop_assert!(u64::from(piece) < u64::from(size).div_ceil(16384));
                    let outcome = match answer {
                        Answer::Nothing => continue,
                        Answer::Reject => {
                            prop_assert_eq!(download.handle_reject(peer, piece), Ok(()));
                            continue;
                        }
                        Answer::Honest => match server.answer(MetadataMessage::Request { piece }) {
                            Some(MetadataMessage::Data { piece, total_size, data }) => {
                                download.handle_data(peer, piece, total_size, data)
                            }
                            _ => download.handle_reject(peer, piece).map(|()| DataOutcome::Stored),
                        },
                        Answer::Garbage => {
                            let len = (size as usize - piece as usize * 16384).min(16384);
                            download.handle_data(peer, piece, u64::from(size), &vec![0xee; len])
                        }
                    };
                    done |= check_outcome(&mut download, outcome, &info, hash);
                }
                Event::Data { peer, piece, total_size, honest, len } => {
                    let data = match metadata_piece(&info, piece) {
                        Some(data) if honest => data.to_vec(),
                        _ => vec![0x55; len],
                    };
                    let total_size = total_size.unwrap_or(info.len() as u64);
                    let outcome = download.handle_data(peer, piece, total_size, &data);
                    done |= check_outcome(&mut download, outcome, &info, hash);
                }
                Event::Reject { peer, piece } => {
                    let _ = download.handle_reject(peer, piece);
                }
                Event::Gone { peer } => download.handle_peer_gone(peer),
            }
            if let Some(deadline) = download.poll_timeout(now) {
                prop_assert!(deadline > now, "a deadline in the past would spin a timer");
            }
        }
        prop_assert_eq!(done, download.is_complete());
        if done {
            return Ok(());
        }
        // Whatever happened, honest peers alone finish the job (a second
        // one if the first is blamed for pieces others forged).
        for peer in 0..6 {
            download.handle_peer_gone(peer);
        }
        let mut finished = false;
        'honest: for honest in [100u8, 101] {
            download.handle_metadata_size(honest, info.len() as u64).unwrap();
            for _ in 0..20 {
                now += Duration::from_secs(60);
                let Some(piece) = download.poll_request(honest, now) else { break };
                let Some(MetadataMessage::Data { piece, total_size, data }) =
                    server.answer(MetadataMessage::Request { piece }) else {
                    panic!("honest size, piece {piece} in range")
                };
                match download.handle_data(honest, piece, total_size, data).unwrap() {
                    DataOutcome::Complete => {
                        prop_assert_eq!(download.poll_complete(), Some(info.clone()));
                        finished = true;
                        break 'honest;
                    }
                    DataOutcome::HashMismatch { contributors } => {
                        prop_assert!(contributors.contains(&honest));
                        continue 'honest;
                    }
                    DataOutcome::Stored | DataOutcome::Duplicate => {}
                }
            }
        }
        prop_assert!(finished, "honest peers could not finish");
    }

    #[test]
    fn pex_diffs_rebuild_the_senders_set(
        steps in vec((btree_set(0u16..160, 0..120), 0u64..100), 1..12),
        remote in 0u16..160,
    ) {
        let addr = |n: u16| -> SocketAddr {
            if n % 3 == 0 {
                SocketAddr::from((Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, n), 6881))
            } else {
                SocketAddr::from((Ipv4Addr::new(10, 0, (n >> 8) as u8, n as u8), 6881 + n))
            }
        };
        let remote = addr(remote);
        let mut sender = PexState::new(remote, PexConfig::default());
        let mut received: BTreeSet<SocketAddr> = BTreeSet::new();
        let mut now = Instant::now();
        let mut last_sent: Option<Instant> = None;
        let mut current = BTreeSet::new();
        let mut deliver = |message: PexMessage, now: Instant, received: &mut BTreeSet<SocketAddr>| {
            assert!(message.added.len() <= 50 && message.dropped.len() <= 50);
            assert!(!message.added.iter().any(|p| p.addr == remote));
            if let Some(last) = last_sent {
                assert!(now - last >= Duration::from_secs(60), "rate limit");
            }
            last_sent = Some(now);
            // Over the wire and back.
            let mut payload = Vec::new();
            message.encode(&mut payload);
            let decoded = PexMessage::decode(&payload).unwrap();
            for addr in &decoded.dropped {
                assert!(received.remove(addr), "dropped {addr} was never added");
            }
            for peer in &decoded.added {
                assert!(received.insert(peer.addr), "added {} twice", peer.addr);
            }
        };
        for (set, advance) in steps {
            now += Duration::from_secs(advance);
            current = set.iter().map(|&n| addr(n)).collect::<BTreeSet<_>>();
            sender.set_connected(current.iter().map(|&addr| PexPeer { addr, flags: PexFlags(0) }));
            if let Some(message) = sender.poll_message(now) {
                deliver(message, now, &mut received);
            }
        }
        current.remove(&remote);
        // Enough messages: at most 50 changes of each kind per minute.
        for _ in 0..8 {
            let Some(at) = sender.poll_timeout(now) else { break };
            prop_assert!(at >= now);
            now = at;
            let message = sender.poll_message(now).expect("due at its timeout");
            deliver(message, now, &mut received);
        }
        prop_assert!(!sender.has_pending());
        prop_assert_eq!(received, current);
    }

    #[test]
    fn incoming_pex_keeps_its_caps(
        added in vec((any::<[u8; 4]>(), any::<u16>()), 0..300),
        dropped in vec((any::<[u8; 4]>(), prop_oneof![Just(0u16), any::<u16>()]), 0..300),
        max_added in 0usize..80,
        max_dropped in 0usize..80,
    ) {
        let config = PexConfig { max_added, max_dropped, ..PexConfig::default() };
        let message = PexMessage {
            added: added.iter().map(|&(ip, port)| PexPeer {
                addr: SocketAddr::from((ip, port)),
                flags: PexFlags(0),
            }).collect(),
            dropped: dropped.iter().map(|&(ip, port)| SocketAddr::from((ip, port))).collect(),
        };
        let total = message.added.len() + message.dropped.len();
        let incoming = filter_incoming_pex(message, &config);
        prop_assert!(incoming.added.len() <= max_added);
        prop_assert!(incoming.dropped.len() <= max_dropped);
        prop_assert_eq!(incoming.added.len() + incoming.dropped.len() + incoming.discarded, total);
        let addrs = incoming.added.iter().map(|p| p.addr).chain(incoming.dropped.iter().copied());
        for addr in addrs {
            prop_assert!(addr.port() != 0 && !addr.ip().is_unspecified() && !addr.ip().is_multicast());
        }
        let unique: BTreeSet<_> = incoming.added.iter().map(|p| p.addr).collect();
        prop_assert_eq!(unique.len(), incoming.added.len());
    }
}
