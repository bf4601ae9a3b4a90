//! Property test: random sequences of swarm events drive the picker, and
//! after every step its answers are compared with a slow reference model that
//! recomputes everything from the raw events.
//!
//! Invariants checked after each step:
//! - the picker's own structures agree with a recount from scratch
//!   (`debug_check_invariants`);
//! - availability equals what the connected peers reported (seeds included);
//! - outside end-game no block is in flight to two peers;
//! - a removed peer holds nothing;
//! - a picked block belongs to a wanted piece we do not have, that is not
//!   complete, that the peer has, and was not received yet;
//! - every missing block is eventually pickable: with all peers gone and one
//!   seed connected, picking returns exactly the missing blocks.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use rustico_piece_picker::{BlockRequest, PeerKey, PickMode, PickerConfig, PiecePicker};

#[derive(Debug, Clone)]
enum Op {
    AddPeer,
    RemovePeer(usize),
    Have(usize, u32),
    Bitfield(usize, u64),
    HaveAll(usize),
    Rate(usize, u64),
    Pick(usize, usize),
    Receive(usize, usize),
    ReceiveAny(usize, u32, u32),
    Reject(usize, usize),
    Choke(usize),
    Hash(u32, bool),
    Priority(u32, u8),
    WeHave(u32),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => Just(Op::AddPeer),
        1 => any::<usize>().prop_map(Op::RemovePeer),
        4 => (any::<usize>(), 0..64u32).prop_map(|(p, x)| Op::Have(p, x)),
        2 => (any::<usize>(), any::<u64>()).prop_map(|(p, b)| Op::Bitfield(p, b)),
        1 => any::<usize>().prop_map(Op::HaveAll),
        1 => (any::<usize>(), 0..100u64).prop_map(|(p, r)| Op::Rate(p, r)),
        6 => (any::<usize>(), 1..10usize).prop_map(|(p, m)| Op::Pick(p, m)),
        6 => (any::<usize>(), any::<usize>()).prop_map(|(p, k)| Op::Receive(p, k)),
        1 => (any::<usize>(), 0..64u32, 0..8u32).prop_map(|(p, x, b)| Op::ReceiveAny(p, x, b)),
        1 => (any::<usize>(), any::<usize>()).prop_map(|(p, k)| Op::Reject(p, k)),
        1 => any::<usize>().prop_map(Op::Choke),
        3 => (0..64u32, prop::bool::weighted(0.8)).prop_map(|(x, ok)| Op::Hash(x, ok)),
        1 => (0..64u32, 0..8u8).prop_map(|(x, p)| Op::Priority(x, p)),
        1 => (0..64u32).prop_map(Op::WeHave),
    ]
}

#[derive(Debug, Clone)]
struct Setup {
    pieces: u64,
    blocks_per_piece: u32,
    last_piece_bytes: u64,
    max_dup: u8,
    fastest: bool,
    mode: PickMode,
    random_first: u32,
    seed: u64,
}

fn setup() -> impl Strategy<Value = Setup> {
    (
        1..24u64,
        1..5u32,
        1..5u64,
        0..3u8,
        any::<bool>(),
        prop_oneof![
            Just(PickMode::RarestFirst),
            Just(PickMode::Random),
            Just(PickMode::Sequential)
        ],
        0..3u32,
        any::<u64>(),
    )
        .prop_map(
            |(pieces, bpp, last, max_dup, fastest, mode, random_first, seed)| Setup {
                pieces,
                blocks_per_piece: bpp,
                last_piece_bytes: last.min(u64::from(bpp)),
                max_dup,
                fastest,
                mode,
                random_first,
                seed,
            },
        )
}

struct ModelPeer {
    key: PeerKey,
    seed: bool,
    has: BTreeSet<u32>,
}

struct Model {
    picker: PiecePicker,
    n: u32,
    peers: Vec<ModelPeer>,
    removed: Vec<PeerKey>,
    have: BTreeSet<u32>,
    /// (piece, block) -> sender
    received: BTreeMap<(u32, u32), PeerKey>,
    prio: Vec<u8>,
}

impl Model {
    fn blocks(&self, piece: u32) -> u32 {
        self.picker.blocks_in_piece(piece)
    }

    fn complete(&self, piece: u32) -> bool {
        !self.have.contains(&piece)
            && (0..self.blocks(piece)).all(|b| self.received.contains_key(&(piece, b)))
    }

    fn peer(&self, i: usize) -> Option<usize> {
        if self.peers.is_empty() {
            None
        } else {
            Some(i % self.peers.len())
        }
    }

    fn block_index(&self, b: BlockRequest) -> u32 {
        // Setup uses one-byte blocks.
        b.offset
    }

