//! Run with: cargo run -p ripple --example chat_server [-- 127.0.0.1:8765]
//!
//! Every text message goes to every connected client as `[HH:MM:SS] message` (UTC). Each
//! client has a bounded queue: one that cannot keep up loses messages instead of slowing the
//! room down.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use ripple::{Message, WebSocket};
use tokio::sync::mpsc;

type Clients = Arc<Mutex<HashMap<u64, mpsc::Sender<Message>>>>;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8765".into());
    let clients = Clients::default();
    let next_id = Arc::new(std::sync::atomic::AtomicU64::new(0));
    println!("chat server on ws://{addr}");
    ripple::serve(addr, move |ws| {
        let id = next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        chat(ws, id, Arc::clone(&clients))
    })
    .await
}

async fn chat(ws: WebSocket, id: u64, clients: Clients) {
    let (mut reader, mut writer) = ws.split();
    let (tx, mut rx) = mpsc::channel(64);
    lock(&clients).insert(id, tx);
    let forward = tokio::spawn(async move {
        while let Some(message) = rx.recv().await {
            if writer.send(message).await.is_err() {
                break;
            }
        }
    });
    while let Ok(Some(Message::Text(text))) = reader.recv().await {
        let line = Message::from(format!("[{}] {}", clock(), text.as_str()));
        for client in lock(&clients).values() {
            let _ = client.try_send(line.clone());
        }
    }
    lock(&clients).remove(&id);
    forward.abort();
}

/// The time of day in UTC as HH:MM:SS.
fn clock() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!(
        "{:02}:{:02}:{:02}",
        secs / 3600 % 24,
        secs / 60 % 60,
        secs % 60
    )
}

fn lock(clients: &Clients) -> MutexGuard<'_, HashMap<u64, mpsc::Sender<Message>>> {
    clients.lock().unwrap_or_else(PoisonError::into_inner)
}
