//! permessage-deflate in memory: RFC 7692's examples, negotiation rules, limits.

use std::time::Instant;

use bytes::Bytes;

use super::*;
use crate::close::CloseCode;
use crate::config::Config;
use crate::connection::{Connection, Event, Role};
use crate::error::ProtocolError;
use crate::message::Message;
use crate::prepared::PreparedMessage;

fn offer(value: &str) -> Option<(String, Deflate)> {
    accept_offer(&[value.as_bytes()], &DeflateConfig::default())
}

fn pair() -> (Connection, Connection) {
    let config = DeflateConfig::default();
    let (answer, server_ext) = accept_offer(&[client_offer(&config).as_bytes()], &config).unwrap();
    let client_ext = accept_response(&answer, &config).unwrap();
    let client = Connection::with_extension(
        Role::Client,
        Config::default().mask_seed(1),
        Box::new(client_ext),
        Instant::now(),
    );
    let server = Connection::with_extension(
        Role::Server,
        Config::default(),
        Box::new(server_ext),
        Instant::now(),
    );
    (client, server)
}

fn drain(conn: &mut Connection) -> Vec<u8> {
    std::iter::from_fn(|| conn.poll_transmit())
        .flat_map(|b| b.to_vec())
        .collect()
}

fn server_with(agreed: Agreed, max: usize) -> Connection {
    let ext = Deflate::new(agreed, &DeflateConfig::default());
    Connection::with_extension(
        Role::Client,
        Config::default().max_message_size(max),
        Box::new(ext),
        Instant::now(),
    )
}

const TAKEOVER: Agreed = Agreed {
    send_no_context: false,
    send_window: 15,
    recv_no_context: false,
    recv_window: 15,
};

