//! Broadcast mode: subscribers connect, then publishers; every message a publisher sends must
//! reach every subscriber, intact and in order. Latency is from the send (stamped in the
//! message) to each receive.
//!
//! Subscribers listen on a raw broadcast endpoint, or with `--channel` on `ripple serve`'s
//! channel protocol over WebSocket (`/ws`), Server-Sent Events (`/sse`) or long-polling
//! (`/poll`) (`--transport`); publishers always publish over WebSocket. On a channel every
//! delivery also carries the server's offset, which must grow by one from the subscription's
//! start: no gap (loss), no repeat.
//!
//! Each publisher keeps at most `pipeline` messages that not every subscriber has received
//! yet: a ring of counters, one per message in that window, counts the subscribers still
//! missing it, and the last one returns the window's permit. A subscriber receives one
//! publisher's messages in order, so they complete in order and a slot is free again by the
//! time its sequence number comes round. With `--rate`, publishers also keep to a schedule.

use std::sync::Arc;
use std::sync::atomic::Ordering::{AcqRel, Relaxed};
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize};
use std::time::Duration;

use futures_util::SinkExt;
use ripple::{Message, Reader, WebSocket, Writer};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep, sleep_until, timeout, timeout_at};

use super::connections::close_all;
use super::output::{Progress, Report};
use super::payload::{SYNC, Stamp, broadcast_message};
use super::procfs::CpuMark;
use super::schedule::{Pacer, Schedule};
use super::stats::{Counter, Errors, Latencies};
use super::subscriber::{JoinGate, http_subscriber, join_channel, ws_subscriber};
use super::{Live, Plan, Transport, follow, seconds_between};
use crate::failure::describe_failure;

/// How long deliveries may take after the last publish.
const DRAIN: Duration = Duration::from_secs(5);
/// A publisher whose window stays full this long has stalled.
const STALL: Duration = Duration::from_secs(10);
/// How long the server may take to register every subscriber.
pub(super) const SYNC_WAIT: Duration = Duration::from_secs(10);
/// How long opening every SSE or long-poll subscriber may take.
const JOIN_WAIT: Duration = Duration::from_secs(60);
/// Deliveries a subscriber counts before it tells the progress bar.
pub(super) const TALLY: u64 = 64;
/// Handshakes (or HTTP subscriptions) in flight while opening the connections.
const OPEN_CONCURRENCY: usize = 64;

/// What the publishers' windows need.
struct Window {
    /// Subscribers still missing each message in flight, by sequence number modulo the window.
    missing: Vec<AtomicU32>,
    permits: Semaphore,
}

/// What every task shares.
pub(super) struct Shared {
    pub(super) epoch: Instant,
    /// Messages sent at or after this (nanoseconds since `epoch`) are measured.
    pub(super) measure_from_ns: AtomicU64,
    windows: Vec<Window>,
    pub(super) subscribers: u32,
    pub(super) size: usize,
    pub(super) text: bool,
    /// The channel of `ripple serve`'s protocol, when not on a raw broadcast endpoint.
    pub(super) channel: Option<String>,
    /// Subscribers that have seen the sync message.
    pub(super) ready: AtomicUsize,
    pub(super) latencies: Latencies,
    pub(super) deliveries: Counter,
    pub(super) published: Counter,
    pub(super) foreign: Counter,
    pub(super) errors: Errors,
    pub(super) last_delivery_ns: AtomicU64,
}

