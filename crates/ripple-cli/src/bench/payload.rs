//! Payloads that identify themselves, so that every reply can be checked.
//!
//! Echo: a ring of `window + 1` messages, built once and shared by every connection: a fixed
//! ASCII body with the ring index stamped in front as hex. Message `seq` is ring entry `seq % (window +
//! 1)`, shared, not copied. With at most `window` messages in flight, an echo that comes back
//! out of order or twice carries another stamp than the one expected; one that is lost leaves
//! the count short, which the end of the run catches. Broadcast: a header
//! `~rb:PUBLISHER:SEQ:SENT_NS~` (hex) padded with `.`, found wherever it is in the received
//! message, since a broadcast server may add a prefix such as `[12:00:00] `.

use bytes::Bytes;
use ripple::{Message, Utf8Bytes};

/// Hex digits of the stamp at the front of an echo payload.
const STAMP: usize = 16;
/// The rest of an echo payload repeats this (from the stamp on, which is a multiple of its
/// length, so every body starts with it).
const BODY: [u8; 8] = *b"abcdefgh";

/// Whether `body` is [`BODY`] repeated (and cut anywhere): every byte is read once, without an
/// early exit so that it vectorizes. Blocks of [`LANES`] words go into as many independent
/// accumulators: with one, each OR waited for the previous and a 64 KiB echo took 0.95 µs to
/// check instead of 0.55 µs.
fn is_body(body: &[u8]) -> bool {
    let word = u64::from_ne_bytes(BODY);
    let mut blocks = body.chunks_exact(LANES * BODY.len());
    let mut diff = [0u64; LANES];
    for block in blocks.by_ref() {
        for (acc, chunk) in diff.iter_mut().zip(block.chunks_exact(BODY.len())) {
            *acc |= u64::from_ne_bytes(word_of(chunk)) ^ word;
        }
    }
    let mut words = blocks.remainder().chunks_exact(BODY.len());
    let tail = words.by_ref().fold(0, |acc, chunk| {
        acc | (u64::from_ne_bytes(word_of(chunk)) ^ word)
    });
    let rest = words.remainder();
    diff.iter().fold(tail, |acc, d| acc | d) == 0 && rest == &BODY[..rest.len()]
}

/// Words [`is_body`] compares at once.
const LANES: usize = 8;

/// An eight-byte chunk as an array.
fn word_of(chunk: &[u8]) -> [u8; 8] {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(chunk);
    bytes
}

/// How much of each echo is compared with what was sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Verify {
    /// Type, length and every byte.
    #[default]
    Full,
    /// Type, length, the stamp (order) and the last 16 bytes: cheaper for large messages.
    Stamp,
}

/// The messages of echo connections.
#[derive(Clone, Debug)]
pub(crate) struct EchoPayloads {
    ring: Vec<Message>,
    verify: Verify,
}

impl EchoPayloads {
    /// Messages of `size` bytes for connections with at most `window` in flight.
    pub(crate) fn new(size: usize, text: bool, window: usize, verify: Verify) -> Self {
        let template: Vec<u8> = (0..size).map(|i| BODY[i % BODY.len()]).collect();
        let ring = (0..=window as u64)
            .map(|index| {
                let mut body = template.clone();
                let width = size.min(STAMP);
                body[..width].copy_from_slice(&hex_stamp(index)[STAMP - width..]);
                let bytes = Bytes::from(body);
                match Utf8Bytes::try_from_bytes(bytes) {
                    // ASCII throughout, so text is always valid UTF-8.
                    Ok(text_bytes) if text => Message::Text(text_bytes),
                    Ok(text_bytes) => Message::Binary(text_bytes.into_bytes()),
                    Err(bytes) => Message::Binary(bytes),
                }
            })
            .collect();
        Self { ring, verify }
    }

    /// Message number `seq` (shared, not copied).
    pub(crate) fn message(&self, seq: u64) -> Message {
        self.ring[self.index(seq)].clone()
    }

