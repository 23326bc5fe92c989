//! Bad requests on `/ws` get an `error` reply with a stable code (and the request's `id` when
//! it could be read); the connection stays usable.

use ripple::Message;
use ripple_server::Config;
use serde_json::json;

use crate::support::{Client, anonymous, start, start_default};

/// Sends a raw text frame and returns the `error` reply.
async fn raw_error(client: &mut Client, text: &str) -> serde_json::Value {
    client.ws.send(Message::from(text)).await.unwrap();
    client.expect("error").await
}

#[tokio::test]
async fn text_that_is_not_json_is_bad_request_without_id() {
    let server = start_default().await;
    let mut a = anonymous(&server).await;
    for text in ["{", "not json", "", "{\"type\":\"ping\",}"] {
        let reply = raw_error(&mut a, text).await;
        assert_eq!(reply["code"], "bad_request", "{text:?}: {reply}");
        assert!(reply.get("id").is_none(), "{reply}");
    }
    assert_eq!(
        a.request(json!({"type": "ping"})).await["type"],
        "pong",
        "the connection stays usable"
    );
}

#[tokio::test]
async fn json_that_is_not_an_object_is_bad_request() {
    let server = start_default().await;
    let mut a = anonymous(&server).await;
    for text in ["[1,2]", "42", "\"ping\"", "null"] {
        assert_eq!(
            raw_error(&mut a, text).await["code"],
            "bad_request",
            "{text}"
        );
    }
}

#[tokio::test]
async fn mistyped_fields_are_invalid_field_with_id_echoed() {
    let server = start_default().await;
    let mut a = anonymous(&server).await;
    for command in [
        json!({"type": "subscribe", "channel": 5}),
        json!({"type": "publish", "channel": ["c"], "data": 1}),
        json!({"type": "auth", "token": 12}),
        json!({"type": "history", "channel": "c", "limit": "ten"}),
        json!({"type": 7}),
    ] {
        assert_eq!(
            a.error_code(command.clone()).await,
            "invalid_field",
            "{command}"
        );
    }
}

#[tokio::test]
async fn mistyped_id_is_invalid_field_without_id() {
    let server = start_default().await;
    let mut a = anonymous(&server).await;
    for text in [
        r#"{"type":"ping","id":"seven"}"#,
        r#"{"type":"ping","id":-1}"#,
        r#"{"type":"ping","id":1.5}"#,
    ] {
        let reply = raw_error(&mut a, text).await;
        assert_eq!(reply["code"], "invalid_field", "{text}: {reply}");
        assert!(reply.get("id").is_none(), "{reply}");
    }
}

