//! Bencode decode and encode throughput: rustico-bencode against bendy and
//! serde_bencode, on the same documents in the same run.
//!
//! Every decoder does the same work: it reads the whole document and every
//! value in it is visited once (integers as `i64`, byte strings by length,
//! dictionary keys by length), adding up a checksum that is compared across
//! the three before measuring. Ours builds its borrowed tree and walks it;
//! bendy's streaming decoder is walked object by object (it builds no tree);
//! serde_bencode builds its owned `value::Value` and the tree is walked.
//! `rustico_tokens` walks our pull parser (`Decoder::tokens`), which builds
//! nothing either: the like-for-like comparison with bendy's walker.
//! `bendy_value` is bendy's own tree (`bendy::value::Value`), built and
//! walked: the like-for-like comparison for a tree decoder.
//! `allocation_floor` builds and drops a tree of 56-byte nodes with exactly
//! our tree's container shapes and no parsing: the part of our time that
//! is `malloc`, `free` and memory traffic.
//!
//! Target (issue 2): ours at least 3x bendy's throughput on the torrent.
//!
//! ```text
//! cargo bench -p rustico-benches --bench bencode --no-run
//! target/release/deps/bencode-<hash> --bench --warm-up-time 1 --measurement-time 3
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::Instant;

use bendy::decoding::{Decoder as BendyDecoder, Object};
use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use rustico_bencode::{Kind, Token, Value};

/// The benchmarked documents, by name.
fn documents() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("torrent_5mb", rustico_benches::torrent_document()),
        (
            "tracker_response",
            rustico_benches::compact_tracker_response(),
        ),
        (
            "extension_handshake",
            rustico_benches::extension_handshake(),
        ),
    ]
}

fn checksum_ours(value: &Value<'_>) -> u64 {
    match value.kind() {
        Kind::Integer(i) => *i as u64,
        Kind::Bytes(b) => b.len() as u64,
        Kind::List(items) => items
            .iter()
            .fold(0u64, |sum, item| sum.wrapping_add(checksum_ours(item))),
        Kind::Dict(dict) => dict.iter().fold(0u64, |sum, (key, item)| {
            sum.wrapping_add(key.len() as u64)
                .wrapping_add(checksum_ours(item))
        }),
    }
}

fn decode_ours(doc: &[u8]) -> u64 {
    let value = rustico_bencode::decode(doc).unwrap();
    checksum_ours(&value)
}

/// Our pull parser: the like-for-like comparison with bendy's walker
/// (neither builds anything).
fn decode_ours_tokens(doc: &[u8]) -> u64 {
    let mut sum = 0u64;
    for token in rustico_bencode::Decoder::new().tokens(doc) {
        sum = sum.wrapping_add(match token.unwrap().1 {
            Token::Integer(i) => i as u64,
            Token::Bytes(b) | Token::Key(b) => b.len() as u64,
            Token::List | Token::Dict | Token::End => 0,
        });
    }
    sum
}

fn checksum_bendy(object: Object<'_, '_>) -> u64 {
    match object {
        Object::Integer(text) => text.parse::<i64>().unwrap() as u64,
        Object::Bytes(b) => b.len() as u64,
        Object::List(mut list) => {
            let mut sum = 0u64;
            while let Some(item) = list.next_object().unwrap() {
                sum = sum.wrapping_add(checksum_bendy(item));
            }
            sum
        }
        Object::Dict(mut dict) => {
            let mut sum = 0u64;
            while let Some((key, item)) = dict.next_pair().unwrap() {
                sum = sum
                    .wrapping_add(key.len() as u64)
                    .wrapping_add(checksum_bendy(item));
            }
            sum
        }
    }
}

fn decode_bendy(doc: &[u8]) -> u64 {
    let mut decoder = BendyDecoder::new(doc);
    let object = decoder.next_object().unwrap().unwrap();
    checksum_bendy(object)
}

fn checksum_bendy_value(value: &bendy::value::Value<'_>) -> u64 {
    use bendy::value::Value as V;
    match value {
        V::Integer(i) => *i as u64,
        V::Bytes(b) => b.len() as u64,
        V::List(items) => items.iter().fold(0u64, |sum, item| {
            sum.wrapping_add(checksum_bendy_value(item))
        }),
        V::Dict(dict) => dict.iter().fold(0u64, |sum, (key, item)| {
            sum.wrapping_add(key.len() as u64)
                .wrapping_add(checksum_bendy_value(item))
        }),
    }
}

