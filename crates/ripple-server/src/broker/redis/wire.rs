//! What travels between nodes on the Redis pub/sub shards, and the pieces of a `message` push
//! that the publish script puts together. Pure functions: no Redis here.
//!
//! A shard payload is one of
//!
//! ```text
//! m<channel length>:<channel><epoch>:<offset>:<seq>:<message push JSON>
//! p<channel length>:<channel><epoch>:<seq>:<client length>:<client><join or leave push JSON>
//! ```
//!
//! Lengths are byte counts in decimal, so a channel or client id may hold any byte. `seq`
//! numbers every push of a channel (messages, joins, leaves) in the order the scripts ran, so
//! that a new subscriber takes exactly the joins and leaves that came after its own
//! subscription, wherever they happened.

/// A payload received on a shard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Shard<'a> {
    /// A publication.
    Message {
        /// Its channel.
        channel: &'a str,
        /// The channel's epoch.
        epoch: &'a str,
        /// Its offset.
        offset: u64,
        /// Its place among the channel's pushes.
        seq: u64,
        /// The `message` push, as subscribers get it.
        json: &'a str,
    },
    /// A `join` or `leave`.
    Presence {
        /// Its channel.
        channel: &'a str,
        /// The channel's epoch.
        epoch: &'a str,
        /// Its place among the channel's pushes.
        seq: u64,
        /// The client that joined or left (it is not told about itself).
        client: &'a str,
        /// The push, as subscribers get it.
        json: &'a str,
    },
}

/// Parses a shard payload; `None` for anything this version does not know.
pub(super) fn parse(payload: &[u8]) -> Option<Shard<'_>> {
    let text = std::str::from_utf8(payload).ok()?;
    let (kind, rest) = (text.get(..1)?, text.get(1..)?);
    let (channel, rest) = length_prefixed(rest)?;
    match kind {
        "m" => {
            let (epoch, rest) = rest.split_once(':')?;
            let (offset, rest) = rest.split_once(':')?;
            let (seq, json) = rest.split_once(':')?;
            Some(Shard::Message {
                channel,
                epoch,
                offset: offset.parse().ok()?,
                seq: seq.parse().ok()?,
                json,
            })
        }
        "p" => {
            let (epoch, rest) = rest.split_once(':')?;
            let (seq, rest) = rest.split_once(':')?;
            let (client, json) = length_prefixed(rest)?;
            Some(Shard::Presence {
                channel,
                epoch,
                seq: seq.parse().ok()?,
                client,
                json,
            })
        }
        _ => None,
    }
}

/// The member of a node's set of subscriptions (which lets another node clean up after it).
pub(super) fn membership(channel: &str, client: &str) -> String {
    format!("{}:{client}{channel}", client.len())
}

/// Which of `shards` pub/sub channels carries `channel`: `h = h * 31 + byte` modulo 2^32 over
/// its bytes, modulo `shards`. The Lua scripts compute the same (integers below 2^53 are exact
/// in Lua's doubles), so a script can publish a node's `leave`s without asking it.
pub(super) fn shard_of(channel: &str, shards: u32) -> u32 {
    let hash = channel
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    hash % shards.max(1)
}

/// The pieces of a `message` push that the publish script completes: everything before the
/// offset, and the `from` member (empty without a publisher). The script appends
/// `<offset>,"epoch":"<epoch>","data":<data><from>,"ts":<ms>}`, which is exactly what
/// [`crate::protocol::MessagePush`] serializes to.
pub(super) fn message_head(channel: &str, from: Option<&str>) -> (String, String) {
    let head = format!(
        "{{\"type\":\"message\",\"channel\":{},\"offset\":",
        json_string(channel)
    );
    let from = from
        .map(|from| format!(",\"from\":{}", json_string(from)))
        .unwrap_or_default();
    (head, from)
}

/// A string as JSON.
fn json_string(text: &str) -> String {
    // Serializing a string cannot fail.
    serde_json::to_string(text).unwrap_or_default()
}

/// `<length>:<that many bytes>` at the start of `text`, and what follows.
fn length_prefixed(text: &str) -> Option<(&str, &str)> {
    let (length, rest) = text.split_once(':')?;
    let length: usize = length.parse().ok()?;
    Some((rest.get(..length)?, rest.get(length..)?))
}

#[cfg(test)]
mod tests {
    use serde_json::value::RawValue;

    use super::*;
    use crate::protocol::MessagePush;

    #[test]
    fn message_payloads_parse() {
        let payload = "m6:room:1e1f0:42:57:{\"type\":\"message\"}";
        assert_eq!(
            parse(payload.as_bytes()),
            Some(Shard::Message {
                channel: "room:1",
                epoch: "e1f0",
                offset: 42,
                seq: 57,
                json: "{\"type\":\"message\"}",
            })
        );
    }

    #[test]
    fn presence_payloads_parse_with_any_bytes_in_names() {
        let payload = "p5:a:b:7e1:9:3:c:1{\"type\":\"join\"}";
        assert_eq!(
            parse(payload.as_bytes()),
            Some(Shard::Presence {
                channel: "a:b:7",
                epoch: "e1",
                seq: 9,
                client: "c:1",
                json: "{\"type\":\"join\"}",
            })
        );
    }

    #[test]
    fn malformed_payloads_are_ignored() {
        for bad in [
            "",
            "x3:abc",
            "m9:abc",
            "m3:abce:x:1:{}",
            "m3:abce:1:{}",
            "p3:abce:1:9:x",
            "p3:abc9:x",
            "m3:abc",
        ] {
            assert_eq!(parse(bad.as_bytes()), None, "{bad:?}");
        }
    }

    #[test]
    fn shards_spread_and_match_the_lua_formula() {
        assert_eq!(shard_of("", 16), 0);
        // "ab": (97 * 31 + 98) % 16 = 3105 % 16 = 1
        assert_eq!(shard_of("ab", 16), 1);
        let used: std::collections::HashSet<_> = (0..200)
            .map(|i| shard_of(&format!("room:{i}"), 16))
            .collect();
        assert_eq!(used.len(), 16);
    }

    #[test]
    fn the_script_completes_the_same_json_as_the_memory_broker() {
        let data = RawValue::from_string("{\"x\":[1,\"é\"]}".into()).unwrap();
        for (channel, from) in [("room:1", Some("ali\"ce")), ("a\\b", None)] {
            let (head, from_part) = message_head(channel, from);
            // What the Lua script appends, in the same order.
            let assembled = format!(
                "{head}7,\"epoch\":\"00ff\",\"data\":{}{from_part},\"ts\":1764400000000}}",
                data.get()
            );
            let expected = serde_json::to_string(&MessagePush {
                kind: "message",
                channel,
                offset: 7,
                epoch: "00ff",
                data: &data,
                from,
                ts: 1_764_400_000_000,
            })
            .unwrap();
            assert_eq!(assembled, expected);
        }
    }
}
