//! Run with: cargo run -p ripple --example echo_client [-- ws://127.0.0.1:8765]
//!
//! Reads a line, sends it, prints the reply; an empty line or end of input quits.

use tokio::io::{AsyncBufReadExt, BufReader};

#[tokio::main]
async fn main() -> ripple::Result<()> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "ws://127.0.0.1:8765".into());
    let mut ws = ripple::connect(&url).await?;
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await? {
        if line.is_empty() {
            break;
        }
        ws.send(line).await?;
        match ws.recv().await? {
            Some(reply) => println!("< {}", String::from_utf8_lossy(reply.as_bytes())),
            None => break,
        }
    }
    ws.close(ripple::CloseCode::NORMAL, "").await
}
