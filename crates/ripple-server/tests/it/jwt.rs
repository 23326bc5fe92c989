//! JWT mode (`jwt_secret` set): tokens from `?token=`, `Authorization: Bearer` or an `auth`
//! message; the `channels` claim; expired, bad and missing tokens.

use std::time::{Duration, Instant};

use ripple::{ClientBuilder, CloseCode};
use ripple_server::Config;
use ripple_server::auth::{Claims, mint};
use serde_json::json;

use crate::support::{Client, jwt_config, start, token, unix_now, valid_token};

const INVALID_TOKEN: CloseCode = CloseCode(4001);
const TOKEN_EXPIRED: CloseCode = CloseCode(4002);
const AUTH_TIMEOUT: CloseCode = CloseCode(4003);

#[tokio::test]
async fn token_in_query_authenticates_with_the_sub_as_user() {
    let server = start(jwt_config()).await;
    let token = valid_token("alice", &["room:*"]);
    let mut a = Client::open(&server.url(&format!("/ws?token={token}"))).await;
    let hello = a.expect("authenticated").await;
    assert_eq!(hello["user"], "alice");
    assert_eq!(hello["client"].as_str().unwrap().len(), 16);
    assert!(hello.get("id").is_none());
    a.subscribe("room:1").await;
}

#[tokio::test]
async fn token_in_authorization_bearer_header_authenticates() {
    let server = start(jwt_config()).await;
    let token = valid_token("bob", &["*"]);
    let ws = ClientBuilder::new(server.url("/ws"))
        .header("Authorization", format!("Bearer {token}"))
        .connect()
        .await
        .unwrap();
    let mut b = Client::from_ws(ws);
    assert_eq!(b.expect("authenticated").await["user"], "bob");
    b.subscribe("anything").await;
}

#[tokio::test]
async fn auth_message_authenticates_and_echoes_its_id() {
    let server = start(jwt_config()).await;
    let mut a = Client::open(&server.url("/ws")).await;
    a.send(json!({"type": "auth", "token": valid_token("carol", &["room:*"]), "id": 5}))
        .await;
    let reply = a.expect("authenticated").await;
    assert_eq!(
        (reply["id"].as_u64(), reply["user"].as_str()),
        (Some(5), Some("carol"))
    );
    a.subscribe("room:x").await;
}

#[tokio::test]
async fn second_auth_is_already_authenticated() {
    let server = start(jwt_config()).await;
    let token = valid_token("alice", &["*"]);
    let mut a = Client::open(&server.url(&format!("/ws?token={token}"))).await;
    a.expect("authenticated").await;
    let code = a.error_code(json!({"type": "auth", "token": token})).await;
    assert_eq!(code, "already_authenticated");
}

#[tokio::test]
async fn commands_before_auth_are_unauthorized_but_ping_works() {
    let server = start(jwt_config()).await;
    let mut a = Client::open(&server.url("/ws")).await;
    for command in [
        json!({"type": "subscribe", "channel": "room:1"}),
        json!({"type": "publish", "channel": "room:1", "data": 1}),
        json!({"type": "unsubscribe", "channel": "room:1"}),
        json!({"type": "presence", "channel": "room:1"}),
        json!({"type": "history", "channel": "room:1"}),
    ] {
        assert_eq!(
            a.error_code(command.clone()).await,
            "unauthorized",
            "{command}"
        );
    }
    assert_eq!(a.request(json!({"type": "ping"})).await["type"], "pong");
    a.send(json!({"type": "auth", "token": valid_token("late", &["room:*"])}))
        .await;
    a.expect("authenticated").await;
    a.subscribe("room:1").await;
}

#[tokio::test]
async fn channels_outside_the_claim_are_forbidden() {
    let server = start(jwt_config()).await;
    let token = valid_token("alice", &["room:*", "news"]);
    let mut a = Client::open(&server.url(&format!("/ws?token={token}"))).await;
    a.expect("authenticated").await;
    a.subscribe("room:").await;
    a.subscribe("room:blue").await;
    a.subscribe("news").await;
    for channel in ["newsroom", "admin", "roo", "x-room:1"] {
        for command in [
            json!({"type": "subscribe", "channel": channel}),
            json!({"type": "publish", "channel": channel, "data": 1}),
            json!({"type": "presence", "channel": channel}),
            json!({"type": "history", "channel": channel}),
        ] {
            assert_eq!(
                a.error_code(command.clone()).await,
                "forbidden",
                "{command}"
            );
        }
    }
}

