//! `/sse`: the channel protocol over Server-Sent Events, read as `EventSource` reads it —
//! subscribe, receive, resume every channel with `Last-Event-ID`, `recovered: false`, auth
//! failures, bad cursors, heartbeats, the end of a stream, and a reader that never reads.

use std::time::Duration;

use ripple_server::Config;
use serde_json::json;

use crate::sse_support::{decode_cursor, encode_cursor, open, open_small_window, rpc_publish};
use crate::support::{
    anonymous, eventually, jwt_config, start, start_default, token, unix_now, valid_token,
};

#[tokio::test]
async fn streams_subscribed_and_messages_with_a_cursor_over_every_channel() {
    let server = start_default().await;
    let mut stream = open(server.addr, "/sse?channel=a&channel=b", &[])
        .await
        .unwrap();
    assert_eq!(stream.header("content-type"), Some("text/event-stream"));
    assert_eq!(stream.header("cache-control"), Some("no-cache"));
    let hello = stream.expect("authenticated").await;
    assert!(hello.id.is_none());
    assert_eq!(stream.retry, Some(2000));
    for channel in ["a", "b"] {
        let subscribed = stream.expect("subscribed").await;
        assert_eq!(subscribed.json()["channel"], channel);
        assert_eq!(subscribed.json()["recovered"], true);
        assert!(subscribed.id.is_some());
    }
    rpc_publish(server.addr, "a", json!({"n": 1})).await;
    rpc_publish(server.addr, "b", json!("two")).await;
    let first = stream.expect("message").await;
    assert_eq!(first.json()["data"], json!({"n": 1}));
    let second = stream.expect("message").await;
    assert_eq!(second.json()["channel"], "b");
    let cursor = decode_cursor(second.id.as_deref().unwrap());
    let epoch_a = first.json()["epoch"].as_str().unwrap().to_owned();
    let epoch_b = second.json()["epoch"].as_str().unwrap().to_owned();
    assert_eq!(
        cursor,
        [("a".to_owned(), epoch_a, 1), ("b".to_owned(), epoch_b, 1)]
    );
}

#[tokio::test]
async fn last_event_id_resumes_every_channel_exactly_once_in_order() {
    let server = start_default().await;
    let path = "/sse?channel=a&channel=b";
    let mut stream = open(server.addr, path, &[]).await.unwrap();
    stream.expect("authenticated").await;
    stream.expect("subscribed").await;
    stream.expect("subscribed").await;
    for n in 1..=3 {
        rpc_publish(server.addr, "a", json!(n)).await;
    }
    let mut last_id = None;
    for n in 1..=3 {
        let message = stream.expect("message").await;
        assert_eq!(message.json()["offset"], n);
        last_id = message.id;
    }
    drop(stream);
    // Missed while away: on both channels, interleaved.
    for n in 4..=8 {
        rpc_publish(server.addr, "a", json!(n)).await;
        rpc_publish(server.addr, "b", json!(n)).await;
    }
    let last_id = last_id.unwrap();
    let mut stream = open(server.addr, path, &[("Last-Event-ID", &last_id)])
        .await
        .unwrap();
    stream.expect("authenticated").await;
    let a = stream.expect("subscribed").await.json();
    assert_eq!(
        (a["channel"].as_str(), a["recovered"].as_bool()),
        (Some("a"), Some(true))
    );
    let mut got_a = Vec::new();
    let mut got_b = Vec::new();
    while got_a.len() < 5 || got_b.len() < 5 {
        let event = stream.next_event().await;
        let json = event.json();
        match (event.event.as_str(), json["channel"].as_str()) {
            ("subscribed", Some("b")) => assert_eq!(json["recovered"], true, "{json}"),
            ("message", Some("a")) => got_a.push(json["offset"].as_u64().unwrap()),
            ("message", Some("b")) => got_b.push(json["offset"].as_u64().unwrap()),
            other => panic!("unexpected {other:?}: {json}"),
        }
    }
    assert_eq!(got_a, [4, 5, 6, 7, 8]);
    assert_eq!(got_b, [1, 2, 3, 4, 5]);
    rpc_publish(server.addr, "a", json!("live")).await;
    assert_eq!(stream.expect("message").await.json()["offset"], 9);
    // The query parameter works as well, and the header wins over it.
    let stale = encode_cursor(&[("a", "0000000000000000", 1)]);
    let path = format!("/sse?channel=a&cursor={stale}");
    let mut stream = open(server.addr, &path, &[("Last-Event-ID", &last_id)])
        .await
        .unwrap();
    stream.expect("authenticated").await;
    assert_eq!(stream.expect("subscribed").await.json()["recovered"], true);
    assert_eq!(stream.expect("message").await.json()["offset"], 4);
}

