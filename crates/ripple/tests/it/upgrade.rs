//! Ripple WebSocket routes inside hyper and axum apps, beside their HTTP routes; handshake
//! errors answered with the core's status and headers. Needs `--features axum` (or hyper).
#![cfg(feature = "hyper")]
// Set-up helpers outside `#[test]` functions: a failed set-up should panic the test.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;

use ripple::{Message, WebSocket};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;

use crate::support::{raw_exchange, upgrade_request};

async fn echo<S: AsyncRead + AsyncWrite + Unpin>(mut ws: WebSocket<S>) {
    while let Ok(Some(message)) = ws.recv().await {
        if ws.send(message).await.is_err() {
            break;
        }
    }
}

/// Text and binary messages come back unchanged, then the connection closes cleanly.
async fn assert_echoes(url: &str) {
    let mut ws = ripple::connect(url).await.unwrap();
    ws.send("hello").await.unwrap();
    assert_eq!(ws.recv().await.unwrap(), Some(Message::from("hello")));
    ws.send(vec![0u8, 1, 2, 255]).await.unwrap();
    assert_eq!(
        ws.recv().await.unwrap(),
        Some(Message::from(vec![0u8, 1, 2, 255]))
    );
    ws.close(ripple::CloseCode::NORMAL, "").await.unwrap();
}

/// The status code and the head (lowercased) of a raw HTTP response, and its body.
fn parse_reply(reply: &[u8]) -> (u16, String, String) {
    let text = String::from_utf8_lossy(reply);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    (status, head.to_ascii_lowercase(), body.to_owned())
}

async fn bind() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

#[cfg(feature = "axum")]
mod axum_app {
    use axum::Router;
    use axum::response::{IntoResponse, Response};
    use axum::routing::{any, get};
    use ripple::upgrade::{UpgradedWebSocket, WebSocketUpgrade};
    use ripple::{Acceptor, ClientBuilder, CloseCode, Error, Reject};

    use super::*;

    fn app() -> Router {
        Router::new()
            .route("/", get(|| async { "hello over HTTP" }))
            .route("/ws", any(ws))
            .route("/chat", any(chat))
            .route("/private", any(private))
            .route("/info", any(info))
            .route("/both", get(page_or_socket))
    }

    async fn ws(upgrade: WebSocketUpgrade) -> Response {
        upgrade.on_upgrade(echo)
    }

    async fn info(upgrade: WebSocketUpgrade) -> Response {
        upgrade.on_upgrade(tell_target)
    }

    async fn chat(upgrade: WebSocketUpgrade) -> Response {
        upgrade.protocols(["v2", "v1"]).on_upgrade(tell_protocol)
    }

    async fn private(upgrade: WebSocketUpgrade) -> Response {
        let acceptor = Acceptor::new().on_handshake(|request| match request.query() {
            Some("token=secret") => Ok(ripple::Accept::default()),
            _ => Err(Reject::new(401, "missing or wrong token\n")),
        });
        upgrade.acceptor(acceptor).on_upgrade(echo)
    }

    async fn page_or_socket(upgrade: Option<WebSocketUpgrade>) -> Response {
        match upgrade {
            Some(upgrade) => upgrade.on_upgrade(echo),
            None => "a page".into_response(),
        }
    }

    async fn tell_protocol(mut ws: UpgradedWebSocket) {
        let protocol = ws.protocol().unwrap_or("none").to_owned();
        let _ = ws.send(protocol).await;
    }

    /// Sends the request target and returns: the route then closes the connection with 1000.
    async fn tell_target(mut ws: UpgradedWebSocket) {
        let target = ws.handshake().target.clone();
        let _ = ws.send(target).await;
    }

    async fn serve() -> SocketAddr {
        let (listener, addr) = bind().await;
        tokio::spawn(async move { axum::serve(listener, app()).await });
        addr
    }

    #[tokio::test]
    async fn ripple_client_echoes_text_and_binary_through_axum_route() {
        let addr = serve().await;
        assert_echoes(&format!("ws://{addr}/ws")).await;
    }

    #[tokio::test]
    async fn plain_http_route_still_works() {
        let addr = serve().await;
        let request = "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
        let (status, _, body) = parse_reply(&raw_exchange(addr, request.as_bytes()).await);
        assert_eq!((status, body.as_str()), (200, "hello over HTTP"));
    }

    #[tokio::test]
    async fn rfc6455_4_2_1_missing_key_is_400() {
        let addr = serve().await;
        let request = upgrade_request("/ws", "")
            .replace("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", "");
        let (status, _, body) = parse_reply(&raw_exchange(addr, request.as_bytes()).await);
        assert_eq!(status, 400);
        assert_eq!(body, "no \"Sec-WebSocket-Key\" header\n");
    }

    #[tokio::test]
    async fn rfc6455_4_4_version_8_is_426_with_version_13() {
        let addr = serve().await;
        let request = upgrade_request("/ws", "").replace("Version: 13", "Version: 8");
        let (status, head, _) = parse_reply(&raw_exchange(addr, request.as_bytes()).await);
        assert_eq!(status, 426);
        assert!(head.contains("\r\nsec-websocket-version: 13\r\n"), "{head}");
        assert!(head.contains("\r\nupgrade: websocket\r\n"), "{head}");
    }

