//! Server role: parse the client's request, validate it (RFC 6455 §4.2.1), then answer with a
//! 101 ([`accept_response`]) or an HTTP error ([`error_response`], [`reject_response`]).
//!
//! [`validate`] works on a [`Request`] however it was built: from wire bytes by
//! [`parse_request`], or by hand from a framework's already-parsed request parts.

use base64::Engine as _;

use super::{
    BASE64, EncodeError, HandshakeError, HeadWriter, Headers, Limits, VERSION, accept_key,
    collect_headers, head_len, is_token, reason_phrase, single,
};

/// A client's HTTP request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// The request target as sent: `/path?query`, or an absolute URI `http://host/path?query`.
    pub target: String,
    /// Minor version of HTTP/1.x: 1 for HTTP/1.1, 0 for HTTP/1.0.
    pub version: u8,
    pub headers: Headers,
}

impl Request {
    /// An HTTP/1.1 request with no headers yet, for building one by hand.
    pub fn new(method: impl Into<String>, target: impl Into<String>) -> Self {
        Self {
            method: method.into(),
            target: target.into(),
            version: 1,
            headers: Headers::new(),
        }
    }

    /// The path of the /resource name/ (RFC 6455 §3), `"/"` if the target has none.
    pub fn path(&self) -> &str {
        let resource = resource_name(&self.target);
        let path = resource.split_once('?').map_or(resource, |(path, _)| path);
        if path.is_empty() { "/" } else { path }
    }

    /// The query of the /resource name/, without the `?`.
    pub fn query(&self) -> Option<&str> {
        resource_name(&self.target)
            .split_once('?')
            .map(|(_, query)| query)
    }

    /// The raw `Sec-WebSocket-Key` (the first one, trimmed); see [`validate`] for its checks.
    pub fn key(&self) -> Option<&[u8]> {
        self.headers
            .get("Sec-WebSocket-Key")
            .map(<[u8]>::trim_ascii)
    }

    pub fn origin(&self) -> Option<&str> {
        self.headers.get_str("Origin").map(str::trim)
    }

    pub fn host(&self) -> Option<&str> {
        self.headers.get_str("Host").map(str::trim)
    }

    /// Every subprotocol offered in `Sec-WebSocket-Protocol` (all lines, comma-split, trimmed),
    /// in the client's order of preference.
    pub fn protocols(&self) -> Vec<String> {
        self.headers
            .tokens("Sec-WebSocket-Protocol")
            .map(|protocol| String::from_utf8_lossy(protocol).into_owned())
            .collect()
    }

    /// The raw `Sec-WebSocket-Extensions` values, one per header line, for the extension
    /// negotiation to parse.
    pub fn extensions(&self) -> Vec<&[u8]> {
        self.headers.get_all("Sec-WebSocket-Extensions").collect()
    }

    /// Same as [`validate`].
    pub fn validate(&self) -> Result<ValidRequest, HandshakeError> {
        validate(self)
    }
}

/// Parses a request head from the start of `buf`.
///
/// `Ok(None)`: the head is not complete yet; nothing was consumed. `Ok(Some((request, len)))`:
/// the head is `buf[..len]`; whatever follows already belongs to the WebSocket stream.
pub fn parse_request(
    buf: &[u8],
    limits: &Limits,
) -> Result<Option<(Request, usize)>, HandshakeError> {
    let mut slots = vec![httparse::EMPTY_HEADER; limits.max_headers];
    let mut parsed = httparse::Request::new(&mut slots);
    let verdict = parsed.parse(buf);
    let Some(len) = head_len(verdict, buf.len(), limits)? else {
        return Ok(None);
    };
    let (Some(method), Some(target), Some(version)) = (parsed.method, parsed.path, parsed.version)
    else {
        return Err(HandshakeError::MalformedHttp(
            "incomplete request line".into(),
        ));
    };
    let request = Request {
        method: method.to_owned(),
        target: target.to_owned(),
        version,
        headers: collect_headers(parsed.headers),
    };
    Ok(Some((request, len)))
}

/// A request that passed [`validate`]: what the 101 response needs from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidRequest {
    key: String,
    protocols: Vec<String>,
}

