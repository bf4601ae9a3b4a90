//! The simulator's own speed: 100 peers download a torrent of 1,000
//! pieces of 256 KiB (250 MiB) from one seed, no faults; prints
//! simulated time, wall time, the ratio and events per second, for
//! uploads of 32 KiB/s up to 512 KiB/s (each peer's upload is 0.5-2
//! times that). Arguments pick the runs per rate, the piece size, one
//! upload rate and the piece count (a short run for profilers).
//!
//! ```text
//! cargo run --release -p rustico-sim --example speed -- [RUNS] [PIECE_KIB] [UPLOAD_KIB] [PIECES]
//! ```

use std::time::Instant;

use rustico_sim::{Sim, SimConfig};

/// The upload rates (KiB/s) measured when none is given.
const RATES: [u64; 5] = [32, 64, 128, 256, 512];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let arg = |i: usize| std::env::args().nth(i).and_then(|s| s.parse::<u64>().ok());
    let runs = arg(1).unwrap_or(1);
    let piece_kib = arg(2).unwrap_or(256) as u32;
    let rates = arg(3).map_or(RATES.to_vec(), |rate| vec![rate]);
    let pieces = arg(4).unwrap_or(1000) as u32;
    println!("| seed | peers | pieces | upload (x0.5-2) | simulated | wall | faster than real time | events | events/s |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for upload_kib in rates {
        for seed in 1..=runs {
            let mut config = SimConfig::clean(seed, 100, pieces, piece_kib * 1024);
            config.upload_rate = upload_kib * 1024;
            let started = Instant::now();
            let report = Sim::new(config)?.run()?;
            let wall = started.elapsed().as_secs_f64();
            let sim = report.sim_time.as_secs_f64();
            println!(
                "| {seed} | 100 | {pieces} x {piece_kib} KiB | {upload_kib} KiB/s | {sim:.1} s | {wall:.2} s | {:.0}x | {} | {:.0} |",
                sim / wall,
                report.events,
                report.events as f64 / wall
            );
        }
    }
    Ok(())
}
