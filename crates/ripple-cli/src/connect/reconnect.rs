//! `--reconnect`: exponential backoff with jitter between attempts.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The first wait.
const FIRST: Duration = Duration::from_millis(500);
/// The longest wait.
const MAX: Duration = Duration::from_secs(30);
/// A connection that lived this long resets the backoff.
pub(crate) const HEALTHY: Duration = Duration::from_secs(10);

/// Waits of 0.5 s, 1 s, 2 s, … up to 30 s, each shortened by up to a quarter at random, so
/// that many clients cut off at once do not come back at once.
#[derive(Debug)]
pub(crate) struct Backoff {
    next: Duration,
    attempt: u32,
    seed: u64,
}

impl Default for Backoff {
    fn default() -> Self {
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            | 1;
        Self {
            next: FIRST,
            attempt: 0,
            seed,
        }
    }
}

impl Backoff {
    /// The wait before the next attempt, and the attempt's number (2 for the first retry).
    pub(crate) fn next_delay(&mut self) -> (Duration, u32) {
        let base = self.next;
        self.next = (self.next * 2).min(MAX);
        self.attempt += 1;
        let jitter = base.mul_f64(self.random() * 0.25);
        (base - jitter, self.attempt + 1)
    }

    /// Starts over after a connection that stayed up.
    pub(crate) fn reset(&mut self) {
        self.next = FIRST;
        self.attempt = 0;
    }

    /// xorshift64: uniform enough in [0, 1) for jitter.
    fn random(&mut self) -> f64 {
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        (self.seed >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_with_bounded_jitter() {
        let mut backoff = Backoff::default();
        let mut expected = FIRST;
        for attempt in 2..12 {
            let (delay, n) = backoff.next_delay();
            assert_eq!(n, attempt);
            assert!(
                delay <= expected && delay >= expected.mul_f64(0.75),
                "{delay:?}"
            );
            expected = (expected * 2).min(MAX);
        }
        backoff.reset();
        let (delay, n) = backoff.next_delay();
        assert!(delay <= FIRST);
        assert_eq!(n, 2);
    }
}
