//! The frame header (RFC 6455 §5.2): parse and encode, nothing else.
//!
//! ```text
//!   0                   1                   2                   3
//!   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//!  +-+-+-+-+-------+-+-------------+-------------------------------+
//!  |F|R|R|R| opcode|M| Payload len |    Extended payload length    |
//!  |I|S|S|S|  (4)  |A|     (7)     |             (16/64)           |
//!  |N|V|V|V|       |S|             |   (if payload len==126/127)   |
//!  | |1|2|3|       |K|             |                               |
//!  +-+-+-+-+-------+-+-------------+ - - - - - - - - - - - - - - - +
//!  |     Extended payload length continued, if payload len == 127  |
//!  + - - - - - - - - - - - - - - - +-------------------------------+
//!  |                               |Masking-key, if MASK set to 1  |
//!  +-------------------------------+-------------------------------+
//! ```
//!
//! Rules that depend on the role (masking) or on negotiated extensions (RSV bits) are the
//! connection's; this module enforces what holds for every frame.

use bytes::{BufMut, BytesMut};

use crate::error::ProtocolError;
use crate::mask::{apply_mask, mask_into};

/// A frame opcode (RFC 6455 §5.2). Reserved opcodes fail the connection, so the set is closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OpCode {
    /// 0x0: continues a fragmented message.
    Continuation,
    /// 0x1: the first frame of a text message.
    Text,
    /// 0x2: the first frame of a binary message.
    Binary,
    /// 0x8: close.
    Close,
    /// 0x9: ping.
    Ping,
    /// 0xA: pong.
    Pong,
}

impl OpCode {
    /// The opcode for a wire value; `Err` for the reserved values (RFC 6455 §5.2: "If an unknown
    /// opcode is received, the receiving endpoint MUST _Fail the WebSocket Connection_").
    pub fn from_wire(value: u8) -> Result<Self, ProtocolError> {
        Ok(match value {
            0x0 => Self::Continuation,
            0x1 => Self::Text,
            0x2 => Self::Binary,
            0x8 => Self::Close,
            0x9 => Self::Ping,
            0xa => Self::Pong,
            other => return Err(ProtocolError::ReservedOpcode(other)),
        })
    }

    /// The wire value.
    pub fn to_wire(self) -> u8 {
        match self {
            Self::Continuation => 0x0,
            Self::Text => 0x1,
            Self::Binary => 0x2,
            Self::Close => 0x8,
            Self::Ping => 0x9,
            Self::Pong => 0xa,
        }
    }

    /// Whether this is a control opcode (close, ping, pong).
    pub fn is_control(self) -> bool {
        matches!(self, Self::Close | Self::Ping | Self::Pong)
    }
}

/// The RSV1 bit as it sits in [`FrameHeader::rsv`] (permessage-deflate's "compressed" flag).
pub const RSV1: u8 = 0b100;

/// The largest control frame payload (RFC 6455 §5.5: "125 bytes or less").
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// The longest header: 2 bytes, an 8-byte length and a 4-byte mask.
pub const MAX_HEADER_LEN: usize = 14;

/// A parsed frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// FIN: the last frame of a message.
    pub fin: bool,
    /// The three reserved bits, RSV1 as `0b100`, RSV2 as `0b010`, RSV3 as `0b001`.
    pub rsv: u8,
    /// The opcode.
    pub opcode: OpCode,
    /// The masking key, if the frame is masked.
    pub mask: Option<[u8; 4]>,
    /// The payload length.
    pub payload_len: u64,
}

impl FrameHeader {
    /// Parses a header from the front of `buf`.
    ///
    /// `Ok(None)` means `buf` does not yet hold the whole header; nothing is consumed. On success,
    /// returns the header and its length in bytes.
    pub fn parse(buf: &[u8]) -> Result<Option<(Self, usize)>, ProtocolError> {
        let [b0, b1, rest @ ..] = buf else {
            return Ok(None);
        };
        let opcode = OpCode::from_wire(b0 & 0x0f)?;
        let fin = b0 & 0x80 != 0;
        let masked = b1 & 0x80 != 0;
        let Some((payload_len, len_bytes)) = parse_length(b1 & 0x7f, rest)? else {
            return Ok(None);
        };
        if opcode.is_control() {
            // RFC 6455 §5.5: "All control frames MUST have a payload length of 125 bytes or less
            // and MUST NOT be fragmented."
            if payload_len > MAX_CONTROL_PAYLOAD as u64 {
                return Err(ProtocolError::ControlTooLong(payload_len));
            }
            if !fin {
                return Err(ProtocolError::FragmentedControl);
            }
        }
        let mut header_len = 2 + len_bytes;
        let mask = if masked {
            let Some(key) = buf.get(header_len..header_len + 4) else {
                return Ok(None);
            };
            header_len += 4;
            Some([key[0], key[1], key[2], key[3]])
        } else {
            None
        };
        let header = Self {
            fin,
            rsv: (b0 >> 4) & 0b111,
            opcode,
            mask,
            payload_len,
        };
        Ok(Some((header, header_len)))
    }

