//! Starting `ripple_server::run_with_state` in process on 127.0.0.1:0, a JSON client for `/ws`,
//! a tiny HTTP/1.1 client, and raw-socket helpers.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ripple::{ClientBuilder, CloseCode, Message, WebSocket};
use ripple_server::auth::{Claims, mint};
use ripple_server::{AppState, Config};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The bound on every wait for something the server should do "now".
pub(crate) const WAIT: Duration = Duration::from_secs(10);

/// The secret of the JWT-mode servers.
pub(crate) const SECRET: &str = "test-secret";

/// The key of servers with the HTTP API on.
pub(crate) const API_KEY: &str = "test-api-key";

/// A server running in process; `state` is the one `run_with_state` serves.
pub(crate) struct TestServer {
    pub(crate) addr: SocketAddr,
    pub(crate) state: Arc<AppState>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

/// Starts a server with `config` on 127.0.0.1:0.
pub(crate) async fn start(config: Config) -> TestServer {
    start_with_state(AppState::new(config)).await
}

/// Starts a server on `state` (a broker the test holds too) on 127.0.0.1:0.
pub(crate) async fn start_with_state(state: Arc<AppState>) -> TestServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let shutdown = async move {
        let _ = stopped.await;
    };
    let task = tokio::spawn(ripple_server::run_with_state(
        listener,
        Arc::clone(&state),
        shutdown,
    ));
    TestServer {
        addr,
        state,
        stop: Some(stop),
        task,
    }
}

/// A server with the default configuration (anonymous mode, no API key).
pub(crate) async fn start_default() -> TestServer {
    start(Config::default()).await
}

/// The default configuration in JWT mode.
pub(crate) fn jwt_config() -> Config {
    Config {
        jwt_secret: Some(SECRET.into()),
        ..Config::default()
    }
}

/// The default configuration with the HTTP API on.
pub(crate) fn api_config() -> Config {
    Config {
        api_key: Some(API_KEY.into()),
        ..Config::default()
    }
}

impl TestServer {
    /// `ws://addr{path}`.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    /// Triggers the graceful shutdown, without waiting.
    pub(crate) fn trigger_shutdown(&mut self) {
        drop(self.stop.take());
    }

    /// Waits (bounded by `limit`) for `run` to return; panics if it does not, or fails.
    pub(crate) async fn stopped(self, limit: Duration) {
        let returned = tokio::time::timeout(limit, self.task).await;
        returned
            .expect("run returned within the bound")
            .unwrap()
            .unwrap();
    }

    /// A counter of `/metrics`, read over HTTP.
    pub(crate) async fn metric(&self, line_prefix: &str) -> u64 {
        let metrics = http_get(self.addr, "/metrics", &[]).await;
        assert_eq!(metrics.status, 200);
        metric_value(&metrics.body, line_prefix)
    }
}

/// The value of the sample line that starts with `name` (`name` may include labels).
pub(crate) fn metric_value(text: &str, name: &str) -> u64 {
    let line = text
        .lines()
        .find(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' '))
        })
        .unwrap_or_else(|| panic!("no sample {name} in /metrics:\n{text}"));
    line[name.len()..].trim().parse().unwrap()
}

/// Polls `check` every 20 ms until it is true; panics after [`WAIT`].
pub(crate) async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A token signed with [`SECRET`].
pub(crate) fn token(sub: &str, channels: &[&str], exp: u64) -> String {
    let claims = Claims {
        sub: sub.into(),
        exp,
        channels: channels.iter().map(|c| (*c).to_owned()).collect(),
    };
    mint(&claims, SECRET).unwrap()
}

/// A token valid for an hour.
pub(crate) fn valid_token(sub: &str, channels: &[&str]) -> String {
    token(sub, channels, unix_now() + 3600)
}

// --- the /ws JSON client -----------------------------------------------------------------------

/// A `/ws` client speaking JSON, with bounded waits.
pub(crate) struct Client<S = ripple::MaybeTlsStream> {
    pub(crate) ws: WebSocket<S>,
    /// The `client` id of the `authenticated` message, once seen.
    pub(crate) id: String,
    /// Pushes that arrived while [`Client::request`] waited for its reply, in order.
    pending: VecDeque<Value>,
}

/// Opens `/ws` in anonymous mode and reads the `authenticated` greeting.
pub(crate) async fn anonymous(server: &TestServer) -> Client {
    let mut client = Client::open(&server.url("/ws")).await;
    let hello = client.expect("authenticated").await;
    assert!(
        hello.get("user").is_none(),
        "anonymous clients have no user: {hello}"
    );
    client.id = hello["client"].as_str().unwrap().to_owned();
    client
}

