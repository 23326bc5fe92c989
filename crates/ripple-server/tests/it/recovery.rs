//! History and recovery: offsets, epochs, `since`, `recovered`, `history_size`,
//! `history_ttl_secs`, and the no-gap/no-duplicate guarantee under concurrent publishing.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use ripple_server::Config;
use serde_json::{Value, json};

use crate::support::{Client, TestServer, anonymous, eventually, start, start_default};

/// Publishes `data` for each value and returns the channel's epoch.
async fn publish_all(
    server: &TestServer,
    channel: &str,
    values: impl IntoIterator<Item = u64>,
) -> String {
    let mut publisher = anonymous(server).await;
    let mut epoch = String::new();
    for n in values {
        epoch = publisher.publish(channel, json!(n)).await["epoch"]
            .as_str()
            .unwrap()
            .to_owned();
    }
    epoch
}

async fn subscribe_since(client: &mut Client, channel: &str, epoch: &str, offset: u64) -> Value {
    let reply = client
        .request(json!({"type": "subscribe", "channel": channel, "since": {"epoch": epoch, "offset": offset}}))
        .await;
    assert_eq!(reply["type"], "subscribed", "{reply}");
    reply
}

#[tokio::test]
async fn subscribe_since_replays_missed_messages_in_order_then_live_ones() {
    let server = start_default().await;
    let epoch = publish_all(&server, "r", 1..=5).await;
    let mut a = anonymous(&server).await;
    let reply = subscribe_since(&mut a, "r", &epoch, 2).await;
    assert_eq!(reply["recovered"], true);
    assert_eq!(
        reply["offset"], 5,
        "`offset` is the channel's newest offset"
    );
    assert_eq!(reply["epoch"], epoch);
    for n in 3..=5 {
        let message = a.expect("message").await;
        assert_eq!(
            (message["offset"].as_u64(), message["data"].as_u64()),
            (Some(n), Some(n))
        );
        assert_eq!(message["epoch"], epoch);
    }
    publish_all(&server, "r", [6]).await;
    assert_eq!(
        a.expect("message").await["offset"],
        6,
        "then live messages, with no gap"
    );
}

#[tokio::test]
async fn since_the_newest_offset_replays_nothing_and_is_recovered() {
    let server = start_default().await;
    let epoch = publish_all(&server, "r", 1..=3).await;
    let mut a = anonymous(&server).await;
    assert_eq!(
        subscribe_since(&mut a, "r", &epoch, 3).await["recovered"],
        true
    );
    assert_eq!(
        a.request(json!({"type": "ping"})).await["type"],
        "pong",
        "no message was replayed"
    );
}

#[tokio::test]
async fn since_offset_zero_replays_everything_kept() {
    let server = start_default().await;
    let epoch = publish_all(&server, "r", 1..=3).await;
    let mut a = anonymous(&server).await;
    assert_eq!(
        subscribe_since(&mut a, "r", &epoch, 0).await["recovered"],
        true
    );
    for n in 1..=3 {
        assert_eq!(a.expect("message").await["offset"], n);
    }
}

#[tokio::test]
async fn wrong_epoch_is_not_recovered_and_replays_nothing() {
    let server = start_default().await;
    publish_all(&server, "r", 1..=3).await;
    let mut a = anonymous(&server).await;
    let reply = subscribe_since(&mut a, "r", "0000000000000000", 1).await;
    assert_eq!(reply["recovered"], false);
    assert_eq!(reply["offset"], 3);
    publish_all(&server, "r", [4]).await;
    assert_eq!(
        a.expect("message").await["offset"],
        4,
        "the live stream continues"
    );
}

#[tokio::test]
async fn epoch_of_another_server_is_not_recovered() {
    // A restart loses history: the new server's channel has a new epoch.
    let first = start_default().await;
    let old_epoch = publish_all(&first, "r", 1..=3).await;
    let second = start_default().await;
    let new_epoch = publish_all(&second, "r", 1..=3).await;
    assert_ne!(old_epoch, new_epoch);
    let mut a = anonymous(&second).await;
    assert_eq!(
        subscribe_since(&mut a, "r", &old_epoch, 1).await["recovered"],
        false
    );
}

