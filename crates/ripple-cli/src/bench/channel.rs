//! What the broadcast bench reads of `ripple serve`'s channel protocol (docs/protocol.md):
//! `message` pushes, `subscribed` replies and long-poll replies, on every transport.
//!
//! Everything is read in place from the bytes received, without building a JSON value: the
//! server writes each push as one JSON object with `type` first, the benchmark's payloads are
//! plain ASCII strings without quotes or backslashes, and a field is found by its quoted key.
//! Pushes from other clients (objects as `data`, escaped strings) are told apart, not misread:
//! their `data` is not a benchmark payload, and the run counts them as foreign.

use memchr::memmem;

/// A `message` push: the channel offset it was given and its `data` when that is a string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ChannelMessage<'a> {
    pub(crate) offset: u64,
    /// The string's bytes between the quotes (`None` when `data` is not a string).
    pub(crate) data: Option<&'a [u8]>,
}

/// The `type` of a push or reply (`message`, `subscribed`, `join`, `close`, …).
pub(crate) fn push_type(json: &[u8]) -> Option<&[u8]> {
    const FIRST: &[u8] = br#"{"type":""#;
    if let Some(rest) = json.strip_prefix(FIRST) {
        return string_until_quote(rest);
    }
    string_field(json, br#""type":""#)
}

/// Reads a `message` push; `None` for anything else or a message without an offset.
pub(crate) fn parse_message(json: &[u8]) -> Option<ChannelMessage<'_>> {
    if push_type(json)? != b"message" {
        return None;
    }
    let offset = u64_field(json, br#""offset":"#)?;
    Some(ChannelMessage {
        offset,
        data: string_field(json, br#""data":""#),
    })
}

/// The `offset` of a `subscribed` reply, `None` for anything else.
pub(crate) fn subscribed_offset(json: &[u8]) -> Option<u64> {
    if push_type(json)? != b"subscribed" {
        return None;
    }
    u64_field(json, br#""offset":"#)
}

/// A `GET /poll` reply:
/// `{"cursor":"…","channels":[{…,"offset":43,"recovered":true}],"messages":[…]}`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PollReply<'a> {
    /// The cursor to send with the next request.
    pub(crate) cursor: &'a [u8],
    /// The channel's offset: the last message the client now has.
    pub(crate) offset: Option<u64>,
    /// `false` when the server could not recover from the cursor (messages were lost).
    pub(crate) recovered: bool,
    /// The text of the `messages` array, from its `[`.
    messages: &'a [u8],
}

impl<'a> PollReply<'a> {
    /// Reads a reply for one channel; `None` when it has no cursor.
    pub(crate) fn parse(json: &'a [u8]) -> Option<Self> {
        let cursor = string_field(json, br#""cursor":""#)?;
        // The channel objects hold no arrays: the first `]` ends the list.
        let channels = after(json, br#""channels":["#).unwrap_or_default();
        let channels = &channels[..memchr::memchr(b']', channels).unwrap_or(channels.len())];
        Some(Self {
            cursor,
            offset: u64_field(channels, br#""offset":"#),
            recovered: memmem::find(channels, br#""recovered":false"#).is_none(),
            messages: after(json, br#""messages":["#).unwrap_or_default(),
        })
    }

    /// Each message push of the reply, in order (its text up to the next one).
    pub(crate) fn messages(&self) -> impl Iterator<Item = &'a [u8]> {
        const START: &[u8] = br#"{"type":"message""#;
        let text = self.messages;
        let mut starts = memmem::find_iter(text, START).peekable();
        std::iter::from_fn(move || {
            let start = starts.next()?;
            let end = starts.peek().copied().unwrap_or(text.len());
            Some(&text[start..end])
        })
    }
}

/// The start of a server's message, as text for an error message.
pub(crate) fn excerpt(json: &[u8]) -> String {
    String::from_utf8_lossy(&json[..json.len().min(300)]).into_owned()
}

/// The bytes after the first `key` (which ends with the opening `"` of a string value), up
/// to the closing quote.
fn string_field<'a>(json: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    string_until_quote(after(json, key)?)
}

fn string_until_quote(rest: &[u8]) -> Option<&[u8]> {
    let len = memchr::memchr(b'"', rest)?;
    Some(&rest[..len])
}

/// The unsigned integer after the first `key`.
fn u64_field(json: &[u8], key: &[u8]) -> Option<u64> {
    let rest = after(json, key)?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 20 {
        return None;
    }
    rest[..digits].iter().try_fold(0u64, |n, &d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

fn after<'a>(json: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    Some(&json[memmem::find(json, key)? + key.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    const MESSAGE: &[u8] =
        br#"{"type":"message","channel":"b","offset":3,"epoch":"9802e4c26d5d40b0","data":"~rb:1~..","ts":1}"#;

    #[test]
    fn message_push() {
        assert_eq!(
            parse_message(MESSAGE),
            Some(ChannelMessage {
                offset: 3,
                data: Some(&b"~rb:1~.."[..])
            })
        );
        let object = br#"{"type":"message","channel":"b","offset":4,"epoch":"e","data":{"text":"hi"},"ts":1}"#;
        assert_eq!(parse_message(object).map(|m| m.data), Some(None));
        assert_eq!(parse_message(br#"{"type":"published","offset":3}"#), None);
        assert_eq!(parse_message(br#"{"type":"message","data":"x"}"#), None);
    }

    #[test]
    fn types_and_subscribed() {
        assert_eq!(push_type(MESSAGE), Some(&b"message"[..]));
        assert_eq!(push_type(br#"{"id":1,"type":"pong"}"#), Some(&b"pong"[..]));
        assert_eq!(push_type(b"[1]"), None);
        let reply =
            br#"{"type":"subscribed","channel":"b","epoch":"e","offset":41,"recovered":true}"#;
        assert_eq!(subscribed_offset(reply), Some(41));
        assert_eq!(subscribed_offset(MESSAGE), None);
    }

    #[test]
    fn offsets_that_do_not_fit() {
        assert_eq!(
            u64_field(b"\"o\":18446744073709551615}", b"\"o\":"),
            Some(u64::MAX)
        );
        assert_eq!(u64_field(b"\"o\":18446744073709551616}", b"\"o\":"), None);
        assert_eq!(u64_field(b"\"o\":-1}", b"\"o\":"), None);
    }

    #[test]
    fn poll_reply() {
        let reply = br#"{"cursor":"W1sid","channels":[{"channel":"b","epoch":"e","offset":43,"recovered":true}],"messages":[{"type":"message","channel":"b","offset":42,"epoch":"e","data":"a","ts":1},{"type":"message","channel":"b","offset":43,"epoch":"e","data":{"type":"message"},"ts":2}]}"#;
        let parsed = PollReply::parse(reply).unwrap();
        assert_eq!(parsed.cursor, b"W1sid");
        assert_eq!(parsed.offset, Some(43));
        assert!(parsed.recovered);
        let messages: Vec<_> = parsed.messages().filter_map(parse_message).collect();
        assert_eq!(messages.len(), 2, "{messages:?}");
        assert_eq!(messages[0].offset, 42);
        assert_eq!(messages[0].data, Some(&b"a"[..]));
        assert_eq!(messages[1].offset, 43);
        assert_eq!(messages[1].data, None);
    }

    #[test]
    fn poll_reply_not_recovered_and_empty() {
        let reply = br#"{"cursor":"C","channels":[{"channel":"b","epoch":"f","offset":9,"recovered":false}],"messages":[]}"#;
        let parsed = PollReply::parse(reply).unwrap();
        assert!(!parsed.recovered);
        assert_eq!(parsed.messages().count(), 0);
        assert!(PollReply::parse(br#"{"type":"error","code":"invalid_cursor"}"#).is_none());
    }
}
