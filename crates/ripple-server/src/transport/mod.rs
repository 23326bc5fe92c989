//! The endpoints' transports: thin adapters between a socket or an HTTP request and the code
//! that decides what to send. `/ws`, `/sse`, `/poll` and `/rpc` all run the channel
//! protocol's one [`Session`](crate::session::Session).

pub mod chat;
pub mod echo;
pub mod longpoll;
pub mod rpc;
pub mod sse;
pub mod ws;

use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt as _;
use ripple::upgrade::UpgradedIo;
use ripple::{CloseCode, Reader, Writer};

use crate::queue::{ClientQueue, Disconnect};
use crate::replay::{self, Pacer};

/// How long a closing client gets to answer our close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Drains `queue` into the socket, a batch per flush, until the client is disconnected; then
/// sends the close frame (bounded: a client that does not read cannot block us). Everything
/// queued before the disconnect goes out first (a shutdown's last publications, an `error`
/// before its close), except for a slow consumer: it is dropped at once, with its close frame
/// only if the socket takes it without waiting.
pub async fn write_loop(mut writer: Writer<UpgradedIo>, queue: Arc<ClientQueue>, pacer: Pacer<'_>) {
    let mut batch = Vec::new();
    let disconnect = loop {
        if let Err(disconnect) = replay::next_batch(&queue, pacer, &mut batch).await {
            break disconnect;
        }
        let fed = batch
            .drain(..)
            .try_for_each(|push| writer.feed_prepared(push.prepared()).map(drop));
        if fed.is_err() {
            return;
        }
        tokio::select! {
            flushed = writer.flush() => if flushed.is_err() { return },
            () = queue.overflowed() => break Disconnect::slow_consumer(),
        }
    };
    if disconnect.code == crate::close::SLOW_CONSUMER {
        let _ = writer
            .close(disconnect.code, disconnect.reason)
            .now_or_never();
        return;
    }
    let _ = tokio::time::timeout(
        CLOSE_GRACE,
        writer.close(disconnect.code, disconnect.reason),
    )
    .await;
}

/// After a disconnect was decided, reads until the client answers the close (bounded); a slow
/// consumer is not waited for.
pub async fn drain_reader(reader: &mut Reader<UpgradedIo>, queue: &ClientQueue) {
    if queue.is_slow_consumer() {
        return;
    }
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        while let Ok(Some(_)) = reader.recv().await {}
    })
    .await;
}

/// The disconnect for a server shutdown.
pub fn going_away() -> Disconnect {
    Disconnect {
        code: CloseCode::GOING_AWAY,
        reason: "server shutting down",
    }
}

/// The disconnect once the client itself closed.
pub fn client_left() -> Disconnect {
    Disconnect {
        code: CloseCode::NORMAL,
        reason: "",
    }
}
