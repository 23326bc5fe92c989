//! The keepalive and close timers, driven by the caller's clock.
//!
//! The connection reads no clock: time comes in as an argument, when the connection is made
//! ([`Connection::new`]) and when a timer is due ([`Connection::handle_timeout`]), and
//! [`Connection::poll_timeout`] says when that is. One loop drives it, whatever the runtime:
//!
//! ```text
//!   wait for input, at most until poll_timeout()
//!     input arrived   → receive(), poll_event()…
//!     time is up      → handle_timeout(now)
//!   then drain poll_transmit()
//! ```
//!
//! - **Keepalive** (while `Open`): a ping every `Config::ping_interval`, its payload chosen here;
//!   when one has had no pong for `Config::ping_timeout`, the connection fails with 1011
//!   "keepalive ping timeout" (python-websockets' behaviour). Only a pong answers a ping: other
//!   data from the peer does not.
//! - **Close** (from leaving `Open` on): after `Config::close_timeout` the connection gives up —
//!   on the peer's close frame if it was still waited for (reported by [`Connection::timed_out`]),
//!   on a client's wait for the server to end TCP, on output not flushed yet — and says so with
//!   [`Connection::close_expired`]: drop the transport.

use std::collections::VecDeque;
use std::time::Instant;

use bytes::{Bytes, BytesMut};

use super::{Connection, State};
use crate::close::{CloseCode, CloseFrame};
use crate::frame::OpCode;

/// A timer that ran out and made this end give up on the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Timeout {
    /// A keepalive ping had no pong within `Config::ping_timeout`; the connection failed with
    /// 1011 "keepalive ping timeout".
    Keepalive,
    /// The peer did not answer this end's close frame within `Config::close_timeout`; the
    /// closing handshake was abandoned.
    Close,
}

/// The most keepalive pings tracked while unanswered. With the defaults there are never more than
/// two (a ping every 20 s, each given 20 s); past this many, the next ones are not sent: the peer
/// owes pongs enough, and the bookkeeping stays bounded whatever the settings.
const MAX_UNANSWERED: usize = 16;

impl Connection {
    /// The next moment this connection needs [`Connection::handle_timeout`], by the clock the
    /// caller passes in; `None` while no timer runs.
    ///
    /// Ask again after every call: input, commands and `handle_timeout` all move it. The moment
    /// may be in the past; then call `handle_timeout` at once. That is how a timer started without
    /// a time learns one: input and commands carry no time, so the close timer that `send_close`,
    /// the peer's close or a failure start is due at the latest time the connection knows until
    /// `handle_timeout` tells it the current one.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.timers.close {
            CloseTimer::Open => self.next_keepalive(),
            CloseTimer::Starting => Some(self.timers.now),
            CloseTimer::At(deadline) => deadline,
            CloseTimer::Expired => None,
        }
    }

    /// Acts on the timers due at `now`: sends a keepalive ping (queued, like any output: drain
    /// [`Connection::poll_transmit`] afterwards), fails the connection when a keepalive ping went
    /// unanswered for too long, and gives up on a closing handshake past its deadline.
    ///
    /// `now` comes from the caller's clock — `std::time::Instant::now()`, or a runtime's clock
    /// converted to it (tokio's, which tests can pause) — and should not go backwards; an earlier
    /// `now` than one already seen counts as the later one. The connection never reads the clock
    /// itself. Calling this before anything is due is harmless. The pong to a keepalive ping is
    /// reported as [`Event::Pong`](crate::Event::Pong), like any other.
    pub fn handle_timeout(&mut self, now: Instant) {
        let now = self.timers.now.max(now);
        self.timers.now = now;
        if self.state == State::Open {
            self.handle_keepalive(now);
        }
        if self.timers.close == CloseTimer::Starting {
            self.timers.close = CloseTimer::At(now.checked_add(self.config.close_timeout));
        }
        if let CloseTimer::At(Some(deadline)) = self.timers.close
            && now >= deadline
        {
            self.expire_close();
        }
    }

    /// Which timer made this end give up on the connection, if one did.
    pub fn timed_out(&self) -> Option<Timeout> {
        self.timers.timed_out
    }

    /// Whether the close timeout ran out: the connection is over, queued output was dropped,
    /// and the transport should be dropped too, without waiting for a flush or for the peer.
    pub fn close_expired(&self) -> bool {
        self.timers.close == CloseTimer::Expired
    }

    /// When the keepalive next needs attention: the next ping, or giving up on the oldest.
    fn next_keepalive(&self) -> Option<Instant> {
        let interval = self.config.ping_interval?;
        let next_ping = self.timers.keepalive.last_ping.checked_add(interval);
        match (next_ping, self.keepalive_deadline()) {
            (Some(ping), Some(give_up)) => Some(ping.min(give_up)),
            (ping, give_up) => ping.or(give_up),
        }
    }

    /// When the oldest unanswered keepalive ping runs out of time.
    fn keepalive_deadline(&self) -> Option<Instant> {
        let timeout = self.config.ping_timeout?;
        let &(_, sent) = self.timers.keepalive.unanswered.front()?;
        sent.checked_add(timeout)
    }

    fn handle_keepalive(&mut self, now: Instant) {
        let Some(interval) = self.config.ping_interval else {
            return;
        };
        if self
            .keepalive_deadline()
            .is_some_and(|give_up| now >= give_up)
        {
            // python-websockets' behaviour: fail with 1011 when the pong does not come in time.
            self.timers.timed_out = Some(Timeout::Keepalive);
            self.send_failure(CloseFrame::new(
                CloseCode::INTERNAL_ERROR,
                "keepalive ping timeout",
            ));
            return;
        }
        let keepalive = &mut self.timers.keepalive;
        if keepalive
            .last_ping
            .checked_add(interval)
            .is_none_or(|due| now < due)
        {
            return;
        }
        keepalive.last_ping = now;
        let tracked = self.config.ping_timeout.is_some();
        if tracked && keepalive.unanswered.len() >= MAX_UNANSWERED {
            return;
        }
        keepalive.sent += 1;
        let number = keepalive.sent;
        if tracked {
            keepalive.unanswered.push_back((number, now));
        }
        // RFC 6455 §5.5.2: "A Ping frame MAY include 'Application data'." Ours is the ping's
        // number, 8 bytes, so that its pong says which ping it answers.
        self.queue_frame(OpCode::Ping, true, 0, &number.to_be_bytes());
    }

    /// The close timer ran out: stop waiting for anything, drop what is still queued.
    fn expire_close(&mut self) {
        if self.state == State::Closing {
            self.timers.timed_out.get_or_insert(Timeout::Close);
        }
        self.timers.close = CloseTimer::Expired;
        self.state = State::Closed;
        self.frame = None;
        self.incoming = None;
        self.read = BytesMut::new();
        self.pending = BytesMut::new();
        self.out.clear();
        self.out_len = 0;
        self.owed_pong = None;
    }
}