#[tokio::test]
async fn a_cursor_from_another_epoch_gets_recovered_false() {
    let server = start_default().await;
    rpc_publish(server.addr, "a", json!(1)).await;
    let cursor = encode_cursor(&[("a", "0000000000000000", 3)]);
    let mut stream = open(server.addr, &format!("/sse?channel=a&cursor={cursor}"), &[])
        .await
        .unwrap();
    stream.expect("authenticated").await;
    let subscribed = stream.expect("subscribed").await;
    assert_eq!(subscribed.json()["recovered"], false);
    let moved = decode_cursor(subscribed.id.as_deref().unwrap());
    assert_eq!(
        moved[0].2, 1,
        "the cursor moves to the channel's newest offset"
    );
    assert_ne!(moved[0].1, "0000000000000000");
}

#[tokio::test]
async fn refusals_are_http_statuses_with_json_errors() {
    let server = start(Config {
        max_subscriptions: 2,
        ..jwt_config()
    })
    .await;
    let good = valid_token("alice", &["room:*"]);
    let cases = [
        ("/sse?channel=room:1".to_owned(), 401, "unauthorized"),
        (
            "/sse?channel=room:1&token=nope".to_owned(),
            401,
            "invalid_token",
        ),
        (
            format!(
                "/sse?channel=room:1&token={}",
                token("alice", &["room:*"], unix_now() - 10)
            ),
            401,
            "token_expired",
        ),
        (format!("/sse?channel=admin&token={good}"), 403, "forbidden"),
        (format!("/sse?token={good}"), 400, "invalid_field"),
        (
            format!("/sse?channel=room:1&cursor=%21%21&token={good}"),
            400,
            "invalid_cursor",
        ),
        (
            format!("/sse?channel=room:1&channel=room:2&channel=room:3&token={good}"),
            400,
            "too_many_subscriptions",
        ),
        (
            format!("/sse?channel=a%20b&token={good}"),
            400,
            "invalid_channel",
        ),
    ];
    for (path, status, code) in cases {
        let refused = open(server.addr, &path, &[]).await.err().unwrap();
        assert_eq!(refused.status, status, "{path}: {refused:?}");
        assert_eq!(refused.json()["type"], "error");
        assert_eq!(refused.json()["code"], code, "{path}");
    }
    let bearer = format!("Bearer {good}");
    let mut stream = open(
        server.addr,
        "/sse?channel=room:1",
        &[("Authorization", &bearer)],
    )
    .await
    .unwrap();
    assert_eq!(stream.expect("authenticated").await.json()["user"], "alice");
    assert_eq!(server.metric("ripple_connections").await, 1);
    drop(stream);
    eventually("the stream's connection is released", async || {
        server.metric("ripple_connections").await == 0
    })
    .await;
}

#[tokio::test]
async fn origin_and_connection_limits_apply() {
    let server = start(Config {
        allowed_origins: vec!["https://good.example".into()],
        max_connections: 1,
        ..Config::default()
    })
    .await;
    let refused = open(
        server.addr,
        "/sse?channel=a",
        &[("Origin", "https://evil.example")],
    )
    .await
    .err()
    .unwrap();
    assert_eq!(
        (refused.status, refused.json()["code"].as_str()),
        (403, Some("origin_not_allowed"))
    );
    let _held = open(
        server.addr,
        "/sse?channel=a",
        &[("Origin", "https://good.example")],
    )
    .await
    .unwrap();
    let full = open(server.addr, "/sse?channel=a", &[])
        .await
        .err()
        .unwrap();
    assert_eq!(
        (full.status, full.json()["code"].as_str()),
        (503, Some("unavailable"))
    );
}

