//! Opening a connection: `connect(url)`, or a [`ClientBuilder`] for headers, subprotocols,
//! origin, limits, timeouts and TLS options.

use std::net::SocketAddr;

use bytes::{Buf, BytesMut};
use proto::extension::deflate;
use proto::handshake::client::{self, ClientRequest, Response};
use proto::handshake::{HandshakeError, Limits};
use proto::{Connection, Role};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use url::{Host, Url};

use crate::clock::now;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::handshake::{HandshakeInfo, read_head};
use crate::socket::Shared;
use crate::stream::MaybeTlsStream;
#[cfg(feature = "tls")]
use crate::tls::{TlsOptions, client_config};
use crate::websocket::WebSocket;

/// The most body bytes kept from a rejected handshake.
const MAX_REJECTION_BODY: usize = 64 * 1024;

/// Connects to a `ws://` or `wss://` URL with default options.
pub async fn connect(url: &str) -> Result<WebSocket> {
    ClientBuilder::new(url).connect().await
}

/// Options for opening a client connection.
#[derive(Clone, Debug)]
pub struct ClientBuilder {
    url: String,
    config: Config,
    request: ClientRequest,
    limits: Limits,
    #[cfg(feature = "tls")]
    tls: TlsOptions,
}

impl ClientBuilder {
    /// Starts from a `ws://` or `wss://` URL.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            config: Config::default(),
            request: ClientRequest::default(),
            limits: Limits::default(),
            #[cfg(feature = "tls")]
            tls: TlsOptions::default(),
        }
    }

    /// Sets limits and timers.
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Adds a request header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.request.headers.push((name.into(), value.into()));
        self
    }

    /// Offers a subprotocol (in order of preference).
    pub fn protocol(mut self, protocol: impl Into<String>) -> Self {
        self.request.protocols.push(protocol.into());
        self
    }

    /// Sets the `Origin` header.
    pub fn origin(mut self, origin: impl Into<String>) -> Self {
        self.request.origin = Some(origin.into());
        self
    }

    /// Trusts these PEM-encoded CA certificates in addition to the system's.
    #[cfg(feature = "tls")]
    pub fn root_ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls.root_ca_pem = Some(pem.into());
        self
    }

    /// Accepts any server certificate. For tests only.
    #[cfg(feature = "tls")]
    pub fn danger_accept_invalid_certs(mut self, accept: bool) -> Self {
        self.tls.danger_accept_invalid_certs = accept;
        self
    }

    /// Opens the TCP (and TLS) connection and runs the opening handshake, within the open
    /// timeout.
    pub async fn connect(self) -> Result<WebSocket> {
        let timeout = self.config.open_timeout;
        tokio::time::timeout(timeout, self.connect_inner())
            .await
            .map_err(|_| Error::Timeout("opening handshake"))?
    }

    /// Runs the opening handshake over a stream the caller already connected (the URL still
    /// supplies `Host` and the path).
    pub async fn connect_on<S: AsyncRead + AsyncWrite + Unpin>(
        self,
        io: S,
    ) -> Result<WebSocket<S>> {
        let target = Target::parse(&self.url)?;
        let timeout = self.config.open_timeout;
        tokio::time::timeout(timeout, self.handshake(io, &target))
            .await
            .map_err(|_| Error::Timeout("opening handshake"))?
    }

    async fn connect_inner(self) -> Result<WebSocket> {
        let target = Target::parse(&self.url)?;
        let tcp = target.connect_tcp().await?;
        tcp.set_nodelay(true)?;
        let io = self.wrap_tls(tcp, &target).await?;
        self.handshake(io, &target).await
    }

    #[cfg(feature = "tls")]
    async fn wrap_tls(&self, tcp: TcpStream, target: &Target) -> Result<MaybeTlsStream> {
        use tokio_rustls::rustls::pki_types::ServerName;
        if !target.secure {
            return Ok(MaybeTlsStream::Plain(tcp));
        }
        let name = ServerName::try_from(target.host.clone())
            .map_err(|err| Error::Tls(format!("bad server name {:?}: {err}", target.host)))?;
        let connector = tokio_rustls::TlsConnector::from(client_config(&self.tls)?);
        let tls = connector
            .connect(name, tcp)
            .await
            .map_err(|err| Error::Tls(err.to_string()))?;
        Ok(MaybeTlsStream::ClientTls(Box::new(tls)))
    }

    #[cfg(not(feature = "tls"))]
    async fn wrap_tls(&self, tcp: TcpStream, target: &Target) -> Result<MaybeTlsStream> {
        if target.secure {
            return Err(Error::Tls("wss:// needs the `tls` feature".into()));
        }
        Ok(MaybeTlsStream::Plain(tcp))
    }

    async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
        self,
        mut io: S,
        target: &Target,
    ) -> Result<WebSocket<S>> {
        let mut request = self.request;
        request.host = target.host_header.clone();
        request.target = target.path.clone();
        if let Some(deflate) = &self.config.compression {
            request.extensions = Some(deflate::client_offer(deflate));
        }
        let key = client::new_key();
        io.write_all(&client::encode_request(&request, &key)?)
            .await?;
        let mut buf = BytesMut::with_capacity(1024);
        let limits = self.limits;
        let (response, consumed) =
            read_head(&mut io, &mut buf, |b| client::parse_response(b, &limits)).await?;
        buf.advance(consumed);
        if response.status != 101 {
            return Err(rejection(&mut io, response, buf).await);
        }
        let accepted = client::validate_response(&response, &key, &request)?;
        let mut proto = client_connection(&self.config, accepted.extensions.as_deref())?;
        proto.receive(&buf);
        let info = HandshakeInfo {
            target: request.target,
            headers: response.headers,
            protocol: accepted.protocol,
            extensions: accepted.extensions,
        };
        Ok(WebSocket::from_shared(Shared::new(
            io,
            proto,
            self.config,
            info,
        )))
    }
}

