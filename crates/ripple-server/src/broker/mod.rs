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

use ripple::PreparedMessage;
use serde_json::value::RawValue;

use crate::protocol::{ClientInfo, Since};
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

/// A page of a channel's history.
#[derive(Clone, Debug)]
pub struct HistoryPage {
    /// The channel's epoch.
    pub epoch: String,
    /// The offset of the newest message.
    pub offset: u64,
    /// `message` pushes, oldest first.
    pub messages: Vec<Arc<PreparedMessage>>,
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

/// The broker failed (a backend that went away); the in-memory one never does.
#[derive(Clone, Debug, thiserror::Error)]
#[error("broker unavailable: {0}")]
pub struct BrokerError(pub String);

/// The close code when a channel's history was lost under a subscriber (defined in `close.rs`).
pub use crate::close::STATE_LOST;

/// The reply to queue before any replayed or live message of a new subscription.
pub type SubscribedReply<'a> = &'a (dyn Fn(&Subscribed) -> Arc<PreparedMessage> + Send + Sync);

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

    /// Messages after offset `since` (all kept ones when `None`), at most `limit`, oldest first.
    fn history<'a>(
        &'a self,
        channel: &'a str,
        since: Option<u64>,
        limit: usize,
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