#[tokio::test]
async fn sse_clients_are_in_presence_and_leave_when_they_go() {
    let server = start_default().await;
    let mut watcher = anonymous(&server).await;
    watcher.subscribe("room").await;
    let mut stream = open(server.addr, "/sse?channel=room", &[]).await.unwrap();
    let client = stream.expect("authenticated").await.json()["client"].clone();
    let join = watcher.expect("join").await;
    assert_eq!(join["client"], client);
    let presence = watcher
        .request(json!({"type": "presence", "channel": "room"}))
        .await;
    assert_eq!(presence["clients"].as_array().unwrap().len(), 2);
    // The SSE client sees the /ws client's presence pushes too.
    let mut other = anonymous(&server).await;
    other.subscribe("room").await;
    loop {
        let event = stream.next().await.unwrap();
        if event.event == "join" {
            assert_eq!(event.json()["client"].as_str(), Some(other.id.as_str()));
            break;
        }
    }
    assert_eq!(
        watcher.expect("join").await["client"].as_str(),
        Some(other.id.as_str())
    );
    drop(stream);
    let leave = watcher.expect("leave").await;
    assert_eq!(leave["client"], client);
}

#[tokio::test]
async fn idle_streams_get_heartbeat_comments() {
    let server = start(Config {
        sse_heartbeat_secs: 1,
        ..Config::default()
    })
    .await;
    let mut stream = open(server.addr, "/sse?channel=a", &[]).await.unwrap();
    stream.expect("authenticated").await;
    stream.expect("subscribed").await;
    let started = std::time::Instant::now();
    let beat = stream.next().await.unwrap();
    assert_eq!(
        (beat.event.as_str(), beat.data.as_str()),
        (":", "heartbeat")
    );
    assert!(
        started.elapsed() >= Duration::from_millis(700),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn token_expiry_and_shutdown_end_the_stream_with_a_close_event() {
    let mut server = start(jwt_config()).await;
    let short = token("alice", &["*"], unix_now() + 2);
    let mut expiring = open(server.addr, &format!("/sse?channel=a&token={short}"), &[])
        .await
        .unwrap();
    let long = valid_token("bob", &["*"]);
    let mut lasting = open(server.addr, &format!("/sse?channel=a&token={long}"), &[])
        .await
        .unwrap();
    expiring.expect("authenticated").await;
    expiring.expect("subscribed").await;
    let error = expiring.expect("error").await;
    assert_eq!(error.json()["code"], "token_expired");
    let close = expiring.expect("close").await.json();
    assert_eq!(
        (close["code"].as_u64(), close["reason"].as_str()),
        (Some(4002), Some("token expired"))
    );
    assert!(
        expiring.next().await.is_none(),
        "the stream ends after close"
    );

    lasting.expect("authenticated").await;
    lasting.expect("subscribed").await;
    server.trigger_shutdown();
    let close = lasting.expect("close").await.json();
    assert_eq!(close["code"], 1001);
    assert!(lasting.next().await.is_none());
    server.stopped(Duration::from_secs(10)).await;
}

#[tokio::test]
async fn a_reader_that_never_reads_is_cut_off_and_nobody_waits_for_it() {
    let server = start(Config {
        client_queue_bytes: 16 * 1024,
        send_timeout_secs: 2,
        publish_rate: 0,
        ..Config::default()
    })
    .await;
    let mut sleeper = open_small_window(server.addr, "/sse?channel=feed").await;
    let mut reader = open(server.addr, "/sse?channel=feed", &[]).await.unwrap();
    reader.expect("authenticated").await;
    reader.expect("subscribed").await;
    // Read the sleeper's greeting so it is subscribed, then never read again.
    sleeper.expect("authenticated").await;
    sleeper.expect("subscribed").await;
    let padding = "p".repeat(2000);
    let subscribers = async || {
        let presence = json!({"type": "presence", "channel": "feed"});
        let reply = crate::sse_support::rpc(server.addr, None, &presence).await;
        reply.json()["clients"].as_array().unwrap().len()
    };
    // The sleeper goes either as a slow consumer (its queue filled: 4008) or because its
    // connection stalled for the send timeout; either way no publish waits for it.
    let mut sent = 0;
    while sent % 50 != 0 || subscribers().await == 2 {
        assert!(
            sent < 5000,
            "the sleeper was not cut off after {sent} publishes"
        );
        sent += 1;
        let started = std::time::Instant::now();
        rpc_publish(server.addr, "feed", json!({"n": sent, "padding": padding})).await;
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "a publish waited"
        );
    }
    for n in 1..=sent {
        let message = reader.expect("message").await.json();
        assert_eq!(message["offset"], n);
    }
    sleeper.closed_within(Duration::from_secs(10)).await;
}