impl ValidRequest {
    /// The client's `Sec-WebSocket-Key`, known to be base64 of 16 bytes.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The subprotocols the client offered, in its order, each known to be a token.
    pub fn protocols(&self) -> &[String] {
        &self.protocols
    }
}

/// Checks an opening handshake request against RFC 6455 §4.2.1.
///
/// On `Err`, answer with [`error_response`]: RFC 6455 §4.2.1 "If the server […] finds that the
/// client did not send a handshake that matches the description below […], the server MUST stop
/// processing the client's handshake and return an HTTP response with an appropriate error code
/// (such as 400 Bad Request)."
pub fn validate(request: &Request) -> Result<ValidRequest, HandshakeError> {
    check_request_line(request)?;
    check_no_body(&request.headers)?;
    check_host(&request.headers)?;
    check_upgrade(&request.headers)?;
    let key = check_key(&request.headers)?;
    check_version(&request.headers)?;
    let protocols = check_protocols(&request.headers)?;
    Ok(ValidRequest { key, protocols })
}

/// Picks the subprotocol to answer with: the first of the *server's* `supported` list (its order
/// of preference) that the client offered. `None` if there is no common one; a server that
/// requires a subprotocol then rejects with [`HandshakeError::NoCommonProtocol`].
///
/// Server order, not client order, as python-websockets (≥ 11, `ServerProtocol.select_subprotocol`:
/// "pick the first one in the list declared the server") does: the server knows which of its
/// protocols is best (usually the newest version), while clients tend to list theirs in
/// arbitrary order. RFC 6455 §4.2.2 leaves the choice to the server ("selecting one of the
/// values from the |Sec-WebSocket-Protocol| field that the server is willing to use"). Names
/// compare exactly (case-sensitively), as the client will compare our answer.
pub fn select_protocol(offered: &[String], supported: &[&str]) -> Option<String> {
    supported
        .iter()
        .find(|&&protocol| offered.iter().any(|offer| offer == protocol))
        .map(|&protocol| protocol.to_owned())
}

/// What the server adds to its 101 response.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Accept {
    /// The subprotocol chosen, one the client offered (see [`select_protocol`]).
    pub protocol: Option<String>,
    /// The `Sec-WebSocket-Extensions` response value from extension negotiation.
    pub extensions: Option<String>,
    /// Extra header lines, e.g. `Set-Cookie` or `Server`.
    pub headers: Vec<(String, String)>,
}

/// Headers the 101 response writes itself.
const RESERVED_101: &[&str] = &[
    "Upgrade",
    "Connection",
    "Sec-WebSocket-Accept",
    "Sec-WebSocket-Protocol",
    "Sec-WebSocket-Extensions",
    // RFC 7230 §3.3.2: "A server MUST NOT send a Content-Length header field in any response
    // with a status code of 1xx (Informational)".
    "Content-Length",
    "Transfer-Encoding",
];

/// The `HTTP/1.1 101 Switching Protocols` head that completes the handshake (RFC 6455 §4.2.2
/// step 5). `Err` if `accept` asks for something invalid; nothing is written then.
pub fn accept_response(valid: &ValidRequest, accept: &Accept) -> Result<Vec<u8>, EncodeError> {
    let mut head = HeadWriter::new("HTTP/1.1 101 Switching Protocols");
    // Step 5.2: "An |Upgrade| header field with value "websocket"".
    head.header("Upgrade", "websocket");
    // Step 5.3: "A |Connection| header field with value "Upgrade"".
    head.header("Connection", "Upgrade");
    // Step 5.4: "A |Sec-WebSocket-Accept| header field."
    head.header("Sec-WebSocket-Accept", &accept_key(valid.key.as_bytes()));
    if let Some(protocol) = &accept.protocol {
        // Step 4 /subprotocol/: "The value chosen MUST be derived from the client's handshake,
        // specifically by selecting one of the values from the |Sec-WebSocket-Protocol| field".
        if !valid.protocols.contains(protocol) {
            return Err(EncodeError::ProtocolNotOffered(protocol.clone()));
        }
        head.header("Sec-WebSocket-Protocol", protocol);
    }
    if let Some(extensions) = accept
        .extensions
        .as_deref()
        .filter(|value| !value.is_empty())
    {
        head.checked_header("Sec-WebSocket-Extensions", extensions)?;
    }
    head.extra_headers(&accept.headers, RESERVED_101)?;
    Ok(head.finish())
}

