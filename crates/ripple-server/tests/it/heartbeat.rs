//! Heartbeats: the engine's WebSocket pings (`ping_interval_secs`) close a peer that stops
//! answering with 1011; a peer that answers stays. (The protocol's own `ping` message is in
//! `channels`.)

use std::time::{Duration, Instant};

use ripple_server::Config;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::support::{client_frame, raw_upgrade, read_frame, start};

const PING: u8 = 0x89;
const PONG: u8 = 0x8A;
const CLOSE: u8 = 0x88;

/// Reads frames until a control frame; returns (first byte, payload).
async fn next_control_frame(tcp: &mut TcpStream) -> (u8, Vec<u8>) {
    loop {
        let (first, payload) = read_frame(tcp).await;
        if first & 0x08 != 0 {
            return (first, payload);
        }
    }
}

#[tokio::test]
async fn peer_that_never_answers_pings_is_closed_with_1011() {
    let server = start(Config {
        ping_interval_secs: 1,
        ..Config::default()
    })
    .await;
    let mut checks = Vec::new();
    for path in ["/ws", "/echo", "/chat"] {
        let mut tcp = raw_upgrade(server.addr, path).await;
        checks.push(tokio::spawn(async move {
            let started = Instant::now();
            let (first, _) = next_control_frame(&mut tcp).await;
            assert_eq!(first, PING, "{path}: a ping first");
            let (first, payload) = next_control_frame(&mut tcp).await;
            assert_eq!(first, CLOSE, "{path}: then, unanswered, a close");
            assert_eq!(u16::from_be_bytes([payload[0], payload[1]]), 1011, "{path}");
            let took = started.elapsed();
            assert!(
                took >= Duration::from_millis(1500),
                "{path}: interval + timeout: {took:?}"
            );
        }));
    }
    for check in checks {
        check.await.unwrap();
    }
}

#[tokio::test]
async fn peer_that_answers_pings_stays_connected() {
    let server = start(Config {
        ping_interval_secs: 1,
        ..Config::default()
    })
    .await;
    let mut tcp = raw_upgrade(server.addr, "/echo").await;
    for _ in 0..3 {
        let (first, payload) = next_control_frame(&mut tcp).await;
        assert_eq!(first, PING, "pings keep coming, no close");
        tcp.write_all(&client_frame(PONG, &payload)).await.unwrap();
    }
    tcp.write_all(&client_frame(0x81, b"alive")).await.unwrap();
    assert_eq!(read_frame(&mut tcp).await, (0x81, b"alive".to_vec()));
}
