//! A deterministic swarm simulation that drives the real picker and compares
//! strategies on the same swarms.
//!
//! One initial seed and leechers arriving every few seconds, each with an
//! upload capacity drawn from three classes. Every node uploads one block at
//! a time to the peers it unchokes (3 by tit-for-tat on what they sent in
//! the last 10 s, plus 1 optimistic unchoke rotated every 30 s; seeds
//! unchoke at random). Each leecher owns a `PiecePicker` fed with the
//! others' `have`s, the rates it measures, chokes and arrivals, and keeps 4
//! requests outstanding per unchoking peer. A leecher leaves 10 s after it
//! completes; the initial seed stays.
//!
//! Run: `cargo run --release -p rustico-piece-picker --example swarm`. It
//! prints a markdown table and writes `swarm.md` and `swarm.svg` next to
//! the crate's `Cargo.toml`.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::fmt::Write as _;
use std::path::Path;

use rustico_piece_picker::{BlockRequest, PeerKey, PickMode, PickerConfig, PiecePicker};

const PIECES: u32 = 128;
const BLOCK: u32 = 16 * 1024;
const BLOCKS_PER_PIECE: u32 = 16;
const LEECHERS: usize = 30;
const ARRIVAL_GAP_US: u64 = 3_000_000;
const SEED_UPLOAD: u64 = 32; // blocks per second
const UPLOAD_CLASSES: [u64; 3] = [4, 16, 48];
const UNCHOKE_SLOTS: usize = 4;
const PIPELINE: usize = 4;
const RECHOKE_US: u64 = 10_000_000;
const LINGER_US: u64 = 10_000_000;
const REPEATS: u64 = 5;
const SECOND: u64 = 1_000_000;

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

#[derive(Clone, Copy, Debug)]
struct Strategy {
    mode: PickMode,
    fastest: bool,
    end_game: bool,
}

impl Strategy {
    fn name(&self) -> String {
        let mode = match self.mode {
            PickMode::RarestFirst => "rarest",
            PickMode::Random => "random",
            PickMode::Sequential => "sequential",
        };
        format!(
            "{mode}{}{}",
            if self.fastest { " +fast" } else { "" },
            if self.end_game { " +endgame" } else { "" }
        )
    }
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Event {
    Arrive(usize),
    /// uploader, downloader, block
    BlockDone(usize, usize, BlockRequest),
    Rechoke(usize),
    Leave(usize),
}

struct Node {
    present: bool,
    arrived: u64,
    done: Option<u64>,
    upload: u64,
    /// The leecher's picker (the initial seed has none).
    picker: Option<PiecePicker>,
    /// `keys[other]`: the other node's handle in this node's picker.
    keys: Vec<Option<PeerKey>>,
    /// Requests queued at this node, per downloader.
    queues: Vec<VecDeque<BlockRequest>>,
    busy: bool,
    rr: usize,
    unchoked: Vec<usize>,
    optimistic: Option<usize>,
    rechokes: u64,
    /// Blocks received from each node since the last rechoke.
    received_from: Vec<u64>,
    /// Requests this node has outstanding at each node.
    outstanding: Vec<usize>,
}

struct Sim {
    strategy: Strategy,
    rng: Rng,
    nodes: Vec<Node>,
    events: BinaryHeap<Reverse<(u64, u64, Event)>>,
    seq: u64,
    now: u64,
    /// How many present leechers have each piece.
    copies: Vec<u32>,
    first_full_copy: Option<u64>,
    duplicates: u64,
    out: Vec<BlockRequest>,
    cancel: Vec<PeerKey>,
}

struct RunResult {
    completions: Vec<f64>,
    first_full_copy: f64,
    duplicates: u64,
}

impl Sim {
    fn new(strategy: Strategy, swarm_seed: u64) -> Self {
        let mut rng = Rng(swarm_seed);
        let total = LEECHERS + 1;
        let nodes = (0..total)
            .map(|i| Node {
                present: false,
                arrived: 0,
                done: None,
                upload: if i == 0 {
                    SEED_UPLOAD
                } else {
                    UPLOAD_CLASSES[rng.below(3)]
                },
                picker: None,
                keys: vec![None; total],
                queues: vec![VecDeque::new(); total],
                busy: false,
                rr: 0,
                unchoked: Vec::new(),
                optimistic: None,
                rechokes: 0,
                received_from: vec![0; total],
                outstanding: vec![0; total],
            })
            .collect();
        let mut sim = Self {
            strategy,
            rng,
            nodes,
            events: BinaryHeap::new(),
            seq: 0,
            now: 0,
            copies: vec![0; PIECES as usize],
            first_full_copy: None,
            duplicates: 0,
            out: Vec::new(),
            cancel: Vec::new(),
        };
        for i in 0..total {
            sim.schedule(i as u64 * ARRIVAL_GAP_US, Event::Arrive(i));
        }
        sim
    }

