//! Keepalive with paused time: pings on schedule, 1011 for a silent peer, nothing when off.

use std::time::Duration;

use ripple::{Acceptor, ClientBuilder, Config, Error};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

use crate::support::{echo, raw_accept, raw_upgrade, read_close_code, read_frame, start};

fn keepalive(secs: u64) -> Config {
    Config::default().keepalive(
        Some(Duration::from_secs(secs)),
        Some(Duration::from_secs(secs)),
    )
}

#[tokio::test(start_paused = true)]
async fn server_closes_a_silent_client_with_1011() {
    let server = start(Acceptor::new().config(keepalive(5)), echo).await;
    let mut tcp = raw_upgrade(server.addr).await;
    let started = tokio::time::Instant::now();
    let (first, _) = read_frame(&mut tcp).await;
    assert_eq!(first, 0x89, "a ping comes first");
    assert!(started.elapsed() >= Duration::from_secs(5));
    assert_eq!(read_close_code(&mut tcp).await, 1011);
    assert!(started.elapsed() >= Duration::from_secs(10));
}

#[tokio::test(start_paused = true)]
async fn answered_pings_keep_an_idle_connection_open() {
    let server = start(Acceptor::new().config(keepalive(1)), echo).await;
    let mut ws = ClientBuilder::new(server.url("/"))
        .config(keepalive(1))
        .connect()
        .await
        .unwrap();
    let idle = tokio::time::timeout(Duration::from_secs(30), ws.recv()).await;
    assert!(idle.is_err(), "nothing happened for 30 s: {idle:?}");
    ws.send("still open").await.unwrap();
    assert_eq!(ws.recv().await.unwrap(), Some("still open".into()));
}

#[tokio::test(start_paused = true)]
async fn client_gives_up_on_a_silent_server() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let silent = tokio::spawn(async move {
        let tcp = raw_accept(&listener).await;
        tokio::time::sleep(Duration::from_secs(3600)).await;
        drop(tcp);
    });
    let mut ws = ClientBuilder::new(format!("ws://{addr}/"))
        .config(keepalive(2))
        .connect()
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    assert!(matches!(ws.recv().await, Err(Error::KeepaliveTimeout)));
    assert!(started.elapsed() >= Duration::from_secs(4));
    silent.abort();
}

#[tokio::test(start_paused = true)]
async fn keepalive_off_sends_no_pings() {
    let server = start(
        Acceptor::new().config(Config::default().keepalive(None, None)),
        echo,
    )
    .await;
    let mut tcp = raw_upgrade(server.addr).await;
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_secs(600), tcp.read(&mut byte)).await;
    assert!(read.is_err(), "no frame in 10 minutes: {read:?}");
}
