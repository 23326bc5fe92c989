//! Client role: write the opening request ([`encode_request`]), then parse and check the
//! server's answer (RFC 6455 §4.1) with [`parse_response`] and [`validate_response`].

use base64::Engine as _;
use rand::rngs::OsRng;
use rand::{RngCore, TryRngCore as _};

use super::{
    BASE64, EncodeError, HandshakeError, HeadWriter, Headers, Limits, VERSION, accept_key,
    collect_headers, head_len, is_token, single,
};

/// What the client asks for. The handshake headers themselves are written by
/// [`encode_request`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientRequest {
    /// The `Host` header: the host, with `:port` when it is not the scheme's default.
    pub host: String,
    /// Path and query, `/chat?room=1`; `""` means `/`.
    pub target: String,
    pub origin: Option<String>,
    /// Subprotocols to offer, most preferred first.
    pub protocols: Vec<String>,
    /// The `Sec-WebSocket-Extensions` offer, from extension negotiation.
    pub extensions: Option<String>,
    /// Extra header lines, e.g. `Authorization` or `User-Agent`.
    pub headers: Vec<(String, String)>,
}

impl ClientRequest {
    pub fn new(host: impl Into<String>, target: impl Into<String>) -> Self {
        Self {
            host: host.into(),
            target: target.into(),
            ..Self::default()
        }
    }
}

/// A fresh `Sec-WebSocket-Key` from the operating system's generator.
///
/// RFC 6455 §4.1 item 7: "The value of this header field MUST be a nonce consisting of a
/// randomly selected 16-byte value that has been base64-encoded […]. The nonce MUST be selected
/// randomly for each connection."
///
/// # Panics
///
/// If the operating system cannot supply random bytes (as `rand::rng()` would).
pub fn new_key() -> String {
    new_key_with(&mut OsRng.unwrap_err())
}

/// A `Sec-WebSocket-Key` from `rng`, for tests that want reproducible bytes.
pub fn new_key_with<R: RngCore + ?Sized>(rng: &mut R) -> String {
    let mut nonce = [0_u8; 16];
    rng.fill_bytes(&mut nonce);
    BASE64.encode(nonce)
}

/// Headers [`encode_request`] writes itself from [`ClientRequest`]'s fields.
const RESERVED: &[&str] = &[
    "Host",
    "Upgrade",
    "Connection",
    "Sec-WebSocket-Key",
    "Sec-WebSocket-Version",
    "Origin",
    "Sec-WebSocket-Protocol",
    "Sec-WebSocket-Extensions",
    // A handshake request has no body; bytes after the head are frames.
    "Content-Length",
    "Transfer-Encoding",
];

/// The opening handshake request (RFC 6455 §4.1) with `key` from [`new_key`].
///
/// `Err` if a field would break the head: CR/LF or another control character in a value, a
/// target with whitespace, a subprotocol that is not a token or is offered twice, an extra header
/// the handshake writes itself. Nothing is written then.
pub fn encode_request(req: &ClientRequest, key: &str) -> Result<Vec<u8>, EncodeError> {
    // Item 2: "The method of the request MUST be GET, and the HTTP version MUST be at least 1.1."
    let mut head = HeadWriter::new(&format!("GET {} HTTP/1.1", request_target(&req.target)?));
    // Item 4: "The request MUST contain a |Host| header field".
    if req.host.is_empty() {
        return Err(EncodeError::HeaderValue("Host".into()));
    }
    head.checked_header("Host", &req.host)?;
    // Item 5: "…an |Upgrade| header field whose value MUST include the "websocket" keyword."
    head.header("Upgrade", "websocket");
    // Item 6: "…a |Connection| header field whose value MUST include the "Upgrade" token."
    head.header("Connection", "Upgrade");
    // Item 7: "…a header field with the name |Sec-WebSocket-Key|."
    head.checked_header("Sec-WebSocket-Key", key)?;
    // Item 9: "…a header field with the name |Sec-WebSocket-Version|. The value of this header
    // field MUST be 13."
    head.header("Sec-WebSocket-Version", VERSION);
    if let Some(origin) = &req.origin {
        head.checked_header("Origin", origin)?;
    }
    if !req.protocols.is_empty() {
        check_protocol_offer(&req.protocols)?;
        head.header("Sec-WebSocket-Protocol", &req.protocols.join(", "));
    }
    if let Some(extensions) = req.extensions.as_deref().filter(|value| !value.is_empty()) {
        head.checked_header("Sec-WebSocket-Extensions", extensions)?;
    }
    head.extra_headers(&req.headers, RESERVED)?;
    Ok(head.finish())
}

