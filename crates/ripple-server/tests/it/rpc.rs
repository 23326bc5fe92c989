//! `POST /rpc`: one channel-protocol command per request, with the same checks and replies as
//! on `/ws`, and HTTP statuses for what is refused.

use ripple_server::Config;
use serde_json::json;

use crate::sse_support::rpc;
use crate::support::{http, jwt_config, start, start_default, valid_token};

#[tokio::test]
async fn publish_presence_history_and_ping_answer_their_replies() {
    let server = start_default().await;
    let published = rpc(
        server.addr,
        None,
        &json!({"type": "publish", "channel": "a", "data": {"text": "hi"}, "id": 7}),
    )
    .await;
    assert_eq!(published.status, 200);
    assert_eq!(published.header("content-type"), Some("application/json"));
    let reply = published.json();
    assert_eq!(
        (
            reply["type"].as_str(),
            reply["id"].as_u64(),
            reply["offset"].as_u64()
        ),
        (Some("published"), Some(7), Some(1))
    );
    let history = rpc(
        server.addr,
        None,
        &json!({"type": "history", "channel": "a"}),
    )
    .await
    .json();
    assert_eq!(history["type"], "history");
    assert_eq!(history["messages"][0]["data"], json!({"text": "hi"}));
    let presence = rpc(
        server.addr,
        None,
        &json!({"type": "presence", "channel": "a", "id": 2}),
    )
    .await
    .json();
    assert_eq!(
        (
            presence["type"].as_str(),
            presence["clients"].as_array().map(Vec::len)
        ),
        (Some("presence"), Some(0))
    );
    let pong = rpc(server.addr, None, &json!({"type": "ping", "id": 3}))
        .await
        .json();
    assert_eq!(pong, json!({"type": "pong", "id": 3}));
}

#[tokio::test]
async fn refusals_carry_the_status_the_code_and_the_id() {
    let server = start(Config {
        max_message_size: 1024,
        ..jwt_config()
    })
    .await;
    let good = valid_token("alice", &["room:*"]);
    let publish =
        |channel: &str| json!({"type": "publish", "channel": channel, "data": 1, "id": 9});
    let cases = [
        (None, publish("room:1"), 401, "unauthorized"),
        (Some("bad"), publish("room:1"), 401, "invalid_token"),
        (Some(good.as_str()), publish("admin"), 403, "forbidden"),
        (
            Some(good.as_str()),
            json!({"type": "subscribe", "channel": "room:1", "id": 9}),
            400,
            "bad_request",
        ),
        (
            Some(good.as_str()),
            json!({"type": "auth", "token": "x", "id": 9}),
            400,
            "bad_request",
        ),
        (
            Some(good.as_str()),
            json!({"type": "dance", "id": 9}),
            400,
            "unknown_type",
        ),
        (
            Some(good.as_str()),
            json!({"type": "publish", "channel": "room:1", "id": 9}),
            400,
            "invalid_field",
        ),
        (
            Some(good.as_str()),
            json!({"type": "publish", "channel": "room:1", "data": "x".repeat(2000), "id": 9}),
            413,
            "too_large",
        ),
    ];
    for (token, command, status, code) in cases {
        let reply = rpc(server.addr, token, &command).await;
        assert_eq!(reply.status, status, "{command}: {reply:?}");
        let body = reply.json();
        assert_eq!(
            (body["type"].as_str(), body["code"].as_str()),
            (Some("error"), Some(code)),
            "{command}"
        );
        if status != 413 {
            assert_eq!(body["id"], 9, "{command}: {body}");
        }
    }
    let bearer = format!("Bearer {good}");
    let with_header = http(
        server.addr,
        "POST",
        "/rpc",
        &[("Authorization", &bearer)],
        &publish("room:1").to_string(),
    )
    .await;
    assert_eq!(with_header.status, 200, "{with_header:?}");
    let not_json = http(server.addr, "POST", "/rpc", &[], "hello").await;
    assert_eq!(
        (not_json.status, not_json.json()["code"].as_str()),
        (400, Some("bad_request"))
    );
}

#[tokio::test]
async fn publish_rate_is_limited_per_user_or_address() {
    let server = start(Config {
        publish_rate: 2,
        ..Config::default()
    })
    .await;
    let command = json!({"type": "publish", "channel": "a", "data": 1});
    let statuses: Vec<u16> =
        futures_util::future::join_all((0..3).map(|_| rpc(server.addr, None, &command)))
            .await
            .iter()
            .map(|r| r.status)
            .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        2,
        "{statuses:?}"
    );
    let limited = rpc(server.addr, None, &command).await;
    assert_eq!(
        (limited.status, limited.json()["code"].as_str()),
        (429, Some("rate_limited"))
    );
    let unlimited = start_default().await;
    for _ in 0..5 {
        assert_eq!(rpc(unlimited.addr, None, &command).await.status, 200);
    }
}

#[tokio::test]
async fn pages_of_allowed_origins_may_read_the_answers_cors() {
    let server = start(Config {
        allowed_origins: vec!["https://app.example".into()],
        ..Config::default()
    })
    .await;
    let publish = json!({"type": "publish", "channel": "a", "data": 1}).to_string();
    let allowed = http(
        server.addr,
        "POST",
        "/rpc",
        &[("Origin", "https://app.example")],
        &publish,
    )
    .await;
    assert_eq!(allowed.status, 200);
    assert_eq!(
        allowed.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    let poll = http(
        server.addr,
        "GET",
        "/poll?channel=a&timeout=0",
        &[("Origin", "https://app.example")],
        "",
    )
    .await;
    assert_eq!(
        poll.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    let preflight = http(
        server.addr,
        "OPTIONS",
        "/rpc",
        &[
            ("Origin", "https://app.example"),
            ("Access-Control-Request-Method", "POST"),
            ("Access-Control-Request-Headers", "content-type"),
        ],
        "",
    )
    .await;
    assert_eq!(preflight.status, 204);
    assert_eq!(
        preflight.header("access-control-allow-methods"),
        Some("POST")
    );
    let other = http(
        server.addr,
        "OPTIONS",
        "/rpc",
        &[("Origin", "https://evil.example")],
        "",
    )
    .await;
    assert_eq!(other.status, 403);
    let refused = http(
        server.addr,
        "POST",
        "/rpc",
        &[("Origin", "https://evil.example")],
        &publish,
    )
    .await;
    assert_eq!(refused.status, 403);
    assert_eq!(refused.header("access-control-allow-origin"), None);
    let no_origin = http(server.addr, "POST", "/rpc", &[], &publish).await;
    assert_eq!(
        no_origin.status, 200,
        "clients that are not browsers send no Origin"
    );
    assert_eq!(no_origin.header("access-control-allow-origin"), None);
}