/// The protocol connection for the server's extension answer (RFC 7692 §5: a client MUST fail
/// the connection when the answer is not one it can accept).
fn client_connection(config: &Config, extensions: Option<&str>) -> Result<Connection> {
    let protocol = config.core();
    let (Some(answer), Some(deflate)) = (extensions, &config.compression) else {
        return Ok(Connection::new(Role::Client, protocol, now()));
    };
    let extension = deflate::accept_response(answer, deflate)
        .map_err(|why| HandshakeError::UnexpectedExtension(format!("{answer}: {why}")))?;
    Ok(Connection::with_extension(
        Role::Client,
        protocol,
        Box::new(extension),
        now(),
    ))
}

/// Reads the body of a non-101 answer (bounded) and turns it into [`Error::Rejected`].
async fn rejection<S: AsyncRead + Unpin>(
    io: &mut S,
    response: Response,
    mut body: BytesMut,
) -> Error {
    let want = response
        .content_length()
        .unwrap_or(MAX_REJECTION_BODY)
        .min(MAX_REJECTION_BODY);
    while body.len() < want {
        body.reserve(want - body.len());
        match io.read_buf(&mut body).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    body.truncate(want);
    let headers = response
        .headers
        .iter()
        .map(|h| {
            (
                h.name.clone(),
                String::from_utf8_lossy(&h.value).into_owned(),
            )
        })
        .collect();
    Error::Rejected {
        status: response.status,
        headers,
        body: body.to_vec(),
    }
}

/// The parts of a WebSocket URL the client needs.
#[derive(Debug)]
struct Target {
    secure: bool,
    /// Host name or address, without brackets (for DNS and TLS).
    host: String,
    addr: Option<SocketAddr>,
    port: u16,
    /// The `Host` header: host, plus the port when it is not the scheme's default.
    host_header: String,
    /// Path and query.
    path: String,
}

impl Target {
    fn parse(url: &str) -> Result<Self> {
        let parsed = Url::parse(url).map_err(|err| Error::Url(format!("{url}: {err}")))?;
        let secure = match parsed.scheme() {
            "ws" => false,
            "wss" => true,
            other => {
                return Err(Error::Url(format!(
                    "{url}: scheme {other:?} is not ws or wss"
                )));
            }
        };
        let port = parsed
            .port_or_known_default()
            .unwrap_or(if secure { 443 } else { 80 });
        let (host, addr) = match parsed.host() {
            Some(Host::Domain(name)) => (name.to_owned(), None),
            Some(Host::Ipv4(ip)) => (ip.to_string(), Some(SocketAddr::from((ip, port)))),
            Some(Host::Ipv6(ip)) => (ip.to_string(), Some(SocketAddr::from((ip, port)))),
            None => return Err(Error::Url(format!("{url}: no host"))),
        };
        let host_str = parsed.host_str().unwrap_or(&host);
        let host_header = match parsed.port() {
            Some(port) => format!("{host_str}:{port}"),
            None => host_str.to_owned(),
        };
        let mut path = parsed.path().to_owned();
        if let Some(query) = parsed.query() {
            path.push('?');
            path.push_str(query);
        }
        Ok(Self {
            secure,
            host,
            addr,
            port,
            host_header,
            path,
        })
    }

    async fn connect_tcp(&self) -> Result<TcpStream> {
        Ok(match self.addr {
            Some(addr) => TcpStream::connect(addr).await?,
            None => TcpStream::connect((self.host.as_str(), self.port)).await?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let t = Target::parse("ws://example.com/chat?room=1").unwrap();
        assert_eq!(
            (t.secure, t.port, t.host_header.as_str(), t.path.as_str()),
            (false, 80, "example.com", "/chat?room=1")
        );
        let t = Target::parse("wss://[::1]:9443").unwrap();
        assert_eq!(
            (
                t.secure,
                t.port,
                t.host.as_str(),
                t.host_header.as_str(),
                t.path.as_str()
            ),
            (true, 9443, "::1", "[::1]:9443", "/")
        );
        assert!(matches!(Target::parse("http://x"), Err(Error::Url(_))));
        assert!(matches!(Target::parse("not a url"), Err(Error::Url(_))));
    }
}
