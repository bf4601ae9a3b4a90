//! rustico seeds and transmission-cli downloads. Transmission refuses
//! peers on 127.0.0.0/8, so (as INTEROP.md shows) it runs in a network
//! namespace of this test's own, joined to the host by a veth pair with
//! 10.77.0.1 (host: opentracker and rustico) and 10.77.0.2 (transmission).
//! The test creates the pair and removes it, whatever happens.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

struct Netns {
    name: String,
    link: String,
}

fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

impl Netns {
    fn create() -> Option<Netns> {
        let id = std::process::id() % 100_000;
        let ns = Netns {
            name: format!("rtx{id}"),
            link: format!("rtx{id}a"),
        };
        let peer = format!("rtx{id}b");
        let ok = ip(&["netns", "add", &ns.name])
            && ip(&[
                "link", "add", &ns.link, "type", "veth", "peer", "name", &peer,
            ])
            && ip(&["link", "set", &peer, "netns", &ns.name])
            && ip(&["addr", "add", "10.77.0.1/24", "dev", &ns.link])
            && ip(&["link", "set", &ns.link, "up"])
            && ip(&[
                "netns",
                "exec",
                &ns.name,
                "ip",
                "addr",
                "add",
                "10.77.0.2/24",
                "dev",
                &peer,
            ])
            && ip(&["netns", "exec", &ns.name, "ip", "link", "set", &peer, "up"])
            && ip(&["netns", "exec", &ns.name, "ip", "link", "set", "lo", "up"]);
        ok.then_some(ns)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        ip(&["link", "del", &self.link]);
        ip(&["netns", "del", &self.name]);
    }
}

fn files_match(root: &Path, files: &[(String, Vec<u8>)]) -> bool {
    files.iter().all(|(name, bytes)| {
        std::fs::read(root.join(name))
            .map(|got| got == *bytes)
            .unwrap_or(false)
    })
}

#[test]
fn rustico_seeds_and_transmission_downloads_across_a_namespace() {
    if !rustico_testkit::require("transmission-cli")
        || !rustico_testkit::require("opentracker")
        || !rustico_testkit::require("ip")
    {
        return;
    }
    let Some(ns) = Netns::create() else {
        assert!(
            !rustico_testkit::in_ci(),
            "cannot create a network namespace (not root?)"
        );
        eprintln!("SKIPPED: cannot create a network namespace (needs root)");
        return;
    };
    let dir = rustico_testkit::temp_dir().unwrap();
    let seed_dir = dir.path().join("seed");
    let files = content(61, &[("tx.bin", 4_000_000), ("notes.txt", 1234)]);
    write_files(&seed_dir.join("tx"), &files);
    let port = rustico_testkit::free_port();
    let url = format!("http://10.77.0.1:{port}/announce");
    let torrent = create_torrent(
        &seed_dir.join("tx"),
        &dir.path().join("tx.torrent"),
        &["--tracker", &url],
    );
    let hash = info_hash(&torrent);

    let _tracker =
        rustico_testkit::Opentracker::start_on(([10, 77, 0, 1], port).into(), &[hash]).unwrap();
    let config = config_in(dir.path());
    let _seeder = start_seeder(&torrent, &seed_dir, rustico_testkit::free_port(), &config);

    let cfg = dir.path().join("transmission");
    std::fs::create_dir_all(&cfg).unwrap();
    std::fs::write(
        cfg.join("settings.json"),
        r#"{"dht-enabled": false, "lpd-enabled": false, "pex-enabled": false, "utp-enabled": false,
            "port-forwarding-enabled": false, "rpc-enabled": false, "blocklist-enabled": false,
            "bind-address-ipv4": "10.77.0.2"}"#,
    )
    .unwrap();
    let out = dir.path().join("tx-download");
    std::fs::create_dir_all(&out).unwrap();
    let _transmission = ChildGuard(
        Command::new("ip")
            .args(["netns", "exec", &ns.name, "transmission-cli", "-M", "-g"])
            .arg(&cfg)
            .arg("-w")
            .arg(&out)
            .args(["-p", &rustico_testkit::free_port().to_string()])
            .arg(&torrent)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let start = Instant::now();
    while !files_match(&out.join("tx"), &files) {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "transmission did not complete the download"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_files(&out.join("tx"), &files);
}