    fn schedule(&mut self, at: u64, event: Event) {
        self.seq += 1;
        self.events.push(Reverse((at, self.seq, event)));
    }

    fn is_seed(&self, i: usize) -> bool {
        i == 0 || self.nodes[i].done.is_some()
    }

    fn new_picker(&self, seed: u64) -> PiecePicker {
        let mut config = PickerConfig::new(
            u64::from(PIECES * BLOCKS_PER_PIECE * BLOCK),
            BLOCK * BLOCKS_PER_PIECE,
        );
        config.seed = seed;
        config.mode = self.strategy.mode;
        config.fastest_peer_first = self.strategy.fastest;
        config.whole_piece_seconds = 2;
        config.end_game_max_duplicates = if self.strategy.end_game { 1 } else { 0 };
        match PiecePicker::new(config) {
            Ok(p) => p,
            Err(e) => panic!("simulation config: {e}"),
        }
    }

    fn run(mut self) -> RunResult {
        while let Some(Reverse((at, _, event))) = self.events.pop() {
            self.now = at;
            match event {
                Event::Arrive(i) => self.arrive(i),
                Event::BlockDone(u, d, block) => self.block_done(u, d, block),
                Event::Rechoke(i) => self.rechoke(i),
                Event::Leave(i) => self.leave(i),
            }
            if (1..self.nodes.len()).all(|i| self.nodes[i].done.is_some()) {
                break;
            }
        }
        let completions = self.nodes[1..]
            .iter()
            .map(|n| {
                n.done
                    .map_or(f64::NAN, |d| (d - n.arrived) as f64 / SECOND as f64)
            })
            .collect();
        RunResult {
            completions,
            first_full_copy: self
                .first_full_copy
                .map_or(f64::NAN, |t| t as f64 / SECOND as f64),
            duplicates: self.duplicates,
        }
    }

    fn arrive(&mut self, i: usize) {
        self.nodes[i].present = true;
        self.nodes[i].arrived = self.now;
        if i > 0 {
            let picker_seed = self.rng.next();
            let mut picker = self.new_picker(picker_seed);
            for j in 0..self.nodes.len() {
                if j == i || !self.nodes[j].present {
                    continue;
                }
                let key = picker.add_peer();
                if self.is_seed(j) {
                    ok(picker.peer_has_all(key));
                } else if let Some(other) = &self.nodes[j].picker {
                    for p in (0..PIECES).filter(|&p| other.have(p)) {
                        ok(picker.peer_has(key, p));
                    }
                }
                self.nodes[i].keys[j] = Some(key);
            }
            self.nodes[i].picker = Some(picker);
            // Everyone else learns about the newcomer (it has nothing yet).
            for j in 1..self.nodes.len() {
                if j != i && self.nodes[j].present && self.nodes[j].done.is_none() {
                    if let Some(picker) = self.nodes[j].picker.as_mut() {
                        self.nodes[j].keys[i] = Some(picker.add_peer());
                    }
                }
            }
        }
        let first = self.now + 1 + self.rng.next() % RECHOKE_US.min(2 * SECOND);
        self.schedule(first, Event::Rechoke(i));
    }

    /// Whether downloader `d` wants something uploader `u` has.
    fn interested(&self, d: usize, u: usize) -> bool {
        let node = &self.nodes[d];
        match (&node.picker, node.keys[u]) {
            (Some(p), Some(k)) if node.done.is_none() => p.interesting(k),
            _ => false,
        }
    }

