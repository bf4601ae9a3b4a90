//! The simulator's own speed: 100 peers download a torrent of 1,000
//! pieces of 256 KiB (250 MiB) from one seed, uploading 256 KiB/s to
//! 1 MiB/s each, no faults; prints simulated time, wall time, the ratio
//! and events per second. Arguments change the runs, the piece size,
//! the upload rate and the piece count (a short run for profilers).
//!
//! ```text
//! cargo run --release -p rustico-sim --example speed -- [RUNS] [PIECE_KIB] [UPLOAD_KIB] [PIECES]
//! ```

use std::time::Instant;

use rustico_sim::{Sim, SimConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let arg = |i: usize, default: u64| {
        std::env::args()
            .nth(i)
            .and_then(|s| s.parse().ok())
            .unwrap_or(default)
    };
    // speed [RUNS] [PIECE_KIB] [UPLOAD_KIB_PER_S] [PIECES]
    let runs = arg(1, 3);
    let piece_kib = arg(2, 256) as u32;
    let upload_kib = arg(3, 512);
    let pieces = arg(4, 1000) as u32;
    println!("| run | peers | pieces | upload (x0.5-2) | simulated | wall | faster than real time | events | events/s |");
    println!("|---|---|---|---|---|---|---|---|---|");
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
    Ok(())
}
