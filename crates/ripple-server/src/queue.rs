//! Each client's outbound queue: bounded in bytes, filled without waiting by publishers,
//! drained by the client's writer task.
//!
//! A publisher never waits for a slow client: when a push would pass the byte limit the queue
//! drops everything it holds, marks the client as a slow consumer, and wakes the writer, which
//! disconnects it (close code [`crate::close::SLOW_CONSUMER`]). Messages are `Arc`s of frames
//! encoded once (`PreparedMessage`), so a broadcast costs one pointer per subscriber.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use ripple::{CloseCode, PreparedMessage};
use tokio::sync::Notify;

/// Why a client is being disconnected by the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Disconnect {
    /// The close code.
    pub code: CloseCode,
    /// The close reason.
    pub reason: &'static str,
}

impl Disconnect {
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
    items: VecDeque<Arc<PreparedMessage>>,
    bytes: usize,
    disconnect: Option<Disconnect>,
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
    pub fn push(&self, message: Arc<PreparedMessage>) -> Pushed {
        let size = message.plain_frame().len();
        let mut state = self.lock();
        if state.disconnect.is_some() {
            return Pushed::Closed;
        }
        if state.bytes + size > self.limit && !state.items.is_empty() {
            state.items = VecDeque::new();
            state.bytes = 0;
            state.disconnect = Some(Disconnect::slow_consumer());
            drop(state);
            self.wake_closed();
            return Pushed::Overflow;
        }
        state.bytes += size;
        state.items.push_back(message);
        drop(state);
        self.notify.notify_one();
        Pushed::Queued
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

    /// Moves every queued frame into `batch`; `Err` with the reason once the client is being
    /// disconnected and nothing queued is left. Waits while the queue is empty.
    pub async fn next_batch(
        &self,
        batch: &mut Vec<Arc<PreparedMessage>>,
    ) -> Result<(), Disconnect> {
        loop {
            {
                let mut state = self.lock();
                // What was queued before the disconnect goes out first (an `error` reply before
                // its close); an overflow has already emptied the queue.
                if !state.items.is_empty() {
                    batch.extend(state.items.drain(..));
                    state.bytes = 0;
                    return Ok(());
                }
                if let Some(disconnect) = &state.disconnect {
                    return Err(disconnect.clone());
                }
            }
            self.notify.notified().await;
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
    use ripple::Message;

    use super::*;

    fn frame(len: usize) -> Arc<PreparedMessage> {
        Arc::new(PreparedMessage::new(Message::from(vec![0u8; len]), None))
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

    #[tokio::test]
    async fn one_oversized_frame_still_goes_out() {
        let queue = ClientQueue::new(10);
        assert_eq!(queue.push(frame(100)), Pushed::Queued);
    }
}
