//! rustico seeds and transmission-cli downloads. Transmission refuses
//! peers on 127.0.0.0/8, so (as INTEROP.md shows) it runs in a network
//! namespace of this test's own, joined to the host by a veth pair with
//! 10.77.N.1 (host: opentracker and rustico) and 10.77.N.2 (transmission),
//! N one per test. Each test creates its pair and removes it, whatever
//! happens. With encryption required on both sides, a capture on the
//! veth shows that nothing crossed it in plaintext.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

struct Netns {
    name: String,
    link: String,
    subnet: u8,
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
    /// A namespace holding 10.77.`subnet`.2, joined to the host's
    /// 10.77.`subnet`.1; each test of this file has its own subnet.
    fn create(subnet: u8) -> Option<Netns> {
        let id = std::process::id() % 10_000;
        let ns = Netns {
            name: format!("rtx{id}s{subnet}"),
            link: format!("rtx{id}s{subnet}a"),
            subnet,
        };
        let peer = format!("rtx{id}s{subnet}b");
        let host = format!("10.77.{subnet}.1/24");
        let guest = format!("10.77.{subnet}.2/24");
        let ok = ip(&["netns", "add", &ns.name])
            && ip(&[
                "link", "add", &ns.link, "type", "veth", "peer", "name", &peer,
            ])
            && ip(&["link", "set", &peer, "netns", &ns.name])
            && ip(&["addr", "add", &host, "dev", &ns.link])
            && ip(&["link", "set", &ns.link, "up"])
            && ip(&[
                "netns", "exec", &ns.name, "ip", "addr", "add", &guest, "dev", &peer,
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

/// Who seeds across the namespace.
#[derive(Clone, Copy, PartialEq)]
enum Seeder {
    Rustico,
    Transmission,
}

/// One transfer between rustico on the host and transmission-cli in a
/// namespace of its own, through an opentracker on the host. With
/// `encrypted`, rustico runs with `--encryption require` and transmission
/// with `-er`, and a capture on the veth shows no plaintext handshake and
/// no slice of the content.
fn transfer_across_a_namespace(subnet: u8, seeder: Seeder, encrypted: bool) {
    if !rustico_testkit::require("transmission-cli")
        || !rustico_testkit::require("opentracker")
        || !rustico_testkit::require("ip")
        || (encrypted && !rustico_testkit::require("tcpdump"))
    {
        return;
    }
    let Some(ns) = Netns::create(subnet) else {
        assert!(
            !rustico_testkit::in_ci(),
            "cannot create a network namespace (not root?)"
        );
        eprintln!("SKIPPED: cannot create a network namespace (needs root)");
        return;
    };
    let host = format!("10.77.{}.1", ns.subnet);
    let guest = format!("10.77.{}.2", ns.subnet);
    let dir = rustico_testkit::temp_dir().unwrap();
    let seed_dir = dir.path().join("seed");
    let files = content(
        61 + u64::from(subnet),
        &[("tx.bin", 4_000_000), ("notes.txt", 1234)],
    );
    write_files(&seed_dir.join("tx"), &files);
    let port = rustico_testkit::free_port();
    let url = format!("http://{host}:{port}/announce");
    let torrent = create_torrent(
        &seed_dir.join("tx"),
        &dir.path().join("tx.torrent"),
        &["--tracker", &url],
    );
    let hash = info_hash(&torrent);
    let tracker_addr = std::net::SocketAddr::new(host.parse().unwrap(), port);
    let _tracker = rustico_testkit::Opentracker::start_on(tracker_addr, &[hash]).unwrap();
    let config = config_in(dir.path());
    let our_port = rustico_testkit::free_port();
    let their_port = rustico_testkit::free_port();
    let policy = if encrypted { "require" } else { "prefer" };

    let capture = encrypted.then(|| {
        let probe = std::net::SocketAddr::new(guest.parse().unwrap(), rustico_testkit::free_port());
        rustico_testkit::Capture::start(
            None,
            &ns.link,
            &format!("tcp port {our_port} or tcp port {their_port}"),
            probe,
            &dir.path().join("veth.pcap"),
        )
        .unwrap()
    });

    let cfg = dir.path().join("transmission");
    std::fs::create_dir_all(&cfg).unwrap();
    std::fs::write(
        cfg.join("settings.json"),
        format!(
            r#"{{"dht-enabled": false, "lpd-enabled": false, "pex-enabled": false, "utp-enabled": false,
            "port-forwarding-enabled": false, "rpc-enabled": false, "blocklist-enabled": false,
            "bind-address-ipv4": "{guest}"}}"#
        ),
    )
    .unwrap();
    let (transmission_dir, rustico_out) = match seeder {
        Seeder::Rustico => (dir.path().join("tx-download"), None),
        Seeder::Transmission => (seed_dir.clone(), Some(dir.path().join("rustico-download"))),
    };
    std::fs::create_dir_all(&transmission_dir).unwrap();
    let _rustico_seed = (seeder == Seeder::Rustico).then(|| {
        let child = rustico()
            .arg("seed")
            .arg(&torrent)
            .arg(&seed_dir)
            .args(["--port", &our_port.to_string(), "--encryption", policy])
            .arg("--config")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let guard = ChildGuard(child);
        rustico_testkit::wait_for_tcp(([127, 0, 0, 1], our_port).into(), Duration::from_secs(20))
            .unwrap();
        guard
    });
    let mut transmission = Command::new("ip");
    transmission
        .args(["netns", "exec", &ns.name, "transmission-cli", "-M", "-g"])
        .arg(&cfg)
        .arg("-w")
        .arg(&transmission_dir)
        .args(["-p", &their_port.to_string()]);
    if encrypted {
        transmission.arg("-er");
    }
    let _transmission = ChildGuard(
        transmission
            .arg(&torrent)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    match &rustico_out {
        None => {
            let out = transmission_dir.join("tx");
            let start = Instant::now();
            while !files_match(&out, &files) {
                assert!(
                    start.elapsed() < Duration::from_secs(120),
                    "transmission did not complete the download"
                );
                std::thread::sleep(Duration::from_millis(250));
            }
            assert_files(&out, &files);
        }
        Some(out) => {
            let mut cmd = rustico();
            cmd.arg("download")
                .arg(&torrent)
                .arg("-o")
                .arg(out)
                .args(["--port", &our_port.to_string(), "--encryption", policy])
                .arg("--config")
                .arg(&config);
            let got = output_with_timeout(cmd, Duration::from_secs(120), "rustico download");
            assert!(
                got.status.success(),
                "download failed: {}",
                String::from_utf8_lossy(&got.stderr)
            );
            assert_files(&out.join("tx"), &files);
        }
    }
    if let Some(capture) = capture {
        let pcap = capture.finish().unwrap();
        let total: usize = files.iter().map(|(_, b)| b.len()).sum();
        assert!(
            pcap.len() > total / 10 * 9,
            "the capture holds {} bytes, less than 90% of the {total} bytes of content",
            pcap.len()
        );
        assert!(
            !rustico_testkit::contains(&pcap, b"\x13BitTorrent protocol"),
            "a plaintext BitTorrent handshake crossed the veth"
        );
        let big = &files[0].1;
        for i in 0..16 {
            let at = i * (big.len() - 64) / 15;
            assert!(
                !rustico_testkit::contains(&pcap, &big[at..at + 64]),
                "content bytes {at}.. crossed the veth in plaintext"
            );
        }
    }
}

#[test]
fn rustico_seeds_and_transmission_downloads_across_a_namespace() {
    transfer_across_a_namespace(0, Seeder::Rustico, false);
}

#[test]
fn rustico_requiring_encryption_seeds_and_transmission_er_downloads() {
    transfer_across_a_namespace(1, Seeder::Rustico, true);
}

#[test]
fn transmission_er_seeds_and_rustico_requiring_encryption_downloads() {
    transfer_across_a_namespace(2, Seeder::Transmission, true);
}
