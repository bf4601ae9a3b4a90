//! A sans-IO token bucket, for rate limits: a driver asks for bytes before
//! it reads or writes them and gets what the rate allows now.
//!
//! Tokens are bytes. The bucket fills at `rate` bytes per second up to
//! `burst` bytes; [`TokenBucket::take`] hands out what is there (perhaps
//! less than asked), and [`TokenBucket::ready_at`] says when asking again
//! is worth it. Time is only ever a parameter. Arithmetic is exact
//! (integer nanoseconds), so however long a bucket runs, what it grants
//! never drifts from `rate × elapsed + burst`.

use std::time::{Duration, Instant};

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// A token bucket of bytes: at most `burst` bytes at once, refilled at
/// `rate` bytes per second; or unlimited.
///
/// It starts full. Tokens are kept in units of one byte per nanosecond's
/// worth (a byte is `10^9` units, a nanosecond adds `rate` units), so no
/// rounding error builds up over a long run.
///
/// ```
/// use std::time::{Duration, Instant};
/// use rustico_swarm::TokenBucket;
///
/// let t0 = Instant::now();
/// // 1 MB/s, at most 100 kB at once.
/// let mut up = TokenBucket::new(1_000_000, 100_000, t0);
/// assert_eq!(up.take(64_000, t0), 64_000);
/// assert_eq!(up.take(64_000, t0), 36_000, "part of it: the burst is spent");
/// assert_eq!(up.take(1, t0), 0);
/// // The driver waits until 16 kB are there, then asks again.
/// let later = up.ready_at(16_000, t0).ok_or("limited")?;
/// assert_eq!(later, t0 + Duration::from_millis(16));
/// assert_eq!(up.take(64_000, later), 16_000);
///
/// // Rate 0 means unlimited: everything is granted at once.
/// let mut down = TokenBucket::new(0, 0, t0);
/// assert_eq!(down.take(u64::MAX, t0), u64::MAX);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct TokenBucket {
    /// Bytes per second; 0 is unlimited.
    rate: u64,
    /// Most bytes held at once.
    burst: u64,
    /// Tokens held at `last`, in units of `1 / 10^9` byte.
    units: u128,
    /// The moment `units` is for.
    last: Instant,
}

impl TokenBucket {
    /// A full bucket: `rate` bytes per second (0: unlimited), at most
    /// `burst` bytes at once (at least 1 byte when limited, or nothing
    /// would ever be granted).
    pub fn new(rate: u64, burst: u64, now: Instant) -> TokenBucket {
        let burst = if rate == 0 { 0 } else { burst.max(1) };
        TokenBucket {
            rate,
            burst,
            units: u128::from(burst) * NANOS_PER_SEC,
            last: now,
        }
    }

    /// A bucket that grants everything.
    pub fn unlimited(now: Instant) -> TokenBucket {
        TokenBucket::new(0, 0, now)
    }

    // ------------------------------------------------------------- getters

    /// The rate in bytes per second; `None` when unlimited.
    pub fn rate(&self) -> Option<u64> {
        (self.rate != 0).then_some(self.rate)
    }

    /// Most bytes granted at once (0 when unlimited).
    pub fn burst(&self) -> u64 {
        self.burst
    }

    /// Whether every request is granted in full.
    pub fn is_unlimited(&self) -> bool {
        self.rate == 0
    }

    /// Bytes that [`take`](Self::take) would grant at `now` (`u64::MAX`
    /// when unlimited).
    pub fn available(&self, now: Instant) -> u64 {
        if self.is_unlimited() {
            return u64::MAX;
        }
        let units = self.units_at(now);
        u64::try_from(units / NANOS_PER_SEC).unwrap_or(u64::MAX)
    }

    /// When at least `min(n, burst)` bytes will be there to take (`now`
    /// when they are already), if nothing else is taken meanwhile; `None`
    /// when the bucket is unlimited (ask at any time).
    pub fn ready_at(&self, n: u64, now: Instant) -> Option<Instant> {
        if self.is_unlimited() {
            return None;
        }
        let want = u128::from(n.min(self.burst)) * NANOS_PER_SEC;
        let have = self.units_at(now);
        if have >= want {
            return Some(now);
        }
        let rate = u128::from(self.rate);
        let nanos = (want - have).div_ceil(rate);
        // At most `burst * 10^9 / rate` nanoseconds: fits a u64 unless the
        // burst is centuries long; cap rather than overflow.
        let nanos = u64::try_from(nanos).unwrap_or(u64::MAX);
        Some(now + Duration::from_nanos(nanos))
    }

