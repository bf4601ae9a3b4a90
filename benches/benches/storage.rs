//! Storage throughput: verify-and-write of a whole torrent, full recheck,
//! and block reads with and without the read cache.
//!
//! Targets (issue 7):
//! - verify-and-write (`write_piece`: SHA-1 check, then positional writes)
//!   at least 80% of the sha1 crate's raw hashing speed over the same pieces,
//!   measured in the same run (`sha1_raw/*` against `verify_and_write*/*`).
//!   Three variants: rewriting files that exist (their pages are in the page
//!   cache) from one thread and from all cores, and writing new files into a
//!   new folder each time (page-cache allocation included);
//! - a full recheck of 1 GiB under 0.9 s using both cores
//!   (`recheck_all_cores/*`, with `recheck_1_thread/*` beside it);
//! - cached against uncached 16 KiB block reads (`read_block/*`): every
//!   block of every piece in order, with all pieces cached, with a small
//!   cache (one miss then 15 hits per piece), and with no cache.
//!
//! After criterion's figures, a summary times interleaved passes with
//! `Instant` and prints the ratios (`--summary-only` prints only that).
//! The torrent is 1 GiB by default (four files of 256 MiB);
//! `RUSTICO_BENCH_STORAGE_MIB` changes it. Build, then run the binary
//! directly so the cargo lock is not held while it runs:
//!
//! ```text
//! cargo bench -p rustico-benches --bench storage --no-run
//! target/release/deps/storage-<hash> --bench
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput};
use rustico_storage::{FileEntry, Layout, Options, Storage};
use sha1::{Digest, Sha1};

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;
const BLOCK: u32 = 16 * 1024;

fn torrent_bytes() -> usize {
    std::env::var("RUSTICO_BENCH_STORAGE_MIB")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(1024)
        * MIB
}

/// Deterministic pseudo-random bytes (splitmix64), fast enough for a GiB.
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

/// Four equal files over `data`, pieces of `piece_length`.
fn layout(data: &[u8], piece_length: usize) -> Layout {
    let quarter = data.len() as u64 / 4;
    let files = (0..4)
        .map(|i| {
            let len = if i == 3 {
                data.len() as u64 - 3 * quarter
            } else {
                quarter
            };
            FileEntry::new(["bench".to_string(), format!("part{i}.bin")], len)
        })
        .collect();
    let hashes = data
        .chunks(piece_length)
        .map(|p| Sha1::digest(p).into())
        .collect();
    Layout::new(files, piece_length as u32, hashes).unwrap()
}

fn hash_all(data: &[u8], piece_length: usize) -> u8 {
    let mut acc = 0u8;
    for piece in data.chunks(piece_length) {
        acc ^= Sha1::digest(piece)[0];
    }
    acc
}

fn write_all(storage: &Storage, data: &[u8], piece_length: usize) {
    for (index, piece) in data.chunks(piece_length).enumerate() {
        storage.write_piece(index as u32, piece).unwrap();
    }
}

/// The same, from `threads` threads taking pieces in order.
fn write_all_threaded(storage: &Storage, data: &[u8], piece_length: usize, threads: usize) {
    let pieces: Vec<&[u8]> = data.chunks(piece_length).collect();
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                while let Some(piece) = pieces.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let index = next_index(&pieces, piece);
                    storage.write_piece(index, piece).unwrap();
                }
            });
        }
    });
}

fn next_index(pieces: &[&[u8]], piece: &[u8]) -> u32 {
    // Pieces are sub-slices of one buffer: the index follows from the address.
    let base = pieces[0].as_ptr() as usize;
    ((piece.as_ptr() as usize - base) / pieces[0].len()) as u32
}

fn fresh_storage(layout: &Layout, dir: &Path) -> Storage {
    Storage::open(dir, layout.clone(), Options::default()).unwrap()
}

