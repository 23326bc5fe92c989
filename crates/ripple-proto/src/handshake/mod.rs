//! The opening handshake of RFC 6455 §4, for both roles, sans-I/O.
//!
//! Nothing here reads a socket. The I/O layer buffers bytes and hands them in; these functions
//! parse, validate and encode HTTP/1.1 heads:
//!
//! ```text
//!  client                                             server
//!  client::encode_request ──── GET … Upgrade ────▶   server::parse_request → server::validate
//!                                                     server::accept_response (101)
//!  client::parse_response ◀─── HTTP/1.1 101 … ────    or server::error_response / reject_response
//!  client::validate_response → Accepted
//! ```
//!
//! "Not enough bytes yet" is `Ok(None)`: nothing is consumed and the caller reads more. A
//! complete head reports its length; the bytes after it already belong to the WebSocket stream.
//!
//! Two error types, on purpose:
//! - [`HandshakeError`] is what the *peer* did wrong. [`HandshakeError::status`] is the one
//!   place that maps it to the HTTP status a server rejects with.
//! - [`EncodeError`] is what *our own caller* did wrong while asking us to write a head (a header
//!   value with CR/LF in it, a subprotocol the client never offered, …). Nothing is written then.

pub mod client;
pub mod server;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha1::{Digest as _, Sha1};

