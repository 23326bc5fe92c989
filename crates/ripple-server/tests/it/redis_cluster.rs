//! Three nodes on one Redis (issue 10): delivery across nodes (WebSocket and HTTP API),
//! cluster-wide API answers, a killed node's client recovering on another node, presence
//! expiry, and 10,000 messages from publishers on every node reaching every subscriber in the
//! same order.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::redis_support::{Node, PRESENCE_TTL_SECS, RedisServer, node_config};
use crate::support::{Client, WAIT, api_auth, eventually, http, http_get};

async fn three_nodes(redis: &RedisServer) -> [Node; 3] {
    [
        Node::start(node_config(redis)).await,
        Node::start(node_config(redis)).await,
        Node::start(node_config(redis)).await,
    ]
}

/// A greeted anonymous `/ws` client of `node`.
async fn client(node: &Node) -> Client {
    let mut client = Client::open(&node.ws_url()).await;
    let hello = client.expect("authenticated").await;
    client.id = hello["client"].as_str().unwrap().to_owned();
    client
}

async fn api_get(node: &Node, path: &str) -> Value {
    let (name, value) = api_auth();
    let response = http_get(node.addr, path, &[(name, &value)]).await;
    assert_eq!(response.status, 200, "{path}: {}", response.body);
    response.json()
}

async fn api_publish(node: &Node, channel: &str, data: Value) -> Value {
    let (name, value) = api_auth();
    let body = json!({"channel": channel, "data": data}).to_string();
    let response = http(
        node.addr,
        "POST",
        "/api/publish",
        &[(name, &value), ("Content-Type", "application/json")],
        &body,
    )
    .await;
    assert_eq!(response.status, 200, "{}", response.body);
    response.json()
}

async fn presence_ids(node: &Node, channel: &str) -> Vec<String> {
    let answer = api_get(node, &format!("/api/channels/{channel}/presence")).await;
    let mut ids: Vec<_> = answer["clients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["client"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn redis_a_message_published_on_node_b_reaches_nodes_a_and_c_and_so_does_the_api() {
    let redis = RedisServer::start().await;
    let [a, b, c] = three_nodes(&redis).await;
    let mut on_a = client(&a).await;
    let mut on_c = client(&c).await;
    on_a.subscribe("room").await;
    on_c.subscribe("room").await;
    let join = on_a.expect("join").await;
    assert_eq!(
        join,
        json!({"type": "join", "channel": "room", "client": on_c.id})
    );

    let mut on_b = client(&b).await;
    let published = on_b.publish("room", json!({"text": "hi"})).await;
    assert_eq!(published["offset"], 1);
    let epoch = published["epoch"].as_str().unwrap().to_owned();
    for receiver in [&mut on_a, &mut on_c] {
        let message = receiver.expect("message").await;
        assert_eq!(message["data"], json!({"text": "hi"}));
        assert_eq!(
            (message["offset"].as_u64(), message["epoch"].as_str()),
            (Some(1), Some(epoch.as_str()))
        );
    }
    let via_api = api_publish(&b, "room", json!("from the backend")).await;
    assert_eq!(via_api["offset"], 2);
    for receiver in [&mut on_a, &mut on_c] {
        let message = receiver.expect("message").await;
        assert_eq!(
            (message["offset"].as_u64(), &message["data"]),
            (Some(2), &json!("from the backend"))
        );
    }

    // Cluster-wide answers, whichever node is asked.
    let mut both = vec![on_a.id.clone(), on_c.id.clone()];
    both.sort();
    assert_eq!(presence_ids(&b, "room").await, both);
    let channels = api_get(&a, "/api/channels").await;
    assert_eq!(
        channels["channels"],
        json!([{"channel": "room", "subscribers": 2, "epoch": epoch, "offset": 2}])
    );
    let history = api_get(&c, "/api/channels/room/history").await;
    let offsets: Vec<_> = history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["offset"].as_u64().unwrap())
        .collect();
    assert_eq!(offsets, [1, 2]);
    let metrics = http_get(b.addr, "/metrics", &[]).await;
    assert!(
        metrics.body.contains("\nripple_channels 1\n"),
        "{}",
        metrics.body
    );
    let history = on_b
        .request(json!({"type": "history", "channel": "room"}))
        .await;
    assert_eq!(history["messages"][1]["data"], "from the backend");
}

