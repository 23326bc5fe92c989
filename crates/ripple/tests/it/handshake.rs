//! The handshake hook: inspect the request, accept with a subprotocol and headers, or reject.

use ripple::{Accept, Acceptor, ClientBuilder, Error, Reject, Request, WebSocket};

use crate::support::start;

fn auth_hook(request: &Request) -> Result<Accept, Reject> {
    if request.query() != Some("token=secret") {
        return Err(Reject::new(401, "missing or wrong token\n"));
    }
    let protocol = request.protocols().into_iter().find(|p| p == "chat.v1");
    Ok(Accept {
        protocol,
        headers: vec![("X-Room".into(), request.path().to_owned())],
        ..Accept::default()
    })
}

async fn tell_path(mut ws: WebSocket) {
    let path = ws.handshake().path().to_owned();
    let _ = ws.send(path).await;
}

#[tokio::test]
async fn hook_rejects_with_status_and_body() {
    let server = start(Acceptor::new().on_handshake(auth_hook), tell_path).await;
    match ripple::connect(&server.url("/room?token=wrong")).await {
        Err(Error::Rejected { status, body, .. }) => {
            assert_eq!(status, 401);
            assert_eq!(body, b"missing or wrong token\n");
        }
        other => panic!("expected a 401, got {other:?}"),
    }
}

#[tokio::test]
async fn hook_accepts_with_protocol_and_headers() {
    let server = start(Acceptor::new().on_handshake(auth_hook), tell_path).await;
    let mut ws = ClientBuilder::new(server.url("/room?token=secret"))
        .protocol("chat.v2")
        .protocol("chat.v1")
        .connect()
        .await
        .unwrap();
    assert_eq!(ws.protocol(), Some("chat.v1"));
    assert_eq!(ws.handshake().headers.get_str("x-room"), Some("/room"));
    assert_eq!(ws.recv().await.unwrap(), Some("/room".into()));
}

#[tokio::test]
async fn server_preference_picks_the_subprotocol_by_default() {
    let server = start(Acceptor::new().protocols(["v2", "v1"]), tell_path).await;
    let ws = ClientBuilder::new(server.url("/"))
        .protocol("v1")
        .protocol("v2")
        .connect()
        .await
        .unwrap();
    assert_eq!(ws.protocol(), Some("v2"));
    let ws = ClientBuilder::new(server.url("/"))
        .protocol("other")
        .connect()
        .await
        .unwrap();
    assert_eq!(ws.protocol(), None);
}

#[tokio::test]
async fn client_sends_origin_and_headers() {
    let server = start(Acceptor::new(), |mut ws: WebSocket| async move {
        let origin = ws
            .handshake()
            .headers
            .get_str("origin")
            .unwrap_or("")
            .to_owned();
        let auth = ws
            .handshake()
            .headers
            .get_str("authorization")
            .unwrap_or("")
            .to_owned();
        let _ = ws.send(format!("{origin}|{auth}")).await;
    })
    .await;
    let mut ws = ClientBuilder::new(server.url("/"))
        .origin("http://example.test")
        .header("Authorization", "Bearer abc")
        .connect()
        .await
        .unwrap();
    assert_eq!(
        ws.recv().await.unwrap(),
        Some("http://example.test|Bearer abc".into())
    );
}

#[tokio::test]
async fn connection_refused_is_an_io_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    assert!(matches!(
        ripple::connect(&format!("ws://{addr}/")).await,
        Err(Error::Io(_))
    ));
}
