//! The session's timer table: one optional deadline per kind of timer.

use std::time::Instant;

/// The kinds of timer a peer session keeps, one deadline each.
///
/// [`Session::timer`](crate::Session::timer) and
/// [`Handshaking::timer`](crate::Handshaking::timer) show each deadline;
/// `poll_timeout` returns the earliest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Timer {
    /// The peer's handshake must be in by then (handshake phase only).
    Handshake,
    /// We send a keep-alive if we have sent nothing until then.
    KeepAlive,
    /// The peer is dropped if it has sent nothing until then.
    Idle,
    /// Our outstanding requests are reported stalled
    /// ([`Event::Stalled`](crate::Event::Stalled)) if no block arrives
    /// until then. Set only while requests are outstanding.
    Requests,
    /// Transfer counters are reported ([`Event::Stats`](crate::Event::Stats)).
    Stats,
}

impl Timer {
    /// Every kind, in the order they are checked.
    pub const ALL: [Timer; 5] = [
        Timer::Handshake,
        Timer::KeepAlive,
        Timer::Idle,
        Timer::Requests,
        Timer::Stats,
    ];

    fn index(self) -> usize {
        match self {
            Timer::Handshake => 0,
            Timer::KeepAlive => 1,
            Timer::Idle => 2,
            Timer::Requests => 3,
            Timer::Stats => 4,
        }
    }
}

/// One optional deadline per [`Timer`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct TimerTable {
    deadlines: [Option<Instant>; 5],
}

impl TimerTable {
    pub(crate) fn get(&self, timer: Timer) -> Option<Instant> {
        self.deadlines.get(timer.index()).copied().flatten()
    }

    pub(crate) fn set(&mut self, timer: Timer, at: Instant) {
        if let Some(slot) = self.deadlines.get_mut(timer.index()) {
            *slot = Some(at);
        }
    }

    pub(crate) fn stop(&mut self, timer: Timer) {
        if let Some(slot) = self.deadlines.get_mut(timer.index()) {
            *slot = None;
        }
    }

    /// Whether `timer` is set and due at `now`.
    pub(crate) fn is_due(&self, timer: Timer, now: Instant) -> bool {
        self.get(timer).is_some_and(|at| at <= now)
    }

    /// The earliest deadline.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.deadlines.iter().flatten().min().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_next_deadline_is_the_earliest_set() {
        let t0 = Instant::now();
        let mut table = TimerTable::default();
        assert_eq!(table.next(), None);
        table.set(Timer::Idle, t0 + Duration::from_secs(9));
        table.set(Timer::KeepAlive, t0 + Duration::from_secs(3));
        assert_eq!(table.next(), Some(t0 + Duration::from_secs(3)));
        assert!(!table.is_due(Timer::KeepAlive, t0));
        assert!(table.is_due(Timer::KeepAlive, t0 + Duration::from_secs(3)));
        table.stop(Timer::KeepAlive);
        assert_eq!(table.next(), Some(t0 + Duration::from_secs(9)));
        assert!(!table.is_due(Timer::Requests, t0 + Duration::from_secs(99)));
    }
}
