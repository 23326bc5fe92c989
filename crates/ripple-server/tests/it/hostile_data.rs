//! Hostile clients, the data-bound part: an anonymous client must not make the server hold
//! unbounded memory through answers (history pages, the answer budget) or history (the memory
//! broker's global bounds), nor crash it with stored data (JSON depth), nor reach the API with
//! channel names the protocol refuses. Each test drives the attack over the wire.

use std::sync::Arc;

use ripple_server::broker::memory::{MemoryBroker, MemoryOptions};
use ripple_server::broker::{Broker, HistoryQuery};
use ripple_server::metrics::Metrics;
use ripple_server::{AppState, Config};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::sse_support::{poll, rpc};
use crate::support::{
    API_KEY, HttpResponse, TestServer, anonymous, api_auth, api_config, eventually, http, http_get,
    start, start_with_state,
};

/// The attack's channel: 100 messages of 60 KB.
const BIG: &str = "big";
pub(crate) const MESSAGES: u64 = 100;
const MESSAGE_BYTES: usize = 60_000;

/// Fills `channel` with [`MESSAGES`] messages of [`MESSAGE_BYTES`] through the API.
pub(crate) async fn fill(server: &TestServer, channel: &str) -> String {
    let data = "x".repeat(MESSAGE_BYTES);
    let mut epoch = String::new();
    for _ in 0..MESSAGES {
        let body = json!({"channel": channel, "data": data}).to_string();
        let reply = api_post(server, "/api/publish", &body).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        epoch = reply.json()["epoch"].as_str().unwrap().to_owned();
    }
    epoch
}

pub(crate) async fn api_post(server: &TestServer, path: &str, body: &str) -> HttpResponse {
    let (name, value) = api_auth();
    let headers = [(name, value.as_str()), ("Content-Type", "application/json")];
    http(server.addr, "POST", path, &headers, body).await
}

async fn api_get(server: &TestServer, path: &str) -> HttpResponse {
    let (name, value) = api_auth();
    http_get(server.addr, path, &[(name, value.as_str())]).await
}

fn offsets(messages: &Value) -> Vec<u64> {
    messages
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["offset"].as_u64().unwrap())
        .collect()
}

/// Follows `more` from offset 0 with `page(since)`, checking each answer's size; returns every
/// offset read, in order.
async fn read_all_pages(page_bytes: usize, mut page: impl AsyncFnMut(u64) -> (usize, Value)) {
    let mut seen = Vec::new();
    let mut since = 0;
    loop {
        let (size, reply) = page(since).await;
        assert!(
            size <= page_bytes + 4096,
            "an answer of {size} bytes passes the page of {page_bytes}"
        );
        let got = offsets(&reply["messages"]);
        assert!(!got.is_empty(), "a page with more holds a message: {reply}");
        since = *got.last().unwrap();
        seen.extend(got);
        if reply["more"] == false {
            break;
        }
        assert_eq!(reply["more"], true, "{reply}");
    }
    assert_eq!(
        seen,
        (1..=MESSAGES).collect::<Vec<_>>(),
        "every message once"
    );
}

#[tokio::test]
async fn history_answers_are_pages_of_at_most_history_page_bytes_on_every_transport() {
    let server = start(api_config()).await;
    fill(&server, BIG).await;
    let page_bytes = server.state.config.history_page_bytes;
    assert_eq!(page_bytes, 256 * 1024, "the documented default");
    read_all_pages(page_bytes, async |since| {
        let command = json!({"type": "history", "channel": BIG, "since": since});
        let reply = rpc(server.addr, None, &command).await;
        assert_eq!(reply.status, 200);
        (reply.body.len(), reply.json())
    })
    .await;
    read_all_pages(page_bytes, async |since| {
        let reply = api_get(
            &server,
            &format!("/api/channels/{BIG}/history?since={since}"),
        )
        .await;
        assert_eq!(reply.status, 200);
        (reply.body.len(), reply.json())
    })
    .await;
    let mut ws = anonymous(&server).await;
    read_all_pages(page_bytes, async |since| {
        let reply = ws
            .request(json!({"type": "history", "channel": BIG, "since": since}))
            .await;
        (reply.to_string().len(), reply)
    })
    .await;
}

