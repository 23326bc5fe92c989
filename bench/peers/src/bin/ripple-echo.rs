//! Ripple echo server: `Server` with a recv/send handler, keepalive off, 64 MiB messages.

use ripple::{Acceptor, Config, Server, WebSocket};
use ripple_bench_peers::{MAX_MESSAGE, announce, listen_addr};

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let config = Config::default()
        .max_message_size(MAX_MESSAGE)
        .keepalive(None, None);
    let server = Server::bind(listen_addr().as_str())
        .await?
        .acceptor(Acceptor::new().config(config));
    announce("ripple-echo", server.local_addr()?);
    server.run(echo, std::future::pending()).await
}

async fn echo(mut ws: WebSocket) {
    while let Ok(Some(message)) = ws.recv().await {
        if ws.send(message).await.is_err() {
            break;
        }
    }
}