    /// The encoded length of this header.
    pub fn encoded_len(&self) -> usize {
        let len_bytes = match self.payload_len {
            0..=125 => 0,
            126..=0xffff => 2,
            _ => 8,
        };
        2 + len_bytes + if self.mask.is_some() { 4 } else { 0 }
    }

    /// Appends the header to `dst`, using the shortest length encoding (RFC 6455 §5.2: "the
    /// minimal number of bytes MUST be used to encode the length").
    pub fn encode(&self, dst: &mut BytesMut) {
        let b0 = u8::from(self.fin) << 7 | (self.rsv & 0b111) << 4 | self.opcode.to_wire();
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        dst.put_u8(b0);
        match self.payload_len {
            len @ 0..=125 => dst.put_u8(mask_bit | len as u8),
            len @ 126..=0xffff => {
                dst.put_u8(mask_bit | 126);
                dst.put_u16(len as u16);
            }
            len => {
                dst.put_u8(mask_bit | 127);
                dst.put_u64(len);
            }
        }
        if let Some(key) = self.mask {
            dst.put_slice(&key);
        }
    }
}

/// Appends a whole frame: the header, then the payload, masked when `mask` is given.
pub fn encode_frame(
    dst: &mut BytesMut,
    opcode: OpCode,
    fin: bool,
    rsv: u8,
    mask: Option<[u8; 4]>,
    payload: &[u8],
) {
    let header = FrameHeader {
        fin,
        rsv,
        opcode,
        mask,
        payload_len: payload.len() as u64,
    };
    dst.reserve(header.encoded_len() + payload.len());
    header.encode(dst);
    let start = dst.len();
    match mask {
        None => dst.put_slice(payload),
        // RFC 6455 §5.3: a client masks every payload it sends. A small one is still in the L1
        // cache when the mask passes over the copy.
        Some(key) if payload.len() <= MASK_IN_PLACE_MAX => {
            dst.put_slice(payload);
            apply_mask(&mut dst[start..], key, 0);
        }
        // A larger one is masked while it is copied: one read of the payload, one write of the
        // frame. `resize` zeroes the room first (filling it without that would need `unsafe`),
        // which still costs less than a second pass over the frame.
        Some(key) => {
            dst.resize(start + payload.len(), 0);
            mask_into(&mut dst[start..], payload, key);
        }
    }
}

/// The largest payload [`encode_frame`] copies first and masks after; larger ones are masked
/// while copied. The two cost the same around 128 bytes (`benches/frame.rs`, group
/// `encode_masked`); at 64 KiB the fused pass takes a fifth less time.
const MASK_IN_PLACE_MAX: usize = 128;

