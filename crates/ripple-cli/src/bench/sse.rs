//! `--transport sse`: each subscriber streams `GET /sse?channel=NAME` on its own HTTP/1.1
//! connection and reads the event stream as it arrives (docs/protocol.md, "`GET /sse`").
//!
//! Every event's `data:` is one line of the same JSON as on `/ws`, so the stream is read line by
//! line: a `data:` line is handled when it is complete, the other fields (`event:`, `id:`,
//! `retry:`) and comments (`: heartbeat`) are skipped. Lines are read where they lie in the
//! received chunk; only a line cut by the end of a chunk is copied, to be completed by the next.

use http_body_util::BodyExt;

use super::channel::{excerpt, push_type, subscribed_offset};
use super::http::{HttpTarget, send};
use super::subscriber::{Inbox, Joining};

/// The longest line accepted (a push is at most the server's message size plus its fields).
const MAX_LINE: usize = 1 << 20;

/// Streams the channel into `inbox` until the stream fails; reports the subscription to
/// `joining` on the `subscribed` event.
pub(super) async fn receive(
    http: &HttpTarget,
    channel_query: &str,
    inbox: &mut Inbox<'_>,
    joining: &mut Option<Joining>,
) -> Result<(), String> {
    let (mut sender, driver) = http.connect().await?;
    let streaming = async {
        let request = http.get(&format!("sse?{channel_query}"))?;
        let mut body = send(&mut sender, request).await?;
        let mut lines = EventLines::new(MAX_LINE);
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|err| format!("reading the event stream: {err}"))?;
            let Ok(chunk) = frame.into_data() else {
                continue; // trailers
            };
            lines.receive(&chunk, |data| on_event(data, inbox, joining))?;
        }
        Err::<(), String>("the server ended the event stream".into())
    };
    tokio::select! {
        result = streaming => result,
        ended = driver => Err(match ended {
            Ok(()) => "the server closed the connection".into(),
            Err(err) => format!("connection: {err}"),
        }),
    }
}

/// One event's data: a push, the subscription's start, or the server's reason for ending.
fn on_event(
    data: &[u8],
    inbox: &mut Inbox<'_>,
    joining: &mut Option<Joining>,
) -> Result<(), String> {
    match push_type(data) {
        Some(b"message") => inbox.receive_push(data),
        Some(b"subscribed") => {
            let offset = subscribed_offset(data)
                .ok_or_else(|| format!("`subscribed` without an offset: {}", excerpt(data)))?;
            inbox.start_at(offset);
            if let Some(joined) = joining.take() {
                joined.done(Ok(()));
            }
        }
        Some(b"close" | b"error") => return Err(format!("the server sent {}", excerpt(data))),
        _ => {} // authenticated, join, leave
    }
    Ok(())
}

/// Splits an event stream into lines and hands over the value of each `data:` line.
///
/// Lines end with LF or CRLF (the server's); a lone CR, which the format also allows, is not
/// treated as an end of line.
#[derive(Debug)]
pub(crate) struct EventLines {
    /// The start of a line that the previous chunk cut.
    partial: Vec<u8>,
    max_line: usize,
}

impl EventLines {
    pub(crate) fn new(max_line: usize) -> Self {
        Self {
            partial: Vec::new(),
            max_line,
        }
    }

    /// Reads `chunk`: calls `on_data` with the value of every `data:` line it completes; stops
    /// at the first error of `on_data`, or when a line grows past the limit.
    pub(crate) fn receive(
        &mut self,
        mut chunk: &[u8],
        mut on_data: impl FnMut(&[u8]) -> Result<(), String>,
    ) -> Result<(), String> {
        if !self.partial.is_empty() {
            let Some(end) = memchr::memchr(b'\n', chunk) else {
                return self.keep(chunk);
            };
            self.partial.extend_from_slice(&chunk[..end]);
            chunk = &chunk[end + 1..];
            let handled = data_value(&self.partial).map_or(Ok(()), &mut on_data);
            self.partial.clear();
            handled?;
        }
        while let Some(end) = memchr::memchr(b'\n', chunk) {
            if let Some(value) = data_value(&chunk[..end]) {
                on_data(value)?;
            }
            chunk = &chunk[end + 1..];
        }
        self.keep(chunk)
    }

    fn keep(&mut self, rest: &[u8]) -> Result<(), String> {
        if self.partial.len() + rest.len() > self.max_line {
            return Err(format!(
                "an event stream line longer than {} bytes",
                self.max_line
            ));
        }
        self.partial.extend_from_slice(rest);
        Ok(())
    }
}

/// The value of a `data:` line (one leading space removed), `None` for other lines.
fn data_value(line: &[u8]) -> Option<&[u8]> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let value = line.strip_prefix(b"data:")?;
    Some(value.strip_prefix(b" ").unwrap_or(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &[u8] = b"retry: 2000\n\nevent: subscribed\nid: W1s\ndata: {\"type\":\"subscribed\",\"offset\":41}\n\n: heartbeat\n\nevent: message\r\ndata:{\"type\":\"message\",\"offset\":42}\r\n\r\n";

    fn split_at_every(points: &[usize]) -> Vec<String> {
        let mut lines = EventLines::new(1024);
        let mut got = Vec::new();
        let mut from = 0;
        for &to in points.iter().chain([STREAM.len()].iter()) {
            lines
                .receive(&STREAM[from..to], |data| {
                    got.push(String::from_utf8_lossy(data).into_owned());
                    Ok(())
                })
                .unwrap();
            from = to;
        }
        got
    }

    #[test]
    fn data_lines_whole_or_cut_anywhere() {
        let want = vec![
            r#"{"type":"subscribed","offset":41}"#.to_owned(),
            r#"{"type":"message","offset":42}"#.to_owned(),
        ];
        assert_eq!(split_at_every(&[]), want);
        for cut in 1..STREAM.len() {
            assert_eq!(split_at_every(&[cut]), want, "cut at {cut}");
        }
        let every_byte: Vec<usize> = (1..STREAM.len()).collect();
        assert_eq!(split_at_every(&every_byte), want);
    }

    #[test]
    fn long_lines_and_errors_stop_the_stream() {
        let mut lines = EventLines::new(8);
        assert!(lines.receive(b"data: 1234", |_| Ok(())).is_err());
        let mut lines = EventLines::new(64);
        let err = lines
            .receive(b"data: a\ndata: b\n", |_| Err("stop".into()))
            .unwrap_err();
        assert_eq!(err, "stop");
    }
}
