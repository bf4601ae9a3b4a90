//! BEP 11 bookkeeping for one connection: what to tell the remote peer
//! about our other peers ([`PexState`]), and how much to believe of what
//! it tells us ([`filter_incoming_pex`], [`PexState::handle_incoming`]).
//!
//! Peer exchange must not be used for private torrents (BEP 27: a
//! torrent whose info dictionary has `private` = 1 gets peers only from
//! its trackers). Nothing here knows about torrents: the caller must
//! neither create a `PexState` nor advertise `ut_pex` in its extension
//! handshake for a private torrent, and must ignore `ut_pex` messages
//! received for one.

use std::cmp::Ordering;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::pex::{PexMessage, PexPeer};

/// Rate and size limits of peer exchange, for both directions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PexConfig {
    /// Least time between two messages we send (BEP 11: at most one a
    /// minute). Incoming messages closer than half of it are ignored.
    pub interval: Duration,
    /// Most peers in the `added` lists (v4 and v6 together) of a message
    /// we send; the rest wait for the next one. Also the most taken from
    /// a message received. BEP 11 says 50.
    pub max_added: usize,
    /// Same for the `dropped` lists.
    pub max_dropped: usize,
}

impl Default for PexConfig {
    fn default() -> PexConfig {
        PexConfig {
            interval: Duration::from_secs(60),
            max_added: 50,
            max_dropped: 50,
        }
    }
}

/// What we send one remote peer over `ut_pex`: the difference between the
/// peers we are connected to now and what we last told it, at most once
/// per [`PexConfig::interval`], at most [`PexConfig::max_added`] added and
/// [`PexConfig::max_dropped`] dropped per message (the rest is carried to
/// the next message), never the remote peer itself.
///
/// Not for private torrents (BEP 27: a torrent whose info dictionary has
/// `private` = 1 gets peers from its trackers only). This type knows
/// nothing of torrents, so the caller must keep it out of them: create no
/// `PexState`, advertise no `ut_pex` in the extension handshake, and
/// ignore `ut_pex` messages for a private torrent.
///
/// Driving it: [`set_connected`](Self::set_connected) whenever the
/// torrent's peer set changes (or just before polling), then
/// [`poll_message`](Self::poll_message); when it returns `None`,
/// [`poll_timeout`](Self::poll_timeout) says when to poll again.
///
/// ```
/// use std::time::{Duration, Instant};
/// use rustico_peer_wire::{PexFlags, PexPeer, PexState};
///
/// let remote = "10.0.0.9:6881".parse()?;
/// let mut pex = PexState::new(remote, Default::default());
/// let peer = |a: &str| PexPeer { addr: a.parse().unwrap(), flags: PexFlags(0) };
/// let t0 = Instant::now();
///
/// pex.set_connected([peer("10.0.0.1:6881"), peer("10.0.0.9:6881")]);
/// let first = pex.poll_message(t0).unwrap();
/// assert_eq!(first.added, [peer("10.0.0.1:6881")]); // not the remote itself
///
/// pex.set_connected([peer("10.0.0.2:6881")]);
/// assert_eq!(pex.poll_message(t0 + Duration::from_secs(30)), None); // too soon
/// assert_eq!(pex.poll_timeout(t0), Some(t0 + Duration::from_secs(60)));
/// let second = pex.poll_message(t0 + Duration::from_secs(60)).unwrap();
/// assert_eq!(second.added, [peer("10.0.0.2:6881")]);
/// assert_eq!(second.dropped, ["10.0.0.1:6881".parse()?]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct PexState {
    config: PexConfig,
    /// Addresses of the remote peer (the connection's, its listen port's).
    remote: Vec<SocketAddr>,
    /// Sorted by address, each once. Sorted vectors, not maps: each
    /// message diffs the two sets in one pass, and a swarm rebuilds this
    /// one for every peer due a message whenever its peer set changes
    /// (maps made PEX the largest cost of a simulated swarm's timers).
    connected: Vec<PexPeer>,
    /// What the remote peer was told is connected, sorted, each once.
    sent: Vec<SocketAddr>,
    last_sent: Option<Instant>,
    last_received: Option<Instant>,
}

impl PexState {
    /// Exchange state for the connection to `remote`, which is never
    /// advertised to itself.
    pub fn new(remote: SocketAddr, config: PexConfig) -> PexState {
        PexState {
            config,
            remote: vec![remote],
            connected: Vec::new(),
            sent: Vec::new(),
            last_sent: None,
            last_received: None,
        }
    }

    /// Another address of the remote peer not to advertise to it: its
    /// listen address (the connection's IP with the `p` port of its
    /// extension handshake) when it connected to us.
    pub fn exclude(&mut self, addr: SocketAddr) {
        if !self.remote.contains(&addr) {
            self.remote.push(addr);
            self.connected.retain(|p| p.addr != addr);
        }
    }