/// Runs broadcast mode.
pub(super) async fn run(plan: &Plan) -> anyhow::Result<Report> {
    let progress = Progress::new(plan.show_progress, 0);
    let shared = Arc::new(new_shared(plan));
    let (finish, finished) = watch::channel(false);
    let mut subscriber_tasks = JoinSet::new();
    let opening = Subscribing {
        plan,
        progress: &progress,
        shared: &shared,
        finished: &finished,
    };
    let opened = match plan.transport {
        Transport::Ws => opening.websockets(&mut subscriber_tasks).await,
        Transport::Sse | Transport::Poll => opening.http(&mut subscriber_tasks).await,
    };
    if let Err(err) = opened {
        progress.finish();
        return Err(err);
    }
    let publishers = plan
        .opener(&progress, OPEN_CONCURRENCY)
        .open(plan.publishers, None, None)
        .await;
    if let Some(why) = publishers.failures.first() {
        progress.finish();
        anyhow::bail!("{} publisher connections failed: {why}", publishers.failed);
    }
    let mut publisher_sockets = publishers.sockets;
    sync(&mut publisher_sockets, &shared, plan.subscribers).await?;

    let schedule = Arc::new(Schedule::start(plan.warmup, plan.duration, plan.count));
    let measure_from = schedule
        .measure_from
        .saturating_duration_since(shared.epoch);
    shared.measure_from_ns.store(nanos(measure_from), Relaxed);
    let pacer = plan.rate.map(|rate| {
        let start = Instant::now();
        Pacer::new(start, rate / plan.publishers as f64)
    });
    let mut publisher_tasks = JoinSet::new();
    for (index, ws) in publisher_sockets.into_iter().enumerate() {
        let task = publisher(index, ws, Arc::clone(&shared), Arc::clone(&schedule), pacer);
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
        transport: plan.channel.is_some().then(|| plan.transport.name()),
        publish_rate: plan.rate,
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

/// Opening the subscribers and starting their tasks.
struct Subscribing<'a> {
    plan: &'a Plan,
    progress: &'a Progress,
    shared: &'a Arc<Shared>,
    finished: &'a watch::Receiver<bool>,
}

type Subscribers = JoinSet<Option<(Reader, Writer)>>;

impl Subscribing<'_> {
    /// WebSocket subscribers: all connections first, then (on a channel) one `subscribe` each.
    async fn websockets(&self, tasks: &mut Subscribers) -> anyhow::Result<()> {
        let opener = self.plan.opener(self.progress, OPEN_CONCURRENCY);
        let opened = opener.open(self.plan.subscribers, None, None).await;
        if let Some(why) = opened.failures.first() {
            anyhow::bail!("{} subscriber connections failed: {why}", opened.failed);
        }
        for (index, mut ws) in opened.sockets.into_iter().enumerate() {
            let start = match &self.plan.channel {
                Some(channel) => Some(join_channel(&mut ws, channel).await?),
                None => None,
            };
            let shared = Arc::clone(self.shared);
            tasks.spawn(ws_subscriber(
                index,
                ws,
                start,
                shared,
                self.finished.clone(),
            ));
        }
        Ok(())
    }

    /// SSE or long-poll subscribers: each task opens its connection and subscribes (at most
    /// [`OPEN_CONCURRENCY`] at a time), then reports; this waits for every report.
    async fn http(&self, tasks: &mut Subscribers) -> anyhow::Result<()> {
        let (Some(http), Some(channel)) = (&self.plan.http, &self.plan.channel) else {
            anyhow::bail!("--transport sse and poll need --channel and a ws:// URL");
        };
        let encoded: String = url::form_urlencoded::byte_serialize(channel.as_bytes()).collect();
        let query: Arc<str> = Arc::from(format!("channel={encoded}"));
        let gate = Arc::new(Semaphore::new(OPEN_CONCURRENCY));
        let (reports, mut joined) = mpsc::unbounded_channel();
        let n = self.plan.subscribers;
        for index in 0..n {
            let task = http_subscriber(
                index,
                self.plan.transport,
                Arc::clone(http),
                Arc::clone(&query),
                Arc::clone(self.shared),
                JoinGate {
                    gate: Arc::clone(&gate),
                    reports: reports.clone(),
                },
                self.finished.clone(),
            );
            tasks.spawn(task);
        }
        drop(reports);
        self.progress.set_length(n as u64);
        let give_up = Instant::now() + JOIN_WAIT;
        let (mut done, mut failed, mut first_failure) = (0, 0u64, None);
        while done < n {
            let report = timeout_at(give_up, joined.recv()).await.map_err(|_| {
                anyhow::anyhow!("only {done} of {n} subscribers were set up within {JOIN_WAIT:?}")
            })?;
            match report {
                Some(Ok(())) => {}
                Some(Err(why)) => {
                    failed += 1;
                    first_failure.get_or_insert(why);
                }
                None => break,
            }
            done += 1;
            self.progress
                .update(done as u64, format!("{done}/{n} subscribers"));
        }
        if let Some(why) = first_failure {
            anyhow::bail!("{failed} subscribers failed: {why}");
        }
        Ok(())
    }
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

    /// How many publishers there are.
    pub(super) fn publishers(&self) -> usize {
        self.windows.len()
    }

    pub(super) fn now_ns(&self) -> u64 {
        nanos(self.epoch.elapsed())
    }

    /// One subscriber received `seq` of `publisher`: the window's slot has one fewer to wait for.
    pub(super) fn delivered(&self, publisher: usize, seq: u64) {
        let window = &self.windows[publisher];
        let slot = &window.missing[(seq % window.missing.len() as u64) as usize];
        if slot.fetch_sub(1, AcqRel) == 1 {
            window.permits.add_permits(1);
        }
    }
}

/// One publisher: keeps its window full (and, with a pacer, to its schedule); reads (and
/// drops) what the server sends it.
async fn publisher(
    index: usize,
    ws: WebSocket,
    shared: Arc<Shared>,
    schedule: Arc<Schedule>,
    pacer: Option<Pacer>,
) -> Option<(Reader, Writer)> {
    let (mut reader, mut writer) = ws.split();
    let window = &shared.windows[index];
    let publisher = u32::try_from(index).unwrap_or(u32::MAX);
    let sending = async {
        let mut seq = 0u64;
        loop {
            if let Some(pacer) = &pacer {
                sleep_until(pacer.wake_at(seq)).await;
            }
            let Ok(Ok(permit)) = timeout(STALL, window.permits.acquire()).await else {
                return Err(format!("subscribers fell {STALL:?} behind"));
            };
            permit.forget();
            let now = Instant::now();
            // Messages whose time has come (with a pacer), as many as the window allows.
            let due = pacer.map_or(u64::MAX, |p| p.due(seq, now).max(1));
            let extra = (window.permits.available_permits() as u64).min(due - 1);
            if let Ok(more) = window.permits.try_acquire_many(extra as u32) {
                more.forget();
            }
            let want = 1 + extra;
            let granted = schedule.claim(now, want);
            window.permits.add_permits((want - granted) as usize);
            if granted == 0 {
                break;
            }
            let mut measured = 0;
            for _ in 0..granted {
                let slot = &window.missing[(seq % window.missing.len() as u64) as usize];
                slot.store(shared.subscribers, Relaxed);
                // Paced: a message held back by a full window counts from when it was due.
                let sent = pacer.map_or(now, |p| p.stamp(seq, now));
                measured += u64::from(schedule.measured(sent));
                let stamp = Stamp {
                    publisher,
                    seq,
                    sent_ns: nanos(sent.saturating_duration_since(shared.epoch)),
                };
                let text = broadcast_message(stamp, shared.size);
                writer
                    .feed(shared.message(text))
                    .await
                    .map_err(|e| describe_failure(&e))?;
                seq += 1;
            }
            shared.published.add(measured);
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
