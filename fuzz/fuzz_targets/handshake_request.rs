//! `parse_request` and `validate` on an arbitrary request head; see `ripple_proto_fuzz::handshake::request`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ripple_proto_fuzz::handshake::request(data));