#[tokio::test]
async fn redis_a_killed_nodes_client_recovers_every_missed_message_once_on_another_node() {
    let redis = RedisServer::start().await;
    let [mut a, b, c] = three_nodes(&redis).await;
    let mut watcher = client(&b).await;
    watcher.subscribe("feed").await;
    let mut reader = client(&a).await;
    reader.subscribe("feed").await;
    let old_id = reader.id.clone();
    let mut publisher = client(&b).await;
    for n in 1..=5 {
        publisher.publish("feed", json!(n)).await;
    }
    let mut last = Value::Null;
    for n in 1..=5 {
        last = reader.expect("message").await;
        assert_eq!(last["offset"], n);
    }
    let epoch = last["epoch"].as_str().unwrap().to_owned();

    a.kill();
    let killed = Instant::now();
    for n in 6..=25 {
        publisher.publish("feed", json!(n)).await;
    }
    // Presence forgets the dead node's client within the expiry.
    eventually("the killed node's client to leave presence", async || {
        !presence_ids(&c, "feed").await.contains(&old_id)
    })
    .await;
    let expiry = Duration::from_secs(PRESENCE_TTL_SECS) + Duration::from_millis(2500);
    assert!(
        killed.elapsed() <= expiry,
        "presence took {:?}",
        killed.elapsed()
    );

    let mut back = client(&c).await;
    let reply = back
        .request(
            json!({"type": "subscribe", "channel": "feed", "since": {"epoch": epoch, "offset": 5}}),
        )
        .await;
    assert_eq!(
        (reply["type"].as_str(), reply["recovered"].as_bool()),
        (Some("subscribed"), Some(true)),
        "{reply}"
    );
    assert_eq!(reply["offset"], 25);
    for n in 6..=25 {
        let message = back.recv_skipping_presence().await;
        assert_eq!(
            (message["offset"].as_u64(), message["data"].as_u64()),
            (Some(n), Some(n)),
            "{message}"
        );
    }
    publisher.publish("feed", json!(26)).await;
    let next = back.recv_skipping_presence().await;
    assert_eq!(
        next["offset"], 26,
        "live after the replay, nothing twice: {next}"
    );
    let mut present = presence_ids(&b, "feed").await;
    present.retain(|id| *id == old_id || *id == back.id);
    assert_eq!(present, [back.id.clone()]);

    // The sweep (every 5 s, one node) announces the dead node's client as gone.
    loop {
        let push = watcher.recv().await;
        if push["type"] == "leave" && push["client"] == old_id.as_str() {
            break;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_ten_thousand_messages_from_three_nodes_reach_every_subscriber_in_one_order() {
    const TOTAL: u64 = 10_000;
    let redis = RedisServer::start().await;
    let config = || ripple_server::Config {
        client_queue_bytes: 16 << 20,
        ..node_config(&redis)
    };
    let nodes = [
        Node::start(config()).await,
        Node::start(config()).await,
        Node::start(config()).await,
    ];
    let mut readers = Vec::new();
    for node in nodes.iter().chain(nodes.iter()) {
        let mut subscriber = client(node).await;
        subscriber.subscribe("firehose").await;
        readers.push(tokio::spawn(async move {
            let mut seen = Vec::with_capacity(TOTAL as usize);
            let mut epoch = String::new();
            while (seen.len() as u64) < TOTAL {
                let message = subscriber.recv_skipping_presence().await;
                assert_eq!(message["type"], "message", "{message}");
                if epoch.is_empty() {
                    epoch = message["epoch"].as_str().unwrap().to_owned();
                }
                assert_eq!(message["epoch"], epoch.as_str());
                seen.push(message["offset"].as_u64().unwrap());
            }
            seen
        }));
    }
    let started = Instant::now();
    let mut publishers = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let mut publisher = client(node).await;
        let count = TOTAL / 3 + u64::from(i == 0) * (TOTAL % 3);
        publishers.push(tokio::spawn(async move {
            // Pipelined: every publish is sent, then every reply read.
            for n in 0..count {
                publisher
                    .send(json!({"type": "publish", "channel": "firehose", "data": {"node": i, "n": n}, "id": n}))
                    .await;
            }
            for _ in 0..count {
                let reply = publisher.recv().await;
                assert_eq!(reply["type"], "published", "{reply}");
            }
        }));
    }
    for publisher in publishers {
        tokio::time::timeout(WAIT * 6, publisher)
            .await
            .unwrap()
            .unwrap();
    }
    for reader in readers {
        let seen = tokio::time::timeout(WAIT * 6, reader)
            .await
            .unwrap()
            .unwrap();
        let expected: Vec<u64> = (1..=TOTAL).collect();
        assert!(
            seen == expected,
            "offsets are 1..={TOTAL} in order, without gap or duplicate"
        );
    }
    eprintln!(
        "10,000 messages from 3 nodes to 6 subscribers on 3 nodes: {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_subscribing_during_publishing_on_other_nodes_has_no_gap_or_duplicate() {
    const TOTAL: u64 = 2_000;
    let redis = RedisServer::start().await;
    let [a, b, c] = three_nodes(&redis).await;
    let mut first = client(&b).await;
    let epoch = first.publish("stream", json!(0)).await["epoch"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut publishers = Vec::new();
    for node in [&b, &c] {
        let mut publisher = client(node).await;
        publishers.push(tokio::spawn(async move {
            // Paced (50 every 10 ms) so that the subscriptions below land mid-stream.
            for n in 0..TOTAL / 2 {
                publisher
                    .send(json!({"type": "publish", "channel": "stream", "data": n}))
                    .await;
                if n % 50 == 49 {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            for _ in 0..TOTAL / 2 {
                assert_eq!(publisher.recv().await["type"], "published");
            }
        }));
    }
    // Mid-stream, on the third node: one client recovers from offset 1, one starts live.
    eventually("publishing to be under way", async || {
        let history = api_get(&a, "/api/channels/stream/history?limit=1").await;
        history["offset"].as_u64().unwrap() > 100
    })
    .await;
    let mut recovering = client(&a).await;
    let reply = recovering
        .request(json!({"type": "subscribe", "channel": "stream", "since": {"epoch": epoch, "offset": 1}}))
        .await;
    assert_eq!(reply["recovered"], true, "{reply}");
    let mut live = client(&a).await;
    let from = live.subscribe("stream").await["offset"].as_u64().unwrap();
    assert!(
        from < TOTAL,
        "subscribed while publishing went on (at {from})"
    );
    for (who, receiver, start) in [
        ("recovering", &mut recovering, 2),
        ("live", &mut live, from + 1),
    ] {
        let mut expected = start;
        while expected <= TOTAL + 1 {
            let message = receiver.recv_skipping_presence().await;
            assert_eq!(
                message["offset"].as_u64(),
                Some(expected),
                "{who}: {message}"
            );
            expected += 1;
        }
    }
    for publisher in publishers {
        publisher.await.unwrap();
    }
}

#[tokio::test]
async fn redis_http_transports_resume_on_another_node_with_no_sticky_session() {
    use crate::sse_support::{decode_cursor, open, poll};
    let redis = RedisServer::start().await;
    let [a, b, _c] = three_nodes(&redis).await;
    // Long-polling: a cursor from node A is all node B needs.
    let (status, first) = poll(a.addr, "channel=feed&timeout=0").await;
    assert_eq!(status, 200, "{first}");
    let cursor = first["cursor"].as_str().unwrap().to_owned();
    for n in 1..=5 {
        api_publish(&a, "feed", json!(n)).await;
    }
    let (status, on_b) = poll(b.addr, &format!("cursor={cursor}")).await;
    assert_eq!(status, 200, "{on_b}");
    assert_eq!(on_b["channels"][0]["recovered"], true, "{on_b}");
    let offsets: Vec<u64> = on_b["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["offset"].as_u64().unwrap())
        .collect();
    assert_eq!(offsets, [1, 2, 3, 4, 5]);
    let next = on_b["cursor"].as_str().unwrap().to_owned();
    assert_eq!(decode_cursor(&next)[0].2, 5);

    // SSE: a stream on node A dropped; its last event id resumes on node B.
    let mut stream = open(a.addr, "/sse?channel=feed", &[]).await.unwrap();
    stream.expect("authenticated").await;
    let subscribed = stream.expect("subscribed").await;
    let last_id = subscribed.id.unwrap();
    drop(stream);
    for n in 6..=8 {
        api_publish(&b, "feed", json!(n)).await;
    }
    let mut stream = open(b.addr, "/sse?channel=feed", &[("Last-Event-ID", &last_id)])
        .await
        .unwrap();
    stream.expect("authenticated").await;
    assert_eq!(stream.expect("subscribed").await.json()["recovered"], true);
    for n in 6..=8 {
        assert_eq!(stream.expect("message").await.json()["offset"], n);
    }
    api_publish(&a, "feed", json!("live")).await;
    assert_eq!(stream.expect("message").await.json()["offset"], 9);
}
