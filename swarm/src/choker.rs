//! The choker, as pure logic: which interested peers we upload to.
//!
//! Every rechoke interval (and whenever the swarm likes, e.g. when a peer
//! becomes interested) the swarm passes every peer's state to
//! [`Choker::decide`], which returns the peers to unchoke: the
//! `slots - 1` best by rate (while leeching, those who upload most to us:
//! tit-for-tat; while seeding, those who download fastest from us) plus one
//! optimistic unchoke, a random other interested peer, rotated every
//! optimistic interval. Time is a parameter; randomness is seeded.
//!
//! A peer the swarm found wasting a slot (unchoked, interested, taking
//! nothing) ranks behind every peer that was not, whatever the rates: it
//! only gets a slot nobody else wants. Otherwise a crowd of idle peers,
//! all at rate zero, could hold every slot by table order alone.

use std::time::{Duration, Instant};

/// What the choker needs to know about one peer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PeerState<K> {
    /// The caller's handle for the peer.
    pub key: K,
    /// The peer wants data from us.
    pub interested: bool,
    /// Payload bytes per second the peer sends us.
    pub rate_from_peer: f64,
    /// Payload bytes per second we send the peer.
    pub rate_to_peer: f64,
    /// It held a slot and took nothing: it ranks behind every other peer.
    pub wasted_a_slot: bool,
}

/// Choking decisions for one torrent.
#[derive(Debug)]
pub struct Choker<K> {
    slots: usize,
    optimistic_interval: Duration,
    optimistic: Option<K>,
    next_optimistic: Option<Instant>,
    rng: u64,
}

impl<K: Copy + Eq> Choker<K> {
    /// A choker with `slots` upload slots (at least 1: the optimistic one),
    /// the optimistic unchoke moving every `optimistic_interval`, random
    /// choices seeded by `seed`.
    pub fn new(slots: usize, optimistic_interval: Duration, seed: u64) -> Choker<K> {
        Choker {
            slots: slots.max(1),
            optimistic_interval,
            optimistic: None,
            next_optimistic: None,
            rng: seed,
        }
    }

    /// The peers to unchoke now (every other peer is choked). `seeding`
    /// switches the ranking from "uploads to us" to "downloads from us".
    pub fn decide(&mut self, now: Instant, seeding: bool, peers: &[PeerState<K>]) -> Vec<K> {
        let mut ranked: Vec<&PeerState<K>> = peers.iter().filter(|p| p.interested).collect();
        let rate = |p: &PeerState<K>| {
            if seeding {
                p.rate_to_peer
            } else {
                p.rate_from_peer
            }
        };
        ranked.sort_by(|a, b| {
            a.wasted_a_slot
                .cmp(&b.wasted_a_slot)
                .then(rate(b).total_cmp(&rate(a)))
        });
        if ranked.len() <= self.slots {
            // Room for everyone who asks: no need to choose.
            self.optimistic = None;
            return ranked.iter().map(|p| p.key).collect();
        }
        let regular: Vec<K> = ranked.iter().take(self.slots - 1).map(|p| p.key).collect();
        let rest = &ranked[self.slots - 1..];
        // The optimistic slot goes to a peer that has not wasted one, if
        // any is left.
        let fresh = rest.iter().any(|p| !p.wasted_a_slot);
        let candidates: Vec<K> = rest
            .iter()
            .filter(|p| !(fresh && p.wasted_a_slot))
            .map(|p| p.key)
            .collect();
        let rotate = self.next_optimistic.is_none_or(|t| now >= t)
            || self.optimistic.is_none_or(|o| !candidates.contains(&o));
        if rotate {
            let pick = (self.next_random() % candidates.len() as u64) as usize;
            self.optimistic = candidates.get(pick).copied();
            self.next_optimistic = Some(now + self.optimistic_interval);
        }
        let mut unchoked = regular;
        unchoked.extend(self.optimistic);
        unchoked
    }

