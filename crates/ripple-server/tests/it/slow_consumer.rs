//! A `/ws` subscriber that never reads: closed with 4008 once its queue is full, while the
//! publisher's replies keep coming promptly and the other subscribers get every message.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use ripple::CloseCode;
use ripple_server::Config;
use serde_json::json;

use crate::support::{anonymous, small_window_client, start};

const SLOW_CONSUMER: CloseCode = CloseCode(4008);

#[tokio::test]
async fn subscriber_that_never_reads_is_closed_4008_and_nobody_else_slows_down() {
    const MAX_PUBLISHES: u64 = 5000;
    const PUBLISHES_AFTER: u64 = 200;
    let server = start(Config {
        client_queue_bytes: 16 * 1024,
        publish_rate: 0,
        ..Config::default()
    })
    .await;
    let mut reader = anonymous(&server).await;
    reader.subscribe("feed").await;
    let mut sleeper = small_window_client(&server).await;
    sleeper.subscribe("feed").await;
    reader.expect("join").await;
    let mut publisher = anonymous(&server).await;

    let reading = tokio::spawn(async move {
        let mut offsets = Vec::new();
        loop {
            let message = reader.recv_skipping_presence().await;
            if message["data"] == "done" {
                return offsets;
            }
            offsets.push(message["offset"].as_u64().unwrap());
        }
    });

    let padding = "p".repeat(2000);
    let slow_consumers = &server.state.metrics.slow_consumers;
    let mut slowest_reply = Duration::ZERO;
    let mut publish = async |n: u64| {
        let asked = Instant::now();
        let reply = publisher
            .publish("feed", json!({"n": n, "padding": padding}))
            .await;
        slowest_reply = slowest_reply.max(asked.elapsed());
        assert_eq!(reply["offset"], n);
    };
    let mut sent = 0;
    while slow_consumers.load(Ordering::Relaxed) == 0 {
        assert!(
            sent < MAX_PUBLISHES,
            "the sleeper was not cut off after {sent} publishes"
        );
        sent += 1;
        publish(sent).await;
    }
    // Reading now, the sleeper finds the close frame behind what its socket held.
    assert_eq!(
        sleeper.closed().await,
        SLOW_CONSUMER,
        "cut off after {sent} publishes"
    );
    for n in sent + 1..=sent + PUBLISHES_AFTER {
        publish(n).await;
    }
    publisher.publish("feed", json!("done")).await;

    let offsets = reading.await.unwrap();
    let expected: Vec<u64> = (1..=sent + PUBLISHES_AFTER).collect();
    assert!(
        offsets == expected,
        "the reader got every message in order ({} of {})",
        offsets.len(),
        expected.len()
    );
    assert!(
        slowest_reply < Duration::from_secs(1),
        "publishing never waited on the sleeper: {slowest_reply:?}"
    );
    assert_eq!(
        slow_consumers.load(Ordering::Relaxed),
        1,
        "only the sleeper was cut off"
    );
    assert_eq!(server.metric("ripple_slow_consumer_closes_total").await, 1);
    assert!(server.metric("ripple_dropped_total").await >= 1);

    // Its subscription ends with the session: presence no longer lists it.
    let sleeper_id = sleeper.id.clone();
    let mut probe = anonymous(&server).await;
    crate::support::eventually("the sleeper to leave the channel", async || {
        let presence = probe
            .request(json!({"type": "presence", "channel": "feed"}))
            .await;
        presence["clients"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["client"] != sleeper_id)
    })
    .await;
}
