//! Run with: cargo run --release -p ripple --example interop_server -- 127.0.0.1:9100
//!
//! The Ripple side of the interop suite (tests/interop/README.md): `/echo`, `/echo-fragmented`,
//! `/close?code=N&reason=R` and `/reject`, driven by Python `websockets` and Node `ws` clients.

use ripple::{
    Accept, Acceptor, CloseCode, Config, Message, OpCode, Reject, Request, Server, WebSocket,
};

const PROTOCOLS: [&str; 2] = ["chat.v2", "chat.v1"];
const FRAGMENT: usize = 1000;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9100".into());
    let acceptor = Acceptor::new()
        .config(Config::default().max_message_size(32 << 20))
        .on_handshake(decide);
    let server = Server::bind(&addr).await?.acceptor(acceptor);
    println!("listening");
    server
        .run(handle, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
}

/// `/reject` is refused; elsewhere the first offered subprotocol we speak is chosen (the
/// client's order, as the interop spec says).
fn decide(request: &Request) -> Result<Accept, Reject> {
    if request.path() == "/reject" {
        return Err(Reject::new(403, "forbidden\n"));
    }
    let protocol = request
        .protocols()
        .into_iter()
        .find(|p| PROTOCOLS.contains(&p.as_str()));
    Ok(Accept {
        protocol,
        ..Accept::default()
    })
}

async fn handle(mut ws: WebSocket) {
    let path = ws.handshake().path().to_owned();
    let query = ws.handshake().query().unwrap_or("").to_owned();
    let result = match path.as_str() {
        "/close" => close_as_asked(&mut ws, &query).await,
        "/echo-fragmented" => echo(&mut ws, true).await,
        _ => echo(&mut ws, false).await,
    };
    if let Err(err) = result {
        eprintln!("{path}: {err}");
    }
}

async fn echo(ws: &mut WebSocket, fragmented: bool) -> ripple::Result<()> {
    while let Some(message) = ws.recv().await? {
        if message.as_bytes() == b"ping-me" && !fragmented {
            ws.ping().await?;
            ws.send("pong-received").await?;
        } else if fragmented {
            send_fragmented(ws, &message).await?;
        } else {
            ws.send(message).await?;
        }
    }
    Ok(())
}

async fn send_fragmented(ws: &mut WebSocket, message: &Message) -> ripple::Result<()> {
    let first = if message.is_text() {
        OpCode::Text
    } else {
        OpCode::Binary
    };
    let bytes = message.as_bytes();
    if bytes.is_empty() {
        return ws.writer().send_fragment(first, &[], true).await;
    }
    let count = bytes.len().div_ceil(FRAGMENT);
    for (i, chunk) in bytes.chunks(FRAGMENT).enumerate() {
        let opcode = if i == 0 { first } else { OpCode::Continuation };
        ws.writer()
            .send_fragment(opcode, chunk, i + 1 == count)
            .await?;
    }
    Ok(())
}

async fn close_as_asked(ws: &mut WebSocket, query: &str) -> ripple::Result<()> {
    let mut code = 1000;
    let mut reason = String::new();
    for (key, value) in query.split('&').filter_map(|kv| kv.split_once('=')) {
        match key {
            "code" => code = value.parse().unwrap_or(1000),
            "reason" => reason = percent_decode(value),
            _ => {}
        }
    }
    ws.close(CloseCode(code), &reason).await
}

/// Decodes `%XX` escapes and `+` (enough for the interop suite's reasons).
fn percent_decode(text: &str) -> String {
    let mut out = Vec::new();
    let mut bytes = text.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'%' => {
                let hex: String = bytes.by_ref().take(2).map(char::from).collect();
                out.push(u8::from_str_radix(&hex, 16).unwrap_or(b'?'));
            }
            b'+' => out.push(b' '),
            other => out.push(other),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
