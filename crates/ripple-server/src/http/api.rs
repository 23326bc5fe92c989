//! The HTTP API for backends: publish, list channels, presence, history. Every call needs
//! `Authorization: Bearer <api key>`; without a configured key the API answers 401 to all.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use serde_json::value::RawValue;

use super::bearer;
use crate::protocol::{codes, validate_channel};
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
pub struct HistoryQuery {
    since: Option<u64>,
    limit: Option<usize>,
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
        return error(StatusCode::BAD_REQUEST, err.code, &err.message);
    }
    let max = state.config.max_message_size;
    if body.data.get().len() > max {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            codes::TOO_LARGE,
            &format!("data is larger than max_message_size ({max} bytes)"),
        );
    }
    let Some(_pass) = state.publishing.enter() else {
        let err = crate::session::shutting_down();
        return error(StatusCode::SERVICE_UNAVAILABLE, err.code, &err.message);
    };
    match state.broker.publish(&body.channel, &body.data, None).await {
        Ok(published) => Json(
            json!({"channel": body.channel, "epoch": published.epoch, "offset": published.offset}),
        )
        .into_response(),
        Err(err) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "internal",
            &err.to_string(),
        ),
    }
}

/// Lists channels with subscribers or history.
pub async fn channels(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Err(why) = authorize(&state, &headers) {
        return unauthorized(why);
    }
    match state.broker.channels().await {
        Ok(channels) => Json(json!({ "channels": channels })).into_response(),
        Err(err) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "internal",
            &err.to_string(),
        ),
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
    match state.broker.presence(&name).await {
        Ok(clients) => Json(json!({"channel": name, "clients": clients})).into_response(),
        Err(err) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "internal",
            &err.to_string(),
        ),
    }
}

/// A channel's recent messages.
pub async fn history(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(query): Query<HistoryQuery>,
) -> Response {
    if let Err(why) = authorize(&state, &headers) {
        return unauthorized(why);
    }
    let limit = query
        .limit
        .unwrap_or(usize::MAX)
        .min(state.config.history_size);
    match state.broker.history(&name, query.since, limit).await {
        Ok(page) => {
            let messages = raw_messages(&page.messages);
            Json(json!({"channel": name, "epoch": page.epoch, "offset": page.offset, "messages": messages}))
                .into_response()
        }
        Err(err) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "internal",
            &err.to_string(),
        ),
    }
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

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}
