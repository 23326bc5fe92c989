//! The server's TCP listener: every accepted connection is counted against `max_connections`
//! (one past it is answered 503 and closed), and gets `TCP_NODELAY` (small pushes go out at
//! once), a capped send buffer and a send timeout.
//!
//! The send timeout is what bounds a client that stops reading, or that vanished (a cable pulled:
//! no FIN, no RST). The socket's `TCP_USER_TIMEOUT` is set to it, so the kernel gives up on data
//! that stays unacknowledged that long (an SSE heartbeat, a keepalive ping) instead of
//! retransmitting for a quarter of an hour. A WebSocket client is cut off
//! by its queue (`4008`), but an HTTP response (an SSE stream, a long-poll answer) is written
//! by hyper, which waits on a full socket forever. Here a write that has made no progress for
//! `send_timeout` fails with `TimedOut`, and hyper drops the connection.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Sleep};

use crate::metrics::{Metrics, OpenSocket, Rejection};

/// What every accepted socket gets.
#[derive(Clone, Debug)]
pub struct SocketOptions {
    /// A write that makes no progress for this long fails (and `TCP_USER_TIMEOUT`).
    pub send_timeout: Duration,
    /// `SO_SNDBUF`: the kernel memory a client that stops reading can pin; `None` leaves the
    /// kernel's autotuning (which grows to several MiB per socket).
    pub send_buffer: Option<usize>,
    /// Sockets open at once; one more is answered 503 and closed at accept.
    pub max_sockets: usize,
}

/// A TCP listener whose connections are counted and time out writes that make no progress.
#[derive(Debug)]
pub struct Listener {
    inner: TcpListener,
    options: SocketOptions,
    metrics: Arc<Metrics>,
    /// Consecutive failed accepts (out of file descriptors), for the back-off.
    failures: u32,
    /// Places for refused sockets reading their 503.
    refusing: Arc<tokio::sync::Semaphore>,
}

/// Refused sockets that may linger at once (each for at most [`REFUSAL_LINGER`]).
const MAX_REFUSING: usize = 64;

/// How long a refused socket may take to read its answer.
const REFUSAL_LINGER: Duration = Duration::from_secs(1);

/// The most bytes read (and dropped) from a refused socket.
const REFUSAL_READ_MAX: usize = 16 * 1024;

