//! What every request handler and session shares.

use std::sync::Arc;

use ripple::DeflateConfig;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::AuthError;
use crate::broker::memory::{MemoryBroker, MemoryOptions};
use crate::broker::redis::{RedisBroker, RedisOptions};
use crate::broker::{Broker, BrokerError};
use crate::budget::AnswerBudget;
use crate::config::{BrokerConfig, Config};
use crate::gate::PublishGate;
use crate::metrics::Metrics;
use crate::rate::{KeyedLimiter, LogThrottle};
use crate::transport::chat::ChatRoom;

/// Refused-token log lines per second, at most: anyone can send bad tokens as fast as they like.
const TOKEN_LOG_RATE: u32 = 5;

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
    /// Cancelled when the shutdown deadline passes: whatever still runs is dropped.
    pub halt: CancellationToken,
    /// Publications in flight; closed at shutdown (see [`PublishGate`]).
    pub publishing: PublishGate,
    /// `POST /rpc` publish rates, per user or client address.
    pub rpc_rates: KeyedLimiter,
    /// Refused tokens are logged at most a few times a second (see [`AppState::refused_token`]).
    pub token_log: LogThrottle,
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
            halt: CancellationToken::new(),
            publishing: PublishGate::default(),
            rpc_rates: KeyedLimiter::new(config.publish_rate),
            token_log: LogThrottle::new(TOKEN_LOG_RATE),
            answers: AnswerBudget::new(config.answer_budget_bytes),
            config,
        })
    }

    /// Where writers read paced replays from (see [`crate::replay`]).
    pub fn pacer(&self) -> crate::replay::Pacer<'_> {
        crate::replay::Pacer {
            broker: &*self.broker,
            page_bytes: self.config.history_page_bytes,
        }
    }

    /// Counts a refused token and logs it, a few lines a second at most (the next line says how
    /// many were held back). `who` names the client: its id, or the endpoint it tried.
    pub fn refused_token(&self, who: &str, err: &AuthError) {
        self.metrics.reject(crate::metrics::Rejection::Token);
        if let Some(held_back) = self.token_log.admit(std::time::Instant::now()) {
            if held_back > 0 {
                tracing::info!(
                    who,
                    "refused token: {err} ({held_back} more refused, not logged)"
                );
            } else {
                tracing::info!(who, "refused token: {err}");
            }
        }
    }
}