    // ------------------------------------------------------------ mutators

    /// Takes up to `n` bytes at `now`: returns how many are granted, which
    /// may be fewer than `n` (what is there), or 0. An unlimited bucket
    /// grants `n`. A `now` earlier than a previous call's counts as that
    /// call's (time never runs backwards here).
    pub fn take(&mut self, n: u64, now: Instant) -> u64 {
        if self.is_unlimited() {
            return n;
        }
        self.refill(now);
        let whole = u64::try_from(self.units / NANOS_PER_SEC).unwrap_or(u64::MAX);
        let granted = n.min(whole);
        self.units -= u128::from(granted) * NANOS_PER_SEC;
        granted
    }

    /// Gives back `n` bytes granted earlier and not used (a read that
    /// returned less than it was allowed); the bucket never holds more
    /// than its burst.
    pub fn give_back(&mut self, n: u64) {
        if self.is_unlimited() {
            return;
        }
        let cap = u128::from(self.burst) * NANOS_PER_SEC;
        self.units = self
            .units
            .saturating_add(u128::from(n) * NANOS_PER_SEC)
            .min(cap);
    }

    /// Changes the rate and burst from `now` on (rate 0: unlimited); the
    /// tokens held so far are kept, up to the new burst.
    pub fn set_rate(&mut self, rate: u64, burst: u64, now: Instant) {
        if self.is_unlimited() {
            *self = TokenBucket::new(rate, burst, now);
            return;
        }
        self.refill(now);
        let units = self.units;
        *self = TokenBucket::new(rate, burst, now);
        self.units = self.units.min(units);
    }

    // ------------------------------------------------------------ internals

    /// Tokens held at `now`, in units.
    fn units_at(&self, now: Instant) -> u128 {
        let cap = u128::from(self.burst) * NANOS_PER_SEC;
        let elapsed = now.saturating_duration_since(self.last).as_nanos();
        self.units
            .saturating_add(elapsed.saturating_mul(u128::from(self.rate)))
            .min(cap)
    }

    fn refill(&mut self, now: Instant) {
        if now > self.last {
            self.units = self.units_at(now);
            self.last = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn the_rate_holds_over_a_long_run() {
        // 2 MiB/s with a 64 KiB burst, asked for 16 KiB every 1.3 ms (more
        // than the rate allows) for an hour of simulated time.
        let (rate, burst) = (2u64 << 20, 64u64 << 10);
        let t0 = Instant::now();
        let mut b = TokenBucket::new(rate, burst, t0);
        let step = Duration::from_micros(1300);
        let mut now = t0;
        let mut granted = 0u64;
        let hour = Duration::from_secs(3600);
        while now < t0 + hour {
            granted += b.take(16 << 10, now);
            now += step;
        }
        let elapsed = (now - step - t0).as_secs_f64();
        let expected = rate as f64 * elapsed + burst as f64;
        // Never more than rate × time + burst; and not less than that
        // minus one request's worth (the asker is always hungry).
        assert!(granted as f64 <= expected, "{granted} > {expected}");
        assert!(
            granted as f64 >= expected - f64::from(16u32 << 10),
            "{granted} vs {expected}"
        );
    }

    #[test]
    fn exact_arithmetic_at_an_awkward_rate() {
        // 3 bytes per second (one byte every 333.3... ms, never whole),
        // asked every 1 ms for 1000 s: exactly 3000 bytes plus the burst,
        // no rounding lost or gained.
        let t0 = Instant::now();
        let mut b = TokenBucket::new(3, 10, t0);
        let mut granted = 0;
        for ms in 0..=1_000_000u32 {
            granted += b.take(10, t0 + MS * ms);
        }
        assert_eq!(granted, 3000 + 10);
    }

    #[test]
    fn bursts_are_capped() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(1000, 500, t0);
        assert_eq!(b.take(10_000, t0), 500, "a full bucket holds the burst");
        // A long idle time refills to the burst, not beyond.
        let later = t0 + Duration::from_secs(3600);
        assert_eq!(b.available(later), 500);
        assert_eq!(b.take(10_000, later), 500);
        assert_eq!(b.take(10_000, later), 0);
        // Given back tokens are capped too.
        b.give_back(100);
        b.give_back(10_000);
        assert_eq!(b.take(10_000, later), 500);
    }

    #[test]
    fn unlimited_grants_all() {
        let t0 = Instant::now();
        for mut b in [TokenBucket::unlimited(t0), TokenBucket::new(0, 1234, t0)] {
            assert!(b.is_unlimited());
            assert_eq!(b.rate(), None);
            for n in [0, 1, 1 << 40, u64::MAX] {
                assert_eq!(b.take(n, t0), n);
            }
            assert_eq!(b.ready_at(1 << 20, t0), None);
            assert_eq!(b.available(t0), u64::MAX);
        }
    }

    #[test]
    fn a_clock_that_does_not_move_grants_nothing_new() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(1 << 20, 1 << 16, t0 + Duration::from_secs(1));
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(b.take(u64::MAX, t1), 1 << 16);
        for _ in 0..1000 {
            assert_eq!(b.take(1, t1), 0);
        }
        // Nor does a clock that goes back.
        assert_eq!(b.take(1, t0), 0);
        assert_eq!(b.take(1, t1), 0);
        // One microsecond later: one microsecond's worth (1 MiB/s: 1 byte).
        assert_eq!(b.take(u64::MAX, t1 + Duration::from_micros(1)), 1);
    }

