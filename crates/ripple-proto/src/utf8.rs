//! Incremental UTF-8 validation for text that arrives in pieces.
//!
//! RFC 6455 §8.1: an endpoint that receives invalid UTF-8 in a text message MUST fail the
//! connection. Validating each piece as it arrives (fragments, or parts of one large frame) fails
//! fast, before the rest of a bad message is buffered. The bulk check is simdutf8's.

use simdutf8::compat::from_utf8;

/// Validates a byte stream piece by piece, carrying a code point split across pieces.
#[derive(Debug, Default, Clone)]
pub struct Utf8Validator {
    partial: [u8; 4],
    partial_len: u8,
}

/// The bytes seen so far cannot be the start of valid UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidUtf8;

impl Utf8Validator {
    /// A validator at the start of a message.
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks the next piece. Fails as soon as no continuation could make the input valid.
    pub fn feed(&mut self, input: &[u8]) -> Result<(), InvalidUtf8> {
        let rest = self.complete_partial(input)?;
        match from_utf8(rest) {
            Ok(_) => Ok(()),
            Err(err) if err.error_len().is_some() => Err(InvalidUtf8),
            Err(err) => {
                // Only an incomplete code point at the very end: keep it for the next piece.
                let tail = &rest[err.valid_up_to()..];
                self.partial[..tail.len()].copy_from_slice(tail);
                self.partial_len = tail.len() as u8;
                Ok(())
            }
        }
    }

    /// Checks that the message did not end inside a code point.
    pub fn finish(&mut self) -> Result<(), InvalidUtf8> {
        let complete = self.partial_len == 0;
        self.partial_len = 0;
        if complete { Ok(()) } else { Err(InvalidUtf8) }
    }

    /// Whether no code point is waiting for more bytes.
    pub fn is_complete(&self) -> bool {
        self.partial_len == 0
    }

    /// Finishes a code point carried over from the previous piece; returns the unread input.
    fn complete_partial<'a>(&mut self, input: &'a [u8]) -> Result<&'a [u8], InvalidUtf8> {
        if self.partial_len == 0 {
            return Ok(input);
        }
        let have = usize::from(self.partial_len);
        let width = sequence_width(self.partial[0]).ok_or(InvalidUtf8)?;
        let take = (width - have).min(input.len());
        self.partial[have..have + take].copy_from_slice(&input[..take]);
        let now = have + take;
        match from_utf8(&self.partial[..now]) {
            Ok(_) => self.partial_len = 0,
            Err(err) if err.error_len().is_some() => return Err(InvalidUtf8),
            Err(_) => self.partial_len = now as u8,
        }
        Ok(&input[take..])
    }
}

/// Length of the sequence a lead byte starts, if it can start one.
fn sequence_width(lead: u8) -> Option<usize> {
    match lead {
        0xc2..=0xdf => Some(2),
        0xe0..=0xef => Some(3),
        0xf0..=0xf4 => Some(4),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split_everywhere(data: &[u8]) -> bool {
        let whole = std::str::from_utf8(data).is_ok();
        for cut1 in 0..=data.len() {
            for cut2 in cut1..=data.len() {
                let mut v = Utf8Validator::new();
                let ok = v.feed(&data[..cut1]).is_ok()
                    && v.feed(&data[cut1..cut2]).is_ok()
                    && v.feed(&data[cut2..]).is_ok()
                    && v.finish().is_ok();
                assert_eq!(ok, whole, "{data:x?} cut at {cut1},{cut2}");
            }
        }
        whole
    }

    #[test]
    fn agrees_with_std_for_any_split() {
        assert!(split_everywhere("κόσμε-€-𝄞-ok".as_bytes()));
        assert!(!split_everywhere(
            b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited"
        ));
        assert!(!split_everywhere(b"ab\xf4\x90\x80\x80"));
        assert!(!split_everywhere(b"\xc0\xaf"));
        assert!(!split_everywhere(b"abc\xe2\x82"));
    }

    #[test]
    fn rfc6455_8_1_fails_fast_inside_a_message() {
        // Autobahn 6.4.x: the invalid byte arrives before the rest of the message.
        let mut v = Utf8Validator::new();
        assert!(v.feed("κόσμε".as_bytes()).is_ok());
        assert_eq!(v.feed(b"\xf4\x90\x80"), Err(InvalidUtf8));
    }

    #[test]
    fn incomplete_prefix_is_not_an_error_until_finish() {
        let mut v = Utf8Validator::new();
        assert!(v.feed(b"\xf0\x9d").is_ok());
        assert!(!v.is_complete());
        assert_eq!(v.finish(), Err(InvalidUtf8));
    }
}
