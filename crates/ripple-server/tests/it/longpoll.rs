//! `/poll`: long-polling over the one session model — the position at once with `timeout=0`,
//! a held request answered by the next publication, exactly-once delivery across requests while
//! others publish, `recovered: false`, errors, and nothing left behind by a client that goes.

use std::time::{Duration, Instant};

use ripple_server::Config;
use serde_json::{Value, json};

use crate::sse_support::{decode_cursor, encode_cursor, poll, rpc_publish};
use crate::support::{anonymous, eventually, http, jwt_config, start, start_default, valid_token};

fn offsets(reply: &Value) -> Vec<u64> {
    reply["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["offset"].as_u64().unwrap())
        .collect()
}

#[tokio::test]
async fn timeout_zero_answers_the_position_and_a_held_poll_the_next_message() {
    let server = start_default().await;
    rpc_publish(server.addr, "a", json!("before")).await;
    let (status, first) = poll(server.addr, "channel=a&timeout=0").await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["messages"], json!([]));
    assert_eq!(first["channels"][0]["offset"], 1);
    assert_eq!(first["channels"][0]["recovered"], true);
    let cursor = first["cursor"].as_str().unwrap().to_owned();
    let epoch = first["channels"][0]["epoch"].as_str().unwrap().to_owned();
    assert_eq!(decode_cursor(&cursor), [("a".to_owned(), epoch, 1)]);

    let addr = server.addr;
    let publisher = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        rpc_publish(addr, "a", json!({"text": "hi"})).await
    });
    let asked = Instant::now();
    let (status, reply) = poll(server.addr, &format!("cursor={cursor}&timeout=5")).await;
    let waited = asked.elapsed();
    assert_eq!(status, 200);
    assert_eq!(publisher.await.unwrap(), 2);
    assert_eq!(reply["messages"][0]["data"], json!({"text": "hi"}));
    assert_eq!(reply["messages"][0]["type"], "message");
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    assert_eq!(decode_cursor(reply["cursor"].as_str().unwrap())[0].2, 2);
}

#[tokio::test]
async fn an_idle_poll_answers_empty_at_its_timeout() {
    let server = start_default().await;
    let asked = Instant::now();
    let (status, reply) = poll(server.addr, "channel=quiet&timeout=1").await;
    let waited = asked.elapsed();
    assert_eq!(status, 200);
    assert_eq!(reply["messages"], json!([]));
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
}

