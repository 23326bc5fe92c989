//! The Redis broker: many `ripple serve` nodes share channels, history and presence through one
//! Redis (docs/scale-out.md).
//!
//! - **Commands** go over one multiplexed, self-reconnecting connection (pipelined by every
//!   session of the node); every change is one Lua script ([`scripts`]), so a channel's offset
//!   grows by one per message whichever node publishes, and the history append, the trimming
//!   and the pub/sub publish happen in the same step.
//! - **Fan-out**: each node keeps one dedicated pub/sub connection subscribed to a fixed number
//!   of shard channels (`hash(channel) % shards`), never one Redis subscription per client or
//!   per channel; a node hands what arrives to its own subscribers ([`node`]), which keep
//!   offsets in order, skip duplicates and hold a channel while a gap is filled from history.
//! - **Presence** entries name their node; a node heartbeats every third of `presence_ttl`, and
//!   the entries of a node that stopped are ignored at once and removed (with `leave` pushes) by
//!   the next sweep.
//! - **Faults**: every wait on Redis has a timeout; while Redis is unreachable `healthy()` is
//!   false, commands fail with [`BrokerError`] (a publish is never dropped silently) and the
//!   node reconnects with backoff, subscribes its shards again and catches up every local
//!   channel from history — or disconnects the subscribers whose messages are gone, with
//!   [`super::STATE_LOST`], so they subscribe again and are told `recovered: false`.

mod node;
mod scripts;
mod wire;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::StreamExt as _;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, PubSub};
use redis::{FromRedisValue, RedisError, ScriptInvocation};
use ripple::DeflateConfig;
use serde_json::value::RawValue;
use tokio_util::sync::{CancellationToken, DropGuard};

use self::node::{CatchUp, HistoryRead, Registry};
use self::scripts::Scripts;
use super::local::{new_epoch, presence_json};
use super::{
    BoxFuture, Broker, BrokerError, ChannelSummary, HistoryPage, HistoryQuery, Published,
    Subscribed, SubscribedReply, Subscriber,
};
use crate::metrics::Metrics;
use crate::protocol::{ClientInfo, Since};
use crate::push::Push;

/// First pause before reconnecting or retrying; doubled up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// Longest pause between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// Channels per script call when listing or sweeping them.
const PAGE: isize = 256;
/// Presence entries of dead nodes removed per sweep.
const REAP_BUDGET: u64 = 10_000;

/// How to reach Redis, and the history and presence settings.
#[derive(Clone, Debug)]
pub struct RedisOptions {
    /// `redis://HOST:PORT/DB`.
    pub url: String,
    /// Messages kept per channel.
    pub history_size: usize,
    /// How long a message is kept.
    pub history_ttl: Duration,
    /// Whether to push join/leave.
    pub presence: bool,
    /// How long the clients of a node that stopped heartbeating stay in presence.
    pub presence_ttl: Duration,
    /// How publications are compressed for subscribers that negotiated permessage-deflate.
    pub deflate: Option<DeflateConfig>,
    /// Redis pub/sub channels the channels are spread over (default 16).
    pub shards: u32,
    /// The bound on every wait for Redis: connecting, each command, each script (default 2 s).
    pub timeout: Duration,
}

impl RedisOptions {
    /// The defaults for `url`: the server's default history and presence settings.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            history_size: 100,
            history_ttl: Duration::from_secs(300),
            presence: true,
            presence_ttl: Duration::from_secs(10),
            deflate: None,
            shards: 16,
            timeout: Duration::from_secs(2),
        }
    }
}

/// Channels, history and presence in Redis, shared by every node connected to it.
#[derive(Debug)]
pub struct RedisBroker {
    inner: Arc<Inner>,
    /// Stops the node's background tasks (pub/sub, heartbeat) when the broker goes.
    _stop: DropGuard,
}

#[derive(Debug)]
struct Inner {
    /// The URL without its password, for messages.
    shown: String,
    /// This node's id in presence entries and heartbeats.
    node: String,
    /// The database, which names the shards (pub/sub is not per database).
    db: i64,
    options: RedisOptions,
    metrics: Arc<Metrics>,
    client: redis::Client,
    commands: ConnectionManager,
    scripts: Scripts,
    registry: Registry,
    pubsub_up: AtomicBool,
    commands_up: AtomicBool,
    stop: CancellationToken,
}

