//! In-memory tests of the connection, speaking wire bytes (RFC 6455 section numbers in names).

use super::*;
use crate::frame::RSV1;

fn server() -> Connection {
    server_with(Config::default())
}

fn server_with(config: Config) -> Connection {
    Connection::new(Role::Server, config, Instant::now())
}

fn client() -> Connection {
    Connection::new(Role::Client, Config::default().mask_seed(7), Instant::now())
}

/// A masked frame as a client would send it.
fn masked(first: u8, payload: &[u8]) -> Vec<u8> {
    let mut buf = BytesMut::new();
    let header = FrameHeader {
        fin: first & 0x80 != 0,
        rsv: (first >> 4) & 0b111,
        opcode: OpCode::from_wire(first & 0x0f).unwrap(),
        mask: Some([0x11, 0x22, 0x33, 0x44]),
        payload_len: payload.len() as u64,
    };
    header.encode(&mut buf);
    let start = buf.len();
    buf.extend_from_slice(payload);
    apply_mask(&mut buf[start..], [0x11, 0x22, 0x33, 0x44], 0);
    buf.to_vec()
}

fn drain(conn: &mut Connection) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(chunk) = conn.poll_transmit() {
        out.extend_from_slice(&chunk);
    }
    out
}

fn events(conn: &mut Connection) -> Vec<Event> {
    std::iter::from_fn(|| conn.poll_event()).collect()
}

fn text(s: &str) -> Event {
    Event::Message(Message::from(s))
}

/// The close frame a server sends for `code` (unmasked), ignoring the reason text.
fn assert_failed_with(conn: &mut Connection, code: u16) {
    assert_eq!(conn.state(), State::Closed);
    assert_eq!(
        conn.close_sent().map(|f| f.code),
        Some(CloseCode(code)),
        "{:?}",
        conn.failure()
    );
    let out = drain(conn);
    assert_eq!(out[0], 0x88);
    assert_eq!(u16::from_be_bytes([out[2], out[3]]), code);
}

#[test]
fn rfc6455_5_7_single_frame_masked_text() {
    let mut s = server();
    s.receive(&[
        0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
    ]);
    assert_eq!(events(&mut s), vec![text("Hello")]);
}

#[test]
fn rfc6455_5_7_fragmented_unmasked_text() {
    let mut c = client();
    c.receive(&[0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f]);
    assert_eq!(events(&mut c), vec![text("Hello")]);
}

#[test]
fn input_in_single_bytes_gives_the_same_events() {
    let mut s = server();
    let mut wire = masked(0x01, "κό".as_bytes());
    wire.extend(masked(0x89, b"p"));
    wire.extend(masked(0x80, "σμε".as_bytes()));
    wire.extend(masked(0x82, &[0, 1, 2]));
    let mut got = Vec::new();
    for byte in wire {
        s.receive(&[byte]);
        got.extend(events(&mut s));
    }
    assert_eq!(
        got,
        vec![
            Event::Ping(Bytes::from_static(b"p")),
            text("κόσμε"),
            Event::Message(Message::Binary(Bytes::from_static(&[0, 1, 2])))
        ]
    );
}

#[test]
fn rfc6455_5_5_2_ping_is_answered_with_identical_pong() {
    let mut c = client();
    c.receive(&[0x89, 0x05, b'H', b'e', b'l', b'l', b'o']);
    assert_eq!(
        events(&mut c),
        vec![Event::Ping(Bytes::from_static(b"Hello"))]
    );
    assert_eq!(c.buffered_amount(), 2 + 4 + 5, "the owed pong is counted");
    let out = drain(&mut c);
    assert_eq!(out.len(), 2 + 4 + 5);
    assert_eq!(out[0], 0x8a);
    assert_eq!(out[1], 0x85, "client pong is masked");
    let mut payload = out[6..].to_vec();
    apply_mask(&mut payload, [out[2], out[3], out[4], out[5]], 0);
    assert_eq!(payload, b"Hello");
}

