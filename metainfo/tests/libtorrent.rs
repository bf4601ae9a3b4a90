//! Differential tests against libtorrent 2.0 (Debian's `python3-libtorrent`):
//! torrents libtorrent creates (v1-only and its default hybrid v1+v2 with
//! padding files) parse here with the info-hash, files, offsets, piece
//! count, trackers and web seeds libtorrent reports; torrents we create
//! are byte-identical to libtorrent's v1 output for the same files and
//! fields, and libtorrent loads them with the info-hash we report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use common::{json_string, make_shapes, unhex, Shape};
use rustico_metainfo::Torrent;

const SCRIPT: &str = r#"
import json, os, sys
import libtorrent as lt

def inspect(path):
    ti = lt.torrent_info(path)
    fs = ti.files()
    print("T\t%s\t%s\t%d\t%d\t%d\t%s\t%d\t%d" % (path, str(ti.info_hashes().v1), ti.num_pieces(),
          ti.piece_length(), ti.total_size(), ti.name().encode().hex(), fs.num_files(), int(ti.priv())))
    for i in range(fs.num_files()):
        pad = 1 if fs.file_flags(i) & lt.file_storage.flag_pad_file else 0
        print("F\t%s\t%d\t%d\t%d" % (fs.file_path(i).encode().hex(), fs.file_size(i), fs.file_offset(i), pad))
    for t in ti.trackers():
        print("R\t%d\t%s" % (t.tier, t.url))
    for w in ti.web_seeds():
        print("W\t%s" % w["url"])

def create(job):
    fs = lt.file_storage()
    if job["files"] is None:
        lt.add_files(fs, job["src"])
    else:
        for rel, size in job["files"]:
            fs.add_file(rel, size)
    flags = lt.create_torrent.v1_only if job["v1"] else 0
    ct = lt.create_torrent(fs, job["piece_length"], flags=flags)
    for tier, urls in enumerate(job["tiers"]):
        for url in urls:
            ct.add_tracker(url, tier)
    for url in job["web_seeds"]:
        ct.add_url_seed(url)
    if job["comment"] is not None:
        ct.set_comment(job["comment"])
    if job["creator"] is not None:
        ct.set_creator(job["creator"])
    ct.set_priv(job["private"])
    lt.set_piece_hashes(ct, os.path.dirname(job["src"]))
    with open(job["out"], "wb") as f:
        f.write(lt.bencode(ct.generate()))

mode, arg = sys.argv[1], sys.argv[2]
if mode == "create":
    for job in json.load(open(arg)):
        create(job)
        inspect(job["out"])
else:
    for path in arg.split("\n"):
        inspect(path)
"#;

/// What libtorrent reports about one torrent file.
#[derive(Debug, Default, PartialEq)]
struct Report {
    info_hash: String,
    num_pieces: u64,
    piece_length: u64,
    total: u64,
    name: String,
    private: bool,
    /// (path including the torrent's folder, size, offset, padding)
    files: Vec<(String, u64, u64, bool)>,
    /// (tier, url)
    trackers: Vec<(u32, String)>,
    web_seeds: Vec<String>,
}

fn parse_reports(out: &str) -> HashMap<PathBuf, Report> {
    let mut reports = HashMap::new();
    let mut current: Option<(PathBuf, Report)> = None;
    for line in out.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        match f[0] {
            "T" => {
                if let Some((p, r)) = current.take() {
                    reports.insert(p, r);
                }
                current = Some((
                    PathBuf::from(f[1]),
                    Report {
                        info_hash: f[2].into(),
                        num_pieces: f[3].parse().unwrap(),
                        piece_length: f[4].parse().unwrap(),
                        total: f[5].parse().unwrap(),
                        name: String::from_utf8(unhex(f[6])).unwrap(),
                        private: f[8] == "1",
                        ..Report::default()
                    },
                ));
            }
            "F" => current.as_mut().unwrap().1.files.push((
                String::from_utf8(unhex(f[1])).unwrap(),
                f[2].parse().unwrap(),
                f[3].parse().unwrap(),
                f[4] == "1",
            )),
            "R" => current
                .as_mut()
                .unwrap()
                .1
                .trackers
                .push((f[1].parse().unwrap(), f[2].into())),
            "W" => current.as_mut().unwrap().1.web_seeds.push(f[1].into()),
            other => panic!("unexpected line from python: {other}"),
        }
    }
    if let Some((p, r)) = current {
        reports.insert(p, r);
    }
    // libtorrent reorders trackers within a tier (it may try UDP first);
    // the tier is what BEP 12 fixes.
    for report in reports.values_mut() {
        report.trackers.sort();
    }
    reports
}

/// The same report, computed from our parse.
fn our_report(t: &Torrent) -> Report {
    Report {
        info_hash: t.info_hash().to_string(),
        num_pieces: u64::from(t.num_pieces()),
        piece_length: u64::from(t.piece_length()),
        total: t.total_length(),
        name: t.name().into(),
        private: t.is_private(),
        files: t
            .files()
            .iter()
            .map(|f| {
                let path = t.file_path(f).to_str().unwrap().to_string();
                (path, f.length, f.offset, f.is_padding())
            })
            .collect(),
        trackers: t
            .trackers()
            .iter()
            .enumerate()
            .flat_map(|(tier, urls)| urls.iter().map(move |u| (tier as u32, u.clone())))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect(),
        // libtorrent appends `/` to a multi-file torrent's web seeds (BEP 19
        // takes them as folders); we report them as written.
        web_seeds: t
            .web_seeds()
            .iter()
            .map(|u| match t.is_multi_file() && !u.ends_with('/') {
                true => format!("{u}/"),
                false => u.clone(),
            })
            .collect(),
    }
}

