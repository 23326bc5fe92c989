//! The state a connection's reader and writer share: the transport, the protocol core, and the
//! output not yet written. One mutex guards it, held only for non-blocking `poll_*` calls, never
//! across an `.await`.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker, ready};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_util::io::poll_read_buf;

use crate::config::Config;
use crate::handshake::HandshakeInfo;
use crate::wake::WakeList;

/// Read buffer capacity while no frame is in progress: an idle connection holds only this.
const IDLE_READ: usize = 512;
/// The most bytes read into the stack while the connection holds no read buffer.
const IDLE_STACK_READ: usize = 4096;
/// The longest frame header (RFC 6455 §5.2: 2 + 8 length bytes + 4 mask bytes).
const MAX_HEADER: usize = 14;
/// The most output chunks taken from the core ahead of the socket, all handed to one vectored
/// write. Past them, output waits in the core, where pongs owed to a flood of pings coalesce
/// into one (RFC 6455 §5.5.3) instead of queueing here.
const MAX_IOV: usize = 16;

/// Shared by a connection's [`Reader`](crate::Reader) and [`Writer`](crate::Writer).
#[derive(Debug)]
pub(crate) struct Shared<S> {
    inner: Mutex<Inner<S>>,
    pub(crate) write_wakers: Arc<WakeList>,
    pub(crate) config: Arc<Config>,
    pub(crate) info: HandshakeInfo,
}

#[derive(Debug)]
pub(crate) struct Inner<S> {
    pub(crate) io: S,
    pub(crate) proto: proto::Connection,
    /// Chunks taken from the core, the front one possibly part-written.
    out: VecDeque<Bytes>,
    needs_flush: bool,
    shutdown_done: bool,
    /// Next read size; doubles while reads fill the buffer, up to `Config::read_chunk`.
    read_size: usize,
    pub(crate) eof: bool,
    /// The application's pings ([`WebSocket::ping`](crate::WebSocket::ping)) waiting for their
    /// pong, oldest first. Keepalive pings are the core's.
    pings: VecDeque<PendingPing>,
    ping_counter: u32,
    /// The task reading, so that a shutdown from elsewhere can wake it.
    pub(crate) read_waker: Option<Waker>,
}

#[derive(Debug)]
struct PendingPing {
    payload: [u8; 4],
    sent: Instant,
    reply: oneshot::Sender<Duration>,
}