/// Decodes a server's output stream as the client at the other end would.
fn client_events(server_output: &[u8]) -> Vec<Event> {
    let mut c = client();
    c.receive(server_output);
    let got = events(&mut c);
    assert_eq!(c.failure(), None, "the output stream is well formed");
    got
}

#[test]
fn rfc6455_5_5_2_each_ping_is_answered_when_output_is_drained() {
    let mut s = server();
    let mut out = Vec::new();
    for i in 0..10u8 {
        s.receive(&masked(0x89, &[i]));
        assert_eq!(events(&mut s), vec![Event::Ping(Bytes::from(vec![i]))]);
        out.extend(drain(&mut s));
    }
    let pongs: Vec<_> = (0..10u8)
        .map(|i| Event::Pong(Bytes::from(vec![i])))
        .collect();
    assert_eq!(client_events(&out), pongs);
}

#[test]
fn rfc6455_5_5_3_ping_flood_without_draining_owes_one_pong() {
    let mut s = server();
    let pings = 100_000u32;
    let wire: Vec<u8> = (0..pings)
        .flat_map(|i| masked(0x89, &i.to_be_bytes()))
        .collect();
    s.receive(&wire);
    assert_eq!(events(&mut s).len(), pings as usize);
    assert_eq!(s.buffered_amount(), 2 + 4, "one pong is owed, no more");
    let last = Bytes::copy_from_slice(&(pings - 1).to_be_bytes());
    assert_eq!(client_events(&drain(&mut s)), vec![Event::Pong(last)]);
    assert_eq!(s.buffered_amount(), 0);
}

#[test]
fn rfc6455_5_5_3_owed_pong_is_transmitted_with_nothing_else_queued() {
    let mut s = server();
    s.receive(&masked(0x89, b"only"));
    assert_eq!(events(&mut s).len(), 1);
    assert_eq!(s.poll_transmit().as_deref(), Some(&b"\x8a\x04only"[..]));
    assert_eq!(s.poll_transmit(), None);
}

#[test]
fn rfc6455_5_4_pong_does_not_split_a_half_transmitted_shared_frame() {
    let mut s = server();
    let big = Bytes::from(vec![7u8; 100_000]);
    s.send_text("before").unwrap();
    s.send(Message::Binary(big.clone())).unwrap();
    s.send_text("after").unwrap();
    // The first chunk ends with the large frame's header; its payload is the next chunk.
    let mut out = s.poll_transmit().unwrap().to_vec();
    assert!(out.len() < 100);
    s.receive(&masked(0x89, b"mid"));
    assert_eq!(
        events(&mut s),
        vec![Event::Ping(Bytes::from_static(b"mid"))]
    );
    out.extend(drain(&mut s));
    assert_eq!(
        client_events(&out),
        vec![
            text("before"),
            Event::Message(Message::Binary(big)),
            Event::Pong(Bytes::from_static(b"mid")),
            text("after"),
        ]
    );
}

#[test]
fn rfc6455_5_1_server_rejects_unmasked_frame() {
    let mut s = server();
    s.receive(&[0x81, 0x02, b'h', b'i']);
    assert_eq!(events(&mut s), vec![]);
    assert_eq!(s.failure(), Some(&ProtocolError::UnmaskedFrame));
    assert_failed_with(&mut s, 1002);
}

#[test]
fn rfc6455_5_1_client_rejects_masked_frame() {
    let mut c = client();
    c.receive(&masked(0x81, b"hi"));
    assert_eq!(events(&mut c), vec![]);
    assert_eq!(c.failure(), Some(&ProtocolError::MaskedFrame));
}

#[test]
fn rfc6455_5_2_rsv_bits_without_extension_fail() {
    let mut s = server();
    s.receive(&masked(0x81 | RSV1 << 4, b"hi"));
    assert_eq!(events(&mut s), vec![]);
    assert_eq!(s.failure(), Some(&ProtocolError::ReservedBits(RSV1)));
    assert_failed_with(&mut s, 1002);
}

