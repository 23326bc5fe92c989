//! WebSocket routes in a hyper 1 or axum application, beside its HTTP routes.
//!
//! hyper reads the request head; [`Upgrade`] hands it to the core's validator, so a request is
//! judged by the same RFC 6455 rules, and refused with the same status and headers, as on
//! [`Server`](crate::Server). The 101 answer is the core's too, rebuilt as an [`http::Response`].
//! Once hyper has sent it, the callback gets a Ripple [`WebSocket`] over the upgraded connection.
//!
//! With hyper (serve the connection with `.with_upgrades()`):
//!
//! ```no_run
//! use std::convert::Infallible;
//!
//! use bytes::Bytes;
//! use http_body_util::Full;
//! use ripple::Acceptor;
//! use ripple::upgrade::{Upgrade, UpgradedWebSocket};
//!
//! async fn handle(
//!     request: http::Request<hyper::body::Incoming>,
//! ) -> Result<http::Response<Full<Bytes>>, Infallible> {
//!     if request.uri().path() != "/ws" {
//!         return Ok(http::Response::new(Full::from("hello")));
//!     }
//!     Ok(match Upgrade::from_request(&request) {
//!         Ok(upgrade) => upgrade.on_upgrade(&Acceptor::new(), echo),
//!         Err(err) => err.into_http_response(),
//!     })
//! }
//!
//! async fn echo(mut ws: UpgradedWebSocket) {
//!     while let Ok(Some(message)) = ws.recv().await {
//!         if ws.send(message).await.is_err() {
//!             break;
//!         }
//!     }
//! }
//! ```
//!
//! With axum, take a [`WebSocketUpgrade`] argument (feature `axum`).

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderName, HeaderValue};
use http::{Extensions, HeaderMap, Method, StatusCode, Uri, Version};
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use proto::Connection;
use proto::handshake::server::{self, Request, ValidRequest};
use proto::handshake::{EncodeError, HandshakeError, Headers};

use crate::config::Config;
use crate::handshake::HandshakeInfo;
use crate::server::{Acceptor, Reject};
use crate::socket::Shared;
use crate::websocket::WebSocket;

#[cfg(feature = "axum")]
mod extract;

#[cfg(feature = "axum")]
pub use extract::WebSocketUpgrade;

/// A WebSocket over a connection hyper handed over after the 101 response.
pub type UpgradedWebSocket = WebSocket<UpgradedIo>;

/// The transport under an upgraded connection.
pub type UpgradedIo = TokioIo<Upgraded>;

/// A valid opening handshake request, waiting for the application's answer.
#[must_use = "answer with `on_upgrade`, whose response completes the handshake"]
pub struct Upgrade {
    request: Request,
    valid: ValidRequest,
    on_upgrade: OnUpgrade,
}

impl Upgrade {
    /// Validates `request` as an opening handshake (RFC 6455 §4.2.1).
    pub fn from_request<B>(request: &http::Request<B>) -> Result<Self, UpgradeError> {
        let head = (request.method(), request.uri(), request.version());
        Self::new(head, request.headers(), request.extensions())
    }

    /// Validates a request given as parts, as extractors see it.
    pub fn from_parts(parts: &http::request::Parts) -> Result<Self, UpgradeError> {
        let head = (&parts.method, &parts.uri, parts.version);
        Self::new(head, &parts.headers, &parts.extensions)
    }

    /// The request as the core sees it: path, query, origin, offered subprotocols.
    pub fn request(&self) -> &Request {
        &self.request
    }

