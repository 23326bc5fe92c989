//! The in-memory broker: everything lives in this process. Each channel has its own lock, held
//! while an offset is assigned, history appended and the message queued to every subscriber, so
//! subscribers see offsets in order and a new subscription can never fall between replay and
//! live messages.
//!
//! Memory is bounded as a whole, not only per channel: at most `max_channels` channels, at most
//! `history_max_bytes` of history across all of them (see [`MemoryBroker::evict`] for the
//! order), and a bounded map of small tombstones for swept channels.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ripple::DeflateConfig;
use serde_json::value::RawValue;

use super::local::{Subscribers, fan_out, lock, new_epoch, presence_push};
use super::{
    BoxFuture, Broker, BrokerError, ChannelSummary, HistoryPage, HistoryQuery, Published,
    Subscribed, SubscribedReply, Subscriber, take_page,
};
use crate::metrics::Metrics;
use crate::protocol::{ClientInfo, MessagePush, Since};
use crate::push::{Kind, Push};
use crate::queue::Replay;

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
    /// Bytes of history kept across every channel (see [`MemoryBroker::evict`]).
    pub history_max_bytes: usize,
    /// Channels at once; a new one past it is refused.
    pub max_channels: usize,
}

impl Default for MemoryOptions {
    /// The server's defaults (`Config::default()`).
    fn default() -> Self {
        let config = crate::Config::default();
        Self {
            history_size: config.history_size,
            history_ttl: config.history_ttl(),
            presence: config.presence,
            deflate: None,
            history_max_bytes: config.history_max_bytes,
            max_channels: config.max_channels,
        }
    }
}

/// How long the position of a swept channel is remembered, in seconds.
const TOMBSTONE_TTL_SECS: u32 = 3600;

/// The most swept channels remembered at once: 7/8 of 65,536, what a `HashMap` of 65,536
/// buckets holds, each bucket 33 bytes (a 64-bit key, a 24-byte [`Tombstone`], a control
/// byte): about 2.1 MiB at most.
const MAX_TOMBSTONES: usize = 57_344;

/// What a kept message costs besides its bytes (its `Stored`, the `PreparedMessage`, the
/// `Arc`): counted against `history_max_bytes` so that many tiny messages are bounded too.
const STORED_OVERHEAD: usize = 128;

/// Channels, history and presence in this process.
#[derive(Debug)]
pub struct MemoryBroker {
    channels: Mutex<HashMap<String, Arc<Mutex<Channel>>>>,
    /// The epoch and offset of channels the sweeper dropped, by a keyed hash of the name. A
    /// channel that comes back continues from there, so a client that had everything is told
    /// `recovered: true` instead of losing a position to a new epoch (long-polling clients,
    /// between two requests, are often the only subscribers of a quiet channel).
    tombstones: Mutex<HashMap<u64, Tombstone>>,
    /// Keys the tombstones' hashes (random per process: names cannot be chosen to collide).
    hasher: std::collections::hash_map::RandomState,
    /// Bytes of history kept, every channel together (`Stored::size` summed).
    history_bytes: AtomicUsize,
    /// Numbers every kept message in publication order, across channels: what "oldest" means
    /// to the eviction.
    sequence: AtomicU64,
    /// Held by the one task bringing the history back under its bound.
    evicting: Mutex<()>,
    /// When the broker started: tombstone times are seconds since then.
    started: Instant,
    options: MemoryOptions,
    metrics: Arc<Metrics>,
}

/// A swept channel's position, kept small: the epoch as the number it was printed from.
#[derive(Clone, Copy, Debug)]
struct Tombstone {
    epoch: u64,
    offset: u64,
    /// Seconds since the broker started.
    at: u32,
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
    /// Its place in publication order across channels.
    seq: u64,
    at: Instant,
    /// What it counts against `history_max_bytes`.
    size: usize,
    push: Arc<Push>,
}

impl MemoryBroker {
    /// An empty broker.
    pub fn new(options: MemoryOptions, metrics: Arc<Metrics>) -> Self {
        Self {
            channels: Mutex::default(),
            tombstones: Mutex::default(),
            hasher: std::collections::hash_map::RandomState::new(),
            history_bytes: AtomicUsize::new(0),
            sequence: AtomicU64::new(0),
            evicting: Mutex::new(()),
            started: Instant::now(),
            options,
            metrics,
        }
    }

    /// Bytes of history kept now, every channel together.
    pub fn history_bytes(&self) -> usize {
        self.history_bytes.load(Ordering::Relaxed)
    }

    /// How many swept channels are remembered now.
    pub fn tombstones(&self) -> usize {
        lock(&self.tombstones).len()
    }

