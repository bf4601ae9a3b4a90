//! Many seeds, each a whole swarm with faults chosen by the seed, every
//! invariant checked; a failing seed prints the command that replays it.

use std::time::Instant;

use rustico_sim::{Report, Sim, SimConfig, SimError};

/// Seeds run by `many_seeds` (override with `SIM_SEEDS=N`).
const SEEDS: u64 = 200;

fn run(seed: u64) -> Result<Report, SimError> {
    Sim::new(SimConfig::from_seed(seed))?.run()
}

fn replay_command(seed: u64) -> String {
    format!("SIM_SEED={seed} cargo test -p rustico-sim --test seeds replay -- --nocapture")
}

#[test]
fn many_seeds() {
    let count = std::env::var("SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(SEEDS);
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get()).min(4) as u64;
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
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let mut failures = Vec::new();
    let mut events = 0;
    for (seed, result) in &results {
        match result {
            Ok(report) => events += report.events,
            Err(e) => failures.push(format!("{e}\n  replay: {}", replay_command(*seed))),
        }
    }
    println!(
        "{} seeds, {} events in {:.1} s",
        results.len(),
        events,
        started.elapsed().as_secs_f64()
    );
    assert!(failures.is_empty(), "{} seeds failed:\n{}", failures.len(), failures.join("\n"));
    assert_eq!(results.len() as u64, count);
}

/// Replays one seed: `SIM_SEED=1234 cargo test -p rustico-sim --test seeds replay`.
#[test]
fn replay() {
    let Some(seed) = std::env::var("SIM_SEED").ok().and_then(|s| s.parse().ok()) else {
        return;
    };
    let mut config = SimConfig::from_seed(seed);
    config.verbose = std::env::var_os("SIM_VERBOSE").is_some();
    println!("seed {seed}: {config:#?}");
    match Sim::new(config).and_then(Sim::run) {
        Ok(report) => println!("{report:#?}"),
        Err(e) => panic!("{e}\n  replay: {}", replay_command(seed)),
    }
}

/// Every seed that found a bug, kept so the bug stays fixed (see the list
/// in the README).
const REGRESSIONS: &[(u64, &str)] = &[
    (0, "banned peer dialled us again from a new port and got requests"),
    (4, "banned peer dialled us again from a new port and got requests"),
    (5, "banned peer dialled us again from a new port and got requests"),
    (7, "banned peer dialled us again from a new port and got requests"),
    (8, "banned peer dialled us again from a new port and got requests"),
    (10, "banned peer dialled us again from a new port and got requests"),
    (12, "banned peer dialled us again from a new port and got requests"),
    (15, "banned peer dialled us again from a new port and got requests"),
    (20, "smart ban kept only a piece's first failed copy; a later liar escaped"),
    (1, "simulator: one FIFO per uplink starved handshakes behind queued blocks"),
    (3, "simulator: one FIFO per uplink starved handshakes behind queued blocks"),
    (19, "simulator: one FIFO per uplink starved handshakes behind queued blocks"),
];

#[test]
fn regressions() {
    for &(seed, bug) in REGRESSIONS {
        if let Err(e) = run(seed) {
            panic!("{bug}: {e}\n  replay: {}", replay_command(seed));
        }
    }
}