/// The server's response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    pub headers: Headers,
}

impl Response {
    /// The body length a non-101 response declares, for the I/O layer to read it.
    ///
    /// `None` if there is no usable `Content-Length`: absent, not a number, several that
    /// disagree, or overridden by `Transfer-Encoding` (RFC 7230 §3.3.3: "If a message is
    /// received with both a Transfer-Encoding and a Content-Length header field, the
    /// Transfer-Encoding overrides the Content-Length.").
    pub fn content_length(&self) -> Option<usize> {
        if self.headers.get("Transfer-Encoding").is_some() {
            return None;
        }
        let mut lengths = self.headers.tokens("Content-Length").map(parse_length);
        let first = lengths.next()??;
        lengths.all(|length| length == Some(first)).then_some(first)
    }
}

/// Parses a response head from the start of `buf`.
///
/// `Ok(None)`: the head is not complete yet; nothing was consumed. `Ok(Some((response, len)))`:
/// the head is `buf[..len]`; after a 101, whatever follows is already WebSocket frames.
pub fn parse_response(
    buf: &[u8],
    limits: &Limits,
) -> Result<Option<(Response, usize)>, HandshakeError> {
    let mut slots = vec![httparse::EMPTY_HEADER; limits.max_headers];
    let mut parsed = httparse::Response::new(&mut slots);
    let verdict = parsed.parse(buf);
    let Some(len) = head_len(verdict, buf.len(), limits)? else {
        return Ok(None);
    };
    let Some(status) = parsed.code else {
        return Err(HandshakeError::MalformedHttp(
            "incomplete status line".into(),
        ));
    };
    let response = Response {
        status,
        reason: parsed.reason.unwrap_or_default().to_owned(),
        headers: collect_headers(parsed.headers),
    };
    Ok(Some((response, len)))
}

/// What the server agreed to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Accepted {
    /// The subprotocol the server chose, one of those offered.
    pub protocol: Option<String>,
    /// The server's `Sec-WebSocket-Extensions` (all lines joined with `", "`), for extension
    /// negotiation to check against the offer and parse.
    pub extensions: Option<String>,
}

/// Checks the server's answer against RFC 6455 §4.1 ("the client MUST _Fail the WebSocket
/// Connection_" on any `Err`). `key` is the one sent in `req`.
pub fn validate_response(
    resp: &Response,
    key: &str,
    req: &ClientRequest,
) -> Result<Accepted, HandshakeError> {
    // Item 1: "If the status code received from the server is not 101, the client handles the
    // response per HTTP [RFC2616] procedures."
    if resp.status != 101 {
        return Err(HandshakeError::NotSwitchingProtocols {
            status: resp.status,
        });
    }
    check_upgrade(&resp.headers)?;
    check_accept(&resp.headers, key)?;
    let extensions = check_extensions(&resp.headers, req)?;
    let protocol = check_protocol(&resp.headers, req)?;
    Ok(Accepted {
        protocol,
        extensions,
    })
}

/// The request target: `"/"` for `""`, otherwise a path (and query) of visible ASCII only, so
/// it cannot split the request line.
fn request_target(target: &str) -> Result<&str, EncodeError> {
    if target.is_empty() {
        return Ok("/");
    }
    let visible = target.bytes().all(|byte| byte.is_ascii_graphic());
    if !target.starts_with('/') || !visible {
        return Err(EncodeError::Target(target.to_owned()));
    }
    Ok(target)
}

/// RFC 6455 §4.1 item 10: the subprotocols "MUST be non-empty strings with characters in the
/// range U+0021 to U+007E not including separator characters as defined in [RFC2616] and MUST
/// all be unique strings."
fn check_protocol_offer(protocols: &[String]) -> Result<(), EncodeError> {
    for (index, protocol) in protocols.iter().enumerate() {
        if !is_token(protocol.as_bytes()) || protocols[..index].contains(protocol) {
            return Err(EncodeError::Protocol(protocol.clone()));
        }
    }
    Ok(())
}

