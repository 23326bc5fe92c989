//! `FrameHeader::parse` on arbitrary bytes: minimal-encoding round trip; see `ripple_proto_fuzz::frame::header`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ripple_proto_fuzz::frame::header(data));
