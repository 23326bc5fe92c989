//! `GET /api/stats`: the dashboard's feed. The figures of `/metrics`, sampled every second and
//! turned into per-second rates, plus the busiest channels, as a Server-Sent Events stream of
//! JSON samples (docs/ripple-js.md, "The stats feed").
//!
//! With an `api_key` configured the stream needs `Authorization: Bearer <key>`, as the rest of
//! `/api/…`; without one it is open, as the page and the channels are in anonymous mode.
//! At most [`MAX_STREAMS`] streams are open at once; each ends on server shutdown, or when its
//! client stops reading for [`WRITE_TIMEOUT`].

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio_util::io::ReaderStream;

use super::bearer;
use crate::broker::ChannelSummary;
use crate::metrics::{Metrics, Rates, Snapshot};
use crate::state::AppState;

/// Streams open at once; more get `503`.
pub const MAX_STREAMS: u64 = 64;

/// Time between two samples.
pub const INTERVAL: Duration = Duration::from_secs(1);

/// A stream whose client reads nothing for this long is ended.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Rows of the busiest-channels table.
pub const BUSIEST: usize = 10;

/// `GET /api/stats` query.
#[derive(Debug, Default, Deserialize)]
pub struct StatsQuery {
    /// End the stream after this many samples (for scripts: `?samples=1` is one JSON figure set).
    samples: Option<u64>,
}

/// One sample of the feed: the `data` of an SSE `stats` event.
#[derive(Debug, Serialize)]
pub struct Sample {
    /// When it was taken, Unix milliseconds.
    pub ts: i64,
    /// Seconds since the previous sample (0 for the first).
    pub interval: f64,
    /// WebSocket connections open now.
    pub connections: u64,
    /// Channels with subscribers or history.
    pub channels: usize,
    /// Subscriptions over all channels.
    pub subscriptions: usize,
    /// Since the server started.
    pub totals: Totals,
    /// Per second since the previous sample; `null` in the first sample of a stream.
    pub rates: Option<Rates>,
    /// The busiest channels: by publications per second, then subscribers, then name.
    pub busiest: Vec<ChannelRate>,
}

/// Counters since the server started.
#[derive(Debug, Serialize)]
pub struct Totals {
    /// Connections opened.
    pub connections: u64,
    /// Messages received from clients.
    pub messages_in: u64,
    /// Pushes queued to clients.
    pub messages_out: u64,
    /// Bytes of channel pushes queued.
    pub bytes_out: u64,
    /// Queue overflows.
    pub dropped: u64,
    /// Slow-consumer disconnects.
    pub slow_consumer_closes: u64,
    /// Publications accepted.
    pub publications: u64,
}

/// A row of the busiest-channels table.
#[derive(Debug, Serialize, PartialEq)]
pub struct ChannelRate {
    /// The channel.
    pub channel: String,
    /// Subscribers now.
    pub subscribers: usize,
    /// Publications per second since the previous sample (0 in the first).
    pub rate: f64,
    /// Its newest offset.
    pub offset: u64,
}

/// Streams samples as `text/event-stream`: one `stats` event at once, then one per second.
pub async fn stream(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(query): Query<StatsQuery>,
) -> Response {
    if let Err(why) = authorize(&state, &headers) {
        return refusal(StatusCode::UNAUTHORIZED, "unauthorized", why);
    }
    let Some(slot) = StreamSlot::take(Arc::clone(&state.metrics)) else {
        let why = format!("at most {MAX_STREAMS} stats streams at once");
        return refusal(StatusCode::SERVICE_UNAVAILABLE, "too_many_streams", &why);
    };
    let (reader, writer) = tokio::io::duplex(64 * 1024);
    tokio::spawn(feed(state, writer, query.samples, slot));
    let headers = [
        (header::CONTENT_TYPE, "text/event-stream"),
        (header::CACHE_CONTROL, "no-cache"),
        (header::HeaderName::from_static("x-accel-buffering"), "no"),
    ];
    (headers, Body::from_stream(ReaderStream::new(reader))).into_response()
}

