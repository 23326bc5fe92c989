//! `--transport poll`: each subscriber long-polls `GET /poll?channel=NAME&cursor=C` on one
//! kept-alive HTTP/1.1 connection (docs/protocol.md, "`GET /poll`").
//!
//! The first request has `timeout=0` and no cursor: the server answers at once with the
//! channel's position, where the subscription starts. Each later request sends the previous
//! reply's cursor and waits until there is something newer; a reply carries every message
//! after the cursor, in order. A reply with `recovered: false` means the cursor fell out of the
//! channel's history: the messages in between are lost.

use super::channel::{PollReply, excerpt};
use super::http::{HttpTarget, Sender, read_all, send};
use super::subscriber::{Inbox, Joining};

/// Polls the channel into `inbox` until a request fails; reports the subscription to
/// `joining` after the first reply.
pub(super) async fn receive(
    http: &HttpTarget,
    channel_query: &str,
    inbox: &mut Inbox<'_>,
    joining: &mut Option<Joining>,
) -> Result<(), String> {
    let (mut sender, driver) = http.connect().await?;
    let polling = async {
        let mut query = format!("poll?{channel_query}&timeout=0");
        let first = poll(&mut sender, http, &query).await?;
        let reply = parse(&first)?;
        let offset = reply
            .offset
            .ok_or_else(|| format!("a reply without the channel's offset: {}", excerpt(&first)))?;
        let mut cursor = cursor_text(&reply)?.to_owned();
        inbox.start_at(offset);
        if let Some(joined) = joining.take() {
            joined.done(Ok(()));
        }
        loop {
            query.clear();
            query.push_str("poll?");
            query.push_str(channel_query);
            query.push_str("&cursor=");
            query.push_str(&cursor);
            let body = poll(&mut sender, http, &query).await?;
            let reply = parse(&body)?;
            for push in reply.messages() {
                inbox.receive_push(push);
            }
            if !reply.recovered {
                inbox.fail(format!(
                    "poll reply with recovered: false (the cursor fell out of history: \
                     messages lost; keep -p x --publishers below the server's history_size): {}",
                    excerpt(&body)
                ));
                if let Some(offset) = reply.offset {
                    inbox.start_at(offset);
                }
            }
            cursor.clear();
            cursor.push_str(cursor_text(&reply)?);
        }
    };
    tokio::select! {
        result = polling => result,
        ended = driver => Err(match ended {
            Ok(()) => "the server closed the connection".into(),
            Err(err) => format!("connection: {err}"),
        }),
    }
}

async fn poll(sender: &mut Sender, http: &HttpTarget, query: &str) -> Result<bytes::Bytes, String> {
    let body = send(sender, http.get(query)?).await?;
    read_all(body).await
}

fn parse(body: &[u8]) -> Result<PollReply<'_>, String> {
    PollReply::parse(body)
        .ok_or_else(|| format!("a poll reply without a cursor: {}", excerpt(body)))
}

/// The reply's cursor, which goes into the next request's query as it is: base64url, nothing
/// to escape.
fn cursor_text<'a>(reply: &PollReply<'a>) -> Result<&'a str, String> {
    let base64url = |b: &u8| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_';
    if reply.cursor.is_empty() || !reply.cursor.iter().all(base64url) {
        let shown = excerpt(reply.cursor);
        return Err(format!("a cursor that is not base64url: {shown}"));
    }
    std::str::from_utf8(reply.cursor).map_err(|_| "a cursor that is not UTF-8".into())
}
