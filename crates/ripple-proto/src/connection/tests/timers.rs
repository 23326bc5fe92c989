//! The keepalive and close timers, in memory. Time is whatever a test passes in: one arbitrary
//! origin, moved by hand; nothing here sleeps or reads the clock again.

use std::time::Duration;

use super::*;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// A server with a 10 s keepalive interval, 5 s ping timeout and 3 s close timeout, opened at
/// the returned origin.
fn server_at() -> (Connection, Instant) {
    let t0 = Instant::now();
    let config = Config::default()
        .keepalive(Some(secs(10)), Some(secs(5)))
        .close_timeout(secs(3));
    (Connection::new(Role::Server, config, t0), t0)
}

/// A keepalive ping as a server sends it: unmasked, the ping's number in 8 bytes.
fn keepalive_ping(number: u64) -> Vec<u8> {
    let mut frame = vec![0x89, 0x08];
    frame.extend(number.to_be_bytes());
    frame
}

/// The close frame a server sends when a keepalive ping goes unanswered (RFC 6455 §5.5.1, code
/// 1011 from §7.4.1).
fn keepalive_close() -> Vec<u8> {
    let reason = b"keepalive ping timeout";
    let mut frame = vec![0x88, 2 + reason.len() as u8, 0x03, 0xf3];
    frame.extend(reason);
    frame
}

#[test]
fn defaults_are_python_websockets() {
    let config = Config::default();
    assert_eq!(config.ping_interval, Some(secs(20)));
    assert_eq!(config.ping_timeout, Some(secs(20)));
    assert_eq!(config.close_timeout, secs(10));
    let t0 = Instant::now();
    let s = Connection::new(Role::Server, config, t0);
    assert_eq!(s.poll_timeout(), Some(t0 + secs(20)));
}

#[test]
fn rfc6455_5_5_2_keepalive_ping_goes_out_at_the_interval() {
    let (mut s, t0) = server_at();
    assert_eq!(s.poll_timeout(), Some(t0 + secs(10)));
    s.handle_timeout(t0 + secs(9));
    assert_eq!(drain(&mut s), b"", "not due yet");
    s.handle_timeout(t0 + secs(10));
    assert_eq!(drain(&mut s), keepalive_ping(1));
    assert_eq!(
        s.poll_timeout(),
        Some(t0 + secs(15)),
        "the pong is due before the next ping"
    );
}

#[test]
fn rfc6455_5_5_3_matching_pong_clears_the_keepalive_ping() {
    let (mut s, t0) = server_at();
    s.handle_timeout(t0 + secs(10));
    drain(&mut s);
    s.receive(&masked(0x8a, &1u64.to_be_bytes()));
    assert_eq!(
        events(&mut s),
        vec![Event::Pong(Bytes::copy_from_slice(&1u64.to_be_bytes()))],
        "the application sees the pong too"
    );
    assert_eq!(s.poll_timeout(), Some(t0 + secs(20)), "only the next ping");
    s.handle_timeout(t0 + secs(15));
    assert_eq!(s.state(), State::Open);
    assert_eq!(drain(&mut s), b"");
    s.handle_timeout(t0 + secs(20));
    assert_eq!(drain(&mut s), keepalive_ping(2));
}

#[test]
fn keepalive_timeout_fails_with_1011_on_the_wire() {
    let (mut s, t0) = server_at();
    s.handle_timeout(t0 + secs(10));
    drain(&mut s);
    s.handle_timeout(t0 + secs(14));
    assert_eq!(s.state(), State::Open, "within the ping timeout");
    s.handle_timeout(t0 + secs(15));
    assert_eq!(drain(&mut s), keepalive_close());
    assert_eq!(s.state(), State::Closed);
    assert_eq!(s.timed_out(), Some(Timeout::Keepalive));
    assert_eq!(s.failure(), None, "the peer broke no rule");
    assert_eq!(
        s.close_code(),
        Some(CloseCode::ABNORMAL),
        "no close frame came back"
    );
    assert!(s.should_close_transport());
    assert_eq!(s.send_text("late"), Err(SendError::Closed));
}

#[test]
fn pong_with_another_payload_does_not_clear_the_keepalive_ping() {
    let (mut s, t0) = server_at();
    s.handle_timeout(t0 + secs(10));
    drain(&mut s);
    let mut wire = masked(0x8a, b"other");
    wire.extend(masked(0x8a, b""));
    wire.extend(masked(0x8a, &2u64.to_be_bytes()));
    wire.extend(masked(0x81, b"data is not a pong"));
    s.receive(&wire);
    assert_eq!(events(&mut s).len(), 4);
    s.handle_timeout(t0 + secs(15));
    assert_eq!(drain(&mut s), keepalive_close());
    assert_eq!(s.timed_out(), Some(Timeout::Keepalive));
}

