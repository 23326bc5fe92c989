//! The axum extractor, shaped like axum's own `WebSocketUpgrade` so a route moves over by
//! changing one import.

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use proto::handshake::server::Request;

use super::{Upgrade, UpgradeError, UpgradedWebSocket, core_headers};
use crate::config::Config;
use crate::server::Acceptor;

/// Extractor for a Ripple WebSocket route in axum.
///
/// A request that is not a valid opening handshake never reaches the handler: it is refused
/// with the core's status (400, 405 + `Allow: GET`, 426 + `Sec-WebSocket-Version: 13`, …).
/// Route it with [`any`](axum::routing::any) so the core judges every method.
///
/// ```no_run
/// use axum::response::Response;
/// use axum::routing::any;
/// use ripple::upgrade::{UpgradedWebSocket, WebSocketUpgrade};
///
/// let app: axum::Router = axum::Router::new().route("/ws", any(ws));
///
/// async fn ws(upgrade: WebSocketUpgrade) -> Response {
///     upgrade.protocols(["chat.v2", "chat.v1"]).on_upgrade(echo)
/// }
///
/// async fn echo(mut ws: UpgradedWebSocket) {
///     while let Ok(Some(message)) = ws.recv().await {
///         if ws.send(message).await.is_err() {
///             break;
///         }
///     }
/// }
/// ```
///
/// `Option<WebSocketUpgrade>` is `None` for a request that does not ask for a WebSocket (no
/// `Upgrade: websocket`), so one path can serve a page and a socket.
#[must_use = "answer with `on_upgrade`, whose response completes the handshake"]
#[derive(Debug)]
pub struct WebSocketUpgrade {
    upgrade: Upgrade,
    acceptor: Acceptor,
}

impl WebSocketUpgrade {
    /// Sets limits and timers for the connection.
    pub fn config(mut self, config: Config) -> Self {
        self.acceptor = self.acceptor.config(config);
        self
    }

    /// Subprotocols this route speaks, in order of preference; the first the client offered
    /// is chosen.
    pub fn protocols<I: IntoIterator<Item = P>, P: Into<String>>(mut self, protocols: I) -> Self {
        self.acceptor = self.acceptor.protocols(protocols);
        self
    }

    /// Replaces all handshake options at once, including an [`Acceptor::on_handshake`] hook.
    pub fn acceptor(mut self, acceptor: Acceptor) -> Self {
        self.acceptor = acceptor;
        self
    }

    /// The request as the core sees it: path, query, origin, offered subprotocols.
    pub fn request(&self) -> &Request {
        self.upgrade.request()
    }

    /// Completes the handshake and runs `callback` on the connection once axum hands it over.
    /// Returns the response to give axum: the 101, or the hook's refusal.
    #[must_use = "the WebSocket opens only once this response is returned to axum"]
    pub fn on_upgrade<F, Fut>(self, callback: F) -> Response
    where
        F: FnOnce(UpgradedWebSocket) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.upgrade.on_upgrade(&self.acceptor, callback)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for WebSocketUpgrade {
    type Rejection = UpgradeError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let upgrade = Upgrade::from_parts(parts)?;
        Ok(Self {
            upgrade,
            acceptor: Acceptor::new(),
        })
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for WebSocketUpgrade {
    type Rejection = UpgradeError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        // Only the question "is this a WebSocket request at all?"; the core judges the rest.
        if !core_headers(&parts.headers).contains_token("Upgrade", "websocket") {
            return Ok(None);
        }
        <Self as FromRequestParts<S>>::from_request_parts(parts, state)
            .await
            .map(Some)
    }
}

impl IntoResponse for UpgradeError {
    fn into_response(self) -> Response {
        self.into_http_response()
    }
}
