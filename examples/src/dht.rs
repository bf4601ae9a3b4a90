//! The DHT node (BEP 5): the `mainline` crate's node, driven for our torrents.
//!
//! One thread for every torrent of the process: it looks up peers for each
//! registered (non-private) torrent, hands them to the torrent's manager like
//! tracker peers, announces our port, and keeps the routing table in a state
//! file so the next start does not bootstrap from nothing. `mainline` runs
//! its own socket thread; ours only asks it and waits.
//!
//! The blocking `mainline` calls are the crate's deprecated synchronous
//! API: they do what this driver needs without an async runtime, which the
//! binary does not have.
#![allow(deprecated)]

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{unbounded, RecvTimeoutError, Sender};
use mainline::{Dht, Id};

use crate::engine::actors::Mail;
use crate::engine::Control;

/// The well-known public routers, the default bootstrap of a real client.
pub const PUBLIC_ROUTERS: [&str; 3] = [
    "router.bittorrent.com:6881",
    "dht.transmissionbt.com:6881",
    "router.utorrent.com:6881",
];

/// How often a torrent's peers are looked up and our port announced (BEP 5
/// stores an announce for 30 minutes at most; lookups refresh the swarm).
const LOOKUP_INTERVAL: Duration = Duration::from_secs(5 * 60);
/// How often the routing table is written to the state file.
const SAVE_INTERVAL: Duration = Duration::from_secs(60);
/// Most peers taken from one lookup.
const MAX_PEERS_PER_LOOKUP: usize = 200;
/// Most nodes kept in the state file.
const MAX_SAVED_NODES: usize = 200;
/// Most nodes learned from peers' `port` messages that are kept.
const MAX_LEARNED_NODES: usize = 64;

/// How to run the node.
#[derive(Debug, Clone)]
pub struct DhtSettings {
    /// UDP port (usually the peer port).
    pub port: u16,
    /// Address to bind.
    pub bind: Ipv4Addr,
    /// `HOST:PORT` bootstrap nodes, tried with the saved routing table.
    pub bootstrap: Vec<String>,
    /// Where the routing table is kept between runs.
    pub state_file: Option<PathBuf>,
}

/// Counters for progress displays.
#[derive(Debug, Default)]
pub struct DhtStats {
    /// Nodes in the routing table at the last count.
    pub nodes: AtomicUsize,
    /// Peers found through the DHT since start, over all torrents.
    pub peers_found: AtomicU64,
    /// Distinct DHT nodes learned from peers' `port` messages (BEP 5).
    pub nodes_learned: AtomicUsize,
}

enum Command {
    Add {
        info_hash: [u8; 20],
        control: Mail<Control>,
        port: u16,
    },
    /// A peer's `port` message: its DHT node's address.
    Node(SocketAddr),
    Stop,
}

/// A running DHT node and its driver thread.
pub struct DhtNode {
    port: u16,
    dht: Dht,
    commands: Sender<Command>,
    stats: Arc<DhtStats>,
    thread: Option<JoinHandle<()>>,
}

