//! The in-memory broker: everything lives in this process. Each channel has its own lock, held
//! while an offset is assigned, history appended and the message queued to every subscriber, so
//! subscribers see offsets in order and a new subscription can never fall between replay and
//! live messages.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ripple::{DeflateConfig, PreparedMessage};
use serde_json::value::RawValue;

use super::local::{Subscribers, fan_out, lock, new_epoch, prepare, presence_json};
use super::{
    BoxFuture, Broker, BrokerError, ChannelSummary, HistoryPage, Published, Subscribed,
    SubscribedReply, Subscriber,
};
use crate::metrics::Metrics;
use crate::protocol::{ClientInfo, MessagePush, Since};

/// History and presence settings.
#[derive(Clone, Debug)]
pub struct MemoryOptions {
    /// Messages kept per channel.
    pub history_size: usize,
    /// How long a message is kept.
    pub history_ttl: Duration,
    /// Whether to push join/leave.
    pub presence: bool,
    /// How publications are compressed for subscribers that negotiated permessage-deflate.
    pub deflate: Option<DeflateConfig>,
}

/// How long the position of a swept channel is remembered.
const TOMBSTONE_TTL: Duration = Duration::from_secs(3600);

/// The most swept channels remembered at once.
const MAX_TOMBSTONES: usize = 100_000;

/// Channels, history and presence in this process.
#[derive(Debug)]
pub struct MemoryBroker {
    channels: Mutex<HashMap<String, Arc<Mutex<Channel>>>>,
    /// The epoch and offset of channels the sweeper dropped. A channel that comes back
    /// continues from there, so a client that had everything is told `recovered: true`
    /// instead of losing a position to a new epoch (long-polling clients, between two
    /// requests, are often the only subscribers of a quiet channel).
    tombstones: Mutex<HashMap<String, Tombstone>>,
    options: MemoryOptions,
    metrics: Arc<Metrics>,
}

#[derive(Debug)]
struct Tombstone {
    epoch: String,
    offset: u64,
    at: Instant,
}

#[derive(Debug)]
struct Channel {
    epoch: String,
    offset: u64,
    history: VecDeque<Stored>,
    subscribers: Subscribers<Subscriber>,
    /// Set when the sweeper dropped the channel: whoever still holds it must look it up again.
    removed: bool,
}

#[derive(Debug)]
struct Stored {
    offset: u64,
    at: Instant,
    push: Arc<PreparedMessage>,
}

impl MemoryBroker {
    /// An empty broker.
    pub fn new(options: MemoryOptions, metrics: Arc<Metrics>) -> Self {
        Self {
            channels: Mutex::default(),
            tombstones: Mutex::default(),
            options,
            metrics,
        }
    }

    /// Runs `f` on the channel, creating it if needed.
    fn with_channel<T>(&self, name: &str, f: impl FnOnce(&mut Channel) -> T) -> T {
        let mut f = Some(f);
        loop {
            let channel = Arc::clone(
                lock(&self.channels)
                    .entry(name.to_owned())
                    .or_insert_with(|| Channel::new(lock(&self.tombstones).remove(name))),
            );
            let mut guard = lock(&channel);
            if guard.removed {
                continue;
            }
            let Some(f) = f.take() else {
                unreachable!("the closure runs once: the loop returns right after");
            };
            return f(&mut guard);
        }
    }

    /// Runs `f` on the channel if it exists.
    fn existing<T>(&self, name: &str, f: impl FnOnce(&mut Channel) -> T) -> Option<T> {
        let channel = lock(&self.channels).get(name).cloned()?;
        let mut guard = lock(&channel);
        (!guard.removed).then(|| f(&mut guard))
    }

    /// Queues `push` to every subscriber of the channel.
    fn fan_out(&self, subscribers: &Subscribers<Subscriber>, push: &Arc<PreparedMessage>) {
        fan_out(&self.metrics, push, subscribers.iter().map(|s| &*s.queue));
    }