#[tokio::test]
async fn offset_from_the_future_is_not_recovered() {
    let server = start_default().await;
    let epoch = publish_all(&server, "r", 1..=3).await;
    let mut a = anonymous(&server).await;
    assert_eq!(
        subscribe_since(&mut a, "r", &epoch, 10).await["recovered"],
        false
    );
}

#[tokio::test]
async fn since_on_a_channel_that_does_not_exist_is_not_recovered() {
    let server = start_default().await;
    let mut a = anonymous(&server).await;
    let reply = subscribe_since(&mut a, "new", "0123456789abcdef", 0).await;
    assert_eq!(
        (reply["recovered"].as_bool(), reply["offset"].as_u64()),
        (Some(false), Some(0))
    );
}

#[tokio::test]
async fn gap_older_than_history_size_is_not_recovered() {
    let server = start(Config {
        history_size: 3,
        ..Config::default()
    })
    .await;
    let epoch = publish_all(&server, "r", 1..=10).await;
    let mut a = anonymous(&server).await;
    // History keeps 8, 9, 10: a client whose last message is 6 misses 7.
    let reply = subscribe_since(&mut a, "r", &epoch, 6).await;
    assert_eq!(reply["recovered"], false);
    assert_eq!(
        a.request(json!({"type": "ping"})).await["type"],
        "pong",
        "nothing replayed"
    );

    let mut b = anonymous(&server).await;
    assert_eq!(
        subscribe_since(&mut b, "r", &epoch, 7).await["recovered"],
        true
    );
    for n in 8..=10 {
        assert_eq!(b.expect("message").await["offset"], n);
    }
}

#[tokio::test]
async fn history_size_zero_keeps_nothing() {
    let server = start(Config {
        history_size: 0,
        ..Config::default()
    })
    .await;
    // A channel with neither subscribers nor history may be dropped by the sweeper; a
    // subscriber keeps it.
    let mut keeper = anonymous(&server).await;
    keeper.subscribe("r").await;
    let epoch = publish_all(&server, "r", 1..=2).await;
    let mut a = anonymous(&server).await;
    assert_eq!(
        subscribe_since(&mut a, "r", &epoch, 1).await["recovered"],
        false
    );
    let mut b = anonymous(&server).await;
    assert_eq!(
        subscribe_since(&mut b, "r", &epoch, 2).await["recovered"],
        true,
        "nothing was missed"
    );
}

#[tokio::test]
async fn history_expires_after_history_ttl_secs() {
    let server = start(Config {
        history_ttl_secs: 1,
        ..Config::default()
    })
    .await;
    // Keeps the channel (and its epoch and offset) once its history is gone.
    let mut keeper = anonymous(&server).await;
    keeper.subscribe("r").await;
    let epoch = publish_all(&server, "r", 1..=3).await;
    let mut a = anonymous(&server).await;
    let page = a.request(json!({"type": "history", "channel": "r"})).await;
    assert_eq!(
        page["messages"].as_array().unwrap().len(),
        3,
        "kept at first: {page}"
    );
    // Bounded wait: the messages go once they are older than 1 s.
    eventually("history to expire", async || {
        let mut probe = anonymous(&server).await;
        let page = probe
            .request(json!({"type": "history", "channel": "r"}))
            .await;
        page["messages"].as_array().unwrap().is_empty()
    })
    .await;
    let page = a.request(json!({"type": "history", "channel": "r"})).await;
    assert_eq!(
        (page["epoch"].as_str(), page["offset"].as_u64()),
        (Some(epoch.as_str()), Some(3))
    );
    assert_eq!(
        subscribe_since(&mut a, "r", &epoch, 1).await["recovered"],
        false
    );
    let mut b = anonymous(&server).await;
    assert_eq!(
        subscribe_since(&mut b, "r", &epoch, 3).await["recovered"],
        true,
        "nothing was missed"
    );
}

