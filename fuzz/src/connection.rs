//! A [`Connection`] driven by a fuzzer-chosen script of network input and application commands.
//!
//! Input layout:
//!
//! ```text
//!  [config] [op count N] [op 1: kind, arg] … [op N: kind, arg] [wire bytes …]
//! ```
//!
//! `config` picks the limits (see [`config`]). Each op is two bytes: `kind & 0x0f` picks what to
//! do (feed the next `arg` wire bytes, call a `send_*` method, end of file, …), `kind & 0x80`
//! defers draining `poll_transmit` after a command. Wire bytes the ops did not consume are fed in
//! one last piece. So a seed `[0, 0, frame bytes…]` is "default limits, the frames in one read".
//!
//! After every op (unless deferred) the driver drains `poll_event` and `poll_transmit` and
//! checks:
//! - nothing panics (libFuzzer reports any panic, including `debug_assert!` in the core);
//! - the state only moves forward: Open → Closing → Closed (Open → Closed directly is allowed);
//! - once `failure()` is `Some`, `poll_event` returns `None`, and the output queued by the call
//!   that failed is exactly one close frame, with the failure's close code (none if this end had
//!   already sent its close), and nothing is queued after that;
//! - after the peer's close (`Event::Close`) `poll_event` returns `None`;
//! - `send_*` succeed or fail exactly as the state and arguments say they should;
//! - `buffered_amount()` is 0 once `poll_transmit` returned `None`;
//! - text messages are UTF-8, no message exceeds `max_message_size`, control payloads ≤ 125;
//! - everything the connection writes is accepted by a peer [`Connection`] of the other role,
//!   which receives exactly the data messages that were sent, in order, and the close frame
//!   recorded by `close_sent()`.

use std::time::Instant;

use bytes::Bytes;
use ripple_proto::error::ProtocolError;
use ripple_proto::{
    CloseCode, CloseFrame, Config, Connection, Event, FrameHeader, Message, OpCode,
    PreparedMessage, Role, SendError, State,
};

