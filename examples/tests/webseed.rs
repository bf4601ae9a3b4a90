//! Web seeds (BEP 19): a torrent whose only source is a small HTTP server
//! in this test (std `TcpListener`, `Range` requests) downloads
//! completely, multi-file (after two 503 answers, backed off) and
//! single-file; a server that corrupts one range the first time is caught
//! by the hash check, backed off, and the piece fetched again.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;

/// What the server holds and how it misbehaves.
struct Site {
    files: HashMap<String, Vec<u8>>,
    /// Flip the byte at this offset of this path in the first response
    /// that contains it.
    corrupt_once: Option<(String, u64)>,
    corrupted: AtomicBool,
    range_requests: AtomicUsize,
    /// Answer this many range requests with 503 first.
    fail_first: usize,
}

fn serve(site: Arc<Site>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let site = Arc::clone(&site);
            std::thread::spawn(move || {
                let _ = answer(stream, &site);
            });
        }
    });
    port
}

fn answer(mut stream: TcpStream, site: &Site) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .to_string();
    let mut range = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
            break;
        }
        if let Some(value) = line.to_ascii_lowercase().strip_prefix("range: bytes=") {
            let (a, b) = value.trim().split_once('-').unwrap();
            range = Some((a.parse::<u64>().unwrap(), b.parse::<u64>().unwrap()));
        }
    }
    let Some(body) = site.files.get(&path) else {
        return stream.write_all(
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        );
    };
    let Some((first, last)) = range else {
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes())?;
        return stream.write_all(body);
    };
    if site.range_requests.fetch_add(1, Ordering::SeqCst) < site.fail_first {
        return stream.write_all(
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        );
    }
    let mut part = body[first as usize..=last as usize].to_vec();
    if let Some((bad_path, offset)) = &site.corrupt_once {
        if *bad_path == path
            && (first..=last).contains(offset)
            && !site.corrupted.swap(true, Ordering::SeqCst)
        {
            part[(offset - first) as usize] ^= 0x55;
        }
    }
    let head = format!(
        "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {first}-{last}/{}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len(),
        part.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(&part)
}

fn download_alone(torrent: &Path, out_dir: &Path, config: &Path) -> std::process::Output {
    let mut cmd = rustico();
    cmd.arg("download")
        .arg(torrent)
        .arg("-o")
        .arg(out_dir)
        .args(["--port", "0"])
        .arg("--config")
        .arg(config);
    output_with_timeout(cmd, Duration::from_secs(90), "rustico download")
}

#[test]
fn a_multi_file_torrent_downloads_from_a_web_seed_alone() {
    let dir = rustico_testkit::temp_dir().unwrap();
    let files = content(
        71,
        &[
            ("big.bin", 3_000_000),
            ("sub/odd name.txt", 40_000),
            ("z.bin", 777),
        ],
    );
    write_files(&dir.path().join("src").join("share"), &files);
    let site = Arc::new(Site {
        files: files
            .iter()
            .map(|(name, bytes)| {
                let url_path = name.replace(' ', "%20");
                (format!("/seed/share/{url_path}"), bytes.clone())
            })
            .collect(),
        corrupt_once: None,
        corrupted: AtomicBool::new(false),
        range_requests: AtomicUsize::new(0),
        fail_first: 2,
    });
    let port = serve(Arc::clone(&site));
    let torrent = create_torrent(
        &dir.path().join("src").join("share"),
        &dir.path().join("share.torrent"),
        &[
            "--web-seed",
            &format!("http://127.0.0.1:{port}/seed"),
            "--piece-length",
            "65536",
        ],
    );
    let config = config_in(dir.path());
    let out_dir = dir.path().join("download");
    let out = download_alone(&torrent, &out_dir, &config);
    let log = std::fs::read_to_string(log_file(dir.path())).unwrap_or_default();
    assert!(
        out.status.success(),
        "download failed: {}\n{log}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_files(&out_dir.join("share"), &files);
    assert!(log.contains("using web seed"), "{log}");
    // The first two answers were errors: backed off, then it went on.
    assert!(log.contains("503"), "{log}");
    assert!(log.contains("backing off"), "{log}");
    assert!(site.range_requests.load(Ordering::SeqCst) > 2);
}

#[test]
fn a_corrupt_range_from_a_web_seed_is_caught_and_fetched_again() {
    let dir = rustico_testkit::temp_dir().unwrap();
    let files = content(72, &[("one.bin", 2_500_000)]);
    write_files(&dir.path().join("src"), &files);
    let site = Arc::new(Site {
        files: [("/files/one.bin".to_string(), files[0].1.clone())].into(),
        corrupt_once: Some(("/files/one.bin".into(), 1_000_000)),
        corrupted: AtomicBool::new(false),
        range_requests: AtomicUsize::new(0),
        fail_first: 0,
    });
    let port = serve(Arc::clone(&site));
    let torrent = create_torrent(
        &dir.path().join("src").join("one.bin"),
        &dir.path().join("one.torrent"),
        &[
            "--web-seed",
            &format!("http://127.0.0.1:{port}/files/one.bin"),
            "--piece-length",
            "65536",
        ],
    );
    let config = config_in(dir.path());
    let out_dir = dir.path().join("download");
    let out = download_alone(&torrent, &out_dir, &config);
    let log = std::fs::read_to_string(log_file(dir.path())).unwrap_or_default();
    assert!(
        out.status.success(),
        "download failed: {}\n{log}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        site.corrupted.load(Ordering::SeqCst),
        "the server never corrupted"
    );
    assert_files(&out_dir, &files);
    // Byte 1 000 000 is in piece 15 (64 KiB pieces).
    assert!(
        log.contains(&format!(
            "piece 15 failed its hash check (sent by web seed http://127.0.0.1:{port}/files/one.bin)"
        )),
        "{log}"
    );
    assert!(log.contains("web seed http://127.0.0.1:"), "{log}");
    assert!(log.contains("backing off"), "{log}");
}
