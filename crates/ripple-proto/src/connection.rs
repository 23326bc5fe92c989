//! The connection state machine for both roles (RFC 6455 §5–§7), after the opening handshake.
//!
//! ```text
//!   Open ──send_close()──▶ Closing ──peer's close──▶ Closed
//!     │                                               ▲
//!     ├──peer's close (echoed)────────────────────────┤
//!     ├──peer broke the protocol (close queued)───────┤
//!     └──receive_eof() (abnormal, 1006)───────────────┘
//! ```
//!
//! Leaving `Open` starts the close timer, and the keepalive timer runs while `Open`; both are
//! driven by the caller's clock ([`Connection::poll_timeout`],
//! [`Connection::handle_timeout`]).

use std::collections::VecDeque;
use std::time::Instant;

use bytes::{Buf, Bytes, BytesMut};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::close::{CloseCode, CloseFrame};
use crate::config::Config;
use crate::error::{ProtocolError, SendError};
use crate::extension::Extension;
use crate::frame::{FrameHeader, MAX_CONTROL_PAYLOAD, OpCode, encode_frame};
use crate::mask::apply_mask;
use crate::message::{Message, Utf8Bytes};
use crate::prepared::PreparedMessage;
use crate::utf8::Utf8Validator;

mod timers;

pub use timers::Timeout;
use timers::Timers;

/// Which end of the connection this is; it decides the masking rules (RFC 6455 §5.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Masks every frame it sends and rejects masked frames.
    Client,
    /// Requires masked frames and sends unmasked ones.
    Server,
}

/// Where the closing handshake stands (RFC 6455 §7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Messages flow both ways.
    Open,
    /// This end sent a close frame and waits for the peer's.
    Closing,
    /// The closing handshake finished, failed, or the transport ended. Only queued output
    /// (at most a close frame) remains to be flushed.
    Closed,
}

/// Something the peer sent, for the application.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A complete data message.
    Message(Message),
    /// A ping. Its pong is owed: it goes out with the next output, unless another ping arrives
    /// first and takes its place (RFC 6455 §5.5.3).
    Ping(Bytes),
    /// A pong.
    Pong(Bytes),
    /// The peer's close frame; the echo, if one was owed, is already queued.
    Close(CloseFrame),
}

/// Payloads at least this large are queued by reference instead of copied, when they go out
/// unmasked and untransformed.
const ZERO_COPY_MIN: usize = 16 * 1024;

/// The most read-buffer space reserved ahead of data for one frame.
const MAX_RESERVE: usize = 64 * 1024;

/// One WebSocket connection: bytes in, events and bytes out.
#[derive(Debug)]
pub struct Connection {
    role: Role,
    config: Config,
    state: State,
    extension: Option<Box<dyn Extension>>,
    read: BytesMut,
    frame: Option<FrameInProgress>,
    incoming: Option<IncomingMessage>,
    outgoing_fragmented: bool,
    pending: BytesMut,
    out: VecDeque<Chunk>,
    out_len: usize,
    /// The payload of the most recent ping while its pong has not been transmitted.
    owed_pong: Option<Bytes>,
    scratch: BytesMut,
    rng: Option<Box<StdRng>>,
    close_sent: Option<CloseFrame>,
    close_received: Option<CloseFrame>,
    failure: Option<ProtocolError>,
    timers: Timers,
}

/// Output queued by reference. Frames in `pending` are always whole; a chunk here may be a
/// payload whose header ends the chunk before it.
#[derive(Debug)]
struct Chunk {
    bytes: Bytes,
    /// Whether this chunk continues a frame begun by the previous chunk: no other frame may go
    /// out between the two.
    continues_frame: bool,
}

/// A frame whose header is parsed and whose payload is still arriving.
#[derive(Debug)]
struct FrameInProgress {
    header: FrameHeader,
    header_len: usize,
    /// Payload bytes already unmasked (and, for text, validated) in place.
    checked: usize,
}

/// A data message whose first frame has arrived.
#[derive(Debug)]
struct IncomingMessage {
    text: bool,
    transformed: bool,
    utf8: Utf8Validator,
    /// Reassembled (or decoded) payload; empty while the message is a single raw frame.
    buf: BytesMut,
    /// Raw payload bytes received so far, for the message limit.
    received: usize,
    /// Frames received so far, for the frame-count limit.
    frames: usize,
}

