//! What a peer can do wrong on an open connection, what the application can misuse, and the one
//! place where a peer error becomes a close code.

use crate::close::CloseCode;

/// The peer broke RFC 6455 (or a limit) on an open connection.
///
/// The connection fails with the close code from [`ProtocolError::close_code`]; this is the only
/// mapping from errors to codes.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// The frame used an opcode RFC 6455 reserves (0x3–0x7, 0xB–0xF).
    #[error("reserved opcode {0:#x}")]
    ReservedOpcode(u8),
    /// A reserved bit was set that no negotiated extension claims.
    #[error("reserved bits {0:#05b} set without an extension that defines them")]
    ReservedBits(u8),
    /// A control frame had FIN clear.
    #[error("fragmented control frame")]
    FragmentedControl,
    /// A control frame carried more than 125 bytes.
    #[error("control frame payload of {0} bytes (at most 125)")]
    ControlTooLong(u64),
    /// A length was encoded in more bytes than it needs.
    #[error("payload length {0} not encoded in the minimal number of bytes")]
    NonMinimalLength(u64),
    /// A 64-bit length had its most significant bit set.
    #[error("payload length with the most significant bit set")]
    LengthTooLarge,
    /// A client sent an unmasked frame to a server.
    #[error("client frame was not masked")]
    UnmaskedFrame,
    /// A server sent a masked frame to a client.
    #[error("server frame was masked")]
    MaskedFrame,
    /// A continuation frame arrived with no fragmented message in progress.
    #[error("continuation frame without a message to continue")]
    UnexpectedContinuation,
    /// A new data frame arrived while a fragmented message was still open.
    #[error("new data frame while a fragmented message is incomplete")]
    ExpectedContinuation,
    /// A text message, or part of one, was not UTF-8.
    #[error("text message is not valid UTF-8")]
    InvalidUtf8,
    /// A close frame carried a 1-byte payload.
    #[error("close frame payload of 1 byte")]
    CloseTooShort,
    /// A close frame carried a code that may not be sent.
    #[error("close code {0} may not be sent")]
    InvalidCloseCode(u16),
    /// A close frame's reason was not UTF-8.
    #[error("close reason is not valid UTF-8")]
    InvalidCloseReason,
    /// A frame was larger than the configured maximum.
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    FrameTooBig {
        /// The frame's payload length.
        len: u64,
        /// The configured limit.
        max: usize,
    },
    /// A message grew past the configured maximum.
    #[error("message exceeds the limit of {max} bytes")]
    MessageTooBig {
        /// The configured limit.
        max: usize,
    },
    /// A message arrived in more frames than the configured maximum (for example, endless
    /// empty continuation frames).
    #[error("message sent in more than {max} frames")]
    TooManyFrames {
        /// The configured limit.
        max: usize,
    },
    /// A negotiated extension rejected the data (for example, corrupt compressed data).
    #[error("extension error: {0}")]
    Extension(String),
}

impl ProtocolError {
    /// The close code RFC 6455 §7.4.1 prescribes for this failure.
    pub fn close_code(&self) -> CloseCode {
        match self {
            Self::InvalidUtf8 | Self::InvalidCloseReason => CloseCode::INVALID_PAYLOAD,
            Self::FrameTooBig { .. } | Self::MessageTooBig { .. } | Self::TooManyFrames { .. } => {
                CloseCode::MESSAGE_TOO_BIG
            }
            _ => CloseCode::PROTOCOL_ERROR,
        }
    }
}

/// The application asked for something the connection cannot do.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The connection is closing or closed: no more data or control frames may be sent.
    #[error("the connection is closed")]
    Closed,
    /// A ping or pong payload longer than 125 bytes.
    #[error("control frame payload of {0} bytes (at most 125)")]
    ControlTooLong(usize),
    /// A close code that may not appear on the wire (1005, 1006, 1015, < 1000, …).
    #[error("close code {0} may not be sent")]
    InvalidCloseCode(u16),
    /// A close reason longer than 123 bytes.
    #[error("close reason of {0} bytes (at most 123)")]
    ReasonTooLong(usize),
    /// A close reason without a status code (RFC 6455 §5.5.1: the reason follows the code).
    #[error("a close reason needs a status code")]
    ReasonWithoutCode,
    /// A fragment sent out of order (a continuation with no message open, or a new message
    /// while one is open).
    #[error("fragment out of sequence")]
    FragmentOutOfSequence,
    /// The extension failed to transform the message.
    #[error("extension error: {0}")]
    Extension(String),
}