impl RedisBroker {
    /// Connects (within `options.timeout`), registers this node and subscribes its shards.
    /// The error names the URL (without its password).
    pub async fn connect(
        options: RedisOptions,
        metrics: Arc<Metrics>,
    ) -> Result<Self, BrokerError> {
        let shown = crate::config::redact(&options.url);
        let unreachable = |why: &dyn std::fmt::Display| {
            BrokerError::Unavailable(format!("cannot connect to Redis at {shown}: {why}"))
        };
        let client = redis::Client::open(options.url.as_str()).map_err(|e| unreachable(&e))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(options.timeout))
            .set_response_timeout(Some(options.timeout))
            .set_number_of_retries(1)
            .set_max_delay(MAX_BACKOFF);
        let commands = tokio::time::timeout(
            options.timeout * 2,
            client.get_connection_manager_with_config(config),
        )
        .await
        .map_err(|_| unreachable(&"timed out"))?
        .map_err(|e| unreachable(&e))?;
        let db = client.get_connection_info().redis_settings().db();
        let stop = CancellationToken::new();
        let inner = Arc::new(Inner {
            shown: shown.clone(),
            node: new_epoch(),
            db,
            registry: Registry::new(Arc::clone(&metrics), options.deflate.clone()),
            options,
            metrics,
            client,
            commands,
            scripts: Scripts::new(),
            pubsub_up: AtomicBool::new(false),
            commands_up: AtomicBool::new(true),
            stop: stop.clone(),
        });
        inner.heartbeat().await.map_err(|e| unreachable(&e))?;
        let pubsub = inner.connect_pubsub().await.map_err(|e| unreachable(&e))?;
        inner.pubsub_up.store(true, Ordering::Relaxed);
        tokio::spawn(Arc::clone(&inner).listen(pubsub));
        tokio::spawn(Arc::clone(&inner).beat());
        tracing::info!(node = %inner.node, redis = %shown, shards = inner.options.shards,
            "Redis broker connected");
        Ok(Self {
            inner,
            _stop: stop.drop_guard(),
        })
    }

    /// This node's id (in presence entries and heartbeats).
    pub fn node(&self) -> &str {
        &self.inner.node
    }
}

impl Broker for RedisBroker {
    fn subscribe<'a>(
        &'a self,
        channel: &'a str,
        subscriber: Subscriber,
        since: Option<&'a Since>,
        reply: SubscribedReply<'a>,
    ) -> BoxFuture<'a, Result<Subscribed, BrokerError>> {
        Box::pin(self.inner.subscribe(channel, subscriber, since, reply))
    }

    fn unsubscribe<'a>(
        &'a self,
        channel: &'a str,
        client: &'a str,
    ) -> BoxFuture<'a, Result<(), BrokerError>> {
        Box::pin(async move {
            self.inner.registry.unregister(channel, client);
            self.inner.forget(channel, client, true).await
        })
    }

    fn publish<'a>(
        &'a self,
        channel: &'a str,
        data: &'a RawValue,
        from: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Published, BrokerError>> {
        Box::pin(self.inner.publish(channel, data, from))
    }

    fn history<'a>(
        &'a self,
        channel: &'a str,
        query: HistoryQuery,
    ) -> BoxFuture<'a, Result<HistoryPage, BrokerError>> {
        Box::pin(async move {
            let read = self.inner.read_history(channel, query).await?;
            let epoch = read.epoch;
            let messages = read
                .entries
                .into_iter()
                .map(|(offset, json)| Push::message(channel, &epoch, offset, json, None))
                .collect();
            Ok(HistoryPage {
                epoch,
                offset: read.offset,
                messages,
                more: read.more,
            })
        })
    }

    fn presence<'a>(
        &'a self,
        channel: &'a str,
    ) -> BoxFuture<'a, Result<Vec<ClientInfo>, BrokerError>> {
        Box::pin(async move {
            let mut call = self.inner.scripts.presence.prepare_invoke();
            call.key(scripts::pres(channel));
            let infos: Vec<String> = self.inner.run("presence", &call).await?;
            Ok(infos
                .iter()
                .filter_map(|info| serde_json::from_str(info).ok())
                .collect())
        })
    }

    fn channels(&self) -> BoxFuture<'_, Result<Vec<ChannelSummary>, BrokerError>> {
        Box::pin(self.inner.channels())
    }

    fn sweep(&self) -> BoxFuture<'_, ()> {
        Box::pin(self.inner.sweep())
    }

    fn healthy(&self) -> bool {
        self.inner.pubsub_up.load(Ordering::Relaxed)
            && self.inner.commands_up.load(Ordering::Relaxed)
    }
}

