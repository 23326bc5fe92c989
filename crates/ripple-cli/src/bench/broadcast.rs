//! Broadcast mode: subscribers connect, then publishers; every message a publisher sends must
//! reach every subscriber, intact and in order. Latency is from the send (stamped in the
//! message) to each receive.
//!
//! Each publisher keeps at most `pipeline` messages that not every subscriber has received
//! yet: a ring of counters, one per message in that window, counts the subscribers still
//! missing it, and the last one returns the window's permit. A subscriber receives one
//! publisher's messages in order, so they complete in order and a slot is free again by the
//! time its sequence number comes round.

use std::sync::Arc;
use std::sync::atomic::Ordering::{AcqRel, Relaxed};
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize};
use std::time::Duration;

use futures_util::SinkExt;
use ripple::{Message, Reader, WebSocket, Writer};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep, sleep_until, timeout};

use super::connections::close_all;
use super::output::{Progress, Report};
use super::payload::{Received, SYNC, Stamp, broadcast_message, parse_broadcast};
use super::procfs::CpuMark;
use super::schedule::Schedule;
use super::stats::{Counter, Errors, Latencies};
use super::{Live, Plan, follow, seconds_between};
use crate::failure::describe_failure;

/// How long deliveries may take after the last publish.
const DRAIN: Duration = Duration::from_secs(5);
/// A publisher whose window stays full this long has stalled.
const STALL: Duration = Duration::from_secs(10);
/// How long the server may take to register every subscriber.
const SYNC_WAIT: Duration = Duration::from_secs(10);
/// Deliveries a subscriber counts before it tells the progress bar.
const TALLY: u64 = 64;
/// Handshakes in flight while opening the connections.
const OPEN_CONCURRENCY: usize = 64;

/// What the publishers' windows need.
struct Window {
    /// Subscribers still missing each message in flight, by sequence number modulo the window.
    missing: Vec<AtomicU32>,
    permits: Semaphore,
}

/// What every task shares.
struct Shared {
    epoch: Instant,
    /// Messages sent at or after this (nanoseconds since `epoch`) are measured.
    measure_from_ns: AtomicU64,
    windows: Vec<Window>,
    subscribers: u32,
    size: usize,
    text: bool,
    /// The channel of `ripple serve`'s protocol, when not on a raw broadcast endpoint.
    channel: Option<String>,
    /// Subscribers that have seen the sync message.
    ready: AtomicUsize,
    latencies: Latencies,
    deliveries: Counter,
    published: Counter,
    foreign: Counter,
    errors: Errors,
    last_delivery_ns: AtomicU64,
}

/// Runs broadcast mode.
pub(super) async fn run(plan: &Plan) -> anyhow::Result<Report> {
    let progress = Progress::new(plan.show_progress, 0);
    let opener = plan.opener(&progress, OPEN_CONCURRENCY);
    let subscribers = opener.open(plan.subscribers, None, None).await;
    let publishers = opener.open(plan.publishers, None, None).await;
    if let Some(why) = subscribers
        .failures
        .iter()
        .chain(&publishers.failures)
        .next()
    {
        progress.finish();
        anyhow::bail!(
            "{} connections failed: {why}",
            subscribers.failed + publishers.failed
        );
    }
    let mut subscriber_sockets = subscribers.sockets;
    if let Some(channel) = &plan.channel {
        for ws in &mut subscriber_sockets {
            join_channel(ws, channel).await?;
        }
    }
    let shared = Arc::new(new_shared(plan));
    let (finish, finished) = watch::channel(false);
    let mut subscriber_tasks = JoinSet::new();
    for (index, ws) in subscriber_sockets.into_iter().enumerate() {
        subscriber_tasks.spawn(subscriber(index, ws, Arc::clone(&shared), finished.clone()));
    }
    let mut publisher_sockets = publishers.sockets;
    sync(&mut publisher_sockets, &shared, plan.subscribers).await?;

    let schedule = Arc::new(Schedule::start(plan.warmup, plan.duration, plan.count));
    let measure_from = schedule
        .measure_from
        .saturating_duration_since(shared.epoch);
    shared.measure_from_ns.store(nanos(measure_from), Relaxed);
    let mut publisher_tasks = JoinSet::new();
    for (index, ws) in publisher_sockets.into_iter().enumerate() {
        let task = publisher(index, ws, Arc::clone(&shared), Arc::clone(&schedule));
        publisher_tasks.spawn(task);
    }
    sleep_until(schedule.measure_from).await;
    let cpu_start = CpuMark::now(plan.server_pid);
    let live = Live {
        schedule: &schedule,
        count: plan.count.map(|c| c * plan.subscribers as u64),
        messages: &shared.deliveries,
        errors: &shared.errors,
    };
    let mut halves: Vec<_> = follow(&mut publisher_tasks, &progress, &live)
        .await
        .into_iter()
        .flatten()
        .collect();
    drain(&shared).await;
    let cpu = cpu_start.since(CpuMark::now(plan.server_pid));
    let _ = finish.send(true);
    while let Some(joined) = subscriber_tasks.join_next().await {
        halves.extend(joined.ok().flatten());
    }
    close_all(halves).await;
    Ok(report(plan, &shared, schedule.measure_from, cpu))
}

