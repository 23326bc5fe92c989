//! The connection type: receive and send messages, ping, close, split into a reader and a
//! writer for two tasks.
//!
//! Reading is pull-based: bytes are read from the socket only while the application waits in
//! [`Reader::recv`] (or polls the `Stream`). An application that stops reading stops the peer
//! through TCP flow control, and no buffer grows without bound. Keepalive pings, pong replies
//! and close echoes are handled inside `recv`, so keep a task reading.
//!
//! The timers are the core's (`proto::Connection::poll_timeout`): the reader arms one tokio timer
//! at the moment the core asks for, and when it fires calls `handle_timeout` with tokio's clock,
//! which tests can pause.

use std::fmt;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use futures_core::Stream;
use futures_sink::Sink;
use proto::{CloseCode, CloseFrame, Event, Message, OpCode, PreparedMessage, State, Timeout};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::oneshot;
use tokio::time::{Instant, Sleep, sleep_until};

use crate::error::{Error, Result};
use crate::handshake::HandshakeInfo;
use crate::socket::{Inner, Shared};
use crate::stream::MaybeTlsStream;

/// An open WebSocket connection.
///
/// ```no_run
/// # async fn run() -> ripple::Result<()> {
/// let mut ws = ripple::connect("ws://127.0.0.1:8765").await?;
/// ws.send("hello").await?;
/// while let Some(message) = ws.recv().await? {
///     println!("{message:?}");
/// }
/// # Ok(()) }
/// ```
pub struct WebSocket<S = MaybeTlsStream> {
    reader: Reader<S>,
    writer: Writer<S>,
}

/// The receiving half of a [`WebSocket`].
pub struct Reader<S = MaybeTlsStream> {
    shared: Arc<Shared<S>>,
    /// Armed at the core's next timeout.
    timer: Option<Pin<Box<Sleep>>>,
    finished: bool,
    /// Messages that arrived while [`WebSocket::ping`] waited for its pong.
    stash: std::collections::VecDeque<Message>,
}

