//! `/ws`: the channel protocol over WebSocket.

use std::sync::Arc;

use ripple::Message;
use ripple::upgrade::UpgradedWebSocket;
use tokio::time::{Instant, sleep_until};

use super::{client_left, drain_reader, going_away, write_loop};
use crate::metrics::Metrics;
use crate::protocol::{ProtocolError, codes};
use crate::queue::{ClientQueue, Disconnect};
use crate::session::{Flow, Session};
use crate::state::AppState;

/// Runs one `/ws` client until it leaves or is disconnected. `token` came with the handshake
/// (query or `Authorization` header).
pub async fn serve(ws: UpgradedWebSocket, state: Arc<AppState>, token: Option<String>) {
    let queue = ClientQueue::new(state.config.client_queue_bytes);
    let mut session = Session::new(Arc::clone(&state), Arc::clone(&queue), ws.is_compressed());
    if let Flow::Close(disconnect) = session.start(token.as_deref()) {
        queue.close(disconnect);
    }
    let (mut reader, writer) = ws.split();
    let writing = write_loop(writer, Arc::clone(&queue), state.pacer());
    let reading = async {
        read_loop(&mut reader, &mut session, &queue, &state).await;
        drain_reader(&mut reader, &queue).await;
    };
    tokio::join!(writing, reading);
    session.finish().await;
    tracing::debug!(client = session.client(), "session ended");
}

async fn read_loop(
    reader: &mut ripple::Reader<ripple::upgrade::UpgradedIo>,
    session: &mut Session,
    queue: &Arc<ClientQueue>,
    state: &AppState,
) {
    let auth_deadline = Instant::now() + state.config.auth_timeout();
    loop {
        let waiting_for_auth = !session.is_authenticated();
        let lifetime = session.token_lifetime();
        let expiry = Instant::now() + lifetime.unwrap_or_default();
        let flow = tokio::select! {
            disconnect = queue.closed() => {
                tracing::debug!(client = session.client(), code = %disconnect.code, "disconnecting: {}", disconnect.reason);
                return;
            }
            () = state.shutdown.cancelled() => Flow::Close(going_away()),
            () = sleep_until(auth_deadline), if waiting_for_auth => {
                Flow::Close(Disconnect { code: crate::close::AUTH_TIMEOUT, reason: "no auth message in time" })
            }
            () = sleep_until(expiry), if lifetime.is_some() => Flow::Close(session.token_expired()),
            received = reader.recv() => match received {
                Ok(Some(Message::Text(text))) => session.handle_text(&text).await,
                Ok(Some(Message::Binary(_))) => {
                    Metrics::add(&state.metrics.messages_in, 1);
                    let err = ProtocolError::new(codes::BAD_REQUEST, "commands are JSON text messages");
                    session.handle_error(&err);
                    Flow::Continue
                }
                Ok(None) => Flow::Close(client_left()),
                Err(err) => {
                    tracing::debug!(client = session.client(), "connection ended: {err}");
                    Flow::Close(client_left())
                }
            },
        };
        if let Flow::Close(disconnect) = flow {
            queue.close(disconnect);
        }
    }
}