#[tokio::test]
async fn a_poll_answer_stops_at_the_page_and_its_cursor_goes_on_from_there() {
    let server = start(api_config()).await;
    let epoch = fill(&server, BIG).await;
    let page_bytes = server.state.config.history_page_bytes;
    let mut query = format!("channel={BIG}&since={epoch}:0&timeout=0");
    let mut seen = Vec::new();
    while seen.len() < MESSAGES as usize {
        let response = http(server.addr, "GET", &format!("/poll?{query}"), &[], "").await;
        assert_eq!(response.status, 200, "{}", response.body);
        assert!(
            response.body.len() <= page_bytes + 4096,
            "{}",
            response.body.len()
        );
        let reply = response.json();
        let got = offsets(&reply["messages"]);
        assert!(!got.is_empty(), "no progress: {reply}");
        assert_eq!(reply["channels"][0]["offset"], *got.last().unwrap());
        seen.extend(got);
        query = format!("cursor={}&timeout=0", reply["cursor"].as_str().unwrap());
    }
    assert_eq!(seen, (1..=MESSAGES).collect::<Vec<_>>(), "nothing lost");
    let (_, last) = poll(server.addr, &query).await;
    assert_eq!(last["messages"], json!([]));
}

/// Sends `request` on a fresh connection that reads slowly, reads only the head of the
/// answer, and keeps the connection (so the rest of the answer stays unread). The receive
/// buffer is tiny, and so are the segments (536 bytes, as on the Internet): on loopback they
/// would be 64 KiB, and the kernel would size the server's send buffer to swallow a whole
/// answer.
async fn unread(addr: std::net::SocketAddr, request: String) -> (u16, TcpStream) {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.set_tcp_mss(536).unwrap();
    socket.set_nonblocking(true).unwrap();
    let socket = TcpSocket::from_std_stream(socket.into());
    let mut tcp = socket.connect(addr).await.unwrap();
    tcp.write_all(request.as_bytes()).await.unwrap();
    let head = crate::support::read_head(&mut tcp).await;
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, tcp)
}

#[tokio::test]
async fn unread_answers_stay_within_the_answer_budget_and_the_rest_get_503() {
    const BUDGET: usize = 1 << 20;
    let server = start(Config {
        answer_budget_bytes: BUDGET,
        ..api_config()
    })
    .await;
    let epoch = fill(&server, BIG).await;
    let addr = server.addr;
    let history = json!({"type": "history", "channel": BIG}).to_string();
    let requests = [
        format!(
            "POST /rpc HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n\
             {history}",
            history.len()
        ),
        format!(
            "GET /poll?channel={BIG}&since={epoch}:0 HTTP/1.1\r\nHost: x\r\n\
             Connection: close\r\n\r\n"
        ),
        format!(
            "GET /api/channels/{BIG}/history HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
             Authorization: Bearer {API_KEY}\r\n\r\n"
        ),
    ];
    // 30 attackers at once, each ~250 KB of answer it never reads: 7.5 MB against 1 MiB.
    let attacks: Vec<_> = (0..30)
        .map(|i| tokio::spawn(unread(addr, requests[i % 3].clone())))
        .collect();
    let mut held = Vec::new();
    for attack in attacks {
        held.push(attack.await.unwrap());
        assert!(server.state.answers.held() <= BUDGET);
    }
    let statuses: Vec<u16> = held.iter().map(|(status, _)| *status).collect();
    let ok = statuses.iter().filter(|s| **s == 200).count();
    let busy = statuses.iter().filter(|s| **s == 503).count();
    assert!(ok >= 3, "as many answers as fit are served: {statuses:?}");
    assert!(busy >= 20, "the rest are refused: {statuses:?}");
    assert_eq!(ok + busy, statuses.len(), "{statuses:?}");
    let in_budget = server.state.answers.held();
    assert!(
        in_budget > BUDGET / 2 && in_budget <= BUDGET,
        "the unread answers are what the budget holds: {in_budget}"
    );
    // A refusal says why, in the protocol's terms.
    let (_, mut tcp) = held.into_iter().find(|(s, _)| *s == 503).unwrap();
    let mut body = String::new();
    tcp.read_to_string(&mut body).await.unwrap();
    assert!(body.contains("\"unavailable\""), "{body}");
    assert!(
        body.contains("server busy: too many unread answers"),
        "{body}"
    );
    drop(tcp);
    // Once the attackers go, so do their answers.
    drop(statuses);
    eventually("the answer budget to return to 0", async || {
        server.state.answers.held() == 0
    })
    .await;
    let reply = rpc(addr, None, &json!({"type": "history", "channel": BIG})).await;
    assert_eq!(reply.status, 200, "served again");
}

