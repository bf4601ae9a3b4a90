//! Piece picker benchmark: `rustico-piece-picker` against a naive picker
//! written here (scan every piece for the rarest on every pick), in the same
//! run, on the same swarm.
//!
//! The swarm: pieces of 16 blocks, 1,000 peers: 200 seeds and 800 peers that
//! each have a random half of the pieces. Measured for 1k, 10k, 100k and 1M
//! pieces: a `have`, a seed joining and leaving, picking 1 and 64 blocks
//! (ours and naive, both mid-download so new pieces are rarest first),
//! picking 1 block in our random-first phase (nothing verified yet), and
//! driving a whole download through the picker.
//!
//! Targets (issue 6): a `have` <= 50 ns, picking one block <= 200 ns median,
//! >= 100x faster than naive at 100k pieces.
//!
//! Run: `cargo bench -p rustico-benches --bench piece_picker --no-run`, then
//! the printed binary with `--bench`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use rustico_piece_picker::{BlockRequest, PeerKey, PickerConfig, PiecePicker};

const BLOCK: u32 = 16 * 1024;
const BLOCKS_PER_PIECE: u32 = 16;
const PIECE: u32 = BLOCK * BLOCKS_PER_PIECE;
const PEERS: usize = 1000;
const SEEDS: usize = 200;
const SIZES: [u32; 4] = [1_000, 10_000, 100_000, 1_000_000];

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (((self.next() >> 32) * n as u64) >> 32) as usize
    }
}

/// Which pieces each peer has: `None` for a seed, else one bit per piece.
struct Swarm {
    pieces: u32,
    bitfields: Vec<Option<Vec<u64>>>,
}

impl Swarm {
    fn new(pieces: u32, peers: usize, seeds: usize) -> Self {
        let mut rng = Rng(pieces as u64);
        let words = (pieces as usize).div_ceil(64);
        let bitfields = (0..peers)
            .map(|i| {
                (i >= seeds).then(|| {
                    let mut bits: Vec<u64> = (0..words).map(|_| rng.next()).collect();
                    if pieces % 64 != 0 {
                        *bits.last_mut().unwrap() &= (1u64 << (pieces % 64)) - 1;
                    }
                    bits
                })
            })
            .collect();
        Self { pieces, bitfields }
    }

    fn wire_bitfield(&self, bits: &[u64]) -> Vec<u8> {
        let mut bytes = vec![0u8; (self.pieces as usize).div_ceil(8)];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = ((bits[i / 8] >> (8 * (i % 8))) as u8).reverse_bits();
        }
        bytes
    }

    /// Pieces we already have in the steady state: as many as the picker's
    /// default `random_first_pieces` (4), spread out, so picks are rarest
    /// first (what the naive picker does) rather than the random start.
    fn had(&self) -> [u32; 4] {
        let n = self.pieces;
        [0, n / 4, n / 2, 3 * n / 4]
    }

    /// Our picker with every peer connected. `mid_download`: the pieces of
    /// [`Swarm::had`] are verified (the steady state, rarest first); else
    /// nothing is, and new pieces are the random first pieces.
    fn picker(&self, mid_download: bool) -> (PiecePicker, Vec<PeerKey>) {
        let mut config = PickerConfig::new(u64::from(self.pieces) * u64::from(PIECE), PIECE);
        config.seed = 1;
        let mut picker = PiecePicker::new(config).unwrap();
        if mid_download {
            for piece in self.had() {
                picker.we_have(piece).unwrap();
            }
        }
        let keys = self
            .bitfields
            .iter()
            .map(|bits| {
                let key = picker.add_peer();
                match bits {
                    None => picker.peer_has_all(key).unwrap(),
                    Some(bits) => picker
                        .peer_bitfield(key, &self.wire_bitfield(bits))
                        .unwrap(),
                }
                key
            })
            .collect();
        (picker, keys)
    }

    /// The naive picker on the same swarm; `mid_download` as in
    /// [`Swarm::picker`].
    fn naive(&self, mid_download: bool) -> NaivePicker<'_> {
        let n = self.pieces as usize;
        let mut avail = vec![0u32; n];
        for bits in self.bitfields.iter() {
            for (p, a) in avail.iter_mut().enumerate() {
                *a += u32::from(bits.as_ref().is_none_or(|b| b[p / 64] >> (p % 64) & 1 == 1));
            }
        }
        let mut have = vec![false; n];
        if mid_download {
            for piece in self.had() {
                have[piece as usize] = true;
            }
        }
        NaivePicker {
            swarm: self,
            avail,
            requested: vec![0; n],
            received: vec![0; n],
            have,
            in_flight: vec![Vec::new(); self.bitfields.len()],
            rng: Rng(7),
        }
    }
}

