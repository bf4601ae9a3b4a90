//! A hand-driven harness: a swarm, a clock the test moves, and helpers that
//! play the driver (connect peers, deliver blocks, hash pieces).
#![allow(dead_code)]
// Test helpers: a failed step should stop the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rustico_swarm::{
    Bitfield, BlockRequest, Disconnect, Event, HandshakeInfo, PeerCommand, PeerEvent, PeerKey,
    PeerSource, Swarm, SwarmConfig,
};

/// Piece length of the test torrents: 2 blocks a piece.
pub const PIECE: u32 = 32 * 1024;

pub fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, 1], port))
}

pub fn peer_id(n: u8) -> [u8; 20] {
    let mut id = *b"-XX0001-000000000000";
    id[19] = n;
    id
}

/// The true bytes of a block: a pattern of its position.
pub fn block_data(req: BlockRequest) -> Vec<u8> {
    (0..req.length)
        .map(|i| (req.piece.wrapping_mul(31) ^ (req.offset + i).wrapping_mul(7)) as u8)
        .collect()
}

/// The true bytes of a whole piece.
pub fn piece_data(piece: u32, size: u32) -> Vec<u8> {
    block_data(BlockRequest {
        piece,
        offset: 0,
        length: size,
    })
}

pub fn config(pieces: u32) -> SwarmConfig {
    let mut cfg = SwarmConfig::new(u64::from(pieces) * u64::from(PIECE), PIECE, [0xff; 20]);
    cfg.seed = 7;
    cfg
}

pub struct Harness {
    pub swarm: Swarm,
    pub now: Instant,
    pub pieces: u32,
    pub events: Vec<Event>,
}

impl Harness {
    pub fn new(cfg: SwarmConfig, have: Bitfield) -> Harness {
        let now = Instant::now();
        let pieces = have.len();
        Harness {
            swarm: Swarm::new(cfg, have, now).unwrap(),
            now,
            pieces,
            events: Vec::new(),
        }
    }

    pub fn leecher(pieces: u32) -> Harness {
        Harness::new(config(pieces), Bitfield::new(pieces))
    }

    /// Moves the clock and runs the timers due.
    pub fn advance(&mut self, by: Duration) {
        let end = self.now + by;
        while let Some(t) = self.swarm.poll_timeout().filter(|&t| t <= end) {
            self.now = t.max(self.now);
            self.swarm.handle_timeout(self.now);
        }
        self.now = end;
        self.swarm.handle_timeout(self.now);
    }

    /// Dials `port` through the swarm and completes the handshake.
    pub fn dial(&mut self, port: u16, id: u8, fast: bool) -> PeerKey {
        self.swarm
            .handle_candidates([addr(port)], PeerSource::Tracker, self.now);
        let dial = self.swarm.poll_dial().expect("a dial");
        assert_eq!(dial.remote, rustico_swarm::Remote::Addr(addr(port)));
        self.handshake(dial.peer, id, fast);
        dial.peer
    }

    pub fn handshake(&mut self, key: PeerKey, id: u8, fast: bool) {
        let info = HandshakeInfo {
            peer_id: peer_id(id),
            fast,
            client: format!("peer {id}"),
            encrypted: false,
        };
        self.swarm.handle_connected(key, info, self.now).unwrap();
    }

    pub fn event(&mut self, key: PeerKey, event: PeerEvent) {
        self.swarm.handle_peer_event(key, event, self.now).unwrap();
    }

    /// A connected seed that unchoked us.
    pub fn seed(&mut self, port: u16, fast: bool) -> PeerKey {
        let key = self.dial(port, port as u8, fast);
        self.event(key, PeerEvent::Pieces(Bitfield::full(self.pieces)));
        self.event(key, PeerEvent::Choked(false));
        key
    }

    pub fn commands(&mut self) -> Vec<(PeerKey, PeerCommand)> {
        std::iter::from_fn(|| self.swarm.poll_command()).collect()
    }

    pub fn drain_events(&mut self) -> Vec<Event> {
        let new: Vec<Event> = std::iter::from_fn(|| self.swarm.poll_event()).collect();
        self.events.extend(new.iter().cloned());
        new
    }

    pub fn deliver(&mut self, key: PeerKey, req: BlockRequest) {
        self.event(
            key,
            PeerEvent::Block {
                req,
                data: block_data(req),
            },
        );
    }

    /// Hashes every complete piece against the true bytes and reports it.
    pub fn hash_pieces(&mut self) -> (u32, u32) {
        let (mut good, mut bad) = (0, 0);
        while let Some(p) = self.swarm.poll_piece() {
            if p.data.to_vec() == piece_data(p.piece, p.data.len() as u32) {
                self.swarm
                    .handle_piece_saved(p.piece, p.data, self.now)
                    .unwrap();
                good += 1;
            } else {
                self.swarm
                    .handle_piece_failed(p.piece, p.data, self.now)
                    .unwrap();
                bad += 1;
            }
        }
        (good, bad)
    }

    pub fn disconnect(&mut self, key: PeerKey) {
        self.swarm
            .handle_disconnected(key, Disconnect::Closed, self.now)
            .unwrap();
    }
}

/// Every block requested from `key` in `commands`.
pub fn requests_to(commands: &[(PeerKey, PeerCommand)], key: PeerKey) -> Vec<BlockRequest> {
    commands
        .iter()
        .filter(|(k, _)| *k == key)
        .flat_map(|(_, c)| match c {
            PeerCommand::Request(r) => r.clone(),
            _ => Vec::new(),
        })
        .collect()
}

/// The commands for `key` other than requests.
pub fn orders_to(commands: &[(PeerKey, PeerCommand)], key: PeerKey) -> Vec<PeerCommand> {
    commands
        .iter()
        .filter(|(k, c)| *k == key && !matches!(c, PeerCommand::Request(_)))
        .map(|(_, c)| c.clone())
        .collect()
}
