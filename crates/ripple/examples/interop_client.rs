//! Run with: cargo run --release -p ripple --example interop_client -- ws://127.0.0.1:9100
//!
//! The Ripple side of the interop suite (tests/interop/README.md): runs every check against a
//! Python `websockets` or Node `ws` server and prints `ok NAME` / `FAIL NAME: why`, then
//! `N passed, N failed`.

use std::future::Future;
use std::time::Duration;

use ripple::{ClientBuilder, CloseCode, Config, Error, Message, OpCode, WebSocket};

type Check = Result<(), String>;

#[tokio::main]
async fn main() {
    let base = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "ws://127.0.0.1:9100".into());
    let base = base.trim_end_matches('/');
    let mut passed = 0;
    let mut failed = 0;
    let mut record = |name: &str, result: Check| match result {
        Ok(()) => {
            passed += 1;
            println!("ok {name}");
        }
        Err(why) => {
            failed += 1;
            println!("FAIL {name}: {why}");
        }
    };
    let secs = Duration::from_secs;
    record(
        "text",
        bounded(secs(10), round_trip(base, Message::from("héllo ✓"))).await,
    );
    record(
        "binary",
        bounded(
            secs(10),
            round_trip(base, Message::from((0..=255u8).collect::<Vec<_>>())),
        )
        .await,
    );
    record(
        "empty-text",
        bounded(secs(10), round_trip(base, Message::from(""))).await,
    );
    record(
        "empty-binary",
        bounded(secs(10), round_trip(base, Message::from(Vec::new()))).await,
    );
    let big: Vec<u8> = (0..16 << 20).map(|i: u32| (i % 251) as u8).collect();
    record(
        "binary-16MiB",
        bounded(secs(60), round_trip(base, Message::from(big))).await,
    );
    record(
        "fragmented-reply",
        bounded(secs(10), fragmented_reply(base)).await,
    );
    record(
        "fragmented-send",
        bounded(secs(10), fragmented_send(base)).await,
    );
    record("client-ping", bounded(secs(10), client_ping(base)).await);
    record("server-ping", bounded(secs(10), server_ping(base)).await);
    record("server-close", bounded(secs(10), server_close(base)).await);
    record("client-close", bounded(secs(10), client_close(base)).await);
    record("subprotocol", bounded(secs(10), subprotocol(base)).await);
    record(
        "subprotocol-none",
        bounded(secs(10), no_subprotocol(base)).await,
    );
    record("rejected", bounded(secs(10), rejected(base)).await);
    record("compression", bounded(secs(10), compression(base)).await);
    println!("{passed} passed, {failed} failed");
    std::process::exit(i32::from(failed > 0));
}

async fn bounded(limit: Duration, check: impl Future<Output = Check>) -> Check {
    tokio::time::timeout(limit, check)
        .await
        .unwrap_or_else(|_| Err(format!("timed out after {limit:?}")))
}

async fn open(url: String) -> Result<WebSocket, String> {
    ClientBuilder::new(url)
        .config(Config::default().max_message_size(32 << 20))
        .connect()
        .await
        .map_err(|e| e.to_string())
}

async fn recv(ws: &mut WebSocket) -> Result<Message, String> {
    ws.recv()
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| "closed before a reply".to_owned())
}

async fn round_trip(base: &str, message: Message) -> Check {
    let mut ws = open(format!("{base}/echo")).await?;
    ws.send(message.clone()).await.map_err(|e| e.to_string())?;
    let reply = recv(&mut ws).await?;
    if reply != message {
        return Err(format!(
            "reply differs ({} bytes, text: {})",
            reply.len(),
            reply.is_text()
        ));
    }
    ws.close(CloseCode::NORMAL, "")
        .await
        .map_err(|e| e.to_string())
}

async fn fragmented_reply(base: &str) -> Check {
    let mut ws = open(format!("{base}/echo-fragmented")).await?;
    let text = "0123456789".repeat(250);
    ws.send(text.as_str()).await.map_err(|e| e.to_string())?;
    match recv(&mut ws).await? {
        Message::Text(reply) if reply == text.as_str() => Ok(()),
        other => Err(format!(
            "got {} bytes, text: {}",
            other.len(),
            other.is_text()
        )),
    }
}

