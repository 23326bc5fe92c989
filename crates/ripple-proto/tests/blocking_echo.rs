//! The blocking echo example (`examples/blocking_echo.rs`), run in process on 127.0.0.1:0 and
//! spoken to with a plain `std::net::TcpStream` and frames written by hand: the core with no
//! runtime, its timers on the real clock through socket timeouts.

// Set-up failures in a test are failed tests, not a peer's doing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use ripple_proto::Config;

#[path = "../examples/blocking_echo.rs"]
#[allow(dead_code)] // the example's `main`
mod blocking_echo;

/// Starts the example's server with `config` on a free port.
fn start(config: Config) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || blocking_echo::serve(listener, config));
    addr
}

/// Connects and completes the opening handshake with RFC 6455 §1.3's sample key.
fn upgrade(addr: SocketAddr) -> TcpStream {
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    tcp.write_all(
        b"GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n\
          Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
          Sec-WebSocket-Version: 13\r\n\r\n",
    )
    .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        tcp.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    assert!(
        head.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"),
        "{head}"
    );
    tcp
}

/// A masked client frame (RFC 6455 §5.3), payload under 126 bytes.
fn masked(first: u8, payload: &[u8]) -> Vec<u8> {
    let key = [0x37, 0xfa, 0x21, 0x3d];
    let mut frame = vec![first, 0x80 | payload.len() as u8];
    frame.extend(key);
    frame.extend(payload.iter().zip(key.iter().cycle()).map(|(b, k)| b ^ k));
    frame
}

/// Reads exactly `n` bytes.
fn read_n(tcp: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    tcp.read_exact(&mut buf).unwrap();
    buf
}

/// Reads until the server closes TCP; returns what came before.
fn read_to_eof(tcp: &mut TcpStream) -> Vec<u8> {
    let mut rest = Vec::new();
    match tcp.read_to_end(&mut rest) {
        Ok(_) => rest,
        Err(err) if err.kind() == ErrorKind::ConnectionReset => rest,
        Err(err) => panic!("{err}"),
    }
}

#[test]
fn rfc6455_5_7_masked_hello_is_echoed_unmasked_then_closed() {
    let mut tcp = upgrade(start(Config::default()));
    // RFC 6455 §5.7: "A single-frame masked text message" containing "Hello".
    tcp.write_all(&[
        0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
    ])
    .unwrap();
    assert_eq!(read_n(&mut tcp, 7), b"\x81\x05Hello");
    tcp.write_all(&masked(0x89, b"are you there")).unwrap();
    assert_eq!(read_n(&mut tcp, 15), b"\x8a\x0dare you there");
    // RFC 6455 §5.5.1: the close is echoed, then the server closes TCP (§7.1.1).
    tcp.write_all(&masked(0x88, &1000u16.to_be_bytes()))
        .unwrap();
    assert_eq!(read_to_eof(&mut tcp), [0x88, 0x02, 0x03, 0xe8]);
}

#[test]
fn frames_sent_with_the_request_are_echoed() {
    let addr = start(Config::default());
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut request = b"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\
          Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
          Sec-WebSocket-Version: 13\r\n\r\n"
        .to_vec();
    request.extend(masked(0x82, &[1, 2, 3]));
    tcp.write_all(&request).unwrap();
    let mut got = Vec::new();
    while !got.ends_with(&[0x82, 0x03, 1, 2, 3]) {
        let mut byte = [0u8; 1];
        tcp.read_exact(&mut byte).unwrap();
        got.push(byte[0]);
    }
}

#[test]
fn rfc6455_4_2_1_bad_request_is_refused_with_400() {
    let mut tcp = TcpStream::connect(start(Config::default())).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let answer = String::from_utf8(read_to_eof(&mut tcp)).unwrap();
    assert!(answer.starts_with("HTTP/1.1 4"), "{answer}");
}

#[test]
fn keepalive_pings_then_closes_a_silent_client_with_1011() {
    let interval = Duration::from_millis(100);
    let config = Config::default().keepalive(Some(interval), Some(interval));
    let mut tcp = upgrade(start(config));
    let started = Instant::now();
    let ping = read_n(&mut tcp, 10);
    assert_eq!(
        ping[..2],
        [0x89, 0x08],
        "a keepalive ping, 8 bytes of payload"
    );
    assert!(started.elapsed() >= interval - Duration::from_millis(20));
    // No pong: RFC 6455 §7.4.1 1011, the reason python-websockets gives.
    let mut close = vec![0x88, 24, 0x03, 0xf3];
    close.extend(b"keepalive ping timeout");
    assert_eq!(read_to_eof(&mut tcp), close);
    assert!(started.elapsed() >= 2 * interval - Duration::from_millis(20));
}

#[test]
fn rfc6455_5_5_3_answered_keepalive_pings_keep_the_connection_open() {
    let interval = Duration::from_millis(50);
    let config = Config::default().keepalive(Some(interval), Some(interval));
    let mut tcp = upgrade(start(config));
    for _ in 0..4 {
        let ping = read_n(&mut tcp, 10);
        assert_eq!(ping[..2], [0x89, 0x08]);
        tcp.write_all(&masked(0x8a, &ping[2..])).unwrap();
    }
    tcp.write_all(&masked(0x81, b"still here")).unwrap();
    let mut got = Vec::new();
    while !got.ends_with(b"\x81\x0astill here") {
        got.extend(read_n(&mut tcp, 1));
        assert!(got.len() < 100, "{got:?}");
    }
}