impl<S> Shared<S> {
    pub(crate) fn new(
        io: S,
        proto: proto::Connection,
        config: impl Into<Arc<Config>>,
        info: HandshakeInfo,
    ) -> Self {
        let inner = Inner {
            io,
            proto,
            out: VecDeque::new(),
            needs_flush: false,
            shutdown_done: false,
            read_size: IDLE_READ,
            eof: false,
            pings: VecDeque::new(),
            ping_counter: 0,
            read_waker: None,
        };
        Self {
            inner: Mutex::new(inner),
            write_wakers: Arc::default(),
            config: config.into(),
            info,
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner<S>> {
        // A panic while holding the lock leaves the connection in a state that is still
        // memory-safe to use; the worst outcome is a protocol error reported to the peer.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Wakes the reader and every writer, after a change made from outside (server shutdown).
    pub(crate) fn wake_all(&self) {
        let reader = self.lock().read_waker.take();
        if let Some(waker) = reader {
            waker.wake();
        }
        self.write_wakers.wake_all();
    }
}

impl<S> Inner<S> {
    /// Bytes queued and not yet written to the socket.
    pub(crate) fn buffered(&self) -> usize {
        self.proto.buffered_amount() + self.out.iter().map(Bytes::len).sum::<usize>()
    }

    /// Registers an application ping, whose round-trip time goes to `reply`, and queues it.
    pub(crate) fn send_ping(
        &mut self,
        reply: oneshot::Sender<Duration>,
    ) -> Result<(), proto::SendError> {
        self.ping_counter = self.ping_counter.wrapping_add(1);
        let payload = self.ping_counter.to_be_bytes();
        self.proto.send_ping(&payload)?;
        self.pings.push_back(PendingPing {
            payload,
            sent: Instant::now(),
            reply,
        });
        Ok(())
    }

    /// A pong answers the ping with its payload and, per RFC 6455 §5.5.3 ("a Pong frame sent in
    /// response to the most recent Ping"), every older ping too. The core's keepalive pings carry
    /// 8 bytes, these 4, so a keepalive pong never answers an application ping.
    pub(crate) fn receive_pong(&mut self, payload: &[u8]) {
        let Some(index) = self.pings.iter().position(|p| p.payload[..] == *payload) else {
            return;
        };
        let now = Instant::now();
        for ping in self.pings.drain(..=index) {
            let _ = ping.reply.send(now - ping.sent);
        }
    }

    /// Takes output from the core, up to [`MAX_IOV`] chunks. Called after each ping as well, so
    /// that pings in one read get a pong each while the socket keeps up.
    pub(crate) fn take_output(&mut self) {
        while self.out.len() < MAX_IOV {
            let Some(chunk) = self.proto.poll_transmit() else {
                return;
            };
            self.out.push_back(chunk);
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Inner<S> {
    /// Writes queued output, then flushes, then (once the core says so) shuts the transport.
    pub(crate) fn poll_write_out(
        &mut self,
        cx: &mut Context<'_>,
        wakers: &Arc<WakeList>,
    ) -> Poll<io::Result<()>> {
        self.take_output();
        let shutdown_due = self.proto.should_close_transport() && !self.shutdown_done;
        if self.out.is_empty() && !self.needs_flush && !shutdown_due {
            return Poll::Ready(Ok(()));
        }
        wakers.register(cx.waker());
        let waker = Waker::from(Arc::clone(wakers));
        let mut wcx = Context::from_waker(&waker);
        while !self.out.is_empty() {
            let written = ready!(self.poll_write_chunks(&mut wcx))?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.advance_output(written);
            self.needs_flush = true;
            self.take_output();
        }
        if self.needs_flush {
            ready!(Pin::new(&mut self.io).poll_flush(&mut wcx))?;
            self.needs_flush = false;
        }
        if self.proto.should_close_transport() && !self.shutdown_done {
            // A peer that already went away makes shutdown fail; the connection is over anyway.
            let _ = ready!(Pin::new(&mut self.io).poll_shutdown(&mut wcx));
            self.shutdown_done = true;
        }
        Poll::Ready(Ok(()))
    }

    /// Reads once from the transport into the core's buffer. `Ok(0)` is end of file.
    pub(crate) fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        config: &Config,
    ) -> Poll<io::Result<usize>> {
        let hint = self.proto.read_hint();
        let want = hint.clamp(self.read_size, config.read_chunk.max(IDLE_READ));
        let buf = self.proto.read_buffer();
        let n = if buf.capacity() == 0 && config.release_idle_buffers {
            // An idle connection holds no read buffer: wait on a stack buffer, copy what came.
            let mut stack = [std::mem::MaybeUninit::<u8>::uninit(); IDLE_STACK_READ];
            let mut read = ReadBuf::uninit(&mut stack);
            ready!(Pin::new(&mut self.io).poll_read(cx, &mut read))?;
            buf.extend_from_slice(read.filled());
            read.filled().len()
        } else if hint > 0 {
            // Never read past the frame in progress: its payload then owns its allocation alone
            // and the next frame starts in an empty buffer, so no partial frame is ever copied.
            buf.reserve(hint);
            ready!(poll_read_buf(
                Pin::new(&mut self.io),
                cx,
                &mut buf.limit(hint)
            ))?
        } else {
            // Room for the largest header too, so that a frame of `want` bytes fits.
            buf.reserve(want + MAX_HEADER);
            ready!(poll_read_buf(Pin::new(&mut self.io), cx, buf))?
        };
        if n == 0 {
            self.eof = true;
        } else if n >= self.read_size {
            self.read_size = (self.read_size * 2).min(config.read_chunk.max(IDLE_READ));
        }
        Poll::Ready(Ok(n))
    }

    /// Called when a read would block with nothing buffered: drop the large read buffer so an
    /// idle connection holds no read memory.
    pub(crate) fn release_idle_buffers(&mut self) {
        self.proto.release_buffers();
    }

    fn poll_write_chunks(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let io = Pin::new(&mut self.io);
        if self.out.len() == 1 || !io.is_write_vectored() {
            let Some(front) = self.out.front() else {
                return Poll::Ready(Ok(0));
            };
            return io.poll_write(cx, front);
        }
        let mut slices = [IoSlice::new(&[]); MAX_IOV];
        let count = self.out.len().min(MAX_IOV);
        for (slot, chunk) in slices.iter_mut().zip(self.out.iter()) {
            *slot = IoSlice::new(chunk);
        }
        io.poll_write_vectored(cx, &slices[..count])
    }

    fn advance_output(&mut self, mut written: usize) {
        while written > 0 {
            let Some(front) = self.out.front_mut() else {
                return;
            };
            if written < front.len() {
                front.advance(written);
                return;
            }
            written -= front.len();
            self.out.pop_front();
        }
    }
}