#[test]
fn rfc6455_5_4_control_frames_interleave_fragments() {
    let mut s = server();
    let mut wire = masked(0x01, b"fra");
    wire.extend(masked(0x89, b""));
    wire.extend(masked(0x80, b"gment"));
    s.receive(&wire);
    assert_eq!(
        events(&mut s),
        vec![Event::Ping(Bytes::new()), text("fragment")]
    );
}

#[test]
fn rfc6455_5_4_continuation_without_start_fails() {
    let mut s = server();
    s.receive(&masked(0x80, b"x"));
    assert_eq!(events(&mut s), vec![]);
    assert_eq!(s.failure(), Some(&ProtocolError::UnexpectedContinuation));
}

#[test]
fn rfc6455_5_4_new_message_inside_fragmented_fails() {
    let mut s = server();
    let mut wire = masked(0x01, b"a");
    wire.extend(masked(0x81, b"b"));
    s.receive(&wire);
    assert_eq!(events(&mut s), vec![]);
    assert_eq!(s.failure(), Some(&ProtocolError::ExpectedContinuation));
}

#[test]
fn rfc6455_8_1_invalid_utf8_fails_with_1007() {
    let mut s = server();
    s.receive(&masked(0x81, b"\xce\xba\xff"));
    assert_eq!(events(&mut s), vec![]);
    assert_failed_with(&mut s, 1007);
}

#[test]
fn rfc6455_8_1_invalid_utf8_fails_fast_in_fragmented_message() {
    let mut s = server();
    s.receive(&masked(0x01, b"ok\xc0"));
    assert_eq!(events(&mut s), vec![]);
    assert_eq!(s.failure(), Some(&ProtocolError::InvalidUtf8));
}

#[test]
fn rfc6455_8_1_invalid_utf8_fails_fast_inside_one_large_frame() {
    let mut s = server();
    let mut payload = vec![b'a'; 1000];
    payload[10] = 0xff;
    let wire = masked(0x81, &payload);
    s.receive(&wire[..30]);
    assert_eq!(events(&mut s), vec![]);
    assert_eq!(
        s.failure(),
        Some(&ProtocolError::InvalidUtf8),
        "before the frame completes"
    );
}

#[test]
fn split_code_point_across_fragments_is_valid() {
    let mut s = server();
    let mut wire = masked(0x01, b"\xe2\x82");
    wire.extend(masked(0x80, b"\xac"));
    s.receive(&wire);
    assert_eq!(events(&mut s), vec![text("€")]);
}

#[test]
fn message_ending_inside_code_point_fails() {
    let mut s = server();
    s.receive(&masked(0x81, b"\xe2\x82"));
    assert_eq!(events(&mut s), vec![]);
    assert_eq!(s.failure(), Some(&ProtocolError::InvalidUtf8));
}

#[test]
fn frame_limit_fails_with_1009_on_the_header() {
    let mut s = server_with(Config::default().max_message_size(100));
    s.receive(&[0x82, 0xfe, 0x01, 0x00]);
    s.receive(&[1, 2, 3, 4]);
    assert_eq!(events(&mut s), vec![]);
    assert_eq!(
        s.failure(),
        Some(&ProtocolError::FrameTooBig { len: 256, max: 100 })
    );
    assert_failed_with(&mut s, 1009);
}

#[test]
fn message_limit_counts_every_fragment() {
    let mut s = server_with(Config::default().max_message_size(10));
    let mut wire = masked(0x02, &[0; 6]);
    wire.extend(masked(0x80, &[0; 6]));
    s.receive(&wire);
    assert_eq!(events(&mut s), vec![]);
    assert_eq!(s.failure(), Some(&ProtocolError::MessageTooBig { max: 10 }));
    assert_failed_with(&mut s, 1009);
}

