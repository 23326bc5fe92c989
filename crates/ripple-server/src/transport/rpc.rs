//! `POST /rpc`: one channel-protocol command per request, for clients reading over `/sse` or
//! `/poll`. The same session code runs it as on `/ws`; its reply is the response body, counted
//! in the [`AnswerBudget`](crate::budget::AnswerBudget) until the client has read it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use ripple::Message;

use crate::budget::{self, AnswerPermit};
use crate::http::request::{self, Params};
use crate::metrics::Metrics;
use crate::protocol::{Command, ProtocolError, codes, parse_request};
use crate::session::{Answered, Session};
use crate::state::AppState;

/// Runs the command in `body`; `peer` keys the publish rate in anonymous mode.
pub async fn call(
    state: Arc<AppState>,
    headers: &HeaderMap,
    params: &Params,
    peer: Option<SocketAddr>,
    body: &[u8],
) -> Response {
    Metrics::add(&state.metrics.rpc_requests, 1);
    let mut id = None;
    match run(&state, headers, params, peer, body, &mut id).await {
        Ok(reply) => request::json(StatusCode::OK, reply),
        Err(err) => request::refuse(id, &err),
    }
}

async fn run(
    state: &Arc<AppState>,
    headers: &HeaderMap,
    params: &Params,
    peer: Option<SocketAddr>,
    body: &[u8],
    id: &mut Option<u64>,
) -> Result<Bytes, ProtocolError> {
    request::check_origin(state, headers)?;
    let max = state.config.max_message_size;
    if body.len() > max {
        return Err(ProtocolError::new(
            codes::TOO_LARGE,
            format!("the command is larger than max_message_size ({max} bytes)"),
        ));
    }
    Metrics::add(&state.metrics.messages_in, 1);
    Metrics::add(&state.metrics.bytes_in, body.len() as u64);
    let text = std::str::from_utf8(body)
        .map_err(|_| ProtocolError::new(codes::BAD_REQUEST, "the body is not UTF-8 text"))?;
    let request = parse_request(text).map_err(|(given, err)| {
        *id = given;
        err
    })?;
    *id = request.id;
    if matches!(
        request.command,
        Command::Subscribe { .. } | Command::Unsubscribe { .. } | Command::Auth { .. }
    ) {
        return Err(ProtocolError::new(
            codes::BAD_REQUEST,
            "/rpc runs publish, presence, history and ping: subscribe with /sse or /poll, and \
             send the token with each request",
        ));
    }
    let mut session = Session::request(Arc::clone(state));
    session.authorize(params.token(headers))?;
    if matches!(request.command, Command::Publish { .. }) {
        let key = match (session.user(), peer) {
            (Some(user), _) => format!("user:{user}"),
            (None, Some(peer)) => format!("addr:{}", peer.ip()),
            (None, None) => String::from("anonymous"),
        };
        if !state.rpc_rates.take(&key, Instant::now()) {
            let limit = state.config.publish_rate;
            return Err(ProtocolError::new(
                codes::RATE_LIMITED,
                format!("at most {limit} publishes per second"),
            ));
        }
    }
    let mut permit = reserve(state, &request.command).await?;
    // Every command /rpc runs answers with a reply: subscribe, the one that queues, is refused
    // above.
    let Answered::Reply(reply) = session.execute(request).await? else {
        return Err(ProtocolError::new(
            codes::INTERNAL,
            "the command produced no reply",
        ));
    };
    let body = match reply.prepared().message() {
        Message::Text(text) => text.clone().into_bytes(),
        Message::Binary(bytes) => bytes.clone(),
    };
    state
        .answers
        .fit(&mut permit, body.len())
        .map_err(|busy| busy.to_protocol())?;
    Ok(permit.hold(body))
}

/// Room in the answer budget for the reply to `command`, before it is built: a page of
/// history for `history`, a short answer otherwise (grown once built, if it must be).
async fn reserve(state: &AppState, command: &Command) -> Result<AnswerPermit, ProtocolError> {
    let bound = match command {
        Command::History { .. } => budget::page_bound(&state.config),
        _ => budget::SHORT_ANSWER,
    };
    state
        .answers
        .reserve(bound)
        .await
        .map_err(|busy| busy.to_protocol())
}
