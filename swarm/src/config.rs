//! What a [`Swarm`](crate::Swarm) is told about its torrent and which
//! limits and intervals it keeps.

use std::time::Duration;

use rustico_piece_picker::PickerConfig;

/// Configuration of one torrent's [`Swarm`](crate::Swarm).
///
/// Build one with [`SwarmConfig::new`] and adjust the public fields.
#[derive(Debug, Clone)]
pub struct SwarmConfig {
    /// Bytes in the torrent, sum of the file lengths.
    pub total_length: u64,
    /// Nominal piece length.
    pub piece_length: u32,
    /// Our own peer id (decides which of two duplicate connections
    /// survives, the same way on both sides).
    pub peer_id: [u8; 20],
    /// Our listen port, if any: an address on loopback or an unspecified
    /// address with this port is ourselves and never dialled.
    pub listen_port: Option<u16>,
    /// BEP 27: a private torrent gets peers from its trackers only, so no
    /// peer exchange in either direction.
    pub private: bool,
    /// Most peer connections at once (dialling, handshaking or connected;
    /// web seeds not counted). Dials fill it only up to nine tenths; the
    /// last tenth (rounded down) waits for peers that dial us. Without
    /// that reserve, a swarm larger than the table never settled: a peer
    /// that lost its slot to a newcomer had a free one, dialled a peer
    /// whose table was full, which gave up one of its own, and so on (the
    /// simulator's 100 peers completed 301,092 handshakes in 2,300 s;
    /// 27,950 with the reserve, finishing 13 % sooner).
    pub max_peers: usize,
    /// Most connections with one IP address (incoming, dialled or
    /// handshaking), so one host cannot take many slots.
    pub max_peers_per_ip: usize,
    /// Most dials in progress at once (connecting or handshaking): the
    /// rest of [`max_peers`](Self::max_peers) stays for established and
    /// incoming peers, whatever the number of addresses that never answer.
    pub max_half_open: usize,
    /// A connected peer that moved no payload either way for this long
    /// (and is at least this old) may lose its slot to a newcomer when the
    /// table is full; also how long a new connection is kept against a
    /// duplicate of it.
    pub eviction_grace: Duration,
    /// Peer turnover: while we want data, the slots dials may fill (see
    /// [`max_peers`](Self::max_peers)) are taken and addresses wait, one
    /// connected peer that has nothing for us and moved nothing for
    /// [`eviction_grace`](Self::eviction_grace) is replaced, at most once
    /// per this interval. Once a tick, a swarm
    /// larger than [`max_peers`](Self::max_peers) never settled: each
    /// replaced peer has a free slot in turn, and dials a peer whose
    /// table is full (the simulator's 100 peers made 657,155 connections
    /// in 3,273 s; 275,657 with one a minute, finishing 3 % sooner).
    pub turnover_interval: Duration,
    /// A peer with which neither side is interested for this long is
    /// closed.
    pub idle_timeout: Duration,
    /// A peer with which no payload moved either way for this long is
    /// closed, whatever the interest (keep-alives do not count).
    pub inactivity_timeout: Duration,
    /// A peer we unchoke while it says it is interested, that takes no
    /// byte for this long, holds an upload slot for nothing: until it takes
    /// data, the choker ranks it behind every other interested peer (it
    /// keeps only a slot nobody else wants), and it is the first
    /// to lose its connection to a newcomer when the table is full. On a
    /// slow uplink the wait stretches to the time our upload takes to send
    /// one block to every upload slot (at most ten times this): the
    /// unchoke itself waits behind blocks already queued.
    pub unused_unchoke_timeout: Duration,
    /// Upload slots (at least 1: the optimistic unchoke).
    pub upload_slots: usize,
    /// Most addresses remembered as candidates to dial; later ones are
    /// refused until some are forgotten.
    pub max_candidates: usize,
    /// Seed of every random choice (dial order, optimistic unchoke, the
    /// piece picker's tie-breaks): same seed, same events, same decisions.
    pub seed: u64,
    /// How the piece picker works; its `total_length`, `piece_length` and
    /// `seed` are overwritten from this configuration.
    pub picker: PickerConfig,
    /// How often the regular unchoke set is recomputed.
    pub rechoke_interval: Duration,
    /// How often the optimistic unchoke moves to another peer.
    pub optimistic_interval: Duration,
    /// How often rates are measured and stalled requests looked for.
    pub tick_interval: Duration,
    /// A peer holding our requests this long without sending a block loses
    /// them to other peers and is marked snubbed.
    pub request_timeout: Duration,
    /// After a peer rejects requests (BEP 6), or voids them with a choke
    /// without the fast extension, how long it gets no new ones, so a
    /// rejected block goes to another peer rather than back to the one
    /// that refused it. Doubled for each further such round before the
    /// peer's next block (at most 32 times), so a peer that never serves
    /// is asked ever less often.
    pub reject_hold: Duration,
    /// Smallest request pipeline per peer.
    pub min_pipeline: usize,
    /// Pipeline of a peer whose rate is not measured yet.
    pub start_pipeline: usize,
    /// Largest request pipeline per peer; in between, about one second of
    /// the peer's measured rate.
    pub max_pipeline: usize,
    /// `reqq` assumed for a peer whose extension handshake does not say
    /// (libtorrent's default).
    pub default_reqq: usize,
    /// A peer that alone sent this many pieces failing their hash check is
    /// banned.
    pub sole_failures_to_ban: u32,
    /// A peer that contributed blocks to this many pieces failing their
    /// hash check (shared with others) is banned.
    pub shared_failures_to_ban: u32,
    /// How long a banned address stays banned.
    pub ban_duration: Duration,
    /// Failed piece copies whose per-block hashes are kept for smart ban
    /// (up to 4 copies of one piece; the oldest is forgotten past this).
    pub max_suspect_pieces: usize,
    /// A v2 (or hybrid) torrent: when a piece from several peers fails,
    /// ask a peer for its block hashes
    /// ([`PeerCommand::RequestBlockHashes`](crate::PeerCommand::RequestBlockHashes))
    /// and ban the senders of the blocks they prove wrong at once,
    /// without waiting for a good copy. Blocks must be 16 KiB.
    pub block_hashes: bool,
    /// First wait before redialling an address after a failure; doubles
    /// with each further failure.
    pub base_backoff: Duration,
    /// Longest wait before redialling.
    pub max_backoff: Duration,
    /// Ask for a resume snapshot ([`Event::SaveResume`](crate::Event::SaveResume))
    /// at most this often while pieces are being added.
    pub resume_interval: Duration,
    /// Number of BEP 19 web seeds (`url-list` entries); the driver knows
    /// their URLs, the swarm schedules them by index.
    pub web_seeds: usize,
    /// Web seeds wait this long after the start for peers to show up.
    pub web_seed_delay: Duration,
    /// Web seeds start when fewer peers than this are connected...
    pub web_seed_below_peers: usize,
    /// ... or when all peers together send less than this (bytes/s).
    pub web_seed_below_rate: f64,
}

