//! Differential tests against mktorrent, an independent torrent creator:
//! for the same files, piece length and fields, our torrent has the same
//! info-hash, and (with `created by` set to mktorrent's and no date) the
//! same bytes; mktorrent's torrents parse here with the layout we compute.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::sync::atomic::AtomicBool;

use common::make_shapes;
use rustico_metainfo::Torrent;

#[test]
fn mktorrent_agrees() {
    if !rustico_testkit::require("mktorrent") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let shapes = make_shapes(&dir.path().join("data"), true);
    let cancel = AtomicBool::new(false);
    for (i, shape) in shapes.iter().enumerate() {
        // mktorrent's smallest piece length is 2^15.
        let shape = &common::Shape {
            piece_length: shape.piece_length.max(32 * 1024),
            ..shape.clone()
        };
        let out = dir.path().join(format!("{i}.torrent"));
        let mut cmd = Command::new("mktorrent");
        cmd.arg("-d") // no creation date, so the bytes can match
            .arg("-t")
            .arg("2")
            .arg("-l")
            .arg(shape.piece_length.trailing_zeros().to_string())
            .arg("-o")
            .arg(&out);
        for tier in &shape.tiers {
            cmd.arg("-a").arg(tier.join(","));
        }
        for seed in &shape.web_seeds {
            cmd.arg("-w").arg(seed);
        }
        if let Some(comment) = &shape.comment {
            cmd.arg("-c").arg(comment);
        }
        if shape.private {
            cmd.arg("-p");
        }
        let status = cmd.arg(&shape.source).output().unwrap();
        assert!(status.status.success(), "{}: {status:?}", shape.label);
        let theirs_bytes = std::fs::read(&out).unwrap();
        let theirs = Torrent::from_bytes(&theirs_bytes).unwrap();

        let ours = shape
            .builder()
            .created_by(theirs.created_by().unwrap())
            .build(|_| {}, &cancel)
            .unwrap();
        assert_eq!(ours.info_hash(), theirs.info_hash(), "{}", shape.label);
        assert_eq!(ours.info_bytes(), theirs.info_bytes(), "{}", shape.label);
        assert_eq!(ours.trackers(), theirs.trackers(), "{}", shape.label);
        assert_eq!(ours.web_seeds(), theirs.web_seeds(), "{}", shape.label);
        assert_eq!(ours.files(), theirs.files(), "{}", shape.label);
        assert_eq!(ours.num_pieces(), theirs.num_pieces(), "{}", shape.label);
        assert_eq!(ours.is_private(), shape.private, "{}", shape.label);
        assert!(
            ours.as_bytes() == theirs_bytes.as_slice(),
            "{}: bytes differ\n ours {}\n mk   {}",
            shape.label,
            String::from_utf8_lossy(ours.as_bytes()),
            String::from_utf8_lossy(&theirs_bytes)
        );
    }
}
