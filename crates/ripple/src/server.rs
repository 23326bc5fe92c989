//! Serving connections: [`serve`] for the one-liner, [`Server`] for options and graceful
//! shutdown, [`Acceptor`] to run the opening handshake on a stream the caller already has.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use proto::extension::deflate;
use proto::handshake::server::{self, Accept, Request};
use proto::handshake::{HandshakeError, Limits};
use proto::{CloseCode, CloseFrame, Connection, Role, State};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};
use tokio::task::JoinSet;

use crate::clock::now;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::handshake::{HandshakeInfo, read_head};
use crate::socket::Shared;
use crate::stream::MaybeTlsStream;
use crate::websocket::{Reader, WebSocket};

/// Serves WebSocket connections on `addr`, calling `handler` for each, until the process ends.
///
/// ```no_run
/// # async fn run() -> std::io::Result<()> {
/// ripple::serve("127.0.0.1:8765", |mut ws: ripple::WebSocket| async move {
///     while let Ok(Some(message)) = ws.recv().await {
///         if ws.send(message).await.is_err() {
///             break;
///         }
///     }
/// })
/// .await
/// # }
/// ```
pub async fn serve<A, H, F>(addr: A, handler: H) -> io::Result<()>
where
    A: ToSocketAddrs,
    H: Fn(WebSocket) -> F + Send + Sync + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    Server::bind(addr)
        .await?
        .run(handler, std::future::pending())
        .await
}

/// Runs the opening handshake on a stream with default options.
pub async fn accept<S: AsyncRead + AsyncWrite + Unpin>(io: S) -> Result<WebSocket<S>> {
    Acceptor::new().accept(io).await
}

/// The answer of a handshake hook that refuses a connection.
#[derive(Clone, Debug)]
pub struct Reject {
    /// HTTP status (4xx or 5xx).
    pub status: u16,
    /// Extra response headers.
    pub headers: Vec<(String, String)>,
    /// Response body, sent as `text/plain`.
    pub body: Vec<u8>,
}

impl Reject {
    /// A rejection with a status and a short body.
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }
}

type Hook = dyn Fn(&Request) -> std::result::Result<Accept, Reject> + Send + Sync;

/// Runs the server side of the opening handshake.
#[derive(Clone, Default)]
pub struct Acceptor {
    /// Shared by every connection this acceptor opens.
    config: Arc<Config>,
    limits: Limits,
    protocols: Vec<String>,
    hook: Option<Arc<Hook>>,
}

impl Acceptor {
    /// Default options: accept every valid upgrade, no subprotocol.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets limits and timers for accepted connections.
    pub fn config(mut self, config: Config) -> Self {
        self.config = Arc::new(config);
        self
    }

    /// The options in force.
    pub fn current_config(&self) -> &Config {
        &self.config
    }

    /// Subprotocols this server speaks, in order of preference.
    pub fn protocols<I: IntoIterator<Item = P>, P: Into<String>>(mut self, protocols: I) -> Self {
        self.protocols = protocols.into_iter().map(Into::into).collect();
        self
    }

    /// Inspects each valid upgrade request (method, path, query, headers) and accepts it (with
    /// a subprotocol and extra headers) or rejects it with an HTTP status and body.
    pub fn on_handshake<F>(mut self, hook: F) -> Self
    where
        F: Fn(&Request) -> std::result::Result<Accept, Reject> + Send + Sync + 'static,
    {
        self.hook = Some(Arc::new(hook));
        self
    }

    /// Runs the opening handshake on `io` within the open timeout.
    pub async fn accept<S: AsyncRead + AsyncWrite + Unpin>(&self, io: S) -> Result<WebSocket<S>> {
        tokio::time::timeout(self.config.open_timeout, self.handshake(io))
            .await
            .map_err(|_| Error::Timeout("opening handshake"))?
    }

    /// The decision for a valid request: the hook's, or the default subprotocol choice.
    pub fn decide(&self, request: &Request) -> std::result::Result<Accept, Reject> {
        if let Some(hook) = &self.hook {
            return hook(request);
        }
        let supported: Vec<&str> = self.protocols.iter().map(String::as_str).collect();
        let protocol = server::select_protocol(&request.protocols(), &supported);
        Ok(Accept {
            protocol,
            ..Accept::default()
        })
    }