#[tokio::test]
async fn token_without_channels_claim_allows_no_channel() {
    let server = start(jwt_config()).await;
    let token = valid_token("nobody", &[]);
    let mut a = Client::open(&server.url(&format!("/ws?token={token}"))).await;
    a.expect("authenticated").await;
    assert_eq!(
        a.error_code(json!({"type": "subscribe", "channel": "room:1"}))
            .await,
        "forbidden"
    );
}

#[tokio::test]
async fn messages_and_presence_carry_the_user() {
    let server = start(jwt_config()).await;
    let alice = valid_token("alice", &["room:*"]);
    let bob = valid_token("bob", &["room:*"]);
    let mut a = Client::open(&server.url(&format!("/ws?token={alice}"))).await;
    let a_id = a.expect("authenticated").await["client"].clone();
    let mut b = Client::open(&server.url(&format!("/ws?token={bob}"))).await;
    let b_id = b.expect("authenticated").await["client"].clone();
    a.subscribe("room:1").await;
    b.subscribe("room:1").await;
    assert_eq!(
        a.expect("join").await,
        json!({"type": "join", "channel": "room:1", "client": b_id, "user": "bob"})
    );
    b.publish("room:1", json!("hi")).await;
    assert_eq!(a.expect("message").await["from"], "bob");
    let presence = a
        .request(json!({"type": "presence", "channel": "room:1"}))
        .await;
    let mut clients = presence["clients"].as_array().unwrap().clone();
    clients.sort_by_key(|c| c["user"].to_string());
    assert_eq!(
        clients,
        vec![
            json!({"client": a_id, "user": "alice"}),
            json!({"client": b_id, "user": "bob"})
        ]
    );
}

#[tokio::test]
async fn expired_token_in_query_gets_token_expired_then_close_4002() {
    let server = start(jwt_config()).await;
    let expired = token("alice", &["*"], unix_now() - 10);
    let mut a = Client::open(&server.url(&format!("/ws?token={expired}"))).await;
    let error = a.expect("error").await;
    assert_eq!(error["code"], "token_expired", "{error}");
    assert_eq!(a.closed().await, TOKEN_EXPIRED);
}

#[tokio::test]
async fn expired_token_in_auth_message_gets_token_expired_then_close_4002() {
    let server = start(jwt_config()).await;
    let mut a = Client::open(&server.url("/ws")).await;
    a.send(json!({"type": "auth", "token": token("alice", &["*"], unix_now() - 10), "id": 2}))
        .await;
    let error = a.expect("error").await;
    assert_eq!(
        (error["code"].as_str(), error["id"].as_u64()),
        (Some("token_expired"), Some(2))
    );
    assert_eq!(a.closed().await, TOKEN_EXPIRED);
}

#[tokio::test]
async fn open_connection_is_closed_when_its_token_expires() {
    let server = start(jwt_config()).await;
    let short = token("alice", &["*"], unix_now() + 2);
    let mut a = Client::open(&server.url(&format!("/ws?token={short}"))).await;
    a.expect("authenticated").await;
    let started = Instant::now();
    let error = a.expect("error").await;
    assert_eq!(error["code"], "token_expired", "{error}");
    assert_eq!(a.closed().await, TOKEN_EXPIRED);
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "closed at expiry, not at once"
    );
}

#[tokio::test]
async fn garbage_token_gets_invalid_token_then_close_4001() {
    let server = start(jwt_config()).await;
    let mut a = Client::open(&server.url("/ws?token=not.a.jwt")).await;
    assert_eq!(a.expect("error").await["code"], "invalid_token");
    assert_eq!(a.closed().await, INVALID_TOKEN);
}

#[tokio::test]
async fn token_signed_with_another_secret_gets_invalid_token_then_close_4001() {
    let server = start(jwt_config()).await;
    let claims = Claims {
        sub: "mallory".into(),
        exp: unix_now() + 60,
        channels: vec!["*".into()],
    };
    let forged = mint(&claims, "another-secret").unwrap();
    let mut a = Client::open(&server.url("/ws")).await;
    a.send(json!({"type": "auth", "token": forged})).await;
    assert_eq!(a.expect("error").await["code"], "invalid_token");
    assert_eq!(a.closed().await, INVALID_TOKEN);
}

#[tokio::test]
async fn bad_bearer_header_gets_invalid_token_then_close_4001() {
    let server = start(jwt_config()).await;
    let ws = ClientBuilder::new(server.url("/ws"))
        .header("Authorization", "Bearer nope")
        .connect()
        .await
        .unwrap();
    let mut a = Client::from_ws(ws);
    assert_eq!(a.expect("error").await["code"], "invalid_token");
    assert_eq!(a.closed().await, INVALID_TOKEN);
}

