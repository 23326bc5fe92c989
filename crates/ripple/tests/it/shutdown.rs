//! Graceful shutdown: stop accepting, close every connection with 1001, bounded wait.

use std::time::Duration;

use ripple::{Acceptor, CloseCode, Config, WebSocket};

use crate::support::{echo, start};

#[tokio::test]
async fn shutdown_closes_clients_with_1001() {
    let server = start(Acceptor::new(), echo).await;
    let url = server.url("/");
    let mut a = ripple::connect(&url).await.unwrap();
    let mut b = ripple::connect(&url).await.unwrap();
    a.send("x").await.unwrap();
    assert!(a.recv().await.unwrap().is_some());
    server.shutdown().await;
    for ws in [&mut a, &mut b] {
        assert!(ws.recv().await.unwrap().is_none());
        assert_eq!(
            ws.close_frame().map(|f| f.code),
            Some(CloseCode::GOING_AWAY)
        );
    }
    assert!(ripple::connect(&url).await.is_err(), "no longer accepting");
}

#[tokio::test]
async fn shutdown_does_not_wait_forever_for_a_stuck_handler() {
    let config = Config::default().close_timeout(Duration::from_millis(200));
    let server = start(Acceptor::new().config(config), |_ws: WebSocket| async {
        std::future::pending::<()>().await;
    })
    .await;
    let _ws = ripple::connect(&server.url("/")).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), server.shutdown())
        .await
        .expect("bounded shutdown");
}
