//! Kill test: a child process writing pieces (and saving the resume file
//! every few pieces) is SIGKILLed at a random moment; on reopen, every piece
//! reported valid, by the resume file's fast path or by recheck, has the
//! right bytes, and the resume file is never torn.
//!
//! The child is this test binary itself, re-run with an environment variable
//! that turns `kill_child_writer` from a no-op into the writer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{layout_over, no_progress, piece_of};
use rustico_storage::{Options, ResumeError, Storage};

const CHILD_ENV: &str = "RUSTICO_STORAGE_KILL_CHILD_DIR";
const LENGTHS: [u64; 6] = [3_000_000, 0, 9_000_000, 77, 7_500_000, 5_400_000];
const PIECE: u64 = 32 * 1024;

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The child: resumes what is there, then writes missing pieces in random
/// order, saving the resume file every 3 pieces; once complete, keeps
/// rewriting random pieces and saving, until it is killed.
#[test]
fn kill_child_writer() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return; // Not the child: nothing to do.
    };
    let dir = Path::new(&dir);
    let (layout, data) = layout_over(&LENGTHS, PIECE, 99);
    let storage = Storage::open(dir.join("dl"), layout.clone(), Options::default()).unwrap();
    let resume = dir.join("resume");
    let mut have = storage
        .resume_or_recheck(&resume, &no_progress, &AtomicBool::new(false))
        .unwrap()
        .have;
    let mut rng = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut since_save = 0;
    // Tell the parent the (slow, debug-built) setup is over: the kill
    // delay counts from here.
    std::fs::write(dir.join("ready"), b"").unwrap();
    loop {
        let missing: Vec<u32> = (0..layout.num_pieces()).filter(|&p| !have.get(p)).collect();
        let piece = if missing.is_empty() {
            (splitmix(&mut rng) % u64::from(layout.num_pieces())) as u32
        } else {
            missing[(splitmix(&mut rng) % missing.len() as u64) as usize]
        };
        storage
            .write_piece(piece, piece_of(&layout, &data, piece))
            .unwrap();
        have.set(piece);
        since_save += 1;
        if since_save == 3 {
            storage.save_resume(&resume, &have).unwrap();
            since_save = 0;
        }
    }
}

#[test]
fn killed_writer_never_leaves_a_bad_piece_marked_valid() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return; // The child runs only the writer.
    }
    let dir = tempfile::tempdir().unwrap();
    let (layout, data) = layout_over(&LENGTHS, PIECE, 99);
    let exe = std::env::current_exe().unwrap();
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut rng = seed;
    let mut last_count = 0;
    let mut kills_while_incomplete = 0;
    for round in 0..8 {
        if last_count == layout.num_pieces() as usize {
            // Complete: start again from an empty folder, so most kills
            // land in the middle of a download.
            std::fs::remove_dir_all(dir.path().join("dl")).unwrap();
            std::fs::remove_file(dir.path().join("resume")).unwrap();
            last_count = 0;
        }
        let mut child = rustico_testkit::ChildGuard(
            Command::new(&exe)
                .args([
                    "--exact",
                    "kill_child_writer",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(CHILD_ENV, dir.path())
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap(),
        );
        let ready = dir.path().join("ready");
        let started = std::time::Instant::now();
        while !ready.exists() {
            assert!(
                child.0.try_wait().unwrap().is_none(),
                "child died before ready (seed {seed})"
            );
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "child never ready"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        std::fs::remove_file(&ready).unwrap();
        let delay = Duration::from_millis(splitmix(&mut rng) % 300);
        std::thread::sleep(delay);
        // The writer never finishes on its own: it must still be running.
        assert!(
            child.0.try_wait().unwrap().is_none(),
            "child exited early (seed {seed})"
        );
        child.0.kill().unwrap(); // SIGKILL
        child.0.wait().unwrap();
        drop(child);

        let storage =
            Storage::open(dir.path().join("dl"), layout.clone(), Options::default()).unwrap();
        let resume = dir.path().join("resume");
        match storage.load_resume(&resume) {
            Ok(check) => {
                for piece in 0..layout.num_pieces() {
                    if check.have.get(piece) {
                        assert_eq!(
                            storage.read_piece(piece).unwrap(),
                            piece_of(&layout, &data, piece),
                            "round {round}: piece {piece} trusted from the resume file is wrong (seed {seed})"
                        );
                    }
                }
            }
            // Killed before the first save: no resume file yet.
            Err(ResumeError::File(_)) if !resume.exists() => {}
            Err(e) => panic!("round {round}: resume file unusable after a kill: {e} (seed {seed})"),
        }
        let resumed = storage
            .resume_or_recheck(&resume, &no_progress, &AtomicBool::new(false))
            .unwrap();
        let rechecked = storage
            .recheck(&no_progress, &AtomicBool::new(false))
            .unwrap();
        for piece in 0..layout.num_pieces() {
            if resumed.have.get(piece) || rechecked.get(piece) {
                assert_eq!(
                    storage.read_piece(piece).unwrap(),
                    piece_of(&layout, &data, piece),
                    "round {round}: piece {piece} reported valid is wrong (seed {seed})"
                );
            }
            // Whatever the fast path trusts, a full recheck confirms.
            assert!(!resumed.have.get(piece) || rechecked.get(piece));
        }
        let count = rechecked.count() as usize;
        assert!(
            count >= last_count,
            "round {round}: valid pieces went from {last_count} to {count}"
        );
        last_count = count;
        if count < layout.num_pieces() as usize {
            kills_while_incomplete += 1;
        }
        eprintln!(
            "round {round}: killed after {delay:?}, {count} of {} pieces valid",
            layout.num_pieces()
        );
    }
    assert!(
        kills_while_incomplete > 0,
        "no kill landed mid-download (seed {seed})"
    );
}
