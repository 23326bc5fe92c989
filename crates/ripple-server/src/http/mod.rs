//! The HTTP side of the one port: routes, the WebSocket upgrades with their admission checks,
//! health and metrics.

pub mod api;
pub mod page;
pub mod request;
pub mod stats;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use axum::Extension;
use axum::Router;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use ripple::upgrade::{UpgradeError, UpgradedWebSocket, WebSocketUpgrade};

use crate::listener::Peer;
use crate::metrics::{Connected, Rejection};
use crate::state::AppState;
use crate::transport;
use request::Params;

/// Every route of the server.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(page::index))
        .route("/dashboard", get(page::dashboard))
        .route("/ripple.js", get(page::ripple_js))
        .route("/ripple-http.js", get(page::ripple_http_js))
        .route("/ripple.d.ts", get(page::ripple_dts))
        .route("/assets/{name}", get(page::asset))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/echo", get(echo))
        .route("/chat", get(chat))
        .route("/ws", get(channels))
        .route("/sse", get(sse))
        .route("/poll", get(poll))
        .route("/rpc", post(rpc).options(rpc_preflight))
        .route("/api/publish", post(api::publish))
        .route("/api/channels", get(api::channels))
        .route("/api/channels/{name}/presence", get(api::presence))
        .route("/api/channels/{name}/history", get(api::history))
        .route("/api/stats", get(stats::stream))
        .with_state(state)
}

async fn healthz(State(state): State<Arc<AppState>>) -> Response {
    if state.broker.healthy() {
        "ok\n".into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "broker unavailable\n").into_response()
    }
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let channels = state.broker.channels().await.map(|c| c.len()).unwrap_or(0);
    let body = state.metrics.render(channels);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

async fn echo(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    upgrade: Result<WebSocketUpgrade, UpgradeError>,
) -> Response {
    if let Err(refusal) = require_token(&state, "/echo", &headers, &query) {
        return *refusal;
    }
    open_session(state, &headers, upgrade, transport::echo::serve)
}

async fn chat(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    upgrade: Result<WebSocketUpgrade, UpgradeError>,
) -> Response {
    if let Err(refusal) = require_token(&state, "/chat", &headers, &query) {
        return *refusal;
    }
    open_session(state, &headers, upgrade, transport::chat::serve)
}

/// With a `jwt_secret`, `/echo` and `/chat` take a valid token like every other endpoint
/// (`?token=` or `Authorization: Bearer`), so a server with tokens has no anonymous way in;
/// without one they are open, as the tutorials expect. A refusal is 401 before the upgrade.
fn require_token(
    state: &AppState,
    endpoint: &str,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
) -> Result<(), Box<Response>> {
    let Some(secret) = state.config.jwt_secret.as_deref() else {
        return Ok(());
    };
    let token = query
        .get("token")
        .map(String::as_str)
        .or_else(|| bearer(headers));
    let Some(token) = token else {
        state.metrics.reject(Rejection::Token);
        let why = "a token is required: ?token=<jwt> or Authorization: Bearer <jwt>\n";
        return Err(Box::new((StatusCode::UNAUTHORIZED, why).into_response()));
    };
    crate::auth::verify(token, secret).map(drop).map_err(|err| {
        state.refused_token(endpoint, &err);
        Box::new((StatusCode::UNAUTHORIZED, format!("{err}\n")).into_response())
    })
}

async fn channels(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    upgrade: Result<WebSocketUpgrade, UpgradeError>,
) -> Response {
    let token = query
        .get("token")
        .cloned()
        .or_else(|| bearer(&headers).map(str::to_owned));
    open_session(state, &headers, upgrade, move |ws, state| {
        transport::ws::serve(ws, state, token)
    })
}

async fn sse(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Response {
    let response = transport::sse::open(Arc::clone(&state), &headers, &Params::new(pairs)).await;
    request::allow_origin(&state, &headers, response)
}

async fn poll(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Response {
    let response =
        transport::longpoll::poll(Arc::clone(&state), &headers, &Params::new(pairs)).await;
    request::allow_origin(&state, &headers, response)
}

async fn rpc(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(pairs): Query<Vec<(String, String)>>,
    peer: Option<Extension<ConnectInfo<Peer>>>,
    body: axum::body::Bytes,
) -> Response {
    let peer = peer.map(|Extension(ConnectInfo(Peer(addr)))| addr);
    let params = Params::new(pairs);
    let response = transport::rpc::call(Arc::clone(&state), &headers, &params, peer, &body).await;
    request::allow_origin(&state, &headers, response)
}

async fn rpc_preflight(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    request::preflight(&state, &headers)
}

/// Admits the upgrade and runs `serve` on the socket as a session that shutdown waits for.
fn open_session<F, Fut>(
    state: Arc<AppState>,
    headers: &HeaderMap,
    upgrade: Result<WebSocketUpgrade, UpgradeError>,
    serve: F,
) -> Response
where
    F: FnOnce(UpgradedWebSocket, Arc<AppState>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (upgrade, connected) = match admit(&state, headers, upgrade) {
        Ok(admitted) => admitted,
        Err(refusal) => return *refusal,
    };
    // The connection was counted at admission; the count is released when the session ends,
    // or when the upgrade never completes (the closure is then dropped with it).
    upgrade.on_upgrade(move |ws| {
        let session = serve(ws, Arc::clone(&state));
        let halt = state.halt.clone();
        state.sessions.track_future(async move {
            let _connected = connected;
            tokio::select! {
                () = session => {}
                () = halt.cancelled() => {}
            }
        })
    })
}

/// The checks every WebSocket endpoint makes before upgrading: a valid handshake, an allowed
/// `Origin`, room under the connection limit (reserved at once, so a burst of handshakes
/// cannot pass it). Each refusal is counted by reason.
fn admit(
    state: &AppState,
    headers: &HeaderMap,
    upgrade: Result<WebSocketUpgrade, UpgradeError>,
) -> Result<(WebSocketUpgrade, Connected), Box<Response>> {
    let upgrade = upgrade.map_err(|err| {
        state.metrics.reject(Rejection::BadHandshake);
        Box::new(err.into_response())
    })?;
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok())
        && !request::origin_allowed(state, origin)
    {
        state.metrics.reject(Rejection::Origin);
        tracing::info!(
            origin,
            "refused WebSocket from an origin not in allowed_origins"
        );
        return Err(Box::new(
            (StatusCode::FORBIDDEN, "origin not allowed\n").into_response(),
        ));
    }
    let Some(connected) = Connected::reserve(&state.metrics, state.config.max_connections) else {
        state.metrics.reject(Rejection::Capacity);
        return Err(Box::new(
            (StatusCode::SERVICE_UNAVAILABLE, "too many connections\n").into_response(),
        ));
    };
    Ok((upgrade.config(state.config.websocket()), connected))
}

/// The token of an `Authorization: Bearer …` header.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}
