//! What the HTTP transports (`/sse`, `/poll`, `/rpc`) read from a request, and how they refuse
//! one: an HTTP status with the protocol's `error` object as the body.

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::bearer;
use crate::cursor::Cursor;
use crate::metrics::{Connected, Rejection};
use crate::protocol::{ErrorCode, ProtocolError, Reply, Since, codes, validate_channel};
use crate::state::AppState;

/// The query parameters of `/sse` and `/poll`, in order (`channel` repeats).
#[derive(Debug, Default)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    /// From the parsed query string.
    pub fn new(pairs: Vec<(String, String)>) -> Self {
        Self { pairs }
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The token: `?token=` first (what `EventSource` can send), then `Authorization: Bearer`.
    pub fn token<'a>(&'a self, headers: &'a HeaderMap) -> Option<&'a str> {
        self.get("token").or_else(|| bearer(headers))
    }

    /// The `channel` parameters, checked and without repeats; when there are none, the
    /// cursor's channels. At least one, at most `max`.
    pub fn channels(&self, cursor: &Cursor, max: usize) -> Result<Vec<String>, ProtocolError> {
        let mut channels: Vec<String> = Vec::new();
        for (_, name) in self.pairs.iter().filter(|(key, _)| key == "channel") {
            validate_channel(name)?;
            if !channels.contains(name) {
                channels.push(name.clone());
            }
        }
        if channels.is_empty() {
            channels = cursor.channels().map(str::to_owned).collect();
        }
        if channels.is_empty() {
            return Err(ProtocolError::new(
                codes::INVALID_FIELD,
                "at least one channel: ?channel=NAME (repeatable)",
            ));
        }
        if channels.len() > max {
            return Err(ProtocolError::new(
                codes::TOO_MANY_SUBSCRIPTIONS,
                format!("at most {max} channels"),
            ));
        }
        Ok(channels)
    }

    /// The cursor given as `text` (a `Last-Event-ID` header or the `cursor` parameter).
    pub fn cursor(text: Option<&str>, max: usize) -> Result<Cursor, ProtocolError> {
        match text {
            None | Some("") => Ok(Cursor::default()),
            Some(text) => Cursor::decode(text, max),
        }
    }

    /// `since=EPOCH:OFFSET`.
    pub fn since(&self) -> Result<Option<Since>, ProtocolError> {
        let Some(text) = self.get("since") else {
            return Ok(None);
        };
        let parsed = text
            .rsplit_once(':')
            .and_then(|(epoch, offset)| Some((epoch, offset.parse().ok()?)));
        match parsed {
            Some((epoch, offset)) if !epoch.is_empty() => Ok(Some(Since {
                epoch: epoch.to_owned(),
                offset,
            })),
            _ => Err(ProtocolError::new(
                codes::INVALID_CURSOR,
                "since must be EPOCH:OFFSET",
            )),
        }
    }
}

/// The HTTP status for an error code (the mapping is [`ErrorCode::http_status`]).
pub fn status(code: ErrorCode) -> StatusCode {
    StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// The refusal of a request: its status and the `error` object (with the command's `id`).
pub fn refuse(id: Option<u64>, err: &ProtocolError) -> Response {
    let reply = Reply::Error {
        id,
        code: err.code,
        message: &err.message,
    };
    json(status(err.code), reply.to_json())
}

/// A JSON response. An answer the [`AnswerBudget`](crate::budget::AnswerBudget) counts comes
/// as `Bytes` from [`AnswerPermit::hold`](crate::budget::AnswerPermit::hold), so the permit
/// lives as long as the body.
pub fn json(status: StatusCode, body: impl Into<axum::body::Body>) -> Response {
    let headers = [
        (header::CONTENT_TYPE, "application/json"),
        (header::CACHE_CONTROL, "no-store"),
    ];
    (status, headers, body.into()).into_response()
}

/// Checks the request's `Origin` against `allowed_origins` (as the WebSocket endpoints do).
pub fn check_origin(state: &AppState, headers: &HeaderMap) -> Result<(), ProtocolError> {
    match headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        Some(origin) if !origin_allowed(state, origin) => {
            state.metrics.reject(Rejection::Origin);
            tracing::info!(
                origin,
                "refused a request from an origin not in allowed_origins"
            );
            Err(ProtocolError::new(
                codes::ORIGIN_NOT_ALLOWED,
                format!("origin {origin:?} is not allowed"),
            ))
        }
        _ => Ok(()),
    }
}

/// Whether a browser page from `origin` may use the server (`allowed_origins`; empty: any).
pub(crate) fn origin_allowed(state: &AppState, origin: &str) -> bool {
    let allowed = &state.config.allowed_origins;
    allowed.is_empty() || allowed.iter().any(|a| a == origin)
}

/// CORS: lets a page of an allowed origin read the answer (an `EventSource`, `fetch` to `/poll`
/// or `/rpc` from another origin than the server's). The token travels in the query, never in
/// cookies, so no credentials are allowed.
pub fn allow_origin(state: &AppState, headers: &HeaderMap, mut response: Response) -> Response {
    let origin = headers.get(header::ORIGIN);
    if let Some(origin) = origin.filter(|o| o.to_str().is_ok_and(|o| origin_allowed(state, o))) {
        let out = response.headers_mut();
        out.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        out.append(header::VARY, header::HeaderValue::from_static("Origin"));
    }
    response
}

/// The answer to a CORS preflight of `POST /rpc` (a page sending `Content-Type:
/// application/json` or an `Authorization` header): `204` for an allowed origin, `403`
/// otherwise.
pub fn preflight(state: &AppState, headers: &HeaderMap) -> Response {
    let allowed = headers
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .is_some_and(|o| origin_allowed(state, o));
    if !allowed {
        return StatusCode::FORBIDDEN.into_response();
    }
    let response = (
        StatusCode::NO_CONTENT,
        [
            (header::ACCESS_CONTROL_ALLOW_METHODS, "POST"),
            (
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                "authorization, content-type",
            ),
            (header::ACCESS_CONTROL_MAX_AGE, "600"),
        ],
    )
        .into_response();
    allow_origin(state, headers, response)
}

/// Admits a request that will hold a connection (an SSE stream, a waiting long-poll): an
/// allowed `Origin` and room under `max_connections`, reserved at once.
pub fn admit(state: &AppState, headers: &HeaderMap) -> Result<Connected, ProtocolError> {
    check_origin(state, headers)?;
    Connected::reserve(&state.metrics, state.config.max_connections).ok_or_else(|| {
        state.metrics.reject(Rejection::Capacity);
        ProtocolError::new(codes::UNAVAILABLE, "too many connections")
    })
}
