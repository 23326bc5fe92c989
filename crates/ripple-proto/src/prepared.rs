//! Encode once, send many: a message framed (and compressed) once for every receiver of a
//! broadcast.

use bytes::{Bytes, BytesMut};

use crate::extension::deflate::{DeflateConfig, compress_standalone};
use crate::frame::{OpCode, RSV1, encode_frame};
use crate::message::Message;

/// A message already framed for the server role: the frame bytes are shared (`Bytes`) by every
/// connection it is sent on, and so is its compressed form.
///
/// The compressed frame is made without context and with a 15-bit window, so it fits every
/// connection that agreed to `server_no_context_takeover` with a full window — what a Ripple
/// server negotiates unless the client asks for a smaller one. Other connections compress the
/// message themselves, or get the plain frame.
#[derive(Clone, Debug)]
pub struct PreparedMessage {
    message: Message,
    plain: Bytes,
    deflated: Option<Bytes>,
}

impl PreparedMessage {
    /// Frames `message`, and compresses it too when `deflate` is given and it is worth it.
    pub fn new(message: Message, deflate: Option<&DeflateConfig>) -> Self {
        let opcode = if message.is_text() {
            OpCode::Text
        } else {
            OpCode::Binary
        };
        let payload = message.as_bytes();
        let plain = frame(opcode, 0, payload);
        let deflated = deflate
            .and_then(|config| compress_standalone(payload, config))
            .filter(|compressed| compressed.len() < payload.len())
            .map(|compressed| frame(opcode, RSV1, &compressed));
        Self {
            message,
            plain,
            deflated,
        }
    }

    /// The message.
    pub fn message(&self) -> &Message {
        &self.message
    }

    /// The uncompressed frame.
    pub fn plain_frame(&self) -> &Bytes {
        &self.plain
    }

    /// The compressed frame, if compression was asked for and helped.
    pub fn deflated_frame(&self) -> Option<&Bytes> {
        self.deflated.as_ref()
    }
}

fn frame(opcode: OpCode, rsv: u8, payload: &[u8]) -> Bytes {
    let mut buf = BytesMut::new();
    encode_frame(&mut buf, opcode, true, rsv, None, payload);
    buf.freeze()
}
