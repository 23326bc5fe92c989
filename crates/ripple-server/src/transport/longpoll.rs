//! `/poll`: the channel protocol's server → client half over long-polling.
//!
//! Each request is a whole session: authenticate, subscribe (hidden from presence) from the
//! client's cursor, answer with what the broker replays or with the first live message, or
//! with nothing at the timeout, and unsubscribe. Nothing stays on the server between requests:
//! the reply's cursor is all the next request needs, on any node, so there is nothing to leak
//! when a client just stops polling.
//!
//! An answer holds at most `history_page_bytes` of messages (at least one): its cursor then
//! stops at the last message it holds, and the next poll goes on from there. Its bytes are
//! reserved in the [`AnswerBudget`](crate::budget::AnswerBudget) before it is built and
//! given back once the client has read it.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Serialize;
use tokio::time::{Instant, sleep_until};

use crate::cursor::{Cursor, Observed};
use crate::http::request::{self, Params};
use crate::metrics::Metrics;
use crate::protocol::{Command, ProtocolError, Request, Since, codes};
use crate::push::{Kind, Push};
use crate::queue::ClientQueue;
use crate::session::{Finishing, Session};
use crate::state::AppState;

/// The bytes of a reply besides its cursor, channels and messages (`{"cursor":…}` and such).
const REPLY_FIELDS: usize = 48;

/// How long a poll waits for its subscriptions to be answered, whatever its timeout.
const SUBSCRIBE_GRACE: Duration = Duration::from_secs(5);

/// Answers one poll: `200` with `{cursor, channels, messages}`, or the refusal.
pub async fn poll(state: Arc<AppState>, headers: &HeaderMap, params: &Params) -> Response {
    Metrics::add(&state.metrics.poll_requests, 1);
    let _connected = match request::admit(&state, headers) {
        Ok(connected) => connected,
        Err(err) => return request::refuse(None, &err),
    };
    let plan = match Plan::read(&state, params) {
        Ok(plan) => plan,
        Err(err) => return request::refuse(None, &err),
    };
    // The replay of a whole history must fit, or a client far behind could never catch up.
    let replay = state.config.history_size * (state.config.max_message_size + 256);
    let queue = ClientQueue::new(state.config.client_queue_bytes.max(replay));
    let session = Session::new(Arc::clone(&state), Arc::clone(&queue), false).hidden();
    let mut session = Finishing::new(session);
    let outcome = match subscribe(&mut session, &plan, params.token(headers)).await {
        Ok(()) => Ok(collect(&state, &queue, plan).await),
        Err(err) => Err(err),
    };
    session.finish().await;
    let answer = match outcome {
        Ok(gathered) => gathered.answer(&state).await,
        Err(err) => Err(err),
    };
    match answer {
        Ok(body) => request::json(StatusCode::OK, body),
        Err(err) => request::refuse(None, &err),
    }
}

/// What a request asks for.
#[derive(Debug)]
struct Plan {
    channels: Vec<String>,
    /// Where the client is: from its cursor, or `since`.
    cursor: Cursor,
    timeout: Duration,
}

impl Plan {
    fn read(state: &AppState, params: &Params) -> Result<Self, ProtocolError> {
        let max = state.config.max_subscriptions;
        let given = Params::cursor(params.get("cursor"), max)?;
        let channels = params.channels(&given, max)?;
        let mut cursor = given.only(&channels);
        if let Some(Since { epoch, offset }) = params.since()? {
            if channels.len() != 1 || params.get("cursor").is_some() {
                return Err(ProtocolError::new(
                    codes::INVALID_FIELD,
                    "since goes with a single channel and no cursor",
                ));
            }
            cursor.set(&channels[0], &epoch, offset);
        }
        let longest = state.config.poll_timeout();
        let timeout = match params.get("timeout") {
            None => longest,
            Some(secs) => secs
                .parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s >= 0.0)
                .map(|s| Duration::from_secs_f64(s.min(longest.as_secs_f64())))
                .ok_or_else(|| {
                    ProtocolError::new(codes::INVALID_FIELD, "timeout must be seconds (>= 0)")
                })?,
        };
        Ok(Self {
            channels,
            cursor,
            timeout,
        })
    }
}

async fn subscribe(
    session: &mut Session,
    plan: &Plan,
    token: Option<&str>,
) -> Result<(), ProtocolError> {
    session.authorize(token)?;
    for channel in &plan.channels {
        let since = plan.cursor.get(channel).map(|p| p.since());
        let command = Command::Subscribe {
            channel: channel.clone(),
            since,
        };
        session.execute(Request { id: None, command }).await?;
    }
    Ok(())
}

/// One channel in the reply.
#[derive(Debug, Serialize)]
struct ChannelState<'a> {
    channel: &'a str,
    epoch: &'a str,
    offset: u64,
    recovered: bool,
}

