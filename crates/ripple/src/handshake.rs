//! The opening handshake over a real stream: read the HTTP head, hand it to the core's
//! validators, write the answer. The rules themselves live in `ripple_proto::handshake`.

use bytes::BytesMut;
use proto::handshake::{HandshakeError, Headers};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::error::{Error, Result};

/// What the opening handshake settled, kept for the application.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct HandshakeInfo {
    /// The request target (path and query) the client asked for.
    pub target: String,
    /// The client's request headers (on the server side), or the server's response headers (on
    /// the client side).
    pub headers: Headers,
    /// The negotiated subprotocol.
    pub protocol: Option<String>,
    /// The negotiated `Sec-WebSocket-Extensions` value.
    pub extensions: Option<String>,
}

impl HandshakeInfo {
    /// The path part of the target.
    pub fn path(&self) -> &str {
        self.target
            .split_once('?')
            .map_or(self.target.as_str(), |(path, _)| path)
    }

    /// The query part of the target, without the `?`.
    pub fn query(&self) -> Option<&str> {
        self.target.split_once('?').map(|(_, query)| query)
    }
}

/// Reads until `parse` finds a complete head; returns it and the bytes it spans. Bytes after the
/// head stay in `buf` for the WebSocket stream.
pub(crate) async fn read_head<S, T>(
    io: &mut S,
    buf: &mut BytesMut,
    parse: impl Fn(&[u8]) -> Result<Option<(T, usize)>, HandshakeError>,
) -> Result<(T, usize)>
where
    S: AsyncRead + Unpin,
{
    loop {
        if let Some(parsed) = parse(buf)? {
            return Ok(parsed);
        }
        buf.reserve(1024);
        if io.read_buf(buf).await? == 0 {
            return Err(Error::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
    }
}
