//! The subscribers of broadcast mode: how each one opens (a WebSocket, an SSE stream, a
//! long-poll loop) and what it checks of every delivery, whatever its transport ([`Inbox`]).

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use ripple::{Message, Reader, WebSocket, Writer};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::time::{Instant, timeout_at};

use super::Transport;
use super::broadcast::{SYNC_WAIT, Shared, TALLY};
use super::channel::{parse_message, push_type, subscribed_offset};
use super::http::HttpTarget;
use super::payload::{Received, Stamp, parse_broadcast};
use super::stats::Recorder;
use super::{poll, sse};
use crate::failure::describe_failure;

/// One WebSocket subscriber; on a channel, `start` is the offset of its `subscribed` reply.
pub(super) async fn ws_subscriber(
    index: usize,
    ws: WebSocket,
    start: Option<u64>,
    shared: Arc<Shared>,
    mut finished: watch::Receiver<bool>,
) -> Option<(Reader, Writer)> {
    let (mut reader, writer) = ws.split();
    let mut inbox = Inbox::new(index, &shared);
    if let Some(offset) = start {
        inbox.start_at(offset);
    }
    let channel = shared.channel.is_some();
    loop {
        let received = tokio::select! {
            biased;
            _ = finished.changed() => break,
            received = reader.recv() => received,
        };
        match received {
            Ok(Some(message)) if channel => inbox.receive_push(message.as_bytes()),
            Ok(Some(message)) => inbox.receive_payload(message.as_bytes(), true),
            Ok(None) => {
                inbox.fail("the server closed the connection");
                return None;
            }
            Err(err) => {
                inbox.fail(describe_failure(&err));
                return None;
            }
        }
    }
    drop(inbox);
    Some((reader, writer))
}

/// One SSE or long-poll subscriber: sets up in its turn, then receives until the run ends.
/// Its connection is dropped at the end (nothing to close as on a WebSocket).
pub(super) async fn http_subscriber(
    index: usize,
    transport: Transport,
    http: Arc<HttpTarget>,
    channel_query: Arc<str>,
    shared: Arc<Shared>,
    gate: JoinGate,
    mut finished: watch::Receiver<bool>,
) -> Option<(Reader, Writer)> {
    let mut joining = Some(gate.enter().await);
    let mut inbox = Inbox::new(index, &shared);
    let receiving = async {
        match transport {
            Transport::Sse => sse::receive(&http, &channel_query, &mut inbox, &mut joining).await,
            Transport::Poll => poll::receive(&http, &channel_query, &mut inbox, &mut joining).await,
            Transport::Ws => Err("not an HTTP transport".into()),
        }
    };
    let outcome = tokio::select! {
        biased;
        _ = finished.changed() => Ok(()),
        result = receiving => result,
    };
    if let Err(why) = outcome {
        match joining.take() {
            Some(joined) => joined.done(Err(why)),
            None => inbox.fail(why),
        }
    }
    None
}

/// Subscribes to `channel` on `ripple serve`'s /ws and waits for the `subscribed` reply;
/// returns its offset (the channel's newest message then).
pub(super) async fn join_channel(ws: &mut WebSocket, channel: &str) -> anyhow::Result<u64> {
    let command = format!(r#"{{"type":"subscribe","channel":"{channel}"}}"#);
    ws.send(Message::from(command))
        .await
        .map_err(|e| anyhow::anyhow!("subscribe: {}", describe_failure(&e)))?;
    let give_up = Instant::now() + SYNC_WAIT;
    loop {
        let reply = timeout_at(give_up, ws.recv())
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
        if let Some(offset) = subscribed_offset(text) {
            return Ok(offset);
        }
        if push_type(text) == Some(b"error") {
            anyhow::bail!("subscribe refused: {}", String::from_utf8_lossy(text));
        }
    }
}

/// Lets a bounded number of subscribers set up at once, and collects how each went.
pub(super) struct JoinGate {
    pub(super) gate: Arc<Semaphore>,
    pub(super) reports: mpsc::UnboundedSender<Result<(), String>>,
}

impl JoinGate {
    /// Waits for a turn to set up.
    async fn enter(self) -> Joining {
        let turn = self.gate.acquire_owned().await.ok();
        Joining {
            _turn: turn,
            reports: self.reports,
        }
    }
}

/// A subscriber setting up: its turn, and where to say how it went.
pub(super) struct Joining {
    _turn: Option<OwnedSemaphorePermit>,
    reports: mpsc::UnboundedSender<Result<(), String>>,
}

impl Joining {
    /// The subscription is in place (or failed): frees the turn for the next subscriber.
    pub(super) fn done(self, result: Result<(), String>) {
        let _ = self.reports.send(result);
    }
}

/// One subscriber's checks, whatever its transport: each publisher's messages arrive in order
/// and intact, the channel's offsets follow each other; its latencies and deliveries.
pub(super) struct Inbox<'a> {
    index: usize,
    shared: &'a Shared,
    /// Each publisher's next sequence number.
    next: Vec<u64>,
    /// Channel: the offset of the last message received (or where the subscription started).
    offset: Option<u64>,
    recorder: Recorder<'a>,
    synced: bool,
    /// Deliveries not yet added to the shared counter.
    tally: u64,
}

