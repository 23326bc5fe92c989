//! Servers in process and a way to run the binary with a bounded wait.

use std::future::Future;
use std::process::{Output, Stdio};
use std::time::Duration;

use ripple::{Acceptor, Config, Server, WebSocket};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// The longest a run of the binary may take.
const RUN_LIMIT: Duration = Duration::from_secs(60);

/// Starts a server with `acceptor` and `handler`; returns its `ws://` URL.
pub(crate) async fn serve<H, F>(acceptor: Acceptor, handler: H) -> String
where
    H: Fn(WebSocket) -> F + Send + Sync + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    let server = Server::bind("127.0.0.1:0")
        .await
        .unwrap()
        .acceptor(acceptor);
    let port = server.local_addr().unwrap().port();
    tokio::spawn(server.run(handler, std::future::pending()));
    format!("ws://127.0.0.1:{port}/")
}

/// An echo server (no compression unless the client asks, messages up to 16 MiB).
pub(crate) async fn echo_server() -> String {
    let config = Config::default().max_message_size(16 << 20);
    serve(Acceptor::new().config(config), echo).await
}

pub(crate) async fn echo(mut ws: WebSocket) {
    while let Ok(Some(message)) = ws.recv().await {
        if ws.send(message).await.is_err() {
            break;
        }
    }
}

/// A port nothing listens on.
pub(crate) async fn closed_port() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

/// What a run of the binary printed and how it exited.
pub(crate) struct Run {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Run {
    pub(crate) fn lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }
}

/// Runs `ripple ARGS` with `stdin` as its input (then end of input).
pub(crate) async fn ripple(args: &[&str], stdin: &[u8]) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ripple"))
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    // A command that fails at once (a refused connection) may exit before reading its input.
    if let Err(err) = input.write_all(stdin).await {
        assert_eq!(err.kind(), std::io::ErrorKind::BrokenPipe, "{err}");
    }
    drop(input);
    let output: Output = tokio::time::timeout(RUN_LIMIT, child.wait_with_output())
        .await
        .expect("ripple did not finish in time")
        .unwrap();
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A broadcast room like the chat_server example: every text message goes to every client,
/// prefixed with `[00:00:00] `.
pub(crate) async fn broadcast_server() -> String {
    use std::sync::{Arc, Mutex};

    use ripple::Message;
    use tokio::sync::mpsc;

    type Room = Arc<Mutex<Vec<mpsc::Sender<Message>>>>;
    let room = Room::default();
    serve(Acceptor::new(), move |ws: WebSocket| {
        let room = Arc::clone(&room);
        async move {
            let (mut reader, mut writer) = ws.split();
            let (tx, mut rx) = mpsc::channel::<Message>(1024);
            room.lock().unwrap().push(tx);
            let forward = tokio::spawn(async move {
                while let Some(message) = rx.recv().await {
                    if writer.send(message).await.is_err() {
                        break;
                    }
                }
            });
            while let Ok(Some(Message::Text(text))) = reader.recv().await {
                let line = Message::from(format!("[00:00:00] {}", text.as_str()));
                let clients = room.lock().unwrap().clone();
                for client in clients {
                    let _ = client.send(line.clone()).await;
                }
            }
            forward.abort();
        }
    })
    .await
}
