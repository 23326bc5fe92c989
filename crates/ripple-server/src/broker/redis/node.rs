//! This node's side of the Redis broker: the subscribers of each channel here, and where each
//! of them is in its channel's stream. No Redis here: the broker feeds it what the shards carry
//! and what the scripts answer, and it decides what each client's queue gets.
//!
//! Every subscriber has a position: `Pending` until its subscribe script answered (pushes
//! arriving meanwhile wait, in order), then `At { epoch, after, seq }`. A message is queued to
//! a subscriber only if it is the next one, `after + 1` in the same epoch; an older one is a
//! duplicate and skipped (the replay already had it), a newer one reveals a gap (this node missed
//! messages, its pub/sub connection having dropped) and holds the whole channel while a
//! catch-up reads the history; a message of another epoch means the channel's state was lost
//! and the subscriber is disconnected with [`STATE_LOST`](crate::close::STATE_LOST) so it subscribes again with `since`.
//! Nothing is ever queued twice or out of order, and a gap is never skipped silently. A `join`
//! or `leave` is queued only if its `seq` comes after the subscriber's (it happened after the
//! subscription, wherever it happened), and never to the client it is about.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use ripple::DeflateConfig;
use tokio::sync::Notify;

use super::wire::Shard;
use crate::broker::local::{Member, Subscribers, fan_out, lock};
use crate::broker::{Subscribed, SubscribedReply, Subscriber};
use crate::metrics::Metrics;
use crate::protocol::ClientInfo;
use crate::push::{Kind, Push};
use crate::queue::Disconnect;
use crate::queue::Replay;

/// Pushes held for one channel during a catch-up; past this the channel's subscribers are
/// disconnected ([`STATE_LOST`](crate::close::STATE_LOST)) instead of holding more.
const HELD_LIMIT: usize = 10_000;

/// This node's subscribers, by channel.
#[derive(Debug)]
pub(super) struct Registry {
    channels: Mutex<HashMap<String, Arc<Mutex<LocalChannel>>>>,
    metrics: Arc<Metrics>,
    deflate: Option<DeflateConfig>,
    next_registration: AtomicU64,
}

/// A read of the history that a catch-up needs: from after the lowest position of the
/// channel's subscribers here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct CatchUp {
    /// The channel.
    pub(super) channel: String,
    /// Read the messages after this offset.
    pub(super) after: u64,
}

/// What Redis holds of a channel now: its epoch (empty if it has none), newest offset, and the
/// kept messages after some offset, oldest first.
#[derive(Clone, Debug, Default)]
pub(super) struct HistoryRead {
    pub(super) epoch: String,
    pub(super) offset: u64,
    pub(super) entries: Vec<(u64, String)>,
    /// Whether messages after the last entry were left out (the read's limit or byte cap).
    pub(super) more: bool,
}

/// A subscription, as the scripts register it: who and where.
#[derive(Clone, Debug)]
pub(super) struct Membership {
    pub(super) channel: String,
    pub(super) info: ClientInfo,
}

#[derive(Debug, Default)]
struct LocalChannel {
    subscribers: Subscribers<Local>,
    /// `Some` while a catch-up reads the history: every push waits here, in order.
    held: Option<Vec<Incoming>>,
    /// A catch-up must run again once the current one is done (the pub/sub connection came
    /// back while it was reading).
    again: bool,
    /// The newest message handled here, for publishers waiting to see their own.
    seen: Option<(Arc<str>, u64)>,
    /// Woken whenever `seen` moves.
    seen_moved: Arc<Notify>,
    /// Set once the channel left the map: whoever still holds it must look it up again.
    removed: bool,
}

#[derive(Debug)]
struct Local {
    subscriber: Subscriber,
    registration: u64,
    position: Position,
}

