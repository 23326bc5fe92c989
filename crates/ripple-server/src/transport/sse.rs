//! `/sse`: the channel protocol's server → client half over Server-Sent Events.
//!
//! The session is the one `/ws` uses; this adapter only subscribes it to the request's channels
//! and turns its queue into events. Each `subscribed` and `message` event carries the client's
//! [`Cursor`] over every channel as its `id`, so the `Last-Event-ID` a browser sends when it
//! reconnects resumes them all, on any node. A watcher task owns the session: it ends the
//! stream on shutdown, at token expiry or when the queue overflows, and unsubscribes once the
//! stream is over, whichever side ended it.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use bytes::{BufMut, Bytes, BytesMut};
use tokio::time::{Instant, Interval, sleep_until};

use super::{client_left, going_away};
use crate::cursor::{Cursor, Observed, Position};
use crate::http::request::{self, Params};
use crate::metrics::{Connected, Metrics};
use crate::protocol::{Command, ProtocolError, Request};
use crate::push::Push;
use crate::queue::{ClientQueue, Disconnect};
use crate::session::{Finishing, Session};
use crate::state::AppState;

/// How long `EventSource` waits before reconnecting after the stream ends, in milliseconds.
const RETRY_MS: u32 = 2000;

/// Opens a stream: `200 text/event-stream`, or the refusal as an HTTP status and JSON error.
pub async fn open(state: Arc<AppState>, headers: &HeaderMap, params: &Params) -> Response {
    Metrics::add(&state.metrics.sse_requests, 1);
    let connected = match request::admit(&state, headers) {
        Ok(connected) => connected,
        Err(err) => return request::refuse(None, &err),
    };
    let queue = ClientQueue::new(state.config.client_queue_bytes);
    let session = Session::new(Arc::clone(&state), Arc::clone(&queue), false);
    let mut session = Finishing::new(session);
    let cursor = match start(&mut session, &state, headers, params).await {
        Ok(cursor) => cursor,
        Err(err) => {
            session.finish().await;
            return request::refuse(None, &err);
        }
    };
    let session = session.into_inner();
    state.sessions.spawn(watch(
        session,
        Arc::clone(&queue),
        Arc::clone(&state),
        connected,
    ));
    let feed = Feed::new(queue, cursor, Arc::clone(&state));
    // `Connection: close`: once the server ends a stream, the connection goes too, rather than
    // idling as a keep-alive connection behind data a stuck client never reads.
    let headers = [
        (header::CONTENT_TYPE, "text/event-stream"),
        (header::CACHE_CONTROL, "no-cache"),
        (header::CONNECTION, "close"),
        (header::HeaderName::from_static("x-accel-buffering"), "no"),
    ];
    (headers, Body::from_stream(feed.into_stream())).into_response()
}

/// Authenticates and subscribes, resuming from `Last-Event-ID` (or `?cursor=`); returns the
/// cursor the events start from.
async fn start(
    session: &mut Session,
    state: &AppState,
    headers: &HeaderMap,
    params: &Params,
) -> Result<Cursor, ProtocolError> {
    let max = state.config.max_subscriptions;
    let last_event_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty());
    let resume = Params::cursor(last_event_id.or(params.get("cursor")), max)?;
    let channels = params.channels(&resume, max)?;
    session.authorize(params.token(headers))?;
    session.greet();
    let cursor = resume.only(&channels);
    for channel in channels {
        let since = cursor.get(&channel).map(Position::since);
        let command = Command::Subscribe { channel, since };
        session.execute(Request { id: None, command }).await?;
    }
    Ok(cursor)
}

/// Owns the session while the stream lives: ends it on shutdown or token expiry, then
/// unsubscribes once the queue is closed (the feed closes it when the client goes away).
async fn watch(
    mut session: Session,
    queue: Arc<ClientQueue>,
    state: Arc<AppState>,
    _connected: Connected,
) {
    let lifetime = session.token_lifetime();
    let expiry = Instant::now() + lifetime.unwrap_or_default();
    tokio::select! {
        _ = queue.closed() => {}
        () = state.shutdown.cancelled() => queue.close(going_away()),
        () = sleep_until(expiry), if lifetime.is_some() => {
            queue.close(session.token_expired());
        }
    }
    session.finish().await;
    tracing::debug!(client = session.client(), "SSE session ended");
}

/// The response body's source: the session's queue turned into events.
struct Feed {
    queue: Arc<ClientQueue>,
    /// For the heartbeat period, and the history paced replays are read from.
    state: Arc<AppState>,
    ids: EventIds,
    batch: Vec<Arc<Push>>,
    heartbeat: Interval,
    started: bool,
    ended: bool,
}

