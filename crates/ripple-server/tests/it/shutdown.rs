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

#[tokio::test]
async fn shutdown_ends_within_its_timeout_with_a_request_head_half_sent() {
    let mut server = start(Config {
        shutdown_timeout_secs: 1,
        header_timeout_secs: 60,
        ..Config::default()
    })
    .await;
    let mut partial = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    partial
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-a")
        .await
        .unwrap();
    crate::support::sockets_open(&server, 1).await;
    let started = Instant::now();
    server.trigger_shutdown();
    server.stopped(Duration::from_secs(4)).await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(2500),
        "bounded by shutdown_timeout_secs (1 s), not by the half-sent head: {took:?}"
    );
}

/// Every publication acknowledged while the server shuts down reached every subscriber before
/// its close (1001); the others were refused with 503.
#[tokio::test]
async fn a_publication_acknowledged_during_shutdown_reaches_every_subscriber() {
    const SUBSCRIBERS: usize = 20;
    let mut server = start(Config {
        shutdown_timeout_secs: 5,
        ..crate::support::api_config()
    })
    .await;
    let mut readers = Vec::new();
    for _ in 0..SUBSCRIBERS {
        let mut client = anonymous(&server).await;
        client.subscribe("news").await;
        readers.push(tokio::spawn(async move {
            let mut offsets = Vec::new();
            loop {
                match tokio::time::timeout(crate::support::WAIT, client.ws.recv()).await {
                    Ok(Ok(Some(Message::Text(text)))) => {
                        let push: serde_json::Value = serde_json::from_str(&text).unwrap();
                        if push["type"] == "message" {
                            offsets.push(push["offset"].as_u64().unwrap());
                        }
                    }
                    Ok(Ok(Some(_))) => {}
                    Ok(Ok(None)) | Ok(Err(_)) => return (offsets, client.ws.close_frame()),
                    Err(_) => panic!("no close within the bound"),
                }
            }
        }));
    }
    let addr = server.addr;
    let auth = crate::support::api_auth();
    let publisher = tokio::spawn(async move {
        let mut acknowledged = Vec::new();
        let mut refused = 0;
        for n in 0..2000 {
            let body = format!(r#"{{"channel":"news","data":{n}}}"#);
            let answer = tokio::time::timeout(
                Duration::from_secs(2),
                try_http(addr, "POST", "/api/publish", &[(auth.0, &auth.1)], &body),
            )
            .await;
            match answer {
                Ok(Some(response)) if response.status == 200 => {
                    acknowledged.push(response.json()["offset"].as_u64().unwrap());
                }
                Ok(Some(response)) => {
                    assert_eq!(response.status, 503, "{response:?}");
                    refused += 1;
                }
                // The listener is gone: shutdown is under way.
                Ok(None) | Err(_) => break,
            }
        }
        (acknowledged, refused)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.trigger_shutdown();
    let (acknowledged, _refused) = publisher.await.unwrap();
    assert!(!acknowledged.is_empty(), "some publications went through");
    for reader in readers {
        let (offsets, close) = reader.await.unwrap();
        assert_eq!(close.map(|c| c.code), Some(CloseCode::GOING_AWAY));
        let missing: Vec<_> = acknowledged
            .iter()
            .filter(|offset| !offsets.contains(offset))
            .collect();
        assert!(
            missing.is_empty(),
            "acknowledged but never delivered before 1001: {missing:?} (of {})",
            acknowledged.len()
        );
    }
    server.stopped(Duration::from_secs(6)).await;
}

/// One request on a fresh connection; `None` when the server no longer answers.
async fn try_http(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Option<crate::support::HttpResponse> {
    use tokio::io::AsyncReadExt;
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    let mut tcp = tokio::net::TcpStream::connect(addr).await.ok()?;
    tcp.write_all(request.as_bytes()).await.ok()?;
    let mut raw = Vec::new();
    tcp.read_to_end(&mut raw).await.ok()?;
    (!raw.is_empty()).then(|| crate::support::parse_response(&raw))
}
