//! Many seeds, each a whole swarm with faults chosen by the seed, every
//! invariant checked; a failing seed prints the command that replays it.

use std::time::Instant;

use rustico_sim::{Report, Sim, SimConfig, SimError, Verify};

/// Seeds run by `many_seeds` (override with `SIM_SEEDS=N`).
const SEEDS: u64 = 200;

fn run(seed: u64) -> Result<Report, SimError> {
    Sim::new(SimConfig::from_seed(seed))?.run()
}

fn replay_command(seed: u64) -> String {
    format!("SIM_SEED={seed} cargo test -p rustico-sim --test seeds -- --exact replay --nocapture")
}

#[test]
fn many_seeds() {
    let count = std::env::var("SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(SEEDS);
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(4) as u64;
    let started = Instant::now();
    let results: Vec<(u64, Result<Report, SimError>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    (0..count)
                        .filter(|s| s % threads == t)
                        .map(|s| (s, run(s)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let mut failures = Vec::new();
    let mut events = 0;
    // Every fault must have happened in some run, or the seeds test
    // nothing about it.
    let mut seen = [0u64; 8];
    for (seed, result) in &results {
        match result {
            Ok(r) => {
                events += r.events;
                for (slot, n) in seen.iter_mut().zip([
                    r.cuts,
                    r.byte_links,
                    r.bans,
                    r.hash_failures,
                    r.stalls,
                    r.flaps,
                    r.leaves,
                    u64::from(r.seed_left),
                ]) {
                    *slot += n;
                }
            }
            Err(e) => failures.push(format!("{e}\n  replay: {}", replay_command(*seed))),
        }
    }
    println!("cuts, byte links, bans, hash failures, stalls, flaps, leaves, seed left: {seen:?}");
    println!(
        "{} seeds, {} events in {:.1} s",
        results.len(),
        events,
        started.elapsed().as_secs_f64()
    );
    assert!(
        failures.is_empty(),
        "{} seeds failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(results.len() as u64, count);
    if count >= 100 {
        assert!(
            seen.iter().all(|&n| n > 0),
            "a fault never happened: {seen:?}"
        );
    }
}

#[test]
fn a_seed_replays_exactly() {
    for seed in [3, 20, 138] {
        let once = |seed| {
            let mut config = SimConfig::from_seed(seed);
            config.trace = true;
            Sim::new(config).and_then(Sim::run).unwrap()
        };
        let (a, b) = (once(seed), once(seed));
        assert_ne!(a.trace, 0);
        assert_eq!(a, b, "seed {seed} ran differently twice");
    }
    let mut other = SimConfig::from_seed(3);
    other.trace = true;
    other.seed = 5;
    let c = Sim::new(other).and_then(Sim::run).unwrap();
    let mut config = SimConfig::from_seed(3);
    config.trace = true;
    let a = Sim::new(config).and_then(Sim::run).unwrap();
    assert_ne!(a.trace, c.trace, "the seed decides nothing");
}

/// Checking pieces by comparing bytes (what `SimConfig::clean` and the
/// speed run use) gives the same verdicts as SHA-1: with corrupt peers
/// spoiling pieces, both runs are event for event the same.
#[test]
fn comparing_bytes_judges_pieces_as_sha1_does() {
    let mut runs = 0;
    for seed in (0..60).filter(|&s| SimConfig::from_seed(s).faults.corrupt_peers > 0) {
        let once = |verify| {
            let mut config = SimConfig::from_seed(seed);
            assert_eq!(config.verify, Verify::Sha1, "seeded runs hash");
            config.verify = verify;
            config.trace = true;
            Sim::new(config).and_then(Sim::run).unwrap()
        };
        let (sha1, compare) = (once(Verify::Sha1), once(Verify::Compare));
        assert_eq!(sha1, compare, "seed {seed}: the verdicts differ");
        if sha1.hash_failures > 0 {
            runs += 1;
        }
        if runs == 3 {
            return;
        }
    }
    panic!("fewer than 3 seeds with failed pieces: the test shows nothing");
}

/// Replays one seed: `SIM_SEED=1234 cargo test -p rustico-sim --test seeds -- --exact replay`.
#[test]
fn replay() {
    let Some(seed) = std::env::var("SIM_SEED").ok().and_then(|s| s.parse().ok()) else {
        return;
    };
    let mut config = SimConfig::from_seed(seed);
    if let Some(shape) = std::env::var("SIM_SHAPE").ok().and_then(|s| s.parse().ok()) {
        // The size and faults of another seed, with this seed's choices.
        config = SimConfig {
            seed,
            ..SimConfig::from_seed(shape)
        };
    }
    config.verbose = std::env::var_os("SIM_VERBOSE").is_some();
    if let Some(secs) = std::env::var("SIM_PROGRESS_BOUND")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        config.progress_bound = std::time::Duration::from_secs(secs);
    }
    println!("seed {seed}: {config:#?}");
    match Sim::new(config).and_then(Sim::run) {
        Ok(report) => println!("{report:#?}"),
        Err(e) => panic!("{e}\n  replay: {}", replay_command(seed)),
    }
}

/// Every seed that found a bug, kept so the bug stays fixed (see the list
/// in the README).
const REGRESSIONS: &[(u64, &str)] = &[
    (
        0,
        "banned peer dialled us again from a new port and got requests",
    ),
    (
        4,
        "banned peer dialled us again from a new port and got requests",
    ),
    (
        5,
        "banned peer dialled us again from a new port and got requests",
    ),
    (
        7,
        "banned peer dialled us again from a new port and got requests",
    ),
    (
        8,
        "banned peer dialled us again from a new port and got requests",
    ),
    (
        10,
        "banned peer dialled us again from a new port and got requests",
    ),
    (
        12,
        "banned peer dialled us again from a new port and got requests",
    ),
    (
        15,
        "banned peer dialled us again from a new port and got requests",
    ),
    (
        20,
        "smart ban kept only a piece's first failed copy; a later liar escaped",
    ),
    (
        1,
        "simulator: one FIFO per uplink starved handshakes behind queued blocks",
    ),
    (
        3,
        "simulator: one FIFO per uplink starved handshakes behind queued blocks",
    ),
    (
        19,
        "simulator: one FIFO per uplink starved handshakes behind queued blocks",
    ),
    (
        138,
        "simulator: every queued block served at once; a slow peer's requests waited behind them",
    ),
    (
        7065,
        "a stalled block asked for again was requested again: 251 copies queued at a 2.3 KB/s peer",
    ),
    (
        18721,
        "a 2.4 KB/s seed judged its unchoked peers idle in 3 s, before its unchoke reached them",
    ),
    (
        3396,
        "simulator: livelock bound too short for a 2.3 KB/s flapper serving every leecher at once",
    ),
    (
        12309,
        "smart ban kept a piece's first 4 failed copies; a liar after them was never named",
    ),
    (
        438,
        "smart ban kept a piece's latest 4 failed copies; the first liar was never named",
    ),
    (
        7880,
        "smart ban kept a piece's latest 4 failed copies; the first liar was never named",
    ),
];

#[test]
fn regressions() {
    for &(seed, bug) in REGRESSIONS {
        if let Err(e) = run(seed) {
            panic!("{bug}: {e}\n  replay: {}", replay_command(seed));
        }
    }
}

/// Seed 4 with the size and faults of seed 3: the only complete peer
/// uploads 2.3 KB/s, a block takes longer than the stall time-out, and
/// every late block was thrown away (peer-wire now reports late blocks).
#[test]
fn regression_slow_only_holder() {
    let config = SimConfig {
        seed: 4,
        ..SimConfig::from_seed(3)
    };
    if let Err(e) = Sim::new(config).and_then(Sim::run) {
        panic!("{e}\n  replay: SIM_SHAPE=3 {}", replay_command(4));
    }
}

#[test]
fn a_swarm_without_leechers_ends_at_once() {
    let report = Sim::new(SimConfig::clean(1, 0, 4, 16_384))
        .and_then(Sim::run)
        .unwrap();
    assert!(report.download_times.is_empty());
    assert_eq!(report.events, 0);
}

/// The checker is not vacuous: a swarm whose smart ban is switched off
/// (no suspect records, no ban by count) lets a corrupt peer go, and the
/// run fails naming it.
#[test]
fn a_swarm_that_never_bans_fails_the_run() {
    let mut config = SimConfig::from_seed(20);
    assert!(config.faults.corrupt_peers > 0);
    config.tune = Some(rustico_sim::Tune::new(|_, swarm| {
        swarm.max_suspect_pieces = 0;
        swarm.sole_failures_to_ban = u32::MAX;
        swarm.shared_failures_to_ban = u32::MAX;
    }));
    let err = Sim::new(config).and_then(Sim::run).unwrap_err();
    assert!(
        matches!(err.invariant, rustico_sim::Invariant::NotBanned { .. }),
        "{err}"
    );
    assert_eq!(err.seed, 20);
}

/// Found by a clean run of 100 leechers (1,000 pieces of 16 KiB at
/// 32 KiB/s, seed 1): 192,613 connections in 1,038 s, most of them seeds
/// redialling seeds after each backoff only to hang up again. The swarm
/// now remembers seeds and does not dial them while it seeds; the
/// simulator's normal close now delivers what was already sent (the
/// seed's bitfield), as TCP does, so the dialler learns it met a seed.
#[test]
fn seeds_do_not_redial_seeds() {
    let mut config = SimConfig::clean(1, 20, 50, 16_384);
    config.upload_rate = 32 * 1024;
    config.join_spread = std::time::Duration::from_secs(120);
    let report = Sim::new(config).and_then(Sim::run).unwrap();
    assert!(
        report.max_seed_pair_connections <= 2,
        "two seeds connected {} times",
        report.max_seed_pair_connections
    );
}
