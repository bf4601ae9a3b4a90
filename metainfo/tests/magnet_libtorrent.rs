//! Magnet links against libtorrent: links we print parse in libtorrent to
//! the same info-hash, name, trackers, web seeds and peers; links
//! libtorrent makes from a torrent parse here to that torrent's fields.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::AtomicBool;

use rustico_metainfo::{InfoHash, Magnet, TorrentBuilder};

const SCRIPT: &str = r#"
import sys
import libtorrent as lt
mode = sys.argv[1]
for arg in sys.argv[2:]:
    if mode == "parse":
        p = lt.parse_magnet_uri(arg)
        peers = ["%s|%d" % peer for peer in p.peers]
        print("\t".join([str(p.info_hashes.v1), p.name.encode().hex(),
                         ",".join(t.encode().hex() for t in p.trackers),
                         ",".join(w.encode().hex() for w in p.url_seeds),
                         ",".join(peers)]))
    else:
        print(lt.make_magnet_uri(lt.torrent_info(arg)))
"#;

fn hex_list(items: &[String]) -> String {
    items
        .iter()
        .map(|s| rustico_testkit::hex(s.as_bytes()))
        .collect::<Vec<_>>()
        .join(",")
}

#[test]
fn libtorrent_reads_our_magnets_and_we_read_its() {
    if !rustico_testkit::require_libtorrent() {
        return;
    }
    let magnets = [
        Magnet::new(InfoHash([0x5a; 20])),
        Magnet {
            info_hash: InfoHash(core::array::from_fn(|i| i as u8 * 13)),
            info_hash_v2: None,
            display_name: Some("ünïcode name & co + more/slash".into()),
            trackers: vec![
                "http://127.0.0.1:6969/announce?key=a&b=c".into(),
                "udp://127.0.0.1:6969/announce".into(),
            ],
            peers: vec!["127.0.0.1:6881".into(), "[::1]:6882".into()],
            web_seeds: vec!["http://127.0.0.1:8080/files/".into()],
        },
    ];
    let links: Vec<String> = magnets.iter().map(|m| m.to_string()).collect();
    let mut args = vec!["parse"];
    args.extend(links.iter().map(String::as_str));
    let out = rustico_testkit::run_python(SCRIPT, &args).unwrap();
    for (magnet, line) in magnets.iter().zip(out.lines()) {
        let fields: Vec<&str> = line.split('\t').collect();
        assert_eq!(fields[0], magnet.info_hash.to_string());
        let name = magnet.display_name.clone().unwrap_or_default();
        assert_eq!(fields[1], rustico_testkit::hex(name.as_bytes()));
        assert_eq!(fields[2], hex_list(&magnet.trackers));
        assert_eq!(fields[3], hex_list(&magnet.web_seeds));
        let peers: Vec<String> = magnet
            .peers
            .iter()
            .map(|p| {
                let (host, port) = p.rsplit_once(':').unwrap();
                format!("{}|{port}", host.trim_matches(['[', ']']))
            })
            .collect();
        assert_eq!(fields[4], peers.join(","));
    }

    // The other way: libtorrent's link for a torrent we made.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("some data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("f"), b"content").unwrap();
    let torrent = TorrentBuilder::new(&data)
        // Two tiers: libtorrent may reorder URLs within one.
        .tracker("http://127.0.0.1:1/announce")
        .unwrap()
        .tracker("http://127.0.0.1:2/announce")
        .unwrap()
        .web_seed("http://127.0.0.1:3/")
        .unwrap()
        .build(|_| {}, &AtomicBool::new(false))
        .unwrap();
    let path = dir.path().join("t.torrent");
    std::fs::write(&path, torrent.as_bytes()).unwrap();
    let link = rustico_testkit::run_python(SCRIPT, &["make", path.to_str().unwrap()]).unwrap();
    let parsed = Magnet::parse(link.trim()).unwrap();
    assert_eq!(parsed.info_hash, torrent.info_hash());
    assert_eq!(parsed.display_name.as_deref(), Some("some data"));
    assert_eq!(
        parsed.trackers,
        ["http://127.0.0.1:1/announce", "http://127.0.0.1:2/announce"]
    );
    assert_eq!(parsed.web_seeds, ["http://127.0.0.1:3/"]);
}
