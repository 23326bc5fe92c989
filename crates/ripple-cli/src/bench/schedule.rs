//! When a run measures and when it stops: the warm-up, the measured window (`--duration`) and
//! the message budget (`--count`).

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
}
