//! A Server-Sent Events client over a raw socket, as a browser's `EventSource` reads a stream:
//! the HTTP/1.1 head, then the chunked body parsed into events incrementally. And the helpers
//! the fallback-transport tests share (`/rpc`, `/poll`).

use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};

use crate::support::{HttpResponse, WAIT, http};

/// One SSE event (or a comment, with `event` = `":"`).
#[derive(Clone, Debug)]
pub(crate) struct Event {
    pub(crate) event: String,
    pub(crate) id: Option<String>,
    pub(crate) data: String,
}

impl Event {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.data)
            .unwrap_or_else(|err| panic!("data is not JSON ({err}): {self:?}"))
    }
}

/// An open `200 text/event-stream` response.
pub(crate) struct SseStream {
    reader: BufReader<TcpStream>,
    /// Dechunked body bytes not yet split into lines.
    pending: String,
    pub(crate) headers: Vec<(String, String)>,
    /// The `retry:` value, once seen.
    pub(crate) retry: Option<u64>,
}

/// `GET path` with `headers`; the stream when it answers 200, else the whole response.
pub(crate) async fn open(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<SseStream, HttpResponse> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    open_on(tcp, addr, path, headers).await
}

/// [`open`] on a socket whose receive buffer is tiny (a reader that never reads fills it fast).
pub(crate) async fn open_small_window(addr: SocketAddr, path: &str) -> SseStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let tcp = socket.connect(addr).await.unwrap();
    open_on(tcp, addr, path, &[]).await.unwrap()
}

