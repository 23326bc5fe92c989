//! The HTTP API for backends: publish, list channels, presence, history. Every call needs
//! `Authorization: Bearer <api key>`; without a configured key the API answers 401 to all.
//!
//! Answers are serde structs (stored messages as `&RawValue`, written as they are), never
//! `serde_json::Value`: building a `Value` re-parses stored data and fails, or panics in
//! `json!`, on data nested past serde_json's recursion limit.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::bearer;
use super::request;
use crate::broker::{BrokerError, ChannelSummary, HistoryQuery};
use crate::budget;
use crate::protocol::{ClientInfo, ProtocolError, check_depth, codes, validate_channel};
use crate::session::raw_messages;
use crate::state::AppState;

/// `POST /api/publish` body.
#[derive(Deserialize)]
pub struct PublishBody {
    channel: String,
    data: Box<RawValue>,
}

/// `GET …/history` query.
#[derive(Deserialize)]
pub struct HistoryParams {
    since: Option<u64>,
    limit: Option<usize>,
}

/// `POST /api/publish` answer.
#[derive(Serialize)]
struct PublishedAnswer<'a> {
    channel: &'a str,
    epoch: &'a str,
    offset: u64,
}

/// `GET /api/channels` answer.
#[derive(Serialize)]
struct ChannelsAnswer<'a> {
    channels: &'a [ChannelSummary],
}

/// `GET …/presence` answer.
#[derive(Serialize)]
struct PresenceAnswer<'a> {
    channel: &'a str,
    clients: &'a [ClientInfo],
}

/// `GET …/history` answer: a page, as the `history` reply has it.
#[derive(Serialize)]
struct HistoryAnswer<'a> {
    channel: &'a str,
    epoch: &'a str,
    offset: u64,
    more: bool,
    messages: Vec<&'a RawValue>,
}

/// An error answer: `{"error": {"code", "message"}}`.
#[derive(Serialize)]
struct ErrorAnswer<'a> {
    error: ErrorBody<'a>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    code: &'a str,
    message: &'a str,
}

/// Publishes to a channel.
pub async fn publish(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Err(why) = authorize(&state, &headers) {
        return unauthorized(why);
    }
    let body: PublishBody = match serde_json::from_slice(&body) {
        Ok(body) => body,
        Err(err) => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                &format!("expected {{\"channel\", \"data\"}}: {err}"),
            );
        }
    };
    if let Err(err) = validate_channel(&body.channel) {
        return refuse(&err);
    }
    let max = state.config.max_message_size;
    if body.data.get().len() > max {
        return refuse(&ProtocolError::new(
            codes::TOO_LARGE,
            format!("data is larger than max_message_size ({max} bytes)"),
        ));
    }
    if let Err(err) = check_depth(&body.data, state.config.max_json_depth) {
        return refuse(&err);
    }
    let Some(_pass) = state.publishing.enter() else {
        return refuse(&crate::session::shutting_down());
    };
    match state.broker.publish(&body.channel, &body.data, None).await {
        Ok(published) => Json(PublishedAnswer {
            channel: &body.channel,
            epoch: &published.epoch,
            offset: published.offset,
        })
        .into_response(),
        Err(err) => broker_failed(&err),
    }
}

/// Lists channels with subscribers or history.
pub async fn channels(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Err(why) = authorize(&state, &headers) {
        return unauthorized(why);
    }
    match state.broker.channels().await {
        Ok(channels) => Json(ChannelsAnswer {
            channels: &channels,
        })
        .into_response(),
        Err(err) => broker_failed(&err),
    }
}

/// Who is subscribed to a channel.
pub async fn presence(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    if let Err(why) = authorize(&state, &headers) {
        return unauthorized(why);
    }
    if let Err(err) = validate_channel(&name) {
        return refuse(&err);
    }
    match state.broker.presence(&name).await {
        Ok(clients) => Json(PresenceAnswer {
            channel: &name,
            clients: &clients,
        })
        .into_response(),
        Err(err) => broker_failed(&err),
    }
}

/// A page of a channel's messages (`history_page_bytes` at most, `more` when there are
/// others after it), counted in the answer budget until the client has read it.
pub async fn history(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(params): Query<HistoryParams>,
) -> Response {
    if let Err(why) = authorize(&state, &headers) {
        return unauthorized(why);
    }
    if let Err(err) = validate_channel(&name) {
        return refuse(&err);
    }
    let Ok(mut permit) = state
        .answers
        .reserve(budget::page_bound(&state.config))
        .await
    else {
        return refuse(&budget::Busy.to_protocol());
    };
    let query = HistoryQuery {
        since: params.since,
        limit: params
            .limit
            .unwrap_or(usize::MAX)
            .min(state.config.history_size),
        max_bytes: state.config.history_page_bytes,
    };
    let page = match state.broker.history(&name, query).await {
        Ok(page) => page,
        Err(err) => return broker_failed(&err),
    };
    let answer = HistoryAnswer {
        channel: &name,
        epoch: &page.epoch,
        offset: page.offset,
        more: page.more,
        messages: raw_messages(&page.messages),
    };
    // Writing strings, numbers and raw JSON into a Vec cannot fail.
    let body = serde_json::to_vec(&answer).unwrap_or_default();
    if let Err(busy) = state.answers.fit(&mut permit, body.len()) {
        return refuse(&busy.to_protocol());
    }
    request::json(StatusCode::OK, permit.hold(body))
}

/// Checks the API key; `Err` says why the request is refused (401).
fn authorize(state: &AppState, headers: &HeaderMap) -> Result<(), &'static str> {
    let Some(key) = state.config.api_key.as_deref() else {
        return Err("the HTTP API is disabled: no api_key configured");
    };
    match bearer(headers) {
        Some(given) if constant_time_eq(given.as_bytes(), key.as_bytes()) => Ok(()),
        Some(_) => Err("wrong API key"),
        None => Err("missing Authorization: Bearer <api key>"),
    }
}

fn unauthorized(why: &str) -> Response {
    error(StatusCode::UNAUTHORIZED, "unauthorized", why)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A protocol error as an API error, with the status the HTTP transports give its code.
fn refuse(err: &ProtocolError) -> Response {
    error(request::status(err.code), err.code.as_str(), &err.message)
}

/// The broker could not do it: `503 internal`, or `503 too_many_channels`.
fn broker_failed(err: &BrokerError) -> Response {
    refuse(&err.to_protocol())
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let answer = ErrorAnswer {
        error: ErrorBody { code, message },
    };
    (status, Json(answer)).into_response()
}
