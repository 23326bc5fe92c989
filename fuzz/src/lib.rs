//! Drivers shared by the fuzz targets in `fuzz_targets/`.
//!
//! Every target calls ripple-proto's public API directly: bytes in, events and bytes out, no
//! sockets. The targets themselves are one-liners; the invariants live here, next to the input
//! layout they decode.

pub mod connection;
pub mod frame;
pub mod handshake;
pub mod utf8;