async fn open_on(
    mut tcp: TcpStream,
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<SseStream, HttpResponse> {
    let mut request =
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut reader = BufReader::new(tcp);
    let mut head = Vec::new();
    let mut line = String::new();
    let status = tokio::time::timeout(WAIT, async {
        reader.read_line(&mut line).await.unwrap();
        let status: u16 = line.split(' ').nth(1).unwrap().parse().unwrap();
        loop {
            line.clear();
            reader.read_line(&mut line).await.unwrap();
            let trimmed = line.trim_end();
            if trimmed.is_empty() {
                return status;
            }
            let (name, value) = trimmed.split_once(':').unwrap();
            head.push((name.trim().to_owned(), value.trim().to_owned()));
        }
    })
    .await
    .expect("a response head within the bound");
    let mut stream = SseStream {
        reader,
        pending: String::new(),
        headers: head,
        retry: None,
    };
    if status == 200 {
        return Ok(stream);
    }
    let length = stream
        .header("content-length")
        .and_then(|l| l.parse::<usize>().ok());
    let mut body = String::new();
    if let Some(length) = length {
        let mut raw = vec![0u8; length];
        stream.reader.read_exact(&mut raw).await.unwrap();
        body = String::from_utf8(raw).unwrap();
    } else {
        while let Some(chunk) = stream.chunk().await {
            body.push_str(&chunk);
        }
    }
    Err(HttpResponse {
        status,
        headers: stream.headers,
        body,
    })
}

impl SseStream {
    /// A header's value.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The next chunk of the body; `None` at its end (or when the connection ends).
    async fn chunk(&mut self) -> Option<String> {
        let mut size_line = String::new();
        if self.reader.read_line(&mut size_line).await.ok()? == 0 {
            return None;
        }
        let size = usize::from_str_radix(size_line.trim(), 16).ok()?;
        let mut data = vec![0u8; size + 2];
        self.reader.read_exact(&mut data).await.ok()?;
        if size == 0 {
            return None;
        }
        data.truncate(size);
        Some(String::from_utf8(data).unwrap())
    }

    /// The next event or comment, `None` once the stream ended. Panics after [`WAIT`].
    pub(crate) async fn next(&mut self) -> Option<Event> {
        self.next_within(WAIT)
            .await
            .unwrap_or_else(|| panic!("no SSE event within {WAIT:?}"))
    }

    /// The next event, `Some(None)` at the end, `None` if nothing came within `limit`.
    pub(crate) async fn next_within(&mut self, limit: Duration) -> Option<Option<Event>> {
        tokio::time::timeout(limit, self.read_event()).await.ok()
    }

    async fn read_event(&mut self) -> Option<Event> {
        loop {
            if let Some(end) = self.pending.find("\n\n") {
                let block: String = self.pending.drain(..end + 2).collect();
                if let Some(event) = self.parse(&block) {
                    return Some(event);
                }
                continue;
            }
            let chunk = self.chunk().await?;
            self.pending.push_str(&chunk);
        }
    }

    fn parse(&mut self, block: &str) -> Option<Event> {
        let mut event = Event {
            event: "message".into(),
            id: None,
            data: String::new(),
        };
        let mut fields = 0;
        for line in block.lines().filter(|line| !line.is_empty()) {
            if let Some(comment) = line.strip_prefix(':') {
                event.event = ":".into();
                event.data = comment.trim().to_owned();
                return Some(event);
            }
            let (name, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            fields += 1;
            match name {
                "event" => event.event = value.to_owned(),
                "id" => event.id = Some(value.to_owned()),
                "data" => event.data.push_str(value),
                "retry" => {
                    self.retry = value.parse().ok();
                    fields -= 1;
                }
                other => panic!("unexpected SSE field {other:?} in {block:?}"),
            }
        }
        (fields > 0).then_some(event)
    }

    /// The next event that is not a comment or a presence push.
    pub(crate) async fn next_event(&mut self) -> Event {
        loop {
            let event = self.next().await.expect("the stream goes on");
            if !matches!(event.event.as_str(), ":" | "join" | "leave") {
                return event;
            }
        }
    }

    /// Expects the next event (skipping comments and presence) to be `kind`.
    pub(crate) async fn expect(&mut self, kind: &str) -> Event {
        let event = self.next_event().await;
        assert_eq!(event.event, kind, "{event:?}");
        event
    }

    /// Reads until the server closes the connection, within `limit`; panics otherwise.
    pub(crate) async fn closed_within(mut self, limit: Duration) {
        tokio::time::timeout(limit, async {
            let mut sink = Vec::new();
            let _ = self.reader.read_to_end(&mut sink).await;
        })
        .await
        .expect("the server closed the connection within the bound");
    }
}

/// The `[channel, epoch, offset]` triples of a cursor.
pub(crate) fn decode_cursor(cursor: &str) -> Vec<(String, String, u64)> {
    let json = URL_SAFE_NO_PAD.decode(cursor).unwrap();
    serde_json::from_slice(&json).unwrap()
}

/// A cursor from triples.
pub(crate) fn encode_cursor(triples: &[(&str, &str, u64)]) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(triples).unwrap())
}

/// `POST /rpc` with a JSON command; `token` as `?token=`.
pub(crate) async fn rpc(addr: SocketAddr, token: Option<&str>, command: &Value) -> HttpResponse {
    let path = match token {
        Some(token) => format!("/rpc?token={token}"),
        None => "/rpc".into(),
    };
    let headers = [("Content-Type", "text/plain")];
    http(addr, "POST", &path, &headers, &command.to_string()).await
}

/// Publishes through `/rpc` (anonymous) and returns the offset.
pub(crate) async fn rpc_publish(addr: SocketAddr, channel: &str, data: Value) -> u64 {
    let command = serde_json::json!({"type": "publish", "channel": channel, "data": data});
    let reply = rpc(addr, None, &command).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    reply.json()["offset"].as_u64().unwrap()
}

/// `GET /poll?{query}`: status and JSON body.
pub(crate) async fn poll(addr: SocketAddr, query: &str) -> (u16, Value) {
    let response = http(addr, "GET", &format!("/poll?{query}"), &[], "").await;
    let json = response.json();
    (response.status, json)
}
