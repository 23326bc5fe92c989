//! `/ws` in anonymous mode: the greeting, subscribe/publish/message, ids, ping, presence,
//! join/leave, unsubscribe.

use ripple_server::Config;
use serde_json::json;

use crate::support::{Client, anonymous, start, start_default};

#[tokio::test]
async fn anonymous_connection_is_greeted_with_authenticated_and_a_client_id() {
    let server = start_default().await;
    let a = anonymous(&server).await;
    let b = anonymous(&server).await;
    assert_eq!(a.id.len(), 16, "client ids are 16 hex digits: {}", a.id);
    assert!(a.id.chars().all(|c| c.is_ascii_hexdigit()));
    assert_ne!(a.id, b.id, "every connection has its own id");
}

#[tokio::test]
async fn subscribe_replies_subscribed_with_epoch_offset_and_recovered() {
    let server = start_default().await;
    let mut a = anonymous(&server).await;
    a.send(json!({"type": "subscribe", "channel": "news", "id": 41}))
        .await;
    let reply = a.expect("subscribed").await;
    assert_eq!(reply["id"], 41);
    assert_eq!(reply["channel"], "news");
    assert_eq!(reply["offset"], 0, "a new channel starts at offset 0");
    assert_eq!(
        reply["recovered"], true,
        "nothing was asked to recover, nothing is missing"
    );
    let epoch = reply["epoch"].as_str().unwrap();
    assert_eq!(epoch.len(), 16, "{reply}");
}

#[tokio::test]
async fn publish_replies_published_and_pushes_message_to_every_subscriber() {
    let server = start_default().await;
    let mut a = anonymous(&server).await;
    let mut b = anonymous(&server).await;
    let mut publisher = anonymous(&server).await;
    let epoch = a.subscribe("news").await["epoch"].clone();
    b.subscribe("news").await;
    let _join = a.expect("join").await;

    let before = chrono::Utc::now().timestamp_millis();
    publisher.send(json!({"type": "publish", "channel": "news", "data": {"text": "hi", "n": [1, 2]}, "id": 9})).await;
    let published = publisher.expect("published").await;
    assert_eq!(
        published,
        json!({"type": "published", "id": 9, "channel": "news", "epoch": epoch, "offset": 1})
    );

    for subscriber in [&mut a, &mut b] {
        let message = subscriber.expect("message").await;
        assert_eq!(message["channel"], "news");
        assert_eq!(message["offset"], 1);
        assert_eq!(message["epoch"], epoch);
        assert_eq!(
            message["data"],
            json!({"text": "hi", "n": [1, 2]}),
            "data arrives as published"
        );
        assert!(
            message.get("from").is_none(),
            "anonymous publishers have no `from`: {message}"
        );
        let ts = message["ts"].as_i64().unwrap();
        assert!(
            (before..=chrono::Utc::now().timestamp_millis()).contains(&ts),
            "ts is Unix milliseconds: {ts}"
        );
        assert!(message.get("id").is_none(), "pushes carry no id");
    }
    let second = publisher.publish("news", json!("plain string")).await;
    assert_eq!(second["offset"], 2, "offsets grow by one per message");
    assert_eq!(a.expect("message").await["data"], "plain string");
}

#[tokio::test]
async fn subscribed_publisher_gets_its_own_message_before_the_published_reply() {
    let server = start_default().await;
    let mut a = anonymous(&server).await;
    a.subscribe("self").await;
    a.send(json!({"type": "publish", "channel": "self", "data": 1, "id": 2}))
        .await;
    assert_eq!(a.expect("message").await["data"], 1);
    assert_eq!(a.expect("published").await["id"], 2);
}

#[tokio::test]
async fn publishing_needs_no_subscription_and_reaches_no_one_else() {
    let server = start_default().await;
    let mut a = anonymous(&server).await;
    let mut other = anonymous(&server).await;
    other.subscribe("other").await;
    assert_eq!(a.publish("lonely", json!(null)).await["offset"], 1);
    other.publish("other", json!("marker")).await;
    let next = other.expect("message").await;
    assert_eq!(
        next["data"], "marker",
        "nothing from `lonely` reached a subscriber of `other`"
    );
}

