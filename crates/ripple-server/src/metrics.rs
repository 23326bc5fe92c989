//! Counters for `/metrics` (Prometheus text format), updated with relaxed atomics on the hot
//! path, and the fan-out latency histogram. [`Snapshot`]s of them, taken a second apart, give
//! the per-second [`Rates`] the dashboard draws (`/api/stats`).

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;

/// Why a WebSocket handshake was refused, for the `handshake_rejections` metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejection {
    /// Not a valid WebSocket upgrade.
    BadHandshake,
    /// `Origin` not in the allow-list.
    Origin,
    /// At the connection limit.
    Capacity,
    /// A token in the handshake was refused.
    Token,
}

impl Rejection {
    const ALL: [Self; 4] = [
        Self::BadHandshake,
        Self::Origin,
        Self::Capacity,
        Self::Token,
    ];

    fn label(self) -> &'static str {
        match self {
            Self::BadHandshake => "bad_handshake",
            Self::Origin => "origin",
            Self::Capacity => "capacity",
            Self::Token => "token",
        }
    }
}

/// Every counter the server keeps.
#[derive(Debug, Default)]
pub struct Metrics {
    /// WebSocket connections open now.
    pub connections: AtomicU64,
    /// Connections opened since start.
    pub connections_total: AtomicU64,
    /// Messages received from clients.
    pub messages_in: AtomicU64,
    /// Messages queued to clients (each delivery counts).
    pub messages_out: AtomicU64,
    /// Bytes received in messages.
    pub bytes_in: AtomicU64,
    /// Bytes queued to clients.
    pub bytes_out: AtomicU64,
    /// Messages dropped because a client's queue overflowed.
    pub dropped: AtomicU64,
    /// Clients disconnected as slow consumers.
    pub slow_consumers: AtomicU64,
    /// Publications accepted.
    pub publications: AtomicU64,
    /// How long a publication takes from reaching the broker to being queued for every
    /// subscriber.
    pub fanout: LatencyHistogram,
    /// `/api/stats` streams open now (bounded, see `http::stats`).
    pub stats_streams: AtomicU64,
    /// TCP connections open now, whatever they carry (an HTTP request, a WebSocket, an idle
    /// keep-alive connection, a half-sent request head).
    pub sockets: AtomicU64,
    /// Sockets closed at accept because `max_connections` were already open.
    pub sockets_refused: AtomicU64,
    /// Requests to the HTTP transports, admitted or not: `/sse`, `/poll`, `/rpc`.
    pub sse_requests: AtomicU64,
    /// See [`Metrics::sse_requests`].
    pub poll_requests: AtomicU64,
    /// See [`Metrics::sse_requests`].
    pub rpc_requests: AtomicU64,
    rejections: [AtomicU64; 4],
}