impl Inner {
    async fn subscribe(
        self: &Arc<Self>,
        channel: &str,
        subscriber: Subscriber,
        since: Option<&Since>,
        reply: SubscribedReply<'_>,
    ) -> Result<Subscribed, BrokerError> {
        let info = subscriber.info.clone();
        let visible = subscriber.visible;
        // Registered before the script runs: whatever is published after the script's read
        // reaches this subscriber through the shard, and nothing earlier is queued twice.
        let registration = self.registry.register(channel, subscriber);
        let info_json = serde_json::to_string(&info).unwrap_or_default();
        let join = if self.options.presence && visible {
            presence_json("join", channel, &info)
        } else {
            String::new()
        };
        let mut call = self.scripts.subscribe.prepare_invoke();
        call.key(scripts::meta(channel))
            .key(scripts::hist(channel))
            .key(scripts::pres(channel))
            .key(scripts::node_subs(&self.node))
            .arg(channel)
            .arg(new_epoch())
            .arg(&info.client)
            .arg(format!("{}|{info_json}", self.node))
            .arg(wire::membership(channel, &info.client))
            .arg(join)
            .arg(self.shard_of(channel))
            .arg(since.map_or("", |s| s.epoch.as_str()))
            .arg(since.map_or(0, |s| s.offset))
            .arg(millis(self.options.history_ttl))
            .arg(if visible { "1" } else { "0" });
        let answer: Result<(String, u64, u8, Vec<String>, u64), _> =
            self.run("subscribe", &call).await;
        let (epoch, offset, recovered, replay, seq) = match answer {
            Ok(answer) => answer,
            Err(err) => {
                self.registry.abandon(channel, registration);
                // The script may have run before the wait gave up: leave no presence behind.
                let _ = self.forget(channel, &info.client, false).await;
                return Err(err);
            }
        };
        let subscribed = Subscribed {
            epoch,
            offset,
            recovered: recovered == 1,
        };
        if let Some(catch_up) =
            self.registry
                .settle(channel, registration, &subscribed, seq, reply, replay)
        {
            self.spawn_catch_up(catch_up);
        }
        Ok(subscribed)
    }

    /// Removes a client's presence entry (announcing its leave if `announce`).
    async fn forget(&self, channel: &str, client: &str, announce: bool) -> Result<(), BrokerError> {
        let mut call = self.scripts.unsubscribe.prepare_invoke();
        call.key(scripts::pres(channel))
            .key(scripts::node_subs(&self.node))
            .key(scripts::meta(channel))
            .arg(channel)
            .arg(client)
            .arg(wire::membership(channel, client))
            .arg(self.shard_of(channel))
            .arg(if announce && self.options.presence {
                "1"
            } else {
                "0"
            });
        let _: i64 = self.run("unsubscribe", &call).await?;
        Ok(())
    }

    async fn publish(
        &self,
        channel: &str,
        data: &RawValue,
        from: Option<&str>,
    ) -> Result<Published, BrokerError> {
        let started = std::time::Instant::now();
        let (head, from_part) = wire::message_head(channel, from);
        let mut call = self.scripts.publish.prepare_invoke();
        call.key(scripts::meta(channel))
            .key(scripts::hist(channel))
            .arg(channel)
            .arg(new_epoch())
            .arg(self.options.history_size)
            .arg(millis(self.options.history_ttl))
            .arg(head)
            .arg(data.get())
            .arg(from_part)
            .arg(self.shard_of(channel));
        let (epoch, offset): (String, u64) = self.run("publish", &call).await?;
        Metrics::add(&self.metrics.publications, 1);
        if self.pubsub_up.load(Ordering::Relaxed) {
            // As with the in-memory broker, a publisher subscribed here gets its `message`
            // before its `published` reply.
            self.registry
                .seen(channel, &epoch, offset, self.options.timeout)
                .await;
        }
        // The fan-out latency on this node: the Redis round trip, the pub/sub hop back, and the
        // queueing to the local subscribers (just the script when nobody here subscribes).
        self.metrics.fanout.record(started.elapsed());
        Ok(Published { epoch, offset })
    }

