//! The broker seam: one suite that runs against every `Broker` implementation ([`brokers`]
//! lists them: in memory, and Redis on a `redis-server` of the test's own). A broker may queue
//! live messages after the call that caused them returns (Redis delivers through pub/sub), so
//! the suite waits for what it expects ([`drain`]) and then checks nothing more arrives.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use ripple_server::broker::memory::{MemoryBroker, MemoryOptions};
use ripple_server::broker::{Broker, HistoryQuery, Subscribed, Subscriber};
use ripple_server::metrics::Metrics;
use ripple_server::protocol::{ClientInfo, Reply, Since};
use ripple_server::push::Push;
use ripple_server::queue::ClientQueue;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::redis_support::{RedisServer, redis_broker};
use crate::support::WAIT;

/// A broker under test, its metrics, and the Redis it uses (stopped when dropped).
type Backend = (
    &'static str,
    Arc<dyn Broker>,
    Arc<Metrics>,
    Option<RedisServer>,
);

/// Every implementation, with `history_size` messages kept for an hour, presence on.
async fn brokers(history_size: usize) -> Vec<Backend> {
    let metrics = Arc::new(Metrics::default());
    let options = MemoryOptions {
        history_size,
        history_ttl: Duration::from_secs(3600),
        presence: true,
        deflate: None,
        ..MemoryOptions::default()
    };
    let memory = Arc::new(MemoryBroker::new(options, Arc::clone(&metrics)));
    let redis = RedisServer::start().await;
    let redis_metrics = Arc::new(Metrics::default());
    let on_redis = redis_broker(&redis, history_size, Arc::clone(&redis_metrics)).await;
    vec![
        ("memory", memory, metrics, None),
        ("redis", on_redis, redis_metrics, Some(redis)),
    ]
}

/// A subscriber with its own queue.
fn subscriber(client: &str, queue_bytes: usize) -> (Subscriber, Arc<ClientQueue>) {
    let queue = ClientQueue::new(queue_bytes);
    let info = ClientInfo {
        client: client.into(),
        user: None,
    };
    let subscriber = Subscriber {
        info,
        queue: Arc::clone(&queue),
        compressed: false,
        visible: true,
    };
    (subscriber, queue)
}

/// The `subscribed` reply as the session builds it (its channel aside: the suite does not
/// check it).
fn reply(subscribed: &Subscribed) -> Arc<Push> {
    let reply = Reply::Subscribed {
        id: None,
        channel: "c",
        epoch: &subscribed.epoch,
        offset: subscribed.offset,
        recovered: subscribed.recovered,
    };
    Push::reply(&reply, None)
}

/// What the queue gets, as JSON, until `done` says it is all there (within [`WAIT`]), and
/// whatever else arrives in the next 100 ms.
async fn drain_until(queue: &ClientQueue, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let mut all = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while !done(&all) {
        let batch = tokio::time::timeout_at(deadline, next_batch(queue))
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for more than {all:?}"));
        all.extend(batch);
    }
    while let Ok(batch) = tokio::time::timeout(Duration::from_millis(100), next_batch(queue)).await
    {
        all.extend(batch);
    }
    all
}

/// The next `count` messages of the queue (and a check that no more arrive right after).
async fn drain(queue: &ClientQueue, count: usize) -> Vec<Value> {
    drain_until(queue, |all| all.len() >= count).await
}

async fn next_batch(queue: &ClientQueue) -> Vec<Value> {
    let mut batch = Vec::new();
    queue.next_batch(&mut batch).await.unwrap();
    batch
        .iter()
        .map(|m| serde_json::from_slice(m.json()).unwrap())
        .collect()
}

fn messages_only(queued: &[Value]) -> Vec<Value> {
    queued
        .iter()
        .filter(|m| m["type"] == "message")
        .cloned()
        .collect()
}

fn raw(json: &str) -> Box<RawValue> {
    RawValue::from_string(json.to_owned()).unwrap()
}

async fn publish(broker: &dyn Broker, channel: &str, n: u64) -> (String, u64) {
    let data = raw(&n.to_string());
    let published = broker.publish(channel, &data, None).await.unwrap();
    (published.epoch, published.offset)
}

fn offsets(messages: &[Value]) -> Vec<u64> {
    messages
        .iter()
        .map(|m| m["offset"].as_u64().unwrap())
        .collect()
}

#[tokio::test]
async fn broker_publish_assigns_consecutive_offsets_in_one_epoch() {
    for (name, broker, metrics, _redis) in brokers(10).await {
        let (epoch, first) = publish(&*broker, "c", 1).await;
        let (same, second) = publish(&*broker, "c", 2).await;
        assert_eq!((first, second), (1, 2), "{name}");
        assert_eq!(epoch, same, "{name}");
        let (other_epoch, other) = publish(&*broker, "other", 1).await;
        assert_eq!(other, 1, "{name}: offsets are per channel");
        assert_ne!(other_epoch, epoch, "{name}: so are epochs");
        assert_eq!(metrics.publications.load(Ordering::Relaxed), 3);
    }
}

