//! The server's TCP listener: every accepted connection gets `TCP_NODELAY` (small pushes go out
//! at once) and a send timeout.
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
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Sleep};

/// A TCP listener whose connections time out writes that make no progress.
#[derive(Debug)]
pub struct Listener {
    inner: TcpListener,
    send_timeout: Duration,
}

impl Listener {
    /// Wraps a bound listener.
    pub fn new(inner: TcpListener, send_timeout: Duration) -> Self {
        Self {
            inner,
            send_timeout,
        }
    }
}

impl axum::serve::Listener for Listener {
    type Io = TimedIo;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.inner.accept().await {
                Ok((tcp, addr)) => {
                    let _ = tcp.set_nodelay(true);
                    let _ =
                        socket2::SockRef::from(&tcp).set_tcp_user_timeout(Some(self.send_timeout));
                    return (TimedIo::new(tcp, self.send_timeout), addr);
                }
                Err(err) => accept_failed(&err).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// A failed `accept`: a connection that died in the backlog is nothing; anything else (out of
/// file descriptors) is logged and retried a second later rather than spinning.
async fn accept_failed(err: &io::Error) {
    use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        err.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::error!("accept failed: {err}; retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// The client's address, for handlers that need it (`ConnectInfo<Peer>`).
#[derive(Clone, Copy, Debug)]
pub struct Peer(pub SocketAddr);

impl Connected<IncomingStream<'_, Listener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, Listener>) -> Self {
        Self(*stream.remote_addr())
    }
}

/// A TCP stream whose writes fail with `TimedOut` after `timeout` without progress.
#[derive(Debug)]
pub struct TimedIo {
    tcp: TcpStream,
    timeout: Duration,
    /// Allocated at the first stall and reused; `armed` while a write is waiting.
    stall: Option<Pin<Box<Sleep>>>,
    armed: bool,
}

impl TimedIo {
    fn new(tcp: TcpStream, timeout: Duration) -> Self {
        Self {
            tcp,
            timeout,
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
        let mut listener = Listener::new(listener, Duration::from_millis(300));
        let _peer = TcpStream::connect(addr).await.unwrap();
        let (mut io, _) = axum::serve::Listener::accept(&mut listener).await;
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
}