fn new_shared(plan: &Plan) -> Shared {
    let window = || Window {
        missing: (0..plan.pipeline).map(|_| AtomicU32::new(0)).collect(),
        permits: Semaphore::new(plan.pipeline),
    };
    Shared {
        epoch: Instant::now(),
        measure_from_ns: AtomicU64::new(u64::MAX),
        windows: (0..plan.publishers).map(|_| window()).collect(),
        subscribers: u32::try_from(plan.subscribers).unwrap_or(u32::MAX),
        size: plan.size,
        text: !plan.binary,
        channel: plan.channel.clone(),
        ready: AtomicUsize::new(0),
        latencies: Latencies::new(),
        deliveries: Counter::default(),
        published: Counter::default(),
        foreign: Counter::default(),
        errors: Errors::default(),
        last_delivery_ns: AtomicU64::new(0),
    }
}

fn report(
    plan: &Plan,
    shared: &Shared,
    measure_from: Instant,
    cpu: (Option<Duration>, Option<Duration>),
) -> Report {
    let deliveries = shared.deliveries.get();
    let last = shared.epoch + Duration::from_nanos(shared.last_delivery_ns.load(Relaxed));
    let seconds = if deliveries > 0 {
        seconds_between(measure_from, last)
    } else {
        0.0
    };
    let rate = if seconds > 0.0 {
        deliveries as f64 / seconds
    } else {
        0.0
    };
    let mut report = Report {
        connections: plan.subscribers + plan.publishers,
        pipeline: Some(plan.pipeline),
        size: Some(plan.size),
        binary: Some(plan.binary),
        publishers: Some(plan.publishers),
        subscribers: Some(plan.subscribers),
        duration_secs: seconds,
        messages: deliveries,
        messages_per_sec: rate,
        mb_per_sec: rate * plan.size as f64 / 1e6,
        published: Some(shared.published.get()),
        latency_us: shared.latencies.summary(),
        errors: shared.errors.count(),
        error_samples: shared.errors.samples(),
        foreign_messages: Some(shared.foreign.get()),
        ..plan.report("broadcast")
    };
    report.set_cpu(cpu, deliveries, false);
    report
}

