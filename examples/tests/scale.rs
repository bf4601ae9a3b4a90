//! Many torrents in one process run on a fixed number of threads: the
//! managers are actors of one worker pool, file I/O goes through one disk
//! pool, and every torrent's announces go through one tracker service
//! (issue #15).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use common::*;

/// `count` torrents of one 16 KiB file each (distinct bytes), their data
/// in `data`, announcing to `tracker` if given; returns the `.torrent`
/// paths.
fn small_torrents(dir: &Path, data: &Path, count: usize, tracker: Option<&str>) -> Vec<PathBuf> {
    std::fs::create_dir_all(data).unwrap();
    let torrents = dir.join("torrents");
    std::fs::create_dir_all(&torrents).unwrap();
    (0..count)
        .map(|i| {
            let file = data.join(format!("t{i:05}.bin"));
            std::fs::write(&file, rustico_testkit::pseudo_random_bytes(i as u64, 16384)).unwrap();
            let mut builder = rustico_metainfo::TorrentBuilder::new(&file).piece_length(16384);
            if let Some(url) = tracker {
                builder = builder.tracker(url).unwrap();
            }
            let t = builder.build(|_| {}, &AtomicBool::new(false)).unwrap();
            let path = torrents.join(format!("t{i:05}.torrent"));
            std::fs::write(&path, t.as_bytes()).unwrap();
            path
        })
        .collect()
}

/// An HTTP tracker on 127.0.0.1 (port printed as `READY PORT`) that
/// answers every announce with no peers and a 30-minute interval, and
/// answers `GET /started` with the number of distinct info-hashes it has
/// had a `started` announce for.
const COUNTING_TRACKER: &str = r#"
import http.server, threading
started = set()
lock = threading.Lock()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/started":
            with lock:
                body = b"%d" % len(started)
        else:
            query = self.path.split("?", 1)[-1].split("&")
            fields = dict(p.split("=", 1) for p in query if "=" in p)
            if fields.get("event") == "started" and "info_hash" in fields:
                with lock:
                    started.add(fields["info_hash"])
            body = b"d8:intervali1800e5:peers0:e"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
print("READY %d" % srv.server_address[1], flush=True)
srv.serve_forever()
"#;

/// The [`COUNTING_TRACKER`], running.
struct CountingTracker {
    _guard: ChildGuard,
    port: u16,
}

impl CountingTracker {
    fn start() -> CountingTracker {
        let mut guard = rustico_testkit::spawn_python(COUNTING_TRACKER, &[]).unwrap();
        let mut line = String::new();
        BufReader::new(guard.0.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("READY ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("the tracker printed {line:?}, not READY PORT"));
        CountingTracker {
            _guard: guard,
            port,
        }
    }

    fn announce_url(&self) -> String {
        format!("http://127.0.0.1:{}/announce", self.port)
    }

    /// Torrents it has had `started` from.
    fn started(&self) -> usize {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream
            .write_all(b"GET /started HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            .unwrap();
        let mut reply = String::new();
        stream.read_to_string(&mut reply).unwrap();
        let body = reply.split("\r\n\r\n").nth(1).unwrap_or_default();
        body.trim()
            .parse()
            .unwrap_or_else(|_| panic!("tracker answered {reply:?}"))
    }
}

/// Threads of a seeding process: the most seen while it started, and the
/// count once it settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Threads {
    peak: u64,
    settled: u64,
}

/// Seeds `count` torrents from one process until every one found its
/// piece on disk (and, with a `tracker`, the tracker had every torrent's
/// `started`), then a second more; returns the process's threads.
fn threads_seeding(count: usize, tracker: Option<&CountingTracker>) -> Threads {
    let dir = rustico_testkit::temp_dir().unwrap();
    let data = dir.path().join("data");
    let url = tracker.map(CountingTracker::announce_url);
    let torrents = small_torrents(dir.path(), &data, count, url.as_deref());
    let mut seed = ChildGuard(
        rustico()
            .arg("download")
            .args(&torrents)
            .arg("-o")
            .arg(&data)
            .args(["--seed", "--port", "0"])
            .arg("--config")
            .arg(config_in(dir.path()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let start = Instant::now();
    let mut peak = 0;
    loop {
        peak = peak.max(proc_status(seed.0.id(), "Threads:"));
        let log = std::fs::read_to_string(log_file(dir.path())).unwrap_or_default();
        let ready = log.matches("1 of 1 pieces already on disk").count();
        let announced = tracker.map_or(count, CountingTracker::started);
        if ready == count && announced == count {
            break;
        }
        assert!(
            seed.0.try_wait().unwrap().is_none(),
            "rustico exited with {count} torrents"
        );
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "in 60 s, {ready} of {count} torrents started, {announced} announced `started`"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_secs(1));
    let settled = proc_status(seed.0.id(), "Threads:");
    assert!(settled > 0);
    Threads {
        peak: peak.max(settled),
        settled,
    }
}

/// Before the worker pool: four threads a torrent (its manager, two
/// savers, a resume writer), 4,000 more for 1,000 torrents.
#[test]
fn a_thousand_torrents_run_on_the_same_threads_as_ten() {
    let ten = threads_seeding(10, None).settled;
    let thousand = threads_seeding(1000, None).settled;
    assert_eq!(
        ten, thousand,
        "10 torrents: {ten} threads; 1,000: {thousand}"
    );
    assert!(ten <= 32, "{ten} threads");
}

/// Before the tracker service: a tracker thread per torrent, and a
/// thread per announce attempt. Now one scheduler and a fixed pool of
/// announce workers serve every torrent: once started, 1,000 torrents
/// announcing to a tracker run on the threads of 10, the tracker heard
/// `started` from each of the 1,000, and the count never went past the
/// issue's 32 on the way (start-up has a few short-lived threads whatever
/// the trackers: loading the torrent files, ureq's resolver).
#[test]
fn a_thousand_torrents_with_a_tracker_run_on_the_same_threads_as_ten() {
    let ten = threads_seeding(10, Some(&CountingTracker::start()));
    let thousand = threads_seeding(1000, Some(&CountingTracker::start()));
    eprintln!("10 torrents: {ten:?}; 1,000: {thousand:?}");
    assert_eq!(
        ten.settled, thousand.settled,
        "10 torrents with a tracker: {ten:?} threads; 1,000: {thousand:?}"
    );
    assert!(thousand.peak <= 32, "1,000 torrents: {thousand:?} threads");
}
