//! Each client's outbound queue: bounded in bytes, filled without waiting by publishers,
//! drained by the client's writer task.
//!
//! A publisher never waits for a slow client: when a push would pass the byte limit the queue
//! drops everything it holds, marks the client as a slow consumer, and wakes the writer, which
//! disconnects it (close code [`crate::close::SLOW_CONSUMER`]). Messages are `Arc`s of frames
//! encoded once for every transport ([`Push`]), so a broadcast costs one pointer per subscriber.
//!
//! A recovery too large to queue whole is queued as a [`Replay`] marker instead: the writer
//! reads it from history a page at a time as the queue drains (see [`crate::replay`]), and
//! what is published meanwhile queues behind it.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use ripple::CloseCode;
use tokio::sync::Notify;

use crate::push::Push;

/// Why a client is being disconnected by the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Disconnect {
    /// The close code.
    pub code: CloseCode,
    /// The close reason.
    pub reason: &'static str,
}

impl Disconnect {
    /// The channel lost messages the client was promised (history gone under a replay, or a
    /// broker that came back without them): it must subscribe again with `since`.
    pub const fn state_lost() -> Self {
        Self {
            code: crate::close::STATE_LOST,
            reason: "channel state lost: subscribe again with since",
        }
    }

    /// The client's queue overflowed: it reads slower than it is sent to.
    pub const fn slow_consumer() -> Self {
        Self {
            code: crate::close::SLOW_CONSUMER,
            reason: "slow consumer",
        }
    }
}

/// A client's bounded outbound queue.
#[derive(Debug)]
pub struct ClientQueue {
    state: Mutex<State>,
    notify: Notify,
    closed: Notify,
    limit: usize,
}

#[derive(Debug, Default)]
struct State {
    items: VecDeque<Item>,
    /// Bytes of the queued frames (a replay marker holds none: its messages are in history).
    bytes: usize,
    disconnect: Option<Disconnect>,
}

#[derive(Debug)]
enum Item {
    Push(Arc<Push>),
    Replay(Replay),
}

/// Messages of a channel still to be sent from its history: those after `after`, through
/// `through`, of epoch `epoch`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replay {
    /// The channel.
    pub channel: String,
    /// The epoch the recovery was promised in.
    pub epoch: String,
    /// The offset of the last message sent.
    pub after: u64,
    /// The offset of the last message to replay (newer ones come live, behind the marker).
    pub through: u64,
}

/// What happened to a push.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pushed {
    /// Queued.
    Queued,
    /// The queue is closed (the client is going away); nothing was queued.
    Closed,
    /// The push passed the limit: the client is now being disconnected as a slow consumer.
    Overflow,
}

