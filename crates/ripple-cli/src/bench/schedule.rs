//! When a run measures and when it stops: the warm-up, the measured window (`--duration`) and
//! the message budget (`--count`); and, with `--rate`, when each message is due.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// The clock and budget every sender consults.
#[derive(Debug)]
pub(crate) struct Schedule {
    /// Messages sent from here on are measured.
    pub(crate) measure_from: Instant,
    /// No message is sent from here on.
    pub(crate) deadline: Option<Instant>,
    /// Measured messages still to send (`--count`); `u64::MAX` without a count.
    budget: AtomicU64,
}

impl Schedule {
    /// Starts now: `warmup`, then `duration` and/or `count` messages.
    pub(crate) fn start(warmup: Duration, duration: Option<Duration>, count: Option<u64>) -> Self {
        let measure_from = Instant::now() + warmup;
        Self {
            measure_from,
            deadline: duration.map(|d| measure_from + d),
            budget: AtomicU64::new(count.unwrap_or(u64::MAX)),
        }
    }

    /// How many of `want` messages may be sent at `now`: all of them during the warm-up, none
    /// after the deadline or once the budget is spent.
    pub(crate) fn claim(&self, now: Instant, want: u64) -> u64 {
        if self.deadline.is_some_and(|d| now >= d) {
            return 0;
        }
        if now < self.measure_from {
            return want;
        }
        let taken = self
            .budget
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                (left > 0).then(|| left - left.min(want))
            });
        match taken {
            Ok(left) => left.min(want),
            Err(_) => 0,
        }
    }

    /// Whether a message sent at `sent` counts.
    pub(crate) fn measured(&self, sent: Instant) -> bool {
        sent >= self.measure_from
    }
}

/// A fixed send rate: message `k` of a sender is due at `start + k / rate`.
///
/// tokio's timer fires up to a millisecond late, so a sender wakes [`Pacer::LEAD`] early and
/// sends what falls due within it. Each message is stamped with the earlier of its due time and
/// its actual send: one sent early counts from when it left, one held back (by a full window)
/// from when it was due, so that the hold-up shows as latency instead of vanishing from it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Pacer {
    start: Instant,
    /// Nanoseconds between two messages.
    interval_ns: f64,
}

impl Pacer {
    /// How early a sender wakes for a message.
    pub(crate) const LEAD: Duration = Duration::from_millis(1);

    /// `per_second` messages a second from `start` on.
    pub(crate) fn new(start: Instant, per_second: f64) -> Self {
        Self {
            start,
            interval_ns: 1e9 / per_second,
        }
    }

    /// When message `k` is due.
    pub(crate) fn due_at(&self, k: u64) -> Instant {
        self.start + Duration::from_nanos((k as f64 * self.interval_ns) as u64)
    }

    /// When to wake for message `k`.
    pub(crate) fn wake_at(&self, k: u64) -> Instant {
        let due = self.due_at(k);
        due.checked_sub(Self::LEAD).unwrap_or(due)
    }

    /// How many messages, from message `k` on, fall due by `now` + [`Pacer::LEAD`].
    pub(crate) fn due(&self, k: u64, now: Instant) -> u64 {
        let horizon = now + Self::LEAD;
        let elapsed = horizon.saturating_duration_since(self.start).as_nanos() as f64;
        let through = (elapsed / self.interval_ns) as u64;
        (through + 1).saturating_sub(k)
    }

    /// The time to stamp message `k` with when it is sent at `now`.
    pub(crate) fn stamp(&self, k: u64, now: Instant) -> Instant {
        self.due_at(k).min(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn warmup_is_free_and_the_budget_runs_out() {
        let s = Schedule::start(Duration::from_secs(1), None, Some(10));
        let now = Instant::now();
        assert_eq!(s.claim(now, 100), 100);
        assert!(!s.measured(now));
        let later = now + Duration::from_secs(1);
        assert!(s.measured(later));
        assert_eq!(s.claim(later, 4), 4);
        assert_eq!(s.claim(later, 100), 6);
        assert_eq!(s.claim(later, 1), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn deadline_stops_sending() {
        let s = Schedule::start(Duration::ZERO, Some(Duration::from_secs(2)), None);
        let now = Instant::now();
        assert_eq!(s.claim(now, 16), 16);
        assert_eq!(s.claim(now + Duration::from_secs(2), 16), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn pacer_spaces_messages() {
        let start = Instant::now();
        let p = Pacer::new(start, 1000.0);
        assert_eq!(p.due_at(0), start);
        assert_eq!(p.due_at(250), start + Duration::from_millis(250));
        assert_eq!(p.wake_at(250), start + Duration::from_millis(249));
        assert_eq!(p.due(0, start), 2, "0 and, within the lead, 1");
        // At 10.5 ms messages 0..=11 fall due within the 1 ms lead.
        let later = start + Duration::from_micros(10_500);
        assert_eq!(p.due(0, later), 12);
        assert_eq!(p.due(11, later), 1);
        assert_eq!(p.due(12, later), 0);
        // Early: stamped when sent; late: when due.
        assert_eq!(p.stamp(11, later), later);
        assert_eq!(p.stamp(5, later), start + Duration::from_millis(5));
    }
}