#[tokio::test]
async fn history_command_pages_with_since_and_limit() {
    let server = start(Config {
        history_size: 5,
        ..Config::default()
    })
    .await;
    let epoch = publish_all(&server, "r", 1..=7).await;
    let mut a = anonymous(&server).await;
    let offsets = |page: &Value| -> Vec<u64> {
        page["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["offset"].as_u64().unwrap())
            .collect()
    };
    let all = a.request(json!({"type": "history", "channel": "r"})).await;
    assert_eq!(all["type"], "history");
    assert_eq!(
        (
            all["channel"].as_str(),
            all["epoch"].as_str(),
            all["offset"].as_u64()
        ),
        (Some("r"), Some(epoch.as_str()), Some(7))
    );
    assert_eq!(
        offsets(&all),
        [3, 4, 5, 6, 7],
        "the last `history_size` messages, oldest first"
    );
    let message = &all["messages"][0];
    assert_eq!(
        (
            message["type"].as_str(),
            message["channel"].as_str(),
            message["data"].as_u64()
        ),
        (Some("message"), Some("r"), Some(3))
    );
    assert!(message["ts"].is_i64());
    let since = a
        .request(json!({"type": "history", "channel": "r", "since": 4}))
        .await;
    assert_eq!(offsets(&since), [5, 6, 7]);
    let limited = a
        .request(json!({"type": "history", "channel": "r", "since": 4, "limit": 2}))
        .await;
    assert_eq!(
        offsets(&limited),
        [5, 6],
        "limit keeps the oldest after `since`"
    );
    let none = a
        .request(json!({"type": "history", "channel": "unknown"}))
        .await;
    assert_eq!(
        (none["epoch"].as_str(), none["offset"].as_u64()),
        (Some(""), Some(0))
    );
    assert_eq!(none["messages"], json!([]));
}

/// A publisher task publishes `TOTAL` messages back to back while clients subscribe with
/// `since` at different moments: each must see exactly `since + 1 ..= total`, in order.
#[tokio::test]
async fn recovery_under_concurrent_publishing_has_no_gap_and_no_duplicate() {
    const TOTAL: u64 = 600;
    let server = start(Config {
        history_size: 10_000,
        publish_rate: 0,
        ..Config::default()
    })
    .await;
    let mut publisher = anonymous(&server).await;
    let epoch = publisher.publish("live", json!(1)).await["epoch"]
        .as_str()
        .unwrap()
        .to_owned();
    let progress = Arc::new(AtomicU64::new(1));
    let published = Arc::clone(&progress);
    let publishing = tokio::spawn(async move {
        for n in 2..=TOTAL {
            let reply = publisher.publish("live", json!(n)).await;
            published.store(reply["offset"].as_u64().unwrap(), Ordering::Relaxed);
        }
    });

    let mut checks = Vec::new();
    for start_after in [20, 100, 250, 400] {
        // Wait until the publisher is past `start_after`, then subscribe from a bit before it.
        eventually("the publisher to make progress", async || {
            progress.load(Ordering::Relaxed) >= start_after
        })
        .await;
        let mut client = anonymous(&server).await;
        let since = start_after - 10;
        let epoch = epoch.clone();
        checks.push(tokio::spawn(async move {
            let reply = subscribe_since(&mut client, "live", &epoch, since).await;
            assert_eq!(reply["recovered"], true, "{reply}");
            let at_subscribe = reply["offset"].as_u64().unwrap();
            assert!(at_subscribe >= since);
            let mut expected = since + 1;
            while expected <= TOTAL {
                let message = client.recv_skipping_presence().await;
                assert_eq!(message["type"], "message", "{message}");
                assert_eq!(
                    message["offset"], expected,
                    "consecutive offsets after since={since}"
                );
                assert_eq!(message["data"], expected);
                expected += 1;
            }
            assert_eq!(
                client.request(json!({"type": "ping"})).await["type"],
                "pong",
                "no duplicate after the last"
            );
            at_subscribe
        }));
    }
    publishing.await.unwrap();
    let mut replayed_some = false;
    for check in checks {
        let at_subscribe = check.await.unwrap();
        replayed_some |= at_subscribe < TOTAL;
    }
    assert!(
        replayed_some,
        "at least one client subscribed while the publisher was still going"
    );
}

#[tokio::test]
async fn subscribe_without_since_gets_only_live_messages() {
    let server = start_default().await;
    publish_all(&server, "r", 1..=3).await;
    let mut a = anonymous(&server).await;
    let reply = a.subscribe("r").await;
    assert_eq!(
        (reply["offset"].as_u64(), reply["recovered"].as_bool()),
        (Some(3), Some(true))
    );
    publish_all(&server, "r", [4]).await;
    assert_eq!(a.expect("message").await["offset"], 4);
}
