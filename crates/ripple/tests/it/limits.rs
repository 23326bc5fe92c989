//! Every limit hit on purpose: the offender gets the right code or status, everyone else is
//! served.

use std::time::Duration;

use ripple::{
    Acceptor, ClientBuilder, CloseCode, Config, DeflateConfig, Error, Message, WebSocket, proto,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;

use crate::support::{
    client_frame, echo, raw_exchange, raw_upgrade, raw_upgrade_with, read_close_code, read_frame,
    start, upgrade_request,
};

/// Pings a flooding client sends without reading: 26 MB, so that one pong per ping (25 MB) would
/// not fit in the kernel's socket buffers.
const FLOOD_PINGS: usize = 200_000;

#[tokio::test]
async fn oversized_message_closes_with_1009_and_others_keep_going() {
    let server = start(
        Acceptor::new().config(Config::default().max_message_size(1024)),
        echo,
    )
    .await;
    let mut bystander = ripple::connect(&server.url("/")).await.unwrap();
    let mut offender = ripple::connect(&server.url("/")).await.unwrap();
    offender.send(Message::from(vec![0u8; 2048])).await.unwrap();
    assert!(
        matches!(offender.recv().await, Ok(None)),
        "the server closed the handshake cleanly"
    );
    assert_eq!(
        offender.close_frame().map(|f| f.code),
        Some(CloseCode::MESSAGE_TOO_BIG)
    );
    bystander.send("still here").await.unwrap();
    assert_eq!(
        bystander.recv().await.unwrap(),
        Some(Message::from("still here"))
    );
}

#[tokio::test]
async fn rfc6455_5_5_2_pings_in_one_write_get_a_pong_each() {
    // Autobahn 2.10 expects this, although §5.5.3 would allow answering only the last.
    let server = start(Acceptor::new(), echo).await;
    let mut tcp = raw_upgrade(server.addr).await;
    let pings: Vec<u8> = (0..10u8).flat_map(|i| client_frame(0x89, &[i])).collect();
    tcp.write_all(&pings).await.unwrap();
    for i in 0..10u8 {
        assert_eq!(read_frame(&mut tcp).await, (0x8a, vec![i]));
    }
}

#[tokio::test]
async fn rfc6455_5_5_3_ping_flood_from_a_client_that_does_not_read_stays_bounded() {
    let (report, reported) = oneshot::channel();
    let report = std::sync::Mutex::new(Some(report));
    let server = start(Acceptor::new(), move |mut ws: WebSocket| {
        let report = report.lock().unwrap().take();
        async move {
            // The text message comes after the flood: every ping before it has been answered.
            if let (Ok(Some(_)), Some(report)) = (ws.recv().await, report) {
                let _ = report.send(ws.writer().buffered_amount());
            }
            // Keep reading, so that the owed pong goes out once the client reads.
            while let Ok(Some(_)) = ws.recv().await {}
        }
    })
    .await;
    let mut tcp = raw_upgrade(server.addr).await;
    let batch = client_frame(0x89, &[b'p'; 125]).repeat(1000);
    for _ in 0..FLOOD_PINGS / 1000 {
        tcp.write_all(&batch).await.unwrap();
    }
    let last = [b'L'; 125];
    tcp.write_all(&client_frame(0x89, &last)).await.unwrap();
    tcp.write_all(&client_frame(0x81, b"done")).await.unwrap();
    let buffered = reported.await.unwrap();
    assert!(
        buffered < 8 * 1024,
        "{buffered} bytes buffered for a client that reads nothing"
    );
    // Pongs still in the kernel's buffers come first; the last ping's pong is never dropped.
    let pongs = tokio::time::timeout(Duration::from_secs(30), async {
        let mut pongs = 0usize;
        loop {
            let (first, payload) = read_frame(&mut tcp).await;
            assert_eq!(first, 0x8a, "only pongs: {first:#x}");
            pongs += 1;
            if payload == last {
                return pongs;
            }
        }
    })
    .await
    .unwrap();
    assert!(pongs <= FLOOD_PINGS, "{pongs} pongs");
}

#[tokio::test]
async fn oversized_frame_header_fails_before_the_payload_arrives() {
    let server = start(
        Acceptor::new().config(Config::default().max_message_size(1024)),
        echo,
    )
    .await;
    let mut tcp = raw_upgrade(server.addr).await;
    // Announce 1 GiB and send nothing more: the header alone must end the connection.
    let mut header = vec![0x82, 0x80 | 127];
    header.extend((1u64 << 30).to_be_bytes());
    header.extend([0, 0, 0, 0]);
    tcp.write_all(&header).await.unwrap();
    assert_eq!(read_close_code(&mut tcp).await, 1009);
}

#[tokio::test]
async fn fragmented_message_over_the_limit_closes_with_1009() {
    let server = start(
        Acceptor::new().config(Config::default().max_message_size(1000)),
        echo,
    )
    .await;
    let mut tcp = raw_upgrade(server.addr).await;
    for first_byte in [0x02, 0x00, 0x00] {
        tcp.write_all(&client_frame(first_byte, &[0u8; 400]))
            .await
            .unwrap();
    }
    assert_eq!(read_close_code(&mut tcp).await, 1009);
}

#[tokio::test]
async fn client_enforces_its_own_limit() {
    let server = start(
        Acceptor::new().config(Config::default().max_message_size(4 << 20)),
        echo,
    )
    .await;
    let config = Config::default().max_message_size(1000);
    let mut ws = ClientBuilder::new(server.url("/"))
        .config(config)
        .connect()
        .await
        .unwrap();
    ws.send(Message::from(vec![1u8; 2000])).await.unwrap();
    assert!(matches!(ws.recv().await, Err(Error::Protocol(_))));
}

#[tokio::test]
async fn rfc6455_4_4_wrong_version_gets_426_with_supported_version() {
    let server = crate::support::echo_server().await;
    let request = upgrade_request("/", "").replace("Version: 13", "Version: 8");
    let reply = String::from_utf8(raw_exchange(server.addr, request.as_bytes()).await).unwrap();
    assert!(reply.starts_with("HTTP/1.1 426"), "{reply}");
    assert!(
        reply
            .to_ascii_lowercase()
            .contains("sec-websocket-version: 13"),
        "{reply}"
    );
}

#[tokio::test]
async fn missing_key_gets_400() {
    let server = crate::support::echo_server().await;
    let request =
        upgrade_request("/", "").replace("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", "");
    let reply = String::from_utf8(raw_exchange(server.addr, request.as_bytes()).await).unwrap();
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
}

#[tokio::test]
async fn malformed_key_gets_400() {
    let server = crate::support::echo_server().await;
    let request = upgrade_request("/", "").replace("dGhlIHNhbXBsZSBub25jZQ==", "short");
    let reply = String::from_utf8(raw_exchange(server.addr, request.as_bytes()).await).unwrap();
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
}

#[tokio::test]
async fn post_gets_405() {
    let server = crate::support::echo_server().await;
    let request = upgrade_request("/", "").replacen("GET", "POST", 1);
    let reply = String::from_utf8(raw_exchange(server.addr, request.as_bytes()).await).unwrap();
    assert!(reply.starts_with("HTTP/1.1 405"), "{reply}");
}

#[tokio::test]
async fn huge_headers_get_431() {
    let server = crate::support::echo_server().await;
    let request = upgrade_request("/", &format!("X-Big: {}\r\n", "a".repeat(20_000)));
    let reply = String::from_utf8(raw_exchange(server.addr, request.as_bytes()).await).unwrap();
    assert!(reply.starts_with("HTTP/1.1 431"), "{reply}");
}

#[tokio::test(start_paused = true)]
async fn silent_client_times_out_in_the_opening_handshake() {
    let config = Config::default().open_timeout(Duration::from_secs(3));
    let server = start(Acceptor::new().config(config), echo).await;
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
    let started = tokio::time::Instant::now();
    let mut reply = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), tcp.read_to_end(&mut reply)).await;
    assert!(matches!(read, Ok(Ok(0))), "the server hangs up: {read:?}");
    assert!(started.elapsed() >= Duration::from_secs(3));
}

#[tokio::test]
async fn rfc7692_compressed_bomb_closes_with_1009_and_others_keep_going() {
    let server = start(Acceptor::new(), echo).await; // 1 MiB limit, compression on by default
    let mut bystander = ripple::connect(&server.url("/")).await.unwrap();
    assert!(bystander.is_compressed());
    let offer = "Sec-WebSocket-Extensions: permessage-deflate\r\n";
    let mut tcp = raw_upgrade_with(server.addr, offer).await;
    // 10 MiB of zeros deflate to about 10 KiB: one small frame, far past the limit once inflated.
    let mut config = DeflateConfig::default();
    config.level = 9;
    let bomb =
        proto::extension::deflate::compress_standalone(&vec![0u8; 10 << 20], &config).unwrap();
    assert!(bomb.len() < 64 * 1024, "{} compressed bytes", bomb.len());
    tcp.write_all(&client_frame(0xc2, &bomb)).await.unwrap(); // FIN + RSV1 + binary
    assert_eq!(read_close_code(&mut tcp).await, 1009);
    bystander
        .send(Message::from("x".repeat(4096)))
        .await
        .unwrap();
    assert_eq!(
        bystander.recv().await.unwrap(),
        Some(Message::from("x".repeat(4096)))
    );
}