    fn rechoke(&mut self, u: usize) {
        if !self.nodes[u].present {
            return;
        }
        let now = self.now;
        self.schedule(now + RECHOKE_US, Event::Rechoke(u));
        // Report measured rates to the picker.
        let node = &mut self.nodes[u];
        if let Some(picker) = node.picker.as_mut() {
            for (key, &blocks) in node.keys.iter().zip(&node.received_from) {
                if let Some(k) = *key {
                    let rate = blocks * u64::from(BLOCK) * SECOND / RECHOKE_US;
                    let _ = picker.set_peer_rate(k, rate);
                }
            }
        }
        let candidates: Vec<usize> = (0..self.nodes.len())
            .filter(|&d| d != u && self.nodes[d].present && self.interested(d, u))
            .collect();
        let mut chosen: Vec<usize> = Vec::new();
        if self.is_seed(u) {
            let mut pool = candidates.clone();
            while chosen.len() < UNCHOKE_SLOTS && !pool.is_empty() {
                let k = self.rng.below(pool.len());
                chosen.push(pool.swap_remove(k));
            }
        } else {
            let mut ranked = candidates.clone();
            ranked.sort_by_key(|&d| (Reverse(self.nodes[u].received_from[d]), d));
            chosen.extend(ranked.iter().take(UNCHOKE_SLOTS - 1));
            let rotate = self.nodes[u].rechokes % 3 == 0;
            let keep = self.nodes[u]
                .optimistic
                .filter(|o| candidates.contains(o) && !chosen.contains(o));
            let optimistic = if rotate || keep.is_none() {
                let pool: Vec<usize> = candidates
                    .iter()
                    .copied()
                    .filter(|d| !chosen.contains(d))
                    .collect();
                (!pool.is_empty()).then(|| pool[self.rng.below(pool.len())])
            } else {
                keep
            };
            self.nodes[u].optimistic = optimistic;
            chosen.extend(optimistic);
        }
        self.nodes[u].rechokes += 1;
        self.nodes[u].received_from.iter_mut().for_each(|x| *x = 0);
        let previous = std::mem::replace(&mut self.nodes[u].unchoked, chosen.clone());
        for d in previous.into_iter().filter(|d| !chosen.contains(d)) {
            self.choke(u, d);
        }
        for d in chosen {
            self.fill(d, u);
        }
        self.serve(u);
    }

    /// `u` chokes `d`: `d`'s queued requests at `u` are dropped.
    fn choke(&mut self, u: usize, d: usize) {
        self.nodes[u].queues[d].clear();
        self.nodes[d].outstanding[u] = 0;
        let node = &mut self.nodes[d];
        if let (Some(picker), Some(key)) = (node.picker.as_mut(), node.keys[u]) {
            let _ = picker.peer_choked(key);
        }
    }

    /// Downloader `d` tops up its requests at uploader `u`.
    fn fill(&mut self, d: usize, u: usize) {
        if !self.nodes[u].unchoked.contains(&d) || self.nodes[d].done.is_some() {
            return;
        }
        let room = PIPELINE.saturating_sub(self.nodes[d].outstanding[u]);
        let Some(key) = self.nodes[d].keys[u] else {
            return;
        };
        let Some(picker) = self.nodes[d].picker.as_mut() else {
            return;
        };
        self.out.clear();
        let _ = picker.pick(key, room, &mut self.out);
        self.nodes[d].outstanding[u] += self.out.len();
        let was_idle = self.nodes[u].queues.iter().all(|q| q.is_empty());
        self.nodes[u].queues[d].extend(self.out.drain(..));
        if was_idle {
            self.serve(u);
        }
    }

    /// If `u` is idle, it starts sending the next queued block (round robin
    /// over downloaders).
    fn serve(&mut self, u: usize) {
        if self.nodes[u].busy || !self.nodes[u].present {
            return;
        }
        let n = self.nodes.len();
        for step in 1..=n {
            let d = (self.nodes[u].rr + step) % n;
            if let Some(block) = self.nodes[u].queues[d].pop_front() {
                self.nodes[u].rr = d;
                self.nodes[u].busy = true;
                let at = self.now + SECOND / self.nodes[u].upload;
                self.schedule(at, Event::BlockDone(u, d, block));
                return;
            }
        }
    }

    fn block_done(&mut self, u: usize, d: usize, block: BlockRequest) {
        if !self.nodes[u].present {
            return;
        }
        self.nodes[u].busy = false;
        if self.nodes[d].present && self.nodes[d].done.is_none() {
            self.deliver(u, d, block);
        }
        self.serve(u);
    }

