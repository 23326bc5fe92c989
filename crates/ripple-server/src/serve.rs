//! The one port's accept loop: every connection is served by hyper under deadlines of its own,
//! and shutdown ends within `shutdown_timeout_secs` whatever the clients are doing.
//!
//! Deadlines:
//! - **request head, and idle keep-alive** (`header_timeout_secs`): hyper starts this clock as
//!   soon as a connection waits for a request (a new one, or a keep-alive one after its last
//!   response), so one deadline bounds both a head sent a byte at a time and a connection
//!   that sends nothing at all;
//! - **request body** (`body_timeout_secs`): from the end of the head, the whole body;
//! - **response** (`send_timeout_secs`, in [`crate::listener`]): a write that makes no progress;
//! - **shutdown** (`shutdown_timeout_secs`): whatever still runs at the deadline is dropped.
//!
//! WebSockets, SSE streams and long-polls, once answered, are bounded by their own heartbeats,
//! keepalive pings and the send timeout.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_service::Service as _;

use crate::listener::{Listener, Peer, TimedIo};
use crate::state::AppState;

/// Serves `router` on `listener` until `shutdown` completes, then shuts down in order: stop
/// accepting, let publications in flight reach their subscribers and refuse new ones, close
/// every session (1001) and HTTP connection, and drop whatever is left at the deadline.
pub(crate) async fn serve(
    mut listener: Listener,
    router: Router,
    state: &AppState,
    shutdown: impl Future<Output = ()>,
) {
    let connections = TaskTracker::new();
    let deadlines = Deadlines::of(state);
    tokio::pin!(shutdown);
    loop {
        let (io, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        connections.spawn(serve_connection(
            io,
            peer,
            router.clone(),
            deadlines,
            state.shutdown.clone(),
            state.halt.clone(),
        ));
    }
    drop(listener);
    wind_down(state, &connections).await;
}

/// The shutdown after the listener closed, all within `shutdown_timeout_secs`.
async fn wind_down(state: &AppState, connections: &TaskTracker) {
    let timeout = Duration::from_secs(state.config.shutdown_timeout_secs);
    let deadline = Instant::now() + timeout;
    if tokio::time::timeout_at(deadline, state.publishing.close())
        .await
        .is_err()
    {
        tracing::warn!("publications still in flight after {timeout:?}");
    }
    state.shutdown.cancel();
    connections.close();
    state.sessions.close();
    let everything = async {
        tokio::join!(connections.wait(), state.sessions.wait());
    };
    if tokio::time::timeout_at(deadline, everything).await.is_err() {
        tracing::warn!(
            sessions = state.sessions.len(),
            connections = connections.len(),
            "still open after the shutdown timeout ({timeout:?}); dropping them"
        );
    }
    state.halt.cancel();
}

/// The per-connection deadlines.
#[derive(Clone, Copy, Debug)]
struct Deadlines {
    header: Duration,
    body: Duration,
}

impl Deadlines {
    fn of(state: &AppState) -> Self {
        Self {
            header: state.config.header_timeout(),
            body: state.config.body_timeout(),
        }
    }
}

/// One HTTP/1.1 connection (upgrades included) until it ends, shuts down gracefully once
/// `graceful` is cancelled, or is dropped once `halt` is.
async fn serve_connection(
    io: TimedIo,
    peer: SocketAddr,
    router: Router,
    deadlines: Deadlines,
    graceful: CancellationToken,
    halt: CancellationToken,
) {
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(Peer(peer)));
        let request = request.map(|body| Body::new(TimedBody::new(body, deadlines.body)));
        router.clone().call(request)
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(deadlines.header);
    let connection = builder
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(connection);
    tokio::select! {
        ended = connection.as_mut() => return log_end(peer, ended),
        () = halt.cancelled() => return,
        () = graceful.cancelled() => connection.as_mut().graceful_shutdown(),
    }
    tokio::select! {
        ended = connection => log_end(peer, ended),
        () = halt.cancelled() => {}
    }
}

fn log_end(peer: SocketAddr, ended: Result<(), hyper::Error>) {
    if let Err(err) = ended {
        tracing::debug!(%peer, "HTTP connection ended: {err}");
    }
}

/// A request body that fails once it has not arrived in full within its deadline, so a client
/// that announces a body and sends it a byte at a time cannot hold a handler.
struct TimedBody {
    inner: Incoming,
    deadline: Instant,
    /// Armed only when a read has to wait (a body already buffered costs no timer).
    sleep: Option<Pin<Box<Sleep>>>,
}

/// What a [`TimedBody`] fails with.
#[derive(Debug, thiserror::Error)]
enum BodyError {
    #[error("the request body did not arrive within body_timeout_secs")]
    TimedOut,
    #[error(transparent)]
    Http(#[from] hyper::Error),
}

impl TimedBody {
    fn new(inner: Incoming, timeout: Duration) -> Self {
        Self {
            inner,
            deadline: Instant::now() + timeout,
            sleep: None,
        }
    }
}

impl http_body::Body for TimedBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(BodyError::from)));
        }
        let deadline = this.deadline;
        let sleep = this
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(BodyError::TimedOut))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