    /// Negotiates extensions for an accepted request (unless the hook answered for them) and
    /// builds the protocol connection to match.
    pub fn negotiate(&self, request: &Request, mut accept: Accept) -> (Accept, Connection) {
        let protocol = self.config.core();
        let negotiated = match (&self.config.compression, &accept.extensions) {
            (Some(deflate), None) => deflate::accept_offer(&request.extensions(), deflate),
            _ => None,
        };
        let Some((response, extension)) = negotiated else {
            return (accept, Connection::new(Role::Server, protocol, now()));
        };
        accept.extensions = Some(response);
        (
            accept,
            Connection::with_extension(Role::Server, protocol, Box::new(extension), now()),
        )
    }

    async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        mut io: S,
    ) -> Result<WebSocket<S>> {
        let mut buf = BytesMut::with_capacity(1024);
        let limits = self.limits;
        let parsed = read_head(&mut io, &mut buf, |b| server::parse_request(b, &limits)).await;
        let (request, consumed) = match parsed {
            Ok(parsed) => parsed,
            Err(Error::Handshake(err)) => return Err(refuse(&mut io, err).await),
            Err(err) => return Err(err),
        };
        buf.advance(consumed);
        let valid = match request.validate() {
            Ok(valid) => valid,
            Err(err) => return Err(refuse(&mut io, err).await),
        };
        let accept = match self.decide(&request) {
            Ok(accept) => accept,
            Err(reject) => return Err(send_rejection(&mut io, reject).await),
        };
        let (accept, mut proto) = self.negotiate(&request, accept);
        io.write_all(&server::accept_response(&valid, &accept)?)
            .await?;
        proto.receive(&buf);
        let info = HandshakeInfo {
            target: request.target,
            headers: request.headers,
            protocol: accept.protocol,
            extensions: accept.extensions,
        };
        Ok(WebSocket::from_shared(Shared::new(
            io,
            proto,
            Arc::clone(&self.config),
            info,
        )))
    }
}

impl std::fmt::Debug for Acceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acceptor")
            .field("config", &self.config)
            .field("protocols", &self.protocols)
            .field("hook", &self.hook.is_some())
            .finish()
    }
}

/// Answers a bad upgrade request with the status the core assigns to it.
async fn refuse<S: AsyncWrite + Unpin>(io: &mut S, err: HandshakeError) -> Error {
    tracing::debug!(status = err.status(), "rejected handshake: {err}");
    let _ = io.write_all(&server::error_response(&err)).await;
    let _ = io.shutdown().await;
    Error::Handshake(err)
}

async fn send_rejection<S: AsyncWrite + Unpin>(io: &mut S, reject: Reject) -> Error {
    tracing::debug!(
        status = reject.status,
        "handshake refused by the handshake hook"
    );
    match server::reject_response(reject.status, &reject.headers, &reject.body) {
        Ok(bytes) => {
            let _ = io.write_all(&bytes).await;
            let _ = io.shutdown().await;
        }
        Err(err) => return Error::Encode(err),
    }
    Error::Rejected {
        status: reject.status,
        headers: reject.headers,
        body: reject.body,
    }
}

/// A listening WebSocket server.
pub struct Server {
    listener: TcpListener,
    acceptor: Acceptor,
    #[cfg(feature = "tls")]
    tls: Option<tokio_rustls::TlsAcceptor>,
}

type Registry = Arc<Mutex<HashMap<u64, Weak<Shared<MaybeTlsStream>>>>>;

impl Server {
    /// Binds a listener on `addr`.
    pub async fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<Self> {
        Ok(Self::from_listener(TcpListener::bind(addr).await?))
    }

