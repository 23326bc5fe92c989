//! Publish rate limits: a token bucket per `/ws` connection, and buckets keyed by user or
//! address for `POST /rpc`, which has no connection to hang one on.

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
