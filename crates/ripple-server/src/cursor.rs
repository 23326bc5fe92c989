//! Cursors: where a client of the HTTP transports is in each of its channels, carried by the
//! client (`/sse` event ids, `/poll` cursors) so that the server keeps nothing between requests
//! and any node can serve the next one.
//!
//! The format (docs/protocol.md, "Cursor") is the unpadded base64url encoding of a JSON array
//! of `[channel, epoch, offset]` triples: self-contained, URL- and header-safe, and readable by
//! any client that wants to look inside.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::protocol::{ProtocolError, Since, codes, validate_channel};
use crate::push::{Head, Kind};

/// The longest cursor accepted, in bytes.
pub const MAX_LEN: usize = 16 * 1024;

/// One channel's position: the last message the client has.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Position {
    /// The channel.
    pub channel: String,
    /// Its epoch when the client got that message.
    pub epoch: String,
    /// The message's offset.
    pub offset: u64,
}

impl Position {
    /// The position as the `since` of a subscription.
    pub fn since(&self) -> Since {
        Since {
            epoch: self.epoch.clone(),
            offset: self.offset,
        }
    }
}

/// What a server message did to a [`Cursor`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Observed {
    /// A `subscribed` or a new `message`: the client's position changed.
    Moved,
    /// A `message` the client already has (never sent twice).
    Stale,
    /// Anything else (`join`, `leave`, replies, errors).
    Other,
}

/// Positions in several channels, in the order the client asked for them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cursor {
    positions: Vec<Position>,
}

impl Cursor {
    /// Decodes a cursor naming at most `max_channels` channels.
    pub fn decode(text: &str, max_channels: usize) -> Result<Self, ProtocolError> {
        let invalid = |why: &str| ProtocolError::new(codes::INVALID_CURSOR, why.to_owned());
        if text.len() > MAX_LEN {
            return Err(invalid("the cursor is longer than 16 KiB"));
        }
        let json = URL_SAFE_NO_PAD
            .decode(text.trim_end_matches('='))
            .map_err(|_| invalid("the cursor is not base64url"))?;
        let triples: Vec<(String, String, u64)> = serde_json::from_slice(&json)
            .map_err(|_| invalid("the cursor is not a list of [channel, epoch, offset]"))?;
        if triples.len() > max_channels {
            return Err(invalid("the cursor names too many channels"));
        }
        let mut cursor = Self::default();
        for (channel, epoch, offset) in triples {
            validate_channel(&channel)
                .map_err(|_| invalid("the cursor names an invalid channel"))?;
            cursor.set(&channel, &epoch, offset);
        }
        Ok(cursor)
    }

    /// The encoded cursor.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        self.encode_into(&mut Vec::new(), &mut out);
        out
    }

    /// Appends the encoded cursor to `out`, with `json` as scratch space: a stream that writes
    /// one per event reuses both and allocates nothing.
    pub fn encode_into(&self, json: &mut Vec<u8>, out: &mut String) {
        json.clear();
        // Writing strings and numbers into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *json, &Triples(&self.positions));
        URL_SAFE_NO_PAD.encode_string(json.as_slice(), out);
    }

    /// The positions of `channels` only (those the cursor has), in that order.
    pub fn only(&self, channels: &[String]) -> Self {
        let positions = channels
            .iter()
            .filter_map(|channel| self.get(channel).cloned())
            .collect();
        Self { positions }
    }

    /// The position in `channel`, if the cursor has one.
    pub fn get(&self, channel: &str) -> Option<&Position> {
        self.positions.iter().find(|p| p.channel == channel)
    }

    /// Moves `channel` to `epoch`/`offset` (adding it at the end if it is new).
    pub fn set(&mut self, channel: &str, epoch: &str, offset: u64) {
        match self.positions.iter_mut().find(|p| p.channel == channel) {
            Some(position) => {
                if position.epoch != epoch {
                    epoch.clone_into(&mut position.epoch);
                }
                position.offset = offset;
            }
            None => self.positions.push(Position {
                channel: channel.to_owned(),
                epoch: epoch.to_owned(),
                offset,
            }),
        }
    }

    /// Follows a server message on its way to the client; says whether it moved the cursor
    /// (the SSE event then carries the new cursor as its `id`).
    ///
    /// A `subscribed` that recovered from this very position keeps it, since the replayed
    /// messages that follow move it on; any other `subscribed` starts at the channel's newest
    /// offset. A `message` moves its channel to its offset.
    pub fn observe(&mut self, head: &Head) -> Observed {
        let (Some(channel), Some(epoch), Some(offset)) =
            (head.channel.as_deref(), head.epoch.as_deref(), head.offset)
        else {
            return Observed::Other;
        };
        let current = self.get(channel).filter(|p| p.epoch == epoch);
        match head.kind {
            Kind::Subscribed if head.recovered == Some(true) && current.is_some() => {
                Observed::Moved
            }
            Kind::Subscribed => {
                self.set(channel, epoch, offset);
                Observed::Moved
            }
            Kind::Message if current.is_some_and(|p| p.offset >= offset) => Observed::Stale,
            Kind::Message => {
                self.set(channel, epoch, offset);
                Observed::Moved
            }
            _ => Observed::Other,
        }
    }

    /// Every position.
    pub fn positions(&self) -> &[Position] {
        &self.positions
    }

    /// The channels, in order.
    pub fn channels(&self) -> impl Iterator<Item = &str> {
        self.positions.iter().map(|p| p.channel.as_str())
    }
}

