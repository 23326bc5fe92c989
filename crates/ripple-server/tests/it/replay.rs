//! Recovery larger than the client's queue: paced by what the client reads, on `/ws` and
//! `/sse`, and cut with 4009 (never a silent gap) when history goes away under it.

use ripple::{CloseCode, Message};
use ripple_server::Config;
use serde_json::{Value, json};

use crate::hostile_data::{MESSAGES, api_post, fill};
use crate::sse_support::{encode_cursor, open};
use crate::support::{Client, anonymous, api_config, small_window_client, start};

const CHANNEL: &str = "big";

/// Subscribes with `since`; returns the `subscribed` reply.
async fn subscribe_since<S>(client: &mut Client<S>, epoch: &str, offset: u64) -> Value
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let since = json!({"epoch": epoch, "offset": offset});
    client
        .send(json!({"type": "subscribe", "channel": CHANNEL, "since": since}))
        .await;
    client.expect("subscribed").await
}

#[tokio::test]
async fn a_ws_recovery_many_times_the_queue_arrives_whole_and_in_order() {
    // 100 × 60 KB (6 MB) behind, against the default 1 MiB queue.
    let server = start(api_config()).await;
    let epoch = fill(&server, CHANNEL).await;
    let mut top = MESSAGES;
    for from in [0, 80] {
        let mut client = anonymous(&server).await;
        let reply = subscribe_since(&mut client, &epoch, from).await;
        assert_eq!(reply["recovered"], true, "{reply}");
        assert_eq!(reply["offset"], top);
        for offset in from + 1..=top {
            let message = client.expect("message").await;
            assert_eq!(message["offset"], offset, "since {from}");
        }
        // Live messages follow the replay.
        let live = json!({"channel": CHANNEL, "data": "live"}).to_string();
        assert_eq!(api_post(&server, "/api/publish", &live).await.status, 200);
        top += 1;
        let message = client.expect("message").await;
        assert_eq!(
            (message["offset"].as_u64(), message["data"].as_str()),
            (Some(top), Some("live"))
        );
    }
    assert_eq!(server.metric("ripple_slow_consumer_closes_total").await, 0);
}

#[tokio::test]
async fn an_sse_resume_many_times_the_queue_arrives_whole_and_in_order() {
    let server = start(api_config()).await;
    let epoch = fill(&server, CHANNEL).await;
    let last_event_id = encode_cursor(&[(CHANNEL, &epoch, 0)]);
    let mut stream = open(
        server.addr,
        &format!("/sse?channel={CHANNEL}"),
        &[("Last-Event-ID", &last_event_id)],
    )
    .await
    .unwrap();
    stream.expect("authenticated").await;
    let subscribed = stream.expect("subscribed").await.json();
    assert_eq!(subscribed["recovered"], true, "{subscribed}");
    for offset in 1..=MESSAGES {
        assert_eq!(stream.expect("message").await.json()["offset"], offset);
    }
}

#[tokio::test]
async fn a_replay_that_loses_its_history_ends_with_4009_and_nothing_after_the_gap() {
    let server = start(Config {
        history_size: 100,
        ..api_config()
    })
    .await;
    let epoch = fill(&server, CHANNEL).await;
    // A reader whose socket holds little: the replay waits on it, page after page.
    let mut slow = small_window_client(&server).await;
    let reply = subscribe_since(&mut slow, &epoch, 0).await;
    assert_eq!(reply["recovered"], true);
    // Meanwhile 100 small publications push every replayed message out of history.
    for n in 0..MESSAGES {
        let body = json!({"channel": CHANNEL, "data": n}).to_string();
        assert_eq!(api_post(&server, "/api/publish", &body).await.status, 200);
    }
    let mut offsets = Vec::new();
    let close = loop {
        match tokio::time::timeout(crate::support::WAIT, slow.ws.recv()).await {
            Ok(Ok(Some(Message::Text(text)))) => {
                let push: Value = serde_json::from_str(&text).unwrap();
                if push["type"] == "message" {
                    offsets.push(push["offset"].as_u64().unwrap());
                }
            }
            Ok(Ok(Some(_))) => {}
            Ok(_) => break slow.ws.close_frame(),
            Err(_) => panic!("neither the whole replay nor a close"),
        }
    };
    assert_eq!(close.map(|c| c.code), Some(CloseCode(4009)));
    let contiguous: Vec<u64> = (1..=offsets.len() as u64).collect();
    assert_eq!(offsets, contiguous, "what arrived has no gap");
    assert!(
        (offsets.len() as u64) < MESSAGES,
        "the replay was cut short by the lost history"
    );
}