fn job_json(shape: &Shape, out: &Path, v1: bool, files: Option<&Torrent>) -> String {
    let strings = |list: &[String]| {
        let items: Vec<String> = list.iter().map(|s| json_string(s)).collect();
        format!("[{}]", items.join(","))
    };
    let tiers: Vec<String> = shape.tiers.iter().map(|t| strings(t)).collect();
    let opt = |o: &Option<String>| o.as_deref().map(json_string).unwrap_or("null".into());
    let files = match files {
        None => "null".to_string(),
        Some(t) => {
            let items: Vec<String> = t
                .files()
                .iter()
                .map(|f| {
                    let path = t.file_path(f).to_str().unwrap().to_string();
                    format!("[{},{}]", json_string(&path), f.length)
                })
                .collect();
            format!("[{}]", items.join(","))
        }
    };
    format!(
        r#"{{"src":{},"out":{},"v1":{},"piece_length":{},"private":{},"comment":{},"creator":{},"tiers":[{}],"web_seeds":{},"files":{}}}"#,
        json_string(shape.source.to_str().unwrap()),
        json_string(out.to_str().unwrap()),
        v1,
        shape.piece_length,
        shape.private,
        opt(&shape.comment),
        opt(&shape.creator),
        tiers.join(","),
        strings(&shape.web_seeds),
        files,
    )
}

#[test]
fn libtorrent_agrees_both_ways() {
    if !rustico_testkit::require_libtorrent() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let shapes = make_shapes(&dir.path().join("data"), false);
    let out_dir = dir.path().join("torrents");
    std::fs::create_dir_all(&out_dir).unwrap();
    let cancel = AtomicBool::new(false);

    // Ours first (without a date), so libtorrent can be given our file order.
    let ours: Vec<Torrent> = shapes
        .iter()
        .map(|s| s.builder().build(|_| {}, &cancel).unwrap())
        .collect();
    let mut jobs = Vec::new();
    for (i, (shape, ours)) in shapes.iter().zip(&ours).enumerate() {
        jobs.push(job_json(
            shape,
            &out_dir.join(format!("{i}-v1.torrent")),
            true,
            Some(ours),
        ));
        jobs.push(job_json(
            shape,
            &out_dir.join(format!("{i}-hybrid.torrent")),
            false,
            None,
        ));
    }
    let spec = dir.path().join("jobs.json");
    std::fs::write(&spec, format!("[{}]", jobs.join(","))).unwrap();
    let reports = parse_reports(
        &rustico_testkit::run_python(SCRIPT, &["create", spec.to_str().unwrap()]).unwrap(),
    );
    assert_eq!(reports.len(), 2 * shapes.len());

    let mut padding_files_seen = 0;
    let mut our_paths = Vec::new();
    for (i, (shape, ours)) in shapes.iter().zip(&ours).enumerate() {
        for kind in ["v1", "hybrid"] {
            let path = out_dir.join(format!("{i}-{kind}.torrent"));
            let theirs = &reports[&path];
            let parsed = Torrent::from_file(&path).unwrap();
            assert_eq!(&our_report(&parsed), theirs, "{} ({kind})", shape.label);
            assert_eq!(parsed.is_hybrid(), kind == "hybrid", "{}", shape.label);
            padding_files_seen += parsed.files().iter().filter(|f| f.is_padding()).count();
            // Derived views agree with the file list.
            let sum: u64 = parsed.files().iter().map(|f| f.length).sum();
            assert_eq!(sum, parsed.total_length());
            let last = parsed.num_pieces().checked_sub(1);
            if let Some(last) = last {
                let expected_last =
                    parsed.total_length() - u64::from(last) * u64::from(parsed.piece_length());
                assert_eq!(parsed.piece_size(last).map(u64::from), Some(expected_last));
            }
        }

        // Byte for byte: our builder given libtorrent's creation date.
        let lt_v1_path = out_dir.join(format!("{i}-v1.torrent"));
        let lt_bytes = std::fs::read(&lt_v1_path).unwrap();
        let date = Torrent::from_bytes(&lt_bytes)
            .unwrap()
            .creation_date()
            .unwrap();
        let dated = shape
            .builder()
            .creation_date(date)
            .build(|_| {}, &cancel)
            .unwrap();
        assert_eq!(dated.info_hash(), ours.info_hash());
        assert!(
            dated.as_bytes() == lt_bytes.as_slice(),
            "{}: ours and libtorrent's differ:\n ours {}\n lt   {}",
            shape.label,
            String::from_utf8_lossy(dated.as_bytes()),
            String::from_utf8_lossy(&lt_bytes)
        );
        let our_path = out_dir.join(format!("{i}-ours.torrent"));
        std::fs::write(&our_path, ours.as_bytes()).unwrap();
        our_paths.push(our_path);
    }
    assert!(
        padding_files_seen > 5,
        "hybrid torrents should carry padding files"
    );

    // libtorrent loads the torrents we made, with our info-hash and layout.
    let listing: Vec<&str> = our_paths.iter().map(|p| p.to_str().unwrap()).collect();
    let reports = parse_reports(
        &rustico_testkit::run_python(SCRIPT, &["inspect", &listing.join("\n")]).unwrap(),
    );
    for ((shape, ours), path) in shapes.iter().zip(&ours).zip(&our_paths) {
        assert_eq!(&our_report(ours), &reports[path], "{}", shape.label);
    }
}
