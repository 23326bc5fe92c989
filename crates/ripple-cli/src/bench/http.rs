//! A plain HTTP/1.1 client for the fallback transports (`/sse`, `/poll`): one connection per
//! subscriber, hyper's `client::conn::http1` on a tokio `TcpStream`, `GET` requests with an
//! empty body, the connection kept alive from one request to the next.

use std::io;

use bytes::Bytes;
use http::header::{AUTHORIZATION, HOST, HeaderName, HeaderValue, ORIGIN};
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::client::conn::http1::{Connection, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use url::Url;

use crate::client_options::ClientArgs;

/// The request half of a connection.
pub(crate) type Sender = SendRequest<Empty<Bytes>>;
/// The half that does the I/O: a future to poll while requests are in flight.
pub(crate) type Driver = Connection<TokioIo<TcpStream>, Empty<Bytes>>;

/// The most of an error response's body shown.
const MAX_ERROR_BODY: usize = 500;

/// Where and how the fallback endpoints are requested: the `ws://` URL's host and port, and
/// its path with the last segment replaced (`/ws` becomes `/sse` and `/poll`).
#[derive(Debug)]
pub(crate) struct HttpTarget {
    /// `host:port`, to connect to and for messages.
    pub(crate) addr: String,
    /// The path up to and including its last `/`.
    base: String,
    /// `Host`, `Authorization` (`--token`), `Origin` and the `-H` headers.
    headers: HeaderMap,
}

impl HttpTarget {
    /// The target of `url` (which must be `ws://`) with the request options of `client`.
    pub(crate) fn new(url: &Url, client: &ClientArgs) -> Result<Self, String> {
        if url.scheme() != "ws" {
            return Err(format!(
                "{url}: --transport sse and poll speak plain HTTP; give a ws:// URL"
            ));
        }
        let host = url.host_str().ok_or_else(|| format!("{url} has no host"))?;
        let port = url.port_or_known_default().unwrap_or(80);
        let addr = match url.host() {
            Some(url::Host::Ipv6(ip)) => format!("[{ip}]:{port}"),
            _ => format!("{host}:{port}"),
        };
        let path = url.path();
        let base = path[..path.rfind('/').map_or(0, |i| i + 1)].to_owned();
        let mut headers = HeaderMap::new();
        let mut add = |name: HeaderName, value: &str| {
            let value = HeaderValue::from_str(value)
                .map_err(|_| format!("header {name}: {value:?} is not a valid value"))?;
            headers.append(name, value);
            Ok::<(), String>(())
        };
        add(HOST, &addr)?;
        if let Some(token) = &client.token {
            add(AUTHORIZATION, &format!("Bearer {token}"))?;
        }
        if let Some(origin) = &client.origin {
            add(ORIGIN, origin)?;
        }
        for (name, value) in &client.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("{name:?} is not a valid header name"))?;
            add(name, value)?;
        }
        Ok(Self {
            addr,
            base: if base.is_empty() { "/".into() } else { base },
            headers,
        })
    }

    /// Opens a connection: the sender for requests and the driver to poll beside them.
    pub(crate) async fn connect(&self) -> Result<(Sender, Driver), String> {
        let tcp = TcpStream::connect(&self.addr)
            .await
            .map_err(|err| describe_connect_error(&self.addr, &err))?;
        // Requests are small writes that must not wait for an ACK (Nagle).
        let _ = tcp.set_nodelay(true);
        hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(|err| format!("HTTP connection to {}: {err}", self.addr))
    }

    /// `GET` of `endpoint_and_query` (`sse?channel=…`) under the target's path.
    pub(crate) fn get(&self, endpoint_and_query: &str) -> Result<Request<Empty<Bytes>>, String> {
        let uri = format!("{}{endpoint_and_query}", self.base);
        let mut request = Request::get(uri.as_str())
            .body(Empty::new())
            .map_err(|err| format!("request {uri}: {err}"))?;
        request.headers_mut().clone_from(&self.headers);
        Ok(request)
    }
}

/// Sends `request` once the connection is ready for it; the response's body when its status
/// is 200, else an error with the status and the start of the body.
pub(crate) async fn send(
    sender: &mut Sender,
    request: Request<Empty<Bytes>>,
) -> Result<Incoming, String> {
    let what = request.uri().to_string();
    sender
        .ready()
        .await
        .map_err(|err| format!("GET {what}: {err}"))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|err| format!("GET {what}: {err}"))?;
    ok_body(&what, response).await
}

async fn ok_body(what: &str, response: Response<Incoming>) -> Result<Incoming, String> {
    let status = response.status();
    if status == StatusCode::OK {
        return Ok(response.into_body());
    }
    let body = match response.into_body().collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let text = String::from_utf8_lossy(&body[..body.len().min(MAX_ERROR_BODY)]).into_owned();
    Err(format!("GET {what}: HTTP {status}: {}", text.trim()))
}

/// The whole body of a response.
pub(crate) async fn read_all(body: Incoming) -> Result<Bytes, String> {
    body.collect()
        .await
        .map(|collected| collected.to_bytes())
        .map_err(|err| format!("reading the response: {err}"))
}

fn describe_connect_error(addr: &str, err: &io::Error) -> String {
    if err.kind() == io::ErrorKind::ConnectionRefused {
        format!("connection refused by {addr}: is the server running?")
    } else {
        format!("cannot connect to {addr}: {err}")
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        client: ClientArgs,
    }

    fn target(url: &str, args: &[&str]) -> Result<HttpTarget, String> {
        let cli = Cli::parse_from(std::iter::once("x").chain(args.iter().copied()));
        HttpTarget::new(&Url::parse(url).unwrap(), &cli.client)
    }

    #[test]
    fn paths_replace_the_last_segment() {
        let t = target("ws://127.0.0.1:9/ws", &[]).unwrap();
        assert_eq!(t.addr, "127.0.0.1:9");
        assert_eq!(t.get("sse?channel=a").unwrap().uri(), "/sse?channel=a");
        let t = target("ws://localhost:9/app/ws?x=1", &[]).unwrap();
        assert_eq!(t.get("poll").unwrap().uri(), "/app/poll");
        let t = target("ws://[::1]/", &[]).unwrap();
        assert_eq!(t.addr, "[::1]:80");
        assert_eq!(t.get("poll").unwrap().uri(), "/poll");
    }

    #[test]
    fn headers_and_schemes() {
        let t = target(
            "ws://127.0.0.1:9/ws",
            &["--token", "abc", "-H", "X-A: 1", "--origin", "http://o"],
        )
        .unwrap();
        let request = t.get("sse").unwrap();
        let headers = request.headers();
        assert_eq!(headers[HOST], "127.0.0.1:9");
        assert_eq!(headers[AUTHORIZATION], "Bearer abc");
        assert_eq!(headers[ORIGIN], "http://o");
        assert_eq!(headers["x-a"], "1");
        let err = target("wss://127.0.0.1:9/ws", &[]).unwrap_err();
        assert!(err.contains("ws://"), "{err}");
    }
}
