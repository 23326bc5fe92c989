//! Paced recovery: a subscriber far behind gets its missed messages from history as fast as it
//! reads them, a page at a time, instead of all at once into a queue that cannot hold them.
//!
//! A broker recovering more than half a client's queue queues a [`Replay`] marker where the
//! messages would go; live messages queue behind it as usual. The client's writer, reaching the
//! marker, reads the next page (`history_page_bytes`) from history, writes it, and only then
//! reads the next: the client's own pace sets the replay's. Should a page no longer start where
//! the last one ended (history evicted or expired meanwhile), the client is disconnected with
//! 4009 (state lost) and nothing queued behind the gap is sent: it subscribes again with
//! `since` and learns `recovered: false` — never a silent gap.

use std::sync::Arc;

use crate::broker::{Broker, HistoryQuery};
use crate::push::Push;
use crate::queue::{ClientQueue, Disconnect, Replay};

/// Where a writer reads replays from.
#[derive(Clone, Copy, Debug)]
pub struct Pacer<'a> {
    /// The history.
    pub broker: &'a dyn Broker,
    /// Bytes of messages read per page.
    pub page_bytes: usize,
}

/// [`ClientQueue::next_batch`], with a replay marker expanded a page at a time: a batch is
/// the frames queued before the marker and the marker's next page.
pub async fn next_batch(
    queue: &ClientQueue,
    pacer: Pacer<'_>,
    batch: &mut Vec<Arc<Push>>,
) -> Result<(), Disconnect> {
    loop {
        let Some(replay) = queue.next_batch(batch).await? else {
            return Ok(());
        };
        match read_page(pacer, &replay).await {
            Ok((frames, rest)) => {
                if let Some(rest) = rest {
                    queue.resume_replay(rest);
                }
                batch.extend(frames);
                if !batch.is_empty() {
                    return Ok(());
                }
            }
            Err(why) => {
                tracing::info!(channel = replay.channel, "replay cut short: {why}");
                // What was queued behind the gap is dropped; the frames before the marker, in
                // `batch`, still go out.
                queue.abandon(Disconnect::state_lost());
                if !batch.is_empty() {
                    return Ok(());
                }
            }
        }
    }
}

/// The next page of `replay`, and what is left of it after that page.
async fn read_page(
    pacer: Pacer<'_>,
    replay: &Replay,
) -> Result<(Vec<Arc<Push>>, Option<Replay>), String> {
    let query = HistoryQuery {
        since: Some(replay.after),
        limit: usize::try_from(replay.through - replay.after).unwrap_or(usize::MAX),
        max_bytes: pacer.page_bytes,
    };
    let page = pacer
        .broker
        .history(&replay.channel, query)
        .await
        .map_err(|err| err.to_string())?;
    if page.epoch != replay.epoch {
        return Err("the channel's epoch changed".into());
    }
    let mut frames = Vec::with_capacity(page.messages.len());
    let mut last = replay.after;
    for message in page.messages {
        let Some(offset) = message.head().offset else {
            return Err("a stored message has no offset".into());
        };
        if offset > replay.through {
            break;
        }
        if offset != last + 1 {
            return Err(format!("history resumes at {offset}, not {}", last + 1));
        }
        last = offset;
        frames.push(message);
    }
    if last == replay.after {
        return Err(format!("history no longer holds offset {}", last + 1));
    }
    let rest = (last < replay.through).then(|| Replay {
        after: last,
        ..replay.clone()
    });
    Ok((frames, rest))
}
