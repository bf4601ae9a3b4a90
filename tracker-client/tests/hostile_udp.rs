//! Misbehaving UDP trackers written here (sockets on 127.0.0.1) that
//! answer wrongly (another transaction id, truncated, an error action) or
//! never: each call ends with the right typed error within the bound its
//! retransmission settings allow. Also connection id reuse, and bad URLs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::{config, request, timed};
use rustico_tracker_client::udp::UdpError;
use rustico_tracker_client::{announce, Client, Error};

/// What the fake UDP tracker does with each datagram.
#[derive(Clone, Copy)]
enum Udp {
    /// Answers correctly (counting connects).
    Good,
    /// Answers with the transaction id plus one.
    WrongTransactionId,
    /// Connects correctly, then answers announces with 12 bytes.
    TruncatedAnnounce,
    /// Connects correctly, then answers with an error action.
    ErrorAction,
}

fn udp_server(mode: Udp) -> (String, Arc<AtomicUsize>) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let url = format!("udp://{}/announce", socket.local_addr().unwrap());
    let connects = Arc::new(AtomicUsize::new(0));
    let counter = connects.clone();
    thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while let Ok((len, from)) = socket.recv_from(&mut buf) {
            if len < 16 {
                continue;
            }
            let action = u32::from_be_bytes(buf[8..12].try_into().unwrap());
            let mut tid = u32::from_be_bytes(buf[12..16].try_into().unwrap());
            if let Udp::WrongTransactionId = mode {
                tid = tid.wrapping_add(1);
            }
            let mut reply = Vec::new();
            match (action, mode) {
                (0, _) => {
                    counter.fetch_add(1, Ordering::SeqCst);
                    reply.extend_from_slice(&0u32.to_be_bytes());
                    reply.extend_from_slice(&tid.to_be_bytes());
                    reply.extend_from_slice(&0x1122_3344_5566_7788u64.to_be_bytes());
                }
                (1, Udp::Good) => {
                    assert_eq!(&buf[..8], &0x1122_3344_5566_7788u64.to_be_bytes());
                    reply.extend_from_slice(&1u32.to_be_bytes());
                    reply.extend_from_slice(&tid.to_be_bytes());
                    reply.extend_from_slice(&[0, 0, 0, 60, 0, 0, 0, 1, 0, 0, 0, 2]);
                    reply.extend_from_slice(&[127, 0, 0, 1, 0x1a, 0xe1]);
                }
                (1, Udp::TruncatedAnnounce) => {
                    reply.extend_from_slice(&1u32.to_be_bytes());
                    reply.extend_from_slice(&tid.to_be_bytes());
                    reply.extend_from_slice(&[0, 0, 0, 60]);
                }
                (_, Udp::ErrorAction) => {
                    reply.extend_from_slice(&3u32.to_be_bytes());
                    reply.extend_from_slice(&tid.to_be_bytes());
                    reply.extend_from_slice(b"go away");
                }
                _ => continue,
            }
            let _ = socket.send_to(&reply, from);
        }
    });
    (url, connects)
}

/// 50 + 100 + 200 ms of retransmission timeouts, plus slack for a loaded
/// machine.
fn udp_bound() -> Duration {
    config().udp.max_operation_time() + Duration::from_millis(700)
}

#[test]
fn udp_connection_id_is_reused() {
    let (url, connects) = udp_server(Udp::Good);
    let mut client = Client::new(config());
    for _ in 0..3 {
        let response = client.announce(&url, &request()).unwrap();
        assert_eq!(
            response.peers,
            ["127.0.0.1:6881".parse::<SocketAddr>().unwrap()]
        );
        assert_eq!((response.complete, response.incomplete), (Some(2), Some(1)));
    }
    assert_eq!(
        connects.load(Ordering::SeqCst),
        1,
        "one connect for three announces"
    );
}

#[test]
fn udp_silent_tracker_times_out() {
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let url = format!("udp://{}/announce", silent.local_addr().unwrap());
    let started = Instant::now();
    let result = timed(udp_bound(), || announce(&url, &request(), &config()));
    assert!(matches!(result, Err(Error::TimedOut { .. })), "{result:?}");
    assert!(started.elapsed() >= config().udp.max_operation_time());
}

