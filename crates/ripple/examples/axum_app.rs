//! Run with: cargo run -p ripple --features axum --example axum_app
//!
//! An axum app on one port (127.0.0.1:3000, or the first argument after `--`): `GET /` is a
//! page that echoes through the browser's WebSocket, `GET /healthz` answers "ok", and `/ws` is
//! a Ripple WebSocket echo. Ctrl-C stops it.

use axum::Router;
use axum::response::{Html, Response};
use axum::routing::{any, get};
use axum::serve::ListenerExt;
use ripple::upgrade::{UpgradedWebSocket, WebSocketUpgrade};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3000".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("open http://{} in a browser", listener.local_addr()?);
    // Small WebSocket messages should not wait for Nagle's algorithm.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    axum::serve(listener, app())
        .with_graceful_shutdown(ctrl_c)
        .await
}

fn app() -> Router {
    Router::new()
        .route("/", get(Html(PAGE)))
        .route("/healthz", get(|| async { "ok" }))
        // `any`, not `get`: every request to /ws is judged by the core's handshake rules.
        .route("/ws", any(ws))
}

async fn ws(upgrade: WebSocketUpgrade) -> Response {
    upgrade.on_upgrade(echo)
}

async fn echo(mut ws: UpgradedWebSocket) {
    while let Ok(Some(message)) = ws.recv().await {
        if ws.send(message).await.is_err() {
            break;
        }
    }
}

const PAGE: &str = r#"<!doctype html>
<meta charset="utf-8">
<title>Ripple echo</title>
<form id="form"><input id="text" autofocus placeholder="say something"> <button>send</button></form>
<pre id="log"></pre>
<script>
  const log = (line) => { document.getElementById("log").textContent += line + "\n"; };
  const scheme = location.protocol === "https:" ? "wss://" : "ws://";
  const ws = new WebSocket(scheme + location.host + "/ws");
  ws.onopen = () => log("open");
  ws.onmessage = (event) => log("< " + event.data);
  ws.onclose = (event) => log("closed " + event.code);
  document.getElementById("form").onsubmit = (event) => {
    event.preventDefault();
    const input = document.getElementById("text");
    ws.send(input.value);
    log("> " + input.value);
    input.value = "";
  };
</script>
"#;
