//! When to announce next: the tracker's interval, its minimum interval, a
//! backoff after failures, and events (`completed`, `stopped`) that go out
//! at once.

use std::time::{Duration, Instant};

use crate::announce::{AnnounceResponse, Event};

/// Limits the schedule applies whatever the tracker says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScheduleConfig {
    /// The least time between regular announces: a tracker saying
    /// `interval 0` must not make the client hammer it.
    pub min_interval_floor: Duration,
    /// The first retry delay after a failure; it doubles per failure.
    pub failure_backoff: Duration,
    /// The longest retry delay after failures.
    pub max_failure_backoff: Duration,
}

impl Default for ScheduleConfig {
    fn default() -> ScheduleConfig {
        ScheduleConfig {
            min_interval_floor: Duration::from_secs(60),
            failure_backoff: Duration::from_secs(15),
            max_failure_backoff: Duration::from_secs(30 * 60),
        }
    }
}

/// The re-announce timer of one torrent on one tracker (or tracker list).
///
/// Drive it like the other state machines: [`ReannounceSchedule::poll_announce`]
/// says whether an announce (and with which event) is due now;
/// report how it went with [`ReannounceSchedule::handle_response`] or
/// [`ReannounceSchedule::handle_failure`]; sleep until
/// [`ReannounceSchedule::poll_timeout`].
///
/// ```
/// use std::time::{Duration, Instant};
/// use rustico_tracker_client::{AnnounceResponse, Event, ReannounceSchedule, ScheduleConfig};
///
/// let start = Instant::now();
/// let mut schedule = ReannounceSchedule::new(ScheduleConfig::default(), start);
/// assert_eq!(schedule.poll_announce(start), Some(Event::Started));
/// let response = AnnounceResponse { interval: Duration::from_secs(1800), ..Default::default() };
/// schedule.handle_response(start, &response);
/// assert_eq!(schedule.poll_timeout(), Some(start + Duration::from_secs(1800)));
/// // The download finishes: `completed` is due at once.
/// let later = start + Duration::from_secs(5);
/// schedule.handle_completed(later);
/// assert_eq!(schedule.poll_announce(later), Some(Event::Completed));
/// ```
#[derive(Debug, Clone)]
pub struct ReannounceSchedule {
    config: ScheduleConfig,
    due: Option<Instant>,
    /// The event of the next announce (`Event::None` for a regular one).
    pending: Event,
    in_flight: Option<Event>,
    last_success: Option<Instant>,
    interval: Duration,
    min_interval: Duration,
    failures: u32,
    finished: bool,
}

impl ReannounceSchedule {
    /// A schedule whose first announce (`started`) is due at `now`.
    pub fn new(config: ScheduleConfig, now: Instant) -> ReannounceSchedule {
        ReannounceSchedule {
            config,
            due: Some(now),
            pending: Event::Started,
            in_flight: None,
            last_success: None,
            interval: config.min_interval_floor,
            min_interval: config.min_interval_floor,
            failures: 0,
            finished: false,
        }
    }