#[tokio::test]
async fn binary_message_is_bad_request() {
    let server = start_default().await;
    let mut a = anonymous(&server).await;
    a.ws.send(Message::Binary(br#"{"type":"ping"}"#.to_vec().into()))
        .await
        .unwrap();
    let reply = a.expect("error").await;
    assert_eq!(reply["code"], "bad_request");
    assert_eq!(a.request(json!({"type": "ping"})).await["type"], "pong");
}

#[tokio::test]
async fn unknown_or_missing_type_is_unknown_type_with_id_echoed() {
    let server = start_default().await;
    let mut a = anonymous(&server).await;
    assert_eq!(a.error_code(json!({"type": "dance"})).await, "unknown_type");
    assert_eq!(
        a.error_code(json!({"type": "SUBSCRIBE", "channel": "c"}))
            .await,
        "unknown_type"
    );
    assert_eq!(a.error_code(json!({"channel": "c"})).await, "unknown_type");
}

#[tokio::test]
async fn missing_fields_are_invalid_field() {
    let server = start_default().await;
    let mut a = anonymous(&server).await;
    for command in [
        json!({"type": "subscribe"}),
        json!({"type": "unsubscribe"}),
        json!({"type": "publish", "channel": "c"}),
        json!({"type": "publish", "data": 1}),
        json!({"type": "presence"}),
        json!({"type": "history"}),
        json!({"type": "auth"}),
    ] {
        assert_eq!(
            a.error_code(command.clone()).await,
            "invalid_field",
            "{command}"
        );
    }
}

#[tokio::test]
async fn malformed_since_is_invalid_field() {
    let server = start_default().await;
    let mut a = anonymous(&server).await;
    for since in [
        json!({"offset": 1}),
        json!({"epoch": "e"}),
        json!({"epoch": 1, "offset": 1}),
        json!(5),
    ] {
        let code = a
            .error_code(json!({"type": "subscribe", "channel": "c", "since": since}))
            .await;
        assert_eq!(code, "invalid_field", "since {since}");
    }
    let code = a
        .error_code(json!({"type": "history", "channel": "c", "since": "x"}))
        .await;
    assert_eq!(code, "invalid_field");
}

#[tokio::test]
async fn publish_with_null_data_is_accepted() {
    // `data` may be any JSON value, null included; only a missing `data` is an error.
    let server = start_default().await;
    let mut a = anonymous(&server).await;
    a.subscribe("c").await;
    a.send(json!({"type": "publish", "channel": "c", "data": null, "id": 3}))
        .await;
    let first = a.recv().await;
    let second = a.recv().await;
    let message = if first["type"] == "message" {
        first
    } else {
        second
    };
    assert_eq!(message["data"], json!(null));
}

#[tokio::test]
async fn invalid_channel_names_are_invalid_channel() {
    let server = start_default().await;
    let mut a = anonymous(&server).await;
    let too_long = "x".repeat(256);
    for name in ["", "has space", "tab\there", "new\nline", too_long.as_str()] {
        for kind in ["subscribe", "unsubscribe", "presence", "history"] {
            let code = a.error_code(json!({"type": kind, "channel": name})).await;
            assert_eq!(code, "invalid_channel", "{kind} {name:?}");
        }
        let code = a
            .error_code(json!({"type": "publish", "channel": name, "data": 1}))
            .await;
        assert_eq!(code, "invalid_channel", "publish {name:?}");
    }
}

#[tokio::test]
async fn subscribing_twice_is_already_subscribed() {
    let server = start_default().await;
    let mut a = anonymous(&server).await;
    a.subscribe("c").await;
    assert_eq!(
        a.error_code(json!({"type": "subscribe", "channel": "c"}))
            .await,
        "already_subscribed"
    );
}

#[tokio::test]
async fn unsubscribing_without_subscription_is_not_subscribed() {
    let server = start_default().await;
    let mut a = anonymous(&server).await;
    assert_eq!(
        a.error_code(json!({"type": "unsubscribe", "channel": "c"}))
            .await,
        "not_subscribed"
    );
    a.subscribe("c").await;
    a.request(json!({"type": "unsubscribe", "channel": "c"}))
        .await;
    assert_eq!(
        a.error_code(json!({"type": "unsubscribe", "channel": "c"}))
            .await,
        "not_subscribed"
    );
}

#[tokio::test]
async fn subscriptions_past_max_subscriptions_are_too_many_subscriptions() {
    let server = start(Config {
        max_subscriptions: 2,
        ..Config::default()
    })
    .await;
    let mut a = anonymous(&server).await;
    a.subscribe("one").await;
    a.subscribe("two").await;
    let code = a
        .error_code(json!({"type": "subscribe", "channel": "three"}))
        .await;
    assert_eq!(code, "too_many_subscriptions");
    a.request(json!({"type": "unsubscribe", "channel": "one"}))
        .await;
    a.subscribe("three").await;
    let mut b = anonymous(&server).await;
    b.subscribe("one").await;
    b.subscribe("two").await;
}

#[tokio::test]
async fn publishing_faster_than_publish_rate_is_rate_limited() {
    let server = start(Config {
        publish_rate: 5,
        ..Config::default()
    })
    .await;
    let mut a = anonymous(&server).await;
    for n in 0..10 {
        a.send(json!({"type": "publish", "channel": "c", "data": n, "id": n}))
            .await;
    }
    let mut replies = Vec::new();
    for _ in 0..10 {
        replies.push(a.recv().await);
    }
    for (n, reply) in replies.iter().enumerate() {
        assert_eq!(reply["id"], n, "replies come in request order");
    }
    assert!(
        replies[..5].iter().all(|r| r["type"] == "published"),
        "a burst of `publish_rate` passes: {replies:?}"
    );
    let limited: Vec<_> = replies[5..]
        .iter()
        .filter(|r| r["type"] == "error")
        .collect();
    assert!(
        !limited.is_empty(),
        "the flood past the burst is refused: {replies:?}"
    );
    assert!(limited.iter().all(|r| r["code"] == "rate_limited"));

    // Other clients are not limited by this one's rate.
    let mut b = anonymous(&server).await;
    b.publish("c", json!("b")).await;
    // The bucket refills at `publish_rate` per second: 300 ms buys 1.5 publishes. (This wait is
    // the thing under test: time has to pass.)
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    a.publish("c", json!("again")).await;
}

#[tokio::test]
async fn publish_rate_zero_means_unlimited() {
    let server = start(Config {
        publish_rate: 0,
        ..Config::default()
    })
    .await;
    let mut a = anonymous(&server).await;
    for n in 0..200 {
        a.send(json!({"type": "publish", "channel": "c", "data": n}))
            .await;
    }
    for _ in 0..200 {
        assert_eq!(a.recv().await["type"], "published");
    }
}

#[tokio::test]
async fn errors_do_not_close_the_connection() {
    let server = start_default().await;
    let mut a = anonymous(&server).await;
    for _ in 0..20 {
        raw_error(&mut a, "garbage").await;
    }
    a.subscribe("still-here").await;
}