    #[test]
    fn ready_at_names_the_moment_enough_is_there() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(1000, 100, t0);
        assert_eq!(b.ready_at(50, t0), Some(t0), "already there");
        assert_eq!(b.take(100, t0), 100);
        let at = b.ready_at(50, t0).unwrap();
        assert_eq!(at, t0 + 50 * MS);
        assert_eq!(b.take(50, at - Duration::from_nanos(1)), 49);
        b.give_back(49);
        assert_eq!(b.take(50, at), 50);
        // More than the burst: ready when the bucket is full.
        assert_eq!(b.ready_at(1 << 30, at), Some(at + 100 * MS));
    }

    proptest::proptest! {
        /// Whatever the asks and the clock's steps (standing still
        /// included): each grant is at most what was asked, and all
        /// grants together never exceed `burst + rate × elapsed`; an
        /// asker that takes everything at every step gets the burst plus,
        /// each step, at least that step's accrual (whole bytes) or a
        /// full bucket.
        #[test]
        fn grants_never_exceed_rate_times_time_plus_burst(
            rate in 1u64..50_000_000,
            burst in 1u64..4_000_000,
            steps in proptest::collection::vec((0u64..20_000_000, 0u64..8_000_000), 1..200),
        ) {
            let t0 = Instant::now();
            let mut b = TokenBucket::new(rate, burst, t0);
            let (mut elapsed, mut granted) = (0u64, 0u128);
            let mut hungry = TokenBucket::new(rate, burst, t0);
            let mut hungry_got = u128::from(hungry.take(u64::MAX, t0));
            let mut hungry_least = u128::from(burst);
            for (step_ns, ask) in steps {
                elapsed += step_ns;
                let now = t0 + Duration::from_nanos(elapsed);
                let got = b.take(ask, now);
                proptest::prop_assert!(got <= ask);
                granted += u128::from(got);
                hungry_got += u128::from(hungry.take(u64::MAX, now));
                let step_accrual = u128::from(rate) * u128::from(step_ns) / NANOS_PER_SEC;
                hungry_least += step_accrual.min(u128::from(burst));
            }
            let accrued = u128::from(rate) * u128::from(elapsed) / NANOS_PER_SEC;
            proptest::prop_assert!(granted <= u128::from(burst) + accrued);
            proptest::prop_assert!(hungry_got <= u128::from(burst) + accrued);
            proptest::prop_assert!(hungry_got >= hungry_least);
        }
    }

    #[test]
    fn changing_the_rate_keeps_no_more_than_the_new_burst() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(1000, 1000, t0);
        b.set_rate(10, 10, t0);
        assert_eq!(b.take(1000, t0), 10);
        assert_eq!(b.take(1000, t0 + Duration::from_secs(1)), 10);
        b.set_rate(0, 0, t0 + Duration::from_secs(1));
        assert_eq!(b.take(1 << 40, t0), 1 << 40);
        b.set_rate(100, 50, t0 + Duration::from_secs(2));
        assert_eq!(b.take(1000, t0 + Duration::from_secs(2)), 50);
    }
}
