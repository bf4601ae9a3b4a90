//! Announce-list tiers (BEP 12): the order in which to try trackers, and
//! [`AnnouncePass`], which overlaps them so a dead tier cannot hold up the
//! next.

use std::time::{Duration, Instant};

use crate::udp::splitmix64;

/// Where a tracker sits in a [`TrackerList`]: tier, then position in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrackerPosition {
    /// Index of the tier (0 is tried first).
    pub tier: usize,
    /// Index within the tier.
    pub index: usize,
}

/// A torrent's trackers in tiers, in the order BEP 12 says to try them.
///
/// Each tier is shuffled once, when the list is built, with an RNG seeded
/// from `seed` (so a test replays exactly). Trackers are tried in order,
/// tier by tier; one that answers moves to the front of its tier, so it is
/// tried first next time.
///
/// ```
/// use rustico_tracker_client::TrackerList;
/// let mut list = TrackerList::new(vec![
///     vec!["udp://a.test:1".to_string(), "udp://b.test:1".to_string()],
///     vec!["http://backup.test/announce".to_string()],
/// ], 42);
/// // Try in order until one works; the winner is promoted.
/// let answer = list.try_in_order(|url| if url.starts_with("http") { Ok(url.len()) } else { Err("down") });
/// let (position, url, value) = answer.map_err(|errors| format!("{errors:?}"))?;
/// assert_eq!((position.tier, url.as_str(), value), (1, "http://backup.test/announce", 27));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackerList {
    tiers: Vec<Vec<String>>,
    /// Trackers whose last attempt failed (or did not answer before
    /// another did): [`TrackerList::start_pass`] tries them last.
    failing: std::collections::BTreeSet<String>,
}

impl TrackerList {
    /// Builds the list, dropping empty tiers and shuffling each tier.
    pub fn new(tiers: Vec<Vec<String>>, seed: u64) -> TrackerList {
        let mut state = seed;
        let mut tiers: Vec<Vec<String>> = tiers.into_iter().filter(|t| !t.is_empty()).collect();
        for tier in &mut tiers {
            // Fisher-Yates, drawing from splitmix64.
            for i in (1..tier.len()).rev() {
                state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
                let j = (splitmix64(state) % (i as u64 + 1)) as usize;
                tier.swap(i, j);
            }
        }
        TrackerList {
            tiers,
            failing: Default::default(),
        }
    }

    /// A list with one tracker (a torrent with only `announce`).
    pub fn single(url: String) -> TrackerList {
        TrackerList {
            tiers: vec![vec![url]],
            failing: Default::default(),
        }
    }

    /// The tiers in their current order.
    pub fn tiers(&self) -> &[Vec<String>] {
        &self.tiers
    }

    /// Whether there is no tracker at all.
    pub fn is_empty(&self) -> bool {
        self.tiers.is_empty()
    }