    /// The peers the torrent is connected to now (all of them: the remote
    /// peer and addresses given to [`exclude`](Self::exclude) are left out
    /// here, as are invalid ones such as port 0). Replaces the previous
    /// set.
    pub fn set_connected(&mut self, peers: impl IntoIterator<Item = PexPeer>) {
        self.connected.clear();
        self.connected.extend(
            peers
                .into_iter()
                .filter(|p| !self.remote.contains(&p.addr) && plausible(&p.addr)),
        );
        // Stable, so of an address given twice the last one's flags stay.
        self.connected.sort_by_key(|p| p.addr);
        self.connected.dedup_by(|later, kept| {
            let same = later.addr == kept.addr;
            if same {
                kept.flags = later.flags;
            }
            same
        });
    }

    /// Whether the remote peer's view differs from the connected set.
    pub fn has_pending(&self) -> bool {
        !self
            .connected
            .iter()
            .map(|p| p.addr)
            .eq(self.sent.iter().copied())
    }

    /// The message to send now, if one is due: something changed since the
    /// last message and [`PexConfig::interval`] has passed since it (the
    /// first message goes at once). What it lists counts as told.
    pub fn poll_message(&mut self, now: Instant) -> Option<PexMessage> {
        if let Some(last) = self.last_sent {
            if now.saturating_duration_since(last) < self.config.interval {
                return None;
            }
        }
        // One merge of the two sorted sets: what only `connected` has is
        // new to the remote peer, what only `sent` has is gone.
        let (mut added, mut dropped): (Vec<PexPeer>, Vec<SocketAddr>) = (Vec::new(), Vec::new());
        let (mut c, mut s) = (0, 0);
        loop {
            let (next, told) = (self.connected.get(c), self.sent.get(s));
            let order = match (next, told) {
                (None, None) => break,
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (Some(peer), Some(addr)) => peer.addr.cmp(addr),
            };
            match order {
                Ordering::Less => {
                    added.extend(
                        next.filter(|_| added.len() < self.config.max_added)
                            .copied(),
                    );
                    c += 1;
                }
                Ordering::Greater => {
                    dropped.extend(
                        told.filter(|_| dropped.len() < self.config.max_dropped)
                            .copied(),
                    );
                    s += 1;
                }
                Ordering::Equal => (c, s) = (c + 1, s + 1),
            }
        }
        if added.is_empty() && dropped.is_empty() {
            return None;
        }
        // Both lists are sorted and disjoint from what stays.
        self.sent.retain(|a| dropped.binary_search(a).is_err());
        self.sent.extend(added.iter().map(|p| p.addr));
        self.sent.sort_unstable();
        self.last_sent = Some(now);
        Some(PexMessage { added, dropped })
    }

    /// When [`poll_message`](Self::poll_message) will return a message
    /// (`now` if at once), or `None` when nothing is waiting to be sent.
    pub fn poll_timeout(&self, now: Instant) -> Option<Instant> {
        if !self.has_pending() {
            return None;
        }
        Some(match self.last_sent {
            Some(last) => (last + self.config.interval).max(now),
            None => now,
        })
    }

    /// A `ut_pex` message received from the remote peer, with the
    /// connection's limits applied: [`filter_incoming_pex`], and a message
    /// arriving less than half an interval after the previous one is
    /// ignored whole (BEP 11 allows one a minute; the slack is for timer
    /// jitter on both sides).
    pub fn handle_incoming(&mut self, message: PexMessage, now: Instant) -> IncomingPex {
        let too_soon = self
            .last_received
            .is_some_and(|last| now.saturating_duration_since(last) < self.config.interval / 2);
        if too_soon {
            return IncomingPex {
                discarded: message.added.len() + message.dropped.len(),
                too_soon: true,
                ..IncomingPex::default()
            };
        }
        self.last_received = Some(now);
        let mut incoming = filter_incoming_pex(message, &self.config);
        let before = incoming.added.len();
        incoming.added.retain(|p| !self.remote.contains(&p.addr));
        incoming.discarded += before - incoming.added.len();
        incoming
    }
}

/// What is left of a received `ut_pex` message after
/// [`filter_incoming_pex`] or [`PexState::handle_incoming`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IncomingPex {
    /// Peers worth trying, each once, at most [`PexConfig::max_added`].
    pub added: Vec<PexPeer>,
    /// Peers the sender no longer sees, each once, at most
    /// [`PexConfig::max_dropped`].
    pub dropped: Vec<SocketAddr>,
    /// Entries left out: invalid, repeated, over the caps, or the whole
    /// message when it came too soon.
    pub discarded: usize,
    /// The message came too soon after the previous one and was ignored.
    pub too_soon: bool,
}

