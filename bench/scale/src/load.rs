//! The load: subscribers and publishers on `/ws`, spread round-robin over the nodes, all on one
//! channel. Each publication carries the time it was (meant to be) sent; each subscriber
//! records, per `message` push, how long it took to arrive.

use std::sync::Arc;
use std::time::Duration;

use hdrhistogram::Histogram;
use ripple::{ClientBuilder, MaybeTlsStream, Message, Reader, WebSocket};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::BoxError;
use crate::cluster::{Node, Redis};
use crate::cpu::Cpu;

/// How publishers pace themselves.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Pace {
    /// This many publications per second in total, on a fixed schedule (open loop: latency is
    /// measured from the scheduled time, so a stalled server cannot hide its backlog).
    Rate(u64),
    /// As fast as replies come back, with this many publications in flight per publisher.
    Window(usize),
}

/// One measured phase.
pub(crate) struct Outcome {
    /// Publications acknowledged.
    pub(crate) published: u64,
    /// Publications refused (`error` replies).
    pub(crate) refused: u64,
    /// `message` pushes received by all subscribers.
    pub(crate) deliveries: u64,
    /// Deliveries expected (publications × subscribers).
    pub(crate) expected: u64,
    /// From the first publication to the last delivery.
    pub(crate) elapsed: Duration,
    /// Publication → delivery, microseconds.
    pub(crate) latency: Histogram<u64>,
    /// CPU spent over the phase.
    pub(crate) cpu: Cpu,
    /// Redis's own time per script call (`INFO commandstats`, EVALSHA), microseconds.
    pub(crate) script_us: Option<f64>,
}

/// The process-wide clock publications are stamped with (started by `main`, before any
/// publication is scheduled).
pub(crate) fn clock() -> Instant {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *START.get_or_init(Instant::now)
}

/// Runs `subscribers` subscribers and `publishers` publishers on `channel` for `seconds`.
pub(crate) async fn phase(
    nodes: &[Node],
    channel: &str,
    subscribers: usize,
    publishers: usize,
    pace: Pace,
    seconds: Duration,
    redis: Option<&Redis>,
) -> Result<Outcome, BoxError> {
    let (target_tx, target) = watch::channel(None::<u64>);
    let mut readers = JoinSet::new();
    for i in 0..subscribers {
        let mut ws = open(&nodes[i % nodes.len()]).await?;
        request(
            &mut ws,
            &format!(r#"{{"type":"subscribe","channel":"{channel}"}}"#),
            "subscribed",
        )
        .await?;
        readers.spawn(read_messages(ws, target.clone()));
    }
    let mut writers = Vec::new();
    for i in 0..publishers {
        writers.push(open(&nodes[i % nodes.len()]).await?);
    }
    if let Some(redis) = redis {
        redis.command(&["CONFIG", "RESETSTAT"]).await?;
    }
    let before = Cpu::now(redis.map(Redis::pid));
    let started = Instant::now();
    let deadline = started + seconds;
    let mut sending = JoinSet::new();
    for (i, ws) in writers.into_iter().enumerate() {
        let per_publisher = match pace {
            Pace::Rate(total) => Pace::Rate((total / publishers as u64).max(1)),
            window => window,
        };
        sending.spawn(publish(ws, channel.to_owned(), per_publisher, deadline, i));
    }
    let (mut published, mut refused) = (0, 0);
    while let Some(done) = sending.join_next().await {
        let (ok, err) = done??;
        published += ok;
        refused += err;
    }
    let _ = target_tx.send(Some(published));
    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut deliveries = 0;
    let mut last = started;
    while let Some(done) = readers.join_next().await {
        let (count, histogram, at) = done?;
        deliveries += count;
        latency.add(histogram)?;
        last = last.max(at);
    }
    Ok(Outcome {
        published,
        refused,
        deliveries,
        expected: published * subscribers as u64,
        elapsed: last.duration_since(started),
        latency,
        cpu: Cpu::now(redis.map(Redis::pid)).since(&before),
        script_us: match redis {
            Some(redis) => script_usec_per_call(&redis.command(&["INFO", "commandstats"]).await?),
            None => None,
        },
    })
}

/// `usec_per_call` of EVALSHA in the text of `INFO commandstats`.
fn script_usec_per_call(info: &str) -> Option<f64> {
    let line = info.lines().find(|l| l.starts_with("cmdstat_evalsha:"))?;
    let field = line
        .split(',')
        .find_map(|f| f.strip_prefix("usec_per_call="))?;
    field.trim().parse().ok()
}

type Ws = WebSocket<MaybeTlsStream>;

/// A greeted `/ws` client without compression (the broker, not deflate, is measured).
async fn open(node: &Node) -> Result<Ws, BoxError> {
    let mut ws = ClientBuilder::new(node.ws_url())
        .config(ripple::Config::default().compression(None))
        .connect()
        .await?;
    expect(&mut ws, "authenticated").await?;
    Ok(ws)
}

async fn request(ws: &mut Ws, command: &str, reply: &str) -> Result<(), BoxError> {
    ws.send(command.to_owned()).await?;
    expect(ws, reply).await
}

/// Reads until a message of type `kind`.
async fn expect(ws: &mut Ws, kind: &str) -> Result<(), BoxError> {
    let needle = format!("\"type\":\"{kind}\"");
    loop {
        let received = tokio::time::timeout(Duration::from_secs(10), ws.recv()).await?;
        match received? {
            Some(Message::Text(text)) if text.as_str().contains(&needle) => return Ok(()),
            Some(_) => {}
            None => return Err(format!("closed while waiting for {kind}").into()),
        }
    }
}

/// Counts `message` pushes and their latency until the expected number arrived (once known),
/// or nothing came for 5 s.
async fn read_messages(
    ws: Ws,
    mut target: watch::Receiver<Option<u64>>,
) -> (u64, Histogram<u64>, Instant) {
    let (mut reader, _writer) = ws.split();
    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)
        .unwrap_or_else(|_| unreachable!("constant bounds are valid"));
    let mut count = 0;
    let mut last = Instant::now();
    loop {
        if target.borrow().is_some_and(|t| count >= t) {
            return (count, latency, last);
        }
        let next = tokio::select! {
            next = tokio::time::timeout(Duration::from_secs(5), reader.recv()) => next,
            _ = target.changed() => continue,
        };
        let Ok(Ok(Some(Message::Text(text)))) = next else {
            return (count, latency, last);
        };
        let Some(sent) = stamp(text.as_str()) else {
            continue;
        };
        last = Instant::now();
        let now = last.duration_since(clock()).as_micros() as u64;
        let _ = latency.record(now.saturating_sub(sent).max(1));
        count += 1;
    }
}