/// The GUID appended to `Sec-WebSocket-Key` before hashing (RFC 6455 §1.3, §4.2.2).
pub const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The only protocol version this crate speaks (RFC 6455 §4.1: "The value of this header field
/// MUST be 13").
pub const VERSION: &str = "13";

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key`: base64(SHA-1(key ++ GUID)).
///
/// RFC 6455 §4.2.2 step 5.4: "A |Sec-WebSocket-Accept| header field. The value of this header
/// field is constructed by concatenating /key/ […] with the string
/// "258EAFA5-E914-47DA-95CA-C5AB0DC85B11", taking the SHA-1 hash of this concatenated value to
/// obtain a 20-byte value and base64-encoding […] this 20-byte hash."
pub fn accept_key(key: &[u8]) -> String {
    let mut sha1 = Sha1::new();
    sha1.update(key);
    sha1.update(GUID.as_bytes());
    BASE64.encode(sha1.finalize())
}

/// Bounds on an HTTP head a peer may send us. Both roles use them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most header lines accepted in one head (default 64).
    pub max_headers: usize,
    /// Most bytes in one head, request or status line through the blank line (default 16 KiB).
    pub max_head_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_headers: 64,
            max_head_bytes: 16 * 1024,
        }
    }
}

/// One header line as received: the name as sent, the raw value bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub name: String,
    pub value: Vec<u8>,
}

/// The header lines of a head, in the order received. Names compare case-insensitively.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(Vec<Header>);

impl Headers {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a header line; an existing one of the same name is kept.
    pub fn push(&mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) {
        self.0.push(Header {
            name: name.into(),
            value: value.into(),
        });
    }

    /// The value of the first `name` header, if any.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.get_all(name).next()
    }

    /// The first `name` header as text; `None` if absent or not UTF-8.
    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.get(name)
            .and_then(|value| std::str::from_utf8(value).ok())
    }

    /// Every `name` header value, in order.
    pub fn get_all<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a [u8]> {
        self.0
            .iter()
            .filter(move |header| header.name.eq_ignore_ascii_case(name))
            .map(|header| header.value.as_slice())
    }

    /// The elements of every `name` header read as one comma-separated list (RFC 7230 §7
    /// `#rule`), whitespace trimmed and empty elements skipped: "a recipient MUST parse and
    /// ignore a reasonable number of empty list elements".
    pub fn tokens<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a [u8]> {
        self.get_all(name)
            .flat_map(|value| value.split(|&byte| byte == b','))
            .map(<[u8]>::trim_ascii)
            .filter(|element| !element.is_empty())
    }

    /// Whether the `name` list (all occurrences) holds `token`, ASCII case-insensitively:
    /// `Connection: keep-alive, Upgrade` contains `upgrade`.
    pub fn contains_token(&self, name: &str, token: &str) -> bool {
        self.tokens(name)
            .any(|element| element.eq_ignore_ascii_case(token.as_bytes()))
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Header> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'a> IntoIterator for &'a Headers {
    type Item = &'a Header;
    type IntoIter = std::slice::Iter<'a, Header>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<N: Into<String>, V: Into<Vec<u8>>> FromIterator<(N, V)> for Headers {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(iter: I) -> Self {
        let mut headers = Self::new();
        headers.extend(iter);
        headers
    }
}

impl<N: Into<String>, V: Into<Vec<u8>>> Extend<(N, V)> for Headers {
    fn extend<I: IntoIterator<Item = (N, V)>>(&mut self, iter: I) {
        for (name, value) in iter {
            self.push(name, value);
        }
    }
}

/// What a peer did wrong during the opening handshake.
///
/// Server side: the request variants; reject with [`server::error_response`], which uses
/// [`HandshakeError::status`]. Client side: the response variants; the client fails the
/// connection (RFC 6455 §4.1 "the client MUST _Fail the WebSocket Connection_").
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    // Either role: the head itself.
    #[error("malformed HTTP head: {0}")]
    MalformedHttp(String),
    #[error("too many header lines")]
    TooManyHeaders,
    #[error("HTTP head too large")]
    HeadTooLarge,
    #[error("more than one \"{0}\" header")]
    DuplicateHeader(&'static str),

    // Server side: the client's request (RFC 6455 §4.2.1).
    #[error("method is not GET")]
    MethodNotGet,
    #[error("HTTP version is older than HTTP/1.1")]
    HttpVersion,
    #[error("request target is neither a path nor an absolute URI")]
    BadTarget,
    #[error("no \"Host\" header")]
    MissingHost,
    #[error("no \"Upgrade: websocket\" header")]
    MissingUpgrade,
    #[error("no \"Connection: Upgrade\" header")]
    MissingConnectionUpgrade,
    #[error("no \"Sec-WebSocket-Key\" header")]
    MissingKey,
    #[error("\"Sec-WebSocket-Key\" header is not base64 of 16 bytes")]
    BadKey,
    #[error("no \"Sec-WebSocket-Version\" header")]
    MissingVersion,
    #[error("unsupported \"Sec-WebSocket-Version\" header; only 13 is supported")]
    UnsupportedVersion,
    #[error("\"Sec-WebSocket-Protocol\" header holds a value that is not a token")]
    BadProtocolHeader,
    #[error("no \"Sec-WebSocket-Protocol\" offered is supported")]
    NoCommonProtocol,
    #[error("handshake request has a body (\"Content-Length\" or \"Transfer-Encoding\" header)")]
    RequestBody,

    // Client side: the server's response (RFC 6455 §4.1).
    #[error("server answered {status} instead of 101 Switching Protocols")]
    NotSwitchingProtocols { status: u16 },
    #[error("no \"Upgrade: websocket\" header in the response")]
    MissingUpgradeInResponse,
    #[error("no \"Connection: Upgrade\" header in the response")]
    MissingConnectionUpgradeInResponse,
    #[error("no \"Sec-WebSocket-Accept\" header in the response")]
    MissingAccept,
    #[error("\"Sec-WebSocket-Accept\" header does not match the key sent")]
    BadAccept,
    #[error("server chose \"Sec-WebSocket-Protocol: {0}\", which was not offered")]
    UnexpectedProtocol(String),
    #[error("server answered \"Sec-WebSocket-Extensions: {0}\", but none was offered")]
    UnexpectedExtension(String),
}

impl HandshakeError {
    /// The HTTP status a server answers this error with. This is the only such mapping.
    ///
    /// Response-side errors (a bad answer *to our* request) map to 502 Bad Gateway, the status
    /// a gateway answers with when the upstream handshake fails.
    pub fn status(&self) -> u16 {
        match self {
            Self::MethodNotGet => 405,
            // RFC 6455 §4.2.2: "If this version does not match a version understood by the
            // server, the server MUST abort […] and instead send an appropriate HTTP error code
            // (such as 426 Upgrade Required)".
            Self::MissingVersion | Self::UnsupportedVersion => 426,
            Self::TooManyHeaders | Self::HeadTooLarge => 431,
            Self::MalformedHttp(_)
            | Self::DuplicateHeader(_)
            | Self::HttpVersion
            | Self::BadTarget
            | Self::MissingHost
            | Self::MissingUpgrade
            | Self::MissingConnectionUpgrade
            | Self::MissingKey
            | Self::BadKey
            | Self::BadProtocolHeader
            | Self::NoCommonProtocol
            | Self::RequestBody => 400,
            Self::NotSwitchingProtocols { .. }
            | Self::MissingUpgradeInResponse
            | Self::MissingConnectionUpgradeInResponse
            | Self::MissingAccept
            | Self::BadAccept
            | Self::UnexpectedProtocol(_)
            | Self::UnexpectedExtension(_) => 502,
        }
    }
}

/// Our own caller asked for a head that would be invalid HTTP or an invalid handshake.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("header name {0:?} is not an HTTP token")]
    HeaderName(String),
    #[error("value of header {0:?} contains CR, LF or another control character")]
    HeaderValue(String),
    #[error("header {0:?} is written by the handshake itself and cannot be added")]
    ReservedHeader(String),
    #[error("request target {0:?} contains whitespace or control characters")]
    Target(String),
    #[error("subprotocol {0:?} is not an HTTP token")]
    Protocol(String),
    #[error("subprotocol {0:?} was not offered by the client")]
    ProtocolNotOffered(String),
    #[error("status {0} cannot reject a handshake (use 200..=599)")]
    Status(u16),
}