#[test]
fn rfc6455_10_4_endless_empty_continuations_fail_with_1009_at_the_frame_limit() {
    let mut s = server();
    let max = Config::DEFAULT_MAX_MESSAGE_FRAMES;
    let mut wire = masked(0x01, b"a");
    let empty = masked(0x00, b"");
    wire.extend(empty.repeat(max - 1));
    s.receive(&wire);
    assert_eq!(events(&mut s), vec![]);
    assert_eq!(s.failure(), None, "{max} frames are allowed");
    s.receive(&empty);
    assert_eq!(events(&mut s), vec![]);
    assert_eq!(s.failure(), Some(&ProtocolError::TooManyFrames { max }));
    assert_failed_with(&mut s, 1009);
}

#[test]
fn autobahn_9_3_1_four_mib_in_64_byte_fragments_is_accepted() {
    let size = 4 << 20;
    let mut s = server_with(Config::default().max_message_size(size));
    let chunk = [b'*'; 64];
    let mut wire = masked(0x01, &chunk);
    wire.extend(masked(0x00, &chunk).repeat(size / 64 - 2));
    wire.extend(masked(0x80, &chunk));
    s.receive(&wire);
    assert_eq!(events(&mut s), vec![text(&"*".repeat(size))]);
    assert_eq!(s.failure(), None);
}

#[test]
fn rfc6455_5_5_1_close_is_echoed_and_reported() {
    let mut s = server();
    s.receive(&masked(0x88, b"\x03\xe8bye"));
    assert_eq!(
        events(&mut s),
        vec![Event::Close(CloseFrame::new(CloseCode::NORMAL, "bye"))]
    );
    assert_eq!(s.state(), State::Closed);
    assert_eq!(drain(&mut s), vec![0x88, 0x02, 0x03, 0xe8]);
    assert!(s.should_close_transport());
    assert_eq!(s.close_code(), Some(CloseCode::NORMAL));
}

#[test]
fn rfc6455_7_1_5_empty_close_reports_1005_and_echoes_empty() {
    let mut s = server();
    s.receive(&masked(0x88, b""));
    assert_eq!(
        events(&mut s),
        vec![Event::Close(CloseFrame::new(CloseCode::NO_STATUS, ""))]
    );
    assert_eq!(drain(&mut s), vec![0x88, 0x00]);
    assert_eq!(s.close_code(), Some(CloseCode::NO_STATUS));
}

#[test]
fn rfc6455_7_4_1_invalid_close_code_fails_with_1002() {
    for code in [999u16, 1004, 1005, 1006, 1015, 2000, 5000] {
        let mut s = server();
        s.receive(&masked(0x88, &code.to_be_bytes()));
        assert_eq!(events(&mut s), vec![]);
        assert_eq!(s.failure(), Some(&ProtocolError::InvalidCloseCode(code)));
        assert_failed_with(&mut s, 1002);
    }
}

#[test]
fn rfc6455_5_5_1_close_reason_must_be_utf8() {
    let mut s = server();
    s.receive(&masked(0x88, b"\x03\xe8\xff"));
    assert_eq!(events(&mut s), vec![]);
    assert_failed_with(&mut s, 1007);
}

#[test]
fn rfc6455_7_1_2_initiated_close_completes_on_reply() {
    let mut c = client();
    c.send_close(Some(CloseFrame::new(CloseCode(4001), "bye now")))
        .unwrap();
    assert_eq!(c.state(), State::Closing);
    assert_eq!(c.send_text("late"), Err(SendError::Closed));
    c.receive(&[0x88, 0x02, 0x0f, 0xa1]);
    assert_eq!(
        events(&mut c),
        vec![Event::Close(CloseFrame::new(CloseCode(4001), ""))]
    );
    assert_eq!(c.state(), State::Closed);
    assert!(
        !c.should_close_transport(),
        "the client waits for the server to close TCP"
    );
}

