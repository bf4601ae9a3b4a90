//! `UdpSession::handle_datagram` (BEP 15), the only public way in for UDP
//! tracker datagrams. Input: one byte choosing IPv4/IPv6, announce or
//! scrape and the number of hashes, then records of `[flags, len_hi,
//! len_lo, datagram...]`. Flag bit 0 writes the transaction id of the
//! request in flight into the datagram (the fuzzer cannot guess it), bit 1
//! lets the retransmission deadline pass first, bit 2 lets the connection
//! id expire. A finished operation is started again, so a session sees
//! connect, announce or scrape answers, errors and retries in any order.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use rustico_tracker_client::udp::{UdpResponse, UdpSession};
use rustico_tracker_client::{AnnounceRequest, UdpConfig};

fuzz_target!(|data: &[u8]| {
    let Some((&options, mut records)) = data.split_first() else {
        return;
    };
    let config = UdpConfig {
        retransmit_base: Duration::from_secs(1),
        max_retransmits: 2,
        ..UdpConfig::default()
    };
    let mut session = UdpSession::new(config, options & 1 == 1, u64::from(options));
    let hashes: Vec<[u8; 20]> = (0..usize::from(options >> 2) % 80)
        .map(|i| [i as u8; 20])
        .collect();
    let request = AnnounceRequest::new([1; 20], [2; 20], 6881);
    let mut now = Instant::now();
    let mut sent = Vec::new();
    while let Some((&[flags, hi, lo], rest)) = records.split_first_chunk::<3>() {
        let (datagram, rest) =
            rest.split_at(rest.len().min(usize::from(u16::from_be_bytes([hi, lo]))));
        records = rest;
        if !session.is_busy() {
            let _ = match options & 2 {
                0 => session.start_announce(&request, now),
                _ => session.start_scrape(&hashes, now),
            };
        }
        if flags & 4 != 0 {
            now += config.connection_lifetime;
        }
        if flags & 2 != 0 {
            now = session.poll_timeout().unwrap_or(now).max(now);
            session.handle_timeout(now);
        }
        let mut datagram = datagram.to_vec();
        if session.poll_transmit(now, &mut sent) {
            assert!(sent.len() >= 16);
        }
        if flags & 1 != 0 && datagram.len() >= 8 && sent.len() >= 16 {
            datagram[4..8].copy_from_slice(&sent[12..16]);
        }
        let _ = session.handle_datagram(&datagram, now);
        match session.poll_outcome() {
            Some(Ok(UdpResponse::Scrape(scrape))) => assert!(scrape.files.len() <= hashes.len()),
            Some(Ok(UdpResponse::Announce(announce))) => {
                assert!(6 * announce.peers.len() <= datagram.len())
            }
            _ => {}
        }
    }
});
