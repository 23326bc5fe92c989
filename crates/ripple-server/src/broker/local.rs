//! What every broker does on this node, whatever carries messages between nodes: the
//! subscribers of a channel, fanning one encoded frame out to their queues (with the counters),
//! and the JSON of the `join`/`leave` pushes.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use ripple::DeflateConfig;

use super::Subscriber;
use crate::metrics::Metrics;
use crate::protocol::{ClientInfo, PresencePush};
use crate::push::{Kind, Push};
use crate::queue::{ClientQueue, Pushed};

/// Something that holds a [`Subscriber`] (the subscriber itself, or a broker's record of it).
pub(crate) trait Member {
    /// The subscriber.
    fn subscriber(&self) -> &Subscriber;
}

impl Member for Subscriber {
    fn subscriber(&self) -> &Subscriber {
        self
    }
}

/// A channel's subscribers on this node, at most one per client, with a count of those that
/// negotiated compression (so a frame is compressed only when someone can use it).
#[derive(Debug)]
pub(crate) struct Subscribers<T> {
    list: Vec<T>,
    compressed: usize,
}

impl<T> Default for Subscribers<T> {
    fn default() -> Self {
        Self {
            list: Vec::new(),
            compressed: 0,
        }
    }
}

impl<T: Member> Subscribers<T> {
    /// Adds `member`, replacing (and returning) an earlier one of the same client.
    pub(crate) fn insert(&mut self, member: T) -> Option<T> {
        let replaced = self.remove(&member.subscriber().info.client);
        if member.subscriber().compressed {
            self.compressed += 1;
        }
        self.list.push(member);
        replaced
    }

    /// Removes the client's subscriber.
    pub(crate) fn remove(&mut self, client: &str) -> Option<T> {
        let index = self
            .list
            .iter()
            .position(|m| m.subscriber().info.client == client)?;
        let member = self.list.swap_remove(index);
        if member.subscriber().compressed {
            self.compressed -= 1;
        }
        Some(member)
    }

    /// Keeps only the members for which `keep` is true; returns the others.
    pub(crate) fn extract(&mut self, mut keep: impl FnMut(&mut T) -> bool) -> Vec<T> {
        let mut gone = Vec::new();
        let mut index = 0;
        while index < self.list.len() {
            if keep(&mut self.list[index]) {
                index += 1;
                continue;
            }
            let member = self.list.swap_remove(index);
            if member.subscriber().compressed {
                self.compressed -= 1;
            }
            gone.push(member);
        }
        gone
    }

    /// Whether some subscriber negotiated permessage-deflate.
    pub(crate) fn any_compressed(&self) -> bool {
        self.compressed > 0
    }

    /// How many there are.
    pub(crate) fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether there are none.
    pub(crate) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Each member.
    pub(crate) fn iter(&self) -> std::slice::Iter<'_, T> {
        self.list.iter()
    }

    /// Each member, mutably.
    pub(crate) fn iter_mut(&mut self) -> std::slice::IterMut<'_, T> {
        self.list.iter_mut()
    }
}

/// Queues `push` to each of `queues`, counting deliveries, bytes and slow consumers.
pub(crate) fn fan_out<'q>(
    metrics: &Metrics,
    push: &Arc<Push>,
    queues: impl IntoIterator<Item = &'q ClientQueue>,
) {
    let size = push.queued_size() as u64;
    let mut delivered = 0;
    for queue in queues {
        match queue.push(Arc::clone(push)) {
            Pushed::Queued => delivered += 1,
            Pushed::Closed => {}
            Pushed::Overflow => {
                Metrics::add(&metrics.dropped, 1);
                Metrics::add(&metrics.slow_consumers, 1);
            }
        }
    }
    Metrics::add(&metrics.messages_out, delivered);
    Metrics::add(&metrics.bytes_out, delivered * size);
}

/// The JSON of a `join` or `leave` push.
pub(crate) fn presence_json(kind: &'static str, channel: &str, info: &ClientInfo) -> String {
    // Serializing strings and an optional string cannot fail.
    serde_json::to_string(&PresencePush {
        kind,
        channel,
        info,
    })
    .unwrap_or_default()
}

/// A `join` or `leave` push, compressed once when `deflate` is given.
pub(crate) fn presence_push(
    kind: Kind,
    channel: &str,
    info: &ClientInfo,
    deflate: Option<&DeflateConfig>,
) -> Arc<Push> {
    Push::presence(kind, presence_json(kind.as_str(), channel, info), deflate)
}

/// A fresh epoch: random, so a restarted server (or a Redis that lost a channel) never reuses
/// one.
pub(crate) fn new_epoch() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// Locks a mutex, ignoring poisoning: every critical section leaves its data consistent.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