    #[tokio::test]
    async fn rfc6455_4_2_1_post_is_405_with_allow_get() {
        let addr = serve().await;
        let request = upgrade_request("/ws", "").replacen("GET", "POST", 1);
        let (status, head, _) = parse_reply(&raw_exchange(addr, request.as_bytes()).await);
        assert_eq!(status, 405);
        assert!(head.contains("\r\nallow: get\r\n"), "{head}");
    }

    #[tokio::test]
    async fn rfc6455_4_2_2_subprotocol_follows_server_preference() {
        let addr = serve().await;
        let url = format!("ws://{addr}/chat");
        let mut ws = ClientBuilder::new(&url)
            .protocol("v1")
            .protocol("v2")
            .connect()
            .await
            .unwrap();
        assert_eq!(ws.protocol(), Some("v2"));
        assert_eq!(ws.recv().await.unwrap(), Some(Message::from("v2")));
        let mut ws = ClientBuilder::new(&url)
            .protocol("v3")
            .connect()
            .await
            .unwrap();
        assert_eq!(ws.protocol(), None);
        assert_eq!(ws.recv().await.unwrap(), Some(Message::from("none")));
    }

    #[tokio::test]
    async fn handshake_hook_rejection_reaches_the_client() {
        let addr = serve().await;
        match ripple::connect(&format!("ws://{addr}/private?token=wrong")).await {
            Err(Error::Rejected { status, body, .. }) => {
                assert_eq!(status, 401);
                assert_eq!(body, b"missing or wrong token\n");
            }
            other => panic!("expected a 401, got {other:?}"),
        }
        assert_echoes(&format!("ws://{addr}/private?token=secret")).await;
    }

    #[tokio::test]
    async fn callback_return_closes_with_1000_and_keeps_the_target() {
        let addr = serve().await;
        let mut ws = ripple::connect(&format!("ws://{addr}/info?room=7"))
            .await
            .unwrap();
        assert_eq!(
            ws.recv().await.unwrap(),
            Some(Message::from("/info?room=7"))
        );
        assert_eq!(ws.recv().await.unwrap(), None);
        assert_eq!(
            ws.close_frame().map(|frame| frame.code),
            Some(CloseCode::NORMAL)
        );
    }

    #[tokio::test]
    async fn optional_extractor_serves_page_and_socket_on_one_path() {
        let addr = serve().await;
        let request = "GET /both HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
        let (status, _, body) = parse_reply(&raw_exchange(addr, request.as_bytes()).await);
        assert_eq!((status, body.as_str()), (200, "a page"));
        assert_echoes(&format!("ws://{addr}/both")).await;
        // Asking for a WebSocket, badly, is still refused by the core.
        let request = upgrade_request("/both", "").replace("Version: 13", "Version: 8");
        let (status, _, _) = parse_reply(&raw_exchange(addr, request.as_bytes()).await);
        assert_eq!(status, 426);
    }
}

mod hyper_only {
    use std::convert::Infallible;

    use bytes::Bytes;
    use http_body_util::Full;
    use hyper::body::Incoming;
    use hyper::server::conn::http1;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;
    use ripple::Acceptor;
    use ripple::upgrade::Upgrade;

    use super::*;

    async fn handle(
        request: http::Request<Incoming>,
        acceptor: Acceptor,
    ) -> Result<http::Response<Full<Bytes>>, Infallible> {
        if request.uri().path() != "/ws" {
            return Ok(http::Response::new(Full::from("hello from hyper")));
        }
        Ok(match Upgrade::from_request(&request) {
            Ok(upgrade) => upgrade.on_upgrade(&acceptor, echo),
            Err(err) => err.into_http_response(),
        })
    }

    async fn serve(acceptor: Acceptor) -> SocketAddr {
        let (listener, addr) = bind().await;
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let service = service_fn(move |request| handle(request, acceptor.clone()));
                let connection = http1::Builder::new().serve_connection(TokioIo::new(tcp), service);
                tokio::spawn(connection.with_upgrades());
            }
        });
        addr
    }

    #[tokio::test]
    async fn hyper_http1_server_with_upgrades_echoes_and_serves_http() {
        let addr = serve(Acceptor::new()).await;
        assert_echoes(&format!("ws://{addr}/ws")).await;
        let request = "GET /other HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
        let (status, _, body) = parse_reply(&raw_exchange(addr, request.as_bytes()).await);
        assert_eq!((status, body.as_str()), (200, "hello from hyper"));
    }

    #[tokio::test]
    async fn hyper_rfc6455_4_4_version_8_is_426_with_version_13() {
        let addr = serve(Acceptor::new()).await;
        let request = upgrade_request("/ws", "").replace("Version: 13", "Version: 8");
        let (status, head, _) = parse_reply(&raw_exchange(addr, request.as_bytes()).await);
        assert_eq!(status, 426);
        assert!(head.contains("\r\nsec-websocket-version: 13\r\n"), "{head}");
    }
}