/// Headers every rejection writes itself.
const RESERVED_REJECT: &[&str] = &["Content-Length", "Transfer-Encoding", "Connection"];

/// An HTTP response refusing the upgrade (or answering a plain HTTP request, e.g. a health
/// check), after which the I/O layer closes the connection.
///
/// Writes `Content-Type: text/plain; charset=utf-8` unless `headers` has a `Content-Type`, then
/// `Content-Length`, `Connection: close`, `headers` and `body`. `status` must be one that
/// carries a body: 200..=599 except 204 and 304.
pub fn reject_response(
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
) -> Result<Vec<u8>, EncodeError> {
    if !(200..=599).contains(&status) || status == 204 || status == 304 {
        return Err(EncodeError::Status(status));
    }
    let mut head = reject_head(status, headers, body.len(), "close");
    head.extra_headers(headers, RESERVED_REJECT)?;
    Ok(with_body(head, body))
}

/// The response to a request that failed [`parse_request`] or [`validate`]: the status from
/// [`HandshakeError::status`], the headers that status requires, and the error as a short
/// plain-text body.
pub fn error_response(err: &HandshakeError) -> Vec<u8> {
    let status = err.status();
    let body = format!("{err}\n");
    let mut head = reject_head(status, &[], body.len(), connection_for(status));
    for &(name, value) in mandatory_headers(status) {
        head.header(name, value);
    }
    with_body(head, body.as_bytes())
}

/// RFC 6455 §4.2.1 item 1: "An HTTP/1.1 or higher GET request, including a "Request-URI"".
fn check_request_line(request: &Request) -> Result<(), HandshakeError> {
    // RFC 7230 §3.1.1: "The request method is case-sensitive."
    if request.method != "GET" {
        return Err(HandshakeError::MethodNotGet);
    }
    if request.version < 1 {
        return Err(HandshakeError::HttpVersion);
    }
    if !is_resource_target(&request.target) {
        return Err(HandshakeError::BadTarget);
    }
    Ok(())
}

/// Bytes after the head are WebSocket frames, so a request body would be read as frames.
/// Like python-websockets, accept `Content-Length: 0` (some clients send it) and nothing else.
fn check_no_body(headers: &Headers) -> Result<(), HandshakeError> {
    let chunked = headers.get("Transfer-Encoding").is_some();
    let sized = headers
        .tokens("Content-Length")
        .any(|length| length != b"0");
    if chunked || sized {
        return Err(HandshakeError::RequestBody);
    }
    Ok(())
}

/// RFC 6455 §4.2.1 item 2: "A |Host| header field containing the server's authority."
/// RFC 7230 §5.4: a server "MUST respond with a 400 (Bad Request) status code to any HTTP/1.1
/// request message that lacks a Host header field and to any request message that contains
/// more than one Host header field".
fn check_host(headers: &Headers) -> Result<(), HandshakeError> {
    match single(headers, "Host")? {
        Some(host) if !host.is_empty() => Ok(()),
        _ => Err(HandshakeError::MissingHost),
    }
}

/// RFC 6455 §4.2.1 item 3: "An |Upgrade| header field containing the value "websocket",
/// treated as an ASCII case-insensitive value." Item 4: "A |Connection| header field that
/// includes the token "Upgrade", treated as an ASCII case-insensitive value."
fn check_upgrade(headers: &Headers) -> Result<(), HandshakeError> {
    if !headers.contains_token("Upgrade", "websocket") {
        return Err(HandshakeError::MissingUpgrade);
    }
    if !headers.contains_token("Connection", "upgrade") {
        return Err(HandshakeError::MissingConnectionUpgrade);
    }
    Ok(())
}

