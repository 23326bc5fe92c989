//! The session in memory: commands in as a client sends them, what it answers and queues out,
//! every command, error code and close it can produce, with no transport and no socket.

use std::sync::Arc;

use serde_json::{Value, json};

use super::*;
use crate::auth::{Claims, mint};
use crate::config::Config;
use crate::queue::ClientQueue;

const SECRET: &str = "session-test-secret";

/// A session on `state` with its own queue, the way a `/ws` connection holds one.
struct Client {
    session: Session,
    queue: Arc<ClientQueue>,
}

impl Client {
    fn new(state: &Arc<AppState>) -> Self {
        let queue = ClientQueue::new(1 << 20);
        let session = Session::new(Arc::clone(state), Arc::clone(&queue), false);
        Self { session, queue }
    }

    /// Started as an anonymous `/ws` connection, its greeting read.
    async fn anonymous(state: &Arc<AppState>) -> Self {
        let mut client = Self::new(state);
        assert_eq!(client.session.start(None), Flow::Continue);
        assert_eq!(client.next().await["type"], "authenticated");
        client
    }

    /// Sends one text message; returns the flow.
    async fn send(&mut self, command: Value) -> Flow {
        self.session.handle_text(&command.to_string()).await
    }

    /// Sends `command` and returns the one thing it queued.
    async fn ask(&mut self, command: Value) -> Value {
        assert_eq!(self.send(command).await, Flow::Continue);
        self.next().await
    }

    /// The next queued push, as JSON.
    async fn next(&self) -> Value {
        let mut batch = Vec::new();
        while batch.is_empty() {
            let next = self.queue.next_batch(&mut batch);
            tokio::time::timeout(std::time::Duration::from_secs(5), next)
                .await
                .expect("a push within 5 s")
                .expect("the queue is open");
        }
        assert_eq!(batch.len(), 1, "one push at a time");
        serde_json::from_slice(batch[0].json()).unwrap()
    }

    /// The error code of the reply to `command`.
    async fn refused(&mut self, command: Value) -> String {
        let reply = self.ask(command).await;
        assert_eq!(reply["type"], "error", "{reply}");
        reply["code"].as_str().unwrap().to_owned()
    }
}

fn token(channels: &[&str], exp: u64) -> String {
    let claims = Claims {
        sub: "alice".into(),
        exp,
        channels: channels.iter().map(|c| (*c).to_owned()).collect(),
    };
    mint(&claims, SECRET).unwrap()
}

fn in_an_hour() -> u64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    now.unwrap().as_secs() + 3600
}

fn jwt_state() -> Arc<AppState> {
    AppState::new(Config {
        jwt_secret: Some(SECRET.into()),
        ..Config::default()
    })
}

#[tokio::test]
async fn subscribe_publish_unsubscribe_and_their_replies() {
    let state = AppState::new(Config::default());
    let mut reader = Client::anonymous(&state).await;
    let mut writer = Client::anonymous(&state).await;
    let subscribed = reader
        .ask(json!({"type": "subscribe", "channel": "room", "id": 1}))
        .await;
    assert_eq!(
        (subscribed["type"].as_str(), subscribed["id"].as_u64()),
        (Some("subscribed"), Some(1))
    );
    assert_eq!(subscribed["recovered"], true);
    let published = writer
        .ask(json!({"type": "publish", "channel": "room", "data": {"n": 1}, "id": 2}))
        .await;
    assert_eq!(
        (published["type"].as_str(), published["offset"].as_u64()),
        (Some("published"), Some(1))
    );
    let message = reader.next().await;
    assert_eq!(message["type"], "message");
    assert_eq!(message["data"], json!({"n": 1}));
    assert_eq!(message["epoch"], published["epoch"]);
    let presence = writer
        .ask(json!({"type": "presence", "channel": "room", "id": 3}))
        .await;
    assert_eq!(presence["clients"][0]["client"], reader.session.client());
    let history = writer
        .ask(json!({"type": "history", "channel": "room", "id": 4}))
        .await;
    assert_eq!(history["messages"][0]["data"], json!({"n": 1}));
    assert_eq!(history["more"], false);
    let unsubscribed = reader
        .ask(json!({"type": "unsubscribe", "channel": "room", "id": 5}))
        .await;
    assert_eq!(unsubscribed["type"], "unsubscribed");
    let pong = reader.ask(json!({"type": "ping", "id": 6})).await;
    assert_eq!(pong, json!({"type": "pong", "id": 6}));
}

