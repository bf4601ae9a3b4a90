//! A torrent with unsafe and duplicate names (issue 21): libtorrent seeds
//! it, rustico downloads it, every file lands under its sanitised name
//! inside the torrent's folder, and nothing lands anywhere else.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;

/// `argv`: torrent out, stream out, save path, port. Writes a torrent whose
/// paths try to escape (`..`, separators inside an element, an absolute
/// path, a Windows device name) and collide (`dup.txt` twice), plus the
/// byte stream its pieces hash; places each file where libtorrent's own
/// sanitising puts it, seeds on 127.0.0.1 and prints READY.
const SCRIPT: &str = r#"
import libtorrent as lt, hashlib, random, sys, os, time
out, stream_out, save, port = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
paths = [["..", "..", "escape.txt"], ["a/b", "c.txt"], ["dup.txt"], ["dup.txt"],
         ["/", "abs.txt"], ["CON"], ["sub", "..", "up.txt"]]
rng = random.Random(7)
sizes = [5000, 7000, 3000, 4000, 2500, 100, 6000]
data = bytes(rng.getrandbits(8) for _ in range(sum(sizes)))
piece = 16384
pieces = b"".join(hashlib.sha1(data[i:i + piece]).digest() for i in range(0, len(data), piece))
info = {"name": "album", "piece length": piece, "pieces": pieces,
        "files": [{"path": p, "length": n} for p, n in zip(paths, sizes)]}
open(out, "wb").write(lt.bencode({"info": info}))
open(stream_out, "wb").write(data)
ti = lt.torrent_info(out)
fs = ti.files()
for i in range(fs.num_files()):
    dest = os.path.join(save, fs.file_path(i))
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    off = fs.file_offset(i)
    open(dest, "wb").write(data[off:off + fs.file_size(i)])
ses = lt.session({
    "listen_interfaces": "127.0.0.1:%d" % port,
    "enable_dht": False, "enable_lsd": False, "enable_upnp": False, "enable_natpmp": False,
    "enable_outgoing_utp": False, "enable_incoming_utp": False,
    "allow_multiple_connections_per_ip": True,
})
atp = lt.add_torrent_params()
atp.ti = ti
atp.save_path = save
atp.flags |= lt.torrent_flags.seed_mode
atp.flags &= ~(lt.torrent_flags.auto_managed | lt.torrent_flags.paused)
ses.add_torrent(atp)
print("READY", flush=True)
time.sleep(120)
"#;

/// Every regular file below `root`, relative to it.
fn files_below(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                found.push(path.strip_prefix(root).unwrap().to_path_buf());
            }
        }
    }
    found.sort();
    found
}

#[test]
fn a_torrent_with_unsafe_and_duplicate_names_downloads_under_safe_names() {
    if !rustico_testkit::require_libtorrent() {
        return;
    }
    let dir = rustico_testkit::temp_dir().unwrap();
    let torrent = dir.path().join("hostile.torrent");
    let stream = dir.path().join("stream.bin");
    let seed_dir = dir.path().join("seed");
    let port = rustico_testkit::free_port();
    let mut seeder = rustico_testkit::spawn_python(
        SCRIPT,
        &[
            torrent.to_str().unwrap(),
            stream.to_str().unwrap(),
            seed_dir.to_str().unwrap(),
            &port.to_string(),
        ],
    )
    .unwrap();
    let mut line = String::new();
    BufReader::new(seeder.0.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "READY");

    // `info` loads it, and says what it renamed.
    let info = rustico().arg("info").arg(&torrent).output().unwrap();
    assert!(
        info.status.success(),
        "{}",
        String::from_utf8_lossy(&info.stderr)
    );
    let warnings = String::from_utf8_lossy(&info.stderr);
    assert!(
        warnings.contains("warning"),
        "no rename reported: {warnings}"
    );

    let config = config_in(dir.path());
    let out_dir = dir.path().join("download");
    let mut cmd = rustico();
    cmd.arg("download")
        .arg(&torrent)
        .arg("-o")
        .arg(&out_dir)
        .args(["--port", "0"])
        .args(["--peer", &format!("127.0.0.1:{port}")])
        .arg("--config")
        .arg(&config);
    let out = output_with_timeout(cmd, Duration::from_secs(60), "rustico download");
    assert!(
        out.status.success(),
        "download failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Every file under its sanitised name, with its bytes.
    let parsed = rustico_metainfo::Torrent::from_file(&torrent).unwrap();
    let data = std::fs::read(&stream).unwrap();
    let mut expected: Vec<PathBuf> = Vec::new();
    for file in parsed.files() {
        let relative = parsed.file_path(file);
        let range = file.byte_range();
        let got = std::fs::read(out_dir.join(&relative)).unwrap();
        assert!(
            got == data[range.start as usize..range.end as usize],
            "{} differs",
            relative.display()
        );
        expected.push(relative);
    }
    expected.sort();
    // The two dup.txt are two files; nothing left the torrent's folder.
    assert_eq!(parsed.files().len(), 7);
    // (Besides rustico's own resume record, `.<hash>.rustico-resume`.)
    let on_disk: Vec<PathBuf> = files_below(&out_dir)
        .into_iter()
        .filter(|p| !p.to_string_lossy().ends_with(".rustico-resume"))
        .collect();
    assert_eq!(
        on_disk, expected,
        "exactly the torrent's files, nothing else"
    );
    assert!(expected.iter().all(|p| p.starts_with("album")));
    assert!(!dir.path().join("escape.txt").exists());
    assert!(!Path::new("/abs.txt").exists());
}
