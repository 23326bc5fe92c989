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
}