/// The answer to a connection past `max_connections`: the protocol's `error` object, as the
/// HTTP transports refuse (a WebSocket client only sees the status).
const AT_CAPACITY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
content-length: 70\r\nconnection: close\r\n\r\n{\"type\":\"error\",\"code\":\"unavailable\",\"message\":\"too many connections\"}";

impl Listener {
    /// Wraps a bound listener.
    pub fn new(inner: TcpListener, options: SocketOptions, metrics: Arc<Metrics>) -> Self {
        Self {
            inner,
            options,
            metrics,
            failures: 0,
            refusing: Arc::new(tokio::sync::Semaphore::new(MAX_REFUSING)),
        }
    }

    /// The next connection under the limit. Connections past it are refused here (a 503 and
    /// a close), so an idle or half-sent request holds a place like any other.
    pub async fn accept(&mut self) -> (TimedIo, SocketAddr) {
        loop {
            let (tcp, addr) = match self.inner.accept().await {
                Ok(accepted) => {
                    self.failures = 0;
                    accepted
                }
                Err(err) => {
                    self.accept_failed(&err).await;
                    continue;
                }
            };
            let Some(open) = OpenSocket::reserve(&self.metrics, self.options.max_sockets) else {
                self.metrics.reject(Rejection::Capacity);
                self.refuse(tcp);
                continue;
            };
            self.configure(&tcp);
            return (TimedIo::new(tcp, self.options.send_timeout, open), addr);
        }
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// Answers 503 and closes. The client's request is read (and dropped) for a moment first:
    /// closing a socket with unread input resets it, and the client would see a reset instead
    /// of the answer. At most [`MAX_REFUSING`] sockets linger so; past that they close at once.
    fn refuse(&self, tcp: TcpStream) {
        let Ok(permit) = Arc::clone(&self.refusing).try_acquire_owned() else {
            let _ = tcp.try_write(AT_CAPACITY);
            return;
        };
        tokio::spawn(async move {
            let _permit = permit;
            let _ = tokio::time::timeout(REFUSAL_LINGER, answer_and_drain(tcp)).await;
        });
    }

    fn configure(&self, tcp: &TcpStream) {
        let _ = tcp.set_nodelay(true);
        let socket = socket2::SockRef::from(tcp);
        let _ = socket.set_tcp_user_timeout(Some(self.options.send_timeout));
        if let Some(bytes) = self.options.send_buffer {
            let _ = socket.set_send_buffer_size(bytes);
        }
    }

    /// A failed `accept`: a connection that died in the backlog is nothing; anything else (out
    /// of file descriptors) is logged once per spell and retried after a back-off that doubles
    /// from 10 ms to 1 s, so the loop never spins and recovers soon after descriptors free up.
    async fn accept_failed(&mut self, err: &io::Error) {
        use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
        if matches!(
            err.kind(),
            ConnectionAborted | ConnectionRefused | ConnectionReset
        ) {
            return;
        }
        if self.failures == 0 {
            tracing::error!(
                "accept failed: {err}; backing off (raise the file-descriptor limit or lower \
                 max_connections)"
            );
        }
        let delay = Duration::from_millis(10 << self.failures.min(7)).min(Duration::from_secs(1));
        self.failures = self.failures.saturating_add(1);
        tokio::time::sleep(delay).await;
    }
}

/// Writes the 503, ends our side, and reads what the client sends until it closes too.
async fn answer_and_drain(mut tcp: TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    if tcp.write_all(AT_CAPACITY).await.is_err() || tcp.shutdown().await.is_err() {
        return;
    }
    let mut sink = [0u8; 1024];
    let mut left = REFUSAL_READ_MAX;
    while left > 0 {
        match tcp.read(&mut sink).await {
            Ok(0) | Err(_) => return,
            Ok(n) => left = left.saturating_sub(n),
        }
    }
}

/// The client's address, for handlers that need it (a request extension,
/// `Extension<ConnectInfo<Peer>>`).
#[derive(Clone, Copy, Debug)]
pub struct Peer(pub SocketAddr);

/// A TCP stream whose writes fail with `TimedOut` after `timeout` without progress.
#[derive(Debug)]
pub struct TimedIo {
    tcp: TcpStream,
    timeout: Duration,
    _open: OpenSocket,
    /// Allocated at the first stall and reused; `armed` while a write is waiting.
    stall: Option<Pin<Box<Sleep>>>,
    armed: bool,
}

impl TimedIo {
    fn new(tcp: TcpStream, timeout: Duration, open: OpenSocket) -> Self {
        Self {
            tcp,
            timeout,
            _open: open,
            stall: None,
            armed: false,
        }
    }

    /// Called when a write would block: `Ready(err)` once it has blocked for `timeout`.
    fn poll_stalled(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let deadline = Instant::now() + self.timeout;
        let stall = self
            .stall
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if !self.armed {
            stall.as_mut().reset(deadline);
            self.armed = true;
        }
        match stall.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client read nothing for the send timeout",
            )),
            Poll::Pending => Poll::Pending,
        }
    }

    fn progress<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match polled {
            Poll::Ready(result) => {
                self.armed = false;
                Poll::Ready(result)
            }
            Poll::Pending => self.poll_stalled(cx).map(Err),
        }
    }
}

impl AsyncRead for TimedIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for TimedIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.tcp).poll_write(cx, buf);
        this.progress(cx, polled)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.tcp).poll_write_vectored(cx, bufs);
        this.progress(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;

    use super::*;

    #[tokio::test]
    async fn a_write_the_peer_never_reads_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut listener = Listener::new(listener, options(1), Arc::default());
        let _peer = TcpStream::connect(addr).await.unwrap();
        let (mut io, _) = listener.accept().await;
        #[cfg(target_os = "linux")]
        assert_eq!(
            socket2::SockRef::from(&io.tcp).tcp_user_timeout().unwrap(),
            Some(Duration::from_millis(300))
        );
        let chunk = vec![0u8; 64 * 1024];
        let started = std::time::Instant::now();
        let err = loop {
            if let Err(err) = io.write_all(&chunk).await {
                break err;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "never timed out"
            );
        };
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test]
    async fn a_socket_past_the_limit_is_answered_503_and_closed() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let metrics = Arc::new(Metrics::default());
        let mut listener = Listener::new(listener, options(1), Arc::clone(&metrics));
        let _first = TcpStream::connect(addr).await.unwrap();
        let mut second = TcpStream::connect(addr).await.unwrap();
        let (held, _) = listener.accept().await;
        let accepting = tokio::spawn(async move { listener.accept().await });
        let mut answer = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut second, &mut answer)
            .await
            .unwrap();
        assert!(answer.starts_with("HTTP/1.1 503 "), "{answer:?}");
        assert_eq!(
            metrics.sockets.load(std::sync::atomic::Ordering::Relaxed),
            1
        );
        drop(held);
        // The place is free again: the next socket is accepted.
        let _third = TcpStream::connect(addr).await.unwrap();
        let (_io, _) = accepting.await.unwrap();
        assert_eq!(
            metrics
                .sockets_refused
                .load(std::sync::atomic::Ordering::Relaxed),
            1
        );
    }

    fn options(max_sockets: usize) -> SocketOptions {
        SocketOptions {
            send_timeout: Duration::from_millis(300),
            send_buffer: Some(64 * 1024),
            max_sockets,
        }
    }
}