impl ClientQueue {
    /// A queue holding at most `limit` bytes of frames.
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::default(),
            notify: Notify::new(),
            closed: Notify::new(),
            limit,
        })
    }

    /// Queues a frame for the client without waiting.
    pub fn push(&self, message: Arc<Push>) -> Pushed {
        let size = message.queued_size();
        let mut state = self.lock();
        if state.disconnect.is_some() {
            return Pushed::Closed;
        }
        if state.bytes + size > self.limit && !state.items.is_empty() {
            drop(state);
            self.abandon(Disconnect::slow_consumer());
            return Pushed::Overflow;
        }
        state.bytes += size;
        state.items.push_back(Item::Push(message));
        drop(state);
        self.notify.notify_one();
        Pushed::Queued
    }

    /// Queues a recovery of about `bytes`: its messages at once when they take at most half
    /// the queue, else a [`Replay`] marker that the writer expands from history as the queue
    /// drains (`messages` is then never iterated).
    pub fn push_recovery(
        &self,
        bytes: usize,
        messages: impl IntoIterator<Item = Arc<Push>>,
        replay: Replay,
    ) {
        if bytes > self.limit / 2 {
            self.push_replay(replay);
            return;
        }
        for message in messages {
            self.push(message);
        }
    }

    /// Queues a [`Replay`] marker (it holds no bytes of its own).
    pub fn push_replay(&self, replay: Replay) {
        let mut state = self.lock();
        if state.disconnect.is_some() || replay.after >= replay.through {
            return;
        }
        state.items.push_back(Item::Replay(replay));
        drop(state);
        self.notify.notify_one();
    }

    /// Puts the rest of a replay back at the head of the queue, where it was taken from.
    pub fn resume_replay(&self, replay: Replay) {
        let mut state = self.lock();
        if state.disconnect.is_some() || replay.after >= replay.through {
            return;
        }
        state.items.push_front(Item::Replay(replay));
    }

    /// Disconnects the client and drops everything queued for it: what follows a gap, or an
    /// overflow, must not be delivered.
    pub fn abandon(&self, disconnect: Disconnect) {
        let mut state = self.lock();
        state.items = VecDeque::new();
        state.bytes = 0;
        if state.disconnect.is_none() {
            state.disconnect = Some(disconnect);
        }
        drop(state);
        self.wake_closed();
    }

    /// Starts disconnecting the client (unless it already is).
    pub fn close(&self, disconnect: Disconnect) {
        let mut state = self.lock();
        if state.disconnect.is_none() {
            state.disconnect = Some(disconnect);
        }
        drop(state);
        self.wake_closed();
    }

    /// Moves the queued frames into `batch`, up to the first [`Replay`] marker; that marker is
    /// taken off too and returned, for the caller to expand after them (and to put back with
    /// [`ClientQueue::resume_replay`] if it is not done). `Err` with the reason once the client
    /// is being disconnected and nothing queued is left. Waits while the queue is empty.
    pub async fn next_batch(
        &self,
        batch: &mut Vec<Arc<Push>>,
    ) -> Result<Option<Replay>, Disconnect> {
        loop {
            {
                let mut state = self.lock();
                // What was queued before the disconnect goes out first (an `error` reply before
                // its close); an overflow has already emptied the queue.
                if !state.items.is_empty() {
                    Self::take_frames(&mut state, batch);
                    let Some(Item::Replay(replay)) = state.items.pop_front() else {
                        return Ok(None);
                    };
                    return Ok(Some(replay));
                }
                if let Some(disconnect) = &state.disconnect {
                    return Err(disconnect.clone());
                }
            }
            self.notify.notified().await;
        }
    }

    fn take_frames(state: &mut State, batch: &mut Vec<Arc<Push>>) {
        while let Some(Item::Push(_)) = state.items.front() {
            let Some(Item::Push(push)) = state.items.pop_front() else {
                unreachable!("the front was just seen to be a push");
            };
            state.bytes -= push.queued_size();
            batch.push(push);
        }
    }

    /// Resolves once the client is being disconnected.
    pub async fn closed(&self) -> Disconnect {
        loop {
            let notified = self.closed.notified();
            if let Some(disconnect) = self.lock().disconnect.clone() {
                return disconnect;
            }
            notified.await;
        }
    }

    /// Resolves once the client is being disconnected as a slow consumer (never, once it is
    /// being disconnected for another reason).
    pub async fn overflowed(&self) {
        loop {
            let notified = self.closed.notified();
            let disconnect = self.lock().disconnect.clone();
            match disconnect {
                Some(disconnect) if disconnect.code == crate::close::SLOW_CONSUMER => return,
                Some(_) => std::future::pending::<()>().await,
                None => notified.await,
            }
        }
    }

    /// Whether the client is being disconnected as a slow consumer.
    pub fn is_slow_consumer(&self) -> bool {
        self.lock()
            .disconnect
            .as_ref()
            .is_some_and(|d| d.code == crate::close::SLOW_CONSUMER)
    }

    /// Bytes waiting.
    pub fn queued_bytes(&self) -> usize {
        self.lock().bytes
    }

    fn wake_closed(&self) {
        self.notify.notify_one();
        self.closed.notify_waiters();
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(len: usize) -> Arc<Push> {
        Push::chat("x".repeat(len))
    }

    #[tokio::test]
    async fn batches_what_was_pushed() {
        let queue = ClientQueue::new(1000);
        assert_eq!(queue.push(frame(10)), Pushed::Queued);
        assert_eq!(queue.push(frame(10)), Pushed::Queued);
        let mut batch = Vec::new();
        queue.next_batch(&mut batch).await.unwrap();
        assert_eq!(batch.len(), 2);
        assert_eq!(queue.queued_bytes(), 0);
    }

    #[tokio::test]
    async fn overflow_marks_a_slow_consumer_and_frees_memory() {
        let queue = ClientQueue::new(100);
        assert_eq!(queue.push(frame(60)), Pushed::Queued);
        assert_eq!(queue.push(frame(60)), Pushed::Overflow);
        assert_eq!(queue.queued_bytes(), 0);
        assert_eq!(queue.push(frame(1)), Pushed::Closed);
        assert_eq!(queue.closed().await.code, crate::close::SLOW_CONSUMER);
        assert!(queue.next_batch(&mut Vec::new()).await.is_err());
    }

    fn replay(after: u64, through: u64) -> Replay {
        Replay {
            channel: "c".into(),
            epoch: "e".into(),
            after,
            through,
        }
    }

    #[tokio::test]
    async fn a_large_recovery_is_queued_as_a_marker_that_live_frames_wait_behind() {
        let queue = ClientQueue::new(1000);
        queue.push(frame(10));
        let big = vec![frame(400), frame(400)];
        queue.push_recovery(804, big, replay(0, 2));
        queue.push(frame(20));
        assert_eq!(
            queue.queued_bytes(),
            10 + 20 + 2 * 2,
            "the marker holds no bytes"
        );
        let mut batch = Vec::new();
        let marker = queue.next_batch(&mut batch).await.unwrap();
        assert_eq!(batch.len(), 1, "frames up to the marker");
        assert_eq!(marker, Some(replay(0, 2)), "then the marker");
        batch.clear();
        queue.resume_replay(replay(1, 2));
        assert_eq!(
            queue.next_batch(&mut batch).await.unwrap(),
            Some(replay(1, 2)),
            "what is left of it comes first again"
        );
        assert_eq!(queue.next_batch(&mut batch).await.unwrap(), None);
        assert_eq!(batch.len(), 1, "then the live frame");
        assert_eq!(queue.queued_bytes(), 0);
    }

    #[tokio::test]
    async fn a_small_recovery_is_queued_whole() {
        let queue = ClientQueue::new(1000);
        queue.push_recovery(204, vec![frame(100), frame(100)], replay(0, 2));
        let mut batch = Vec::new();
        assert_eq!(queue.next_batch(&mut batch).await.unwrap(), None);
        assert_eq!(batch.len(), 2);
    }

    #[tokio::test]
    async fn abandoning_drops_what_was_queued() {
        let queue = ClientQueue::new(1000);
        queue.push(frame(10));
        queue.push_replay(replay(0, 5));
        queue.abandon(Disconnect::state_lost());
        let ended = queue.next_batch(&mut Vec::new()).await.unwrap_err();
        assert_eq!(ended.code, crate::close::STATE_LOST);
    }

    #[tokio::test]
    async fn one_oversized_frame_still_goes_out() {
        let queue = ClientQueue::new(10);
        assert_eq!(queue.push(frame(100)), Pushed::Queued);
    }
}