impl Connection {
    /// A connection in the `Open` state, right after a successful handshake.
    ///
    /// `now` is when it opened, by the caller's clock: the first keepalive ping is due
    /// `Config::ping_interval` after it. The connection never reads a clock itself (see
    /// [`Connection::handle_timeout`]).
    pub fn new(role: Role, config: Config, now: Instant) -> Self {
        let rng = match (role, config.mask_seed) {
            (Role::Server, _) => None,
            (Role::Client, Some(seed)) => Some(Box::new(StdRng::seed_from_u64(seed))),
            (Role::Client, None) => Some(Box::new(StdRng::from_os_rng())),
        };
        Self {
            role,
            config,
            state: State::Open,
            extension: None,
            read: BytesMut::new(),
            frame: None,
            incoming: None,
            outgoing_fragmented: false,
            pending: BytesMut::new(),
            out: VecDeque::new(),
            out_len: 0,
            owed_pong: None,
            scratch: BytesMut::new(),
            rng,
            close_sent: None,
            close_received: None,
            failure: None,
            timers: Timers::new(now),
        }
    }

    /// A connection whose data messages go through a negotiated extension.
    pub fn with_extension(
        role: Role,
        config: Config,
        extension: Box<dyn Extension>,
        now: Instant,
    ) -> Self {
        let mut connection = Self::new(role, config, now);
        connection.extension = Some(extension);
        connection
    }

    /// This end's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The closing-handshake state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The limits in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Whether an extension was negotiated.
    pub fn has_extension(&self) -> bool {
        self.extension.is_some()
    }

    /// How the peer broke the protocol, if it did.
    pub fn failure(&self) -> Option<&ProtocolError> {
        self.failure.as_ref()
    }

    /// The close frame this end sent, if any.
    pub fn close_sent(&self) -> Option<&CloseFrame> {
        self.close_sent.as_ref()
    }

    /// The close frame the peer sent, if any.
    pub fn close_received(&self) -> Option<&CloseFrame> {
        self.close_received.as_ref()
    }

    /// The code to report to the application once closed (RFC 6455 §7.1.5): the peer's code,
    /// 1005 if its close frame had none, 1006 if the transport ended without one.
    pub fn close_code(&self) -> Option<CloseCode> {
        if self.state != State::Closed {
            return None;
        }
        Some(match (&self.close_received, &self.failure) {
            (Some(frame), _) => frame.code,
            (None, Some(err)) => err.close_code(),
            (None, None) => CloseCode::ABNORMAL,
        })
    }

    /// Whether the transport should be shut down once output is flushed.
    ///
    /// RFC 6455 §7.1.1: the server closes the TCP connection first; a client waits for it, until
    /// the close timeout runs out ("the client SHOULD wait for the server to close the connection
    /// but MAY close the connection at any time after sending and receiving a Close message, e.g.,
    /// if it has not received a TCP Close from the server in a reasonable time period").
    pub fn should_close_transport(&self) -> bool {
        self.state == State::Closed
            && (self.role == Role::Server || self.close_received.is_none() || self.close_expired())
    }

    // --- network input -------------------------------------------------------------------

    /// Feeds bytes read from the network. Call [`Connection::poll_event`] to process them.
    pub fn receive(&mut self, data: &[u8]) {
        if !self.discarding() {
            self.read.extend_from_slice(data);
        }
    }

    /// The buffer network input goes into, for reading into it without a copy. Only append to it.
    pub fn read_buffer(&mut self) -> &mut BytesMut {
        &mut self.read
    }

    /// How many more bytes the frame in progress needs (0 when unknown): a hint for sizing reads.
    pub fn read_hint(&self) -> usize {
        let Some(frame) = &self.frame else {
            return 0;
        };
        let total = frame.header_len as u64 + frame.header.payload_len;
        usize::try_from(total.saturating_sub(self.read.len() as u64)).unwrap_or(usize::MAX)
    }

    /// The transport reached end of file. Unless the closing handshake finished, the connection
    /// closed abnormally (1006).
    pub fn receive_eof(&mut self) {
        self.leave_open(State::Closed);
        self.read = BytesMut::new();
    }