    /// Every tracker in the order to try them.
    pub fn iter(&self) -> impl Iterator<Item = (TrackerPosition, &str)> + '_ {
        self.tiers.iter().enumerate().flat_map(|(tier, urls)| {
            urls.iter()
                .enumerate()
                .map(move |(index, url)| (TrackerPosition { tier, index }, url.as_str()))
        })
    }

    /// The tracker at `position`, if any.
    pub fn get(&self, position: TrackerPosition) -> Option<&str> {
        self.tiers
            .get(position.tier)?
            .get(position.index)
            .map(String::as_str)
    }

    /// The tracker at `position` answered: move it to the front of its tier.
    /// Returns its new position (`None` if `position` is out of range).
    pub fn handle_success(&mut self, position: TrackerPosition) -> Option<TrackerPosition> {
        let tier = self.tiers.get_mut(position.tier)?;
        if position.index >= tier.len() {
            return None;
        }
        let url = tier.remove(position.index);
        self.failing.remove(&url);
        tier.insert(0, url);
        Some(TrackerPosition {
            tier: position.tier,
            index: 0,
        })
    }

    /// The tracker at `position` failed, or had not answered when another
    /// did: the next [`TrackerList::start_pass`] tries it after the
    /// trackers that did not fail, until it answers again. (As libtorrent
    /// backs off a failing tracker, so its `completed` and `stopped`
    /// announces do not wait on a tier that just failed.)
    pub fn handle_failure(&mut self, position: TrackerPosition) {
        if let Some(url) = self.get(position) {
            let url = url.to_owned();
            self.failing.insert(url);
        }
    }

    /// Plans one announce over these trackers, starting at `now`: see
    /// [`AnnouncePass`]. Trackers start in BEP 12 order, except that those
    /// that failed last time ([`TrackerList::handle_failure`]) come after
    /// all the others.
    pub fn start_pass(&self, config: PassConfig, now: Instant) -> AnnouncePass {
        let healthy = self.iter().filter(|(_, url)| !self.failing.contains(*url));
        let failing = self.iter().filter(|(_, url)| self.failing.contains(*url));
        AnnouncePass {
            config,
            order: healthy
                .chain(failing)
                .map(|(p, url)| (p, url.to_owned()))
                .collect(),
            next: 0,
            in_flight: Vec::new(),
            last_start: None,
            last_failed: false,
            expires: now.checked_add(config.pass_timeout),
            expired: false,
            succeeded: None,
        }
    }

    /// Tries trackers in order with `attempt` (which does the I/O) until
    /// one succeeds; promotes it and returns its new position, its URL and
    /// the value. When all fail, returns each URL with its error.
    ///
    /// Strictly one after another: a tracker that takes its whole attempt
    /// deadline holds up every later one by that much. A client that must
    /// not wait so uses [`TrackerList::start_pass`].
    #[allow(clippy::type_complexity)]
    pub fn try_in_order<T, E>(
        &mut self,
        mut attempt: impl FnMut(&str) -> Result<T, E>,
    ) -> Result<(TrackerPosition, String, T), Vec<(String, E)>> {
        let mut errors = Vec::new();
        let mut winner = None;
        for (position, url) in self.iter() {
            match attempt(url) {
                Ok(value) => {
                    winner = Some((position, url.to_owned(), value));
                    break;
                }
                Err(error) => errors.push((url.to_owned(), error)),
            }
        }
        let (position, url, value) = winner.ok_or(errors)?;
        // `position` came from this list a moment ago.
        let moved = self.handle_success(position);
        debug_assert!(moved.is_some(), "{position:?} is not in the list");
        let position = moved.unwrap_or(position);
        Ok((position, url, value))
    }
}

/// How an [`AnnouncePass`] spreads one announce over a [`TrackerList`].
///
/// The defaults: the next tracker in BEP 12 order starts once the one
/// before it failed or has gone `stagger` (3 s) without an answer. A
/// tracker that answers at all usually does so well within a second or
/// two, so an honest first tracker is rarely joined by a second; a dead or
/// hostile one (silent, flooding garbage, trickling) costs the next tier
/// at most 3 s, not its whole attempt deadline (15 s over UDP, 30 s over
/// HTTP). At most `max_in_flight` (4) attempts run at once, and the pass
/// gives up after `pass_timeout` (60 s) whatever is still running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PassConfig {
    /// How long an attempt runs alone before the next tracker starts too.
    pub stagger: Duration,
    /// The most attempts in flight at once.
    pub max_in_flight: usize,
    /// The whole pass ends within this after it started.
    pub pass_timeout: Duration,
}

impl Default for PassConfig {
    fn default() -> PassConfig {
        PassConfig {
            stagger: Duration::from_secs(3),
            max_in_flight: 4,
            pass_timeout: Duration::from_secs(60),
        }
    }
}