/// Limits a received `ut_pex` message: drops addresses no peer can have
/// (port 0, unspecified, multicast, the IPv4 broadcast address) and
/// repeats, then keeps at most [`PexConfig::max_added`] added and
/// [`PexConfig::max_dropped`] dropped, counting what it left out.
///
/// ```
/// use rustico_peer_wire::{filter_incoming_pex, PexConfig, PexFlags, PexMessage, PexPeer};
///
/// let peer = |a: &str| PexPeer { addr: a.parse().unwrap(), flags: PexFlags(0) };
/// let message = PexMessage {
///     added: vec![peer("10.0.0.1:6881"), peer("10.0.0.2:0"), peer("0.0.0.0:80"), peer("10.0.0.1:6881")],
///     dropped: vec![],
/// };
/// let incoming = filter_incoming_pex(message, &PexConfig::default());
/// assert_eq!(incoming.added, [peer("10.0.0.1:6881")]);
/// assert_eq!(incoming.discarded, 3);
/// ```
pub fn filter_incoming_pex(message: PexMessage, config: &PexConfig) -> IncomingPex {
    let total = message.added.len() + message.dropped.len();
    let mut added: Vec<PexPeer> = Vec::new();
    for peer in message.added {
        if added.len() >= config.max_added {
            break;
        }
        if plausible(&peer.addr) && !added.iter().any(|p| p.addr == peer.addr) {
            added.push(peer);
        }
    }
    let mut dropped: Vec<SocketAddr> = Vec::new();
    for addr in message.dropped {
        if dropped.len() >= config.max_dropped {
            break;
        }
        if plausible(&addr) && !dropped.contains(&addr) {
            dropped.push(addr);
        }
    }
    IncomingPex {
        discarded: total - added.len() - dropped.len(),
        added,
        dropped,
        too_soon: false,
    }
}