    /// Processes buffered input up to the next event.
    ///
    /// Returns `None` when more input is needed, or when the connection is closed or failed
    /// (see [`Connection::failure`]). Pongs and close echoes are queued as a side effect, so
    /// drain [`Connection::poll_transmit`] afterwards.
    pub fn poll_event(&mut self) -> Option<Event> {
        loop {
            if self.discarding() {
                self.read.clear();
                return None;
            }
            match self.next_frame() {
                Ok(Some((header, payload))) => match self.handle_frame(header, payload) {
                    Ok(Some(event)) => return Some(event),
                    Ok(None) => {}
                    Err(err) => self.fail(err),
                },
                Ok(None) => return None,
                Err(err) => self.fail(err),
            }
        }
    }

    // --- application commands ---------------------------------------------------------------

    /// Queues a text message.
    pub fn send_text(&mut self, text: &str) -> Result<(), SendError> {
        self.send_data(OpCode::Text, text.as_bytes(), None, true)
    }

    /// Queues a binary message.
    pub fn send_binary(&mut self, data: &[u8]) -> Result<(), SendError> {
        self.send_data(OpCode::Binary, data, None, true)
    }

    /// Queues a message, without copying large payloads where the role allows it.
    pub fn send(&mut self, message: Message) -> Result<(), SendError> {
        self.send_with(message, true)
    }

    /// Queues a message; `transform = false` bypasses the extension (for example, to send an
    /// already-compressed payload uncompressed).
    pub fn send_with(&mut self, message: Message, transform: bool) -> Result<(), SendError> {
        let (opcode, bytes) = match message {
            Message::Text(text) => (OpCode::Text, text.into_bytes()),
            Message::Binary(bytes) => (OpCode::Binary, bytes),
        };
        let slice = bytes.as_ref();
        self.send_data(opcode, slice, Some(&bytes), transform)
    }

    /// Queues a message framed once for many connections. On a server connection the shared
    /// frame bytes are queued without a copy (compressed ones when the negotiated extension can
    /// take them); otherwise the message is sent as [`Connection::send`] would.
    pub fn send_prepared(&mut self, prepared: &PreparedMessage) -> Result<(), SendError> {
        self.ensure_open()?;
        if self.outgoing_fragmented {
            return Err(SendError::FragmentOutOfSequence);
        }
        if self.role == Role::Client {
            return self.send(prepared.message().clone());
        }
        let frame = match (&self.extension, prepared.deflated_frame()) {
            (Some(extension), Some(deflated)) if extension.shares_output(15) => deflated,
            (Some(_), _) => return self.send(prepared.message().clone()),
            (None, _) => prepared.plain_frame(),
        };
        self.queue_raw(frame.clone());
        Ok(())
    }

    /// Queues one frame of a fragmented message: `Text` or `Binary` starts it, `Continuation`
    /// continues it, `fin` ends it. Fragments bypass the extension.
    pub fn send_fragment(
        &mut self,
        opcode: OpCode,
        data: &[u8],
        fin: bool,
    ) -> Result<(), SendError> {
        self.ensure_open()?;
        let in_sequence = match opcode {
            OpCode::Text | OpCode::Binary => !self.outgoing_fragmented,
            OpCode::Continuation => self.outgoing_fragmented,
            _ => false,
        };
        if !in_sequence {
            return Err(SendError::FragmentOutOfSequence);
        }
        self.outgoing_fragmented = !fin;
        self.queue_frame(opcode, fin, 0, data);
        Ok(())
    }

    /// Queues a ping. Its pong is the application's (`Event::Pong`); keepalive pings are the
    /// connection's own (see [`Connection::handle_timeout`]), but a pong to this ping answers the
    /// keepalive pings sent before it too (RFC 6455 §5.5.3).
    pub fn send_ping(&mut self, payload: &[u8]) -> Result<(), SendError> {
        self.send_control(OpCode::Ping, payload)?;
        self.timers.application_ping_sent(payload);
        Ok(())
    }

    /// Queues a pong (an unsolicited one serves as a heartbeat, RFC 6455 §5.5.3).
    pub fn send_pong(&mut self, payload: &[u8]) -> Result<(), SendError> {
        self.send_control(OpCode::Pong, payload)
    }