#[tokio::test]
async fn a_budget_permit_is_given_back_when_the_client_reads_the_answer() {
    let server = start(api_config()).await;
    fill(&server, BIG).await;
    let command = json!({"type": "history", "channel": BIG});
    let request = |_| rpc(server.addr, None, &command);
    for reply in futures_util::future::join_all((0..8).map(request)).await {
        assert_eq!(reply.status, 200);
    }
    eventually("read answers to leave the budget", async || {
        server.state.answers.held() == 0
    })
    .await;
}

/// A server on a memory broker the test holds too.
async fn start_with_memory(config: Config) -> (TestServer, Arc<MemoryBroker>) {
    let metrics = Arc::new(Metrics::default());
    let options = MemoryOptions {
        history_size: config.history_size,
        history_ttl: config.history_ttl(),
        history_max_bytes: config.history_max_bytes,
        max_channels: config.max_channels,
        ..MemoryOptions::default()
    };
    let broker = Arc::new(MemoryBroker::new(options, Arc::clone(&metrics)));
    let state = AppState::with_broker(config, Arc::clone(&broker) as Arc<dyn Broker>, metrics);
    (start_with_state(state).await, broker)
}

#[tokio::test]
async fn publishing_big_messages_to_new_channels_stays_within_history_max_bytes() {
    const BOUND: usize = 4 << 20;
    let (server, broker) = start_with_memory(Config {
        history_max_bytes: BOUND,
        // Only the global bound limits history here.
        history_size: 1000,
        publish_rate: 0,
        ..Config::default()
    })
    .await;
    let mut watcher = anonymous(&server).await;
    watcher.subscribe("watched").await;
    let mut attacker = anonymous(&server).await;
    let data = "x".repeat(MESSAGE_BYTES);
    let first = attacker.publish("watched", json!(data)).await;
    watcher.expect("message").await;
    // The attack: a big message to a new channel, again and again (18 MB in all).
    for n in 0..300 {
        attacker.publish(&format!("spam:{n}"), json!(data)).await;
        assert!(
            broker.history_bytes() <= BOUND,
            "{}",
            broker.history_bytes()
        );
    }
    let page = |channel: &'static str| broker.history(channel, HistoryQuery::after(0));
    assert_eq!(
        page("watched").await.unwrap().messages.len(),
        1,
        "idle channels' messages go first: a subscribed channel keeps its history"
    );
    assert!(
        page("spam:0").await.unwrap().messages.is_empty(),
        "the oldest idle went"
    );
    assert_eq!(
        page("spam:299").await.unwrap().messages.len(),
        1,
        "the newest stays"
    );
    // Past what idle channels hold, the oldest of all goes, the watched channel's too.
    for _ in 0..40 {
        attacker.publish("watched", json!(data)).await;
        watcher.expect("message").await;
        assert!(broker.history_bytes() <= BOUND);
    }
    assert!(page("spam:299").await.unwrap().messages.is_empty());
    let kept = page("watched").await.unwrap();
    assert!(kept.messages.len() < 41, "{}", kept.messages.len());
    // A recovery from before an evicted message is told so: no silent loss.
    let mut late = anonymous(&server).await;
    let since = json!({"epoch": first["epoch"], "offset": 0});
    let reply = late
        .request(json!({"type": "subscribe", "channel": "watched", "since": since}))
        .await;
    assert_eq!(reply["recovered"], false, "{reply}");
    let mut recent = anonymous(&server).await;
    let since = json!({"epoch": first["epoch"], "offset": 40});
    let reply = recent
        .request(json!({"type": "subscribe", "channel": "watched", "since": since}))
        .await;
    assert_eq!(reply["recovered"], true, "{reply}");
}