async fn fragmented_send(base: &str) -> Check {
    let mut ws = open(format!("{base}/echo")).await?;
    let writer = ws.writer();
    for (opcode, part, fin) in [
        (OpCode::Text, "frag", false),
        (OpCode::Continuation, "men", false),
        (OpCode::Continuation, "ted", true),
    ] {
        writer
            .send_fragment(opcode, part.as_bytes(), fin)
            .await
            .map_err(|e| e.to_string())?;
    }
    match recv(&mut ws).await? {
        Message::Text(reply) if reply == "fragmented" => Ok(()),
        other => Err(format!("got {other:?}")),
    }
}

async fn client_ping(base: &str) -> Check {
    let mut ws = open(format!("{base}/echo")).await?;
    let rtt = ws.ping().await.map_err(|e| e.to_string())?;
    if rtt > Duration::from_secs(5) {
        return Err(format!("round trip of {rtt:?}"));
    }
    Ok(())
}

async fn server_ping(base: &str) -> Check {
    let mut ws = open(format!("{base}/echo")).await?;
    ws.send("ping-me").await.map_err(|e| e.to_string())?;
    match recv(&mut ws).await? {
        Message::Text(reply) if reply == "pong-received" => Ok(()),
        other => Err(format!("got {other:?}")),
    }
}

async fn server_close(base: &str) -> Check {
    let mut ws = open(format!("{base}/close?code=4001&reason=bye%20now")).await?;
    match ws.recv().await {
        Ok(None) => {}
        other => return Err(format!("expected a clean close, got {other:?}")),
    }
    match ws.close_frame() {
        Some(frame) if frame.code == CloseCode(4001) && frame.reason == "bye now" => Ok(()),
        other => Err(format!("close frame {other:?}")),
    }
}

async fn client_close(base: &str) -> Check {
    let mut ws = open(format!("{base}/echo")).await?;
    ws.close(CloseCode::NORMAL, "done")
        .await
        .map_err(|e| e.to_string())?;
    match ws.close_frame() {
        Some(frame) if frame.code == CloseCode::NORMAL => Ok(()),
        other => Err(format!("close reply {other:?}")),
    }
}

async fn subprotocol(base: &str) -> Check {
    let ws = ClientBuilder::new(format!("{base}/echo"))
        .protocol("chat.v1")
        .protocol("chat.v2")
        .connect()
        .await
        .map_err(|e| e.to_string())?;
    match ws.protocol() {
        Some("chat.v1") => Ok(()),
        other => Err(format!("server chose {other:?}")),
    }
}

async fn no_subprotocol(base: &str) -> Check {
    let ws = ClientBuilder::new(format!("{base}/echo"))
        .protocol("nope")
        .connect()
        .await
        .map_err(|e| e.to_string())?;
    match ws.protocol() {
        None => Ok(()),
        other => Err(format!("server chose {other:?}")),
    }
}

async fn rejected(base: &str) -> Check {
    match ripple::connect(&format!("{base}/reject")).await {
        Err(Error::Rejected { status: 403, .. }) => Ok(()),
        Err(err) => Err(format!("expected a 403 rejection, got {err}")),
        Ok(_) => Err("handshake succeeded".to_owned()),
    }
}

async fn compression(base: &str) -> Check {
    let mut ws = open(format!("{base}/echo")).await?;
    if !ws.is_compressed() {
        let offered = ws.handshake().extensions.clone();
        return Err(format!(
            "permessage-deflate not negotiated (answer: {offered:?})"
        ));
    }
    let text = Message::from("ripple ".repeat(64 * 1024 / 7));
    let binary = Message::from(
        std::iter::repeat_n([1u8, 2, 3, 4], 25 * 1024)
            .flatten()
            .collect::<Vec<u8>>(),
    );
    for message in [text, binary] {
        ws.send(message.clone()).await.map_err(|e| e.to_string())?;
        if recv(&mut ws).await? != message {
            return Err("compressed echo differs".to_owned());
        }
    }
    ws.close(CloseCode::NORMAL, "")
        .await
        .map_err(|e| e.to_string())
}
