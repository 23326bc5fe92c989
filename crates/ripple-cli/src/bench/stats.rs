//! What a run measures: latencies in an HDR histogram, counters, and errors with a few samples.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// The longest latency the histogram tells apart (longer ones count as this).
const MAX_LATENCY_NS: u64 = 60_000_000_000;
/// Values a task collects before it takes the histogram's lock.
const BATCH: usize = 512;
/// Error messages kept to show.
const MAX_SAMPLES: usize = 8;

/// Latencies of every measured message, in nanoseconds, three significant digits.
pub(crate) struct Latencies(Mutex<Histogram<u64>>);

impl Latencies {
    #[allow(clippy::expect_used)]
    pub(crate) fn new() -> Self {
        let histogram = Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3).expect(
            "constant bounds within hdrhistogram's limits: 1 <= low, 2 * low <= high, sigfig <= 5",
        );
        Self(Mutex::new(histogram))
    }

    /// A recorder for one task; it adds its values in batches.
    pub(crate) fn recorder(&self) -> Recorder<'_> {
        Recorder {
            latencies: self,
            pending: Vec::with_capacity(BATCH),
        }
    }

    /// The percentiles of everything recorded.
    pub(crate) fn summary(&self) -> LatencySummary {
        LatencySummary::of(&self.lock())
    }

    fn lock(&self) -> MutexGuard<'_, Histogram<u64>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Collects one task's latencies and hands them to the shared histogram in batches.
pub(crate) struct Recorder<'a> {
    latencies: &'a Latencies,
    pending: Vec<u64>,
}

impl Recorder<'_> {
    pub(crate) fn record(&mut self, latency: Duration) {
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.pending.push(nanos.clamp(1, MAX_LATENCY_NS));
        if self.pending.len() == BATCH {
            self.flush();
        }
    }

    pub(crate) fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let mut histogram = self.latencies.lock();
        for value in self.pending.drain(..) {
            histogram.saturating_record(value);
        }
    }
}

impl Drop for Recorder<'_> {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Latency percentiles in microseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub(crate) struct LatencySummary {
    pub(crate) p50: f64,
    pub(crate) p90: f64,
    pub(crate) p99: f64,
    pub(crate) p999: f64,
    pub(crate) max: f64,
    pub(crate) mean: f64,
}

impl LatencySummary {
    pub(crate) fn of(histogram: &Histogram<u64>) -> Self {
        if histogram.is_empty() {
            return Self::default();
        }
        let us = |nanos: u64| round3(nanos as f64 / 1e3);
        Self {
            p50: us(histogram.value_at_quantile(0.5)),
            p90: us(histogram.value_at_quantile(0.9)),
            p99: us(histogram.value_at_quantile(0.99)),
            p999: us(histogram.value_at_quantile(0.999)),
            max: us(histogram.max()),
            mean: round3(histogram.mean() / 1e3),
        }
    }
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// Errors: how many, and the first few messages.
#[derive(Default)]
pub(crate) struct Errors {
    count: AtomicU64,
    samples: Mutex<Vec<String>>,
}

impl Errors {
    /// Counts `n` errors described by `what`.
    pub(crate) fn add(&self, n: u64, what: impl Into<String>) {
        self.count.fetch_add(n, Ordering::Relaxed);
        let mut samples = self.samples.lock().unwrap_or_else(PoisonError::into_inner);
        if samples.len() < MAX_SAMPLES {
            samples.push(what.into());
        }
    }

    pub(crate) fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    pub(crate) fn samples(&self) -> Vec<String> {
        self.samples
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// A counter that tasks bump often: each keeps a local tally and publishes it now and then.
#[derive(Default)]
pub(crate) struct Counter(AtomicU64);

impl Counter {
    pub(crate) fn add(&self, n: u64) {
        if n > 0 {
            self.0.fetch_add(n, Ordering::Relaxed);
        }
    }

    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_in_microseconds() {
        let latencies = Latencies::new();
        {
            let mut recorder = latencies.recorder();
            for us in 1..=1000u64 {
                recorder.record(Duration::from_micros(us));
            }
        } // the drop flushes
        let s = latencies.summary();
        // Three significant digits: within 0.1 %.
        let near = |got: f64, want: f64| (got - want).abs() <= want * 0.001 + 0.001;
        assert!(near(s.p50, 500.0), "{s:?}");
        assert!(near(s.p90, 900.0), "{s:?}");
        assert!(near(s.p99, 990.0), "{s:?}");
        assert!(near(s.p999, 999.0), "{s:?}");
        assert!(near(s.max, 1000.0), "{s:?}");
        assert!(near(s.mean, 500.5), "{s:?}");
    }

    #[test]
    fn empty_and_out_of_range() {
        let latencies = Latencies::new();
        assert_eq!(latencies.summary(), LatencySummary::default());
        let mut recorder = latencies.recorder();
        recorder.record(Duration::ZERO);
        recorder.record(Duration::from_secs(3600));
        recorder.flush();
        let s = latencies.summary();
        assert!(s.max >= 59_000_000.0 && s.max <= 61_000_000.0, "{s:?}");
    }

    #[test]
    fn batches_reach_the_histogram() {
        let latencies = Latencies::new();
        let mut recorder = latencies.recorder();
        for _ in 0..BATCH + 1 {
            recorder.record(Duration::from_micros(10));
        }
        // One full batch went in without an explicit flush.
        assert_eq!(latencies.lock().len(), BATCH as u64);
        drop(recorder);
        assert_eq!(latencies.lock().len(), BATCH as u64 + 1);
    }

    #[test]
    fn errors_keep_a_few_samples() {
        let errors = Errors::default();
        for i in 0..20 {
            errors.add(2, format!("e{i}"));
        }
        assert_eq!(errors.count(), 40);
        assert_eq!(errors.samples().len(), MAX_SAMPLES);
        assert_eq!(errors.samples()[0], "e0");
    }
}
