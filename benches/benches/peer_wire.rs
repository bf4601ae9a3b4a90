//! Peer wire benchmarks: decoding a stream of 16 KiB `piece` messages
//! (target at least 10 GB/s: payloads are borrowed, only headers are
//! parsed), and decoding and encoding small messages (`have`, `request`,
//! `cancel`; target at least 50 million messages per second).
//!
//! Build with `cargo bench -p rustico-benches --bench peer_wire --no-run`
//! and run the printed binary with `--bench`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rustico_peer_wire::{decode_frame, BlockRequest, Framer, Limits, Message, Status, BLOCK_LEN};

const PIECE_MESSAGES: u32 = 256;
const SMALL_MESSAGES: u32 = 3000;
/// What a socket read typically hands over at once.
const READ_CHUNK: usize = 64 * 1024;

fn piece_stream() -> Vec<u8> {
    let block: Vec<u8> = (0..BLOCK_LEN).map(|i| (i * 31) as u8).collect();
    let mut out = Vec::new();
    for i in 0..PIECE_MESSAGES {
        Message::Piece {
            index: i / 16,
            begin: (i % 16) * BLOCK_LEN,
            data: &block,
        }
        .encode(&mut out);
    }
    out
}

fn small_messages() -> Vec<Message<'static>> {
    (0..SMALL_MESSAGES)
        .map(|i| {
            let block = BlockRequest {
                piece: i,
                offset: (i % 16) * BLOCK_LEN,
                length: BLOCK_LEN,
            };
            match i % 3 {
                0 => Message::Have(i),
                1 => Message::Request(block),
                _ => Message::Cancel(block),
            }
        })
        .collect()
}

/// Decodes every frame of `stream` straight from the slice.
fn decode_all(stream: &[u8], limits: &Limits) -> u64 {
    let mut rest = stream;
    let mut checksum = 0u64;
    while let Ok(Status::Complete(message, used)) = decode_frame(rest, limits) {
        checksum += match message {
            Message::Piece { index, data, .. } => u64::from(index) + data.len() as u64,
            Message::Have(i) => u64::from(i),
            Message::Request(r) | Message::Cancel(r) => u64::from(r.piece),
            _ => 1,
        };
        rest = &rest[used..];
    }
    checksum
}

/// Feeds `stream` to a framer in socket-sized chunks (one copy into the
/// framer's buffer, as a real connection would read) and drains it.
fn frame_all(framer: &mut Framer, stream: &[u8]) -> u64 {
    let mut checksum = 0u64;
    let mut rest = stream;
    while !rest.is_empty() {
        let chunk = &rest[..rest.len().min(READ_CHUNK)];
        let took = framer.feed(chunk);
        rest = &rest[took..];
        while let Ok(Some(message)) = framer.next_message() {
            checksum += match message {
                Message::Piece { data, .. } => data.len() as u64,
                Message::Have(i) => u64::from(i),
                Message::Request(r) | Message::Cancel(r) => u64::from(r.piece),
                _ => 1,
            };
        }
    }
    checksum
}

fn bench_pieces(c: &mut Criterion) {
    let stream = piece_stream();
    let limits = Limits::default();
    let mut group = c.benchmark_group("peer_wire/piece_stream");
    group.throughput(Throughput::Bytes(stream.len() as u64));
    group.bench_function("decode_frame (borrowed)", |b| {
        b.iter(|| decode_all(black_box(&stream), &limits))
    });
    group.bench_function("framer, 64 KiB reads (one copy)", |b| {
        let mut framer = Framer::new();
        b.iter(|| frame_all(&mut framer, black_box(&stream)))
    });
    group.finish();
}

fn bench_small(c: &mut Criterion) {
    let messages = small_messages();
    let mut stream = Vec::new();
    for m in &messages {
        m.encode(&mut stream);
    }
    let limits = Limits::default();
    let mut group = c.benchmark_group("peer_wire/small_messages");
    group.throughput(Throughput::Elements(u64::from(SMALL_MESSAGES)));
    group.bench_function("decode_frame", |b| {
        b.iter(|| decode_all(black_box(&stream), &limits))
    });
    group.bench_function("framer, 64 KiB reads", |b| {
        let mut framer = Framer::new();
        b.iter(|| frame_all(&mut framer, black_box(&stream)))
    });
    group.bench_function("encode", |b| {
        let mut out = Vec::with_capacity(stream.len());
        b.iter(|| {
            out.clear();
            for m in black_box(&messages) {
                m.encode(&mut out);
            }
            out.len()
        })
    });
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30)
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_pieces, bench_small
}
criterion_main!(benches);
