//! Ripple: WebSocket client and server on tokio.
//!
//! The protocol itself — framing, masking, UTF-8, close rules, the opening handshake, the
//! keepalive and close timers — lives in the sans-I/O core, re-exported here as [`proto`]. This
//! crate adds sockets, TLS, the clock the core's timers run on (tokio's), handshake timeouts and
//! backpressure.
//!
//! ```no_run
//! # async fn run() -> ripple::Result<()> {
//! // A server: echo every message.
//! tokio::spawn(ripple::serve("127.0.0.1:8765", |mut ws: ripple::WebSocket| async move {
//!     while let Ok(Some(message)) = ws.recv().await {
//!         let _ = ws.send(message).await;
//!     }
//! }));
//!
//! // A client.
//! let mut ws = ripple::connect("ws://127.0.0.1:8765").await?;
//! ws.send("hello").await?;
//! assert_eq!(ws.recv().await?, Some("hello".into()));
//! ws.close(ripple::CloseCode::NORMAL, "").await?;
//! # Ok(()) }
//! ```

pub use proto;
pub use proto::extension::deflate::DeflateConfig;
pub use proto::handshake::server::{Accept, Request};
pub use proto::{CloseCode, CloseFrame, Message, OpCode, PreparedMessage, Utf8Bytes};

mod client;
mod clock;
mod config;
mod error;
mod handshake;
mod server;
mod socket;
mod stream;
#[cfg(feature = "tls")]
pub mod tls;
#[cfg(feature = "hyper")]
pub mod upgrade;
mod wake;
mod websocket;

pub use client::{ClientBuilder, connect};
pub use config::Config;
pub use error::{Error, Result};
pub use handshake::HandshakeInfo;
pub use server::{Acceptor, Reject, Server, accept, serve};
pub use stream::MaybeTlsStream;
pub use websocket::{Reader, WebSocket, Writer};