    /// Answers the handshake as `acceptor` decides (subprotocol, hook) and, once hyper has
    /// sent the 101, runs `callback` on the connection with the acceptor's config.
    ///
    /// Returns the response to send: the 101, or the refusal. When `callback` returns, the
    /// connection is closed with 1000, as [`Server`](crate::Server) does.
    pub fn on_upgrade<B, F, Fut>(self, acceptor: &Acceptor, callback: F) -> http::Response<B>
    where
        B: From<Bytes>,
        F: FnOnce(UpgradedWebSocket) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        match self.accept(acceptor, callback) {
            Ok(response) => response,
            Err(err) => err.into_http_response(),
        }
    }

    fn new(
        (method, uri, version): (&Method, &Uri, Version),
        headers: &HeaderMap,
        extensions: &Extensions,
    ) -> Result<Self, UpgradeError> {
        let mut request = Request::new(method.as_str(), uri.to_string());
        request.version = minor_version(version);
        request.headers = core_headers(headers);
        let valid = request.validate()?;
        // hyper's HTTP/1 server attaches this to every HTTP/1.1 request with an `Upgrade`.
        let Some(on_upgrade) = extensions.get::<OnUpgrade>().cloned() else {
            return Err(UpgradeError::NotUpgradable);
        };
        Ok(Self {
            request,
            valid,
            on_upgrade,
        })
    }

    fn accept<B, F, Fut>(
        self,
        acceptor: &Acceptor,
        callback: F,
    ) -> Result<http::Response<B>, UpgradeError>
    where
        B: From<Bytes>,
        F: FnOnce(UpgradedWebSocket) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let accept = acceptor
            .decide(&self.request)
            .map_err(UpgradeError::Rejected)?;
        // The same subprotocol and extension (permessage-deflate) answer as on `Server`.
        let (accept, proto) = acceptor.negotiate(&self.request, accept);
        let head = server::accept_response(&self.valid, &accept)?;
        let response = from_wire(head).ok_or(UpgradeError::Internal)?;
        let info = HandshakeInfo {
            target: self.request.target,
            headers: self.request.headers,
            protocol: accept.protocol,
            extensions: accept.extensions,
        };
        let config = acceptor.current_config().clone();
        tokio::spawn(run_upgraded(self.on_upgrade, proto, config, info, callback));
        Ok(response)
    }
}

impl std::fmt::Debug for Upgrade {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upgrade")
            .field("request", &self.request)
            .finish_non_exhaustive()
    }
}

/// Why a request got no WebSocket. [`UpgradeError::into_http_response`] is the answer to send.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    /// The request is not a valid opening handshake; answered as the core says.
    #[error("invalid WebSocket handshake: {0}")]
    Handshake(#[from] HandshakeError),
    /// The handshake hook refused the connection.
    #[error("handshake refused by the handshake hook with HTTP {}", .0.status)]
    Rejected(Reject),
    /// A valid request hyper cannot hand over (not HTTP/1.1, or not served by hyper).
    #[error("the connection cannot be upgraded")]
    NotUpgradable,
    /// The hook's answer cannot be written (bad header, subprotocol not offered, bad status).
    #[error("invalid handshake answer: {0}")]
    Encode(#[from] EncodeError),
    /// The core's response head could not be rebuilt as an `http::Response`.
    #[error("internal error while building the handshake response")]
    Internal,
}

impl UpgradeError {
    /// The HTTP status [`UpgradeError::into_http_response`] answers with.
    pub fn status(&self) -> u16 {
        match self {
            Self::Handshake(err) => err.status(),
            Self::Rejected(reject) if encode_reject(reject).is_ok() => reject.status,
            Self::Rejected(_) | Self::NotUpgradable | Self::Encode(_) | Self::Internal => 500,
        }
    }

    /// The response refusing the upgrade: the core's error response (with the headers its
    /// status requires, e.g. `Sec-WebSocket-Version: 13` with 426), the hook's rejection, or a
    /// 500 for a server-side fault.
    pub fn into_http_response<B: From<Bytes>>(self) -> http::Response<B> {
        tracing::debug!(status = self.status(), "WebSocket upgrade refused: {self}");
        let head = match &self {
            Self::Handshake(err) => server::error_response(err),
            Self::Rejected(reject) => match encode_reject(reject) {
                Ok(head) => head,
                Err(err) => return internal_error(&Self::Encode(err)),
            },
            Self::NotUpgradable | Self::Encode(_) | Self::Internal => return internal_error(&self),
        };
        from_wire(head).unwrap_or_else(|| internal_error(&Self::Internal))
    }
}

/// Waits for hyper to hand over the connection, then runs the application on it.
async fn run_upgraded<F, Fut>(
    on_upgrade: OnUpgrade,
    proto: Connection,
    config: Config,
    info: HandshakeInfo,
    callback: F,
) where
    F: FnOnce(UpgradedWebSocket) -> Fut,
    Fut: Future<Output = ()>,
{
    // The upgrade completes once hyper has written the 101: bounded like any opening handshake.
    let upgraded = match tokio::time::timeout(config.open_timeout, on_upgrade).await {
        Ok(Ok(upgraded)) => upgraded,
        Ok(Err(err)) => return tracing::debug!("WebSocket upgrade failed: {err}"),
        Err(_) => return tracing::debug!("WebSocket upgrade timed out"),
    };
    // Bytes hyper read past the request head stay inside `Upgraded`: `proto` starts empty.
    let ws = WebSocket::from_shared(Shared::new(TokioIo::new(upgraded), proto, config, info));
    let shared = Arc::clone(ws.shared());
    callback(ws).await;
    crate::server::finish_after_handler(shared).await;
}

/// The core's `Request::version`: the minor version of HTTP/1.x; later versions count as 1
/// (RFC 6455 §4.2.1 asks for "HTTP/1.1 or higher").
fn minor_version(version: Version) -> u8 {
    match version {
        Version::HTTP_09 | Version::HTTP_10 => 0,
        _ => 1,
    }
}

/// hyper's header map as the core's header list; repeated headers stay separate lines.
fn core_headers(headers: &HeaderMap) -> Headers {
    headers
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_bytes()))
        .collect()
}