    fn presence_push(
        &self,
        kind: &'static str,
        channel: &str,
        info: &ClientInfo,
        compress: bool,
    ) -> Arc<PreparedMessage> {
        let deflate = self.options.deflate.as_ref().filter(|_| compress);
        prepare(presence_json(kind, channel, info), deflate)
    }
}

impl Channel {
    /// A channel, continuing from where it was swept if it was.
    fn new(swept: Option<Tombstone>) -> Arc<Mutex<Self>> {
        let (epoch, offset) = swept.map_or_else(|| (new_epoch(), 0), |t| (t.epoch, t.offset));
        Arc::new(Mutex::new(Self {
            epoch,
            offset,
            history: VecDeque::new(),
            subscribers: Subscribers::default(),
            removed: false,
        }))
    }

    fn trim(&mut self, now: Instant, options: &MemoryOptions) {
        while self.history.len() > options.history_size {
            self.history.pop_front();
        }
        while self
            .history
            .front()
            .is_some_and(|m| now.duration_since(m.at) > options.history_ttl)
        {
            self.history.pop_front();
        }
    }

    /// Messages after `since`, if the history still holds all of them.
    fn recover(&self, since: &Since) -> Option<Vec<Arc<PreparedMessage>>> {
        if since.epoch != self.epoch || since.offset > self.offset {
            return None;
        }
        let oldest = self.history.front().map_or(self.offset + 1, |m| m.offset);
        if oldest > since.offset + 1 {
            return None;
        }
        Some(
            self.history
                .iter()
                .filter(|m| m.offset > since.offset)
                .map(|m| Arc::clone(&m.push))
                .collect(),
        )
    }
}