    /// Starts the closing handshake. `None` sends a close frame without a status code.
    pub fn send_close(&mut self, frame: Option<CloseFrame>) -> Result<(), SendError> {
        self.ensure_open()?;
        let frame = frame.unwrap_or_else(|| CloseFrame::new(CloseCode::NO_STATUS, ""));
        if frame.code != CloseCode::NO_STATUS && !frame.code.is_sendable() {
            return Err(SendError::InvalidCloseCode(frame.code.0));
        }
        // RFC 6455 §5.5.1: a reason may only follow a status code.
        if frame.code == CloseCode::NO_STATUS && !frame.reason.is_empty() {
            return Err(SendError::ReasonWithoutCode);
        }
        if frame.reason.len() > CloseFrame::MAX_REASON {
            return Err(SendError::ReasonTooLong(frame.reason.len()));
        }
        self.queue_close(frame);
        self.leave_open(State::Closing);
        Ok(())
    }

    /// Gives up on the connection from this end (for example, a keepalive timeout): queues a
    /// close frame with `frame` if none was sent yet, then closes without waiting for the peer.
    pub fn send_failure(&mut self, frame: CloseFrame) {
        if self.state == State::Open {
            self.queue_close(frame);
        }
        self.leave_open(State::Closed);
        self.frame = None;
        self.incoming = None;
        self.read = BytesMut::new();
    }

    // --- network output ---------------------------------------------------------------------

