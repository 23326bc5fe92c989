//! Echo servers for side-by-side benchmarks (`scripts/bench-compare.sh`).
//!
//! Every binary takes the listen address as its first argument (default `127.0.0.1:0`), prints
//! `listening on ws://ADDR` once it accepts connections, and echoes every message (text as
//! text, binary as binary) with a 64 MiB message limit and no keepalive. All three run on
//! tokio's current-thread runtime, so that server CPU time per message compares like for like.

use std::net::SocketAddr;

/// The message limit of every peer: 64 MiB.
pub const MAX_MESSAGE: usize = 64 << 20;

/// The listen address from the command line.
pub fn listen_addr() -> String {
    std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".into())
}

/// Tells the benchmark script the server is ready.
pub fn announce(name: &str, addr: SocketAddr) {
    println!("{name}: listening on ws://{addr}");
}