    fn next_random(&mut self) -> u64 {
        // splitmix64: small, seedable, good enough for a tie-break.
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPTIMISTIC_INTERVAL: Duration = Duration::from_secs(30);

    fn peer(key: u32, interested: bool, from: f64, to: f64) -> PeerState<u32> {
        PeerState {
            key,
            interested,
            rate_from_peer: from,
            rate_to_peer: to,
            wasted_a_slot: false,
        }
    }

    /// Found by `hostile_slots.rs`: with fewer eager peers than slots,
    /// idle peers that had wasted slots came back on equal terms and, all
    /// at rate zero, kept every slot by table order; the honest leecher
    /// behind them was never unchoked.
    #[test]
    fn peers_that_wasted_a_slot_rank_behind_every_other() {
        let mut peers: Vec<_> = (0..20)
            .map(|k| PeerState {
                wasted_a_slot: true,
                ..peer(k, true, 0.0, 0.0)
            })
            .collect();
        peers.push(peer(20, true, 0.0, 0.0));
        // Even slower than a waster that is uploading to us.
        peers[3].rate_from_peer = 50.0;
        let t0 = Instant::now();
        for seeding in [true, false] {
            for seed in 0..20 {
                let mut c = Choker::new(4, OPTIMISTIC_INTERVAL, seed);
                let got = c.decide(t0, seeding, &peers);
                assert_eq!(got.len(), 4);
                assert_eq!(got[0], 20, "the eager peer gets the first slot");
            }
        }
        // Two eager peers and four slots: one regular, one optimistic.
        peers.push(peer(21, true, 0.0, 0.0));
        peers.swap(0, 21);
        for seed in 0..20 {
            let mut c = Choker::new(2, OPTIMISTIC_INTERVAL, seed);
            let mut got = c.decide(t0, true, &peers);
            got.sort();
            assert_eq!(got, [20, 21], "seed {seed}");
        }
    }

    #[test]
    fn everyone_interested_is_unchoked_when_slots_suffice() {
        let mut c = Choker::new(4, OPTIMISTIC_INTERVAL, 1);
        let peers = [
            peer(1, true, 0.0, 0.0),
            peer(2, false, 9.0, 9.0),
            peer(3, true, 1.0, 0.0),
        ];
        let mut got = c.decide(Instant::now(), false, &peers);
        got.sort();
        assert_eq!(got, [1, 3]);
    }

    #[test]
    fn leeching_rewards_the_best_uploaders_to_us() {
        let mut c = Choker::new(3, OPTIMISTIC_INTERVAL, 7);
        let peers: Vec<_> = (0..10)
            .map(|k| peer(k, true, k as f64, 100.0 - k as f64))
            .collect();
        let got = c.decide(Instant::now(), false, &peers);
        assert_eq!(got.len(), 3);
        assert_eq!(&got[..2], &[9, 8]);
        let optimistic = got[2];
        assert!(
            optimistic < 8,
            "optimistic {optimistic} must be another peer"
        );
    }

    #[test]
    fn seeding_serves_the_fastest_downloaders() {
        let mut c = Choker::new(3, OPTIMISTIC_INTERVAL, 7);
        let peers: Vec<_> = (0..10)
            .map(|k| peer(k, true, k as f64, 100.0 - k as f64))
            .collect();
        let got = c.decide(Instant::now(), true, &peers);
        assert_eq!(&got[..2], &[0, 1]);
    }

    #[test]
    fn the_optimistic_unchoke_rotates_only_every_30_seconds() {
        let t0 = Instant::now();
        let peers: Vec<_> = (0..20).map(|k| peer(k, true, 0.0, 0.0)).collect();
        let mut c = Choker::new(2, OPTIMISTIC_INTERVAL, 3);
        let first = c.decide(t0, false, &peers)[1];
        for s in [10, 20, 29] {
            assert_eq!(
                c.decide(t0 + Duration::from_secs(s), false, &peers)[1],
                first
            );
        }
        let mut seen = std::collections::HashSet::new();
        for round in 1..20 {
            seen.insert(c.decide(t0 + OPTIMISTIC_INTERVAL * round, false, &peers)[1]);
        }
        assert!(
            seen.len() > 3,
            "rotation should visit several peers: {seen:?}"
        );
    }

    #[test]
    fn a_departed_optimistic_peer_is_replaced_at_once() {
        let t0 = Instant::now();
        let mut peers: Vec<_> = (0..5).map(|k| peer(k, true, k as f64, 0.0)).collect();
        let mut c = Choker::new(2, OPTIMISTIC_INTERVAL, 11);
        let opt = c.decide(t0, false, &peers)[1];
        peers.retain(|p| p.key != opt);
        let now = c.decide(t0 + Duration::from_secs(1), false, &peers);
        assert_ne!(now[1], opt);
        assert!(peers.iter().any(|p| p.key == now[1]));
    }

    #[test]
    fn the_same_seed_replays_the_same_choices() {
        let peers: Vec<_> = (0..30).map(|k| peer(k, true, 0.0, 0.0)).collect();
        let t0 = Instant::now();
        let run = |seed| {
            let mut c = Choker::new(2, OPTIMISTIC_INTERVAL, seed);
            (0..10)
                .map(|i| c.decide(t0 + OPTIMISTIC_INTERVAL * i, false, &peers))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(5), run(5));
    }
}