    /// Whether `message` is the echo of message number `seq`; the reason when not.
    pub(crate) fn check(&self, seq: u64, message: &Message) -> Result<(), String> {
        let sent = &self.ring[self.index(seq)];
        if message.is_text() != sent.is_text() {
            let got = if message.is_text() { "text" } else { "binary" };
            return Err(format!("message {seq}: echoed as {got}"));
        }
        let (got, want) = (message.as_bytes(), sent.as_bytes());
        if got.len() != want.len() {
            let (len, want) = (got.len(), want.len());
            return Err(format!("message {seq}: echoed {len} bytes, sent {want}"));
        }
        if self.same(got, want) {
            return Ok(());
        }
        if self.ring.iter().any(|other| other.as_bytes() == got) {
            let head = String::from_utf8_lossy(&got[..got.len().min(STAMP)]);
            return Err(format!(
                "message {seq}: echo out of order or repeated (got stamp {head:?})"
            ));
        }
        Err(format!("message {seq}: echoed payload differs"))
    }

    fn same(&self, got: &[u8], want: &[u8]) -> bool {
        match self.verify {
            // The body after the stamp is BODY repeated: one pass over the echo checks it.
            Verify::Full => {
                let head = got.len().min(STAMP);
                got[..head] == want[..head] && is_body(&got[head..])
            }
            Verify::Stamp => {
                let head = got.len().min(STAMP);
                let tail = got.len().saturating_sub(STAMP);
                got[..head] == want[..head] && got[tail..] == want[tail..]
            }
        }
    }

    fn index(&self, seq: u64) -> usize {
        (seq % self.ring.len() as u64) as usize
    }
}

/// `seq` as 16 lowercase hex digits.
fn hex_stamp(seq: u64) -> [u8; STAMP] {
    let mut out = [0u8; STAMP];
    for (i, slot) in out.iter_mut().enumerate() {
        let nibble = (seq >> (4 * (STAMP - 1 - i))) & 0xf;
        *slot = b"0123456789abcdef"[nibble as usize];
    }
    out
}

/// Start of a broadcast header.
const MARK: &[u8] = b"~rb:";
/// The message a publisher sends until every subscriber has seen one: proof that the server
/// has registered them all.
pub(crate) const SYNC: &str = "~rb-sync~";

/// What a broadcast message says about itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Stamp {
    pub(crate) publisher: u32,
    pub(crate) seq: u64,
    /// Nanoseconds since the run's epoch when it was sent.
    pub(crate) sent_ns: u64,
}

/// What a subscriber received.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Received {
    Stamped(Stamp),
    Sync,
    /// Has a header but the rest was cut or changed.
    Corrupt,
    /// Not ours: another client of a shared room, a server greeting.
    Foreign,
}

/// The broadcast message (at least the header; padded with `.` up to `size` bytes).
pub(crate) fn broadcast_message(stamp: Stamp, size: usize) -> String {
    let mut text = format!(
        "~rb:{:x}:{:x}:{:x}~",
        stamp.publisher, stamp.seq, stamp.sent_ns
    );
    if text.len() < size {
        text.extend(std::iter::repeat_n('.', size - text.len()));
    }
    text
}

/// Reads a received broadcast message; whatever precedes the header is ignored.
pub(crate) fn parse_broadcast(payload: &[u8], size: usize) -> Received {
    let Some(start) = find(payload, MARK) else {
        return if find(payload, SYNC.as_bytes()).is_some() {
            Received::Sync
        } else {
            Received::Foreign
        };
    };
    let body = &payload[start..];
    let Some(stamp) = parse_header(&body[MARK.len()..]) else {
        return Received::Corrupt;
    };
    let header_len = body
        .iter()
        .skip(1)
        .position(|&b| b == b'~')
        .map_or(0, |i| i + 2);
    let padding = &body[header_len..];
    let expected_len = size.max(header_len);
    if body.len() != expected_len || padding.iter().any(|&b| b != b'.') {
        return Received::Corrupt;
    }
    Received::Stamped(stamp)
}

