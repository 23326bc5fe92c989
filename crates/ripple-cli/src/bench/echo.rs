//! Echo mode: every connection keeps `pipeline` messages in flight and checks each echo
//! (type, length, sequence, payload) in order. Latency is send (queued) to echo received.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::time::Duration;

use futures_util::SinkExt;
use ripple::{Reader, WebSocket, Writer};
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep_until, timeout};

use super::connections::close_all;
use super::output::{Progress, Report};
use super::payload::EchoPayloads;
use super::procfs::CpuMark;
use super::schedule::Schedule;
use super::stats::{Counter, Errors, Latencies};
use super::{Live, Plan, follow, seconds_between};
use crate::failure::describe_failure;

/// How long echoes may take to come back after the last send.
const DRAIN: Duration = Duration::from_secs(5);
/// A connection with messages in flight and no echo for this long has stalled.
const STALL: Duration = Duration::from_secs(10);
/// Echoes a connection counts before it tells the progress bar.
const TALLY: u64 = 64;
/// Handshakes in flight while opening the connections.
const OPEN_CONCURRENCY: usize = 64;

/// What every connection task shares.
struct Shared {
    schedule: Schedule,
    latencies: Latencies,
    messages: Counter,
    errors: Errors,
    pipeline: usize,
    /// One ring of messages for every connection: fewer bytes to keep in cache.
    payloads: EchoPayloads,
}

/// What a connection task hands back.
struct End {
    halves: Option<(Reader, Writer)>,
    /// When its last measured echo arrived.
    last_echo: Option<Instant>,
}

/// Runs echo mode.
pub(super) async fn run(plan: &Plan) -> anyhow::Result<Report> {
    let progress = Progress::new(plan.show_progress, plan.connections as u64);
    let opened = plan
        .opener(&progress, OPEN_CONCURRENCY)
        .open(plan.connections, None, None)
        .await;
    if let Some(why) = opened.failures.first() {
        progress.finish();
        anyhow::bail!(
            "{} of {} connections failed: {why}",
            opened.failed,
            plan.connections
        );
    }
    let shared = Arc::new(Shared {
        schedule: Schedule::start(plan.warmup, plan.duration, plan.count),
        latencies: Latencies::new(),
        messages: Counter::default(),
        errors: Errors::default(),
        pipeline: plan.pipeline,
        payloads: EchoPayloads::new(plan.size, !plan.binary, plan.pipeline, plan.verify),
    });
    let mut tasks = JoinSet::new();
    for (index, ws) in opened.sockets.into_iter().enumerate() {
        tasks.spawn(connection(index, ws, Arc::clone(&shared)));
    }
    sleep_until(shared.schedule.measure_from).await;
    let cpu_start = CpuMark::now(plan.server_pid);
    let live = Live {
        schedule: &shared.schedule,
        count: plan.count,
        messages: &shared.messages,
        errors: &shared.errors,
    };
    let ends = follow(&mut tasks, &progress, &live).await;
    let cpu = cpu_start.since(CpuMark::now(plan.server_pid));
    let last_echo = ends.iter().filter_map(|end| end.last_echo).max();
    close_all(ends.into_iter().filter_map(|end| end.halves).collect()).await;
    Ok(report(plan, &shared, last_echo, cpu))
}

fn report(
    plan: &Plan,
    shared: &Shared,
    last_echo: Option<Instant>,
    cpu: (Option<Duration>, Option<Duration>),
) -> Report {
    let messages = shared.messages.get();
    let seconds = last_echo.map_or(0.0, |end| {
        seconds_between(shared.schedule.measure_from, end)
    });
    let rate = if seconds > 0.0 {
        messages as f64 / seconds
    } else {
        0.0
    };
    let mut report = Report {
        connections: plan.connections,
        pipeline: Some(plan.pipeline),
        size: Some(plan.size),
        binary: Some(plan.binary),
        duration_secs: seconds,
        messages,
        messages_per_sec: rate,
        mb_per_sec: rate * plan.size as f64 / 1e6,
        latency_us: shared.latencies.summary(),
        errors: shared.errors.count(),
        error_samples: shared.errors.samples(),
        ..plan.report("echo")
    };
    report.set_cpu(cpu, messages, false);
    report
}