#[tokio::test]
async fn new_channels_past_max_channels_are_refused_on_every_transport() {
    let server = start(Config {
        max_channels: 3,
        ..api_config()
    })
    .await;
    let mut client = anonymous(&server).await;
    for n in 0..3 {
        client.publish(&format!("c{n}"), json!(n)).await;
    }
    client.publish("c0", json!("an existing one")).await;
    let code = client
        .error_code(json!({"type": "publish", "channel": "c3", "data": 1}))
        .await;
    assert_eq!(code, "too_many_channels");
    let code = client
        .error_code(json!({"type": "subscribe", "channel": "c4"}))
        .await;
    assert_eq!(code, "too_many_channels");
    let reply = rpc(
        server.addr,
        None,
        &json!({"type": "publish", "channel": "c5", "data": 1}),
    )
    .await;
    assert_eq!(reply.status, 503);
    assert_eq!(reply.json()["code"], "too_many_channels");
    let reply = api_post(&server, "/api/publish", r#"{"channel":"c6","data":1}"#).await;
    assert_eq!(reply.status, 503);
    assert_eq!(reply.json()["error"]["code"], "too_many_channels");
    assert!(
        reply.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains('3')
    );
}

#[tokio::test]
async fn subscribing_and_leaving_fresh_channels_does_not_pile_channels_up() {
    let (server, broker) = start_with_memory(Config {
        max_channels: 100,
        ..Config::default()
    })
    .await;
    let mut client = anonymous(&server).await;
    for n in 0..2_000 {
        let channel = format!("fresh:{n}");
        client.subscribe(&channel).await;
        let reply = client
            .request(json!({"type": "unsubscribe", "channel": channel}))
            .await;
        assert_eq!(reply["type"], "unsubscribed");
    }
    assert_eq!(broker.channels().await.unwrap().len(), 0);
    assert_eq!(
        broker.tombstones(),
        2_000,
        "each position is remembered, small"
    );
}

/// `data` nested `depth` arrays deep.
fn nested(depth: usize) -> String {
    format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
}

#[tokio::test]
async fn data_nested_deeper_than_max_json_depth_is_refused_on_every_transport() {
    let server = start(api_config()).await;
    let max = server.state.config.max_json_depth;
    assert_eq!(max, 64, "the documented default");
    let command = |depth| {
        format!(
            r#"{{"type":"publish","channel":"c","data":{},"id":1}}"#,
            nested(depth)
        )
    };
    let mut ws = anonymous(&server).await;
    ws.ws.send(command(max + 1)).await.unwrap();
    let reply = ws.expect("error").await;
    assert_eq!(reply["code"], "too_deep", "{reply}");
    assert!(reply["message"].as_str().unwrap().contains("64"), "{reply}");
    ws.ws.send(command(max)).await.unwrap();
    ws.expect("published").await;
    // The 258-byte publish of the report: 129 levels.
    let rpc_reply = http(server.addr, "POST", "/rpc", &[], &command(129)).await;
    assert_eq!(rpc_reply.status, 400);
    assert_eq!(rpc_reply.json()["code"], "too_deep");
    let body = format!(r#"{{"channel":"c","data":{}}}"#, nested(129));
    let api_reply = api_post(&server, "/api/publish", &body).await;
    assert_eq!(api_reply.status, 400);
    assert_eq!(api_reply.json()["error"]["code"], "too_deep");
    // Brackets inside strings are text, not depth.
    let text = json!({"type": "publish", "channel": "c", "data": nested(500)});
    ws.publish("c", text["data"].clone()).await;
}

#[tokio::test]
async fn history_of_stored_deep_data_is_answered_not_a_panic() {
    // Data stored before the limit existed (or by a node with a higher one).
    let server = start(Config {
        max_json_depth: 1000,
        ..api_config()
    })
    .await;
    let deep = nested(200);
    let body = format!(r#"{{"channel":"deep","data":{deep}}}"#);
    assert_eq!(api_post(&server, "/api/publish", &body).await.status, 200);
    let answer = api_get(&server, "/api/channels/deep/history").await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(answer.body.contains(&deep), "{}", answer.body);
    let command = json!({"type": "history", "channel": "deep"});
    let answer = rpc(server.addr, None, &command).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(answer.body.contains(&deep));
}

#[tokio::test]
async fn api_refuses_channel_names_the_protocol_refuses() {
    let server = start(api_config()).await;
    let long = "a".repeat(300);
    for name in [long.as_str(), "%00", "a%20b"] {
        for what in ["history", "presence"] {
            let answer = api_get(&server, &format!("/api/channels/{name}/{what}")).await;
            assert_eq!(answer.status, 400, "{name} {what}: {}", answer.body);
            assert_eq!(answer.json()["error"]["code"], "invalid_channel");
        }
    }
}

#[tokio::test]
async fn anonymous_publishers_are_rate_limited_by_default() {
    let server = start(Config::default()).await;
    assert_eq!(server.state.config.publish_rate, 50);
    let mut client = anonymous(&server).await;
    for n in 0..80 {
        client
            .send(json!({"type": "publish", "channel": "c", "data": n}))
            .await;
    }
    let mut limited = 0;
    for _ in 0..80 {
        if client.recv().await["code"] == "rate_limited" {
            limited += 1;
        }
    }
    assert!(limited >= 20, "{limited}");
    let command = json!({"type": "publish", "channel": "c", "data": 1});
    let replies = futures_util::future::join_all((0..80).map(|_| rpc(server.addr, None, &command)));
    let refused = replies.await.iter().filter(|r| r.status == 429).count();
    assert!(refused >= 20, "/rpc: per client address: {refused}");
}