#[test]
fn rfc6455_5_5_3_pong_to_a_later_ping_answers_the_earlier_ones() {
    let t0 = Instant::now();
    let config = Config::default().keepalive(Some(secs(5)), Some(secs(20)));
    let mut s = Connection::new(Role::Server, config, t0);
    s.handle_timeout(t0 + secs(5));
    s.handle_timeout(t0 + secs(10));
    assert_eq!(
        drain(&mut s),
        [keepalive_ping(1), keepalive_ping(2)].concat()
    );
    assert_eq!(s.poll_timeout(), Some(t0 + secs(15)));
    s.receive(&masked(0x8a, &2u64.to_be_bytes()));
    events(&mut s);
    s.handle_timeout(t0 + secs(25));
    assert_eq!(
        s.state(),
        State::Open,
        "ping 1 is answered by ping 2's pong"
    );
    assert_eq!(drain(&mut s), keepalive_ping(3));
}

#[test]
fn rfc6455_5_5_3_pong_to_a_later_application_ping_answers_the_keepalive_ping() {
    let (mut s, t0) = server_at();
    s.handle_timeout(t0 + secs(10));
    s.send_ping(b"mine").unwrap();
    assert_eq!(
        drain(&mut s),
        [keepalive_ping(1), b"\x89\x04mine".to_vec()].concat()
    );
    s.receive(&masked(0x8a, b"mine"));
    assert_eq!(
        events(&mut s),
        vec![Event::Pong(Bytes::from_static(b"mine"))]
    );
    s.handle_timeout(t0 + secs(15));
    assert_eq!(s.state(), State::Open);
}

#[test]
fn client_keepalive_ping_is_masked() {
    let t0 = Instant::now();
    let config = Config::default().mask_seed(7);
    let mut c = Connection::new(Role::Client, config, t0);
    c.handle_timeout(t0 + secs(20));
    let out = drain(&mut c);
    assert_eq!(&out[..2], [0x89, 0x88]);
    let mut payload = out[6..].to_vec();
    apply_mask(&mut payload, [out[2], out[3], out[4], out[5]], 0);
    assert_eq!(payload, 1u64.to_be_bytes());
}

#[test]
fn keepalive_off_runs_no_timer() {
    let t0 = Instant::now();
    let config = Config::default().keepalive(None, None);
    let mut s = Connection::new(Role::Server, config, t0);
    assert_eq!(s.poll_timeout(), None);
    s.handle_timeout(t0 + secs(3600));
    assert_eq!(drain(&mut s), b"");
}

#[test]
fn without_a_ping_timeout_pings_go_on_unanswered() {
    let t0 = Instant::now();
    let config = Config::default().keepalive(Some(secs(1)), None);
    let mut s = Connection::new(Role::Server, config, t0);
    for n in 1..=100 {
        s.handle_timeout(t0 + secs(n));
        assert_eq!(drain(&mut s), keepalive_ping(n));
    }
    assert_eq!(s.state(), State::Open);
    assert_eq!(s.poll_timeout(), Some(t0 + secs(101)));
}

#[test]
fn unanswered_keepalive_pings_are_bounded() {
    let t0 = Instant::now();
    let config = Config::default().keepalive(Some(secs(1)), Some(secs(100)));
    let mut s = Connection::new(Role::Server, config, t0);
    let mut pings = 0;
    for n in 1..100 {
        s.handle_timeout(t0 + secs(n));
        pings += usize::from(!drain(&mut s).is_empty());
    }
    assert_eq!(pings, 16, "the peer already owes 16 pongs");
    s.handle_timeout(t0 + secs(101));
    assert_eq!(drain(&mut s), keepalive_close(), "ping 1, sent at 1 s");
}

#[test]
fn handle_timeout_late_sends_one_ping_and_counts_from_then() {
    let (mut s, t0) = server_at();
    s.handle_timeout(t0 + secs(12));
    assert_eq!(drain(&mut s), keepalive_ping(1));
    assert_eq!(s.poll_timeout(), Some(t0 + secs(17)));
    s.handle_timeout(t0 + secs(11));
    assert_eq!(
        drain(&mut s),
        b"",
        "an earlier time counts as the latest one seen"
    );
}

