//! Piece-picking strategies compared on the real swarm code: rarest
//! first (the default, with end-game and fastest-peer-first) against
//! random, sequential, end-game off and fastest-peer-first off, in swarms
//! of 10, 100 and 1,000 leechers and one seed, no faults.
//!
//! Measured per run: the distribution of download times, the seed's
//! upload (in copies of the torrent), and piece availability over time.
//! Writes `sim/strategies.svg` and the table between the
//! `strategies:begin`/`strategies:end` markers of `sim/README.md`.
//!
//! ```text
//! cargo run --release -p rustico-sim --example strategies
//! ```

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use rustico_sim::{PickMode, Report, Sim, SimConfig, Tune};

#[derive(Clone, Copy)]
struct Strategy {
    name: &'static str,
    mode: PickMode,
    end_game: bool,
    fastest_first: bool,
}

const STRATEGIES: [Strategy; 5] = [
    Strategy {
        name: "rarest first (default)",
        mode: PickMode::RarestFirst,
        end_game: true,
        fastest_first: true,
    },
    Strategy {
        name: "random",
        mode: PickMode::Random,
        end_game: true,
        fastest_first: true,
    },
    Strategy {
        name: "sequential",
        mode: PickMode::Sequential,
        end_game: true,
        fastest_first: true,
    },
    Strategy {
        name: "rarest, end-game off",
        mode: PickMode::RarestFirst,
        end_game: false,
        fastest_first: true,
    },
    Strategy {
        name: "rarest, fastest-peer-first off",
        mode: PickMode::RarestFirst,
        end_game: true,
        fastest_first: false,
    },
];

/// (leechers, pieces, seeds to average)
const SIZES: [(usize, u32, u64); 3] = [(10, 200, 3), (100, 100, 2), (1000, 20, 1)];
const PIECE: u32 = 64 * 1024;

struct Row {
    strategy: usize,
    leechers: usize,
    pieces: u32,
    times: Vec<f64>,
    seed_copies: f64,
    sim_time: f64,
    /// (seconds, copies of the rarest piece) of the first seed's run.
    availability: Vec<(f64, f64)>,
}

fn run(
    s: Strategy,
    leechers: usize,
    pieces: u32,
    seed: u64,
) -> Result<Report, Box<dyn std::error::Error>> {
    let mut config = SimConfig::clean(seed, leechers, pieces, PIECE);
    config.upload_rate = 256 * 1024;
    config.join_spread = Duration::from_secs(10);
    config.tune = Some(Tune::new(move |_, c| {
        c.picker.mode = s.mode;
        c.picker.end_game_max_duplicates = u8::from(s.end_game);
        c.picker.fastest_peer_first = s.fastest_first;
    }));
    Ok(Sim::new(config)?.run()?)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();
    let mut rows = Vec::new();
    for &(leechers, pieces, seeds) in &SIZES {
        for (i, s) in STRATEGIES.iter().enumerate() {
            let mut row = Row {
                strategy: i,
                leechers,
                pieces,
                times: Vec::new(),
                seed_copies: 0.0,
                sim_time: 0.0,
                availability: Vec::new(),
            };
            for seed in 1..=seeds {
                let report = run(*s, leechers, pieces, seed)?;
                row.times
                    .extend(report.download_times.iter().map(Duration::as_secs_f64));
                let total = f64::from(pieces) * f64::from(PIECE);
                row.seed_copies += report.seed_uploaded as f64 / total / seeds as f64;
                row.sim_time += report.sim_time.as_secs_f64() / seeds as f64;
                if seed == 1 {
                    row.availability = report
                        .availability
                        .iter()
                        .map(|a| (a.at.as_secs_f64(), f64::from(a.min)))
                        .collect();
                }
            }
            row.times.sort_by(f64::total_cmp);
            eprintln!(
                "{leechers} leechers, {}: median {:.1} s ({:.0} s elapsed)",
                s.name,
                percentile(&row.times, 0.5),
                started.elapsed().as_secs_f64()
            );
            rows.push(row);
        }
    }
    let table = table(&rows);
    println!("{table}");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::write(dir.join("strategies.svg"), svg(&rows))?;
    let readme = dir.join("README.md");
    let text = std::fs::read_to_string(&readme)?;
    let (begin, end) = ("<!-- strategies:begin -->", "<!-- strategies:end -->");
    if let (Some(a), Some(b)) = (text.find(begin), text.find(end)) {
        let updated = format!("{}{begin}\n{table}{}", &text[..a], &text[b..]);
        std::fs::write(&readme, updated)?;
    }
    eprintln!("done in {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}

fn table(rows: &[Row]) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "| leechers | pieces | strategy | download time median | p90 | max | seed upload (copies) | swarm done at |"
    );
    let _ = writeln!(t, "|---|---|---|---|---|---|---|---|");
    for r in rows {
        let _ = writeln!(
            t,
            "| {} | {} x 64 KiB | {} | {:.1} s | {:.1} s | {:.1} s | {:.2} | {:.1} s |",
            r.leechers,
            r.pieces,
            STRATEGIES[r.strategy].name,
            percentile(&r.times, 0.5),
            percentile(&r.times, 0.9),
            percentile(&r.times, 1.0),
            r.seed_copies,
            r.sim_time
        );
    }
    t
}

