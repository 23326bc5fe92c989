//! Graceful shutdown: every WebSocket gets close 1001 and `run` returns within the drain time.

use std::time::{Duration, Instant};

use ripple::{CloseCode, Message};
use ripple_server::Config;
use tokio::io::AsyncWriteExt;

use crate::support::{anonymous, closed, raw_upgrade, read_frame, start};

#[tokio::test]
async fn shutdown_closes_ws_echo_and_chat_clients_with_1001_and_run_returns() {
    let mut server = start(Config {
        shutdown_timeout_secs: 5,
        ..Config::default()
    })
    .await;
    let mut channel = anonymous(&server).await;
    channel.subscribe("c").await;
    let mut echo = ripple::connect(&server.url("/echo")).await.unwrap();
    echo.send("up?").await.unwrap();
    assert_eq!(echo.recv().await.unwrap(), Some(Message::from("up?")));
    let mut chat = ripple::connect(&server.url("/chat")).await.unwrap();
    chat.send("up?").await.unwrap();
    assert!(
        chat.recv().await.unwrap().is_some(),
        "the chat session runs"
    );

    let started = Instant::now();
    server.trigger_shutdown();
    assert_eq!(channel.closed().await, CloseCode::GOING_AWAY);
    assert_eq!(closed(&mut echo).await, CloseCode::GOING_AWAY);
    assert_eq!(closed(&mut chat).await, CloseCode::GOING_AWAY);
    let addr = server.addr;
    server.stopped(Duration::from_secs(5)).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "every client answered, so no need to wait the drain time"
    );
    assert!(
        ripple::connect(&format!("ws://{addr}/ws")).await.is_err(),
        "no longer accepting"
    );
}

#[tokio::test]
async fn shutdown_with_no_clients_returns_at_once() {
    let mut server = start(Config::default()).await;
    crate::support::http_get(server.addr, "/healthz", &[]).await;
    server.trigger_shutdown();
    server.stopped(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn shutdown_does_not_wait_past_the_drain_time_for_clients_that_never_answer() {
    let mut server = start(Config {
        shutdown_timeout_secs: 1,
        ..Config::default()
    })
    .await;
    // Raw sockets that complete the handshake and then neither read nor answer the close.
    let mut stuck_echo = raw_upgrade(server.addr, "/echo").await;
    stuck_echo
        .write_all(&crate::support::client_frame(0x81, b"hi"))
        .await
        .unwrap();
    assert_eq!(
        read_frame(&mut stuck_echo).await,
        (0x81, b"hi".to_vec()),
        "the echo session runs"
    );
    let mut stuck_ws = raw_upgrade(server.addr, "/ws").await;
    let (_, hello) = read_frame(&mut stuck_ws).await;
    let hello: serde_json::Value = serde_json::from_slice(&hello).unwrap();
    assert_eq!(hello["type"], "authenticated");

    let started = Instant::now();
    server.trigger_shutdown();
    server.stopped(Duration::from_secs(4)).await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(3),
        "bounded by shutdown_timeout_secs (1 s): {took:?}"
    );
    // Each got its close frame all the same.
    for stuck in [&mut stuck_echo, &mut stuck_ws] {
        let (first, payload) = read_frame(stuck).await;
        assert_eq!(first, 0x88, "a close frame");
        assert_eq!(u16::from_be_bytes([payload[0], payload[1]]), 1001);
    }
}
