//! `Utf8Validator` fed in pieces, against `std::str::from_utf8`; see `ripple_proto_fuzz::utf8::differential`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ripple_proto_fuzz::utf8::differential(data));