/// RFC 6455 §4.1 items 2 and 3: fail "If the response lacks an |Upgrade| header field or the
/// |Upgrade| header field contains a value that is not an ASCII case-insensitive match for the
/// value "websocket"", and "If the response lacks a |Connection| header field or the
/// |Connection| header field doesn't contain a token that is an ASCII case-insensitive match
/// for the value "Upgrade"".
fn check_upgrade(headers: &Headers) -> Result<(), HandshakeError> {
    let upgrade: Vec<&[u8]> = headers.tokens("Upgrade").collect();
    let websocket = !upgrade.is_empty()
        && upgrade
            .iter()
            .all(|protocol| protocol.eq_ignore_ascii_case(b"websocket"));
    if !websocket {
        return Err(HandshakeError::MissingUpgradeInResponse);
    }
    if !headers.contains_token("Connection", "upgrade") {
        return Err(HandshakeError::MissingConnectionUpgradeInResponse);
    }
    Ok(())
}

/// RFC 6455 §4.1 item 4: fail "If the response lacks a |Sec-WebSocket-Accept| header field or
/// the |Sec-WebSocket-Accept| contains a value other than the base64-encoded SHA-1 of the
/// concatenation of the |Sec-WebSocket-Key| (as a string, not base64-decoded) with the string
/// "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"". §11.3.3: it "MUST NOT appear more than once".
fn check_accept(headers: &Headers, key: &str) -> Result<(), HandshakeError> {
    let Some(accept) = single(headers, "Sec-WebSocket-Accept")? else {
        return Err(HandshakeError::MissingAccept);
    };
    if accept != accept_key(key.as_bytes()).as_bytes() {
        return Err(HandshakeError::BadAccept);
    }
    Ok(())
}

/// RFC 6455 §4.1 item 5: fail if the response's |Sec-WebSocket-Extensions| "indicates the use
/// of an extension that was not present in the client's handshake".
///
/// Here: any extension at all when none was offered. Whether each one answered was offered
/// is for extension negotiation, which parses both headers.
fn check_extensions(
    headers: &Headers,
    req: &ClientRequest,
) -> Result<Option<String>, HandshakeError> {
    let lines: Vec<String> = headers
        .get_all("Sec-WebSocket-Extensions")
        .map(<[u8]>::trim_ascii)
        .filter(|line| !line.is_empty())
        .map(|line| String::from_utf8_lossy(line).into_owned())
        .collect();
    if lines.is_empty() {
        return Ok(None);
    }
    let answer = lines.join(", ");
    let offered = req
        .extensions
        .as_deref()
        .is_some_and(|offer| !offer.is_empty());
    if !offered {
        return Err(HandshakeError::UnexpectedExtension(answer));
    }
    Ok(Some(answer))
}

/// RFC 6455 §4.1 item 6: fail if the response's |Sec-WebSocket-Protocol| "indicates the use of
/// a subprotocol that was not present in the client's handshake". §11.3.4: it "MUST NOT appear
/// more than once in an HTTP response".
fn check_protocol(
    headers: &Headers,
    req: &ClientRequest,
) -> Result<Option<String>, HandshakeError> {
    let Some(chosen) = single(headers, "Sec-WebSocket-Protocol")? else {
        return Ok(None);
    };
    let chosen = String::from_utf8_lossy(chosen);
    if !req.protocols.iter().any(|offered| *offered == chosen) {
        return Err(HandshakeError::UnexpectedProtocol(chosen.into_owned()));
    }
    Ok(Some(chosen.into_owned()))
}

