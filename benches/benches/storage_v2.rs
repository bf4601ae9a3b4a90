//! BitTorrent v2 (BEP 52) storage throughput, with its baselines in the
//! same run.
//!
//! Targets (issue 18):
//! - v2 verify-and-write (`write_piece`: merkle check of the piece's
//!   16 KiB blocks against its piece-layer hash, then positional writes)
//!   of 1 GiB at least 80% of the sha2 crate's raw SHA-256 speed over the
//!   same bytes (`sha256_raw/*` against `v2_verify_and_write*/*`), into
//!   files that exist (a rewrite);
//! - a v2 recheck of 1 GiB on both cores (`v2_recheck_all_cores/*`), next
//!   to the v1 recheck of the same bytes (`v1_recheck_all_cores/*`).
//!
//! After criterion's figures, `--bench` (or `--summary-only` alone)
//! prints medians of interleaved passes timed with `Instant`. The torrent
//! is 1 GiB (four files of 256 MiB, each a whole number of pieces);
//! `RUSTICO_BENCH_STORAGE_MIB` changes it. Build, then run the binary:
//!
//! ```text
//! cargo bench -p rustico-benches --bench storage_v2 --no-run
//! target/release/deps/storage_v2-<hash> --bench
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use rustico_metainfo::merkle;
use rustico_storage::{FileEntry, Layout, Options, Storage, V2PieceHash};
use sha1::{Digest, Sha1};

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;
const PIECE: usize = 256 * KIB;

fn torrent_bytes() -> usize {
    std::env::var("RUSTICO_BENCH_STORAGE_MIB")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(1024)
        * MIB
}

/// Deterministic pseudo-random bytes (splitmix64).
fn data(len: usize) -> Vec<u8> {
    let mut state = 0x5EED_u64;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out.truncate(len);
    out
}

fn files(data: &[u8]) -> Vec<FileEntry> {
    let quarter = (data.len() / 4 / PIECE * PIECE) as u64;
    (0..4)
        .map(|i| {
            let len = if i == 3 {
                data.len() as u64 - 3 * quarter
            } else {
                quarter
            };
            FileEntry::new(["bench".to_string(), format!("part{i}.bin")], len)
        })
        .collect()
}

/// The v2 layout: one piece-layer hash per piece (each file is a whole
/// number of pieces and longer than one, so none is a lone root).
fn v2_layout(data: &[u8]) -> Layout {
    let hashes = data
        .chunks(PIECE)
        .map(|p| V2PieceHash::Layer(merkle::piece_hash(p, PIECE as u64).unwrap()))
        .collect();
    Layout::new_v2(files(data), PIECE as u32, hashes).unwrap()
}

fn v1_layout(data: &[u8]) -> Layout {
    let hashes = data.chunks(PIECE).map(|p| Sha1::digest(p).into()).collect();
    Layout::new(files(data), PIECE as u32, hashes).unwrap()
}

/// Raw SHA-256 over the same bytes, in 16 KiB calls (the leaves).
fn sha256_all(data: &[u8]) -> u8 {
    let mut acc = 0u8;
    for block in data.chunks(merkle::BLOCK_LEN) {
        acc ^= merkle::hash_block(block)[0];
    }
    acc
}

fn write_all(storage: &Storage, data: &[u8]) {
    for (index, piece) in data.chunks(PIECE).enumerate() {
        storage.write_piece(index as u32, piece).unwrap();
    }
}

fn recheck(storage: &Storage) {
    let have = storage.recheck(&|_| {}, &AtomicBool::new(false)).unwrap();
    assert!(have.is_complete());
}

fn criterion_runs(c: &mut Criterion, data: &[u8]) {
    let mut group = c.benchmark_group("storage_v2");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(8));
    group.throughput(Throughput::Bytes(data.len() as u64));
    group.bench_function("sha256_raw/256KiB", |b| {
        b.iter(|| black_box(sha256_all(black_box(data))))
    });
    let v2_dir = tempfile::tempdir().unwrap();
    let v2 = Storage::open(v2_dir.path(), v2_layout(data), Options::default()).unwrap();
    write_all(&v2, data);
    v2.flush().unwrap();
    group.bench_function("v2_verify_and_write/256KiB", |b| {
        b.iter(|| write_all(&v2, data))
    });
    let v1_dir = tempfile::tempdir().unwrap();
    let v1 = Storage::open(v1_dir.path(), v1_layout(data), Options::default()).unwrap();
    write_all(&v1, data);
    v1.flush().unwrap();
    group.bench_function("v2_recheck_all_cores/256KiB", |b| b.iter(|| recheck(&v2)));
    group.bench_function("v1_recheck_all_cores/256KiB", |b| b.iter(|| recheck(&v1)));
    group.finish();
}

fn median(mut runs: Vec<Duration>) -> Duration {
    runs.sort();
    runs[runs.len() / 2]
}

fn summary(data: &[u8]) {
    let secs = |d: Duration| d.as_secs_f64();
    let gib = data.len() as f64 / (1u64 << 30) as f64;
    let v2_dir = tempfile::tempdir().unwrap();
    let v2 = Storage::open(v2_dir.path(), v2_layout(data), Options::default()).unwrap();
    write_all(&v2, data);
    let v1_dir = tempfile::tempdir().unwrap();
    let v1 = Storage::open(v1_dir.path(), v1_layout(data), Options::default()).unwrap();
    write_all(&v1, data);
    // raw SHA-256, v2 verify+write, v2 verify only, v2 recheck, v1 recheck
    let mut times: [Vec<Duration>; 5] = Default::default();
    for _ in 0..5 {
        let start = Instant::now();
        black_box(sha256_all(data));
        times[0].push(start.elapsed());
        let start = Instant::now();
        write_all(&v2, data);
        times[1].push(start.elapsed());
        let start = Instant::now();
        for (index, piece) in data.chunks(PIECE).enumerate() {
            assert!(v2.verify_piece(index as u32, piece));
        }
        times[2].push(start.elapsed());
        let start = Instant::now();
        recheck(&v2);
        times[3].push(start.elapsed());
        let start = Instant::now();
        recheck(&v1);
        times[4].push(start.elapsed());
    }
    let [raw, write, verify, recheck_v2, recheck_v1] = times.map(median);
    let pct = |d: Duration| 100.0 * secs(raw) / secs(d);
    eprintln!(
        "summary v2 256KiB pieces, {gib} GiB, medians of 5: sha256 raw {:.3} s ({:.2} GiB/s); \
         v2 verify+write into existing files {:.3} s = {:.0}% of raw; v2 verify alone {:.3} s = {:.0}%; \
         recheck all cores: v2 {:.3} s, v1 {:.3} s; load average {}",
        secs(raw),
        gib / secs(raw),
        secs(write),
        pct(write),
        secs(verify),
        pct(verify),
        secs(recheck_v2),
        secs(recheck_v1),
        std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim(),
    );
}

fn main() {
    let data = data(torrent_bytes());
    if std::env::args().any(|a| a == "--summary-only") {
        summary(&data);
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    criterion_runs(&mut c, &data);
    c.final_summary();
    if std::env::args().any(|a| a == "--bench") {
        summary(&data);
    }
}
