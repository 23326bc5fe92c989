//! The extension point (RFC 6455 §9): how a negotiated extension such as permessage-deflate
//! (RFC 7692) claims RSV bits and transforms message payloads.
//!
//! Negotiation happens during the opening handshake (the `handshake` module carries the
//! `Sec-WebSocket-Extensions` values); its outcome is an [`Extension`] handed to the
//! [`Connection`](crate::Connection), which routes every data message through it.

use std::fmt;

use bytes::BytesMut;

use crate::error::{ProtocolError, SendError};
use crate::frame::OpCode;

/// A negotiated extension that transforms whole data messages.
pub trait Extension: Send + fmt::Debug {
    /// The RSV bits (as in [`FrameHeader::rsv`](crate::FrameHeader::rsv)) this extension gives a
    /// meaning to on the first frame of a data message. Any other set bit, and any bit on
    /// continuation or control frames, fails the connection.
    fn rsv_bits(&self) -> u8;

    /// Starts an incoming message whose first frame carried `rsv` (already checked against
    /// [`Extension::rsv_bits`]). Returns whether the payload must go through
    /// [`Extension::decode`].
    fn decode_begin(&mut self, rsv: u8) -> bool;

    /// Decodes the next piece of a transformed message, appending to `out`. `fin` marks the last
    /// piece. Must stop with [`ProtocolError::MessageTooBig`] as soon as `out` would pass `max`:
    /// the limit holds while decoding, not after.
    fn decode(
        &mut self,
        input: &[u8],
        fin: bool,
        out: &mut BytesMut,
        max: usize,
    ) -> Result<(), ProtocolError>;

    /// Encodes a whole outgoing message into `out`. Returns the RSV bits for its first frame, or
    /// `None` to send the payload untransformed (with `out` left untouched).
    fn encode(
        &mut self,
        opcode: OpCode,
        payload: &[u8],
        out: &mut BytesMut,
    ) -> Result<Option<u8>, SendError>;

    /// Whether a message transformed once, without context and with this window (see
    /// [`PreparedMessage`](crate::PreparedMessage)), can be sent as is on this connection.
    fn shares_output(&self, window_bits: u8) -> bool {
        let _ = window_bits;
        false
    }
}

pub mod deflate;

/// One element of a `Sec-WebSocket-Extensions` list: a name and its parameters, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtensionItem {
    /// The extension token, e.g. `permessage-deflate`.
    pub name: String,
    /// `(name, value)` pairs; `None` for a parameter without `=value`.
    pub params: Vec<(String, Option<String>)>,
}

/// A `Sec-WebSocket-Extensions` value that does not follow the RFC 6455 §9.1 grammar.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed Sec-WebSocket-Extensions header: {0}")]
pub struct ExtensionSyntaxError(pub String);

/// Parses a `Sec-WebSocket-Extensions` value (RFC 6455 §9.1):
///
/// ```text
/// extension-list = 1#extension
/// extension      = extension-token *( ";" extension-param )
/// extension-param = token [ "=" (token | quoted-string) ]
/// ```
pub fn parse_extensions(value: &str) -> Result<Vec<ExtensionItem>, ExtensionSyntaxError> {
    let mut items = Vec::new();
    for element in split_unquoted(value, ',') {
        let element = element.trim();
        if element.is_empty() {
            continue; // RFC 7230 §7: empty list elements are ignored.
        }
        let mut parts = split_unquoted(element, ';').into_iter();
        let name = parts.next().unwrap_or_default().trim();
        if !is_token(name) {
            return Err(ExtensionSyntaxError(format!("bad extension name {name:?}")));
        }
        let params = parts.map(parse_param).collect::<Result<_, _>>()?;
        items.push(ExtensionItem {
            name: name.to_owned(),
            params,
        });
    }
    Ok(items)
}

fn parse_param(param: &str) -> Result<(String, Option<String>), ExtensionSyntaxError> {
    let (name, value) = match param.split_once('=') {
        Some((name, value)) => (name.trim(), Some(value.trim())),
        None => (param.trim(), None),
    };
    if !is_token(name) {
        return Err(ExtensionSyntaxError(format!("bad parameter name {name:?}")));
    }
    let value = match value {
        None => None,
        Some(quoted) if quoted.len() >= 2 && quoted.starts_with('"') && quoted.ends_with('"') => {
            // RFC 6455 §9.1: a quoted value must still be a token once unquoted.
            let inner = &quoted[1..quoted.len() - 1];
            if !is_token(inner) {
                return Err(ExtensionSyntaxError(format!("bad quoted value {quoted:?}")));
            }
            Some(inner.to_owned())
        }
        Some(token) if is_token(token) => Some(token.to_owned()),
        Some(other) => {
            return Err(ExtensionSyntaxError(format!(
                "bad parameter value {other:?}"
            )));
        }
    };
    Ok((name.to_ascii_lowercase(), value))
}

/// Splits on `sep` outside double quotes.
fn split_unquoted(text: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted) = (0, false);
    for (i, c) in text.char_indices() {
        match c {
            '"' => quoted = !quoted,
            c if c == sep && !quoted => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

/// RFC 7230 §3.2.6 token.
fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6455_9_1_lists_params_and_quotes() {
        let items = parse_extensions(
            "permessage-deflate; client_max_window_bits, permessage-deflate;server_max_window_bits=\"10\" , foo",
        )
        .unwrap();
        assert_eq!(items.len(), 3);
        assert_eq!(
            items[0].params,
            vec![("client_max_window_bits".to_owned(), None)]
        );
        assert_eq!(
            items[1].params,
            vec![("server_max_window_bits".to_owned(), Some("10".to_owned()))]
        );
        assert_eq!(items[2].name, "foo");
    }

    #[test]
    fn malformed_values_are_rejected() {
        for bad in [
            "permessage-deflate; x=\"a b\"",
            "per message",
            "permessage-deflate; =1",
            "a; b=c d",
        ] {
            assert!(parse_extensions(bad).is_err(), "{bad}");
        }
    }
}