/// One announce to a torrent's trackers, as a sans-IO plan: which tracker
/// to start when, and when the pass is over. It does no I/O and reads no
/// clock; the caller runs the attempts (on threads, say) and reports each
/// result.
///
/// Trackers start in BEP 12 order (tier by tier, in each tier's current
/// order). The first starts at once; each next one when the one before it
/// failed, or when [`PassConfig::stagger`] passed since the last start with
/// no success, so a failing tier delays the next by at most `stagger`
/// however long its attempts may take. The first success ends the pass
/// (promote it with [`TrackerList::handle_success`]); results of attempts
/// still running may be dropped. Drive it so: start what
/// [`AnnouncePass::poll_start`] returns until `None`; wait for a result or
/// [`AnnouncePass::poll_timeout`]; report it with
/// [`AnnouncePass::handle_result`] or call [`AnnouncePass::handle_timeout`];
/// stop once [`AnnouncePass::is_finished`].
///
/// ```
/// use std::time::{Duration, Instant};
/// use rustico_tracker_client::{PassConfig, TrackerList};
/// let list = TrackerList::new(vec![
///     vec!["udp://dead.test:1".to_string()],
///     vec!["http://backup.test/announce".to_string()],
/// ], 1);
/// let t0 = Instant::now();
/// let mut pass = list.start_pass(PassConfig::default(), t0);
/// let (first, url) = pass.poll_start(t0).unwrap();
/// assert_eq!(url, "udp://dead.test:1");
/// assert_eq!(pass.poll_start(t0), None); // tier 2 waits...
/// let later = t0 + Duration::from_secs(3);
/// assert_eq!(pass.poll_timeout(), Some(later));
/// let (second, url) = pass.poll_start(later).unwrap(); // ...3 s at most
/// assert_eq!(url, "http://backup.test/announce");
/// pass.handle_result(second, true, later);
/// assert!(pass.is_finished());
/// assert_eq!(pass.succeeded(), Some(second));
/// # let _ = first;
/// ```
#[derive(Debug, Clone)]
pub struct AnnouncePass {
    config: PassConfig,
    order: Vec<(TrackerPosition, String)>,
    /// Index in `order` of the next tracker to start.
    next: usize,
    in_flight: Vec<TrackerPosition>,
    last_start: Option<Instant>,
    /// The previous start failed already: the next may start at once.
    last_failed: bool,
    expires: Option<Instant>,
    expired: bool,
    succeeded: Option<TrackerPosition>,
}

impl AnnouncePass {
    /// The next tracker to start at `now`, with its position in the list
    /// the pass was made from; `None` when nothing should start now.
    pub fn poll_start(&mut self, now: Instant) -> Option<(TrackerPosition, String)> {
        if self.is_finished() || self.in_flight.len() >= self.config.max_in_flight.max(1) {
            return None;
        }
        let due = self.in_flight.is_empty()
            || self.last_failed
            || self
                .last_start
                .is_none_or(|t| now.saturating_duration_since(t) >= self.config.stagger);
        if !due {
            return None;
        }
        let (position, url) = self.order.get(self.next)?.clone();
        self.next += 1;
        self.in_flight.push(position);
        self.last_start = Some(now);
        self.last_failed = false;
        Some((position, url))
    }