/// The `t` (microseconds on [`clock`]) inside a `message` push's data.
fn stamp(text: &str) -> Option<u64> {
    if !text.contains("\"type\":\"message\"") {
        return None;
    }
    let at = text.find("\"data\":{\"t\":")? + "\"data\":{\"t\":".len();
    let digits: &str = &text[at..];
    let end = digits.find(|c: char| !c.is_ascii_digit())?;
    digits[..end].parse().ok()
}

/// Publishes until `deadline`; returns (acknowledged, refused).
async fn publish(
    ws: Ws,
    channel: String,
    pace: Pace,
    deadline: Instant,
    who: usize,
) -> Result<(u64, u64), BoxError> {
    let (reader, mut writer) = ws.split();
    let permits = match pace {
        Pace::Window(window) => Some(Arc::new(Semaphore::new(window))),
        Pace::Rate(_) => None,
    };
    let (total_tx, total) = watch::channel(None::<u64>);
    let replies = tokio::spawn(read_replies(reader, permits.clone(), total));
    let start = Instant::now();
    let mut n: u64 = 0;
    loop {
        let scheduled = match pace {
            Pace::Rate(rate) => {
                let at = start + Duration::from_nanos(n * 1_000_000_000 / rate);
                tokio::time::sleep_until(at).await;
                at
            }
            Pace::Window(_) => {
                if let Some(permits) = &permits {
                    permits.acquire().await?.forget();
                }
                Instant::now()
            }
        };
        if scheduled >= deadline {
            break;
        }
        let t = scheduled.duration_since(clock()).as_micros();
        let command = format!(
            r#"{{"type":"publish","channel":"{channel}","data":{{"t":{t},"from":{who},"n":{n}}}}}"#
        );
        writer.send(command).await?;
        n += 1;
    }
    let _ = total_tx.send(Some(n));
    tokio::time::timeout(Duration::from_secs(30), replies).await??
}

/// Counts `published` and `error` replies until every publication is answered.
async fn read_replies(
    mut reader: Reader<MaybeTlsStream>,
    permits: Option<Arc<Semaphore>>,
    mut total: watch::Receiver<Option<u64>>,
) -> Result<(u64, u64), BoxError> {
    let (mut ok, mut refused) = (0u64, 0u64);
    loop {
        if total.borrow().is_some_and(|t| ok + refused >= t) {
            return Ok((ok, refused));
        }
        let next = tokio::select! {
            next = reader.recv() => next?,
            _ = total.changed() => continue,
        };
        let Some(Message::Text(text)) = next else {
            return Err("a publisher's connection closed".into());
        };
        if text.as_str().contains("\"type\":\"published\"") {
            ok += 1;
        } else if text.as_str().contains("\"type\":\"error\"") {
            refused += 1;
        }
        if let Some(permits) = &permits {
            permits.add_permits(1);
        }
    }
}
