//! The peer session against a hostile peer: after a valid handshake, the
//! rest of the input is the peer's stream, fed in chunks, one second apart
//! (timers run), with a driver that serves every block it is handed and
//! writes only when told. Input: byte 0 the options (bit 0 fast extension,
//! bit 1 extension protocol, bit 2 we serve the info dictionary, bit 3 we
//! unchoke the peer, bit 4 the driver writes after every chunk, else after
//! every fourth), byte 1 the chunk size (0: 256), then the stream.
//! Properties: no panic, and what the peer makes the session hold stays
//! bounded whatever it sends (issue #20): queued serves within
//! `max_peer_requests`; the transmit buffer within its bound plus one
//! block or metadata piece plus the small answers to the input since the
//! last write; about one event per message; draining after a write ends.
#![no_main]

use std::sync::Arc;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use rustico_peer_wire::{
    Action, Bitfield, Content, Geometry, Handshake, Handshaking, MetadataServer, Progress,
    Reserved, Session, SessionConfig,
};

const HASH: [u8; 20] = [0xaa; 20];
/// One block or one metadata piece, with their headers.
const ONE_ANSWER: usize = 16_384 + 64;

fn write(s: &mut Session, now: Instant) {
    let mut wire = Vec::new();
    s.poll_transmit(&mut wire, now);
}

fn serve(s: &mut Session) {
    while let Some(Action::Serve(req)) = s.poll_action() {
        s.send_block(req, &vec![0x5a; req.length as usize]);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&[options, chunk], stream)) = data.split_first_chunk::<2>() else {
        return;
    };
    let chunk = if chunk == 0 { 256 } else { usize::from(chunk) };
    let reserved = Reserved::default()
        .with_fast(options & 1 != 0)
        .with_extension_protocol(options & 2 != 0);
    let Ok(geometry) = Geometry::new(40 * 32_768 - 100, 32_768) else {
        return;
    };
    let mut content = Content::torrent(geometry, Bitfield::full(40)).expect("40 pieces");
    if options & 4 != 0 {
        let info: Vec<u8> = (0..40_000u32).map(|i| i as u8).collect();
        content = content.with_metadata(Arc::new(MetadataServer::new(info)));
    }
    let config = SessionConfig::default();
    let (bound, max_requests) = (config.max_transmit_buffer, config.max_peer_requests);
    let mut now = Instant::now();
    let ours = Handshake::new(Reserved::supported(), HASH, [1; 20]);
    let mut hs = Handshaking::new(ours, content, config, now);
    let mut sink = Vec::new();
    hs.poll_transmit(&mut sink, now);
    let theirs = Handshake::new(reserved, HASH, [2; 20]).to_bytes();
    let Ok(Progress::Established(mut s)) = hs.handle_input(&theirs, now) else {
        panic!("a valid handshake makes a session");
    };
    if options & 8 != 0 {
        s.set_choking(false);
    }
    write(&mut s, now);
    let mut since_write = 0usize;
    for (i, piece) in stream.chunks(chunk).enumerate() {
        now += Duration::from_secs(1);
        if !s.wants_input() {
            // A driver that honours backpressure reads nothing now.
            write(&mut s, now);
            since_write = 0;
        }
        let fed = s
            .handle_input(piece, now)
            .and_then(|()| s.handle_timeout(now));
        since_write += piece.len();
        serve(&mut s);
        let mut events = 0;
        while s.poll_event().is_some() {
            events += 1;
        }
        // One per message of at least 4 bytes, plus the statistics.
        assert!(events <= piece.len() / 4 + 2, "{events} events");
        assert!(s.queued_serves() <= max_requests);
        assert!(
            s.pending_transmit() <= bound + ONE_ANSWER + 2 * since_write + 4,
            "{} bytes queued for {since_write} bytes in",
            s.pending_transmit()
        );
        if fed.is_err() {
            assert!(s.poll_timeout().is_none());
            return;
        }
        if options & 16 != 0 || i % 4 == 3 {
            let mut rounds = 0;
            loop {
                write(&mut s, now);
                if !s.has_deferred_output() {
                    break;
                }
                serve(&mut s);
                rounds += 1;
                assert!(rounds <= 1000, "deferred output never drains");
            }
            assert!(s.wants_input());
            since_write = 0;
        }
    }
});