    fn deliver(&mut self, u: usize, d: usize, block: BlockRequest) {
        self.nodes[d].outstanding[u] = self.nodes[d].outstanding[u].saturating_sub(1);
        self.nodes[d].received_from[u] += 1;
        let Some(key) = self.nodes[d].keys[u] else {
            return;
        };
        let Some(picker) = self.nodes[d].picker.as_mut() else {
            return;
        };
        self.cancel.clear();
        let Ok(outcome) = picker.block_received(key, block, &mut self.cancel) else {
            return;
        };
        if !outcome.accepted {
            self.duplicates += 1;
        }
        let mut verified = false;
        if outcome.piece_complete {
            verified = picker.piece_verified(block.piece).is_ok();
        }
        let complete = picker.is_complete();
        // Cancels: drop the duplicate request from the other uploaders' queues.
        let cancel = std::mem::take(&mut self.cancel);
        for k in &cancel {
            if let Some(other) = self.nodes[d].keys.iter().position(|x| *x == Some(*k)) {
                let q = &mut self.nodes[other].queues[d];
                if let Some(pos) = q.iter().position(|b| *b == block) {
                    q.remove(pos);
                    self.nodes[d].outstanding[other] =
                        self.nodes[d].outstanding[other].saturating_sub(1);
                }
            }
        }
        self.cancel = cancel;
        if verified {
            self.announce(d, block.piece);
        }
        if complete {
            self.nodes[d].done = Some(self.now);
            for u2 in 0..self.nodes.len() {
                self.nodes[u2].queues[d].clear();
                self.nodes[d].outstanding[u2] = 0;
            }
            self.schedule(self.now + LINGER_US, Event::Leave(d));
            return;
        }
        let uploaders: Vec<usize> = (0..self.nodes.len())
            .filter(|&x| self.nodes[x].unchoked.contains(&d))
            .collect();
        for x in uploaders {
            self.fill(d, x);
        }
    }

    /// Leecher `d` verified `piece`: every other leecher hears the `have`.
    fn announce(&mut self, d: usize, piece: u32) {
        self.copies[piece as usize] += 1;
        if self.first_full_copy.is_none() && self.copies.iter().all(|&c| c > 0) {
            self.first_full_copy = Some(self.now);
        }
        for j in 1..self.nodes.len() {
            if j == d || !self.nodes[j].present || self.nodes[j].done.is_some() {
                continue;
            }
            let node = &mut self.nodes[j];
            if let (Some(picker), Some(key)) = (node.picker.as_mut(), node.keys[d]) {
                let _ = picker.peer_has(key, piece);
            }
            // Something new to ask for from an uploader that already unchoked j.
            if self.nodes[d].unchoked.contains(&j) {
                self.fill(j, d);
            }
        }
    }