const COLOURS: [&str; 5] = ["#1b6ca8", "#d1495b", "#edae49", "#00798c", "#6a4c93"];

/// Two panels for the 100-leecher swarm: the share of leechers done over
/// time (the distribution of download times), and copies of the rarest
/// piece over time.
fn svg(rows: &[Row]) -> String {
    let (w, h, pad) = (440.0, 300.0, 45.0);
    let hundred: Vec<&Row> = rows.iter().filter(|r| r.leechers == 100).collect();
    let t_max = hundred
        .iter()
        .flat_map(|r| {
            r.times
                .last()
                .copied()
                .into_iter()
                .chain(r.availability.last().map(|a| a.0))
        })
        .fold(1.0f64, f64::max);
    let a_max = hundred
        .iter()
        .flat_map(|r| r.availability.iter().map(|a| a.1))
        .fold(1.0f64, f64::max);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" font-family="sans-serif" font-size="11">"#,
        2.0 * w,
        h + 90.0
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    for (panel, title, y_label) in [
        (0.0, "100 leechers: share done", "done"),
        (w, "100 leechers: copies of the rarest piece", "copies"),
    ] {
        let (x0, y0, pw, ph) = (panel + pad, 25.0, w - 1.5 * pad, h - pad - 25.0);
        let _ = writeln!(
            s,
            r#"<text x="{}" y="15" font-size="13">{title}</text>"#,
            panel + pad
        );
        let _ = writeln!(
            s,
            r#"<rect x="{x0}" y="{y0}" width="{pw}" height="{ph}" fill="none" stroke="grey"/>"#
        );
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}">simulated time (s), 0 to {t_max:.0}</text>"#,
            x0 + pw / 2.0 - 70.0,
            y0 + ph + 28.0
        );
        let top = if panel == 0.0 {
            "100%".to_string()
        } else {
            format!("{a_max:.0}")
        };
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}">{top}</text>"#,
            panel + 5.0,
            y0 + 10.0
        );
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}">{y_label}</text>"#,
            panel + 5.0,
            y0 + ph / 2.0
        );
        let _ = writeln!(s, r#"<text x="{}" y="{}">0</text>"#, panel + 30.0, y0 + ph);
        for r in &hundred {
            let points: Vec<(f64, f64)> = if panel == 0.0 {
                let n = r.times.len().max(1) as f64;
                let mut p = vec![(0.0, 0.0)];
                for (i, t) in r.times.iter().enumerate() {
                    p.push((*t, i as f64 / n));
                    p.push((*t, (i + 1) as f64 / n));
                }
                p
            } else {
                r.availability
                    .iter()
                    .map(|&(t, a)| (t, a / a_max))
                    .collect()
            };
            let path: Vec<String> = points
                .iter()
                .map(|(t, v)| format!("{:.1},{:.1}", x0 + t / t_max * pw, y0 + ph - v * ph))
                .collect();
            let _ = writeln!(
                s,
                r#"<polyline fill="none" stroke-width="1.5" stroke="{}" points="{}"/>"#,
                COLOURS[r.strategy % COLOURS.len()],
                path.join(" ")
            );
        }
    }
    for (i, st) in STRATEGIES.iter().enumerate() {
        let (x, y) = (
            pad + (i % 3) as f64 * 280.0,
            h + 30.0 + (i / 3) as f64 * 20.0,
        );
        let _ = writeln!(
            s,
            r#"<rect x="{x}" y="{}" width="14" height="4" fill="{}"/><text x="{}" y="{}">{}</text>"#,
            y - 4.0,
            COLOURS[i],
            x + 20.0,
            y,
            st.name
        );
    }
    s.push_str("</svg>\n");
    s
}
