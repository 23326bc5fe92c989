//! The channel protocol's JSON messages (docs/protocol.md): commands from clients, replies and
//! pushes from the server, and the stable error codes.
//!
//! Commands are parsed into one flat struct first so that a missing or mistyped field becomes a
//! precise error (`missing_field: channel`) instead of serde's generic message. `data` stays raw
//! JSON end to end: the server never re-serializes what a client published.

pub use crate::error_code::ErrorCode;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// A client's position in a channel's stream: the last message it has.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct Since {
    /// The channel's epoch when the client saw that message.
    pub epoch: String,
    /// The offset of the last message the client has.
    pub offset: u64,
}

/// A parsed client command.
#[derive(Debug)]
pub enum Command {
    /// Authenticate with a JWT (when the handshake carried none).
    Auth { token: String },
    /// Subscribe, optionally recovering from `since`.
    Subscribe {
        channel: String,
        since: Option<Since>,
    },
    /// Unsubscribe.
    Unsubscribe { channel: String },
    /// Publish any JSON value.
    Publish {
        channel: String,
        data: Box<RawValue>,
    },
    /// Who is subscribed.
    Presence { channel: String },
    /// The last messages of a channel (what `GET /api/channels/{name}/history` answers).
    History {
        channel: String,
        since: Option<u64>,
        limit: Option<usize>,
    },
    /// Application-level heartbeat for clients that cannot see WebSocket pings.
    Ping,
}

/// A command and the `id` to echo in its reply.
#[derive(Debug)]
pub struct Request {
    /// The client's correlation id, echoed in the reply.
    pub id: Option<u64>,
    /// What it asks.
    pub command: Command,
}

/// What is wrong with a request or why it was refused. The code is stable; the message is for
/// people.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProtocolError {
    /// Stable machine-readable code.
    pub code: ErrorCode,
    /// Human-readable explanation.
    pub message: String,
}

impl ProtocolError {
    /// An error with a code and a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// The error codes by their wire names' constants (see [`ErrorCode`]).
pub mod codes {
    use super::ErrorCode;

    /// Not JSON, or not a JSON object.
    pub const BAD_REQUEST: ErrorCode = ErrorCode::BadRequest;
    /// `type` is missing or unknown.
    pub const UNKNOWN_TYPE: ErrorCode = ErrorCode::UnknownType;
    /// A required field is missing or has the wrong type.
    pub const INVALID_FIELD: ErrorCode = ErrorCode::InvalidField;
    /// The command needs authentication first.
    pub const UNAUTHORIZED: ErrorCode = ErrorCode::Unauthorized;
    /// The token is not valid (signature, format, claims).
    pub const INVALID_TOKEN: ErrorCode = ErrorCode::InvalidToken;
    /// The token has expired.
    pub const TOKEN_EXPIRED: ErrorCode = ErrorCode::TokenExpired;
    /// The token does not allow this channel.
    pub const FORBIDDEN: ErrorCode = ErrorCode::Forbidden;
    /// The channel name is empty, too long or has forbidden characters.
    pub const INVALID_CHANNEL: ErrorCode = ErrorCode::InvalidChannel;
    /// Already subscribed to the channel.
    pub const ALREADY_SUBSCRIBED: ErrorCode = ErrorCode::AlreadySubscribed;
    /// Not subscribed to the channel.
    pub const NOT_SUBSCRIBED: ErrorCode = ErrorCode::NotSubscribed;
    /// The connection has the most subscriptions allowed.
    pub const TOO_MANY_SUBSCRIPTIONS: ErrorCode = ErrorCode::TooManySubscriptions;
    /// Publishing faster than the configured rate.
    pub const RATE_LIMITED: ErrorCode = ErrorCode::RateLimited;
    /// The published data is larger than allowed.
    pub const TOO_LARGE: ErrorCode = ErrorCode::TooLarge;
    /// The published data nests arrays and objects deeper than `max_json_depth`.
    pub const TOO_DEEP: ErrorCode = ErrorCode::TooDeep;
    /// The server keeps `max_channels` channels: no new one can be created now.
    pub const TOO_MANY_CHANNELS: ErrorCode = ErrorCode::TooManyChannels;
    /// Already authenticated.
    pub const ALREADY_AUTHENTICATED: ErrorCode = ErrorCode::AlreadyAuthenticated;
    /// The server failed (broker unavailable, …).
    pub const INTERNAL: ErrorCode = ErrorCode::Internal;
    /// HTTP transports: the cursor (or `Last-Event-ID`, or `since`) cannot be read.
    pub const INVALID_CURSOR: ErrorCode = ErrorCode::InvalidCursor;
    /// HTTP transports: the server is at `max_connections`.
    pub const UNAVAILABLE: ErrorCode = ErrorCode::Unavailable;
    /// HTTP transports: the request's `Origin` is not in `allowed_origins`.
    pub const ORIGIN_NOT_ALLOWED: ErrorCode = ErrorCode::OriginNotAllowed;
}

/// The most characters in a channel name.
pub const MAX_CHANNEL_LEN: usize = 255;

/// Parses one text frame into a request.
pub fn parse_request(text: &str) -> Result<Request, (Option<u64>, ProtocolError)> {
    let raw: RawCommand = serde_json::from_str(text).map_err(|err| mistyped_or_bad(text, &err))?;
    let id = raw.id;
    raw.into_command()
        .map(|command| Request { id, command })
        .map_err(|err| (id, err))
}

/// Why a text is not a command: `invalid_field` (with the `id`, when it can be read) for a JSON
/// object whose fields have the wrong types, `bad_request` for anything else.
fn mistyped_or_bad(text: &str, err: &serde_json::Error) -> (Option<u64>, ProtocolError) {
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Object(object)) => {
            let id = object.get("id").and_then(serde_json::Value::as_u64);
            (
                id,
                ProtocolError::new(
                    codes::INVALID_FIELD,
                    format!("a field has the wrong type: {err}"),
                ),
            )
        }
        _ => (
            None,
            ProtocolError::new(
                codes::BAD_REQUEST,
                format!("not a valid command object: {err}"),
            ),
        ),
    }
}

