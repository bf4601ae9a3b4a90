//! The peer connection manager's policy, as pure logic: which known
//! addresses to dial, how many at once, backoff after failures, and bans
//! for peers that sent pieces failing their hash.
//!
//! Addresses come from trackers, `--peer` and incoming connections. A failed
//! or dropped connection waits `5 s * 2^failures` (at most 5 minutes) before
//! another try; [`HASH_FAILURES_TO_BAN`] bad pieces ban the address for
//! [`BAN_DURATION`]. Time is a parameter.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Bad pieces after which a peer is dropped and banned.
pub const HASH_FAILURES_TO_BAN: u32 = 2;
/// How long a banned peer stays banned.
pub const BAN_DURATION: Duration = Duration::from_secs(600);
const BASE_BACKOFF: Duration = Duration::from_secs(5);
const MAX_BACKOFF: Duration = Duration::from_secs(300);

#[derive(Debug, Default)]
struct Known {
    connected: bool,
    failures: u32,
    hash_failures: u32,
    retry_at: Option<Instant>,
    banned_until: Option<Instant>,
}

/// How a connection ended, for the backoff rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Connecting or the handshake failed, or the peer broke the protocol.
    Failed,
    /// A normal end (we or they closed); retried after the base backoff.
    Closed,
}

/// Which peers to connect to, for one torrent.
#[derive(Debug)]
pub struct PeerPolicy {
    max_peers: usize,
    known: HashMap<SocketAddr, Known>,
}

impl PeerPolicy {
    /// A policy allowing `max_peers` connections at once.
    pub fn new(max_peers: usize) -> PeerPolicy {
        PeerPolicy {
            max_peers,
            known: HashMap::new(),
        }
    }

    /// Connections open now.
    pub fn connected(&self) -> usize {
        self.known.values().filter(|k| k.connected).count()
    }

    /// Learns an address (from a tracker or the command line).
    pub fn handle_candidate(&mut self, addr: SocketAddr) {
        self.known.entry(addr).or_default();
    }

    /// Whether a new connection with `addr` (incoming or outgoing) is
    /// acceptable now: not banned, not already connected, and under the limit.
    #[cfg(test)]
    pub fn may_connect(&self, addr: SocketAddr, now: Instant) -> bool {
        if self.connected() >= self.max_peers {
            return false;
        }
        match self.known.get(&addr) {
            Some(k) => !k.connected && k.banned_until.is_none_or(|t| now >= t),
            None => true,
        }
    }

    /// A connection with `addr` is open (handshake done).
    pub fn handle_connected(&mut self, addr: SocketAddr) {
        let k = self.known.entry(addr).or_default();
        k.connected = true;
        k.failures = 0;
    }

    /// A connection attempt or connection with `addr` ended.
    pub fn handle_ended(&mut self, addr: SocketAddr, how: Ended, now: Instant) {
        let k = self.known.entry(addr).or_default();
        k.connected = false;
        if how == Ended::Failed {
            k.failures = k.failures.saturating_add(1);
        }
        let backoff = BASE_BACKOFF
            .saturating_mul(1u32.checked_shl(k.failures.min(16)).unwrap_or(u32::MAX))
            .min(MAX_BACKOFF);
        k.retry_at = Some(now + backoff);
    }

    /// A piece that `addr` contributed to failed its hash. Returns true
    /// when the peer is now banned (the caller drops the connection).
    pub fn handle_hash_failure(&mut self, addr: SocketAddr, now: Instant) -> bool {
        let k = self.known.entry(addr).or_default();
        k.hash_failures = k.hash_failures.saturating_add(1);
        if k.hash_failures >= HASH_FAILURES_TO_BAN {
            k.banned_until = Some(now + BAN_DURATION);
            return true;
        }
        false
    }

    /// Bans `addr` now (proof of a corrupt block, say).
    pub fn ban(&mut self, addr: SocketAddr, now: Instant) {
        let k = self.known.entry(addr).or_default();
        k.hash_failures = k.hash_failures.max(HASH_FAILURES_TO_BAN);
        k.banned_until = Some(now + BAN_DURATION);
    }

    /// Whether `addr` is banned now.
    pub fn is_banned(&self, addr: SocketAddr, now: Instant) -> bool {
        self.known
            .get(&addr)
            .is_some_and(|k| k.banned_until.is_some_and(|t| now < t))
    }

