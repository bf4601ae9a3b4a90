//! MSE/PE benchmarks: what the RC4 layer costs on 16 KiB blocks (the size
//! of a `piece` payload), next to a plain copy of the same bytes (the
//! least a receive path does), and what a whole handshake costs (both
//! roles in memory: four 768-bit exponentiations, key derivation, RC4
//! set-up with its 1024 discarded bytes).
//!
//! Build with `cargo bench -p rustico-benches --bench mse --no-run` and
//! run the printed binary with `--bench`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rustico_peer_wire::mse::{Established, Initiator, MseConfig, Progress, Responder};

const BLOCK: usize = 16 * 1024;
const INFO_HASH: [u8; 20] = [0x77; 20];

/// One complete handshake in memory; returns both ends.
fn handshake(a_seed: &[u8; 32], b_seed: &[u8; 32], ia: &[u8]) -> (Established, Established) {
    let now = Instant::now();
    let config = MseConfig::default();
    let mut a = Initiator::new(INFO_HASH, &config, ia, a_seed, now).unwrap();
    let mut b = Responder::new(&config, b_seed, now).unwrap();
    let (mut a2b, mut b2a) = (Vec::new(), Vec::new());
    let (mut a_done, mut b_done) = (false, false);
    while !(a_done && b_done) {
        a.poll_transmit(&mut a2b);
        if !b_done {
            let mut at = 0;
            loop {
                match b.handle_input(&a2b[at..]).unwrap() {
                    Progress::NeedInput => break,
                    Progress::NeedInfoHash { used, .. } => {
                        at += used;
                        b.select_info_hash(INFO_HASH).unwrap();
                    }
                    Progress::Done { .. } => {
                        b_done = true;
                        break;
                    }
                }
            }
            a2b.clear();
        }
        b.poll_transmit(&mut b2a);
        if !a_done {
            a_done = matches!(a.handle_input(&b2a).unwrap(), Progress::Done { .. });
            b2a.clear();
        }
    }
    let a = a.finish(&mut a2b).unwrap();
    let b = b.finish(&mut b2a).unwrap();
    (a, b)
}

fn rc4(c: &mut Criterion) {
    let (mut a, _) = handshake(&[1; 32], &[2; 32], &[]);
    let source: Vec<u8> = (0..BLOCK).map(|i| (i * 31) as u8).collect();
    let mut buf = source.clone();
    let mut group = c.benchmark_group("mse_16k_block");
    group.throughput(Throughput::Bytes(BLOCK as u64));
    group.bench_function("rc4_in_place", |bench| {
        bench.iter(|| {
            a.cipher.encrypt_in_place(black_box(&mut buf));
        })
    });
    group.bench_function("memcpy", |bench| {
        bench.iter(|| {
            buf.copy_from_slice(black_box(&source));
            black_box(&mut buf);
        })
    });
    group.finish();
}

fn whole_handshake(c: &mut Criterion) {
    let ia = [0x13u8; 68];
    let mut n = 0u8;
    c.bench_function("mse_handshake_both_roles", |bench| {
        bench.iter(|| {
            n = n.wrapping_add(1);
            black_box(handshake(&[n | 1; 32], &[(n ^ 0x55) | 1; 32], &ia))
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = rc4, whole_handshake
}
criterion_main!(benches);
