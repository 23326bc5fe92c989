//! Pipe mode: each line of stdin is a message, each received message is a line on stdout;
//! everything else goes to stderr.

use std::io::{BufRead, Write};
use std::time::Duration;

use anyhow::Context as _;
use ripple::{CloseCode, CloseFrame, Message, WebSocket};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::link::{Ending, Link, MessageSink};
use super::{ConnectArgs, Connector, Mode, render, run_sessions};
use crate::style::Style;

/// How long a pong may take at the end of input.
const PONG_WAIT: Duration = Duration::from_secs(5);
/// How much longer than `--linger` a chatty server may keep us at the end of input.
const LINGER_CAP: Duration = Duration::from_secs(1);

/// Runs pipe mode; returns the exit status.
pub(super) async fn run(args: &ConnectArgs, connector: &Connector) -> anyhow::Result<u8> {
    let mut pipe = Pipe {
        input: read_stdin()?,
        eof: false,
        binary: args.binary,
        linger: args.linger,
        close_timeout: connector.close_timeout,
        style: Style::for_stderr(),
        warned_utf8: false,
    };
    Ok(run_sessions(&mut pipe, connector, args.reconnect).await)
}

struct Pipe {
    /// Lines of stdin, without their line ending; closed at the end of input.
    input: mpsc::Receiver<Vec<u8>>,
    eof: bool,
    binary: bool,
    linger: Duration,
    close_timeout: Duration,
    style: Style,
    warned_utf8: bool,
}

impl Mode for Pipe {
    async fn session(&mut self, ws: WebSocket, attempt: u32) -> Ending {
        if attempt > 1 {
            self.report("reconnected".into()).await;
        }
        let mut link = Link::start(ws, Stdout, self.close_timeout);
        loop {
            tokio::select! {
                line = self.input.recv(), if !self.eof => {
                    let Some(line) = line else {
                        self.eof = true;
                        linger(&mut link, self.linger).await;
                        return link.close(CloseFrame::new(CloseCode::NORMAL, "")).await;
                    };
                    let message = self.message(line);
                    if let Err(err) = link.writer().send(message).await {
                        tracing::debug!("send failed: {err}");
                        return self.wait_for_end(&mut link).await;
                    }
                }
                ending = link.ended() => return ending,
            }
        }
    }

    async fn report(&mut self, text: String) {
        eprintln!("ripple: {}", self.style.error(&text));
    }

    async fn pause(&mut self, delay: Duration) -> bool {
        tokio::time::sleep(delay).await;
        true
    }
}

impl Pipe {
    /// A line as a message: binary with `--binary`; text otherwise, unless it is not UTF-8.
    fn message(&mut self, line: Vec<u8>) -> Message {
        if self.binary {
            return Message::from(line);
        }
        match String::from_utf8(line) {
            Ok(text) => Message::from(text),
            Err(err) => {
                if !self.warned_utf8 {
                    self.warned_utf8 = true;
                    eprintln!(
                        "ripple: {}",
                        self.style
                            .warning("input is not UTF-8: such lines go out as binary messages")
                    );
                }
                Message::from(err.into_bytes())
            }
        }
    }

    /// After a failed send, the reader reports how the connection ended.
    async fn wait_for_end(&self, link: &mut Link) -> Ending {
        let grace = self.close_timeout + Duration::from_secs(2);
        match tokio::time::timeout(grace, link.ended()).await {
            Ok(ending) => ending,
            Err(_) => Ending::Failed(ripple::Error::Timeout("closing handshake")),
        }
    }
}

/// At the end of input: replies to the last lines may still be on their way. A pong proves the
/// server has read everything sent before the ping; then wait until it has been quiet for
/// `quiet` (at most `quiet + LINGER_CAP` in all).
async fn linger(link: &mut Link, quiet: Duration) {
    if quiet.is_zero() {
        return;
    }
    match tokio::time::timeout(PONG_WAIT, link.writer().ping()).await {
        Ok(Ok(rtt)) => tracing::debug!("final pong after {rtt:?}"),
        Ok(Err(err)) => return tracing::debug!("final ping: {err}"),
        Err(_) => tracing::debug!("no pong within {PONG_WAIT:?}"),
    }
    let give_up = Instant::now() + quiet + LINGER_CAP;
    let mut seen = link.received();
    loop {
        tokio::time::sleep(quiet).await;
        let now_seen = link.received();
        if now_seen == seen || Instant::now() >= give_up {
            return;
        }
        seen = now_seen;
    }
}

/// Received messages, one line each on stdout.
struct Stdout;

impl MessageSink for Stdout {
    async fn show(&mut self, message: Message) -> bool {
        let mut line = render::pipe_line(&message);
        line.push('\n');
        let mut out = std::io::stdout().lock();
        out.write_all(line.as_bytes())
            .and_then(|()| out.flush())
            .is_ok()
    }
}

/// Reads stdin on its own thread (a blocking read must not hold up the runtime, nor its
/// shutdown). A final line without a line ending still counts.
fn read_stdin() -> anyhow::Result<mpsc::Receiver<Vec<u8>>> {
    let (tx, rx) = mpsc::channel(64);
    std::thread::Builder::new()
        .name("stdin".into())
        .spawn(move || {
            let mut stdin = std::io::stdin().lock();
            loop {
                let mut line = Vec::new();
                match stdin.read_until(b'\n', &mut line) {
                    Ok(0) => return,
                    Ok(_) => {}
                    Err(err) => return tracing::warn!("reading stdin: {err}"),
                }
                strip_line_ending(&mut line);
                if tx.blocking_send(line).is_err() {
                    return;
                }
            }
        })
        .context("starting the stdin thread")?;
    Ok(rx)
}

/// Drops a trailing `\n` or `\r\n`.
fn strip_line_ending(line: &mut Vec<u8>) {
    if line.last() == Some(&b'\n') {
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_endings() {
        for (raw, want) in [
            (&b"a\n"[..], &b"a"[..]),
            (b"a\r\n", b"a"),
            (b"a", b"a"),
            (b"\n", b""),
            (b"a\r", b"a\r"),
        ] {
            let mut line = raw.to_vec();
            strip_line_ending(&mut line);
            assert_eq!(line, want);
        }
    }
}