#[test]
fn rfc7692_7_2_3_1_hello_in_one_frame() {
    let mut c = server_with(TAKEOVER, 1 << 20);
    c.receive(&[0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
    assert_eq!(c.poll_event(), Some(Event::Message(Message::from("Hello"))));
}

#[test]
fn rfc7692_7_2_3_1_hello_in_two_fragments() {
    let mut c = server_with(TAKEOVER, 1 << 20);
    c.receive(&[
        0x41, 0x03, 0xf2, 0x48, 0xcd, 0x80, 0x04, 0xc9, 0xc9, 0x07, 0x00,
    ]);
    assert_eq!(c.poll_event(), Some(Event::Message(Message::from("Hello"))));
}

#[test]
fn rfc7692_7_2_3_2_context_takeover_across_messages() {
    let mut c = server_with(TAKEOVER, 1 << 20);
    // The second "Hello" refers back into the first message's data.
    c.receive(&[0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
    c.receive(&[0xc1, 0x05, 0xf2, 0x00, 0x11, 0x00, 0x00]);
    assert_eq!(c.poll_event(), Some(Event::Message(Message::from("Hello"))));
    assert_eq!(c.poll_event(), Some(Event::Message(Message::from("Hello"))));
}

#[test]
fn rfc7692_7_2_3_4_stored_block() {
    let mut c = server_with(TAKEOVER, 1 << 20);
    c.receive(&[
        0xc1, 0x0b, 0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
    ]);
    assert_eq!(c.poll_event(), Some(Event::Message(Message::from("Hello"))));
}

#[test]
fn round_trip_both_ways_with_context() {
    let (mut client, mut server) = pair();
    let text = "the quick brown fox jumps over the lazy dog ".repeat(20);
    for _ in 0..3 {
        client.send_text(&text).unwrap();
        let wire = drain(&mut client);
        assert!(
            wire.len() < text.len() / 4,
            "compressed: {} bytes",
            wire.len()
        );
        assert_eq!(wire[0] & 0x40, 0x40, "RSV1 set");
        server.receive(&wire);
        assert_eq!(
            server.poll_event(),
            Some(Event::Message(Message::from(text.as_str())))
        );
        server.send(Message::from(text.as_str())).unwrap();
        client.receive(&drain(&mut server));
        assert_eq!(
            client.poll_event(),
            Some(Event::Message(Message::from(text.as_str())))
        );
    }
}

#[test]
fn small_messages_and_opt_out_go_uncompressed() {
    let (_, mut server) = pair();
    server.send_text("tiny").unwrap();
    assert_eq!(
        drain(&mut server)[0],
        0x81,
        "below the threshold: RSV1 clear"
    );
    server
        .send_with(Message::from("x".repeat(1000)), false)
        .unwrap();
    assert_eq!(drain(&mut server)[0], 0x81, "opted out: RSV1 clear");
}

#[test]
fn server_no_context_output_is_the_same_every_time() {
    let (_, mut server) = pair();
    let text = "abcdefgh".repeat(100);
    server.send_text(&text).unwrap();
    let first = drain(&mut server);
    server.send_text(&text).unwrap();
    assert_eq!(
        drain(&mut server),
        first,
        "no back-references into the previous message"
    );
}

#[test]
fn prepared_message_is_shared_when_the_extension_allows() {
    let (mut client, mut server) = pair();
    let message = Message::from("broadcast ".repeat(50));
    let prepared = PreparedMessage::new(message.clone(), Some(&DeflateConfig::default()));
    let deflated = prepared.deflated_frame().unwrap().clone();
    server.send_prepared(&prepared).unwrap();
    let wire = drain(&mut server);
    assert_eq!(wire, deflated.to_vec());
    client.receive(&wire);
    assert_eq!(client.poll_event(), Some(Event::Message(message.clone())));
    let mut plain = Connection::new(Role::Server, Config::default(), Instant::now());
    plain.send_prepared(&prepared).unwrap();
    assert_eq!(
        Bytes::from(drain(&mut plain)),
        prepared.plain_frame().clone()
    );
}

#[test]
fn zip_bomb_fails_with_1009_before_memory_grows() {
    let config = DeflateConfig {
        threshold: 0,
        ..DeflateConfig::default()
    };
    let bomb = compress_standalone(&vec![0u8; 10 << 20], &config).unwrap();
    assert!(bomb.len() < 128 * 1024, "{} compressed bytes", bomb.len());
    let mut c = server_with(TAKEOVER, 1 << 20);
    let mut frame = BytesMut::new();
    crate::frame::encode_frame(&mut frame, OpCode::Binary, true, RSV1, None, &bomb);
    c.receive(&frame);
    assert_eq!(c.poll_event(), None);
    assert_eq!(
        c.failure(),
        Some(&ProtocolError::MessageTooBig { max: 1 << 20 })
    );
    assert_eq!(
        c.close_sent().map(|f| f.code),
        Some(CloseCode::MESSAGE_TOO_BIG)
    );
}

#[test]
fn corrupt_data_fails_the_connection() {
    let mut c = server_with(TAKEOVER, 1 << 20);
    c.receive(&[0xc2, 0x03, 0xff, 0xff, 0xff]);
    assert_eq!(c.poll_event(), None);
    assert!(matches!(c.failure(), Some(ProtocolError::Extension(_))));
}

#[test]
fn rfc7692_6_1_rsv1_on_continuation_or_control_fails() {
    let mut c = server_with(TAKEOVER, 1 << 20);
    c.receive(&[0x41, 0x01, 0x00, 0xc0, 0x00]);
    assert_eq!(c.poll_event(), None);
    assert!(matches!(c.failure(), Some(ProtocolError::ReservedBits(_))));
    let mut c = server_with(TAKEOVER, 1 << 20);
    c.receive(&[0xc9, 0x00]);
    assert_eq!(c.poll_event(), None);
    assert!(matches!(c.failure(), Some(ProtocolError::ReservedBits(_))));
}

#[test]
fn rfc7692_7_1_server_answers() {
    let (answer, ext) = offer("permessage-deflate").unwrap();
    assert_eq!(answer, "permessage-deflate; server_no_context_takeover");
    assert_eq!(
        ext.agreed(),
        Agreed {
            send_no_context: true,
            send_window: 15,
            recv_no_context: false,
            recv_window: 15
        }
    );
    let (answer, ext) = offer("permessage-deflate; client_max_window_bits").unwrap();
    assert_eq!(
        answer,
        "permessage-deflate; server_no_context_takeover; client_max_window_bits=12"
    );
    assert_eq!(ext.agreed().recv_window, 12);
    let (answer, _) =
        offer("permessage-deflate; client_max_window_bits=10; server_max_window_bits=11").unwrap();
    assert_eq!(
        answer,
        "permessage-deflate; server_no_context_takeover; server_max_window_bits=11; client_max_window_bits=10"
    );
    let (answer, _) = offer("permessage-deflate; client_no_context_takeover").unwrap();
    assert_eq!(
        answer,
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
    );
}

#[test]
fn rfc7692_7_1_server_declines_bad_offers_and_takes_the_next() {
    for bad in [
        "permessage-deflate; unknown=1",
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        "permessage-deflate; client_max_window_bits=16",
        "permessage-deflate; client_max_window_bits=7",
        "permessage-deflate; server_max_window_bits",
        "permessage-deflate; server_max_window_bits=08",
        "permessage-deflate; server_no_context_takeover=1",
        "permessage-deflate; server_max_window_bits=8",
        "x-webkit-deflate-frame",
    ] {
        assert!(offer(bad).is_none(), "{bad}");
    }
    let (answer, _) =
        offer("permessage-deflate; server_max_window_bits=8, permessage-deflate").unwrap();
    assert_eq!(answer, "permessage-deflate; server_no_context_takeover");
}

#[test]
fn rfc7692_7_1_client_checks_the_answer() {
    let config = DeflateConfig::default();
    assert!(accept_response("permessage-deflate", &config).is_ok());
    let ext = accept_response("permessage-deflate; client_max_window_bits=8", &config).unwrap();
    assert_eq!(
        ext.agreed().send_window,
        0,
        "cannot compress with 8 bits: send uncompressed"
    );
    let ext = accept_response("permessage-deflate; client_max_window_bits=15", &config).unwrap();
    assert_eq!(
        ext.agreed().send_window,
        12,
        "a larger answer than offered: keep our own limit"
    );
    for bad in [
        "permessage-deflate; client_max_window_bits",
        "permessage-deflate; foo",
        "permessage-deflate, permessage-deflate",
        "x-other",
        "permessage-deflate; server_max_window_bits=16",
    ] {
        assert!(accept_response(bad, &config).is_err(), "{bad}");
    }
}

#[test]
fn client_offer_lists_what_it_wants() {
    assert_eq!(
        client_offer(&DeflateConfig::default()),
        "permessage-deflate; server_no_context_takeover; client_max_window_bits=12"
    );
}