/// `PUB:SEQ:NS~…` in hex.
fn parse_header(rest: &[u8]) -> Option<Stamp> {
    let end = rest.iter().position(|&b| b == b'~')?;
    let header = std::str::from_utf8(&rest[..end]).ok()?;
    let mut fields = header.split(':');
    let mut next = || u64::from_str_radix(fields.next()?, 16).ok();
    let stamp = Stamp {
        publisher: u32::try_from(next()?).ok()?,
        seq: next()?,
        sent_ns: next()?,
    };
    fields.next().is_none().then_some(stamp)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
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
            let p = EchoPayloads::new(size, text, 16, Verify::Full);
            let m = p.message(0x1234);
            assert_eq!(m.len(), size);
            assert_eq!(m.is_text(), text);
            p.check(0x1234, &m).unwrap();
        }
    }

    #[test]
    fn wrong_sequence_type_or_body_fails() {
        let p = EchoPayloads::new(32, false, 4, Verify::Full);
        let out_of_order = |seq, sent| p.check(seq, &p.message(sent)).unwrap_err();
        assert!(out_of_order(8, 7).contains("out of order"));
        // A message repeated from the previous round is caught too.
        assert!(out_of_order(9, 8).contains("out of order"));
        // The ring has window + 1 entries: message 5 is entry 0 again.
        p.check(5, &p.message(0)).unwrap();
        assert!(p.check(7, &Message::from("x".repeat(32))).is_err());
        let mut body = p.message(7).as_bytes().to_vec();
        body[31] ^= 1;
        assert!(
            p.check(7, &Message::from(body))
                .unwrap_err()
                .contains("differs")
        );
        assert!(p.check(7, &Message::from(vec![b'0'; 31])).is_err());
    }

    #[test]
    fn stamp_verification_checks_order_and_ends_only() {
        let p = EchoPayloads::new(100, false, 4, Verify::Stamp);
        assert!(
            p.check(1, &p.message(2))
                .unwrap_err()
                .contains("out of order")
        );
        let mut body = p.message(1).as_bytes().to_vec();
        body[50] ^= 1; // the middle is not compared
        p.check(1, &Message::from(body.clone())).unwrap();
        body[99] ^= 1; // the end is
        assert!(p.check(1, &Message::from(body)).is_err());
    }

    #[test]
    fn body_check_reads_every_byte() {
        let body: Vec<u8> = (0..1003).map(|i| BODY[i % 8]).collect();
        assert!(is_body(&body));
        assert!(is_body(&body[..5]));
        assert!(is_body(&body[..64]));
        assert!(is_body(&body[..72]));
        assert!(is_body(&[]));
        for i in [0, 7, 8, 63, 64, 71, 500, 959, 960, 1000, 1002] {
            let mut bad = body.clone();
            bad[i] ^= 0x20;
            assert!(!is_body(&bad), "byte {i}");
        }
        assert!(!is_body(&body[1..]), "shifted by one");
    }

    #[test]
    fn stamp_is_hex() {
        assert_eq!(&hex_stamp(0xabc), b"0000000000000abc");
    }

    #[test]
    fn broadcast_round_trip_with_a_prefix() {
        let stamp = Stamp {
            publisher: 2,
            seq: 0x1f,
            sent_ns: 123_456_789,
        };
        let text = broadcast_message(stamp, 64);
        assert_eq!(text.len(), 64);
        assert_eq!(
            parse_broadcast(text.as_bytes(), 64),
            Received::Stamped(stamp)
        );
        let prefixed = format!("[12:34:56] {text}");
        assert_eq!(
            parse_broadcast(prefixed.as_bytes(), 64),
            Received::Stamped(stamp)
        );
        // Smaller than the header: the header alone.
        let short = broadcast_message(stamp, 4);
        assert_eq!(
            parse_broadcast(short.as_bytes(), 4),
            Received::Stamped(stamp)
        );
    }

    #[test]
    fn broadcast_damage_and_strangers() {
        let stamp = Stamp {
            publisher: 0,
            seq: 1,
            sent_ns: 2,
        };
        let text = broadcast_message(stamp, 40);
        assert_eq!(
            parse_broadcast(&text.as_bytes()[..39], 40),
            Received::Corrupt
        );
        let changed = text.replacen(".", "x", 1);
        assert_eq!(parse_broadcast(changed.as_bytes(), 40), Received::Corrupt);
        assert_eq!(parse_broadcast(b"~rb:zz:1:2~", 0), Received::Corrupt);
        assert_eq!(parse_broadcast(b"[00:00:00] ~rb-sync~", 40), Received::Sync);
        assert_eq!(parse_broadcast(b"hello room", 40), Received::Foreign);
    }
}
