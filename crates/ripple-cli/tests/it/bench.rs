//! `ripple bench --json` against in-process servers (an echo server, a raw broadcast room,
//! `ripple serve`'s channels over WebSocket, SSE and long-polling): the promised fields, and
//! zero errors.

use serde_json::Value;

use crate::support::{broadcast_server, closed_port, echo_server, ripple};

fn json(stdout: &str) -> Value {
    serde_json::from_str(stdout.trim()).unwrap_or_else(|err| panic!("{err}: {stdout}"))
}

fn assert_common_fields(report: &Value) {
    for key in ["messages_per_sec", "mb_per_sec", "errors"] {
        assert!(report[key].is_number(), "{key}: {report}");
    }
    for key in ["p50", "p90", "p99", "p999", "max"] {
        assert!(
            report["latency_us"][key].is_number(),
            "latency_us.{key}: {report}"
        );
    }
    assert_eq!(report["errors"], 0, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_mode_json() {
    let url = echo_server().await;
    let run = ripple(
        &[
            "bench", &url, "--json", "-d", "500ms", "-c", "4", "-p", "8", "-s", "100",
        ],
        b"",
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report = json(&run.stdout);
    assert_common_fields(&report);
    assert_eq!(report["mode"], "echo");
    assert!(report["messages"].as_u64().unwrap() > 0, "{report}");
    assert!(
        report["messages_per_sec"].as_f64().unwrap() > 0.0,
        "{report}"
    );
    assert!(report["mb_per_sec"].as_f64().unwrap() > 0.0, "{report}");
    let latency = &report["latency_us"];
    assert!(latency["p50"].as_f64().unwrap() > 0.0, "{report}");
    assert!(
        latency["p50"].as_f64() <= latency["max"].as_f64(),
        "{report}"
    );
    assert!(report["client_cpu_us_per_msg"].is_number(), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_mode_by_count_binary_and_threads() {
    let url = echo_server().await;
    let args = [
        "bench",
        &url,
        "--json",
        "-n",
        "3000",
        "-c",
        "3",
        "-s",
        "64k",
        "--binary",
        "--threads",
        "2",
        "--server-pid",
        &std::process::id().to_string(),
    ];
    let run = ripple(&args, b"").await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report = json(&run.stdout);
    assert_common_fields(&report);
    assert_eq!(report["messages"], 3000, "{report}");
    assert_eq!(report["size"], 65536);
    assert_cpu_ratio(&report);
}

/// `cpu_ratio` is the generator's CPU per message over the server's, there whenever the server
/// used at least one clock tick (the server is this test process).
fn assert_cpu_ratio(report: &Value) {
    let server = report["server_cpu_us_per_msg"]
        .as_f64()
        .unwrap_or_else(|| panic!("server_cpu_us_per_msg: {report}"));
    let client = report["client_cpu_us_per_msg"].as_f64().unwrap();
    if server == 0.0 {
        assert!(report.get("cpu_ratio").is_none(), "{report}");
        return;
    }
    let ratio = report["cpu_ratio"]
        .as_f64()
        .unwrap_or_else(|| panic!("cpu_ratio: {report}"));
    let expected = client / server;
    assert!(
        (ratio - expected).abs() <= 0.002 + expected * 0.001,
        "cpu_ratio {ratio}, client/server {expected}: {report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_mode_json() {
    let url = echo_server().await;
    let pid = std::process::id().to_string();
    let args = [
        "bench",
        &url,
        "--json",
        "-m",
        "connect",
        "-c",
        "200",
        "-p",
        "32",
        "--server-pid",
        &pid,
        "--settle",
        "100ms",
    ];
    let run = ripple(&args, b"").await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report = json(&run.stdout);
    assert_common_fields(&report);
    assert_eq!(report["mode"], "connect");
    assert_eq!(report["connections"], 200, "{report}");
    assert!(
        report["handshakes_per_sec"].as_f64().unwrap() > 0.0,
        "{report}"
    );
    assert!(
        report["latency_us"]["p50"].as_f64().unwrap() > 0.0,
        "{report}"
    );
    assert!(report["server_rss_kib_per_conn"].is_number(), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_mode_json() {
    let url = broadcast_server().await;
    let args = [
        "bench",
        &url,
        "--json",
        "-m",
        "broadcast",
        "--subscribers",
        "5",
        "--publishers",
        "2",
        "-p",
        "4",
        "-s",
        "64",
        "-d",
        "500ms",
    ];
    let run = ripple(&args, b"").await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report = json(&run.stdout);
    assert_common_fields(&report);
    assert_eq!(report["mode"], "broadcast");
    let published = report["published"].as_u64().unwrap();
    let deliveries = report["messages"].as_u64().unwrap();
    assert!(published > 0, "{report}");
    // Every published message reached each of the 5 subscribers.
    assert_eq!(deliveries, published * 5, "{report}");
}

/// `ripple serve` with its defaults, but no publish rate limit (the publishers go as fast as
/// they can), in process; returns the URL of its `/ws`.
async fn channel_server() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let config = ripple_server::Config {
        publish_rate: 0,
        ..ripple_server::Config::default()
    };
    tokio::spawn(ripple_server::run(listener, config, std::future::pending()));
    format!("ws://127.0.0.1:{port}/ws")
}

/// A broadcast run on channel `bench` over `transport`; returns its JSON after checking that
/// every published message reached each subscriber once, without error.
async fn channel_run(transport: &str, subscribers: usize, extra: &[&str]) -> Value {
    let url = channel_server().await;
    let subscribers_arg = subscribers.to_string();
    let mut args = vec![
        "bench",
        &url,
        "--json",
        "-m",
        "broadcast",
        "--channel",
        "bench",
        "--transport",
        transport,
        "--subscribers",
        &subscribers_arg,
        "--publishers",
        "2",
        "-p",
        "8",
        "-s",
        "64",
        "-d",
        "500ms",
    ];
    args.extend_from_slice(extra);
    let run = ripple(&args, b"").await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let report = json(&run.stdout);
    assert_common_fields(&report);
    assert_eq!(report["mode"], "broadcast");
    assert_eq!(report["transport"], transport, "{report}");
    let published = report["published"].as_u64().unwrap();
    assert!(published > 0, "{report}");
    assert_eq!(
        report["messages"].as_u64().unwrap(),
        published * subscribers as u64,
        "{report}"
    );
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_on_a_channel_over_websocket() {
    channel_run("ws", 5, &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_on_a_channel_over_sse() {
    channel_run("sse", 5, &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_on_a_channel_over_long_polling() {
    channel_run("poll", 5, &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_at_a_fixed_rate() {
    // 400 messages/s for 500 ms: about 200 published, whatever the machine's speed.
    let report = channel_run("sse", 3, &["--rate", "400"]).await;
    assert_eq!(report["publish_rate"], 400.0, "{report}");
    let published = report["published"].as_u64().unwrap();
    assert!((150..=210).contains(&published), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fallback_transports_need_a_channel() {
    let run = ripple(
        &[
            "bench",
            "ws://127.0.0.1:9/ws",
            "-m",
            "broadcast",
            "--transport",
            "sse",
        ],
        b"",
    )
    .await;
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("--channel"), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_mode_needs_a_broadcast_endpoint() {
    // An echo server sends a subscriber nothing: the run stops with an error.
    let url = echo_server().await;
    let args = [
        "bench",
        &url,
        "-m",
        "broadcast",
        "--subscribers",
        "2",
        "-d",
        "200ms",
    ];
    let run = ripple(&args, b"").await;
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("is this a broadcast endpoint?"),
        "{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals() {
    let run = ripple(&["bench", "ws://192.0.2.1:9/", "-d", "1"], b"").await;
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("--allow-remote"), "{}", run.stderr);
    let port = closed_port().await;
    let run = ripple(
        &["bench", &format!("ws://127.0.0.1:{port}/"), "-d", "1"],
        b"",
    )
    .await;
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("connection refused"), "{}", run.stderr);
    let run = ripple(&["bench", "ws://127.0.0.1:9/", "-d", "soon"], b"").await;
    assert_eq!(run.code, 2);
}
