//! A misbehaving HTTP tracker written here (a `TcpListener` on
//! 127.0.0.1): slow, silent, huge, garbled, failing or looping redirects.
//! Each call must end with the right typed error within its time limit.
//! Also the byte-exact request line a real HTTP server receives.
#![cfg(feature = "http")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use common::{config, request, timed, TIMEOUT};
use rustico_tracker_client::{announce, scrape, Error, ResponseError, TransportConfig};

/// Serves every connection on its own thread with `respond`, which gets the
/// request line (after the request head was read in full) and the stream.
fn http_server<F>(respond: F) -> (String, Arc<Mutex<Vec<String>>>)
where
    F: Fn(&str, &mut TcpStream) + Send + Sync + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let respond = Arc::new(respond);
    let log = seen.clone();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let respond = respond.clone();
            let log = log.clone();
            thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request_line = String::new();
                if reader.read_line(&mut request_line).is_err() {
                    return;
                }
                loop {
                    let mut header = String::new();
                    match reader.read_line(&mut header) {
                        Ok(0) | Err(_) => return,
                        Ok(_) if header == "\r\n" => break,
                        Ok(_) => {}
                    }
                }
                log.lock().unwrap().push(request_line.trim_end().to_owned());
                respond(request_line.trim_end(), &mut stream);
                let _ = stream.flush();
            });
        }
    });
    (base, seen)
}

fn ok_body(stream: &mut TcpStream, body: &[u8]) {
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body);
}

const GOOD: &[u8] = b"d8:intervali60e5:peers6:\x0a\x00\x00\x01\x1a\xe1e";

#[test]
fn http_request_is_byte_exact_and_keeps_the_query() {
    let (base, seen) = http_server(|_, s| ok_body(s, GOOD));
    let mut r = request();
    r.key = Some(0x1234_abcd);
    r.numwant = Some(10);
    let response = announce(&format!("{base}/announce.php?passkey=p%2Fq"), &r, &config()).unwrap();
    assert_eq!(
        response.peers,
        ["10.0.0.1:6881".parse::<SocketAddr>().unwrap()]
    );
    assert_eq!(response.interval, Duration::from_secs(60));
    assert_eq!(
        seen.lock().unwrap()[0],
        format!(
            "GET /announce.php?passkey=p%2Fq&info_hash={}&peer_id=-RS0100-hostile00000&port=6881\
             &uploaded=0&downloaded=0&left=5&compact=1&event=started&numwant=10&key=1234abcd HTTP/1.1",
            "%AB".repeat(20)
        )
    );
}

#[test]
fn http_chunked_response_and_one_redirect_work() {
    let (base, _) = http_server(|line, s| {
        if line.starts_with("GET /old") {
            let to = line
                .replacen("GET /old", "/new", 1)
                .replace(" HTTP/1.1", "");
            let _ = write!(
                s,
                "HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\n\r\n"
            );
        } else {
            let _ = s.write_all(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
            );
            for chunk in GOOD.chunks(7) {
                let _ = write!(s, "{:x}\r\n", chunk.len());
                let _ = s.write_all(chunk);
                let _ = s.write_all(b"\r\n");
            }
            let _ = s.write_all(b"0\r\n\r\n");
        }
    });
    let response = announce(&format!("{base}/old/announce"), &request(), &config()).unwrap();
    assert_eq!(response.peers.len(), 1);
}

#[test]
fn http_scrape_uses_the_derived_url() {
    let (base, seen) = http_server(|_, s| {
        ok_body(
            s,
            b"d5:filesd20:\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\
              d8:completei2e10:downloadedi3e10:incompletei4eeee",
        )
    });
    let counts = scrape(&format!("{base}/x/announce?k=1"), &[[0xab; 20]], &config()).unwrap();
    let stats = counts.files[&[0xab; 20]];
    assert_eq!(
        (stats.complete, stats.downloaded, stats.incomplete),
        (2, 3, 4)
    );
    assert_eq!(
        seen.lock().unwrap()[0],
        format!("GET /x/scrape?k=1&info_hash={} HTTP/1.1", "%AB".repeat(20))
    );
    assert!(matches!(
        scrape(&format!("{base}/tracker"), &[[0xab; 20]], &config()),
        Err(Error::Url(_))
    ));
}

#[test]
fn slowloris_body_times_out() {
    let (base, _) = http_server(|_, s| {
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nd8:interval");
        for _ in 0..1000 {
            thread::sleep(Duration::from_millis(50));
            if s.write_all(b"1").is_err() {
                return;
            }
        }
    });
    let result = timed(TIMEOUT + Duration::from_secs(1), || {
        announce(&format!("{base}/announce"), &request(), &config())
    });
    assert!(matches!(result, Err(Error::TimedOut { .. })), "{result:?}");
}

#[test]
fn slowloris_headers_time_out() {
    let (base, _) = http_server(|_, s| {
        for byte in b"HTTP/1.1 200 OK\r\nX-Slow: "
            .iter()
            .chain([b'a'; 1000].iter())
        {
            thread::sleep(Duration::from_millis(30));
            if s.write_all(&[*byte]).is_err() {
                return;
            }
        }
    });
    let result = timed(TIMEOUT + Duration::from_secs(1), || {
        announce(&format!("{base}/announce"), &request(), &config())
    });
    assert!(matches!(result, Err(Error::TimedOut { .. })), "{result:?}");
}

