//! Integration tests of the `ripple` binary: it runs as a child process against Ripple servers
//! started in this process on 127.0.0.1:0.

// Test support code may panic on set-up failures: that is a failed test, not a peer's doing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod bench;
mod pipe;
mod support;