    /// Runs `f` on the channel, creating it if needed (unless `max_channels` are kept).
    fn with_channel<T>(
        &self,
        name: &str,
        f: impl FnOnce(&mut Channel) -> T,
    ) -> Result<T, BrokerError> {
        let mut f = Some(f);
        loop {
            let channel = self.channel(name)?;
            let mut guard = lock(&channel);
            if guard.removed {
                continue;
            }
            let Some(f) = f.take() else {
                unreachable!("the closure runs once: the loop returns right after");
            };
            return Ok(f(&mut guard));
        }
    }

    /// The channel, created (from its tombstone, if it has one) when there is room.
    fn channel(&self, name: &str) -> Result<Arc<Mutex<Channel>>, BrokerError> {
        let mut channels = lock(&self.channels);
        if let Some(channel) = channels.get(name) {
            return Ok(Arc::clone(channel));
        }
        let max = self.options.max_channels;
        if channels.len() >= max {
            return Err(BrokerError::TooManyChannels { max });
        }
        let swept = lock(&self.tombstones).remove(&self.hasher.hash_one(name));
        let channel = Channel::new(swept);
        channels.insert(name.to_owned(), Arc::clone(&channel));
        Ok(channel)
    }

    /// Drops `name` at once if it has neither subscribers nor history (what the sweeper would
    /// do), so that subscribing and leaving fresh names does not pile channels up.
    fn reclaim(&self, name: &str) {
        let mut channels = lock(&self.channels);
        let Some(channel) = channels.get(name).cloned() else {
            return;
        };
        let mut channel = lock(&channel);
        if channel.removed || !channel.subscribers.is_empty() || !channel.history.is_empty() {
            return;
        }
        channel.removed = true;
        channels.remove(name);
        let tombstone = self.tombstone(&channel, Instant::now());
        self.bury(name, tombstone);
    }

    /// A dropped channel's position.
    fn tombstone(&self, channel: &Channel, now: Instant) -> Option<Tombstone> {
        Some(Tombstone {
            epoch: u64::from_str_radix(&channel.epoch, 16).ok()?,
            offset: channel.offset,
            at: self.seconds(now),
        })
    }

    /// Remembers a dropped channel's position, while there is room.
    fn bury(&self, name: &str, tombstone: Option<Tombstone>) {
        let mut tombstones = lock(&self.tombstones);
        if let Some(tombstone) = tombstone
            && tombstones.len() < MAX_TOMBSTONES
        {
            tombstones.insert(self.hasher.hash_one(name), tombstone);
        }
    }

    fn seconds(&self, now: Instant) -> u32 {
        let secs = now.saturating_duration_since(self.started).as_secs();
        u32::try_from(secs).unwrap_or(u32::MAX)
    }

    /// Brings the history back under `history_max_bytes`, down to seven eighths of it (so the
    /// scan below is paid once per eighth of the bound published, not per message).
    ///
    /// The order, as Redis's `maxmemory` and Centrifugo do it for caches: first the oldest
    /// messages of channels nobody is subscribed to (history only serves a later `history`
    /// or recovery there), oldest first across those channels; then, if that is not enough,
    /// the oldest messages of all. A subscriber never loses a message silently: live delivery
    /// happened already, and a recovery from before an evicted message answers
    /// `recovered: false`.
    fn evict(&self) {
        let bound = self.options.history_max_bytes;
        if self.history_bytes() <= bound {
            return;
        }
        let _evicting = lock(&self.evicting);
        let target = bound - bound / 8;
        if self.history_bytes() <= bound {
            return;
        }
        let channels: Vec<_> = lock(&self.channels).values().cloned().collect();
        for idle_only in [true, false] {
            if self.history_bytes() <= target {
                return;
            }
            self.evict_oldest(&channels, idle_only, target);
        }
    }

    /// Drops the oldest messages of `channels` (of those without subscribers only, with
    /// `idle_only`) until the history is down to `target` bytes: a merge of the channels'
    /// histories by publication order.
    fn evict_oldest(&self, channels: &[Arc<Mutex<Channel>>], idle_only: bool, target: usize) {
        let eligible = |ch: &Channel| !ch.removed && (!idle_only || ch.subscribers.is_empty());
        let mut oldest: BinaryHeap<Reverse<(u64, usize)>> = channels
            .iter()
            .enumerate()
            .filter_map(|(index, channel)| {
                let ch = lock(channel);
                let front = ch.history.front().filter(|_| eligible(&ch))?;
                Some(Reverse((front.seq, index)))
            })
            .collect();
        while self.history_bytes() > target {
            let Some(Reverse((_, index))) = oldest.pop() else {
                return;
            };
            let mut ch = lock(&channels[index]);
            if !eligible(&ch) {
                continue;
            }
            ch.drop_oldest(&self.history_bytes);
            if let Some(front) = ch.history.front() {
                oldest.push(Reverse((front.seq, index)));
            }
        }
    }