/// Sends the sync message from the first publisher until every subscriber has seen one:
/// then the server has registered them all.
async fn sync(
    publishers: &mut [WebSocket],
    shared: &Shared,
    subscribers: usize,
) -> anyhow::Result<()> {
    let Some(first) = publishers.first_mut() else {
        return Ok(());
    };
    let give_up = Instant::now() + SYNC_WAIT;
    while shared.ready.load(Relaxed) < subscribers {
        if Instant::now() >= give_up {
            anyhow::bail!(
                "only {} of {subscribers} subscribers received a published message within \
                 {SYNC_WAIT:?}: is this a broadcast endpoint?",
                shared.ready.load(Relaxed)
            );
        }
        first
            .send(shared.message(SYNC.to_owned()))
            .await
            .map_err(|err| anyhow::anyhow!("publisher: {}", describe_failure(&err)))?;
        sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// Waits until every message in flight reached every subscriber, or [`DRAIN`]; counts the
/// deliveries still missing as errors.
async fn drain(shared: &Shared) {
    let give_up = Instant::now() + DRAIN;
    let complete = |w: &Window| w.permits.available_permits() == w.missing.len();
    while !shared.windows.iter().all(complete) && Instant::now() < give_up {
        sleep(Duration::from_millis(5)).await;
    }
    let missing: u64 = shared
        .windows
        .iter()
        .flat_map(|w| &w.missing)
        .map(|m| u64::from(m.load(Relaxed)))
        .sum();
    if missing > 0 {
        shared.errors.add(
            missing,
            format!("{missing} deliveries missing {DRAIN:?} after the last publish"),
        );
    }
}

impl Shared {
    fn message(&self, text: String) -> Message {
        if let Some(channel) = &self.channel {
            // The payload is plain ASCII without quotes or backslashes: no JSON escaping needed.
            return Message::from(format!(
                r#"{{"type":"publish","channel":"{channel}","data":"{text}"}}"#
            ));
        }
        if self.text {
            Message::from(text)
        } else {
            Message::from(text.into_bytes())
        }
    }

    fn now_ns(&self) -> u64 {
        nanos(self.epoch.elapsed())
    }

    /// One subscriber received `seq` of `publisher`: the window's slot has one fewer to wait for.
    fn delivered(&self, publisher: usize, seq: u64) {
        let window = &self.windows[publisher];
        let slot = &window.missing[(seq % window.missing.len() as u64) as usize];
        if slot.fetch_sub(1, AcqRel) == 1 {
            window.permits.add_permits(1);
        }
    }
}

/// One subscriber: checks that each publisher's messages arrive in order and intact.
async fn subscriber(
    index: usize,
    ws: WebSocket,
    shared: Arc<Shared>,
    mut finished: watch::Receiver<bool>,
) -> Option<(Reader, Writer)> {
    let (mut reader, writer) = ws.split();
    let mut next = vec![0u64; shared.windows.len()];
    let mut recorder = shared.latencies.recorder();
    let mut synced = false;
    let mut tally = 0u64;
    loop {
        let received = tokio::select! {
            biased;
            _ = finished.changed() => break,
            received = reader.recv() => received,
        };
        let message = match received {
            Ok(Some(message)) => message,
            Ok(None) => {
                shared.errors.add(
                    1,
                    format!("subscriber {index}: the server closed the connection"),
                );
                return None;
            }
            Err(err) => {
                shared
                    .errors
                    .add(1, format!("subscriber {index}: {}", describe_failure(&err)));
                return None;
            }
        };
        let payload = match &shared.channel {
            Some(_) => message_data(message.as_bytes()),
            None => Some(message.as_bytes()),
        };
        let Some(payload) = payload else {
            shared.foreign.add(1);
            continue;
        };
        let stamp = match parse_broadcast(payload, shared.size) {
            Received::Stamped(stamp) if (stamp.publisher as usize) < next.len() => stamp,
            Received::Sync if !synced => {
                synced = true;
                shared.ready.fetch_add(1, Relaxed);
                continue;
            }
            Received::Corrupt => {
                shared
                    .errors
                    .add(1, format!("subscriber {index}: corrupted message"));
                continue;
            }
            Received::Sync => continue,
            Received::Stamped(_) | Received::Foreign => {
                shared.foreign.add(1);
                continue;
            }
        };
        if let Err(why) = accept(&shared, &mut next, stamp) {
            shared
                .errors
                .add(why.0, format!("subscriber {index}: {}", why.1));
        }
        let now_ns = shared.now_ns();
        if stamp.sent_ns >= shared.measure_from_ns.load(Relaxed) {
            recorder.record(Duration::from_nanos(now_ns.saturating_sub(stamp.sent_ns)));
            shared.last_delivery_ns.fetch_max(now_ns, Relaxed);
            tally += 1;
            if tally == TALLY {
                shared.deliveries.add(tally);
                tally = 0;
            }
        }
    }
    shared.deliveries.add(tally);
    Some((reader, writer))
}

/// Checks the order of one delivery and frees the publisher's window; a gap is loss.
fn accept(shared: &Shared, next: &mut [u64], stamp: Stamp) -> Result<(), (u64, String)> {
    let publisher = stamp.publisher as usize;
    let expected = next[publisher];
    if stamp.seq < expected {
        return Err((
            1,
            format!(
                "publisher {publisher} message {} again or out of order",
                stamp.seq
            ),
        ));
    }
    for lost in expected..stamp.seq {
        shared.delivered(publisher, lost);
    }
    shared.delivered(publisher, stamp.seq);
    next[publisher] = stamp.seq + 1;
    match stamp.seq - expected {
        0 => Ok(()),
        gap => Err((
            gap,
            format!(
                "lost {gap} messages of publisher {publisher} before {}",
                stamp.seq
            ),
        )),
    }
}

/// One publisher: keeps its window full; reads (and drops) what the server sends it.
async fn publisher(
    index: usize,
    ws: WebSocket,
    shared: Arc<Shared>,
    schedule: Arc<Schedule>,
) -> Option<(Reader, Writer)> {
    let (mut reader, mut writer) = ws.split();
    let window = &shared.windows[index];
    let publisher = u32::try_from(index).unwrap_or(u32::MAX);
    let sending = async {
        let mut seq = 0u64;
        loop {
            let Ok(Ok(permit)) = timeout(STALL, window.permits.acquire()).await else {
                return Err(format!("subscribers fell {STALL:?} behind"));
            };
            permit.forget();
            let extra = window.permits.available_permits();
            if let Ok(more) = window.permits.try_acquire_many(extra as u32) {
                more.forget();
            }
            let want = 1 + extra as u64;
            let now = Instant::now();
            let granted = schedule.claim(now, want);
            window.permits.add_permits((want - granted) as usize);
            if granted == 0 {
                break;
            }
            let sent_ns = nanos(now - shared.epoch);
            for _ in 0..granted {
                let slot = &window.missing[(seq % window.missing.len() as u64) as usize];
                slot.store(shared.subscribers, Relaxed);
                let stamp = Stamp {
                    publisher,
                    seq,
                    sent_ns,
                };
                let text = broadcast_message(stamp, shared.size);
                writer
                    .feed(shared.message(text))
                    .await
                    .map_err(|e| describe_failure(&e))?;
                seq += 1;
            }
            if schedule.measured(now) {
                shared.published.add(granted);
            }
            writer.flush().await.map_err(|e| describe_failure(&e))?;
        }
        Ok::<(), String>(())
    };
    let draining = async {
        loop {
            match reader.recv().await {
                Ok(Some(_)) => {}
                Ok(None) => return "the server closed the connection".to_owned(),
                Err(err) => return describe_failure(&err),
            }
        }
    };
    let outcome = tokio::select! {
        sent = sending => sent,
        why = draining => Err(why),
    };
    match outcome {
        Ok(()) => Some((reader, writer)),
        Err(why) => {
            shared.errors.add(1, format!("publisher {index}: {why}"));
            None
        }
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Subscribes to `channel` on `ripple serve`'s /ws and waits for the `subscribed` reply.
async fn join_channel(ws: &mut WebSocket, channel: &str) -> anyhow::Result<()> {
    let command = format!(r#"{{"type":"subscribe","channel":"{channel}"}}"#);
    ws.send(Message::from(command))
        .await
        .map_err(|e| anyhow::anyhow!("subscribe: {}", describe_failure(&e)))?;
    let give_up = Instant::now() + SYNC_WAIT;
    loop {
        let reply = timeout(give_up.saturating_duration_since(Instant::now()), ws.recv())
            .await
            .map_err(|_| {
                anyhow::anyhow!(
                    "no `subscribed` reply within {SYNC_WAIT:?}: is this `ripple serve`'s /ws?"
                )
            })?
            .map_err(|e| anyhow::anyhow!("subscribe: {}", describe_failure(&e)))?;
        let Some(reply) = reply else {
            anyhow::bail!("the server closed the connection instead of subscribing");
        };
        let text = reply.as_bytes();
        if find(text, br#""type":"subscribed""#) {
            return Ok(());
        }
        if find(text, br#""type":"error""#) {
            anyhow::bail!("subscribe refused: {}", String::from_utf8_lossy(text));
        }
    }
}

/// The `data` string of a `message` push; `None` for anything else (replies, presence).
fn message_data(push: &[u8]) -> Option<&[u8]> {
    if !push.starts_with(br#"{"type":"message""#) {
        return None;
    }
    let key = br#""data":""#;
    let start = push.windows(key.len()).position(|w| w == key)? + key.len();
    let len = push[start..].iter().position(|&b| b == b'"')?;
    Some(&push[start..start + len])
}

fn find(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_data_finds_the_payload() {
        let push =
            br#"{"type":"message","channel":"b","offset":3,"epoch":"e","data":"~rb:1~..","ts":1}"#;
        assert_eq!(message_data(push), Some(&b"~rb:1~.."[..]));
        assert_eq!(message_data(br#"{"type":"published","offset":3}"#), None);
    }
}
