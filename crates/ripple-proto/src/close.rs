//! Close codes and the close frame payload (RFC 6455 §5.5.1, §7.4).

use std::fmt;

use bytes::{BufMut, BytesMut};

use crate::error::ProtocolError;

/// A close status code. Open-ended: a peer may send a code this crate has never heard of.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// 1000: the purpose of the connection has been fulfilled.
    pub const NORMAL: Self = Self(1000);
    /// 1001: the endpoint is going away (server shutdown, page navigation).
    pub const GOING_AWAY: Self = Self(1001);
    /// 1002: the peer broke the protocol.
    pub const PROTOCOL_ERROR: Self = Self(1002);
    /// 1003: a data type the endpoint cannot accept.
    pub const UNSUPPORTED_DATA: Self = Self(1003);
    /// 1005: no status code was present. Reported locally, never sent.
    pub const NO_STATUS: Self = Self(1005);
    /// 1006: the connection closed without a close frame. Reported locally, never sent.
    pub const ABNORMAL: Self = Self(1006);
    /// 1007: a text message was not UTF-8.
    pub const INVALID_PAYLOAD: Self = Self(1007);
    /// 1008: a message violated the endpoint's policy.
    pub const POLICY_VIOLATION: Self = Self(1008);
    /// 1009: a message was too big to process.
    pub const MESSAGE_TOO_BIG: Self = Self(1009);
    /// 1010: the client expected an extension the server did not negotiate.
    pub const MANDATORY_EXTENSION: Self = Self(1010);
    /// 1011: the server hit an unexpected condition.
    pub const INTERNAL_ERROR: Self = Self(1011);
    /// 1012: the service is restarting (IANA registry).
    pub const SERVICE_RESTART: Self = Self(1012);
    /// 1013: try again later (IANA registry).
    pub const TRY_AGAIN_LATER: Self = Self(1013);
    /// 1014: bad gateway (IANA registry).
    pub const BAD_GATEWAY: Self = Self(1014);
    /// 1015: the TLS handshake failed. Reported locally, never sent.
    pub const TLS_HANDSHAKE: Self = Self(1015);

    /// Whether this code may appear in a close frame on the wire.
    ///
    /// RFC 6455 §7.4.1 defines 1000–1003 and 1007–1011; 1004 is reserved and 1005, 1006 and 1015
    /// "MUST NOT be set as a status code in a Close control frame". The IANA registry adds
    /// 1012–1014. 3000–3999 are registered by libraries and 4000–4999 are private use (§7.4.2).
    pub fn is_sendable(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }
}

impl fmt::Debug for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CloseCode({})", self.0)
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl From<u16> for CloseCode {
    fn from(code: u16) -> Self {
        Self(code)
    }
}

impl From<CloseCode> for u16 {
    fn from(code: CloseCode) -> Self {
        code.0
    }
}

/// A close frame's content: the status code and a UTF-8 reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloseFrame {
    /// The status code; [`CloseCode::NO_STATUS`] when the frame had an empty payload.
    pub code: CloseCode,
    /// The reason, at most 123 bytes so the payload fits a control frame.
    pub reason: String,
}

impl CloseFrame {
    /// The most reason bytes a close frame can carry: 125 minus the 2-byte code.
    pub const MAX_REASON: usize = 123;

    /// A close frame with `code` and `reason`.
    pub fn new(code: CloseCode, reason: impl Into<String>) -> Self {
        Self {
            code,
            reason: reason.into(),
        }
    }

    /// Parses a received close payload.
    ///
    /// RFC 6455 §5.5.1: the body, if any, starts with a 2-byte code followed by a UTF-8 reason.
    /// An empty body means "no status" (1005). A 1-byte body, a code that may not be sent, or a
    /// reason that is not UTF-8 fail the connection.
    pub fn decode(payload: &[u8]) -> Result<Self, ProtocolError> {
        match payload {
            [] => Ok(Self::new(CloseCode::NO_STATUS, "")),
            [_] => Err(ProtocolError::CloseTooShort),
            [hi, lo, reason @ ..] => {
                let code = CloseCode(u16::from_be_bytes([*hi, *lo]));
                if !code.is_sendable() {
                    return Err(ProtocolError::InvalidCloseCode(code.0));
                }
                let reason = simdutf8::basic::from_utf8(reason)
                    .map_err(|_| ProtocolError::InvalidCloseReason)?;
                Ok(Self::new(code, reason))
            }
        }
    }

    /// Writes the payload: nothing for [`CloseCode::NO_STATUS`], else the code and reason.
    pub fn encode(&self, dst: &mut BytesMut) {
        if self.code == CloseCode::NO_STATUS {
            return;
        }
        dst.put_u16(self.code.0);
        dst.put_slice(self.reason.as_bytes());
    }

    /// Length of the encoded payload.
    pub fn encoded_len(&self) -> usize {
        if self.code == CloseCode::NO_STATUS {
            0
        } else {
            2 + self.reason.len()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6455_7_4_1_valid_and_invalid_codes() {
        for code in [
            1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999,
        ] {
            assert!(CloseCode(code).is_sendable(), "{code}");
        }
        for code in [
            0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
        ] {
            assert!(!CloseCode(code).is_sendable(), "{code}");
        }
    }

    #[test]
    fn rfc6455_5_5_1_decode() {
        assert_eq!(CloseFrame::decode(b"").unwrap().code, CloseCode::NO_STATUS);
        assert_eq!(
            CloseFrame::decode(b"\x03"),
            Err(ProtocolError::CloseTooShort)
        );
        assert_eq!(
            CloseFrame::decode(b"\x03\xe8bye").unwrap(),
            CloseFrame::new(CloseCode::NORMAL, "bye")
        );
        assert_eq!(
            CloseFrame::decode(b"\x03\xed"),
            Err(ProtocolError::InvalidCloseCode(1005))
        );
        assert_eq!(
            CloseFrame::decode(b"\x03\xe8\xff"),
            Err(ProtocolError::InvalidCloseReason)
        );
    }

    #[test]
    fn encode_round_trip() {
        let frame = CloseFrame::new(CloseCode(4001), "bye now");
        let mut buf = BytesMut::new();
        frame.encode(&mut buf);
        assert_eq!(buf.len(), frame.encoded_len());
        assert_eq!(CloseFrame::decode(&buf).unwrap(), frame);
    }
}