impl Broker for MemoryBroker {
    fn subscribe<'a>(
        &'a self,
        channel: &'a str,
        subscriber: Subscriber,
        since: Option<&'a Since>,
        reply: SubscribedReply<'a>,
    ) -> BoxFuture<'a, Result<Subscribed, BrokerError>> {
        let outcome = self.with_channel(channel, |ch| {
            ch.trim(Instant::now(), &self.options);
            let replay = since.and_then(|since| ch.recover(since));
            let subscribed = Subscribed {
                epoch: ch.epoch.clone(),
                offset: ch.offset,
                recovered: since.is_none() || replay.is_some(),
            };
            subscriber.queue.push(reply(&subscribed));
            for push in replay.unwrap_or_default() {
                subscriber.queue.push(push);
            }
            if self.options.presence && subscriber.visible {
                let compress = ch.subscribers.any_compressed();
                let join = self.presence_push("join", channel, &subscriber.info, compress);
                self.fan_out(&ch.subscribers, &join);
            }
            ch.subscribers.insert(subscriber);
            subscribed
        });
        Box::pin(std::future::ready(Ok(outcome)))
    }

    fn unsubscribe<'a>(
        &'a self,
        channel: &'a str,
        client: &'a str,
    ) -> BoxFuture<'a, Result<(), BrokerError>> {
        self.existing(channel, |ch| {
            let Some(gone) = ch.subscribers.remove(client) else {
                return;
            };
            if self.options.presence && gone.visible && !ch.subscribers.is_empty() {
                let compress = ch.subscribers.any_compressed();
                let leave = self.presence_push("leave", channel, &gone.info, compress);
                self.fan_out(&ch.subscribers, &leave);
            }
        });
        Box::pin(std::future::ready(Ok(())))
    }

    fn publish<'a>(
        &'a self,
        channel: &'a str,
        data: &'a RawValue,
        from: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Published, BrokerError>> {
        let started = Instant::now();
        let published = self.with_channel(channel, |ch| {
            let now = Instant::now();
            ch.offset += 1;
            let push = MessagePush {
                kind: "message",
                channel,
                offset: ch.offset,
                epoch: &ch.epoch,
                data,
                from,
                ts: chrono::Utc::now().timestamp_millis(),
            };
            let json = serde_json::to_string(&push).unwrap_or_default();
            let compress = ch.subscribers.any_compressed();
            let push = prepare(json, self.options.deflate.as_ref().filter(|_| compress));
            self.fan_out(&ch.subscribers, &push);
            if self.options.history_size > 0 {
                ch.history.push_back(Stored {
                    offset: ch.offset,
                    at: now,
                    push,
                });
                ch.trim(now, &self.options);
            }
            Published {
                epoch: ch.epoch.clone(),
                offset: ch.offset,
            }
        });
        self.metrics.fanout.record(started.elapsed());
        Metrics::add(&self.metrics.publications, 1);
        Box::pin(std::future::ready(Ok(published)))
    }

    fn history<'a>(
        &'a self,
        channel: &'a str,
        since: Option<u64>,
        limit: usize,
    ) -> BoxFuture<'a, Result<HistoryPage, BrokerError>> {
        let page = self.existing(channel, |ch| {
            ch.trim(Instant::now(), &self.options);
            let after = since.unwrap_or(0);
            let messages = ch
                .history
                .iter()
                .filter(|m| m.offset > after)
                .take(limit)
                .map(|m| Arc::clone(&m.push))
                .collect();
            HistoryPage {
                epoch: ch.epoch.clone(),
                offset: ch.offset,
                messages,
            }
        });
        let page = page.unwrap_or_else(|| HistoryPage {
            epoch: String::new(),
            offset: 0,
            messages: Vec::new(),
        });
        Box::pin(std::future::ready(Ok(page)))
    }

    fn presence<'a>(
        &'a self,
        channel: &'a str,
    ) -> BoxFuture<'a, Result<Vec<ClientInfo>, BrokerError>> {
        let clients = self
            .existing(channel, |ch| {
                ch.subscribers
                    .iter()
                    .filter(|s| s.visible)
                    .map(|s| s.info.clone())
                    .collect()
            })
            .unwrap_or_default();
        Box::pin(std::future::ready(Ok(clients)))
    }

    /// Drops expired history and channels left with neither subscribers nor history. The
    /// server calls it every few seconds.
    fn sweep(&self) -> BoxFuture<'_, ()> {
        let now = Instant::now();
        let mut channels = lock(&self.channels);
        let mut tombstones = lock(&self.tombstones);
        tombstones.retain(|_, t| now.duration_since(t.at) < TOMBSTONE_TTL);
        channels.retain(|name, channel| {
            let mut channel = lock(channel);
            channel.trim(now, &self.options);
            let keep = !channel.subscribers.is_empty() || !channel.history.is_empty();
            channel.removed = !keep;
            if !keep && tombstones.len() < MAX_TOMBSTONES {
                let epoch = std::mem::take(&mut channel.epoch);
                let offset = channel.offset;
                tombstones.insert(
                    name.clone(),
                    Tombstone {
                        epoch,
                        offset,
                        at: now,
                    },
                );
            }
            keep
        });
        Box::pin(std::future::ready(()))
    }

    fn channels(&self) -> BoxFuture<'_, Result<Vec<ChannelSummary>, BrokerError>> {
        let channels: Vec<_> = lock(&self.channels)
            .iter()
            .map(|(n, c)| (n.clone(), Arc::clone(c)))
            .collect();
        let mut summaries: Vec<_> = channels
            .into_iter()
            .filter_map(|(name, channel)| {
                let ch = lock(&channel);
                (!ch.removed).then(|| ChannelSummary {
                    channel: name,
                    subscribers: ch.subscribers.len(),
                    epoch: ch.epoch.clone(),
                    offset: ch.offset,
                })
            })
            .collect();
        summaries.sort_by(|a, b| a.channel.cmp(&b.channel));
        Box::pin(std::future::ready(Ok(summaries)))
    }
}
