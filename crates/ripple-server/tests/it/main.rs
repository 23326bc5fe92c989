//! Integration tests of `ripple-server`, driven as clients drive it: real sockets on
//! 127.0.0.1:0, the server started in process with `run_with_state` (see `support`).
//! One module per area of issue 5.

// Test support code may panic on set-up failures: that is a failed test, not a peer's doing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod broker;
mod channels;
mod deadlines;
mod endpoints;
mod errors;
mod heartbeat;
mod hostile_data;
mod http;
mod jwt;
mod limits;
mod longpoll;
mod recovery;
mod redis_cluster;
mod redis_faults;
mod redis_support;
mod replay;
mod rpc;
mod shutdown;
mod slow_consumer;
mod sse;
mod sse_support;
mod support;