#[tokio::test]
async fn ids_are_echoed_in_replies_and_absent_when_not_sent() {
    let server = start_default().await;
    let mut a = anonymous(&server).await;
    a.send(json!({"type": "ping", "id": 18446744073709551615u64}))
        .await;
    assert_eq!(
        a.expect("pong").await,
        json!({"type": "pong", "id": 18446744073709551615u64})
    );
    a.send(json!({"type": "ping"})).await;
    assert_eq!(a.expect("pong").await, json!({"type": "pong"}));
    a.send(json!({"type": "subscribe", "channel": "c"})).await;
    assert!(a.expect("subscribed").await.get("id").is_none());
}

#[tokio::test]
async fn ping_gets_pong() {
    let server = start_default().await;
    let mut a = anonymous(&server).await;
    let reply = a.request(json!({"type": "ping"})).await;
    assert_eq!(reply["type"], "pong");
}

#[tokio::test]
async fn presence_lists_every_subscriber_by_client_id() {
    let server = start_default().await;
    let mut a = anonymous(&server).await;
    let mut b = anonymous(&server).await;
    let mut outsider = anonymous(&server).await;
    a.subscribe("room").await;
    b.subscribe("room").await;
    let reply = outsider
        .request(json!({"type": "presence", "channel": "room"}))
        .await;
    assert_eq!(reply["type"], "presence");
    assert_eq!(reply["channel"], "room");
    let mut clients: Vec<_> = reply["clients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["client"].clone())
        .collect();
    clients.sort_by_key(ToString::to_string);
    let mut expected = vec![json!(a.id), json!(b.id)];
    expected.sort_by_key(ToString::to_string);
    assert_eq!(clients, expected);
    assert!(
        reply["clients"][0].get("user").is_none(),
        "anonymous clients have no user"
    );
    let empty = outsider
        .request(json!({"type": "presence", "channel": "nobody-here"}))
        .await;
    assert_eq!(empty["clients"], json!([]));
}

#[tokio::test]
async fn join_and_leave_are_pushed_to_the_other_subscribers() {
    let server = start_default().await;
    let mut a = anonymous(&server).await;
    a.subscribe("room").await;
    let mut b = anonymous(&server).await;
    b.subscribe("room").await;
    assert_eq!(
        a.expect("join").await,
        json!({"type": "join", "channel": "room", "client": b.id})
    );

    b.request(json!({"type": "unsubscribe", "channel": "room"}))
        .await;
    assert_eq!(
        a.expect("leave").await,
        json!({"type": "leave", "channel": "room", "client": b.id})
    );

    let mut c = anonymous(&server).await;
    c.subscribe("room").await;
    assert_eq!(a.expect("join").await["client"], c.id);
    c.ws.close(ripple::CloseCode::NORMAL, "").await.unwrap();
    assert_eq!(
        a.expect("leave").await["client"],
        c.id,
        "a client that disconnects leaves its channels"
    );
}

#[tokio::test]
async fn subscriber_gets_no_join_for_itself() {
    let server = start_default().await;
    let mut a = anonymous(&server).await;
    a.subscribe("room").await;
    let pong = a.request(json!({"type": "ping"})).await;
    assert_eq!(
        pong["type"], "pong",
        "the next message after subscribed is the pong, not a join"
    );
}

#[tokio::test]
async fn presence_off_sends_no_join_or_leave() {
    let server = start(Config {
        presence: false,
        ..Config::default()
    })
    .await;
    let mut a = anonymous(&server).await;
    a.subscribe("room").await;
    let mut b = anonymous(&server).await;
    b.subscribe("room").await;
    b.request(json!({"type": "unsubscribe", "channel": "room"}))
        .await;
    b.publish("room", json!("after")).await;
    assert_eq!(
        a.recv().await["type"],
        "message",
        "no join or leave came before the message"
    );
}

#[tokio::test]
async fn unsubscribe_stops_delivery() {
    let server = start_default().await;
    let mut a = anonymous(&server).await;
    let mut publisher = anonymous(&server).await;
    a.subscribe("news").await;
    a.subscribe("sport").await;
    let reply = a
        .request(json!({"type": "unsubscribe", "channel": "news"}))
        .await;
    assert_eq!(reply["type"], "unsubscribed");
    assert_eq!(reply["channel"], "news");
    publisher.publish("news", json!("missed")).await;
    publisher.publish("sport", json!("seen")).await;
    let next = a.expect("message").await;
    assert_eq!(
        (next["channel"].as_str(), next["data"].as_str()),
        (Some("sport"), Some("seen"))
    );
    a.subscribe("news").await;
}

#[tokio::test]
async fn messages_of_one_channel_arrive_in_offset_order() {
    let server = start_default().await;
    let mut a = anonymous(&server).await;
    let mut publisher = anonymous(&server).await;
    a.subscribe("seq").await;
    for n in 1..=50 {
        publisher
            .send(json!({"type": "publish", "channel": "seq", "data": n}))
            .await;
    }
    for n in 1..=50 {
        let message = a.expect("message").await;
        assert_eq!(
            (message["offset"].as_u64(), message["data"].as_u64()),
            (Some(n), Some(n))
        );
    }
}

#[tokio::test]
async fn channel_names_may_use_any_printable_characters() {
    let server = start_default().await;
    let mut a = anonymous(&server).await;
    let long = "x".repeat(255);
    for name in ["room:1", "a/b.c-d_e", "héllo✓", "#$%&*", long.as_str()] {
        assert_eq!(a.subscribe(name).await["channel"], name);
    }
}

#[tokio::test]
async fn client_ws_open_without_reading_first_still_gets_greeting() {
    let server = start_default().await;
    let mut a = Client::open(&server.url("/ws")).await;
    a.send(json!({"type": "ping", "id": 1})).await;
    assert_eq!(
        a.recv().await["type"],
        "authenticated",
        "the greeting comes before any reply"
    );
    assert_eq!(a.recv().await["type"], "pong");
}

#[tokio::test]
async fn compressed_and_plain_subscribers_get_the_same_message() {
    let server = start_default().await;
    let mut compressed = anonymous(&server).await;
    assert!(
        compressed.ws.is_compressed(),
        "the client offers permessage-deflate by default"
    );
    let plain_ws = ripple::ClientBuilder::new(server.url("/ws"))
        .config(ripple::Config::default().compression(None))
        .connect()
        .await
        .unwrap();
    let mut plain = Client::from_ws(plain_ws);
    assert!(!plain.ws.is_compressed());
    plain.expect("authenticated").await;
    compressed.subscribe("mixed").await;
    plain.subscribe("mixed").await;
    let data = json!({"text": "compressible ".repeat(100)});
    let mut publisher = anonymous(&server).await;
    publisher.publish("mixed", data.clone()).await;
    assert_eq!(plain.expect("message").await["data"], data);
    let message = compressed.recv_skipping_presence().await;
    assert_eq!(message["data"], data);
}

#[tokio::test]
async fn unknown_fields_in_commands_are_ignored() {
    let server = start_default().await;
    let mut a = anonymous(&server).await;
    let reply = a
        .request(json!({"type": "subscribe", "channel": "c", "extra": {"x": 1}, "token": "t"}))
        .await;
    assert_eq!(reply["type"], "subscribed");
}

#[tokio::test]
async fn offered_subprotocols_are_not_selected() {
    let server = start_default().await;
    let ws = ripple::ClientBuilder::new(server.url("/ws"))
        .protocol("chat")
        .connect()
        .await
        .unwrap();
    assert_eq!(ws.protocol(), None);
    Client::from_ws(ws).expect("authenticated").await;
}