    async fn read_history(
        &self,
        channel: &str,
        query: HistoryQuery,
    ) -> Result<HistoryRead, BrokerError> {
        // Lua numbers are doubles: anything past 2^53 is as good as "no limit".
        let cap = |n: usize| n.min(1 << 53);
        let mut call = self.scripts.history.prepare_invoke();
        call.key(scripts::meta(channel))
            .key(scripts::hist(channel))
            .arg(query.since.map(|s| s.to_string()).unwrap_or_default())
            .arg(cap(query.limit))
            .arg(millis(self.options.history_ttl))
            .arg(cap(query.max_bytes));
        let (epoch, offset, entries, more): (String, u64, Vec<(u64, String)>, u8) =
            self.run("history", &call).await?;
        Ok(HistoryRead {
            epoch,
            offset,
            entries,
            more: more == 1,
        })
    }

    async fn channels(&self) -> Result<Vec<ChannelSummary>, BrokerError> {
        let mut summaries = Vec::new();
        for start in (0..).step_by(PAGE as usize) {
            let names = self.channel_names(start).await?;
            if names.is_empty() {
                break;
            }
            let mut call = self.scripts.channels_page.prepare_invoke();
            call.arg(&names);
            let page: Vec<(String, String, u64, usize)> = self.run("channels", &call).await?;
            summaries.extend(
                page.into_iter()
                    .map(|(channel, epoch, offset, subscribers)| ChannelSummary {
                        channel,
                        subscribers,
                        epoch,
                        offset,
                    }),
            );
            if names.len() < PAGE as usize {
                break;
            }
        }
        summaries.sort_by(|a, b| a.channel.cmp(&b.channel));
        Ok(summaries)
    }

    /// A page of the channel registry, from rank `start`.
    async fn channel_names(&self, start: isize) -> Result<Vec<String>, BrokerError> {
        let mut zrange = redis::cmd("ZRANGE");
        zrange
            .arg(scripts::CHANNELS)
            .arg(start)
            .arg(start + PAGE - 1);
        self.query("channels", &zrange).await
    }

    /// One node per interval (whoever takes the lock) removes dead nodes' presence entries,
    /// expired history and forgotten channels.
    async fn sweep(&self) {
        let mut lock = redis::cmd("SET");
        lock.arg(scripts::SWEEPING)
            .arg(&self.node)
            .arg("NX")
            .arg("PX")
            .arg(4000);
        let won: Result<Option<String>, _> = self.query("sweep", &lock).await;
        if !matches!(won, Ok(Some(_))) {
            return;
        }
        let mut reap = self.scripts.reap.prepare_invoke();
        reap.arg(self.options.shards)
            .arg(self.db)
            .arg(if self.options.presence { "1" } else { "0" })
            .arg(REAP_BUDGET);
        match self.run::<u64>("sweep", &reap).await {
            Ok(0) | Err(_) => {}
            Ok(removed) => tracing::info!(removed, "removed the presence of stopped nodes"),
        }
        let mut start = 0;
        loop {
            let Ok(names) = self.channel_names(start).await else {
                return;
            };
            if names.is_empty() {
                return;
            }
            let mut call = self.scripts.sweep_page.prepare_invoke();
            call.arg(millis(self.options.history_ttl)).arg(&names);
            let Ok(forgotten) = self.run::<isize>("sweep", &call).await else {
                return;
            };
            // The forgotten ones left the registry: the next page starts that much earlier.
            start += names.len() as isize - forgotten;
            if names.len() < PAGE as usize {
                return;
            }
        }
    }

    /// Registers this node's heartbeat; after a gap (reaped, or Redis lost its data) its
    /// subscriptions are registered again.
    async fn heartbeat(&self) -> Result<(), BrokerError> {
        let mut call = self.scripts.heartbeat.prepare_invoke();
        call.arg(&self.node).arg(millis(self.options.presence_ttl));
        let alive: i64 = self.run("heartbeat", &call).await?;
        if alive == 0 {
            self.register_again().await?;
        }
        Ok(())
    }