/// Every field any command may carry.
#[derive(Deserialize)]
struct RawCommand {
    #[serde(rename = "type")]
    kind: Option<String>,
    id: Option<u64>,
    token: Option<String>,
    channel: Option<String>,
    since: Option<serde_json::Value>,
    #[serde(default, deserialize_with = "present")]
    data: Option<Box<RawValue>>,
    limit: Option<usize>,
}

/// A field that is there, whatever its value: `"data": null` is `Some(null)`, not missing.
fn present<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Box<RawValue>>, D::Error> {
    Box::<RawValue>::deserialize(deserializer).map(Some)
}

impl RawCommand {
    fn into_command(self) -> Result<Command, ProtocolError> {
        let Some(kind) = self.kind else {
            return Err(ProtocolError::new(codes::UNKNOWN_TYPE, "missing \"type\""));
        };
        Ok(match kind.as_str() {
            "auth" => Command::Auth {
                token: required(self.token, "token")?,
            },
            "subscribe" => {
                let since = match self.since {
                    None | Some(serde_json::Value::Null) => None,
                    Some(value) => Some(serde_json::from_value(value).map_err(|_| {
                        ProtocolError::new(
                            codes::INVALID_FIELD,
                            "\"since\" must be {\"epoch\": string, \"offset\": number}",
                        )
                    })?),
                };
                Command::Subscribe {
                    channel: channel(self.channel)?,
                    since,
                }
            }
            "unsubscribe" => Command::Unsubscribe {
                channel: channel(self.channel)?,
            },
            "publish" => Command::Publish {
                channel: channel(self.channel)?,
                data: required(self.data, "data")?,
            },
            "presence" => Command::Presence {
                channel: channel(self.channel)?,
            },
            "history" => {
                let since = match self.since {
                    None | Some(serde_json::Value::Null) => None,
                    Some(value) => Some(value.as_u64().ok_or_else(|| {
                        ProtocolError::new(
                            codes::INVALID_FIELD,
                            "\"since\" must be an offset (number) in history",
                        )
                    })?),
                };
                Command::History {
                    channel: channel(self.channel)?,
                    since,
                    limit: self.limit,
                }
            }
            "ping" => Command::Ping,
            other => {
                return Err(ProtocolError::new(
                    codes::UNKNOWN_TYPE,
                    format!("unknown type {other:?}"),
                ));
            }
        })
    }
}

fn required<T>(value: Option<T>, field: &str) -> Result<T, ProtocolError> {
    value.ok_or_else(|| {
        ProtocolError::new(codes::INVALID_FIELD, format!("missing field \"{field}\""))
    })
}

fn channel(value: Option<String>) -> Result<String, ProtocolError> {
    let name = required(value, "channel")?;
    validate_channel(&name)?;
    Ok(name)
}

/// Channel names: 1–255 characters, printable, no whitespace.
pub fn validate_channel(name: &str) -> Result<(), ProtocolError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_CHANNEL_LEN
        && name.chars().all(|c| !c.is_whitespace() && !c.is_control());
    if ok {
        Ok(())
    } else {
        Err(ProtocolError::new(
            codes::INVALID_CHANNEL,
            format!("invalid channel name {name:?}"),
        ))
    }
}

/// Refuses `data` that nests arrays and objects more than `max` deep (`too_deep`), before it
/// is stored: a reader that parses the stored message (serde_json stops at 128 levels, so do
/// many clients) must never meet data it cannot read.
pub fn check_depth(data: &RawValue, max: usize) -> Result<(), ProtocolError> {
    if !nests_deeper_than(data.get().as_bytes(), max) {
        return Ok(());
    }
    Err(ProtocolError::new(
        codes::TOO_DEEP,
        format!("data nests arrays and objects deeper than max_json_depth ({max})"),
    ))
}