/// Decodes the 7-bit length and its 16- or 64-bit extension; returns (length, extension bytes).
fn parse_length(len7: u8, rest: &[u8]) -> Result<Option<(u64, usize)>, ProtocolError> {
    Ok(Some(match len7 {
        126 => {
            let Some(&[a, b]) = rest.get(..2).map(<[u8]>::as_ref) else {
                return Ok(None);
            };
            let len = u64::from(u16::from_be_bytes([a, b]));
            if len < 126 {
                return Err(ProtocolError::NonMinimalLength(len));
            }
            (len, 2)
        }
        127 => {
            let Some(ext) = rest.get(..8) else {
                return Ok(None);
            };
            let mut raw = [0u8; 8];
            raw.copy_from_slice(ext);
            let len = u64::from_be_bytes(raw);
            // RFC 6455 §5.2: "the most significant bit MUST be 0".
            if len >> 63 != 0 {
                return Err(ProtocolError::LengthTooLarge);
            }
            if len <= 0xffff {
                return Err(ProtocolError::NonMinimalLength(len));
            }
            (len, 8)
        }
        short => (u64::from(short), 0),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> Result<Option<(FrameHeader, usize)>, ProtocolError> {
        FrameHeader::parse(bytes)
    }

    #[test]
    fn rfc6455_5_7_unmasked_hello() {
        let (h, len) = parse(&[0x81, 0x05, b'H']).unwrap().unwrap();
        assert_eq!(len, 2);
        assert!(h.fin);
        assert_eq!(h.opcode, OpCode::Text);
        assert_eq!(h.payload_len, 5);
        assert_eq!(h.mask, None);
    }

    #[test]
    fn rfc6455_5_7_masked_hello() {
        let (h, len) = parse(&[0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f])
            .unwrap()
            .unwrap();
        assert_eq!(len, 6);
        assert_eq!(h.mask, Some([0x37, 0xfa, 0x21, 0x3d]));
    }

    #[test]
    fn rfc6455_5_7_lengths_16_and_64_bit() {
        let (h, len) = parse(&[0x82, 0x7e, 0x01, 0x00]).unwrap().unwrap();
        assert_eq!((h.payload_len, len), (256, 4));
        let (h, len) = parse(&[0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0])
            .unwrap()
            .unwrap();
        assert_eq!((h.payload_len, len), (65536, 10));
    }

    #[test]
    fn incomplete_header_is_none() {
        for bytes in [
            &[][..],
            &[0x81],
            &[0x82, 0x7e, 0x01],
            &[0x82, 0x7f, 0, 0],
            &[0x81, 0x85, 1, 2],
        ] {
            assert_eq!(parse(bytes), Ok(None), "{bytes:x?}");
        }
    }

    #[test]
    fn rfc6455_5_2_non_minimal_lengths_rejected() {
        assert_eq!(
            parse(&[0x82, 0x7e, 0x00, 0x7d]),
            Err(ProtocolError::NonMinimalLength(125))
        );
        assert_eq!(
            parse(&[0x82, 0x7f, 0, 0, 0, 0, 0, 0, 0xff, 0xff]),
            Err(ProtocolError::NonMinimalLength(0xffff))
        );
        assert_eq!(
            parse(&[0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 0]),
            Err(ProtocolError::LengthTooLarge)
        );
    }

    #[test]
    fn rfc6455_5_5_control_frames() {
        assert_eq!(
            parse(&[0x89, 0x7e, 0x00, 0x7e]),
            Err(ProtocolError::ControlTooLong(126))
        );
        assert_eq!(parse(&[0x09, 0x00]), Err(ProtocolError::FragmentedControl));
    }

    #[test]
    fn rfc6455_5_2_reserved_opcodes() {
        for op in [3u8, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf] {
            assert_eq!(
                parse(&[0x80 | op, 0]),
                Err(ProtocolError::ReservedOpcode(op))
            );
        }
    }

    #[test]
    fn rsv_bits_are_reported() {
        let (h, _) = parse(&[0xc1, 0x00]).unwrap().unwrap();
        assert_eq!(h.rsv, RSV1);
    }

    #[test]
    fn encode_round_trips_every_length_class() {
        for len in [0u64, 125, 126, 0xffff, 0x1_0000, 1 << 40] {
            for mask in [None, Some([1, 2, 3, 4])] {
                let h = FrameHeader {
                    fin: false,
                    rsv: RSV1,
                    opcode: OpCode::Binary,
                    mask,
                    payload_len: len,
                };
                let mut buf = BytesMut::new();
                h.encode(&mut buf);
                assert_eq!(buf.len(), h.encoded_len());
                assert_eq!(parse(&buf), Ok(Some((h, buf.len()))));
            }
        }
    }

    #[test]
    fn encode_frame_masks_every_length_after_earlier_output() {
        let key = [0x37, 0xfa, 0x21, 0x3d];
        for len in [0, 1, 7, 8, 9, 125, 128, 129, 1000, 0x1_0001] {
            let payload: Vec<u8> = (0..len).map(|i| (i * 31 + 7) as u8).collect();
            let mut buf = BytesMut::from(&b"earlier"[..]);
            encode_frame(&mut buf, OpCode::Binary, true, 0, Some(key), &payload);
            let (header, header_len) = parse(&buf[7..]).unwrap().unwrap();
            assert_eq!(header.payload_len, len as u64);
            let mut unmasked = buf[7 + header_len..].to_vec();
            crate::mask::apply_mask_bytewise(&mut unmasked, key, 0);
            assert_eq!(&buf[..7], b"earlier");
            assert_eq!(unmasked, payload, "len {len}");
        }
    }

    #[test]
    fn encode_frame_masks_payload() {
        let mut buf = BytesMut::new();
        encode_frame(
            &mut buf,
            OpCode::Text,
            true,
            0,
            Some([0x37, 0xfa, 0x21, 0x3d]),
            b"Hello",
        );
        assert_eq!(
            &buf[..],
            &[
                0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58
            ]
        );
    }
}