/// RFC 6455 §4.2.1 item 5: "A |Sec-WebSocket-Key| header field with a base64-encoded […] value
/// that, when decoded, is 16 bytes in length." §11.3.1: it "MUST NOT appear more than once".
fn check_key(headers: &Headers) -> Result<String, HandshakeError> {
    let Some(key) = single(headers, "Sec-WebSocket-Key")? else {
        return Err(HandshakeError::MissingKey);
    };
    match BASE64.decode(key) {
        Ok(nonce) if nonce.len() == 16 => {}
        _ => return Err(HandshakeError::BadKey),
    }
    // Valid base64 is ASCII.
    let key = std::str::from_utf8(key).map_err(|_| HandshakeError::BadKey)?;
    Ok(key.to_owned())
}

/// RFC 6455 §4.2.1 item 6: "A |Sec-WebSocket-Version| header field, with a value of 13."
/// §11.3.5: it "MUST NOT appear more than once in an HTTP request".
fn check_version(headers: &Headers) -> Result<(), HandshakeError> {
    match single(headers, "Sec-WebSocket-Version")? {
        None => Err(HandshakeError::MissingVersion),
        Some(version) if version == VERSION.as_bytes() => Ok(()),
        Some(_) => Err(HandshakeError::UnsupportedVersion),
    }
}

/// RFC 6455 §4.1: the offered subprotocols "MUST be non-empty strings with characters in the
/// range U+0021 to U+007E not including separator characters as defined in [RFC2616]".
fn check_protocols(headers: &Headers) -> Result<Vec<String>, HandshakeError> {
    headers
        .tokens("Sec-WebSocket-Protocol")
        .map(|protocol| match std::str::from_utf8(protocol) {
            Ok(text) if is_token(protocol) => Ok(text.to_owned()),
            _ => Err(HandshakeError::BadProtocolHeader),
        })
        .collect()
}

/// RFC 6455 §4.2.1 item 1: the Request-URI is the /resource name/ "(or an absolute HTTP/HTTPS
/// URI containing the /resource name/)". ws/wss URIs are accepted too.
fn is_resource_target(target: &str) -> bool {
    if target.starts_with('/') {
        return true;
    }
    let Some((scheme, _)) = target.split_once("://") else {
        return false;
    };
    ["http", "https", "ws", "wss"]
        .iter()
        .any(|known| scheme.eq_ignore_ascii_case(known))
}

/// The /resource name/ (path and query) of a target in origin or absolute form.
fn resource_name(target: &str) -> &str {
    if target.starts_with('/') {
        return target;
    }
    let Some((_, authority_and_rest)) = target.split_once("://") else {
        return target;
    };
    authority_and_rest
        .find(['/', '?'])
        .map_or("", |start| &authority_and_rest[start..])
}

fn reject_head(
    status: u16,
    headers: &[(String, String)],
    body_len: usize,
    connection: &str,
) -> HeadWriter {
    let mut head = HeadWriter::new(&format!("HTTP/1.1 {status} {}", reason_phrase(status)));
    let typed = headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("Content-Type"));
    if !typed {
        head.header("Content-Type", "text/plain; charset=utf-8");
    }
    head.header("Content-Length", &body_len.to_string());
    head.header("Connection", connection);
    head
}

/// Headers an error response with `status` MUST carry.
fn mandatory_headers(status: u16) -> &'static [(&'static str, &'static str)] {
    match status {
        // RFC 7231 §6.5.5: "The origin server MUST generate an Allow header field in a 405
        // response containing a list of the target resource's currently supported methods."
        405 => &[("Allow", "GET")],
        // RFC 6455 §4.4: "If the server doesn't support the requested version, it MUST respond
        // with a |Sec-WebSocket-Version| header field […] containing all versions it is willing
        // to use." RFC 7231 §6.5.15: "The server MUST send an Upgrade header field in a 426
        // response to indicate the required protocol(s)".
        426 => &[("Upgrade", "websocket"), ("Sec-WebSocket-Version", VERSION)],
        _ => &[],
    }
}

/// RFC 7230 §6.7: "When Upgrade is sent, the sender MUST also send a Connection header field
/// […] that contains an "upgrade" connection option".
fn connection_for(status: u16) -> &'static str {
    if status == 426 {
        "Upgrade, close"
    } else {
        "close"
    }
}