#[tokio::test]
async fn every_refusal_has_its_code_and_the_connection_stays() {
    let state = AppState::new(Config {
        max_subscriptions: 1,
        publish_rate: 1,
        max_json_depth: 2,
        ..Config::default()
    });
    let mut client = Client::anonymous(&state).await;
    assert_eq!(client.session.handle_text("not json").await, Flow::Continue);
    assert_eq!(client.next().await["code"], "bad_request");
    let cases = [
        (json!({"type": "jump"}), "unknown_type"),
        (json!({"type": "subscribe"}), "invalid_field"),
        (
            json!({"type": "subscribe", "channel": "a b"}),
            "invalid_channel",
        ),
        (
            json!({"type": "unsubscribe", "channel": "a"}),
            "not_subscribed",
        ),
    ];
    for (command, code) in cases {
        assert_eq!(client.refused(command.clone()).await, code, "{command}");
    }
    client
        .ask(json!({"type": "subscribe", "channel": "a"}))
        .await;
    let again = json!({"type": "subscribe", "channel": "a"});
    assert_eq!(client.refused(again).await, "already_subscribed");
    let second = json!({"type": "subscribe", "channel": "b"});
    assert_eq!(client.refused(second).await, "too_many_subscriptions");
    let deep = json!({"type": "publish", "channel": "a", "data": [[[1]]]});
    assert_eq!(client.refused(deep).await, "too_deep");
    let publish = json!({"type": "publish", "channel": "c", "data": 1});
    assert_eq!(client.ask(publish.clone()).await["type"], "published");
    assert_eq!(client.refused(publish).await, "rate_limited");
}

#[tokio::test]
async fn publications_are_refused_once_shutdown_begins() {
    let state = AppState::new(Config::default());
    let mut client = Client::anonymous(&state).await;
    state.publishing.close().await;
    let publish = json!({"type": "publish", "channel": "c", "data": 1});
    assert_eq!(client.refused(publish).await, "unavailable");
}

#[tokio::test]
async fn jwt_mode_authenticates_by_auth_message_and_checks_channels() {
    let state = jwt_state();
    let mut client = Client::new(&state);
    assert_eq!(client.session.start(None), Flow::Continue);
    let early = json!({"type": "subscribe", "channel": "room:1"});
    assert_eq!(client.refused(early).await, "unauthorized");
    let hello = client
        .ask(json!({"type": "auth", "token": token(&["room:*"], in_an_hour()), "id": 1}))
        .await;
    assert_eq!(
        (hello["type"].as_str(), hello["user"].as_str()),
        (Some("authenticated"), Some("alice"))
    );
    assert!(client.session.token_lifetime().is_some());
    let twice = json!({"type": "auth", "token": token(&[], in_an_hour())});
    assert_eq!(client.refused(twice).await, "already_authenticated");
    let outside = json!({"type": "subscribe", "channel": "admin"});
    assert_eq!(client.refused(outside).await, "forbidden");
    let inside = json!({"type": "subscribe", "channel": "room:1"});
    assert_eq!(client.ask(inside).await["type"], "subscribed");
}

#[tokio::test]
async fn a_bad_or_expired_token_ends_the_connection_with_its_close_code() {
    let state = jwt_state();
    for (token, code, close) in [
        (
            "garbage".to_owned(),
            "invalid_token",
            crate::close::INVALID_TOKEN,
        ),
        (token(&[], 1), "token_expired", crate::close::TOKEN_EXPIRED),
    ] {
        let mut client = Client::new(&state);
        let Flow::Close(disconnect) = client.session.start(Some(&token)) else {
            panic!("{code}: the connection stays");
        };
        assert_eq!(disconnect.code, close);
        assert_eq!(client.next().await["code"], code);
        let mut late = Client::new(&state);
        late.session.start(None);
        let flow = late.send(json!({"type": "auth", "token": token})).await;
        assert_eq!(
            flow.clone(),
            Flow::Close(disconnect),
            "{code} by auth message"
        );
    }
}

#[tokio::test]
async fn token_expiry_while_connected_is_an_error_then_4002() {
    let state = jwt_state();
    let mut client = Client::new(&state);
    let valid = token(&["*"], in_an_hour());
    assert_eq!(client.session.start(Some(&valid)), Flow::Continue);
    client.next().await;
    let disconnect = client.session.token_expired();
    assert_eq!(disconnect.code, crate::close::TOKEN_EXPIRED);
    assert_eq!(client.next().await["code"], "token_expired");
}

#[tokio::test]
async fn a_request_session_answers_without_a_queue_and_cannot_subscribe() {
    let state = AppState::new(Config::default());
    let mut session = Session::request(Arc::clone(&state));
    session.authorize(None).unwrap();
    let ping = Request {
        id: Some(9),
        command: Command::Ping,
    };
    let Ok(Answered::Reply(reply)) = session.execute(ping).await else {
        panic!("ping answers with its reply");
    };
    assert_eq!(reply.json(), br#"{"type":"pong","id":9}"#);
    let subscribe = Request {
        id: None,
        command: Command::Subscribe {
            channel: "a".into(),
            since: None,
        },
    };
    let refused = session.execute(subscribe).await.unwrap_err();
    assert_eq!(refused.code, crate::error_code::ErrorCode::BadRequest);
}