    fn leave(&mut self, i: usize) {
        self.nodes[i].present = false;
        if let Some(picker) = &self.nodes[i].picker {
            for p in (0..PIECES).filter(|&p| picker.have(p)) {
                self.copies[p as usize] -= 1;
            }
        }
        for j in 0..self.nodes.len() {
            self.nodes[i].queues[j].clear();
            self.nodes[j].queues[i].clear();
            self.nodes[j].unchoked.retain(|&x| x != i);
            let node = &mut self.nodes[j];
            if let (Some(picker), Some(key)) = (node.picker.as_mut(), node.keys[i].take()) {
                let _ = picker.remove_peer(key);
                self.nodes[j].outstanding[i] = 0;
            }
        }
    }
}

fn ok(r: Result<(), rustico_piece_picker::PickerError>) {
    if let Err(e) = r {
        panic!("simulation fed the picker bad input: {e}");
    }
}

struct Row {
    name: String,
    mean: f64,
    p95: f64,
    first_copy: f64,
    duplicates: f64,
}

fn main() -> std::io::Result<()> {
    let mut rows = Vec::new();
    for mode in [
        PickMode::RarestFirst,
        PickMode::Random,
        PickMode::Sequential,
    ] {
        for fastest in [true, false] {
            for end_game in [true, false] {
                let strategy = Strategy {
                    mode,
                    fastest,
                    end_game,
                };
                let mut completions = Vec::new();
                let mut first = 0.0;
                let mut dups = 0.0;
                for swarm_seed in 0..REPEATS {
                    let r = Sim::new(strategy, 1000 + swarm_seed).run();
                    completions.extend(r.completions);
                    first += r.first_full_copy / REPEATS as f64;
                    dups += r.duplicates as f64 / REPEATS as f64;
                }
                completions.sort_by(f64::total_cmp);
                let mean = completions.iter().sum::<f64>() / completions.len() as f64;
                let p95 = completions[((completions.len() as f64 * 0.95).ceil() as usize - 1)
                    .min(completions.len() - 1)];
                rows.push(Row {
                    name: strategy.name(),
                    mean,
                    p95,
                    first_copy: first,
                    duplicates: dups,
                });
            }
        }
    }
    let mut table = String::new();
    let _ = writeln!(
        table,
        "| strategy | mean completion (s) | p95 completion (s) | first full copy among leechers (s) | duplicate blocks per swarm |"
    );
    let _ = writeln!(table, "|---|---:|---:|---:|---:|");
    for r in &rows {
        let _ = writeln!(
            table,
            "| {} | {:.1} | {:.1} | {:.1} | {:.0} |",
            r.name, r.mean, r.p95, r.first_copy, r.duplicates
        );
    }
    print!("{table}");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::write(dir.join("swarm.md"), &table)?;
    std::fs::write(dir.join("swarm.svg"), svg(&rows))?;
    eprintln!(
        "wrote {} and {}",
        dir.join("swarm.md").display(),
        dir.join("swarm.svg").display()
    );
    Ok(())
}

/// A horizontal bar chart: mean completion (bar), p95 (whisker) and the
/// first full copy (diamond) per strategy.
fn svg(rows: &[Row]) -> String {
    let left = 190.0;
    let width = 620.0;
    let row_h = 26.0;
    let top = 40.0;
    let max = rows
        .iter()
        .map(|r| r.p95.max(r.first_copy))
        .fold(0.0, f64::max);
    let scale_max = (max / 20.0).ceil() * 20.0;
    let x = |v: f64| left + v / scale_max * width;
    let height = top + row_h * rows.len() as f64 + 50.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{height}" font-family="sans-serif" font-size="12">"#,
        w = left + width + 30.0
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{left}" y="20" font-size="14">Leecher completion time (s): bar = mean, whisker = p95, ◆ = first full copy</text>"#
    );
    let mut tick = 0.0;
    while tick <= scale_max {
        let tx = x(tick);
        let _ = writeln!(
            s,
            r##"<line x1="{tx:.1}" y1="{top}" x2="{tx:.1}" y2="{y2:.1}" stroke="#ddd"/><text x="{tx:.1}" y="{ty:.1}" text-anchor="middle">{tick}</text>"##,
            y2 = top + row_h * rows.len() as f64,
            ty = top + row_h * rows.len() as f64 + 16.0
        );
        tick += 20.0;
    }
    for (i, r) in rows.iter().enumerate() {
        let y = top + row_h * i as f64;
        let color = if r.name.starts_with("rarest") {
            "#2b7bb9"
        } else if r.name.starts_with("random") {
            "#e08a2c"
        } else {
            "#8a8a8a"
        };
        let _ = writeln!(
            s,
            r#"<text x="{lx}" y="{ty:.1}" text-anchor="end">{name}</text>"#,
            lx = left - 8.0,
            ty = y + row_h * 0.62,
            name = r.name
        );
        let _ = writeln!(
            s,
            r#"<rect x="{left}" y="{by:.1}" width="{bw:.1}" height="{bh:.1}" fill="{color}"/>"#,
            by = y + 4.0,
            bw = x(r.mean) - left,
            bh = row_h - 8.0
        );
        let my = y + row_h / 2.0;
        let _ = writeln!(
            s,
            r#"<line x1="{x1:.1}" y1="{my:.1}" x2="{x2:.1}" y2="{my:.1}" stroke="black"/><line x1="{x2:.1}" y1="{a:.1}" x2="{x2:.1}" y2="{b:.1}" stroke="black"/>"#,
            x1 = x(r.mean),
            x2 = x(r.p95),
            a = my - 5.0,
            b = my + 5.0
        );
        let fx = x(r.first_copy);
        let _ = writeln!(
            s,
            r#"<path d="M{fx:.1} {a:.1} L{b:.1} {my:.1} L{fx:.1} {c:.1} L{d:.1} {my:.1} Z" fill="crimson"/>"#,
            a = my - 6.0,
            b = fx + 6.0,
            c = my + 6.0,
            d = fx - 6.0
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{left}" y="{y:.1}">seconds (swarm: 1 seed, {LEECHERS} leechers, {PIECES} pieces x 256 KiB, {REPEATS} swarms per strategy)</text>"#,
        y = height - 10.0
    );
    s.push_str("</svg>\n");
    s
}