    /// Runs `f` on the channel if it exists.
    fn existing<T>(&self, name: &str, f: impl FnOnce(&mut Channel) -> T) -> Option<T> {
        let channel = lock(&self.channels).get(name).cloned()?;
        let mut guard = lock(&channel);
        (!guard.removed).then(|| f(&mut guard))
    }

    /// Queues `push` to every subscriber of the channel.
    fn fan_out(&self, subscribers: &Subscribers<Subscriber>, push: &Arc<Push>) {
        fan_out(&self.metrics, push, subscribers.iter().map(|s| &*s.queue));
    }

    fn presence_push(
        &self,
        kind: Kind,
        channel: &str,
        info: &ClientInfo,
        compress: bool,
    ) -> Arc<Push> {
        let deflate = self.options.deflate.as_ref().filter(|_| compress);
        presence_push(kind, channel, info, deflate)
    }
}

impl Channel {
    /// A channel, continuing from where it was swept if it was.
    fn new(swept: Option<Tombstone>) -> Arc<Mutex<Self>> {
        let (epoch, offset) = swept.map_or_else(
            || (new_epoch(), 0),
            |t| (format!("{:016x}", t.epoch), t.offset),
        );
        Arc::new(Mutex::new(Self {
            epoch,
            offset,
            history: VecDeque::new(),
            subscribers: Subscribers::default(),
            removed: false,
        }))
    }

    /// Drops what is past `history_size` or older than `history_ttl`.
    fn trim(&mut self, now: Instant, options: &MemoryOptions, total: &AtomicUsize) {
        while self.history.len() > options.history_size {
            self.drop_oldest(total);
        }
        while self
            .history
            .front()
            .is_some_and(|m| now.duration_since(m.at) > options.history_ttl)
        {
            self.drop_oldest(total);
        }
        if self.history.is_empty() && self.history.capacity() > 0 {
            self.history = VecDeque::new();
        }
    }

    /// Drops the oldest kept message, and its bytes from `total`.
    fn drop_oldest(&mut self, total: &AtomicUsize) {
        if let Some(gone) = self.history.pop_front() {
            total.fetch_sub(gone.size, Ordering::Relaxed);
        }
    }

    /// Messages after `since`, if the history still holds all of them.
    fn recover(&self, since: &Since) -> Option<Vec<Arc<Push>>> {
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
            ch.trim(Instant::now(), &self.options, &self.history_bytes);
            let replay = since.and_then(|since| ch.recover(since));
            let subscribed = Subscribed {
                epoch: ch.epoch.clone(),
                offset: ch.offset,
                recovered: since.is_none() || replay.is_some(),
            };
            subscriber.queue.push(reply(&subscribed));
            if let (Some(since), Some(replay)) = (since, replay) {
                let bytes = replay.iter().map(|m| m.queued_size()).sum();
                let marker = Replay {
                    channel: channel.to_owned(),
                    epoch: ch.epoch.clone(),
                    after: since.offset,
                    through: ch.offset,
                };
                subscriber.queue.push_recovery(bytes, replay, marker);
            }
            if self.options.presence && subscriber.visible {
                let compress = ch.subscribers.any_compressed();
                let join = self.presence_push(Kind::Join, channel, &subscriber.info, compress);
                self.fan_out(&ch.subscribers, &join);
            }
            ch.subscribers.insert(subscriber);
            subscribed
        });
        Box::pin(std::future::ready(outcome))
    }

    fn unsubscribe<'a>(
        &'a self,
        channel: &'a str,
        client: &'a str,
    ) -> BoxFuture<'a, Result<(), BrokerError>> {
        let left_empty = self.existing(channel, |ch| {
            let Some(gone) = ch.subscribers.remove(client) else {
                return false;
            };
            if self.options.presence && gone.visible && !ch.subscribers.is_empty() {
                let compress = ch.subscribers.any_compressed();
                let leave = self.presence_push(Kind::Leave, channel, &gone.info, compress);
                self.fan_out(&ch.subscribers, &leave);
            }
            ch.subscribers.is_empty() && ch.history.is_empty()
        });
        if left_empty == Some(true) {
            self.reclaim(channel);
        }
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
            let deflate = self.options.deflate.as_ref().filter(|_| compress);
            let push = Push::message(channel, &ch.epoch, ch.offset, json, deflate);
            self.fan_out(&ch.subscribers, &push);
            if self.options.history_size > 0 {
                let size = stored_size(&push);
                self.history_bytes.fetch_add(size, Ordering::Relaxed);
                ch.history.push_back(Stored {
                    offset: ch.offset,
                    seq: self.sequence.fetch_add(1, Ordering::Relaxed),
                    at: now,
                    size,
                    push,
                });
                ch.trim(now, &self.options, &self.history_bytes);
            }
            Published {
                epoch: ch.epoch.clone(),
                offset: ch.offset,
            }
        });
        // Outside the channel's lock: the eviction locks channels one at a time.
        self.evict();
        if published.is_ok() {
            self.metrics.fanout.record(started.elapsed());
            Metrics::add(&self.metrics.publications, 1);
        }
        Box::pin(std::future::ready(published))
    }

    fn history<'a>(
        &'a self,
        channel: &'a str,
        query: HistoryQuery,
    ) -> BoxFuture<'a, Result<HistoryPage, BrokerError>> {
        let page = self.existing(channel, |ch| {
            ch.trim(Instant::now(), &self.options, &self.history_bytes);
            let after = query.since.unwrap_or(0);
            let candidates = ch
                .history
                .iter()
                .filter(|m| m.offset > after)
                .map(|m| (&m.push, m.push.json().len()));
            let (messages, more) = take_page(candidates, &query);
            HistoryPage {
                epoch: ch.epoch.clone(),
                offset: ch.offset,
                messages: messages.into_iter().map(Arc::clone).collect(),
                more,
            }
        });
        Box::pin(std::future::ready(Ok(
            page.unwrap_or_else(HistoryPage::unknown)
        )))
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

    /// Drops expired history and channels left with neither subscribers nor history (keeping
    /// their position as a tombstone), forgets old tombstones, and gives the maps' memory back
    /// when they are mostly empty (a `HashMap` never shrinks by itself). The server calls it
    /// every few seconds.
    fn sweep(&self) -> BoxFuture<'_, ()> {
        let now = Instant::now();
        let now_secs = self.seconds(now);
        // Both locks at once (in the order `channel` takes them): a channel dropped here has
        // its tombstone before anyone can look it up again.
        let mut channels = lock(&self.channels);
        let mut tombstones = lock(&self.tombstones);
        tombstones.retain(|_, t| now_secs.saturating_sub(t.at) < TOMBSTONE_TTL_SECS);
        channels.retain(|name, channel| {
            let mut channel = lock(channel);
            channel.trim(now, &self.options, &self.history_bytes);
            let keep = !channel.subscribers.is_empty() || !channel.history.is_empty();
            channel.removed = !keep;
            if !keep
                && tombstones.len() < MAX_TOMBSTONES
                && let Some(tombstone) = self.tombstone(&channel, now)
            {
                tombstones.insert(self.hasher.hash_one(name), tombstone);
            }
            keep
        });
        shrink(&mut channels);
        shrink(&mut tombstones);
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

