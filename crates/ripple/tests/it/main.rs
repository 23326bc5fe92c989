//! Integration tests of the tokio layer: real sockets on 127.0.0.1:0, servers in process.

// Test support code may panic on set-up failures: that is a failed test, not a peer's doing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod backpressure;
mod close;
mod echo;
mod handshake;
mod keepalive;
mod limits;
mod shutdown;
mod support;
#[cfg(feature = "tls")]
mod tls;
#[cfg(feature = "hyper")]
mod upgrade;
