//! Run with: cargo run -p ripple-proto --example blocking_echo [port]   (default 9001)
//!
//! An echo server on `std::net` alone: one thread per connection, blocking reads and writes, the
//! core's keepalive and close timers driven through `set_read_timeout`/`set_write_timeout`. No
//! runtime, no async: the proof that the core needs none. `tests/blocking_echo.rs` talks to it.
//!
//! Each connection runs one loop:
//!
//! ```text
//!   timer due?          → handle_timeout(now)
//!   poll_event()        → echo each message with send()
//!   poll_transmit()     → blocking writes, each bounded by the next timeout
//!   closed?             → shut the socket down (or drop it, once the close timer ran out)
//!   read, bounded by poll_timeout() → receive() / receive_eof(); a timed-out read goes round again
//! ```

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use ripple_proto::handshake::server::{self, Accept};
use ripple_proto::handshake::{HandshakeError, Limits};
use ripple_proto::{Config, Connection, Event, Role};

/// Time allowed for the opening handshake.
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);

fn main() -> io::Result<()> {
    let port = match std::env::args().nth(1) {
        Some(port) => port.parse().map_err(io::Error::other)?,
        None => 9001,
    };
    let listener = TcpListener::bind(("127.0.0.1", port))?;
    println!("echoing on ws://{}", listener.local_addr()?);
    serve(listener, Config::default())
}

/// Accepts connections until the listener fails, one thread each.
pub(crate) fn serve(listener: TcpListener, config: Config) -> io::Result<()> {
    loop {
        let (stream, peer) = listener.accept()?;
        let config = config.clone();
        thread::spawn(move || {
            if let Err(err) = handle(stream, config) {
                eprintln!("{peer}: {err}");
            }
        });
    }
}

/// One connection: the opening handshake, then echo until it closes.
pub(crate) fn handle(mut stream: TcpStream, config: Config) -> io::Result<()> {
    let Some(early) = handshake(&mut stream)? else {
        return Ok(());
    };
    let mut conn = Connection::new(Role::Server, config, Instant::now());
    // Frames the client sent right behind its request.
    conn.receive(&early);
    echo(&mut stream, &mut conn)
}

/// Reads the request head and answers it (RFC 6455 §4.2). `None` when the request was refused
/// (the error response is written) or the client left; otherwise the bytes read past the head.
fn handshake(stream: &mut TcpStream) -> io::Result<Option<Vec<u8>>> {
    stream.set_read_timeout(Some(OPEN_TIMEOUT))?;
    let limits = Limits::default();
    let mut buf = Vec::new();
    let parsed = loop {
        match server::parse_request(&buf, &limits) {
            Ok(Some(parsed)) => break Ok(parsed),
            Ok(None) => {}
            Err(err) => break Err(err),
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let (request, len) = match parsed {
        Ok(parsed) => parsed,
        Err(err) => return refuse(stream, &err),
    };
    let valid = match request.validate() {
        Ok(valid) => valid,
        Err(err) => return refuse(stream, &err),
    };
    let response = server::accept_response(&valid, &Accept::default()).map_err(io::Error::other)?;
    stream.write_all(&response)?;
    Ok(Some(buf.split_off(len)))
}

/// Answers a request that is not a valid opening handshake with its HTTP error.
fn refuse(stream: &mut TcpStream, err: &HandshakeError) -> io::Result<Option<Vec<u8>>> {
    stream.write_all(&server::error_response(err))?;
    Ok(None)
}

/// The connection's loop: events, output, then input or the next timeout, whichever comes first.
fn echo(stream: &mut TcpStream, conn: &mut Connection) -> io::Result<()> {
    let mut unsent = Bytes::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if conn.poll_timeout().is_some_and(|due| due <= Instant::now()) {
            conn.handle_timeout(Instant::now());
        }
        while let Some(event) = conn.poll_event() {
            if let Event::Message(message) = event {
                // Fails only once the connection is closing: then there is nobody to echo to.
                let _ = conn.send(message);
            }
        }
        write_out(stream, conn, &mut unsent)?;
        if conn.close_expired() {
            // The close timer ran out: drop the socket without waiting any longer.
            return Ok(());
        }
        if unsent.is_empty() && conn.should_close_transport() {
            // RFC 6455 §7.1.1: the server closes the TCP connection first.
            let _ = stream.shutdown(Shutdown::Both);
            return Ok(());
        }
        if !unsent.is_empty() {
            continue;
        }
        stream.set_read_timeout(time_left(conn))?;
        match stream.read(&mut buf) {
            Ok(0) => conn.receive_eof(),
            Ok(n) => conn.receive(&buf[..n]),
            Err(err) if timed_out(&err) => {}
            Err(err) => return Err(err),
        }
    }
}

/// Writes the connection's output until it is all written or the next timeout comes; what a
/// timed-out write left over stays in `unsent` for the next round.
fn write_out(stream: &mut TcpStream, conn: &mut Connection, unsent: &mut Bytes) -> io::Result<()> {
    loop {
        if unsent.is_empty() {
            let Some(chunk) = conn.poll_transmit() else {
                return Ok(());
            };
            *unsent = chunk;
        }
        stream.set_write_timeout(time_left(conn))?;
        match stream.write(unsent) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => unsent.advance(n),
            Err(err) if timed_out(&err) => return Ok(()),
            Err(err) => return Err(err),
        }
    }
}

/// How long a blocking call may wait before the connection needs `handle_timeout`; `None`
/// waits for ever. At least a millisecond: a zero timeout is an error to `set_read_timeout`.
fn time_left(conn: &Connection) -> Option<Duration> {
    let due = conn.poll_timeout()?;
    Some(
        due.saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1)),
    )
}

/// A read or write that ran into its timeout (`WouldBlock` on Unix, `TimedOut` on Windows).
fn timed_out(err: &io::Error) -> bool {
    matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}
