//! Ripple's real-time server, as a library: `/echo`, `/chat`, the `/ws` channel protocol
//! (docs/protocol.md), and HTTP beside WebSocket on one port (the page, `/healthz`,
//! `/metrics`, the publish/channels/presence/history API).
//!
//! `ripple serve` is [`run`] with a listener and a [`Config`]; tests call the same function on
//! `127.0.0.1:0`.

pub mod auth;
pub mod broker;
pub mod budget;
pub mod close;
pub mod config;
pub mod cursor;
pub mod error_code;
pub mod gate;
pub mod http;
pub mod listener;
pub mod metrics;
pub mod protocol;
pub mod push;
pub mod queue;
pub mod rate;
pub mod replay;
mod serve;
pub mod session;
pub mod state;
pub mod transport;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;

pub use config::Config;
pub use state::AppState;

/// How often expired history and empty channels are dropped.
const SWEEP_EVERY: Duration = Duration::from_secs(5);

/// The HTTP and WebSocket routes over `state`.
pub fn app(state: Arc<AppState>) -> Router {
    http::router(state)
}

/// Serves on `listener` until `shutdown` completes; then closes every WebSocket with 1001 and
/// waits for sessions to end, at most `shutdown_timeout_secs`. Fails at once if the configured
/// broker cannot be reached (the error names its URL).
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let state = AppState::connect(config)
        .await
        .map_err(std::io::Error::other)?;
    run_with_state(listener, state, shutdown).await
}

/// [`run`] with state built by the caller (a custom broker, or access to the metrics).
pub async fn run_with_state(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    log_start(&listener, &state.config);
    let sweeper = tokio::spawn(sweep(Arc::clone(&state)));
    let options = listener::SocketOptions {
        send_timeout: state.config.send_timeout(),
        send_buffer: state.config.send_buffer(),
        max_sockets: state.config.max_connections,
    };
    let listener = listener::Listener::new(listener, options, Arc::clone(&state.metrics));
    serve::serve(listener, app(Arc::clone(&state)), &state, shutdown).await;
    sweeper.abort();
    Ok(())
}

async fn sweep(state: Arc<AppState>) {
    let mut every = tokio::time::interval(SWEEP_EVERY);
    loop {
        every.tick().await;
        state.broker.sweep().await;
    }
}

fn log_start(listener: &TcpListener, config: &Config) {
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    tracing::info!(%addr, ?config.allowed_origins, config.max_connections, config.max_message_size,
        config.history_size, config.history_ttl_secs, config.client_queue_bytes, config.presence,
        "ripple serve listening (endpoints: / /dashboard /healthz /metrics /echo /chat /ws /sse /poll /rpc /api/…)");
    if config.jwt_secret.is_none() {
        tracing::warn!(
            "no jwt_secret configured: running in ANONYMOUS mode, every client may use every channel"
        );
    }
    if config.api_key.is_none() {
        tracing::warn!("no api_key configured: the HTTP API (/api/…) answers 401 to every request");
    }
}
