//! Limits an engine's torrents share: how many peer connections the whole
//! process may have ([`ConnectionBudget`]), and how fast it may upload and
//! download ([`RateLimits`], two [`rustico_swarm::TokenBucket`]s).
//!
//! ```
//! # // A binary's docs are not run: this is the unit test `module_example`.
//! use std::time::Instant;
//! use crate::engine::limits::{ConnectionBudget, Grant, RateLimits};
//!
//! // Two connections in all: a third must wait for one to end.
//! let budget = ConnectionBudget::new(2);
//! let a = budget.try_take().ok_or("slot")?;
//! let _b = budget.try_take().ok_or("slot")?;
//! assert!(budget.try_take().is_none());
//! drop(a); // the connection ended: its slot is free again
//! assert!(budget.try_take().is_some());
//!
//! // 1 MiB/s up, unlimited down.
//! let now = Instant::now();
//! let limits = RateLimits::new(1 << 20, 0, now);
//! assert_eq!(limits.down.request(1 << 30, now), Grant::Now(1 << 30));
//! let Grant::Now(first) = limits.up.request(1 << 30, now) else {
//!     return Err("the bucket starts full".into());
//! };
//! assert_eq!(first, limits.up.burst());
//! // Spent: the I/O code is told when to ask again.
//! assert!(matches!(limits.up.request(16 << 10, now), Grant::Wait(t) if t > now));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Rates count the bytes on the wire after the handshake, both ways:
//! payload and protocol messages alike (web seeds' HTTP traffic and
//! tracker and DHT traffic are not counted).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rustico_swarm::TokenBucket;

/// How many peer connections every torrent of an engine may have in all
/// (dialling, handshaking or established): a count shared by clones.
/// A connection holds a [`ConnectionSlot`] for as long as it lives;
/// dropping the slot gives it back, so a slot cannot leak.
#[derive(Debug, Clone)]
pub struct ConnectionBudget {
    inner: Arc<BudgetInner>,
}

#[derive(Debug)]
struct BudgetInner {
    /// Most slots out at once; 0 is unlimited.
    max: usize,
    used: AtomicUsize,
}

/// One connection's place in a [`ConnectionBudget`]; dropping it frees
/// the place.
#[derive(Debug)]
#[must_use = "the slot is freed when dropped"]
pub struct ConnectionSlot {
    inner: Arc<BudgetInner>,
}

impl ConnectionBudget {
    /// A budget of `max` connections; 0 is unlimited.
    pub fn new(max: usize) -> ConnectionBudget {
        ConnectionBudget {
            inner: Arc::new(BudgetInner {
                max,
                used: AtomicUsize::new(0),
            }),
        }
    }

    /// The most connections; `None` when unlimited.
    pub fn max(&self) -> Option<usize> {
        (self.inner.max != 0).then_some(self.inner.max)
    }

    /// Slots taken now.
    pub fn in_use(&self) -> usize {
        self.inner.used.load(Ordering::SeqCst)
    }

    /// A slot, or `None` when every one is taken.
    pub fn try_take(&self) -> Option<ConnectionSlot> {
        let max = self.inner.max;
        self.inner
            .used
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |used| {
                (max == 0 || used < max).then(|| used.saturating_add(1))
            })
            .ok()?;
        Some(ConnectionSlot {
            inner: Arc::clone(&self.inner),
        })
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let before = self.inner.used.fetch_sub(1, Ordering::SeqCst);
        debug_assert!(before > 0, "a connection slot freed twice");
    }
}

/// What a [`RateLimit`] answers to "may I move `n` bytes now?".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// Move this many bytes now (at least one, at most what was asked).
    Now(usize),
    /// Nothing now: ask again at this moment.
    Wait(Instant),
}

/// The engine's two shared rate limits; clones share the buckets.
#[derive(Debug, Clone)]
pub struct RateLimits {
    /// Bytes we send to peers.
    pub up: RateLimit,
    /// Bytes we read from peers.
    pub down: RateLimit,
}

impl RateLimits {
    /// Limits of `up` and `down` bytes per second (0: unlimited).
    pub fn new(up: u64, down: u64, now: Instant) -> RateLimits {
        RateLimits {
            up: RateLimit::new(up, now),
            down: RateLimit::new(down, now),
        }
    }
}

/// One direction's shared token bucket (or none: unlimited, and then no
/// lock is taken).
#[derive(Debug, Clone, Default)]
pub struct RateLimit {
    bucket: Option<Arc<Mutex<TokenBucket>>>,
}

/// Grants smaller than this (a block) are not handed out while the bucket
/// holds less: many connections sharing a bucket would otherwise wake and
/// move a few bytes each.
pub const MIN_GRANT: u64 = 16 << 10;

/// A limited bucket holds a quarter second of its rate (at least
/// [`MIN_GRANT`]): smooth enough for a test to measure, large enough that
/// a busy connection is not woken for every block.
fn burst_for(rate: u64) -> u64 {
    (rate / 4).max(MIN_GRANT)
}

impl RateLimit {
    /// `rate` bytes per second (0: unlimited), with a burst of a quarter
    /// second's worth (at least [`MIN_GRANT`]); it starts full.
    pub fn new(rate: u64, now: Instant) -> RateLimit {
        if rate == 0 {
            return RateLimit::unlimited();
        }
        RateLimit {
            bucket: Some(Arc::new(Mutex::new(TokenBucket::new(
                rate,
                burst_for(rate),
                now,
            )))),
        }
    }

