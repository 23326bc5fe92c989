//! The process-wide budget for bytes held in HTTP answers not yet written: what `/rpc`,
//! `/poll` and the `/api` history hold while a client does not read them.
//!
//! A request reserves its answer's size before the body is built; the [`AnswerPermit`] then
//! travels inside the body ([`AnswerPermit::hold`]) and gives the bytes back when the last
//! reference to them is dropped: once hyper has written them, or when the connection goes.
//! What does not fit waits [`BUSY_WAIT`] at most, then is refused (`503 unavailable`), never
//! buffered. The budget is a fair semaphore of bytes, so a large answer is not starved by a
//! stream of small ones.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::protocol::{ProtocolError, codes};

/// How long an answer waits for room in the budget before it is refused.
pub const BUSY_WAIT: Duration = Duration::from_secs(1);

/// What is counted for an answer before it is built, beside its messages: the reply's own
/// fields (an escaped channel name, an epoch, a cursor's worth of positions).
const ANSWER_SLACK: usize = 4096;

/// The most a page of messages may make an answer hold: `history_page_bytes`, or one message
/// of the largest size when that is larger (a page always holds one), plus the reply's fields.
pub fn page_bound(config: &crate::Config) -> usize {
    let one_message = config.max_message_size.saturating_add(ANSWER_SLACK);
    config
        .history_page_bytes
        .max(one_message)
        .saturating_add(ANSWER_SLACK)
}

/// What a short answer (`published`, `pong`, a refusal) is reserved as before it is built.
pub const SHORT_ANSWER: usize = 1024;

/// Bytes of answers held at once, across every request.
#[derive(Debug)]
pub struct AnswerBudget {
    semaphore: Arc<Semaphore>,
    limit: usize,
}

/// Bytes reserved in the [`AnswerBudget`]; given back on drop.
#[derive(Debug)]
pub struct AnswerPermit {
    permit: OwnedSemaphorePermit,
}

/// The budget has no room for an answer (within [`BUSY_WAIT`], or ever: larger than it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("server busy: too many unread answers")]
pub struct Busy;

impl AnswerBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Self {
        let limit = limit.min(Semaphore::MAX_PERMITS);
        Self {
            semaphore: Arc::new(Semaphore::new(limit)),
            limit,
        }
    }

    /// Reserves `bytes`, waiting at most [`BUSY_WAIT`] for others to give theirs back.
    pub async fn reserve(&self, bytes: usize) -> Result<AnswerPermit, Busy> {
        let wanted = permits(bytes, self.limit)?;
        let acquire = Arc::clone(&self.semaphore).acquire_many_owned(wanted);
        match tokio::time::timeout(BUSY_WAIT, acquire).await {
            Ok(Ok(permit)) => Ok(AnswerPermit { permit }),
            _ => Err(Busy),
        }
    }

    /// Bytes reserved now.
    pub fn held(&self) -> usize {
        self.limit - self.semaphore.available_permits()
    }

    /// The budget's size.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Makes `permit` exactly `bytes`: gives back what is over, or takes what is missing if
    /// it is free now (without waiting: the body is already built).
    pub fn fit(&self, permit: &mut AnswerPermit, bytes: usize) -> Result<(), Busy> {
        let have = permit.permit.num_permits();
        if bytes <= have {
            drop(permit.permit.split(have - bytes));
            return Ok(());
        }
        let more = permits(bytes - have, self.limit)?;
        let extra = Arc::clone(&self.semaphore)
            .try_acquire_many_owned(more)
            .map_err(|_| Busy)?;
        permit.permit.merge(extra);
        Ok(())
    }
}

impl AnswerPermit {
    /// Bytes reserved.
    pub fn bytes(&self) -> usize {
        self.permit.num_permits()
    }

    /// `body` as `Bytes` that own this permit: it is given back when the last reference to
    /// the bytes is dropped (written out, or the connection gone), not when the handler
    /// returns.
    pub fn hold(self, body: impl Into<Bytes>) -> Bytes {
        Bytes::from_owner(Held {
            body: body.into(),
            _permit: self,
        })
    }
}

impl Busy {
    /// The protocol's refusal: `unavailable` (HTTP 503).
    pub fn to_protocol(self) -> ProtocolError {
        ProtocolError::new(codes::UNAVAILABLE, self.to_string())
    }
}

/// An answer's bytes and the permit that accounts for them.
struct Held {
    body: Bytes,
    _permit: AnswerPermit,
}

impl AsRef<[u8]> for Held {
    fn as_ref(&self) -> &[u8] {
        &self.body
    }
}

/// `bytes` as semaphore permits: `Busy` when it could never fit.
fn permits(bytes: usize, limit: usize) -> Result<u32, Busy> {
    if bytes > limit {
        return Err(Busy);
    }
    u32::try_from(bytes).map_err(|_| Busy)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn permits_are_given_back_when_the_bytes_are_dropped() {
        let budget = AnswerBudget::new(100);
        let permit = budget.reserve(60).await.unwrap();
        assert_eq!(budget.held(), 60);
        let body = permit.hold(vec![b'x'; 60]);
        let slice = body.slice(10..20);
        drop(body);
        assert_eq!(budget.held(), 60, "a slice still refers to the bytes");
        drop(slice);
        assert_eq!(budget.held(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn what_does_not_fit_waits_then_is_refused() {
        let budget = AnswerBudget::new(100);
        let held = budget.reserve(80).await.unwrap();
        assert_eq!(budget.reserve(30).await.unwrap_err(), Busy);
        assert_eq!(budget.reserve(101).await.unwrap_err(), Busy);
        let waiting = budget.reserve(30);
        drop(held);
        assert_eq!(waiting.await.unwrap().bytes(), 30);
    }

    #[tokio::test]
    async fn fit_shrinks_or_grows_without_waiting() {
        let budget = AnswerBudget::new(100);
        let mut permit = budget.reserve(50).await.unwrap();
        budget.fit(&mut permit, 20).unwrap();
        assert_eq!((permit.bytes(), budget.held()), (20, 20));
        budget.fit(&mut permit, 90).unwrap();
        assert_eq!(budget.held(), 90);
        let _other = budget.reserve(10).await.unwrap();
        assert_eq!(budget.fit(&mut permit, 91), Err(Busy));
        assert_eq!(budget.held(), 100);
        drop(permit);
        assert_eq!(budget.held(), 10);
    }
}