fn encode_reject(reject: &Reject) -> Result<Vec<u8>, EncodeError> {
    server::reject_response(reject.status, &reject.headers, &reject.body)
}

/// Rebuilds a response the core wrote as wire bytes, so hyper sends the core's status, headers
/// and body unchanged. `Content-Length` is left to hyper, which derives it from the body.
fn from_wire<B: From<Bytes>>(wire: Vec<u8>) -> Option<http::Response<B>> {
    let wire = Bytes::from(wire);
    let lines = wire.iter().filter(|&&byte| byte == b'\n').count();
    let mut slots = vec![httparse::EMPTY_HEADER; lines];
    let mut parsed = httparse::Response::new(&mut slots);
    let httparse::Status::Complete(head_len) = parsed.parse(&wire).ok()? else {
        return None;
    };
    let status = StatusCode::from_u16(parsed.code?).ok()?;
    let mut headers = HeaderMap::with_capacity(parsed.headers.len());
    for header in parsed.headers.iter() {
        let name = HeaderName::from_bytes(header.name.as_bytes()).ok()?;
        if name != CONTENT_LENGTH {
            headers.append(name, HeaderValue::from_bytes(header.value).ok()?);
        }
    }
    let mut response = http::Response::new(B::from(wire.slice(head_len..)));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    Some(response)
}