impl Client {
    /// Opens a WebSocket to `url` and reads nothing.
    pub(crate) async fn open(url: &str) -> Self {
        Self::from_ws(ripple::connect(url).await.unwrap())
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
    pub(crate) fn from_ws(ws: WebSocket<S>) -> Self {
        Self {
            ws,
            id: String::new(),
            pending: VecDeque::new(),
        }
    }

    /// Sends a JSON command.
    pub(crate) async fn send(&mut self, command: Value) {
        self.ws.send(command.to_string()).await.unwrap();
    }

    /// The next message, which must be JSON text, within [`WAIT`].
    pub(crate) async fn recv(&mut self) -> Value {
        if let Some(push) = self.pending.pop_front() {
            return push;
        }
        self.recv_from_socket().await
    }

    async fn recv_from_socket(&mut self) -> Value {
        let received = tokio::time::timeout(WAIT, self.ws.recv())
            .await
            .expect("a message within the bound");
        match received {
            Ok(Some(Message::Text(text))) => serde_json::from_str(text.as_str()).unwrap(),
            other => panic!(
                "expected a JSON text message, got {other:?} (close: {:?})",
                self.ws.close_frame()
            ),
        }
    }

    /// The next message; it must have `"type": kind`.
    pub(crate) async fn expect(&mut self, kind: &str) -> Value {
        let message = self.recv().await;
        assert_eq!(
            message["type"], kind,
            "expected a {kind:?} message, got {message}"
        );
        message
    }

    /// The next message that is not a `join` or `leave` push.
    pub(crate) async fn recv_skipping_presence(&mut self) -> Value {
        loop {
            let message = self.recv().await;
            if message["type"] != "join" && message["type"] != "leave" {
                return message;
            }
        }
    }

    /// Sends `command` with a fresh `id` and returns the reply carrying that id. Pushes
    /// (`message`, `join`, `leave`) that arrive first are kept for [`Client::recv`]; anything
    /// else before the reply fails the test.
    pub(crate) async fn request(&mut self, mut command: Value) -> Value {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        command["id"] = json!(id);
        self.send(command).await;
        loop {
            let message = self.recv_from_socket().await;
            if message["id"] == id {
                return message;
            }
            let push = ["message", "join", "leave"]
                .iter()
                .any(|kind| message["type"] == *kind);
            assert!(
                push,
                "expected the reply to id {id} or a push, got {message}"
            );
            self.pending.push_back(message);
        }
    }

    /// Subscribes and returns the `subscribed` reply.
    pub(crate) async fn subscribe(&mut self, channel: &str) -> Value {
        let reply = self
            .request(json!({"type": "subscribe", "channel": channel}))
            .await;
        assert_eq!(reply["type"], "subscribed", "{reply}");
        reply
    }

    /// Publishes and returns the `published` reply.
    pub(crate) async fn publish(&mut self, channel: &str, data: Value) -> Value {
        let reply = self
            .request(json!({"type": "publish", "channel": channel, "data": data}))
            .await;
        assert_eq!(reply["type"], "published", "{reply}");
        reply
    }

    /// Sends `command` and returns the `error` reply's code (checking the id is echoed).
    pub(crate) async fn error_code(&mut self, command: Value) -> String {
        let reply = self.request(command).await;
        assert_eq!(reply["type"], "error", "expected an error, got {reply}");
        assert!(
            reply["message"].as_str().is_some_and(|m| !m.is_empty()),
            "errors have a message: {reply}"
        );
        reply["code"].as_str().unwrap().to_owned()
    }

    /// Reads (and discards) messages until the server closes; returns the close code.
    pub(crate) async fn closed(&mut self) -> CloseCode {
        closed(&mut self.ws).await
    }
}

/// Reads (and discards) messages until the peer closes; returns the close code.
pub(crate) async fn closed<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocket<S>) -> CloseCode {
    let ended = tokio::time::timeout(WAIT, async {
        loop {
            match ws.recv().await {
                Ok(Some(_)) => {}
                Ok(None) => return,
                Err(err) => panic!("the connection ended without a clean close: {err}"),
            }
        }
    })
    .await;
    ended.expect("the server closes within the bound");
    ws.close_frame().expect("a close frame").code
}

