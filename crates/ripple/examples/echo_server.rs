//! Run with: cargo run --release -p ripple --example echo_server [-- 127.0.0.1:8765]
//!
//! Sends every message back, text as text and binary as binary. Messages up to 64 MiB are
//! accepted (Autobahn's group 9 sends 16 MiB). Ctrl-C closes every connection with 1001.

use ripple::{Acceptor, Config, Server, WebSocket};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8765".into());
    let config = Config::default().max_message_size(64 << 20);
    let server = Server::bind(&addr)
        .await?
        .acceptor(Acceptor::new().config(config));
    println!("echo server listening on ws://{}", server.local_addr()?);
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    server.run(echo, ctrl_c).await
}

async fn echo(mut ws: WebSocket) {
    while let Ok(Some(message)) = ws.recv().await {
        if ws.send(message).await.is_err() {
            break;
        }
    }
}