/// Writes samples until the client goes away, the server shuts down, or `samples` were sent.
async fn feed(
    state: Arc<AppState>,
    mut out: tokio::io::DuplexStream,
    samples: Option<u64>,
    _slot: StreamSlot,
) {
    let mut sampler = Sampler::default();
    let mut every = tokio::time::interval(INTERVAL);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sent = 0;
    if !send(&state, &mut out, "retry: 2000\n\n").await {
        return;
    }
    while samples.is_none_or(|n| sent < n) {
        tokio::select! {
            _ = every.tick() => {}
            () = state.shutdown.cancelled() => return,
        }
        let channels = state.broker.channels().await.unwrap_or_default();
        let sample = sampler.sample(state.metrics.snapshot(), &channels);
        sent += 1;
        if !send(&state, &mut out, &event(sent, &sample)).await {
            return;
        }
    }
}

/// Writes `text` to the response; `false` when the client is gone, does not read within
/// [`WRITE_TIMEOUT`], or the server is shutting down.
async fn send(state: &AppState, out: &mut tokio::io::DuplexStream, text: &str) -> bool {
    tokio::select! {
        written = tokio::time::timeout(WRITE_TIMEOUT, out.write_all(text.as_bytes())) => {
            matches!(written, Ok(Ok(())))
        }
        () = state.shutdown.cancelled() => false,
    }
}

/// One SSE event: `id`, `event: stats`, the JSON on one `data` line.
fn event(id: u64, sample: &Sample) -> String {
    let data = serde_json::to_string(sample).unwrap_or_default();
    format!("id: {id}\nevent: stats\ndata: {data}\n\n")
}

/// What one stream remembers between samples to compute rates.
#[derive(Debug, Default)]
struct Sampler {
    previous: Option<(Instant, Snapshot)>,
    offsets: HashMap<String, (String, u64)>,
}

impl Sampler {
    fn sample(&mut self, now: Snapshot, channels: &[ChannelSummary]) -> Sample {
        let at = Instant::now();
        let elapsed = self.previous.as_ref().map(|(then, _)| at - *then);
        let rates = self
            .previous
            .as_ref()
            .map(|(then, earlier)| now.rates_since(earlier, at - *then));
        let busiest = self.busiest(channels, elapsed);
        let sample = Sample {
            ts: chrono::Utc::now().timestamp_millis(),
            interval: elapsed.map_or(0.0, |e| e.as_secs_f64()),
            connections: now.connections,
            channels: channels.len(),
            subscriptions: channels.iter().map(|c| c.subscribers).sum(),
            totals: Totals {
                connections: now.connections_total,
                messages_in: now.messages_in,
                messages_out: now.messages_out,
                bytes_out: now.bytes_out,
                dropped: now.dropped,
                slow_consumer_closes: now.slow_consumers,
                publications: now.publications,
            },
            rates,
            busiest,
        };
        self.previous = Some((at, now));
        sample
    }

    /// The top channels by publication rate (offsets gained since the last sample, within one
    /// epoch), then subscribers; remembers every channel's position for the next sample.
    fn busiest(
        &mut self,
        channels: &[ChannelSummary],
        elapsed: Option<Duration>,
    ) -> Vec<ChannelRate> {
        let secs = elapsed.map_or(0.0, |e| e.as_secs_f64());
        let mut rows: Vec<ChannelRate> = channels
            .iter()
            .map(|c| {
                let gained = match self.offsets.get(&c.channel) {
                    Some((epoch, offset)) if *epoch == c.epoch => c.offset.saturating_sub(*offset),
                    _ => 0,
                };
                let rate = if secs > 0.0 {
                    gained as f64 / secs
                } else {
                    0.0
                };
                ChannelRate {
                    channel: c.channel.clone(),
                    subscribers: c.subscribers,
                    rate,
                    offset: c.offset,
                }
            })
            .collect();
        self.offsets = channels
            .iter()
            .map(|c| (c.channel.clone(), (c.epoch.clone(), c.offset)))
            .collect();
        rows.sort_by(|a, b| {
            b.rate
                .total_cmp(&a.rate)
                .then(b.subscribers.cmp(&a.subscribers))
                .then_with(|| a.channel.cmp(&b.channel))
        });
        rows.truncate(BUSIEST);
        rows
    }
}

