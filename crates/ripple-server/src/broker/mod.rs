//! The broker seam: fan-out, history with offsets and epochs, and presence. The session talks
//! only to [`Broker`]; the in-memory implementation is the default, and the Redis one
//! (`redis`, for several nodes sharing channels) sits beside it. One test suite,
//! `tests/it/broker.rs`, runs against every implementation.

mod local;
pub mod memory;
pub mod redis;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde_json::value::RawValue;

use crate::protocol::{ClientInfo, Since};
use crate::push::Push;
use crate::queue::ClientQueue;

pub use memory::MemoryBroker;
pub use redis::RedisBroker;

/// A boxed future, so brokers can be chosen at run time (`Arc<dyn Broker>`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A subscriber on this node: who it is and where its messages go.
#[derive(Clone, Debug)]
pub struct Subscriber {
    /// Presence information.
    pub info: ClientInfo,
    /// Its outbound queue.
    pub queue: Arc<ClientQueue>,
    /// Whether it negotiated compression (so publications are compressed only when someone
    /// can use it).
    pub compressed: bool,
    /// Whether it appears in presence (`join`/`leave`, the list). Long-polling subscriptions
    /// last one request and do not.
    pub visible: bool,
}

/// The state of a channel's stream at a subscription.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subscribed {
    /// The channel's epoch.
    pub epoch: String,
    /// The offset of the newest message.
    pub offset: u64,
    /// Whether every message after the client's `since` was replayed.
    pub recovered: bool,
}

/// Where a publication landed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Published {
    /// The channel's epoch.
    pub epoch: String,
    /// The publication's offset.
    pub offset: u64,
}

/// Which page of a channel's history to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HistoryQuery {
    /// Messages after this offset (every kept one when `None`).
    pub since: Option<u64>,
    /// At most this many messages.
    pub limit: usize,
    /// At most this many bytes of message JSON (each counted with one byte for its comma),
    /// except that a page always holds the first message it may, however large.
    pub max_bytes: usize,
}

impl HistoryQuery {
    /// Everything kept after `since`, however much.
    pub fn after(since: u64) -> Self {
        Self {
            since: Some(since),
            limit: usize::MAX,
            max_bytes: usize::MAX,
        }
    }
}

/// A page of a channel's history.
#[derive(Clone, Debug)]
pub struct HistoryPage {
    /// The channel's epoch.
    pub epoch: String,
    /// The offset of the newest message.
    pub offset: u64,
    /// `message` pushes, oldest first.
    pub messages: Vec<Arc<Push>>,
    /// Whether the channel keeps messages after the last one of the page (left out by the
    /// query's `limit` or `max_bytes`).
    pub more: bool,
}

impl HistoryPage {
    /// The page of a channel the broker does not know.
    pub fn unknown() -> Self {
        Self {
            epoch: String::new(),
            offset: 0,
            messages: Vec::new(),
            more: false,
        }
    }
}

/// Takes, from `candidates` (oldest first, each with its JSON length), what fits `query`'s
/// `limit` and `max_bytes`; says whether some were left out.
pub(crate) fn take_page<T>(
    candidates: impl IntoIterator<Item = (T, usize)>,
    query: &HistoryQuery,
) -> (Vec<T>, bool) {
    let mut taken = Vec::new();
    let mut bytes = 0usize;
    for (item, len) in candidates {
        let size = len + 1;
        let full = taken.len() >= query.limit
            || (!taken.is_empty() && bytes.saturating_add(size) > query.max_bytes);
        if full {
            return (taken, true);
        }
        bytes += size;
        taken.push(item);
    }
    (taken, false)
}

/// A channel as `GET /api/channels` lists it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ChannelSummary {
    /// Its name.
    pub channel: String,
    /// Subscribers now.
    pub subscribers: usize,
    /// Its epoch.
    pub epoch: String,
    /// The offset of its newest message.
    pub offset: u64,
}

/// Why the broker did not do what it was asked.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BrokerError {
    /// The backend failed (a Redis that went away); the in-memory broker never does.
    #[error("broker unavailable: {0}")]
    Unavailable(String),
    /// A new channel was asked for while the broker keeps `max_channels` of them.
    #[error("the server keeps {max} channels, its most: no new channel now")]
    TooManyChannels {
        /// The limit (`max_channels`).
        max: usize,
    },
}

impl BrokerError {
    /// The protocol's error for it: `too_many_channels`, or `internal` for a failed backend.
    pub fn to_protocol(&self) -> crate::protocol::ProtocolError {
        use crate::protocol::{ProtocolError, codes};
        match self {
            Self::TooManyChannels { .. } => {
                ProtocolError::new(codes::TOO_MANY_CHANNELS, self.to_string())
            }
            Self::Unavailable(_) => {
                tracing::warn!("{self}");
                ProtocolError::new(codes::INTERNAL, self.to_string())
            }
        }
    }
}

/// The close code when a channel's history was lost under a subscriber (defined in `close.rs`).
pub use crate::close::STATE_LOST;

/// The reply to queue before any replayed or live message of a new subscription.
pub type SubscribedReply<'a> = &'a (dyn Fn(&Subscribed) -> Arc<Push> + Send + Sync);

/// Fan-out, history and presence.
pub trait Broker: Send + Sync + std::fmt::Debug {
    /// Subscribes: queues `reply(..)`, then every message after `since` (when it can be
    /// recovered), then live messages — with nothing missed or doubled between them. Live
    /// messages may be queued after this returns (a broker with a network hop delivers them
    /// when they arrive), always in offset order.
    fn subscribe<'a>(
        &'a self,
        channel: &'a str,
        subscriber: Subscriber,
        since: Option<&'a Since>,
        reply: SubscribedReply<'a>,
    ) -> BoxFuture<'a, Result<Subscribed, BrokerError>>;

    /// Removes a client's subscription (and announces its leave).
    fn unsubscribe<'a>(
        &'a self,
        channel: &'a str,
        client: &'a str,
    ) -> BoxFuture<'a, Result<(), BrokerError>>;

    /// Publishes `data`: assigns the next offset, keeps it in history, delivers it.
    fn publish<'a>(
        &'a self,
        channel: &'a str,
        data: &'a RawValue,
        from: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Published, BrokerError>>;

    /// A page of the messages kept after `query.since`, oldest first, within the query's
    /// `limit` and `max_bytes` (see [`HistoryQuery`]).
    fn history<'a>(
        &'a self,
        channel: &'a str,
        query: HistoryQuery,
    ) -> BoxFuture<'a, Result<HistoryPage, BrokerError>>;

    /// The channel's subscribers.
    fn presence<'a>(
        &'a self,
        channel: &'a str,
    ) -> BoxFuture<'a, Result<Vec<ClientInfo>, BrokerError>>;

    /// Every channel with subscribers or history.
    fn channels(&self) -> BoxFuture<'_, Result<Vec<ChannelSummary>, BrokerError>>;

    /// Drops expired history and empty channels; the server calls it every few seconds.
    fn sweep(&self) -> BoxFuture<'_, ()> {
        Box::pin(std::future::ready(()))
    }

    /// Whether the broker can serve requests now (`/healthz`).
    fn healthy(&self) -> bool {
        true
    }
}
