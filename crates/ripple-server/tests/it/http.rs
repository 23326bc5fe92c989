//! HTTP beside WebSocket on the one port: the page, `/healthz`, `/metrics`, and the API.

use serde_json::json;

use crate::support::{
    API_KEY, TestServer, anonymous, api_auth, api_config, http, http_get, metric_value, start,
    start_default,
};

async fn api_get(server: &TestServer, path: &str) -> crate::support::HttpResponse {
    let (name, value) = api_auth();
    http_get(server.addr, path, &[(name, value.as_str())]).await
}

async fn api_publish(server: &TestServer, body: &str) -> crate::support::HttpResponse {
    let (name, value) = api_auth();
    http(
        server.addr,
        "POST",
        "/api/publish",
        &[(name, value.as_str()), ("Content-Type", "application/json")],
        body,
    )
    .await
}

#[tokio::test]
async fn healthz_answers_200_ok() {
    let server = start_default().await;
    let response = http_get(server.addr, "/healthz", &[]).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.body.trim_end(), "ok");
}

#[tokio::test]
async fn root_serves_the_html_page_that_uses_ws() {
    let server = start_default().await;
    let response = http_get(server.addr, "/", &[]).await;
    assert_eq!(response.status, 200);
    assert!(
        response
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/html")),
        "{response:?}"
    );
    assert!(response.body.starts_with("<!doctype html>"));
    assert!(response.body.contains("/assets/chat.js"));
    let script = http_get(server.addr, "/assets/chat.js", &[]).await;
    assert!(script.body.contains("connect('/ws'"), "{script:?}");
}