#[tokio::test]
async fn no_auth_within_auth_timeout_closes_4003() {
    let server = start(Config {
        auth_timeout_secs: 1,
        ..jwt_config()
    })
    .await;
    let started = Instant::now();
    let mut a = Client::open(&server.url("/ws")).await;
    // Commands other than `auth` do not stop the clock.
    assert_eq!(a.request(json!({"type": "ping"})).await["type"], "pong");
    assert_eq!(a.closed().await, AUTH_TIMEOUT);
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(900),
        "not before the deadline: {elapsed:?}"
    );
}

#[tokio::test]
async fn auth_before_the_deadline_keeps_the_connection() {
    let server = start(Config {
        auth_timeout_secs: 1,
        ..jwt_config()
    })
    .await;
    let mut a = Client::open(&server.url("/ws")).await;
    a.send(json!({"type": "auth", "token": valid_token("alice", &["*"])}))
        .await;
    a.expect("authenticated").await;
    // Past the deadline (bounded: the close would have come 1 s after connecting), the
    // connection still answers.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(a.request(json!({"type": "ping"})).await["type"], "pong");
}

#[tokio::test]
async fn anonymous_mode_accepts_auth_messages_and_ignores_tokens() {
    let server = start(Config::default()).await;
    let mut a = Client::open(&server.url("/ws?token=whatever")).await;
    let hello = a.expect("authenticated").await;
    assert!(hello.get("user").is_none());
    a.send(json!({"type": "auth", "token": "anything", "id": 1}))
        .await;
    let again = a.expect("authenticated").await;
    assert_eq!(
        (again["id"].as_u64(), again["client"].clone()),
        (Some(1), hello["client"].clone())
    );
}

#[tokio::test]
async fn extra_claims_are_ignored_but_an_audience_claim_is_refused() {
    let server = start(jwt_config()).await;
    let sign = |claims: serde_json::Value| {
        let key = jsonwebtoken::EncodingKey::from_secret(crate::support::SECRET.as_bytes());
        jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).unwrap()
    };
    let exp = unix_now() + 60;
    let extra =
        sign(json!({"sub": "alice", "exp": exp, "channels": ["*"], "name": "Alice", "iat": 1}));
    let mut a = Client::open(&server.url(&format!("/ws?token={extra}"))).await;
    assert_eq!(a.expect("authenticated").await["user"], "alice");

    let with_aud = sign(json!({"sub": "alice", "exp": exp, "channels": ["*"], "aud": "ripple"}));
    let mut b = Client::open(&server.url(&format!("/ws?token={with_aud}"))).await;
    assert_eq!(b.expect("error").await["code"], "invalid_token");
    assert_eq!(b.closed().await, INVALID_TOKEN);

    for missing in [
        json!({"exp": exp, "channels": ["*"]}),
        json!({"sub": "alice", "channels": ["*"]}),
    ] {
        let token = sign(missing.clone());
        let mut c = Client::open(&server.url(&format!("/ws?token={token}"))).await;
        assert_eq!(
            c.expect("error").await["code"],
            "invalid_token",
            "{missing}"
        );
        assert_eq!(c.closed().await, INVALID_TOKEN);
    }
    let hs384 = {
        let key = jsonwebtoken::EncodingKey::from_secret(crate::support::SECRET.as_bytes());
        let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS384);
        jsonwebtoken::encode(&header, &json!({"sub": "alice", "exp": exp}), &key).unwrap()
    };
    let mut d = Client::open(&server.url(&format!("/ws?token={hs384}"))).await;
    assert_eq!(
        d.expect("error").await["code"],
        "invalid_token",
        "HS256 only"
    );
}

#[tokio::test]
async fn echo_and_chat_take_a_token_too_in_jwt_mode() {
    let server = start(jwt_config()).await;
    for path in ["/echo", "/chat"] {
        let refused = ripple::connect(&server.url(path)).await;
        assert!(
            matches!(refused, Err(ripple::Error::Rejected { status: 401, .. })),
            "{path} without a token: {refused:?}"
        );
        let bad = ripple::connect(&server.url(&format!("{path}?token=not-a-jwt"))).await;
        assert!(
            matches!(bad, Err(ripple::Error::Rejected { status: 401, .. })),
            "{path} with a bad token: {bad:?}"
        );
        let token = valid_token("alice", &[]);
        let mut ws = ripple::connect(&server.url(&format!("{path}?token={token}")))
            .await
            .unwrap();
        ws.send("hi").await.unwrap();
        let reply = ws.recv().await.unwrap().unwrap();
        assert!(reply.as_bytes().ends_with(b"hi"), "{path}: {reply:?}");
    }
}
