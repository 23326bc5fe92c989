//! `/chat`: the tutorials' broadcast chat. Every text message goes to every client on `/chat`
//! as `[HH:MM:SS] message` (server local time), framed once and shared by every client's
//! bounded queue.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use ripple::Message;
use ripple::upgrade::UpgradedWebSocket;

use super::{client_left, drain_reader, going_away, write_loop};
use crate::metrics::Metrics;
use crate::push::Push;
use crate::queue::{ClientQueue, Pushed};
use crate::state::AppState;

/// The clients of `/chat`.
#[derive(Debug, Default)]
pub struct ChatRoom {
    clients: Mutex<HashMap<u64, Arc<ClientQueue>>>,
    next_id: AtomicU64,
}

impl ChatRoom {
    /// Sends `text` to everyone, stamped with the time of day.
    pub fn broadcast(&self, text: &str, metrics: &Metrics) {
        let line = format!("[{}] {text}", chrono::Local::now().format("%H:%M:%S"));
        let frame = Push::chat(line);
        let clients: Vec<_> = self.lock().values().cloned().collect();
        for client in clients {
            match client.push(Arc::clone(&frame)) {
                Pushed::Queued => Metrics::add(&metrics.messages_out, 1),
                Pushed::Closed => {}
                Pushed::Overflow => {
                    Metrics::add(&metrics.dropped, 1);
                    Metrics::add(&metrics.slow_consumers, 1);
                }
            }
        }
    }

    fn join(&self, queue: Arc<ClientQueue>) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(id, queue);
        id
    }

    fn leave(&self, id: u64) {
        self.lock().remove(&id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<ClientQueue>>> {
        self.clients.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Runs one `/chat` client.
pub async fn serve(ws: UpgradedWebSocket, state: Arc<AppState>) {
    let queue = ClientQueue::new(state.config.client_queue_bytes);
    let id = state.chat.join(Arc::clone(&queue));
    let (mut reader, writer) = ws.split();
    let reading = async {
        loop {
            let received = tokio::select! {
                _ = queue.closed() => break,
                () = state.shutdown.cancelled() => {
                    queue.close(going_away());
                    break;
                }
                received = reader.recv() => received,
            };
            match received {
                Ok(Some(Message::Text(text))) => {
                    Metrics::add(&state.metrics.messages_in, 1);
                    state.chat.broadcast(&text, &state.metrics);
                }
                Ok(Some(Message::Binary(_))) => {}
                Ok(None) | Err(_) => {
                    queue.close(client_left());
                    break;
                }
            }
        }
        drain_reader(&mut reader, &queue).await;
    };
    tokio::join!(
        write_loop(writer, Arc::clone(&queue), state.pacer()),
        reading
    );
    state.chat.leave(id);
}
