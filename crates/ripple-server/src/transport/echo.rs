//! `/echo`: every message comes back as it was sent (the tutorials' first server).

use std::sync::Arc;

use ripple::CloseCode;
use ripple::upgrade::UpgradedWebSocket;

use crate::metrics::Metrics;
use crate::state::AppState;

/// Echoes until the client leaves or the server shuts down.
pub async fn serve(mut ws: UpgradedWebSocket, state: Arc<AppState>) {
    loop {
        let received = tokio::select! {
            received = ws.recv() => received,
            () = state.shutdown.cancelled() => {
                let _ = ws.close(CloseCode::GOING_AWAY, "server shutting down").await;
                return;
            }
        };
        let Ok(Some(message)) = received else {
            return;
        };
        Metrics::add(&state.metrics.messages_in, 1);
        Metrics::add(&state.metrics.bytes_in, message.len() as u64);
        if ws.send(message).await.is_err() {
            return;
        }
        Metrics::add(&state.metrics.messages_out, 1);
    }
}