    /// When the next announce is due; `None` while one is in flight or
    /// after a successful `stopped`.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.in_flight.is_some() || self.finished {
            None
        } else {
            self.due
        }
    }

    /// If an announce is due at `now`, returns its event and marks it in
    /// flight (it is not returned again until its outcome is handled).
    pub fn poll_announce(&mut self, now: Instant) -> Option<Event> {
        let due = self.poll_timeout()?;
        if now < due {
            return None;
        }
        self.in_flight = Some(self.pending);
        Some(self.pending)
    }

    /// The announce in flight got `response` at `now`.
    pub fn handle_response(&mut self, now: Instant, response: &AnnounceResponse) {
        let sent = self.in_flight.take();
        self.failures = 0;
        self.last_success = Some(now);
        self.min_interval = response
            .min_interval
            .unwrap_or_default()
            .max(self.config.min_interval_floor);
        self.interval = response.interval.max(self.min_interval);
        if sent == Some(Event::Stopped) && self.pending == Event::Stopped {
            self.finished = true;
            self.due = None;
            return;
        }
        if sent == Some(self.pending) {
            self.pending = Event::None;
        }
        // An event raised while the announce was in flight goes out now.
        self.due = Some(if self.pending == Event::None {
            now + self.interval
        } else {
            now
        });
    }

    /// The announce in flight failed at `now`: retry after a backoff that
    /// doubles per consecutive failure, with the same event.
    pub fn handle_failure(&mut self, now: Instant) {
        self.in_flight = None;
        self.failures = self.failures.saturating_add(1);
        let factor = 1u32.checked_shl(self.failures - 1).unwrap_or(u32::MAX);
        let backoff = self
            .config
            .failure_backoff
            .saturating_mul(factor)
            .min(self.config.max_failure_backoff);
        self.due = Some(now + backoff);
    }

    /// The download completed: announce `completed` now (unless stopping).
    pub fn handle_completed(&mut self, now: Instant) {
        if self.pending != Event::Stopped && !self.finished {
            self.pending = Event::Completed;
            self.due = Some(now);
        }
    }

    /// The torrent stops: announce `stopped` now. An announce in flight is
    /// forgotten (the caller abandons it).
    pub fn handle_stopped(&mut self, now: Instant) {
        if !self.finished {
            self.pending = Event::Stopped;
            self.in_flight = None;
            self.due = Some(now);
        }
    }

    /// The client wants more peers: announce as soon as the tracker's
    /// minimum interval since the last success allows.
    pub fn request_peers(&mut self, now: Instant) {
        if self.in_flight.is_some() || self.finished || self.failures > 0 {
            return;
        }
        let earliest = self
            .last_success
            .map_or(now, |t| (t + self.min_interval).max(now));
        self.due = Some(self.due.map_or(earliest, |d| d.min(earliest)));
    }

    /// Consecutive failures since the last success.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Whether `stopped` was announced successfully; nothing more is due.
    pub fn is_finished(&self) -> bool {
        self.finished
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn response(interval: u64, min: Option<u64>) -> AnnounceResponse {
        AnnounceResponse {
            interval: secs(interval),
            min_interval: min.map(secs),
            ..AnnounceResponse::default()
        }
    }

    #[test]
    fn started_then_regular_at_interval() {
        let t0 = Instant::now();
        let mut s = ReannounceSchedule::new(ScheduleConfig::default(), t0);
        assert_eq!(s.poll_timeout(), Some(t0));
        assert_eq!(s.poll_announce(t0), Some(Event::Started));
        assert_eq!(s.poll_announce(t0), None, "in flight");
        assert_eq!(s.poll_timeout(), None);
        s.handle_response(t0, &response(1800, Some(300)));
        assert_eq!(s.poll_timeout(), Some(t0 + secs(1800)));
        assert_eq!(s.poll_announce(t0 + secs(1799)), None);
        assert_eq!(s.poll_announce(t0 + secs(1800)), Some(Event::None));
    }

    #[test]
    fn interval_is_at_least_min_interval_and_floor() {
        let t0 = Instant::now();
        let mut s = ReannounceSchedule::new(ScheduleConfig::default(), t0);
        s.poll_announce(t0);
        s.handle_response(t0, &response(0, None));
        assert_eq!(s.poll_timeout(), Some(t0 + secs(60)), "floor");
        s.poll_announce(t0 + secs(60));
        s.handle_response(t0 + secs(60), &response(100, Some(900)));
        assert_eq!(s.poll_timeout(), Some(t0 + secs(960)), "min interval wins");
    }

    #[test]
    fn failures_back_off_exponentially_up_to_a_cap() {
        let t0 = Instant::now();
        let mut s = ReannounceSchedule::new(ScheduleConfig::default(), t0);
        let mut now = t0;
        let mut delays = Vec::new();
        for _ in 0..10 {
            assert_eq!(
                s.poll_announce(now),
                Some(Event::Started),
                "started is retried"
            );
            s.handle_failure(now);
            let due = s.poll_timeout().unwrap();
            delays.push((due - now).as_secs());
            now = due;
        }
        assert_eq!(delays, [15, 30, 60, 120, 240, 480, 960, 1800, 1800, 1800]);
        assert_eq!(s.failures(), 10);
        s.poll_announce(now);
        s.handle_response(now, &response(600, None));
        assert_eq!(s.failures(), 0);
        assert_eq!(s.poll_timeout(), Some(now + secs(600)));
    }

    #[test]
    fn completed_and_stopped_are_immediate() {
        let t0 = Instant::now();
        let mut s = ReannounceSchedule::new(ScheduleConfig::default(), t0);
        s.poll_announce(t0);
        s.handle_response(t0, &response(1800, None));
        let t1 = t0 + secs(10);
        s.handle_completed(t1);
        assert_eq!(s.poll_announce(t1), Some(Event::Completed));
        s.handle_response(t1, &response(1800, None));
        assert_eq!(s.poll_timeout(), Some(t1 + secs(1800)));
        let t2 = t1 + secs(10);
        s.handle_stopped(t2);
        assert_eq!(s.poll_announce(t2), Some(Event::Stopped));
        s.handle_response(t2, &response(1800, None));
        assert!(s.is_finished());
        assert_eq!(s.poll_timeout(), None);
        s.handle_completed(t2);
        assert_eq!(s.poll_announce(t2 + secs(9999)), None);
    }

    #[test]
    fn completed_while_in_flight_goes_out_after_the_answer() {
        let t0 = Instant::now();
        let mut s = ReannounceSchedule::new(ScheduleConfig::default(), t0);
        assert_eq!(s.poll_announce(t0), Some(Event::Started));
        s.handle_completed(t0);
        s.handle_response(t0 + secs(1), &response(1800, None));
        assert_eq!(s.poll_announce(t0 + secs(1)), Some(Event::Completed));
    }

    #[test]
    fn stopped_replaces_an_announce_in_flight() {
        let t0 = Instant::now();
        let mut s = ReannounceSchedule::new(ScheduleConfig::default(), t0);
        s.poll_announce(t0);
        s.handle_stopped(t0);
        assert_eq!(s.poll_announce(t0), Some(Event::Stopped));
        s.handle_failure(t0);
        assert_eq!(
            s.poll_announce(t0 + secs(15)),
            Some(Event::Stopped),
            "retried"
        );
    }

    #[test]
    fn request_peers_honours_min_interval() {
        let t0 = Instant::now();
        let mut s = ReannounceSchedule::new(ScheduleConfig::default(), t0);
        s.poll_announce(t0);
        s.handle_response(t0, &response(1800, Some(120)));
        s.request_peers(t0 + secs(5));
        assert_eq!(s.poll_timeout(), Some(t0 + secs(120)));
        s.request_peers(t0 + secs(500));
        assert_eq!(
            s.poll_timeout(),
            Some(t0 + secs(120)),
            "never later than already due"
        );
    }
}