/// A 500 for a fault on our side; the details go to the log, not to the peer.
fn internal_error<B: From<Bytes>>(err: &UpgradeError) -> http::Response<B> {
    tracing::warn!("WebSocket upgrade failed on the server side: {err}");
    let body = Bytes::from_static(b"WebSocket upgrade failed\n");
    let mut response = http::Response::new(B::from(body));
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    let text = HeaderValue::from_static("text/plain; charset=utf-8");
    response.headers_mut().insert(CONTENT_TYPE, text);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

    fn rfc_1_3_request() -> http::request::Builder {
        http::Request::get("/chat")
            .header("Host", "server.example.com")
            .header("Upgrade", "websocket")
            .header("Connection", "Upgrade")
            .header("Sec-WebSocket-Key", KEY)
            .header("Sec-WebSocket-Protocol", "chat, superchat")
            .header("Sec-WebSocket-Version", "13")
    }

    fn upgradable(builder: http::request::Builder) -> http::Request<()> {
        let mut request = builder.body(()).unwrap();
        // What hyper's HTTP/1 server attaches; never resolved here.
        let on_upgrade = hyper::upgrade::on(http::Response::new(()));
        request.extensions_mut().insert(on_upgrade);
        request
    }

    /// The RFC 6455 §1.3 request with header `name` set to `value` (or removed).
    fn rfc_request_with(name: &str, value: Option<&str>) -> http::Request<()> {
        let mut request = upgradable(rfc_1_3_request());
        let headers = request.headers_mut();
        let name = HeaderName::from_bytes(name.as_bytes()).unwrap();
        match value {
            Some(value) => headers.insert(name, HeaderValue::from_str(value).unwrap()),
            None => headers.remove(name),
        };
        request
    }

    fn refused(request: &http::Request<()>) -> http::Response<Bytes> {
        let err = Upgrade::from_request(request).unwrap_err();
        err.into_http_response()
    }

    fn header<'a>(response: &'a http::Response<Bytes>, name: &str) -> Option<&'a str> {
        response.headers().get(name).map(|v| v.to_str().unwrap())
    }

    #[tokio::test]
    async fn rfc6455_4_2_2_accept_response_carries_accept_key_and_protocol() {
        let upgrade = Upgrade::from_request(&upgradable(rfc_1_3_request())).unwrap();
        assert_eq!(upgrade.request().path(), "/chat");
        let acceptor = Acceptor::new().protocols(["chat"]);
        let response: http::Response<Bytes> = upgrade.on_upgrade(&acceptor, |_ws| async {});
        assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
        assert_eq!(header(&response, "upgrade"), Some("websocket"));
        assert_eq!(header(&response, "connection"), Some("Upgrade"));
        let accept = Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert_eq!(header(&response, "sec-websocket-accept"), accept);
        assert_eq!(header(&response, "sec-websocket-protocol"), Some("chat"));
        assert!(response.body().is_empty());
    }

    #[test]
    fn rfc6455_4_4_version_8_is_426_with_version_13() {
        let response = refused(&rfc_request_with("Sec-WebSocket-Version", Some("8")));
        assert_eq!(response.status(), StatusCode::UPGRADE_REQUIRED);
        assert_eq!(header(&response, "sec-websocket-version"), Some("13"));
        assert_eq!(header(&response, "upgrade"), Some("websocket"));
        assert_eq!(header(&response, "connection"), Some("Upgrade, close"));
        // hyper writes it from the body.
        assert_eq!(header(&response, "content-length"), None);
        let body = format!("{}\n", HandshakeError::UnsupportedVersion);
        assert_eq!(response.body(), body.as_bytes());
    }

    #[test]
    fn rfc6455_4_2_1_post_is_405_with_allow_get() {
        let mut request = upgradable(rfc_1_3_request());
        *request.method_mut() = Method::POST;
        let response = refused(&request);
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(header(&response, "allow"), Some("GET"));
        assert_eq!(response.body(), "method is not GET\n");
    }

    #[test]
    fn rfc6455_4_2_1_missing_key_is_400() {
        let request = rfc_request_with("Sec-WebSocket-Key", None);
        let err = Upgrade::from_request(&request).unwrap_err();
        assert!(matches!(
            err,
            UpgradeError::Handshake(HandshakeError::MissingKey)
        ));
        let response: http::Response<Bytes> = err.into_http_response();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(header(&response, "connection"), Some("close"));
    }

    #[test]
    fn rfc6455_4_2_1_http_1_0_is_400() {
        let mut request = upgradable(rfc_1_3_request());
        *request.version_mut() = Version::HTTP_10;
        let response = refused(&request);
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn valid_request_without_hyper_upgrade_is_500() {
        let request = rfc_1_3_request().body(()).unwrap();
        let err = Upgrade::from_request(&request).unwrap_err();
        assert!(matches!(err, UpgradeError::NotUpgradable));
        assert_eq!(err.status(), 500);
        let response: http::Response<Bytes> = err.into_http_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn hook_rejection_becomes_the_response() {
        let upgrade = Upgrade::from_request(&upgradable(rfc_1_3_request())).unwrap();
        let acceptor = Acceptor::new().on_handshake(|_| {
            let mut reject = Reject::new(401, "who are you?\n");
            reject
                .headers
                .push(("WWW-Authenticate".into(), "Bearer".into()));
            Err(reject)
        });
        let response: http::Response<Bytes> = upgrade.on_upgrade(&acceptor, |_ws| async {});
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(header(&response, "www-authenticate"), Some("Bearer"));
        assert_eq!(response.body(), "who are you?\n");
    }

    #[test]
    fn hook_header_injection_is_500_not_sent() {
        let upgrade = Upgrade::from_request(&upgradable(rfc_1_3_request())).unwrap();
        let acceptor = Acceptor::new().on_handshake(|_| {
            let mut reject = Reject::new(403, "no");
            reject
                .headers
                .push(("X-Id".into(), "1\r\nSet-Cookie: a=b".into()));
            Err(reject)
        });
        let response: http::Response<Bytes> = upgrade.on_upgrade(&acceptor, |_ws| async {});
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(header(&response, "set-cookie"), None);
    }

    #[test]
    fn repeated_headers_stay_separate_lines() {
        let mut map = HeaderMap::new();
        map.append("host", HeaderValue::from_static("a"));
        map.append("host", HeaderValue::from_static("b"));
        let headers = core_headers(&map);
        assert_eq!(headers.get_all("Host").collect::<Vec<_>>(), [b"a", b"b"]);
    }
}