/// bendy's own tree, through its `FromBencode` (whose `from_bencode`
/// would set a nesting limit of 0 for `Value`).
fn bendy_value(doc: &[u8]) -> bendy::value::Value<'static> {
    use bendy::decoding::FromBencode;
    let mut decoder = BendyDecoder::new(doc).with_max_depth(2048);
    let object = decoder.next_object().unwrap().unwrap();
    bendy::value::Value::decode_bencode_object(object).unwrap()
}

/// bendy's own tree (`bendy::value::Value`), the like-for-like comparison
/// with ours: both build a tree, then walk it.
fn decode_bendy_value(doc: &[u8]) -> u64 {
    checksum_bendy_value(&bendy_value(doc))
}

fn checksum_serde(value: &serde_bencode::value::Value) -> u64 {
    use serde_bencode::value::Value as V;
    match value {
        V::Int(i) => *i as u64,
        V::Bytes(b) => b.len() as u64,
        V::List(items) => items
            .iter()
            .fold(0u64, |sum, item| sum.wrapping_add(checksum_serde(item))),
        V::Dict(dict) => dict.iter().fold(0u64, |sum, (key, item)| {
            sum.wrapping_add(key.len() as u64)
                .wrapping_add(checksum_serde(item))
        }),
    }
}

fn decode_serde(doc: &[u8]) -> u64 {
    let value: serde_bencode::value::Value = serde_bencode::from_bytes(doc).unwrap();
    checksum_serde(&value)
}

fn bench_decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("bencode_decode");
    for (name, doc) in documents() {
        let expected = decode_ours(&doc);
        assert_eq!(decode_bendy(&doc), expected, "bendy disagrees on {name}");
        assert_eq!(
            decode_ours_tokens(&doc),
            expected,
            "tokens disagree on {name}"
        );
        assert_eq!(
            decode_serde(&doc),
            expected,
            "serde_bencode disagrees on {name}"
        );
        group.throughput(Throughput::Bytes(doc.len() as u64));
        group.bench_with_input(BenchmarkId::new("rustico", name), &doc, |b, doc| {
            b.iter(|| decode_ours(black_box(doc)))
        });
        group.bench_with_input(BenchmarkId::new("rustico_tokens", name), &doc, |b, doc| {
            b.iter(|| decode_ours_tokens(black_box(doc)))
        });
        group.bench_with_input(BenchmarkId::new("bendy", name), &doc, |b, doc| {
            b.iter(|| decode_bendy(black_box(doc)))
        });
        group.bench_with_input(BenchmarkId::new("bendy_value", name), &doc, |b, doc| {
            b.iter(|| decode_bendy_value(black_box(doc)))
        });
        group.bench_with_input(BenchmarkId::new("serde_bencode", name), &doc, |b, doc| {
            b.iter(|| decode_serde(black_box(doc)))
        });
        let plan = container_plan(&rustico_bencode::decode(&doc).unwrap());
        group.bench_with_input(
            BenchmarkId::new("allocation_floor", name),
            &plan,
            |b, plan| b.iter(|| build_and_drop(black_box(plan))),
        );
    }
    group.finish();
}

/// A stand-in for a decoded value of the same size as ours (56 bytes), for
/// the allocation floor: a tree of these with our containers' shapes costs
/// what our tree costs in `malloc`, `free` and memory traffic, with no
/// parsing at all.
struct Node {
    children: Vec<Node>,
    _payload: [u64; 4],
}

/// The number of items of every list and dictionary, in pre-order.
fn container_plan(value: &Value<'_>) -> Vec<usize> {
    fn visit(value: &Value<'_>, plan: &mut Vec<usize>) {
        match value.kind() {
            Kind::List(items) => {
                plan.push(items.len());
                items.iter().for_each(|item| visit(item, plan));
            }
            Kind::Dict(dict) => {
                plan.push(dict.len());
                dict.iter().for_each(|(_, item)| visit(item, plan));
            }
            _ => plan.push(usize::MAX),
        }
    }
    let mut plan = Vec::new();
    visit(value, &mut plan);
    plan
}

