//! What a simulation runs: the swarm's size, the torrent, the faults.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use rustico_swarm::SwarmConfig;

use crate::rng::SimRng;

/// A hook that adjusts each simulated peer's [`SwarmConfig`] (a policy
/// under test: picker mode, pipelines, choker slots...). It gets the
/// peer's index and the configuration the simulator built.
#[derive(Clone)]
pub struct Tune(pub Arc<TuneFn>);

/// The function inside a [`Tune`].
pub type TuneFn = dyn Fn(usize, &mut SwarmConfig) + Send + Sync;

impl Tune {
    /// A hook from a closure.
    pub fn new(f: impl Fn(usize, &mut SwarmConfig) + Send + Sync + 'static) -> Tune {
        Tune(Arc::new(f))
    }
}

impl fmt::Debug for Tune {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Tune(..)")
    }
}

/// The faults of one run. [`Faults::from_seed`] picks them from the seed.
#[derive(Debug, Clone, PartialEq)]
pub struct Faults {
    /// Leechers leave and come back (with the pieces they saved), at most
    /// twice each, away for up to 30 s.
    pub churn: bool,
    /// Probability that a new connection is cut at a random byte (in the
    /// middle of a message, usually).
    pub cut_links: f64,
    /// Probability that a connection delivers its bytes one at a time (every
    /// byte boundary of every message is a split).
    pub byte_links: f64,
    /// Probability that a connection delivers in random segments of 1 to
    /// 4,096 bytes.
    pub split_links: f64,
    /// Peers (with every piece) that send a corrupt byte in every block.
    pub corrupt_peers: usize,
    /// Peers (with every piece) that take requests and never answer them.
    pub stalling_peers: usize,
    /// Leechers that choke and unchoke all their peers every 50-500 ms,
    /// whatever their choker says.
    pub flapping_peers: usize,
    /// Probability that a peer's links are slow (high latency, 20-100 KB/s)
    /// and asymmetric (upload a tenth of download).
    pub slow_peers: f64,
    /// The only seed leaves once every piece exists on some honest leecher.
    pub seed_leaves: bool,
}

impl Faults {
    /// No faults: a clean network and honest peers.
    pub fn none() -> Faults {
        Faults {
            churn: false,
            cut_links: 0.0,
            byte_links: 0.0,
            split_links: 0.0,
            corrupt_peers: 0,
            stalling_peers: 0,
            flapping_peers: 0,
            slow_peers: 0.0,
            seed_leaves: false,
        }
    }

    /// Faults chosen by `seed`: each kind is on in about half the seeds.
    pub fn from_seed(seed: u64) -> Faults {
        let mut rng = SimRng::new(seed ^ 0x5eed_fa17);
        let mut on = |p: f64| rng.chance(p);
        let churn = on(0.5);
        let cut = on(0.5);
        let byte = on(0.4);
        let split = on(0.5);
        let corrupt = on(0.4);
        let stall = on(0.4);
        let flap = on(0.4);
        let slow = on(0.4);
        let seed_leaves = on(0.5);
        Faults {
            churn,
            cut_links: if cut { 0.15 } else { 0.0 },
            byte_links: if byte { 0.1 } else { 0.0 },
            split_links: if split { 0.3 } else { 0.0 },
            corrupt_peers: usize::from(corrupt) + usize::from(corrupt && rng.chance(0.3)),
            stalling_peers: usize::from(stall),
            flapping_peers: usize::from(flap) * 2,
            slow_peers: if slow { 0.25 } else { 0.0 },
            seed_leaves,
        }
    }
}

/// How the simulator's storage checks a piece the swarm completed before
/// it saves it. Both give the same verdict; the swarm under test sees no
/// difference (checking is the driver's job, not the swarm's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verify {
    /// The SHA-1 of the piece against the torrent's, as a client does.
    Sha1,
    /// The piece's bytes against the torrent's true bytes, which the
    /// simulator knows: the same verdict without hashing every piece at
    /// every peer (in a 100-peer run of a 62.5 MiB torrent, SHA-1 of
    /// 6.25 GB was a tenth of the time).
    Compare,
}