/// An address a peer could listen on.
fn plausible(addr: &SocketAddr) -> bool {
    addr.port() != 0
        && !addr.ip().is_unspecified()
        && !addr.ip().is_multicast()
        && !matches!(addr.ip(), IpAddr::V4(ip) if ip.is_broadcast())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pex::PexFlags;

    fn peer(port: u16) -> PexPeer {
        PexPeer {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            flags: PexFlags(PexFlags::REACHABLE),
        }
    }

    #[test]
    fn carries_over_past_fifty() {
        let mut pex = PexState::new(peer(1).addr, PexConfig::default());
        pex.set_connected((1..=120).map(peer));
        let t0 = Instant::now();
        let first = pex.poll_message(t0).unwrap();
        assert_eq!(first.added.len(), 50);
        assert!(!first.added.contains(&peer(1)));
        assert_eq!(pex.poll_message(t0 + Duration::from_secs(59)), None);
        assert_eq!(pex.poll_timeout(t0), Some(t0 + Duration::from_secs(60)));
        let second = pex.poll_message(t0 + Duration::from_secs(60)).unwrap();
        assert_eq!(second.added.len(), 50);
        pex.set_connected((100..=120).map(peer));
        let third = pex.poll_message(t0 + Duration::from_secs(120)).unwrap();
        // 102..=120 were never sent; 2..=99 of those sent are gone.
        assert_eq!(third.added.len(), 19);
        assert_eq!(third.dropped.len(), 50);
        let fourth = pex.poll_message(t0 + Duration::from_secs(180)).unwrap();
        assert_eq!((fourth.added.len(), fourth.dropped.len()), (0, 48));
        assert!(!pex.has_pending());
        assert_eq!(pex.poll_message(t0 + Duration::from_secs(600)), None);
        assert_eq!(pex.poll_timeout(t0), None);
    }

    /// The sets as maps, as `PexState` kept them before it kept sorted
    /// vectors: the oracle for `sorted_sets_say_what_maps_said`.
    #[derive(Default)]
    struct MapModel {
        remote: Vec<SocketAddr>,
        connected: std::collections::BTreeMap<SocketAddr, PexFlags>,
        sent: std::collections::BTreeMap<SocketAddr, PexFlags>,
        last_sent: Option<Instant>,
    }

    impl MapModel {
        fn set_connected(&mut self, peers: &[PexPeer]) {
            self.connected.clear();
            for p in peers {
                if !self.remote.contains(&p.addr) && plausible(&p.addr) {
                    self.connected.insert(p.addr, p.flags);
                }
            }
        }

        fn poll(&mut self, now: Instant, config: &PexConfig) -> Option<PexMessage> {
            if self
                .last_sent
                .is_some_and(|last| now.saturating_duration_since(last) < config.interval)
            {
                return None;
            }
            let added: Vec<PexPeer> = self
                .connected
                .iter()
                .filter(|(a, _)| !self.sent.contains_key(a))
                .take(config.max_added)
                .map(|(&addr, &flags)| PexPeer { addr, flags })
                .collect();
            let dropped: Vec<SocketAddr> = self
                .sent
                .keys()
                .filter(|a| !self.connected.contains_key(a))
                .take(config.max_dropped)
                .copied()
                .collect();
            if added.is_empty() && dropped.is_empty() {
                return None;
            }
            for p in &added {
                self.sent.insert(p.addr, p.flags);
            }
            for a in &dropped {
                self.sent.remove(a);
            }
            self.last_sent = Some(now);
            Some(PexMessage { added, dropped })
        }
    }

    proptest::proptest! {
        /// Random peer sets (repeats, port 0, the remote's own addresses
        /// included), polls and exclusions give the messages and pending
        /// state the map version gave.
        #[test]
        fn sorted_sets_say_what_maps_said(
            steps in proptest::collection::vec(
                (
                    proptest::collection::vec((0u16..40, 0u8..4), 0..60),
                    0u64..90,
                    proptest::option::of(0u16..40),
                ),
                1..12,
            ),
        ) {
            let config = PexConfig { max_added: 7, max_dropped: 5, ..PexConfig::default() };
            let remote = SocketAddr::from(([127, 0, 0, 1], 1));
            let mut pex = PexState::new(remote, config);
            let mut model = MapModel { remote: vec![remote], ..MapModel::default() };
            let mut now = Instant::now();
            for (set, wait, exclude) in steps {
                if let Some(port) = exclude {
                    let addr = SocketAddr::from(([127, 0, 0, 1], port));
                    pex.exclude(addr);
                    if !model.remote.contains(&addr) {
                        model.remote.push(addr);
                        model.connected.remove(&addr);
                    }
                }
                let peers: Vec<PexPeer> = set
                    .iter()
                    .map(|&(port, flags)| PexPeer {
                        addr: SocketAddr::from(([127, 0, 0, 1], port)),
                        flags: PexFlags(flags),
                    })
                    .collect();
                pex.set_connected(peers.iter().copied());
                model.set_connected(&peers);
                now += Duration::from_secs(wait);
                proptest::prop_assert_eq!(pex.poll_message(now), model.poll(now, &config));
                let model_pending = model.connected.keys().ne(model.sent.keys());
                proptest::prop_assert_eq!(pex.has_pending(), model_pending);
            }
        }
    }

    #[test]
    fn excluded_listen_address_is_not_advertised() {
        let mut pex = PexState::new(peer(40000).addr, PexConfig::default());
        pex.exclude(peer(6881).addr);
        pex.set_connected([peer(6881), peer(6882), peer(40000)]);
        let message = pex.poll_message(Instant::now()).unwrap();
        assert_eq!(message.added, [peer(6882)]);
    }

    #[test]
    fn incoming_is_capped_and_cleaned() {
        let config = PexConfig::default();
        let mut added: Vec<PexPeer> = (1..=200).map(peer).collect();
        added.insert(0, peer(0));
        added.insert(1, peer(5));
        let message = PexMessage {
            added,
            dropped: vec![
                "224.0.0.1:80".parse().unwrap(),
                "255.255.255.255:80".parse().unwrap(),
                "[::]:80".parse().unwrap(),
                "[::1]:80".parse().unwrap(),
            ],
        };
        let incoming = filter_incoming_pex(message, &config);
        assert_eq!(incoming.added.len(), 50);
        assert_eq!(incoming.added[0], peer(5));
        assert!(!incoming.added[1..].contains(&peer(5)));
        assert_eq!(
            incoming.dropped,
            ["[::1]:80".parse::<SocketAddr>().unwrap()]
        );
        assert_eq!(incoming.discarded, 202 + 4 - 51);
    }

    #[test]
    fn incoming_too_soon_is_ignored() {
        let mut pex = PexState::new(peer(1).addr, PexConfig::default());
        let message = PexMessage {
            added: vec![peer(1), peer(2)],
            dropped: vec![],
        };
        let t0 = Instant::now();
        let first = pex.handle_incoming(message.clone(), t0);
        assert_eq!((first.added, first.discarded), (vec![peer(2)], 1));
        let second = pex.handle_incoming(message.clone(), t0 + Duration::from_secs(29));
        assert!(second.too_soon && second.added.is_empty());
        assert_eq!(second.discarded, 2);
        let third = pex.handle_incoming(message, t0 + Duration::from_secs(30));
        assert!(!third.too_soon);
        assert_eq!(third.added, [peer(2)]);
    }
}
