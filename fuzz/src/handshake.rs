//! The opening-handshake parsers and validators on arbitrary heads.

use ripple_proto::handshake::client::{self, ClientRequest};
use ripple_proto::handshake::server::{self, Accept};
use ripple_proto::handshake::{Limits, accept_key};

/// The client of RFC 6455 §1.3, for validating responses.
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// `parse_request` with default limits, then `validate` and the request accessors.
///
/// Asserts: no panic; a parsed head is no longer than the input; a rejected request gets an
/// error response that is itself a parseable HTTP response with the error's status; a valid
/// request's 101 (choosing the first offered subprotocol) passes `validate_response` for a
/// client that offered what was parsed.
pub fn request(data: &[u8]) {
    let limits = Limits::default();
    let request = match server::parse_request(data, &limits) {
        Ok(Some((request, len))) => {
            assert!(len <= data.len());
            request
        }
        Ok(None) => return,
        Err(err) => return check_error_response(&err),
    };
    let _ = (
        request.path(),
        request.query(),
        request.key(),
        request.origin(),
    );
    let _ = (request.host(), request.protocols(), request.extensions());
    let valid = match server::validate(&request) {
        Ok(valid) => valid,
        Err(err) => return check_error_response(&err),
    };
    let accept = Accept {
        protocol: valid.protocols().first().cloned(),
        ..Accept::default()
    };
    let response = server::accept_response(&valid, &accept).expect("101 for a valid request");
    let (parsed, len) = client::parse_response(&response, &limits)
        .expect("our 101 parses")
        .expect("our 101 is complete");
    assert_eq!(len, response.len());
    let req = ClientRequest {
        protocols: valid.protocols().to_vec(),
        ..ClientRequest::new("example.com", "/")
    };
    let accepted =
        client::validate_response(&parsed, valid.key(), &req).expect("our 101 validates");
    assert_eq!(accepted.protocol, accept.protocol);
}

/// `parse_response` with default limits, then `validate_response` for a fixed client request
/// (the RFC 6455 §1.3 key, subprotocols `chat` and `superchat`, an extension offered).
///
/// Asserts: no panic; a parsed head is no longer than the input; an accepted response carries
/// the right `Sec-WebSocket-Accept` and one of the offered subprotocols.
pub fn response(data: &[u8]) {
    let Ok(Some((response, len))) = client::parse_response(data, &Limits::default()) else {
        return;
    };
    assert!(len <= data.len());
    let _ = response.content_length();
    let req = ClientRequest {
        protocols: vec!["chat".into(), "superchat".into()],
        extensions: Some("permessage-deflate".into()),
        ..ClientRequest::new("server.example.com", "/chat")
    };
    let Ok(accepted) = client::validate_response(&response, KEY, &req) else {
        return;
    };
    assert_eq!(response.status, 101);
    let expected = accept_key(KEY.as_bytes());
    let sent = response
        .headers
        .get("Sec-WebSocket-Accept")
        .map(<[u8]>::trim_ascii);
    assert_eq!(sent, Some(expected.as_bytes()));
    if let Some(protocol) = accepted.protocol {
        assert!(req.protocols.contains(&protocol));
    }
}

/// The answer to a rejected request is a complete HTTP response with the error's status.
fn check_error_response(err: &ripple_proto::handshake::HandshakeError) {
    let wire = server::error_response(err);
    let (parsed, len) = client::parse_response(&wire, &Limits::default())
        .expect("our error response parses")
        .expect("our error response is complete");
    assert_eq!(parsed.status, err.status());
    assert_eq!(parsed.content_length(), Some(wire.len() - len));
}
