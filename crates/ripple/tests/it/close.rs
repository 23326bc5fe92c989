//! The closing handshake (RFC 6455 §7) as each side sees it.

use std::time::Duration;

use ripple::{Acceptor, ClientBuilder, CloseCode, CloseFrame, Config, Error, WebSocket};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::support::{client_frame, raw_accept, raw_upgrade, read_close_code, start};

/// A server whose handler reports how `recv` ended and the peer's close frame.
async fn reporting_server() -> (
    crate::support::TestServer,
    mpsc::UnboundedReceiver<(String, Option<CloseFrame>)>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let server = start(Acceptor::new(), move |mut ws: WebSocket| {
        let tx = tx.clone();
        async move {
            let outcome = loop {
                match ws.recv().await {
                    Ok(Some(_)) => continue,
                    Ok(None) => break "clean".to_owned(),
                    Err(err) => break format!("{err:?}"),
                }
            };
            let _ = tx.send((outcome, ws.close_frame()));
        }
    })
    .await;
    (server, rx)
}

#[tokio::test]
async fn client_close_reaches_the_server_handler() {
    let (server, mut outcomes) = reporting_server().await;
    let mut ws = ripple::connect(&server.url("/")).await.unwrap();
    ws.close(CloseCode(4001), "bye now").await.unwrap();
    assert_eq!(
        ws.close_frame().map(|f| f.code),
        Some(CloseCode(4001)),
        "the server echoes the code"
    );
    let (outcome, frame) = outcomes.recv().await.unwrap();
    assert_eq!(outcome, "clean");
    assert_eq!(frame, Some(CloseFrame::new(CloseCode(4001), "bye now")));
}

#[tokio::test]
async fn server_close_reaches_the_client() {
    let server = start(Acceptor::new(), |mut ws: WebSocket| async move {
        let _ = ws.close(CloseCode::POLICY_VIOLATION, "not allowed").await;
    })
    .await;
    let mut ws = ripple::connect(&server.url("/")).await.unwrap();
    assert!(ws.recv().await.unwrap().is_none());
    assert_eq!(
        ws.close_frame(),
        Some(CloseFrame::new(CloseCode::POLICY_VIOLATION, "not allowed"))
    );
    assert!(matches!(ws.send("late").await, Err(Error::Closed(Some(_)))));
}

#[tokio::test]
async fn handler_returning_closes_with_1000() {
    let server = start(Acceptor::new(), |_ws: WebSocket| async {}).await;
    let mut ws = ripple::connect(&server.url("/")).await.unwrap();
    assert!(ws.recv().await.unwrap().is_none());
    assert_eq!(ws.close_frame().map(|f| f.code), Some(CloseCode::NORMAL));
}

#[tokio::test]
async fn rfc6455_7_1_5_tcp_drop_is_abnormal_1006() {
    let (server, mut outcomes) = reporting_server().await;
    let tcp = raw_upgrade(server.addr).await;
    drop(tcp);
    let (outcome, frame) = outcomes.recv().await.unwrap();
    assert_eq!(outcome, "AbnormalClosure");
    assert_eq!(frame, None);
}

#[tokio::test]
async fn rfc6455_7_1_5_empty_close_reports_1005() {
    let (server, mut outcomes) = reporting_server().await;
    let mut tcp = raw_upgrade(server.addr).await;
    tcp.write_all(&client_frame(0x88, b"")).await.unwrap();
    let (outcome, frame) = outcomes.recv().await.unwrap();
    assert_eq!(outcome, "clean");
    assert_eq!(frame.map(|f| f.code), Some(CloseCode::NO_STATUS));
}

#[tokio::test]
async fn protocol_error_closes_with_1002_and_is_reported() {
    let (server, mut outcomes) = reporting_server().await;
    let mut tcp = raw_upgrade(server.addr).await;
    tcp.write_all(&[0x81, 0x02, b'h', b'i']).await.unwrap(); // unmasked: RFC 6455 §5.1
    assert_eq!(read_close_code(&mut tcp).await, 1002);
    let (outcome, _) = outcomes.recv().await.unwrap();
    assert!(outcome.contains("UnmaskedFrame"), "{outcome}");
}

#[tokio::test]
async fn invalid_utf8_closes_with_1007() {
    let server = crate::support::echo_server().await;
    let mut tcp = raw_upgrade(server.addr).await;
    tcp.write_all(&client_frame(0x81, b"\xff\xfe"))
        .await
        .unwrap();
    assert_eq!(read_close_code(&mut tcp).await, 1007);
}

#[tokio::test(start_paused = true)]
async fn rfc6455_7_1_2_close_without_a_reply_gives_up_at_the_close_timeout() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let config = Config::default().close_timeout(Duration::from_secs(3));
    let server = start(Acceptor::new().config(config), move |mut ws: WebSocket| {
        let tx = tx.clone();
        async move {
            let started = Instant::now();
            let result = ws.close(CloseCode::NORMAL, "").await;
            let _ = tx.send((format!("{result:?}"), started.elapsed()));
        }
    })
    .await;
    let mut tcp = raw_upgrade(server.addr).await;
    assert_eq!(read_close_code(&mut tcp).await, 1000);
    // The client never answers the close frame.
    let (outcome, took) = rx.recv().await.unwrap();
    assert_eq!(outcome, r#"Err(Timeout("closing handshake"))"#);
    assert!(took >= Duration::from_secs(3), "{took:?}");
    assert!(took < Duration::from_secs(4), "{took:?}");
    let mut rest = Vec::new();
    tcp.read_to_end(&mut rest).await.unwrap();
    assert_eq!(rest, b"", "then the server drops the connection");
}

#[tokio::test(start_paused = true)]
async fn rfc6455_7_1_1_client_stops_waiting_for_the_tcp_close_at_the_close_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let mut tcp = raw_accept(&listener).await;
        tcp.write_all(&[0x88, 0x02, 0x03, 0xe8]).await.unwrap();
        let mut echo = [0u8; 8];
        tcp.read_exact(&mut echo).await.unwrap();
        assert_eq!(echo[..2], [0x88, 0x82], "the client's masked echo");
        // And then the server does not close TCP, as RFC 6455 §7.1.1 says it should.
        tokio::time::sleep(Duration::from_secs(3600)).await;
        drop(tcp);
    });
    let config = Config::default().close_timeout(Duration::from_secs(3));
    let mut ws = ClientBuilder::new(format!("ws://{addr}/"))
        .config(config)
        .connect()
        .await
        .unwrap();
    let started = Instant::now();
    assert_eq!(ws.recv().await.unwrap(), None, "a clean close");
    let took = started.elapsed();
    assert!(took >= Duration::from_secs(3), "{took:?}");
    assert!(took < Duration::from_secs(4), "{took:?}");
    server.abort();
}
