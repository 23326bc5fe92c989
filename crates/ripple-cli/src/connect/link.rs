//! One open connection as both modes use it: a task that reads and shows every message, the
//! writer for input, and how the connection ended.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use ripple::{CloseCode, CloseFrame, Error, Message, Reader, WebSocket, Writer};
use tokio::task::JoinHandle;

use super::exit;
use crate::failure::{describe_failure, describe_frame};

/// Where received messages go.
pub(crate) trait MessageSink: Send + 'static {
    /// Shows one message; `false` when the output is gone and reading should stop.
    fn show(&mut self, message: Message) -> impl Future<Output = bool> + Send;
}

/// How a connection ended.
#[derive(Debug)]
pub(crate) enum Ending {
    /// The closing handshake finished (or the transport ended after it).
    Closed {
        /// We sent the first close frame.
        by_us: bool,
        /// The close frame the server sent.
        frame: Option<CloseFrame>,
    },
    /// The connection failed: abnormal closure, protocol error, keepalive timeout, I/O.
    Failed(Error),
    /// Our own output (stdout) closed.
    OutputClosed,
}

impl Ending {
    /// The exit status this ending maps to (see `ripple connect --help`).
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            Self::Closed { by_us: true, .. } | Self::OutputClosed => exit::OK,
            Self::Closed { frame, .. } => match frame {
                None => exit::OK,
                Some(f) if f.code == CloseCode::NORMAL || f.code == CloseCode::NO_STATUS => {
                    exit::OK
                }
                Some(_) => exit::CLOSED,
            },
            Self::Failed(_) => exit::CLOSED,
        }
    }

    /// Whether the user (or the end of input) chose this ending: no reconnecting after it.
    pub(crate) fn chosen(&self) -> bool {
        matches!(self, Self::Closed { by_us: true, .. } | Self::OutputClosed)
    }

    /// A sentence for the user.
    pub(crate) fn describe(&self) -> String {
        match self {
            Self::Closed { by_us: true, frame } => match frame {
                Some(f) => format!("connection closed (server answered {})", describe_frame(f)),
                None => "connection closed".into(),
            },
            Self::Closed {
                by_us: false,
                frame,
            } => match frame {
                Some(f) => format!("closed by the server: {}", describe_frame(f)),
                None => "closed by the server".into(),
            },
            Self::Failed(err) => describe_failure(err),
            Self::OutputClosed => "output closed; connection closed".into(),
        }
    }
}

/// An open connection: the writer here, the reader in its own task.
pub(crate) struct Link {
    writer: Writer,
    state: Arc<State>,
    reader: JoinHandle<Ending>,
    close_timeout: Duration,
}

#[derive(Default)]
struct State {
    closing: AtomicBool,
    received: AtomicU64,
}

impl Link {
    /// Starts reading `ws` into `sink`.
    pub(crate) fn start(ws: WebSocket, sink: impl MessageSink, close_timeout: Duration) -> Self {
        let (reader, writer) = ws.split();
        let state = Arc::new(State::default());
        let reader = tokio::spawn(read_all(reader, sink, Arc::clone(&state)));
        Self {
            writer,
            state,
            reader,
            close_timeout,
        }
    }

    /// The writer, for messages and pings.
    pub(crate) fn writer(&mut self) -> &mut Writer {
        &mut self.writer
    }

    /// Messages received so far.
    pub(crate) fn received(&self) -> u64 {
        self.state.received.load(Ordering::Relaxed)
    }

    /// Waits until the connection ends by itself. Cancel-safe; call it again only if it has
    /// not returned.
    pub(crate) async fn ended(&mut self) -> Ending {
        join(&mut self.reader).await
    }

    /// Sends a close frame and waits (bounded) for the closing handshake to finish.
    pub(crate) async fn close(mut self, frame: CloseFrame) -> Ending {
        self.state.closing.store(true, Ordering::Relaxed);
        if let Err(err) = self.writer.close(frame.code, &frame.reason).await {
            tracing::debug!("sending the close frame: {err}");
        }
        // The reader finishes the handshake within the close timeout; this is a backstop.
        let grace = self.close_timeout + Duration::from_secs(2);
        match tokio::time::timeout(grace, join(&mut self.reader)).await {
            Ok(ending) => ending,
            Err(_) => {
                self.reader.abort();
                Ending::Failed(Error::Timeout("closing handshake"))
            }
        }
    }
}

async fn join(reader: &mut JoinHandle<Ending>) -> Ending {
    match reader.await {
        Ok(ending) => ending,
        Err(err) => Ending::Failed(Error::Io(std::io::Error::other(format!(
            "reader task: {err}"
        )))),
    }
}

async fn read_all(mut reader: Reader, mut sink: impl MessageSink, state: Arc<State>) -> Ending {
    loop {
        match reader.recv().await {
            Ok(Some(message)) => {
                state.received.fetch_add(1, Ordering::Relaxed);
                if !sink.show(message).await {
                    return Ending::OutputClosed;
                }
            }
            Ok(None) => {
                return Ending::Closed {
                    by_us: state.closing.load(Ordering::Relaxed),
                    frame: reader.close_frame(),
                };
            }
            Err(err) => return Ending::Failed(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn closed(by_us: bool, code: Option<u16>) -> Ending {
        Ending::Closed {
            by_us,
            frame: code.map(|c| CloseFrame::new(CloseCode(c), "")),
        }
    }

    #[test]
    fn exit_codes() {
        assert_eq!(closed(true, Some(1000)).exit_code(), exit::OK);
        assert_eq!(closed(true, Some(1001)).exit_code(), exit::OK);
        assert_eq!(closed(false, Some(1000)).exit_code(), exit::OK);
        assert_eq!(closed(false, Some(1005)).exit_code(), exit::OK);
        assert_eq!(closed(false, None).exit_code(), exit::OK);
        assert_eq!(closed(false, Some(4000)).exit_code(), exit::CLOSED);
        assert_eq!(closed(false, Some(1001)).exit_code(), exit::CLOSED);
        assert_eq!(
            Ending::Failed(Error::AbnormalClosure).exit_code(),
            exit::CLOSED
        );
        assert_eq!(Ending::OutputClosed.exit_code(), exit::OK);
    }

    #[test]
    fn chosen_endings_do_not_reconnect() {
        assert!(closed(true, None).chosen());
        assert!(!closed(false, Some(1000)).chosen());
        assert!(!Ending::Failed(Error::AbnormalClosure).chosen());
    }
}