/// Runs one fuzz input against a connection of `role`.
pub fn run(role: Role, data: &[u8]) {
    let Some((&[cfg, op_count], rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let ops_len = (usize::from(op_count) * 2).min(rest.len() / 2 * 2);
    let (ops, mut wire) = rest.split_at(ops_len);
    let mut driver = Driver::new(role, config(cfg));
    for op in ops.chunks_exact(2) {
        driver.step(op[0], op[1], &mut wire);
    }
    driver.receive(wire);
    driver.pump();
    driver.finish();
}

/// The limits a config byte selects, small ones included so that 1009 paths are reachable.
pub fn config(cfg: u8) -> Config {
    let config = Config::default().mask_seed(u64::from(cfg));
    match cfg % 5 {
        0 => config,
        1 => config.max_message_size(0),
        2 => config.max_message_size(125),
        3 => config.max_message_size(1000),
        _ => config.max_frame_size(64),
    }
}

/// The connection under test, the peer that reads its output, and what both should have seen.
struct Driver {
    role: Role,
    conn: Connection,
    peer: Connection,
    state: State,
    peer_closed: bool,
    /// The data messages `send_*` accepted, in order: what `peer` must receive.
    sent: Vec<Message>,
    /// The fragmented message being sent: (text, payload so far).
    fragment: Option<(bool, Vec<u8>)>,
    /// The data messages `peer` received.
    peer_received: Vec<Message>,
}

impl Driver {
    fn new(role: Role, config: Config) -> Self {
        let peer_role = match role {
            Role::Server => Role::Client,
            Role::Client => Role::Server,
        };
        let peer_config = Config::default().max_message_size(usize::MAX).mask_seed(1);
        // The timers never run here (no `handle_timeout`), so the time is only an origin.
        let now = Instant::now();
        Self {
            role,
            conn: Connection::new(role, config, now),
            peer: Connection::new(peer_role, peer_config, now),
            state: State::Open,
            peer_closed: false,
            sent: Vec::new(),
            fragment: None,
            peer_received: Vec::new(),
        }
    }

    fn step(&mut self, kind: u8, arg: u8, wire: &mut &[u8]) {
        let len = usize::from(arg);
        match kind & 0x0f {
            0..=3 => self.receive(take(wire, len)),
            4 => {
                let piece = take(wire, len);
                self.conn.read_buffer().extend_from_slice(piece);
            }
            5 => {
                let text = text(len);
                let result = self.conn.send_text(&text);
                self.check_data_send(result, Message::from(text));
            }
            6 => {
                let data = binary(len);
                let result = self.conn.send_binary(&data);
                self.check_data_send(result, Message::from(data));
            }
            7 => {
                // Large enough (≥ 16 KiB) to take the server's zero-copy path.
                let message = Message::Binary(Bytes::from(binary(len * 256)));
                let result = self.conn.send(message.clone());
                self.check_data_send(result, message);
            }
            8 if arg < 128 => {
                let message = Message::from(text(len));
                let result = self.conn.send(message.clone());
                self.check_data_send(result, message);
            }
            8 => {
                // Framed once, as for a broadcast; no extension, so the plain frame.
                let message = Message::from(text(len - 128));
                let prepared = PreparedMessage::new(message.clone(), None);
                let result = self.conn.send_prepared(&prepared);
                self.check_data_send(result, message);
            }
            9 | 10 => {
                let payload = binary(len % 160);
                let result = if kind & 1 == 1 {
                    self.conn.send_ping(&payload)
                } else {
                    self.conn.send_pong(&payload)
                };
                let expected = match () {
                    () if self.state != State::Open => Err(SendError::Closed),
                    () if payload.len() > 125 => Err(SendError::ControlTooLong(payload.len())),
                    () => Ok(()),
                };
                assert_eq!(result, expected, "send_ping/send_pong");
            }
            11 => self.send_close(arg),
            12 => self.send_fragment(arg),
            13 if arg < 16 => {
                self.conn
                    .send_failure(CloseFrame::new(CloseCode::GOING_AWAY, "gone"));
                assert_eq!(self.conn.state(), State::Closed, "send_failure");
            }
            14 if arg < 16 => {
                self.conn.receive_eof();
                assert_eq!(self.conn.state(), State::Closed, "receive_eof");
            }
            13 | 14 => self.conn.release_buffers(),
            _ => self.receive(take(wire, len * 16)),
        }
        self.check_state();
        if kind & 0x80 == 0 || kind & 0x0f <= 4 || kind & 0x0f == 15 {
            self.pump();
        }
    }

    fn receive(&mut self, piece: &[u8]) {
        self.conn.receive(piece);
        self.pump();
    }

    /// Drains `poll_event` and `poll_transmit` until both are empty, checking each event and
    /// what each `poll_event` call queued.
    fn pump(&mut self) {
        loop {
            let failed_before = self.conn.failure().is_some();
            let state_before = self.conn.state();
            let queued_before = self.conn.buffered_amount();
            let event = self.conn.poll_event();
            let out = self.transmit();
            self.check_state();
            assert!(
                out.len() >= queued_before,
                "poll_transmit lost queued bytes"
            );
            if failed_before || self.peer_closed {
                assert!(event.is_none(), "event after failure or close: {event:?}");
                assert_eq!(out.len(), queued_before, "output after failure or close");
            } else if let Some(err) = self.conn.failure().cloned() {
                assert!(event.is_none(), "event with failure: {event:?}");
                self.check_failure_output(&out[queued_before..], state_before, &err);
            }
            let Some(event) = event else {
                break;
            };
            self.check_event(event);
        }
    }

    /// Takes everything `poll_transmit` has, feeds it to the peer and returns it.
    fn transmit(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(chunk) = self.conn.poll_transmit() {
            assert!(!chunk.is_empty(), "poll_transmit returned an empty chunk");
            out.extend_from_slice(&chunk);
        }
        assert_eq!(
            self.conn.buffered_amount(),
            0,
            "buffered_amount after draining"
        );
        if !out.is_empty() {
            self.peer.receive(&out);
            self.drain_peer();
        }
        out
    }

    fn drain_peer(&mut self) {
        while let Some(event) = self.peer.poll_event() {
            if let Event::Message(message) = event {
                self.peer_received.push(message);
            }
        }
        while self.peer.poll_transmit().is_some() {}
        if let Some(err) = self.peer.failure() {
            panic!("the peer rejected what the connection wrote: {err}");
        }
    }

    fn check_state(&mut self) {
        let state = self.conn.state();
        assert!(
            rank(state) >= rank(self.state),
            "state went back from {:?} to {state:?}",
            self.state
        );
        self.state = state;
        assert_eq!(
            self.conn.close_code().is_some(),
            state == State::Closed,
            "close_code() outside Closed"
        );
        let _ = self.conn.should_close_transport();
        let _ = self.conn.read_hint();
    }

    fn check_event(&mut self, event: Event) {
        match event {
            Event::Message(message) => {
                assert!(message.len() <= self.conn.config().max_message_size);
                if message.is_text() {
                    assert!(std::str::from_utf8(message.as_bytes()).is_ok());
                }
            }
            Event::Ping(payload) | Event::Pong(payload) => assert!(payload.len() <= 125),
            Event::Close(frame) => {
                assert_eq!(self.conn.state(), State::Closed, "state after Event::Close");
                assert_eq!(self.conn.close_received(), Some(&frame));
                assert!(frame.code == CloseCode::NO_STATUS || frame.code.is_sendable());
                self.peer_closed = true;
            }
        }
    }

    /// The output of the `poll_event` call that failed the connection: one close frame with the
    /// failure's code, or nothing if this end had already sent its close.
    fn check_failure_output(&self, out: &[u8], state_before: State, err: &ProtocolError) {
        assert_eq!(self.conn.state(), State::Closed, "state after failure");
        if state_before != State::Open {
            assert!(out.is_empty(), "output after failing in {state_before:?}");
            return;
        }
        let Ok(Some((header, header_len))) = FrameHeader::parse(out) else {
            panic!("failure output is not a frame: {out:x?}");
        };
        assert_eq!(header.opcode, OpCode::Close);
        assert!(header.fin && header.rsv == 0);
        assert_eq!(header.mask.is_some(), self.role == Role::Client);
        assert_eq!(
            header_len as u64 + header.payload_len,
            out.len() as u64,
            "more than one close frame after failure"
        );
        let mut payload = out[header_len..].to_vec();
        if let Some(key) = header.mask {
            ripple_proto::mask::apply_mask(&mut payload, key, 0);
        }
        let frame = CloseFrame::decode(&payload).expect("our own close frame decodes");
        assert_eq!(frame.code, err.close_code());
        assert_eq!(self.conn.close_sent(), Some(&frame));
    }

    fn check_data_send(&mut self, result: Result<(), SendError>, message: Message) {
        let expected = match () {
            () if self.state != State::Open => Err(SendError::Closed),
            () if self.fragment.is_some() => Err(SendError::FragmentOutOfSequence),
            () => Ok(()),
        };
        assert_eq!(result, expected, "send of a data message");
        if result.is_ok() {
            self.sent.push(message);
        }
    }

    fn send_close(&mut self, arg: u8) {
        const CODES: [u16; 10] = [1000, 1001, 1005, 1006, 999, 3000, 4999, 5000, 1015, 1012];
        let frame = match arg % 11 {
            10 => None,
            i => Some(CloseFrame::new(
                CloseCode(CODES[usize::from(i)]),
                text(usize::from(arg / 2)),
            )),
        };
        let result = self.conn.send_close(frame.clone());
        let expected = match &frame {
            _ if self.state != State::Open => Err(SendError::Closed),
            Some(f) if f.code != CloseCode::NO_STATUS && !f.code.is_sendable() => {
                Err(SendError::InvalidCloseCode(f.code.0))
            }
            // RFC 6455 §5.5.1: a reason may only follow a status code.
            Some(f) if f.code == CloseCode::NO_STATUS && !f.reason.is_empty() => {
                Err(SendError::ReasonWithoutCode)
            }
            Some(f) if f.reason.len() > 123 => Err(SendError::ReasonTooLong(f.reason.len())),
            _ => Ok(()),
        };
        assert_eq!(result, expected, "send_close({frame:?})");
        if result.is_ok() {
            assert_eq!(self.conn.state(), State::Closing);
        }
    }

    fn send_fragment(&mut self, arg: u8) {
        let opcode = [
            OpCode::Text,
            OpCode::Binary,
            OpCode::Continuation,
            OpCode::Ping,
        ][usize::from(arg & 3)];
        let fin = arg & 4 != 0;
        let len = usize::from(arg >> 3);
        // Fragments of a text message are whole characters, so the message is UTF-8.
        let text_message = match (opcode, &self.fragment) {
            (OpCode::Continuation, Some((text, _))) => *text,
            _ => opcode == OpCode::Text,
        };
        let payload = if text_message {
            text(len).into_bytes()
        } else {
            binary(len)
        };
        let result = self.conn.send_fragment(opcode, &payload, fin);
        let in_sequence = match opcode {
            OpCode::Text | OpCode::Binary => self.fragment.is_none(),
            OpCode::Continuation => self.fragment.is_some(),
            _ => false,
        };
        let expected = match () {
            () if self.state != State::Open => Err(SendError::Closed),
            () if !in_sequence => Err(SendError::FragmentOutOfSequence),
            () => Ok(()),
        };
        assert_eq!(result, expected, "send_fragment({opcode:?}, fin {fin})");
        if result.is_err() {
            return;
        }
        let (text, mut buf) = self.fragment.take().unwrap_or((text_message, Vec::new()));
        buf.extend_from_slice(&payload);
        if !fin {
            self.fragment = Some((text, buf));
            return;
        }
        self.sent.push(if text {
            Message::from(String::from_utf8(buf).expect("fragments are whole characters"))
        } else {
            Message::from(buf)
        });
    }

    /// Everything written reached the peer: it saw the same messages and the same close.
    fn finish(&mut self) {
        self.pump();
        assert_eq!(self.conn.buffered_amount(), 0);
        assert_eq!(self.peer_received, self.sent, "messages the peer received");
        let Some(sent) = self.conn.close_sent() else {
            return;
        };
        let Some(received) = self.peer.close_received() else {
            panic!("close frame {sent:?} was recorded as sent but the peer never got it");
        };
        assert_eq!(received.code, sent.code, "close code the peer received");
        // A `NO_STATUS` close has an empty payload: a reason given with it is not sent.
        if sent.code != CloseCode::NO_STATUS {
            assert_eq!(
                received.reason, sent.reason,
                "close reason the peer received"
            );
        }
    }
}

fn rank(state: State) -> u8 {
    match state {
        State::Open => 0,
        State::Closing => 1,
        State::Closed => 2,
    }
}

/// Splits off the next `len` wire bytes (fewer at the end).
fn take<'a>(wire: &mut &'a [u8], len: usize) -> &'a [u8] {
    let (piece, rest) = wire.split_at(len.min(wire.len()));
    *wire = rest;
    piece
}

/// At most `len` bytes of text mixing 1- to 4-byte characters.
fn text(len: usize) -> String {
    let mut text = String::with_capacity(len);
    for c in ['r', 'κ', '€', '𝄞', ' '].into_iter().cycle() {
        if text.len() + c.len_utf8() > len {
            break;
        }
        text.push(c);
    }
    text
}

fn binary(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + 7) as u8).collect()
}