impl Metrics {
    /// Counts a refused handshake.
    pub fn reject(&self, why: Rejection) {
        let index = Rejection::ALL.iter().position(|r| *r == why).unwrap_or(0);
        self.rejections[index].fetch_add(1, Ordering::Relaxed);
    }

    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// The counters and the histogram now.
    pub fn snapshot(&self) -> Snapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Snapshot {
            connections: get(&self.connections),
            connections_total: get(&self.connections_total),
            messages_in: get(&self.messages_in),
            messages_out: get(&self.messages_out),
            bytes_in: get(&self.bytes_in),
            bytes_out: get(&self.bytes_out),
            dropped: get(&self.dropped),
            slow_consumers: get(&self.slow_consumers),
            publications: get(&self.publications),
            fanout: self.fanout.counts(),
        }
    }

    /// The Prometheus text exposition, with `channels` supplied by the broker.
    pub fn render(&self, channels: usize) -> String {
        let mut out = String::new();
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let gauges = [
            (
                "ripple_connections",
                "Connections open now: WebSockets, SSE streams and waiting long-polls",
                get(&self.connections),
            ),
            (
                "ripple_channels",
                "Channels with subscribers or history",
                channels as u64,
            ),
            (
                "ripple_sockets",
                "TCP connections open now, whatever they carry (counted against max_connections)",
                get(&self.sockets),
            ),
        ];
        for (name, help, value) in gauges {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        }
        let counters = [
            (
                "ripple_connections_total",
                "Connections opened: WebSockets, SSE streams and admitted long-polls",
                get(&self.connections_total),
            ),
            (
                "ripple_messages_in_total",
                "Messages received from clients",
                get(&self.messages_in),
            ),
            (
                "ripple_messages_out_total",
                "Messages queued to clients",
                get(&self.messages_out),
            ),
            (
                "ripple_bytes_in_total",
                "Bytes received in messages",
                get(&self.bytes_in),
            ),
            (
                "ripple_bytes_out_total",
                "Bytes queued to clients",
                get(&self.bytes_out),
            ),
            (
                "ripple_dropped_total",
                "Messages dropped for slow consumers",
                get(&self.dropped),
            ),
            (
                "ripple_slow_consumer_closes_total",
                "Clients closed as slow consumers",
                get(&self.slow_consumers),
            ),
            (
                "ripple_publications_total",
                "Publications accepted",
                get(&self.publications),
            ),
            (
                "ripple_sockets_refused_total",
                "TCP connections closed at accept because max_connections were open",
                get(&self.sockets_refused),
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        }
        let name = "ripple_handshake_rejections_total";
        let _ = writeln!(
            out,
            "# HELP {name} WebSocket handshakes refused, by reason\n# TYPE {name} counter"
        );
        for (why, counter) in Rejection::ALL.iter().zip(&self.rejections) {
            let _ = writeln!(out, "{name}{{reason=\"{}\"}} {}", why.label(), get(counter));
        }
        let name = "ripple_http_transport_requests_total";
        let _ = writeln!(
            out,
            "# HELP {name} Requests to the HTTP transports, by endpoint\n# TYPE {name} counter"
        );
        for (transport, counter) in [
            ("sse", &self.sse_requests),
            ("poll", &self.poll_requests),
            ("rpc", &self.rpc_requests),
        ] {
            let _ = writeln!(out, "{name}{{transport=\"{transport}\"}} {}", get(counter));
        }
        self.fanout.render(&mut out);
        out
    }
}

/// Buckets of [`LatencyHistogram`]: bucket `i < 26` counts durations in `(2^(i-1), 2^i]`
/// microseconds (bucket 0: up to 1 µs), so the finite buckets reach 2^25 µs ≈ 33.5 s; the last
/// counts everything longer.
pub const LATENCY_BUCKETS: usize = 27;

/// A histogram of durations in power-of-two microsecond buckets: recording is one relaxed
/// atomic add, and the quantiles of any interval come from the difference of two
/// [`counts`](Self::counts).
#[derive(Debug, Default)]
pub struct LatencyHistogram {
    buckets: [AtomicU64; LATENCY_BUCKETS],
    sum_micros: AtomicU64,
}

impl LatencyHistogram {
    /// Counts one duration.
    pub fn record(&self, took: Duration) {
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.buckets[bucket_of(micros)].fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// How many durations each bucket has counted so far.
    pub fn counts(&self) -> [u64; LATENCY_BUCKETS] {
        std::array::from_fn(|i| self.buckets[i].load(Ordering::Relaxed))
    }

    /// `ripple_fanout_seconds` as a Prometheus histogram (cumulative `le` buckets in seconds).
    fn render(&self, out: &mut String) {
        let name = "ripple_fanout_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Time from a publication reaching the broker to its frame being queued for every subscriber\n# TYPE {name} histogram"
        );
        let mut cumulative = 0;
        for (i, count) in self.counts().iter().enumerate() {
            cumulative += count;
            if i + 1 == LATENCY_BUCKETS {
                let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
            } else {
                let le = bucket_upper_micros(i) / 1e6;
                let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
            }
        }
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {cumulative}");
    }
}

/// The bucket of a duration: the smallest `i` with `micros <= 2^i`, capped at the overflow bucket.
fn bucket_of(micros: u64) -> usize {
    let ceil_log2 = 64 - micros.saturating_sub(1).leading_zeros() as usize;
    ceil_log2.min(LATENCY_BUCKETS - 1)
}

/// The upper bound of bucket `i` in microseconds (the overflow bucket has none; its lower bound
/// is returned).
fn bucket_upper_micros(i: usize) -> f64 {
    f64::from(1u32 << i.min(LATENCY_BUCKETS - 2))
}