impl<'a> Inbox<'a> {
    fn new(index: usize, shared: &'a Shared) -> Self {
        Self {
            index,
            shared,
            next: vec![0; shared.publishers()],
            offset: None,
            recorder: shared.latencies.recorder(),
            synced: false,
            tally: 0,
        }
    }

    /// The subscription starts after the channel's message `offset`.
    pub(super) fn start_at(&mut self, offset: u64) {
        self.offset = Some(offset);
    }

    /// A push of the channel protocol: a `message` is checked; anything else (replies,
    /// presence) is not the benchmark's.
    pub(super) fn receive_push(&mut self, push: &[u8]) {
        let Some(message) = parse_message(push) else {
            return;
        };
        let in_sequence = self.check_offset(message.offset);
        match message.data {
            Some(payload) => self.receive_payload(payload, in_sequence),
            None => self.shared.foreign.add(1),
        }
    }

    /// Counts an error of this subscriber.
    pub(super) fn fail(&self, why: impl std::fmt::Display) {
        let index = self.index;
        self.shared
            .errors
            .add(1, format!("subscriber {index}: {why}"));
    }

    /// Whether `offset` follows the last one; a gap is loss, anything else a repeat or
    /// reordering (one error each).
    fn check_offset(&mut self, offset: u64) -> bool {
        let Some(last) = self.offset else {
            self.offset = Some(offset);
            return true;
        };
        if offset == last.wrapping_add(1) {
            self.offset = Some(offset);
            return true;
        }
        if offset <= last {
            self.fail(format!(
                "channel offset {offset} after {last}: repeated or reordered"
            ));
            return false;
        }
        let lost = offset - last - 1;
        let index = self.index;
        self.shared.errors.add(
            lost,
            format!(
                "subscriber {index}: lost {lost} messages: channel offset {offset} after {last}"
            ),
        );
        self.offset = Some(offset);
        false
    }

    /// A broadcast payload. `in_sequence` is false when its offset was already found wrong:
    /// then a gap in the publisher's numbers is not counted a second time.
    fn receive_payload(&mut self, payload: &[u8], in_sequence: bool) {
        let stamp = match parse_broadcast(payload, self.shared.size) {
            Received::Stamped(stamp) if (stamp.publisher as usize) < self.next.len() => stamp,
            Received::Sync if !self.synced => {
                self.synced = true;
                self.shared.ready.fetch_add(1, Relaxed);
                return;
            }
            Received::Corrupt => return self.fail("corrupted message"),
            Received::Sync => return,
            Received::Stamped(_) | Received::Foreign => return self.shared.foreign.add(1),
        };
        if let Err((n, why)) = accept(self.shared, &mut self.next, stamp)
            && in_sequence
        {
            let index = self.index;
            self.shared
                .errors
                .add(n, format!("subscriber {index}: {why}"));
        }
        let now_ns = self.shared.now_ns();
        if stamp.sent_ns >= self.shared.measure_from_ns.load(Relaxed) {
            let latency = Duration::from_nanos(now_ns.saturating_sub(stamp.sent_ns));
            self.recorder.record(latency);
            self.shared.last_delivery_ns.fetch_max(now_ns, Relaxed);
            self.tally += 1;
            if self.tally == TALLY {
                self.shared.deliveries.add(self.tally);
                self.tally = 0;
            }
        }
    }
}

impl Drop for Inbox<'_> {
    fn drop(&mut self) {
        self.shared.deliveries.add(self.tally);
    }
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
