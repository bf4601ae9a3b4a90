//! The connection policy, as pure logic: which known addresses to dial,
//! how many at once, backoff after failures, and bans.
//!
//! Addresses come from trackers, the command line, PEX and the DHT. A
//! failed or dropped connection waits `base * 2^failures` (at most `max`)
//! before another try; a banned address is neither dialled nor accepted
//! until its ban ends. The list of candidates is capped. Candidates are
//! dialled fewest failures first, then by [`PeerSource`]; among equally
//! good ones the order is random (seeded), so every peer in a long list
//! gets its chance. Addresses known to be seeds are not dialled while we
//! seed too: two seeds have nothing to trade, and redialling them only
//! to hang up again was most of a finished swarm's connections. Time is
//! a parameter.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::rng::SplitMix64;
use crate::types::PeerSource;

#[derive(Debug)]
struct Known {
    /// Being dialled or connected.
    busy: bool,
    failures: u32,
    retry_at: Option<Instant>,
    banned_until: Option<Instant>,
    /// The best source that named this address.
    source: PeerSource,
    /// Random tie-break among candidates with as many failures.
    order: u64,
    /// A seed was seen there (its bitfield, or a PEX seed flag).
    seed: bool,
}

impl Known {
    fn banned(&self, now: Instant) -> bool {
        self.banned_until.is_some_and(|t| now < t)
    }
}

/// How a connection ended, for the backoff rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ended {
    /// Connecting or the handshake failed, or the peer broke the protocol
    /// (or had nothing to trade): the backoff grows.
    Failed,
    /// A normal end; retried after the base backoff.
    Closed,
}

/// Which peers to connect to, for one torrent.
#[derive(Debug)]
pub(crate) struct Policy {
    max_candidates: usize,
    base_backoff: Duration,
    max_backoff: Duration,
    ban_duration: Duration,
    known: HashMap<SocketAddr, Known>,
    /// We have every piece: seeds are not dialled.
    seeding: bool,
    rng: SplitMix64,
}

impl Policy {
    pub(crate) fn new(
        max_candidates: usize,
        base_backoff: Duration,
        max_backoff: Duration,
        ban_duration: Duration,
        seed: u64,
    ) -> Policy {
        Policy {
            max_candidates,
            base_backoff,
            max_backoff,
            ban_duration,
            known: HashMap::new(),
            seeding: false,
            rng: SplitMix64::new(seed),
        }
    }

    /// Addresses known.
    pub(crate) fn len(&self) -> usize {
        self.known.len()
    }

    fn entry(&mut self, addr: SocketAddr, source: PeerSource) -> &mut Known {
        let order = self.rng.next_u64();
        let k = self.known.entry(addr).or_insert(Known {
            busy: false,
            failures: 0,
            retry_at: None,
            banned_until: None,
            source,
            order,
            seed: false,
        });
        k.source = k.source.min(source);
        k
    }

    /// Learns an address from `source`. Returns false when it was refused
    /// because the list is full (an address already known is accepted, and
    /// keeps the better of its sources).
    pub(crate) fn handle_candidate(&mut self, addr: SocketAddr, source: PeerSource) -> bool {
        if !self.known.contains_key(&addr) && self.known.len() >= self.max_candidates {
            return false;
        }
        self.entry(addr, source);
        true
    }

    /// A connection with `addr` is open (handshake done), or accepted. A
    /// peer that answered once ranks with the user's own peers from now
    /// on.
    pub(crate) fn handle_connected(&mut self, addr: SocketAddr) {
        let k = self.entry(addr, PeerSource::User);
        k.busy = true;
        k.failures = 0;
    }

    /// A connection attempt or connection with `addr` ended.
    pub(crate) fn handle_ended(&mut self, addr: SocketAddr, how: Ended, now: Instant) {
        let (base, max) = (self.base_backoff, self.max_backoff);
        let k = self.entry(addr, PeerSource::Pex);
        k.busy = false;
        if how == Ended::Failed {
            k.failures = k.failures.saturating_add(1);
        }
        let backoff = base
            .saturating_mul(1u32.checked_shl(k.failures.min(16)).unwrap_or(u32::MAX))
            .min(max);
        k.retry_at = Some(now + backoff);
    }