/// The standard reason phrase for `status`, or `""` (which HTTP/1.1 allows) if unknown.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "",
    }
}

/// Maps httparse's verdict on a buffer of `buffered` bytes onto our contract: `Ok(None)` while
/// the head is incomplete and still within `max_head_bytes`, its length once complete.
fn head_len(
    parsed: httparse::Result<usize>,
    buffered: usize,
    limits: &Limits,
) -> Result<Option<usize>, HandshakeError> {
    match parsed {
        Ok(httparse::Status::Complete(len)) if len > limits.max_head_bytes => {
            Err(HandshakeError::HeadTooLarge)
        }
        Ok(httparse::Status::Complete(len)) => Ok(Some(len)),
        // Everything buffered is head so far; the blank line is still to come.
        Ok(httparse::Status::Partial) if buffered >= limits.max_head_bytes => {
            Err(HandshakeError::HeadTooLarge)
        }
        Ok(httparse::Status::Partial) => Ok(None),
        Err(httparse::Error::TooManyHeaders) => Err(HandshakeError::TooManyHeaders),
        Err(other) => Err(HandshakeError::MalformedHttp(other.to_string())),
    }
}

fn collect_headers(raw: &[httparse::Header<'_>]) -> Headers {
    raw.iter()
        .map(|header| (header.name, header.value))
        .collect()
}

/// The value of `name`, trimmed, if it appears at most once.
///
/// Used for the headers RFC 6455 §11.3 says "MUST NOT appear more than once".
fn single<'a>(
    headers: &'a Headers,
    name: &'static str,
) -> Result<Option<&'a [u8]>, HandshakeError> {
    let mut values = headers.get_all(name);
    let first = values.next();
    if values.next().is_some() {
        return Err(HandshakeError::DuplicateHeader(name));
    }
    Ok(first.map(<[u8]>::trim_ascii))
}