/// A WebSocket whose TCP receive buffer is tiny, so that a client that stops reading makes the
/// server's queue fill after little data. Compression is off so frames are as large as sent.
pub(crate) async fn small_window_ws(url: &str, addr: SocketAddr) -> WebSocket<TcpStream> {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let tcp = socket.connect(addr).await.unwrap();
    ClientBuilder::new(url)
        .config(ripple::Config::default().compression(None))
        .connect_on(tcp)
        .await
        .unwrap()
}

/// A `/ws` client on a [`small_window_ws`], greeted.
pub(crate) async fn small_window_client(server: &TestServer) -> Client<TcpStream> {
    let mut client = Client::from_ws(small_window_ws(&server.url("/ws"), server.addr).await);
    let hello = client.expect("authenticated").await;
    client.id = hello["client"].as_str().unwrap().to_owned();
    client
}

// --- HTTP/1.1 ----------------------------------------------------------------------------------

/// A parsed HTTP response.
#[derive(Debug)]
pub(crate) struct HttpResponse {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: String,
}

impl HttpResponse {
    /// A header's value (name case-insensitive).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|err| panic!("body is not JSON ({err}): {}", self.body))
    }
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`), read to the end.
pub(crate) async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> HttpResponse {
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        request.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    request.push_str(body);
    let raw = tokio::time::timeout(WAIT, async {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(request.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        tcp.read_to_end(&mut raw).await.unwrap();
        raw
    })
    .await
    .expect("an HTTP response within the bound");
    parse_response(&raw)
}

/// `GET path`.
pub(crate) async fn http_get(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> HttpResponse {
    http(addr, "GET", path, headers, "").await
}

/// The `Authorization` header for the API key.
pub(crate) fn api_auth() -> (&'static str, String) {
    ("Authorization", format!("Bearer {API_KEY}"))
}

pub(crate) fn parse_response(raw: &[u8]) -> HttpResponse {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {text:?}"));
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .map(|line| {
            let (name, value) = line.split_once(':').unwrap();
            (name.trim().to_owned(), value.trim().to_owned())
        })
        .collect();
    let chunked = headers.iter().any(|(n, v)| {
        n.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    HttpResponse {
        status,
        headers,
        body,
    }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n").unwrap();
        let size = usize::from_str_radix(size.trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
}

// --- raw WebSocket bytes -----------------------------------------------------------------------

/// Reads an HTTP response head, a byte at a time (nothing past it is consumed).
pub(crate) async fn read_head(tcp: &mut TcpStream) -> String {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        tcp.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap()
}

/// Waits until the server holds `count` TCP connections.
pub(crate) async fn sockets_open(server: &TestServer, count: u64) {
    let sockets = &server.state.metrics.sockets;
    eventually(&format!("{count} sockets open"), async || {
        sockets.load(Ordering::Relaxed) == count
    })
    .await;
}

/// Opens a TCP connection and completes a WebSocket handshake on `path` by hand; returns the
/// stream right after the 101 (nothing of it has been read past the head).
pub(crate) async fn raw_upgrade(addr: SocketAddr, path: &str) -> TcpStream {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let head = read_head(&mut tcp).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{}", head);
    tcp
}

/// A masked client frame.
pub(crate) fn client_frame(first_byte: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![first_byte];
    let key = [7u8, 1, 9, 3];
    match payload.len() {
        n @ 0..=125 => out.push(0x80 | n as u8),
        n @ 126..=0xffff => {
            out.push(0x80 | 126);
            out.extend((n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend((n as u64).to_be_bytes());
        }
    }
    out.extend(key);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    out
}

/// Reads one unmasked, uncompressed server frame: (first byte, payload).
pub(crate) async fn read_frame(tcp: &mut TcpStream) -> (u8, Vec<u8>) {
    tokio::time::timeout(WAIT, async {
        let mut head = [0u8; 2];
        tcp.read_exact(&mut head).await.unwrap();
        let len = match head[1] & 0x7f {
            126 => {
                let mut ext = [0u8; 2];
                tcp.read_exact(&mut ext).await.unwrap();
                u16::from_be_bytes(ext) as usize
            }
            127 => {
                let mut ext = [0u8; 8];
                tcp.read_exact(&mut ext).await.unwrap();
                u64::from_be_bytes(ext) as usize
            }
            n => n as usize,
        };
        let mut payload = vec![0u8; len];
        tcp.read_exact(&mut payload).await.unwrap();
        (head[0], payload)
    })
    .await
    .expect("a frame within the bound")
}