    /// When to call [`AnnouncePass::poll_start`] or
    /// [`AnnouncePass::handle_timeout`] next if no result comes first.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.is_finished() {
            return None;
        }
        let stagger = (self.next < self.order.len()
            && self.in_flight.len() < self.config.max_in_flight.max(1))
        .then(|| {
            self.last_start
                .and_then(|t| t.checked_add(self.config.stagger))
        })
        .flatten();
        match (stagger, self.expires) {
            (Some(s), Some(e)) => Some(s.min(e)),
            (s, e) => s.or(e),
        }
    }

    /// The time is `now`: past [`PassConfig::pass_timeout`] the pass is
    /// over. Calling it early is harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.expires.is_some_and(|e| now >= e) {
            self.expired = true;
        }
    }

    /// The attempt at `position` ended: `ok` if the tracker answered.
    /// A result for a tracker not in flight is ignored.
    pub fn handle_result(&mut self, position: TrackerPosition, ok: bool, now: Instant) {
        let Some(i) = self.in_flight.iter().position(|p| *p == position) else {
            return;
        };
        self.in_flight.swap_remove(i);
        if ok {
            if self.succeeded.is_none() && !self.expired {
                self.succeeded = Some(position);
            }
        } else if self.last_start.is_some() {
            // The newest start failed, or an older one did: either way one
            // fewer tracker is working for us, so let the next one go.
            self.last_failed = true;
        }
        self.handle_timeout(now);
    }

    /// Whether the pass is over: a tracker answered, every tracker failed,
    /// or the pass timed out.
    pub fn is_finished(&self) -> bool {
        self.succeeded.is_some()
            || self.expired
            || (self.next >= self.order.len() && self.in_flight.is_empty())
    }

    /// The tracker that answered, if one did.
    pub fn succeeded(&self) -> Option<TrackerPosition> {
        self.succeeded
    }

    /// Attempts started and not yet reported.
    pub fn in_flight(&self) -> &[TrackerPosition] {
        &self.in_flight
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn urls(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn shuffle_is_seeded_and_keeps_tiers() {
        let tiers = vec![
            urls(&["a", "b", "c", "d", "e", "f"]),
            vec![],
            urls(&["x", "y"]),
        ];
        let one = TrackerList::new(tiers.clone(), 1);
        assert_eq!(one, TrackerList::new(tiers.clone(), 1));
        assert_eq!(one.tiers().len(), 2, "empty tiers dropped");
        let mut first = one.tiers()[0].clone();
        first.sort();
        assert_eq!(first, urls(&["a", "b", "c", "d", "e", "f"]));
        let orders: std::collections::BTreeSet<Vec<String>> = (0..20)
            .map(|seed| TrackerList::new(tiers.clone(), seed).tiers()[0].clone())
            .collect();
        assert!(orders.len() > 5, "different seeds shuffle differently");
    }

    #[test]
    fn falls_through_tiers_and_promotes_the_winner() {
        let mut list = TrackerList {
            tiers: vec![urls(&["a1", "a2"]), urls(&["b1", "b2", "b3"])],
            failing: Default::default(),
        };
        let mut tried = Vec::new();
        let result = list.try_in_order(|url| {
            tried.push(url.to_owned());
            if url == "b3" {
                Ok(7)
            } else {
                Err(url.len())
            }
        });
        assert_eq!(tried, urls(&["a1", "a2", "b1", "b2", "b3"]));
        assert_eq!(
            result,
            Ok((TrackerPosition { tier: 1, index: 0 }, "b3".to_string(), 7))
        );
        assert_eq!(
            list.tiers(),
            &[urls(&["a1", "a2"]), urls(&["b3", "b1", "b2"])]
        );

        let result = list.try_in_order(|url| if url == "a2" { Ok(()) } else { Err(()) });
        assert!(result.is_ok());
        assert_eq!(list.tiers()[0], urls(&["a2", "a1"]));

        let all_fail = list.try_in_order(|_| Err::<(), _>("down"));
        assert_eq!(all_fail.unwrap_err().len(), 5);
    }

    fn pos(tier: usize, index: usize) -> TrackerPosition {
        TrackerPosition { tier, index }
    }

    fn three_tiers() -> TrackerList {
        TrackerList {
            tiers: vec![urls(&["a1", "a2"]), urls(&["b1"]), urls(&["c1"])],
            failing: Default::default(),
        }
    }

    #[test]
    fn pass_a_refused_tracker_lets_the_next_start_at_once() {
        let t0 = Instant::now();
        let mut pass = three_tiers().start_pass(PassConfig::default(), t0);
        assert_eq!(pass.poll_start(t0), Some((pos(0, 0), "a1".into())));
        assert_eq!(pass.poll_start(t0), None);
        let t1 = t0 + Duration::from_millis(1);
        pass.handle_result(pos(0, 0), false, t1);
        assert_eq!(pass.poll_start(t1), Some((pos(0, 1), "a2".into())));
        pass.handle_result(pos(0, 1), false, t1);
        assert_eq!(pass.poll_start(t1), Some((pos(1, 0), "b1".into())));
        pass.handle_result(pos(1, 0), true, t1);
        assert!(pass.is_finished());
        assert_eq!(pass.succeeded(), Some(pos(1, 0)));
        assert_eq!(pass.poll_start(t1), None, "c1 is never asked");
        assert_eq!(pass.poll_timeout(), None);
    }

    #[test]
    fn pass_a_hanging_tier_delays_the_next_by_the_stagger_only() {
        let t0 = Instant::now();
        let config = PassConfig::default();
        let mut pass = three_tiers().start_pass(config, t0);
        let mut started = Vec::new();
        let mut now = t0;
        // Nobody answers: one more tracker every 3 s, in BEP 12 order.
        loop {
            while let Some((p, url)) = pass.poll_start(now) {
                started.push((now - t0, p, url));
            }
            if started.len() == 4 {
                break;
            }
            now = pass.poll_timeout().unwrap();
            pass.handle_timeout(now);
        }
        let secs = |s| Duration::from_secs(s);
        assert_eq!(
            started,
            vec![
                (secs(0), pos(0, 0), "a1".to_string()),
                (secs(3), pos(0, 1), "a2".to_string()),
                (secs(6), pos(1, 0), "b1".to_string()),
                (secs(9), pos(2, 0), "c1".to_string()),
            ]
        );
        // The tier-3 tracker answers; an old attempt ending later changes
        // nothing.
        pass.handle_result(pos(2, 0), true, now);
        pass.handle_result(pos(0, 0), true, now);
        assert_eq!(pass.succeeded(), Some(pos(2, 0)));
        assert_eq!(pass.in_flight().len(), 2);
    }

    #[test]
    fn pass_bounds_attempts_in_flight_and_its_own_time() {
        let t0 = Instant::now();
        let list = TrackerList {
            tiers: (0..10).map(|i| vec![format!("t{i}")]).collect(),
            failing: Default::default(),
        };
        let config = PassConfig {
            stagger: Duration::from_secs(1),
            max_in_flight: 2,
            pass_timeout: Duration::from_secs(20),
        };
        let mut pass = list.start_pass(config, t0);
        assert!(pass.poll_start(t0).is_some());
        assert!(pass.poll_start(t0 + Duration::from_secs(1)).is_some());
        let t5 = t0 + Duration::from_secs(5);
        assert_eq!(pass.poll_start(t5), None, "two in flight already");
        assert_eq!(pass.poll_timeout(), Some(t0 + Duration::from_secs(20)));
        pass.handle_result(pos(0, 0), false, t5);
        assert_eq!(pass.poll_start(t5), Some((pos(2, 0), "t2".into())));
        assert!(!pass.is_finished());
        pass.handle_timeout(t0 + Duration::from_secs(19));
        assert!(!pass.is_finished(), "an early timeout is harmless");
        pass.handle_timeout(t0 + Duration::from_secs(20));
        assert!(pass.is_finished());
        assert_eq!(pass.poll_start(t0 + Duration::from_secs(20)), None);
        assert_eq!(pass.succeeded(), None);
    }

    #[test]
    fn pass_tries_trackers_that_failed_last() {
        let t0 = Instant::now();
        let mut list = three_tiers();
        list.handle_failure(pos(0, 0));
        list.handle_failure(pos(1, 0));
        list.handle_failure(pos(7, 0)); // out of range: ignored
        let mut pass = list.start_pass(PassConfig::default(), t0);
        let mut order = Vec::new();
        while let Some((p, url)) = pass.poll_start(t0) {
            order.push(url);
            pass.handle_result(p, false, t0);
        }
        assert_eq!(order, urls(&["a2", "c1", "a1", "b1"]));
        // An answer clears the mark.
        list.handle_success(pos(1, 0));
        let mut pass = list.start_pass(PassConfig::default(), t0);
        let mut order = Vec::new();
        while let Some((p, url)) = pass.poll_start(t0) {
            order.push(url);
            pass.handle_result(p, false, t0);
        }
        assert_eq!(order, urls(&["a2", "b1", "c1", "a1"]));
    }

    #[test]
    fn pass_ends_when_every_tracker_failed() {
        let t0 = Instant::now();
        let mut pass = three_tiers().start_pass(PassConfig::default(), t0);
        let mut tried = 0;
        while let Some((p, _)) = pass.poll_start(t0) {
            tried += 1;
            pass.handle_result(p, false, t0);
        }
        assert_eq!(tried, 4);
        assert!(pass.is_finished());
        assert_eq!(pass.succeeded(), None);
        // A result for something not in flight is ignored.
        pass.handle_result(pos(0, 0), true, t0);
        assert_eq!(pass.succeeded(), None);
        let empty = TrackerList::new(vec![], 0).start_pass(PassConfig::default(), t0);
        assert!(empty.is_finished());
    }

    #[test]
    fn positions() {
        let mut list = TrackerList::single("u".into());
        assert_eq!(list.get(TrackerPosition { tier: 0, index: 0 }), Some("u"));
        assert_eq!(
            list.handle_success(TrackerPosition { tier: 0, index: 1 }),
            None
        );
        assert_eq!(
            list.handle_success(TrackerPosition { tier: 3, index: 0 }),
            None
        );
        assert!(!list.is_empty());
        assert_eq!(list.iter().count(), 1);
    }
}