fn verify_and_write(c: &mut Criterion, data: &[u8]) {
    let mut group = c.benchmark_group("storage");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(8));
    group.throughput(Throughput::Bytes(data.len() as u64));
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    for piece_length in [256 * KIB, 4 * MIB] {
        let name = format!("{}KiB", piece_length / KIB);
        let layout = layout(data, piece_length);
        group.bench_function(format!("sha1_raw/{name}"), |b| {
            b.iter(|| black_box(hash_all(black_box(data), piece_length)))
        });
        // Files already there (a rewrite: their pages are in the page cache).
        let dir = tempfile::tempdir().unwrap();
        let storage = fresh_storage(&layout, dir.path());
        write_all(&storage, data, piece_length);
        group.bench_function(format!("verify_and_write/{name}"), |b| {
            b.iter(|| write_all(&storage, data, piece_length))
        });
        group.bench_function(format!("verify_and_write_{threads}_threads/{name}"), |b| {
            b.iter(|| write_all_threaded(&storage, data, piece_length, threads))
        });
        drop((storage, dir));
        // New files in a new folder each time, as a download writes them.
        group.bench_function(format!("verify_and_write_new_files/{name}"), |b| {
            b.iter_batched(
                || tempfile::tempdir().unwrap(),
                |dir| {
                    let storage = fresh_storage(&layout, dir.path());
                    write_all(&storage, data, piece_length);
                    (storage, dir) // dropped (files deleted) outside the timing
                },
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

fn recheck(c: &mut Criterion, data: &[u8]) {
    let mut group = c.benchmark_group("storage");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(8));
    group.throughput(Throughput::Bytes(data.len() as u64));
    let dir = tempfile::tempdir().unwrap();
    let layout = layout(data, 256 * KIB);
    {
        let storage = fresh_storage(&layout, dir.path());
        write_all(&storage, data, 256 * KIB);
        storage.flush().unwrap();
    }
    let cancel = AtomicBool::new(false);
    for threads in [1, 0] {
        let label = if threads == 0 {
            "all_cores".to_string()
        } else {
            format!("{threads}_thread")
        };
        let options = Options {
            recheck_threads: threads,
            ..Options::default()
        };
        let storage = Storage::open(dir.path(), layout.clone(), options).unwrap();
        group.bench_function(format!("recheck_{label}/256KiB"), |b| {
            b.iter(|| {
                let have = storage.recheck(&|_| {}, &cancel).unwrap();
                assert!(have.is_complete());
            })
        });
    }
    group.finish();
}

fn read_blocks(c: &mut Criterion) {
    // 32 MiB of 256 KiB pieces: every block of every piece, in order, as a
    // peer downloading the pieces one after the other asks for them.
    let data = data(32 * MIB);
    let piece_length = 256 * KIB;
    let layout = layout(&data, piece_length);
    let dir = tempfile::tempdir().unwrap();
    {
        let storage = fresh_storage(&layout, dir.path());
        write_all(&storage, &data, piece_length);
    }
    let mut group = c.benchmark_group("storage");
    group.sample_size(20);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    group.throughput(Throughput::Bytes(data.len() as u64));
    let cases = [
        ("read_block/cached_hot", 64 * MIB), // all pieces already cached
        ("read_block/cache_streaming", 4 * MIB), // one miss per piece, 15 hits
        ("read_block/no_cache", 0),          // one pread per block
    ];
    for (name, cache) in cases {
        let options = Options {
            read_cache_bytes: cache,
            ..Options::default()
        };
        let storage = Storage::open(dir.path(), layout.clone(), options).unwrap();
        let mut out = Vec::with_capacity(BLOCK as usize);
        let mut read_everything = || {
            for piece in 0..layout.num_pieces() {
                let len = layout.piece_size(piece).unwrap();
                let mut offset = 0;
                while offset < len {
                    out.clear();
                    let take = BLOCK.min(len - offset);
                    storage.read_block(piece, offset, take, &mut out).unwrap();
                    black_box(&out);
                    offset += take;
                }
            }
        };
        read_everything();
        group.bench_function(name, |b| b.iter(&mut read_everything));
        let stats = storage.cache_stats();
        eprintln!("{name}: cache hits {} misses {}", stats.hits, stats.misses);
    }
    group.finish();
}

/// Passes of each, interleaved and timed with `Instant`, printed as the
/// ratios the targets are about (criterion's figures are the detailed ones).
fn summary(data: &[u8]) {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let secs = |d: Duration| d.as_secs_f64();
    for piece_length in [256 * KIB, 4 * MIB] {
        let layout = layout(data, piece_length);
        let existing = tempfile::tempdir().unwrap();
        let storage = fresh_storage(&layout, existing.path());
        write_all(&storage, data, piece_length);
        // raw, rewrite 1 thread, rewrite all threads, new files 1 thread
        let mut times: [Vec<Duration>; 4] = Default::default();
        for _ in 0..5 {
            let start = Instant::now();
            black_box(hash_all(data, piece_length));
            times[0].push(start.elapsed());
            let start = Instant::now();
            write_all(&storage, data, piece_length);
            times[1].push(start.elapsed());
            let start = Instant::now();
            write_all_threaded(&storage, data, piece_length, threads);
            times[2].push(start.elapsed());
            let dir = tempfile::tempdir().unwrap();
            let fresh = fresh_storage(&layout, dir.path());
            let start = Instant::now();
            write_all(&fresh, data, piece_length);
            times[3].push(start.elapsed());
        }
        let [raw, rewrite, rewrite_threads, new_files] = times.map(|mut v| {
            v.sort();
            v[v.len() / 2]
        });
        let gib = data.len() as f64 / (1u64 << 30) as f64;
        let pct = |d: Duration| 100.0 * secs(raw) / secs(d);
        eprintln!(
            "summary {}KiB pieces, {gib} GiB, medians of 5: sha1 raw {:.3} s ({:.2} GiB/s); \
             verify+write into existing files 1 thread {:.3} s = {:.0}% of raw, {threads} threads {:.3} s = {:.0}%; \
             into new files 1 thread {:.3} s = {:.0}%",
            piece_length / KIB,
            secs(raw),
            gib / secs(raw),
            secs(rewrite),
            pct(rewrite),
            secs(rewrite_threads),
            pct(rewrite_threads),
            secs(new_files),
            pct(new_files),
        );
    }
    let layout = layout(data, 256 * KIB);
    let dir = tempfile::tempdir().unwrap();
    let storage = fresh_storage(&layout, dir.path());
    write_all(&storage, data, 256 * KIB);
    let cancel = AtomicBool::new(false);
    for threads in [1, 0] {
        let options = Options {
            recheck_threads: threads,
            ..Options::default()
        };
        let storage = Storage::open(dir.path(), layout.clone(), options).unwrap();
        let mut runs: Vec<(Duration, f64)> = (0..5)
            .map(|_| {
                let cpu = process_cpu_seconds();
                let start = Instant::now();
                storage.recheck(&|_| {}, &cancel).unwrap();
                (start.elapsed(), process_cpu_seconds() - cpu)
            })
            .collect();
        runs.sort_by_key(|run| run.0);
        let (median, cpu) = runs[2];
        eprintln!(
            "summary recheck 256KiB pieces, threads {}: median {:.3} s (CPU {:.2} s: {:.1} cores busy), best {:.3} s; load average {}",
            if threads == 0 { "all".to_string() } else { threads.to_string() },
            secs(median),
            cpu,
            cpu / secs(median),
            secs(runs[0].0),
            std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim(),
        );
    }
    drop(storage);
}

/// User plus system CPU time of this process so far, from `/proc/self/stat`
/// (clock ticks of 1/100 s), to show how many cores a run kept busy on a
/// machine shared with other work; 0 where unavailable.
fn process_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields of the whole line.
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn main() {
    let data = data(torrent_bytes());
    if std::env::args().any(|a| a == "--summary-only") {
        summary(&data);
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    verify_and_write(&mut c, &data);
    recheck(&mut c, &data);
    read_blocks(&mut c);
    c.final_summary();
    if std::env::args().any(|a| a == "--bench") {
        summary(&data);
    }
}