    fn apply(&mut self, op: &Op) {
        let n = self.n;
        match *op {
            Op::AddPeer => {
                let key = self.picker.add_peer();
                self.peers.push(ModelPeer {
                    key,
                    seed: false,
                    has: BTreeSet::new(),
                });
            }
            Op::RemovePeer(i) => {
                if let Some(i) = self.peer(i) {
                    let p = self.peers.remove(i);
                    self.picker.remove_peer(p.key).unwrap();
                    self.removed.push(p.key);
                }
            }
            Op::Have(i, x) => {
                if let Some(i) = self.peer(i) {
                    let piece = x % n;
                    self.picker.peer_has(self.peers[i].key, piece).unwrap();
                    self.peers[i].has.insert(piece);
                }
            }
            Op::Bitfield(i, bits) => {
                if let Some(i) = self.peer(i) {
                    let mut bytes = vec![0u8; n.div_ceil(8) as usize];
                    for p in (0..n).filter(|&p| bits & (1 << (p % 64)) != 0) {
                        bytes[(p / 8) as usize] |= 0x80 >> (p % 8);
                        self.peers[i].has.insert(p);
                    }
                    self.picker
                        .peer_bitfield(self.peers[i].key, &bytes)
                        .unwrap();
                }
            }
            Op::HaveAll(i) => {
                if let Some(i) = self.peer(i) {
                    self.picker.peer_has_all(self.peers[i].key).unwrap();
                    self.peers[i].seed = true;
                    self.peers[i].has = (0..n).collect();
                }
            }
            Op::Rate(i, r) => {
                if let Some(i) = self.peer(i) {
                    self.picker.set_peer_rate(self.peers[i].key, r).unwrap();
                }
            }
            Op::Pick(i, max) => {
                if let Some(i) = self.peer(i) {
                    let key = self.peers[i].key;
                    let mut out = Vec::new();
                    let got = self.picker.pick(key, max, &mut out).unwrap();
                    assert_eq!(got, out.len());
                    assert!(got <= max);
                    let unique: BTreeSet<_> = out.iter().collect();
                    assert_eq!(unique.len(), out.len(), "a pick repeats a block");
                    for b in &out {
                        let blk = self.block_index(*b);
                        assert!(
                            !self.have.contains(&b.piece),
                            "picked a verified piece {b:?}"
                        );
                        assert!(!self.complete(b.piece), "picked a complete piece {b:?}");
                        assert!(
                            !self.received.contains_key(&(b.piece, blk)),
                            "picked a received block"
                        );
                        assert!(self.peers[i].has.contains(&b.piece), "peer lacks {b:?}");
                        assert!(self.prio[b.piece as usize] > 0, "picked a skipped piece");
                    }
                }
            }
            Op::Receive(i, k) | Op::Reject(i, k) => {
                if let Some(i) = self.peer(i) {
                    let key = self.peers[i].key;
                    let flying: Vec<_> = self.picker.in_flight(key).collect();
                    if flying.is_empty() {
                        return;
                    }
                    let b = flying[k % flying.len()];
                    if matches!(op, Op::Reject(..)) {
                        self.picker.block_rejected(key, b).unwrap();
                        assert!(!self.picker.in_flight(key).any(|x| x == b));
                    } else {
                        self.receive(i, b);
                    }
                }
            }
            Op::ReceiveAny(i, x, blk) => {
                if let Some(i) = self.peer(i) {
                    let piece = x % n;
                    let blk = blk % self.blocks(piece);
                    let len = self.picker_block_len(piece, blk);
                    self.receive(
                        i,
                        BlockRequest {
                            piece,
                            offset: blk,
                            length: len,
                        },
                    );
                }
            }
            Op::Choke(i) => {
                if let Some(i) = self.peer(i) {
                    self.picker.peer_choked(self.peers[i].key).unwrap();
                    assert_eq!(self.picker.in_flight_count(self.peers[i].key), 0);
                }
            }
            Op::Hash(x, ok) => {
                let piece = x % n;
                if !self.complete(piece) {
                    if !self.have.contains(&piece) {
                        assert!(self.picker.piece_verified(piece).is_err());
                    }
                    return;
                }
                if ok {
                    self.picker.piece_verified(piece).unwrap();
                    self.have.insert(piece);
                    self.received.retain(|&(p, _), _| p != piece);
                } else {
                    let mut senders = Vec::new();
                    self.picker.piece_hash_failed(piece, &mut senders).unwrap();
                    let expected: BTreeSet<PeerKey> = self
                        .received
                        .iter()
                        .filter(|((p, _), _)| *p == piece)
                        .map(|(_, &k)| k)
                        .collect();
                    assert_eq!(senders.len(), expected.len(), "senders listed once each");
                    assert_eq!(senders.into_iter().collect::<BTreeSet<_>>(), expected);
                    self.received.retain(|&(p, _), _| p != piece);
                }
            }
            Op::Priority(x, prio) => {
                let piece = x % n;
                self.picker.set_piece_priority(piece, prio).unwrap();
                self.prio[piece as usize] = prio;
            }
            Op::WeHave(x) => {
                let piece = x % n;
                self.picker.we_have(piece).unwrap();
                self.have.insert(piece);
                self.received.retain(|&(p, _), _| p != piece);
            }
        }
    }

