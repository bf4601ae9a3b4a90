//! The resume file decoder, through `Storage::load_resume` on a file
//! holding the input, for one small layout set up once per process in a
//! folder of its own (one file on disk, one padding file, one missing file;
//! 21 pieces). Input: a flag byte, then the file. Flag bit 0 writes this
//! layout's fingerprint at bytes 8..28 and bit 1 appends the file's SHA-1
//! checksum, so inputs get past those two gates. Property: an accepted
//! file gives sets of this layout's size, and no piece is both had and
//! left to recheck.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rustico_storage::{Bitfield, FileEntry, Layout, Options, Storage};
use sha1::{Digest, Sha1};

const PREFIX: &str = "rustico-fuzz-resume-";

struct Fixture {
    storage: Storage,
    resume: PathBuf,
    fingerprint: [u8; 20],
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        // libFuzzer exits without running destructors: name the folder by
        // process id and remove those of processes that are gone.
        let base = ["/dev/shm".into(), std::env::temp_dir()]
            .into_iter()
            .find(|base: &PathBuf| base.is_dir())
            .expect("a temporary folder");
        for entry in std::fs::read_dir(&base).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name.strip_prefix(PREFIX) {
                if !PathBuf::from(format!("/proc/{pid}")).exists() {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
        let dir = base.join(format!("{PREFIX}{}", std::process::id()));
        let files = vec![
            FileEntry::new(["t", "a.bin"], 100),
            FileEntry::padding(["t", ".pad", "28"], 28),
            FileEntry::new(["t", "c.bin"], 35),
        ];
        let layout = Layout::new(files, 8, vec![[0; 20]; 21]).expect("a valid layout");
        let storage =
            Storage::open(dir.clone(), layout, Options::default()).expect("storage opens");
        std::fs::create_dir_all(dir.join("t")).expect("folder");
        std::fs::write(storage.file_path(0), [0u8; 100]).expect("file written");
        let resume = dir.join("t.resume");
        storage
            .save_resume(&resume, &Bitfield::new(21))
            .expect("resume saved");
        let saved = std::fs::read(&resume).expect("resume read");
        let fingerprint = saved[8..28].try_into().expect("20 bytes");
        Fixture {
            storage,
            resume,
            fingerprint,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, body)) = data.split_first() else {
        return;
    };
    let f = fixture();
    let mut file = body.to_vec();
    if flags & 1 != 0 && file.len() >= 28 {
        file[8..28].copy_from_slice(&f.fingerprint);
    }
    if flags & 2 != 0 {
        let checksum: [u8; 20] = Sha1::digest(&file).into();
        file.extend_from_slice(&checksum);
    }
    std::fs::write(&f.resume, &file).expect("resume file written");
    let Ok(check) = f.storage.load_resume(&f.resume) else {
        return;
    };
    let pieces = f.storage.layout().num_pieces();
    assert_eq!(
        (check.have.len(), check.needs_recheck.len()),
        (pieces, pieces)
    );
    assert!(check
        .have
        .iter_set()
        .all(|piece| !check.needs_recheck.get(piece)));
    assert!(check.changed_files.iter().all(|&file| file < 3));
});