/// One simulation: the swarm, the torrent, the faults, the limits.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Decides everything: link speeds, latencies, fault timing, every
    /// random choice of every swarm.
    pub seed: u64,
    /// Honest leechers (flapping peers are counted among them).
    pub leechers: usize,
    /// Pieces in the torrent.
    pub pieces: u32,
    /// Bytes per piece (the last piece is shorter when `last_piece` is
    /// set).
    pub piece_length: u32,
    /// Bytes of the last piece (`None`: a full piece).
    pub last_piece: Option<u32>,
    /// The faults.
    pub faults: Faults,
    /// Honest leechers join over this long from the start.
    pub join_spread: Duration,
    /// A run fails when not every honest peer completed by then.
    pub time_limit: Duration,
    /// A run fails when no honest peer saved a piece for this long, plus
    /// the time the slowest honest uplink takes to send 8 pieces (two per
    /// leecher, if more, with flapping peers: they unchoke everyone),
    /// while some are incomplete (livelock).
    pub progress_bound: Duration,
    /// Honest peers' upload speed, bytes per second (download is four
    /// times this), before slow-link faults.
    pub upload_rate: u64,
    /// How completed pieces are checked before they are saved.
    pub verify: Verify,
    /// Keep a running hash of every event (the trace) to compare runs.
    pub trace: bool,
    /// Print every swarm event and order (except requests and cancels) to
    /// stderr: for replaying a failing seed.
    pub verbose: bool,
    /// Adjusts each peer's swarm configuration (the policy under test).
    pub tune: Option<Tune>,
}

impl SimConfig {
    /// A run of `seed` with its size and faults chosen by the seed: 4 to 20
    /// leechers, 8 to 40 pieces of 16 to 64 KiB, faults from
    /// [`Faults::from_seed`], pieces checked with SHA-1. Small enough for hundreds of seeds in a
    /// debug test run.
    pub fn from_seed(seed: u64) -> SimConfig {
        let mut rng = SimRng::new(seed ^ 0x0051_2e00);
        let pieces = rng.range(8, 40) as u32;
        let piece_length = 16_384 << rng.range(0, 2);
        let last = rng.range(1, u64::from(piece_length)) as u32;
        SimConfig {
            seed,
            leechers: rng.range(4, 20) as usize,
            pieces,
            piece_length,
            last_piece: Some(last),
            faults: Faults::from_seed(seed),
            join_spread: Duration::from_secs(rng.range(0, 20)),
            time_limit: Duration::from_secs(3600),
            progress_bound: Duration::from_secs(120),
            upload_rate: 256 * 1024,
            verify: Verify::Sha1,
            trace: false,
            verbose: false,
            tune: None,
        }
    }

    /// A clean run (no faults) of `leechers` leechers and one seed. Pieces
    /// are checked by [`Verify::Compare`] (the seeded runs of
    /// [`SimConfig::from_seed`] use [`Verify::Sha1`]).
    pub fn clean(seed: u64, leechers: usize, pieces: u32, piece_length: u32) -> SimConfig {
        SimConfig {
            seed,
            leechers,
            pieces,
            piece_length,
            last_piece: None,
            faults: Faults::none(),
            join_spread: Duration::from_secs(5),
            time_limit: Duration::from_secs(6 * 3600),
            progress_bound: Duration::from_secs(120),
            upload_rate: 1024 * 1024,
            verify: Verify::Compare,
            trace: false,
            verbose: false,
            tune: None,
        }
    }

    /// Bytes in the torrent.
    pub fn total_length(&self) -> u64 {
        let full = u64::from(self.pieces.saturating_sub(1)) * u64::from(self.piece_length);
        full + u64::from(self.last_piece.unwrap_or(self.piece_length))
    }
}