#[derive(Debug)]
enum Position {
    /// The subscribe script has not answered yet.
    Pending(Vec<Incoming>),
    /// Delivering: the next message is `after + 1` in `epoch`; only presence pushes after
    /// `seq` are news.
    At {
        epoch: Arc<str>,
        after: u64,
        seq: u64,
    },
}

/// A push from a shard, encoded once for every subscriber here.
#[derive(Clone, Debug)]
enum Incoming {
    Message {
        epoch: Arc<str>,
        offset: u64,
        /// 0 for a message read from history (it does not move the presence position).
        seq: u64,
        push: Arc<Push>,
    },
    Presence {
        epoch: Arc<str>,
        seq: u64,
        client: Arc<str>,
        push: Arc<Push>,
    },
}

/// What a subscriber does with a push.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    Queue,
    /// Kept for later (pending), or not for this subscriber (a duplicate, its own join).
    Keep,
    /// Messages before this one are missing.
    Gap,
    /// Another epoch: the channel's state was lost.
    Lost,
}

impl Member for Local {
    fn subscriber(&self) -> &Subscriber {
        &self.subscriber
    }
}

impl Registry {
    pub(super) fn new(metrics: Arc<Metrics>, deflate: Option<DeflateConfig>) -> Self {
        Self {
            channels: Mutex::default(),
            metrics,
            deflate,
            next_registration: AtomicU64::new(1),
        }
    }

    /// Adds a subscriber whose subscribe script is about to run: from now on it keeps what
    /// arrives for the channel. Returns its registration, for [`Registry::settle`].
    pub(super) fn register(&self, channel: &str, subscriber: Subscriber) -> u64 {
        let registration = self.next_registration.fetch_add(1, Ordering::Relaxed);
        let local = Local {
            subscriber,
            registration,
            position: Position::Pending(Vec::new()),
        };
        self.with_channel(channel, |ch| {
            ch.subscribers.insert(local);
        });
        registration
    }

    /// The subscribe script answered: queues the reply, the replayed messages, then what
    /// arrived meanwhile that comes after them. Returns a catch-up to run if what arrived
    /// meanwhile shows a gap.
    pub(super) fn settle(
        &self,
        channel: &str,
        registration: u64,
        subscribed: &Subscribed,
        seq: u64,
        reply: SubscribedReply<'_>,
        replay: Vec<String>,
    ) -> Option<CatchUp> {
        self.existing(channel, |ch| {
            let local = ch
                .subscribers
                .iter_mut()
                .find(|l| l.registration == registration)?;
            let queue = Arc::clone(&local.subscriber.queue);
            queue.push(reply(subscribed));
            let deflate = self
                .deflate
                .as_ref()
                .filter(|_| local.subscriber.compressed);
            // The script replays every message after `since` through `offset`, none missing.
            let marker = Replay {
                channel: channel.to_owned(),
                epoch: subscribed.epoch.clone(),
                after: subscribed.offset.saturating_sub(replay.len() as u64),
                through: subscribed.offset,
            };
            let bytes = replay.iter().map(String::len).sum();
            let first = marker.after + 1;
            let messages = (first..).zip(replay).map(|(offset, json)| {
                Push::message(channel, &subscribed.epoch, offset, json, deflate)
            });
            queue.push_recovery(bytes, messages, marker);
            let position = Position::At {
                epoch: Arc::from(subscribed.epoch.as_str()),
                after: subscribed.offset,
                seq,
            };
            let Position::Pending(waiting) = std::mem::replace(&mut local.position, position)
            else {
                return None;
            };
            let client = local.subscriber.info.client.clone();
            let mut waiting = waiting.into_iter();
            while let Some(incoming) = waiting.next() {
                match local.verdict(&incoming) {
                    Verdict::Queue => fan_out(&self.metrics, incoming.push(), [&*queue]),
                    Verdict::Keep => {}
                    Verdict::Lost => {
                        self.disconnect(ch, &[client]);
                        return None;
                    }
                    Verdict::Gap => {
                        // This and what followed it arrived before anything now held.
                        let mut rest: Vec<_> = std::iter::once(incoming).chain(waiting).collect();
                        if let Some(held) = ch.held.take() {
                            rest.extend(held);
                            ch.held = Some(rest);
                            ch.again = true;
                            return None;
                        }
                        ch.held = Some(rest);
                        return Self::catch_up_from(ch, channel);
                    }
                }
            }
            None
        })
        .flatten()
    }

