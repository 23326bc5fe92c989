//! What every request handler and session shares.

use std::sync::Arc;

use ripple::DeflateConfig;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::broker::memory::{MemoryBroker, MemoryOptions};
use crate::broker::redis::{RedisBroker, RedisOptions};
use crate::broker::{Broker, BrokerError};
use crate::budget::AnswerBudget;
use crate::config::{BrokerConfig, Config};
use crate::metrics::Metrics;
use crate::rate::KeyedLimiter;
use crate::transport::chat::ChatRoom;

/// The server's shared state.
#[derive(Debug)]
pub struct AppState {
    /// The configuration in force.
    pub config: Config,
    /// Fan-out, history, presence.
    pub broker: Arc<dyn Broker>,
    /// Counters for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// The raw `/chat` room.
    pub chat: ChatRoom,
    /// How messages are compressed for clients that negotiated permessage-deflate.
    pub deflate: Option<DeflateConfig>,
    /// Cancelled on shutdown: every session closes with 1001.
    pub shutdown: CancellationToken,
    /// Every WebSocket and SSE session, so shutdown can wait for them.
    pub sessions: TaskTracker,
    /// `POST /rpc` publish rates, per user or client address.
    pub rpc_rates: KeyedLimiter,
    /// Bytes held in HTTP answers not yet written (`answer_budget_bytes`).
    pub answers: AnswerBudget,
}

impl AppState {
    /// State with the broker `config.broker` names: for a `redis://` URL, connects to it
    /// (within a few seconds) and fails with an error naming the URL if it cannot.
    pub async fn connect(config: Config) -> Result<Arc<Self>, BrokerError> {
        let BrokerConfig::Redis(url) = &config.broker else {
            return Ok(Self::new(config));
        };
        let metrics = Arc::new(Metrics::default());
        let options = RedisOptions {
            history_size: config.history_size,
            history_ttl: config.history_ttl(),
            presence: config.presence,
            presence_ttl: config.presence_ttl(),
            deflate: config.websocket().compression,
            ..RedisOptions::new(url.clone())
        };
        let broker = RedisBroker::connect(options, Arc::clone(&metrics)).await?;
        Ok(Self::with_broker(config, Arc::new(broker), metrics))
    }

    /// State with the in-memory broker, whatever `config.broker` says (see
    /// [`AppState::connect`]).
    pub fn new(config: Config) -> Arc<Self> {
        let metrics = Arc::new(Metrics::default());
        let deflate = config.websocket().compression;
        let options = MemoryOptions {
            history_size: config.history_size,
            history_ttl: config.history_ttl(),
            presence: config.presence,
            deflate: deflate.clone(),
            history_max_bytes: config.history_max_bytes,
            max_channels: config.max_channels,
        };
        let broker = Arc::new(MemoryBroker::new(options, Arc::clone(&metrics)));
        Self::with_broker(config, broker, metrics)
    }

    /// State with a given broker.
    pub fn with_broker(
        config: Config,
        broker: Arc<dyn Broker>,
        metrics: Arc<Metrics>,
    ) -> Arc<Self> {
        let deflate = config.websocket().compression;
        Arc::new(Self {
            chat: ChatRoom::default(),
            broker,
            metrics,
            deflate,
            shutdown: CancellationToken::new(),
            sessions: TaskTracker::new(),
            rpc_rates: KeyedLimiter::new(config.publish_rate),
            answers: AnswerBudget::new(config.answer_budget_bytes),
            config,
        })
    }
}
