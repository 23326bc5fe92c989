//! Message payloads that identify themselves: each carries its sequence number, so that an echo
//! that is lost, reordered, truncated or corrupted is caught.

use bytes::{Bytes, BytesMut};
use ripple::{Message, Utf8Bytes};

/// The most leading bytes that hold the sequence number (16 hex digits).
const STAMP: usize = 16;

/// The messages of one connection: a fixed ASCII body with the sequence number stamped in
/// front (ASCII, so that text messages are valid UTF-8 too).
#[derive(Clone, Debug)]
pub(crate) struct Payloads {
    template: Bytes,
    text: bool,
}

impl Payloads {
    pub(crate) fn new(connection: usize, size: usize, text: bool) -> Self {
        let template = (0..size)
            .map(|i| b'a' + ((i + connection) % 26) as u8)
            .collect::<Vec<u8>>();
        Self {
            template: template.into(),
            text,
        }
    }

    /// Message number `seq`.
    pub(crate) fn message(&self, seq: u64) -> Message {
        let mut buf = BytesMut::with_capacity(self.template.len());
        buf.extend_from_slice(&self.template);
        let width = self.stamp_width();
        buf[..width].copy_from_slice(&stamp(seq)[STAMP - width..]);
        let bytes = buf.freeze();
        if self.text {
            // ASCII throughout, so this never falls back to binary.
            match Utf8Bytes::try_from_bytes(bytes) {
                Ok(text) => Message::Text(text),
                Err(bytes) => Message::Binary(bytes),
            }
        } else {
            Message::Binary(bytes)
        }
    }

    /// Whether `message` is the echo of message number `seq`; the reason when not.
    pub(crate) fn check(&self, seq: u64, message: &Message) -> Result<(), String> {
        if message.is_text() != self.text {
            return Err(format!("message {seq}: echoed with the wrong type"));
        }
        let got = message.as_bytes();
        if got.len() != self.template.len() {
            let (len, want) = (got.len(), self.template.len());
            return Err(format!("message {seq}: echoed {len} bytes, sent {want}"));
        }
        let width = self.stamp_width();
        if got[..width] != stamp(seq)[STAMP - width..] {
            let head = String::from_utf8_lossy(&got[..width]);
            return Err(format!("message {seq}: echo carries sequence {head:?}"));
        }
        if got[width..] != self.template[width..] {
            return Err(format!("message {seq}: echoed payload differs"));
        }
        Ok(())
    }

    fn stamp_width(&self) -> usize {
        self.template.len().min(STAMP)
    }
}

/// `seq` as 16 lowercase hex digits.
fn stamp(seq: u64) -> [u8; STAMP] {
    let mut out = [0u8; STAMP];
    for (i, slot) in out.iter_mut().enumerate() {
        let nibble = (seq >> (4 * (STAMP - 1 - i))) & 0xf;
        *slot = b"0123456789abcdef"[nibble as usize];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_of_the_same_message_passes() {
        for (size, text) in [
            (32, true),
            (32, false),
            (5, true),
            (0, false),
            (65536, false),
        ] {
            let p = Payloads::new(3, size, text);
            let m = p.message(0x1234);
            assert_eq!(m.len(), size);
            assert_eq!(m.is_text(), text);
            p.check(0x1234, &m).unwrap();
        }
    }

    #[test]
    fn wrong_sequence_type_or_body_fails() {
        let p = Payloads::new(0, 32, false);
        assert!(p.check(8, &p.message(7)).is_err());
        assert!(p.check(7, &Message::from("x".repeat(32))).is_err());
        let mut body = p.message(7).as_bytes().to_vec();
        body[31] ^= 1;
        assert!(p.check(7, &Message::from(body)).is_err());
        assert!(p.check(7, &Message::from(vec![b'0'; 31])).is_err());
    }

    #[test]
    fn stamp_is_hex() {
        assert_eq!(&stamp(0xabc), b"0000000000000abc");
    }
}
