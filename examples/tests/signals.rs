//! SIGTERM and SIGINT stop a download cleanly: the tracker is told
//! `stopped`, the resume record is written, and the process exits with a
//! message instead of dying.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{config_in, create_torrent, rustico, wait_with_timeout, ChildGuard};

/// A tracker that records every announce's query string and answers with an
/// empty peer list, so the download waits (and is then interrupted).
fn recording_tracker() -> (String, mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/announce", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let line = String::from_utf8_lossy(&request)
                .lines()
                .next()
                .unwrap_or_default()
                .to_string();
            let body = b"d8:intervali1800e5:peers0:e";
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(body);
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    (url, rx)
}

fn wait_for_event(rx: &mpsc::Receiver<String>, event: &str) -> String {
    let wanted = format!("event={event}");
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("no announce with {wanted}"));
        if line.contains(&wanted) {
            return line;
        }
    }
}

fn interrupted_download_stops_cleanly(signal: &str) {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("data.bin");
    std::fs::write(&src, rustico_testkit::pseudo_random_bytes(7, 300_000)).unwrap();
    let (tracker, announces) = recording_tracker();
    let torrent = create_torrent(
        &src,
        &dir.path().join("data.torrent"),
        &["--tracker", &tracker],
    );
    let out = dir.path().join("out");
    let config = config_in(dir.path());
    let child = rustico()
        .arg("download")
        .arg(&torrent)
        .arg("-o")
        .arg(&out)
        .args(["--port", "0"])
        .arg("--config")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = ChildGuard(child);
    wait_for_event(&announces, "started");

    let status = Command::new("kill")
        .args([signal, &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());

    wait_for_event(&announces, "stopped");
    let exit = wait_with_timeout(&mut child.0, Duration::from_secs(20), "rustico download");
    assert_eq!(
        exit.code(),
        Some(1),
        "an unfinished download exits non-zero"
    );
    let mut stderr = String::new();
    child
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(stderr.contains("interrupted"), "stderr: {stderr}");
    let resume_written = std::fs::read_dir(&out)
        .unwrap()
        .filter_map(Result::ok)
        .any(|e| e.file_name().to_string_lossy().ends_with(".rustico-resume"));
    assert!(resume_written, "no resume record in {}", out.display());
}

#[test]
fn sigterm_stops_a_download_cleanly() {
    interrupted_download_stops_cleanly("-TERM");
}

#[test]
fn sigint_stops_a_download_cleanly() {
    interrupted_download_stops_cleanly("-INT");
}