/// RFC 7230 §3.3.2: `Content-Length = 1*DIGIT`.
fn parse_length(digits: &[u8]) -> Option<usize> {
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng as _;
    use rand::rngs::StdRng;

    use super::super::server;
    use super::*;

    const RFC_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

    /// The server handshake of RFC 6455 §1.3, byte for byte.
    const RFC_1_3_RESPONSE: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\n\
        Upgrade: websocket\r\n\
        Connection: Upgrade\r\n\
        Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
        Sec-WebSocket-Protocol: chat\r\n\
        \r\n";

    /// The client of RFC 6455 §1.3.
    fn rfc_client() -> ClientRequest {
        ClientRequest {
            origin: Some("http://example.com".into()),
            protocols: vec!["chat".into(), "superchat".into()],
            ..ClientRequest::new("server.example.com", "/chat")
        }
    }

    fn parse(wire: &[u8]) -> Response {
        let (response, len) = parse_response(wire, &Limits::default()).unwrap().unwrap();
        assert_eq!(len, wire.len());
        response
    }

    /// The RFC 6455 §1.3 response with `from` replaced by `to`.
    fn rfc_response_with(from: &str, to: &str) -> Response {
        let wire = std::str::from_utf8(RFC_1_3_RESPONSE).unwrap();
        assert!(wire.contains(from), "{from:?} not in the response");
        parse(wire.replacen(from, to, 1).as_bytes())
    }

    fn text(wire: &[u8]) -> &str {
        std::str::from_utf8(wire).unwrap()
    }

    #[test]
    fn rfc6455_4_1_request_wire_bytes() {
        let wire = encode_request(&rfc_client(), RFC_KEY).unwrap();
        assert_eq!(
            text(&wire),
            "GET /chat HTTP/1.1\r\n\
             Host: server.example.com\r\n\
             Upgrade: websocket\r\n\
             Connection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n\
             Origin: http://example.com\r\n\
             Sec-WebSocket-Protocol: chat, superchat\r\n\
             \r\n"
        );
    }

    #[test]
    fn rfc6455_4_1_minimal_request_with_extensions_and_extra_headers() {
        let req = ClientRequest {
            extensions: Some("permessage-deflate; client_max_window_bits".into()),
            headers: vec![("Authorization".into(), "Bearer t0k3n".into())],
            ..ClientRequest::new("example.com:8080", "")
        };
        assert_eq!(
            text(&encode_request(&req, RFC_KEY).unwrap()),
            "GET / HTTP/1.1\r\n\
             Host: example.com:8080\r\n\
             Upgrade: websocket\r\n\
             Connection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\
             Authorization: Bearer t0k3n\r\n\
             \r\n"
        );
    }

    #[test]
    fn rfc6455_1_3_example_response_is_accepted() {
        let accepted = validate_response(&parse(RFC_1_3_RESPONSE), RFC_KEY, &rfc_client());
        assert_eq!(
            accepted,
            Ok(Accepted {
                protocol: Some("chat".into()),
                extensions: None,
            })
        );
    }

    #[test]
    fn rfc6455_1_3_round_trip_in_memory() {
        let client = ClientRequest {
            extensions: Some("permessage-deflate".into()),
            ..rfc_client()
        };
        let key = new_key();
        let request_wire = encode_request(&client, &key).unwrap();

        let (request, consumed) = server::parse_request(&request_wire, &Limits::default())
            .unwrap()
            .unwrap();
        assert_eq!(consumed, request_wire.len());
        let valid = server::validate(&request).unwrap();
        assert_eq!(request.extensions(), [b"permessage-deflate"]);
        let accept = server::Accept {
            protocol: server::select_protocol(valid.protocols(), &["superchat", "chat"]),
            extensions: Some("permessage-deflate".into()),
            headers: Vec::new(),
        };
        let mut response_wire = server::accept_response(&valid, &accept).unwrap();
        let head_len = response_wire.len();
        // The server's first frame arrives in the same read as the 101.
        response_wire.extend_from_slice(&[0x81, 0x02, b'h', b'i']);

        let (response, consumed) = parse_response(&response_wire, &Limits::default())
            .unwrap()
            .unwrap();
        assert_eq!(consumed, head_len);
        assert_eq!(&response_wire[consumed..], [0x81, 0x02, b'h', b'i']);
        assert_eq!(
            validate_response(&response, &key, &client),
            Ok(Accepted {
                protocol: Some("superchat".into()),
                extensions: Some("permessage-deflate".into()),
            })
        );
    }

    #[test]
    fn rfc6455_4_1_incomplete_response_is_none() {
        for end in 0..RFC_1_3_RESPONSE.len() {
            let prefix = &RFC_1_3_RESPONSE[..end];
            assert_eq!(
                parse_response(prefix, &Limits::default()),
                Ok(None),
                "{end}"
            );
        }
    }

    #[test]
    fn limits_response_head_too_large_and_too_many_headers() {
        let small = Limits {
            max_head_bytes: 32,
            ..Limits::default()
        };
        assert_eq!(
            parse_response(&RFC_1_3_RESPONSE[..32], &small),
            Err(HandshakeError::HeadTooLarge)
        );
        let few = Limits {
            max_headers: 3,
            ..Limits::default()
        };
        assert_eq!(
            parse_response(RFC_1_3_RESPONSE, &few),
            Err(HandshakeError::TooManyHeaders)
        );
    }

    #[test]
    fn rfc6455_4_1_status_403_fails_with_body_length() {
        let wire = b"HTTP/1.1 403 Forbidden\r\n\
            Content-Type: text/plain\r\n\
            Content-Length: 10\r\n\
            \r\n\
            go away!\r\n";
        let (response, consumed) = parse_response(wire, &Limits::default()).unwrap().unwrap();
        assert_eq!(
            (response.status, response.reason.as_str()),
            (403, "Forbidden")
        );
        assert_eq!(response.content_length(), Some(wire.len() - consumed));
        assert_eq!(
            validate_response(&response, RFC_KEY, &rfc_client()),
            Err(HandshakeError::NotSwitchingProtocols { status: 403 })
        );
    }

    #[test]
    fn rfc7230_3_3_3_content_length_edge_cases() {
        let length = |lines: &[(&str, &str)]| {
            Response {
                status: 400,
                reason: String::new(),
                headers: lines.iter().map(|&(name, value)| (name, value)).collect(),
            }
            .content_length()
        };
        assert_eq!(length(&[]), None);
        assert_eq!(length(&[("Content-Length", "7, 7")]), Some(7));
        assert_eq!(
            length(&[("Content-Length", "7"), ("Content-Length", "8")]),
            None
        );
        assert_eq!(length(&[("Content-Length", "+7")]), None);
        assert_eq!(
            length(&[("Content-Length", "7"), ("Transfer-Encoding", "chunked")]),
            None
        );
    }

    #[test]
    fn rfc6455_4_1_wrong_accept_fails() {
        let response = rfc_response_with(
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        );
        assert_eq!(
            validate_response(&response, RFC_KEY, &rfc_client()),
            Err(HandshakeError::BadAccept)
        );
        let other_key = new_key();
        assert_eq!(
            validate_response(&parse(RFC_1_3_RESPONSE), &other_key, &rfc_client()),
            Err(HandshakeError::BadAccept)
        );
    }

    #[test]
    fn rfc6455_4_1_missing_accept_fails() {
        let response =
            rfc_response_with("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n", "");
        assert_eq!(
            validate_response(&response, RFC_KEY, &rfc_client()),
            Err(HandshakeError::MissingAccept)
        );
    }

    #[test]
    fn rfc6455_4_1_upgrade_must_be_websocket() {
        let cases = [
            ("Upgrade: websocket\r\n", ""),
            ("Upgrade: websocket", "Upgrade: h2c"),
            ("Upgrade: websocket", "Upgrade: websocket, h2c"),
        ];
        for (from, to) in cases {
            assert_eq!(
                validate_response(&rfc_response_with(from, to), RFC_KEY, &rfc_client()),
                Err(HandshakeError::MissingUpgradeInResponse),
                "{to:?}"
            );
        }
        let mixed_case = rfc_response_with("Upgrade: websocket", "upgrade: WebSocket");
        assert!(validate_response(&mixed_case, RFC_KEY, &rfc_client()).is_ok());
    }

    #[test]
    fn rfc6455_4_1_connection_must_include_upgrade() {
        let response = rfc_response_with("Connection: Upgrade", "Connection: keep-alive");
        assert_eq!(
            validate_response(&response, RFC_KEY, &rfc_client()),
            Err(HandshakeError::MissingConnectionUpgradeInResponse)
        );
        let listed = rfc_response_with("Connection: Upgrade", "Connection: keep-alive, UPGRADE");
        assert!(validate_response(&listed, RFC_KEY, &rfc_client()).is_ok());
    }

    #[test]
    fn rfc6455_4_1_unoffered_protocol_fails() {
        let response = rfc_response_with(
            "Sec-WebSocket-Protocol: chat",
            "Sec-WebSocket-Protocol: mqtt",
        );
        assert_eq!(
            validate_response(&response, RFC_KEY, &rfc_client()),
            Err(HandshakeError::UnexpectedProtocol("mqtt".into()))
        );
        let offered_none = ClientRequest::new("server.example.com", "/chat");
        assert_eq!(
            validate_response(&parse(RFC_1_3_RESPONSE), RFC_KEY, &offered_none),
            Err(HandshakeError::UnexpectedProtocol("chat".into()))
        );
    }

    #[test]
    fn rfc6455_11_3_4_protocol_twice_in_response_fails() {
        let response = rfc_response_with(
            "Sec-WebSocket-Protocol: chat\r\n",
            "Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Protocol: chat\r\n",
        );
        assert_eq!(
            validate_response(&response, RFC_KEY, &rfc_client()),
            Err(HandshakeError::DuplicateHeader("Sec-WebSocket-Protocol"))
        );
    }

    #[test]
    fn rfc6455_4_1_unoffered_extension_fails() {
        let response = rfc_response_with(
            "\r\n\r\n",
            "\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
        );
        assert_eq!(
            validate_response(&response, RFC_KEY, &rfc_client()),
            Err(HandshakeError::UnexpectedExtension(
                "permessage-deflate".into()
            ))
        );
    }

    #[test]
    fn rfc6455_4_1_key_is_16_random_bytes() {
        let key = new_key();
        assert_eq!(BASE64.decode(&key).unwrap().len(), 16);
        assert_ne!(key, new_key());
        let seeded = |seed| new_key_with(&mut StdRng::seed_from_u64(seed));
        assert_eq!(seeded(7), seeded(7));
        assert_ne!(seeded(7), seeded(8));
    }

    #[test]
    fn rfc7230_3_2_request_refuses_header_injection() {
        let encode = |edit: fn(&mut ClientRequest)| {
            let mut req = rfc_client();
            edit(&mut req);
            encode_request(&req, RFC_KEY)
        };
        assert_eq!(
            encode(|req| req.host = "example.com\r\nX-Evil: 1".into()),
            Err(EncodeError::HeaderValue("Host".into()))
        );
        assert_eq!(
            encode(|req| req.host = String::new()),
            Err(EncodeError::HeaderValue("Host".into()))
        );
        assert_eq!(
            encode(|req| req.origin = Some("http://a\nX: y".into())),
            Err(EncodeError::HeaderValue("Origin".into()))
        );
        assert_eq!(
            encode(|req| req.target = "/chat HTTP/1.1\r\nX: y\r\n\r\nGET /".into()),
            Err(EncodeError::Target(
                "/chat HTTP/1.1\r\nX: y\r\n\r\nGET /".into()
            ))
        );
        assert_eq!(
            encode(|req| req.headers = vec![("X-Id".into(), "1\r\nCookie: a=b".into())]),
            Err(EncodeError::HeaderValue("X-Id".into()))
        );
        assert_eq!(
            encode(|req| req.headers = vec![("Sec-WebSocket-Version".into(), "8".into())]),
            Err(EncodeError::ReservedHeader("Sec-WebSocket-Version".into()))
        );
        assert_eq!(
            encode_request(&rfc_client(), "key\r\nX: y"),
            Err(EncodeError::HeaderValue("Sec-WebSocket-Key".into()))
        );
    }

    #[test]
    fn rfc6455_4_1_protocol_offer_must_be_unique_tokens() {
        let mut req = rfc_client();
        req.protocols = vec!["chat".into(), "chat, evil".into()];
        assert_eq!(
            encode_request(&req, RFC_KEY),
            Err(EncodeError::Protocol("chat, evil".into()))
        );
        req.protocols = vec!["chat".into(), "chat".into()];
        assert_eq!(
            encode_request(&req, RFC_KEY),
            Err(EncodeError::Protocol("chat".into()))
        );
    }
}
