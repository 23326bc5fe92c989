//! Rate limits: a publish token bucket per `/ws` connection, buckets keyed by user or address
//! for `POST /rpc` (which has no connection to hang one on), and a throttle for log lines that a
//! client can trigger at will (a flood of bad tokens must not become a flood of log lines).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

/// The most keys [`KeyedLimiter`] tracks; past it, idle keys (full buckets) are forgotten.
const MAX_KEYS: usize = 10_000;

/// Allows `rate` publishes per second with bursts of the same size.
#[derive(Debug)]
pub struct TokenBucket {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate: u32) -> Self {
        Self {
            rate: f64::from(rate),
            tokens: f64::from(rate),
            last: Instant::now(),
        }
    }

    /// Takes one token if there is one.
    pub fn take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens < 1.0 {
            return false;
        }
        self.tokens -= 1.0;
        true
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
    }

    fn is_full(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.tokens >= self.rate
    }
}

/// Lets a kind of log line through at most `rate` times a second, counting the ones held back.
#[derive(Debug)]
pub struct LogThrottle {
    state: Mutex<(TokenBucket, u64)>,
}

impl LogThrottle {
    /// At most `rate` lines a second (and bursts of as many).
    pub fn new(rate: u32) -> Self {
        Self {
            state: Mutex::new((TokenBucket::new(rate), 0)),
        }
    }

    /// `Some(n)` when a line may be logged now, `n` being how many were held back since the
    /// last one; `None` when this one is held back.
    pub fn admit(&self, now: Instant) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let (bucket, held_back) = &mut *state;
        if bucket.take(now) {
            return Some(std::mem::take(held_back));
        }
        *held_back += 1;
        None
    }
}

/// One bucket per key (a user, or a client address), with bounded memory.
#[derive(Debug)]
pub struct KeyedLimiter {
    rate: u32,
    buckets: Mutex<HashMap<String, TokenBucket>>,
}

impl KeyedLimiter {
    /// `rate` per second per key; 0 = unlimited.
    pub fn new(rate: u32) -> Self {
        Self {
            rate,
            buckets: Mutex::default(),
        }
    }

    /// Whether `key` may publish now.
    pub fn take(&self, key: &str, now: Instant) -> bool {
        if self.rate == 0 {
            return true;
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if !buckets.contains_key(key) && buckets.len() >= MAX_KEYS {
            // A full bucket behaves exactly like a new one: forgetting it changes nothing.
            buckets.retain(|_, bucket| !bucket.is_full(now));
            if buckets.len() >= MAX_KEYS {
                return false;
            }
        }
        buckets
            .entry(key.to_owned())
            .or_insert_with(|| TokenBucket::new(self.rate))
            .take(now)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_bucket_refills_at_its_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(2);
        assert!(bucket.take(start));
        assert!(bucket.take(start));
        assert!(!bucket.take(start));
        assert!(bucket.take(start + Duration::from_millis(500)));
    }

    #[test]
    fn a_log_throttle_counts_the_lines_it_held_back() {
        let start = Instant::now();
        let throttle = LogThrottle::new(2);
        assert_eq!(throttle.admit(start), Some(0));
        assert_eq!(throttle.admit(start), Some(0));
        for _ in 0..1000 {
            assert_eq!(throttle.admit(start), None);
        }
        assert_eq!(throttle.admit(start + Duration::from_secs(1)), Some(1000));
    }

    #[test]
    fn keys_are_limited_separately_and_idle_ones_forgotten() {
        let now = Instant::now();
        let limiter = KeyedLimiter::new(1);
        assert!(limiter.take("alice", now));
        assert!(!limiter.take("alice", now));
        assert!(limiter.take("bob", now));
        for i in 0..MAX_KEYS {
            limiter.take(&i.to_string(), now);
        }
        let later = now + Duration::from_secs(2);
        assert!(limiter.take("carol", later));
        assert!(limiter.buckets.lock().unwrap().len() < MAX_KEYS);
        assert!(KeyedLimiter::new(0).take("anyone", now));
    }
}
