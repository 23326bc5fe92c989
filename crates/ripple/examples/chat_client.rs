//! Run with: cargo run -p ripple --example chat_client [-- ws://127.0.0.1:8765]
//!
//! Sends each line typed and prints incoming messages as they arrive; `exit` quits.

use tokio::io::{AsyncBufReadExt, BufReader};

#[tokio::main]
async fn main() -> ripple::Result<()> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "ws://127.0.0.1:8765".into());
    let (mut reader, mut writer) = ripple::connect(&url).await?.split();
    let printer = tokio::spawn(async move {
        while let Ok(Some(message)) = reader.recv().await {
            println!("{}", String::from_utf8_lossy(message.as_bytes()));
        }
    });
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await? {
        if line.trim() == "exit" {
            break;
        }
        writer.send(line).await?;
    }
    writer.close(ripple::CloseCode::NORMAL, "bye").await?;
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), printer).await;
    Ok(())
}