/// The baseline: every new piece is found by scanning all pieces for the
/// least available one that the peer has (partial pieces first), the way a
/// first implementation would do it.
struct NaivePicker<'a> {
    swarm: &'a Swarm,
    avail: Vec<u32>,
    /// Blocks requested so far, in order, per piece.
    requested: Vec<u32>,
    received: Vec<u32>,
    have: Vec<bool>,
    in_flight: Vec<Vec<BlockRequest>>,
    rng: Rng,
}

impl NaivePicker<'_> {
    fn peer_has(&self, peer: usize, p: usize) -> bool {
        self.swarm.bitfields[peer]
            .as_ref()
            .is_none_or(|b| b[p / 64] >> (p % 64) & 1 == 1)
    }

    fn pick(&mut self, peer: usize, max: usize, out: &mut Vec<BlockRequest>) {
        let mut left = max;
        while left > 0 {
            let mut best: Option<((bool, u32), usize)> = None;
            let mut ties = 0;
            for p in 0..self.avail.len() {
                if self.have[p] || self.requested[p] == BLOCKS_PER_PIECE || !self.peer_has(peer, p)
                {
                    continue;
                }
                let key = (self.requested[p] == 0, self.avail[p]);
                match best {
                    Some((k, _)) if key > k => {}
                    Some((k, _)) if key == k => {
                        ties += 1;
                        if self.rng.below(ties) == 0 {
                            best = Some((key, p));
                        }
                    }
                    _ => {
                        ties = 1;
                        best = Some((key, p));
                    }
                }
            }
            let Some((_, p)) = best else { return };
            while left > 0 && self.requested[p] < BLOCKS_PER_PIECE {
                let block = BlockRequest {
                    piece: p as u32,
                    offset: self.requested[p] * BLOCK,
                    length: BLOCK,
                };
                self.requested[p] += 1;
                self.in_flight[peer].push(block);
                out.push(block);
                left -= 1;
            }
        }
    }

    /// Returns the peer's blocks (only whole trailing runs are tracked, which
    /// is all this benchmark produces).
    fn choke(&mut self, peer: usize) {
        for b in self.in_flight[peer].drain(..) {
            self.requested[b.piece as usize] -= 1;
        }
    }

    fn receive_all(&mut self, peer: usize) {
        for b in self.in_flight[peer].drain(..) {
            let p = b.piece as usize;
            self.received[p] += 1;
            if self.received[p] == BLOCKS_PER_PIECE {
                self.have[p] = true;
            }
        }
    }
}

/// Times `iters` picks of `max` blocks, each for a leecher drawn at random
/// from `order` (a client picks in the order blocks arrive, not in slot
/// order, which would let neighbouring peers' bitfield words share cache
/// lines), or all for the same one; the blocks are returned (untimed) after
/// each round of 100 so the state stays steady.
fn time_picks(
    picker: &mut PiecePicker,
    keys: &[PeerKey],
    max: usize,
    same_peer: bool,
    order: &mut Rng,
    iters: u64,
) -> Duration {
    let mut out = Vec::with_capacity(max * 100);
    let mut total = Duration::ZERO;
    let leechers = &keys[SEEDS..];
    let mut done = 0u64;
    let mut next = 0usize;
    while done < iters {
        let round = (iters - done).min(100) as usize;
        let peers: Vec<PeerKey> = (0..round)
            .map(|_| {
                if same_peer {
                    leechers[next % leechers.len()]
                } else {
                    leechers[order.below(leechers.len())]
                }
            })
            .collect();
        next += 1;
        let start = Instant::now();
        for &p in &peers {
            picker.pick(p, max, &mut out).unwrap();
        }
        total += start.elapsed();
        black_box(&out);
        out.clear();
        for &p in &peers {
            if !same_peer || p == peers[0] {
                picker.peer_choked(p).unwrap();
            }
        }
        done += round as u64;
    }
    total
}

fn time_naive_picks(naive: &mut NaivePicker<'_>, max: usize, iters: u64) -> Duration {
    let mut out = Vec::with_capacity(max);
    let mut total = Duration::ZERO;
    for i in 0..iters {
        let peer = SEEDS + (i as usize % (PEERS - SEEDS));
        let start = Instant::now();
        naive.pick(peer, max, &mut out);
        total += start.elapsed();
        black_box(&out);
        out.clear();
        naive.choke(peer);
    }
    total
}