    /// Addresses to dial now, best first (never tried, then fewest
    /// failures), at most `free` of them and never past the limit. The caller dials them and
    /// reports [`PeerPolicy::handle_connected`] or [`PeerPolicy::handle_ended`];
    /// an address returned here counts as connected until then.
    pub fn poll_dial(&mut self, now: Instant, free: usize) -> Vec<SocketAddr> {
        let free = self.max_peers.saturating_sub(self.connected()).min(free);
        let mut ready: Vec<(u32, SocketAddr)> = self
            .known
            .iter()
            .filter(|(_, k)| {
                !k.connected
                    && k.banned_until.is_none_or(|t| now >= t)
                    && k.retry_at.is_none_or(|t| now >= t)
            })
            .map(|(addr, k)| (k.failures, *addr))
            .collect();
        ready.sort();
        ready.truncate(free);
        for (_, addr) in &ready {
            if let Some(k) = self.known.get_mut(addr) {
                k.connected = true;
            }
        }
        ready.into_iter().map(|(_, addr)| addr).collect()
    }

    /// The next moment a backed-off or banned address becomes dialable.
    #[cfg(test)]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.known
            .values()
            .filter(|k| !k.connected)
            .filter_map(|k| match (k.retry_at, k.banned_until) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            })
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn dials_up_to_the_limit_and_not_twice() {
        let now = Instant::now();
        let mut p = PeerPolicy::new(2);
        for port in 1..=5 {
            p.handle_candidate(addr(port));
        }
        assert_eq!(p.poll_dial(now, usize::MAX).len(), 2);
        assert_eq!(
            p.poll_dial(now, usize::MAX).len(),
            0,
            "slots are taken by pending dials"
        );
        assert!(!p.may_connect(addr(9), now));
    }

    #[test]
    fn failures_back_off_exponentially() {
        let t0 = Instant::now();
        let mut p = PeerPolicy::new(10);
        p.handle_candidate(addr(1));
        assert_eq!(p.poll_dial(t0, usize::MAX), [addr(1)]);
        p.handle_ended(addr(1), Ended::Failed, t0);
        assert!(p
            .poll_dial(t0 + Duration::from_secs(9), usize::MAX)
            .is_empty());
        assert_eq!(
            p.poll_dial(t0 + Duration::from_secs(10), usize::MAX),
            [addr(1)]
        );
        p.handle_ended(addr(1), Ended::Failed, t0);
        assert!(p
            .poll_dial(t0 + Duration::from_secs(19), usize::MAX)
            .is_empty());
        assert_eq!(p.poll_timeout(), Some(t0 + Duration::from_secs(20)));
        assert_eq!(
            p.poll_dial(t0 + Duration::from_secs(20), usize::MAX),
            [addr(1)]
        );
        p.handle_connected(addr(1));
        p.handle_ended(addr(1), Ended::Closed, t0);
        assert_eq!(
            p.poll_dial(t0 + BASE_BACKOFF, usize::MAX),
            [addr(1)],
            "success resets the backoff"
        );
    }

    #[test]
    fn repeated_hash_failures_ban_the_peer() {
        let t0 = Instant::now();
        let mut p = PeerPolicy::new(10);
        p.handle_candidate(addr(1));
        assert!(!p.handle_hash_failure(addr(1), t0));
        assert!(p.handle_hash_failure(addr(1), t0));
        assert!(p.is_banned(addr(1), t0));
        assert!(!p.may_connect(addr(1), t0));
        assert!(p
            .poll_dial(t0 + Duration::from_secs(400), usize::MAX)
            .is_empty());
        assert!(!p.is_banned(addr(1), t0 + BAN_DURATION));
        assert_eq!(p.poll_dial(t0 + BAN_DURATION, usize::MAX), [addr(1)]);
    }

    #[test]
    fn backoff_never_exceeds_five_minutes() {
        let t0 = Instant::now();
        let mut p = PeerPolicy::new(10);
        for _ in 0..40 {
            p.handle_ended(addr(1), Ended::Failed, t0);
        }
        assert_eq!(p.poll_dial(t0 + MAX_BACKOFF, usize::MAX), [addr(1)]);
    }
}
