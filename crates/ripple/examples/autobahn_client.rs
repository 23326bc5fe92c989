//! Run with: cargo run --release -p ripple --example autobahn_client
//!
//! Walks Autobahn's fuzzing server with the Ripple client: asks for the case count, echoes
//! every message of every case, then asks the server to write its reports. The server's URL
//! comes from `AUTOBAHN_URL` (default ws://127.0.0.1:9001), the agent name from
//! `AUTOBAHN_AGENT` (default `ripple`).

use ripple::{ClientBuilder, CloseCode, Config};

#[tokio::main]
async fn main() -> ripple::Result<()> {
    let url = std::env::var("AUTOBAHN_URL").unwrap_or_else(|_| "ws://127.0.0.1:9001".into());
    let agent = std::env::var("AUTOBAHN_AGENT").unwrap_or_else(|_| "ripple".into());
    let count = case_count(&url).await?;
    println!("autobahn_client: {count} cases");
    for case in 1..=count {
        echo_case(&format!("{url}/runCase?case={case}&agent={agent}")).await;
    }
    let mut ws = ripple::connect(&format!("{url}/updateReports?agent={agent}")).await?;
    while ws.recv().await?.is_some() {}
    println!("autobahn_client: reports updated");
    Ok(())
}

async fn case_count(url: &str) -> ripple::Result<u32> {
    let mut ws = ripple::connect(&format!("{url}/getCaseCount")).await?;
    let reply = ws.recv().await?.ok_or(ripple::Error::Closed(None))?;
    let count = String::from_utf8_lossy(reply.as_bytes())
        .trim()
        .parse()
        .unwrap_or(0);
    ws.close(CloseCode::NORMAL, "").await?;
    Ok(count)
}

/// Echoes until the case ends; the suite judges what happened, so errors are only reported.
async fn echo_case(url: &str) {
    let config = Config::default().max_message_size(64 << 20);
    let mut ws = match ClientBuilder::new(url).config(config).connect().await {
        Ok(ws) => ws,
        Err(err) => return eprintln!("{url}: {err}"),
    };
    loop {
        match ws.recv().await {
            Ok(Some(message)) => {
                if ws.send(message).await.is_err() {
                    break;
                }
            }
            Ok(None) => break,
            Err(_) => break,
        }
    }
}