/// The timers' state, kept by the [`Connection`].
#[derive(Debug)]
pub(super) struct Timers {
    /// The latest time the caller passed in.
    now: Instant,
    keepalive: Keepalive,
    close: CloseTimer,
    timed_out: Option<Timeout>,
}

/// Keepalive pings sent and not answered yet.
#[derive(Debug)]
struct Keepalive {
    /// When the last keepalive ping was due (at first, when the connection opened).
    last_ping: Instant,
    /// Keepalive pings sent; the n-th carries n as its payload (8 bytes, big-endian).
    sent: u64,
    /// Unanswered keepalive pings, oldest first: (number, when sent). Kept only with a ping
    /// timeout, at most [`MAX_UNANSWERED`].
    unanswered: VecDeque<(u64, Instant)>,
    /// The application's latest ping sent while keepalive pings were unanswered, with the number
    /// of keepalive pings sent before it: its pong answers those too.
    application_ping: Option<(Bytes, u64)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CloseTimer {
    /// The connection is open; the keepalive runs instead.
    Open,
    /// The connection stopped being open, by input or a command: no time was known then, so the
    /// deadline is set at the next `handle_timeout`.
    Starting,
    /// Give up at this moment (`None`: the timeout is too long to ever run out).
    At(Option<Instant>),
    /// It ran out.
    Expired,
}

impl Timers {
    pub(super) fn new(now: Instant) -> Self {
        Self {
            now,
            keepalive: Keepalive {
                last_ping: now,
                sent: 0,
                unanswered: VecDeque::new(),
                application_ping: None,
            },
            close: CloseTimer::Open,
            timed_out: None,
        }
    }

    /// The connection left `Open`.
    pub(super) fn start_close(&mut self) {
        if self.close == CloseTimer::Open {
            self.close = CloseTimer::Starting;
        }
    }

    /// The application sent a ping of its own.
    pub(super) fn application_ping_sent(&mut self, payload: &[u8]) {
        let keepalive = &mut self.keepalive;
        keepalive.application_ping = (!keepalive.unanswered.is_empty())
            .then(|| (Bytes::copy_from_slice(payload), keepalive.sent));
    }

    /// A pong arrived. RFC 6455 §5.5.3: "If an endpoint receives a Ping frame and has not yet
    /// sent Pong frame(s) in response to previous Ping frame(s), the endpoint MAY elect to send a
    /// Pong frame for only the most recently processed Ping frame." So a pong answers its ping
    /// and every one sent before it. A pong that answers no ping of ours (unsolicited, or for a
    /// ping we no longer track) answers nothing.
    pub(super) fn receive_pong(&mut self, payload: &[u8]) {
        let keepalive = &mut self.keepalive;
        let number = <[u8; 8]>::try_from(payload)
            .map(u64::from_be_bytes)
            .ok()
            .filter(|&n| n >= 1 && n <= keepalive.sent);
        let answered = match (number, &keepalive.application_ping) {
            (Some(n), _) => n,
            (None, Some((ping, before))) if ping[..] == *payload => *before,
            (None, _) => return,
        };
        while keepalive
            .unanswered
            .front()
            .is_some_and(|&(n, _)| n <= answered)
        {
            keepalive.unanswered.pop_front();
        }
    }
}
