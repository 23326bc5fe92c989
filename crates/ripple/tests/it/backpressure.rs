//! Bounded buffers: a peer that does not read stops the sender instead of growing memory.

use std::time::Duration;

use ripple::{Acceptor, Message, WebSocket};
use tokio::io::AsyncWriteExt;
use tokio::sync::oneshot;

use crate::support::{client_frame, raw_upgrade, start};

const CHUNK: usize = 64 * 1024;

#[tokio::test]
async fn send_waits_for_a_client_that_does_not_read() {
    let (report, reported) = oneshot::channel();
    let report = std::sync::Mutex::new(Some(report));
    let server = start(Acceptor::new(), move |mut ws: WebSocket| {
        let report = report.lock().unwrap().take();
        async move {
            let message = Message::from(vec![7u8; CHUNK]);
            let mut sent = 0usize;
            loop {
                match tokio::time::timeout(Duration::from_millis(500), ws.send(message.clone()))
                    .await
                {
                    Ok(Ok(())) => sent += 1,
                    Ok(Err(err)) => panic!("send failed: {err}"),
                    Err(_) => break,
                }
                assert!(
                    sent < 1024,
                    "64 MiB went out to a client that reads nothing"
                );
            }
            let buffered = ws.writer().buffered_amount();
            if let Some(report) = report {
                let _ = report.send((sent, buffered));
            }
        }
    })
    .await;
    let _tcp = raw_upgrade(server.addr).await; // never reads
    let (sent, buffered) = reported.await.unwrap();
    assert!(
        sent * CHUNK < 32 << 20,
        "{sent} messages sent before blocking"
    );
    assert!(
        buffered <= CHUNK + 14,
        "{buffered} bytes buffered in the connection"
    );
}

#[tokio::test]
async fn a_server_that_does_not_read_stops_the_client() {
    let server = start(Acceptor::new(), |ws: WebSocket| async move {
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(ws);
    })
    .await;
    let mut tcp = raw_upgrade(server.addr).await;
    let frame = client_frame(0x82, &vec![1u8; CHUNK]);
    let mut written = 0usize;
    while tokio::time::timeout(Duration::from_millis(500), tcp.write_all(&frame))
        .await
        .is_ok()
    {
        written += 1;
        assert!(
            written < 1024,
            "the server buffered 64 MiB it was not asked to read"
        );
    }
}