#[tokio::test]
async fn broker_subscribe_queues_reply_then_replay_then_live() {
    for (name, broker, _, _redis) in brokers(10).await {
        let (epoch, _) = publish(&*broker, "c", 1).await;
        publish(&*broker, "c", 2).await;
        publish(&*broker, "c", 3).await;
        let (sub, queue) = subscriber("a", 1 << 20);
        let since = Since {
            epoch: epoch.clone(),
            offset: 1,
        };
        let subscribed = broker
            .subscribe("c", sub, Some(&since), &reply)
            .await
            .unwrap();
        assert_eq!(
            (subscribed.offset, subscribed.recovered),
            (3, true),
            "{name}"
        );
        publish(&*broker, "c", 4).await;
        let queued = drain(&queue, 4).await;
        assert_eq!(queued[0]["type"], "subscribed", "{name}: the reply first");
        assert_eq!(offsets(&queued[1..]), [2, 3, 4], "{name}");
        assert_eq!(queued[1]["epoch"], epoch);
        assert_eq!(queued[1]["data"], 2);
    }
}

#[tokio::test]
async fn broker_a_recovery_larger_than_half_the_queue_is_paced_from_history() {
    for (name, broker, _, _redis) in brokers(20).await {
        let (epoch, _) = publish(&*broker, "c", 1).await;
        for n in 2..=10 {
            publish(&*broker, "c", n).await;
        }
        // Nine messages of about 100 bytes behind, a queue of 400: a marker, not the messages.
        let (sub, queue) = subscriber("a", 400);
        let since = Since { epoch, offset: 1 };
        broker
            .subscribe("c", sub, Some(&since), &reply)
            .await
            .unwrap();
        assert!(
            queue.queued_bytes() < 200,
            "{name}: {}",
            queue.queued_bytes()
        );
        publish(&*broker, "c", 11).await;
        let pacer = ripple_server::replay::Pacer {
            broker: &*broker,
            page_bytes: 250,
        };
        let mut got = Vec::new();
        while got.len() < 11 {
            let mut batch = Vec::new();
            let next = ripple_server::replay::next_batch(&queue, pacer, &mut batch);
            tokio::time::timeout(WAIT, next).await.unwrap().unwrap();
            assert!(
                batch.len() <= 3,
                "{name}: a page at a time, not {}",
                batch.len()
            );
            got.extend(
                batch
                    .iter()
                    .map(|m| serde_json::from_slice::<Value>(m.json()).unwrap()),
            );
        }
        assert_eq!(got[0]["type"], "subscribed", "{name}");
        assert_eq!(offsets(&got[1..]), (2..=11).collect::<Vec<_>>(), "{name}");
    }
}

#[tokio::test]
async fn broker_subscribe_reports_unrecoverable_gaps() {
    for (name, broker, _, _redis) in brokers(2).await {
        let (epoch, _) = publish(&*broker, "c", 1).await;
        for n in 2..=5 {
            publish(&*broker, "c", n).await;
        }
        for (since, recovered, replayed) in [
            (2, false, vec![]),
            (3, true, vec![4, 5]),
            (5, true, vec![]),
            (6, false, vec![]),
        ] {
            let (sub, queue) = subscriber(&format!("c{since}"), 1 << 20);
            let since_at = Since {
                epoch: epoch.clone(),
                offset: since,
            };
            let subscribed = broker
                .subscribe("c", sub, Some(&since_at), &reply)
                .await
                .unwrap();
            assert_eq!(subscribed.recovered, recovered, "{name}: since {since}");
            let queued = drain(&queue, 1 + replayed.len()).await;
            let messages = messages_only(&queued);
            assert_eq!(offsets(&messages), replayed, "{name}: since {since}");
        }
        let (sub, _) = subscriber("other-epoch", 1 << 20);
        let wrong = Since {
            epoch: "x".into(),
            offset: 4,
        };
        let subscribed = broker
            .subscribe("c", sub, Some(&wrong), &reply)
            .await
            .unwrap();
        assert!(!subscribed.recovered, "{name}");
    }
}

#[tokio::test]
async fn broker_presence_join_and_leave() {
    for (name, broker, _, _redis) in brokers(10).await {
        let (a, a_queue) = subscriber("a", 1 << 20);
        let (b, _) = subscriber("b", 1 << 20);
        broker.subscribe("room", a, None, &reply).await.unwrap();
        broker.subscribe("room", b, None, &reply).await.unwrap();
        let mut present: Vec<_> = broker
            .presence("room")
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.client)
            .collect();
        present.sort();
        assert_eq!(present, ["a", "b"], "{name}");
        broker.unsubscribe("room", "b").await.unwrap();
        let queued = drain(&a_queue, 3).await;
        let kinds: Vec<_> = queued.iter().map(|m| m["type"].clone()).collect();
        assert_eq!(kinds, ["subscribed", "join", "leave"], "{name}");
        assert_eq!(
            queued[1],
            json!({"type": "join", "channel": "room", "client": "b"})
        );
        assert_eq!(broker.presence("room").await.unwrap().len(), 1, "{name}");
        assert!(broker.presence("nowhere").await.unwrap().is_empty());
        broker.unsubscribe("room", "never-there").await.unwrap();
    }
}

