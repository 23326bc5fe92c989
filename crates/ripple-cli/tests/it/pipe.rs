//! `ripple connect` in pipe mode: lines in, lines out, and an exit status that tells how the
//! connection ended.

use std::time::Duration;

use ripple::proto::handshake::server::select_protocol;
use ripple::{Accept, Acceptor, CloseCode, Message, Reject, WebSocket};

use crate::support::{closed_port, echo, echo_server, ripple, serve};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_are_echoed_in_order() {
    let url = echo_server().await;
    let input = "hello\nworld\n\nünïcödé\nlast line without a newline";
    let run = ripple(&["connect", &url], input.as_bytes()).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.lines(),
        [
            "hello",
            "world",
            "",
            "ünïcödé",
            "last line without a newline"
        ]
    );
    assert_eq!(run.stderr, "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_lines_all_come_back() {
    let url = echo_server().await;
    let input: String = (0..2000).map(|i| format!("line {i}\n")).collect();
    let run = ripple(&["connect", &url], input.as_bytes()).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout, input);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_lines_come_back_as_hex() {
    let url = echo_server().await;
    let run = ripple(&["connect", "--binary", &url], b"hi\n\x00\xff\n").await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.lines(), ["6869", "00ff"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_messages_are_one_line_each_and_a_1000_close_is_clean() {
    let url = serve(Acceptor::new(), |mut ws: WebSocket| async move {
        let _ = ws.send("two\nlines").await;
        let _ = ws.send(Message::from(vec![0u8, 0xab])).await;
        let _ = ws.close(CloseCode::NORMAL, "done").await;
    })
    .await;
    let run = ripple(&["connect", &url], b"").await;
    assert_eq!(run.lines(), ["two\\nlines", "00ab"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("closed by the server: 1000"),
        "{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_close_with_a_code_is_status_3() {
    let url = serve(Acceptor::new(), |mut ws: WebSocket| async move {
        // Answer the first message, then leave with 4000.
        if let Ok(Some(message)) = ws.recv().await {
            let _ = ws.send(message).await;
        }
        let _ = ws.close(CloseCode(4000), "bye").await;
    })
    .await;
    // Input stays open (a long pause) so that the server is the one closing.
    let run = ripple_with_open_input(&url).await;
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert_eq!(run.lines(), ["first"]);
    assert!(
        run.stderr.contains("closed by the server: 4000 \"bye\""),
        "{}",
        run.stderr
    );
}

/// Sends "first" and keeps stdin open until the binary exits by itself.
async fn ripple_with_open_input(url: &str) -> crate::support::Run {
    use std::process::Stdio;
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_ripple"))
        .args(["connect", url])
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(b"first\n").await.unwrap();
    let output = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("ripple did not exit after the server closed")
        .unwrap();
    drop(input);
    crate::support::Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_handshake_prints_status_and_body() {
    let acceptor = Acceptor::new().on_handshake(|_| Err(Reject::new(403, "members only\n")));
    let url = serve(acceptor, echo).await;
    let run = ripple(&["connect", &url], b"x\n").await;
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("HTTP 403 Forbidden"), "{}", run.stderr);
    assert!(run.stderr.contains("members only"), "{}", run.stderr);
    assert_eq!(run.stdout, "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_connection_is_status_1() {
    let port = closed_port().await;
    let run = ripple(&["connect", &format!("ws://127.0.0.1:{port}/")], b"x\n").await;
    assert_eq!(run.code, 1);
    assert!(
        run.stderr
            .contains(&format!("connection refused by 127.0.0.1:{port}")),
        "{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_errors_are_status_2() {
    let run = ripple(&["connect", "http://example.com/"], b"").await;
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("is not ws or wss"), "{}", run.stderr);
    let run = ripple(
        &["connect", "ws://127.0.0.1:1/", "--header", "novalue"],
        b"",
    )
    .await;
    assert_eq!(run.code, 2);
    let run = ripple(
        &["connect", "ws://127.0.0.1:1/", "--cacert", "/nonexistent"],
        b"",
    )
    .await;
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("--cacert"), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_header_origin_and_subprotocol_reach_the_server() {
    let acceptor = Acceptor::new().on_handshake(|request| {
        let header = |name: &str| {
            request
                .headers
                .get(name)
                .map(|v| String::from_utf8_lossy(v).into_owned())
        };
        if header("authorization").as_deref() != Some("Bearer s3cret") {
            return Err(Reject::new(401, "bad token\n"));
        }
        let seen = format!(
            "x-test={} origin={}",
            header("x-test").unwrap_or_default(),
            header("origin").unwrap_or_default()
        );
        Ok(Accept {
            protocol: select_protocol(&request.protocols(), &["chat.v1"]),
            headers: vec![("X-Seen".into(), seen)],
            ..Accept::default()
        })
    });
    let url = serve(acceptor, |mut ws: WebSocket| async move {
        let protocol = ws.protocol().unwrap_or("none").to_owned();
        let _ = ws.send(format!("protocol={protocol}")).await;
        echo(ws).await;
    })
    .await;
    let args = [
        "connect",
        &url,
        "--token",
        "s3cret",
        "--header",
        "X-Test: 42",
        "--origin",
        "https://example.com",
        "--subprotocol",
        "chat.v2",
        "--subprotocol",
        "chat.v1",
    ];
    let run = ripple(&args, b"ok\n").await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.lines(), ["protocol=chat.v1", "ok"]);
    let run = ripple(&["connect", &url], b"ok\n").await;
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("HTTP 401"), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_needs_the_ca_or_insecure() {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let ca_pem = cert.cert.pem();
    let config =
        ripple::tls::server_config(ca_pem.as_bytes(), cert.key_pair.serialize_pem().as_bytes())
            .unwrap();
    let server = ripple::Server::bind("127.0.0.1:0")
        .await
        .unwrap()
        .tls(config);
    let port = server.local_addr().unwrap().port();
    tokio::spawn(server.run(echo, std::future::pending()));
    let url = format!("wss://localhost:{port}/");
    let dir = std::env::temp_dir().join(format!("ripple-cli-it-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, &ca_pem).unwrap();

    let run = ripple(&["connect", &url], b"x\n").await;
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("TLS failure"), "{}", run.stderr);
    let run = ripple(
        &["connect", &url, "--cacert", ca_file.to_str().unwrap()],
        b"tls\n",
    )
    .await;
    assert_eq!((run.code, run.lines()), (0, vec!["tls"]), "{}", run.stderr);
    let run = ripple(&["connect", &url, "--insecure"], b"any\n").await;
    assert_eq!((run.code, run.lines()), (0, vec!["any"]), "{}", run.stderr);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compression_is_negotiated_unless_refused() {
    let url = serve(Acceptor::new(), |mut ws: WebSocket| async move {
        let compressed = ws.is_compressed();
        let _ = ws.send(format!("compressed={compressed}")).await;
    })
    .await;
    let run = ripple(&["connect", &url], b"").await;
    assert_eq!(run.lines(), ["compressed=true"], "{}", run.stderr);
    let run = ripple(&["connect", &url, "--no-compress"], b"").await;
    assert_eq!(run.lines(), ["compressed=false"], "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_tries_again_and_reports_each_attempt() {
    let port = closed_port().await;
    let url = format!("ws://127.0.0.1:{port}/");
    // Nothing listens: with --reconnect the client retries; end it after a few attempts.
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_ripple"))
        .args(["connect", &url, "--reconnect"])
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1800)).await;
    child.start_kill().unwrap();
    let output = child.wait_with_output().await.unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("reconnecting in"), "{stderr}");
    assert!(stderr.contains("(attempt 2)"), "{stderr}");
    assert!(
        stderr.matches("connection refused").count() >= 2,
        "{stderr}"
    );
}