/// Counts an open stream in `Metrics::stats_streams` for as long as it lives.
#[derive(Debug)]
struct StreamSlot(Arc<Metrics>);

impl StreamSlot {
    fn take(metrics: Arc<Metrics>) -> Option<Self> {
        let open = metrics.stats_streams.fetch_add(1, Ordering::Relaxed);
        let slot = Self(metrics);
        (open < MAX_STREAMS).then_some(slot)
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.0.stats_streams.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Open without an `api_key`; with one, the request must carry it as a bearer token.
fn authorize(state: &AppState, headers: &HeaderMap) -> Result<(), &'static str> {
    let Some(key) = state.config.api_key.as_deref() else {
        return Ok(());
    };
    match bearer(headers) {
        Some(given) if constant_time_eq(given.as_bytes(), key.as_bytes()) => Ok(()),
        Some(_) => Err("wrong API key"),
        None => Err("missing Authorization: Bearer <api key>"),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn refusal(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({"error": {"code": code, "message": message}});
    (status, Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channel(name: &str, epoch: &str, offset: u64, subscribers: usize) -> ChannelSummary {
        ChannelSummary {
            channel: name.to_owned(),
            subscribers,
            epoch: epoch.to_owned(),
            offset,
        }
    }

    #[test]
    fn first_sample_has_no_rates_then_rates_per_second() {
        let mut sampler = Sampler::default();
        let first = sampler.sample(Snapshot::default(), &[]);
        assert!(first.rates.is_none());
        assert_eq!(first.interval, 0.0);
        let later = Snapshot {
            messages_out: 10,
            ..Snapshot::default()
        };
        let second = sampler.sample(later, &[]);
        let rates = second.rates.unwrap();
        assert!(rates.messages_out > 0.0);
        assert!(second.interval > 0.0);
    }

    #[test]
    fn busiest_channels_rank_by_rate_within_an_epoch() {
        let mut sampler = Sampler::default();
        let before = [
            channel("quiet", "e1", 5, 9),
            channel("busy", "e1", 10, 1),
            channel("restarted", "e1", 100, 1),
        ];
        sampler.busiest(&before, None);
        let after = [
            channel("quiet", "e1", 5, 9),
            channel("busy", "e1", 30, 1),
            channel("restarted", "e2", 3, 1),
            channel("new", "e3", 1, 0),
        ];
        let rows = sampler.busiest(&after, Some(Duration::from_secs(2)));
        let names: Vec<&str> = rows.iter().map(|r| r.channel.as_str()).collect();
        assert_eq!(names, ["busy", "quiet", "restarted", "new"]);
        assert_eq!(rows[0].rate, 10.0);
        assert_eq!(rows[2].rate, 0.0, "a new epoch is not a burst of offsets");
    }

    #[test]
    fn events_are_one_json_line() {
        let mut sampler = Sampler::default();
        let sample = sampler.sample(Snapshot::default(), &[channel("a", "e", 1, 1)]);
        let text = event(7, &sample);
        assert!(text.starts_with("id: 7\nevent: stats\ndata: {"));
        assert!(text.ends_with("}\n\n"));
        assert_eq!(text.lines().count(), 4);
    }

    #[test]
    fn streams_are_bounded() {
        let metrics = Arc::new(Metrics::default());
        let slots: Vec<_> = (0..MAX_STREAMS)
            .map(|_| StreamSlot::take(Arc::clone(&metrics)).unwrap())
            .collect();
        assert!(StreamSlot::take(Arc::clone(&metrics)).is_none());
        drop(slots);
        assert_eq!(metrics.stats_streams.load(Ordering::Relaxed), 0);
        assert!(StreamSlot::take(metrics).is_some());
    }
}