#[test]
fn rfc6455_7_1_2_closing_handshake_gives_up_at_the_deadline() {
    let (mut s, t0) = server_at();
    s.send_close(Some(CloseFrame::new(CloseCode::NORMAL, "")))
        .unwrap();
    assert_eq!(drain(&mut s), [0x88, 0x02, 0x03, 0xe8]);
    assert_eq!(
        s.poll_timeout(),
        Some(t0),
        "due at once: the close timer needs the time"
    );
    s.handle_timeout(t0 + secs(1));
    assert_eq!(s.poll_timeout(), Some(t0 + secs(4)));
    s.handle_timeout(t0 + secs(3));
    assert_eq!(s.state(), State::Closing, "still waiting for the reply");
    s.handle_timeout(t0 + secs(4));
    assert_eq!(s.state(), State::Closed);
    assert_eq!(s.timed_out(), Some(Timeout::Close));
    assert!(s.close_expired());
    assert!(s.should_close_transport());
    assert_eq!(s.close_code(), Some(CloseCode::ABNORMAL));
    assert_eq!(s.poll_timeout(), None);
    s.receive(&masked(0x88, b"\x03\xe8"));
    assert_eq!(
        events(&mut s),
        vec![],
        "a reply after the deadline is too late"
    );
}

#[test]
fn rfc6455_7_1_2_reply_in_time_is_no_timeout() {
    let (mut s, t0) = server_at();
    s.send_close(None).unwrap();
    s.handle_timeout(t0 + secs(1));
    s.receive(&masked(0x88, b""));
    assert_eq!(events(&mut s).len(), 1);
    assert_eq!(s.state(), State::Closed);
    s.handle_timeout(t0 + secs(4));
    assert_eq!(s.timed_out(), None);
    assert_eq!(s.close_code(), Some(CloseCode::NO_STATUS));
}

#[test]
fn rfc6455_7_1_1_client_stops_waiting_for_the_tcp_close_at_the_deadline() {
    let t0 = Instant::now();
    let config = Config::default().mask_seed(7).close_timeout(secs(3));
    let mut c = Connection::new(Role::Client, config, t0);
    c.receive(&[0x88, 0x02, 0x03, 0xe8]);
    assert_eq!(events(&mut c).len(), 1);
    assert!(!c.should_close_transport(), "the server closes TCP first");
    c.handle_timeout(t0 + secs(1));
    c.handle_timeout(t0 + secs(4));
    assert!(c.should_close_transport(), "but not forever");
    assert!(c.close_expired());
    assert_eq!(
        c.timed_out(),
        None,
        "the closing handshake itself completed"
    );
    assert_eq!(c.close_code(), Some(CloseCode::NORMAL));
}

#[test]
fn close_deadline_drops_output_the_peer_never_read() {
    let (mut s, t0) = server_at();
    s.receive(&[0x81, 0x02, b'h', b'i']); // unmasked: RFC 6455 §5.1
    assert_eq!(events(&mut s), vec![]);
    assert!(s.buffered_amount() > 0, "the 1002 close is queued");
    s.handle_timeout(t0);
    s.handle_timeout(t0 + secs(3));
    assert!(s.close_expired());
    assert_eq!(s.buffered_amount(), 0);
    assert_eq!(s.poll_transmit(), None);
    assert_eq!(
        s.timed_out(),
        None,
        "a failure, then the flush took too long"
    );
    assert_eq!(s.close_code(), Some(CloseCode::PROTOCOL_ERROR));
}

#[test]
fn keepalive_timeout_then_close_timeout() {
    let (mut s, t0) = server_at();
    s.handle_timeout(t0 + secs(10));
    s.handle_timeout(t0 + secs(15));
    assert_eq!(
        s.poll_timeout(),
        Some(t0 + secs(18)),
        "the close timer runs"
    );
    s.handle_timeout(t0 + secs(18));
    assert!(s.close_expired());
    assert_eq!(
        s.timed_out(),
        Some(Timeout::Keepalive),
        "the first reason stays"
    );
}

#[test]
fn eof_starts_the_close_timer_and_stops_the_keepalive() {
    let (mut s, t0) = server_at();
    s.receive_eof();
    assert_eq!(s.poll_timeout(), Some(t0));
    s.handle_timeout(t0 + secs(10));
    assert_eq!(drain(&mut s), b"", "no ping once closed");
    assert_eq!(s.poll_timeout(), Some(t0 + secs(13)));
}
