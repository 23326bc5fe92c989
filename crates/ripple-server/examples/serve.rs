//! Run with: cargo run -p ripple-server --example serve -- 127.0.0.1:PORT
//!
//! A stand-in for `ripple serve` for scripts (scripts/channels-py.sh): runs
//! `ripple_server::run` on the given address (default 127.0.0.1:8765) with the default
//! configuration but no publish rate limit, the HTTP API key from `RIPPLE_API_KEY` and, when set, the JWT secret from
//! `RIPPLE_JWT_SECRET`. Prints `listening on ADDR` once it accepts connections; stops
//! gracefully on SIGINT or SIGTERM.

use std::error::Error;
use std::net::SocketAddr;

use ripple_server::Config;
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let bind: SocketAddr = match std::env::args().nth(1) {
        Some(addr) => addr
            .parse()
            .map_err(|err| format!("bad address {addr:?}: {err}"))?,
        None => Config::default().bind,
    };
    let config = Config {
        bind,
        api_key: std::env::var("RIPPLE_API_KEY")
            .ok()
            .filter(|k| !k.is_empty()),
        jwt_secret: std::env::var("RIPPLE_JWT_SECRET")
            .ok()
            .filter(|s| !s.is_empty()),
        // The interop and browser suites publish hundreds of messages on one connection as
        // fast as the replies come; the default rate limit (50/s) has its own tests.
        publish_rate: 0,
        ..Config::default()
    };
    let listener = TcpListener::bind(bind).await?;
    println!("listening on {}", listener.local_addr()?);
    ripple_server::run(listener, config, stop_signal()).await?;
    println!("stopped");
    Ok(())
}

/// Completes on SIGINT or (on Unix) SIGTERM.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut term) = signal(SignalKind::terminate()) else {
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