    /// Writes every local subscription's presence entry again, then removes those that left
    /// meanwhile (their unsubscribe may have run before the write).
    async fn register_again(&self) -> Result<(), BrokerError> {
        let memberships = self.registry.memberships();
        if memberships.is_empty() {
            return Ok(());
        }
        tracing::info!(
            subscriptions = memberships.len(),
            "registering this node's presence again"
        );
        for chunk in memberships.chunks(PAGE as usize) {
            let mut pipe = redis::pipe();
            for m in chunk {
                let info = serde_json::to_string(&m.info).unwrap_or_default();
                pipe.hset(
                    scripts::pres(&m.channel),
                    &m.info.client,
                    format!("{}|{info}", self.node),
                )
                .ignore()
                .sadd(
                    scripts::node_subs(&self.node),
                    wire::membership(&m.channel, &m.info.client),
                )
                .ignore();
            }
            let _: () = self.query_pipe("heartbeat", &pipe).await?;
        }
        for m in memberships {
            if !self.registry.contains(&m.channel, &m.info.client) {
                self.forget(&m.channel, &m.info.client, false).await?;
            }
        }
        Ok(())
    }

    /// Heartbeats every third of the presence TTL until the broker is dropped.
    async fn beat(self: Arc<Self>) {
        let period = (self.options.presence_ttl / 3).max(Duration::from_millis(100));
        let mut every = tokio::time::interval(period);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = self.stop.cancelled() => return,
                _ = every.tick() => {}
            }
            if let Err(err) = self.heartbeat().await {
                tracing::debug!("heartbeat failed: {err}");
            }
        }
    }

    /// Keeps the pub/sub connection: hands what arrives to the registry; when the connection
    /// drops, reconnects with backoff, subscribes the shards again and catches up every local
    /// channel.
    async fn listen(self: Arc<Self>, first: PubSub) {
        let mut connected = Some(first);
        let mut backoff = MIN_BACKOFF;
        loop {
            let pubsub = match connected.take() {
                Some(pubsub) => pubsub,
                None => match self.connect_pubsub().await {
                    Ok(pubsub) => {
                        tracing::info!(redis = %self.shown, "Redis pub/sub connection back");
                        self.pubsub_up.store(true, Ordering::Relaxed);
                        for catch_up in self.registry.hold_all() {
                            self.spawn_catch_up(catch_up);
                        }
                        pubsub
                    }
                    Err(err) => {
                        tracing::debug!("Redis pub/sub reconnection failed: {err}");
                        if self.pause(&mut backoff).await {
                            return;
                        }
                        continue;
                    }
                },
            };
            backoff = MIN_BACKOFF;
            if self.pump(pubsub).await {
                return;
            }
            self.pubsub_up.store(false, Ordering::Relaxed);
            tracing::warn!(redis = %self.shown, "lost the Redis pub/sub connection; reconnecting");
        }
    }

    /// Reads the shards until the connection drops (false) or the broker stops (true). A ping
    /// every heartbeat period, answered within the timeout, proves the connection alive.
    async fn pump(self: &Arc<Self>, pubsub: PubSub) -> bool {
        let (mut sink, mut stream) = pubsub.split();
        let period = (self.options.presence_ttl / 3).max(Duration::from_millis(100));
        let timeout = self.options.timeout;
        let pinger = async move {
            loop {
                tokio::time::sleep(period).await;
                let pong = tokio::time::timeout(timeout, sink.ping::<redis::Value>()).await;
                if !matches!(pong, Ok(Ok(_))) {
                    return;
                }
            }
        };
        tokio::pin!(pinger);
        loop {
            tokio::select! {
                () = self.stop.cancelled() => return true,
                () = &mut pinger => return false,
                message = stream.next() => {
                    let Some(message) = message else {
                        return false;
                    };
                    let Some(shard) = wire::parse(message.get_payload_bytes()) else {
                        tracing::debug!("ignored an unknown payload on {}", message.get_channel_name());
                        continue;
                    };
                    if let Some(catch_up) = self.registry.receive(&shard) {
                        self.spawn_catch_up(catch_up);
                    }
                }
            }
        }
    }

    async fn connect_pubsub(&self) -> Result<PubSub, BrokerError> {
        let shards: Vec<_> = (0..self.options.shards)
            .map(|n| scripts::shard(self.db, n))
            .collect();
        let connect = async {
            let mut pubsub = self.client.get_async_pubsub().await?;
            pubsub.subscribe(&shards).await?;
            Ok::<_, RedisError>(pubsub)
        };
        match tokio::time::timeout(self.options.timeout, connect).await {
            Ok(Ok(pubsub)) => Ok(pubsub),
            Ok(Err(err)) => Err(BrokerError::Unavailable(format!(
                "Redis pub/sub at {}: {err}",
                self.shown
            ))),
            Err(_) => Err(BrokerError::Unavailable(format!(
                "Redis pub/sub at {}: no answer within {:?}",
                self.shown, self.options.timeout
            ))),
        }
    }

    fn spawn_catch_up(self: &Arc<Self>, catch_up: CatchUp) {
        tokio::spawn(Arc::clone(self).catch_up(catch_up));
    }

    /// Reads what the channel's subscribers here missed and hands it to the registry; retries
    /// with backoff while Redis is unreachable, as long as the channel still waits.
    async fn catch_up(self: Arc<Self>, mut job: CatchUp) {
        let mut backoff = MIN_BACKOFF;
        loop {
            match self
                .read_history(&job.channel, HistoryQuery::after(job.after))
                .await
            {
                Ok(read) => match self.registry.finish_catch_up(&job.channel, &read) {
                    Some(next) => job = next,
                    None => return,
                },
                Err(err) => {
                    tracing::debug!(channel = job.channel, "catch-up failed: {err}");
                    if !self.registry.still_held(&job.channel) || self.pause(&mut backoff).await {
                        return;
                    }
                }
            }
        }
    }

    /// Sleeps `backoff` (then doubles it); true if the broker stopped meanwhile.
    async fn pause(&self, backoff: &mut Duration) -> bool {
        let stopped = tokio::select! {
            () = self.stop.cancelled() => true,
            () = tokio::time::sleep(*backoff) => false,
        };
        *backoff = (*backoff * 2).min(MAX_BACKOFF);
        stopped
    }

    fn shard_of(&self, channel: &str) -> String {
        scripts::shard(self.db, wire::shard_of(channel, self.options.shards))
    }

    /// Runs a script within the timeout.
    async fn run<T: FromRedisValue>(
        &self,
        what: &str,
        call: &ScriptInvocation<'_>,
    ) -> Result<T, BrokerError> {
        let mut commands = self.commands.clone();
        self.bounded(what, call.invoke_async(&mut commands)).await
    }

    /// Runs a command within the timeout.
    async fn query<T: FromRedisValue>(
        &self,
        what: &str,
        cmd: &redis::Cmd,
    ) -> Result<T, BrokerError> {
        let mut commands = self.commands.clone();
        self.bounded(what, cmd.query_async(&mut commands)).await
    }

    /// Runs a pipeline within the timeout.
    async fn query_pipe<T: FromRedisValue>(
        &self,
        what: &str,
        pipe: &redis::Pipeline,
    ) -> Result<T, BrokerError> {
        let mut commands = self.commands.clone();
        self.bounded(what, pipe.query_async(&mut commands)).await
    }

    /// Waits at most the timeout; tracks whether commands get through, for `healthy()`.
    async fn bounded<T>(
        &self,
        what: &str,
        call: impl Future<Output = Result<T, RedisError>>,
    ) -> Result<T, BrokerError> {
        let outcome = tokio::time::timeout(self.options.timeout, call).await;
        let error = match outcome {
            Ok(Ok(value)) => {
                self.commands_up.store(true, Ordering::Relaxed);
                return Ok(value);
            }
            Ok(Err(err)) => {
                if err.is_io_error() || err.is_connection_dropped() || err.is_timeout() {
                    self.commands_up.store(false, Ordering::Relaxed);
                }
                err.to_string()
            }
            Err(_) => {
                self.commands_up.store(false, Ordering::Relaxed);
                format!("no answer within {:?}", self.options.timeout)
            }
        };
        Err(BrokerError::Unavailable(format!(
            "Redis at {}: {what} failed: {error}",
            self.shown
        )))
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