/// What one poll has gathered from the session's queue.
#[derive(Debug)]
struct Gathered {
    plan: Plan,
    recovered: Vec<Option<bool>>,
    messages: Vec<Arc<Push>>,
    /// The JSON bytes of `messages`, a comma each.
    bytes: usize,
    /// `history_page_bytes`: once a message would pass it, no more are taken.
    page_bytes: usize,
    /// Whether a message was left out for the page's size: the answer goes now.
    full: bool,
}

impl Gathered {
    /// Follows one queued message: `subscribed` replies set the channels' state, new
    /// `message`s are kept while the page has room; presence pushes and everything else are
    /// not for long-polling. A message left out does not move the cursor, nor does any after
    /// it, so the next poll starts right after the last message of this answer.
    fn take(&mut self, message: Arc<Push>) {
        let head = message.head();
        let size = message.json().len() + 1;
        if head.kind == Kind::Message {
            let over = !self.messages.is_empty() && self.bytes + size > self.page_bytes;
            self.full |= over;
            if self.full {
                return;
            }
        }
        if self.plan.cursor.observe(head) != Observed::Moved {
            return;
        }
        if head.kind == Kind::Message {
            self.bytes += size;
            self.messages.push(message);
        } else if let Some(index) = self
            .plan
            .channels
            .iter()
            .position(|c| Some(c.as_str()) == head.channel.as_deref())
        {
            self.recovered[index] = head.recovered;
        }
    }

    /// Whether to answer now: there are messages, or a channel could not be recovered, or
    /// the client asked not to wait and every channel has answered.
    fn ready(&self) -> bool {
        self.full
            || !self.messages.is_empty()
            || self.recovered.contains(&Some(false))
            || (self.subscribed() && self.plan.timeout.is_zero())
    }

    /// Whether every channel's `subscribed` reply has come.
    fn subscribed(&self) -> bool {
        self.recovered.iter().all(Option::is_some)
    }

    /// The answer's body: its size reserved in the answer budget first (waiting a little
    /// for room, else `503 unavailable`), then built, owning its permit.
    async fn answer(&self, state: &AppState) -> Result<bytes::Bytes, ProtocolError> {
        let (cursor, channels) = self.heads();
        let size = self.bytes + cursor.len() + channels.len() + REPLY_FIELDS;
        let permit = state
            .answers
            .reserve(size)
            .await
            .map_err(|busy| busy.to_protocol())?;
        Ok(permit.hold(self.reply(&cursor, &channels).into_bytes()))
    }

    /// The encoded cursor and the `channels` array.
    fn heads(&self) -> (String, String) {
        let channels: Vec<ChannelState<'_>> = self
            .plan
            .channels
            .iter()
            .zip(&self.recovered)
            .filter_map(|(channel, recovered)| {
                let position = self.plan.cursor.get(channel)?;
                Some(ChannelState {
                    channel,
                    epoch: &position.epoch,
                    offset: position.offset,
                    recovered: recovered.unwrap_or(true),
                })
            })
            .collect();
        let cursor = self.plan.cursor.encode();
        let channels = serde_json::to_string(&channels).unwrap_or_else(|_| "[]".into());
        (cursor, channels)
    }

    /// The reply JSON. The pushes are copied in as they are: the server never re-encodes.
    fn reply(&self, cursor: &str, channels: &str) -> String {
        let mut out =
            String::with_capacity(self.bytes + cursor.len() + channels.len() + REPLY_FIELDS);
        out.push_str("{\"cursor\":\"");
        out.push_str(cursor);
        out.push_str("\",\"channels\":");
        out.push_str(channels);
        out.push_str(",\"messages\":[");
        for (i, message) in self.messages.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&String::from_utf8_lossy(message.json()));
        }
        out.push_str("]}");
        out
    }
}

/// Waits for something to answer with, at most the plan's timeout; answers at once on
/// shutdown or when the queue is closed.
async fn collect(state: &AppState, queue: &ClientQueue, plan: Plan) -> Gathered {
    let deadline = Instant::now() + plan.timeout;
    // A broker across the network may answer a subscription a little later.
    let grace = Instant::now() + SUBSCRIBE_GRACE;
    let mut gathered = Gathered {
        recovered: vec![None; plan.channels.len()],
        plan,
        messages: Vec::new(),
        bytes: 0,
        page_bytes: state.config.history_page_bytes,
        full: false,
    };
    let mut batch = Vec::new();
    while !gathered.ready() {
        let until = if gathered.subscribed() {
            deadline
        } else {
            deadline.max(grace)
        };
        tokio::select! {
            biased;
            next = crate::replay::next_batch(queue, state.pacer(), &mut batch) => {
                if next.is_err() {
                    break;
                }
                for message in batch.drain(..) {
                    gathered.take(message);
                }
            }
            () = sleep_until(until) => break,
            () = state.shutdown.cancelled() => break,
        }
    }
    gathered
}