    /// A dial of `addr` returned by [`Policy::poll_dial`] was never made
    /// (the driver had no slot): it is dialable again at once, with its
    /// failures and backoff as they were.
    pub(crate) fn handle_deferred(&mut self, addr: SocketAddr) {
        if let Some(k) = self.known.get_mut(&addr) {
            k.busy = false;
        }
    }

    /// A seed is at `addr` (a known address; others are left alone, as
    /// they would be over the cap).
    pub(crate) fn handle_seed(&mut self, addr: SocketAddr) {
        if let Some(k) = self.known.get_mut(&addr) {
            k.seed = true;
        }
    }

    /// Whether we have every piece. While we do, known seeds are not
    /// dialled.
    pub(crate) fn set_seeding(&mut self, seeding: bool) {
        self.seeding = seeding;
    }

    /// Bans `addr` from now on, for the configured time.
    pub(crate) fn ban(&mut self, addr: SocketAddr, now: Instant) {
        let until = now + self.ban_duration;
        self.entry(addr, PeerSource::Pex).banned_until = Some(until);
    }

    /// Whether `addr` is banned now.
    pub(crate) fn is_banned(&self, addr: SocketAddr, now: Instant) -> bool {
        self.known.get(&addr).is_some_and(|k| k.banned(now))
    }