    /// No limit.
    pub fn unlimited() -> RateLimit {
        RateLimit { bucket: None }
    }

    /// The most bytes granted at once (`usize::MAX` when unlimited).
    #[cfg(test)]
    pub fn burst(&self) -> usize {
        self.bucket.as_ref().map_or(usize::MAX, |b| {
            usize::try_from(lock(b).burst()).unwrap_or(usize::MAX)
        })
    }

    /// May `n` bytes be moved at `now`? Grants what is there (at most
    /// `n`) once at least `min(n, MIN_GRANT)` is; else says when to ask
    /// again. The caller moves at most the granted bytes, and gives back
    /// with [`give_back`](Self::give_back) what it did not move.
    pub fn request(&self, n: usize, now: Instant) -> Grant {
        let Some(bucket) = &self.bucket else {
            return Grant::Now(n);
        };
        if n == 0 {
            return Grant::Now(0);
        }
        let want = u64::try_from(n).unwrap_or(u64::MAX);
        let mut bucket = lock(bucket);
        let least = want.min(MIN_GRANT).min(bucket.burst());
        if bucket.available(now) < least {
            // A limited bucket always names a moment.
            let at = bucket.ready_at(least, now).unwrap_or(now);
            return Grant::Wait(at.max(now + Duration::from_micros(100)));
        }
        let granted = bucket.take(want, now);
        Grant::Now(usize::try_from(granted).unwrap_or(n))
    }

    /// Gives back bytes granted and not moved (a read that returned less
    /// than it was allowed).
    pub fn give_back(&self, n: usize) {
        if let Some(bucket) = &self.bucket {
            lock(bucket).give_back(u64::try_from(n).unwrap_or(u64::MAX));
        }
    }
}

/// Locks a bucket, also when a thread panicked holding it: a bucket is
/// whole after every call (plain integer updates).
fn lock(bucket: &Mutex<TokenBucket>) -> std::sync::MutexGuard<'_, TokenBucket> {
    bucket.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_example() {
        let budget = ConnectionBudget::new(2);
        let a = budget.try_take().unwrap();
        let _b = budget.try_take().unwrap();
        assert!(budget.try_take().is_none());
        drop(a);
        assert!(budget.try_take().is_some());
        let now = Instant::now();
        let limits = RateLimits::new(1 << 20, 0, now);
        assert_eq!(limits.down.request(1 << 30, now), Grant::Now(1 << 30));
        let Grant::Now(first) = limits.up.request(1 << 30, now) else {
            panic!("the bucket starts full");
        };
        assert_eq!(first, limits.up.burst());
        assert!(matches!(limits.up.request(16 << 10, now), Grant::Wait(t) if t > now));
    }

    #[test]
    fn slots_are_counted_across_clones_and_freed_on_drop() {
        let budget = ConnectionBudget::new(3);
        let other = budget.clone();
        let slots: Vec<_> = (0..3).filter_map(|_| other.try_take()).collect();
        assert_eq!(slots.len(), 3);
        assert_eq!(budget.in_use(), 3);
        assert!(budget.try_take().is_none());
        drop(slots);
        assert_eq!(budget.in_use(), 0);
        assert!(budget.try_take().is_some());
    }

    #[test]
    fn a_budget_of_zero_is_unlimited() {
        let budget = ConnectionBudget::new(0);
        assert_eq!(budget.max(), None);
        let slots: Vec<_> = (0..10_000).filter_map(|_| budget.try_take()).collect();
        assert_eq!(slots.len(), 10_000);
        assert_eq!(budget.in_use(), 10_000);
    }

    #[test]
    fn threads_racing_for_slots_never_exceed_the_budget() {
        let budget = ConnectionBudget::new(5);
        let peak = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (budget, peak) = (budget.clone(), Arc::clone(&peak));
                std::thread::spawn(move || {
                    for _ in 0..2000 {
                        if let Some(slot) = budget.try_take() {
                            peak.fetch_max(budget.in_use(), Ordering::SeqCst);
                            drop(slot);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(peak.load(Ordering::SeqCst) <= 5);
        assert_eq!(budget.in_use(), 0, "every slot came back");
    }

    #[test]
    fn requests_wait_for_a_useful_amount() {
        let t0 = Instant::now();
        let limit = RateLimit::new(1 << 20, t0);
        let burst = limit.burst();
        assert_eq!(burst, 256 << 10);
        assert_eq!(limit.request(1 << 30, t0), Grant::Now(burst));
        // 1 KiB is there after 1 ms: not enough for a 16 KiB ask.
        let t1 = t0 + Duration::from_millis(1);
        let Grant::Wait(at) = limit.request(64 << 10, t1) else {
            panic!("granted from an empty bucket");
        };
        assert_eq!(at, t0 + Duration::from_micros(15_625));
        assert_eq!(limit.request(64 << 10, at), Grant::Now(16 << 10));
        // A small ask is granted once its own size is there.
        assert_eq!(
            limit.request(100, at + Duration::from_micros(100)),
            Grant::Now(100)
        );
        // What was not used comes back.
        let t2 = at + Duration::from_micros(100);
        assert!(matches!(limit.request(1000, t2), Grant::Wait(_)));
        limit.give_back(1000);
        assert_eq!(limit.request(1000, t2), Grant::Now(1000));
    }
}