fn with_body(head: HeadWriter, body: &[u8]) -> Vec<u8> {
    let mut response = head.finish();
    response.extend_from_slice(body);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The client handshake of RFC 6455 §1.3, byte for byte.
    const RFC_1_3_REQUEST: &[u8] = b"GET /chat HTTP/1.1\r\n\
        Host: server.example.com\r\n\
        Upgrade: websocket\r\n\
        Connection: Upgrade\r\n\
        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
        Origin: http://example.com\r\n\
        Sec-WebSocket-Protocol: chat, superchat\r\n\
        Sec-WebSocket-Version: 13\r\n\
        \r\n";

    /// The server handshake of RFC 6455 §1.3, byte for byte.
    const RFC_1_3_RESPONSE: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\n\
        Upgrade: websocket\r\n\
        Connection: Upgrade\r\n\
        Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
        Sec-WebSocket-Protocol: chat\r\n\
        \r\n";

    fn parse(wire: &[u8]) -> Request {
        let (request, len) = parse_request(wire, &Limits::default()).unwrap().unwrap();
        assert_eq!(len, wire.len());
        request
    }

    /// The RFC 6455 §1.3 request with `from` replaced by `to`.
    fn rfc_request_with(from: &str, to: &str) -> Vec<u8> {
        let wire = std::str::from_utf8(RFC_1_3_REQUEST).unwrap();
        assert!(wire.contains(from), "{from:?} not in the request");
        wire.replacen(from, to, 1).into_bytes()
    }

    fn rejected(wire: &[u8]) -> HandshakeError {
        validate(&parse(wire)).unwrap_err()
    }

    fn text(wire: &[u8]) -> &str {
        std::str::from_utf8(wire).unwrap()
    }

    #[test]
    fn rfc6455_1_3_example_request_parses() {
        let request = parse(RFC_1_3_REQUEST);
        assert_eq!(request.method, "GET");
        assert_eq!(request.version, 1);
        assert_eq!(request.path(), "/chat");
        assert_eq!(request.query(), None);
        assert_eq!(request.host(), Some("server.example.com"));
        assert_eq!(request.origin(), Some("http://example.com"));
        assert_eq!(request.key(), Some(&b"dGhlIHNhbXBsZSBub25jZQ=="[..]));
        assert_eq!(request.protocols(), ["chat", "superchat"]);
        assert!(request.extensions().is_empty());
    }

    #[test]
    fn rfc6455_1_3_example_request_gets_example_response() {
        let valid = validate(&parse(RFC_1_3_REQUEST)).unwrap();
        assert_eq!(valid.key(), "dGhlIHNhbXBsZSBub25jZQ==");
        let protocol = select_protocol(valid.protocols(), &["chat"]);
        let accept = Accept {
            protocol,
            ..Accept::default()
        };
        assert_eq!(
            text(&accept_response(&valid, &accept).unwrap()),
            text(RFC_1_3_RESPONSE)
        );
    }

    #[test]
    fn rfc6455_4_2_2_response_with_extensions_and_extra_headers() {
        let valid = validate(&parse(RFC_1_3_REQUEST)).unwrap();
        let accept = Accept {
            protocol: None,
            extensions: Some("permessage-deflate".into()),
            headers: vec![("Server".into(), "ripple".into())],
        };
        assert_eq!(
            text(&accept_response(&valid, &accept).unwrap()),
            "HTTP/1.1 101 Switching Protocols\r\n\
             Upgrade: websocket\r\n\
             Connection: Upgrade\r\n\
             Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
             Sec-WebSocket-Extensions: permessage-deflate\r\n\
             Server: ripple\r\n\
             \r\n"
        );
    }

    #[test]
    fn rfc6455_4_2_1_bytes_after_head_are_left_for_the_stream() {
        let mut wire = RFC_1_3_REQUEST.to_vec();
        wire.extend_from_slice(&[0x81, 0x82, 1, 2, 3, 4]);
        let (_, len) = parse_request(&wire, &Limits::default()).unwrap().unwrap();
        assert_eq!(len, RFC_1_3_REQUEST.len());
    }

    #[test]
    fn rfc6455_4_2_1_incomplete_head_is_none() {
        for end in 0..RFC_1_3_REQUEST.len() {
            let prefix = &RFC_1_3_REQUEST[..end];
            assert_eq!(parse_request(prefix, &Limits::default()), Ok(None), "{end}");
        }
    }

    #[test]
    fn limits_head_too_large_while_incomplete_is_431() {
        let limits = Limits {
            max_head_bytes: 64,
            ..Limits::default()
        };
        assert_eq!(parse_request(&RFC_1_3_REQUEST[..63], &limits), Ok(None));
        let err = parse_request(&RFC_1_3_REQUEST[..64], &limits).unwrap_err();
        assert_eq!(err, HandshakeError::HeadTooLarge);
        assert_eq!(err.status(), 431);
    }

    #[test]
    fn limits_head_too_large_when_complete_is_431() {
        let limits = Limits {
            max_head_bytes: RFC_1_3_REQUEST.len() - 1,
            ..Limits::default()
        };
        assert_eq!(
            parse_request(RFC_1_3_REQUEST, &limits),
            Err(HandshakeError::HeadTooLarge)
        );
        let exact = Limits {
            max_head_bytes: RFC_1_3_REQUEST.len(),
            ..Limits::default()
        };
        assert!(parse_request(RFC_1_3_REQUEST, &exact).unwrap().is_some());
    }

    #[test]
    fn limits_too_many_headers_is_431() {
        let limits = Limits {
            max_headers: 6,
            ..Limits::default()
        };
        let err = parse_request(RFC_1_3_REQUEST, &limits).unwrap_err();
        assert_eq!(err, HandshakeError::TooManyHeaders);
        assert!(text(&error_response(&err)).starts_with("HTTP/1.1 431 Request Header Fields"));
        let seven = Limits {
            max_headers: 7,
            ..Limits::default()
        };
        assert!(parse_request(RFC_1_3_REQUEST, &seven).unwrap().is_some());
    }

    #[test]
    fn rfc7230_3_malformed_head_is_400() {
        let err = parse_request(
            b"GET /chat HTTP/1.1\r\nHost server\r\n\r\n",
            &Limits::default(),
        )
        .unwrap_err();
        assert!(matches!(err, HandshakeError::MalformedHttp(_)), "{err:?}");
        assert_eq!(err.status(), 400);
    }

    #[test]
    fn rfc6455_4_2_1_method_not_get_is_405_with_allow() {
        let err = rejected(&rfc_request_with("GET /chat", "POST /chat"));
        assert_eq!(err, HandshakeError::MethodNotGet);
        assert_eq!(
            text(&error_response(&err)),
            "HTTP/1.1 405 Method Not Allowed\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\
             Content-Length: 18\r\n\
             Connection: close\r\n\
             Allow: GET\r\n\
             \r\n\
             method is not GET\n"
        );
    }

    #[test]
    fn rfc6455_4_2_1_each_bad_request_is_rejected_with_its_status() {
        use HandshakeError as E;
        const KEY: &str = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
        let twice = KEY.repeat(2);
        #[rustfmt::skip]
        let cases = [
            // Item 1: "An HTTP/1.1 or higher GET request, including a "Request-URI"".
            ("HTTP/1.1", "HTTP/1.0", E::HttpVersion, 400),
            ("GET /chat", "GET chat", E::BadTarget, 400),
            ("\r\n\r\n", "\r\nContent-Length: 5\r\n\r\n", E::RequestBody, 400),
            ("\r\n\r\n", "\r\nTransfer-Encoding: chunked\r\n\r\n", E::RequestBody, 400),
            // Item 2: "A |Host| header field"; RFC 7230 §5.4: exactly one.
            ("Host: server.example.com\r\n", "", E::MissingHost, 400),
            ("Host: server.example.com\r\n", "Host: a\r\nHost: b\r\n", E::DuplicateHeader("Host"), 400),
            // Item 3: "An |Upgrade| header field containing the value "websocket"".
            ("Upgrade: websocket\r\n", "", E::MissingUpgrade, 400),
            ("Upgrade: websocket", "Upgrade: h2c", E::MissingUpgrade, 400),
            // Item 4: "A |Connection| header field that includes the token "Upgrade"".
            ("Connection: Upgrade", "Connection: keep-alive", E::MissingConnectionUpgrade, 400),
            // Item 5: "A |Sec-WebSocket-Key| header field […] 16 bytes in length"; §11.3.1 once.
            (KEY, "", E::MissingKey, 400),
            ("dGhlIHNhbXBsZSBub25jZQ==", "dGhlIHNhbXBsZSBub25j", E::BadKey, 400),
            ("dGhlIHNhbXBsZSBub25jZQ==", "not base64 at all!!!!!!=", E::BadKey, 400),
            ("dGhlIHNhbXBsZSBub25jZQ==", "AAAAAAAAAAAAAAAAAAAAAAAAAA==", E::BadKey, 400),
            (KEY, twice.as_str(), E::DuplicateHeader("Sec-WebSocket-Key"), 400),
            // Item 6: "A |Sec-WebSocket-Version| header field, with a value of 13."
            ("Sec-WebSocket-Version: 13\r\n", "", E::MissingVersion, 426),
            ("Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 8", E::UnsupportedVersion, 426),
            // §4.1 item 10: the offered subprotocols are tokens.
            ("chat, superchat", "chat, super chat", E::BadProtocolHeader, 400),
        ];
        for (from, to, err, status) in cases {
            let got = validate(&parse(&rfc_request_with(from, to))).unwrap_err();
            assert_eq!((&got, got.status()), (&err, status), "{from:?} -> {to:?}");
            let response = error_response(&got);
            let status_line = format!("HTTP/1.1 {status} ");
            assert!(text(&response).starts_with(&status_line), "{got:?}");
            assert!(
                text(&response).ends_with(&format!("\r\n\r\n{got}\n")),
                "{got:?}"
            );
        }
    }

    #[test]
    fn rfc6455_4_2_1_request_with_empty_body_is_accepted() {
        let zero = rfc_request_with("\r\n\r\n", "\r\nContent-Length: 0\r\n\r\n");
        assert!(validate(&parse(&zero)).is_ok());
    }

    #[test]
    fn rfc6455_4_2_1_absolute_uri_target() {
        let request = parse(&rfc_request_with(
            "GET /chat",
            "GET http://server.example.com/chat?room=1",
        ));
        assert!(validate(&request).is_ok());
        assert_eq!(request.path(), "/chat");
        assert_eq!(request.query(), Some("room=1"));
        let bare = Request::new("GET", "wss://server.example.com");
        assert_eq!((bare.path(), bare.query()), ("/", None));
    }

    #[test]
    fn rfc6455_4_2_1_token_lists_mixed_case_and_commas() {
        let wire = rfc_request_with(
            "Upgrade: websocket\r\nConnection: Upgrade\r\n",
            "Upgrade: WebSocket\r\nConnection: keep-alive,UPGRADE\r\n",
        );
        assert!(validate(&parse(&wire)).is_ok());
        // Firefox-style list split over two lines.
        let wire = rfc_request_with(
            "Connection: Upgrade\r\n",
            "Connection: keep-alive\r\nconnection: , upgrade ,\r\n",
        );
        assert!(validate(&parse(&wire)).is_ok());
    }

    #[test]
    fn rfc6455_4_4_unsupported_version_is_426_with_version_13() {
        let err = rejected(&rfc_request_with(
            "Sec-WebSocket-Version: 13",
            "Sec-WebSocket-Version: 8",
        ));
        assert_eq!(err, HandshakeError::UnsupportedVersion);
        let body = "unsupported \"Sec-WebSocket-Version\" header; only 13 is supported\n";
        assert_eq!(
            text(&error_response(&err)),
            format!(
                "HTTP/1.1 426 Upgrade Required\r\n\
                 Content-Type: text/plain; charset=utf-8\r\n\
                 Content-Length: {}\r\n\
                 Connection: Upgrade, close\r\n\
                 Upgrade: websocket\r\n\
                 Sec-WebSocket-Version: 13\r\n\
                 \r\n\
                 {body}",
                body.len()
            )
        );
    }

    #[test]
    fn rfc6455_4_2_1_request_built_by_hand_validates() {
        let mut request = Request::new("GET", "/chat?room=1");
        request.headers = [
            ("host", "server.example.com"),
            ("upgrade", "websocket"),
            ("connection", "upgrade"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("sec-websocket-version", "13"),
            ("sec-websocket-protocol", "v2.chat"),
            ("sec-websocket-protocol", "v1.chat"),
        ]
        .into_iter()
        .collect();
        let valid = request.validate().unwrap();
        assert_eq!(valid.protocols(), ["v2.chat", "v1.chat"]);
        request.version = 0;
        assert_eq!(request.validate(), Err(HandshakeError::HttpVersion));
    }

    #[test]
    fn rfc6455_4_2_2_select_protocol_follows_server_preference() {
        let offered = vec!["v1.chat".to_owned(), "v2.chat".to_owned()];
        assert_eq!(
            select_protocol(&offered, &["v2.chat", "v1.chat"]),
            Some("v2.chat".to_owned())
        );
        assert_eq!(select_protocol(&offered, &["V2.CHAT"]), None);
        assert_eq!(select_protocol(&[], &["v1.chat"]), None);
    }

    #[test]
    fn rfc6455_4_2_2_protocol_not_offered_is_refused() {
        let valid = validate(&parse(RFC_1_3_REQUEST)).unwrap();
        let accept = Accept {
            protocol: Some("mqtt".into()),
            ..Accept::default()
        };
        assert_eq!(
            accept_response(&valid, &accept),
            Err(EncodeError::ProtocolNotOffered("mqtt".into()))
        );
    }

    #[test]
    fn rfc7230_3_2_accept_refuses_header_injection() {
        let valid = validate(&parse(RFC_1_3_REQUEST)).unwrap();
        let with_headers = |name: &str, value: &str| Accept {
            headers: vec![(name.into(), value.into())],
            ..Accept::default()
        };
        assert_eq!(
            accept_response(&valid, &with_headers("X-Id", "1\r\nSet-Cookie: admin=1")),
            Err(EncodeError::HeaderValue("X-Id".into()))
        );
        assert_eq!(
            accept_response(&valid, &with_headers("X-Id\r\nSet-Cookie", "1")),
            Err(EncodeError::HeaderName("X-Id\r\nSet-Cookie".into()))
        );
        assert_eq!(
            accept_response(&valid, &with_headers("sec-websocket-accept", "x")),
            Err(EncodeError::ReservedHeader("sec-websocket-accept".into()))
        );
        let extensions = Accept {
            extensions: Some("permessage-deflate\nX: y".into()),
            ..Accept::default()
        };
        assert_eq!(
            accept_response(&valid, &extensions),
            Err(EncodeError::HeaderValue("Sec-WebSocket-Extensions".into()))
        );
    }

    #[test]
    fn reject_response_wire_bytes() {
        let headers = vec![("WWW-Authenticate".to_owned(), "Bearer".to_owned())];
        assert_eq!(
            text(&reject_response(401, &headers, b"who are you?\n").unwrap()),
            "HTTP/1.1 401 Unauthorized\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\
             Content-Length: 13\r\n\
             Connection: close\r\n\
             WWW-Authenticate: Bearer\r\n\
             \r\n\
             who are you?\n"
        );
    }

    #[test]
    fn reject_response_keeps_callers_content_type() {
        let headers = vec![("content-type".to_owned(), "application/json".to_owned())];
        assert_eq!(
            text(&reject_response(403, &headers, b"{}").unwrap()),
            "HTTP/1.1 403 Forbidden\r\n\
             Content-Length: 2\r\n\
             Connection: close\r\n\
             content-type: application/json\r\n\
             \r\n\
             {}"
        );
    }

    #[test]
    fn reject_response_refuses_bad_status_and_injection() {
        for status in [101, 199, 204, 304, 600] {
            assert_eq!(
                reject_response(status, &[], b""),
                Err(EncodeError::Status(status))
            );
        }
        let injected = vec![("Location".to_owned(), "/\r\n\r\n<html>".to_owned())];
        assert_eq!(
            reject_response(302, &injected, b""),
            Err(EncodeError::HeaderValue("Location".into()))
        );
        let reserved = vec![("Content-Length".to_owned(), "0".to_owned())];
        assert_eq!(
            reject_response(200, &reserved, b""),
            Err(EncodeError::ReservedHeader("Content-Length".into()))
        );
    }
}
