//! Errors of the async layer. Protocol failures come from the core; this adds I/O, TLS, URLs,
//! timeouts and handshake rejections.

use std::io;

use proto::handshake::{EncodeError, HandshakeError};
use proto::{CloseFrame, ProtocolError, SendError};

/// What went wrong on a connection or while opening one.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The socket failed.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    /// The URL is not a usable `ws://` or `wss://` URL.
    #[error("invalid URL: {0}")]
    Url(String),
    /// TLS could not be set up (bad certificate file, unknown server name, …).
    #[error("TLS error: {0}")]
    Tls(String),
    /// The opening handshake broke RFC 6455.
    #[error("handshake failed: {0}")]
    Handshake(#[from] HandshakeError),
    /// The application supplied a header, subprotocol or status that cannot go in a handshake.
    #[error("invalid handshake input: {0}")]
    Encode(#[from] EncodeError),
    /// The server answered the opening handshake with something other than 101.
    #[error("server rejected the WebSocket handshake with HTTP {status}")]
    Rejected {
        /// The HTTP status.
        status: u16,
        /// The response headers, as (name, value) pairs.
        headers: Vec<(String, String)>,
        /// The response body (truncated to 64 KiB).
        body: Vec<u8>,
    },
    /// The peer broke the protocol; the connection was failed with the matching close code.
    #[error("protocol error: {0}")]
    Protocol(#[from] ProtocolError),
    /// The connection is closed: no more messages can be sent. Carries the close frame the
    /// peer sent, if any.
    #[error("connection closed{}", closed_suffix(.0))]
    Closed(Option<CloseFrame>),
    /// The transport ended without a closing handshake (close code 1006).
    #[error("connection closed abnormally (1006): the transport ended without a close frame")]
    AbnormalClosure,
    /// The peer stopped answering keepalive pings; the connection was closed with 1011.
    #[error("keepalive ping timeout")]
    KeepaliveTimeout,
    /// An opening or closing handshake took longer than its timeout.
    #[error("{0} timed out")]
    Timeout(&'static str),
    /// The application asked for something the connection cannot do.
    #[error(transparent)]
    Send(SendError),
}

impl From<SendError> for Error {
    fn from(err: SendError) -> Self {
        match err {
            SendError::Closed => Self::Closed(None),
            other => Self::Send(other),
        }
    }
}

fn closed_suffix(frame: &Option<CloseFrame>) -> String {
    match frame {
        Some(frame) => format!(" by the peer with {} {:?}", frame.code, frame.reason),
        None => String::new(),
    }
}

/// A `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