/// RFC 7230 §3.2.6 `tchar`.
fn is_tchar(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

/// RFC 7230 §3.2.6 `token = 1*tchar`; also the syntax of a subprotocol name (RFC 6455 §4.1).
fn is_token(text: &[u8]) -> bool {
    !text.is_empty() && text.iter().all(|&byte| is_tchar(byte))
}

/// RFC 7230 §3.2 `field-value`: no CR, LF or other control character except HTAB. This is
/// what stops a caller's value from smuggling in a header line of its own.
fn is_field_value(text: &str) -> bool {
    text.bytes()
        .all(|byte| byte == b'\t' || (byte >= 0x20 && byte != 0x7f))
}

/// A head under construction: start line, header lines, blank line.
struct HeadWriter(Vec<u8>);

impl HeadWriter {
    fn new(start_line: &str) -> Self {
        let mut head = Self(Vec::with_capacity(256));
        head.line(start_line);
        head
    }

    fn line(&mut self, text: &str) {
        self.0.extend_from_slice(text.as_bytes());
        self.0.extend_from_slice(b"\r\n");
    }

    /// Writes a header the handshake itself chose; its name and value are known to be valid.
    fn header(&mut self, name: &str, value: &str) {
        self.0.extend_from_slice(name.as_bytes());
        self.0.extend_from_slice(b": ");
        self.line(value);
    }

    /// Writes a header whose value came from our caller, refusing CR/LF and friends.
    fn checked_header(&mut self, name: &str, value: &str) -> Result<(), EncodeError> {
        if !is_field_value(value) {
            return Err(EncodeError::HeaderValue(name.to_owned()));
        }
        self.header(name, value);
        Ok(())
    }

    /// Writes our caller's extra headers, none of which may be one the handshake owns.
    fn extra_headers(
        &mut self,
        headers: &[(String, String)],
        reserved: &[&str],
    ) -> Result<(), EncodeError> {
        for (name, value) in headers {
            if !is_token(name.as_bytes()) {
                return Err(EncodeError::HeaderName(name.clone()));
            }
            if reserved
                .iter()
                .any(|owned| owned.eq_ignore_ascii_case(name))
            {
                return Err(EncodeError::ReservedHeader(name.clone()));
            }
            self.checked_header(name, value)?;
        }
        Ok(())
    }

    fn finish(mut self) -> Vec<u8> {
        self.0.extend_from_slice(b"\r\n");
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6455_1_3_accept_key_example() {
        assert_eq!(
            accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn limits_defaults() {
        let limits = Limits::default();
        assert_eq!((limits.max_headers, limits.max_head_bytes), (64, 16384));
    }

    fn headers(lines: &[(&str, &str)]) -> Headers {
        lines.iter().map(|&(name, value)| (name, value)).collect()
    }

    #[test]
    fn headers_get_is_case_insensitive_and_returns_first() {
        let headers = headers(&[("X-Thing", "one"), ("x-thing", "two")]);
        assert_eq!(headers.get("X-THING"), Some(&b"one"[..]));
        assert_eq!(headers.get_str("x-thing"), Some("one"));
        assert_eq!(
            headers.get_all("x-Thing").collect::<Vec<_>>(),
            [b"one", b"two"]
        );
        assert_eq!(headers.get("missing"), None);
        assert_eq!(headers.len(), 2);
    }

    #[test]
    fn rfc7230_7_token_list_mixed_case_across_lines() {
        let headers = headers(&[
            ("Connection", "keep-alive, Upgrade"),
            ("connection", "close"),
        ]);
        assert!(headers.contains_token("connection", "upgrade"));
        assert!(headers.contains_token("CONNECTION", "Close"));
        assert!(headers.contains_token("Connection", "KEEP-ALIVE"));
        assert!(!headers.contains_token("Connection", "keep"));
        assert!(!headers.contains_token("Upgrade", "upgrade"));
    }

    #[test]
    fn rfc7230_7_empty_list_elements_are_ignored() {
        let headers = headers(&[("Upgrade", " ,, websocket ,\t, ")]);
        assert_eq!(
            headers.tokens("upgrade").collect::<Vec<_>>(),
            [b"websocket"]
        );
        assert!(headers.contains_token("Upgrade", "WebSocket"));
    }

    #[test]
    fn rfc6455_11_3_single_header_rejects_duplicates() {
        let twice = headers(&[("Sec-WebSocket-Key", "a"), ("sec-websocket-key", "b")]);
        assert_eq!(
            single(&twice, "Sec-WebSocket-Key"),
            Err(HandshakeError::DuplicateHeader("Sec-WebSocket-Key"))
        );
        let once = headers(&[("Sec-WebSocket-Key", " a \t")]);
        assert_eq!(single(&once, "Sec-WebSocket-Key"), Ok(Some(&b"a"[..])));
    }

    #[test]
    fn status_mapping() {
        assert_eq!(HandshakeError::MethodNotGet.status(), 405);
        assert_eq!(HandshakeError::UnsupportedVersion.status(), 426);
        assert_eq!(HandshakeError::MissingVersion.status(), 426);
        assert_eq!(HandshakeError::TooManyHeaders.status(), 431);
        assert_eq!(HandshakeError::HeadTooLarge.status(), 431);
        assert_eq!(HandshakeError::MissingKey.status(), 400);
        assert_eq!(HandshakeError::BadAccept.status(), 502);
    }

    #[test]
    fn rfc7230_3_2_field_values_refuse_line_breaks() {
        assert!(is_field_value("text/plain; charset=utf-8\tok é"));
        assert!(!is_field_value("x\r\nSet-Cookie: a=b"));
        assert!(!is_field_value("x\nY: z"));
        assert!(!is_field_value("nul\0"));
        assert!(is_token(b"chat.v2"));
        assert!(!is_token(b"chat v2"));
        assert!(!is_token(b""));
        assert!(!is_token(b"a,b"));
    }
}