    /// Every address known and not banned now, in no particular order.
    pub(crate) fn unbanned(&self, now: Instant) -> impl Iterator<Item = SocketAddr> + '_ {
        self.known
            .iter()
            .filter(move |(_, k)| !k.banned(now))
            .map(|(&addr, _)| addr)
    }

    /// Busy, or a seed while we seed: not dialled, whatever its backoff.
    fn passed_over(&self, k: &Known) -> bool {
        k.busy || (self.seeding && k.seed)
    }

    fn dialable(&self, k: &Known, now: Instant) -> bool {
        !self.passed_over(k) && !k.banned(now) && k.retry_at.is_none_or(|t| now >= t)
    }

    /// Up to `free` addresses to dial now, best first (fewest failures,
    /// then best source, ties in random order), leaving out those `skip`
    /// says no to (connected already, or their IP address has its share
    /// of connections). `skip` is asked in that order, once per address,
    /// until `free` are taken, so it may count what it lets through. The
    /// caller dials them and reports [`Policy::handle_connected`] or
    /// [`Policy::handle_ended`]; an address returned here counts as busy
    /// until then.
    pub(crate) fn poll_dial(
        &mut self,
        now: Instant,
        free: usize,
        mut skip: impl FnMut(SocketAddr) -> bool,
    ) -> Vec<SocketAddr> {
        if free == 0 {
            return Vec::new();
        }
        let mut ready: Vec<(u32, PeerSource, u64, SocketAddr)> = self
            .known
            .iter()
            .filter(|(_, k)| self.dialable(k, now))
            .map(|(addr, k)| (k.failures, k.source, k.order, *addr))
            .collect();
        ready.sort_unstable();
        let mut out = Vec::new();
        for (_, _, _, addr) in ready {
            if out.len() >= free {
                break;
            }
            if skip(addr) {
                continue;
            }
            if let Some(k) = self.known.get_mut(&addr) {
                k.busy = true;
            }
            out.push(addr);
        }
        out
    }

    /// Whether some address could be dialled now (one `skip` does not
    /// rule out).
    pub(crate) fn has_ready(&self, now: Instant, skip: impl Fn(SocketAddr) -> bool) -> bool {
        self.known
            .iter()
            .any(|(addr, k)| self.dialable(k, now) && !skip(*addr))
    }

    /// The next moment a backed-off or banned address becomes dialable.
    pub(crate) fn next_ready(&self, now: Instant) -> Option<Instant> {
        self.known
            .values()
            .filter(|k| !self.passed_over(k))
            .filter_map(|k| match (k.retry_at, k.banned_until) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            })
            .filter(|&t| t > now)
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: Duration = Duration::from_secs(5);
    const MAX: Duration = Duration::from_secs(300);
    const BAN: Duration = Duration::from_secs(600);

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn policy() -> Policy {
        Policy::new(100, BASE, MAX, BAN, 1)
    }

    #[test]
    fn dials_up_to_free_slots_and_not_twice() {
        let now = Instant::now();
        let mut p = policy();
        for port in 1..=5 {
            p.handle_candidate(addr(port), PeerSource::Tracker);
        }
        assert_eq!(p.poll_dial(now, 2, |_| false).len(), 2);
        assert_eq!(p.poll_dial(now, 10, |_| false).len(), 3);
        assert!(p.poll_dial(now, 10, |_| false).is_empty(), "all are busy");
    }

    #[test]
    fn failures_back_off_exponentially() {
        let t0 = Instant::now();
        let mut p = policy();
        p.handle_candidate(addr(1), PeerSource::Tracker);
        assert_eq!(p.poll_dial(t0, 9, |_| false), [addr(1)]);
        p.handle_ended(addr(1), Ended::Failed, t0);
        assert!(p
            .poll_dial(t0 + Duration::from_secs(9), 9, |_| false)
            .is_empty());
        assert_eq!(p.next_ready(t0), Some(t0 + Duration::from_secs(10)));
        assert_eq!(
            p.poll_dial(t0 + Duration::from_secs(10), 9, |_| false),
            [addr(1)]
        );
        p.handle_ended(addr(1), Ended::Failed, t0);
        assert!(p
            .poll_dial(t0 + Duration::from_secs(19), 9, |_| false)
            .is_empty());
        assert_eq!(
            p.poll_dial(t0 + Duration::from_secs(20), 9, |_| false),
            [addr(1)]
        );
        p.handle_connected(addr(1));
        p.handle_ended(addr(1), Ended::Closed, t0);
        assert_eq!(
            p.poll_dial(t0 + BASE, 9, |_| false),
            [addr(1)],
            "success resets the backoff"
        );
    }

    #[test]
    fn a_deferred_dial_counts_no_failure() {
        let t0 = Instant::now();
        let mut p = policy();
        p.handle_candidate(addr(1), PeerSource::Tracker);
        assert_eq!(p.poll_dial(t0, 9, |_| false), [addr(1)]);
        assert!(p.poll_dial(t0, 9, |_| false).is_empty(), "busy");
        p.handle_deferred(addr(1));
        assert_eq!(p.poll_dial(t0, 9, |_| false), [addr(1)], "no backoff");
        // A real failure after that still backs off from the base.
        p.handle_ended(addr(1), Ended::Failed, t0);
        assert_eq!(p.next_ready(t0), Some(t0 + BASE * 2));
    }

    #[test]
    fn a_ban_keeps_the_address_away_for_its_duration() {
        let t0 = Instant::now();
        let mut p = policy();
        p.handle_candidate(addr(1), PeerSource::Tracker);
        p.ban(addr(1), t0);
        assert!(p.is_banned(addr(1), t0));
        assert!(p
            .poll_dial(t0 + Duration::from_secs(400), 9, |_| false)
            .is_empty());
        assert!(!p.is_banned(addr(1), t0 + BAN));
        assert_eq!(p.poll_dial(t0 + BAN, 9, |_| false), [addr(1)]);
    }

    #[test]
    fn seeds_are_not_dialled_while_we_seed() {
        let t0 = Instant::now();
        let mut p = policy();
        p.handle_candidate(addr(1), PeerSource::Tracker);
        p.handle_candidate(addr(2), PeerSource::Tracker);
        p.handle_seed(addr(1));
        p.handle_seed(addr(3));
        assert_eq!(p.len(), 2, "an unknown seed is not learned");
        p.set_seeding(true);
        assert_eq!(p.poll_dial(t0, 9, |_| false), [addr(2)]);
        p.handle_ended(addr(2), Ended::Closed, t0);
        assert_eq!(p.next_ready(t0), Some(t0 + BASE), "the seed sets no timer");
        assert!(!p.has_ready(t0 + BASE, |a| a == addr(2)));
        p.set_seeding(false);
        assert!(p.has_ready(t0, |_| false));
        assert_eq!(p.poll_dial(t0, 9, |_| false), [addr(1)]);
    }

    #[test]
    fn backoff_never_exceeds_the_maximum() {
        let t0 = Instant::now();
        let mut p = policy();
        for _ in 0..40 {
            p.handle_ended(addr(1), Ended::Failed, t0);
        }
        assert_eq!(p.poll_dial(t0 + MAX, 9, |_| false), [addr(1)]);
    }

    #[test]
    fn the_candidate_list_is_capped_and_dial_order_is_seeded() {
        let t0 = Instant::now();
        let order = |seed| {
            let mut p = Policy::new(10, BASE, MAX, BAN, seed);
            for port in 1..=20 {
                p.handle_candidate(addr(port), PeerSource::Tracker);
            }
            assert_eq!(p.len(), 10);
            p.poll_dial(t0, 10, |_| false)
        };
        assert_eq!(order(3), order(3));
        let sorted: Vec<SocketAddr> = (1..=10).map(addr).collect();
        assert!(
            (0..8).any(|seed| order(seed) != sorted),
            "dial order should not simply follow the address order"
        );
    }

    #[test]
    fn skipped_addresses_are_not_dialled() {
        let t0 = Instant::now();
        let mut p = policy();
        p.handle_candidate(addr(1), PeerSource::Tracker);
        p.handle_candidate(addr(2), PeerSource::Tracker);
        assert_eq!(p.poll_dial(t0, 9, |a| a == addr(1)), [addr(2)]);
    }

    #[test]
    fn the_users_peers_are_dialled_before_a_flood_of_tracker_addresses() {
        let t0 = Instant::now();
        for seed in 0..16 {
            let mut p = Policy::new(3000, BASE, MAX, BAN, seed);
            for port in 1..=2000 {
                p.handle_candidate(addr(port), PeerSource::Tracker);
            }
            p.handle_candidate(addr(9000), PeerSource::Pex);
            p.handle_candidate(addr(9001), PeerSource::User);
            // Named by PEX first, then by the DHT: the better source counts.
            p.handle_candidate(addr(9002), PeerSource::Pex);
            p.handle_candidate(addr(9002), PeerSource::Dht);
            let first = p.poll_dial(t0, 1, |_| false);
            assert_eq!(first, [addr(9001)], "seed {seed}");
            let rest = p.poll_dial(t0, 3000, |_| false);
            assert_eq!(rest.len(), 2002);
            assert_eq!(rest[2000], addr(9002), "DHT after trackers (seed {seed})");
            assert_eq!(rest[2001], addr(9000), "PEX last (seed {seed})");
        }
    }

    #[test]
    fn fewer_failures_outrank_a_better_source() {
        let t0 = Instant::now();
        let mut p = policy();
        p.handle_candidate(addr(1), PeerSource::User);
        p.handle_candidate(addr(2), PeerSource::Pex);
        assert_eq!(p.poll_dial(t0, 1, |_| false), [addr(1)]);
        p.handle_ended(addr(1), Ended::Failed, t0);
        let later = t0 + MAX;
        assert_eq!(p.poll_dial(later, 2, |_| false), [addr(2), addr(1)]);
    }

    #[test]
    fn a_peer_that_answered_ranks_with_the_users_own() {
        let t0 = Instant::now();
        let mut p = policy();
        p.handle_candidate(addr(1), PeerSource::User);
        p.handle_candidate(addr(2), PeerSource::Pex);
        p.handle_connected(addr(2));
        p.handle_ended(addr(2), Ended::Closed, t0);
        p.handle_candidate(addr(3), PeerSource::Tracker);
        let later = t0 + MAX;
        let order = p.poll_dial(later, 3, |_| false);
        assert_eq!(order[2], addr(3), "{order:?}");
    }
}
