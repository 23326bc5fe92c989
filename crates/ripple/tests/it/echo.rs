//! Messages round-trip through a real socket, whole or split into two tasks.

use futures_util::{SinkExt, StreamExt};
use ripple::{ClientBuilder, Config, Message};

use crate::support::echo_server;

#[tokio::test]
async fn text_and_binary_round_trip() {
    let server = echo_server().await;
    let mut ws = ripple::connect(&server.url("/")).await.unwrap();
    for message in [
        Message::from("héllo ✓"),
        Message::from(vec![0u8, 1, 2, 255]),
        Message::from(""),
        Message::from(Vec::new()),
    ] {
        ws.send(message.clone()).await.unwrap();
        assert_eq!(ws.recv().await.unwrap(), Some(message));
    }
}

#[tokio::test]
async fn large_message_near_the_limit() {
    let server = echo_server().await;
    let config = Config::default().max_message_size(2 << 20);
    let mut ws = ClientBuilder::new(server.url("/"))
        .config(config)
        .connect()
        .await
        .unwrap();
    let big = Message::from(vec![42u8; (1 << 20) - 16]);
    ws.send(big.clone()).await.unwrap();
    assert_eq!(ws.recv().await.unwrap(), Some(big));
}

/// With `release_idle_buffers(false)` (a load generator's choice) the connection keeps its
/// buffers between bursts instead of reading into the stack: the same messages arrive, small
/// and larger than one read, each after the connection went idle.
#[tokio::test]
async fn kept_buffers_round_trip_after_idle() {
    let server = echo_server().await;
    let config = Config::default().release_idle_buffers(false);
    let mut ws = ClientBuilder::new(server.url("/"))
        .config(config)
        .connect()
        .await
        .unwrap();
    for size in [5, 100 << 10, 32, 70 << 10] {
        let message = Message::from(vec![7u8; size]);
        ws.send(message.clone()).await.unwrap();
        assert_eq!(ws.recv().await.unwrap(), Some(message), "{size} bytes");
    }
}

#[tokio::test]
async fn split_halves_work_from_two_tasks() {
    let server = echo_server().await;
    let (mut reader, mut writer) = ripple::connect(&server.url("/")).await.unwrap().split();
    let sender = tokio::spawn(async move {
        for i in 0..200 {
            writer.send(format!("message {i}")).await.unwrap();
        }
        writer
    });
    for i in 0..200 {
        assert_eq!(
            reader.recv().await.unwrap(),
            Some(Message::from(format!("message {i}")))
        );
    }
    let writer = sender.await.unwrap();
    assert!(ripple::WebSocket::reunite(reader, writer).is_ok());
}

#[tokio::test]
async fn stream_and_sink() {
    let server = echo_server().await;
    let ws = ripple::connect(&server.url("/")).await.unwrap();
    let (reader, mut writer) = ws.split();
    let mut items = futures_util::stream::iter((0..50).map(|i| Ok(Message::from(i.to_string()))));
    writer.send_all(&mut items).await.unwrap();
    let got: Vec<_> = reader.take(50).map(|m| m.unwrap()).collect().await;
    assert_eq!(got.len(), 50);
    assert_eq!(got[49], Message::from("49"));
}

#[tokio::test]
async fn ping_measures_round_trip() {
    let server = echo_server().await;
    let mut ws = ripple::connect(&server.url("/")).await.unwrap();
    let rtt = ws.ping().await.unwrap();
    assert!(rtt < std::time::Duration::from_secs(1));
}

#[tokio::test]
async fn many_clients_at_once() {
    let server = echo_server().await;
    let url = server.url("/");
    let clients: Vec<_> = (0..50)
        .map(|i| {
            let url = url.clone();
            tokio::spawn(async move {
                let mut ws = ripple::connect(&url).await.unwrap();
                ws.send(format!("client {i}")).await.unwrap();
                assert_eq!(
                    ws.recv().await.unwrap(),
                    Some(Message::from(format!("client {i}")))
                );
            })
        })
        .collect();
    for client in clients {
        client.await.unwrap();
    }
}
