//! Connection-level limits: `max_message_size` (close 1009), `max_connections` (HTTP 503),
//! `allowed_origins` (HTTP 403).

use std::sync::atomic::Ordering;

use ripple::{ClientBuilder, CloseCode, Error, Message};
use ripple_server::Config;
use serde_json::json;

use crate::support::{Client, anonymous, eventually, start};

/// The status of a refused WebSocket handshake.
fn rejected_status(result: Result<ripple::WebSocket, Error>) -> u16 {
    match result {
        Err(Error::Rejected { status, .. }) => status,
        Err(other) => panic!("expected an HTTP rejection, got {other}"),
        Ok(_) => panic!("expected an HTTP rejection, got a WebSocket"),
    }
}

#[tokio::test]
async fn message_over_max_message_size_closes_1009_and_others_are_unaffected() {
    let server = start(Config {
        max_message_size: 1024,
        ..Config::default()
    })
    .await;
    let mut big = anonymous(&server).await;
    let mut other = anonymous(&server).await;
    other.subscribe("c").await;
    big.subscribe("c").await;
    other.expect("join").await;

    let data = "x".repeat(1100);
    big.send(json!({"type": "publish", "channel": "c", "data": data}))
        .await;
    assert_eq!(big.closed().await, CloseCode::MESSAGE_TOO_BIG);

    // Just under the limit still passes, for the others.
    other.expect("leave").await;
    let fits = "y".repeat(900);
    assert_eq!(
        other.publish("c", json!(fits)).await["offset"],
        1,
        "the oversized publish was not accepted"
    );
    assert_eq!(other.expect("message").await["data"], fits);
}

#[tokio::test]
async fn oversized_echo_message_closes_1009() {
    let server = start(Config {
        max_message_size: 1024,
        ..Config::default()
    })
    .await;
    let mut ws = ripple::connect(&server.url("/echo")).await.unwrap();
    ws.send(Message::Binary(vec![0u8; 1025].into()))
        .await
        .unwrap();
    assert_eq!(
        crate::support::closed(&mut ws).await,
        CloseCode::MESSAGE_TOO_BIG
    );
}

#[tokio::test]
async fn upgrade_past_max_connections_gets_503() {
    let server = start(Config {
        max_connections: 2,
        ..Config::default()
    })
    .await;
    let a = anonymous(&server).await;
    let mut echo = ripple::connect(&server.url("/echo")).await.unwrap();
    echo.send("counted").await.unwrap();
    assert!(
        echo.recv().await.unwrap().is_some(),
        "the echo session runs, so it is counted"
    );

    for path in ["/ws", "/echo", "/chat"] {
        let status = rejected_status(ripple::connect(&server.url(path)).await);
        assert_eq!(status, 503, "{path}");
    }
    // Read in process: at capacity, a scrape over HTTP is refused like anyone else.
    let metrics = server.state.metrics.render(0);
    assert_eq!(
        crate::support::metric_value(
            &metrics,
            "ripple_handshake_rejections_total{reason=\"capacity\"}"
        ),
        3
    );

    // Closing one makes room again, once its session has ended.
    drop(a);
    let metrics = &server.state.metrics;
    eventually("the closed connection to be uncounted", async || {
        metrics.connections.load(Ordering::Relaxed) < 2
    })
    .await;
    anonymous(&server).await;
}

#[tokio::test]
async fn a_burst_of_handshakes_cannot_pass_max_connections() {
    const MAX: usize = 5;
    let server = start(Config {
        max_connections: MAX,
        ..Config::default()
    })
    .await;
    let url = server.url("/echo");
    let attempts = (0..4 * MAX).map(|_| ripple::connect(&url));
    let results = futures_util::future::join_all(attempts).await;
    let mut open = Vec::new();
    let mut refused = 0;
    for result in results {
        match result {
            Ok(ws) => open.push(ws),
            Err(Error::Rejected { status: 503, .. }) => refused += 1,
            Err(other) => panic!("expected a WebSocket or a 503, got {other}"),
        }
    }
    assert_eq!((open.len(), refused), (MAX, 3 * MAX));
    assert_eq!(
        server.state.metrics.connections.load(Ordering::Relaxed),
        MAX as u64
    );
}

#[tokio::test]
async fn origin_not_in_allowed_origins_gets_403() {
    let config = Config {
        allowed_origins: vec!["https://good.example".into()],
        ..Config::default()
    };
    let server = start(config).await;
    for path in ["/ws", "/echo", "/chat"] {
        let refused = ClientBuilder::new(server.url(path))
            .origin("https://evil.example")
            .connect()
            .await;
        assert_eq!(rejected_status(refused), 403, "{path}");
    }
    let refused = ClientBuilder::new(server.url("/ws"))
        .origin("https://good.example:8443")
        .connect()
        .await;
    assert_eq!(rejected_status(refused), 403, "origins match exactly");
    assert_eq!(
        server
            .metric("ripple_handshake_rejections_total{reason=\"origin\"}")
            .await,
        4
    );
}

#[tokio::test]
async fn listed_origin_and_no_origin_are_accepted() {
    let config = Config {
        allowed_origins: vec![
            "https://good.example".into(),
            "http://localhost:3000".into(),
        ],
        ..Config::default()
    };
    let server = start(config).await;
    for origin in ["https://good.example", "http://localhost:3000"] {
        let ws = ClientBuilder::new(server.url("/ws"))
            .origin(origin)
            .connect()
            .await
            .unwrap();
        Client::from_ws(ws).expect("authenticated").await;
    }
    // Non-browser clients send no Origin.
    anonymous(&server).await;
}

#[tokio::test]
async fn empty_allowed_origins_accepts_any_origin() {
    let server = start(Config::default()).await;
    let ws = ClientBuilder::new(server.url("/ws"))
        .origin("https://anywhere.example")
        .connect()
        .await
        .unwrap();
    Client::from_ws(ws).expect("authenticated").await;
}

#[tokio::test]
async fn request_without_upgrade_on_a_websocket_route_is_refused_and_counted() {
    let server = start(Config::default()).await;
    let response = crate::support::http_get(server.addr, "/ws", &[]).await;
    assert!((400..500).contains(&response.status), "{response:?}");
    assert_eq!(
        server
            .metric("ripple_handshake_rejections_total{reason=\"bad_handshake\"}")
            .await,
        1
    );
}

/// Reads frames until a close frame; returns its code.
async fn raw_close_code(tcp: &mut tokio::net::TcpStream) -> u16 {
    loop {
        let (first, payload) = crate::support::read_frame(tcp).await;
        if first & 0x0f == 0x8 {
            return u16::from_be_bytes([payload[0], payload[1]]);
        }
    }
}

#[tokio::test]
async fn unmasked_client_frame_closes_1002() {
    use tokio::io::AsyncWriteExt;
    let server = start(Config::default()).await;
    let mut tcp = crate::support::raw_upgrade(server.addr, "/ws").await;
    // RFC 6455 §5.1: a server MUST close the connection on an unmasked client frame.
    tcp.write_all(&[0x81, 0x02, b'{', b'}']).await.unwrap();
    assert_eq!(raw_close_code(&mut tcp).await, 1002);
}

#[tokio::test]
async fn text_that_is_not_utf8_closes_1007() {
    use tokio::io::AsyncWriteExt;
    let server = start(Config::default()).await;
    let mut tcp = crate::support::raw_upgrade(server.addr, "/ws").await;
    let frame = crate::support::client_frame(0x81, &[b'"', 0xff, 0xfe, b'"']);
    tcp.write_all(&frame).await.unwrap();
    assert_eq!(raw_close_code(&mut tcp).await, 1007);
}
