//! The closing handshake (RFC 6455 §7) as each side sees it.

use ripple::{Acceptor, CloseCode, CloseFrame, Error, WebSocket};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use crate::support::{client_frame, raw_upgrade, read_close_code, start};

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
