//! [`FrameHeader::parse`] and [`CloseFrame::decode`] against their encoders.

use bytes::BytesMut;
use ripple_proto::frame::MAX_HEADER_LEN;
use ripple_proto::{CloseFrame, FrameHeader};

/// `FrameHeader::parse` on arbitrary bytes.
///
/// Asserts, when it returns `Ok(Some((header, n)))`:
/// - `n <= data.len()` and `n == header.encoded_len()`;
/// - `header.encode` writes exactly `data[..n]`. This holds for every accepted header because
///   parse keeps every header bit (FIN, all three RSV bits, the opcode, the MASK bit as
///   `mask.is_some()`, the key) and rejects every length encoding but the minimal one, which is
///   the only one `encode` writes (RFC 6455 §5.2);
/// - control frames have FIN set and at most 125 payload bytes (§5.5);
/// - every shorter prefix of `data[..n]` is `Ok(None)`: an accepted header has no error to find
///   early.
///
/// When it returns `Ok(None)`: `data` is shorter than the longest header (14 bytes).
/// When it returns `Err(e)`: every prefix of `data` is `Ok(None)` or the same `Err(e)`.
pub fn header(data: &[u8]) {
    match FrameHeader::parse(data) {
        Ok(Some((header, len))) => {
            assert!(len <= data.len() && len <= MAX_HEADER_LEN);
            assert_eq!(len, header.encoded_len());
            let mut encoded = BytesMut::new();
            header.encode(&mut encoded);
            assert_eq!(
                &encoded[..],
                &data[..len],
                "{header:?} re-encodes differently"
            );
            if header.opcode.is_control() {
                assert!(header.fin && header.payload_len <= 125, "{header:?}");
            }
            for end in 0..len {
                assert_eq!(
                    FrameHeader::parse(&data[..end]),
                    Ok(None),
                    "prefix of {end}"
                );
            }
        }
        Ok(None) => assert!(data.len() < MAX_HEADER_LEN),
        Err(err) => {
            for end in 0..data.len().min(MAX_HEADER_LEN) {
                let prefix = FrameHeader::parse(&data[..end]);
                assert!(
                    prefix == Ok(None) || prefix == Err(err.clone()),
                    "prefix of {end}: {prefix:?}, whole: {err:?}"
                );
            }
        }
    }
}

/// `CloseFrame::decode` on an arbitrary close payload: never panics, and a decoded frame encodes
/// back to the same bytes (`encoded_len` included).
pub fn close(data: &[u8]) {
    let Ok(frame) = CloseFrame::decode(data) else {
        return;
    };
    let mut encoded = BytesMut::new();
    frame.encode(&mut encoded);
    assert_eq!(&encoded[..], data, "{frame:?} re-encodes differently");
    assert_eq!(frame.encoded_len(), data.len());
}
