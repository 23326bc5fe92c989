//! The publication gate: once shutdown begins, a publication is either delivered to every
//! subscriber on this node before their close (1001), or refused.
//!
//! Publications pass through the gate while they run. Shutdown closes it (later publications
//! are refused with `unavailable`, HTTP 503) and waits for those in flight to finish fanning
//! out before the sessions are told to close; a session's queue is written out before its close
//! frame, so an acknowledged publication is never lost to the shutdown.

use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;

/// Counts publications in flight and refuses new ones once closed.
#[derive(Debug, Default)]
pub struct PublishGate {
    state: Mutex<GateState>,
    idle: Notify,
}

#[derive(Debug, Default)]
struct GateState {
    closed: bool,
    in_flight: usize,
}

/// A publication in flight; dropping it lets the gate's `close` finish.
#[derive(Debug)]
pub struct Pass<'a>(&'a PublishGate);

impl PublishGate {
    /// Lets a publication through, unless shutdown has begun.
    pub fn enter(&self) -> Option<Pass<'_>> {
        let mut state = self.lock();
        if state.closed {
            return None;
        }
        state.in_flight += 1;
        Some(Pass(self))
    }

    /// Refuses new publications and waits until none is in flight.
    pub async fn close(&self) {
        self.lock().closed = true;
        loop {
            let idle = self.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if self.lock().in_flight == 0 {
                return;
            }
            idle.await;
        }
    }

    /// Whether shutdown has begun.
    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    fn lock(&self) -> MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Pass<'_> {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.in_flight -= 1;
        if state.in_flight == 0 && state.closed {
            self.0.idle.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn close_waits_for_publications_in_flight_and_refuses_new_ones() {
        let gate = Arc::new(PublishGate::default());
        let pass = gate.enter().unwrap();
        let closing = tokio::spawn({
            let gate = Arc::clone(&gate);
            async move { gate.close().await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !closing.is_finished(),
            "closed with a publication in flight"
        );
        assert!(
            gate.enter().is_none(),
            "a new publication passed a closing gate"
        );
        drop(pass);
        tokio::time::timeout(Duration::from_secs(5), closing)
            .await
            .unwrap()
            .unwrap();
        assert!(gate.is_closed());
    }

    #[tokio::test]
    async fn an_idle_gate_closes_at_once() {
        let gate = PublishGate::default();
        drop(gate.enter());
        gate.close().await;
        assert!(gate.enter().is_none());
    }
}