    /// The next chunk of bytes to write to the network, in order. An owed pong goes out at the
    /// first frame boundary, ahead of frames queued earlier.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        let at_boundary = !self.out.front().is_some_and(|chunk| chunk.continues_frame);
        if at_boundary && let Some(payload) = self.owed_pong.take() {
            return Some(self.encode_pong(&payload));
        }
        let chunk = match self.out.pop_front() {
            Some(chunk) => chunk.bytes,
            None if !self.pending.is_empty() => self.pending.split().freeze(),
            None => return None,
        };
        self.out_len -= chunk.len();
        Some(chunk)
    }

    /// Bytes queued for the network and not yet taken by [`Connection::poll_transmit`], the owed
    /// pong included.
    pub fn buffered_amount(&self) -> usize {
        // A control payload (at most 125 bytes) needs no extended length: a 2-byte header, and
        // the masking key on a client.
        let pong = self.owed_pong.as_ref().map_or(0, |payload| {
            let mask_len = if self.rng.is_some() { 4 } else { 0 };
            2 + mask_len + payload.len()
        });
        self.out_len + pong
    }

    /// Drops idle buffers, so an idle connection holds no read or write memory.
    pub fn release_buffers(&mut self) {
        if self.read.is_empty() && self.frame.is_none() {
            self.read = BytesMut::new();
        }
        if self.pending.is_empty() {
            self.pending = BytesMut::new();
        }
        self.scratch = BytesMut::new();
    }

    // --- input processing -------------------------------------------------------------------

    fn discarding(&self) -> bool {
        self.failure.is_some() || self.close_received.is_some() || self.state == State::Closed
    }

    /// Parses the next complete frame, unmasked. `Ok(None)` when more input is needed.
    fn next_frame(&mut self) -> Result<Option<(FrameHeader, BytesMut)>, ProtocolError> {
        let mut frame = match self.frame.take() {
            Some(frame) => frame,
            None => {
                let Some((header, header_len)) = FrameHeader::parse(&self.read)? else {
                    return Ok(None);
                };
                self.check_header(&header)?;
                FrameInProgress {
                    header,
                    header_len,
                    checked: 0,
                }
            }
        };
        let (header_len, payload_len) = (frame.header_len, frame.header.payload_len);
        let available = (self.read.len() - header_len) as u64;
        if available < payload_len {
            self.check_partial_text(&mut frame)?;
            self.frame = Some(frame);
            // A header alone must not commit memory for the payload it announces: grow with
            // what arrives, a bounded step at a time.
            self.read.reserve(self.read_hint().min(MAX_RESERVE));
            return Ok(None);
        }
        // `payload_len <= available <= usize::MAX`, checked just above.
        let total = header_len + payload_len as usize;
        let mut payload = self.read.split_to(total);
        payload.advance(header_len);
        if let Some(key) = frame.header.mask {
            apply_mask(&mut payload[frame.checked..], key, frame.checked);
        }
        if let Some(utf8) = plain_text(&mut self.incoming, &frame.header) {
            utf8.feed(&payload[frame.checked..])
                .map_err(|_| ProtocolError::InvalidUtf8)?;
        }
        Ok(Some((frame.header, payload)))
    }

    /// The checks that need the role, the negotiated extension and the message in progress.
    fn check_header(&mut self, header: &FrameHeader) -> Result<(), ProtocolError> {
        // RFC 6455 §5.1: "a server MUST close the connection upon receiving a frame that is not
        // masked" and "a client MUST close a connection if it detects a masked frame".
        match (self.role, header.mask.is_some()) {
            (Role::Server, false) => return Err(ProtocolError::UnmaskedFrame),
            (Role::Client, true) => return Err(ProtocolError::MaskedFrame),
            _ => {}
        }
        // RFC 6455 §5.2: RSV bits "MUST be 0 unless an extension is negotiated that defines
        // meanings for non-zero values".
        let allowed = match header.opcode {
            OpCode::Text | OpCode::Binary => self.extension.as_ref().map_or(0, |e| e.rsv_bits()),
            _ => 0,
        };
        if header.rsv & !allowed != 0 {
            return Err(ProtocolError::ReservedBits(header.rsv));
        }
        if header.opcode.is_control() {
            return Ok(());
        }
        self.check_data_header(header)
    }

    fn check_data_header(&mut self, header: &FrameHeader) -> Result<(), ProtocolError> {
        let max = self.config.max_frame_size;
        if header.payload_len > max as u64 {
            return Err(ProtocolError::FrameTooBig {
                len: header.payload_len,
                max,
            });
        }
        // RFC 6455 §5.4: fragments of one message arrive in order, not interleaved with another.
        // (Frame parsing rejects reserved opcodes, so a data frame is text, binary or a
        // continuation.)
        let incoming = if header.opcode == OpCode::Continuation {
            self.incoming
                .as_mut()
                .ok_or(ProtocolError::UnexpectedContinuation)?
        } else if self.incoming.is_some() {
            return Err(ProtocolError::ExpectedContinuation);
        } else {
            let message = self.begin_message(header);
            self.incoming.insert(message)
        };
        incoming.count_frame(header, &self.config)
    }

    fn begin_message(&mut self, header: &FrameHeader) -> IncomingMessage {
        let transformed = match &mut self.extension {
            Some(extension) if header.rsv != 0 => extension.decode_begin(header.rsv),
            _ => false,
        };
        IncomingMessage {
            text: header.opcode == OpCode::Text,
            transformed,
            utf8: Utf8Validator::new(),
            buf: BytesMut::new(),
            received: 0,
            frames: 0,
        }
    }

    /// Unmasks and validates the part of a text frame that has arrived, so that invalid UTF-8
    /// fails the connection before the rest of the frame is buffered (RFC 6455 §8.1).
    fn check_partial_text(&mut self, frame: &mut FrameInProgress) -> Result<(), ProtocolError> {
        let Some(utf8) = plain_text(&mut self.incoming, &frame.header) else {
            return Ok(());
        };
        let (start, end) = (frame.header_len + frame.checked, self.read.len());
        if let Some(key) = frame.header.mask {
            apply_mask(&mut self.read[start..end], key, frame.checked);
        }
        utf8.feed(&self.read[start..end])
            .map_err(|_| ProtocolError::InvalidUtf8)?;
        frame.checked = end - frame.header_len;
        Ok(())
    }

    fn handle_frame(
        &mut self,
        header: FrameHeader,
        payload: BytesMut,
    ) -> Result<Option<Event>, ProtocolError> {
        Ok(match header.opcode {
            OpCode::Ping => {
                if self.state == State::Open {
                    // RFC 6455 §5.5.2: "Upon receipt of a Ping frame, an endpoint MUST send a
                    // Pong frame in response ... with identical Application data". §5.5.3: "If
                    // an endpoint receives a Ping frame and has not yet sent Pong frame(s) in
                    // response to previous Ping frame(s), the endpoint MAY elect to send a Pong
                    // frame for only the most recently processed Ping frame." One pong is owed
                    // at most, so a peer that pings and never reads cannot grow the output.
                    // A copy: the payload must not keep the read buffer alive.
                    self.owed_pong = Some(Bytes::copy_from_slice(&payload));
                }
                Some(Event::Ping(payload.freeze()))
            }
            OpCode::Pong => {
                self.timers.receive_pong(&payload);
                Some(Event::Pong(payload.freeze()))
            }
            OpCode::Close => Some(self.handle_close(&payload)?),
            _ => self.handle_data(header, payload)?.map(Event::Message),
        })
    }

    fn handle_close(&mut self, payload: &[u8]) -> Result<Event, ProtocolError> {
        let frame = CloseFrame::decode(payload)?;
        if self.state == State::Open {
            // RFC 6455 §5.5.1: "the endpoint MUST send a Close frame in response ... typically
            // echoing the status code it received".
            self.queue_close(CloseFrame::new(frame.code, ""));
        }
        self.close_received = Some(frame.clone());
        self.leave_open(State::Closed);
        self.incoming = None;
        Ok(Event::Close(frame))
    }

    fn handle_data(
        &mut self,
        header: FrameHeader,
        payload: BytesMut,
    ) -> Result<Option<Message>, ProtocolError> {
        let max = self.config.max_message_size;
        // `check_data_header` began or continued the message of every data frame it let through;
        // were that broken, failing with 1002 beats inventing a message.
        let Some(mut incoming) = self.incoming.take() else {
            return Err(ProtocolError::UnexpectedContinuation);
        };
        if incoming.transformed {
            let Some(extension) = &mut self.extension else {
                return Err(ProtocolError::Extension("no extension negotiated".into()));
            };
            let before = incoming.buf.len();
            extension.decode(&payload, header.fin, &mut incoming.buf, max)?;
            if incoming.text {
                incoming
                    .utf8
                    .feed(&incoming.buf[before..])
                    .map_err(|_| ProtocolError::InvalidUtf8)?;
            }
        } else if header.fin && incoming.buf.is_empty() {
            // The whole message is this frame: hand its bytes over without a copy.
            incoming.buf = payload;
        } else {
            incoming.buf.extend_from_slice(&payload);
        }
        if !header.fin {
            self.incoming = Some(incoming);
            return Ok(None);
        }
        let bytes = incoming.buf.freeze();
        Ok(Some(if incoming.text {
            incoming
                .utf8
                .finish()
                .map_err(|_| ProtocolError::InvalidUtf8)?;
            Message::Text(Utf8Bytes::from_validated(bytes))
        } else {
            Message::Binary(bytes)
        }))
    }

    /// RFC 6455 §7.1.7 "Fail the WebSocket Connection": queue a close frame with the code for
    /// this failure, then discard all further input.
    fn fail(&mut self, err: ProtocolError) {
        if self.state == State::Open {
            let mut reason = err.to_string();
            truncate_utf8(&mut reason, CloseFrame::MAX_REASON);
            self.queue_close(CloseFrame::new(err.close_code(), reason));
        }
        self.failure = Some(err);
        self.leave_open(State::Closed);
        self.frame = None;
        self.incoming = None;
        self.read = BytesMut::new();
    }

    /// Moves to `Closing` or `Closed`; leaving `Open` starts the close timer.
    fn leave_open(&mut self, state: State) {
        if self.state == State::Open {
            self.timers.start_close();
        }
        self.state = state;
    }

    // --- output -----------------------------------------------------------------------------

    fn ensure_open(&self) -> Result<(), SendError> {
        if self.state == State::Open {
            Ok(())
        } else {
            Err(SendError::Closed)
        }
    }

    fn send_control(&mut self, opcode: OpCode, payload: &[u8]) -> Result<(), SendError> {
        self.ensure_open()?;
        if payload.len() > MAX_CONTROL_PAYLOAD {
            return Err(SendError::ControlTooLong(payload.len()));
        }
        self.queue_frame(opcode, true, 0, payload);
        Ok(())
    }

    fn send_data(
        &mut self,
        opcode: OpCode,
        payload: &[u8],
        shared: Option<&Bytes>,
        transform: bool,
    ) -> Result<(), SendError> {
        self.ensure_open()?;
        if self.outgoing_fragmented {
            return Err(SendError::FragmentOutOfSequence);
        }
        if transform && let Some(extension) = &mut self.extension {
            let mut scratch = std::mem::take(&mut self.scratch);
            scratch.clear();
            let rsv = extension.encode(opcode, payload, &mut scratch)?;
            if let Some(rsv) = rsv {
                self.queue_frame(opcode, true, rsv, &scratch);
                self.scratch = scratch;
                return Ok(());
            }
            self.scratch = scratch;
        }
        match shared {
            Some(bytes) if self.role == Role::Server && bytes.len() >= ZERO_COPY_MIN => {
                self.queue_shared(opcode, bytes.clone());
            }
            _ => self.queue_frame(opcode, true, 0, payload),
        }
        Ok(())
    }

    fn queue_close(&mut self, frame: CloseFrame) {
        let mut payload = BytesMut::with_capacity(frame.encoded_len());
        frame.encode(&mut payload);
        self.queue_frame(OpCode::Close, true, 0, &payload);
        self.close_sent = Some(frame);
    }

    fn queue_frame(&mut self, opcode: OpCode, fin: bool, rsv: u8, payload: &[u8]) {
        let mask = self.next_mask();
        let before = self.pending.len();
        encode_frame(&mut self.pending, opcode, fin, rsv, mask, payload);
        self.out_len += self.pending.len() - before;
    }

    /// The pong owed to the most recent ping, as a chunk of its own: frames queued in `pending`
    /// go out after it.
    fn encode_pong(&mut self, payload: &[u8]) -> Bytes {
        let mask = self.next_mask();
        let mut frame = BytesMut::new();
        encode_frame(&mut frame, OpCode::Pong, true, 0, mask, payload);
        frame.freeze()
    }

    /// A fresh masking key for a client frame (RFC 6455 §5.3); `None` on a server.
    fn next_mask(&mut self) -> Option<[u8; 4]> {
        self.rng.as_mut().map(|rng| rng.random::<[u8; 4]>())
    }

    /// Queues bytes that are already a whole frame.
    fn queue_raw(&mut self, frame: Bytes) {
        self.out_len += frame.len();
        self.push_pending();
        self.push_chunk(frame, false);
    }

    /// Queues an unmasked frame whose payload is sent from `payload`'s own memory.
    fn queue_shared(&mut self, opcode: OpCode, payload: Bytes) {
        let header = FrameHeader {
            fin: true,
            rsv: 0,
            opcode,
            mask: None,
            payload_len: payload.len() as u64,
        };
        header.encode(&mut self.pending);
        self.out_len += header.encoded_len() + payload.len();
        self.push_pending();
        self.push_chunk(payload, true);
    }

    /// Moves the frames in `pending` to the chunk queue, so that a chunk can follow them.
    fn push_pending(&mut self) {
        if !self.pending.is_empty() {
            let earlier = self.pending.split().freeze();
            self.push_chunk(earlier, false);
        }
    }

    fn push_chunk(&mut self, bytes: Bytes, continues_frame: bool) {
        self.out.push_back(Chunk {
            bytes,
            continues_frame,
        });
    }
}