/// Positions as a JSON array of `[channel, epoch, offset]`, written without an intermediate
/// collection.
struct Triples<'a>(&'a [Position]);

impl serde::Serialize for Triples<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let triples = self.0.iter().map(|p| (&p.channel, &p.epoch, p.offset));
        serializer.collect_seq(triples)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_matches_the_documented_example() {
        let mut cursor = Cursor::default();
        cursor.set("room:1", "9802e4c26d5d40b0", 42);
        assert_eq!(
            cursor.encode(),
            "W1sicm9vbToxIiwiOTgwMmU0YzI2ZDVkNDBiMCIsNDJdXQ"
        );
        cursor.set("news", "e2", 7);
        cursor.set("room:1", "9802e4c26d5d40b0", 43);
        let decoded = Cursor::decode(&cursor.encode(), 10).unwrap();
        assert_eq!(decoded, cursor);
        assert_eq!(decoded.get("room:1").unwrap().offset, 43);
        assert_eq!(decoded.channels().collect::<Vec<_>>(), ["room:1", "news"]);
    }

    #[test]
    fn follows_subscriptions_and_messages() {
        let head = |kind, epoch: &str, offset, recovered| Head {
            kind,
            channel: Some("a".into()),
            epoch: Some(epoch.into()),
            offset: Some(offset),
            recovered,
        };
        let mut cursor = Cursor::default();
        cursor.set("a", "e1", 3);
        let recovered = head(Kind::Subscribed, "e1", 9, Some(true));
        assert_eq!(cursor.observe(&recovered), Observed::Moved);
        assert_eq!(cursor.get("a").unwrap().offset, 3, "the replay moves it on");
        let m4 = head(Kind::Message, "e1", 4, None);
        assert_eq!(cursor.observe(&m4), Observed::Moved);
        assert_eq!(cursor.observe(&m4), Observed::Stale);
        let lost = head(Kind::Subscribed, "e2", 1, Some(false));
        assert_eq!(cursor.observe(&lost), Observed::Moved);
        assert_eq!(
            cursor.get("a").unwrap(),
            &Position {
                channel: "a".into(),
                epoch: "e2".into(),
                offset: 1
            }
        );
        let join = Head {
            kind: Kind::Join,
            ..Head::default()
        };
        assert_eq!(cursor.observe(&join), Observed::Other);
    }

    #[test]
    fn refuses_what_is_not_a_cursor() {
        let code = |text: &str, max| Cursor::decode(text, max).unwrap_err().code;
        assert_eq!(code("not base64!", 10), codes::INVALID_CURSOR);
        assert_eq!(
            code(&URL_SAFE_NO_PAD.encode("{}"), 10),
            codes::INVALID_CURSOR
        );
        assert_eq!(
            code(&URL_SAFE_NO_PAD.encode(r#"[["a","e",-1]]"#), 10),
            codes::INVALID_CURSOR
        );
        assert_eq!(
            code(&URL_SAFE_NO_PAD.encode(r#"[["a b","e",1]]"#), 10),
            codes::INVALID_CURSOR
        );
        assert_eq!(
            code(&URL_SAFE_NO_PAD.encode(r#"[["a","e",1],["b","e",1]]"#), 1),
            codes::INVALID_CURSOR
        );
        assert_eq!(code(&"A".repeat(MAX_LEN + 1), 10), codes::INVALID_CURSOR);
    }
}