#[tokio::test]
async fn ripple_http_js_is_served_like_ripple_js_which_imports_it() {
    let server = start_default().await;
    let client = http_get(server.addr, "/ripple.js", &[]).await;
    let fallback = http_get(server.addr, "/ripple-http.js", &[]).await;
    assert_eq!(client.status, 200, "{client:?}");
    assert_eq!(fallback.status, 200, "{fallback:?}");
    assert!(
        client.body.contains("from './ripple-http.js'"),
        "{client:?}"
    );
    assert!(fallback.body.contains("export function sseTransport"));
    assert!(fallback.body.contains("export function pollTransport"));
    for name in ["content-type", "cache-control", "x-content-type-options"] {
        assert!(fallback.header(name).is_some(), "{name}: {fallback:?}");
        assert_eq!(fallback.header(name), client.header(name), "{name}");
    }
    assert_eq!(
        fallback.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    let etag = fallback.header("etag").expect("an ETag").to_owned();
    assert_ne!(Some(etag.as_str()), client.header("etag"));
    let again = http_get(server.addr, "/ripple-http.js", &[("If-None-Match", &etag)]).await;
    assert_eq!(again.status, 304, "{again:?}");
}

#[tokio::test]
async fn unknown_path_is_404() {
    let server = start_default().await;
    assert_eq!(http_get(server.addr, "/nope", &[]).await.status, 404);
}

#[tokio::test]
async fn metrics_is_prometheus_text_whose_counters_move() {
    let server = start_default().await;
    let response = http_get(server.addr, "/metrics", &[]).await;
    assert_eq!(response.status, 200);
    assert!(
        response
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/plain"))
    );
    let before = response.body;
    for name in [
        "ripple_connections",
        "ripple_channels",
        "ripple_connections_total",
        "ripple_messages_in_total",
        "ripple_messages_out_total",
        "ripple_bytes_in_total",
        "ripple_bytes_out_total",
        "ripple_dropped_total",
        "ripple_slow_consumer_closes_total",
        "ripple_publications_total",
    ] {
        assert_eq!(metric_value(&before, name), 0, "{name} starts at 0");
        assert!(
            before.contains(&format!("# TYPE {name} ")),
            "{name} has a TYPE line"
        );
        assert!(
            before.contains(&format!("# HELP {name} ")),
            "{name} has a HELP line"
        );
    }
    for reason in ["bad_handshake", "origin", "capacity", "token"] {
        assert_eq!(
            metric_value(
                &before,
                &format!("ripple_handshake_rejections_total{{reason=\"{reason}\"}}")
            ),
            0
        );
    }

    let mut a = anonymous(&server).await;
    let mut b = anonymous(&server).await;
    a.subscribe("m").await;
    b.subscribe("m").await;
    b.publish("m", json!("x")).await;
    a.expect("join").await;
    a.expect("message").await;
    let after = http_get(server.addr, "/metrics", &[]).await.body;
    assert_eq!(metric_value(&after, "ripple_connections"), 2);
    assert_eq!(metric_value(&after, "ripple_connections_total"), 2);
    assert_eq!(metric_value(&after, "ripple_channels"), 1);
    assert_eq!(
        metric_value(&after, "ripple_messages_in_total"),
        3,
        "two subscribes and a publish"
    );
    assert_eq!(metric_value(&after, "ripple_publications_total"), 1);
    assert_eq!(
        metric_value(&after, "ripple_messages_out_total"),
        3,
        "a join, and the message to two subscribers"
    );
    assert!(metric_value(&after, "ripple_bytes_in_total") > 0);
    assert!(metric_value(&after, "ripple_bytes_out_total") > 0);

    drop(a);
    crate::support::eventually("the connection gauge to go down", async || {
        server.metric("ripple_connections").await == 1
    })
    .await;
}

#[tokio::test]
async fn refused_handshake_token_is_counted() {
    let server = start(crate::support::jwt_config()).await;
    let mut a = crate::support::Client::open(&server.url("/ws?token=bad")).await;
    assert_eq!(a.closed().await, ripple::CloseCode(4001));
    assert_eq!(
        server
            .metric("ripple_handshake_rejections_total{reason=\"token\"}")
            .await,
        1
    );
}

#[tokio::test]
async fn api_without_configured_key_answers_401_to_everything() {
    let server = start_default().await;
    let any_key = [("Authorization", "Bearer anything")];
    for (method, path) in [
        ("POST", "/api/publish"),
        ("GET", "/api/channels"),
        ("GET", "/api/channels/c/presence"),
        ("GET", "/api/channels/c/history"),
    ] {
        let body = if method == "POST" {
            r#"{"channel":"c","data":1}"#
        } else {
            ""
        };
        for headers in [&any_key[..], &[]] {
            let response = http(server.addr, method, path, headers, body).await;
            assert_eq!(response.status, 401, "{method} {path}");
            assert_eq!(response.json()["error"]["code"], "unauthorized");
        }
    }
}

#[tokio::test]
async fn api_with_missing_or_wrong_key_answers_401() {
    let server = start(api_config()).await;
    let wrong = format!("Bearer {API_KEY}x");
    let short = format!("Bearer {}", &API_KEY[..4]);
    let basic = format!("Basic {API_KEY}");
    for headers in [
        vec![],
        vec![("Authorization", wrong.as_str())],
        vec![("Authorization", short.as_str())],
        vec![("Authorization", basic.as_str())],
    ] {
        let response = http(
            server.addr,
            "POST",
            "/api/publish",
            &headers,
            r#"{"channel":"c","data":1}"#,
        )
        .await;
        assert_eq!(response.status, 401, "{headers:?}");
        assert_eq!(response.json()["error"]["code"], "unauthorized");
        assert_eq!(
            http_get(server.addr, "/api/channels", &headers)
                .await
                .status,
            401
        );
    }
    let mut a = anonymous(&server).await;
    let history = a.request(json!({"type": "history", "channel": "c"})).await;
    assert_eq!(
        history["offset"], 0,
        "nothing was published by the refused calls"
    );
}

#[tokio::test]
async fn api_publish_reaches_subscribers_and_returns_offset_and_epoch() {
    let server = start(api_config()).await;
    let mut a = anonymous(&server).await;
    let epoch = a.subscribe("news").await["epoch"].clone();
    let response = api_publish(
        &server,
        r#"{"channel":"news","data":{"headline":"hi","n":1}}"#,
    )
    .await;
    assert_eq!(response.status, 200, "{response:?}");
    assert!(
        response
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/json"))
    );
    assert_eq!(
        response.json(),
        json!({"channel": "news", "epoch": epoch, "offset": 1})
    );
    let message = a.expect("message").await;
    assert_eq!(message["data"], json!({"headline": "hi", "n": 1}));
    assert_eq!(
        (message["offset"].as_u64(), message["epoch"].clone()),
        (Some(1), epoch)
    );
    assert!(
        message.get("from").is_none(),
        "API publications have no `from`: {message}"
    );
    let lower_case_scheme = [("authorization", "bearer test-api-key")];
    let response = http(
        server.addr,
        "POST",
        "/api/publish",
        &lower_case_scheme,
        r#"{"channel":"news","data":2}"#,
    )
    .await;
    assert_eq!(
        response.json()["offset"],
        2,
        "the scheme is case-insensitive"
    );
}

#[tokio::test]
async fn api_publish_with_bad_body_is_400() {
    let server = start(api_config()).await;
    for body in [
        "not json",
        "{}",
        r#"{"channel":"c"}"#,
        r#"{"data":1}"#,
        r#"{"channel":1,"data":1}"#,
        "",
    ] {
        let response = api_publish(&server, body).await;
        assert_eq!(response.status, 400, "{body:?}: {response:?}");
        assert_eq!(response.json()["error"]["code"], "bad_request", "{body:?}");
        assert!(response.json()["error"]["message"].is_string());
    }
    for name in ["", "has space"] {
        let body = json!({"channel": name, "data": 1}).to_string();
        let response = api_publish(&server, &body).await;
        assert_eq!(response.status, 400);
        assert_eq!(response.json()["error"]["code"], "invalid_channel");
    }
}

#[tokio::test]
async fn api_channels_lists_channels_with_subscribers_or_history() {
    let server = start(api_config()).await;
    let mut a = anonymous(&server).await;
    a.subscribe("b-subscribed").await;
    api_publish(&server, r#"{"channel":"a-published","data":1}"#).await;
    api_publish(&server, r#"{"channel":"a-published","data":2}"#).await;
    let response = api_get(&server, "/api/channels").await;
    assert_eq!(response.status, 200);
    let channels = response.json()["channels"].as_array().unwrap().clone();
    assert_eq!(channels.len(), 2, "{channels:?}");
    assert_eq!(channels[0]["channel"], "a-published", "sorted by name");
    assert_eq!(
        (
            channels[0]["subscribers"].as_u64(),
            channels[0]["offset"].as_u64()
        ),
        (Some(0), Some(2))
    );
    assert_eq!(channels[1]["channel"], "b-subscribed");
    assert_eq!(
        (
            channels[1]["subscribers"].as_u64(),
            channels[1]["offset"].as_u64()
        ),
        (Some(1), Some(0))
    );
    assert!(channels[1]["epoch"].as_str().is_some_and(|e| e.len() == 16));
}

#[tokio::test]
async fn api_presence_lists_subscribers() {
    let server = start(api_config()).await;
    let mut a = anonymous(&server).await;
    a.subscribe("room").await;
    let response = api_get(&server, "/api/channels/room/presence").await;
    assert_eq!(response.status, 200);
    assert_eq!(
        response.json(),
        json!({"channel": "room", "clients": [{"client": a.id}]})
    );
    let empty = api_get(&server, "/api/channels/empty/presence").await;
    assert_eq!(empty.json(), json!({"channel": "empty", "clients": []}));
}

#[tokio::test]
async fn api_history_pages_with_since_and_limit() {
    let server = start(api_config()).await;
    for n in 1..=5 {
        api_publish(&server, &format!(r#"{{"channel":"h","data":{n}}}"#)).await;
    }
    let offsets = |body: &serde_json::Value| -> Vec<u64> {
        body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["offset"].as_u64().unwrap())
            .collect()
    };
    let all = api_get(&server, "/api/channels/h/history").await;
    assert_eq!(all.status, 200);
    let all = all.json();
    assert_eq!(
        (all["channel"].as_str(), all["offset"].as_u64()),
        (Some("h"), Some(5))
    );
    assert_eq!(offsets(&all), [1, 2, 3, 4, 5]);
    let first = &all["messages"][0];
    assert_eq!(
        (
            first["type"].as_str(),
            first["channel"].as_str(),
            first["data"].as_u64()
        ),
        (Some("message"), Some("h"), Some(1))
    );
    assert_eq!(first["epoch"], all["epoch"]);
    assert_eq!(
        offsets(
            &api_get(&server, "/api/channels/h/history?since=3")
                .await
                .json()
        ),
        [4, 5]
    );
    assert_eq!(
        offsets(
            &api_get(&server, "/api/channels/h/history?since=1&limit=2")
                .await
                .json()
        ),
        [2, 3]
    );
    assert_eq!(
        offsets(
            &api_get(&server, "/api/channels/h/history?limit=0")
                .await
                .json()
        ),
        Vec::<u64>::new()
    );
    let unknown = api_get(&server, "/api/channels/unknown/history")
        .await
        .json();
    assert_eq!(
        unknown,
        json!({"channel": "unknown", "epoch": "", "offset": 0, "more": false, "messages": []})
    );
    let bad = api_get(&server, "/api/channels/h/history?since=x").await;
    assert_eq!(bad.status, 400);
}

#[tokio::test]
async fn api_channel_names_are_percent_decoded() {
    let server = start(api_config()).await;
    api_publish(&server, r#"{"channel":"room:a/b","data":1}"#).await;
    let history = api_get(&server, "/api/channels/room%3Aa%2Fb/history").await;
    assert_eq!(history.json()["offset"], 1, "{history:?}");
}

#[tokio::test]
async fn api_publish_larger_than_max_message_size_is_413_too_large() {
    let server = start(ripple_server::Config {
        max_message_size: 1024,
        ..api_config()
    })
    .await;
    let too_big = json!({"channel": "c", "data": "x".repeat(1100)}).to_string();
    let response = api_publish(&server, &too_big).await;
    assert_eq!(response.status, 413, "{response:?}");
    assert_eq!(response.json()["error"]["code"], "too_large");
    let fits = json!({"channel": "c", "data": "x".repeat(1000)}).to_string();
    assert_eq!(api_publish(&server, &fits).await.json()["offset"], 1);
}