/// The `q` quantile (0 < q ≤ 1) in microseconds of the durations counted in `counts`, linearly
/// interpolated inside its bucket; `None` when nothing was counted.
pub fn quantile_micros(counts: &[u64; LATENCY_BUCKETS], q: f64) -> Option<f64> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = (q.clamp(0.0, 1.0) * total as f64).max(1.0);
    let mut below = 0.0;
    for (i, &count) in counts.iter().enumerate() {
        let count = count as f64;
        if count > 0.0 && below + count >= rank {
            if i + 1 == LATENCY_BUCKETS {
                return Some(bucket_upper_micros(i));
            }
            let upper = bucket_upper_micros(i);
            let lower = if i == 0 { 0.0 } else { upper / 2.0 };
            return Some(lower + (upper - lower) * (rank - below) / count);
        }
        below += count;
    }
    None
}

/// Every counter at one moment, for computing rates.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// WebSocket connections open (a gauge).
    pub connections: u64,
    /// Connections opened since start.
    pub connections_total: u64,
    /// Messages received from clients.
    pub messages_in: u64,
    /// Pushes queued to clients.
    pub messages_out: u64,
    /// Bytes received.
    pub bytes_in: u64,
    /// Bytes of channel pushes queued.
    pub bytes_out: u64,
    /// Queue overflows.
    pub dropped: u64,
    /// Slow-consumer disconnects.
    pub slow_consumers: u64,
    /// Publications accepted.
    pub publications: u64,
    /// The fan-out latency histogram's bucket counts.
    pub fanout: [u64; LATENCY_BUCKETS],
}

/// What happened per second between two snapshots, and the fan-out latency of that interval.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Rates {
    /// Connections opened per second.
    pub connections_opened: f64,
    /// Messages received from clients per second.
    pub messages_in: f64,
    /// Pushes queued to clients per second.
    pub messages_out: f64,
    /// Bytes received per second.
    pub bytes_in: f64,
    /// Bytes of channel pushes queued per second.
    pub bytes_out: f64,
    /// Queue overflows per second.
    pub dropped: f64,
    /// Slow-consumer disconnects per second.
    pub slow_consumer_closes: f64,
    /// Publications per second.
    pub publications: f64,
    /// Publications fanned out in the interval.
    pub fanout_count: u64,
    /// Median fan-out latency in the interval, microseconds (`None`: no publication).
    pub fanout_p50_us: Option<f64>,
    /// 99th percentile fan-out latency in the interval, microseconds.
    pub fanout_p99_us: Option<f64>,
}

impl Snapshot {
    /// The rates between `earlier` and this snapshot, taken `elapsed` later.
    pub fn rates_since(&self, earlier: &Self, elapsed: Duration) -> Rates {
        let secs = elapsed.as_secs_f64().max(1e-3);
        let per_sec = |now: u64, then: u64| now.saturating_sub(then) as f64 / secs;
        let fanout: [u64; LATENCY_BUCKETS] =
            std::array::from_fn(|i| self.fanout[i].saturating_sub(earlier.fanout[i]));
        Rates {
            connections_opened: per_sec(self.connections_total, earlier.connections_total),
            messages_in: per_sec(self.messages_in, earlier.messages_in),
            messages_out: per_sec(self.messages_out, earlier.messages_out),
            bytes_in: per_sec(self.bytes_in, earlier.bytes_in),
            bytes_out: per_sec(self.bytes_out, earlier.bytes_out),
            dropped: per_sec(self.dropped, earlier.dropped),
            slow_consumer_closes: per_sec(self.slow_consumers, earlier.slow_consumers),
            publications: per_sec(self.publications, earlier.publications),
            fanout_count: fanout.iter().sum(),
            fanout_p50_us: quantile_micros(&fanout, 0.5),
            fanout_p99_us: quantile_micros(&fanout, 0.99),
        }
    }
}

/// Counts an open connection in `ripple_connections` for as long as it lives.
#[derive(Debug)]
pub struct Connected(Arc<Metrics>);

impl Connected {
    /// Counts one more connection if fewer than `max` are open.
    pub fn reserve(metrics: &Arc<Metrics>, max: usize) -> Option<Self> {
        let open = metrics.connections.fetch_add(1, Ordering::Relaxed);
        let connected = Self(Arc::clone(metrics));
        if open as usize >= max {
            return None;
        }
        Metrics::add(&metrics.connections_total, 1);
        Some(connected)
    }
}

