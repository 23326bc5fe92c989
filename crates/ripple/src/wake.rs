//! A waker that wakes every task waiting to write.
//!
//! The reader (flushing pongs and close echoes) and the writer (flushing messages) may both wait
//! for the same socket to become writable, but a socket keeps one write waker. Polling it with
//! this list's waker, and registering each waiting task in the list, wakes them all.

use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Wake, Waker};

#[derive(Debug, Default)]
pub(crate) struct WakeList(Mutex<Vec<Waker>>);

impl WakeList {
    /// Adds `waker` unless it is already waiting.
    pub(crate) fn register(&self, waker: &Waker) {
        let mut wakers = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if !wakers.iter().any(|w| w.will_wake(waker)) {
            wakers.push(waker.clone());
        }
    }

    /// Wakes and forgets every registered task.
    pub(crate) fn wake_all(&self) {
        let wakers = std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner));
        for waker in wakers {
            waker.wake();
        }
    }
}

impl Wake for WakeList {
    fn wake(self: Arc<Self>) {
        self.wake_all();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.wake_all();
    }
}