/// Whether the JSON text `json` opens more than `max` arrays and objects inside one another.
/// A byte scan, not a parse: brackets inside strings (escapes included) do not count. `json`
/// is already known to be valid JSON.
pub fn nests_deeper_than(json: &[u8], max: usize) -> bool {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &byte in json {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// Server → client messages that are not channel pushes.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Reply<'a> {
    /// Authentication succeeded.
    Authenticated {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        client: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        user: Option<&'a str>,
    },
    /// Subscribed; `recovered` says whether every message after `since` was replayed.
    Subscribed {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        channel: &'a str,
        epoch: &'a str,
        offset: u64,
        recovered: bool,
    },
    /// Unsubscribed.
    Unsubscribed {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        channel: &'a str,
    },
    /// Published at this offset.
    Published {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        channel: &'a str,
        epoch: &'a str,
        offset: u64,
    },
    /// Who is subscribed.
    Presence {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        channel: &'a str,
        clients: &'a [ClientInfo],
    },
    /// A page of history (each entry has the `message` push's fields); `more` says that the
    /// channel keeps messages after the page's last one (ask again with `since` = its offset).
    History {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        channel: &'a str,
        epoch: &'a str,
        offset: u64,
        more: bool,
        messages: Vec<&'a RawValue>,
    },
    /// Answer to `ping`.
    Pong {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
    },
    /// A request failed.
    Error {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        code: ErrorCode,
        message: &'a str,
    },
}

impl Reply<'_> {
    /// The JSON text.
    pub fn to_json(&self) -> String {
        // Serializing these plain structs cannot fail: every field is a string, number, bool or
        // already-valid raw JSON.
        serde_json::to_string(self)
            .unwrap_or_else(|_| String::from("{\"type\":\"error\",\"code\":\"internal\"}"))
    }
}

/// A subscriber as presence reports it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ClientInfo {
    /// The connection's id.
    pub client: String,
    /// The token's `sub`, if authenticated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

/// A `message` push: built once per publication and shared by every subscriber.
#[derive(Serialize)]
pub struct MessagePush<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub channel: &'a str,
    pub offset: u64,
    pub epoch: &'a str,
    pub data: &'a RawValue,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<&'a str>,
    pub ts: i64,
}

/// A `join` or `leave` push.
#[derive(Serialize)]
pub struct PresencePush<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub channel: &'a str,
    #[serde(flatten)]
    pub info: &'a ClientInfo,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_command() {
        let r = parse_request(
            r#"{"type":"subscribe","id":7,"channel":"room:a","since":{"epoch":"e1","offset":3}}"#,
        )
        .unwrap();
        assert_eq!(r.id, Some(7));
        assert!(
            matches!(r.command, Command::Subscribe { ref channel, since: Some(Since { ref epoch, offset: 3 }) } if channel == "room:a" && epoch == "e1")
        );
        let r = parse_request(r#"{"type":"publish","channel":"c","data":{"x":[1,2]}}"#).unwrap();
        assert!(
            matches!(r.command, Command::Publish { ref data, .. } if data.get() == r#"{"x":[1,2]}"#)
        );
        assert!(matches!(
            parse_request(r#"{"type":"ping"}"#).unwrap().command,
            Command::Ping
        ));
    }

    #[test]
    fn errors_are_precise() {
        let code = |text: &str| parse_request(text).unwrap_err().1.code;
        assert_eq!(code("not json"), codes::BAD_REQUEST);
        assert_eq!(code("[1]"), codes::BAD_REQUEST);
        assert_eq!(code(r#"{"id":1}"#), codes::UNKNOWN_TYPE);
        assert_eq!(code(r#"{"type":"dance"}"#), codes::UNKNOWN_TYPE);
        assert_eq!(
            code(r#"{"type":"publish","channel":"c"}"#),
            codes::INVALID_FIELD
        );
        assert_eq!(code(r#"{"type":"subscribe"}"#), codes::INVALID_FIELD);
        assert_eq!(
            code(r#"{"type":"subscribe","channel":""}"#),
            codes::INVALID_CHANNEL
        );
        assert_eq!(
            code(r#"{"type":"subscribe","channel":"a","since":{"offset":"x"}}"#),
            codes::INVALID_FIELD
        );
        assert_eq!(
            parse_request(r#"{"type":"auth","id":4}"#).unwrap_err().0,
            Some(4)
        );
    }

    #[test]
    fn depth_counts_brackets_outside_strings_only() {
        assert!(!nests_deeper_than(b"1", 0));
        assert!(nests_deeper_than(b"[]", 0));
        assert!(!nests_deeper_than(br#"[{"a":[1]},[2]]"#, 3));
        assert!(nests_deeper_than(br#"[{"a":[[1]]}]"#, 3));
        assert!(!nests_deeper_than(
            br#"["[[[[", "\"[[[", {"k\\":"{{{"}]"#,
            2
        ));
        assert!(nests_deeper_than(br#"["\\", [[1]]]"#, 2));
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        let raw = RawValue::from_string(deep).unwrap();
        let err = check_depth(&raw, 64).unwrap_err();
        assert_eq!(err.code, codes::TOO_DEEP);
        assert!(err.message.contains("64"), "{}", err.message);
        let ok = RawValue::from_string("[".repeat(64) + &"]".repeat(64)).unwrap();
        assert!(check_depth(&ok, 64).is_ok());
    }
}