    fn picker_block_len(&self, piece: u32, _block: u32) -> u32 {
        let _ = piece;
        1
    }

    fn receive(&mut self, i: usize, b: BlockRequest) {
        let key = self.peers[i].key;
        let blk = self.block_index(b);
        let fresh = !self.have.contains(&b.piece) && !self.received.contains_key(&(b.piece, blk));
        let mut others_before: Vec<PeerKey> = self
            .peers
            .iter()
            .filter(|p| p.key != key && self.picker.in_flight(p.key).any(|x| x == b))
            .map(|p| p.key)
            .collect();
        others_before.sort();
        let mut cancel = Vec::new();
        let outcome = self.picker.block_received(key, b, &mut cancel).unwrap();
        assert_eq!(outcome.accepted, fresh, "accepted iff new");
        if fresh {
            self.received.insert((b.piece, blk), key);
            let mut cancel_sorted = cancel.clone();
            cancel_sorted.sort();
            assert_eq!(
                cancel_sorted, others_before,
                "cancel exactly the other requesters"
            );
        } else {
            assert!(cancel.is_empty());
        }
        assert_eq!(outcome.piece_complete, fresh && self.complete(b.piece));
        for p in &self.peers {
            assert!(
                !self.picker.in_flight(p.key).any(|x| x == b),
                "received block still in flight"
            );
        }
    }

    fn check(&self) {
        self.picker.debug_check_invariants().unwrap();
        let seeds = self.peers.iter().filter(|p| p.seed).count() as u32;
        assert_eq!(self.picker.num_seeds(), seeds);
        assert_eq!(self.picker.num_peers() as usize, self.peers.len());
        for piece in 0..self.n {
            let count = self.peers.iter().filter(|p| p.has.contains(&piece)).count() as u32;
            assert_eq!(
                self.picker.availability(piece),
                count,
                "availability of {piece}"
            );
            assert_eq!(self.picker.have(piece), self.have.contains(&piece));
        }
        let mut flying = BTreeMap::new();
        for p in &self.peers {
            for b in self.picker.in_flight(p.key) {
                *flying.entry(b).or_insert(0u32) += 1;
            }
            let wanted = p
                .has
                .iter()
                .any(|&x| !self.have.contains(&x) && self.prio[x as usize] > 0);
            assert_eq!(self.picker.interesting(p.key), wanted);
        }
        if !self.picker.in_end_game() {
            assert!(
                flying.values().all(|&c| c == 1),
                "duplicate request outside end-game"
            );
        }
        for &k in &self.removed {
            assert_eq!(self.picker.in_flight_count(k), 0);
            assert!(!self.picker.interesting(k));
        }
        // Every missing block is eventually pickable.
        let mut alone = self.picker.clone();
        for p in &self.peers {
            alone.remove_peer(p.key).unwrap();
        }
        let seed = alone.add_peer();
        alone.peer_has_all(seed).unwrap();
        let mut out = Vec::new();
        alone.pick(seed, usize::MAX >> 1, &mut out).unwrap();
        let picked: BTreeSet<(u32, u32)> = out
            .iter()
            .map(|b| (b.piece, self.block_index(*b)))
            .collect();
        assert_eq!(picked.len(), out.len());
        let missing: BTreeSet<(u32, u32)> = (0..self.n)
            .filter(|&p| !self.have.contains(&p) && self.prio[p as usize] > 0)
            .flat_map(|p| (0..self.blocks(p)).map(move |b| (p, b)))
            .filter(|k| !self.received.contains_key(k))
            .collect();
        assert_eq!(picked, missing, "every missing block is pickable");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn picker_matches_reference_model(s in setup(), ops in prop::collection::vec(op(), 1..120)) {
        let total = (s.pieces - 1) * u64::from(s.blocks_per_piece) + s.last_piece_bytes;
        let mut config = PickerConfig::new(total, s.blocks_per_piece);
        config.block_size = 1;
        config.seed = s.seed;
        config.mode = s.mode;
        config.end_game_max_duplicates = s.max_dup;
        config.fastest_peer_first = s.fastest;
        config.whole_piece_seconds = 1;
        config.random_first_pieces = s.random_first;
        let picker = PiecePicker::new(config).unwrap();
        let n = picker.num_pieces();
        let mut model = Model {
            picker,
            n,
            peers: Vec::new(),
            removed: Vec::new(),
            have: BTreeSet::new(),
            received: BTreeMap::new(),
            prio: vec![rustico_piece_picker::DEFAULT_PRIORITY; n as usize],
        };
        for op in &ops {
            model.apply(op);
            model.check();
        }
    }
}