#[test]
fn data_after_close_is_discarded() {
    let mut s = server();
    let mut wire = masked(0x88, b"\x03\xe8");
    wire.extend(masked(0x81, b"after"));
    s.receive(&wire);
    assert_eq!(events(&mut s).len(), 1);
    assert_eq!(s.poll_event(), None);
}

#[test]
fn after_failure_only_the_close_is_flushed() {
    let mut s = server();
    let mut wire = vec![0x83, 0x80, 0, 0, 0, 0];
    wire.extend(masked(0x89, b"ping"));
    s.receive(&wire);
    assert_eq!(events(&mut s), vec![]);
    let out = drain(&mut s);
    assert_eq!(out[0], 0x88, "no pong, only the close");
    assert_eq!(out.len(), 2 + out[1] as usize);
}

#[test]
fn eof_without_close_is_abnormal() {
    let mut s = server();
    s.receive_eof();
    assert_eq!(s.close_code(), Some(CloseCode::ABNORMAL));
}

#[test]
fn send_close_validates_code_and_reason() {
    let mut s = server();
    assert_eq!(
        s.send_close(Some(CloseFrame::new(CloseCode(1006), ""))),
        Err(SendError::InvalidCloseCode(1006))
    );
    assert_eq!(
        s.send_close(Some(CloseFrame::new(CloseCode::NORMAL, "x".repeat(124)))),
        Err(SendError::ReasonTooLong(124))
    );
    assert_eq!(s.send_ping(&[0; 126]), Err(SendError::ControlTooLong(126)));
    assert_eq!(
        s.send_close(Some(CloseFrame::new(CloseCode::NO_STATUS, "bye"))),
        Err(SendError::ReasonWithoutCode)
    );
}

#[test]
fn outgoing_fragments_must_be_in_sequence() {
    let mut s = server();
    assert_eq!(
        s.send_fragment(OpCode::Continuation, b"x", true),
        Err(SendError::FragmentOutOfSequence)
    );
    s.send_fragment(OpCode::Text, b"he", false).unwrap();
    assert_eq!(s.send_text("other"), Err(SendError::FragmentOutOfSequence));
    s.send_fragment(OpCode::Continuation, b"llo", true).unwrap();
    assert_eq!(
        drain(&mut s),
        vec![0x01, 0x02, b'h', b'e', 0x80, 0x03, b'l', b'l', b'o']
    );
}

#[test]
fn client_and_server_talk_in_memory() {
    let (mut c, mut s) = (client(), server());
    let big = Bytes::from(vec![7u8; 100_000]);
    c.send_text("hi").unwrap();
    c.send(Message::Binary(big.clone())).unwrap();
    s.receive(&drain(&mut c));
    let got = events(&mut s);
    assert_eq!(
        got,
        vec![text("hi"), Event::Message(Message::Binary(big.clone()))]
    );
    s.send(Message::Binary(big.clone())).unwrap();
    assert_eq!(s.buffered_amount(), 10 + 100_000);
    c.receive(&drain(&mut s));
    assert_eq!(events(&mut c), vec![Event::Message(Message::Binary(big))]);
    assert_eq!(s.buffered_amount(), 0);
}

#[test]
fn release_buffers_frees_idle_memory() {
    let mut s = server();
    s.receive(&masked(0x81, &[b'a'; 4000]));
    assert_eq!(events(&mut s).len(), 1);
    s.release_buffers();
    assert_eq!(s.read_buffer().capacity(), 0);
}

#[test]
fn a_header_alone_does_not_reserve_its_payload() {
    let mut s = server_with(Config::default().max_message_size(8 << 20));
    let mut header = vec![0x82, 0xff];
    header.extend((4u64 << 20).to_be_bytes());
    header.extend([1, 2, 3, 4]);
    s.receive(&header);
    assert_eq!(s.poll_event(), None);
    assert!(
        s.read_buffer().capacity() <= 128 * 1024,
        "{}",
        s.read_buffer().capacity()
    );
}

mod timers;