impl IncomingMessage {
    /// Counts a data frame against the limits of the message it belongs to.
    fn count_frame(&mut self, header: &FrameHeader, config: &Config) -> Result<(), ProtocolError> {
        // RFC 6455 §10.4: "Implementations that have implementation- and/or platform-specific
        // limitations regarding the frame size or total message size after reassembly from
        // multiple frames MUST protect themselves against exceeding those limits." Empty
        // continuation frames add nothing to the size, so their number is limited too.
        self.frames += 1;
        let max = config.max_message_frames;
        if self.frames > max {
            return Err(ProtocolError::TooManyFrames { max });
        }
        self.received = self.received.saturating_add(header.payload_len as usize);
        let max = config.max_message_size;
        if !self.transformed && self.received > max {
            return Err(ProtocolError::MessageTooBig { max });
        }
        Ok(())
    }
}

/// The UTF-8 validator of the message `header` belongs to, when that is text the extension does
/// not transform: such text is validated as it arrives, transformed text once decoded.
fn plain_text<'a>(
    incoming: &'a mut Option<IncomingMessage>,
    header: &FrameHeader,
) -> Option<&'a mut Utf8Validator> {
    if header.opcode.is_control() {
        return None;
    }
    incoming
        .as_mut()
        .filter(|message| message.text && !message.transformed)
        .map(|message| &mut message.utf8)
}

/// Cuts `text` to at most `max` bytes on a character boundary.
fn truncate_utf8(text: &mut String, max: usize) {
    if text.len() <= max {
        return;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
}

#[cfg(test)]
mod tests;