    /// Serves on a listener the caller already bound.
    pub fn from_listener(listener: TcpListener) -> Self {
        Self {
            listener,
            acceptor: Acceptor::new(),
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Sets the handshake options (config, subprotocols, hook).
    pub fn acceptor(mut self, acceptor: Acceptor) -> Self {
        self.acceptor = acceptor;
        self
    }

    /// Serves `wss://` with this rustls configuration (see [`crate::tls::server_config`]).
    #[cfg(feature = "tls")]
    pub fn tls(mut self, config: Arc<tokio_rustls::rustls::ServerConfig>) -> Self {
        self.tls = Some(tokio_rustls::TlsAcceptor::from(config));
        self
    }

    /// Accepts connections and runs `handler` on each until `shutdown` completes; then stops
    /// accepting, closes every open connection with 1001 and waits (bounded by the close
    /// timeout) for them to finish.
    pub async fn run<H, F>(self, handler: H, shutdown: impl Future<Output = ()>) -> io::Result<()>
    where
        H: Fn(WebSocket) -> F + Send + Sync + 'static,
        F: Future<Output = ()> + Send + 'static,
    {
        let handler = Arc::new(handler);
        let acceptor = Arc::new(self.acceptor);
        let registry = Registry::default();
        let mut tasks = JoinSet::new();
        let mut next_id = 0u64;
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = self.listener.accept() => {
                    let (tcp, peer) = match accepted {
                        Ok(accepted) => accepted,
                        Err(err) => {
                            // Out of file descriptors and the like: back off instead of spinning.
                            tracing::warn!("accept failed: {err}");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    next_id += 1;
                    let conn = Conn {
                        id: next_id,
                        acceptor: Arc::clone(&acceptor),
                        registry: Arc::clone(&registry),
                        #[cfg(feature = "tls")]
                        tls: self.tls.clone(),
                    };
                    tasks.spawn(conn.run(tcp, peer, Arc::clone(&handler)));
                }
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            }
        }
        drop(self.listener);
        close_all(
            &registry,
            CloseFrame::new(CloseCode::GOING_AWAY, "server shutting down"),
        );
        let grace = acceptor.config.close_timeout + Duration::from_secs(1);
        if tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} })
            .await
            .is_err()
        {
            tracing::warn!(
                "{} connections did not close in time; dropping them",
                tasks.len()
            );
            tasks.abort_all();
        }
        Ok(())
    }
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("listener", &self.listener)
            .field("acceptor", &self.acceptor)
            .finish()
    }
}

/// Starts the closing handshake on every open connection and wakes its tasks to send it.
fn close_all(registry: &Registry, frame: CloseFrame) {
    let live: Vec<_> = {
        let map = registry.lock().unwrap_or_else(PoisonError::into_inner);
        map.values().filter_map(Weak::upgrade).collect()
    };
    for shared in live {
        {
            let mut inner = shared.lock();
            if inner.proto.state() == State::Open {
                let _ = inner.proto.send_close(Some(frame.clone()));
            }
        }
        shared.wake_all();
    }
}

/// One accepted TCP connection.
struct Conn {
    id: u64,
    acceptor: Arc<Acceptor>,
    registry: Registry,
    #[cfg(feature = "tls")]
    tls: Option<tokio_rustls::TlsAcceptor>,
}

impl Conn {
    async fn run<H, F>(self, tcp: TcpStream, peer: SocketAddr, handler: Arc<H>)
    where
        H: Fn(WebSocket) -> F,
        F: Future<Output = ()>,
    {
        let _ = tcp.set_nodelay(true);
        // Boxed: the handshake's state would otherwise stay in every idle connection's task.
        let ws = match Box::pin(self.open(tcp)).await {
            Ok(ws) => ws,
            Err(err) => {
                tracing::debug!(%peer, "connection not opened: {err}");
                return;
            }
        };
        let shared = Arc::clone(ws.shared());
        self.registry
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(self.id, Arc::downgrade(&shared));
        handler(ws).await;
        finish_after_handler(shared).await;
        self.registry
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.id);
    }

    async fn open(&self, tcp: TcpStream) -> Result<WebSocket> {
        #[cfg(feature = "tls")]
        if let Some(tls) = &self.tls {
            let timeout = self.acceptor.config.open_timeout;
            let stream = tokio::time::timeout(timeout, tls.accept(tcp))
                .await
                .map_err(|_| Error::Timeout("TLS handshake"))?
                .map_err(|err| Error::Tls(err.to_string()))?;
            return self
                .acceptor
                .accept(MaybeTlsStream::ServerTls(Box::new(stream)))
                .await;
        }
        self.acceptor.accept(MaybeTlsStream::Plain(tcp)).await
    }
}

/// A handler that returns leaves the connection to the server, which closes it with 1000 (as
/// python-websockets does) and finishes the closing handshake.
pub(crate) async fn finish_after_handler<S: AsyncRead + AsyncWrite + Unpin>(
    shared: Arc<Shared<S>>,
) {
    {
        let mut inner = shared.lock();
        if inner.proto.state() == State::Open {
            let _ = inner
                .proto
                .send_close(Some(CloseFrame::new(CloseCode::NORMAL, "")));
        }
    }
    let mut reader = Reader::new(shared);
    while let Ok(Some(_)) = reader.recv().await {}
}