impl DhtNode {
    /// Binds the node and starts its driver.
    pub fn start(settings: DhtSettings) -> std::io::Result<DhtNode> {
        let mut bootstrap: Vec<String> = settings
            .state_file
            .as_ref()
            .and_then(|path| std::fs::read_to_string(path).ok())
            .map(|text| {
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .take(MAX_SAVED_NODES)
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default();
        let saved = bootstrap.len();
        bootstrap.extend(settings.bootstrap.iter().cloned());
        let dht = Dht::builder()
            .port(settings.port)
            .bind_address(settings.bind)
            .bootstrap(&bootstrap)
            .build()?;
        log::info!(
            target: "rustico",
            "DHT node on UDP port {}: bootstrapping from {} saved and {} configured nodes",
            settings.port,
            saved,
            settings.bootstrap.len()
        );
        let stats = Arc::new(DhtStats::default());
        let (commands, inbox) = unbounded();
        let driver = Driver {
            dht: dht.clone(),
            stats: stats.clone(),
            state_file: settings.state_file,
            torrents: HashMap::new(),
            learned: std::collections::VecDeque::new(),
            last_save: Instant::now(),
        };
        let thread = crate::engine::spawn("dht", move || driver.run(&inbox))?;
        Ok(DhtNode {
            port: settings.port,
            dht,
            commands,
            stats,
            thread: Some(thread),
        })
    }

    /// Looks up and announces `info_hash` from now on, handing found peers
    /// to `control`. Never call this for a private torrent (BEP 27).
    pub fn add_torrent(&self, info_hash: [u8; 20], control: Mail<Control>, port: u16) {
        let _ = self.commands.send(Command::Add {
            info_hash,
            control,
            port,
        });
    }

    /// The node's UDP port, as `port` messages announce it.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Where connection threads report nodes learned from peers.
    pub fn node_sink(&self) -> NodeSink {
        NodeSink(self.commands.clone())
    }

    /// Peers of `info_hash`, from one lookup (blocks until it ends).
    pub fn get_peers(&self, info_hash: [u8; 20]) -> Vec<SocketAddr> {
        let peers = lookup(&self.dht, info_hash);
        self.stats
            .peers_found
            .fetch_add(peers.len() as u64, Ordering::Relaxed);
        peers
    }

    /// The node's counters.
    pub fn stats(&self) -> &Arc<DhtStats> {
        &self.stats
    }

    /// Saves the routing table and stops the driver (a lookup in progress
    /// finishes first).
    pub fn stop(mut self) {
        let _ = self.commands.send(Command::Stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Where connection threads report DHT nodes learned from peers' `port`
/// messages (BEP 5).
///
/// `mainline` 8 has no call to put a node into a running routing table,
/// so learned nodes are kept (the latest [`MAX_LEARNED_NODES`]) and saved
/// with the table: the next start bootstraps from them too.
#[derive(Clone)]
pub struct NodeSink(Sender<Command>);

impl NodeSink {
    /// Reports a peer's DHT node.
    pub fn learned(&self, addr: SocketAddr) {
        let _ = self.0.send(Command::Node(addr));
    }
}

struct Registered {
    control: Mail<Control>,
    port: u16,
    next: Instant,
}

struct Driver {
    dht: Dht,
    stats: Arc<DhtStats>,
    state_file: Option<PathBuf>,
    torrents: HashMap<[u8; 20], Registered>,
    /// Nodes from peers' `port` messages, oldest first.
    learned: std::collections::VecDeque<SocketAddr>,
    last_save: Instant,
}

impl Driver {
    fn run(mut self, inbox: &crossbeam_channel::Receiver<Command>) {
        loop {
            let now = Instant::now();
            let due = self
                .torrents
                .iter()
                .filter(|(_, t)| t.next <= now)
                .map(|(hash, _)| *hash)
                .next();
            if let Some(hash) = due {
                self.refresh(hash);
                continue;
            }
            if now.duration_since(self.last_save) >= SAVE_INTERVAL {
                self.save();
            }
            let wake = self
                .torrents
                .values()
                .map(|t| t.next)
                .min()
                .unwrap_or(now + SAVE_INTERVAL)
                .min(self.last_save + SAVE_INTERVAL);
            match inbox.recv_timeout(wake.saturating_duration_since(now)) {
                Ok(Command::Add {
                    info_hash,
                    control,
                    port,
                }) => {
                    self.torrents.insert(
                        info_hash,
                        Registered {
                            control,
                            port,
                            next: Instant::now(),
                        },
                    );
                }
                Ok(Command::Node(addr)) => {
                    if !self.learned.contains(&addr) {
                        if self.learned.len() == MAX_LEARNED_NODES {
                            self.learned.pop_front();
                        }
                        self.learned.push_back(addr);
                        self.stats.nodes_learned.fetch_add(1, Ordering::Relaxed);
                        log::debug!(target: "rustico", "DHT: node {addr} learned from a peer");
                    }
                }
                Ok(Command::Stop) | Err(RecvTimeoutError::Disconnected) => {
                    self.save();
                    return;
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
        }
    }

    /// One lookup and one announce for a torrent.
    fn refresh(&mut self, hash: [u8; 20]) {
        let peers = lookup(&self.dht, hash);
        let Some(torrent) = self.torrents.get_mut(&hash) else {
            return;
        };
        torrent.next = Instant::now() + LOOKUP_INTERVAL;
        log::info!(
            target: "rustico",
            "DHT: {} peers for {}",
            peers.len(),
            rustico_metainfo::hex(&hash)
        );
        self.stats
            .peers_found
            .fetch_add(peers.len() as u64, Ordering::Relaxed);
        if !peers.is_empty()
            && torrent
                .control
                .send(Control::Peers(peers, rustico_swarm::PeerSource::Dht))
                .is_err()
        {
            // The torrent has stopped.
            self.torrents.remove(&hash);
            return;
        }
        match self.dht.announce_peer(Id::from(hash), Some(torrent.port)) {
            Ok(_) => log::info!(
                target: "rustico",
                "DHT: announced {} on port {}",
                rustico_metainfo::hex(&hash),
                torrent.port
            ),
            Err(e) => log::info!(
                target: "rustico",
                "DHT: announce of {} failed: {e}",
                rustico_metainfo::hex(&hash)
            ),
        }
        self.count_nodes();
    }

    fn count_nodes(&self) -> Vec<String> {
        let nodes = self.dht.to_bootstrap();
        self.stats.nodes.store(nodes.len(), Ordering::Relaxed);
        nodes
    }

    /// Writes the routing table, then the nodes learned from peers,
    /// atomically (temporary file, rename).
    fn save(&mut self) {
        self.last_save = Instant::now();
        let mut nodes = self.count_nodes();
        let Some(path) = &self.state_file else {
            return;
        };
        nodes.truncate(MAX_SAVED_NODES.saturating_sub(self.learned.len()));
        for addr in self.learned.iter().rev() {
            let text = addr.to_string();
            if !nodes.contains(&text) {
                nodes.push(text);
            }
        }
        if nodes.is_empty() {
            return;
        }
        let text: String = nodes
            .iter()
            .take(MAX_SAVED_NODES)
            .map(|n| format!("{n}\n"))
            .collect();
        let tmp = path.with_extension("tmp");
        let written = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(&tmp, text))
            .and_then(|()| std::fs::rename(&tmp, path));
        if let Err(e) = written {
            log::warn!(target: "rustico", "DHT: cannot save the routing table to {}: {e}", path.display());
        }
    }
}

/// One `get_peers` lookup: distinct addresses, at most
/// [`MAX_PEERS_PER_LOOKUP`].
fn lookup(dht: &Dht, hash: [u8; 20]) -> Vec<SocketAddr> {
    let mut seen = HashSet::new();
    let mut peers = Vec::new();
    for batch in dht.get_peers(Id::from(hash)) {
        for addr in batch {
            let addr = SocketAddr::V4(addr);
            if seen.insert(addr) {
                peers.push(addr);
            }
        }
        if peers.len() >= MAX_PEERS_PER_LOOKUP {
            peers.truncate(MAX_PEERS_PER_LOOKUP);
            break;
        }
    }
    peers
}