/// What a kept message counts against `history_max_bytes`: its JSON, its encoded frames, and
/// the bookkeeping around them.
fn stored_size(push: &Push) -> usize {
    let prepared = push.prepared();
    let frames = prepared.plain_frame().len() + prepared.deflated_frame().map_or(0, |f| f.len());
    push.json().len() + frames + STORED_OVERHEAD
}

/// Gives a map's memory back once it holds less than a quarter of what it has room for.
fn shrink<K: Eq + std::hash::Hash, V, S: BuildHasher>(map: &mut HashMap<K, V, S>) {
    if map.capacity() > 1024 && map.len() < map.capacity() / 4 {
        map.shrink_to(map.len() * 2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn broker() -> MemoryBroker {
        MemoryBroker::new(MemoryOptions::default(), Arc::new(Metrics::default()))
    }

    #[tokio::test]
    async fn a_sweep_gives_the_maps_memory_back_and_tombstones_stay_bounded() {
        let broker = broker();
        let created = MAX_TOMBSTONES + 10;
        for n in 0..created {
            broker.with_channel(&format!("c{n}"), |_| ()).unwrap();
        }
        assert!(lock(&broker.channels).capacity() >= created);
        broker.sweep().await;
        let channels = lock(&broker.channels);
        assert_eq!((channels.len(), channels.capacity()), (0, 0));
        drop(channels);
        assert_eq!(broker.tombstones(), MAX_TOMBSTONES);
        // A swept channel comes back where it was.
        let epoch = broker.with_channel("c1", |ch| ch.epoch.clone()).unwrap();
        assert_eq!(epoch.len(), 16);
        assert_eq!(broker.tombstones(), MAX_TOMBSTONES - 1);
    }

    #[test]
    fn a_tombstone_is_small_and_keeps_the_epoch_and_offset() {
        assert!(size_of::<Tombstone>() <= 24);
        let broker = broker();
        broker
            .with_channel("a", |ch| {
                ch.offset = 7;
                ch.epoch = "00000000000000ff".into();
            })
            .unwrap();
        broker.reclaim("a");
        let (epoch, offset) = broker
            .with_channel("a", |ch| (ch.epoch.clone(), ch.offset))
            .unwrap();
        assert_eq!((epoch.as_str(), offset), ("00000000000000ff", 7));
    }
}
