//! tokio-tungstenite echo server, as its `autobahn-server` example: `next()` then `send()` for
//! every text or binary message. Pings are answered by tungstenite itself.

use futures_util::{SinkExt, StreamExt};
use ripple_bench_peers::{MAX_MESSAGE, announce, listen_addr};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let listener = TcpListener::bind(listen_addr().as_str()).await?;
    announce("tungstenite-echo", listener.local_addr()?);
    loop {
        let (tcp, _) = listener.accept().await?;
        tokio::spawn(echo(tcp));
    }
}

async fn echo(tcp: TcpStream) {
    // Ripple's server sets TCP_NODELAY on every connection; do the same here.
    let _ = tcp.set_nodelay(true);
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE));
    let Ok(mut ws) = tokio_tungstenite::accept_async_with_config(tcp, Some(config)).await else {
        return;
    };
    while let Some(Ok(message)) = ws.next().await {
        if (message.is_text() || message.is_binary()) && ws.send(message).await.is_err() {
            break;
        }
    }
}
