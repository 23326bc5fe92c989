//! Ripple's WebSocket protocol core: RFC 6455 (and the RFC 7692 extension point), sans-I/O.
//!
//! Nothing here touches a socket, a runtime or the clock. Bytes from the network go in, events and
//! bytes for the network come out; whoever owns the socket drives the loop:
//!
//! ```text
//!            receive(&[u8]) / read_buffer()            poll_event()
//!  network ─────────────────────────────▶ Connection ───────────────▶ application
//!          ◀───────────────────────────── ─────────── ◀───────────────
//!            poll_transmit()                           send_text(), send_binary(), send_close()…
//! ```
//!
//! Methods come in three kinds, named for the way data flows:
//! - `receive_*` feed network input (`receive`, `receive_eof`);
//! - `send_*` queue application commands (`send_text`, `send_ping`, `send_close`, …);
//! - `poll_*` drain output (`poll_event` for the application, `poll_transmit` for the network);
//!   `poll_timeout` says when the connection next needs `handle_timeout(now)`, the one call that
//!   brings the time in.
//!
//! After every call that feeds input, drain `poll_transmit`: the connection answers pings and close
//! frames, and fails on bad input, by itself.
//!
//! A pong is owed, not queued: the connection holds at most one, for the most recent ping, and
//! `poll_transmit` hands it out at the next frame boundary, ahead of frames queued earlier (RFC 6455
//! §5.5.3 allows answering only the latest ping). Drain after each `Event::Ping` to answer every
//! ping; a peer that pings faster than the output is drained gets a pong for its latest ping
//! only, and its pings never grow the output.
//!
//! Time comes in as an argument, as in quinn-proto's `handle_timeout(now)`: the core never calls
//! `Instant::now()`. A connection is made with the time it opened (`Connection::new(role, config, now)`);
//! [`Connection::poll_timeout`] says when it next needs [`Connection::handle_timeout`]`(now)`,
//! which sends keepalive pings, fails the connection with 1011 when one goes unanswered, and gives
//! up on a closing handshake that takes longer than `Config::close_timeout`. The caller picks the
//! clock (`std::time::Instant::now()`, or a runtime's, which tests can pause), so the core runs
//! the same under tokio, under blocking I/O (`examples/blocking_echo.rs`) and in tests that move
//! time by hand.
//!
//! An incoming message is limited in bytes (`Config::max_message_size`) and in frames
//! (`Config::max_message_frames`, 131,072 by default); past either limit the connection fails with
//! 1009, so a peer cannot keep a message open forever with empty continuation frames.
//!
//! A peer that breaks the protocol never makes a method return `Err`: the connection records the
//! failure ([`Connection::failure`]), queues a close frame with the code RFC 6455 prescribes (1002,
//! 1007, 1009) and discards any further input.

pub mod close;
pub mod config;
pub mod connection;
pub mod error;
pub mod extension;
pub mod frame;
pub mod handshake;
pub mod mask;
pub mod message;
pub mod prepared;
pub mod utf8;

pub use close::{CloseCode, CloseFrame};
pub use config::Config;
pub use connection::{Connection, Event, Role, State, Timeout};
pub use error::{ProtocolError, SendError};
pub use extension::Extension;
pub use frame::{FrameHeader, OpCode};
pub use message::{Message, Utf8Bytes};
pub use prepared::PreparedMessage;
