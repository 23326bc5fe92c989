//! Counters for `/metrics` (Prometheus text format), updated with relaxed atomics on the hot
//! path.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

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

    /// The Prometheus text exposition, with `channels` supplied by the broker.
    pub fn render(&self, channels: usize) -> String {
        let mut out = String::new();
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let gauges = [
            (
                "ripple_connections",
                "WebSocket connections open now",
                get(&self.connections),
            ),
            (
                "ripple_channels",
                "Channels with subscribers or history",
                channels as u64,
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
                "WebSocket connections opened",
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
        out
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
}