/// The sending half of a [`WebSocket`].
pub struct Writer<S = MaybeTlsStream> {
    shared: Arc<Shared<S>>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> WebSocket<S> {
    pub(crate) fn from_shared(shared: Shared<S>) -> Self {
        let shared = Arc::new(shared);
        Self {
            reader: Reader::new(Arc::clone(&shared)),
            writer: Writer { shared },
        }
    }

    pub(crate) fn shared(&self) -> &Arc<Shared<S>> {
        &self.writer.shared
    }

    /// The next message; `Ok(None)` once the connection closed cleanly.
    pub async fn recv(&mut self) -> Result<Option<Message>> {
        self.reader.recv().await
    }

    /// Sends a message and waits until it is written to the socket.
    pub async fn send(&mut self, message: impl Into<Message>) -> Result<()> {
        self.writer.send(message).await
    }

    /// Sends a message framed once for many connections (see [`Writer::send_prepared`]).
    pub async fn send_prepared(&mut self, prepared: &PreparedMessage) -> Result<()> {
        self.writer.send_prepared(prepared).await
    }

    /// Whether permessage-deflate was negotiated.
    pub fn is_compressed(&self) -> bool {
        self.writer.shared.lock().proto.has_extension()
    }

    /// Sends a ping and waits for its pong, reading (and keeping) incoming messages meanwhile.
    /// Returns the round-trip time.
    pub async fn ping(&mut self) -> Result<Duration> {
        let mut pong = self.writer.start_ping()?;
        self.writer.flush().await?;
        let reader = &mut self.reader;
        poll_fn(|cx| {
            loop {
                if let Poll::Ready(rtt) = Pin::new(&mut pong).poll(cx) {
                    return Poll::Ready(rtt.map_err(|_| Error::Closed(None)));
                }
                match ready!(reader.poll_next_message(cx)) {
                    Ok(Some(message)) => reader.stash.push_back(message),
                    Ok(None) => return Poll::Ready(Err(Error::Closed(reader.close_received()))),
                    Err(err) => return Poll::Ready(Err(err)),
                }
            }
        })
        .await
    }

    /// Starts the closing handshake and waits for it to finish (bounded by the close timeout).
    /// Messages that arrive meanwhile are dropped.
    pub async fn close(&mut self, code: CloseCode, reason: &str) -> Result<()> {
        match self.writer.close(code, reason).await {
            Ok(()) | Err(Error::Closed(_)) => {}
            Err(err) => return Err(err),
        }
        while self.reader.recv().await?.is_some() {}
        Ok(())
    }

    /// Splits into a reader and a writer that can be used from two tasks.
    pub fn split(self) -> (Reader<S>, Writer<S>) {
        (self.reader, self.writer)
    }

    /// Puts a reader and a writer from the same [`WebSocket::split`] back together.
    pub fn reunite(reader: Reader<S>, writer: Writer<S>) -> Result<Self, (Reader<S>, Writer<S>)> {
        if Arc::ptr_eq(&reader.shared, &writer.shared) {
            Ok(Self { reader, writer })
        } else {
            Err((reader, writer))
        }
    }

    /// What the opening handshake settled: path, headers, subprotocol.
    pub fn handshake(&self) -> &HandshakeInfo {
        &self.writer.shared.info
    }

    /// The negotiated subprotocol, if any.
    pub fn protocol(&self) -> Option<&str> {
        self.writer.shared.info.protocol.as_deref()
    }

    /// The close frame the peer sent, once it did.
    pub fn close_frame(&self) -> Option<CloseFrame> {
        self.reader.close_received()
    }

    /// The underlying transport (for peer addresses and socket options).
    pub fn with_transport<T>(&self, f: impl FnOnce(&S) -> T) -> T {
        f(&self.writer.shared.lock().io)
    }

    /// The reader half, borrowed.
    pub fn reader(&mut self) -> &mut Reader<S> {
        &mut self.reader
    }

    /// The writer half, borrowed.
    pub fn writer(&mut self) -> &mut Writer<S> {
        &mut self.writer
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Reader<S> {
    pub(crate) fn new(shared: Arc<Shared<S>>) -> Self {
        Self {
            shared,
            timer: None,
            finished: false,
            stash: std::collections::VecDeque::new(),
        }
    }

    /// The next message; `Ok(None)` once the connection closed cleanly (close frames
    /// exchanged). Errors report how it ended otherwise; after one, `Ok(None)` follows.
    pub async fn recv(&mut self) -> Result<Option<Message>> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Poll form of [`Reader::recv`].
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Message>>> {
        if let Some(message) = self.stash.pop_front() {
            return Poll::Ready(Ok(Some(message)));
        }
        self.poll_next_message(cx)
    }

    /// The close frame the peer sent, once it did.
    pub fn close_frame(&self) -> Option<CloseFrame> {
        self.close_received()
    }

    fn close_received(&self) -> Option<CloseFrame> {
        self.shared.lock().proto.close_received().cloned()
    }

    fn poll_next_message(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Message>>> {
        if self.finished {
            return Poll::Ready(Ok(None));
        }
        let shared = Arc::clone(&self.shared);
        let mut inner = shared.lock();
        if !inner
            .read_waker
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            inner.read_waker = Some(cx.waker().clone());
        }
        loop {
            if let Some(message) = next_message(&mut inner) {
                // Pongs and echoes queued while parsing go out now, if the socket takes them.
                if let Poll::Ready(Err(err)) = inner.poll_write_out(cx, &shared.write_wakers) {
                    return self.finish(Err(err.into()));
                }
                return Poll::Ready(Ok(Some(message)));
            }
            if inner.proto.state() != State::Open {
                return self.poll_closing(&mut inner, cx);
            }
            if let Poll::Ready(Err(err)) = inner.poll_write_out(cx, &shared.write_wakers) {
                inner.proto.receive_eof();
                return self.finish(Err(err.into()));
            }
            if self.poll_timer(&mut inner, cx).is_ready() {
                continue;
            }
            match inner.poll_read(cx, &shared.config) {
                Poll::Ready(Ok(0)) => inner.proto.receive_eof(),
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(err)) => {
                    inner.proto.receive_eof();
                    return self.finish(Err(err.into()));
                }
                Poll::Pending => {
                    if shared.config.release_idle_buffers && inner.proto.read_buffer().is_empty() {
                        inner.release_idle_buffers();
                    }
                    return Poll::Pending;
                }
            }
        }
    }

    /// The connection is closing or closed: finish the closing handshake, or give up when the
    /// core's close timer runs out, then report how it ended.
    fn poll_closing(
        &mut self,
        inner: &mut Inner<S>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<Message>>> {
        loop {
            if inner.proto.close_expired() {
                return self.finish(self.outcome(inner));
            }
            let flushed = inner.poll_write_out(cx, &self.shared.write_wakers);
            if let Poll::Ready(Err(_)) = flushed {
                inner.eof = true;
                inner.proto.receive_eof();
            }
            // Waiting for the peer's close frame, or (a client) for the server to end TCP first
            // (RFC 6455 §7.1.1).
            let waiting = match inner.proto.state() {
                State::Closing => true,
                _ => !inner.proto.should_close_transport() && !inner.eof,
            };
            if flushed.is_ready() && !waiting {
                return self.finish(self.outcome(inner));
            }
            if self.poll_timer(inner, cx).is_ready() {
                continue;
            }
            if !waiting {
                return Poll::Pending;
            }
            match inner.poll_read(cx, &self.shared.config) {
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => {
                    inner.eof = true;
                    if inner.proto.state() != State::Closed {
                        inner.proto.receive_eof();
                    }
                }
                // Data that still arrives is dropped; a pong may still answer a ping.
                Poll::Ready(Ok(_)) => while next_message(inner).is_some() {},
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    /// How the connection ended, for the application.
    fn outcome(&self, inner: &Inner<S>) -> Result<Option<Message>> {
        match inner.proto.timed_out() {
            Some(Timeout::Keepalive) => return Err(Error::KeepaliveTimeout),
            Some(Timeout::Close) => return Err(Error::Timeout("closing handshake")),
            _ => {}
        }
        if let Some(failure) = inner.proto.failure() {
            return Err(Error::Protocol(failure.clone()));
        }
        match (inner.proto.close_received(), inner.proto.close_sent()) {
            (Some(_), _) => Ok(None),
            (None, Some(_)) if !inner.eof => Ok(None),
            _ => Err(Error::AbnormalClosure),
        }
    }

    fn finish(&mut self, result: Result<Option<Message>>) -> Poll<Result<Option<Message>>> {
        self.finished = true;
        self.timer = None;
        Poll::Ready(result)
    }

    /// Arms the timer at the core's next timeout; once it fires, lets the core act on it (a
    /// keepalive ping, 1011 for a missing pong, the end of the closing handshake). Ready when it
    /// fired: the core's state and output may have changed.
    fn poll_timer(&mut self, inner: &mut Inner<S>, cx: &mut Context<'_>) -> Poll<()> {
        let Some(deadline) = inner.proto.poll_timeout().map(Instant::from_std) else {
            self.timer = None;
            return Poll::Pending;
        };
        let sleep = match &mut self.timer {
            Some(sleep) => {
                if sleep.deadline() != deadline {
                    sleep.as_mut().reset(deadline);
                }
                sleep
            }
            None => self.timer.insert(Box::pin(sleep_until(deadline))),
        };
        ready!(sleep.as_mut().poll(cx));
        // The timer fired, so it is at least `deadline`, whatever rounding the clocks do: the
        // core acts on it and moves its next timeout on.
        inner
            .proto
            .handle_timeout(Instant::now().max(deadline).into_std());
        Poll::Ready(())
    }
}

/// Processes buffered input until a data message, handling control frames on the way.
fn next_message<S>(inner: &mut Inner<S>) -> Option<Message> {
    while let Some(event) = inner.proto.poll_event() {
        match event {
            Event::Message(message) => return Some(message),
            Event::Pong(payload) => inner.receive_pong(&payload),
            // The core owes one pong at a time: take it now, or the next ping replaces it.
            Event::Ping(_) => inner.take_output(),
            Event::Close(_) => {}
        }
    }
    None
}

impl<S: AsyncRead + AsyncWrite + Unpin> Writer<S> {
    /// Sends a message and waits until it is written to the socket.
    pub async fn send(&mut self, message: impl Into<Message>) -> Result<()> {
        self.feed(message.into(), true)?;
        self.flush().await
    }

    /// Sends a message, choosing whether a negotiated extension (compression) may transform it.
    pub async fn send_with(&mut self, message: impl Into<Message>, compress: bool) -> Result<()> {
        self.feed(message.into(), compress)?;
        self.flush().await
    }

    /// Sends a message framed (and compressed) once for many connections: the broadcast path.
    pub async fn send_prepared(&mut self, prepared: &PreparedMessage) -> Result<()> {
        {
            let mut inner = self.shared.lock();
            inner
                .proto
                .send_prepared(prepared)
                .map_err(|err| closed_error(&inner, err.into()))?;
        }
        self.flush().await
    }

    /// Queues a prepared message without waiting for the socket; returns the bytes now
    /// buffered, so a broadcaster can drop a consumer that falls too far behind.
    pub fn feed_prepared(&mut self, prepared: &PreparedMessage) -> Result<usize> {
        let mut inner = self.shared.lock();
        inner
            .proto
            .send_prepared(prepared)
            .map_err(|err| closed_error(&inner, err.into()))?;
        Ok(inner.buffered())
    }

    /// Sends one frame of a fragmented message (`Text`/`Binary` first, then `Continuation`;
    /// `fin` on the last).
    pub async fn send_fragment(&mut self, opcode: OpCode, data: &[u8], fin: bool) -> Result<()> {
        self.shared.lock().proto.send_fragment(opcode, data, fin)?;
        self.flush().await
    }

    /// Sends a ping and waits for its pong; returns the round-trip time. Another task must be
    /// reading (the pong arrives through [`Reader::recv`]).
    pub async fn ping(&mut self) -> Result<Duration> {
        let pong = self.start_ping()?;
        self.flush().await?;
        pong.await.map_err(|_| Error::Closed(None))
    }

    /// Sends a close frame and flushes it. The reader sees the closing handshake finish.
    pub async fn close(&mut self, code: CloseCode, reason: &str) -> Result<()> {
        let frame = CloseFrame::new(code, reason);
        self.shared.lock().proto.send_close(Some(frame))?;
        self.flush().await
    }

    /// Writes everything queued.
    pub async fn flush(&mut self) -> Result<()> {
        poll_fn(|cx| self.poll_flush_inner(cx)).await
    }

    /// Bytes queued and not yet written to the socket.
    pub fn buffered_amount(&self) -> usize {
        self.shared.lock().buffered()
    }

    fn feed(&mut self, message: Message, compress: bool) -> Result<()> {
        let mut inner = self.shared.lock();
        inner
            .proto
            .send_with(message, compress)
            .map_err(|err| closed_error(&inner, err.into()))
    }

    fn start_ping(&mut self) -> Result<oneshot::Receiver<Duration>> {
        let (tx, rx) = oneshot::channel();
        let mut inner = self.shared.lock();
        inner
            .send_ping(tx)
            .map_err(|err| closed_error(&inner, err.into()))?;
        Ok(rx)
    }

    fn poll_flush_inner(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let mut inner = self.shared.lock();
        let result = ready!(inner.poll_write_out(cx, &self.shared.write_wakers));
        Poll::Ready(result.map_err(Error::from))
    }
}

/// A send on a closed connection names the peer's close frame, when there was one.
fn closed_error<S>(inner: &Inner<S>, err: Error) -> Error {
    match err {
        Error::Closed(None) => Error::Closed(inner.proto.close_received().cloned()),
        other => other,
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Stream for Reader<S> {
    type Item = Result<Message>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        Poll::Ready(ready!(this.poll_recv(cx)).transpose())
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Stream for WebSocket<S> {
    type Item = Result<Message>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.get_mut().reader).poll_next(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Sink<Message> for Writer<S> {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let this = self.get_mut();
        // Backpressure: above the high-water mark, write before taking more.
        if this.buffered_amount() > this.shared.config.write_buffer_high {
            return this.poll_flush_inner(cx);
        }
        Poll::Ready(Ok(()))
    }

    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<()> {
        self.get_mut().feed(item, true)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.get_mut().poll_flush_inner(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let this = self.get_mut();
        {
            let mut inner = this.shared.lock();
            if inner.proto.state() == State::Open {
                let _ = inner
                    .proto
                    .send_close(Some(CloseFrame::new(CloseCode::NORMAL, "")));
            }
        }
        this.poll_flush_inner(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Sink<Message> for WebSocket<S> {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        Pin::new(&mut self.get_mut().writer).poll_ready(cx)
    }

    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<()> {
        Pin::new(&mut self.get_mut().writer).start_send(item)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        Pin::new(&mut self.get_mut().writer).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        Pin::new(&mut self.get_mut().writer).poll_close(cx)
    }
}

impl<S> fmt::Debug for WebSocket<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocket")
            .field("handshake", &self.writer.shared.info)
            .finish_non_exhaustive()
    }
}

impl<S> fmt::Debug for Reader<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reader").finish_non_exhaustive()
    }
}

impl<S> fmt::Debug for Writer<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Writer").finish_non_exhaustive()
    }
}