#[tokio::test]
async fn a_polling_loop_gets_every_message_once_in_order_while_others_publish() {
    const MESSAGES: u64 = 300;
    // History reaches back over every message: the test is about delivery, not loss.
    let server = start(Config {
        history_size: MESSAGES as usize,
        publish_rate: 0,
        ..Config::default()
    })
    .await;
    let (_, first) = poll(server.addr, "channel=feed&channel=other&timeout=0").await;
    let mut cursor = first["cursor"].as_str().unwrap().to_owned();
    let addr = server.addr;
    let publisher = tokio::spawn(async move {
        for n in 1..=MESSAGES {
            rpc_publish(addr, "feed", json!(n)).await;
            if n % 50 == 0 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    });
    let mut got = Vec::new();
    let started = Instant::now();
    while got.len() < MESSAGES as usize {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "stuck at {}",
            got.len()
        );
        let (status, reply) = poll(server.addr, &format!("cursor={cursor}&timeout=2")).await;
        assert_eq!(reply["channels"][0]["recovered"], true, "{reply}");
        assert_eq!(status, 200, "{reply}");
        got.extend(offsets(&reply));
        cursor = reply["cursor"].as_str().unwrap().to_owned();
        // A client that stops polling for a while loses nothing either.
        if got.len() == 100 {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    publisher.await.unwrap();
    assert_eq!(got, (1..=MESSAGES).collect::<Vec<_>>());
    let channels: Vec<_> = decode_cursor(&cursor).into_iter().map(|t| t.0).collect();
    assert_eq!(channels, ["feed", "other"]);
}

#[tokio::test]
async fn since_recovers_and_a_foreign_epoch_is_recovered_false_at_once() {
    let server = start_default().await;
    for n in 1..=4 {
        rpc_publish(server.addr, "a", json!(n)).await;
    }
    let (_, now) = poll(server.addr, "channel=a&timeout=0").await;
    let epoch = now["channels"][0]["epoch"].as_str().unwrap().to_owned();
    let (_, since) = poll(server.addr, &format!("channel=a&since={epoch}:2")).await;
    assert_eq!(offsets(&since), [3, 4]);
    assert_eq!(since["channels"][0]["recovered"], true);

    let stale = encode_cursor(&[("a", "0000000000000000", 2)]);
    let asked = Instant::now();
    let (status, lost) = poll(server.addr, &format!("cursor={stale}")).await;
    assert!(asked.elapsed() < Duration::from_secs(2), "answered at once");
    assert_eq!(status, 200);
    assert_eq!(lost["channels"][0]["recovered"], false);
    assert_eq!(lost["channels"][0]["offset"], 4);
    assert_eq!(lost["messages"], json!([]));
}

#[tokio::test]
async fn a_cursor_older_than_history_is_recovered_false() {
    let server = start(Config {
        history_size: 2,
        ..Config::default()
    })
    .await;
    let (_, first) = poll(server.addr, "channel=a&timeout=0").await;
    let cursor = first["cursor"].as_str().unwrap().to_owned();
    for n in 1..=5 {
        rpc_publish(server.addr, "a", json!(n)).await;
    }
    let (status, lost) = poll(server.addr, &format!("cursor={cursor}")).await;
    assert_eq!(status, 200);
    assert_eq!(lost["channels"][0]["recovered"], false, "{lost}");
    assert_eq!(lost["channels"][0]["offset"], 5);
    assert_eq!(lost["messages"], json!([]));
}

#[tokio::test]
async fn bad_requests_get_statuses_and_json_errors() {
    let server = start(jwt_config()).await;
    let good = valid_token("alice", &["room:*"]);
    let cases = [
        ("channel=room:1".to_owned(), 401, "unauthorized"),
        (format!("channel=admin&token={good}"), 403, "forbidden"),
        (format!("cursor=nope&token={good}"), 400, "invalid_cursor"),
        (
            format!("channel=room:1&since=x&token={good}"),
            400,
            "invalid_cursor",
        ),
        (
            format!("channel=room:1&channel=room:2&since=e:1&token={good}"),
            400,
            "invalid_field",
        ),
        (
            format!("channel=room:1&timeout=soon&token={good}"),
            400,
            "invalid_field",
        ),
        (format!("token={good}"), 400, "invalid_field"),
    ];
    for (query, status, code) in cases {
        let (got, body) = poll(server.addr, &query).await;
        assert_eq!(
            (got, body["code"].as_str()),
            (status, Some(code)),
            "{query}: {body}"
        );
        assert_eq!(body["type"], "error");
    }
    let bearer = format!("Bearer {good}");
    let response = http(
        server.addr,
        "GET",
        "/poll?channel=room:1&timeout=0",
        &[("Authorization", &bearer)],
        "",
    )
    .await;
    assert_eq!(response.status, 200, "{response:?}");
}

#[tokio::test]
async fn pollers_are_not_in_presence_and_leave_nothing_behind() {
    let server = start_default().await;
    let mut watcher = anonymous(&server).await;
    watcher.subscribe("room").await;
    let addr = server.addr;
    let waiting = tokio::spawn(async move { poll(addr, "channel=room&timeout=5").await });
    eventually("the poll is subscribed", async || {
        let channels = server.state.broker.channels().await.unwrap();
        channels
            .iter()
            .any(|c| c.channel == "room" && c.subscribers == 2)
    })
    .await;
    let presence = watcher
        .request(json!({"type": "presence", "channel": "room"}))
        .await;
    assert_eq!(
        presence["clients"].as_array().unwrap().len(),
        1,
        "{presence}"
    );
    waiting.abort();
    // A client that hangs up mid-poll: its subscription goes with it.
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(
        &mut tcp,
        format!(
            "GET /poll?channel=room HTTP/1.1\r\nHost: {}\r\n\r\n",
            server.addr
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(tcp);
    eventually("every poll's subscription is gone", async || {
        let channels = server.state.broker.channels().await.unwrap();
        channels
            .iter()
            .any(|c| c.channel == "room" && c.subscribers == 1)
    })
    .await;
    // And no join or leave was pushed for any of them.
    let pong = watcher.request(json!({"type": "ping"})).await;
    assert_eq!(pong["type"], "pong", "presence pushes came first: {pong}");
}

#[tokio::test]
async fn shutdown_answers_a_waiting_poll_at_once() {
    let mut server = start(Config::default()).await;
    let addr = server.addr;
    let waiting = tokio::spawn(async move { poll(addr, "channel=a&timeout=20").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let asked = Instant::now();
    server.trigger_shutdown();
    let (status, reply) = waiting.await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(reply["messages"], json!([]));
    assert!(asked.elapsed() < Duration::from_secs(5));
    server.stopped(Duration::from_secs(10)).await;
}
