//! What a client is sent, encoded once for every transport: the JSON text and its WebSocket
//! frame (compressed once when a subscriber negotiated permessage-deflate), with the fields the
//! HTTP transports and cursors need beside them — its type, channel and position — so that no
//! transport parses back JSON the server itself wrote. A publication's push is built once and
//! shared (`Arc`) by every subscriber's queue, whatever carries it.

use std::sync::Arc;

use ripple::{DeflateConfig, Message, PreparedMessage};

use crate::protocol::Reply;

/// A server message, ready for any transport.
#[derive(Debug)]
pub struct Push {
    head: Head,
    message: PreparedMessage,
}

/// What a push is, and where it moves its channel's stream.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Head {
    /// Its `type`.
    pub kind: Kind,
    /// The channel, for `subscribed` and `message` pushes.
    pub channel: Option<Arc<str>>,
    /// The channel's epoch, with `channel`.
    pub epoch: Option<Arc<str>>,
    /// The offset: of the message, or the channel's newest at a `subscribed`.
    pub offset: Option<u64>,
    /// `subscribed`: whether the client's position was recovered.
    pub recovered: Option<bool>,
}

/// The `type` of a push (the SSE event name).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Kind {
    /// `authenticated`
    Authenticated,
    /// `subscribed`
    Subscribed,
    /// `unsubscribed`
    Unsubscribed,
    /// `published`
    Published,
    /// `presence`
    Presence,
    /// `history`
    History,
    /// `pong`
    Pong,
    /// `error`
    #[default]
    Error,
    /// `message`: a publication.
    Message,
    /// `join`
    Join,
    /// `leave`
    Leave,
    /// A `/chat` line: plain text, not the channel protocol.
    Chat,
}

impl Kind {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Authenticated => "authenticated",
            Self::Subscribed => "subscribed",
            Self::Unsubscribed => "unsubscribed",
            Self::Published => "published",
            Self::Presence => "presence",
            Self::History => "history",
            Self::Pong => "pong",
            Self::Error => "error",
            Self::Message => "message",
            Self::Join => "join",
            Self::Leave => "leave",
            Self::Chat => "chat",
        }
    }
}

impl Push {
    /// A publication: `json` is its `message` push.
    pub fn message(
        channel: &str,
        epoch: &str,
        offset: u64,
        json: String,
        deflate: Option<&DeflateConfig>,
    ) -> Arc<Self> {
        let head = Head {
            kind: Kind::Message,
            channel: Some(Arc::from(channel)),
            epoch: Some(Arc::from(epoch)),
            offset: Some(offset),
            recovered: None,
        };
        Self::new(head, json, deflate)
    }

    /// A `join` or `leave` push (`kind`), `json` being its text.
    pub fn presence(kind: Kind, json: String, deflate: Option<&DeflateConfig>) -> Arc<Self> {
        let head = Head {
            kind,
            ..Head::default()
        };
        Self::new(head, json, deflate)
    }

    /// The reply to a command.
    pub fn reply(reply: &Reply<'_>, deflate: Option<&DeflateConfig>) -> Arc<Self> {
        Self::new(head_of(reply), reply.to_json(), deflate)
    }

    /// A `/chat` line.
    pub fn chat(line: String) -> Arc<Self> {
        let head = Head {
            kind: Kind::Chat,
            ..Head::default()
        };
        Self::new(head, line, None)
    }

    fn new(head: Head, text: String, deflate: Option<&DeflateConfig>) -> Arc<Self> {
        let message = PreparedMessage::new(Message::from(text), deflate);
        Arc::new(Self { head, message })
    }

    /// Its type and position.
    pub fn head(&self) -> &Head {
        &self.head
    }

    /// The JSON text (for `/chat`, the line).
    pub fn json(&self) -> &[u8] {
        self.message.message().as_bytes()
    }

    /// The WebSocket message, framed (and compressed) once.
    pub fn prepared(&self) -> &PreparedMessage {
        &self.message
    }

    /// Bytes it takes in a client's queue: its uncompressed frame.
    pub fn queued_size(&self) -> usize {
        self.message.plain_frame().len()
    }
}

/// The head of a reply: `subscribed` carries its channel's position.
fn head_of(reply: &Reply<'_>) -> Head {
    let kind = match reply {
        Reply::Authenticated { .. } => Kind::Authenticated,
        Reply::Subscribed {
            channel,
            epoch,
            offset,
            recovered,
            ..
        } => {
            return Head {
                kind: Kind::Subscribed,
                channel: Some(Arc::from(*channel)),
                epoch: Some(Arc::from(*epoch)),
                offset: Some(*offset),
                recovered: Some(*recovered),
            };
        }
        Reply::Unsubscribed { .. } => Kind::Unsubscribed,
        Reply::Published { .. } => Kind::Published,
        Reply::Presence { .. } => Kind::Presence,
        Reply::History { .. } => Kind::History,
        Reply::Pong { .. } => Kind::Pong,
        Reply::Error { .. } => Kind::Error,
    };
    Head {
        kind,
        ..Head::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_carries_its_kind_and_a_subscribed_its_position() {
        let subscribed = Push::reply(
            &Reply::Subscribed {
                id: Some(1),
                channel: "room:1",
                epoch: "e",
                offset: 42,
                recovered: true,
            },
            None,
        );
        let head = subscribed.head();
        assert_eq!(head.kind.as_str(), "subscribed");
        assert_eq!(
            (head.channel.as_deref(), head.epoch.as_deref()),
            (Some("room:1"), Some("e"))
        );
        assert_eq!((head.offset, head.recovered), (Some(42), Some(true)));
        let text: serde_json::Value = serde_json::from_slice(subscribed.json()).unwrap();
        assert_eq!(text["type"], "subscribed");
        assert_eq!(text["offset"], 42);
        let pong = Push::reply(&Reply::Pong { id: None }, None);
        assert_eq!(pong.head().kind, Kind::Pong);
        assert_eq!(pong.head().channel, None);
        assert_eq!(pong.json(), br#"{"type":"pong"}"#);
    }

    #[test]
    fn a_message_is_framed_once_with_its_position() {
        let push = Push::message("c", "e", 7, r#"{"type":"message"}"#.into(), None);
        assert_eq!(push.head().offset, Some(7));
        assert_eq!(push.queued_size(), push.prepared().plain_frame().len());
        assert_eq!(push.queued_size(), 2 + push.json().len());
    }
}
