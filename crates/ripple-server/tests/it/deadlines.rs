//! Deadlines before the upgrade and on a request, and every accepted socket counted against
//! `max_connections`: a client that sends a request a byte at a time, or nothing at all, holds
//! a place only for a bounded time, and never more places than the limit.

use std::time::{Duration, Instant};

use ripple_server::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{WAIT, http_get, start};

/// Reads until the server closes the connection; returns what it sent and how long it took.
async fn until_closed(tcp: &mut TcpStream) -> (String, Duration) {
    let started = Instant::now();
    let mut got = Vec::new();
    let read = tokio::time::timeout(WAIT, tcp.read_to_end(&mut got)).await;
    assert!(read.is_ok(), "the server never closed the connection");
    (
        String::from_utf8_lossy(&got).into_owned(),
        started.elapsed(),
    )
}

fn quick_deadlines() -> Config {
    Config {
        header_timeout_secs: 1,
        body_timeout_secs: 1,
        ..Config::default()
    }
}

#[tokio::test]
async fn a_request_head_sent_a_byte_at_a_time_is_cut_off_at_the_header_timeout() {
    let server = start(quick_deadlines()).await;
    let mut slow = TcpStream::connect(server.addr).await.unwrap();
    let head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-a: ";
    let started = Instant::now();
    let trickle = async {
        for byte in head.iter().cycle() {
            if slow.write_all(&[*byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            if started.elapsed() > WAIT {
                return;
            }
        }
    };
    tokio::time::timeout(WAIT, trickle).await.unwrap();
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(4),
        "a head trickling in was cut off after header_timeout_secs (1 s), not {took:?}"
    );
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_at_the_header_timeout() {
    let server = start(quick_deadlines()).await;
    let mut idle = TcpStream::connect(server.addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let (answer, took) = until_closed(&mut idle).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(took < Duration::from_secs(4), "idle for {took:?}");
}

#[tokio::test]
async fn a_request_body_that_never_arrives_is_refused_at_the_body_timeout() {
    let server = start(quick_deadlines()).await;
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(
        b"POST /rpc HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"type\":\"ping\"",
    )
    .await
    .unwrap();
    let (answer, took) = until_closed(&mut tcp).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("body_timeout_secs"), "{answer}");
    assert!(took < Duration::from_secs(4), "took {took:?}");
}

#[tokio::test]
async fn every_accepted_socket_counts_against_max_connections() {
    let server = start(Config {
        max_connections: 5,
        header_timeout_secs: 2,
        ..Config::default()
    })
    .await;
    let mut idle = Vec::new();
    for _ in 0..5 {
        let mut tcp = TcpStream::connect(server.addr).await.unwrap();
        tcp.write_all(b"GET /healthz HTTP/1.1\r\nHo").await.unwrap();
        idle.push(tcp);
    }
    crate::support::sockets_open(&server, 5).await;
    let refused = http_get(server.addr, "/healthz", &[]).await;
    assert_eq!(refused.status, 503, "{refused:?}");
    assert_eq!(refused.json()["code"], "unavailable");
    // Their header deadline frees the places.
    crate::support::sockets_open(&server, 0).await;
    assert_eq!(http_get(server.addr, "/healthz", &[]).await.status, 200);
    assert_eq!(server.metric("ripple_sockets_refused_total").await, 1);
    drop(idle);
}
