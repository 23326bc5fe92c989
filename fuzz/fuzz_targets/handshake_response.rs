//! `parse_response` and `validate_response` on an arbitrary response head; see `ripple_proto_fuzz::handshake::response`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ripple_proto_fuzz::handshake::response(data));
