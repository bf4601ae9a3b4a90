//! Many torrents in one process run on a fixed number of threads: the
//! managers are actors of one worker pool, and file I/O goes through one
//! disk pool (issue #15).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use common::*;

/// `count` torrents of one 16 KiB file each (distinct bytes), their data
/// in `data`; returns the `.torrent` paths.
fn small_torrents(dir: &Path, data: &Path, count: usize) -> Vec<PathBuf> {
    std::fs::create_dir_all(data).unwrap();
    let torrents = dir.join("torrents");
    std::fs::create_dir_all(&torrents).unwrap();
    (0..count)
        .map(|i| {
            let file = data.join(format!("t{i:05}.bin"));
            std::fs::write(&file, rustico_testkit::pseudo_random_bytes(i as u64, 16384)).unwrap();
            let t = rustico_metainfo::TorrentBuilder::new(&file)
                .piece_length(16384)
                .build(|_| {}, &AtomicBool::new(false))
                .unwrap();
            let path = torrents.join(format!("t{i:05}.torrent"));
            std::fs::write(&path, t.as_bytes()).unwrap();
            path
        })
        .collect()
}

/// Seeds `count` torrents from one process until every one found its
/// piece on disk, then a second more; returns the process's threads.
fn threads_seeding(count: usize) -> u64 {
    let dir = rustico_testkit::temp_dir().unwrap();
    let data = dir.path().join("data");
    let torrents = small_torrents(dir.path(), &data, count);
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
    loop {
        let log = std::fs::read_to_string(log_file(dir.path())).unwrap_or_default();
        let ready = log.matches("1 of 1 pieces already on disk").count();
        if ready == count {
            break;
        }
        assert!(
            seed.0.try_wait().unwrap().is_none(),
            "rustico exited with {count} torrents"
        );
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{ready} of {count} torrents started in 60 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(1));
    let threads = proc_status(seed.0.id(), "Threads:");
    assert!(threads > 0);
    threads
}

/// Before the worker pool: four threads a torrent (its manager, two
/// savers, a resume writer), 4,000 more for 1,000 torrents.
#[test]
fn a_thousand_torrents_run_on_the_same_threads_as_ten() {
    let ten = threads_seeding(10);
    let thousand = threads_seeding(1000);
    assert_eq!(
        ten, thousand,
        "10 torrents: {ten} threads; 1,000: {thousand}"
    );
    assert!(ten <= 32, "{ten} threads");
}
