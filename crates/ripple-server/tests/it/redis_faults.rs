//! Redis faults (issue 10): unreachable at start, lost and restarted empty while nodes run,
//! pub/sub connections dropped while messages are published.

use std::time::Duration;

use ripple_server::Config;
use ripple_server::config::BrokerConfig;
use serde_json::json;
use tokio::net::TcpListener;

use crate::redis_support::{Node, RedisServer, node_config};
use crate::support::{Client, WAIT, api_auth, eventually, http};

async fn client(node: &Node) -> Client {
    let mut client = Client::open(&node.ws_url()).await;
    let hello = client.expect("authenticated").await;
    client.id = hello["client"].as_str().unwrap().to_owned();
    client
}

#[tokio::test]
async fn redis_unreachable_at_start_is_an_error_naming_the_url() {
    let nobody = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = nobody.local_addr().unwrap().port();
    drop(nobody);
    let url = format!("redis://127.0.0.1:{port}/3");
    let config = Config {
        broker: BrokerConfig::Redis(url.clone()),
        ..Config::default()
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ran = tokio::time::timeout(
        WAIT,
        ripple_server::run(listener, config, std::future::pending()),
    )
    .await
    .expect("run gives up within the bound");
    let err = ran.expect_err("no Redis: run fails").to_string();
    assert!(err.contains(&url), "the error names the URL: {err}");
    assert!(err.contains("cannot connect to Redis"), "{err}");
}

#[tokio::test]
async fn redis_restarted_empty_turns_health_red_then_green_and_clients_learn_recovered_false() {
    let mut redis = RedisServer::start().await;
    let a = Node::start(node_config(&redis)).await;
    let b = Node::start(node_config(&redis)).await;
    let mut reader = client(&a).await;
    reader.subscribe("r").await;
    let mut publisher = client(&b).await;
    for n in 1..=3 {
        publisher.publish("r", json!(n)).await;
    }
    let mut epoch = String::new();
    for n in 1..=3 {
        let message = reader.expect("message").await;
        assert_eq!(message["offset"], n);
        epoch = message["epoch"].as_str().unwrap().to_owned();
    }

    redis.kill();
    eventually("both nodes to report unhealthy", async || {
        !a.healthy().await && !b.healthy().await
    })
    .await;
    // No silent drop: a publish fails, over WebSocket and over HTTP.
    let code = publisher
        .error_code(json!({"type": "publish", "channel": "r", "data": 4}))
        .await;
    assert_eq!(code, "internal");
    let (name, value) = api_auth();
    let refused = http(
        b.addr,
        "POST",
        "/api/publish",
        &[(name, &value)],
        r#"{"channel":"r","data":4}"#,
    )
    .await;
    assert_eq!(refused.status, 503, "{}", refused.body);
    // The clients stay connected meanwhile.
    assert_eq!(
        reader.request(json!({"type": "ping"})).await["type"],
        "pong"
    );

    redis.restart().await;
    eventually("both nodes to be healthy again", async || {
        a.healthy().await && b.healthy().await
    })
    .await;
    // The channel's history is gone: the reader is told to subscribe again...
    let code = reader.closed().await;
    assert_eq!(code, ripple_server::broker::STATE_LOST);
    // ...and learns, wherever it reconnects, that it cannot recover.
    let mut back = client(&b).await;
    let reply = back
        .request(
            json!({"type": "subscribe", "channel": "r", "since": {"epoch": epoch, "offset": 3}}),
        )
        .await;
    assert_eq!(reply["recovered"], false, "{reply}");
    assert_ne!(reply["epoch"], epoch.as_str());
    let published = publisher.publish("r", json!("after")).await;
    assert_eq!(published["offset"], 1);
    let message = back.recv_skipping_presence().await;
    assert_eq!(
        (message["offset"].as_u64(), &message["data"]),
        (Some(1), &json!("after"))
    );
}

#[tokio::test]
async fn redis_pubsub_connections_dropped_mid_stream_are_caught_up_from_history() {
    let redis = RedisServer::start().await;
    let a = Node::start(node_config(&redis)).await;
    let b = Node::start(node_config(&redis)).await;
    let mut reader = client(&a).await;
    reader.subscribe("c").await;
    let mut publisher = client(&b).await;
    publisher.publish("c", json!(1)).await;
    assert_eq!(reader.expect("message").await["offset"], 1);

    // Every node loses its pub/sub connection; publishing goes on meanwhile.
    let killed = redis.command(&["CLIENT", "KILL", "TYPE", "pubsub"]).await;
    assert!(killed.starts_with(':'), "{killed}");
    for n in 2..=40 {
        publisher.publish("c", json!(n)).await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for n in 2..=40 {
        let message = reader.recv_skipping_presence().await;
        assert_eq!(
            message["offset"], n,
            "in order, none missing, none twice: {message}"
        );
    }
    publisher.publish("c", json!(41)).await;
    assert_eq!(reader.recv_skipping_presence().await["offset"], 41);
}