    /// The subscribe script failed: forgets the subscriber (if it is still this registration).
    pub(super) fn abandon(&self, channel: &str, registration: u64) {
        self.existing(channel, |ch| {
            ch.subscribers.extract(|l| l.registration != registration);
        });
        self.forget_if_empty(channel);
    }

    /// Removes a client's subscriber; returns it.
    pub(super) fn unregister(&self, channel: &str, client: &str) -> Option<Subscriber> {
        let gone = self
            .existing(channel, |ch| ch.subscribers.remove(client))
            .flatten();
        self.forget_if_empty(channel);
        gone.map(|l| l.subscriber)
    }

    /// Handles what a shard carried. Returns a catch-up to run if it shows a gap.
    pub(super) fn receive(&self, shard: &Shard<'_>) -> Option<CatchUp> {
        let (Shard::Message { channel, .. } | Shard::Presence { channel, .. }) = *shard;
        self.existing(channel, |ch| {
            let deflate = self
                .deflate
                .as_ref()
                .filter(|_| ch.subscribers.any_compressed());
            let incoming = match *shard {
                Shard::Message {
                    epoch,
                    offset,
                    seq,
                    json,
                    ..
                } => Incoming::Message {
                    epoch: Arc::from(epoch),
                    offset,
                    seq,
                    push: Push::message(channel, epoch, offset, json.to_owned(), deflate),
                },
                Shard::Presence {
                    epoch,
                    seq,
                    client,
                    json,
                    ..
                } => Incoming::Presence {
                    epoch: Arc::from(epoch),
                    seq,
                    client: Arc::from(client),
                    push: Push::presence(presence_kind(json), json.to_owned(), deflate),
                },
            };
            self.offer(ch, channel, incoming)
        })
        .flatten()
    }

    /// The pub/sub connection came back: whatever was published meanwhile never arrived.
    /// Holds every channel and returns the catch-ups that fill the gaps.
    pub(super) fn hold_all(&self) -> Vec<CatchUp> {
        let channels: Vec<_> = lock(&self.channels)
            .iter()
            .map(|(name, ch)| (name.clone(), Arc::clone(ch)))
            .collect();
        channels
            .into_iter()
            .filter_map(|(name, ch)| {
                let mut ch = lock(&ch);
                if ch.removed {
                    return None;
                }
                Self::request_catch_up(&mut ch, &name)
            })
            .collect()
    }

    /// A catch-up's read is back: queues to each subscriber the messages it missed, then what
    /// was held. Subscribers whose gap the history no longer covers (or whose epoch is gone)
    /// are disconnected with [`STATE_LOST`](crate::close::STATE_LOST). Returns the next catch-up if another is needed.
    pub(super) fn finish_catch_up(&self, channel: &str, read: &HistoryRead) -> Option<CatchUp> {
        let next = self
            .existing(channel, |ch| {
                let held = ch.held.take().unwrap_or_default();
                let epoch: Arc<str> = Arc::from(read.epoch.as_str());
                let compress = ch.subscribers.any_compressed();
                let deflate = self.deflate.as_ref().filter(|_| compress);
                for (offset, json) in &read.entries {
                    let incoming = Incoming::Message {
                        epoch: Arc::clone(&epoch),
                        offset: *offset,
                        seq: 0,
                        push: Push::message(channel, &read.epoch, *offset, json.clone(), deflate),
                    };
                    self.replay(ch, &incoming);
                }
                // Whoever is still short of the newest offset has lost what history dropped.
                let short: Vec<_> = ch
                    .subscribers
                    .iter()
                    .filter(|l| match &l.position {
                        Position::At {
                            epoch: e, after, ..
                        } => **e != *read.epoch || (!read.epoch.is_empty() && *after < read.offset),
                        Position::Pending(_) => false,
                    })
                    .map(|l| l.subscriber.info.client.clone())
                    .collect();
                self.disconnect(ch, &short);
                let mut held = held.into_iter();
                while let Some(incoming) = held.next() {
                    if let Some(next) = self.offer(ch, channel, incoming) {
                        // A gap again: what is left stays held for the next catch-up.
                        ch.held.get_or_insert_default().extend(held);
                        return Some(next);
                    }
                }
                if std::mem::take(&mut ch.again) {
                    return Self::request_catch_up(ch, channel);
                }
                None
            })
            .flatten();
        self.forget_if_empty(channel);
        next
    }

