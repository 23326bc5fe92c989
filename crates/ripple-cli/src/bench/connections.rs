//! Opening many connections (a bounded number of handshakes at a time) and closing them.

use std::time::Duration;

use ripple::{ClientBuilder, CloseCode, Reader, WebSocket, Writer};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::output::Progress;
use super::stats::Latencies;
use crate::failure::describe_open_error;

/// How long closing every connection at the end may take.
const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// Failure descriptions kept.
const MAX_FAILURES: usize = 8;

/// What opening produced.
pub(crate) struct Opened {
    pub(crate) sockets: Vec<WebSocket>,
    /// Failed handshakes.
    pub(crate) failed: u64,
    /// The first few failures, described.
    pub(crate) failures: Vec<String>,
}

/// How to open the connections of a run.
pub(crate) struct Opener<'a> {
    pub(crate) builder: &'a ClientBuilder,
    /// `host:port`, for error messages.
    pub(crate) target: &'a str,
    /// Handshakes in flight at most.
    pub(crate) concurrency: usize,
    pub(crate) progress: &'a Progress,
}

impl Opener<'_> {
    /// Opens `n` connections; starts no new handshake after `deadline`. Records each
    /// handshake's time in `latencies` when given.
    pub(crate) async fn open(
        &self,
        n: usize,
        deadline: Option<Instant>,
        latencies: Option<&Latencies>,
    ) -> Opened {
        let mut recorder = latencies.map(Latencies::recorder);
        let mut opened = Opened {
            sockets: Vec::with_capacity(n),
            failed: 0,
            failures: Vec::new(),
        };
        let mut pending = JoinSet::new();
        let mut started = 0;
        self.progress.set_length(n as u64);
        loop {
            let open = deadline.is_none_or(|d| Instant::now() < d);
            while open && started < n && pending.len() < self.concurrency.max(1) {
                let builder = self.builder.clone();
                pending.spawn(async move {
                    let begun = Instant::now();
                    let result = builder.connect().await;
                    (result, begun.elapsed())
                });
                started += 1;
            }
            let Some(joined) = pending.join_next().await else {
                break;
            };
            match joined {
                Ok((Ok(ws), took)) => {
                    if let Some(recorder) = recorder.as_mut() {
                        recorder.record(took);
                    }
                    opened.sockets.push(ws);
                }
                Ok((Err(err), _)) => {
                    self.failed(&mut opened, describe_open_error(self.target, &err))
                }
                Err(err) => self.failed(&mut opened, format!("handshake task: {err}")),
            }
            let done = opened.sockets.len() as u64 + opened.failed;
            self.progress
                .update(done, format!("{done}/{n} connections"));
        }
        opened
    }

    fn failed(&self, opened: &mut Opened, why: String) {
        opened.failed += 1;
        if opened.failures.len() < MAX_FAILURES {
            opened.failures.push(why);
        }
    }
}

/// Closes every connection with 1000 and waits (bounded) for the closing handshakes.
pub(crate) async fn close_all(halves: Vec<(Reader, Writer)>) {
    let mut closing = JoinSet::new();
    for (mut reader, mut writer) in halves {
        closing.spawn(async move {
            let _ = writer.close(CloseCode::NORMAL, "").await;
            while let Ok(Some(_)) = reader.recv().await {}
        });
    }
    let all = async { while closing.join_next().await.is_some() {} };
    if tokio::time::timeout(CLOSE_GRACE, all).await.is_err() {
        tracing::warn!("some connections did not finish closing within {CLOSE_GRACE:?}");
    }
}

/// Closes whole connections.
pub(crate) async fn close_sockets(sockets: Vec<WebSocket>) {
    close_all(sockets.into_iter().map(WebSocket::split).collect()).await;
}