impl SwarmConfig {
    /// A configuration with the defaults: 50 peers (at most 8 per IP
    /// address, at most 40 being dialled; a peer silent for 10 s may be
    /// replaced by a newcomer when all are taken, and one with nothing for
    /// us by a waiting address at most once a minute; one with no interest
    /// either way for 2 minutes or no payload for 5 minutes is closed;
    /// one unchoked that takes nothing for 3 s loses its upload slot),
    /// 4 upload slots,
    /// rechoke every 10 s and optimistic unchoke every 30 s, 15 s request
    /// time-out, pipelines of 4 to 600 blocks, ban after 2 bad pieces of a
    /// sole sender or 6 shared ones, for 10 minutes, backoff from 5 s to
    /// 5 minutes, a resume snapshot at most every 5 s, seed 0.
    pub fn new(total_length: u64, piece_length: u32, peer_id: [u8; 20]) -> SwarmConfig {
        SwarmConfig {
            total_length,
            piece_length,
            peer_id,
            listen_port: None,
            private: false,
            max_peers: 50,
            max_peers_per_ip: 8,
            max_half_open: 40,
            eviction_grace: Duration::from_secs(10),
            turnover_interval: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(120),
            inactivity_timeout: Duration::from_secs(300),
            unused_unchoke_timeout: Duration::from_secs(3),
            upload_slots: 4,
            max_candidates: 2000,
            seed: 0,
            picker: PickerConfig::new(total_length, piece_length),
            rechoke_interval: Duration::from_secs(10),
            optimistic_interval: Duration::from_secs(30),
            tick_interval: Duration::from_secs(1),
            request_timeout: Duration::from_secs(15),
            reject_hold: Duration::from_secs(1),
            min_pipeline: 4,
            start_pipeline: 64,
            max_pipeline: 600,
            default_reqq: 250,
            sole_failures_to_ban: 2,
            shared_failures_to_ban: 6,
            ban_duration: Duration::from_secs(600),
            max_suspect_pieces: 64,
            block_hashes: false,
            base_backoff: Duration::from_secs(5),
            max_backoff: Duration::from_secs(300),
            resume_interval: Duration::from_secs(5),
            web_seeds: 0,
            web_seed_delay: Duration::from_secs(1),
            web_seed_below_peers: 4,
            web_seed_below_rate: 1024.0 * 1024.0,
        }
    }
}