/// Nobody on the port at all: the ICMP port unreachable ends the call at
/// once (it used to be ignored until every retransmission ran out).
#[test]
fn udp_refused_fails_at_once() {
    let closed = UdpSocket::bind("127.0.0.1:0").unwrap();
    let url = format!("udp://{}/announce", closed.local_addr().unwrap());
    drop(closed);
    // A long schedule, so that only the refusal can end the call in time.
    let mut config = config();
    config.udp.retransmit_base = Duration::from_secs(5);
    let result = timed(Duration::from_millis(500), || {
        announce(&url, &request(), &config)
    });
    assert!(
        matches!(result, Err(Error::Udp(UdpError::PortUnreachable))),
        "{result:?}"
    );
}

/// A tracker that floods the client with datagrams of other transaction
/// ids (about one every 20 µs) cannot keep the call alive past
/// `attempt_timeout`, though the retransmission schedule alone would run
/// for minutes.
#[test]
fn udp_wrong_id_flood_ends_at_the_attempt_deadline() {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let url = format!("udp://{}/announce", socket.local_addr().unwrap());
    let sent = Arc::new(AtomicUsize::new(0));
    let counter = sent.clone();
    thread::spawn(move || {
        let mut buf = [0u8; 2048];
        let Ok((len, from)) = socket.recv_from(&mut buf) else {
            return;
        };
        let tid = u32::from_be_bytes(buf[12..16.min(len)].try_into().unwrap());
        socket.set_nonblocking(true).unwrap();
        let start = Instant::now();
        let mut n = 0u32;
        while start.elapsed() < Duration::from_secs(5) {
            n = n.wrapping_add(1);
            let mut d = 0u32.to_be_bytes().to_vec();
            d.extend_from_slice(&(tid ^ (1 + n % 1000)).to_be_bytes());
            d.extend_from_slice(&[0; 8]);
            if socket.send_to(&d, from).is_ok() {
                counter.fetch_add(1, Ordering::Relaxed);
            }
            let _ = socket.recv_from(&mut buf);
            thread::sleep(Duration::from_micros(20));
        }
    });
    let mut config = config();
    config.udp.retransmit_base = Duration::from_millis(200);
    config.udp.max_retransmits = 8;
    config.udp.attempt_timeout = Duration::from_millis(600);
    let started = Instant::now();
    let result = timed(Duration::from_millis(600 + 700), || {
        announce(&url, &request(), &config)
    });
    assert!(started.elapsed() >= Duration::from_millis(600));
    assert!(
        matches!(
            result,
            Err(Error::Udp(UdpError::TransactionIdMismatch { .. }))
        ),
        "{result:?}"
    );
    let flood = sent.load(Ordering::Relaxed);
    assert!(flood > 1000, "only {flood} datagrams flooded");
}

#[test]
fn udp_wrong_transaction_id() {
    let (url, _) = udp_server(Udp::WrongTransactionId);
    let result = timed(udp_bound(), || announce(&url, &request(), &config()));
    assert!(
        matches!(result, Err(Error::Udp(UdpError::TransactionIdMismatch { expected, got })) if got == expected.wrapping_add(1)),
        "{result:?}"
    );
}

#[test]
fn udp_truncated_answer() {
    let (url, _) = udp_server(Udp::TruncatedAnnounce);
    let result = timed(Duration::from_millis(500), || {
        announce(&url, &request(), &config())
    });
    assert!(
        matches!(
            result,
            Err(Error::Udp(UdpError::Truncated { len: 12, min: 20 }))
        ),
        "{result:?}"
    );
}

#[test]
fn udp_error_action_is_a_failure() {
    let (url, _) = udp_server(Udp::ErrorAction);
    let result = timed(Duration::from_millis(500), || {
        announce(&url, &request(), &config())
    });
    assert!(
        matches!(&result, Err(Error::Failure { reason }) if reason == "go away"),
        "{result:?}"
    );
}

#[test]
fn bad_urls() {
    for (url, check) in [
        ("udp://127.0.0.1/announce", "host and a port"),
        ("magnet:?xt=urn:btih:00", "unsupported"),
        ("not a url", "invalid"),
    ] {
        let error = announce(url, &request(), &config()).unwrap_err();
        assert!(matches!(error, Error::Url(_)), "{url}: {error:?}");
        assert!(error.to_string().contains(check), "{url}: {error}");
    }
}

#[cfg(not(feature = "http"))]
#[test]
fn http_needs_the_feature() {
    let error = announce("http://127.0.0.1:1/announce", &request(), &config()).unwrap_err();
    assert!(matches!(error, Error::HttpDisabled), "{error:?}");
}