/// One connection: a sender that keeps the window full and a receiver that checks each echo,
/// taking turns on one task. (The state they share is atomic only so that the task is `Send`;
/// nothing else touches it.)
async fn connection(index: usize, ws: WebSocket, shared: Arc<Shared>) -> End {
    let (mut reader, mut writer) = ws.split();
    let payloads = &shared.payloads;
    let window = Semaphore::new(shared.pipeline);
    let epoch = Instant::now();
    // Send times (nanoseconds since `epoch`) of the messages in flight, by sequence number
    // modulo the window: a slot is reused only after its echo freed the window's permit.
    let sent_at: Vec<AtomicU64> = (0..shared.pipeline).map(|_| AtomicU64::new(0)).collect();
    let slot = |seq: u64| &sent_at[(seq % shared.pipeline as u64) as usize];
    let sent = AtomicU64::new(0);
    let echoed = AtomicU64::new(0);
    let measured = AtomicU64::new(0);
    let sender_done = AtomicBool::new(false);
    let wake = Notify::new();
    let schedule = &shared.schedule;
    let measure_from = nanos(schedule.measure_from.saturating_duration_since(epoch));

    let sending = async {
        loop {
            let permit = timeout(STALL, window.acquire())
                .await
                .map_err(|_| format!("no echo for {STALL:?}"))?;
            let Ok(permit) = permit else { break };
            permit.forget();
            let extra = window.available_permits();
            if let Ok(more) = window.try_acquire_many(extra as u32) {
                more.forget();
            }
            let want = 1 + extra as u64;
            let now = Instant::now();
            let granted = schedule.claim(now, want);
            window.add_permits((want - granted) as usize);
            if granted == 0 {
                break;
            }
            let now_ns = nanos(now - epoch);
            for _ in 0..granted {
                let seq = sent.load(Relaxed);
                slot(seq).store(now_ns, Relaxed);
                writer
                    .feed(payloads.message(seq))
                    .await
                    .map_err(|e| describe_failure(&e))?;
                sent.store(seq + 1, Relaxed);
            }
            writer.flush().await.map_err(|e| describe_failure(&e))?;
        }
        sender_done.store(true, Relaxed);
        wake.notify_one();
        Ok::<(), String>(())
    };

    let receiving = async {
        let mut recorder = shared.latencies.recorder();
        let mut last_echo = None;
        let mut drain_until = None;
        loop {
            let done = sender_done.load(Relaxed);
            if done {
                if echoed.load(Relaxed) == sent.load(Relaxed) {
                    break;
                }
                drain_until.get_or_insert_with(|| Instant::now() + DRAIN);
            }
            let received = tokio::select! {
                biased;
                received = reader.recv() => received,
                () = wake.notified(), if !done => continue,
                () = sleep_until(drain_until.unwrap_or_else(Instant::now)), if drain_until.is_some() => {
                    return Err(format!("echoes missing {DRAIN:?} after the last send"));
                }
            };
            let message = match received {
                Ok(Some(message)) => message,
                Ok(None) => return Err("the server closed the connection".into()),
                Err(err) => return Err(describe_failure(&err)),
            };
            let now = Instant::now();
            let seq = echoed.load(Relaxed);
            payloads.check(seq, &message)?;
            let sent_ns = slot(seq).load(Relaxed);
            if sent_ns >= measure_from {
                let now_ns = nanos(now - epoch);
                recorder.record(Duration::from_nanos(now_ns.saturating_sub(sent_ns)));
                last_echo = Some(now);
                let n = measured.fetch_add(1, Relaxed) + 1;
                if n.is_multiple_of(TALLY) {
                    shared.messages.add(TALLY);
                }
            }
            echoed.store(seq + 1, Relaxed);
            window.add_permits(1);
        }
        Ok(last_echo)
    };

    let outcome = tokio::try_join!(sending, receiving);
    shared.messages.add(measured.load(Relaxed) % TALLY);
    match outcome {
        Ok(((), last_echo)) => End {
            halves: Some((reader, writer)),
            last_echo,
        },
        Err(why) => {
            let lost = (sent.load(Relaxed) - echoed.load(Relaxed)).max(1);
            shared
                .errors
                .add(lost, format!("connection {index}: {why}"));
            End {
                halves: None,
                last_echo: None,
            }
        }
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