impl Drop for Connected {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Counts an accepted TCP connection in `ripple_sockets` for as long as it lives.
#[derive(Debug)]
pub struct OpenSocket(Arc<Metrics>);

impl OpenSocket {
    /// Counts one more socket if fewer than `max` are open; `None` (and counted as refused)
    /// otherwise.
    pub fn reserve(metrics: &Arc<Metrics>, max: usize) -> Option<Self> {
        let open = metrics.sockets.fetch_add(1, Ordering::Relaxed);
        let socket = Self(Arc::clone(metrics));
        if open as usize >= max {
            Metrics::add(&metrics.sockets_refused, 1);
            return None;
        }
        Some(socket)
    }
}

impl Drop for OpenSocket {
    fn drop(&mut self) {
        self.0.sockets.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let metrics = Metrics::default();
        Metrics::add(&metrics.messages_in, 3);
        metrics.reject(Rejection::Origin);
        let text = metrics.render(2);
        assert!(text.contains("ripple_messages_in_total 3\n"));
        assert!(text.contains("ripple_channels 2\n"));
        assert!(text.contains("ripple_handshake_rejections_total{reason=\"origin\"} 1\n"));
    }

    #[test]
    fn latency_buckets_are_powers_of_two_microseconds() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(1), 0);
        assert_eq!(bucket_of(2), 1);
        assert_eq!(bucket_of(3), 2);
        assert_eq!(bucket_of(4), 2);
        assert_eq!(bucket_of(1 << 25), 25);
        assert_eq!(bucket_of((1 << 25) + 1), LATENCY_BUCKETS - 1);
        assert_eq!(bucket_of(u64::MAX), LATENCY_BUCKETS - 1);
    }

    #[test]
    fn quantiles_interpolate_inside_a_bucket() {
        let histogram = LatencyHistogram::default();
        for _ in 0..98 {
            histogram.record(Duration::from_micros(3)); // bucket (2, 4]
        }
        histogram.record(Duration::from_micros(1000)); // bucket (512, 1024]
        histogram.record(Duration::from_micros(1000));
        let counts = histogram.counts();
        let p50 = quantile_micros(&counts, 0.5).unwrap();
        assert!((2.0..=4.0).contains(&p50), "p50 {p50}");
        let p99 = quantile_micros(&counts, 0.99).unwrap();
        assert!((512.0..=1024.0).contains(&p99), "p99 {p99}");
        assert_eq!(quantile_micros(&[0; LATENCY_BUCKETS], 0.5), None);
    }

    #[test]
    fn rates_are_per_second_and_quantiles_per_interval() {
        let metrics = Metrics::default();
        metrics.fanout.record(Duration::from_secs(1));
        let earlier = metrics.snapshot();
        Metrics::add(&metrics.messages_out, 500);
        Metrics::add(&metrics.bytes_out, 20_000);
        metrics.fanout.record(Duration::from_micros(10));
        let rates = metrics
            .snapshot()
            .rates_since(&earlier, Duration::from_millis(500));
        assert_eq!(rates.messages_out, 1000.0);
        assert_eq!(rates.bytes_out, 40_000.0);
        assert_eq!(rates.fanout_count, 1);
        let p99 = rates.fanout_p99_us.unwrap();
        assert!(
            (8.0..=16.0).contains(&p99),
            "only this interval counts: {p99}"
        );
    }

    #[test]
    fn renders_the_fanout_histogram() {
        let metrics = Metrics::default();
        metrics.fanout.record(Duration::from_micros(3));
        let text = metrics.render(0);
        assert!(text.contains("# TYPE ripple_fanout_seconds histogram\n"));
        assert!(text.contains("ripple_fanout_seconds_bucket{le=\"0.000002\"} 0\n"));
        assert!(text.contains("ripple_fanout_seconds_bucket{le=\"0.000004\"} 1\n"));
        assert!(text.contains("ripple_fanout_seconds_bucket{le=\"+Inf\"} 1\n"));
        assert!(text.contains("ripple_fanout_seconds_count 1\n"));
    }
}