#[tokio::test]
async fn broker_resubscribing_a_client_does_not_double_deliveries() {
    for (name, broker, _, _redis) in brokers(10).await {
        let (first, queue) = subscriber("a", 1 << 20);
        broker
            .subscribe("c", first.clone(), None, &reply)
            .await
            .unwrap();
        broker.subscribe("c", first, None, &reply).await.unwrap();
        publish(&*broker, "c", 1).await;
        let queued = drain_until(&queue, |all| !messages_only(all).is_empty()).await;
        assert_eq!(messages_only(&queued).len(), 1, "{name}: {queued:?}");
        assert_eq!(broker.presence("c").await.unwrap().len(), 1);
    }
}

#[tokio::test]
async fn broker_history_pages_and_unknown_channels() {
    for (name, broker, _, _redis) in brokers(3).await {
        for n in 1..=5 {
            publish(&*broker, "h", n).await;
        }
        let page = broker.history("h", HistoryQuery::after(0)).await.unwrap();
        let all = page.messages.clone();
        let messages: Vec<Value> = page
            .messages
            .iter()
            .map(|m| serde_json::from_slice(m.json()).unwrap())
            .collect();
        assert_eq!(offsets(&messages), [3, 4, 5], "{name}");
        assert_eq!((page.offset, page.more), (5, false));
        let limited = HistoryQuery {
            limit: 1,
            ..HistoryQuery::after(3)
        };
        let page = broker.history("h", limited).await.unwrap();
        assert_eq!((page.messages.len(), page.more), (1, true), "{name}");
        // Bytes: each message counts its JSON and a comma; the first always goes in.
        let sizes: Vec<usize> = all.iter().map(|m| m.json().len() + 1).collect();
        for (max_bytes, expected, more) in [
            (1, vec![3], true),
            (sizes[0] + sizes[1] - 1, vec![3], true),
            (sizes[0] + sizes[1], vec![3, 4], true),
            (sizes.iter().sum(), vec![3, 4, 5], false),
        ] {
            let query = HistoryQuery {
                since: None,
                limit: usize::MAX,
                max_bytes,
            };
            let page = broker.history("h", query).await.unwrap();
            let got: Vec<Value> = page
                .messages
                .iter()
                .map(|m| serde_json::from_slice(m.json()).unwrap())
                .collect();
            assert_eq!(
                (offsets(&got), page.more),
                (expected, more),
                "{name}: {max_bytes}"
            );
        }
        let unknown = broker
            .history("none", HistoryQuery::after(0))
            .await
            .unwrap();
        assert_eq!(
            (
                unknown.epoch.as_str(),
                unknown.offset,
                unknown.messages.len()
            ),
            ("", 0, 0),
            "{name}"
        );
    }
}

#[tokio::test]
async fn broker_channels_are_listed_sorted_and_swept_when_empty() {
    for (name, broker, _, _redis) in brokers(0).await {
        let (a, _) = subscriber("a", 1 << 20);
        broker.subscribe("kept", a, None, &reply).await.unwrap();
        let (old_epoch, _) = publish(&*broker, "dropped", 1).await;
        let listed: Vec<_> = broker
            .channels()
            .await
            .unwrap()
            .into_iter()
            .map(|c| (c.channel, c.subscribers, c.offset))
            .collect();
        assert_eq!(
            listed,
            [("dropped".into(), 0, 1), ("kept".into(), 1, 0)],
            "{name}"
        );
        broker.sweep().await;
        let listed: Vec<_> = broker
            .channels()
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.channel)
            .collect();
        assert_eq!(
            listed,
            ["kept"],
            "{name}: no subscribers and no history: dropped"
        );
        let (new_epoch, offset) = publish(&*broker, "dropped", 1).await;
        assert_eq!(
            (new_epoch, offset),
            (old_epoch, 2),
            "{name}: a dropped channel comes back where it was"
        );
    }
}

#[tokio::test]
async fn broker_fan_out_cuts_off_a_full_queue_and_counts_it() {
    for (name, broker, metrics, _redis) in brokers(10).await {
        let (slow, slow_queue) = subscriber("slow", 300);
        let (fast, fast_queue) = subscriber("fast", 1 << 20);
        broker.subscribe("c", slow, None, &reply).await.unwrap();
        broker.subscribe("c", fast, None, &reply).await.unwrap();
        for n in 1..=10 {
            let data = raw(&format!("\"{}\"", "x".repeat(50 + n)));
            broker.publish("c", &data, None).await.unwrap();
        }
        assert_eq!(
            slow_queue.closed().await.code,
            ripple::CloseCode(4008),
            "{name}"
        );
        let fast_queued = drain_until(&fast_queue, |all| messages_only(all).len() >= 10).await;
        let messages = messages_only(&fast_queued);
        assert_eq!(offsets(&messages), (1..=10).collect::<Vec<_>>(), "{name}");
        assert_eq!(metrics.slow_consumers.load(Ordering::Relaxed), 1, "{name}");
        assert_eq!(metrics.dropped.load(Ordering::Relaxed), 1, "{name}");
    }
}