fn build_and_drop(plan: &[usize]) -> usize {
    fn build(plan: &[usize], at: &mut usize) -> Node {
        let len = plan[*at];
        *at += 1;
        let children = if len == usize::MAX {
            Vec::new()
        } else {
            (0..len).map(|_| build(plan, at)).collect()
        };
        Node {
            children,
            _payload: [0; 4],
        }
    }
    let tree = build(plan, &mut 0);
    tree.children.len()
}

/// bendy's encoder, with a nesting limit (`ToBencode` gives `Value` none).
fn bendy_encode(value: &bendy::value::Value<'_>) -> Vec<u8> {
    let mut encoder = bendy::encoding::Encoder::new().with_max_depth(2048);
    encoder.emit(value).unwrap();
    encoder.get_output().unwrap()
}

fn bench_encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("bencode_encode");
    for (name, doc) in documents() {
        let borrowed = rustico_bencode::decode_strict(&doc).unwrap();
        let owned = borrowed.to_owned_value();
        let bendy_value = bendy_value(&doc);
        let serde_value: serde_bencode::value::Value = serde_bencode::from_bytes(&doc).unwrap();
        assert_eq!(rustico_bencode::encode(&borrowed), doc);
        assert_eq!(rustico_bencode::encode(&owned), doc);
        assert_eq!(bendy_encode(&bendy_value), doc);
        assert_eq!(serde_bencode::to_bytes(&serde_value).unwrap(), doc);

        group.throughput(Throughput::Bytes(doc.len() as u64));
        group.bench_function(BenchmarkId::new("rustico_borrowed", name), |b| {
            b.iter(|| rustico_bencode::encode(black_box(&borrowed)))
        });
        group.bench_function(BenchmarkId::new("rustico_owned", name), |b| {
            b.iter(|| rustico_bencode::encode(black_box(&owned)))
        });
        group.bench_function(BenchmarkId::new("bendy", name), |b| {
            b.iter(|| bendy_encode(black_box(&bendy_value)))
        });
        group.bench_function(BenchmarkId::new("serde_bencode", name), |b| {
            b.iter(|| serde_bencode::to_bytes(black_box(&serde_value)).unwrap())
        });
    }
    group.finish();
}

/// Decode ratios that survive a busy machine: the contenders take turns,
/// round after round, and each keeps its best round. Criterion measures
/// one benchmark after another, so load that comes and goes skews its
/// ratios; this table is what the README's ratios come from. Runs only
/// with `--bench` (not when `cargo test` runs the benchmarks once).
fn interleaved_decode_ratios() {
    if !std::env::args().any(|arg| arg == "--bench") {
        return;
    }
    type Contender = (&'static str, fn(&[u8]) -> u64);
    let contenders: [Contender; 5] = [
        ("rustico", decode_ours),
        ("rustico_tokens", decode_ours_tokens),
        ("bendy", decode_bendy),
        ("bendy_value", decode_bendy_value),
        ("serde_bencode", decode_serde),
    ];
    const ROUNDS: usize = 30;
    println!("interleaved decode, best of {ROUNDS} rounds (MB/s, and x bendy's walker):");
    for (name, doc) in documents() {
        let repeats = (2_000_000 / doc.len()).clamp(2, 2_000);
        let plan = container_plan(&rustico_bencode::decode(&doc).unwrap());
        let mut best = [f64::MAX; 5];
        let mut floor = f64::MAX;
        for _ in 0..ROUNDS {
            let started = Instant::now();
            for _ in 0..repeats {
                black_box(build_and_drop(black_box(&plan)));
            }
            floor = floor.min(started.elapsed().as_secs_f64() / repeats as f64);
            for (slot, (_, decode)) in best.iter_mut().zip(&contenders) {
                let started = Instant::now();
                for _ in 0..repeats {
                    black_box(decode(black_box(&doc)));
                }
                *slot = slot.min(started.elapsed().as_secs_f64() / repeats as f64);
            }
        }
        let bendy = best[2];
        let cells: Vec<String> = contenders
            .iter()
            .map(|(who, _)| *who)
            .chain(["allocation_floor"])
            .zip(best.into_iter().chain([floor]))
            .map(|(who, secs)| {
                format!(
                    "{who} {:.0} ({:.2}x)",
                    doc.len() as f64 / secs / 1e6,
                    bendy / secs
                )
            })
            .collect();
        println!("  {name}: {}", cells.join(", "));
    }
}

criterion_group!(benches, bench_decode, bench_encode);

fn main() {
    interleaved_decode_ratios();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