impl Feed {
    fn new(queue: Arc<ClientQueue>, cursor: Cursor, state: Arc<AppState>) -> Self {
        let heartbeat = state.config.sse_heartbeat();
        let mut heartbeat = tokio::time::interval_at(Instant::now() + heartbeat, heartbeat);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Self {
            queue,
            state,
            ids: EventIds::new(cursor),
            batch: Vec::new(),
            heartbeat,
            started: false,
            ended: false,
        }
    }

    fn into_stream(self) -> impl futures_util::Stream<Item = Result<Bytes, Infallible>> {
        futures_util::stream::unfold(self, |mut feed| async move {
            let chunk = feed.next_chunk().await?;
            Some((Ok(chunk), feed))
        })
    }

    /// The next piece of the stream: every queued event at once, a heartbeat when idle, the
    /// `close` event at the end.
    async fn next_chunk(&mut self) -> Option<Bytes> {
        if self.ended {
            return None;
        }
        let mut out = BytesMut::new();
        if !self.started {
            self.started = true;
            out.put_slice(format!("retry: {RETRY_MS}\n\n").as_bytes());
        }
        tokio::select! {
            biased;
            next = crate::replay::next_batch(&self.queue, self.state.pacer(), &mut self.batch) => match next {
                Ok(()) => {
                    for message in self.batch.drain(..) {
                        write_event(&mut out, &mut self.ids, &message);
                    }
                    self.heartbeat.reset();
                }
                Err(disconnect) => {
                    self.ended = true;
                    write_close(&mut out, &disconnect);
                }
            },
            _ = self.heartbeat.tick() => out.put_slice(b": heartbeat\n\n"),
        }
        Some(out.freeze())
    }
}

impl Drop for Feed {
    /// The client went away (or the stream ended): the watcher unsubscribes.
    fn drop(&mut self) {
        self.queue.close(client_left());
    }
}

/// The client's cursor, and the buffers its encoding reuses from one event to the next.
struct EventIds {
    cursor: Cursor,
    json: Vec<u8>,
    text: String,
}

impl EventIds {
    fn new(cursor: Cursor) -> Self {
        Self {
            cursor,
            json: Vec::new(),
            text: String::new(),
        }
    }
}

/// One server message as an event: `event:` its type, `id:` the cursor when it moved, `data:`
/// the JSON (one line: the server's JSON never holds a raw newline).
fn write_event(out: &mut BytesMut, ids: &mut EventIds, push: &Push) {
    let head = push.head();
    let observed = ids.cursor.observe(head);
    if observed == Observed::Stale {
        return;
    }
    out.put_slice(b"event: ");
    out.put_slice(head.kind.as_str().as_bytes());
    if observed == Observed::Moved {
        out.put_slice(b"\nid: ");
        ids.text.clear();
        ids.cursor.encode_into(&mut ids.json, &mut ids.text);
        out.put_slice(ids.text.as_bytes());
    }
    out.put_slice(b"\ndata: ");
    out.put_slice(push.json());
    out.put_slice(b"\n\n");
}

/// The last event of a stream the server ends, with the `/ws` close code.
fn write_close(out: &mut BytesMut, disconnect: &Disconnect) {
    #[derive(serde::Serialize)]
    struct Close<'a> {
        #[serde(rename = "type")]
        kind: &'static str,
        code: u16,
        reason: &'a str,
    }
    let close = Close {
        kind: "close",
        code: disconnect.code.0,
        reason: disconnect.reason,
    };
    let data = serde_json::to_string(&close).unwrap_or_default();
    out.put_slice(format!("event: close\ndata: {data}\n\n").as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Reply;
    use crate::push::Kind;

    #[test]
    fn events_carry_the_cursor_when_it_moves() {
        let mut out = BytesMut::new();
        let mut cursor = EventIds::new(Cursor::default());
        let subscribed = Reply::Subscribed {
            id: None,
            channel: "room:1",
            epoch: "9802e4c26d5d40b0",
            offset: 42,
            recovered: true,
        };
        write_event(&mut out, &mut cursor, &Push::reply(&subscribed, None));
        let join = r#"{"type":"join","channel":"room:1","client":"c"}"#;
        write_event(
            &mut out,
            &mut cursor,
            &Push::presence(Kind::Join, join.into(), None),
        );
        let text = std::str::from_utf8(&out).unwrap();
        assert_eq!(
            text,
            "event: subscribed\nid: W1sicm9vbToxIiwiOTgwMmU0YzI2ZDVkNDBiMCIsNDJdXQ\ndata: {\"type\":\"subscribed\",\"channel\":\"room:1\",\"epoch\":\"9802e4c26d5d40b0\",\"offset\":42,\"recovered\":true}\n\n\
             event: join\ndata: {\"type\":\"join\",\"channel\":\"room:1\",\"client\":\"c\"}\n\n"
        );
    }
}