    /// Whether the channel still waits for a catch-up (its subscribers did not all leave).
    pub(super) fn still_held(&self, channel: &str) -> bool {
        self.existing(channel, |ch| ch.held.is_some())
            .unwrap_or(false)
    }

    /// Waits (at most `limit`) until this node has handled the message at `offset` of `epoch`,
    /// so that a publisher subscribed here gets its `message` push before its `published`
    /// reply, as with the in-memory broker. Returns at once when nobody here is subscribed.
    pub(super) async fn seen(
        &self,
        channel: &str,
        epoch: &str,
        offset: u64,
        limit: std::time::Duration,
    ) {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let notify = self.existing(channel, |ch| {
                let reached = match &ch.seen {
                    Some((seen_epoch, seen)) => **seen_epoch != *epoch || *seen >= offset,
                    None => false,
                };
                (!reached && !ch.subscribers.is_empty()).then(|| Arc::clone(&ch.seen_moved))
            });
            let Some(Some(notify)) = notify else {
                return;
            };
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            // Check again now that a wake-up cannot be missed.
            let reached = self
                .existing(channel, |ch| match &ch.seen {
                    Some((seen_epoch, seen)) => **seen_epoch != *epoch || *seen >= offset,
                    None => ch.subscribers.is_empty(),
                })
                .unwrap_or(true);
            if reached || tokio::time::timeout_at(deadline, notified).await.is_err() {
                return;
            }
        }
    }

    /// Every subscription here, for registering them again in Redis.
    pub(super) fn memberships(&self) -> Vec<Membership> {
        let channels: Vec<_> = lock(&self.channels)
            .iter()
            .map(|(name, ch)| (name.clone(), Arc::clone(ch)))
            .collect();
        let mut all = Vec::new();
        for (name, ch) in channels {
            let ch = lock(&ch);
            let visible = ch.subscribers.iter().filter(|l| l.subscriber.visible);
            all.extend(visible.map(|l| Membership {
                channel: name.clone(),
                info: l.subscriber.info.clone(),
            }));
        }
        all
    }

    /// Whether the client is subscribed here.
    pub(super) fn contains(&self, channel: &str, client: &str) -> bool {
        self.existing(channel, |ch| {
            ch.subscribers
                .iter()
                .any(|l| l.subscriber.info.client == client)
        })
        .unwrap_or(false)
    }

    /// Offers a push to every subscriber of the channel (or holds it during a catch-up).
    fn offer(&self, ch: &mut LocalChannel, channel: &str, incoming: Incoming) -> Option<CatchUp> {
        if let Some(held) = &mut ch.held {
            held.push(incoming);
            if held.len() < HELD_LIMIT {
                return None;
            }
            tracing::warn!(
                channel,
                "{HELD_LIMIT} pushes held waiting for history: disconnecting the subscribers"
            );
            ch.held = None;
            let everyone: Vec<_> = ch
                .subscribers
                .iter()
                .map(|l| l.subscriber.info.client.clone())
                .collect();
            self.disconnect(ch, &everyone);
            return None;
        }
        let mut gap = false;
        let mut lost = Vec::new();
        let queues = ch.subscribers.iter_mut().filter_map(|local| {
            match local.verdict(&incoming) {
                Verdict::Queue => return Some(&*local.subscriber.queue),
                Verdict::Keep => {}
                Verdict::Gap => gap = true,
                Verdict::Lost => lost.push(local.subscriber.info.client.clone()),
            }
            None
        });
        fan_out(&self.metrics, incoming.push(), queues);
        if let Incoming::Message { epoch, offset, .. } = &incoming {
            ch.seen = Some((Arc::clone(epoch), *offset));
            ch.seen_moved.notify_waiters();
        }
        self.disconnect(ch, &lost);
        if !gap {
            return None;
        }
        ch.held = Some(vec![incoming]);
        Self::catch_up_from(ch, channel)
    }

    /// Offers a message read from history: a gap here is final (the history is all there is).
    fn replay(&self, ch: &mut LocalChannel, incoming: &Incoming) {
        let queues = ch.subscribers.iter_mut().filter_map(|local| {
            let at = matches!(local.position, Position::At { .. });
            (at && local.verdict(incoming) == Verdict::Queue).then_some(&*local.subscriber.queue)
        });
        fan_out(&self.metrics, incoming.push(), queues);
    }

    /// Holds the channel for a catch-up, unless one is running (then it runs again after).
    fn request_catch_up(ch: &mut LocalChannel, channel: &str) -> Option<CatchUp> {
        if ch.held.is_some() {
            ch.again = true;
            return None;
        }
        ch.held = Some(Vec::new());
        Self::catch_up_from(ch, channel)
    }

    /// The catch-up of a held channel: from its lowest position. With nobody positioned there
    /// is nothing to catch up: the channel is released.
    fn catch_up_from(ch: &mut LocalChannel, channel: &str) -> Option<CatchUp> {
        let after = ch
            .subscribers
            .iter()
            .filter_map(|l| match l.position {
                Position::At { after, .. } => Some(after),
                Position::Pending(_) => None,
            })
            .min();
        let Some(after) = after else {
            // Pending subscribers take what was held through their own position.
            for incoming in ch.held.take().unwrap_or_default() {
                for local in ch.subscribers.iter_mut() {
                    if let Position::Pending(waiting) = &mut local.position {
                        waiting.push(incoming.clone());
                    }
                }
            }
            return None;
        };
        Some(CatchUp {
            channel: channel.to_owned(),
            after,
        })
    }

    /// Disconnects these clients' subscribers with [`STATE_LOST`](crate::close::STATE_LOST).
    fn disconnect(&self, ch: &mut LocalChannel, clients: &[String]) {
        for client in clients {
            if let Some(local) = ch.subscribers.remove(client) {
                tracing::info!(
                    client,
                    "the channel's history cannot fill this subscriber's gap: disconnecting"
                );
                local.subscriber.queue.close(Disconnect::state_lost());
            }
        }
    }

    /// Runs `f` on the channel, creating it if needed.
    fn with_channel<T>(&self, name: &str, f: impl FnOnce(&mut LocalChannel) -> T) -> T {
        let mut f = Some(f);
        loop {
            let channel = Arc::clone(lock(&self.channels).entry(name.to_owned()).or_default());
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
    fn existing<T>(&self, name: &str, f: impl FnOnce(&mut LocalChannel) -> T) -> Option<T> {
        let channel = lock(&self.channels).get(name).cloned()?;
        let mut guard = lock(&channel);
        (!guard.removed).then(|| f(&mut guard))
    }

    /// Drops the channel from the map once nobody here subscribes and nothing is held.
    fn forget_if_empty(&self, name: &str) {
        let mut channels = lock(&self.channels);
        let Some(channel) = channels.get(name) else {
            return;
        };
        let mut ch = lock(channel);
        if ch.subscribers.is_empty() && ch.held.is_none() {
            ch.removed = true;
            ch.seen_moved.notify_waiters();
            drop(ch);
            channels.remove(name);
        }
    }
}

impl Local {
    /// What this subscriber does with `incoming`; moves its position when it is queued.
    fn verdict(&mut self, incoming: &Incoming) -> Verdict {
        match (&mut self.position, incoming) {
            (Position::Pending(waiting), _) => {
                waiting.push(incoming.clone());
                Verdict::Keep
            }
            (
                Position::At { epoch, seq, .. },
                Incoming::Presence {
                    epoch: e,
                    seq: s,
                    client,
                    ..
                },
            ) => {
                if epoch != e || *s <= *seq {
                    return Verdict::Keep;
                }
                *seq = *s;
                if **client == *self.subscriber.info.client {
                    Verdict::Keep
                } else {
                    Verdict::Queue
                }
            }
            (
                Position::At { epoch, after, seq },
                Incoming::Message {
                    epoch: e,
                    offset,
                    seq: s,
                    ..
                },
            ) => {
                if epoch != e {
                    Verdict::Lost
                } else if *offset <= *after {
                    Verdict::Keep
                } else if *offset == *after + 1 {
                    *after = *offset;
                    *seq = (*seq).max(*s);
                    Verdict::Queue
                } else {
                    Verdict::Gap
                }
            }
        }
    }
}

impl Incoming {
    fn push(&self) -> &Arc<Push> {
        match self {
            Self::Message { push, .. } | Self::Presence { push, .. } => push,
        }
    }
}

/// Whether a presence push is a `join` or a `leave`: `presence_json` writes its `type` first.
fn presence_kind(json: &str) -> Kind {
    if json.starts_with(r#"{"type":"leave""#) {
        Kind::Leave
    } else {
        Kind::Join
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::ClientQueue;

    fn registry() -> Registry {
        Registry::new(Arc::new(Metrics::default()), None)
    }

    fn subscriber(client: &str) -> (Subscriber, Arc<ClientQueue>) {
        let queue = ClientQueue::new(1 << 20);
        let subscriber = Subscriber {
            info: ClientInfo {
                client: client.into(),
                user: None,
            },
            queue: Arc::clone(&queue),
            compressed: false,
            visible: true,
        };
        (subscriber, queue)
    }

    fn reply(s: &Subscribed) -> Arc<Push> {
        Push::chat(format!("reply {} {}", s.epoch, s.offset))
    }

    fn subscribed(epoch: &str, offset: u64) -> Subscribed {
        Subscribed {
            epoch: epoch.into(),
            offset,
            recovered: true,
        }
    }

    fn message(epoch: &str, offset: u64) -> String {
        format!("m1:c{epoch}:{offset}:{}:msg {offset}", offset * 2)
    }

    fn receive(registry: &Registry, payload: &str) -> Option<CatchUp> {
        registry.receive(&super::super::wire::parse(payload.as_bytes()).unwrap())
    }

    async fn drained(queue: &ClientQueue) -> Vec<String> {
        if queue.queued_bytes() == 0 {
            return Vec::new();
        }
        let mut batch = Vec::new();
        queue.next_batch(&mut batch).await.unwrap();
        batch
            .iter()
            .map(|m| String::from_utf8_lossy(m.json()).into_owned())
            .collect()
    }

    #[tokio::test]
    async fn live_messages_wait_for_the_reply_and_replay_then_skip_duplicates() {
        let registry = registry();
        let (sub, queue) = subscriber("a");
        let registration = registry.register("c", sub);
        // Published around the subscribe script: 3 is in the replay, 4 and 5 are not.
        assert_eq!(receive(&registry, &message("e", 3)), None);
        assert_eq!(receive(&registry, &message("e", 4)), None);
        assert!(drained(&queue).await.is_empty(), "nothing before the reply");
        let replay = vec!["msg 2".to_owned(), "msg 3".to_owned()];
        let next = registry.settle("c", registration, &subscribed("e", 3), 6, &reply, replay);
        assert_eq!(next, None);
        receive(&registry, &message("e", 3)); // late duplicate from the shard
        receive(&registry, &message("e", 5));
        assert_eq!(
            drained(&queue).await,
            ["reply e 3", "msg 2", "msg 3", "msg 4", "msg 5"]
        );
    }

    #[tokio::test]
    async fn a_gap_holds_the_channel_until_the_history_fills_it() {
        let registry = registry();
        let (sub, queue) = subscriber("a");
        let registration = registry.register("c", sub);
        registry.settle(
            "c",
            registration,
            &subscribed("e", 1),
            2,
            &reply,
            Vec::new(),
        );
        receive(&registry, &message("e", 2));
        let catch_up = receive(&registry, &message("e", 5)).unwrap();
        assert_eq!(catch_up.after, 2);
        receive(&registry, &message("e", 6)); // held
        assert!(registry.still_held("c"));
        let read = HistoryRead {
            epoch: "e".into(),
            offset: 5,
            entries: (3..=5).map(|n| (n, format!("msg {n}"))).collect(),
            more: false,
        };
        assert_eq!(registry.finish_catch_up("c", &read), None);
        assert_eq!(
            drained(&queue).await,
            ["reply e 1", "msg 2", "msg 3", "msg 4", "msg 5", "msg 6"]
        );
    }

    #[tokio::test]
    async fn a_lost_epoch_or_trimmed_history_disconnects_with_state_lost() {
        let registry = registry();
        let (a, a_queue) = subscriber("a");
        let (b, b_queue) = subscriber("b");
        let ra = registry.register("c", a);
        registry.settle("c", ra, &subscribed("e", 1), 2, &reply, Vec::new());
        let rb = registry.register("c", b);
        registry.settle("c", rb, &subscribed("e", 4), 8, &reply, Vec::new());
        let catch_ups = registry.hold_all();
        assert_eq!(catch_ups[0].after, 1);
        // History kept only 4 and 5: a (at 1) cannot be filled; b (at 4) can.
        let read = HistoryRead {
            epoch: "e".into(),
            offset: 5,
            entries: vec![(4, "msg 4".into()), (5, "msg 5".into())],
            more: false,
        };
        registry.finish_catch_up("c", &read);
        assert_eq!(a_queue.closed().await.code, crate::close::STATE_LOST);
        assert_eq!(drained(&b_queue).await, ["reply e 4", "msg 5"]);
        receive(&registry, &message("other", 1));
        assert_eq!(b_queue.closed().await.code, crate::close::STATE_LOST);
        assert!(!registry.contains("c", "b"));
    }

    #[tokio::test]
    async fn presence_pushes_count_from_the_subscription_and_skip_their_own_client() {
        let registry = registry();
        let (a, a_queue) = subscriber("a");
        let (b, b_queue) = subscriber("b");
        let ra = registry.register("c", a);
        // a's join (seq 1) and an earlier client's leave (seq 2) are delayed on the shard.
        registry.settle("c", ra, &subscribed("e", 0), 1, &reply, Vec::new());
        receive(&registry, "p1:ce:1:1:a{join a}");
        let rb = registry.register("c", b);
        receive(&registry, "p1:ce:3:1:b{join b}");
        receive(&registry, "p1:ce:2:1:x{leave x, before b}");
        registry.settle("c", rb, &subscribed("e", 0), 3, &reply, Vec::new());
        receive(&registry, "p1:ce:4:1:y{join y}");
        assert_eq!(
            drained(&a_queue).await,
            ["reply e 0", "{join b}", "{join y}"]
        );
        assert_eq!(drained(&b_queue).await, ["reply e 0", "{join y}"]);
    }
}
