//! Integration tests of the tokio layer: real sockets on 127.0.0.1:0, servers in process.

mod backpressure;
mod close;
mod echo;
mod handshake;
mod keepalive;
mod limits;
mod shutdown;
mod support;
mod tls;