fn per_size(c: &mut Criterion) {
    for &n in &SIZES {
        let swarm = Swarm::new(n, PEERS, SEEDS);
        let (mut picker, keys) = swarm.picker(true);
        let mut group = c.benchmark_group(format!("picker/{n}"));
        group.warm_up_time(Duration::from_millis(500));
        group.measurement_time(Duration::from_secs(2));

        let mut order: Vec<u32> = (0..n).collect();
        let mut rng = Rng(3);
        for i in (1..order.len()).rev() {
            order.swap(i, rng.below(i + 1));
        }
        group.bench_function("have", |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut done = 0;
                while done < iters {
                    let peer = picker.add_peer();
                    let chunk = (iters - done).min(u64::from(n / 2)) as usize;
                    let start = Instant::now();
                    for &piece in &order[..chunk] {
                        picker.peer_has(peer, piece).unwrap();
                    }
                    total += start.elapsed();
                    picker.remove_peer(peer).unwrap();
                    done += chunk as u64;
                }
                total
            })
        });
        group.bench_function("seed_join_leave", |b| {
            b.iter(|| {
                let peer = picker.add_peer();
                picker.peer_has_all(peer).unwrap();
                picker.remove_peer(black_box(peer)).unwrap();
            })
        });
        let mut order = Rng(5);
        for max in [1usize, 64] {
            group.bench_function(BenchmarkId::new("pick", max), |b| {
                b.iter_custom(|iters| time_picks(&mut picker, &keys, max, false, &mut order, iters))
            });
        }
        group.bench_function("pick_same_peer/1", |b| {
            b.iter_custom(|iters| time_picks(&mut picker, &keys, 1, true, &mut order, iters))
        });
        drop(picker);
        // The first few pieces of a download are picked at random (cold
        // bitfield words every time), measured on its own.
        let (mut fresh, keys) = swarm.picker(false);
        group.bench_function("pick_random_first/1", |b| {
            b.iter_custom(|iters| time_picks(&mut fresh, &keys, 1, false, &mut order, iters))
        });
        drop(fresh);
        let mut naive = swarm.naive(true);
        for max in [1usize, 64] {
            group.bench_function(BenchmarkId::new("naive_pick", max), |b| {
                b.iter_custom(|iters| time_naive_picks(&mut naive, max, iters))
            });
        }
        group.finish();
    }
}

/// Every block requested from the peers in turn and received at once, each
/// piece verified when complete, until we have everything.
fn download(picker: &mut PiecePicker, keys: &[PeerKey]) -> u64 {
    let mut out = Vec::with_capacity(BLOCKS_PER_PIECE as usize);
    let mut cancel = Vec::new();
    let mut blocks = 0;
    while !picker.is_complete() {
        for &peer in keys {
            out.clear();
            picker
                .pick(peer, BLOCKS_PER_PIECE as usize, &mut out)
                .unwrap();
            for &block in &out {
                let outcome = picker.block_received(peer, block, &mut cancel).unwrap();
                if outcome.piece_complete {
                    picker.piece_verified(block.piece).unwrap();
                }
            }
            blocks += out.len() as u64;
        }
    }
    blocks
}

fn naive_download(naive: &mut NaivePicker<'_>) -> u64 {
    let mut out = Vec::with_capacity(BLOCKS_PER_PIECE as usize);
    let mut blocks = 0;
    while !naive.have.iter().all(|&h| h) {
        for peer in 0..PEERS {
            out.clear();
            naive.pick(peer, BLOCKS_PER_PIECE as usize, &mut out);
            naive.receive_all(peer);
            blocks += out.len() as u64;
        }
    }
    blocks
}

fn whole_download(c: &mut Criterion) {
    let mut group = c.benchmark_group("whole_download");
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(5));
    for n in [10_000u32, 100_000] {
        let swarm = Swarm::new(n, PEERS, SEEDS);
        let (picker, keys) = swarm.picker(false);
        group.bench_function(BenchmarkId::new("ours", n), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let mut fresh = picker.clone();
                    let start = Instant::now();
                    let blocks = download(&mut fresh, &keys);
                    total += start.elapsed();
                    assert_eq!(blocks, u64::from(n) * u64::from(BLOCKS_PER_PIECE));
                }
                total
            })
        });
        if n <= 10_000 {
            group.bench_function(BenchmarkId::new("naive", n), |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let mut naive = swarm.naive(false);
                        let start = Instant::now();
                        let blocks = naive_download(&mut naive);
                        total += start.elapsed();
                        assert_eq!(blocks, u64::from(n) * u64::from(BLOCKS_PER_PIECE));
                    }
                    total
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, per_size, whole_download);
criterion_main!(benches);