#[test]
fn silent_server_times_out() {
    let (base, _) = http_server(|_, _| thread::sleep(Duration::from_secs(10)));
    let result = timed(TIMEOUT + Duration::from_secs(1), || {
        announce(&format!("{base}/announce"), &request(), &config())
    });
    assert!(matches!(result, Err(Error::TimedOut { .. })), "{result:?}");
}

#[test]
fn giant_bodies_hit_the_size_limit() {
    let (base, _) = http_server(|line, s| {
        let block = vec![b'x'; 64 * 1024];
        if line.contains("/chunked") {
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
            loop {
                let _ = write!(s, "{:x}\r\n", block.len());
                if s.write_all(&block).is_err() || s.write_all(b"\r\n").is_err() {
                    return;
                }
            }
        } else {
            // Claims 1 GiB: the client must neither trust nor allocate it.
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1073741824\r\n\r\n");
            while s.write_all(&block).is_ok() {}
        }
    });
    let mut small = config();
    small.max_response_size = 100_000;
    for path in ["/chunked/announce", "/length/announce"] {
        for config in [config(), small.clone()] {
            let result = timed(TIMEOUT + Duration::from_secs(1), || {
                announce(&format!("{base}{path}"), &request(), &config)
            });
            assert!(
                matches!(result, Err(Error::ResponseTooLarge { limit }) if limit == config.max_response_size),
                "{path}: {result:?}"
            );
        }
    }
    assert_eq!(TransportConfig::default().max_response_size, 1 << 20);
}

#[test]
fn garbage_body_is_a_bencode_error_with_offset() {
    let (base, _) = http_server(|line, s| {
        if line.contains("/html") {
            ok_body(s, b"<html>Tracker offline</html>")
        } else {
            ok_body(s, b"d8:intervali60e5:peers9:abc")
        }
    });
    let result = announce(&format!("{base}/html/announce"), &request(), &config());
    assert!(
        matches!(&result, Err(Error::Response(ResponseError::Bencode(e))) if e.offset == 0),
        "{result:?}"
    );
    let result = announce(&format!("{base}/cut/announce"), &request(), &config());
    assert!(
        matches!(&result, Err(Error::Response(ResponseError::Bencode(e))) if e.offset == 22),
        "{result:?}"
    );
}

#[test]
fn error_statuses() {
    let (base, _) = http_server(|line, s| {
        if line.contains("/reason") {
            let body = b"d14:failure reason9:banned IPe";
            let _ = write!(
                s,
                "HTTP/1.1 403 Forbidden\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(body);
        } else if line.contains("/ok-failure") {
            ok_body(s, b"d14:failure reason7:unknowne")
        } else {
            let _ = s
                .write_all(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 5\r\n\r\noops!");
        }
    });
    let result = announce(&format!("{base}/announce"), &request(), &config());
    assert!(
        matches!(result, Err(Error::HttpStatus { status: 500 })),
        "{result:?}"
    );
    let result = announce(&format!("{base}/reason/announce"), &request(), &config());
    assert!(
        matches!(&result, Err(Error::Failure { reason }) if reason == "banned IP"),
        "{result:?}"
    );
    let result = announce(
        &format!("{base}/ok-failure/announce"),
        &request(),
        &config(),
    );
    assert!(
        matches!(&result, Err(Error::Failure { reason }) if reason == "unknown"),
        "{result:?}"
    );
}

#[test]
fn redirect_loop_stops() {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let (base, _) = http_server(move |_, s| {
        counter.fetch_add(1, Ordering::SeqCst);
        let _ =
            s.write_all(b"HTTP/1.1 302 Found\r\nLocation: /announce\r\nContent-Length: 0\r\n\r\n");
    });
    let result = timed(TIMEOUT + Duration::from_secs(1), || {
        announce(&format!("{base}/announce"), &request(), &config())
    });
    assert!(
        matches!(result, Err(Error::TooManyRedirects { max: 5 })),
        "{result:?}"
    );
    assert_eq!(
        hits.load(Ordering::SeqCst),
        6,
        "the first request and 5 redirects"
    );
}

#[test]
fn refused_connection_is_an_error() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let result = timed(TIMEOUT + Duration::from_secs(1), || {
        announce(
            &format!("http://127.0.0.1:{port}/announce"),
            &request(),
            &config(),
        )
    });
    assert!(
        matches!(&result, Err(Error::Io(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused),
        "{result:?}"
    );
}

#[test]
fn https_handshake_with_a_plain_http_server_fails_fast() {
    let (base, _) = http_server(|_, s| ok_body(s, GOOD));
    let url = format!("{}/announce", base.replacen("http://", "https://", 1));
    let result = timed(TIMEOUT + Duration::from_secs(1), || {
        announce(&url, &request(), &config())
    });
    // rustls sent a ClientHello; the plain server's answer ends the stream.
    assert!(
        matches!(&result, Err(Error::Http(_) | Error::Io(_))),
        "{result:?}"
    );
}
